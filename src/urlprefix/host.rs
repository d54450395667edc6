//! Reading the `Host` header: splitting off the port, recognising IP
//! literals, and turning a name into the key explicit-host registrations are
//! stored under.
//!
//! Separate from the prefix parser because these run on every request (they
//! must not allocate for the common case), while the parser runs once per
//! registration.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use idna::AsciiDenyList;

/// Splits a Host header value into host and optional port: `example.com:8080`
/// → (`example.com`, Some(8080)), `[::1]:8080` → (`[::1]`, Some(8080)),
/// `example.com` → (`example.com`, None). IPv6 keeps its brackets. Returns
/// `None` for a malformed value (unclosed bracket, unbracketed IPv6, a port
/// that is not a number up to 65535).
pub fn split_host_port(value: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if value.starts_with('[') {
        let close = value.find(']')?;
        let (host, after) = value.split_at(close + 1);
        if after.is_empty() {
            (host, None)
        } else {
            (host, Some(after.strip_prefix(':')?))
        }
    } else {
        match value.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => return None,
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    let port = match port {
        // `host:` with an empty port is allowed by RFC 3986.
        None | Some("") => None,
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

/// True when `host` (no port) is an IP literal: dotted-quad IPv4 or bracketed IPv6.
pub fn is_ip_literal(host: &str) -> bool {
    parse_ip_literal(host).is_some()
}

/// Parses an IP literal host (no port): dotted-quad IPv4 or bracketed IPv6.
pub fn parse_ip_literal(host: &str) -> Option<IpAddr> {
    if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .and_then(|s| Ipv6Addr::from_str(s).ok())
            .map(IpAddr::V6)
    } else {
        Ipv4Addr::from_str(host).ok().map(IpAddr::V4)
    }
}

/// Host names longer than this are lowercased on the heap instead of a stack
/// buffer (DNS names are at most 253 bytes, so this is the rare path).
const HOST_BUF: usize = 256;

/// Calls `f` with the explicit-host key of a Host header value (port stripped,
/// lowercase, punycode), or returns `None` when the header cannot name an
/// explicit host (IP literal, malformed). Avoids allocating for ASCII hosts.
pub(super) fn with_host_key<R>(header: &str, f: impl FnOnce(&str) -> Option<R>) -> Option<R> {
    let (host, _port) = split_host_port(header)?;
    if host.is_empty() || host.starts_with('[') {
        return None;
    }
    if host.is_ascii() {
        if !host.bytes().any(|b| b.is_ascii_uppercase()) {
            return f(host);
        }
        if host.len() <= HOST_BUF {
            let mut buf = [0u8; HOST_BUF];
            let buf = &mut buf[..host.len()];
            buf.copy_from_slice(host.as_bytes());
            buf.make_ascii_lowercase();
            // ASCII in, ASCII out: always valid UTF-8.
            return f(std::str::from_utf8(buf).ok()?);
        }
        return f(&host.to_ascii_lowercase());
    }
    let ascii: Cow<'_, str> =
        idna::domain_to_ascii_cow(host.as_bytes(), AsciiDenyList::URL).ok()?;
    f(&ascii)
}
