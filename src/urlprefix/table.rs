//! The routing table: [`PrefixTable`] maps URL prefixes to values and
//! answers [`PrefixTable::lookup`] with the HTTP.sys precedence rules.
//!
//! Separate from the parser: it only needs parsed [`UrlPrefix`]es and a
//! normalised request path, and its data structure (scheme+port → category →
//! host → path map) is its own concern.
//!
//! The maps are persistent (`imbl`'s hash array mapped tries): cloning a
//! table is O(1) and an insert or remove copies only the O(log n) nodes on
//! its path. The registry registers by cloning the published table, adding
//! to the clone and swapping it in, so a registration costs the same with
//! ten prefixes registered as with a hundred thousand, while requests keep
//! reading an immutable snapshot without a lock.

use std::fmt;
use std::net::IpAddr;

use super::host::with_host_key;
use super::prefix::{HostRule, Scheme, UrlPrefix};

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
        crate::winerror::ERROR_ALREADY_EXISTS
    }
}

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

#[derive(Clone)]
struct Entry<T> {
    prefix: UrlPrefix,
    value: T,
}

/// The persistent map every level of the table uses (see the module doc).
/// Hashed with foldhash, seeded per process: keys come from the
/// configuration, lookups from requests. With std's SipHash, hashing was
/// about 360 of the 740 instructions a request's lookup cost.
type HashMap<K, V> =
    imbl::GenericHashMap<K, V, foldhash::fast::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

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
#[derive(Clone)]
struct PathMap<T> {
    entries: HashMap<Box<str>, Entry<T>>,
    /// `by_len[n]` = number of keys that are `n` bytes long.
    by_len: Vec<u32>,
}

impl<T: Clone> Default for PathMap<T> {
    fn default() -> Self {
        PathMap {
            entries: HashMap::new(),
            by_len: Vec::new(),
        }
    }
}

impl<T: Clone> PathMap<T> {
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn insert(&mut self, prefix: UrlPrefix, value: T) -> Result<(), ConflictError> {
        use imbl::hashmap::Entry as MapEntry;
        let len = prefix.path_key().len();
        match self.entries.entry(prefix.path_key().into()) {
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
#[derive(Clone)]
struct PortTable<T> {
    strong: PathMap<T>,
    explicit: HashMap<Box<str>, PathMap<T>>,
    ip: HashMap<IpAddr, PathMap<T>>,
    weak: PathMap<T>,
}

impl<T: Clone> Default for PortTable<T> {
    fn default() -> Self {
        PortTable {
            strong: PathMap::default(),
            explicit: HashMap::new(),
            ip: HashMap::new(),
            weak: PathMap::default(),
        }
    }
}

impl<T: Clone> PortTable<T> {
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
        let value = self.paths_mut(prefix.host())?.remove(prefix.path_key())?;
        // Drop empty per-host maps so `explicit`/`ip` only hold live hosts.
        match prefix.host() {
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
/// the number of registrations. Cloning is O(1) (see the module doc).
#[derive(Clone)]
pub struct PrefixTable<T> {
    ports: HashMap<(Scheme, u16), PortTable<T>>,
    len: usize,
}

impl<T: Clone> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable {
            ports: HashMap::new(),
            len: 0,
        }
    }
}

impl<T: Clone + fmt::Debug> fmt::Debug for PrefixTable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(p, v)| (p.to_string(), v)))
            .finish()
    }
}

impl<T: Clone> PrefixTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `prefix` with `value`. Fails with [`ConflictError`] (netsh 183)
    /// when an equal prefix — same scheme, host rule, port and case-insensitive
    /// normalised path — is already registered. Different categories never
    /// conflict: `http://+:80/` and `http://*:80/` coexist.
    pub fn insert(&mut self, prefix: UrlPrefix, value: T) -> Result<(), ConflictError> {
        let port = self
            .ports
            .entry((prefix.scheme(), prefix.port()))
            .or_default();
        let host = prefix.host().clone();
        // A conflict implies an existing entry, so no empty map is left behind.
        port.paths_or_insert(&host).insert(prefix, value)?;
        self.len += 1;
        Ok(())
    }

    /// Removes the registration equal to `prefix` (see [`UrlPrefix`]'s
    /// equality) and returns its value.
    pub fn remove(&mut self, prefix: &UrlPrefix) -> Option<T> {
        let key = (prefix.scheme(), prefix.port());
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
        let port = self.ports.get(&(prefix.scheme(), prefix.port()))?;
        port.paths(prefix.host())?
            .entries
            .get(prefix.path_key())
            .map(|e| &e.value)
    }

    /// Mutable access to the value registered for a prefix equal to `prefix`.
    pub fn get_mut(&mut self, prefix: &UrlPrefix) -> Option<&mut T> {
        let port = self.ports.get_mut(&(prefix.scheme(), prefix.port()))?;
        port.paths_mut(prefix.host())?
            .entries
            .get_mut(prefix.path_key())
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

    /// True when at least one prefix is registered for `scheme` on `port`.
    pub fn serves(&self, scheme: Scheme, port: u16) -> bool {
        self.ports.contains_key(&(scheme, port))
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
    /// * `path_key`: the request path after [`normalize_path`](super::normalize_path).
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
fn hit<'a, T: Clone>(paths: &'a PathMap<T>, path_key: &str) -> Option<Lookup<'a, T>> {
    paths
        .find(path_key)
        .map(|(entry, matched_len)| Lookup::Matched {
            prefix: &entry.prefix,
            value: &entry.value,
            matched_len,
        })
}
