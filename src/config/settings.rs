//! The types configuration produces: [`Settings`] and its parts, and
//! [`ConfigError`]. Kept apart from the parsing so that a reader of the
//! server code can see what a setting is without the INI and environment
//! handling around it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveTime;

use crate::urlprefix::UrlPrefix;

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Defaults,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Defaults => f.write_str("built-in defaults"),
        }
    }
}

/// A rejected configuration: which file, section and key, and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{file} [{section}] {key}: {message}")]
    Key {
        file: String,
        section: String,
        key: String,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

/// HTTP.sys limits (`HKLM\System\CurrentControlSet\Services\HTTP\Parameters`
/// names), set in the `[http]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_field_length: usize,
    pub max_request_bytes: usize,
    pub url_segment_max_length: usize,
    pub url_segment_max_count: usize,
    /// 0 = unlimited, as in HTTP.sys.
    pub max_connections: usize,
    pub idle_connection_timeout: Duration,
    pub header_wait_timeout: Duration,
    pub entity_body_timeout: Duration,
    /// HTTP.sys's `MinSendRate`: a client that takes a response more slowly
    /// than this many bytes a second is disconnected.
    pub min_send_rate: u64,
    /// How long the send rate is measured over before it is judged
    /// (portshare's own key, `MinSendRateWindow`; HTTP.sys has no setting).
    pub min_send_rate_window: Duration,
    /// `RequestQueueLimit`: requests one request queue may hold at once;
    /// more get HTTP.sys's 503 (httperr reason `QueueFull`).
    pub request_queue_limit: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_field_length: 16384,
            max_request_bytes: 16384,
            url_segment_max_length: 260,
            url_segment_max_count: 255,
            max_connections: 0,
            idle_connection_timeout: Duration::from_secs(120),
            header_wait_timeout: Duration::from_secs(120),
            entity_body_timeout: Duration::from_secs(120),
            min_send_rate: 150,
            min_send_rate_window: Duration::from_secs(10),
            request_queue_limit: 1000,
        }
    }
}

/// A statically configured application (`[app:NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    pub name: String,
    pub prefixes: Vec<UrlPrefix>,
    pub backend: String,
    /// `timeout=` seconds for the backend's response head (None: the
    /// proxy's default).
    pub timeout: Option<Duration>,
    /// `compress=` / `compress_level=`: compression of the application's
    /// answers (on by default, as for run-time registrations).
    pub compress: crate::compression::CompressConfig,
    /// `queue_limit=`: this application's request-queue limit (None:
    /// `[http] RequestQueueLimit`).
    pub queue_limit: Option<usize>,
}

/// A static site: the built-in one (`[param]`, named `default`) or a
/// `[site:NAME]` section. Each is one registration of its prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    /// `default`, or the NAME of `[site:NAME]`.
    pub name: String,
    pub prefixes: Vec<UrlPrefix>,
    pub public_dir: PathBuf,
    pub options: SiteOptions,
}

impl SiteConfig {
    /// The section the site comes from, as error messages name it.
    pub fn section(&self) -> String {
        if self.name == DEFAULT_SITE {
            "param".to_owned()
        } else {
            format!("site:{}", self.name)
        }
    }
}

/// The name of the built-in site (`[param]`).
pub const DEFAULT_SITE: &str = "default";

/// What a site does besides serving files: the keys every site section
/// (and `[param]`, for the built-in site) takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteOptions {
    /// `listing=yes`: an HTML (or JSON) listing for a folder without
    /// `index.html`.
    pub listing: bool,
    /// `redirect_https=yes`: plain-HTTP requests get 308 to the site's
    /// https prefix.
    pub redirect_https: bool,
    /// `redirect=FROM TO [STATUS]` lines, in file order.
    pub redirects: Vec<RedirectRule>,
    /// `hsts=SECONDS [includeSubDomains] [preload]`: sent on HTTPS only.
    pub hsts: Option<String>,
    /// `header=Name: value` lines, in file order (checked names and values).
    pub headers: Vec<(String, String)>,
    /// `security_headers=no` turns off `X-Content-Type-Options: nosniff` and
    /// `Referrer-Policy: strict-origin-when-cross-origin`.
    pub security_headers: bool,
    /// `cache_control=`: `None` for the default policy (`no-cache` for
    /// HTML, `max-age=3600` for other files), `Some("")` for none (`off`).
    pub cache_control: Option<String>,
    /// `cache_control.EXT=`: per extension (lowercase, no dot), winning
    /// over `cache_control`.
    pub cache_control_by_extension: BTreeMap<String, String>,
    /// `error_page.CODE=/path`: a file of the site's folder sent with that
    /// status when the site itself answers with it.
    pub error_pages: BTreeMap<u16, String>,
    /// `compress=` / `compress_level=`: on-the-fly compression (zstd, br,
    /// gzip at fast levels unless set; `off` for none).
    pub compress: crate::compression::CompressConfig,
}

impl Default for SiteOptions {
    fn default() -> Self {
        SiteOptions {
            listing: false,
            redirect_https: false,
            redirects: Vec::new(),
            hsts: None,
            headers: Vec::new(),
            security_headers: true,
            cache_control: None,
            cache_control_by_extension: BTreeMap::new(),
            error_pages: BTreeMap::new(),
            compress: crate::compression::CompressConfig::default(),
        }
    }
}

/// One `redirect=FROM TO [STATUS]` line. `FROM` ending in `/` matches every
/// path under it (the rest is appended to `TO`); otherwise the path alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectRule {
    pub from: String,
    pub to: String,
    pub status: u16,
}

/// How files with a given extension in `public_dir` are run as CGI scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgiRunner {
    /// Execute the file itself (it must be executable).
    Direct,
    /// Run `interpreter script`.
    Interpreter(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiSettings {
    /// Extension without the dot, lowercase → how to run it.
    pub runners: BTreeMap<String, CgiRunner>,
    pub timeout: Duration,
}

impl Default for CgiSettings {
    fn default() -> Self {
        CgiSettings {
            runners: BTreeMap::new(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Which ACME challenge types `[acme] challenge` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcmeChallenges {
    /// `http-01`: a token file served under `/.well-known/acme-challenge/`
    /// on the plain-HTTP port.
    pub http01: bool,
    /// `tls-alpn-01`: answered by the TLS acceptor (`tls::alpn_challenge`).
    pub tls_alpn01: bool,
}

/// The Let's Encrypt production directory, `[acme] directory`'s default.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// `[param] session_tickets` (`crate::tls::resumption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionTickets {
    /// `no`: no tickets; sessions resume by ID only.
    Off,
    /// `yes` (the default): keys in memory, per process.
    #[default]
    Memory,
    /// `shared`: keys in `cert_dir`, shared by every server using it.
    Shared,
}

/// `[acme]`: certificates from an ACME (RFC 8555) server. Present only when
/// the section exists; ACME runs only then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// `email`: the account's contact, without `mailto:`.
    pub email: Option<String>,
    /// `directory`: the ACME server's directory URL (https).
    pub directory: String,
    /// `ca_root`: PEM file with the root that the ACME server's own HTTPS
    /// certificate chains to (a private ACME server); `None`: the system's roots.
    pub ca_root: Option<PathBuf>,
    /// `names`: the names to get certificates for, lowercase ASCII (IDNs in
    /// punycode); `None`: the explicit host names of the https prefixes.
    pub names: Option<Vec<String>>,
    pub challenge: AcmeChallenges,
}

/// Everything the server needs, parsed and validated once.
#[derive(Debug, Clone)]
pub struct Settings {
    pub origin: Origin,
    /// `host_name`: URL match rule(s) of the built-in site, as written.
    pub host_name: Vec<String>,
    /// The built-in site's URL prefixes, from `host_name` and the ports.
    pub site_prefixes: Vec<UrlPrefix>,
    pub http_port: u16,
    pub https_port: u16,
    /// Addresses listeners bind to (default: every IPv4 and IPv6 address).
    pub listen: Vec<std::net::IpAddr>,
    pub public_dir: PathBuf,
    pub cert_dir: PathBuf,
    /// `None`: access lines go to stdout (the container case).
    pub log_dir: Option<PathBuf>,
    pub daily_maintenance: Option<String>,
    pub maintenance_time: NaiveTime,
    pub shutdown_grace: Duration,
    /// `watch_config`: reload the configuration when the file changes.
    pub watch_config: bool,
    /// The file as it was when these settings were read (for
    /// `watch_config`).
    pub file_stamp: Option<super::file::FileStamp>,
    /// `http3`: every HTTPS port also serves HTTP/3 over QUIC (UDP).
    pub http3: bool,
    /// `session_tickets`: TLS session tickets, and where their keys are.
    pub session_tickets: SessionTickets,
    /// `metrics=PREFIX`: the Prometheus metrics page, if any.
    pub metrics: Option<UrlPrefix>,
    /// `health=PREFIX`: the health check, if any.
    pub health: Option<UrlPrefix>,
    pub limits: Limits,
    pub apps: Vec<AppConfig>,
    /// The built-in site's options (its prefixes and folder are
    /// `site_prefixes` and `public_dir`).
    pub site: SiteOptions,
    /// `[site:NAME]` sections, in file order.
    pub sites: Vec<SiteConfig>,
    pub cgi: CgiSettings,
    /// `control_socket`: where applications register prefixes at run time
    /// (a Unix socket path; on Windows a named pipe `\\.\pipe\NAME`).
    /// `None` (the key set to an empty value) disables the control channel.
    pub control_socket: Option<PathBuf>,
    /// `[acme]`, when the section exists.
    pub acme: Option<AcmeSettings>,
    /// How the files in `log_dir` roll over and how long old ones are kept.
    pub logs: LogSettings,
    /// `[auth:NAME]` sections, in file order.
    pub auth: Vec<AuthConfig>,
}

/// An `[auth:NAME]` section: URL prefixes that need a user name and
/// password (HTTP Basic), checked against an htpasswd file (`crate::auth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub name: String,
    /// Matched against requests with HTTP.sys's precedence rules.
    pub prefixes: Vec<UrlPrefix>,
    /// The `realm` of `WWW-Authenticate` (what the browser's dialog shows).
    pub realm: String,
    /// The htpasswd file (absolute).
    pub users: PathBuf,
    /// `allow_http=yes`: credentials accepted over plain HTTP (loopback use).
    pub allow_http: bool,
    /// `forward_auth=yes`: the `Authorization` header reaches the handler.
    pub forward_auth: bool,
}

/// When the log files roll over (`crate::logs`) and how long the rolled-over
/// ones stay: `[param] log_rollover`, `log_keep_days` and `log_max_size`, and HTTP.sys's
/// `[http] ErrorLogFileTruncateSize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Days a rolled-over file is kept; 0 keeps them for ever.
    pub keep_days: u32,
    /// Bytes after which `access.log` rolls over; 0: only at midnight.
    pub access_max_size: u64,
    /// Bytes after which `httperr.log` rolls over (HTTP.sys: 1 MiB and up).
    pub error_max_size: u64,
    /// `log_rollover=external`: portshare neither rolls over nor deletes;
    /// an external logrotate renames the files and sends `SIGUSR1`.
    pub external_rollover: bool,
}

/// HTTP.sys's `ErrorLogFileTruncateSize` default, also its smallest value.
pub const ERROR_LOG_TRUNCATE_SIZE_MIN: u64 = 1024 * 1024;

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            keep_days: 30,
            access_max_size: 0,
            error_max_size: ERROR_LOG_TRUNCATE_SIZE_MIN,
            external_rollover: false,
        }
    }
}

impl Settings {
    /// Every site, the built-in one (when it has prefixes) first.
    pub fn all_sites(&self) -> Vec<SiteConfig> {
        let mut all = Vec::with_capacity(self.sites.len() + 1);
        if !self.site_prefixes.is_empty() {
            all.push(SiteConfig {
                name: DEFAULT_SITE.to_owned(),
                prefixes: self.site_prefixes.clone(),
                public_dir: self.public_dir.clone(),
                options: self.site.clone(),
            });
        }
        all.extend(self.sites.iter().cloned());
        all
    }
}
