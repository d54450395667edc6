//! URL prefixes and the routing table, the way HTTP.sys models them.
//!
//! This module is pure and synchronous: no I/O, no async. It has three parts.
//!
//! 1. [`UrlPrefix`]: parsing and validating a registration string such as
//!    `http://+:80/api/` (docs/httpsys.md#url-prefixes). Every parse error maps to netsh
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
//! # Decisions that go beyond docs/httpsys.md
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
//!
//! # Layout
//!
//! The module is split along its seams so each part can be read and tested on
//! its own; everything public is re-exported here, so callers keep writing
//! `crate::urlprefix::X`. Dependencies run one way only: `table` → `prefix`
//! and `host`; `prefix` → `path`.
//!
//! * `prefix`: [`UrlPrefix`], [`Scheme`], [`HostRule`], [`Category`], the parser
//!   and [`PrefixError`];
//! * `path`: [`normalize_path`], [`normalize_path_cased`], [`PathError`];
//! * `host`: Host header helpers ([`split_host_port`], [`is_ip_literal`],
//!   [`parse_ip_literal`]);
//! * `table`: [`PrefixTable`], [`Lookup`], [`ConflictError`].

mod host;
mod path;
mod prefix;
mod table;

#[cfg(test)]
mod tests;

pub use host::{is_ip_literal, parse_ip_literal, split_host_port};
pub use path::{normalize_path, normalize_path_cased, PathError};
pub use prefix::{Category, HostRule, PrefixError, Scheme, UrlPrefix};
pub use table::{ConflictError, Lookup, PrefixTable};
