//! Password-protected URL prefixes (`[auth:NAME]`): HTTP Basic
//! authentication, as HTTP.sys offers it per URL group.
//!
//! The protected prefixes sit in their own [`PrefixTable`], so a request
//! finds its realm with exactly the precedence rules that route it. The
//! dispatcher makes one call, [`Auth::check`], after routing and before the
//! handler; what it refuses becomes a page in `crate::errors`.
//!
//! * Over plain HTTP a password would travel readable by anyone on the way,
//!   so a protected prefix answers `403` there unless the section says
//!   `allow_http=yes`. A path protected by an `https://` prefix is refused
//!   over plain HTTP too (same host and path, any HTTP port): a site served
//!   on both schemes must not leave the private folder open on the other.
//! * Password checks (bcrypt and co., slow on purpose) run on their own
//!   low-priority threads (`pool`), and a successful check is remembered for
//!   [`CACHE_TTL`] (`cache`) so a browser, which sends the password with
//!   every request, pays for it once.
//! * Wrong credentials count against the client's address (`throttle`).
//! * The users file is looked at (size, time, inode) at most once a second
//!   and re-read when it changed; a file that became invalid is reported
//!   and the previous users stay.
//!
//! Requests for ACME HTTP-01 tokens are never protected (the dispatcher
//! does not ask): the CA must reach them. This module knows nothing of the
//! routes, so that `errors` can name its refusals without a cycle.

mod cache;
pub mod htpasswd;
mod pool;
mod throttle;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use base64::Engine as _;
use http::header::{self, HeaderMap};
use http::{Request, Uri};

use crate::config::AuthConfig;
use crate::conn::ConnInfo;
use crate::urlprefix::{Lookup, PrefixTable, Scheme};

pub use cache::CACHE_TTL;
pub use htpasswd::{HtpasswdError, Users};
pub use throttle::{BLOCK, MAX_FAILURES, WINDOW};

/// How often the users file is looked at, at most.
const RECHECK: Duration = Duration::from_secs(1);

/// The user a request was authenticated as: in the request's extensions
/// for the handlers (`REMOTE_USER`), and in the access log.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Arc<str>);

/// Why a request under a protected prefix is not let through. Each
/// becomes a page in `crate::errors` and a reason in httperr.log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthDenied {
    #[error("no credentials for realm '{realm}'")]
    Missing { realm: Arc<str> },
    #[error("wrong credentials for realm '{realm}'")]
    Failed { realm: Arc<str> },
    #[error("credentials are refused over plain HTTP")]
    HttpsRequired,
    #[error("too many failed logins from this address")]
    Throttled { retry_after: Duration },
    #[error("too many password checks are waiting")]
    Busy,
}

impl AuthDenied {
    /// The `s-reason` field of httperr.log; `None` for the ordinary
    /// challenge (no credentials yet), which is not an error.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            AuthDenied::Missing { .. } => None,
            AuthDenied::Failed { .. } => Some("Auth_Failed"),
            AuthDenied::HttpsRequired => Some("Auth_NeedsHTTPS"),
            AuthDenied::Throttled { .. } => Some("Auth_Throttled"),
            AuthDenied::Busy => Some("Auth_Busy"),
        }
    }
}

/// Why the protected prefixes cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("[auth:{section}] {source}")]
    Users {
        section: String,
        #[source]
        source: HtpasswdError,
    },
    #[error("[auth:{section}] prefix {prefix} is also protected by [auth:{other}]; a prefix belongs to one section")]
    Duplicate {
        section: String,
        prefix: String,
        other: String,
    },
}

/// What the users file looked like when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    ino: u64,
}

impl FileStamp {
    fn of(path: &std::path::Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            ino: std::os::unix::fs::MetadataExt::ino(&m),
        })
    }
}

/// One `[auth:NAME]` section.
#[derive(Debug)]
pub struct Realm {
    section: String,
    realm: Arc<str>,
    file: PathBuf,
    allow_http: bool,
    forward_auth: bool,
    users: ArcSwap<Users>,
    stamp: Mutex<Option<FileStamp>>,
    /// Milliseconds since `started` of the last look at the file.
    last_check: AtomicU64,
    started: Instant,
    /// Successful checks, forgotten when the file changes.
    cache: cache::CredentialCache,
}

impl Realm {
    fn new(config: &AuthConfig) -> Result<Realm, AuthError> {
        let stamp = FileStamp::of(&config.users);
        let users = Users::load(&config.users).map_err(|source| AuthError::Users {
            section: config.name.clone(),
            source,
        })?;
        if users.is_empty() {
            tracing::warn!(
                section = %format!("[auth:{}]", config.name),
                file = %config.users.display(),
                "the users file has no users: every request under its prefixes is refused"
            );
        }
        Ok(Realm {
            section: config.name.clone(),
            realm: config.realm.as_str().into(),
            file: config.users.clone(),
            allow_http: config.allow_http,
            forward_auth: config.forward_auth,
            users: ArcSwap::from_pointee(users),
            stamp: Mutex::new(stamp),
            last_check: AtomicU64::new(0),
            started: Instant::now(),
            cache: cache::CredentialCache::new(),
        })
    }

    /// Whether this realm was made from `config` (its prefixes aside).
    fn is(&self, config: &AuthConfig) -> bool {
        self.section == config.name
            && *self.realm == *config.realm
            && self.file == config.users
            && self.allow_http == config.allow_http
            && self.forward_auth == config.forward_auth
    }

    /// The `realm` parameter of the challenge.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Re-reads the users file if it changed; at most one look a second.
    fn refresh(&self, now: Instant) {
        let ms = u64::try_from(now.duration_since(self.started).as_millis()).unwrap_or(u64::MAX);
        let last = self.last_check.load(Ordering::Relaxed);
        let due = ms.saturating_sub(last) >= RECHECK.as_millis() as u64 || last == 0;
        // One request a second does the look; the others go on at once.
        if !due
            || self
                .last_check
                .compare_exchange(last, ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let stamp = FileStamp::of(&self.file);
        let mut known = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
        if stamp == *known {
            return;
        }
        *known = stamp;
        match Users::load(&self.file) {
            Ok(users) => {
                tracing::info!(
                    section = %format!("[auth:{}]", self.section),
                    users = users.len(),
                    "users file changed; re-read"
                );
                self.users.store(Arc::new(users));
                self.cache.clear();
            }
            Err(e) => tracing::error!(
                section = %format!("[auth:{}]", self.section),
                error = %e,
                "the users file changed but cannot be used; the previous users stay"
            ),
        }
    }
}

/// The protected prefixes of one configuration: replaced whole by a
/// reload ([`Auth::install`]).
#[derive(Debug, Default)]
pub struct Protected {
    table: PrefixTable<Arc<Realm>>,
    /// The HTTPS ports of protected prefixes, to refuse their paths over
    /// plain HTTP.
    https_ports: Vec<u16>,
}

impl Protected {
    /// Reads every `[auth:NAME]` section's users file; a bad one is an
    /// error with its file, line and user. A section that `keep` has with
    /// the same settings keeps its realm (users, credential cache).
    fn build(configs: &[AuthConfig], keep: Option<&Protected>) -> Result<Protected, AuthError> {
        let mut protected = Protected::default();
        for config in configs {
            let kept = keep.and_then(|k| {
                k.table
                    .iter()
                    .map(|(_, r)| r)
                    .find(|r| r.is(config))
                    .cloned()
            });
            let realm = match kept {
                Some(realm) => realm,
                None => Arc::new(Realm::new(config)?),
            };
            for prefix in &config.prefixes {
                if let Err(conflict) = protected.table.insert(prefix.clone(), realm.clone()) {
                    let other = protected
                        .table
                        .get(&conflict.existing)
                        .map_or_else(String::new, |r| r.section.clone());
                    return Err(AuthError::Duplicate {
                        section: config.name.clone(),
                        prefix: prefix.to_string(),
                        other,
                    });
                }
            }
        }
        protected.https_ports = protected
            .table
            .ports()
            .filter(|(s, _)| *s == Scheme::Https)
            .map(|(_, p)| p)
            .collect();
        protected.https_ports.sort_unstable();
        protected.https_ports.dedup();
        Ok(protected)
    }
}

/// Every protected prefix, and the state the checks share.
#[derive(Debug, Default)]
pub struct Auth {
    /// Swapped whole by a configuration reload; the throttle and the
    /// checking threads stay.
    protected: ArcSwap<Protected>,
    throttle: throttle::Throttle,
    pool: pool::CheckPool,
}

/// Where a request stands with respect to the protected prefixes.
enum Protection {
    Open,
    Realm(Arc<Realm>),
    /// An `https://` prefix protects this path; the request is plain HTTP.
    HttpsOnly,
}

impl Auth {
    /// Reads every `[auth:NAME]` section's users file; a bad one stops
    /// start-up with its file, line and user.
    pub fn new(configs: &[AuthConfig]) -> Result<Auth, AuthError> {
        Ok(Auth {
            protected: ArcSwap::from_pointee(Protected::build(configs, None)?),
            ..Auth::default()
        })
    }

    /// The protected prefixes of a reloaded configuration, checked (users
    /// files read) but not yet in force: a reload refused for another
    /// reason leaves the running ones. Sections whose settings did not
    /// change keep their users and credential cache.
    pub fn prepare(&self, configs: &[AuthConfig]) -> Result<Protected, AuthError> {
        Protected::build(configs, Some(&self.protected.load()))
    }

    /// Puts prepared prefixes in force for the next request.
    pub fn install(&self, protected: Protected) {
        self.protected.store(Arc::new(protected));
    }

    /// Whether any prefix is protected.
    pub fn is_empty(&self) -> bool {
        self.protected.load().table.is_empty()
    }

    fn protection(&self, conn: &ConnInfo, path: &str, host: Option<&str>) -> Protection {
        let protected = self.protected.load();
        if protected.table.is_empty() {
            return Protection::Open;
        }
        let Ok(key) = crate::urlprefix::normalize_path(path) else {
            // The router has accepted the path, so this does not happen;
            // refuse rather than let an unreadable path through.
            return Protection::HttpsOnly;
        };
        let local = conn.local.ip();
        let scheme = if conn.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        if let Lookup::Matched { value, .. } =
            protected
                .table
                .lookup(scheme, conn.local.port(), host, local, &key)
        {
            return Protection::Realm(value.clone());
        }
        if !conn.https
            && protected.https_ports.iter().any(|port| {
                matches!(
                    protected
                        .table
                        .lookup(Scheme::Https, *port, host, local, &key),
                    Lookup::Matched { .. }
                )
            })
        {
            return Protection::HttpsOnly;
        }
        Protection::Open
    }

    /// Whether a request (its path and host, as the router read them)
    /// needs [`Auth::check`]: the direct proxy path then leaves it to the
    /// dispatcher.
    pub fn covers_path(&self, conn: &ConnInfo, path: &str, host: Option<&str>) -> bool {
        !matches!(self.protection(conn, path, host), Protection::Open)
    }

    /// Lets a request through (`Ok`, with the user when the prefix is
    /// protected) or says why not. On success the user is put in the
    /// request's extensions ([`AuthUser`]) and, unless the section says
    /// `forward_auth=yes`, the `Authorization` header is removed: the
    /// password is the server's business, not the application's.
    pub async fn check<B>(
        &self,
        conn: &ConnInfo,
        req: &mut Request<B>,
    ) -> Result<Option<AuthUser>, AuthDenied> {
        let realm = match self.protection(
            conn,
            req.uri().path(),
            request_host(req.uri(), req.headers()),
        ) {
            Protection::Open => return Ok(None),
            Protection::HttpsOnly => return Err(AuthDenied::HttpsRequired),
            Protection::Realm(realm) if !conn.https && !realm.allow_http => {
                return Err(AuthDenied::HttpsRequired)
            }
            Protection::Realm(realm) => realm,
        };
        let now = Instant::now();
        let ip: IpAddr = conn.peer.ip();
        if let Some(retry_after) = self.throttle.blocked(ip, now) {
            return Err(AuthDenied::Throttled { retry_after });
        }
        realm.refresh(now);
        let failed = || AuthDenied::Failed {
            realm: realm.realm.clone(),
        };
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return Err(AuthDenied::Missing {
                realm: realm.realm.clone(),
            });
        };
        let (user, password) = match basic_credentials(value.as_bytes()) {
            Credentials::NotBasic => {
                return Err(AuthDenied::Missing {
                    realm: realm.realm.clone(),
                })
            }
            Credentials::Invalid => {
                self.failure(ip, now, &realm);
                return Err(failed());
            }
            Credentials::Basic { user, password } => (user, password),
        };
        let key = realm.cache.key(&user, &password);
        let ok = if realm.cache.hit(&key, now) {
            true
        } else {
            let users = realm.users.load_full();
            let user_name = user.clone();
            let verdict = self
                .pool
                .run(move || {
                    let (hash, known) = users.hash_for(&user_name);
                    // An unknown user is checked against another user's hash
                    // all the same: the answer takes as long either way.
                    let matched = hash.is_some_and(|h| h.verify(password.as_bytes()));
                    matched && known
                })
                .await
                .map_err(|_| AuthDenied::Busy)?;
            if verdict {
                realm.cache.insert(key, Instant::now());
            }
            verdict
        };
        if !ok {
            self.failure(ip, now, &realm);
            return Err(failed());
        }
        if !realm.forward_auth {
            req.headers_mut().remove(header::AUTHORIZATION);
        }
        let user = AuthUser(user.into());
        req.extensions_mut().insert(user.clone());
        Ok(Some(user))
    }

    fn failure(&self, ip: IpAddr, now: Instant, realm: &Realm) {
        if self.throttle.fail(ip, now) {
            tracing::warn!(
                client = %ip,
                section = %format!("[auth:{}]", realm.section),
                failures = MAX_FAILURES,
                block_seconds = BLOCK.as_secs(),
                "too many failed logins; the address is refused for a while"
            );
        }
    }
}

/// The request host as the router reads it: the absolute URI's or
/// `:authority` (HTTP/2), else the `Host` header.
fn request_host<'r>(uri: &'r Uri, headers: &'r HeaderMap) -> Option<&'r str> {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
}

enum Credentials {
    /// No Basic credentials (another scheme): answered with the challenge.
    NotBasic,
    /// `Basic` with something unreadable: a failed attempt.
    Invalid,
    Basic {
        user: String,
        password: String,
    },
}

/// Parses `Basic base64(user:password)` (RFC 7617, UTF-8).
fn basic_credentials(value: &[u8]) -> Credentials {
    let Some(space) = value.iter().position(|b| *b == b' ') else {
        return Credentials::NotBasic;
    };
    if !value[..space].eq_ignore_ascii_case(b"basic") {
        return Credentials::NotBasic;
    }
    let encoded = value[space + 1..].trim_ascii();
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return Credentials::Invalid;
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return Credentials::Invalid;
    };
    match text.split_once(':') {
        Some((user, password)) if !user.is_empty() => Credentials::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        },
        _ => Credentials::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_parse() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        match basic_credentials(format!("Basic {}", enc("ann:p:w é")).as_bytes()) {
            Credentials::Basic { user, password } => {
                assert_eq!(user, "ann");
                assert_eq!(password, "p:w é");
            }
            _ => panic!("not parsed"),
        }
        assert!(matches!(
            basic_credentials(format!("basic  {} ", enc("a:b")).as_bytes()),
            Credentials::Basic { .. }
        ));
        assert!(matches!(
            basic_credentials(b"Bearer abc"),
            Credentials::NotBasic
        ));
        assert!(matches!(basic_credentials(b"Basic"), Credentials::NotBasic));
        assert!(matches!(
            basic_credentials(b"Basic !!!"),
            Credentials::Invalid
        ));
        assert!(matches!(
            basic_credentials(format!("Basic {}", enc("nocolon")).as_bytes()),
            Credentials::Invalid
        ));
        assert!(matches!(
            basic_credentials(format!("Basic {}", enc(":pw")).as_bytes()),
            Credentials::Invalid
        ));
    }
}
