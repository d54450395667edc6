//! The heads of forwarded messages: the request head as the backend gets it
//! (written straight into one buffer), and the backend's response head
//! parsed into what the client gets plus how its body is framed.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1) are left out while copying in
//! either direction rather than removed afterwards.

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::{BufMut as _, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

/// A response head larger than this is refused.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Header fields allowed in a response head (hyper's limit too).
const MAX_RESPONSE_HEADERS: usize = 100;

/// The headers that belong to one connection, not to the message:
/// `Connection` and each header it names, `Keep-Alive`, `Proxy-Connection`,
/// `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade` (unless the exchange is a
/// protocol switch), and `Proxy-Authorization`/`Proxy-Authenticate`
/// (portshare is not a forward proxy, so proxy credentials are never meant
/// for the application).
///
/// `Connection` may name any other header, except those the proxy itself
/// decides: the message's framing (`Content-Length`; `Transfer-Encoding` is
/// always dropped and re-made), `Host` and the forwarding headers. Honouring
/// `Connection: content-length` would forward a body with no length, which
/// the backend then reads as a second request (request smuggling).
pub(super) struct HopByHop<'a> {
    named: Vec<&'a [u8]>,
    keep_upgrade: bool,
}

/// The items of a comma-separated field value (`Connection`,
/// `Content-Length` lists), trimmed; empty items are kept.
pub fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

impl<'a> HopByHop<'a> {
    /// From the message's `Connection` field values.
    pub(super) fn new(connection: impl Iterator<Item = &'a [u8]>, keep_upgrade: bool) -> Self {
        let named = connection
            .flat_map(list_items)
            .filter(|t| !t.is_empty())
            .collect();
        HopByHop {
            named,
            keep_upgrade,
        }
    }

    /// Whether `name` (in lower case) is hop-by-hop.
    pub(super) fn contains(&self, name: &[u8]) -> bool {
        match name {
            b"connection"
            | b"keep-alive"
            | b"proxy-connection"
            | b"te"
            | b"trailer"
            | b"transfer-encoding"
            | b"proxy-authorization"
            | b"proxy-authenticate" => true,
            b"upgrade" => !self.keep_upgrade,
            b"content-length" | b"host" | b"x-forwarded-for" | b"x-forwarded-host"
            | b"x-forwarded-proto" => false,
            _ => self.named.iter().any(|t| t.eq_ignore_ascii_case(name)),
        }
    }

    /// Whether `Connection` named `token` (`close`, `keep-alive`).
    pub(super) fn names(&self, token: &str) -> bool {
        self.named
            .iter()
            .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    }
}

/// What the backend is told about the request besides its own headers.
pub(super) struct RequestHead<'a, F> {
    pub method: &'a Method,
    /// Path and query, as the client sent them.
    pub target: &'a str,
    /// The client's header fields, `(name, value)`, names in any case.
    pub fields: F,
    /// `Host` to send: the client's, else the backend's own name.
    pub host: &'a [u8],
    /// Whether `host` is the client's (then also `X-Forwarded-Host`).
    pub client_host: bool,
    /// The client's address ([`ConnInfo::client_ip`](crate::conn::ConnInfo::client_ip)).
    pub peer: &'a str,
    pub https: bool,
    /// A protocol switch: `Upgrade` is kept and `Connection: upgrade` sent.
    pub upgrade: bool,
    /// An HTTP/2 request, whose `cookie` may come in several fields.
    pub join_cookies: bool,
    /// How the forwarded body is delimited: decided from the parsed message,
    /// never copied from the client's header fields.
    pub body: BodyFraming,
}

/// How a forwarded request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// The client sent no framing header: no body.
    None,
    /// `Content-Length` (hyper has checked that the body is that long).
    Length(u64),
    /// A body of unknown length (HTTP/1.1 chunked, or HTTP/2 without
    /// `content-length`): sent chunked.
    Chunked,
}

/// A request's header fields as `(name, value)`, names in any case: a
/// parsed request's (hyper) or a raw head's (`httparse`, `server::direct`).
pub(super) trait HeaderFields {
    fn each(&self) -> impl Iterator<Item = (&[u8], &[u8])>;
}

impl HeaderFields for &HeaderMap {
    fn each(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
    }
}

impl HeaderFields for &[httparse::Header<'_>] {
    fn each(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.iter().map(|h| (h.name.as_bytes(), h.value))
    }
}

impl<F: HeaderFields> RequestHead<'_, F> {
    /// The head as HTTP/1.1 bytes: the client's headers (names in lower
    /// case) without hop-by-hop ones and without the forwarding headers,
    /// which are then written anew: `X-Forwarded-For` gets the peer
    /// appended to the list so far.
    pub(super) fn encode(&self) -> Bytes {
        let hop = HopByHop::new(
            self.fields
                .each()
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
                .map(|(_, v)| v),
            self.upgrade,
        );
        let size: usize = self.fields.each().map(|(n, v)| n.len() + v.len() + 4).sum();
        let mut buf = BytesMut::with_capacity(size + self.target.len() + 2 * self.host.len() + 160);

        buf.put_slice(self.method.as_str().as_bytes());
        buf.put_u8(b' ');
        buf.put_slice(self.target.as_bytes());
        buf.put_slice(b" HTTP/1.1\r\nhost: ");
        buf.put_slice(self.host);
        buf.put_slice(b"\r\n");

        let mut forwarded_for: Vec<&[u8]> = Vec::new();
        let mut cookies: Vec<&[u8]> = Vec::new();
        let mut scratch = [0u8; 64];
        let mut spill = Vec::new();
        for (name, value) in self.fields.each() {
            let name = lowercase(name, &mut scratch, &mut spill);
            if matches!(
                name,
                b"host" | b"x-forwarded-host" | b"x-forwarded-proto" | b"content-length"
            ) || hop.contains(name)
            {
                continue;
            }
            match name {
                b"x-forwarded-for" => {
                    let v = value.trim_ascii();
                    if !v.is_empty() {
                        forwarded_for.push(v);
                    }
                }
                b"cookie" if self.join_cookies => cookies.push(value),
                _ => put_field(&mut buf, name, value),
            }
        }
        if !cookies.is_empty() {
            // RFC 9113 §8.2.3: HTTP/1.1 wants one field, joined with "; ".
            put_field(&mut buf, b"cookie", &cookies.join(&b"; "[..]));
        }
        if self.client_host {
            put_field(&mut buf, b"x-forwarded-host", self.host);
        }
        buf.put_slice(b"x-forwarded-for: ");
        for v in forwarded_for {
            buf.put_slice(v);
            buf.put_slice(b", ");
        }
        buf.put_slice(self.peer.as_bytes());
        buf.put_slice(b"\r\n");
        let proto: &[u8] = if self.https { b"https" } else { b"http" };
        put_field(&mut buf, b"x-forwarded-proto", proto);
        // RFC 9110 §7.6.3; the token also lets this server see a request
        // that has come back to it (a backend that is the server itself).
        put_field(&mut buf, b"via", own_via());
        if self.upgrade {
            put_field(&mut buf, b"connection", b"upgrade");
        }
        match self.body {
            BodyFraming::None => {}
            BodyFraming::Length(n) => {
                put_field(
                    &mut buf,
                    b"content-length",
                    itoa::Buffer::new().format(n).as_bytes(),
                );
            }
            BodyFraming::Chunked => put_field(&mut buf, b"transfer-encoding", b"chunked"),
        }
        buf.put_slice(b"\r\n");
        buf.freeze()
    }
}

/// This server's `Via` entry: `1.1 portshare-<token>`, the token random per
/// process, so that two portshare servers chained on purpose do not see
/// each other's requests as loops.
pub(super) fn own_via() -> &'static [u8] {
    static VIA: std::sync::OnceLock<Box<[u8]>> = std::sync::OnceLock::new();
    VIA.get_or_init(|| {
        use std::hash::{BuildHasher as _, Hasher as _};
        // RandomState is seeded from the OS's random source.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        format!("1.1 portshare-{:016x}", h.finish())
            .into_bytes()
            .into()
    })
}

/// Whether the request has passed through this server's proxy before
/// (its `Via` carries this server's entry): forwarding it again would loop.
pub(super) fn has_looped<F: HeaderFields>(fields: &F) -> bool {
    let own = own_via();
    let token = &own[4..]; // after "1.1 "
    fields.each().any(|(name, value)| {
        name.eq_ignore_ascii_case(b"via") && value.windows(token.len()).any(|w| w == token)
    })
}

/// `name` in lower case: in `scratch` when it fits (header names nearly
/// always do), else in `spill`.
fn lowercase<'b>(name: &[u8], scratch: &'b mut [u8; 64], spill: &'b mut Vec<u8>) -> &'b [u8] {
    match scratch.get_mut(..name.len()) {
        Some(out) => {
            out.copy_from_slice(name);
            out.make_ascii_lowercase();
            out
        }
        None => {
            *spill = name.to_ascii_lowercase();
            spill
        }
    }
}

fn put_field(buf: &mut BytesMut, name: &[u8], value: &[u8]) {
    buf.put_slice(name);
    buf.put_slice(b": ");
    buf.put_slice(value);
    buf.put_slice(b"\r\n");
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body: a `HEAD` request, 1xx, 204, 304.
    None,
    Length(u64),
    Chunked,
    /// Until the backend closes the connection.
    UntilClose,
}

/// A response head as the client gets it.
pub(super) struct ResponseHead {
    pub status: StatusCode,
    /// The backend's reason phrase when it is not the standard one.
    pub reason: Option<hyper::ext::ReasonPhrase>,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The connection can take another request after this response.
    pub keep_alive: bool,
}

/// Parses a response head at the start of `buf` and removes it from there:
/// `Ok(None)` while it is incomplete. `switching` says the request asked
/// for a protocol switch, so `Upgrade` is kept on a `101`.
pub(super) fn parse_response(
    buf: &mut BytesMut,
    method: &Method,
    switching: bool,
) -> Result<Option<ResponseHead>, String> {
    // Parsed once, in place. The fields are kept as positions so that,
    // once the head is split off and frozen, header values share its bytes
    // instead of each being copied.
    let (len, code, version, reason, spans) = {
        // Uninitialised: httparse fills what it uses, and setting up a
        // hundred empty fields for every response would cost more than
        // parsing a typical head.
        let mut fields =
            [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut res,
            buf,
            &mut fields,
        ) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
                return Err(format!(
                    "the response head is larger than {} KiB",
                    MAX_RESPONSE_HEAD / 1024
                ))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(format!("unparsable response head: {e}")),
        };
        // Within the head, so every span indexes the frozen head safely.
        let parsed = &buf[..len];
        let span = |part: &[u8]| span_in(parsed, part);
        let spans: Vec<FieldSpan> = res
            .headers
            .iter()
            .map(|h| FieldSpan {
                name: span(h.name.as_bytes()),
                value: span(h.value),
            })
            .collect();
        let reason = res.reason.map(|r| span(r.as_bytes()));
        (
            len,
            res.code.unwrap_or_default(),
            res.version,
            reason,
            spans,
        )
    };
    let head = buf.split_to(len).freeze();
    let status = StatusCode::from_u16(code).map_err(|_| format!("invalid status code {code}"))?;
    let reason = match reason.map(|r| head.slice(r)) {
        Some(r)
            if Some(&r[..]) != status.canonical_reason().map(str::as_bytes) && !r.is_empty() =>
        {
            hyper::ext::ReasonPhrase::try_from(r).ok()
        }
        _ => None,
    };

    let fields = &spans[..];
    let bytes: &[u8] = &head;
    let field = |name: &'static str| {
        fields
            .iter()
            .filter(move |f| bytes[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(move |f| &bytes[f.value.clone()])
    };
    let hop = HopByHop::new(field("connection"), switching && code == 101);
    let chunked = field("transfer-encoding").next_back().map(|v| {
        v.rsplit(|&b| b == b',')
            .next()
            .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"))
    });
    let length = content_length(field("content-length"))?;
    let no_body = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = match (no_body, chunked, length) {
        (true, _, _) => Framing::None,
        (false, Some(true), _) => Framing::Chunked,
        (false, Some(false), _) => Framing::UntilClose,
        (false, None, Some(n)) => Framing::Length(n),
        (false, None, None) => Framing::UntilClose,
    };
    let keep_alive = version == Some(1)
        && !hop.names("close")
        && framing != Framing::UntilClose
        // Both framings given: the message is suspect (RFC 9112 §6.3).
        && !(chunked.is_some() && length.is_some());

    let mut headers = HeaderMap::with_capacity(fields.len());
    for f in fields {
        let raw_name = &bytes[f.name.clone()];
        let shown = || String::from_utf8_lossy(raw_name);
        let name = HeaderName::from_bytes(raw_name)
            .map_err(|_| format!("invalid header name {:?}", shown()))?;
        if hop.contains(name.as_str().as_bytes())
            || (name == header::CONTENT_LENGTH && chunked.is_some())
        {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(head.slice(f.value.clone()))
            .map_err(|_| format!("invalid value in header {:?}", shown()))?;
        headers.append(name, value);
    }
    if switching && code == 101 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    Ok(Some(ResponseHead {
        status,
        reason,
        headers,
        framing,
        keep_alive,
    }))
}

/// Where a header's name and value lie in the response head.
struct FieldSpan {
    name: Range<usize>,
    value: Range<usize>,
}

/// The position of `part`, a slice httparse returned, within `buf`.
fn span_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    match (part.as_ptr() as usize).checked_sub(buf.as_ptr() as usize) {
        Some(start) if start + part.len() <= buf.len() => start..start + part.len(),
        // Not within `buf`: only an empty part may point elsewhere.
        _ => 0..0,
    }
}

/// `Content-Length`: several fields or a list are fine if all agree.
fn content_length<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Option<u64>, String> {
    let mut length = None;
    for v in values.flat_map(list_items) {
        let n = std::str::from_utf8(v)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| format!("invalid Content-Length {:?}", String::from_utf8_lossy(v)))?;
        if length.is_some_and(|l| l != n) {
            return Err("conflicting Content-Length values".into());
        }
        length = Some(n);
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_text(headers: &HeaderMap, upgrade: bool, join_cookies: bool) -> String {
        let head = RequestHead {
            method: &Method::GET,
            target: "/api/x?y=1",
            fields: headers,
            host: b"example.test:8080",
            client_host: true,
            peer: "10.1.2.3",
            https: false,
            upgrade,
            join_cookies,
            body: BodyFraming::None,
        };
        String::from_utf8(head.encode().to_vec()).expect("text")
    }

    #[test]
    fn request_head_drops_hop_by_hop_and_adds_forwarding() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("ignored"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Keep-Alive, X-Custom"),
        );
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("x-other, upgrade"),
        );
        for (name, value) in [
            ("x-custom", "1"),
            ("x-other", "1"),
            ("x-kept", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic eDp5"),
            ("x-forwarded-host", "spoofed"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "1.1.1.1"),
        ] {
            h.append(name, HeaderValue::from_static(value));
        }
        h.append("x-forwarded-for", HeaderValue::from_static(" 2.2.2.2 "));
        let via = String::from_utf8_lossy(own_via());
        assert_eq!(
            request_text(&h, false, false),
            format!(
                "GET /api/x?y=1 HTTP/1.1\r\nhost: example.test:8080\r\nx-kept: 1\r\n\
                 x-forwarded-host: example.test:8080\r\nx-forwarded-for: 1.1.1.1, 2.2.2.2, 10.1.2.3\r\n\
                 x-forwarded-proto: http\r\nvia: {via}\r\n\r\n"
            )
        );
        assert!(via.starts_with("1.1 portshare-"), "{via}");
        let switching = request_text(&h, true, false);
        assert!(
            switching.contains("\r\nupgrade: websocket\r\n"),
            "{switching}"
        );
        assert!(
            switching.ends_with("connection: upgrade\r\n\r\n"),
            "{switching}"
        );
    }

    #[test]
    fn a_request_that_carries_this_servers_via_has_looped() {
        let mut h = HeaderMap::new();
        h.append("via", HeaderValue::from_static("1.0 fred, 1.1 p.example"));
        assert!(!has_looped(&&h));
        let own = HeaderValue::from_bytes(own_via()).expect("via");
        h.append("via", own);
        assert!(has_looped(&&h));
    }

    #[test]
    fn request_head_joins_http2_cookies() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        let text = request_text(&h, false, true);
        assert!(text.contains("\r\ncookie: a=1; b=2\r\n"), "{text}");
        let text = request_text(&h, false, false);
        assert!(
            text.contains("\r\ncookie: a=1\r\ncookie: b=2\r\n"),
            "{text}"
        );
    }

    fn parse(text: &str, method: &Method) -> Result<Option<ResponseHead>, String> {
        parse_response(&mut BytesMut::from(text), method, false)
    }

    #[test]
    fn response_framing() {
        let ok = |text: &str| parse(text, &Method::GET).expect("valid").expect("complete");
        let r = ok("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!((r.framing, r.keep_alive), (Framing::Length(2), true));
        assert!(r.reason.is_none());
        let r = ok("HTTP/1.1 200 Fine\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!((r.framing, r.keep_alive), (Framing::Chunked, true));
        assert_eq!(r.reason.as_ref().map(|r| r.as_bytes()), Some(&b"Fine"[..]));
        assert!(r.headers.get(header::TRANSFER_ENCODING).is_none());
        let r = ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n");
        assert_eq!((r.framing, r.keep_alive), (Framing::Chunked, false));
        assert!(r.headers.get(header::CONTENT_LENGTH).is_none());
        let r = ok("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((r.framing, r.keep_alive), (Framing::UntilClose, false));
        let r = ok("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!((r.framing, r.keep_alive), (Framing::None, true));
        let r = ok("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nConnection: close\r\n\r\n");
        assert_eq!((r.framing, r.keep_alive), (Framing::Length(7), false));
        let r = ok("HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\n");
        assert!(!r.keep_alive);
        let r = parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n",
            &Method::HEAD,
        )
        .expect("valid")
        .expect("complete");
        assert_eq!(r.framing, Framing::None);
        assert_eq!(r.headers[header::CONTENT_LENGTH], "7");

        assert!(parse("HTTP/1.1 200 OK\r\nContent-Le", &Method::GET)
            .expect("valid")
            .is_none());
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            assert!(parse(bad, &Method::GET).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn response_head_drops_hop_by_hop() {
        let text = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade, X-Resp-Hop\r\n\
                    Upgrade: websocket\r\nX-Resp-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: 1\r\n\r\n";
        let r = parse_response(&mut BytesMut::from(text), &Method::GET, true)
            .expect("valid")
            .expect("complete");
        let mut names: Vec<_> = r.headers.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["connection", "upgrade", "x-kept"]);
        let r = parse(text, &Method::GET).expect("valid").expect("complete");
        let names: Vec<_> = r.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }
}
