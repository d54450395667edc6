//! Which requests this module serves: the fields of a parsed head that
//! decide it (method, version, target, body, `Connection`), and the few
//! that the access log and the backend need. Pure, apart from the parse
//! of the target that hyper would do too.

use bytes::Bytes;
use http::Method;

use crate::proxy::list_items;

/// The parts of a request head this module needs.
pub(super) struct Request<'h> {
    pub(super) method: Method,
    pub(super) target: http::uri::PathAndQuery,
    pub(super) host: Option<&'h [u8]>,
    pub(super) referer: Option<&'h [u8]>,
    pub(super) user_agent: Option<&'h [u8]>,
    /// `Connection: close`.
    pub(super) close: bool,
}

/// Reads what [`answer`](super::answer) needs from the head's fields, or
/// `None` when the request is not one this module serves.
pub(super) fn classify<'h>(
    head: &Bytes,
    method: Option<&str>,
    target: Option<&str>,
    version: Option<u8>,
    fields: &[httparse::Header<'h>],
) -> Option<Request<'h>> {
    let method = match method? {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        _ => return None,
    };
    if version != Some(1) {
        return None;
    }
    let target = target.filter(|t| t.starts_with('/'))?;
    // As hyper parses it (and refuses what it refuses), sharing the head.
    let target =
        http::uri::PathAndQuery::from_maybe_shared(head.slice_ref(target.as_bytes())).ok()?;
    let mut req = Request {
        method,
        target,
        host: None,
        referer: None,
        user_agent: None,
        close: false,
    };
    for field in fields {
        let name = field.name.as_bytes();
        let first = |slot: &mut Option<&'h [u8]>| {
            slot.get_or_insert(field.value);
        };
        if name.eq_ignore_ascii_case(b"host") {
            first(&mut req.host);
        } else if name.eq_ignore_ascii_case(b"user-agent") {
            first(&mut req.user_agent);
        } else if name.eq_ignore_ascii_case(b"referer") {
            first(&mut req.referer);
        } else if name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
        {
            return None; // a body, even an empty one
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in list_items(field.value) {
                if token.eq_ignore_ascii_case(b"upgrade") {
                    return None;
                }
                req.close |= token.eq_ignore_ascii_case(b"close");
            }
        }
    }
    Some(req)
}
