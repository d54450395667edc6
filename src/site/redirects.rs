//! A site's redirects, checked before its files: `redirect_https=yes` (a
//! plain-HTTP request → 308 to the same path on the site's https prefix)
//! and `redirect=FROM TO [STATUS]` lines (a path, or with `FROM` ending in
//! `/` every path under it, the rest kept).

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::SiteRequest;
use crate::body::Body;
use crate::config::{RedirectRule, SiteOptions};
use crate::headers::SERVER;
use crate::urlprefix::{HostRule, Scheme, UrlPrefix};

pub(super) struct Redirects {
    rules: Vec<RedirectRule>,
    /// Where plain-HTTP requests go, when `redirect_https=yes` and the site
    /// has an https prefix.
    https: Option<HttpsTarget>,
    /// The paths of the site's http prefixes (the part a request path
    /// starts with, to be replaced by the https prefix's path).
    http_paths: Vec<String>,
}

struct HttpsTarget {
    /// The prefix's host when it names one (else the request's `Host`).
    host: Option<String>,
    port: u16,
    path: String,
}

impl Redirects {
    pub(super) fn new(options: &SiteOptions, prefixes: &[UrlPrefix]) -> Redirects {
        let https = options
            .redirect_https
            .then(|| prefixes.iter().find(|p| p.scheme() == Scheme::Https))
            .flatten()
            .map(|p| HttpsTarget {
                host: match p.host() {
                    HostRule::Explicit(name) => Some(name.as_str().to_owned()),
                    HostRule::IpBound(ip) if ip.is_ipv6() => Some(format!("[{ip}]")),
                    HostRule::IpBound(ip) => Some(ip.to_string()),
                    HostRule::StrongWildcard | HostRule::WeakWildcard => None,
                },
                port: p.port(),
                path: p.path().to_owned(),
            });
        if options.redirect_https && https.is_none() {
            tracing::warn!(
                "redirect_https=yes, but the site has no https:// prefix to send requests to; add one to prefix="
            );
        }
        Redirects {
            rules: options.redirects.clone(),
            https,
            http_paths: prefixes
                .iter()
                .filter(|p| p.scheme() == Scheme::Http)
                .map(|p| p.path().to_owned())
                .collect(),
        }
    }

    /// The redirect for `req`, if one applies.
    pub(super) fn answer(&self, req: &SiteRequest<'_>) -> Option<Response<Body>> {
        if self.rules.is_empty() && self.https.is_none() {
            return None;
        }
        if let (Some(target), false) = (&self.https, req.conn.https) {
            return Some(self.to_https(target, req));
        }
        let path = req.raw_path;
        let rule = self.rules.iter().find(|r| {
            if r.from.ends_with('/') {
                path.starts_with(&r.from)
            } else {
                path == r.from
            }
        })?;
        let mut location = rule.to.clone();
        if rule.from.ends_with('/') {
            let rest = &path[rule.from.len()..];
            if !location.ends_with('/') && !rest.is_empty() {
                location.push('/');
            }
            location.push_str(rest);
        }
        push_query(&mut location, req.query);
        let status = StatusCode::from_u16(rule.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
        Some(redirect(status, &location))
    }

    fn to_https(&self, target: &HttpsTarget, req: &SiteRequest<'_>) -> Response<Body> {
        let host = target.host.clone().unwrap_or_else(|| {
            request_host(req).unwrap_or_else(|| req.conn.local.ip().to_string())
        });
        let mut location = format!("https://{host}");
        if target.port != 443 {
            location.push_str(&format!(":{}", target.port));
        }
        // The request's path below the http prefix, under the https one.
        let below = self
            .http_paths
            .iter()
            .filter(|p| starts_with_ignore_case(req.raw_path, p))
            .max_by_key(|p| p.len())
            .map_or(req.raw_path, |p| &req.raw_path[p.len()..]);
        location.push_str(&target.path);
        location.push_str(below.trim_start_matches('/'));
        push_query(&mut location, req.query);
        redirect(StatusCode::PERMANENT_REDIRECT, &location)
    }
}

/// The request's host name without its port (IPv6 literals keep brackets).
fn request_host(req: &SiteRequest<'_>) -> Option<String> {
    let host = req.headers.get_str(&header::HOST)?;
    let name = if host.starts_with('[') {
        host.split_once(']').map(|(h, _)| format!("{h}]"))?
    } else {
        host.split(':').next()?.to_owned()
    };
    (!name.is_empty()).then_some(name)
}

fn starts_with_ignore_case(path: &str, prefix: &str) -> bool {
    path.len() >= prefix.len()
        && path.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn push_query(location: &mut String, query: Option<&str>) {
    if let Some(q) = query {
        location.push('?');
        location.push_str(q);
    }
}

fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::SERVER, SERVER.clone());
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::ConnInfo;

    fn location(prefixes: &[&str], host: &str, path: &str) -> Option<String> {
        let options = SiteOptions {
            redirect_https: true,
            ..SiteOptions::default()
        };
        let prefixes: Vec<UrlPrefix> = prefixes
            .iter()
            .map(|p| UrlPrefix::parse(p).unwrap())
            .collect();
        let redirects = Redirects::new(&options, &prefixes);
        let conn = ConnInfo::new(
            "127.0.0.1:5000".parse().unwrap(),
            "127.0.0.1:8080".parse().unwrap(),
            false,
        );
        let mut headers = http::HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        let req = SiteRequest {
            method: &http::Method::GET,
            raw_path: path,
            query: None,
            headers: crate::headers::RequestFields::Map(&headers),
            prefix_segments: 0,
            conn: &conn,
            remote_user: None,
        };
        let res = redirects.answer(&req)?;
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
        Some(res.headers()[header::LOCATION].to_str().unwrap().to_owned())
    }

    #[test]
    fn port_443_is_left_out_and_the_prefix_host_wins() {
        assert_eq!(
            location(
                &["http://+:8080/", "https://+:443/"],
                "site.test:8080",
                "/a"
            ),
            Some("https://site.test/a".to_owned())
        );
        assert_eq!(
            location(
                &["http://+:8080/", "https://www.site.test:443/"],
                "site.test:8080",
                "/a"
            ),
            Some("https://www.site.test/a".to_owned())
        );
        // No https prefix: nothing to redirect to.
        assert_eq!(location(&["http://+:8080/"], "site.test", "/a"), None);
    }
}
