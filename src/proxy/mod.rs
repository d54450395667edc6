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
//!   Framing is redone on each side.
//!
//! Bodies stream both ways without buffering: the client's request body is
//! handed to the backend connection as it arrives, and the backend's response
//! body to the client. `Upgrade` requests (WebSocket) keep their `Upgrade`
//! header; when the backend answers `101 Switching Protocols`, both
//! connections are taken over and bytes are copied between them.
//!
//! The client side of the forwarding (`connection`, `head`, `body`, `pool`)
//! is a small HTTP/1.1 client written for this one job rather than hyper's
//! client: the request head is written straight from the client's headers
//! with the edits above, in one write, and the response head is parsed once
//! (`httparse`) into the client's response; a request is sent and its answer
//! read by the task that received it, with no hand-off to a connection task.
//! That halved the CPU time per proxied request (bench/RESULTS.md, (f)).
//! Each backend keeps idle connections per worker runtime, reused last in,
//! first out; a request without a body that meets a connection the backend
//! has just closed is sent again on a new one. The time to the backend's response head is
//! bounded ([`DEFAULT_TIMEOUT`], `timeout=` in `[app:NAME]`): past it the
//! client gets 504. A backend that can't be reached or drops the connection
//! is "gone": the client gets HTTP.sys's 503 page, as when an application's
//! request queue has no process behind it. Turning errors into responses is
//! `errors::proxy_error_response`'s job.

mod body;
mod connection;
mod head;

pub use head::list_items;
mod pool;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::Authority;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt as _;
use tokio::time::Instant;

use crate::body::{Body, RequestBody};
use crate::compression::{self, CompressConfig, RequestFacts};
use crate::conn::ConnInfo;
use crate::headers::RequestFields;
use crate::workers::PerWorker;

use body::{Exchange, ResponseBody};
use connection::{Address, Connection, Upload};
use head::{BodyFraming, Framing, HeaderFields, RequestHead, ResponseHead};
use pool::Pool;

/// Time allowed for the backend's response head, unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// The request came back through this server's own proxy (the backend
    /// leads back to the server): 508 Loop Detected.
    #[error("the request has passed through this server before (Via); the backend leads back to the server")]
    Loop,
    /// The client's request body was malformed or cut short: the request
    /// failed through no fault of the backend's.
    #[error("the client's request body could not be read to its end")]
    ClientBody,
}

/// Where a backend listens, for checks made before it is used (who may
/// name it, whether it is this server itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendTarget<'a> {
    Tcp {
        host: &'a str,
        port: u16,
    },
    #[cfg(unix)]
    Unix(&'a std::path::Path),
}

/// Where an application listens, with its idle connections.
pub struct Backend {
    spec: Box<str>,
    address: Address,
    /// `Host` for requests that came without one (HTTP/1.0).
    own_host: Bytes,
    pools: PerWorker<Arc<Pool>>,
    timeout: Duration,
    /// Compression of the application's answers (`[app:]`'s `compress=`;
    /// on by default, so run-time registrations get it too).
    compress: CompressConfig,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("spec", &self.spec)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An exchange that failed before the response head; `retry` says the
/// request can safely go again on a new connection.
struct Failed {
    error: ProxyError,
    retry: bool,
}

/// When the wait for a response head ends: the backend's timeout from the
/// start of the request, for everything up to the head (opening a
/// connection, sending, a retry).
#[derive(Clone, Copy)]
struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    fn passed(self) -> ProxyError {
        ProxyError::Timeout(self.timeout)
    }
}

impl Backend {
    /// Parses `http://HOST[:PORT][/]`, `unix:/abs/path` or `/abs/path`
    /// (no connection is opened yet).
    pub fn parse(spec: &str) -> Result<Backend, ProxyError> {
        let spec = spec.trim();
        let invalid = |why| ProxyError::Invalid {
            spec: spec.to_owned(),
            why,
        };
        let (address, own_host) = if let Some(rest) = spec.strip_prefix("http://") {
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
            let host = authority.host();
            if host.is_empty() {
                return Err(ProxyError::BadBackend(spec.to_owned()));
            }
            // `[::1]` is connected to as `::1`.
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let address = Address::Tcp {
                host: host.into(),
                port: authority.port_u16().unwrap_or(80),
            };
            (
                address,
                Bytes::copy_from_slice(authority.as_str().as_bytes()),
            )
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
            (
                unix_address(path).map_err(invalid)?,
                Bytes::from_static(b"localhost"),
            )
        } else {
            return Err(ProxyError::BadBackend(spec.to_owned()));
        };
        Ok(Backend {
            spec: spec.into(),
            address,
            own_host,
            pools: PerWorker::new(Arc::default),
            timeout: DEFAULT_TIMEOUT,
            compress: CompressConfig::default(),
        })
    }

    /// The backend as configured.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Where the backend listens.
    pub fn target(&self) -> BackendTarget<'_> {
        match &self.address {
            Address::Tcp { host, port } => BackendTarget::Tcp { host, port: *port },
            #[cfg(unix)]
            Address::Unix(path) => BackendTarget::Unix(path),
        }
    }

    /// Time allowed for the backend's response head.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// How the application's answers are compressed (`compress=off`: not).
    pub fn set_compress(&mut self, compress: CompressConfig) {
        self.compress = compress;
    }

    /// Forwards one request and returns the backend's response, its body
    /// streaming. Only the response head is waited for.
    pub async fn forward(
        &self,
        mut req: Request<RequestBody>,
        conn: &ConnInfo,
    ) -> Result<Response<Body>, ProxyError> {
        if head::has_looped(&req.headers()) {
            return Err(ProxyError::Loop);
        }
        let upgrade = wants_upgrade(&req);
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let has_body = !body.is_end_stream();
        // The framing is the proxy's own, from the parsed message: a length
        // hyper has checked, else chunked. Never the client's header fields
        // as such (see `HopByHop`).
        let framing = match body.size_hint().exact() {
            Some(n) if parts.headers.contains_key(header::CONTENT_LENGTH) => BodyFraming::Length(n),
            _ if has_body => BodyFraming::Chunked,
            _ => BodyFraming::None,
        };
        let chunked = framing == BodyFraming::Chunked;
        // The host the client asked for: the absolute URI's or HTTP/2
        // `:authority`, else `Host` (the router's rule too).
        let client_host = match parts.uri.authority() {
            Some(a) => Some(a.as_str().as_bytes()),
            None => parts.headers.get(header::HOST).map(HeaderValue::as_bytes),
        };
        let mut head = self.request_head(
            &parts.method,
            parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
            &parts.headers,
            client_host,
            conn,
        );
        head.upgrade = upgrade;
        // HTTP/2 and HTTP/3 may split `Cookie` into several fields.
        head.join_cookies = matches!(parts.version, Version::HTTP_2 | Version::HTTP_3);
        head.body = framing;
        let head = head.encode();
        // A request without a body that fails on a reused connection before
        // any answer most likely met a connection the backend had just
        // closed; it goes again on a new one, unless it could have had an
        // effect that must not happen twice.
        let may_retry = !has_body && parts.method.is_idempotent();
        let facts = self.compress.enabled().then(|| {
            RequestFacts::from_headers(
                RequestFields::Map(&parts.headers),
                parts.method == Method::HEAD,
            )
        });
        let body = has_body.then_some((body, chunked));
        let (response, exchange) = self
            .send(&head, body, &parts.method, upgrade, may_retry)
            .await?;
        if response.status == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return Err(no_upgrade_asked());
            };
            tokio::spawn(tunnel(client_upgrade, exchange.conn));
            return Ok(client_response(response, Body::empty()));
        }
        let mut res = self.respond(response, exchange);
        if let Some(facts) = &facts {
            compression::compress_response(&self.compress, facts, &mut res);
        }
        Ok(res)
    }

    /// Forwards a request that has no body and asks for no protocol
    /// switch, given as the parts of its HTTP/1.1 head: what
    /// `server::direct` serves without hyper. `host` is the client's
    /// `Host`, if it sent one. The same request through [`Backend::forward`]
    /// reaches the backend as the same bytes.
    pub async fn forward_bodiless(
        &self,
        method: &Method,
        target: &str,
        fields: &[httparse::Header<'_>],
        host: Option<&[u8]>,
        conn: &ConnInfo,
    ) -> Result<Response<Body>, ProxyError> {
        if head::has_looped(&fields) {
            return Err(ProxyError::Loop);
        }
        let head = self
            .request_head(method, target, fields, host, conn)
            .encode();
        let (response, exchange) = self
            .send(&head, None, method, false, method.is_idempotent())
            .await?;
        if response.status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(no_upgrade_asked());
        }
        let mut res = self.respond(response, exchange);
        // The same hook as `forward`'s: `server::direct` writes whatever
        // body comes back (chunked when its length is unknown), so
        // compressed answers need no detour through hyper.
        if self.compress.enabled() {
            let facts =
                RequestFacts::from_headers(RequestFields::Parsed(fields), *method == Method::HEAD);
            compression::compress_response(&self.compress, &facts, &mut res);
        }
        Ok(res)
    }

    /// Sends `head` (and the body) on a pooled or new connection, retried
    /// once on a new one if `may_retry`, and waits for the response head.
    async fn send(
        &self,
        head: &Bytes,
        mut body: Option<(RequestBody, bool)>,
        method: &Method,
        upgrade: bool,
        may_retry: bool,
    ) -> Result<(ResponseHead, Exchange), ProxyError> {
        let deadline = Deadline {
            at: Instant::now() + self.timeout,
            timeout: self.timeout,
        };
        // Opening a connection is boxed: it is the rare case, and inline
        // its state would make every request's future larger.
        let open = || async {
            tokio::time::timeout_at(deadline.at, Box::pin(Connection::open(&self.address)))
                .await
                .map_err(|_| deadline.passed())?
        };
        let first = match self.pools.get().checkout() {
            Some(conn) => conn,
            None => open().await?,
        };
        let answered = match exchange(first, head, body.take(), method, upgrade, deadline).await {
            Err(Failed { retry: true, .. }) if may_retry => {
                exchange(open().await?, head, None, method, upgrade, deadline).await
            }
            result => result,
        };
        let (response, conn, upload) = answered.map_err(|f| f.error)?;
        Ok((response, Exchange { conn, upload }))
    }

    /// The client's response, its body read from `exchange` as the
    /// response head's framing says.
    fn respond(&self, response: ResponseHead, exchange: Exchange) -> Response<Body> {
        let pool = self.pools.get();
        let body = match response.framing {
            Framing::None | Framing::Length(0) => {
                exchange.finish(pool, response.keep_alive);
                Body::empty()
            }
            // The whole body is here already (the common small answer):
            // the connection goes back to the pool at once.
            Framing::Length(n) if (exchange.conn.buf.len() as u64) >= n => {
                let mut exchange = exchange;
                let data = exchange.conn.buf.split_to(n as usize).freeze();
                exchange.finish(pool, response.keep_alive);
                Body::full(data)
            }
            framing => Body::stream(ResponseBody::new(
                exchange,
                pool.clone(),
                framing,
                response.keep_alive,
            )),
        };
        client_response(response, body)
    }

    /// The request head as the backend gets it: same method, path and
    /// query, HTTP/1.1, hop-by-hop headers out, forwarding headers in.
    /// `client_host` is the host the client asked for; without one
    /// (HTTP/1.0), the backend's own name, as a client would send.
    fn request_head<'a, F: HeaderFields>(
        &'a self,
        method: &'a Method,
        target: &'a str,
        fields: F,
        client_host: Option<&'a [u8]>,
        conn: &'a ConnInfo,
    ) -> RequestHead<'a, F> {
        RequestHead {
            method,
            target,
            fields,
            host: client_host.unwrap_or(&self.own_host),
            client_host: client_host.is_some(),
            peer: &conn.client_ip,
            https: conn.https,
            upgrade: false,
            join_cookies: false,
            body: BodyFraming::None,
        }
    }
}

fn no_upgrade_asked() -> ProxyError {
    ProxyError::BadResponse("101 Switching Protocols to a request that asked for no upgrade".into())
}

type Answered = (ResponseHead, Connection, Option<Upload>);

/// Sends the request head (and starts the body upload) and reads the
/// response head, skipping interim 1xx answers other than `101`.
async fn exchange(
    mut conn: Connection,
    head: &Bytes,
    body: Option<(RequestBody, bool)>,
    method: &http::Method,
    upgrade: bool,
    deadline: Deadline,
) -> Result<Answered, Failed> {
    // A reused connection that fails before anything came back may be one
    // the backend closed while it was idle.
    let reused = conn.reused;
    let gone = |why: String, answered: bool| Failed {
        error: ProxyError::Gone(why),
        retry: reused && !answered,
    };
    let timed_out = Failed {
        error: deadline.passed(),
        retry: false,
    };
    let mut timer = conn.take_timer(deadline.at);
    // `biased`: the timer is only polled (and set to wake this task) when
    // the connection has to wait.
    let written = tokio::select! {
        biased;
        written = conn.write_all(head) => written,
        () = timer.as_mut() => return Err(timed_out),
    };
    if let Err(e) = written {
        return Err(gone(e.to_string(), false));
    }
    let upload = match (body, conn.writer.take()) {
        (Some((body, chunked)), Some(writer)) => Some(Upload::start(writer, body, chunked)),
        (_, writer) => {
            conn.writer = writer;
            None
        }
    };
    let mut answered = false;
    loop {
        if !conn.buf.is_empty() {
            answered = true;
            match head::parse_response(&mut conn.buf, method, upgrade) {
                Err(why) => {
                    return Err(Failed {
                        error: ProxyError::BadResponse(why),
                        retry: false,
                    })
                }
                Ok(Some(res))
                    if res.status.is_informational()
                        && res.status != StatusCode::SWITCHING_PROTOCOLS =>
                {
                    continue
                }
                Ok(Some(res)) => {
                    conn.return_timer(timer);
                    return Ok((res, conn, upload));
                }
                Ok(None) => {}
            }
        }
        let filled = tokio::select! {
            biased;
            filled = conn.fill() => filled,
            () = timer.as_mut() => return Err(timed_out),
        };
        let failure = match filled {
            Ok(0) => "the connection was closed before a response head".to_owned(),
            Ok(_) => continue,
            Err(e) => e.to_string(),
        };
        if upload.as_ref().is_some_and(Upload::client_failed) {
            // The backend gave up on a body that broke off.
            return Err(Failed {
                error: ProxyError::ClientBody,
                retry: false,
            });
        }
        return Err(gone(failure, answered));
    }
}

/// The client's response: the backend's status, reason and headers.
fn client_response(head: ResponseHead, body: Body) -> Response<Body> {
    let mut out = Response::new(body);
    *out.status_mut() = head.status;
    *out.headers_mut() = head.headers;
    if let Some(reason) = head.reason {
        out.extensions_mut().insert(reason);
    }
    out
}

#[cfg(unix)]
fn unix_address(path: &str) -> Result<Address, &'static str> {
    if path.is_empty() {
        return Err("the Unix socket path is empty (unix:/path/app.sock)");
    }
    if !path.starts_with('/') {
        return Err("the Unix socket path must be absolute (unix:/path/app.sock)");
    }
    Ok(Address::Unix(path.into()))
}

#[cfg(not(unix))]
fn unix_address(_path: &str) -> Result<Address, &'static str> {
    Err("Unix-socket backends are not supported on this system; use http://127.0.0.1:PORT")
}

/// Copies bytes both ways once both sides have switched protocols; what
/// the backend sent right after its `101` goes to the client first.
async fn tunnel(client: hyper::upgrade::OnUpgrade, backend: Connection) {
    let client = match client.await {
        Ok(client) => client,
        Err(e) => {
            tracing::debug!(error = %e, "protocol switch through the proxy failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let (early, reader, writer) = backend.into_parts();
    let Some(writer) = writer else { return };
    let mut backend = tokio::io::join(reader, writer);
    let result = async {
        client.write_all(&early).await?;
        tokio::io::copy_bidirectional(&mut client, &mut backend).await
    };
    if let Err(e) = result.await {
        tracing::debug!(error = %e, "upgraded connection ended with an error");
    }
}

/// An HTTP/1.1 request with `Upgrade` and `Connection: upgrade`.
fn wants_upgrade(req: &Request<RequestBody>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| list_items(v.as_bytes()))
            .any(|t| t.eq_ignore_ascii_case(b"upgrade"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backends() {
        let b = Backend::parse("http://127.0.0.1:3000").expect("tcp");
        assert_eq!(b.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(&b.own_host[..], b"127.0.0.1:3000");
        let b = Backend::parse("http://[::1]:3000/").expect("ipv6");
        assert!(matches!(&b.address, Address::Tcp { host, port: 3000 } if &**host == "::1"));
        let b = Backend::parse("http://localhost").expect("name");
        assert!(matches!(&b.address, Address::Tcp { host, port: 80 } if &**host == "localhost"));
        assert!(Backend::parse("http://localhost:3000").is_ok());
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
            assert!(matches!(&b.address, Address::Unix(p) if p.as_os_str() == "/run/app.sock"));
            assert_eq!(&b.own_host[..], b"localhost");
        }
    }
}
