//! The on-disk HTTP.sys "registry": SSL bindings, URL reservations (urlacl) and
//! the two configurable service timeouts, kept in ONE human-readable JSON file,
//! `<cert_dir>/sslcert.json`:
//!
//! ```json
//! {
//!   "version": 1,
//!   "sslcert": [
//!     { "ipport": "0.0.0.0:443", "certhash": "46aab740…", "appid": "{a227f2f9-…}",
//!       "certstorename": "MY", "flags": { "verifyclientcertrevocation": true, … } }
//!   ],
//!   "urlacl": [
//!     { "url": "http://+:80/api/", "user": "\\Everyone", "listen": true,
//!       "delegate": false, "sddl": "D:(A;;GX;;;WD)" }
//!   ],
//!   "timeouts": { "idle_connection": 60 }
//! }
//! ```
//!
//! A binding's key is one of `"ipport": "IP:PORT"`, `"hostnameport": "HOST:PORT"`
//! or `"ccs": PORT`.
//!
//! Readers ([`Store::load`]) take no lock: writers replace the file atomically
//! (temp file in the same folder, fsync, rename), so a reader sees either the old
//! or the new file, never a torn one. Writers ([`Store::update`]) serialise on an
//! exclusive advisory lock on the sibling file `sslcert.json.lock`, re-read the
//! file under the lock, apply their change and write only if it succeeded and
//! changed something. The lock file is never deleted (deleting it would let two
//! writers lock two different inodes).
//!
//! Since `iplisten` and `cacheparam` the file may also hold
//! `"iplisten": ["127.0.0.1", "::1"]` and
//! `"cacheparam": {"max_response_size": 262144}`; both are left out while
//! empty, so stores without them read and write as before.
//!
//! In short: this store holds what `netsh http` configures (SSL bindings, URL
//! reservations, the two timeouts, the IP listen list, the cache parameters)
//! plus the last daily-maintenance run; it is not [`crate::certs::CertStore`],
//! the folder of certificate files (PEM, PFX) known by thumbprint, which a
//! binding names by its `certhash`.
//!
//! A folder because the file has four concerns, each its own file: `schema`
//! (the serialized types), `lookup` (finding a binding or reservation),
//! `validate` (what a hand edit could break) and `lock` (the locked,
//! atomic update). Everything public is re-exported here, so
//! `crate::store::X` is the path.

mod lock;
mod lookup;
mod schema;
mod validate;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use schema::{
    BindingFlags, BindingKey, CacheParams, MaintenanceRecord, SslBinding, StoreData, Timeouts,
    UrlReservation, AUTOMATIC_APPIDS, DEFAULT_TIMEOUT_SECS, FIRSTRUN_APPID, STORE_VERSION,
};
pub use validate::is_braced_guid;

/// File name of the store inside the certificate folder.
pub const STORE_FILE_NAME: &str = "sslcert.json";

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A failure to read or write the store. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {action} failed: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    /// The JSON is malformed; serde_json's message carries line and column.
    #[error("{}: not a valid portshare store: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

/// The reason inside [`StoreError::Io`] when this process may not read the
/// store: the file's owner and mode, and the fix.
#[derive(Debug, thiserror::Error)]
#[error(
    "{source}: this process's user may not read the file{owner}; give the server's user \
     read access, e.g. `chown <server user> {path}` or `chmod 0644 {path}` \
     (portshare's own writes keep the file's owner and mode)"
)]
struct NoReadAccess {
    path: String,
    /// ` (owner uid U, gid G, mode 0NNN)` when the folder lets us see it.
    owner: String,
    #[source]
    source: io::Error,
}

impl NoReadAccess {
    fn of(path: &Path, source: io::Error) -> NoReadAccess {
        let owner = match fs::metadata(path) {
            #[cfg(unix)]
            Ok(meta) => {
                use std::os::unix::fs::MetadataExt;
                format!(
                    " (owner uid {}, gid {}, mode {:04o})",
                    meta.uid(),
                    meta.gid(),
                    meta.mode() & 0o7777
                )
            }
            _ => String::new(),
        };
        NoReadAccess {
            path: path.display().to_string(),
            owner,
            source,
        }
    }
}

/// Failure of [`Store::update`]: either the store itself, or the closure
/// refused the change (the file is then untouched).
#[derive(Debug, thiserror::Error)]
pub enum UpdateError<E> {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("change rejected")]
    Rejected(E),
}

// ---------------------------------------------------------------------------
// The store file
// ---------------------------------------------------------------------------

/// Handle to the store file. Cheap; holds only the path.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// A store at an explicit file path.
    pub fn new(path: impl Into<PathBuf>) -> Store {
        Store { path: path.into() }
    }

    /// The store of a certificate folder: `<cert_dir>/sslcert.json`.
    pub fn in_cert_dir(cert_dir: &Path) -> Store {
        Store::new(cert_dir.join(STORE_FILE_NAME))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and validates the store. A missing file is an empty store.
    pub fn load(&self) -> Result<StoreData, StoreError> {
        let text = match fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(StoreData::default()),
            // Usually a store written with a mode or owner that shuts the
            // server's user out: say how to let it back in.
            Err(source) if source.kind() == io::ErrorKind::PermissionDenied => {
                return Err(StoreError::Io {
                    path: self.path.clone(),
                    action: "reading",
                    source: io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        NoReadAccess::of(&self.path, source),
                    ),
                })
            }
            Err(source) => {
                return Err(StoreError::Io {
                    path: self.path.clone(),
                    action: "reading",
                    source,
                })
            }
        };
        self.parse(&text)
    }

    /// The IP listen list (`netsh http add iplisten`): the only addresses the
    /// server may listen on; empty means no restriction (every address the
    /// configuration's `listen=` gives), as on HTTP.sys.
    pub fn iplisten(&self) -> Result<Vec<std::net::IpAddr>, StoreError> {
        Ok(self.load()?.iplisten)
    }

    /// The cache limits set with `netsh http add cacheparam`.
    pub fn cacheparam(&self) -> Result<CacheParams, StoreError> {
        Ok(self.load()?.cacheparam)
    }

    fn parse(&self, text: &[u8]) -> Result<StoreData, StoreError> {
        let data: StoreData = serde_json::from_slice(text).map_err(|source| StoreError::Parse {
            path: self.path.clone(),
            source,
        })?;
        data.validate().map_err(|reason| StoreError::Invalid {
            path: self.path.clone(),
            reason,
        })?;
        Ok(data)
    }
}

#[cfg(test)]
mod tests;
