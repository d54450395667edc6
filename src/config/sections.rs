//! Raw sections → [`Settings`]: one function per section (`[param]`,
//! `[http]`, `[cgi]`, `[app:NAME]`, `[acme]`), each checking its own keys and values.
//! This is where every key's allowed values and error message live.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveTime;

use super::file::{resolve, DEFAULT_FILE_NAME};
use super::{
    AcmeChallenges, AcmeSettings, AppConfig, CgiRunner, CgiSettings, ConfigError, Limits, Origin,
    Sections, SessionTickets, Settings, LETS_ENCRYPT_DIRECTORY,
};
use crate::urlprefix::UrlPrefix;

pub(super) const PARAM_KEYS: &[&str] = &[
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
    "watch_config",
    "http3",
    "session_tickets",
    "log_rollover",
    "log_keep_days",
    "log_max_size",
    "metrics",
    "health",
];

const ACME_KEYS: &[&str] = &["email", "directory", "ca_root", "names", "challenge"];

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
    "errorlogfiletruncatesize",
    "requestqueuelimit",
];

impl Settings {
    /// Checks and converts every section. The first problem is reported:
    /// section names and keys (and `[cgi]`, `[app:NAME]` values) in section
    /// order, then `[param]` values, then `[http]` values.
    pub(super) fn from_sections(
        origin: Origin,
        base_dir: &Path,
        sections: &Sections,
    ) -> Result<Settings, ConfigError> {
        let file = origin.to_string();
        let empty = BTreeMap::new();
        let mut cgi = CgiSettings::default();
        let mut apps = Vec::new();
        let mut sites = Vec::new();
        let mut acme = None;
        let mut auth = Vec::new();
        for (section, keys) in sections {
            match section.as_str() {
                "param" => check_param_keys(&file, keys)?,
                "http" => check_keys(&file, section, keys, HTTP_KEYS)?,
                "cgi" => cgi = parse_cgi(&file, keys)?,
                "acme" => acme = Some(parse_acme(&file, base_dir, keys)?),
                s if s.starts_with("app:") => apps.push(parse_app(&file, section, keys)?),
                s if s.starts_with("auth:") => auth.push(parse_auth(&file, base_dir, section, keys)?),
                s if s.starts_with("site:") => {
                    sites.push(super::site::parse_site(&file, base_dir, section, keys)?)
                }
                _ => {
                    return Err(ConfigError::File {
                        file,
                        message: format!(
                        "unknown section [{section}]; allowed: [param], [http], [cgi], [app:NAME], [site:NAME], [auth:NAME], [acme]"
                    ),
                    })
                }
            }
        }
        let param = ParamKeys {
            file: &file,
            keys: sections.get("param").unwrap_or(&empty),
        };
        let mut settings = parse_param(&param, origin, base_dir)?;
        settings.limits = parse_limits(&file, sections.get("http").unwrap_or(&empty))?;
        settings.site = super::site::parse_site_options(
            &file,
            "param",
            sections.get("param").unwrap_or(&empty),
        )?;
        settings.apps = apps;
        settings.sites = sites;
        settings.cgi = cgi;
        settings.acme = acme;
        settings.auth = auth;
        settings.logs = parse_log_settings(&param, sections.get("http").unwrap_or(&empty))?;
        Ok(settings)
    }
}

/// The `[param]` section's values (trimmed) and its error messages.
struct ParamKeys<'a> {
    file: &'a str,
    keys: &'a BTreeMap<String, String>,
}

impl ParamKeys<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.keys.get(key).map(|v| v.trim())
    }

    fn err(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Key {
            file: self.file.to_owned(),
            section: "param".into(),
            key: key.into(),
            message,
        }
    }

    /// A yes/no key, `default` when absent; `what` says what it switches.
    fn yes_no(&self, key: &str, default: bool, what: &str) -> Result<bool, ConfigError> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        super::yes_no(v).ok_or_else(|| {
            self.err(
                key,
                format!("'{}' is not yes or no ({what})", v.to_ascii_lowercase()),
            )
        })
    }
}

/// `[param]`: everything in [`Settings`] except the limits, the
/// applications and CGI, which are left at their defaults here.
fn parse_param(p: &ParamKeys, origin: Origin, base_dir: &Path) -> Result<Settings, ConfigError> {
    let host_name = parse_host_name(p)?;
    let http_port = parse_port(p, "http_port", 8080, "plain HTTP")?;
    let https_port = parse_port(p, "https_port", 8443, "HTTPS")?;
    if http_port != 0 && http_port == https_port {
        return Err(p.err(
            "https_port",
            format!("is the same as http_port ({http_port}); a port serves one scheme"),
        ));
    }
    let site_prefixes = site_prefixes(p, &host_name, http_port, https_port)?;
    let listen = parse_listen(p)?;
    let path = |key: &str, default: &str| -> PathBuf {
        let v = p.get(key).unwrap_or(default);
        resolve(base_dir, v)
    };
    let public_dir = path("public_dir", "public");
    // Whether it exists is checked when the site is served (`Site::new`):
    // commands that only need the store work without it.
    let cert_dir = path("cert_dir", "certs");
    let log_dir = match p.get("log_dir") {
        None => Some(resolve(base_dir, "logs")),
        Some("") => None,
        Some(v) => Some(resolve(base_dir, v)),
    };
    let (daily_maintenance, maintenance_time) = parse_maintenance(p)?;
    let shutdown_grace = parse_shutdown_grace(p)?;
    let http3 = parse_http3(p)?;
    let session_tickets = parse_session_tickets(p)?;
    let metrics = parse_endpoint(p, "metrics", "http://127.0.0.1:9090/metrics/")?;
    let health = parse_endpoint(p, "health", "http://+:8080/healthz/")?;
    let control_socket = match p.get("control_socket") {
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
        http3,
        session_tickets,
        metrics,
        health,
        limits: Limits::default(),
        apps: Vec::new(),
        site: Default::default(),
        sites: Vec::new(),
        cgi: CgiSettings::default(),
        control_socket,
        acme: None,
        watch_config: parse_watch_config(p)?,
        file_stamp: None,
        logs: Default::default(),
        auth: Vec::new(),
    })
}

/// `metrics=` / `health=`: a URL prefix served by the server itself, or
/// none (absent or empty).
fn parse_endpoint(
    p: &ParamKeys,
    key: &str,
    example: &str,
) -> Result<Option<UrlPrefix>, ConfigError> {
    match p.get(key).map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => UrlPrefix::parse(v).map(Some).map_err(|e| {
            p.err(
                key,
                format!("'{v}' is not a valid URL prefix: {e}; e.g. {key}={example}"),
            )
        }),
    }
}

/// `watch_config`: reload when the file changes (default no).
fn parse_watch_config(p: &ParamKeys) -> Result<bool, ConfigError> {
    p.yes_no(
        "watch_config",
        false,
        "reload when this file changes, or not",
    )
}

/// `http3`: yes (the default, as Caddy and HTTP.sys on Windows Server
/// 2022 do) or no.
fn parse_http3(p: &ParamKeys) -> Result<bool, ConfigError> {
    p.yes_no("http3", true, "HTTP/3 on every HTTPS port, or not")
}

/// `session_tickets`: yes (keys in memory, the default), shared (keys in
/// `cert_dir`, for servers behind one load balancer) or no.
fn parse_session_tickets(p: &ParamKeys) -> Result<SessionTickets, ConfigError> {
    let Some(v) = p.get("session_tickets") else {
        return Ok(SessionTickets::Memory);
    };
    if v.eq_ignore_ascii_case("shared") {
        return Ok(SessionTickets::Shared);
    }
    match super::yes_no(v) {
        Some(true) => Ok(SessionTickets::Memory),
        Some(false) => Ok(SessionTickets::Off),
        None => Err(p.err(
            "session_tickets",
            format!(
                "'{}' is not yes, shared or no (TLS session tickets with keys in memory, \
                 with keys in cert_dir shared by every server using it, or none)",
                v.to_ascii_lowercase()
            ),
        )),
    }
}

/// `host_name`: one or more entries, comma- or space-separated.
fn parse_host_name(p: &ParamKeys) -> Result<Vec<String>, ConfigError> {
    let host_name: Vec<String> = p
        .get("host_name")
        .unwrap_or("+")
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if host_name.is_empty() {
        return Err(p.err(
            "host_name",
            "is empty; use + (every host), * or a host name, or full URL prefixes".into(),
        ));
    }
    Ok(host_name)
}

/// `http_port` / `https_port`: 0 disables `what`.
fn parse_port(p: &ParamKeys, key: &str, default: u16, what: &str) -> Result<u16, ConfigError> {
    match p.get(key) {
        None => Ok(default),
        Some(v) => v.parse::<u16>().map_err(|_| {
            p.err(
                key,
                format!("'{v}' is not a port number; use 1-65535, or 0 to disable {what}"),
            )
        }),
    }
}

/// The built-in site's URL prefixes: a `host_name` entry with `://` is a
/// prefix as it stands; any other is a host, given one prefix per enabled port.
fn site_prefixes(
    p: &ParamKeys,
    host_name: &[String],
    http_port: u16,
    https_port: u16,
) -> Result<Vec<UrlPrefix>, ConfigError> {
    let mut site_prefixes = Vec::new();
    for entry in host_name {
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
                p.err(
                    "host_name",
                    format!("'{entry}' gives the URL prefix {c}, which is not valid: {e}"),
                )
            })?;
            site_prefixes.push(prefix);
        }
    }
    Ok(site_prefixes)
}

/// `listen`: addresses to bind (default: every IPv4 and IPv6 address).
fn parse_listen(p: &ParamKeys) -> Result<Vec<std::net::IpAddr>, ConfigError> {
    match p.get("listen") {
        None | Some("") => Ok(vec![
            std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        ]),
        Some(v) => v
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(|a| {
                a.trim_matches(['[', ']']).parse().map_err(|_| {
                    p.err(
                        "listen",
                        format!("'{a}' is not an IP address; use e.g. 0.0.0.0, ::, 127.0.0.1"),
                    )
                })
            })
            .collect(),
    }
}

/// `daily_maintenance` (a URL path, or none) and `maintenance_time`.
fn parse_maintenance(p: &ParamKeys) -> Result<(Option<String>, NaiveTime), ConfigError> {
    let daily_maintenance = match p.get("daily_maintenance") {
        None | Some("") => None,
        Some(v) if v.starts_with('/') => Some(v.to_owned()),
        Some(v) => {
            return Err(p.err(
                "daily_maintenance",
                format!(
                    "'{v}' must be a URL path starting with / (/ is the public folder), e.g. /maintenance.cgi"
                ),
            ))
        }
    };
    let maintenance_time = match p.get("maintenance_time") {
        None => NaiveTime::from_hms_opt(3, 0, 0).unwrap_or_default(),
        Some(v) => parse_hms(v).ok_or_else(|| {
            p.err(
                "maintenance_time",
                format!("'{v}' is not a time of day; use hh:mm:ss from 00:00:00 to 23:59:59"),
            )
        })?,
    };
    Ok((daily_maintenance, maintenance_time))
}

/// `shutdown_grace`: whole seconds, 0 or more (default 10).
fn parse_shutdown_grace(p: &ParamKeys) -> Result<Duration, ConfigError> {
    match p.get("shutdown_grace") {
        None => Ok(Duration::from_secs(10)),
        Some(v) => Ok(Duration::from_secs(v.parse::<u64>().map_err(|_| {
            p.err(
                "shutdown_grace",
                format!("'{v}' is not a number of seconds (0 or more)"),
            )
        })?)),
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

/// `hh:mm:ss`, 24-hour clock, exactly two digits each.
fn parse_hms(v: &str) -> Option<NaiveTime> {
    let parts: Vec<&str> = v.split(':').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let n = |s: &str| s.parse::<u32>().ok();
    NaiveTime::from_hms_opt(n(parts[0])?, n(parts[1])?, n(parts[2])?)
}

/// `[param]`: its own keys and the built-in site's options.
fn check_param_keys(file: &str, keys: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    match keys
        .keys()
        .find(|k| !PARAM_KEYS.contains(&k.as_str()) && !super::site::is_site_option(k))
    {
        None => Ok(()),
        Some(k) => Err(ConfigError::Key {
            file: file.into(),
            section: "param".into(),
            key: k.clone(),
            message: format!(
                "unknown key; allowed keys: {}, and the site options {}",
                PARAM_KEYS.join(", "),
                super::site::SITE_OPTIONS_HELP
            ),
        }),
    }
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

/// `[http]`: the HTTP.sys limits (keys already checked against `HTTP_KEYS`).
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
            // HTTP.sys's range for HttpServerQueueLengthProperty.
            "requestqueuelimit" => limits.request_queue_limit = sized(1, 65535)?,
            _ => {} // check_keys has rejected anything else
        }
    }
    Ok(limits)
}

/// `[cgi]`: `timeout` and one `.ext = direct | interpreter` line per extension.
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

/// `[app:NAME]`: `prefix` (one or more), `backend` and an optional `timeout`.
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
    check_keys(
        file,
        section,
        keys,
        &[
            "prefix",
            "backend",
            "timeout",
            "compress",
            "compress_level",
            "queue_limit",
        ],
    )?;
    let prefixes = super::prefix_list(file, section, keys, ", e.g. http://+:8080/api/")?;
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
    let compress = super::site::parse_compress(keys).map_err(|(key, m)| err(key, m))?;
    let queue_limit = keys
        .get("queue_limit")
        .map(|v| match v.trim().parse::<usize>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n),
            _ => Err(err(
                "queue_limit",
                format!("'{v}' is not a number of requests from 1 to 65535"),
            )),
        })
        .transpose()?;
    Ok(AppConfig {
        queue_limit,
        name,
        prefixes,
        backend,
        timeout,
        compress,
    })
}

/// `[acme]`: `email`, `directory`, `ca_root`, `names`, `challenge`, all
/// optional (an empty section runs ACME with the defaults).
fn parse_acme(
    file: &str,
    base_dir: &Path,
    keys: &BTreeMap<String, String>,
) -> Result<AcmeSettings, ConfigError> {
    check_keys(file, "acme", keys, ACME_KEYS)?;
    let err = |key: &str, message: String| ConfigError::Key {
        file: file.into(),
        section: "acme".into(),
        key: key.into(),
        message,
    };
    let get = |key: &str| keys.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let email = match get("email") {
        None => None,
        Some(v) => {
            let v = v.strip_prefix("mailto:").unwrap_or(v);
            let ok = v.split_once('@').is_some_and(|(user, domain)| {
                !user.is_empty() && domain.contains('.') && !domain.starts_with('.')
            }) && !v
                .contains(|c: char| c.is_whitespace() || c == ',' || c == '<' || c == '>');
            if !ok {
                return Err(err(
                    "email",
                    format!("'{v}' is not an e-mail address; use e.g. admin@example.org, or leave it empty"),
                ));
            }
            Some(v.to_owned())
        }
    };
    let directory = match get("directory") {
        None => LETS_ENCRYPT_DIRECTORY.to_owned(),
        Some(v) => {
            let ok = v
                .parse::<http::Uri>()
                .is_ok_and(|u| u.scheme_str() == Some("https") && u.authority().is_some());
            if !ok {
                return Err(err(
                    "directory",
                    format!(
                        "'{v}' is not an https:// URL; give the ACME server's directory URL, e.g. {LETS_ENCRYPT_DIRECTORY}"
                    ),
                ));
            }
            v.to_owned()
        }
    };
    let ca_root = get("ca_root").map(|v| resolve(base_dir, v));
    let names = match get("names") {
        None => None,
        Some(v) => {
            let mut names: Vec<String> = Vec::new();
            for n in v.split([',', ' ']).filter(|s| !s.is_empty()) {
                let name = acme_name(n).map_err(|why| err("names", format!("'{n}' {why}")))?;
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            Some(names)
        }
    };
    let challenge = match get("challenge") {
        None => AcmeChallenges {
            http01: true,
            tls_alpn01: true,
        },
        Some(v) => {
            let mut c = AcmeChallenges {
                http01: false,
                tls_alpn01: false,
            };
            for t in v.split([',', ' ']).filter(|s| !s.is_empty()) {
                match t.to_ascii_lowercase().as_str() {
                    "http-01" => c.http01 = true,
                    "tls-alpn-01" => c.tls_alpn01 = true,
                    "both" => {
                        c.http01 = true;
                        c.tls_alpn01 = true;
                    }
                    _ => {
                        return Err(err(
                            "challenge",
                            format!(
                                "'{t}' is not a challenge type; use http-01, tls-alpn-01 or both"
                            ),
                        ))
                    }
                }
            }
            c
        }
    };
    Ok(AcmeSettings {
        email,
        directory,
        ca_root,
        names,
        challenge,
    })
}

/// One `[acme] names` entry as a DNS name: lowercase ASCII, an
/// internationalised name in punycode. IP addresses and wildcards are
/// refused (an SNI name is never an IP address; a wildcard needs DNS-01).
fn acme_name(n: &str) -> Result<String, &'static str> {
    if n == "+" || n == "*" || n.starts_with("*.") {
        return Err("is a wildcard; name each host (a wildcard certificate needs the DNS-01 challenge, which portshare does not answer)");
    }
    if crate::urlprefix::is_ip_literal(n) || n.parse::<std::net::IpAddr>().is_ok() {
        return Err(
            "is an IP address; give host names (TLS clients send names, not addresses, as SNI)",
        );
    }
    let ascii =
        idna::domain_to_ascii(n.trim_end_matches('.')).map_err(|_| "is not a valid host name")?;
    let labels_ok = !ascii.is_empty()
        && ascii.len() <= 253
        && ascii.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !labels_ok {
        return Err("is not a valid host name (letters, digits, hyphens and dots)");
    }
    Ok(ascii)
}

/// `[param] log_rollover`, `log_keep_days` and `log_max_size`, and `[http]
/// ErrorLogFileTruncateSize` (HTTP.sys's name; `parse_limits` has checked
/// that it is a whole number): when `crate::logs` rolls the files over.
fn parse_log_settings(
    p: &ParamKeys,
    http: &BTreeMap<String, String>,
) -> Result<super::settings::LogSettings, ConfigError> {
    use super::settings::{LogSettings, ERROR_LOG_TRUNCATE_SIZE_MIN};
    let mut logs = LogSettings::default();
    match p.get("log_rollover") {
        None | Some("daily") => {}
        Some("external") => logs.external_rollover = true,
        Some(v) => {
            return Err(p.err(
                "log_rollover",
                format!("'{v}' is not allowed; use daily (portshare rolls the files over at midnight and at their size limits) or external (logrotate renames them and sends SIGUSR1)"),
            ))
        }
    }
    if let Some(v) = p.get("log_keep_days") {
        // 100 years: a bound that keeps the arithmetic on dates safe.
        logs.keep_days = v.parse().ok().filter(|d| *d <= 36_500).ok_or_else(|| {
            p.err(
                "log_keep_days",
                format!("'{v}' is not a number of days; use 0 (keep for ever) to 36500"),
            )
        })?;
    }
    if let Some(v) = p.get("log_max_size") {
        logs.access_max_size = parse_size(v).ok_or_else(|| {
            p.err(
                "log_max_size",
                format!("'{v}' is not a size; use bytes, optionally with K, M or G (1024-based), or 0 (roll over only at midnight)"),
            )
        })?;
    }
    if let Some(v) = http.get("errorlogfiletruncatesize") {
        let v = v.trim();
        match v.parse::<u64>() {
            Ok(n) if (ERROR_LOG_TRUNCATE_SIZE_MIN..=u64::from(u32::MAX)).contains(&n) => {
                logs.error_max_size = n
            }
            _ => {
                return Err(ConfigError::Key {
                    file: p.file.to_owned(),
                    section: "http".into(),
                    key: "errorlogfiletruncatesize".into(),
                    message: format!(
                        "{v} is out of range; allowed: {ERROR_LOG_TRUNCATE_SIZE_MIN}-{} bytes (HTTP.sys allows no less than 1 MiB)",
                        u32::MAX
                    ),
                })
            }
        }
    }
    Ok(logs)
}

/// `123`, `64K`, `100M`, `1G` (1024-based, case-insensitive) → bytes.
fn parse_size(v: &str) -> Option<u64> {
    let (digits, unit) = match v.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_uppercase()),
        _ => (v, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => return None,
    };
    let n: u64 = digits.trim().parse().ok()?;
    n.checked_mul(1u64 << shift)
}

/// `[auth:NAME]`: `prefix` (one or more), `users` (an htpasswd file, relative
/// to GLOBAL.INI's folder), `realm` (default: NAME), `allow_http` and
/// `forward_auth` (default no). The users file itself is read when the
/// server starts (`crate::auth`), so that its errors name its lines.
fn parse_auth(
    file: &str,
    base_dir: &Path,
    section: &str,
    keys: &BTreeMap<String, String>,
) -> Result<super::AuthConfig, ConfigError> {
    let name = section.trim_start_matches("auth:").trim().to_owned();
    let err = |key: &str, message: String| ConfigError::Key {
        file: file.into(),
        section: section.into(),
        key: key.into(),
        message,
    };
    check_keys(
        file,
        section,
        keys,
        &["prefix", "realm", "users", "allow_http", "forward_auth"],
    )?;
    let prefixes = super::prefix_list(
        file,
        section,
        keys,
        " to protect, e.g. https://+:443/private/",
    )?;
    let users = keys
        .get("users")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(|v| resolve(base_dir, v))
        .ok_or_else(|| {
            err(
                "users",
                "is missing; give an htpasswd file, made with 'portshare user add --file FILE NAME'"
                    .into(),
            )
        })?;
    let realm = keys
        .get("realm")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| name.clone());
    // The realm goes into a quoted header parameter: no quote, backslash or
    // control character can be represented there safely.
    if realm
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        return Err(err(
            "realm",
            format!("'{realm}' contains a quote, a backslash or a control character"),
        ));
    }
    let flag = |key: &str| -> Result<bool, ConfigError> {
        match keys.get(key) {
            None => Ok(false),
            Some(v) => super::yes_no(v).ok_or_else(|| {
                err(
                    key,
                    format!("'{}' is not yes or no", v.trim().to_ascii_lowercase()),
                )
            }),
        }
    };
    Ok(super::AuthConfig {
        name,
        prefixes,
        realm,
        users,
        allow_http: flag("allow_http")?,
        forward_auth: flag("forward_auth")?,
    })
}
