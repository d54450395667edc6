//! Reverse proxy to registered application backends.
//!
//! An application (`[app:NAME]` in GLOBAL.INI, or later a process on the
//! control channel) owns URL prefixes; requests routed to it are forwarded to
//! its backend, which is either
//!
//! - `http://HOST:PORT` (an IP address or a host name; port 80 if left out;
//!   a trailing `/` is allowed but no other path), or
//! - a Unix socket, written `unix:/run/app.sock` or just the absolute path
//!   `/run/app.sock` (both are accepted; Unix only — on Windows such a
//!   backend is refused when the configuration is read).
//!
//! What the application sees, chosen to match what an HTTP.sys application
//! would see:
//!
//! - The full original path and query (`/api/x?y=1` for the prefix
//!   `http://+:8080/api/`): no prefix stripping, since HTTP.sys hands the
//!   whole URL to the application.
//! - The original `Host` (for HTTP/2 clients, the `:authority`), not the
//!   backend's address. `X-Forwarded-Host` carries it too, `X-Forwarded-For`
//!   gets the client address appended (`client, proxy1, …, peer`) and
//!   `X-Forwarded-Proto` is `http` or `https`.
//! - Always HTTP/1.1, whatever the client spoke (HTTP/2 requests are
//!   forwarded as HTTP/1.1; their split `cookie` fields are joined).
//! - No hop-by-hop headers, in either direction: `Connection` and every
//!   header it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
//!   `Transfer-Encoding`, `Upgrade`, `Proxy-Authorization` and
//!   `Proxy-Authenticate` (RFC 2616 §13.5.1; portshare is not a forward
//!   proxy, so proxy credentials are never meant for the application).
//!   Framing is redone by hyper on each side.
//!
//! Bodies stream both ways without buffering: the client's request body is
//! handed to the backend connection as it arrives, and the backend's response
//! body to the client. `Upgrade` requests (WebSocket) keep their `Upgrade`
//! header; when the backend answers `101 Switching Protocols`, both
//! connections are taken over from hyper and bytes are copied between them.
//!
//! Each backend has a pooled hyper client per worker runtime, so
//! connections to the backend are kept alive and reused, and a request is
//! forwarded by the thread that received it. The time to the backend's response head is
//! bounded ([`DEFAULT_TIMEOUT`], `timeout=` in `[app:NAME]`): past it the
//! client gets 504. A backend that can't be reached or drops the connection
//! is "gone": the client gets HTTP.sys's 503 page, as when an application's
//! request queue has no process behind it. Turning errors into responses is
//! `errors::proxy_error_response`'s job.

use std::fmt;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::server::workers::PerWorker;

use crate::body::Body;
use crate::dispatch::ConnInfo;

/// Time allowed for the backend's response head, unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed to open a TCP connection to the backend.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle keep-alive connection to a backend is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static HTTP: HeaderValue = HeaderValue::from_static("http");
static HTTPS: HeaderValue = HeaderValue::from_static("https");
static UPGRADE: HeaderValue = HeaderValue::from_static("upgrade");

/// Hop-by-hop headers removed in both directions (besides those named by
/// `Connection`, and `Upgrade` unless the exchange is an upgrade).
static HOP_BY_HOP: [&HeaderName; 8] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::PROXY_AUTHORIZATION,
    &header::PROXY_AUTHENTICATE,
];

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("backend '{0}' is not http://HOST:PORT or a Unix socket path (unix:/path/app.sock or /path/app.sock)")]
    BadBackend(String),
    #[error("backend '{spec}': {why}")]
    Invalid { spec: String, why: &'static str },
    /// The backend could not be connected to (refused, no such socket,
    /// connect timeout, name not resolved).
    #[error("the backend is not reachable: {0}")]
    Unreachable(String),
    /// The connection to the backend broke before a response head came.
    #[error("the backend closed the connection: {0}")]
    Gone(String),
    /// The backend sent something that is not an HTTP/1.1 response.
    #[error("the backend sent an invalid response: {0}")]
    BadResponse(String),
    /// No response head within the backend's timeout.
    #[error("the backend did not answer within {0:?}")]
    Timeout(Duration),
}

/// Where an application listens, with the pooled client that talks to it.
pub struct Backend {
    spec: Box<str>,
    target: Target,
    timeout: Duration,
}

/// One pool per worker runtime: a pooled connection is driven by the
/// runtime that opened it, so sharing one pool would bounce every request
/// between threads.
enum Target {
    Tcp {
        client: PerWorker<Client<HttpConnector, Incoming>>,
        authority: Authority,
    },
    #[cfg(unix)]
    Unix {
        client: PerWorker<Client<unix::UnixConnector, Incoming>>,
    },
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("spec", &self.spec)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn client_builder() -> hyper_util::client::legacy::Builder {
    let mut b = Client::builder(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        // The original Host is forwarded; see `prepare_request`.
        .set_host(false);
    b
}

impl Backend {
    /// Parses `http://HOST[:PORT][/]`, `unix:/abs/path` or `/abs/path` and
    /// builds the backend's connection pool (no connection is opened yet).
    pub fn parse(spec: &str) -> Result<Backend, ProxyError> {
        let spec = spec.trim();
        let invalid = |why| ProxyError::Invalid {
            spec: spec.to_owned(),
            why,
        };
        let target = if let Some(rest) = spec.strip_prefix("http://") {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            if rest.contains('/') {
                return Err(invalid(
                    "give no path: requests keep their full original path (http://HOST:PORT)",
                ));
            }
            if rest.contains('@') {
                return Err(invalid(
                    "user information is not allowed (http://HOST:PORT)",
                ));
            }
            let authority: Authority = rest
                .parse()
                .map_err(|_| ProxyError::BadBackend(spec.to_owned()))?;
            if authority.host().is_empty() {
                return Err(ProxyError::BadBackend(spec.to_owned()));
            }
            Target::Tcp {
                client: PerWorker::new(|| {
                    let mut connector = HttpConnector::new();
                    connector.set_nodelay(true);
                    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
                    client_builder().build(connector)
                }),
                authority,
            }
        } else if spec.starts_with("https://") {
            return Err(invalid(
                "HTTPS to a backend is not supported; use http://HOST:PORT or a Unix socket",
            ));
        } else if let Some(path) = spec
            .strip_prefix("unix:")
            .or_else(|| spec.starts_with('/').then_some(spec))
        {
            // `unix:///run/app.sock` is `unix:` + `//` + the path.
            let path = path.strip_prefix("//").unwrap_or(path);
            unix_target(path).map_err(invalid)?
        } else {
            return Err(ProxyError::BadBackend(spec.to_owned()));
        };
        Ok(Backend {
            spec: spec.into(),
            target,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The backend as configured.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Time allowed for the backend's response head.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Forwards one request and returns the backend's response, its body
    /// streaming. Only the response head is waited for.
    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        conn: &ConnInfo,
    ) -> Result<Response<Body>, ProxyError> {
        let upgrade = wants_upgrade(&req);
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let out = self.prepare_request(req, conn, upgrade);
        let pending = match &self.target {
            Target::Tcp { client, .. } => client.get().request(out),
            #[cfg(unix)]
            Target::Unix { client } => client.get().request(out),
        };
        let mut res = match tokio::time::timeout(self.timeout, pending).await {
            Err(_) => return Err(ProxyError::Timeout(self.timeout)),
            Ok(Err(e)) => return Err(classify(&e)),
            Ok(Ok(res)) => res,
        };
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return Err(ProxyError::BadResponse(
                    "101 Switching Protocols to a request that asked for no upgrade".into(),
                ));
            };
            let backend_upgrade = hyper::upgrade::on(&mut res);
            tokio::spawn(tunnel(client_upgrade, backend_upgrade));
        }
        Ok(prepare_response(res))
    }

    /// The request as the backend gets it: same method, path and query,
    /// HTTP/1.1, hop-by-hop headers out, forwarding headers in, the body
    /// passed through untouched.
    fn prepare_request(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
        upgrade: bool,
    ) -> Request<Incoming> {
        let (parts, body) = req.into_parts();
        let http::request::Parts {
            method,
            uri,
            version,
            mut headers,
            ..
        } = parts;

        strip_hop_by_hop(&mut headers, upgrade);
        if upgrade {
            headers.insert(header::CONNECTION, UPGRADE.clone());
        }

        // The host the client asked for: the absolute URI's or HTTP/2
        // `:authority`, else `Host` (the router's rule too).
        let host = match uri.authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => headers.get(header::HOST).cloned(),
        };
        match host {
            Some(host) => {
                headers.insert(&X_FORWARDED_HOST, host.clone());
                headers.insert(header::HOST, host);
            }
            None => {
                // HTTP/1.0 without Host: name the backend, as a client would.
                headers.remove(&X_FORWARDED_HOST);
                let backend_host = match &self.target {
                    Target::Tcp { authority, .. } => HeaderValue::from_str(authority.as_str()).ok(),
                    #[cfg(unix)]
                    Target::Unix { .. } => Some(HeaderValue::from_static("localhost")),
                };
                if let Some(h) = backend_host {
                    headers.insert(header::HOST, h);
                }
            }
        }
        if version == Version::HTTP_2 {
            join_cookies(&mut headers);
        }
        append_forwarded_for(&mut headers, conn);
        let proto = if conn.https { &HTTPS } else { &HTTP };
        headers.insert(&X_FORWARDED_PROTO, proto.clone());

        let mut out = Request::new(body);
        *out.method_mut() = method;
        *out.uri_mut() = self.target_uri(uri.path_and_query());
        *out.headers_mut() = headers;
        out
    }

    /// The absolute URI the pooled client needs (it picks the connection by
    /// scheme and authority and sends only the path and query).
    fn target_uri(&self, pq: Option<&PathAndQuery>) -> Uri {
        let authority = match &self.target {
            Target::Tcp { authority, .. } => authority.clone(),
            #[cfg(unix)]
            Target::Unix { .. } => Authority::from_static("localhost"),
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(authority);
        parts.path_and_query = Some(
            pq.cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        // Scheme, authority and path are each valid, so this cannot fail;
        // fall back to the bare authority rather than panic.
        Uri::from_parts(parts).unwrap_or_default()
    }
}

#[cfg(unix)]
fn unix_target(path: &str) -> Result<Target, &'static str> {
    if path.is_empty() {
        return Err("the Unix socket path is empty (unix:/path/app.sock)");
    }
    if !path.starts_with('/') {
        return Err("the Unix socket path must be absolute (unix:/path/app.sock)");
    }
    let path = path.to_owned();
    Ok(Target::Unix {
        client: PerWorker::new(move || client_builder().build(unix::UnixConnector::new(&path))),
    })
}

#[cfg(not(unix))]
fn unix_target(_path: &str) -> Result<Target, &'static str> {
    Err("Unix-socket backends are not supported on this system; use http://127.0.0.1:PORT")
}

/// The client response: status, headers without hop-by-hop ones, body
/// streaming. The backend's own reason phrase is kept.
fn prepare_response(res: Response<Incoming>) -> Response<Body> {
    let (mut parts, body) = res.into_parts();
    let upgraded = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    strip_hop_by_hop(&mut parts.headers, upgraded);
    if upgraded {
        parts.headers.insert(header::CONNECTION, UPGRADE.clone());
    }
    let body = if body.is_end_stream() {
        Body::empty()
    } else {
        Body::stream(body.map_err(io::Error::other))
    };
    let mut out = Response::new(body);
    *out.status_mut() = parts.status;
    *out.headers_mut() = parts.headers;
    if let Some(reason) = parts.extensions.remove::<hyper::ext::ReasonPhrase>() {
        out.extensions_mut().insert(reason);
    }
    out
}

/// Copies bytes both ways once both sides have switched protocols.
async fn tunnel(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade) {
    match tokio::join!(client, backend) {
        (Ok(client), Ok(backend)) => {
            let mut client = TokioIo::new(client);
            let mut backend = TokioIo::new(backend);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                tracing::debug!(error = %e, "upgraded connection ended with an error");
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!(error = %e, "protocol switch through the proxy failed");
        }
    }
}

/// An HTTP/1.1 request with `Upgrade` and `Connection: upgrade`.
fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
}

/// Removes hop-by-hop headers: those named by `Connection`, the fixed list,
/// and `Upgrade` unless `keep_upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let mut values = headers.get_all(header::CONNECTION).iter();
    if let Some(first) = values.next().cloned() {
        // Usually one value; more only with repeated Connection lines.
        let more: Vec<HeaderValue> = values.cloned().collect();
        for value in std::iter::once(&first).chain(&more) {
            for token in value.as_bytes().split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.is_empty()
                    || token.eq_ignore_ascii_case(b"close")
                    || token.eq_ignore_ascii_case(b"keep-alive")
                    || (keep_upgrade && token.eq_ignore_ascii_case(b"upgrade"))
                {
                    continue;
                }
                if let Ok(name) = std::str::from_utf8(token) {
                    // Looked up case-insensitively; no allocation.
                    headers.remove(name);
                }
            }
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if !keep_upgrade {
        headers.remove(header::UPGRADE);
    }
}

/// HTTP/2 may split `cookie` into several fields; HTTP/1.1 wants one,
/// joined with "; " (RFC 9113 §8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let Some(first) = values.next() else { return };
    let mut rest = values.peekable();
    if rest.peek().is_none() {
        return;
    }
    let mut joined = first.as_bytes().to_vec();
    for v in rest {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(joined)) {
        headers.insert(header::COOKIE, v);
    }
}

/// `X-Forwarded-For`: the existing list (all its lines), then the peer.
fn append_forwarded_for(headers: &mut HeaderMap, conn: &ConnInfo) {
    use std::io::Write as _;
    let ip = conn.peer.ip().to_canonical();
    let mut value = Vec::with_capacity(48);
    for v in headers.get_all(&X_FORWARDED_FOR) {
        let v = v.as_bytes().trim_ascii();
        if !v.is_empty() {
            value.extend_from_slice(v);
            value.extend_from_slice(b", ");
        }
    }
    let _ = write!(value, "{ip}");
    match HeaderValue::from_maybe_shared(Bytes::from(value)) {
        Ok(v) => {
            headers.insert(&X_FORWARDED_FOR, v);
        }
        Err(_) => {
            // An earlier hop's value that isn't a valid field value: replace it.
            if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
                headers.insert(&X_FORWARDED_FOR, v);
            }
        }
    }
}

/// Sorts a client error into "can't connect", "bad answer" and "gone".
fn classify(e: &hyper_util::client::legacy::Error) -> ProxyError {
    use std::error::Error as _;
    let mut text = String::new();
    let mut parse_error = false;
    let mut source = e.source();
    while let Some(s) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s.to_string());
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            parse_error |= h.is_parse() || h.is_parse_status() || h.is_parse_too_large();
        }
        source = s.source();
    }
    if text.is_empty() {
        text = e.to_string();
    }
    if e.is_connect() {
        ProxyError::Unreachable(text)
    } else if parse_error {
        ProxyError::BadResponse(text)
    } else {
        ProxyError::Gone(text)
    }
}

#[cfg(unix)]
mod unix {
    //! A connector for the pooled client that ignores the URI and connects
    //! to one Unix socket.

    use std::future::Future;
    use std::io;
    use std::path::Path;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use http::Uri;
    use hyper_util::rt::TokioIo;
    use tokio::net::UnixStream;

    #[derive(Clone)]
    pub(super) struct UnixConnector {
        path: Arc<Path>,
    }

    impl UnixConnector {
        pub(super) fn new(path: &str) -> UnixConnector {
            UnixConnector {
                path: Arc::from(Path::new(path)),
            }
        }
    }

    type Connecting = Pin<Box<dyn Future<Output = io::Result<TokioIo<UnixStream>>> + Send>>;

    impl tower_service::Service<Uri> for UnixConnector {
        type Response = TokioIo<UnixStream>;
        type Error = io::Error;
        type Future = Connecting;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _dst: Uri) -> Connecting {
            let path = self.path.clone();
            Box::pin(async move {
                UnixStream::connect(&*path)
                    .await
                    .map(TokioIo::new)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backends() {
        let b = Backend::parse("http://127.0.0.1:3000").expect("tcp");
        assert_eq!(b.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(
            b.target_uri(Some(&PathAndQuery::from_static("/api/x?y=1"))),
            "http://127.0.0.1:3000/api/x?y=1"
        );
        assert!(Backend::parse("http://[::1]:3000/").is_ok());
        assert!(Backend::parse("http://localhost:3000").is_ok());
        assert!(Backend::parse("http://localhost").is_ok());
        for bad in [
            "",
            "127.0.0.1:3000",
            "http://",
            "http://127.0.0.1:3000/app",
            "http://u@h:1",
            "https://127.0.0.1:3000",
            "unix:",
            "unix:relative.sock",
            "ftp://x",
        ] {
            assert!(Backend::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[cfg(unix)]
    #[test]
    fn parses_unix_backends() {
        for ok in [
            "unix:/run/app.sock",
            "/run/app.sock",
            "unix:///run/app.sock",
        ] {
            let b = Backend::parse(ok).expect(ok);
            assert_eq!(b.target_uri(None), "http://localhost/");
        }
    }

    #[test]
    fn strips_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Keep-Alive, X-Custom"),
        );
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("x-other, upgrade"),
        );
        h.insert("x-custom", HeaderValue::from_static("1"));
        h.insert("x-other", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        let mut kept = h.clone();
        strip_hop_by_hop(&mut h, false);
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
        strip_hop_by_hop(&mut kept, true);
        let mut names: Vec<_> = kept.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["upgrade", "x-kept"]);
    }

    #[test]
    fn joins_cookies() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
    }

    #[test]
    fn appends_forwarded_for() {
        let conn = ConnInfo {
            peer: "[::ffff:10.1.2.3]:5000".parse().expect("addr"),
            local: "127.0.0.1:80".parse().expect("addr"),
            https: false,
        };
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, &conn);
        assert_eq!(h[&X_FORWARDED_FOR], "10.1.2.3");
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("1.1.1.1"));
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("2.2.2.2"));
        append_forwarded_for(&mut h, &conn);
        assert_eq!(h[&X_FORWARDED_FOR], "1.1.1.1, 2.2.2.2, 10.1.2.3");
    }
}
