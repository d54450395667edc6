//! The serialized types: what `sslcert.json` holds, field for field, and the
//! serde mapping of a binding's key (`ipport` / `hostnameport` / `ccs`). Kept
//! apart so that the file format can be read in one place; what is done with
//! the data (lookup, validation, the locked update) lives in the siblings.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The format version this build reads and writes.
pub const STORE_VERSION: u32 = 1;
/// HTTP.sys default for every timer, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u32 = 120;

/// The appid of the bindings the first run makes (`0.0.0.0:P` and `[::]:P`).
pub const FIRSTRUN_APPID: &str = "{5d0b5a3c-7a5e-4b2f-9c61-706f72747368}";

/// The appids of bindings portshare makes by itself: the first run's,
/// ACME's (`crate::acme::ACME_APPID`) and the development CA's
/// (`crate::tls::devcerts::DEVCERT_APPID`; kept equal by a test). Such a binding
/// gives way to one the user makes (`http add sslcert` replaces it), as the
/// user's choice must win over a default.
pub const AUTOMATIC_APPIDS: &[&str] = &[
    FIRSTRUN_APPID,
    "{7a1f5a0e-ac3e-4e2d-8f01-61636d650001}",
    "{7a1f5a0e-ac3e-4e2d-8f01-646576636100}",
];

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
    /// `netsh http add iplisten`: the addresses the server listens on (HTTP.sys's
    /// `ListenOnlyList`); empty means every address the configuration gives.
    /// Kept in the order added, as netsh shows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iplisten: Vec<std::net::IpAddr>,
    /// `netsh http add cacheparam`: the in-memory file cache's limits.
    #[serde(default, skip_serializing_if = "CacheParams::is_default")]
    pub cacheparam: CacheParams,
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
    /// Why a 2xx answer still does not count as done (no output, or the script
    /// said it failed); absent in records of runs that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl MaintenanceRecord {
    /// The script answered 2xx and did not report a failure.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s)) && self.failure.is_none()
    }
}

impl Default for StoreData {
    fn default() -> Self {
        StoreData {
            version: STORE_VERSION,
            sslcert: Vec::new(),
            urlacl: Vec::new(),
            timeouts: Timeouts::default(),
            iplisten: Vec::new(),
            cacheparam: CacheParams::default(),
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
    /// "Disable OCSP Stapling" (Set / Not Set); kept, no effect in portshare.
    pub disableocspstapling: bool,
    /// "Enable Token Binding" (Set / Not Set); kept, no effect in portshare.
    pub enabletokenbinding: bool,
    /// "Log Extended Events" (Set / Not Set); kept, no effect in portshare.
    pub logextendedevents: bool,
    /// "Enable Session Ticket" (Set / Not Set); kept, no effect in portshare.
    pub enablesessionticket: bool,
    /// "Disable Session ID" (Set / Not Set); kept, no effect in portshare.
    pub disablesessionid: bool,
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
            disableocspstapling: false,
            enabletokenbinding: false,
            logextendedevents: false,
            enablesessionticket: false,
            disablesessionid: false,
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
    /// Puts the timers set here over `limits` (`[http]`): netsh's settings
    /// win over the registry defaults on Windows, and so over GLOBAL.INI.
    pub fn apply_to(&self, limits: &mut crate::config::Limits) {
        let secs = |s: u32| std::time::Duration::from_secs(u64::from(s));
        if let Some(s) = self.idle_connection {
            limits.idle_connection_timeout = secs(s);
        }
        if let Some(s) = self.header_wait {
            limits.header_wait_timeout = secs(s);
        }
    }

    pub fn idle_connection_secs(&self) -> u32 {
        self.idle_connection.unwrap_or(DEFAULT_TIMEOUT_SECS)
    }
    pub fn header_wait_secs(&self) -> u32 {
        self.header_wait.unwrap_or(DEFAULT_TIMEOUT_SECS)
    }
}

/// The two cache parameters `netsh http add cacheparam` sets (bytes; `None` =
/// the built-in default). portshare applies `max_response_size` to its
/// in-memory file cache (larger files are read from disk on every request);
/// `range_chunk_size` is kept and shown only: ranges are cut from the cached
/// bytes, there are no chunks to size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_response_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_chunk_size: Option<u64>,
}

impl CacheParams {
    pub fn is_default(&self) -> bool {
        *self == CacheParams::default()
    }
}
