//! The headers a site adds to its answers: `hsts=` (Strict-Transport-Security,
//! on HTTPS only: RFC 6797 §7.2 forbids it over plain HTTP), `header=` lines,
//! the safe defaults a scanner expects (`X-Content-Type-Options: nosniff`,
//! `Referrer-Policy`), and the `Cache-Control` policy of its files.
//!
//! Made once per site from its options, so a response costs a few header
//! clones, never a parse.

use http::header::{self, HeaderName, HeaderValue};
use http::Response;

use crate::body::Body;
use crate::config::SiteOptions;

static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
/// The browsers' own default: full URL to the same origin, the origin alone
/// to others over HTTPS, nothing on a downgrade.
static REFERRER_POLICY: HeaderValue = HeaderValue::from_static("strict-origin-when-cross-origin");
/// HTML is revalidated on every use, so an edit shows at once (the
/// validators make that a 304).
static HTML_POLICY: HeaderValue = HeaderValue::from_static("no-cache");
/// Other files may be reused for an hour without asking.
static FILE_POLICY: HeaderValue = HeaderValue::from_static("max-age=3600");

/// A site's headers, ready to add.
pub(super) struct SiteHeaders {
    hsts: Option<HeaderValue>,
    extra: Vec<(HeaderName, HeaderValue)>,
    security: bool,
    /// `None`: the default policy; `Some(None)`: none (`cache_control=off`).
    cache_control: Option<Option<HeaderValue>>,
    by_extension: Vec<(String, HeaderValue)>,
}

impl SiteHeaders {
    /// From options the configuration already checked (a value that still
    /// does not convert is left out rather than stopping the server).
    pub(super) fn new(options: &SiteOptions) -> SiteHeaders {
        let value = |v: &str| HeaderValue::from_str(v).ok();
        SiteHeaders {
            hsts: options.hsts.as_deref().and_then(value),
            extra: options
                .headers
                .iter()
                .filter_map(|(n, v)| Some((HeaderName::from_bytes(n.as_bytes()).ok()?, value(v)?)))
                .collect(),
            security: options.security_headers,
            cache_control: options.cache_control.as_deref().map(|v| {
                if v.is_empty() {
                    None
                } else {
                    value(v)
                }
            }),
            by_extension: options
                .cache_control_by_extension
                .iter()
                .filter_map(|(ext, v)| Some((ext.clone(), value(v)?)))
                .collect(),
        }
    }

    /// Adds the site's headers to one of its answers. What the answer set
    /// itself (a CGI script's own `Referrer-Policy`, say) is kept.
    pub(super) fn apply(&self, res: &mut Response<Body>, https: bool) {
        let h = res.headers_mut();
        if self.security {
            h.entry(header::X_CONTENT_TYPE_OPTIONS)
                .or_insert_with(|| NOSNIFF.clone());
            h.entry(header::REFERRER_POLICY)
                .or_insert_with(|| REFERRER_POLICY.clone());
        }
        if https {
            if let Some(hsts) = &self.hsts {
                h.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
            }
        }
        for (name, value) in &self.extra {
            h.append(name.clone(), value.clone());
        }
    }

    /// The `Cache-Control` of a file with `extension` (lowercase) and
    /// `content_type`.
    pub(super) fn cache_control(
        &self,
        extension: &str,
        content_type: &HeaderValue,
    ) -> Option<HeaderValue> {
        if let Some((_, v)) = self.by_extension.iter().find(|(e, _)| e == extension) {
            return Some(v.clone());
        }
        match &self.cache_control {
            Some(policy) => policy.clone(),
            None if content_type.as_bytes().starts_with(b"text/html") => Some(HTML_POLICY.clone()),
            None => Some(FILE_POLICY.clone()),
        }
    }
}
