//! The control channel: applications in other processes register and
//! unregister URL prefixes while the server runs.
//!
//! A local stream socket ([`unix`]: Unix domain socket; [`windows`]: named
//! pipe) carries the newline-delimited JSON of [`protocol`]. A registration
//! lives exactly as long as the connection it was made on, the way an
//! HTTP.sys request queue lives as long as its process: when the stream ends
//! (EOF, error, the app crashed) the server unregisters it and its prefixes
//! are free at once.
//!
//! Registering checks, in this order: the prefixes parse (87), the backend
//! parses (87), the peer may register them ([`acl`], URL reservations reloaded
//! from the store on each registration → 5), no conflict in the same
//! precedence category (183, from [`Registry::register`]).
//!
//! [`client`] is the other end, used by `portshare register`, `portshare
//! run` and `portshare http show servicestate` (`cli::register`).

#[cfg(unix)]
mod access;
pub mod acl;
pub mod client;
pub mod protocol;
#[cfg(unix)]
pub mod unix;
#[cfg(windows)]
pub mod windows;

#[cfg(unix)]
use unix as platform;
#[cfg(windows)]
use windows as platform;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

use crate::app::Running;
use crate::config::Settings;
use crate::proxy::Backend;
use crate::proxy::BackendTarget;
use crate::registry::{Handler, Owner, RegistrationId, Registry};
use crate::store::Store;
use crate::urlprefix::UrlPrefix;
use crate::winerror::{
    ERROR_ACCESS_DENIED, ERROR_ALREADY_EXISTS, ERROR_FILE_NOT_FOUND, ERROR_GEN_FAILURE,
    ERROR_INVALID_PARAMETER, ERROR_NOT_SUPPORTED, ERROR_SHARING_VIOLATION,
};

use acl::PeerUser;
use protocol::{
    OkBody, RegisterRequest, Request, Response, WireCache, WireCacheEntry, WireRegistration,
    WireServiceState,
};

/// Why the control channel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket {}: {source}", path.display())]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {}: another portshare server is running with this configuration (it answers on the socket); stop it first, or give this one another control_socket", .0.display())]
    InUse(PathBuf),
}

/// What a maintenance command runs: resolves to the report to show the
/// client (`Ok`) or why it failed (`Err`, sent as error 31).
pub type MaintenanceHook =
    Arc<dyn Fn() -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// What `portshare acme renew` runs: the names (all when empty) → the
/// report (`Ok`) or the report with the failures (`Err`, sent as error 31).
pub type AcmeRenewHook =
    Arc<dyn Fn(Vec<String>) -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// Optional handlers for commands that other parts of the server provide.
/// A command without a handler is answered with error 50 (not supported).
#[derive(Clone, Default)]
pub struct ControlHooks {
    /// `portshare maintenance run`.
    pub maintenance_run: Option<MaintenanceHook>,
    /// `portshare maintenance status`.
    pub maintenance_status: Option<MaintenanceHook>,
    /// `portshare acme status`.
    pub acme_status: Option<MaintenanceHook>,
    /// `portshare acme renew`.
    pub acme_renew: Option<AcmeRenewHook>,
    /// `netsh http flush logbuffer`.
    pub flush_logs: Option<MaintenanceHook>,
}

/// The control channel of a running server. Dropping it stops accepting and
/// removes the socket file.
pub struct ControlServer {
    listener: Option<platform::Listener>,
    cleanup: Option<(PathBuf, (u64, u64))>,
    task: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Opens the control socket named by `settings.control_socket` (nothing
    /// when it is disabled). Must run inside a Tokio runtime.
    pub fn bind(settings: &Settings) -> Result<ControlServer, ControlError> {
        let Some(path) = &settings.control_socket else {
            return Ok(ControlServer {
                listener: None,
                cleanup: None,
                task: None,
            });
        };
        let listener = platform::Listener::bind(path)?;
        Ok(ControlServer {
            cleanup: Some(listener.cleanup_token()),
            listener: Some(listener),
            task: None,
        })
    }

    /// Starts accepting connections for the running server. Call once, from
    /// the `started` callback of [`crate::app::run_with`].
    pub fn start(&mut self, running: &Running, hooks: ControlHooks) {
        // `netsh http add cacheparam` made while the server was stopped.
        apply_cache_params(&Store::in_cert_dir(&running.settings.cert_dir));
        let Some(mut listener) = self.listener.take() else {
            return;
        };
        let state = Arc::new(State {
            registry: running.registry.clone(),
            settings: running.settings.clone(),
            connections: Mutex::new(HashMap::new()),
            store: Store::in_cert_dir(&running.settings.cert_dir),
            server_user: listener.server_user(),
            pids: Mutex::new(HashMap::new()),
            hooks,
            listen: running.listen.clone(),
            reload: Some(running.reload.clone()),
        });
        if let Some((path, _)) = &self.cleanup {
            tracing::info!(path = %path.display(), "control socket ready");
        }
        self.task = Some(tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        tokio::spawn(serve_connection(stream, peer, state.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some((path, ident)) = self.cleanup.take() {
            platform::Listener::cleanup(&path, ident);
        }
    }
}

/// Shared by all connections.
struct State {
    registry: Arc<Registry>,
    settings: Arc<Settings>,
    /// Control connections open per user that is not privileged.
    connections: Mutex<HashMap<String, usize>>,
    store: Store,
    server_user: PeerUser,
    /// Processes attached to control registrations, for `show servicestate`.
    pids: Mutex<HashMap<RegistrationId, Vec<u32>>>,
    hooks: ControlHooks,
    /// Re-reads GLOBAL.INI (`portshare reload`).
    reload: Option<Arc<crate::app::Reloader>>,
    /// The listening addresses (they follow the store's IP listen list).
    listen: Arc<crate::server::ListenAddresses>,
}

impl State {
    /// The server's own user or root: no reservation needed, no limits.
    fn privileged(&self, peer: &platform::Peer) -> bool {
        acl::is_privileged(&peer.user, &self.server_user)
    }

    fn pids(&self) -> std::sync::MutexGuard<'_, HashMap<RegistrationId, Vec<u32>>> {
        // Edits are single inserts/removes; a poisoned map is still whole.
        self.pids.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Registrations made on one connection; dropped (connection over, or the
/// task cancelled at shutdown) → unregistered.
struct Owned {
    state: Arc<State>,
    ids: Vec<RegistrationId>,
}

impl Drop for Owned {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            self.state.registry.unregister(id);
            self.state.pids().remove(&id);
            tracing::info!(id, "control connection closed; registration removed");
        }
    }
}

async fn serve_connection<S>(stream: S, peer: platform::Peer, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, mut write) = tokio::io::split(stream);
    let _slot = match ConnectionSlot::take(&state, &peer) {
        Ok(slot) => slot,
        Err(refused) => {
            // Read the request first (briefly): closing with it unread can
            // reset the connection before the client sees the answer.
            let mut first = Vec::new();
            let mut reader = BufReader::new(read).take(protocol::MAX_LINE as u64);
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                reader.read_until(b'\n', &mut first),
            )
            .await;
            let mut out = serde_json::to_vec(&refused).unwrap_or_default();
            out.push(b'\n');
            let _ = write.write_all(&out).await;
            let _ = write.shutdown().await;
            return;
        }
    };
    let mut reader = BufReader::new(read);
    let mut owned = Owned {
        state: state.clone(),
        ids: Vec::new(),
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(protocol::MAX_LINE as u64);
        let read = limited.read_until(b'\n', &mut line);
        // A connection that holds registrations waits for its next request
        // (or its end) as long as it likes; any other must send a whole
        // request line within IDLE_TIMEOUT, so idle or half-sent lines
        // cannot pile up.
        let read = if owned.ids.is_empty() {
            match tokio::time::timeout(IDLE_TIMEOUT, read).await {
                Ok(read) => read,
                Err(_) => {
                    tracing::debug!("control connection idle without a registration; closed");
                    break;
                }
            }
        } else {
            read.await
        };
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "control connection read failed");
                break;
            }
        };
        if n == 0 {
            break; // EOF
        }
        let too_long = !line.ends_with(b"\n") && n >= protocol::MAX_LINE;
        let response = if too_long {
            Response::error(
                ERROR_INVALID_PARAMETER,
                format!("request line longer than {} bytes", protocol::MAX_LINE),
            )
        } else if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Ok(req) => handle(req, &peer, &state, &mut owned).await,
                Err(e) => Response::error(
                    ERROR_INVALID_PARAMETER,
                    format!("not a control request: {e}"),
                ),
            }
        };
        let mut out = match serde_json::to_vec(&response) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "control response could not be encoded");
                break;
            }
        };
        out.push(b'\n');
        if write.write_all(&out).await.is_err() || write.flush().await.is_err() {
            break;
        }
        if too_long {
            break; // the rest of the line cannot be resynchronised
        }
    }
    drop(owned);
}

async fn handle(req: Request, peer: &platform::Peer, state: &State, owned: &mut Owned) -> Response {
    match req {
        Request::Register(r) => match register(r, peer, state) {
            Ok(id) => {
                owned.ids.push(id);
                Response::Ok(OkBody {
                    id: Some(id),
                    ..OkBody::default()
                })
            }
            Err(e) => e,
        },
        Request::Attach { id, pid } => {
            if !owned.ids.contains(&id) {
                return not_yours(id);
            }
            if let Err(e) = check_pid(pid, peer, state) {
                return e;
            }
            let mut pids = state.pids();
            let list = pids.entry(id).or_default();
            if !list.contains(&pid) {
                list.push(pid);
            }
            Response::Ok(OkBody::default())
        }
        Request::Unregister { id } => {
            let Some(pos) = owned.ids.iter().position(|&i| i == id) else {
                return not_yours(id);
            };
            owned.ids.remove(pos);
            state.registry.unregister(id);
            state.pids().remove(&id);
            Response::Ok(OkBody::default())
        }
        Request::ServiceState {} => match service_state(state) {
            Ok(s) => Response::Ok(OkBody {
                servicestate: Some(s),
                ..OkBody::default()
            }),
            Err(e) => Response::error(ERROR_GEN_FAILURE, e),
        },
        Request::MaintenanceRun {} if !state.privileged(peer) => {
            not_privileged(peer, state, "run the maintenance")
        }
        Request::MaintenanceRun {} => {
            run_hook(&state.hooks.maintenance_run, "maintenance run").await
        }
        Request::MaintenanceStatus {} => {
            run_hook(&state.hooks.maintenance_status, "maintenance status").await
        }
        Request::AcmeStatus {} => run_hook(&state.hooks.acme_status, "acme status").await,
        // Only writes out lines already logged: open to every local user, as
        // the other read-only requests.
        Request::FlushLogs {} => run_hook(&state.hooks.flush_logs, "flush logbuffer").await,
        // An order counts against the ACME server's rate limits: administrative.
        Request::Reload {} if !state.privileged(peer) => {
            not_privileged(peer, state, "reload the configuration")
        }
        Request::Reload {} => match &state.reload {
            None => Response::error(ERROR_NOT_SUPPORTED, "this server cannot reload"),
            Some(reload) => match reload.reload("portshare reload").await {
                Ok(outcome) => Response::Ok(OkBody {
                    output: Some(format!("Configuration reloaded: {outcome}\n")),
                    ..OkBody::default()
                }),
                Err(e) => Response::error(
                    ERROR_INVALID_PARAMETER,
                    format!("the configuration was not reloaded (the running one stays): {e}"),
                ),
            },
        },
        Request::AcmeRenew { .. } if !state.privileged(peer) => {
            not_privileged(peer, state, "renew ACME certificates")
        }
        // Read-only, as `servicestate`: open to every local user.
        Request::CacheState { url } => match cache_state(url.as_deref(), &state.settings) {
            Ok(entries) => Response::Ok(OkBody {
                cache: Some(Box::new(WireCache {
                    entries,
                    ..WireCache::default()
                })),
                ..OkBody::default()
            }),
            Err(e) => e,
        },
        // Dropping entries costs the server disk reads: administrative, as
        // HTTP.sys's.
        Request::DeleteCache { .. } if !state.privileged(peer) => {
            not_privileged(peer, state, "change the response cache")
        }
        Request::StoreSettings {} if !state.privileged(peer) => {
            not_privileged(peer, state, "apply the store's settings")
        }
        Request::DeleteCache { url, recursive } => {
            delete_cache(url.as_deref(), recursive, &state.settings)
        }
        Request::StoreSettings {} => {
            apply_cache_params(&state.store);
            state.listen.follow(&state.store);
            Response::Ok(OkBody::default())
        }
        Request::AcmeRenew { names } => match &state.hooks.acme_renew {
            None => Response::error(
                ERROR_NOT_SUPPORTED,
                "this server does not order certificates (GLOBAL.INI has no usable [acme] section)",
            ),
            Some(h) => match h(names).await {
                Ok(output) => Response::Ok(OkBody {
                    output: Some(output),
                    ..OkBody::default()
                }),
                Err(e) => Response::error(ERROR_GEN_FAILURE, e),
            },
        },
    }
}

// ---------------------------------------------------------------------------
// The in-memory file cache (`netsh http show cachestate`, `delete cache`,
// `add cacheparam`)
// ---------------------------------------------------------------------------

/// Puts the store's `cacheparam` into the file cache; a store that cannot
/// be read leaves the limit as it is (and says so in the log).
fn apply_cache_params(store: &Store) {
    match store.cacheparam() {
        Ok(p) => crate::site::files::set_max_cache_response_size(p.max_response_size),
        Err(e) => tracing::warn!(error = %e, "cache parameters not applied"),
    }
}

/// Which cache keys a netsh `url=` names. The cache is the built-in site's
/// and keyed by the path below the site's prefix, so only the URL's path
/// counts (scheme, host and port name the site, which has one cache); it
/// is matched against each site prefix's path, case-insensitively as
/// HTTP.sys compares paths. `None` when the URL is not under the site.
fn cache_key_of(url: &str, settings: &Settings) -> Option<String> {
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url,
    };
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let lower = decoded.to_lowercase();
    settings.site_prefixes.iter().find_map(|p| {
        let base = p.path().to_lowercase();
        lower
            .strip_prefix(&base)
            .map(|_| decoded.get(base.len()..).unwrap_or("").to_owned())
    })
}

/// The URL `show cachestate` prints for a cache key: under the site's
/// first prefix.
fn cache_url(key: &str, settings: &Settings) -> String {
    match settings.site_prefixes.first() {
        Some(p) => format!("{p}{key}"),
        None => format!("/{key}"),
    }
}

fn cache_state(url: Option<&str>, settings: &Settings) -> Result<Vec<WireCacheEntry>, Response> {
    let wanted = match url {
        None => None,
        Some(u) => Some(cache_key_of(u, settings).ok_or_else(|| not_site_url(u))?),
    };
    Ok(crate::site::files::cached_files()
        .into_iter()
        // `url=` may be a prefix of cached URLs (netsh's help says so).
        .filter(|f| wanted.as_deref().is_none_or(|w| f.key.starts_with(w)))
        .map(|f| WireCacheEntry {
            url: cache_url(&f.key, settings),
            content_length: f.content_length,
            cached_bytes: f.cached_bytes,
            content_type: f.content_type,
            created_ms: f
                .created
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            hits: f.hits,
            queue_name: Some("site".to_owned()),
        })
        .collect())
}

fn delete_cache(url: Option<&str>, recursive: bool, settings: &Settings) -> Response {
    let dropped = match url {
        None => crate::site::files::drop_cached(|_| true),
        Some(u) => {
            let Some(key) = cache_key_of(u, settings) else {
                return not_site_url(u);
            };
            let dropped = crate::site::files::drop_cached(|k| {
                if recursive {
                    k.starts_with(&key)
                } else {
                    k == key
                }
            });
            if dropped.is_empty() {
                return Response::error(
                    ERROR_FILE_NOT_FOUND,
                    format!(
                        "nothing is cached for {u}{}; 'netsh http show cachestate' lists what is",
                        if recursive { " or below it" } else { "" }
                    ),
                );
            }
            dropped
        }
    };
    Response::Ok(OkBody {
        cache: Some(Box::new(WireCache {
            dropped: dropped.iter().map(|k| cache_url(k, settings)).collect(),
            ..WireCache::default()
        })),
        ..OkBody::default()
    })
}

fn not_site_url(url: &str) -> Response {
    Response::error(
        ERROR_FILE_NOT_FOUND,
        format!("{url} is not under the built-in site's prefixes; only its files are cached"),
    )
}

/// Error 5 for an administrative request from another user.
fn not_privileged(peer: &platform::Peer, state: &State, what: &str) -> Response {
    Response::error(
        ERROR_ACCESS_DENIED,
        if state.server_user.uid == Some(0) {
            format!("user {} may not {what}; only root may", peer.user.name)
        } else {
            format!(
                "user {} may not {what}; only the server's own user ({}) or root may",
                peer.user.name, state.server_user.name
            )
        },
    )
}

fn not_yours(id: u64) -> Response {
    Response::error(
        ERROR_FILE_NOT_FOUND,
        format!("registration {id} was not made on this connection"),
    )
}

async fn run_hook(hook: &Option<MaintenanceHook>, what: &str) -> Response {
    match hook {
        None => Response::error(
            ERROR_NOT_SUPPORTED,
            format!("this server does not offer '{what}'"),
        ),
        Some(h) => match h().await {
            Ok(output) => Response::Ok(OkBody {
                output: Some(output),
                ..OkBody::default()
            }),
            Err(e) => Response::error(ERROR_GEN_FAILURE, e),
        },
    }
}

fn register(
    r: RegisterRequest,
    peer: &platform::Peer,
    state: &State,
) -> Result<RegistrationId, Response> {
    let prefixes = r
        .prefixes
        .iter()
        .map(|p| {
            UrlPrefix::parse(p).map_err(|e| {
                Response::error(
                    e.netsh_code(),
                    format!("'{p}' is not a valid URL prefix: {e}"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if prefixes.is_empty() {
        return Err(Response::error(
            ERROR_INVALID_PARAMETER,
            "at least one URL prefix is needed",
        ));
    }
    let backend = Backend::parse(&r.backend)
        .map_err(|e| Response::error(ERROR_INVALID_PARAMETER, format!("backend: {e}")))?;
    check_reservations(&state.store, &peer.user, &state.server_user, &prefixes)?;
    let backend = check_backend(backend, peer, state)?;
    let privileged = state.privileged(peer);
    if !privileged {
        check_share(&prefixes, r.queue.as_deref(), peer, state)?;
    }
    check_ports_free(&prefixes, state)?;
    let pid = match r.pid {
        Some(pid) => {
            check_pid(pid, peer, state)?;
            Some(pid)
        }
        None => peer.pid,
    };
    let owner = Owner::Process {
        pid,
        user: Some(peer.user.name.clone()),
    };
    let queue = r.queue.unwrap_or_default();
    let id = state
        .registry
        .register(
            owner,
            queue,
            prefixes.clone(),
            Handler::Proxy(Arc::new(backend)),
        )
        .map_err(|e| Response::error(e.netsh_code(), e.to_string()))?;
    let mut pids: Vec<u32> = pid.into_iter().collect();
    if let Some(p) = peer.pid.filter(|p| !pids.contains(p)) {
        pids.push(p);
    }
    state.pids().insert(id, pids);
    tracing::info!(
        id,
        user = %peer.user.name,
        pid = ?pid,
        backend = %r.backend,
        prefixes = %prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" "),
        "registered over the control socket"
    );
    Ok(id)
}

/// URL reservations, read from the store each time (always current).
fn check_reservations(
    store: &Store,
    peer: &PeerUser,
    server: &PeerUser,
    prefixes: &[UrlPrefix],
) -> Result<(), Response> {
    // The server's own user needs no reservation: don't even read the store.
    if acl::check_access(peer, server, &[], prefixes).is_ok() {
        return Ok(());
    }
    let data = store.load().map_err(|e| {
        Response::error(
            ERROR_ACCESS_DENIED,
            format!("the URL reservations could not be read ({e}), so access is denied"),
        )
    })?;
    acl::check_access(peer, server, &data.urlacl, prefixes)
        .map_err(|e| Response::error(e.netsh_code(), e.to_string()))
}

/// Every live registration (configured ones included), with timeouts.
fn service_state(state: &State) -> Result<WireServiceState, String> {
    let timeouts = state
        .store
        .load()
        .map(|d| d.timeouts)
        .map_err(|e| format!("the store could not be read: {e}"))?;
    let pids = state.pids();
    let registrations = state
        .registry
        .list()
        .iter()
        .map(|reg| WireRegistration {
            urls: reg.prefixes.iter().map(|p| p.to_string()).collect(),
            pids: match &reg.owner {
                Owner::Config { .. } => vec![std::process::id()],
                Owner::Process { pid, .. } => pids
                    .get(&reg.id)
                    .cloned()
                    .unwrap_or_else(|| pid.iter().copied().collect()),
            },
            queue_name: Some(reg.queue.clone()).filter(|q| !q.is_empty()),
            queue_length: reg.stats.length() as u64,
            queue_limit: reg.stats.limit() as u64,
        })
        .collect();
    Ok(WireServiceState {
        timeouts,
        registrations,
    })
}

/// How long a control connection without registrations may stay silent
/// (or take over one request line).
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Control connections one unprivileged user may hold open at once.
const MAX_CONNECTIONS_PER_USER: usize = 32;
/// URL prefixes one unprivileged user may hold registered at once.
const MAX_PREFIXES_PER_USER: usize = 1000;

/// One of a user's control connections, counted until dropped.
struct ConnectionSlot {
    state: Arc<State>,
    user: Option<String>,
}

impl ConnectionSlot {
    fn take(state: &Arc<State>, peer: &platform::Peer) -> Result<ConnectionSlot, Response> {
        if state.privileged(peer) {
            return Ok(ConnectionSlot {
                state: state.clone(),
                user: None,
            });
        }
        let mut open = state.connections.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(peer.user.name.clone()).or_default();
        if *count >= MAX_CONNECTIONS_PER_USER {
            return Err(Response::error(
                ERROR_ACCESS_DENIED,
                format!(
                    "user {} has {MAX_CONNECTIONS_PER_USER} control connections open already; close one first",
                    peer.user.name
                ),
            ));
        }
        *count += 1;
        Ok(ConnectionSlot {
            state: state.clone(),
            user: Some(peer.user.name.clone()),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some(user) = &self.user {
            let mut open = self
                .state
                .connections
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(count) = open.get_mut(user) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    open.remove(user);
                }
            }
        }
    }
}

/// A backend is neither this server itself (requests would loop) nor,
/// for a peer that is not privileged, anything the peer could not reach
/// with its own permissions (the server must not be its confused deputy).
/// Returns the backend to use: for a Unix socket named by such a peer, the
/// socket's real path (links resolved once, here).
fn check_backend(
    backend: Backend,
    peer: &platform::Peer,
    state: &State,
) -> Result<Backend, Response> {
    let spec = backend.spec().to_owned();
    let denied =
        |why: String| Response::error(ERROR_ACCESS_DENIED, format!("backend {spec}: {why}"));
    let privileged = state.privileged(peer);
    match backend.target() {
        BackendTarget::Tcp { host, port } => {
            let listening: Vec<u16> = state
                .registry
                .ports()
                .borrow()
                .iter()
                .map(|(_, p)| *p)
                .collect();
            if listening.contains(&port) && crate::app::is_local(host, &state.settings.listen) {
                return Err(Response::error(
                    ERROR_INVALID_PARAMETER,
                    format!(
                        "backend {spec}: that is this server itself (it listens on port {port}); requests would loop"
                    ),
                ));
            }
            if !privileged {
                #[cfg(unix)]
                access::may_use_tcp(host, port, &peer.user).map_err(denied)?;
                #[cfg(not(unix))]
                return Err(denied(
                    "only the server's own user may name a TCP backend".into(),
                ));
            }
            Ok(backend)
        }
        #[cfg(unix)]
        BackendTarget::Unix(_) if privileged => Ok(backend),
        #[cfg(unix)]
        BackendTarget::Unix(path) => {
            let real = access::may_connect_unix(path, &peer.user).map_err(denied)?;
            let mut resolved =
                Backend::parse(&format!("unix:{}", real.display())).map_err(|e| {
                    Response::error(ERROR_INVALID_PARAMETER, format!("backend {spec}: {e}"))
                })?;
            resolved.set_timeout(backend.timeout());
            Ok(resolved)
        }
    }
}

/// A peer that is not privileged may hold only so many prefixes, and may
/// not take a request queue name that another owner uses.
fn check_share(
    prefixes: &[UrlPrefix],
    queue: Option<&str>,
    peer: &platform::Peer,
    state: &State,
) -> Result<(), Response> {
    let registrations = state.registry.list();
    let mine = |owner: &Owner| matches!(owner, Owner::Process { user: Some(u), .. } if *u == peer.user.name);
    let held: usize = registrations
        .iter()
        .filter(|r| mine(&r.owner))
        .map(|r| r.prefixes.len())
        .sum();
    if held + prefixes.len() > MAX_PREFIXES_PER_USER {
        return Err(Response::error(
            ERROR_ACCESS_DENIED,
            format!(
                "user {} holds {held} URL prefixes; at most {MAX_PREFIXES_PER_USER} may be registered by one user",
                peer.user.name
            ),
        ));
    }
    if let Some(queue) = queue.filter(|q| !q.is_empty()) {
        if registrations
            .iter()
            .any(|r| r.queue.eq_ignore_ascii_case(queue) && !mine(&r.owner))
        {
            return Err(Response::error(
                ERROR_ALREADY_EXISTS,
                format!("the request queue name '{queue}' is another owner's; choose another name"),
            ));
        }
    }
    Ok(())
}

/// A process ID shown for a registration is the peer's own process (or
/// the peer is privileged).
fn check_pid(pid: u32, peer: &platform::Peer, state: &State) -> Result<(), Response> {
    #[cfg(unix)]
    let own = access::process_is_owned_by(pid, peer.user.uid);
    #[cfg(not(unix))]
    let own = false;
    if own || state.privileged(peer) || Some(pid) == peer.pid {
        return Ok(());
    }
    Err(Response::error(
        ERROR_ACCESS_DENIED,
        format!(
            "process {pid} is not one of user {}'s processes",
            peer.user.name
        ),
    ))
}

/// A port the server does not listen on yet must be free: a registration
/// on a port another program holds is refused, rather than reported as
/// registered and never served.
fn check_ports_free(prefixes: &[UrlPrefix], state: &State) -> Result<(), Response> {
    let open = state.registry.ports().borrow().clone();
    for prefix in prefixes {
        if open.iter().any(|(_, port)| *port == prefix.port()) {
            continue;
        }
        if let Err(e) = crate::server::bind_port(&state.listen.current(), prefix.port()) {
            // Not the start-up error's advice (that one names GLOBAL.INI).
            let why = match e {
                crate::server::ServerError::Bind { addr, source } => format!("{addr}: {source}"),
                other => other.to_string(),
            };
            return Err(Response::error(
                ERROR_SHARING_VIOLATION,
                format!(
                    "{prefix}: the port cannot be listened on ({why}); register a prefix on another port, or stop the program that holds this one"
                ),
            ));
        }
    }
    Ok(())
}

/// The control socket for `settings`, or a message saying it is disabled.
pub fn socket_path(settings: &Settings) -> Result<&Path, String> {
    settings.control_socket.as_deref().ok_or_else(|| {
        format!(
            "the control socket is disabled in {} (control_socket is empty), so there is no way to reach the server",
            settings.origin
        )
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn load(ini: &str, env: &[(&str, &str)]) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("public")).unwrap();
        let file = dir.path().join("GLOBAL.INI");
        std::fs::write(&file, ini).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let s = Settings::load_with_env(Some(&file), &env).unwrap();
        // The paths are checked below; the folder may go.
        std::mem::forget(dir);
        s
    }

    #[test]
    fn control_socket_setting() {
        let s = load("[param]\n", &[]);
        let path = s.control_socket.clone().unwrap();
        assert_eq!(path.file_name().unwrap(), "portshare.sock");
        assert_eq!(path.parent(), s.public_dir.parent());

        let s = load("[param]\ncontrol_socket=run/ps.sock\n", &[]);
        assert!(s.control_socket.unwrap().ends_with("run/ps.sock"));
        let s = load("[param]\ncontrol_socket=/tmp/x.sock\n", &[]);
        assert_eq!(s.control_socket.unwrap(), PathBuf::from("/tmp/x.sock"));

        let s = load("[param]\ncontrol_socket=\n", &[]);
        assert!(s.control_socket.is_none());
        assert!(socket_path(&s).unwrap_err().contains("disabled"));
        let s = load("[param]\n", &[("PORTSHARE_CONTROL_SOCKET", "")]);
        assert!(s.control_socket.is_none());
    }

    // A runtime: the free-port check binds with tokio.
    #[tokio::test]
    async fn registration_checks_reservations_for_other_users() {
        use crate::store::UrlReservation;
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        // A backend every user may reach: a socket anyone may open.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("app.sock");
        let _backend = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
        // A port nothing listens on, so the free-port check passes.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = Arc::new(crate::config::Settings::load_with_env(None, &[]).unwrap());
        let state = State {
            registry: Arc::new(Registry::new()),
            settings: settings.clone(),
            connections: Mutex::new(HashMap::new()),
            store: Store::in_cert_dir(dir.path()),
            server_user: PeerUser {
                uid: Some(1000),
                name: "owner".into(),
            },
            pids: Mutex::new(HashMap::new()),
            hooks: ControlHooks::default(),
            listen: Arc::new(crate::server::ListenAddresses::new(
                settings.listen.clone(),
                &Store::in_cert_dir(dir.path()),
            )),
            reload: None,
        };
        // Registers `path` on the port as user `uid`/`name`: 0 or the error number.
        let register_as = |path: &str, uid: u32, name: &str| {
            let req = RegisterRequest {
                prefixes: vec![format!("http://+:{port}{path}")],
                backend: format!("unix:{}", socket.display()),
                pid: None,
                queue: None,
            };
            let peer = platform::Peer {
                user: PeerUser {
                    uid: Some(uid),
                    name: name.into(),
                },
                pid: Some(77),
            };
            match register(req, &peer, &state) {
                Ok(_) => 0,
                Err(Response::Error(e)) => e.code,
                Err(other) => panic!("{other:?}"),
            }
        };
        // The owner needs no reservation; bob does.
        assert_eq!(register_as("/own/", 1000, "owner"), 0);
        assert_eq!(register_as("/api/", 1001, "bob"), 5);
        // A reservation added while the server runs counts at once.
        state
            .store
            .update(|d| {
                d.urlacl.push(UrlReservation {
                    url: format!("http://+:{port}/api/"),
                    user: "bob".into(),
                    listen: true,
                    delegate: false,
                    sddl: "D:(A;;GX;;;bob)".into(),
                });
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(register_as("/api/v1/", 1001, "bob"), 0);
        assert_eq!(register_as("/other/", 1001, "bob"), 5);
        assert_eq!(register_as("/api/", 1002, "carol"), 5);
        // Conflicts still apply to permitted users.
        assert_eq!(register_as("/API/V1/", 1001, "bob"), 183);
        // The peer's PID is used when the request names none.
        let list = state.registry.list();
        assert!(list
            .iter()
            .all(|r| matches!(r.owner, Owner::Process { pid: Some(77), .. })));
    }
}
