//! Writing a response as hyper's HTTP/1.1 server would: the head byte for
//! byte (status line, title-cased fields, `Content-Length` or chunked,
//! `Connection: close`, `Date`) and then the body. Its own file because it
//! must follow hyper's encoder, and its tests check exactly that.

use http::header;
use http::{Response, StatusCode};
use http_body::Body as _;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use super::date::put_date;
use crate::body::Body;
use crate::proxy::list_items;

/// A body up to this size is copied behind the head for a single write.
const COPY_BODY_UP_TO: usize = 16 * 1024;

/// Writes the response; `Ok(false)` when the connection closes after it.
pub(super) async fn write_response<W>(
    io: &mut W,
    res: Response<Body>,
    head_request: bool,
    closing: bool,
    out: &mut Vec<u8>,
) -> std::io::Result<bool>
where
    W: AsyncWrite + Unpin,
{
    out.clear();
    let plan = encode_head(out, &res, head_request, closing);
    match res.into_body() {
        Body::Full(Some(data))
            if plan.send_body && !plan.chunked && data.len() <= COPY_BODY_UP_TO =>
        {
            out.extend_from_slice(&data);
            io.write_all(out).await?;
        }
        body @ (Body::Full(Some(_)) | Body::Stream(_)) if plan.send_body => {
            io.write_all(out).await?;
            crate::body::write_http1(io, body, plan.chunked).await?;
        }
        // No body, or none that may be sent (`HEAD`, 204, 304).
        _ => io.write_all(out).await?,
    }
    io.flush().await?;
    Ok(!plan.close)
}

/// How the body goes out after the head.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    send_body: bool,
    chunked: bool,
    /// `Connection: close`: the connection ends after this response.
    close: bool,
}

/// The response's length as hyper judges it from the body.
#[derive(Clone, Copy)]
enum Length {
    /// The body is at its end already.
    Empty,
    Known(u64),
    Unknown,
}

/// Writes the response head to `out` as hyper's HTTP/1.1 server does with
/// `title_case_headers` (the rest of the server's setting), for a `GET`
/// or `HEAD` from an HTTP/1.1 client. `closing`: the connection closes
/// after this response, which hyper announces with `Connection: close`.
/// Responses that reach it never carry `Transfer-Encoding` or `Trailer`
/// (hop-by-hop: the proxy leaves them out) or a 1xx status (the proxy
/// skips those), so hyper's handling of those is not followed.
fn encode_head(out: &mut Vec<u8>, res: &Response<Body>, head_request: bool, closing: bool) -> Plan {
    let status = res.status();
    let reason = res.extensions().get::<hyper::ext::ReasonPhrase>();
    if status == StatusCode::OK && reason.is_none() {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(match reason {
            Some(r) => r.as_bytes(),
            None => status.canonical_reason().unwrap_or("<none>").as_bytes(),
        });
        out.extend_from_slice(b"\r\n");
    }
    let body = res.body();
    let length = if body.is_end_stream() {
        Length::Empty
    } else {
        body.size_hint()
            .exact()
            .map_or(Length::Unknown, Length::Known)
    };
    let no_body_status = matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let mut plan = Plan {
        send_body: !head_request && !no_body_status,
        chunked: false,
        close: false,
    };

    let mut wrote_len = false;
    let mut wrote_date = false;
    let mut wrote_connection = false;
    // hyper writes the values of `Content-Length` and `Connection` as one
    // line: it stays open while further values of the same name follow.
    let mut line_open = false;
    let mut previous: Option<&header::HeaderName> = None;
    for (name, value) in res.headers() {
        // The values of one name come one after another, with the same key.
        if !previous.is_some_and(|p| std::ptr::eq(p, name)) {
            if line_open {
                out.extend_from_slice(b"\r\n");
                line_open = false;
            }
            previous = Some(name);
        }
        match *name {
            header::CONTENT_LENGTH => match length {
                Length::Known(_) | Length::Unknown => {
                    // The first value only; the proxy has checked that
                    // any others agree.
                    if !line_open && !wrote_len {
                        out.extend_from_slice(b"Content-Length: ");
                        out.extend_from_slice(value.as_bytes());
                        wrote_len = true;
                        line_open = true;
                    }
                    continue;
                }
                // No body: hyper drops the field, except for `HEAD`.
                Length::Empty if !head_request => continue,
                Length::Empty => wrote_len = true,
            },
            header::CONNECTION => {
                wrote_connection = true;
                plan.close |=
                    list_items(value.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"close"));
                if line_open {
                    out.extend_from_slice(b", ");
                } else {
                    out.extend_from_slice(b"Connection: ");
                    line_open = true;
                }
                out.extend_from_slice(value.as_bytes());
                continue;
            }
            header::DATE => wrote_date = true,
            _ => {}
        }
        title_case(out, name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if line_open {
        out.extend_from_slice(b"\r\n");
    }
    // hyper adds the field as the last one (the proxy's and HTTP.sys's
    // answers never have a `Connection` without `close`).
    if closing && !wrote_connection {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    plan.close |= closing;
    if !wrote_len {
        match length {
            Length::Unknown if plan.send_body => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                plan.chunked = true;
            }
            Length::Unknown => {}
            Length::Empty | Length::Known(0) => {
                if !head_request && !no_body_status {
                    out.extend_from_slice(b"Content-Length: 0\r\n");
                }
            }
            Length::Known(n) => {
                if !no_body_status {
                    out.extend_from_slice(b"Content-Length: ");
                    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
    }
    if !wrote_date {
        out.extend_from_slice(b"Date: ");
        put_date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    plan
}

/// A header name as hyper's `title_case_headers` writes it: each letter at
/// the start or after a `-` in upper case. Copied whole, then the few
/// letters raised: a byte-by-byte push cost about 100 instructions per
/// field (bench/instructions.sh).
fn title_case(out: &mut Vec<u8>, name: &[u8]) {
    let start = out.len();
    out.extend_from_slice(name);
    let written = &mut out[start..];
    if let Some(first) = written.first_mut() {
        first.make_ascii_uppercase();
    }
    for i in 1..written.len() {
        if written[i - 1] == b'-' {
            written[i].make_ascii_uppercase();
        }
    }
}

#[cfg(test)]
mod tests {
    //! The encoder against hyper itself: each response goes through a real
    //! hyper HTTP/1 server connection, set up as the server sets it up,
    //! and through [`write_response`]; the bytes must be the same.

    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use bytes::Bytes;
    use http::header::HeaderValue;
    use http_body::{Frame, SizeHint};
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::errors::HttpSysError;
    use crate::proxy::ProxyError;

    /// A streamed body; its length is known only if `exact`.
    struct Frames {
        frames: VecDeque<&'static str>,
        exact: Option<u64>,
    }

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            let next = self.get_mut().frames.pop_front();
            Poll::Ready(next.map(|f| Ok(Frame::data(Bytes::from_static(f.as_bytes())))))
        }

        fn size_hint(&self) -> SizeHint {
            self.exact
                .map_or_else(SizeHint::default, SizeHint::with_exact)
        }
    }

    fn stream(frames: &[&'static str], exact: bool) -> Body {
        let len = frames.iter().map(|f| f.len() as u64).sum();
        Body::stream(Frames {
            frames: frames.iter().copied().collect(),
            exact: exact.then_some(len),
        })
    }

    fn response(
        status: u16,
        headers: &[(&'static str, &'static str)],
        body: Body,
    ) -> Response<Body> {
        let mut res = Response::new(body);
        *res.status_mut() = StatusCode::from_u16(status).expect("status");
        for (name, value) in headers {
            res.headers_mut()
                .append(*name, HeaderValue::from_static(value));
        }
        res
    }

    /// The 29-character value of every `Date` field, blanked.
    fn undated(mut bytes: Vec<u8>) -> String {
        let mut at = 0;
        while let Some(i) = memchr::memmem::find(&bytes[at..], b"Date: ") {
            let start = at + i + 6;
            let end = (start + 29).min(bytes.len());
            bytes.splice(start..end, *b"<date>");
            at = start;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    const MARKER: &[u8] = b"HTTP/1.1 200 OK\r\nX-Marker: 1\r\n";

    /// What hyper writes for `make()` as the answer to `request`: the
    /// bytes before its answer to a second, marker request (or up to the
    /// end, when it closes the connection).
    async fn hyper_writes(request: &str, make: fn() -> Response<Body>) -> String {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let res = if req.uri().path() == "/marker" {
                response(200, &[("x-marker", "1")], Body::full("MARKER"))
            } else {
                make()
            };
            async move { Ok::<_, Infallible>(res) }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .title_case_headers(true)
                .serve_connection(TokioIo::new(server), svc),
        );
        let both = format!("{request}GET /marker HTTP/1.1\r\nHost: h\r\n\r\n");
        client.write_all(both.as_bytes()).await.expect("write");
        let mut got = Vec::new();
        let read = async {
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"MARKER") {
                match client.read(&mut buf).await.expect("read") {
                    0 => break,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("hyper answered");
        if let Some(at) = memchr::memmem::rfind(&got, MARKER) {
            got.truncate(at);
        }
        undated(got)
    }

    async fn direct_writes(res: Response<Body>, head: bool, closing: bool) -> (String, bool) {
        let mut out = Vec::new();
        let mut wire = Vec::new();
        let keep_alive = write_response(&mut wire, res, head, closing, &mut out)
            .await
            .expect("written");
        (undated(wire), keep_alive)
    }

    #[tokio::test]
    async fn writes_what_hyper_writes() {
        type Make = fn() -> Response<Body>;
        let cases: &[(&str, Make)] = &[
            ("full body", || {
                let h = [("content-type", "text/plain"), ("content-length", "2")];
                response(200, &h, Body::full("ok"))
            }),
            ("custom reason", || {
                let mut res = response(200, &[("content-length", "2")], Body::full("ok"));
                res.extensions_mut()
                    .insert(hyper::ext::ReasonPhrase::from_static(b"Fine"));
                res
            }),
            ("no standard reason", || response(299, &[], Body::full("x"))),
            ("not found, no length field", || {
                response(404, &[("server", "s")], Body::full("gone"))
            }),
            ("repeated and title-cased names", || {
                let h = [
                    ("set-cookie", "a=1"),
                    ("x-a1-b", "1"),
                    ("set-cookie", "b=2"),
                    ("www-authenticate", "Basic"),
                    ("content-length", "1"),
                    ("content-length", "1"),
                ];
                response(401, &h, Body::full("x"))
            }),
            ("the backend's date", || {
                let h = [
                    ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                    ("content-length", "1"),
                ];
                response(200, &h, Body::full("x"))
            }),
            ("empty body with a zero length", || {
                response(
                    200,
                    &[("content-length", "0"), ("x-after", "1")],
                    Body::empty(),
                )
            }),
            ("empty body without a length", || {
                response(200, &[("x", "1")], Body::empty())
            }),
            ("no content", || response(204, &[("x", "1")], Body::empty())),
            ("not modified", || {
                response(
                    304,
                    &[("etag", "\"1\""), ("content-length", "5")],
                    Body::empty(),
                )
            }),
            ("stream of unknown length", || {
                response(200, &[("x", "1")], stream(&["hello ", "", "world"], false))
            }),
            ("stream of known length", || {
                response(
                    200,
                    &[("content-length", "11")],
                    stream(&["hello ", "world"], true),
                )
            }),
            ("stream of known length, no field", || {
                response(200, &[], stream(&["hello ", "world"], true))
            }),
            ("HTTP.sys 503 page", || {
                HttpSysError::ServiceUnavailable.response()
            }),
            ("own 504 page", || {
                errors_page(&ProxyError::Timeout(Duration::from_secs(1)))
            }),
            ("own 502 page", || {
                errors_page(&ProxyError::BadResponse("x".into()))
            }),
        ];
        for (what, make) in cases {
            let get = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
            let (ours, _) = direct_writes(make(), false, false).await;
            assert_eq!(ours, hyper_writes(get, *make).await, "GET: {what}");

            let head = "HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n";
            let (ours, _) = direct_writes(make(), true, false).await;
            assert_eq!(ours, hyper_writes(head, *make).await, "HEAD: {what}");

            let close = "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
            let (ours, keep_alive) = direct_writes(make(), false, true).await;
            assert_eq!(ours, hyper_writes(close, *make).await, "close: {what}");
            assert!(!keep_alive, "{what}");
        }
    }

    fn errors_page(e: &ProxyError) -> Response<Body> {
        crate::errors::proxy_error_response(e)
    }

    #[tokio::test]
    async fn closes_after_a_page_that_says_so() {
        let (text, keep_alive) =
            direct_writes(HttpSysError::ServiceUnavailable.response(), false, false).await;
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(!keep_alive);
        let ok = response(200, &[("content-length", "2")], Body::full("ok"));
        let (text, keep_alive) = direct_writes(ok, false, false).await;
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: <date>\r\n\r\nok"
        );
        assert!(keep_alive);
    }

    #[test]
    fn title_case_follows_hyper() {
        let mut out = Vec::new();
        for name in ["x-a1-b", "www-authenticate", "etag", "-x", "a--b"] {
            title_case(&mut out, name.as_bytes());
            out.push(b' ');
        }
        assert_eq!(out, b"X-A1-B Www-Authenticate Etag -X A--B ");
    }
}
