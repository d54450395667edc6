//! The script's environment: the variables every run gets (built once, by
//! `Cgi::new`) and the RFC 3875 meta-variables of one request, including
//! which request headers become `HTTP_*`.

use std::ffi::OsString;
use std::path::Path;

use http::header;

use super::{Cgi, ScriptTarget};
use crate::config::Settings;
use crate::site::SiteRequest;

/// `PATH` for scripts when the server itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Variables Windows programs need to start at all.
#[cfg(windows)]
const WINDOWS_VARS: &[&str] = &["SYSTEMROOT", "WINDIR", "COMSPEC", "PATHEXT", "TEMP", "TMP"];

/// Variables that are the same for every request.
pub(super) fn base_env(settings: &Settings, root: &Path) -> Vec<(OsString, OsString)> {
    let mut base_env: Vec<(OsString, OsString)> = Vec::new();
    let path = std::env::var_os("PATH")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PATH.into());
    base_env.push(("PATH".into(), path));
    #[cfg(windows)]
    for name in WINDOWS_VARS {
        if let Some(v) = std::env::var_os(name) {
            base_env.push((OsString::from(*name), v));
        }
    }
    base_env.push(("GATEWAY_INTERFACE".into(), "CGI/1.1".into()));
    base_env.push((
        "SERVER_SOFTWARE".into(),
        concat!("portshare/", env!("CARGO_PKG_VERSION")).into(),
    ));
    base_env.push(("DOCUMENT_ROOT".into(), root.as_os_str().to_owned()));
    base_env.push(("REDIRECT_STATUS".into(), "200".into()));
    if let Some(dir) = &settings.log_dir {
        // `dir` is absolute already (resolved with the configuration), so a
        // folder that does not exist yet (the first start) stays absolute too.
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        base_env.push(("PORTSHARE_LOG_DIR".into(), dir.into_os_string()));
    }
    base_env
}

impl Cgi {
    /// The meta-variables of one request (RFC 3875 section 4.1).
    pub(super) fn environment(
        &self,
        req: &SiteRequest<'_>,
        target: &ScriptTarget,
    ) -> Vec<(OsString, OsString)> {
        let mut env = self.base_env.clone();
        let mut set = |name: &str, value: OsString| env.push((name.into(), value));
        let conn = req.conn;
        set("REQUEST_METHOD", req.method.as_str().into());
        set("QUERY_STRING", req.query.unwrap_or("").into());
        let mut uri = req.raw_path.to_owned();
        if let Some(q) = req.query {
            uri.push('?');
            uri.push_str(q);
        }
        set("REQUEST_URI", uri.into());
        set("SCRIPT_NAME", target.script_name.clone().into());
        set("SCRIPT_FILENAME", target.file.clone().into_os_string());
        if !target.path_info.is_empty() {
            set("PATH_INFO", target.path_info.clone().into());
            let mut translated = self.document_root.clone().into_os_string();
            translated.push(&target.path_info);
            set("PATH_TRANSLATED", translated);
        }
        set("SERVER_PROTOCOL", "HTTP/1.1".into());
        let host = req
            .headers
            .get_str(&header::HOST)
            .map(host_without_port)
            .filter(|h| !h.is_empty());
        let local_ip = conn.local.ip().to_canonical();
        set(
            "SERVER_NAME",
            host.map_or_else(|| local_ip.to_string(), str::to_owned)
                .into(),
        );
        set("SERVER_ADDR", local_ip.to_string().into());
        set("SERVER_PORT", conn.local.port().to_string().into());
        set(
            "REMOTE_ADDR",
            conn.peer.ip().to_canonical().to_string().into(),
        );
        set("REMOTE_PORT", conn.peer.port().to_string().into());
        set(
            "REQUEST_SCHEME",
            if conn.https { "https" } else { "http" }.into(),
        );
        if conn.https {
            set("HTTPS", "on".into());
        }
        // RFC 3875 4.1.1 and 4.1.11: the scheme and user the server checked.
        if let Some(user) = req.remote_user {
            set("AUTH_TYPE", "Basic".into());
            set("REMOTE_USER", user.into());
        }
        if let Some(v) = req.headers.get(&header::CONTENT_LENGTH) {
            set("CONTENT_LENGTH", env_value(v));
        }
        if let Some(v) = req.headers.get(&header::CONTENT_TYPE) {
            set("CONTENT_TYPE", env_value(v));
        }
        for name in req.headers.names() {
            let n = name.as_str();
            if n.contains('_')
                || matches!(
                    n,
                    "authorization"
                        | "proxy-authorization"
                        | "content-length"
                        | "content-type"
                        | "proxy"
                )
            {
                continue;
            }
            let separator: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
            let mut value = Vec::new();
            for (i, v) in req.headers.get_all(&name).enumerate() {
                if i > 0 {
                    value.extend_from_slice(separator);
                }
                value.extend_from_slice(v);
            }
            let var = format!("HTTP_{}", n.to_ascii_uppercase().replace('-', "_"));
            set(&var, env_value(&value));
        }
        env
    }
}

/// `host[:port]` or `[v6]:port` → the host part.
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    host.split_once(':').map_or(host, |(h, _)| h)
}

/// A header value as an environment value: bytes as they are on Unix,
/// lossy UTF-8 on Windows (whose environment is UTF-16).
fn env_value(bytes: &[u8]) -> OsString {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        OsString::from_vec(bytes.to_vec())
    }
    #[cfg(not(unix))]
    {
        String::from_utf8_lossy(bytes).into_owned().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_is_dropped() {
        assert_eq!(host_without_port("example.com:8080"), "example.com");
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("example.com"), "example.com");
    }
}
