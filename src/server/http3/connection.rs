//! One QUIC connection, from handshake to close, and its requests: each
//! request stream becomes a `Request<RequestBody>` for `dispatch::handle`
//! (the same routing, sites, proxy and access log as hyper's requests),
//! and the response is streamed back on it.
//!
//! Why requests get HTTP.sys's header-size checks here: over TCP the guard
//! reads every request head before hyper does; h3 decodes the head itself,
//! so the decoded fields are measured as HTTP.sys would measure the lines
//! they stand for, and a request over the limits gets the same page.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use h3::error::Code;
use h3::server::{RequestResolver, RequestStream};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use quinn::VarInt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;

use super::body::H3Body;
use super::Http3;
use crate::body::{Body, RequestBody};
use crate::config::Limits;
use crate::conn::ConnInfo;
use crate::dispatch::{self, Shared};
use crate::errors::HttpSysError;
use crate::logs::HttpErrRecord;
use crate::server::connection::Counted;
use crate::server::drain::Drained;

/// Bounds of the wait for a client to close after its last response.
const CLOSE_LINGER_MIN: Duration = Duration::from_millis(200);
const CLOSE_LINGER_MAX: Duration = Duration::from_secs(2);

type H3Conn = h3::server::Connection<h3_quinn::Connection, Bytes>;
type SendStream = RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;

/// Serves one accepted QUIC connection until it closes. `_slot` is its
/// MaxConnections permit, held for the connection's lifetime.
pub(super) async fn serve(
    connecting: quinn::Connecting,
    peer: SocketAddr,
    local: SocketAddr,
    ctx: Arc<Http3>,
    _slot: Option<OwnedSemaphorePermit>,
) {
    let _open = Counted::enter(&ctx.shared.open_connections);
    // Held until the connection is done: shutdown waits for it.
    let drain = ctx.drain.clone();
    let mut drained = Drained::new(&drain);
    let limits = ctx.shared.limits();
    let handshake_timeout = crate::tls::HANDSHAKE_TIMEOUT.min(limits.header_wait_timeout);
    let conn = tokio::select! {
        biased;
        () = &mut drained => return,
        done = tokio::time::timeout(handshake_timeout, connecting) => match done {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "QUIC handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "QUIC handshake timed out");
                return;
            }
        },
    };
    let info = Arc::new(ConnInfo::new(peer, local, true));
    // h3's own cap on a decoded head: above HTTP.sys's limits (checked per
    // request, with HTTP.sys's page), it only bounds memory.
    let field_section = (limits.max_request_bytes as u64)
        .saturating_mul(2)
        .max(64 * 1024);
    let built = h3::server::builder()
        .max_field_section_size(field_section)
        .build(h3_quinn::Connection::new(conn.clone()))
        .await;
    let mut h3: H3Conn = match built {
        Ok(h3) => h3,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "HTTP/3 connection setup failed");
            return;
        }
    };
    let mut requests = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = &mut drained => break,
            Some(_) = requests.join_next(), if !requests.is_empty() => {}
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    requests.spawn(serve_request(resolver, ctx.shared.clone(), info.clone()));
                }
                // The client said GOAWAY and its requests are answered.
                Ok(None) => {
                    while requests.join_next().await.is_some() {}
                    close_gently(&conn).await;
                    return;
                }
                Err(e) => {
                    // Idle timeout, the client closed, or a protocol
                    // error: the requests' streams are gone with it.
                    tracing::debug!(%peer, error = %e, "HTTP/3 connection ended");
                    return;
                }
            },
        }
    }
    // Shutdown: GOAWAY (no request after those accepted), the requests in
    // flight finish, then the connection closes cleanly.
    tracing::debug!(%peer, in_flight = requests.len(), "HTTP/3: shutdown, sending GOAWAY");
    // GOAWAY carries the first stream id that will *not* be processed
    // (RFC 9114 §5.2): one past the last accepted request, which h3 computes
    // as "last accepted + 1"; with 0 it would name the last accepted request
    // itself, telling the client it may retry a request that is served.
    if let Err(e) = h3.shutdown(1).await {
        tracing::debug!(%peer, error = %e, "sending GOAWAY failed");
    }
    while requests.join_next().await.is_some() {}
    close_gently(&conn).await;
}

/// Closes a connection whose requests are all answered. Closing at once
/// would discard response bytes not yet acknowledged (a QUIC close drops
/// unsent stream data, and h3 does not say when a stream's data has been
/// acknowledged), so the client, which closes once it has everything after
/// a GOAWAY, is given a few round trips to do so first.
async fn close_gently(conn: &quinn::Connection) {
    let linger = (conn.rtt() * 8).clamp(CLOSE_LINGER_MIN, CLOSE_LINGER_MAX);
    let _ = tokio::time::timeout(linger, conn.closed()).await;
    conn.close(VarInt::from_u32(Code::H3_NO_ERROR.value() as u32), b"");
}

/// Reads one request's head, dispatches it and streams the response back.
async fn serve_request(
    resolver: RequestResolver<h3_quinn::Connection, Bytes>,
    shared: Arc<Shared>,
    info: Arc<ConnInfo>,
) {
    let (req, stream) = match resolver.resolve_request().await {
        Ok(r) => r,
        Err(e) => {
            // A malformed head: h3 has reset the stream (or answered 431).
            tracing::debug!(peer = %info.peer, error = %e, "HTTP/3 request unreadable");
            return;
        }
    };
    let (mut send, recv) = stream.split();
    let head = req.method() == Method::HEAD;
    let res = match check_head(&req, &shared.limits()) {
        Ok(content_length) => {
            let (parts, ()) = req.into_parts();
            let body = RequestBody::stream(H3Body::new(recv, content_length));
            match dispatch::handle(shared, info.clone(), Request::from_parts(parts, body)).await {
                Ok(res) => res,
                Err(never) => match never {},
            }
        }
        Err(err) => {
            log_refused(&shared, &info, &req, err);
            err.response()
        }
    };
    if let Err(e) = respond(&mut send, res, head).await {
        tracing::debug!(peer = %info.peer, error = %e, "HTTP/3 response not sent");
    }
}

/// Header fields HTTP/3 forbids (connection-specific; RFC 9114 §4.2),
/// which HTTP/1 responses (HTTP.sys's pages, a backend's) may carry.
const CONNECTION_FIELDS: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Sends `res` on the request's stream: the head, then (except for HEAD
/// and bodiless statuses) the body as it comes, then the end of the stream.
async fn respond(
    send: &mut SendStream,
    res: Response<Body>,
    head: bool,
) -> Result<(), h3::error::StreamError> {
    let (mut parts, mut body) = res.into_parts();
    for name in CONNECTION_FIELDS {
        parts.headers.remove(name);
    }
    // hyper adds `Date` to every response; so does this side.
    if !parts.headers.contains_key(header::DATE) {
        if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now())) {
            parts.headers.insert(header::DATE, date);
        }
    }
    let bodiless = head
        || parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    send.send_response(Response::from_parts(parts, ())).await?;
    if !bodiless {
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            send.send_data(data).await?;
                        }
                    }
                }
                Err(e) => {
                    // The body failed midway (a backend that went away):
                    // the client must not take a cut body for a whole one.
                    tracing::debug!(error = %e, "HTTP/3 response body failed");
                    send.stop_stream(Code::H3_INTERNAL_ERROR);
                    return Ok(());
                }
            }
        }
    }
    send.finish().await
}

/// HTTP.sys's head limits, measured on the decoded head as the HTTP/1
/// lines it stands for: the request line against `MaxFieldLength` (as the
/// guard judges it), each field (`:authority` as `Host`) against
/// `MaxFieldLength`, the whole against `MaxRequestBytes`. Also the
/// `Content-Length`, if any: digits, one value. Returns the length.
fn check_head(req: &Request<()>, limits: &Limits) -> Result<Option<u64>, HttpSysError> {
    let target = req.uri().path_and_query().map_or(1, |pq| pq.as_str().len());
    // "METHOD TARGET HTTP/1.1"
    let request_line = req.method().as_str().len() + 1 + target + 9;
    if request_line > limits.max_field_length {
        return Err(HttpSysError::UrlTooLong);
    }
    let mut total = request_line + 2;
    if let Some(authority) = req.uri().authority() {
        total += field_line(limits, "host".len(), authority.as_str().len())?;
    }
    total += fields_size(req.headers(), limits)?;
    if total + 2 > limits.max_request_bytes {
        return Err(HttpSysError::RequestTooLong);
    }
    content_length(req.headers())
}

/// The size of `name: value\r\n`, if it is within `MaxFieldLength`.
fn field_line(limits: &Limits, name: usize, value: usize) -> Result<usize, HttpSysError> {
    let line = name + 2 + value;
    if line > limits.max_field_length {
        return Err(HttpSysError::FieldTooLong);
    }
    Ok(line + 2)
}

fn fields_size(headers: &HeaderMap, limits: &Limits) -> Result<usize, HttpSysError> {
    let mut total = 0;
    for (name, value) in headers {
        total += field_line(limits, name.as_str().len(), value.len())?;
    }
    Ok(total)
}

/// The request's `Content-Length`: digits only (a sign or spaces inside
/// are refused, as hyper refuses them), the same value if repeated.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, HttpSysError> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let v = value.as_bytes().trim_ascii();
        if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
            return Err(HttpSysError::BadRequest);
        }
        let n: u64 = std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or(HttpSysError::BadRequest)?;
        if length.is_some_and(|l| l != n) {
            return Err(HttpSysError::BadRequest);
        }
        length = Some(n);
    }
    Ok(length)
}

/// The httperr line for a request refused by the head checks, as the
/// guard writes one for HTTP/1.
fn log_refused(shared: &Shared, info: &ConnInfo, req: &Request<()>, err: HttpSysError) {
    let record = HttpErrRecord {
        client: info.peer,
        server: info.local,
        version: Some("HTTP/3.0"),
        method: Some(req.method().as_str()),
        uri: Some(req.uri().path()),
        status: Some(err.status().as_u16()),
        reason: err.reason(),
        queue: None,
    };
    shared.httperr_log.send(record.line());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, fields: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri(format!("https://site.test{path}"));
        for (n, v) in fields {
            b = b.header(*n, *v);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn head_limits_are_httpsys_s() {
        let limits = Limits {
            max_field_length: 100,
            max_request_bytes: 300,
            ..Limits::default()
        };
        assert_eq!(check_head(&request("/", &[]), &limits), Ok(None));
        let long = "a".repeat(100);
        assert_eq!(
            check_head(&request(&format!("/{long}"), &[]), &limits),
            Err(HttpSysError::UrlTooLong)
        );
        assert_eq!(
            check_head(&request("/", &[("x-long", &long)]), &limits),
            Err(HttpSysError::FieldTooLong)
        );
        let v = "b".repeat(80);
        assert_eq!(
            check_head(
                &request("/", &[("x-1", &v), ("x-2", &v), ("x-3", &v), ("x-4", &v)]),
                &limits
            ),
            Err(HttpSysError::RequestTooLong)
        );
        assert_eq!(
            check_head(&request("/", &[("content-length", "12")]), &limits),
            Ok(Some(12))
        );
        for bad in ["+12", "1 2", ""] {
            assert_eq!(
                check_head(&request("/", &[("content-length", bad)]), &limits),
                Err(HttpSysError::BadRequest),
                "{bad:?}"
            );
        }
        assert_eq!(
            check_head(
                &request("/", &[("content-length", "1"), ("content-length", "2")]),
                &limits
            ),
            Err(HttpSysError::BadRequest)
        );
    }
}
