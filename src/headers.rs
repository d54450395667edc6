//! Header values that several handlers send, and the request's fields they
//! read, kept below all of them so that the static site, CGI, the proxy and
//! the error pages share one definition without importing each other.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

/// `Server` header of portshare's own responses (HTTP.sys's pages carry
/// `Microsoft-HTTPAPI/2.0` instead).
pub static SERVER: HeaderValue =
    HeaderValue::from_static(concat!("portshare/", env!("CARGO_PKG_VERSION")));

/// A request's header fields, whichever parser read them: hyper's
/// `HeaderMap`, or the fields `httparse` found in the head (`server::direct`
/// answers without building a map for each request). Both hold the same
/// names and values: hyper reads heads with `httparse` too and turns its
/// fields into a map unchecked (`proto/h1/role.rs`), as httparse's name and
/// value rules are `http`'s. Lookups go by `HeaderName`, in any case, first
/// value first.
#[derive(Clone, Copy, Debug)]
pub enum RequestFields<'a> {
    Map(&'a HeaderMap),
    Parsed(&'a [httparse::Header<'a>]),
}

impl<'a> RequestFields<'a> {
    /// The first value of `name`.
    pub fn get(self, name: &HeaderName) -> Option<&'a [u8]> {
        match self {
            RequestFields::Map(map) => map.get(name).map(HeaderValue::as_bytes),
            RequestFields::Parsed(fields) => fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name.as_str()))
                .map(|f| f.value),
        }
    }

    /// The first value of `name`, when it is text (`HeaderValue::to_str`).
    pub fn get_str(self, name: &HeaderName) -> Option<&'a str> {
        self.get(name).and_then(as_str)
    }

    pub fn contains(self, name: &HeaderName) -> bool {
        self.get(name).is_some()
    }

    /// Every value of `name`, in the request's order.
    pub fn get_all<'n>(self, name: &'n HeaderName) -> Values<'a, 'n> {
        Values(match self {
            RequestFields::Map(map) => ValuesOf::Map(map.get_all(name).iter()),
            RequestFields::Parsed(fields) => ValuesOf::Parsed(fields.iter(), name.as_str()),
        })
    }

    /// Each field name once, in the order first seen (as a map's keys).
    pub fn names(self) -> Vec<HeaderName> {
        match self {
            RequestFields::Map(map) => map.keys().cloned().collect(),
            RequestFields::Parsed(fields) => {
                let mut names: Vec<HeaderName> = Vec::new();
                for f in fields {
                    if let Ok(name) = HeaderName::from_bytes(f.name.as_bytes()) {
                        if !names.contains(&name) {
                            names.push(name);
                        }
                    }
                }
                names
            }
        }
    }
}

/// A value as text, as `HeaderValue::to_str` allows it: visible ASCII and
/// tabs only.
pub fn as_str(value: &[u8]) -> Option<&str> {
    if value
        .iter()
        .all(|&b| b == b'\t' || (b' '..0x7f).contains(&b))
    {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// The values [`RequestFields::get_all`] gives.
pub struct Values<'a, 'n>(ValuesOf<'a, 'n>);

enum ValuesOf<'a, 'n> {
    Map(http::header::ValueIter<'a, HeaderValue>),
    Parsed(std::slice::Iter<'a, httparse::Header<'a>>, &'n str),
}

impl<'a> Iterator for Values<'a, '_> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match &mut self.0 {
            ValuesOf::Map(values) => values.next().map(HeaderValue::as_bytes),
            ValuesOf::Parsed(fields, name) => fields
                .find(|f| f.name.eq_ignore_ascii_case(name))
                .map(|f| f.value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    /// The same head, read both ways, answers every lookup alike.
    #[test]
    fn a_map_and_parsed_fields_answer_alike() {
        let head = b"GET / HTTP/1.1\r\nHost: a.test\r\nAccept: text/html\r\n\
                     X-Raw: caf\xc3\xa9\r\naccept: */*\r\nCookie: a=1\r\n\r\n";
        let mut fields = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut fields);
        assert!(matches!(req.parse(head), Ok(httparse::Status::Complete(_))));
        let parsed = req.headers;
        let mut map = HeaderMap::new();
        for f in parsed.iter() {
            map.append(
                HeaderName::from_bytes(f.name.as_bytes()).expect("name"),
                HeaderValue::from_bytes(f.value).expect("value"),
            );
        }
        let x_raw = HeaderName::from_static("x-raw");
        for fields in [RequestFields::Map(&map), RequestFields::Parsed(parsed)] {
            assert_eq!(fields.get_str(&header::HOST), Some("a.test"), "{fields:?}");
            assert_eq!(
                fields.get_all(&header::ACCEPT).collect::<Vec<_>>(),
                [&b"text/html"[..], b"*/*"],
                "{fields:?}"
            );
            assert_eq!(fields.get(&x_raw), Some("café".as_bytes()));
            assert_eq!(fields.get_str(&x_raw), None, "not visible ASCII");
            assert!(fields.contains(&header::COOKIE));
            assert!(!fields.contains(&header::RANGE));
            assert_eq!(
                fields.names(),
                [header::HOST, header::ACCEPT, x_raw.clone(), header::COOKIE]
            );
        }
    }
}
