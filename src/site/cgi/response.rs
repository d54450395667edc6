//! The script's head: reading it (up to the blank line), parsing it into
//! status and headers, and the framing rules (`Content-Length` and
//! `Transfer-Encoding` from a script, the short body read before the head
//! is sent).

use std::io;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use tokio::io::AsyncReadExt;
use tokio::process::ChildStdout;

/// Largest header block a script may write.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// A body announced (`Content-Length`) at up to this size is read before the
/// head is sent, so that a short one can still be answered with 502.
pub(super) const CHECKED_BODY: usize = 64 * 1024;

pub(super) enum Head {
    /// The header block (without the blank line) and what followed it.
    Complete {
        head: Bytes,
        rest: Bytes,
    },
    /// Output ended before the blank line.
    Eof {
        empty: bool,
    },
    TooLarge,
}

/// Reads until the blank line that ends the headers.
pub(super) async fn read_head(stdout: &mut ChildStdout) -> io::Result<Head> {
    let mut buf = BytesMut::with_capacity(8192);
    let mut scanned = 0;
    loop {
        if let Some((head_end, body_start)) = find_head_end(&buf, &mut scanned) {
            let mut all = buf.freeze();
            let rest = all.split_off(body_start);
            all.truncate(head_end);
            return Ok(Head::Complete { head: all, rest });
        }
        if buf.len() >= MAX_HEAD {
            return Ok(Head::TooLarge);
        }
        buf.reserve(8192);
        if stdout.read_buf(&mut buf).await? == 0 {
            return Ok(Head::Eof {
                empty: buf.is_empty(),
            });
        }
    }
}

/// Finds an empty line (`\n\n` or `\n\r\n`, or one at the very start).
/// `scanned` remembers where the last complete line started.
fn find_head_end(buf: &[u8], scanned: &mut usize) -> Option<(usize, usize)> {
    loop {
        let rest = buf.get(*scanned..)?;
        let nl = rest.iter().position(|&b| b == b'\n')?;
        let line = &rest[..nl];
        if line.is_empty() || line == b"\r" {
            return Some((*scanned, *scanned + nl + 1));
        }
        *scanned += nl + 1;
    }
}

pub(super) struct ParsedHead {
    pub(super) status: StatusCode,
    pub(super) reason: Option<hyper::ext::ReasonPhrase>,
    pub(super) headers: HeaderMap,
    /// The `Content-Length` the script announced (at most one is kept).
    pub(super) length: Option<u64>,
}

/// Headers a script may not set: they describe the connection, which is ours.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
    )
}

pub(super) fn parse_head(head: &[u8]) -> Result<ParsedHead, String> {
    let shown = |b: &[u8]| {
        let s = String::from_utf8_lossy(&b[..b.len().min(80)]).into_owned();
        format!("{s:?}")
    };
    let mut headers = HeaderMap::new();
    let mut status = None;
    let mut location = false;
    let mut length: Option<u64> = None;
    let mut transfer_encoding = false;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(format!("continuation line {}", shown(line)));
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(format!("line without a colon: {}", shown(line)));
        };
        let name = HeaderName::from_bytes(&line[..colon])
            .map_err(|_| format!("invalid header name in {}", shown(line)))?;
        let value = line[colon + 1..].trim_ascii();
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| format!("invalid header value in {}", shown(line)))?;
        if name.as_str() == "status" {
            status = Some(parse_status(&value).ok_or_else(|| {
                format!(
                    "Status must be a code from 200 to 999 and an optional reason, not {}",
                    shown(value.as_bytes())
                )
            })?);
            continue;
        }
        if name == header::TRANSFER_ENCODING {
            // Dropped below (the server frames the body), but remembered:
            // next to a Content-Length it leaves the length in doubt.
            transfer_encoding = true;
        }
        if hop_by_hop(&name) {
            tracing::debug!(header = %name, "dropping a hop-by-hop header from a CGI script");
            continue;
        }
        if name == header::CONTENT_LENGTH {
            let n = decimal(value.as_bytes())
                .ok_or_else(|| format!("invalid Content-Length {}", shown(value.as_bytes())))?;
            match length {
                Some(first) if first != n => {
                    return Err(format!(
                        "two different Content-Length values: {first} and {n}"
                    ))
                }
                // A repeat of the same value says nothing new; one is sent.
                Some(_) => continue,
                None => length = Some(n),
            }
        }
        if name == header::LOCATION {
            location = true;
        }
        headers.append(name, value);
    }
    if transfer_encoding && length.is_some() {
        return Err(
            "both Content-Length and Transfer-Encoding (a CGI script does not frame its body)"
                .into(),
        );
    }
    if headers.is_empty() && status.is_none() {
        return Err("no headers".into());
    }
    let (status, reason) = match status {
        Some(s) => s,
        None if location => (StatusCode::FOUND, None),
        None => (StatusCode::OK, None),
    };
    Ok(ParsedHead {
        status,
        reason,
        headers,
        length,
    })
}

/// A plain decimal number (`1*DIGIT`, RFC 9110): no sign, space or list.
fn decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// `Status: 418 I'm a teapot` → code and, if not the standard one, reason.
fn parse_status(value: &HeaderValue) -> Option<(StatusCode, Option<hyper::ext::ReasonPhrase>)> {
    let text = value.to_str().ok()?.trim();
    let (code, reason) = text.split_once(' ').unwrap_or((text, ""));
    if code.len() != 3 {
        return None;
    }
    let status = StatusCode::from_u16(code.parse().ok()?).ok()?;
    if status.as_u16() < 200 {
        return None;
    }
    let reason = reason.trim();
    let custom = (!reason.is_empty() && status.canonical_reason() != Some(reason))
        .then(|| hyper::ext::ReasonPhrase::try_from(reason.as_bytes().to_vec()).ok())
        .flatten();
    Some((status, custom))
}

/// Reads until `buf` (what followed the headers) holds at least `n` bytes
/// or the output ends.
pub(super) async fn read_at_least(
    stdout: &mut ChildStdout,
    buf: Bytes,
    n: usize,
) -> io::Result<Bytes> {
    if buf.len() >= n {
        return Ok(buf);
    }
    let mut buf = BytesMut::from(&buf[..]);
    buf.reserve(n - buf.len());
    while buf.len() < n {
        if stdout.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_blank_line() {
        let mut s = 0;
        assert_eq!(find_head_end(b"A: b\n\nbody", &mut s), Some((5, 6)));
        let mut s = 0;
        assert_eq!(find_head_end(b"A: b\r\n\r\nbody", &mut s), Some((6, 8)));
        let mut s = 0;
        assert_eq!(find_head_end(b"A: b\r\nC: d", &mut s), None);
        assert_eq!(s, 6);
        let mut s = 0;
        assert_eq!(find_head_end(b"\r\nbody", &mut s), Some((0, 2)));
    }

    #[test]
    fn parses_status_location_and_headers() {
        let p =
            parse_head(b"Status: 418 I'm a teapot\r\nContent-Type: text/plain\r\nX-A: 1\r\nX-A: 2")
                .unwrap();
        assert_eq!(p.status.as_u16(), 418);
        assert!(p.reason.is_none(), "canonical reason needs no override");
        assert_eq!(p.headers.get_all("x-a").iter().count(), 2);
        let p = parse_head(b"Location: https://example.com/\n").unwrap();
        assert_eq!(p.status, StatusCode::FOUND);
        let p = parse_head(b"Status: 299 Fine Thanks\nLocation: /x\n").unwrap();
        assert_eq!(p.status.as_u16(), 299);
        assert_eq!(p.reason.unwrap().as_bytes(), b"Fine Thanks");
        let p = parse_head(b"Content-Type: text/html\nTransfer-Encoding: chunked\n").unwrap();
        assert!(p.headers.get(header::TRANSFER_ENCODING).is_none());
    }

    #[test]
    fn refuses_malformed_heads() {
        for head in [
            &b"this is not a header"[..],
            b"Status: abc",
            b"Status: 100 Continue",
            b"Bad Name: x",
            b"Content-Type: a\n folded",
            b"Content-Length: ten",
            b"Content-Length: +5",
            b"Content-Length: 5, 5",
            b"Content-Length: 99999999999999999999999",
            b"Content-Length: 5\nContent-Length: 6",
            b"Content-Length: 5\nTransfer-Encoding: chunked",
            b"Transfer-Encoding: identity\nContent-Length: 5",
            b"",
        ] {
            assert!(
                parse_head(head).is_err(),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn content_length_is_kept_once() {
        let p = parse_head(b"Content-Length: 5\nContent-Length: 5\n").unwrap();
        assert_eq!(p.length, Some(5));
        assert_eq!(p.headers.get_all(header::CONTENT_LENGTH).iter().count(), 1);
        let p = parse_head(b"Content-Length: 007\n").unwrap();
        assert_eq!(p.length, Some(7));
        let p = parse_head(b"Content-Type: text/plain\n").unwrap();
        assert_eq!(p.length, None);
    }
}
