//! URL prefixes and the routing table, the way HTTP.sys models them.
//!
//! This module is pure and synchronous: no I/O, no async. It has three parts.
//!
//! 1. [`UrlPrefix`]: parsing and validating a registration string such as
//!    `http://+:80/api/` (HTTPSYS.md §1). Every parse error maps to netsh
//!    `Error: 87` ([`PrefixError::netsh_code`]).
//! 2. [`normalize_path`]: the one path normalisation used for *both* the path of
//!    a registration and the path of a request, so the two compare as equals.
//! 3. [`PrefixTable`]: the routing table. [`PrefixTable::lookup`] implements the
//!    HTTP.sys precedence rules: strong wildcard `+` → explicit host →
//!    IP-bound → weak wildcard `*`; the first category with a match wins, and
//!    inside a category the longest match on whole path segments wins.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use portshare::urlprefix::{normalize_path, Lookup, PrefixTable, Scheme, UrlPrefix};
//!
//! let mut table = PrefixTable::new();
//! table.insert(UrlPrefix::parse("http://+:80/api/").unwrap(), "api").unwrap();
//! table.insert(UrlPrefix::parse("http://*:80/").unwrap(), "fallback").unwrap();
//!
//! let key = normalize_path("/API/v1/../users").unwrap();
//! let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
//! match table.lookup(Scheme::Http, 80, Some("example.com"), local, &key) {
//!     Lookup::Matched { value, matched_len, .. } => {
//!         assert_eq!(*value, "api");
//!         assert_eq!(&key[matched_len..], "users");
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```
//!
//! # Decisions that go beyond HTTPSYS.md
//!
//! * **Encoded separators.** HTTP.sys decodes `%2F` to `/` (and `%5C` to `\`,
//!   which then becomes `/`) before routing. That lets `/a%2Fb` route like
//!   `/a/b` while a back end that does not decode `%2F` sees one segment — a
//!   classic path-confusion hole for proxies. [`normalize_path`] therefore
//!   refuses both with [`PathError::EncodedSeparator`]; the server answers
//!   `400 Bad Request - Invalid URL`. A registration containing them is refused
//!   (error 87).
//! * **Non-UTF-8 after decoding** is refused ([`PathError::InvalidUtf8`]).
//!   HTTP.sys can fall back to the ANSI code page; we do not guess.
//! * **`..` above the root** is an error ([`PathError::AboveRoot`]) instead of
//!   being clamped as RFC 3986 would.
//! * **Case-insensitivity** uses Rust's Unicode `to_lowercase` (ASCII fast
//!   path). HTTP.sys upper-cases with its own table; the two differ only for a
//!   handful of exotic characters.
//! * **Port numbers** follow the Microsoft UrlPrefix documentation: decimal,
//!   1–65535, *no leading zero* (`http://+:080/` is refused).
//! * **IPv4-mapped IPv6** (`[::ffff:10.0.0.1]`) is canonicalised to IPv4 both
//!   in registrations and in the local address of a request, so the two forms
//!   are one registration and match each other.
//! * **Host names** go through UTS 46 (`idna`) with the URL deny list, so they
//!   are stored lowercase and in punycode; a name with an empty label
//!   (`a..b`, `example.com.`) or a partial wildcard (`*.example.com`) is
//!   refused. A name made only of digits and dots must be a valid IPv4 address.
//! * **The Host header's port** is ignored for routing: HTTP.sys routes on the
//!   port the connection arrived on.
//! * **NoHostMatch vs NoPathMatch**: see [`Lookup`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use idna::AsciiDenyList;

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
        87
    }
}

/// Why a path (of a request or of a registration) could not be normalised.
/// For a request every variant means `400 Bad Request - Invalid URL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("the path must start with '/'")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("the path contains a '%' that is not followed by two hexadecimal digits")]
    InvalidEscape,
    /// `%00`.
    #[error("the path contains an encoded NUL character (%00)")]
    EncodedNul,
    /// `%2F` or `%5C` (see the module documentation for why).
    #[error("the path contains an encoded '/' or '\\' (%2F or %5C), which is refused")]
    EncodedSeparator,
    /// A control character, raw or percent-encoded.
    #[error("the path contains a control character")]
    ControlChar,
    /// The bytes after percent-decoding are not UTF-8.
    #[error("the path is not valid UTF-8 after percent-decoding")]
    InvalidUtf8,
    /// A `..` segment would climb above the root.
    #[error("the path uses '..' to go above the root")]
    AboveRoot,
    /// A raw space, `?` or `#` (the caller must strip the query first).
    #[error("the path contains a raw '{0}'")]
    UnexpectedChar(char),
}

/// A registration that clashes with one already in the table: same scheme,
/// host rule, port and (case-insensitive, normalised) path. netsh `Error: 183`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the URL prefix {existing} is already registered")]
pub struct ConflictError {
    /// The registration already present, as it was registered.
    pub existing: UrlPrefix,
}

impl ConflictError {
    /// The Windows error code netsh prints: 183 (`ERROR_ALREADY_EXISTS`).
    pub fn netsh_code(&self) -> u32 {
        183
    }
}

// ---------------------------------------------------------------------------
// UrlPrefix
// ---------------------------------------------------------------------------

/// A validated URL prefix such as `http://+:80/api/`.
///
/// Equality and hashing follow registration identity: scheme, host rule, port
/// and the normalised, case-insensitive path key. So `http://+:80/API/` equals
/// `http://+:80/api/` (they conflict in a [`PrefixTable`]) even though they
/// display differently.
#[derive(Debug, Clone)]
pub struct UrlPrefix {
    scheme: Scheme,
    host: HostRule,
    port: u16,
    /// The path exactly as registered (starts and ends with `/`).
    path: String,
    /// `normalize_path(path)`: decoded, dot segments removed, lowercase; ends with `/`.
    key: String,
}

impl UrlPrefix {
    /// Parses and validates a URL prefix string the way HTTP.sys does
    /// (`scheme://host:port/path/`). See the module documentation for details.
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
    /// [`normalize_path_cased`]) that this prefix matched, returns the part
    /// after the prefix (no leading `/`). Works segment-wise, so it is correct
    /// even where lowercasing changed byte lengths. `None` if `path` has fewer
    /// segments than the prefix.
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

// ---------------------------------------------------------------------------
// Host header helpers
// ---------------------------------------------------------------------------

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
fn with_host_key<R>(header: &str, f: impl FnOnce(&str) -> Option<R>) -> Option<R> {
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

// ---------------------------------------------------------------------------
// Path normalisation
// ---------------------------------------------------------------------------

/// Normalises a path for matching and returns its comparison key.
///
/// Used for both registration paths and request paths. `raw` is the path
/// component only (strip `?query` first; a raw `?`, `#` or space is refused).
/// Steps, in HTTP.sys order:
///
/// 1. percent-decode (`%41` → `A`); refuse an invalid escape, `%00`, encoded
///    control characters, and `%2F`/`%5C` ([`PathError::EncodedSeparator`]);
/// 2. convert `\` to `/`;
/// 3. refuse control characters and bytes that are not UTF-8 after decoding;
/// 4. remove dot segments (RFC 3986 §5.2.4, also for decoded `%2e%2e`); a `..`
///    above the root is [`PathError::AboveRoot`];
/// 5. lowercase.
///
/// Nothing else is collapsed (`//` stays). Every error means
/// `400 Bad Request - Invalid URL` for a request, `Error: 87` for a
/// registration.
pub fn normalize_path(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if is_normalized(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut s = normalize_path_cased(raw)?;
    if s.is_ascii() {
        s.make_ascii_lowercase();
        Ok(Cow::Owned(s))
    } else {
        Ok(Cow::Owned(s.to_lowercase()))
    }
}

/// `raw` is its own key already, as most request paths are: rooted, and
/// only lowercase letters, digits, `/ - _ ~` and dots that start no
/// segment (no escapes, backslashes, dot segments or upper case).
fn is_normalized(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    let mut prev = b'/';
    bytes.iter().all(|&b| {
        let plain = match b {
            b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'~' => true,
            b'.' => prev != b'/',
            _ => false,
        };
        prev = b;
        plain
    })
}

/// [`normalize_path`] without the final lowercasing: the decoded, dot-free
/// path with its original case, e.g. for mapping the remainder to a file.
/// Has exactly the same `/` structure as the key.
pub fn normalize_path_cased(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    match bytes.first() {
        Some(b'/') | Some(b'\\') => {}
        _ => return Err(PathError::NotAbsolute),
    }
    let mut buf = Vec::with_capacity(bytes.len());
    let mut has_dot_segment_candidate = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let out = match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_val);
                let lo = bytes.get(i + 2).copied().and_then(hex_val);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::InvalidEscape);
                };
                i += 2;
                match hi << 4 | lo {
                    0 => return Err(PathError::EncodedNul),
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    c if c < 0x20 || c == 0x7f => return Err(PathError::ControlChar),
                    c => c,
                }
            }
            b'\\' => b'/',
            b' ' | b'?' | b'#' => return Err(PathError::UnexpectedChar(b as char)),
            c if c < 0x20 || c == 0x7f => return Err(PathError::ControlChar),
            c => c,
        };
        if out == b'.' && buf.last() == Some(&b'/') {
            has_dot_segment_candidate = true;
        }
        buf.push(out);
        i += 1;
    }
    let s = String::from_utf8(buf).map_err(|_| PathError::InvalidUtf8)?;
    if !s.is_ascii() && s.chars().any(char::is_control) {
        // C1 controls (U+0080–U+009F) arrive as UTF-8, raw or encoded.
        return Err(PathError::ControlChar);
    }
    if has_dot_segment_candidate {
        remove_dot_segments(&s)
    } else {
        Ok(s)
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §5.2.4 for an absolute path (starts with `/`), except that `..`
/// above the root is an error instead of being dropped.
fn remove_dot_segments(path: &str) -> Result<String, PathError> {
    let body = path.strip_prefix('/').unwrap_or(path);
    let mut segments: Vec<&str> = Vec::new();
    let mut iter = body.split('/').peekable();
    while let Some(seg) = iter.next() {
        let last = iter.peek().is_none();
        match seg {
            "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            s => {
                segments.push(s);
                continue;
            }
        }
        // A trailing `.` or `..` leaves a directory: keep the trailing slash.
        if last {
            segments.push("");
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &segments {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Routing table
// ---------------------------------------------------------------------------

/// The result of [`PrefixTable::lookup`].
///
/// **NoHostMatch vs NoPathMatch.** A category *claims* a request when it has at
/// least one registration that applies to the request's host on this
/// scheme+port: `+` and `*` claim every request on a port where they have any
/// registration; an explicit host claims it when the Host header names it; an
/// IP-bound rule claims it when the request arrived on that local address.
/// If some category claimed the request but no path under any claiming
/// category matched, the answer is [`NoPathMatch`](Lookup::NoPathMatch)
/// (404). If no category claimed it — including when nothing at all is
/// registered for the scheme+port — it is [`NoHostMatch`](Lookup::NoHostMatch)
/// (400 Invalid Hostname).
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a, T> {
    /// A registration matched.
    Matched {
        /// The registration that matched.
        prefix: &'a UrlPrefix,
        /// Its value.
        value: &'a T,
        /// How many bytes of the `path_key` passed to `lookup` the prefix
        /// covers (always just after a `/`): `&path_key[matched_len..]` is the
        /// remainder. For the case-preserving path use
        /// [`UrlPrefix::strip_from`].
        matched_len: usize,
    },
    /// Some category claims the host on this port, but no path matched → 404.
    NoPathMatch,
    /// Nothing on this scheme+port claims the host → 400 Invalid Hostname.
    NoHostMatch,
}

impl<T> Lookup<'_, T> {
    /// The HTTP status HTTP.sys would answer with for a failed lookup
    /// (404 or 400), `None` when a registration matched.
    pub fn error_status(&self) -> Option<u16> {
        match self {
            Lookup::Matched { .. } => None,
            Lookup::NoPathMatch => Some(404),
            Lookup::NoHostMatch => Some(400),
        }
    }
}

struct Entry<T> {
    prefix: UrlPrefix,
    value: T,
}

/// The paths registered for one host rule on one scheme+port.
///
/// Structure choice: a hash map from path key (always ending in `/`) to entry,
/// probed at the request path's `/` boundaries from longest to shortest. A
/// lookup is O(depth) hash probes of borrowed slices of the request key (no
/// allocation), independent of how many prefixes are registered, and insert
/// and remove stay trivial. `by_len` counts keys per byte length so probes at
/// lengths nobody registered are skipped without hashing — with only `/`
/// registered a lookup is a single probe. A trie would avoid re-hashing the
/// shared front of the path, but paths are short (UrlSegmentMaxCount 255) and a
/// trie costs a pointer chase per segment and far more code.
struct PathMap<T> {
    entries: HashMap<Box<str>, Entry<T>>,
    /// `by_len[n]` = number of keys that are `n` bytes long.
    by_len: Vec<u32>,
}

impl<T> Default for PathMap<T> {
    fn default() -> Self {
        PathMap {
            entries: HashMap::new(),
            by_len: Vec::new(),
        }
    }
}

impl<T> PathMap<T> {
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn insert(&mut self, prefix: UrlPrefix, value: T) -> Result<(), ConflictError> {
        use std::collections::hash_map::Entry as MapEntry;
        let len = prefix.key.len();
        match self.entries.entry(prefix.key.clone().into_boxed_str()) {
            MapEntry::Occupied(e) => Err(ConflictError {
                existing: e.get().prefix.clone(),
            }),
            MapEntry::Vacant(e) => {
                e.insert(Entry { prefix, value });
                if self.by_len.len() <= len {
                    self.by_len.resize(len + 1, 0);
                }
                self.by_len[len] += 1;
                Ok(())
            }
        }
    }

    fn remove(&mut self, key: &str) -> Option<T> {
        let entry = self.entries.remove(key)?;
        if let Some(n) = self.by_len.get_mut(key.len()) {
            *n = n.saturating_sub(1);
        }
        while self.by_len.last() == Some(&0) {
            self.by_len.pop();
        }
        Some(entry.value)
    }

    /// Longest registered key that is a whole-segment prefix of `path_key`.
    fn find(&self, path_key: &str) -> Option<(&Entry<T>, usize)> {
        let bytes = path_key.as_bytes();
        let end = bytes.len().min(self.by_len.len().saturating_sub(1));
        // Candidate = path_key[..=i] where byte i is '/', i.e. length i + 1.
        for i in (0..end).rev() {
            if bytes[i] == b'/' && self.by_len[i + 1] > 0 {
                if let Some(entry) = path_key.get(..=i).and_then(|k| self.entries.get(k)) {
                    return Some((entry, i + 1));
                }
            }
        }
        None
    }

    fn iter(&self) -> impl Iterator<Item = (&UrlPrefix, &T)> + '_ {
        self.entries.values().map(|e| (&e.prefix, &e.value))
    }
}

/// Everything registered for one scheme+port.
struct PortTable<T> {
    strong: PathMap<T>,
    explicit: HashMap<Box<str>, PathMap<T>>,
    ip: HashMap<IpAddr, PathMap<T>>,
    weak: PathMap<T>,
}

impl<T> Default for PortTable<T> {
    fn default() -> Self {
        PortTable {
            strong: PathMap::default(),
            explicit: HashMap::new(),
            ip: HashMap::new(),
            weak: PathMap::default(),
        }
    }
}

impl<T> PortTable<T> {
    fn is_empty(&self) -> bool {
        self.strong.is_empty()
            && self.explicit.is_empty()
            && self.ip.is_empty()
            && self.weak.is_empty()
    }

    fn paths(&self, host: &HostRule) -> Option<&PathMap<T>> {
        match host {
            HostRule::StrongWildcard => Some(&self.strong),
            HostRule::Explicit(name) => self.explicit.get(name.as_str()),
            HostRule::IpBound(ip) => self.ip.get(ip),
            HostRule::WeakWildcard => Some(&self.weak),
        }
    }

    fn paths_mut(&mut self, host: &HostRule) -> Option<&mut PathMap<T>> {
        match host {
            HostRule::StrongWildcard => Some(&mut self.strong),
            HostRule::Explicit(name) => self.explicit.get_mut(name.as_str()),
            HostRule::IpBound(ip) => self.ip.get_mut(ip),
            HostRule::WeakWildcard => Some(&mut self.weak),
        }
    }

    fn paths_or_insert(&mut self, host: &HostRule) -> &mut PathMap<T> {
        match host {
            HostRule::StrongWildcard => &mut self.strong,
            HostRule::Explicit(name) => self.explicit.entry(name.as_str().into()).or_default(),
            HostRule::IpBound(ip) => self.ip.entry(*ip).or_default(),
            HostRule::WeakWildcard => &mut self.weak,
        }
    }

    fn remove(&mut self, prefix: &UrlPrefix) -> Option<T> {
        let value = self.paths_mut(&prefix.host)?.remove(&prefix.key)?;
        // Drop empty per-host maps so `explicit`/`ip` only hold live hosts.
        match &prefix.host {
            HostRule::Explicit(name) => {
                if self
                    .explicit
                    .get(name.as_str())
                    .is_some_and(PathMap::is_empty)
                {
                    self.explicit.remove(name.as_str());
                }
            }
            HostRule::IpBound(ip) => {
                if self.ip.get(ip).is_some_and(PathMap::is_empty) {
                    self.ip.remove(ip);
                }
            }
            HostRule::StrongWildcard | HostRule::WeakWildcard => {}
        }
        Some(value)
    }

    fn iter(&self) -> impl Iterator<Item = (&UrlPrefix, &T)> + '_ {
        self.strong
            .iter()
            .chain(self.explicit.values().flat_map(PathMap::iter))
            .chain(self.ip.values().flat_map(PathMap::iter))
            .chain(self.weak.iter())
    }
}

/// The routing table: URL prefix registrations, each with a value `T`.
///
/// Organised as scheme+port → category → host → path map, so a lookup touches
/// only the registrations that can apply and costs a few hash probes whatever
/// the number of registrations.
pub struct PrefixTable<T> {
    ports: HashMap<(Scheme, u16), PortTable<T>>,
    len: usize,
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable {
            ports: HashMap::new(),
            len: 0,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for PrefixTable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(p, v)| (p.to_string(), v)))
            .finish()
    }
}

impl<T> PrefixTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `prefix` with `value`. Fails with [`ConflictError`] (netsh 183)
    /// when an equal prefix — same scheme, host rule, port and case-insensitive
    /// normalised path — is already registered. Different categories never
    /// conflict: `http://+:80/` and `http://*:80/` coexist.
    pub fn insert(&mut self, prefix: UrlPrefix, value: T) -> Result<(), ConflictError> {
        let port = self.ports.entry((prefix.scheme, prefix.port)).or_default();
        let host = prefix.host.clone();
        // A conflict implies an existing entry, so no empty map is left behind.
        port.paths_or_insert(&host).insert(prefix, value)?;
        self.len += 1;
        Ok(())
    }

    /// Removes the registration equal to `prefix` (see [`UrlPrefix`]'s
    /// equality) and returns its value.
    pub fn remove(&mut self, prefix: &UrlPrefix) -> Option<T> {
        let key = (prefix.scheme, prefix.port);
        let port = self.ports.get_mut(&key)?;
        let value = port.remove(prefix)?;
        if port.is_empty() {
            self.ports.remove(&key);
        }
        self.len -= 1;
        Some(value)
    }

    /// The value registered for a prefix equal to `prefix`.
    pub fn get(&self, prefix: &UrlPrefix) -> Option<&T> {
        let port = self.ports.get(&(prefix.scheme, prefix.port))?;
        port.paths(&prefix.host)?
            .entries
            .get(prefix.key.as_str())
            .map(|e| &e.value)
    }

    /// Mutable access to the value registered for a prefix equal to `prefix`.
    pub fn get_mut(&mut self, prefix: &UrlPrefix) -> Option<&mut T> {
        let port = self.ports.get_mut(&(prefix.scheme, prefix.port))?;
        port.paths_mut(&prefix.host)?
            .entries
            .get_mut(prefix.key.as_str())
            .map(|e| &mut e.value)
    }

    /// True when a prefix equal to `prefix` is registered.
    pub fn contains(&self, prefix: &UrlPrefix) -> bool {
        self.get(prefix).is_some()
    }

    /// All registrations, in no particular order (sort if you print them).
    pub fn iter(&self) -> impl Iterator<Item = (&UrlPrefix, &T)> + '_ {
        self.ports.values().flat_map(PortTable::iter)
    }

    /// Number of registrations.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The scheme+port pairs that have at least one registration (the
    /// listeners the server needs), in no particular order.
    pub fn ports(&self) -> impl Iterator<Item = (Scheme, u16)> + '_ {
        self.ports.keys().copied()
    }

    /// Routes a request.
    ///
    /// * `scheme`, `port`: the listener the connection arrived on;
    /// * `host`: the Host header value if any (may carry `:port`, may be a
    ///   bracketed IPv6 literal; the port in it is ignored);
    /// * `local_ip`: the local address of the connection (IPv4-mapped IPv6 is
    ///   treated as IPv4);
    /// * `path_key`: the request path after [`normalize_path`].
    ///
    /// Categories are tried in order `+`, explicit host, IP-bound, `*`; the
    /// first whose registrations match the path wins, even when a later
    /// category has a longer match. Inside a category the longest prefix on
    /// whole segments wins. See [`Lookup`] for the two failure kinds. Does not
    /// allocate except for a non-ASCII Host header (IDN conversion) or one
    /// longer than 256 bytes with upper-case letters.
    pub fn lookup(
        &self,
        scheme: Scheme,
        port: u16,
        host: Option<&str>,
        local_ip: IpAddr,
        path_key: &str,
    ) -> Lookup<'_, T> {
        let Some(table) = self.ports.get(&(scheme, port)) else {
            return Lookup::NoHostMatch;
        };
        let mut claimed = false;

        // 1. Strong wildcard.
        if !table.strong.is_empty() {
            claimed = true;
            if let Some(m) = hit(&table.strong, path_key) {
                return m;
            }
        }
        // 2. Explicit host.
        if let (false, Some(h)) = (table.explicit.is_empty(), host) {
            if let Some(paths) = with_host_key(h, |k| table.explicit.get(k)) {
                claimed = true;
                if let Some(m) = hit(paths, path_key) {
                    return m;
                }
            }
        }
        // 3. IP-bound weak wildcard.
        if !table.ip.is_empty() {
            if let Some(paths) = table.ip.get(&local_ip.to_canonical()) {
                claimed = true;
                if let Some(m) = hit(paths, path_key) {
                    return m;
                }
            }
        }
        // 4. Weak wildcard.
        if !table.weak.is_empty() {
            claimed = true;
            if let Some(m) = hit(&table.weak, path_key) {
                return m;
            }
        }
        if claimed {
            Lookup::NoPathMatch
        } else {
            Lookup::NoHostMatch
        }
    }
}

/// The longest whole-segment match of `path_key` in `paths`, as a `Lookup`.
fn hit<'a, T>(paths: &'a PathMap<T>, path_key: &str) -> Option<Lookup<'a, T>> {
    paths
        .find(path_key)
        .map(|(entry, matched_len)| Lookup::Matched {
            prefix: &entry.prefix,
            value: &entry.value,
            matched_len,
        })
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> UrlPrefix {
        UrlPrefix::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    // ----- parsing --------------------------------------------------------

    #[test]
    #[rustfmt::skip]
    fn parse_valid_prefixes() {
        // (input, display, category)
        let cases: &[(&str, &str, Category)] = &[
            ("http://+:80/",                      "http://+:80/",                       Category::Strong),
            ("HTTP://+:80/",                      "http://+:80/",                       Category::Strong),
            ("HtTpS://*:443/",                    "https://*:443/",                     Category::Weak),
            ("http://+:80/api/",                  "http://+:80/api/",                   Category::Strong),
            ("http://+:65535/",                   "http://+:65535/",                    Category::Strong),
            ("http://+:1/",                       "http://+:1/",                        Category::Strong),
            ("http://*:8080/a/b/c/",              "http://*:8080/a/b/c/",               Category::Weak),
            ("http://WWW.Example.COM:80/Vroot/",  "http://www.example.com:80/Vroot/",   Category::Explicit),
            ("https://bücher.test:443/",          "https://xn--bcher-kva.test:443/",    Category::Explicit),
            ("https://BÜCHER.test:443/",          "https://xn--bcher-kva.test:443/",    Category::Explicit),
            ("http://localhost:80/",              "http://localhost:80/",               Category::Explicit),
            ("http://my_host:80/",                "http://my_host:80/",                 Category::Explicit),
            ("http://127.0.0.1:80/",              "http://127.0.0.1:80/",               Category::IpBound),
            ("http://[::1]:80/",                  "http://[::1]:80/",                   Category::IpBound),
            ("http://[3FFE:FFFF::6ECB:0101]:80/", "http://[3ffe:ffff::6ecb:101]:80/",   Category::IpBound),
            ("http://[::ffff:10.0.0.1]:80/",      "http://10.0.0.1:80/",                Category::IpBound),
            ("http://+:80/a%20b/",                "http://+:80/a%20b/",                 Category::Strong),
            ("http://+:80/caf%C3%A9/",            "http://+:80/caf%C3%A9/",             Category::Strong),
            ("http://+:80/a/../b/",               "http://+:80/a/../b/",                Category::Strong),
            ("http://+:80/Temporary_Listen_Addresses/", "http://+:80/Temporary_Listen_Addresses/", Category::Strong),
        ];
        for (input, display, cat) in cases {
            let prefix = p(input);
            assert_eq!(prefix.to_string(), *display, "{input}");
            assert_eq!(prefix.category(), *cat, "{input}");
            // Display round-trips to an equal prefix.
            assert_eq!(p(&prefix.to_string()), prefix, "{input}");
        }
        assert_eq!(p("HTTP://+:80/").scheme(), Scheme::Http);
        assert_eq!(p("http://+:80/A/../B/").path_key(), "/b/");
        assert_eq!(p("http://+:80/%41pi/").path_key(), "/api/");
        assert_eq!(p("http://[::1]:80/").host(), &HostRule::IpBound(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }

    #[test]
    #[rustfmt::skip]
    fn parse_invalid_prefixes() {
        // (input, a fragment the message must contain)
        let cases: &[(&str, &str)] = &[
            ("",                          "empty"),
            ("http://+:80/api",           "must end with '/' (http://+:80/api → http://+:80/api/)"),
            ("http://+:80",               "must end with '/'"),
            ("http://+:0/",               "port '0'"),
            ("http://+:65536/",           "port '65536'"),
            ("http://+:080/",             "leading zero"),
            ("http://+:-1/",              "port '-1'"),
            ("http://+:8a/",              "port '8a'"),
            ("http://+/",                 "must include a port (http://+/ → http://+:80/)"),
            ("https://+/x/",              "https://+:443/x/"),
            ("http://+:/",                "must include a port"),
            ("http://[::1:80/",           "IPv6"),
            ("http://[::1]/",             "must include a port"),
            ("http://[::1]x:80/",         "IPv6"),
            ("http://[zz::1]:80/",        "IPv6"),
            ("http://::1:80/",            "brackets"),
            ("http://:80/",               "no host"),
            ("http:///",                  "no host"),
            ("http//+:80/",               "http://"),
            ("+:80/",                     "http://"),
            ("ftp://+:80/",               "scheme 'ftp'"),
            ("://+:80/",                  "http://"),
            ("http://*:8080/a b/",        "a space"),
            ("http://+:80/a?b/",          "'?'"),
            ("http://+:80/a#b/",          "'#'"),
            ("http://+:80/a\tb/",         "control character"),
            ("http://a b:80/",            "a space"),
            ("http://*.example.com:80/",  "wildcard"),
            ("http://a+:80/",             "wildcard"),
            ("http://user@host:80/",      "user information"),
            ("http://a..b:80/",           "empty label"),
            ("http://example.com.:80/",   "empty label"),
            ("http://a<b:80/",            "not a valid"),
            ("http://1.2.3:80/",          "IPv4"),
            ("http://256.1.1.1:80/",      "IPv4"),
            ("http://+:80/../",           "above the root"),
            ("http://+:80/a%2Fb/",        "encoded '/'"),
            ("http://+:80/a%5cb/",        "encoded '/'"),
            ("http://+:80/%00/",          "NUL"),
            ("http://+:80/%zz/",          "hexadecimal"),
            ("http://+:80/%ff/",          "UTF-8"),
        ];
        for (input, fragment) in cases {
            match UrlPrefix::parse(input) {
                Ok(ok) => panic!("{input:?} parsed as {ok}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(fragment), "{input:?}: {msg:?} lacks {fragment:?}");
                    assert_eq!(e.netsh_code(), 87);
                    // One plain sentence: no line breaks, no trailing full stop.
                    assert!(!msg.contains('\n') && !msg.ends_with('.'), "{msg:?}");
                }
            }
        }
    }

    #[test]
    fn prefix_equality_is_case_insensitive_on_path() {
        assert_eq!(p("http://+:80/API/"), p("http://+:80/api/"));
        assert_eq!(p("http://+:80/%41pi/"), p("http://+:80/api/"));
        assert_ne!(p("http://+:80/"), p("http://*:80/"));
        assert_ne!(p("http://+:80/"), p("https://+:80/"));
        assert_ne!(p("http://+:80/"), p("http://+:81/"));
    }

    // ----- helpers --------------------------------------------------------

    #[test]
    #[rustfmt::skip]
    fn host_header_splitting() {
        type Split<'a> = Option<(&'a str, Option<u16>)>;
        let cases: &[(&str, Split<'_>)] = &[
            ("example.com",      Some(("example.com", None))),
            ("example.com:8080", Some(("example.com", Some(8080)))),
            ("example.com:",     Some(("example.com", None))),
            ("[::1]:8080",       Some(("[::1]", Some(8080)))),
            ("[::1]",            Some(("[::1]", None))),
            ("[::1",             None),
            ("[::1]x",           None),
            ("::1",              None),
            ("a:99999",          None),
            ("a:x",              None),
        ];
        for (input, want) in cases {
            assert_eq!(split_host_port(input), *want, "{input}");
        }
        assert!(is_ip_literal("127.0.0.1"));
        assert!(is_ip_literal("[::1]"));
        assert!(!is_ip_literal("::1"));
        assert!(!is_ip_literal("localhost"));
    }

    // ----- path normalisation ----------------------------------------------

    #[test]
    #[rustfmt::skip]
    fn normalize_paths() {
        let ok: &[(&str, &str)] = &[
            ("/",             "/"),
            ("/API/",         "/api/"),
            ("/%41pi/",       "/api/"),
            ("/%41PI/X",      "/api/x"),
            ("/a/../api/x",   "/api/x"),
            ("/a/./b",        "/a/b"),
            ("/a/b/..",       "/a/"),
            ("/a/b/.",        "/a/b/"),
            ("/a/%2e%2E/b",   "/b"),
            ("/a//b",         "/a//b"),
            ("/a//../b",      "/a/b"),
            ("\\a\\b\\",      "/a/b/"),
            ("/a\\..\\b",     "/b"),
            ("/a%20b",        "/a b"),
            ("/a%25b",        "/a%b"),
            ("/.hidden/..x",  "/.hidden/..x"),
            ("/CAF%C3%89",    "/café"),
            ("/ÄÖ",           "/äö"),
            ("/a/..",         "/"),
        ];
        for (raw, want) in ok {
            assert_eq!(normalize_path(raw).as_deref(), Ok(*want), "{raw}");
        }
        assert_eq!(normalize_path_cased("/A/./B%43").as_deref(), Ok("/A/BC"));

        // The shortcut for paths that are keys already agrees with the full
        // work, and is taken only for them.
        let plain = ["/", "/proxy/", "/a-b_c~d/x.y/z..", "/9/"];
        let not_plain = ["/./", "/a/..", "/a/.b", "/v1/.well", "/A", "/a%41", "/a\\b", "//.", "/é", "x/"];
        for raw in plain {
            assert!(matches!(normalize_path(raw), Ok(Cow::Borrowed(k)) if k == raw), "{raw}");
        }
        for raw in not_plain {
            assert!(!matches!(normalize_path(raw), Ok(Cow::Borrowed(_))), "{raw}");
            let full = normalize_path_cased(raw).map(|k| k.to_lowercase());
            assert_eq!(normalize_path(raw).map(Cow::into_owned), full, "{raw}");
        }

        let bad: &[(&str, PathError)] = &[
            ("",            PathError::NotAbsolute),
            ("api/",        PathError::NotAbsolute),
            ("/%",          PathError::InvalidEscape),
            ("/%4",         PathError::InvalidEscape),
            ("/%g0",        PathError::InvalidEscape),
            ("/%00",        PathError::EncodedNul),
            ("/a%2fb",      PathError::EncodedSeparator),
            ("/a%2Fb",      PathError::EncodedSeparator),
            ("/a%5Cb",      PathError::EncodedSeparator),
            ("/a%0ab",      PathError::ControlChar),
            ("/a%7f",       PathError::ControlChar),
            ("/a\u{1}",     PathError::ControlChar),
            ("/a%C2%85",    PathError::ControlChar),
            ("/%ff",        PathError::InvalidUtf8),
            ("/%C3",        PathError::InvalidUtf8),
            ("/..",         PathError::AboveRoot),
            ("/a/../../b",  PathError::AboveRoot),
            ("/%2e%2e/",    PathError::AboveRoot),
            ("/a b",        PathError::UnexpectedChar(' ')),
            ("/a?b",        PathError::UnexpectedChar('?')),
            ("/a#b",        PathError::UnexpectedChar('#')),
        ];
        for (raw, want) in bad {
            assert_eq!(normalize_path(raw), Err(*want), "{raw:?}");
        }
    }

    // ----- routing --------------------------------------------------------

    /// A request: (scheme, port, host header, local ip, raw path).
    type Req<'a> = (Scheme, u16, Option<&'a str>, &'a str, &'a str);

    /// Expected outcome: the display of the matched prefix and the remainder,
    /// or "404" / "400".
    fn route(table: &PrefixTable<String>, (scheme, port, host, ip, path): Req<'_>) -> String {
        let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
        let key = normalize_path(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        match table.lookup(scheme, port, host, ip, &key) {
            Lookup::Matched {
                prefix,
                value,
                matched_len,
            } => {
                assert_eq!(value, &prefix.to_string());
                assert_eq!(prefix.strip_from(&key), key.get(matched_len..));
                format!("{prefix} {}", &key[matched_len..])
            }
            Lookup::NoPathMatch => "404".into(),
            Lookup::NoHostMatch => "400".into(),
        }
    }

    fn table(prefixes: &[&str]) -> PrefixTable<String> {
        let mut t = PrefixTable::new();
        for s in prefixes {
            let prefix = p(s);
            let v = prefix.to_string();
            t.insert(prefix, v).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        t
    }

    const H: Scheme = Scheme::Http;
    const S: Scheme = Scheme::Https;

    #[test]
    #[rustfmt::skip]
    fn precedence() {
        struct Case {
            name: &'static str,
            prefixes: &'static [&'static str],
            requests: &'static [(Req<'static>, &'static str)],
        }
        let cases = [
            Case {
                name: "whole-segment longest match",
                prefixes: &["http://+:80/", "http://+:80/dir/sna/"],
                requests: &[
                    ((H, 80, Some("x"), "127.0.0.1", "/dir/sna/x"),    "http://+:80/dir/sna/ x"),
                    ((H, 80, Some("x"), "127.0.0.1", "/dir/sna/"),     "http://+:80/dir/sna/ "),
                    ((H, 80, Some("x"), "127.0.0.1", "/dir/snap.htm"), "http://+:80/ dir/snap.htm"),
                    ((H, 80, Some("x"), "127.0.0.1", "/dir/sna"),      "http://+:80/ dir/sna"),
                    ((H, 80, Some("x"), "127.0.0.1", "/DIR/SNA/Y"),    "http://+:80/dir/sna/ y"),
                ],
            },
            Case {
                name: "+ beats a longer explicit-host prefix",
                prefixes: &["http://+:80/", "http://www.example.com:80/app/deep/"],
                requests: &[
                    ((H, 80, Some("www.example.com"), "127.0.0.1", "/app/deep/x"), "http://+:80/ app/deep/x"),
                ],
            },
            Case {
                name: "+ only claims its own paths; explicit gets the rest",
                prefixes: &["http://+:80/api/", "http://www.example.com:80/"],
                requests: &[
                    ((H, 80, Some("www.example.com"), "127.0.0.1", "/api/v1"), "http://+:80/api/ v1"),
                    ((H, 80, Some("www.example.com"), "127.0.0.1", "/other"),  "http://www.example.com:80/ other"),
                    ((H, 80, Some("other.example"),   "127.0.0.1", "/other"),  "404"),
                ],
            },
            Case {
                name: "explicit beats IP-bound; IP-bound by local address",
                prefixes: &["http://site.test:80/", "http://127.0.0.1:80/", "http://127.0.0.2:80/two/"],
                requests: &[
                    ((H, 80, Some("site.test"),    "127.0.0.1", "/x"),     "http://site.test:80/ x"),
                    ((H, 80, Some("SITE.Test:80"), "127.0.0.2", "/two/x"), "http://site.test:80/ two/x"),
                    ((H, 80, Some("other.test"),   "127.0.0.1", "/x"),     "http://127.0.0.1:80/ x"),
                    ((H, 80, Some("other.test"),   "127.0.0.2", "/two/x"), "http://127.0.0.2:80/two/ x"),
                    ((H, 80, Some("other.test"),   "127.0.0.2", "/x"),     "404"),
                    ((H, 80, Some("other.test"),   "127.0.0.3", "/x"),     "400"),
                    ((H, 80, None,                 "127.0.0.1", "/x"),     "http://127.0.0.1:80/ x"),
                    ((H, 80, Some("127.0.0.1"),    "::ffff:127.0.0.1", "/x"), "http://127.0.0.1:80/ x"),
                ],
            },
            Case {
                name: "IPv6 bound prefix and bracketed Host",
                prefixes: &["http://[::1]:8080/v6/", "http://*:8080/"],
                requests: &[
                    ((H, 8080, Some("[::1]:8080"), "::1",       "/v6/a"), "http://[::1]:8080/v6/ a"),
                    ((H, 8080, Some("[::1]:8080"), "::1",       "/x"),    "http://*:8080/ x"),
                    ((H, 8080, Some("[::1]:8080"), "127.0.0.1", "/v6/a"), "http://*:8080/ v6/a"),
                ],
            },
            Case {
                name: "an IP-literal Host never matches an explicit name",
                prefixes: &["http://localhost:80/"],
                requests: &[
                    ((H, 80, Some("[::1]"),     "::1", "/"), "400"),
                    ((H, 80, Some("localhost"), "::1", "/"), "http://localhost:80/ "),
                    ((H, 80, None,              "::1", "/"), "400"),
                ],
            },
            Case {
                name: "weak wildcard is the last resort",
                prefixes: &["http://*:80/", "http://+:80/api/", "http://a.test:80/a/", "http://10.0.0.1:80/ip/"],
                requests: &[
                    ((H, 80, Some("a.test"), "10.0.0.1", "/api/x"), "http://+:80/api/ x"),
                    ((H, 80, Some("a.test"), "10.0.0.1", "/a/x"),   "http://a.test:80/a/ x"),
                    ((H, 80, Some("a.test"), "10.0.0.1", "/ip/x"),  "http://10.0.0.1:80/ip/ x"),
                    ((H, 80, Some("a.test"), "10.0.0.1", "/zzz"),   "http://*:80/ zzz"),
                    ((H, 80, Some("b.test"), "10.0.0.2", "/zzz"),   "http://*:80/ zzz"),
                    ((H, 80, None,           "10.0.0.2", "/"),      "http://*:80/ "),
                ],
            },
            Case {
                name: "case-insensitive hosts and paths, IDN Host header",
                prefixes: &["http://WWW.Example.com:80/Api/", "https://bücher.test:443/Bücher/"],
                requests: &[
                    ((H, 80,  Some("www.EXAMPLE.com"),        "127.0.0.1", "/API/x"),          "http://www.example.com:80/Api/ x"),
                    ((S, 443, Some("BÜCHER.test"),            "127.0.0.1", "/bÜcher/"),        "https://xn--bcher-kva.test:443/Bücher/ "),
                    ((S, 443, Some("xn--bcher-kva.test:443"), "127.0.0.1", "/B%C3%BCcher/1"),  "https://xn--bcher-kva.test:443/Bücher/ 1"),
                ],
            },
            Case {
                name: "percent-encoding and dot segments",
                prefixes: &["http://+:80/api/"],
                requests: &[
                    ((H, 80, Some("x"), "127.0.0.1", "/%41pi/"),     "http://+:80/api/ "),
                    ((H, 80, Some("x"), "127.0.0.1", "/%61%70%69/v"), "http://+:80/api/ v"),
                    ((H, 80, Some("x"), "127.0.0.1", "/a/../api/x"), "http://+:80/api/ x"),
                    ((H, 80, Some("x"), "127.0.0.1", "/api/../x"),   "404"),
                    ((H, 80, Some("x"), "127.0.0.1", "\\api\\x"),    "http://+:80/api/ x"),
                ],
            },
            Case {
                name: "NoHostMatch vs NoPathMatch",
                prefixes: &["http://a.test:80/only/", "http://127.0.0.5:80/ip/"],
                requests: &[
                    ((H, 80, Some("a.test"), "127.0.0.1", "/only/x"), "http://a.test:80/only/ x"),
                    ((H, 80, Some("a.test"), "127.0.0.1", "/"),       "404"),
                    ((H, 80, Some("b.test"), "127.0.0.1", "/only/x"), "400"),
                    ((H, 80, None,           "127.0.0.1", "/only/x"), "400"),
                    ((H, 80, Some("b.test"), "127.0.0.5", "/x"),      "404"),
                    ((H, 80, Some("a.test"), "127.0.0.5", "/ip/"),    "http://127.0.0.5:80/ip/ "),
                    ((H, 81, Some("a.test"), "127.0.0.1", "/only/x"), "400"),
                ],
            },
            Case {
                name: "scheme and port isolation",
                prefixes: &["http://+:80/h80/", "https://+:443/s443/", "http://+:8080/h8080/"],
                requests: &[
                    ((H, 80,   Some("x"),    "127.0.0.1", "/h80/"),   "http://+:80/h80/ "),
                    ((H, 80,   Some("x"),    "127.0.0.1", "/s443/"),  "404"),
                    ((S, 80,   Some("x"),    "127.0.0.1", "/h80/"),   "400"),
                    ((S, 443,  Some("x"),    "127.0.0.1", "/s443/"),  "https://+:443/s443/ "),
                    ((H, 443,  Some("x"),    "127.0.0.1", "/s443/"),  "400"),
                    ((H, 8080, Some("x:80"), "127.0.0.1", "/h8080/"), "http://+:8080/h8080/ "),
                    ((H, 8080, Some("x"),    "127.0.0.1", "/h80/"),   "404"),
                ],
            },
        ];
        for case in &cases {
            let t = table(case.prefixes);
            for (req, want) in case.requests {
                assert_eq!(route(&t, *req), *want, "{}: {req:?}", case.name);
            }
        }
    }

    #[test]
    fn conflicts_per_category() {
        let mut t = table(&[
            "http://+:80/",
            "http://*:80/",
            "http://a.test:80/",
            "http://127.0.0.1:80/",
            "http://[::1]:80/",
            "http://+:80/api/",
        ]);
        assert_eq!(t.len(), 6);
        let dupes = [
            "http://+:80/",
            "HTTP://+:80/",
            "http://*:80/",
            "http://A.TEST:80/",
            "http://127.0.0.1:80/",
            "http://[0::1]:80/",
            "http://[::ffff:127.0.0.1]:80/",
            "http://+:80/API/",
            "http://+:80/%61pi/",
            "http://+:80/x/../api/",
        ];
        for d in dupes {
            let err = t.insert(p(d), String::new()).expect_err(d);
            assert_eq!(err.netsh_code(), 183, "{d}");
            assert!(err.to_string().contains("is already registered"), "{err}");
        }
        assert!(t.insert(p("https://+:80/"), String::new()).is_ok());
        assert!(t.insert(p("http://+:81/"), String::new()).is_ok());
        assert!(t.insert(p("http://b.test:80/"), String::new()).is_ok());
        assert!(t.insert(p("http://127.0.0.2:80/"), String::new()).is_ok());
        assert_eq!(t.len(), 10);
        let err = t
            .insert(p("http://+:80/API/"), String::new())
            .expect_err("dup");
        assert_eq!(err.existing.path(), "/api/");
    }

    #[test]
    fn remove_then_lookup() {
        let mut t = table(&["http://+:80/api/", "http://a.test:80/", "http://*:80/"]);
        let req = (H, 80, Some("a.test"), "127.0.0.1", "/api/x");
        assert_eq!(route(&t, req), "http://+:80/api/ x");

        assert_eq!(
            t.remove(&p("http://+:80/API/")).as_deref(),
            Some("http://+:80/api/")
        );
        assert_eq!(t.remove(&p("http://+:80/api/")), None);
        assert_eq!(route(&t, req), "http://a.test:80/ api/x");

        assert!(t.remove(&p("http://a.test:80/")).is_some());
        assert_eq!(route(&t, req), "http://*:80/ api/x");

        assert!(t.remove(&p("http://*:80/")).is_some());
        assert_eq!(route(&t, req), "400");
        assert!(t.is_empty());
        assert_eq!(t.ports().count(), 0);

        // Re-register after removal works.
        t.insert(p("http://+:80/api/"), "again".into())
            .expect("reinsert");
        assert!(t.contains(&p("http://+:80/Api/")));
    }

    #[test]
    fn iter_ports_get() {
        let mut t = table(&[
            "http://+:80/",
            "http://a.test:80/x/",
            "https://*:443/",
            "http://[::1]:8080/",
        ]);
        let mut ports: Vec<_> = t.ports().collect();
        ports.sort();
        assert_eq!(ports, vec![(H, 80), (H, 8080), (S, 443)]);
        let mut all: Vec<String> = t.iter().map(|(pfx, _)| pfx.to_string()).collect();
        all.sort();
        assert_eq!(
            all,
            vec![
                "http://+:80/",
                "http://[::1]:8080/",
                "http://a.test:80/x/",
                "https://*:443/"
            ]
        );
        assert_eq!(t.len(), 4);
        if let Some(v) = t.get_mut(&p("http://A.test:80/X/")) {
            v.push('!');
        }
        assert_eq!(
            t.get(&p("http://a.test:80/x/")).map(String::as_str),
            Some("http://a.test:80/x/!")
        );
        assert!(format!("{t:?}").contains("https://*:443/"));
    }

    #[test]
    fn strip_from_preserves_case() {
        let prefix = p("http://+:80/Api/V1/");
        let cased = normalize_path_cased("/API/v1/Users/Me").unwrap_or_default();
        assert_eq!(prefix.strip_from(&cased), Some("Users/Me"));
        assert_eq!(prefix.strip_from("/api"), None);
        assert_eq!(p("http://+:80/").strip_from("/X"), Some("X"));
    }

    #[test]
    fn lookup_error_status() {
        let t = table(&["http://a.test:80/x/"]);
        let key = "/y";
        assert_eq!(
            t.lookup(H, 80, Some("a.test"), LO, key).error_status(),
            Some(404)
        );
        assert_eq!(
            t.lookup(H, 80, Some("b.test"), LO, key).error_status(),
            Some(400)
        );
        assert_eq!(
            t.lookup(H, 80, Some("a.test"), LO, "/x/").error_status(),
            None
        );
    }

    #[test]
    fn many_registrations() {
        let mut t = PrefixTable::new();
        for i in 0..2000 {
            let s = format!("http://host{i}.test:80/app{}/", i % 7);
            t.insert(p(&s), i).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(t.len(), 2000);
        let key = normalize_path("/APP3/x").unwrap_or_default();
        match t.lookup(H, 80, Some("host1053.test"), LO, &key) {
            Lookup::Matched { value, .. } => assert_eq!(*value, 1053),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            t.lookup(H, 80, Some("host1054.test"), LO, &key),
            Lookup::NoPathMatch
        );
    }
}
