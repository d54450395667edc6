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

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the store inside the certificate folder.
pub const STORE_FILE_NAME: &str = "sslcert.json";
/// The format version this build reads and writes.
pub const STORE_VERSION: u32 = 1;
/// HTTP.sys default for every timer, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u32 = 120;

// ---------------------------------------------------------------------------
// Data types
// ---------------------------------------------------------------------------

/// Everything the store holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreData {
    pub version: u32,
    #[serde(default)]
    pub sslcert: Vec<SslBinding>,
    #[serde(default)]
    pub urlacl: Vec<UrlReservation>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// The last daily-maintenance run, kept for `portshare maintenance status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceRecord>,
}

/// Outcome of one maintenance run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceRecord {
    /// RFC 3339, local time with offset.
    pub started: String,
    pub url: String,
    /// HTTP status, or `None` when no answer came.
    pub status: Option<u16>,
    pub duration_ms: u64,
    /// First line of the output, or the error.
    pub summary: String,
}

impl Default for StoreData {
    fn default() -> Self {
        StoreData {
            version: STORE_VERSION,
            sslcert: Vec::new(),
            urlacl: Vec::new(),
            timeouts: Timeouts::default(),
            maintenance: None,
        }
    }
}

/// One `netsh http add sslcert` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SslBinding {
    #[serde(flatten)]
    pub key: BindingKey,
    /// SHA-1 thumbprint, 40 lowercase hex digits; empty for a `ccs` binding
    /// given without one (the certificate is then chosen by SNI name).
    #[serde(default)]
    pub certhash: String,
    /// `{guid}`, lowercase, with braces.
    pub appid: String,
    /// Certificate store name; `MY` unless given. Empty for a `ccs` binding
    /// given without one (netsh shows `(null)`).
    #[serde(default)]
    pub certstorename: String,
    #[serde(default)]
    pub flags: BindingFlags,
}

/// What a binding is keyed on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "BindingKeyRepr", into = "BindingKeyRepr")]
pub enum BindingKey {
    /// `ipport=0.0.0.0:443`, `[::]:443`, `10.0.0.1:443`.
    IpPort(SocketAddr),
    /// `hostnameport=site.test:443` (SNI); the name is stored lowercase.
    HostnamePort(String, u16),
    /// `ccs=443` (central certificate store).
    Ccs(u16),
}

impl BindingKey {
    pub fn port(&self) -> u16 {
        match self {
            BindingKey::IpPort(a) => a.port(),
            BindingKey::HostnamePort(_, p) | BindingKey::Ccs(p) => *p,
        }
    }

    /// The label `netsh http show sslcert` prints for this kind of key.
    pub fn label(&self) -> &'static str {
        match self {
            BindingKey::IpPort(_) => "IP:port",
            BindingKey::HostnamePort(..) => "Hostname:port",
            BindingKey::Ccs(_) => "Central Certificate Store",
        }
    }

    /// The netsh parameter name for this kind of key.
    pub fn param_name(&self) -> &'static str {
        match self {
            BindingKey::IpPort(_) => "ipport",
            BindingKey::HostnamePort(..) => "hostnameport",
            BindingKey::Ccs(_) => "ccs",
        }
    }
}

/// Prints as netsh does: `0.0.0.0:443`, `[::]:443`, `site.test:443`, `443`.
impl fmt::Display for BindingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindingKey::IpPort(a) => write!(f, "{a}"),
            BindingKey::HostnamePort(h, p) => write!(f, "{h}:{p}"),
            BindingKey::Ccs(p) => write!(f, "{p}"),
        }
    }
}

/// On-disk shape of a [`BindingKey`] (flattened into the binding object).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum BindingKeyRepr {
    Ipport(SocketAddr),
    Hostnameport(String),
    Ccs(u16),
}

impl From<BindingKey> for BindingKeyRepr {
    fn from(k: BindingKey) -> Self {
        match k {
            BindingKey::IpPort(a) => BindingKeyRepr::Ipport(a),
            BindingKey::HostnamePort(h, p) => BindingKeyRepr::Hostnameport(format!("{h}:{p}")),
            BindingKey::Ccs(p) => BindingKeyRepr::Ccs(p),
        }
    }
}

impl TryFrom<BindingKeyRepr> for BindingKey {
    type Error = String;
    fn try_from(r: BindingKeyRepr) -> Result<Self, String> {
        match r {
            BindingKeyRepr::Ipport(a) => Ok(BindingKey::IpPort(a)),
            BindingKeyRepr::Hostnameport(s) => {
                let (h, p) = s
                    .rsplit_once(':')
                    .ok_or_else(|| format!("hostnameport {s:?} has no :port"))?;
                let port: u16 = p
                    .parse()
                    .map_err(|_| format!("hostnameport {s:?} has an invalid port"))?;
                Ok(BindingKey::HostnamePort(h.to_ascii_lowercase(), port))
            }
            BindingKeyRepr::Ccs(p) => Ok(BindingKey::Ccs(p)),
        }
    }
}

/// The per-binding settings `netsh http show sslcert` prints. Field names are the
/// netsh parameter names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BindingFlags {
    /// "Verify Client Certificate Revocation" — Enabled by default.
    pub verifyclientcertrevocation: bool,
    /// "Verify Revocation Using Cached Client Certificate Only".
    pub verifyrevocationwithcachedclientcertonly: bool,
    /// "Usage Check" — Enabled by default.
    pub usagecheck: bool,
    /// "Revocation Freshness Time" (seconds).
    pub revocationfreshnesstime: u32,
    /// "URL Retrieval Timeout" (milliseconds).
    pub urlretrievaltimeout: u32,
    /// "Ctl Identifier".
    pub sslctlidentifier: Option<String>,
    /// "Ctl Store Name".
    pub sslctlstorename: Option<String>,
    /// "DS Mapper Usage".
    pub dsmapperusage: bool,
    /// "Negotiate Client Certificate".
    pub clientcertnegotiation: bool,
    /// "Reject Connections".
    pub reject: bool,
    /// "Disable HTTP2" (Set / Not Set).
    pub disablehttp2: bool,
    /// "Disable QUIC" (Set / Not Set).
    pub disablequic: bool,
    /// "Disable Legacy TLS Versions" (Set / Not Set).
    pub disablelegacytls: bool,
    /// "Disable TLS1.2" (Set / Not Set).
    pub disabletls12: bool,
    /// "Disable TLS1.3" (Set / Not Set).
    pub disabletls13: bool,
}

impl Default for BindingFlags {
    fn default() -> Self {
        BindingFlags {
            verifyclientcertrevocation: true,
            verifyrevocationwithcachedclientcertonly: false,
            usagecheck: true,
            revocationfreshnesstime: 0,
            urlretrievaltimeout: 0,
            sslctlidentifier: None,
            sslctlstorename: None,
            dsmapperusage: false,
            clientcertnegotiation: false,
            reject: false,
            disablehttp2: false,
            disablequic: false,
            disablelegacytls: false,
            disabletls12: false,
            disabletls13: false,
        }
    }
}

/// One `netsh http add urlacl` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlReservation {
    /// The URL prefix as given.
    pub url: String,
    /// Account name as netsh prints it (`\Everyone`, `DOMAIN\name`); empty when
    /// the reservation was made with `sddl=` only.
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub listen: bool,
    #[serde(default)]
    pub delegate: bool,
    /// The security descriptor. When only `user=` was given this is generated
    /// and names the account, not a real SID (see `netsh::urlacl`).
    #[serde(default)]
    pub sddl: String,
}

/// The two timers `netsh http add timeout` configures (seconds; `None` = the
/// HTTP.sys default of 120).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_connection: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_wait: Option<u32>,
}

impl Timeouts {
    pub fn idle_connection_secs(&self) -> u32 {
        self.idle_connection.unwrap_or(DEFAULT_TIMEOUT_SECS)
    }
    pub fn header_wait_secs(&self) -> u32 {
        self.header_wait.unwrap_or(DEFAULT_TIMEOUT_SECS)
    }
}

impl StoreData {
    pub fn binding(&self, key: &BindingKey) -> Option<&SslBinding> {
        self.sslcert.iter().find(|b| &b.key == key)
    }

    /// The reservation for `url`, compared ASCII-case-insensitively.
    pub fn reservation(&self, url: &str) -> Option<&UrlReservation> {
        self.urlacl.iter().find(|r| r.url.eq_ignore_ascii_case(url))
    }

    /// The binding HTTP.sys would use for a handshake on local address `local`
    /// with SNI name `sni`: exact `IP:port` → `hostname:port` → `ccs=port` →
    /// `0.0.0.0:port` (IPv4) / `[::]:port` (IPv6). IPv4-mapped IPv6 local
    /// addresses count as IPv4.
    pub fn lookup_binding(&self, local: SocketAddr, sni: Option<&str>) -> Option<&SslBinding> {
        let ip = match local.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(local.ip()),
            v4 => v4,
        };
        let port = local.port();
        let exact = BindingKey::IpPort(SocketAddr::new(ip, port));
        if let Some(b) = self.binding(&exact) {
            return Some(b);
        }
        if let Some(name) = sni {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(b) = self.binding(&BindingKey::HostnamePort(name, port)) {
                return Some(b);
            }
            if let Some(b) = self.binding(&BindingKey::Ccs(port)) {
                return Some(b);
            }
        }
        let any: IpAddr = if ip.is_ipv4() {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        };
        self.binding(&BindingKey::IpPort(SocketAddr::new(any, port)))
    }

    /// Checks what a hand edit could break. Returns the first problem found.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != STORE_VERSION {
            return Err(format!(
                "unsupported version {} (this portshare reads version {STORE_VERSION})",
                self.version
            ));
        }
        for (i, b) in self.sslcert.iter().enumerate() {
            let what = format!("sslcert entry {} ({}={})", i + 1, b.key.param_name(), b.key);
            let hash_ok = b.certhash.len() == 40
                && b.certhash
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
            let ccs_without_hash = matches!(b.key, BindingKey::Ccs(_)) && b.certhash.is_empty();
            if !hash_ok && !ccs_without_hash {
                return Err(format!(
                    "{what}: certhash {:?} is not 40 lowercase hex digits",
                    b.certhash
                ));
            }
            if !is_braced_guid(&b.appid) {
                return Err(format!(
                    "{what}: appid {:?} is not a GUID in braces",
                    b.appid
                ));
            }
            if b.key.port() == 0 {
                return Err(format!("{what}: port 0 is not allowed"));
            }
            if let BindingKey::HostnamePort(h, _) = &b.key {
                if h.is_empty() {
                    return Err(format!("{what}: empty host name"));
                }
            }
            if self.sslcert[..i].iter().any(|o| o.key == b.key) {
                return Err(format!("{what}: duplicate binding"));
            }
        }
        for (i, r) in self.urlacl.iter().enumerate() {
            if r.url.is_empty() {
                return Err(format!("urlacl entry {}: empty url", i + 1));
            }
            if r.user.is_empty() && r.sddl.is_empty() {
                return Err(format!(
                    "urlacl entry {} ({}): neither user nor sddl",
                    i + 1,
                    r.url
                ));
            }
            if self.urlacl[..i]
                .iter()
                .any(|o| o.url.eq_ignore_ascii_case(&r.url))
            {
                return Err(format!("urlacl entry {} ({}): duplicate url", i + 1, r.url));
            }
        }
        for (name, v) in [
            ("idle_connection", self.timeouts.idle_connection),
            ("header_wait", self.timeouts.header_wait),
        ] {
            if let Some(v) = v {
                if v == 0 || v > 65535 {
                    return Err(format!("timeouts.{name}: {v} is outside 1..=65535 seconds"));
                }
            }
        }
        Ok(())
    }
}

/// `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`, hex digits of either case.
pub fn is_braced_guid(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
        return false;
    };
    let groups: Vec<&str> = inner.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    groups.len() == lens.len()
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.bytes().all(|c| c.is_ascii_hexdigit()))
}

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

    /// `sslcert.json.lock` next to the store.
    pub fn lock_path(&self) -> PathBuf {
        let mut name = self
            .path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| STORE_FILE_NAME.into());
        name.push(".lock");
        self.path.with_file_name(name)
    }

    /// Reads and validates the store. A missing file is an empty store.
    pub fn load(&self) -> Result<StoreData, StoreError> {
        let text = match fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(StoreData::default()),
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

    /// Read-modify-write under the store lock. `change` sees the current data;
    /// if it returns `Ok` and the data changed (and still validates), the new
    /// data is written atomically. If it returns `Err`, nothing is written.
    pub fn update<T, E, F>(&self, change: F) -> Result<T, UpdateError<E>>
    where
        F: FnOnce(&mut StoreData) -> Result<T, E>,
    {
        let dir = self.dir();
        fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            action: "creating the folder",
            source,
        })?;
        let lock_path = self.lock_path();
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StoreError::Io {
                path: lock_path.clone(),
                action: "opening the lock file",
                source,
            })?;
        // Released when `lock` is dropped at the end of this function.
        // File::lock is stable since Rust 1.89; Cargo.toml still says
        // rust-version = "1.85" — drop this allow when that is raised.
        lock.lock().map_err(|source| StoreError::Io {
            path: lock_path.clone(),
            action: "locking",
            source,
        })?;

        let before = self.load()?;
        let mut data = before.clone();
        let value = change(&mut data).map_err(UpdateError::Rejected)?;
        if data != before {
            data.validate().map_err(|reason| StoreError::Invalid {
                path: self.path.clone(),
                reason: format!("refusing to write: {reason}"),
            })?;
            self.write_atomically(&data)?;
        }
        drop(lock);
        Ok(value)
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn write_atomically(&self, data: &StoreData) -> Result<(), StoreError> {
        let io_err = |action: &'static str| {
            let path = self.path.clone();
            move |source| StoreError::Io {
                path,
                action,
                source,
            }
        };
        let mut text = serde_json::to_vec_pretty(data)
            .map_err(|e| io_err("serialising")(io::Error::other(e)))?;
        text.push(b'\n');
        crate::atomic_file::write_atomic(&self.path, &text, false).map_err(io_err("replacing"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn sample_binding(port: u16) -> SslBinding {
        SslBinding {
            key: BindingKey::IpPort(SocketAddr::from(([0, 0, 0, 0], port))),
            certhash: "46aab740254a12c9146142067f5cf69e583154ad".into(),
            appid: "{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}".into(),
            certstorename: "MY".into(),
            flags: BindingFlags::default(),
        }
    }

    #[test]
    fn missing_file_is_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_cert_dir(dir.path());
        assert_eq!(store.load().unwrap(), StoreData::default());
    }

    #[test]
    fn key_display_matches_netsh() {
        let v4 = BindingKey::IpPort("0.0.0.0:443".parse().unwrap());
        let v6 = BindingKey::IpPort("[::]:443".parse().unwrap());
        let ip = BindingKey::IpPort("10.0.0.1:443".parse().unwrap());
        let host = BindingKey::HostnamePort("site.test".into(), 443);
        let ccs = BindingKey::Ccs(443);
        assert_eq!(v4.to_string(), "0.0.0.0:443");
        assert_eq!(v6.to_string(), "[::]:443");
        assert_eq!(ip.to_string(), "10.0.0.1:443");
        assert_eq!(host.to_string(), "site.test:443");
        assert_eq!(ccs.to_string(), "443");
    }

    #[test]
    fn round_trip_all_sections_and_json_shape() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_cert_dir(dir.path());
        let mut host = sample_binding(443);
        host.key = BindingKey::HostnamePort("site.test".into(), 8443);
        let mut ccs = sample_binding(443);
        ccs.key = BindingKey::Ccs(444);
        ccs.certhash.clear();
        ccs.certstorename.clear();
        store
            .update(|d| {
                d.sslcert.push(sample_binding(443));
                d.sslcert.push(host.clone());
                d.sslcert.push(ccs.clone());
                d.urlacl.push(UrlReservation {
                    url: "http://+:80/api/".into(),
                    user: "\\Everyone".into(),
                    listen: true,
                    delegate: false,
                    sddl: "D:(A;;GX;;;WD)".into(),
                });
                d.timeouts.idle_connection = Some(60);
                Ok::<_, ()>(())
            })
            .unwrap();
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(text.contains("\"ipport\": \"0.0.0.0:443\""), "{text}");
        assert!(
            text.contains("\"hostnameport\": \"site.test:8443\""),
            "{text}"
        );
        assert!(text.contains("\"ccs\": 444"), "{text}");
        assert!(text.contains("\"idle_connection\": 60"), "{text}");
        assert!(!text.contains("header_wait"), "{text}");
        let data = store.load().unwrap();
        assert_eq!(data.sslcert, vec![sample_binding(443), host, ccs]);
        assert_eq!(data.urlacl.len(), 1);
        assert_eq!(data.timeouts.idle_connection_secs(), 60);
        assert_eq!(data.timeouts.header_wait_secs(), 120);
        // No temp files left behind; the lock file stays.
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, vec!["sslcert.json", "sslcert.json.lock"]);
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::in_cert_dir(dir.path()));
        let threads: Vec<_> = (0..8u16)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..10u16 {
                        store
                            .update(|d| {
                                d.sslcert.push(sample_binding(1000 + t * 100 + i));
                                Ok::<_, ()>(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let data = store.load().unwrap();
        assert_eq!(data.sslcert.len(), 80);
    }

    #[test]
    fn failing_closure_leaves_file_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_cert_dir(dir.path());
        store
            .update(|d| {
                d.sslcert.push(sample_binding(443));
                Ok::<_, ()>(())
            })
            .unwrap();
        let before = fs::read(store.path()).unwrap();
        let r = store.update(|d| {
            d.sslcert.clear();
            d.timeouts.header_wait = Some(5);
            Err::<(), _>("nope")
        });
        assert!(matches!(r, Err(UpdateError::Rejected("nope"))));
        assert_eq!(fs::read(store.path()).unwrap(), before);
    }

    #[test]
    fn invalid_result_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_cert_dir(dir.path());
        let r = store.update(|d| {
            d.sslcert.push(sample_binding(443));
            d.sslcert.push(sample_binding(443));
            Ok::<_, ()>(())
        });
        assert!(matches!(
            r,
            Err(UpdateError::Store(StoreError::Invalid { .. }))
        ));
        assert!(!store.path().exists());
    }

    #[test]
    fn malformed_file_error_names_file_and_location() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_cert_dir(dir.path());
        fs::write(
            store.path(),
            "{\n  \"version\": 1,\n  \"sslcert\": [ oops ]\n}\n",
        )
        .unwrap();
        let err = store.load().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&store.path().display().to_string()), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        // update refuses too, and leaves the file alone.
        let before = fs::read(store.path()).unwrap();
        let r = store.update(|_| Ok::<_, ()>(()));
        assert!(matches!(
            r,
            Err(UpdateError::Store(StoreError::Parse { .. }))
        ));
        assert_eq!(fs::read(store.path()).unwrap(), before);
    }

    #[test]
    fn invalid_content_error_names_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_cert_dir(dir.path());
        fs::write(
            store.path(),
            r#"{"version":1,"sslcert":[{"ipport":"0.0.0.0:443","certhash":"XYZ","appid":"{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}"}]}"#,
        )
        .unwrap();
        let msg = store.load().unwrap_err().to_string();
        assert!(msg.contains("sslcert.json"), "{msg}");
        assert!(msg.contains("certhash"), "{msg}");

        fs::write(store.path(), r#"{"version":2}"#).unwrap();
        let msg = store.load().unwrap_err().to_string();
        assert!(msg.contains("unsupported version 2"), "{msg}");
    }

    #[test]
    fn unchanged_update_does_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_cert_dir(dir.path());
        store.update(|_| Ok::<_, ()>(())).unwrap();
        assert!(!store.path().exists());
    }

    #[test]
    fn lookup_order_follows_httpsys() {
        let mut d = StoreData::default();
        let mut any4 = sample_binding(443);
        any4.certhash = "1".repeat(40);
        let mut exact = sample_binding(443);
        exact.key = BindingKey::IpPort("10.0.0.1:443".parse().unwrap());
        exact.certhash = "2".repeat(40);
        let mut sni = sample_binding(443);
        sni.key = BindingKey::HostnamePort("site.test".into(), 443);
        sni.certhash = "3".repeat(40);
        let mut ccs = sample_binding(443);
        ccs.key = BindingKey::Ccs(443);
        ccs.certhash = "4".repeat(40);
        let mut any6 = sample_binding(443);
        any6.key = BindingKey::IpPort("[::]:443".parse().unwrap());
        any6.certhash = "5".repeat(40);
        d.sslcert = vec![any4, exact, sni, ccs, any6];
        let hash = |local: &str, sni: Option<&str>| {
            d.lookup_binding(local.parse().unwrap(), sni)
                .map(|b| b.certhash.chars().next().unwrap())
        };
        assert_eq!(hash("10.0.0.1:443", Some("site.test")), Some('2'));
        assert_eq!(hash("10.0.0.2:443", Some("Site.Test.")), Some('3'));
        assert_eq!(hash("10.0.0.2:443", Some("other.test")), Some('4'));
        assert_eq!(hash("10.0.0.2:443", None), Some('1'));
        assert_eq!(hash("[::ffff:10.0.0.1]:443", None), Some('2'));
        assert_eq!(hash("[::1]:443", None), Some('5'));
        assert_eq!(hash("10.0.0.2:444", None), None);
    }

    #[test]
    fn guid_check() {
        assert!(is_braced_guid("{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}"));
        assert!(is_braced_guid("{A227F2F9-D103-4E0F-92A4-7086C8AB35AC}"));
        assert!(!is_braced_guid("a227f2f9-d103-4e0f-92a4-7086c8ab35ac"));
        assert!(!is_braced_guid("{a227f2f9-d103-4e0f-92a4-7086c8ab35a}"));
        assert!(!is_braced_guid("{g227f2f9-d103-4e0f-92a4-7086c8ab35ac}"));
    }
}
