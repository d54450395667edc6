//! GLOBAL.INI + `PORTSHARE_*` environment → one frozen, validated [`Settings`].
//!
//! The file is read with the `config` crate (INI format). Every key is checked
//! here, once: an unknown key or a bad value stops start-up with a message that
//! names the file, the section, the key and what is allowed — never a silent
//! default for a typo.

use std::collections::BTreeMap;
use std::env;
use std::fmt;
use std::path::{Path, PathBuf};
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
    pub limits: Limits,
    pub apps: Vec<AppConfig>,
    pub cgi: CgiSettings,
    /// `control_socket`: where applications register prefixes at run time
    /// (a Unix socket path; on Windows a named pipe `\\.\pipe\NAME`).
    /// `None` (the key set to an empty value) disables the control channel.
    pub control_socket: Option<PathBuf>,
}

const PARAM_KEYS: &[&str] = &[
    "host_name",
    "http_port",
    "https_port",
    "listen",
    "public_dir",
    "cert_dir",
    "log_dir",
    "daily_maintenance",
    "maintenance_time",
    "shutdown_grace",
    "control_socket",
];

const HTTP_KEYS: &[&str] = &[
    "maxfieldlength",
    "maxrequestbytes",
    "urlsegmentmaxlength",
    "urlsegmentmaxcount",
    "maxconnections",
    "idleconnectiontimeout",
    "headerwaittimeout",
    "entitybodytimeout",
    "minsendrate",
    "minsendratewindow",
];

/// Name of the configuration file looked for in the working directory and
/// beside the executable (cFos keeps it beside the program).
pub const DEFAULT_FILE_NAME: &str = "GLOBAL.INI";

/// Finds the configuration file: `--config`, else `PORTSHARE_CONFIG`, else
/// `./GLOBAL.INI`, else `GLOBAL.INI` beside the executable, else none.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = env::var_os("PORTSHARE_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let cwd = PathBuf::from(DEFAULT_FILE_NAME);
    if cwd.is_file() {
        return Some(cwd);
    }
    let beside_exe = env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(DEFAULT_FILE_NAME)))?;
    beside_exe.is_file().then_some(beside_exe)
}

/// Raw `section → key → value` view of the file plus overrides.
type Sections = BTreeMap<String, BTreeMap<String, String>>;

impl Settings {
    /// Loads the file found by [`locate`], applies `PORTSHARE_*` overrides
    /// from the process environment and validates everything.
    pub fn load(explicit: Option<&Path>) -> Result<Settings, ConfigError> {
        let env: Vec<(String, String)> = env::vars().collect();
        Settings::load_with_env(locate(explicit).as_deref(), &env)
    }

    /// As [`Settings::load`], with the file and environment given (tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Settings, ConfigError> {
        let (origin, base_dir, mut sections) = match file {
            Some(path) => {
                let sections = read_ini(path)?;
                let dir = path
                    .parent()
                    .map(Path::to_path_buf)
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or_else(|| PathBuf::from("."));
                (Origin::File(path.to_path_buf()), dir, sections)
            }
            None => (Origin::Defaults, PathBuf::from("."), Sections::new()),
        };
        apply_env(&mut sections, env)?;
        Settings::from_sections(origin, &base_dir, &sections)
    }

    fn from_sections(
        origin: Origin,
        base_dir: &Path,
        sections: &Sections,
    ) -> Result<Settings, ConfigError> {
        let file = origin.to_string();
        let empty = BTreeMap::new();
        let mut cgi = CgiSettings::default();
        let mut apps = Vec::new();
        for (section, keys) in sections {
            match section.as_str() {
                "param" => check_keys(&file, section, keys, PARAM_KEYS)?,
                "http" => check_keys(&file, section, keys, HTTP_KEYS)?,
                "cgi" => cgi = parse_cgi(&file, keys)?,
                s if s.starts_with("app:") => apps.push(parse_app(&file, section, keys)?),
                _ => {
                    return Err(ConfigError::File {
                        file,
                        message: format!(
                        "unknown section [{section}]; allowed: [param], [http], [cgi], [app:NAME]"
                    ),
                    })
                }
            }
        }
        let param = sections.get("param").unwrap_or(&empty);
        let get = |key: &str| param.get(key).map(|v| v.trim());
        let key_err = |key: &str, message: String| ConfigError::Key {
            file: file.clone(),
            section: "param".into(),
            key: key.into(),
            message,
        };

        let host_name: Vec<String> = get("host_name")
            .unwrap_or("+")
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if host_name.is_empty() {
            return Err(key_err(
                "host_name",
                "is empty; use + (every host), * or a host name, or full URL prefixes".into(),
            ));
        }
        let port = |key: &str, default: u16, what: &str| -> Result<u16, ConfigError> {
            match get(key) {
                None => Ok(default),
                Some(v) => v.parse::<u16>().map_err(|_| {
                    key_err(
                        key,
                        format!("'{v}' is not a port number; use 1-65535, or 0 to disable {what}"),
                    )
                }),
            }
        };
        let http_port = port("http_port", 8080, "plain HTTP")?;
        let https_port = port("https_port", 8443, "HTTPS")?;
        if http_port != 0 && http_port == https_port {
            return Err(key_err(
                "https_port",
                format!("is the same as http_port ({http_port}); a port serves one scheme"),
            ));
        }
        let mut site_prefixes = Vec::new();
        for entry in &host_name {
            let candidates: Vec<String> = if entry.contains("://") {
                vec![entry.clone()]
            } else {
                let host = if entry.contains(':') && !entry.starts_with('[') {
                    format!("[{entry}]") // a bare IPv6 literal
                } else {
                    entry.clone()
                };
                let mut v = Vec::new();
                if http_port != 0 {
                    v.push(format!("http://{host}:{http_port}/"));
                }
                if https_port != 0 {
                    v.push(format!("https://{host}:{https_port}/"));
                }
                v
            };
            for c in candidates {
                let prefix = UrlPrefix::parse(&c).map_err(|e| {
                    key_err(
                        "host_name",
                        format!("'{entry}' gives the URL prefix {c}, which is not valid: {e}"),
                    )
                })?;
                site_prefixes.push(prefix);
            }
        }
        let listen = match get("listen") {
            None | Some("") => vec![
                std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            ],
            Some(v) => v
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(|a| {
                    a.trim_matches(['[', ']']).parse().map_err(|_| {
                        key_err(
                            "listen",
                            format!("'{a}' is not an IP address; use e.g. 0.0.0.0, ::, 127.0.0.1"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let path = |key: &str, default: &str| -> PathBuf {
            let v = get(key).unwrap_or(default);
            resolve(base_dir, v)
        };
        let public_dir = path("public_dir", "public");
        if !public_dir.is_dir() {
            return Err(key_err(
                "public_dir",
                format!(
                    "the folder {} does not exist; create it or point public_dir at your site's folder",
                    public_dir.display()
                ),
            ));
        }
        let cert_dir = path("cert_dir", "certs");
        let log_dir = match get("log_dir") {
            None => Some(resolve(base_dir, "logs")),
            Some("") => None,
            Some(v) => Some(resolve(base_dir, v)),
        };
        let daily_maintenance = match get("daily_maintenance") {
            None | Some("") => None,
            Some(v) if v.starts_with('/') => Some(v.to_owned()),
            Some(v) => {
                return Err(key_err(
                    "daily_maintenance",
                    format!(
                        "'{v}' must be a URL path starting with / (/ is the public folder), e.g. /maintenance.cgi"
                    ),
                ))
            }
        };
        let maintenance_time = match get("maintenance_time") {
            None => NaiveTime::from_hms_opt(3, 0, 0).unwrap_or_default(),
            Some(v) => parse_hms(v).ok_or_else(|| {
                key_err(
                    "maintenance_time",
                    format!("'{v}' is not a time of day; use hh:mm:ss from 00:00:00 to 23:59:59"),
                )
            })?,
        };
        let shutdown_grace = match get("shutdown_grace") {
            None => Duration::from_secs(10),
            Some(v) => Duration::from_secs(v.parse::<u64>().map_err(|_| {
                key_err(
                    "shutdown_grace",
                    format!("'{v}' is not a number of seconds (0 or more)"),
                )
            })?),
        };
        let limits = parse_limits(&file, sections.get("http").unwrap_or(&empty))?;
        let control_socket = match get("control_socket") {
            Some("") => None,
            Some(v) => Some(control_socket_path(base_dir, v)),
            None => Some(default_control_socket(&origin, base_dir)),
        };
        Ok(Settings {
            origin,
            host_name,
            site_prefixes,
            http_port,
            https_port,
            listen,
            public_dir,
            cert_dir,
            log_dir,
            daily_maintenance,
            maintenance_time,
            shutdown_grace,
            limits,
            apps,
            cgi,
            control_socket,
        })
    }
}

/// The control socket named in GLOBAL.INI: a path relative to the file's
/// folder on Unix; on Windows a pipe name, `\\.\pipe\` added when missing.
fn control_socket_path(base_dir: &Path, value: &str) -> PathBuf {
    if cfg!(windows) && !value.starts_with(r"\\") {
        PathBuf::from(format!(r"\\.\pipe\{value}"))
    } else {
        resolve(base_dir, value)
    }
}

/// Default control socket: `portshare.sock` beside the configuration file
/// (in the current folder with built-in defaults). On Windows, where a pipe
/// has no folder, `\\.\pipe\portshare-` plus 16 hex digits of the SHA-1 of
/// the canonical configuration path (or of the canonical current folder).
fn default_control_socket(origin: &Origin, base_dir: &Path) -> PathBuf {
    if cfg!(windows) {
        use sha1::{Digest, Sha1};
        let key = match origin {
            Origin::File(p) => std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()),
            Origin::Defaults => std::fs::canonicalize(base_dir)
                .unwrap_or_else(|_| base_dir.to_path_buf())
                .join(DEFAULT_FILE_NAME),
        };
        let digest = Sha1::digest(key.to_string_lossy().to_lowercase().as_bytes());
        PathBuf::from(format!(
            r"\\.\pipe\portshare-{}",
            &hex::encode(digest)[..16]
        ))
    } else {
        base_dir.join("portshare.sock")
    }
}

fn resolve(base: &Path, value: &str) -> PathBuf {
    let p = Path::new(value);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// `hh:mm:ss`, 24-hour clock, exactly two digits each.
fn parse_hms(v: &str) -> Option<NaiveTime> {
    let parts: Vec<&str> = v.split(':').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let n = |s: &str| s.parse::<u32>().ok();
    NaiveTime::from_hms_opt(n(parts[0])?, n(parts[1])?, n(parts[2])?)
}

fn check_keys(
    file: &str,
    section: &str,
    keys: &BTreeMap<String, String>,
    allowed: &[&str],
) -> Result<(), ConfigError> {
    match keys.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(ConfigError::Key {
            file: file.into(),
            section: section.into(),
            key: k.clone(),
            message: format!("unknown key; allowed keys: {}", allowed.join(", ")),
        }),
    }
}

fn parse_limits(file: &str, keys: &BTreeMap<String, String>) -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    for (key, value) in keys {
        let n: u64 = value.trim().parse().map_err(|_| ConfigError::Key {
            file: file.into(),
            section: "http".into(),
            key: key.clone(),
            message: format!("'{value}' is not a whole number"),
        })?;
        let out_of_range = |range: &str| ConfigError::Key {
            file: file.into(),
            section: "http".into(),
            key: key.clone(),
            message: format!("{n} is out of range; allowed: {range}"),
        };
        let sized = |lo: u64, hi: u64| {
            if (lo..=hi).contains(&n) {
                usize::try_from(n).map_err(|_| out_of_range(&format!("{lo}-{hi}")))
            } else {
                Err(out_of_range(&format!("{lo}-{hi}")))
            }
        };
        let secs = || {
            if (1..=65535).contains(&n) {
                Ok(Duration::from_secs(n))
            } else {
                Err(out_of_range("1-65535 seconds"))
            }
        };
        match key.as_str() {
            "maxfieldlength" => limits.max_field_length = sized(64, 65534)?,
            "maxrequestbytes" => limits.max_request_bytes = sized(256, 16_777_216)?,
            "urlsegmentmaxlength" => limits.url_segment_max_length = sized(1, 32766)?,
            "urlsegmentmaxcount" => limits.url_segment_max_count = sized(1, 16383)?,
            "maxconnections" => limits.max_connections = sized(0, 4_294_967_295)?,
            "idleconnectiontimeout" => limits.idle_connection_timeout = secs()?,
            "headerwaittimeout" => limits.header_wait_timeout = secs()?,
            "entitybodytimeout" => limits.entity_body_timeout = secs()?,
            "minsendrate" => limits.min_send_rate = sized(1, 4_294_967_295)? as u64,
            "minsendratewindow" => limits.min_send_rate_window = secs()?,
            _ => {} // check_keys has rejected anything else
        }
    }
    Ok(limits)
}

fn parse_cgi(file: &str, keys: &BTreeMap<String, String>) -> Result<CgiSettings, ConfigError> {
    let mut cgi = CgiSettings::default();
    for (key, value) in keys {
        let value = value.trim();
        let err = |message: String| ConfigError::Key {
            file: file.into(),
            section: "cgi".into(),
            key: key.clone(),
            message,
        };
        if key == "timeout" {
            let n: u64 =
                value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    err(format!("'{value}' is not a number of seconds (1 or more)"))
                })?;
            cgi.timeout = Duration::from_secs(n);
            continue;
        }
        let ext = key.strip_prefix('.').unwrap_or(key).to_ascii_lowercase();
        if ext.is_empty() || !ext.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(err(
                "is not a file extension; use e.g. .cgi = direct or .py = python3".into(),
            ));
        }
        let runner = match value {
            "" => {
                return Err(err(
                    "needs a value: direct, or an interpreter such as python3".into(),
                ))
            }
            "direct" => CgiRunner::Direct,
            v => CgiRunner::Interpreter(v.to_owned()),
        };
        cgi.runners.insert(ext, runner);
    }
    Ok(cgi)
}

fn parse_app(
    file: &str,
    section: &str,
    keys: &BTreeMap<String, String>,
) -> Result<AppConfig, ConfigError> {
    let name = section.trim_start_matches("app:").trim().to_owned();
    let err = |key: &str, message: String| ConfigError::Key {
        file: file.into(),
        section: section.into(),
        key: key.into(),
        message,
    };
    check_keys(file, section, keys, &["prefix", "backend", "timeout"])?;
    let prefixes: Vec<UrlPrefix> = keys
        .get("prefix")
        .map(|v| {
            v.split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(|p| {
                    UrlPrefix::parse(p)
                        .map_err(|e| err("prefix", format!("'{p}' is not a valid URL prefix: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    if prefixes.is_empty() {
        return Err(err(
            "prefix",
            "is missing; give one or more URL prefixes, e.g. http://+:8080/api/".into(),
        ));
    }
    let backend = keys
        .get("backend")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            err(
                "backend",
                "is missing; give http://host:port or a Unix socket path".into(),
            )
        })?;
    let timeout = keys
        .get("timeout")
        .map(|v| match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
            _ => Err(err(
                "timeout",
                format!("'{v}' is not a number of seconds greater than 0"),
            )),
        })
        .transpose()?;
    Ok(AppConfig {
        name,
        prefixes,
        backend,
        timeout,
    })
}

/// Reads the INI file with the `config` crate into lowercase sections/keys.
fn read_ini(path: &Path) -> Result<Sections, ConfigError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ConfigError::File {
        file: file.clone(),
        message: format!("cannot read the configuration file: {e}"),
    })?;
    let text = decode_text(&bytes).map_err(|message| ConfigError::File {
        file: file.clone(),
        message,
    })?;
    // The INI parser treats `\` as an escape (`\t` → tab) and a trailing `\`
    // as a line continuation; Windows paths (`C:\sites\top\`) need it literal.
    let text = text.replace('\\', "\\\\");
    let cfg = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Ini))
        .build()
        .map_err(|e| ConfigError::File {
            file: file.clone(),
            message: format!("not a valid INI file: {e}"),
        })?;
    let raw: BTreeMap<String, config::Value> =
        cfg.try_deserialize().map_err(|e| ConfigError::File {
            file: file.clone(),
            message: format!("not a valid INI file: {e}"),
        })?;
    let mut sections = Sections::new();
    for (name, value) in raw {
        let table = value.into_table().map_err(|_| ConfigError::File {
            file: file.clone(),
            message: format!(
                "'{name}' stands outside any section; put keys under [param] (or [http], [cgi], [app:NAME])"
            ),
        })?;
        let keys = sections.entry(name.to_ascii_lowercase()).or_default();
        for (key, v) in table {
            let text = v.into_string().map_err(|e| ConfigError::Key {
                file: file.clone(),
                section: name.clone(),
                key: key.clone(),
                message: format!("not a plain value: {e}"),
            })?;
            keys.insert(key.to_ascii_lowercase(), text);
        }
    }
    Ok(sections)
}

/// UTF-8 (with or without BOM; CRLF fine) or UTF-16 with BOM, as Notepad saves.
fn decode_text(bytes: &[u8]) -> Result<String, String> {
    let utf16 = |le: bool| -> Result<String, String> {
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16(&units)
            .map_err(|_| "the file says UTF-16 but is not valid UTF-16".into())
    };
    match bytes {
        [0xFF, 0xFE, ..] => utf16(true),
        [0xFE, 0xFF, ..] => utf16(false),
        [0xEF, 0xBB, 0xBF, rest @ ..] => std::str::from_utf8(rest)
            .map(str::to_owned)
            .map_err(|e| format!("not valid UTF-8 ({e}); save the file as UTF-8")),
        _ => std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| format!("not valid UTF-8 ({e}); save the file as UTF-8")),
    }
}

/// `PORTSHARE_HTTP_PORT=9000` overrides `[param] http_port`;
/// `PORTSHARE_HTTP__MAXFIELDLENGTH=…` overrides `[http] MaxFieldLength`
/// (double underscore between section and key).
fn apply_env(sections: &mut Sections, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("PORTSHARE_") else {
            continue;
        };
        if rest == "CONFIG" {
            continue;
        }
        let rest = rest.to_ascii_lowercase();
        let (section, key) = match rest.split_once("__") {
            Some((s, k)) => (s.to_owned(), k.to_owned()),
            None if PARAM_KEYS.contains(&rest.as_str()) => ("param".to_owned(), rest),
            None => {
                return Err(ConfigError::Env {
                    var: var.clone(),
                    message: format!(
                        "not a known setting; [param] keys are PORTSHARE_{}, other sections use PORTSHARE_SECTION__KEY",
                        PARAM_KEYS
                            .iter()
                            .map(|k| k.to_ascii_uppercase())
                            .collect::<Vec<_>>()
                            .join(", PORTSHARE_")
                    ),
                })
            }
        };
        sections
            .entry(section)
            .or_default()
            .insert(key, value.clone());
    }
    Ok(())
}
