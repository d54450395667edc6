//! The site keys: `[site:NAME]` sections, and the same options in `[param]`
//! for the built-in site. Apart from `sections` because every site section
//! and `[param]` share them, and because some are families (`error_page.404`,
//! `cache_control.css`) or repeat (`redirect=`, `header=`; see
//! [`super::file`] for how repeated lines survive the INI parser).

use std::collections::BTreeMap;
use std::path::Path;

use super::file::{resolve, REPEATED_KEYS};
use super::{ConfigError, RedirectRule, SiteConfig, SiteOptions};

/// The option keys of every site (besides the families and repeated keys).
pub(super) const SITE_OPTION_KEYS: &[&str] = &[
    "listing",
    "redirect_https",
    "hsts",
    "security_headers",
    "cache_control",
    "compress",
    "compress_level",
];

/// The codes `error_page.CODE` takes: those the site itself answers with.
/// HTTP.sys's own pages (400 Bad Request, 503 of a gone application…) stay
/// as HTTP.sys writes them.
const ERROR_PAGE_CODES: &[u16] = &[403, 404, 405, 500, 502, 503, 504];

/// Whether `key` is a site option (in `[param]` or `[site:NAME]`).
pub(super) fn is_site_option(key: &str) -> bool {
    SITE_OPTION_KEYS.contains(&key)
        || key.starts_with("error_page.")
        || key.starts_with("cache_control.")
        || REPEATED_KEYS
            .iter()
            .any(|k| key == *k || key.strip_prefix(k).is_some_and(|r| r.starts_with('.')))
}

/// What the allowed-keys message lists for site options.
pub(super) const SITE_OPTIONS_HELP: &str = "listing, redirect_https, redirect, hsts, header, security_headers, cache_control, cache_control.EXT, error_page.CODE, compress, compress_level";

/// The error for `key` of `section`.
fn err(file: &str, section: &str, key: &str, message: String) -> ConfigError {
    ConfigError::Key {
        file: file.into(),
        section: section.into(),
        key: key.into(),
        message,
    }
}

/// `[site:NAME]`: `prefix=` and `public_dir=` (both required), and the
/// site options.
pub(super) fn parse_site(
    file: &str,
    base_dir: &Path,
    section: &str,
    keys: &BTreeMap<String, String>,
) -> Result<SiteConfig, ConfigError> {
    let name = section.trim_start_matches("site:").trim().to_owned();
    if name.is_empty() || name.eq_ignore_ascii_case(super::DEFAULT_SITE) {
        return Err(ConfigError::File {
            file: file.into(),
            message: format!(
                "[{section}]: give the site a name of its own, e.g. [site:blog] ('default' is the [param] site)"
            ),
        });
    }
    if let Some(k) = keys
        .keys()
        .find(|k| !matches!(k.as_str(), "prefix" | "public_dir") && !is_site_option(k))
    {
        return Err(err(
            file,
            section,
            k,
            format!("unknown key; allowed keys: prefix, public_dir, {SITE_OPTIONS_HELP}"),
        ));
    }
    let prefixes = super::prefix_list(
        file,
        section,
        keys,
        ", e.g. http://blog.home.test:8080/ https://blog.home.test:8443/",
    )?;
    let public_dir = match keys.get("public_dir").map(|v| v.trim()) {
        Some(v) if !v.is_empty() => resolve(base_dir, v),
        _ => {
            return Err(err(
                file,
                section,
                "public_dir",
                "is missing; give the folder the site's files are in".into(),
            ))
        }
    };
    let options = parse_site_options(file, section, keys)?;
    Ok(SiteConfig {
        name,
        prefixes,
        public_dir,
        options,
    })
}

/// The site options among `keys` (other keys are left to the caller).
pub(super) fn parse_site_options(
    file: &str,
    section: &str,
    keys: &BTreeMap<String, String>,
) -> Result<SiteOptions, ConfigError> {
    let mut o = SiteOptions::default();
    let yes_no = |key: &str, default: bool| -> Result<bool, ConfigError> {
        match keys.get(key) {
            None => Ok(default),
            Some(v) => super::yes_no(v).ok_or_else(|| {
                let v = v.trim().to_ascii_lowercase();
                err(file, section, key, format!("'{v}' is not yes or no"))
            }),
        }
    };
    o.listing = yes_no("listing", false)?;
    o.redirect_https = yes_no("redirect_https", false)?;
    o.security_headers = yes_no("security_headers", true)?;
    if let Some(v) = keys.get("hsts") {
        o.hsts = parse_hsts(v)
            .map(Some)
            .map_err(|m| err(file, section, "hsts", m))?;
    }
    if let Some(v) = keys.get("cache_control") {
        let v = v.trim();
        o.cache_control = Some(if v.eq_ignore_ascii_case("off") {
            String::new()
        } else {
            check_header_value(v).map_err(|m| err(file, section, "cache_control", m))?
        });
    }
    o.compress = parse_compress(keys).map_err(|(key, m)| err(file, section, key, m))?;
    for (key, value) in keys {
        if let Some(ext) = key.strip_prefix("cache_control.") {
            if ext.is_empty() || !ext.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(err(
                    file,
                    section,
                    key,
                    "name a file extension after the dot, e.g. cache_control.css".into(),
                ));
            }
            let v = check_header_value(value.trim()).map_err(|m| err(file, section, key, m))?;
            o.cache_control_by_extension.insert(ext.to_owned(), v);
        } else if let Some(code) = key.strip_prefix("error_page.") {
            let code = code
                .parse::<u16>()
                .ok()
                .filter(|c| ERROR_PAGE_CODES.contains(c))
                .ok_or_else(|| {
                    err(
                        file,
                        section,
                        key,
                        format!(
                            "'{code}' is not a status the site answers with; use one of {}",
                            ERROR_PAGE_CODES
                                .iter()
                                .map(u16::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
            let path = value.trim();
            if !path.starts_with('/') || path.split('/').any(|s| s == "..") {
                return Err(err(
                    file,
                    section,
                    key,
                    format!("'{path}' must be a path in the site's folder starting with /, e.g. /404.html"),
                ));
            }
            o.error_pages.insert(code, path.to_owned());
        } else if is_repeated(key, "redirect") {
            o.redirects
                .push(parse_redirect(value).map_err(|m| err(file, section, "redirect", m))?);
        } else if is_repeated(key, "header") {
            o.headers
                .push(parse_header(value).map_err(|m| err(file, section, "header", m))?);
        }
    }
    Ok(o)
}

/// `compress=` and `compress_level=` (of a site or an `[app:]`); the error
/// names the key it is about.
pub(super) fn parse_compress(
    keys: &BTreeMap<String, String>,
) -> Result<crate::compression::CompressConfig, (&'static str, String)> {
    use crate::compression::CompressConfig;
    let compress = keys.get("compress").map(String::as_str);
    // Checked alone first, so that the message names the key at fault.
    CompressConfig::parse(compress, None).map_err(|e| ("compress", e.to_string()))?;
    CompressConfig::parse(compress, keys.get("compress_level").map(String::as_str))
        .map_err(|e| ("compress_level", e.to_string()))
}

/// `redirect` itself, or one of its numbered lines (`redirect.0002`).
fn is_repeated(key: &str, name: &str) -> bool {
    key == name || key.strip_prefix(name).is_some_and(|r| r.starts_with('.'))
}

/// `SECONDS [includeSubDomains] [preload]` → the header value.
fn parse_hsts(v: &str) -> Result<String, String> {
    let mut words = v.split_whitespace();
    let seconds = words
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| {
            format!("'{v}' must start with max-age in seconds, e.g. hsts=31536000 or hsts=31536000 includeSubDomains")
        })?;
    let mut value = format!("max-age={seconds}");
    for w in words {
        if w.eq_ignore_ascii_case("includesubdomains") {
            value.push_str("; includeSubDomains");
        } else if w.eq_ignore_ascii_case("preload") {
            value.push_str("; preload");
        } else {
            return Err(format!(
                "'{w}' is not includeSubDomains or preload (the words hsts= takes after the seconds)"
            ));
        }
    }
    Ok(value)
}

/// `FROM TO [301|302|307|308]`.
fn parse_redirect(v: &str) -> Result<RedirectRule, String> {
    let words: Vec<&str> = v.split_whitespace().collect();
    let usage = "use redirect=FROM TO [301|302|307|308], e.g. redirect=/old/ /new/ 308";
    let (from, to, status) = match words.as_slice() {
        [from, to] => (*from, *to, 301),
        [from, to, code] => {
            let status = code
                .parse::<u16>()
                .ok()
                .filter(|c| [301, 302, 307, 308].contains(c))
                .ok_or_else(|| format!("'{code}' is not a redirect status; {usage}"))?;
            (*from, *to, status)
        }
        _ => return Err(format!("'{v}': {usage}")),
    };
    if !from.starts_with('/') {
        return Err(format!(
            "'{from}' must be a URL path starting with /; {usage}"
        ));
    }
    if !(to.starts_with('/') || to.starts_with("http://") || to.starts_with("https://")) {
        return Err(format!(
            "'{to}' must be a URL path starting with / or an http:// or https:// URL; {usage}"
        ));
    }
    check_header_value(to)?;
    Ok(RedirectRule {
        from: from.to_owned(),
        to: to.to_owned(),
        status,
    })
}

/// `Name: value`, both valid in an HTTP header.
fn parse_header(v: &str) -> Result<(String, String), String> {
    let (name, value) = v.split_once(':').ok_or_else(|| {
        format!("'{v}' is not 'Name: value', e.g. header=Permissions-Policy: camera=()")
    })?;
    let name = name.trim();
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("'{name}' is not a valid header name"));
    }
    let value = check_header_value(value.trim())?;
    Ok((name.to_owned(), value))
}

fn check_header_value(v: &str) -> Result<String, String> {
    match http::HeaderValue::from_str(v) {
        Ok(_) => Ok(v.to_owned()),
        Err(_) => Err(format!(
            "'{v}' is not a valid header value (printable ASCII, no line breaks)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_refuse_with_the_key_named() {
        let keys: BTreeMap<String, String> = [
            ("listing", "yes"),
            ("hsts", "600 includeSubDomains"),
            ("redirect.0001", "/old/ /new/ 308"),
            ("redirect.0002", "/a https://example.test/b"),
            ("header.0001", "X-Test: 1"),
            ("cache_control.css", "max-age=604800"),
            ("error_page.404", "/404.html"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let o = parse_site_options("f", "site:a", &keys).unwrap();
        assert!(o.listing && o.security_headers && !o.redirect_https);
        assert_eq!(o.hsts.as_deref(), Some("max-age=600; includeSubDomains"));
        assert_eq!(o.redirects.len(), 2);
        assert_eq!(o.redirects[0].status, 308);
        assert_eq!(o.redirects[1].status, 301);
        assert_eq!(o.headers, vec![("X-Test".to_owned(), "1".to_owned())]);
        assert_eq!(
            o.error_pages.get(&404).map(String::as_str),
            Some("/404.html")
        );
        for (key, value, says) in [
            ("redirect", "/a /b 303", "'303' is not a redirect status"),
            ("redirect", "a /b", "must be a URL path"),
            ("hsts", "soon", "must start with max-age"),
            ("header", "NoColon", "is not 'Name: value'"),
            (
                "error_page.418",
                "/x.html",
                "is not a status the site answers with",
            ),
            ("error_page.404", "x.html", "starting with /"),
            ("listing", "maybe", "is not yes or no"),
        ] {
            let keys: BTreeMap<String, String> =
                [(key.to_owned(), value.to_owned())].into_iter().collect();
            let e = parse_site_options("GLOBAL.INI", "site:a", &keys).unwrap_err();
            let text = e.to_string();
            assert!(text.starts_with("GLOBAL.INI [site:a] "), "{text}");
            assert!(text.contains(says), "{key}={value}: {text}");
        }
    }
}
