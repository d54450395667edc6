//! Pure checks on a request head, complete or partial: where it ends, the
//! limits HTTP.sys applies to it, its request line and fields, and the
//! escaping of its target for hyper. No I/O and no state, so each check is
//! unit-tested here on plain bytes; [`super::Guarded`] calls them as the
//! bytes arrive.

use bytes::{Bytes, BytesMut};

use super::Phase;
use crate::config::Limits;
use crate::errors::HttpSysError;

/// Bytes HTTP.sys takes in a URL but hyper's parsers refuse (httparse in
/// the request line, `http::Uri` in the path or query), which hyper would
/// answer with a bare `400` and no log line. Browsers send them
/// percent-encoded; so, from here on, does portshare.
const ESCAPED_IN_TARGET: [bool; 256] = {
    let mut table = [false; 256];
    let set = b"\"<>\\^`{|}";
    let mut i = 0;
    while i < set.len() {
        table[set[i] as usize] = true;
        i += 1;
    }
    table
};

/// The checked head, its request target's [`ESCAPED_IN_TARGET`] bytes
/// percent-encoded (a new buffer only when there are any).
pub(super) fn escape_target(head: BytesMut) -> Bytes {
    let line_end = memchr::memchr(b'\n', &head).unwrap_or(head.len());
    let Some(start) = memchr::memchr(b' ', &head[..line_end]).map(|i| i + 1) else {
        return head.freeze();
    };
    let end = memchr::memchr(b' ', &head[start..line_end]).map_or(line_end, |i| start + i);
    let target = &head[start..end];
    if !target
        .iter()
        .fold(false, |any, &b| any | ESCAPED_IN_TARGET[usize::from(b)])
    {
        return head.freeze();
    }
    let mut out = BytesMut::with_capacity(head.len() + 16);
    out.extend_from_slice(&head[..start]);
    for &b in target {
        if ESCAPED_IN_TARGET[usize::from(b)] {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            out.extend_from_slice(&[b]);
        }
    }
    out.extend_from_slice(&head[end..]);
    out.freeze()
}

/// End of the head including the blank line, as httparse (and so hyper and
/// `server::direct`) finds it: a line end (`\n` or `\r\n`) followed by an
/// empty line (`\n` or `\r\n`), in any mix, so `\n\r\n` ends a head too.
/// Were the two to disagree, a request pipelined after such a head would
/// reach hyper without being checked. One pass over the line ends.
pub(super) fn find_head_end(b: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', b).find_map(|i| match b.get(i + 1) {
        Some(b'\n') => Some(i + 2),
        Some(b'\r') if b.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

pub(super) fn first_line(b: &[u8]) -> &[u8] {
    let end = b
        .iter()
        .position(|c| *c == b'\r' || *c == b'\n')
        .unwrap_or(b.len());
    &b[..end.min(2048)]
}

/// Limits that can be judged before the head is complete, in HTTP.sys's
/// order: the request line, then one header line, then the whole head.
pub(super) fn partial_head_error(b: &[u8], limits: &Limits) -> Option<HttpSysError> {
    let mut ends = memchr::memchr_iter(b'\n', b);
    let Some(first_end) = ends.next() else {
        return (b.len() > limits.max_field_length).then_some(HttpSysError::UrlTooLong);
    };
    if first_end > limits.max_field_length {
        return Some(HttpSysError::UrlTooLong);
    }
    let mut start = first_end + 1;
    let mut longest = 0;
    for end in ends {
        longest = longest.max(end - start);
        start = end + 1;
    }
    longest = longest.max(b.len() - start);
    if longest > limits.max_field_length {
        return Some(HttpSysError::FieldTooLong);
    }
    (b.len() > limits.max_request_bytes).then_some(HttpSysError::RequestTooLong)
}

pub(super) struct RequestLine<'a> {
    pub(super) method: &'a str,
    pub(super) target: &'a str,
    pub(super) version: &'a str,
}

impl<'a> RequestLine<'a> {
    /// Exactly three parts, separated by single spaces.
    pub(super) fn parse(line: &'a str) -> Option<RequestLine<'a>> {
        let (method, rest) = line.split_at(memchr::memchr(b' ', line.as_bytes())?);
        let rest = &rest[1..];
        let (target, version) = rest.split_at(memchr::memchr(b' ', rest.as_bytes())?);
        let version = &version[1..];
        if memchr::memchr(b' ', version.as_bytes()).is_some() {
            return None;
        }
        Some(RequestLine {
            method,
            target,
            version,
        })
    }
}

/// RFC 9110 `tchar`, by byte value.
pub(super) const TOKEN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

pub(super) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| TOKEN_BYTES[usize::from(b)])
}

/// A control character other than tab. A fold rather than `any`: without
/// an early exit the loop is vectorised, and a bad byte is the rare case.
pub(super) fn has_control(value: &[u8]) -> bool {
    value.iter().fold(false, |bad, &b| {
        bad | ((b < 0x20) & (b != b'\t')) | (b == 0x7f)
    })
}

/// Checks a complete head; on success returns the phase for what follows.
/// Works on bytes, one pass per line: it runs for every request.
pub(super) fn check_head(head: &[u8], limits: &Limits) -> Result<Phase, HttpSysError> {
    // No line is longer than the whole head: a short head needs no scan.
    if head.len() > limits.max_field_length.min(limits.max_request_bytes) {
        if let Some(err) = partial_head_error(head, limits) {
            return Err(err);
        }
    }
    let text = std::str::from_utf8(head).map_err(|_| HttpSysError::BadRequest)?;
    let (request_line, fields) = match memchr::memchr(b'\n', head) {
        Some(i) => (&text[..i], &head[i + 1..]),
        None => (text, &[][..]),
    };
    let request_line = request_line.strip_suffix('\r').unwrap_or(request_line);
    let rl = RequestLine::parse(request_line).ok_or(HttpSysError::BadRequest)?;
    if !is_token(rl.method.as_bytes()) {
        return Err(HttpSysError::BadRequest);
    }
    match rl.version {
        "HTTP/1.1" | "HTTP/1.0" => {}
        v if v.starts_with("HTTP/") && v.len() == 8 => {
            return Err(HttpSysError::VersionNotSupported)
        }
        _ => return Err(HttpSysError::BadRequest),
    }
    check_target(rl.target, rl.method, limits)?;

    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut upgrade = false;
    let mut start = 0;
    while start < fields.len() {
        let end = memchr::memchr(b'\n', &fields[start..]).map_or(fields.len(), |i| start + i);
        let line = &fields[start..end];
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.len() > limits.max_field_length {
            return Err(HttpSysError::FieldTooLong);
        }
        let colon = memchr::memchr(b':', line).ok_or(HttpSysError::InvalidHeader)?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if !is_token(name) {
            return Err(HttpSysError::InvalidHeader);
        }
        if has_control(value) {
            return Err(HttpSysError::InvalidHeader);
        }
        let value = value.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            // Digits only: `u64::from_str` would also take a sign, which
            // hyper refuses.
            let n: u64 = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse().ok())
                .ok_or(HttpSysError::BadRequest)?;
            if content_length.is_some_and(|c| c != n) {
                return Err(HttpSysError::BadRequest);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = value.rsplit(|b| *b == b',').next().unwrap_or(b"");
            if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(HttpSysError::BadRequest);
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = true;
        }
    }
    if chunked && content_length.is_some() {
        return Err(HttpSysError::BadRequest);
    }
    // After an upgrade request or CONNECT the bytes may stop being HTTP/1,
    // but only once the switch is answered (a request with a body never
    // switches here: WebSocket and CONNECT have none).
    let bodiless = !chunked && content_length.unwrap_or(0) == 0;
    if bodiless && (upgrade || rl.method == "CONNECT") {
        return Ok(Phase::AwaitSwitch {
            connect: rl.method == "CONNECT",
        });
    }
    Ok(match (chunked, content_length) {
        (true, _) => Phase::ChunkSize,
        (false, Some(n)) if n > 0 => Phase::Body(n),
        _ => Phase::Head,
    })
}

/// The request target: origin-form, absolute-form, or `*` for OPTIONS;
/// segment length and count limits.
fn check_target(target: &str, method: &str, limits: &Limits) -> Result<(), HttpSysError> {
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(())
        } else {
            Err(HttpSysError::InvalidUrl)
        };
    }
    let path = if target.starts_with('/') {
        target
    } else {
        let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
        let rest = if lower.starts_with("http://") {
            &target[7..]
        } else if lower.starts_with("https://") {
            &target[8..]
        } else {
            return Err(HttpSysError::InvalidUrl);
        };
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        }
    };
    // Spaces, controls, DEL and non-ASCII. A fold, as in `has_control`.
    if target
        .bytes()
        .fold(false, |bad, b| bad | (b <= 0x20) | (b >= 0x7f))
    {
        return Err(HttpSysError::InvalidUrl);
    }
    let path = path.as_bytes();
    let path = &path[..memchr::memchr2(b'?', b'#', path).unwrap_or(path.len())];
    // `path` starts with '/': each further '/' (and the end) closes a segment.
    let mut count = 0usize;
    let mut segment_start = 1;
    for end in memchr::memchr_iter(b'/', path)
        .skip(1)
        .chain(std::iter::once(path.len()))
    {
        count += 1;
        if end - segment_start > limits.url_segment_max_length {
            return Err(HttpSysError::InvalidUrl);
        }
        segment_start = end + 1;
    }
    if count > limits.url_segment_max_count {
        return Err(HttpSysError::InvalidUrl);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(head: &str) -> Result<Phase, HttpSysError> {
        check_head(head.as_bytes(), &Limits::default())
    }

    #[test]
    fn heads() {
        assert_eq!(check("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(Phase::Head));
        assert_eq!(
            check("POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            Ok(Phase::Body(5))
        );
        assert_eq!(
            check("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(Phase::ChunkSize)
        );
        assert_eq!(
            check("GET / HTTP/2.0\r\n\r\n"),
            Err(HttpSysError::VersionNotSupported)
        );
        assert_eq!(check("GET / FOO\r\n\r\n"), Err(HttpSysError::BadRequest));
        assert_eq!(
            check("G(T / HTTP/1.1\r\n\r\n"),
            Err(HttpSysError::BadRequest)
        );
        assert_eq!(
            check("GET x HTTP/1.1\r\n\r\n"),
            Err(HttpSysError::InvalidUrl)
        );
        assert_eq!(
            check("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"),
            Err(HttpSysError::InvalidHeader)
        );
        assert_eq!(
            check("GET / HTTP/1.1\r\nNoColon\r\n\r\n"),
            Err(HttpSysError::InvalidHeader)
        );
        let long_seg = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(261));
        assert_eq!(check(&long_seg), Err(HttpSysError::InvalidUrl));
        let many = format!("GET {} HTTP/1.1\r\n\r\n", "/a".repeat(256));
        assert_eq!(check(&many), Err(HttpSysError::InvalidUrl));
        assert_eq!(
            check("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HttpSysError::BadRequest)
        );
        assert_eq!(
            check("POST / HTTP/1.1\nTransfer-Encoding: gzip , Chunked \nContent-length:\t7\n\n"),
            Err(HttpSysError::BadRequest),
            "chunked with a length"
        );
        assert_eq!(
            check("POST / HTTP/1.1\nTransfer-Encoding: gzip , Chunked \n\n"),
            Ok(Phase::ChunkSize)
        );
        assert_eq!(
            check("POST / HTTP/1.1\r\nContent-length:\t7 \r\n\r\n"),
            Ok(Phase::Body(7))
        );
        assert_eq!(
            check("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Err(HttpSysError::BadRequest)
        );
        for bad in ["5x", "", "-1", "5\u{a0}", "1, 2"] {
            let head = format!("POST / HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(check(&head), Err(HttpSysError::BadRequest), "{bad:?}");
        }
        assert_eq!(
            check("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            Err(HttpSysError::BadRequest)
        );
        assert_eq!(
            check("GET / HTTP/1.1\r\nUpgrade: websocket\r\nX: a\x01\r\n\r\n"),
            Err(HttpSysError::InvalidHeader)
        );
        assert_eq!(
            check("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
            Ok(Phase::AwaitSwitch { connect: false })
        );
    }

    #[test]
    fn request_line_and_target_limits() {
        for line in [
            "GET  / HTTP/1.1",
            "GET / HTTP/1.1 ",
            "GET /",
            "GET",
            " GET / HTTP/1.1",
        ] {
            assert_eq!(
                check(&format!("{line}\r\n\r\n")),
                Err(HttpSysError::BadRequest),
                "{line:?}"
            );
        }
        let seg = |n: usize| "a".repeat(n);
        let ok = format!("GET /{}/{}?{} HTTP/1.1\r\n\r\n", seg(260), seg(3), seg(300));
        assert_eq!(check(&ok), Ok(Phase::Head));
        let ok = format!("GET {}/ HTTP/1.1\r\n\r\n", "/a".repeat(254));
        assert_eq!(check(&ok), Ok(Phase::Head), "255 segments");
        let bad = format!("GET http://h/x/{}#y HTTP/1.1\r\n\r\n", seg(261));
        assert_eq!(check(&bad), Err(HttpSysError::InvalidUrl));
        assert_eq!(check("GET HTTP://h HTTP/1.1\r\n\r\n"), Ok(Phase::Head));
        assert_eq!(
            check("GET /a\x7fb HTTP/1.1\r\n\r\n"),
            Err(HttpSysError::InvalidUrl)
        );
        assert_eq!(
            check("GET /\u{e9} HTTP/1.1\r\n\r\n"),
            Err(HttpSysError::InvalidUrl)
        );
        assert_eq!(check("OPTIONS * HTTP/1.1\r\n\r\n"), Ok(Phase::Head));
        assert_eq!(
            check("GET * HTTP/1.1\r\n\r\n"),
            Err(HttpSysError::InvalidUrl)
        );
        assert_eq!(
            check("GET / HTTP/1.1\r\nX-Tab:\ta\tb\r\nX~!#$%&'*+-.^_`|: 1\r\n\r\n"),
            Ok(Phase::Head)
        );
        assert_eq!(
            check("GET / HTTP/1.1\r\nX\u{e9}: 1\r\n\r\n"),
            Err(HttpSysError::InvalidHeader)
        );
    }

    #[test]
    fn head_end_is_the_first_blank_line() {
        let cases: [(&[u8], Option<usize>); 9] = [
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nnext", Some(27)),
            (b"GET / HTTP/1.1\nHost: a\n\nnext", Some(24)),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\n", Some(26)),
            (b"GET / HTTP/1.1\nHost: a\n\r\nnext", Some(25)),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r", None),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", None),
            (b"\n\n", Some(2)),
            (b"\r\n\r\n", Some(4)),
            (b"", None),
        ];
        for (bytes, end) in cases {
            assert_eq!(
                find_head_end(bytes),
                end,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn targets_are_escaped_where_hyper_would_refuse_them() {
        let escaped = |head: &str| {
            let out = escape_target(BytesMut::from(head));
            String::from_utf8(out.to_vec()).expect("text")
        };
        assert_eq!(
            escaped("GET /a<b>?q=\"x\"&`{|}^\\ HTTP/1.1\r\nX: <\r\n\r\n"),
            "GET /a%3Cb%3E?q=%22x%22&%60%7B%7C%7D%5E%5C HTTP/1.1\r\nX: <\r\n\r\n"
        );
        let plain = "GET /a?b=c HTTP/1.1\r\n\r\n";
        assert_eq!(escaped(plain), plain);
    }

    /// The guard and httparse (hyper's and `direct`'s parser) agree on
    /// where a head ends, for every mix of line ends.
    #[test]
    fn head_end_agrees_with_httparse() {
        let ends: [&[u8]; 2] = [b"\n", b"\r\n"];
        for mask in 0u32..16 {
            let end = |bit: u32| ends[((mask >> bit) & 1) as usize];
            let mut head = b"GET / HTTP/1.1".to_vec();
            head.extend_from_slice(end(0));
            head.extend_from_slice(b"Host: a");
            head.extend_from_slice(end(1));
            head.extend_from_slice(b"X: 1");
            head.extend_from_slice(end(2));
            head.extend_from_slice(end(3));
            let complete = head.len();
            head.extend_from_slice(b"GET /next HTTP/1.1\r\n\r\n");
            let mut fields = [httparse::EMPTY_HEADER; 8];
            let parsed = httparse::Request::new(&mut fields).parse(&head);
            assert!(
                matches!(parsed, Ok(httparse::Status::Complete(n)) if n == complete),
                "{parsed:?}"
            );
            assert_eq!(find_head_end(&head), Some(complete), "{head:?}");
        }
    }
}
