//! Header values that several handlers send, kept below all of them so that
//! the static site, CGI and the error pages share one definition without
//! importing each other.

use http::header::HeaderValue;

/// `Server` header of portshare's own responses (HTTP.sys's pages carry
/// `Microsoft-HTTPAPI/2.0` instead).
pub static SERVER: HeaderValue =
    HeaderValue::from_static(concat!("portshare/", env!("CARGO_PKG_VERSION")));
