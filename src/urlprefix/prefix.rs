//! The [`UrlPrefix`] type and its parser: what a registration or reservation
//! string such as `http://+:80/api/` means, and why one is refused.
//!
//! Kept apart from the routing table so that everything that only needs to
//! *validate* a prefix (config, `netsh http add urlacl`, the control socket)
//! reads one file, and so the parsing rules sit next to their error texts.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use idna::AsciiDenyList;

use super::path::{normalize_path, PathError};

// ---------------------------------------------------------------------------
// Scheme, host rule, category
// ---------------------------------------------------------------------------

/// The scheme of a URL prefix (and of the listener a request arrived on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// `http`
    Http,
    /// `https`
    Https,
}

impl Scheme {
    /// The lowercase scheme name, `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The conventional port of the scheme (80 or 443); used in error hints only.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The precedence category of a prefix's host. The derived order *is* the
/// lookup order: `Strong < Explicit < IpBound < Weak`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// `+`: every request on the port, whatever its Host header.
    Strong,
    /// A host name matched against the Host header.
    Explicit,
    /// An IP literal matched against the local address the request arrived on.
    IpBound,
    /// `*`: anything the other categories did not claim.
    Weak,
}

impl Category {
    /// All categories in lookup order.
    pub const ALL: [Category; 4] = [
        Category::Strong,
        Category::Explicit,
        Category::IpBound,
        Category::Weak,
    ];
}

/// The host part of a URL prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostRule {
    /// `+`
    StrongWildcard,
    /// A host name: lowercase ASCII, internationalised names in punycode
    /// (`bücher.test` → `xn--bcher-kva.test`).
    Explicit(String),
    /// An IPv4 literal or a bracketed IPv6 literal. IPv4-mapped IPv6 addresses
    /// are stored as IPv4.
    IpBound(IpAddr),
    /// `*`
    WeakWildcard,
}

impl HostRule {
    /// The precedence category of this host rule.
    pub fn category(&self) -> Category {
        match self {
            HostRule::StrongWildcard => Category::Strong,
            HostRule::Explicit(_) => Category::Explicit,
            HostRule::IpBound(_) => Category::IpBound,
            HostRule::WeakWildcard => Category::Weak,
        }
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostRule::StrongWildcard => f.write_str("+"),
            HostRule::Explicit(name) => f.write_str(name),
            HostRule::IpBound(IpAddr::V4(ip)) => write!(f, "{ip}"),
            HostRule::IpBound(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            HostRule::WeakWildcard => f.write_str("*"),
        }
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a URL prefix string was refused. Every variant is netsh `Error: 87`
/// ("The parameter is incorrect."); the `Display` text is one plain sentence
/// saying what is wrong, with a corrected example where one can be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrefixError {
    /// The string is empty.
    #[error("the URL prefix is empty; it must look like http://+:80/")]
    Empty,
    /// A space, `?`, `#` or control character appears in the prefix.
    #[error("the URL prefix contains {0}, which is not allowed")]
    ForbiddenChar(&'static str),
    /// No `scheme://` at the start.
    #[error("the URL prefix must start with http:// or https:// (e.g. http://+:80/)")]
    MissingScheme,
    /// A scheme other than http or https.
    #[error("the scheme '{0}' is not supported; a URL prefix must use http or https")]
    UnsupportedScheme(String),
    /// Nothing between `://` and the port.
    #[error(
        "the URL prefix has no host; use +, *, a host name or an IP address (e.g. http://+:80/)"
    )]
    EmptyHost,
    /// No `:port`.
    #[error("the URL prefix must include a port ({given} → {suggestion})")]
    MissingPort {
        /// The prefix as given.
        given: String,
        /// The prefix with the scheme's usual port added.
        suggestion: String,
    },
    /// The port is not a decimal number from 1 to 65535 without a leading zero.
    #[error("the port '{0}' is not a decimal number from 1 to 65535 without a leading zero")]
    InvalidPort(String),
    /// The path is missing or does not end with `/`.
    #[error("the URL prefix must end with '/' ({given} → {suggestion})")]
    MissingTrailingSlash {
        /// The prefix as given.
        given: String,
        /// The prefix with a `/` added.
        suggestion: String,
    },
    /// A bracketed host that is not a valid IPv6 address, or an unclosed bracket.
    #[error("'{0}' is not a valid IPv6 address in brackets such as [::1]")]
    InvalidIpv6(String),
    /// An IPv6 address without brackets.
    #[error("the IPv6 address '{0}' must be written in brackets ([{0}])")]
    UnbracketedIpv6(String),
    /// Only digits and dots, but not a valid IPv4 address.
    #[error("'{0}' is not a valid IPv4 address")]
    InvalidIpv4(String),
    /// A host name that is not acceptable.
    #[error("the host '{host}' is not valid because {reason}")]
    InvalidHost {
        /// The host as given.
        host: String,
        /// Why it was refused (a clause, no full stop).
        reason: &'static str,
    },
    /// The path does not normalise (bad escape, `..` above the root, …).
    #[error("{0}")]
    Path(#[from] PathError),
}

impl PrefixError {
    /// The Windows error code netsh prints for this failure: always 87
    /// (`ERROR_INVALID_PARAMETER`).
    pub fn netsh_code(&self) -> u32 {
        crate::winerror::ERROR_INVALID_PARAMETER
    }
}

// ---------------------------------------------------------------------------
// UrlPrefix
// ---------------------------------------------------------------------------

/// A validated URL prefix such as `http://+:80/api/`.
///
/// Equality and hashing follow registration identity: scheme, host rule, port
/// and the normalised, case-insensitive path key. So `http://+:80/API/` equals
/// `http://+:80/api/` (they conflict in a [`PrefixTable`](super::PrefixTable))
/// even though they display differently.
#[derive(Debug, Clone)]
pub struct UrlPrefix {
    scheme: Scheme,
    host: HostRule,
    port: u16,
    /// The path exactly as registered (starts and ends with `/`).
    path: String,
    /// `normalize_path(path)`: decoded, dot segments removed, lowercase; ends with `/`.
    key: String,
    /// How many segments `path` has: counted once here, not on every
    /// request a site answers (about 200 instructions each).
    segments: usize,
}

impl UrlPrefix {
    /// Parses and validates a URL prefix string the way HTTP.sys does
    /// (`scheme://host:port/path/`). See the [`urlprefix`](crate::urlprefix)
    /// documentation for details.
    pub fn parse(input: &str) -> Result<UrlPrefix, PrefixError> {
        if input.is_empty() {
            return Err(PrefixError::Empty);
        }
        if let Some(what) = input.chars().find_map(forbidden_in_prefix) {
            return Err(PrefixError::ForbiddenChar(what));
        }

        let (scheme_str, rest) = input.split_once("://").ok_or(PrefixError::MissingScheme)?;
        let scheme = if scheme_str.eq_ignore_ascii_case("http") {
            Scheme::Http
        } else if scheme_str.eq_ignore_ascii_case("https") {
            Scheme::Https
        } else if scheme_str.is_empty() {
            return Err(PrefixError::MissingScheme);
        } else {
            return Err(PrefixError::UnsupportedScheme(scheme_str.to_owned()));
        };

        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(PrefixError::EmptyHost);
        }
        if authority.contains('@') {
            return Err(PrefixError::InvalidHost {
                host: authority.to_owned(),
                reason: "user information (user@) is not allowed in a URL prefix",
            });
        }

        let missing_port = |host: &str| PrefixError::MissingPort {
            given: input.to_owned(),
            suggestion: format!(
                "{}://{}:{}{}",
                scheme,
                host,
                scheme.default_port(),
                if path.is_empty() { "/" } else { path }
            ),
        };

        // Split host and port.
        let (host_str, port_str) = if authority.starts_with('[') {
            let close = authority
                .find(']')
                .ok_or_else(|| PrefixError::InvalidIpv6(authority.to_owned()))?;
            let (host, after) = authority.split_at(close + 1);
            match after.strip_prefix(':') {
                Some(port) => (host, port),
                None if after.is_empty() => return Err(missing_port(host)),
                None => return Err(PrefixError::InvalidIpv6(authority.to_owned())),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, _)) if host.contains(':') => {
                    return Err(PrefixError::UnbracketedIpv6(host.to_owned()))
                }
                Some((host, port)) => (host, port),
                None => return Err(missing_port(authority)),
            }
        };
        if host_str.is_empty() {
            return Err(PrefixError::EmptyHost);
        }
        if port_str.is_empty() {
            return Err(missing_port(host_str));
        }
        let port =
            parse_port(port_str).ok_or_else(|| PrefixError::InvalidPort(port_str.to_owned()))?;
        let host = parse_host_rule(host_str)?;

        if !path.ends_with('/') {
            return Err(PrefixError::MissingTrailingSlash {
                given: input.to_owned(),
                suggestion: format!("{input}/"),
            });
        }
        let key = normalize_path(path)?;
        if !key.ends_with('/') {
            // Cannot happen for a path ending in '/', but never trust that blindly.
            return Err(PrefixError::MissingTrailingSlash {
                given: input.to_owned(),
                suggestion: format!("{input}/"),
            });
        }

        Ok(UrlPrefix {
            scheme,
            host,
            port,
            path: path.to_owned(),
            key: key.into_owned(),
            segments: path.split('/').filter(|s| !s.is_empty()).count(),
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host rule.
    pub fn host(&self) -> &HostRule {
        &self.host
    }

    /// The port (1–65535).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path as registered; starts and ends with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// How many path segments the prefix has (`/` has none, `/a/b/` two):
    /// what a site drops from a request path before its lookup.
    pub fn segments(&self) -> usize {
        self.segments
    }

    /// The normalised comparison key of the path ([`normalize_path`] of
    /// [`path`](Self::path)); starts and ends with `/`.
    pub fn path_key(&self) -> &str {
        &self.key
    }

    /// The precedence category of the host.
    pub fn category(&self) -> Category {
        self.host.category()
    }

    /// Given a request path normalised the same way as the key (either the
    /// lowercase key from [`normalize_path`] or the case-preserving form from
    /// [`normalize_path_cased`](super::normalize_path_cased)) that this prefix
    /// matched, returns the part after the prefix (no leading `/`). Works
    /// segment-wise, so it is correct even where lowercasing changed byte
    /// lengths. `None` if `path` has fewer segments than the prefix.
    pub fn strip_from<'p>(&self, path: &'p str) -> Option<&'p str> {
        let slashes = self.key.bytes().filter(|&b| b == b'/').count();
        let mut seen = 0;
        for (i, b) in path.bytes().enumerate() {
            if b == b'/' {
                seen += 1;
                if seen == slashes {
                    return path.get(i + 1..);
                }
            }
        }
        None
    }
}

impl PartialEq for UrlPrefix {
    fn eq(&self, other: &Self) -> bool {
        self.scheme == other.scheme
            && self.port == other.port
            && self.host == other.host
            && self.key == other.key
    }
}

impl Eq for UrlPrefix {}

impl Hash for UrlPrefix {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.scheme.hash(state);
        self.host.hash(state);
        self.port.hash(state);
        self.key.hash(state);
    }
}

impl fmt::Display for UrlPrefix {
    /// Canonical form: lowercase scheme, host as stored (names lowercase and
    /// punycode, IPv6 in brackets), decimal port, path as registered.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}:{}{}",
            self.scheme, self.host, self.port, self.path
        )
    }
}

impl FromStr for UrlPrefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UrlPrefix::parse(s)
    }
}

fn forbidden_in_prefix(c: char) -> Option<&'static str> {
    match c {
        ' ' => Some("a space"),
        '?' => Some("'?' (a query string cannot be registered)"),
        '#' => Some("'#' (a fragment cannot be registered)"),
        c if c.is_control() => Some("a control character"),
        _ => None,
    }
}

/// Decimal, 1–65535, no sign, no leading zero (Microsoft's UrlPrefix rules).
fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p != 0)
}

fn parse_host_rule(host: &str) -> Result<HostRule, PrefixError> {
    match host {
        "+" => return Ok(HostRule::StrongWildcard),
        "*" => return Ok(HostRule::WeakWildcard),
        _ => {}
    }
    if let Some(inner) = host.strip_prefix('[') {
        let addr = inner
            .strip_suffix(']')
            .and_then(|s| Ipv6Addr::from_str(s).ok())
            .ok_or_else(|| PrefixError::InvalidIpv6(host.to_owned()))?;
        return Ok(HostRule::IpBound(IpAddr::V6(addr).to_canonical()));
    }
    if host.contains(['[', ']']) {
        return Err(PrefixError::InvalidIpv6(host.to_owned()));
    }
    if let Ok(v4) = Ipv4Addr::from_str(host) {
        return Ok(HostRule::IpBound(IpAddr::V4(v4)));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(PrefixError::InvalidIpv4(host.to_owned()));
    }
    if host.contains(['+', '*']) {
        return Err(PrefixError::InvalidHost {
            host: host.to_owned(),
            reason: "a wildcard (+ or *) must be the whole host",
        });
    }
    let ascii = idna::domain_to_ascii_cow(host.as_bytes(), AsciiDenyList::URL).map_err(|_| {
        PrefixError::InvalidHost {
            host: host.to_owned(),
            reason: "it is not a valid (internationalised) domain name",
        }
    })?;
    if ascii.is_empty() {
        return Err(PrefixError::EmptyHost);
    }
    if ascii.split('.').any(str::is_empty) {
        return Err(PrefixError::InvalidHost {
            host: host.to_owned(),
            reason: "it has an empty label (leading, trailing or doubled dot)",
        });
    }
    // UTS 46 maps e.g. full-width digits to ASCII: re-check for an IP literal.
    if let Ok(v4) = Ipv4Addr::from_str(&ascii) {
        return Ok(HostRule::IpBound(IpAddr::V4(v4)));
    }
    Ok(HostRule::Explicit(ascii.into_owned()))
}
