//! Live registrations: who owns which URL prefixes, and the routing
//! snapshot built from them.
//!
//! Requests read an immutable [`RouteTable`] through `ArcSwap` (no lock on
//! the hot path). Registering or unregistering takes a mutex, changes a
//! clone of the table (persistent maps: the cost is that of the change, not
//! of the table) and swaps it in, then publishes the set of (scheme, port)
//! pairs in use so the server can open and close listeners.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use http::header;
use http::Uri;

use crate::conn::ConnInfo;
use crate::errors::HttpSysError;
use crate::urlprefix::{Lookup, PrefixTable, Scheme, UrlPrefix};
use crate::winerror::{ERROR_ACCESS_DENIED, ERROR_ALREADY_EXISTS, ERROR_INVALID_PARAMETER};

/// What answers requests for a registration's prefixes.
#[derive(Debug, Clone)]
pub enum Handler {
    /// A static site (files, CGI): the built-in one or a `[site:NAME]`.
    Site(Arc<crate::site::Site>),
    /// A reverse-proxied application backend.
    Proxy(Arc<crate::proxy::Backend>),
    /// ACME HTTP-01 tokens (`/.well-known/acme-challenge/`), answered by
    /// the server itself while `[acme]` orders certificates.
    AcmeChallenge(Arc<crate::acme::challenge::Http01Tokens>),
    /// `metrics=PREFIX`: the Prometheus text page (`crate::metrics`).
    Metrics,
    /// `health=PREFIX`: 200 while the server accepts requests, 503 while
    /// it shuts down.
    Health,
}

/// Who made a registration (shown by `show servicestate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// GLOBAL.INI: the built-in site or an `[app:NAME]` section.
    Config { name: String },
    /// A process over the control channel.
    Process {
        pid: Option<u32>,
        user: Option<String>,
    },
}

pub type RegistrationId = u64;

#[derive(Debug)]
pub struct Registration {
    pub id: RegistrationId,
    pub owner: Owner,
    /// Request queue name, as HTTP.sys shows it.
    pub queue: String,
    pub prefixes: Vec<UrlPrefix>,
    pub handler: Handler,
    /// The request queue: requests in flight for it (checked against its
    /// limit, as HTTP.sys's `RequestQueueLimit`) and its counters.
    pub stats: Arc<crate::metrics::QueueStats>,
}

/// One routing entry: the prefix and its registration.
#[derive(Debug)]
pub struct Route {
    pub prefix: UrlPrefix,
    pub registration: Arc<Registration>,
}

/// The immutable routing snapshot (cloning it is O(1)).
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    pub prefixes: PrefixTable<Arc<Route>>,
}

/// Why a registration was refused, with netsh's error number.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{prefix} is already registered (by {holder}); pick another prefix or stop the other application")]
    AlreadyRegistered { prefix: String, holder: String },
    #[error("{prefix}: port {port} already serves {other}; a port serves one scheme")]
    SchemeConflict {
        prefix: String,
        port: u16,
        other: &'static str,
    },
    #[error("{prefix}: no URL reservation lets user '{user}' register it; add one with 'portshare http add urlacl url={prefix} user={user}'")]
    AccessDenied { prefix: String, user: String },
    #[error("at least one URL prefix is needed")]
    NoPrefixes,
}

impl RegisterError {
    pub fn netsh_code(&self) -> u32 {
        match self {
            RegisterError::AlreadyRegistered { .. } => ERROR_ALREADY_EXISTS,
            RegisterError::AccessDenied { .. } => ERROR_ACCESS_DENIED,
            RegisterError::SchemeConflict { .. } | RegisterError::NoPrefixes => {
                ERROR_INVALID_PARAMETER
            }
        }
    }
}

pub type PortSet = BTreeSet<(Scheme, u16)>;

/// A registration to be made.
pub struct NewRegistration {
    pub owner: Owner,
    pub queue: String,
    pub prefixes: Vec<UrlPrefix>,
    pub handler: Handler,
}

/// `RequestQueueLimit` as HTTP.sys has it by default.
pub const DEFAULT_QUEUE_LIMIT: usize = 1000;

/// The request-queue limits: `RequestQueueLimit` and per-queue overrides
/// (`queue_limit=` of an `[app:NAME]`, whose queue is NAME).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLimits {
    pub default: usize,
    pub by_queue: std::collections::HashMap<String, usize>,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            default: DEFAULT_QUEUE_LIMIT,
            by_queue: Default::default(),
        }
    }
}

impl QueueLimits {
    fn of(&self, queue: &str) -> usize {
        self.by_queue.get(queue).copied().unwrap_or(self.default)
    }
}

pub struct Registry {
    current: ArcSwap<RouteTable>,
    queue_limits: Mutex<QueueLimits>,
    registrations: Mutex<BTreeMap<RegistrationId, Arc<Registration>>>,
    next_id: AtomicU64,
    ports: watch::Sender<PortSet>,
    /// Bumped at every change of the table, for whoever follows the
    /// registered names (the development-certificate manager).
    generation: watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            current: ArcSwap::from_pointee(RouteTable::default()),
            queue_limits: Mutex::default(),
            registrations: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            ports: watch::channel(PortSet::new()).0,
            generation: watch::channel(0).0,
        }
    }

    /// The routing snapshot for one request.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.current.load()
    }

    /// The (scheme, port) pairs in use; changes whenever they do.
    pub fn ports(&self) -> watch::Receiver<PortSet> {
        self.ports.subscribe()
    }

    /// Changes (to a new generation number) whenever the table does; read
    /// the new table with [`Registry::snapshot`].
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// All current registrations, in registration order.
    pub fn list(&self) -> Vec<Arc<Registration>> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<RegistrationId, Arc<Registration>>> {
        // A panic while holding the lock cannot leave the map half-edited
        // (edits are single inserts/removes), so a poisoned lock is usable.
        self.registrations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the request-queue limits, for the registrations made from now
    /// on and for the queues already there.
    pub fn set_queue_limits(&self, limits: QueueLimits) {
        let regs = self.lock();
        for r in regs.values() {
            r.stats.set_limit(limits.of(&r.queue));
        }
        *self
            .queue_limits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = limits;
    }

    /// The request queue of a new registration, with its limit.
    fn queue_stats(&self, id: RegistrationId, queue: &str) -> Arc<crate::metrics::QueueStats> {
        let limits = self
            .queue_limits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if queue.is_empty() {
            // An unnamed queue is the registration's own.
            crate::metrics::queue(&format!("unnamed-{id}"), limits.default)
        } else {
            crate::metrics::queue(queue, limits.of(queue))
        }
    }

    /// Registers all `prefixes` for one owner, or none of them.
    pub fn register(
        &self,
        owner: Owner,
        queue: String,
        prefixes: Vec<UrlPrefix>,
        handler: Handler,
    ) -> Result<RegistrationId, RegisterError> {
        let ids = self.register_all(vec![NewRegistration {
            owner,
            queue,
            prefixes,
            handler,
        }])?;
        ids.first().copied().ok_or(RegisterError::NoPrefixes)
    }

    /// Registers several owners at once (start-up: thousands of `[app:]`
    /// sections), all or none.
    ///
    /// The published table is cloned (O(1): its maps are persistent), the
    /// new prefixes are added to the clone and the clone is swapped in, so
    /// the cost is that of the new prefixes, whatever the table's size.
    pub fn register_all(
        &self,
        new: Vec<NewRegistration>,
    ) -> Result<Vec<RegistrationId>, RegisterError> {
        self.replace(&[], new)
    }

    /// Replaces the registrations `remove` with `add` in one step (a
    /// configuration reload): requests see the old set or the new one,
    /// never a mix or a gap, and on any conflict nothing changes.
    /// Registrations not named in `remove` (those made at run time) stay.
    pub fn replace(
        &self,
        remove: &[RegistrationId],
        add: Vec<NewRegistration>,
    ) -> Result<Vec<RegistrationId>, RegisterError> {
        if add.iter().any(|n| n.prefixes.is_empty()) {
            return Err(RegisterError::NoPrefixes);
        }
        let mut regs = self.lock();
        // Writers hold `regs`, so the published table is the latest one.
        let mut table = RouteTable::clone(&self.current.load());
        for id in remove {
            if let Some(registration) = regs.get(id) {
                remove_routes(&mut table, registration);
            }
        }
        let mut added = Vec::with_capacity(add.len());
        for n in add {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let stats = self.queue_stats(id, &n.queue);
            let registration = Arc::new(Registration {
                id,
                owner: n.owner,
                queue: n.queue,
                prefixes: n.prefixes,
                handler: n.handler,
                stats,
            });
            add_routes(&mut table, &registration)?;
            added.push(registration);
        }
        for id in remove {
            regs.remove(id);
        }
        let ids = added.iter().map(|r| r.id).collect();
        for registration in added {
            regs.insert(registration.id, registration);
        }
        self.publish(table);
        Ok(ids)
    }

    /// Removes a registration; its prefixes are free at once.
    pub fn unregister(&self, id: RegistrationId) -> bool {
        let mut regs = self.lock();
        let Some(registration) = regs.remove(&id) else {
            return false;
        };
        let mut table = RouteTable::clone(&self.current.load());
        remove_routes(&mut table, &registration);
        self.publish(table);
        true
    }

    fn publish(&self, table: RouteTable) {
        let ports: PortSet = table.prefixes.ports().collect();
        self.current.store(Arc::new(table));
        self.generation.send_modify(|g| *g += 1);
        self.ports.send_if_modified(|current| {
            if *current == ports {
                false
            } else {
                *current = ports;
                true
            }
        });
    }
}

fn holder_name(owner: &Owner) -> String {
    match owner {
        Owner::Config { name } => format!("'{name}' in the configuration"),
        Owner::Process { pid: Some(pid), .. } => format!("process {pid}"),
        Owner::Process { pid: None, .. } => "another process".to_owned(),
    }
}

/// Removes the routes of `registration` from `table` (only its own: an
/// equal prefix cannot be registered twice, but be exact rather than
/// assume it).
fn remove_routes(table: &mut RouteTable, registration: &Registration) {
    for prefix in &registration.prefixes {
        if table
            .prefixes
            .get(prefix)
            .is_some_and(|route| route.registration.id == registration.id)
        {
            table.prefixes.remove(prefix);
        }
    }
}

/// Adds the routes of `registration` to `table`, or fails on the first
/// prefix that conflicts (the table may then hold some of them: callers
/// work on a clone and drop it).
fn add_routes(
    table: &mut RouteTable,
    registration: &Arc<Registration>,
) -> Result<(), RegisterError> {
    for prefix in &registration.prefixes {
        // A port serves one scheme: HTTP.sys refuses `https://+:80/` when
        // `http://+:80/` is registered.
        let other = match prefix.scheme() {
            Scheme::Http => Scheme::Https,
            Scheme::Https => Scheme::Http,
        };
        if table.prefixes.serves(other, prefix.port()) {
            return Err(RegisterError::SchemeConflict {
                prefix: prefix.to_string(),
                port: prefix.port(),
                other: other.as_str(),
            });
        }
        let route = Arc::new(Route {
            prefix: prefix.clone(),
            registration: registration.clone(),
        });
        if let Err(conflict) = table.prefixes.insert(prefix.clone(), route) {
            let holder = table
                .prefixes
                .get(&conflict.existing)
                .map(|r| holder_name(&r.registration.owner))
                .unwrap_or_else(|| "another registration".to_owned());
            return Err(RegisterError::AlreadyRegistered {
                prefix: prefix.to_string(),
                holder,
            });
        }
    }
    Ok(())
}

/// The request host: the absolute URI's or `:authority` (HTTP/2), else the
/// `Host` header.
fn request_host<'r>(uri: &'r Uri, headers: &'r http::HeaderMap) -> Option<&'r str> {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
}

/// Finds the registration for a request, or the HTTP.sys error.
pub fn route(
    table: &RouteTable,
    conn: &ConnInfo,
    uri: &Uri,
    headers: &http::HeaderMap,
) -> Result<Arc<Route>, HttpSysError> {
    route_to(table, conn, uri.path(), request_host(uri, headers))
}

/// [`route`] for a request's path and host, however they were parsed.
pub fn route_to(
    table: &RouteTable,
    conn: &ConnInfo,
    path: &str,
    host: Option<&str>,
) -> Result<Arc<Route>, HttpSysError> {
    let key = crate::urlprefix::normalize_path(path).map_err(|_| HttpSysError::InvalidUrl)?;
    let scheme = if conn.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    match table
        .prefixes
        .lookup(scheme, conn.local.port(), host, conn.local.ip(), &key)
    {
        Lookup::Matched { value, .. } => Ok(value.clone()),
        Lookup::NoPathMatch => Err(HttpSysError::NotFound),
        Lookup::NoHostMatch => Err(HttpSysError::InvalidHostname),
    }
}
