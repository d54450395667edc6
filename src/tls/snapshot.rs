//! The immutable view a handshake needs: for every SSL binding a ready `ServerConfig`
//! (or the reason there is none), built from `sslcert.json` and the certificate store.
//! A new snapshot is built on every reload and swapped in atomically; handshakes only
//! read the current one.
//!
//! Robustness rules (the last good state stays in force):
//! - `sslcert.json` unreadable or invalid → the whole old snapshot is kept.
//! - A store file that fails to load (half-written, damaged, wrong password) → the
//!   certificate loaded from that same file before stays in use.
//! - A binding whose certificate cannot be served (not in the store, no key, both TLS
//!   versions disabled, …) → the binding keeps the configuration it had before; a
//!   binding that never worked refuses handshakes (httperr `SSL_BadBinding`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use rustls::pki_types::CertificateDer;
use rustls::ServerConfig;

use crate::certs::{validate, CertStore, Certificate, Thumbprint};
use crate::store::{BindingFlags, BindingKey, SslBinding, Store, StoreError};

use super::config::server_config;
use super::resumption::Resumption;

/// A certificate ready to be served under one binding's flags.
pub(crate) struct Served {
    pub config: Arc<ServerConfig>,
    pub thumbprint: Thumbprint,
    chain: Vec<CertificateDer<'static>>,
    flags: BindingFlags,
}

impl Served {
    /// The binding's flags (QUIC asks for `disablequic` and `disabletls13`).
    pub(crate) fn flags(&self) -> &BindingFlags {
        &self.flags
    }

    fn reusable(&self, cert: &Certificate, flags: &BindingFlags) -> bool {
        self.thumbprint == cert.thumbprint && self.chain == cert.chain && self.flags == *flags
    }
}

/// Certificates of a `ccs=PORT` binding, by the names they cover.
#[derive(Default)]
pub(crate) struct CcsTable {
    /// Lowercase DNS name → certificate.
    exact: HashMap<String, Arc<Served>>,
    /// `*.suffix` → certificate, keyed by the lowercase suffix.
    wildcard: HashMap<String, Arc<Served>>,
}

impl CcsTable {
    /// The certificate for an SNI name (already lowercase, no trailing dot): an exact
    /// SAN first, else a wildcard SAN covering exactly one more label.
    fn find(&self, name: &str) -> Option<&Arc<Served>> {
        if let Some(s) = self.exact.get(name) {
            return Some(s);
        }
        let (label, rest) = name.split_once('.')?;
        if label.is_empty() {
            return None;
        }
        self.wildcard.get(rest)
    }

    fn all(&self) -> impl Iterator<Item = &Arc<Served>> {
        self.exact.values().chain(self.wildcard.values())
    }
}

pub(crate) enum Entry {
    Cert(Arc<Served>),
    Ccs(CcsTable),
    /// `reject=enable`.
    Reject,
    /// The binding cannot be served and never could; the reason.
    Broken(String),
}

/// What a handshake should do.
pub(crate) enum Selection<'a> {
    Serve(&'a BindingKey, &'a Arc<Served>),
    Reject(&'a BindingKey),
    Broken(&'a BindingKey, &'a str),
    NoBinding,
}

#[derive(Default)]
pub(crate) struct Snapshot {
    /// Session tickets and cache, the same in every snapshot.
    resumption: Resumption,
    entries: HashMap<BindingKey, Entry>,
    /// Every certificate loaded, by the file it came from (for keeping a certificate
    /// whose file became unreadable).
    certs: HashMap<PathBuf, Arc<Certificate>>,
}

/// An SNI name as bindings and SANs are compared: lowercase, no trailing dot.
pub(crate) fn normalize_sni(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Snapshot {
    /// The empty snapshot a first build starts from: every config it
    /// builds resumes sessions with `resumption`.
    pub(crate) fn resuming(resumption: Resumption) -> Snapshot {
        Snapshot {
            resumption,
            ..Snapshot::default()
        }
    }

    /// Session tickets and cache, for the QUIC configs.
    pub(crate) fn resumption(&self) -> &Resumption {
        &self.resumption
    }

    /// HTTP.sys's lookup order: exact `IP:port` → `hostname:port` (SNI) → `ccs=port`
    /// (a store certificate whose SAN covers the SNI name) → `0.0.0.0:port` (IPv4) /
    /// `[::]:port` (IPv6). IPv4-mapped local addresses count as IPv4. Without SNI only
    /// the IP bindings take part. A `ccs` binding with no certificate for the name
    /// falls through to the wildcard IP binding.
    pub(crate) fn select(&self, local: SocketAddr, sni: Option<&str>) -> Selection<'_> {
        let ip = local.ip().to_canonical();
        let port = local.port();
        if let Some(sel) = self.entry(&BindingKey::IpPort(SocketAddr::new(ip, port))) {
            return sel;
        }
        if let Some(name) = sni.map(normalize_sni).filter(|n| !n.is_empty()) {
            if let Some(sel) = self.entry(&BindingKey::HostnamePort(name.clone(), port)) {
                return sel;
            }
            let ccs = BindingKey::Ccs(port);
            if let Some((key, entry)) = self.entries.get_key_value(&ccs) {
                match entry {
                    Entry::Ccs(table) => {
                        if let Some(s) = table.find(&name) {
                            return Selection::Serve(key, s);
                        }
                    }
                    Entry::Reject => return Selection::Reject(key),
                    Entry::Cert(s) => return Selection::Serve(key, s),
                    Entry::Broken(r) => return Selection::Broken(key, r),
                }
            }
        }
        let any = if ip.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        };
        self.entry(&BindingKey::IpPort(SocketAddr::new(any, port)))
            .unwrap_or(Selection::NoBinding)
    }

    fn entry(&self, key: &BindingKey) -> Option<Selection<'_>> {
        let (key, entry) = self.entries.get_key_value(key)?;
        Some(match entry {
            Entry::Cert(s) => Selection::Serve(key, s),
            Entry::Reject => Selection::Reject(key),
            Entry::Broken(r) => Selection::Broken(key, r),
            // Only stored under Ccs keys.
            Entry::Ccs(_) => return None,
        })
    }

    /// The certificate each binding serves, with its expiry, for the
    /// `metrics=` expiry gauge (published at every reload).
    pub(crate) fn bound_certificates(&self) -> Vec<crate::metrics::BoundCertificate> {
        let not_after = |served: &Served| {
            self.certs
                .values()
                .find(|c| c.thumbprint == served.thumbprint)
                .map(|c| c.info.not_after.timestamp())
        };
        let mut out = Vec::new();
        for (key, entry) in &self.entries {
            let served: Vec<&Arc<Served>> = match entry {
                Entry::Cert(s) => vec![s],
                Entry::Ccs(t) => t.all().collect(),
                Entry::Reject | Entry::Broken(_) => continue,
            };
            for s in served {
                if let Some(not_after) = not_after(s) {
                    out.push(crate::metrics::BoundCertificate {
                        binding: format!("{}={key}", key.param_name()),
                        thumbprint: s.thumbprint.to_string().to_ascii_lowercase(),
                        not_after,
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.binding, &a.thumbprint).cmp(&(&b.binding, &b.thumbprint)));
        out.dedup();
        out
    }

    /// Thumbprints served per binding, for logs and tests.
    pub(crate) fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .entries
            .iter()
            .map(|(k, e)| match e {
                Entry::Cert(s) => format!("{}={k} → {}", k.param_name(), s.thumbprint),
                Entry::Ccs(t) => format!(
                    "{}={k} → {} certificate(s)",
                    k.param_name(),
                    t.all().count()
                ),
                Entry::Reject => format!("{}={k} → reject", k.param_name()),
                Entry::Broken(r) => format!("{}={k} → unusable: {r}", k.param_name()),
            })
            .collect();
        out.sort();
        out
    }
}

/// Builds a new snapshot from `cert_dir`, reusing what is unchanged in `old`.
/// `Err` when `sslcert.json` cannot be used; the caller keeps `old`.
pub(crate) fn build(cert_dir: &Path, old: &Snapshot) -> Result<Snapshot, StoreError> {
    let data = Store::in_cert_dir(cert_dir).load()?;

    let (mut loaded, errors) = CertStore::scan(cert_dir);
    // The served chain: the file's, completed from the store's intermediates.
    crate::certs::complete_chains(&mut loaded);
    let mut certs: HashMap<PathBuf, Arc<Certificate>> = loaded
        .into_iter()
        .map(|c| (c.source.clone(), Arc::new(c)))
        .collect();
    for e in errors {
        let kept = e
            .path()
            .and_then(|p| old.certs.get(p).map(|c| (p.to_path_buf(), c.clone())));
        match kept {
            Some((path, cert)) => {
                tracing::error!(
                    "certificate store: {e}; keeping the certificate {} loaded from it before",
                    cert.thumbprint
                );
                certs.insert(path, cert);
            }
            None => tracing::error!("certificate store: {e}"),
        }
    }
    // By thumbprint; a copy with a private key wins.
    let mut by_thumb: HashMap<Thumbprint, Arc<Certificate>> = HashMap::new();
    let mut sorted: Vec<&Arc<Certificate>> = certs.values().collect();
    sorted.sort_by(|a, b| a.source.cmp(&b.source));
    for c in sorted {
        let slot = by_thumb.entry(c.thumbprint).or_insert_with(|| c.clone());
        if slot.key.is_none() && c.key.is_some() {
            *slot = c.clone();
        }
    }

    let mut entries = HashMap::new();
    for b in &data.sslcert {
        let entry = if b.flags.reject {
            Entry::Reject
        } else if let BindingKey::Ccs(_) = b.key {
            Entry::Ccs(ccs_table(b, &certs, old))
        } else {
            single(b, &by_thumb, cert_dir, old)
        };
        entries.insert(b.key.clone(), entry);
    }
    Ok(Snapshot {
        resumption: old.resumption.clone(),
        entries,
        certs,
    })
}

fn single(
    b: &SslBinding,
    by_thumb: &HashMap<Thumbprint, Arc<Certificate>>,
    cert_dir: &Path,
    old: &Snapshot,
) -> Entry {
    let key = &b.key;
    let previous = match old.entries.get(key) {
        Some(Entry::Cert(s)) => Some(s),
        _ => None,
    };
    let result = b
        .certhash
        .parse::<Thumbprint>()
        .map_err(|e| e.to_string())
        .and_then(|thumb| {
            by_thumb.get(&thumb).ok_or_else(|| {
                format!(
                    "certificate {thumb} is not in the certificate store {}",
                    cert_dir.display()
                )
            })
        })
        .and_then(|cert| {
            if let Some(p) = previous.filter(|p| p.reusable(cert, &b.flags)) {
                return Ok(p.clone());
            }
            let served = new_served(cert, &b.flags, &old.resumption)?;
            let hostname = match key {
                BindingKey::HostnamePort(h, _) => Some(h.as_str()),
                _ => None,
            };
            for w in validate(cert, hostname, Utc::now()) {
                tracing::warn!(
                    "SSL binding {}={key}: certificate {} ({}): {w}",
                    key.param_name(),
                    cert.thumbprint,
                    cert.source.display()
                );
            }
            Ok(served)
        });
    match (result, previous) {
        (Ok(s), _) => Entry::Cert(s),
        (Err(e), Some(p)) => {
            tracing::error!(
                "SSL binding {}={key}: {e}; still serving the previous certificate {}",
                key.param_name(),
                p.thumbprint
            );
            Entry::Cert(p.clone())
        }
        (Err(e), None) => {
            tracing::error!(
                "SSL binding {}={key}: {e}; handshakes for it will fail",
                key.param_name()
            );
            Entry::Broken(e)
        }
    }
}

fn new_served(
    cert: &Certificate,
    flags: &BindingFlags,
    resumption: &Resumption,
) -> Result<Arc<Served>, String> {
    let mut config = server_config(cert, flags)
        .map_err(|e| format!("{} ({}): {e}", cert.thumbprint, cert.source.display()))?;
    resumption.apply(&mut config, cert.thumbprint.as_bytes());
    Ok(Arc::new(Served {
        config: Arc::new(config),
        thumbprint: cert.thumbprint,
        chain: cert.chain.clone(),
        flags: flags.clone(),
    }))
}

/// The central certificate store of a `ccs` binding: every store certificate with a
/// private key, by its SAN DNS names (the CN when there are none). Where two
/// certificates claim a name, one that is valid now beats one that is not, then the
/// one valid longer. A `certhash` on the binding is ignored, as in HTTP.sys.
fn ccs_table(
    b: &SslBinding,
    certs: &HashMap<PathBuf, Arc<Certificate>>,
    old: &Snapshot,
) -> CcsTable {
    let old_served: Vec<&Arc<Served>> = match old.entries.get(&b.key) {
        Some(Entry::Ccs(t)) => t.all().collect(),
        _ => Vec::new(),
    };
    let now = Utc::now();
    let rank = |c: &Certificate| {
        (
            c.info.not_before <= now && now <= c.info.not_after,
            c.info.not_after,
        )
    };
    let mut best: HashMap<(bool, String), &Arc<Certificate>> = HashMap::new();
    let mut list: Vec<&Arc<Certificate>> = certs.values().filter(|c| c.key.is_some()).collect();
    list.sort_by(|a, b| a.source.cmp(&b.source));
    for c in list {
        let names: Vec<&String> = if c.info.dns_names.is_empty() {
            c.info.common_name.iter().collect()
        } else {
            c.info.dns_names.iter().collect()
        };
        for n in names {
            let n = normalize_sni(n);
            let slot = match n.strip_prefix("*.") {
                Some(suffix) if !suffix.is_empty() => (true, suffix.to_owned()),
                Some(_) => continue,
                None => (false, n),
            };
            match best.get(&slot) {
                Some(cur) if rank(cur) >= rank(c) => {}
                _ => {
                    best.insert(slot, c);
                }
            }
        }
    }
    let mut served: HashMap<Thumbprint, Arc<Served>> = HashMap::new();
    let mut table = CcsTable::default();
    for ((wild, name), cert) in best {
        let s = match served.get(&cert.thumbprint) {
            Some(s) => s.clone(),
            None => {
                let s = match old_served.iter().find(|s| s.reusable(cert, &b.flags)) {
                    Some(s) => (*s).clone(),
                    None => match new_served(cert, &b.flags, &old.resumption) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!("SSL binding ccs={}: skipping {e}", b.key);
                            continue;
                        }
                    },
                };
                served.insert(cert.thumbprint, s.clone());
                s
            }
        };
        if wild {
            table.wildcard.insert(name, s);
        } else {
            table.exact.insert(name, s);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::new_self_signed;
    use crate::store::BindingFlags;

    fn bind(dir: &Path, key: BindingKey, certhash: &str, flags: BindingFlags) {
        Store::in_cert_dir(dir)
            .update(|d| {
                d.sslcert.retain(|b| b.key != key);
                d.sslcert.push(SslBinding {
                    key,
                    certhash: certhash.to_owned(),
                    appid: "{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}".into(),
                    certstorename: "MY".into(),
                    flags,
                });
                Ok::<_, ()>(())
            })
            .unwrap();
    }

    fn cert(dir: &Path, names: &[&str]) -> Thumbprint {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let c = new_self_signed(&names, 30).unwrap();
        CertStore::save(dir, &c).unwrap().thumbprint
    }

    fn thumb(sel: Selection<'_>) -> Option<Thumbprint> {
        match sel {
            Selection::Serve(_, s) => Some(s.thumbprint),
            _ => None,
        }
    }

    #[test]
    fn select_follows_httpsys_order() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let any4 = cert(d, &["any4.test"]);
        let any6 = cert(d, &["any6.test"]);
        let exact = cert(d, &["exact.test"]);
        let host = cert(d, &["host.test"]);
        let wild = cert(d, &["*.wild.test"]);
        let f = BindingFlags::default;
        bind(
            d,
            BindingKey::IpPort("0.0.0.0:443".parse().unwrap()),
            &any4.to_string(),
            f(),
        );
        bind(
            d,
            BindingKey::IpPort("[::]:443".parse().unwrap()),
            &any6.to_string(),
            f(),
        );
        bind(
            d,
            BindingKey::IpPort("10.0.0.1:443".parse().unwrap()),
            &exact.to_string(),
            f(),
        );
        bind(
            d,
            BindingKey::HostnamePort("host.test".into(), 443),
            &host.to_string(),
            f(),
        );
        bind(d, BindingKey::Ccs(443), "", f());
        let rej = BindingFlags {
            reject: true,
            ..f()
        };
        bind(
            d,
            BindingKey::HostnamePort("no.test".into(), 443),
            &host.to_string(),
            rej,
        );
        let s = build(d, &Snapshot::default()).unwrap();
        let sel = |local: &str, sni: Option<&str>| thumb(s.select(local.parse().unwrap(), sni));

        assert_eq!(sel("10.0.0.1:443", Some("host.test")), Some(exact));
        assert_eq!(sel("[::ffff:10.0.0.1]:443", None), Some(exact));
        assert_eq!(sel("10.0.0.2:443", Some("HOST.test.")), Some(host));
        assert_eq!(sel("10.0.0.2:443", Some("a.wild.test")), Some(wild));
        assert_eq!(sel("10.0.0.2:443", Some("exact.test")), Some(exact));
        assert_eq!(sel("10.0.0.2:443", Some("a.b.wild.test")), Some(any4));
        assert_eq!(sel("10.0.0.2:443", None), Some(any4));
        assert_eq!(sel("[::1]:443", Some("x.test")), Some(any6));
        assert!(matches!(
            s.select("10.0.0.2:443".parse().unwrap(), Some("no.test")),
            Selection::Reject(_)
        ));
        assert!(matches!(
            s.select("10.0.0.2:444".parse().unwrap(), None),
            Selection::NoBinding
        ));
    }

    #[test]
    fn broken_changes_keep_the_last_good_state() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let a = cert(d, &["a.test"]);
        let key = BindingKey::IpPort("0.0.0.0:443".parse().unwrap());
        bind(d, key.clone(), &a.to_string(), BindingFlags::default());
        let s1 = build(d, &Snapshot::default()).unwrap();
        let local: SocketAddr = "127.0.0.1:443".parse().unwrap();
        assert_eq!(thumb(s1.select(local, None)), Some(a));

        // The certificate file is damaged: the copy loaded before stays.
        std::fs::write(
            d.join(format!("{a}.pem")),
            "-----BEGIN CERTIFICATE-----\nx\n",
        )
        .unwrap();
        let s2 = build(d, &s1).unwrap();
        assert_eq!(thumb(s2.select(local, None)), Some(a));

        // The binding names an unknown certificate: the previous one stays.
        bind(d, key.clone(), &"ab".repeat(20), BindingFlags::default());
        let s3 = build(d, &s2).unwrap();
        assert_eq!(thumb(s3.select(local, None)), Some(a));
        // ... but a binding that never worked refuses handshakes.
        let fresh = build(d, &Snapshot::default()).unwrap();
        assert!(matches!(fresh.select(local, None), Selection::Broken(..)));

        // Both TLS versions disabled is unusable too.
        let b = cert(d, &["b.test"]);
        let flags = BindingFlags {
            disabletls12: true,
            disabletls13: true,
            ..BindingFlags::default()
        };
        bind(d, key, &b.to_string(), flags);
        let s4 = build(d, &s3).unwrap();
        assert_eq!(thumb(s4.select(local, None)), Some(a));

        // An unreadable sslcert.json is an error (the caller keeps the old snapshot).
        std::fs::write(d.join("sslcert.json"), "{").unwrap();
        assert!(build(d, &s4).is_err());
    }

    #[test]
    fn unchanged_bindings_reuse_their_config() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let a = cert(d, &["a.test"]);
        bind(
            d,
            BindingKey::IpPort("0.0.0.0:443".parse().unwrap()),
            &a.to_string(),
            BindingFlags::default(),
        );
        let s1 = build(d, &Snapshot::default()).unwrap();
        let s2 = build(d, &s1).unwrap();
        let local: SocketAddr = "127.0.0.1:443".parse().unwrap();
        match (s1.select(local, None), s2.select(local, None)) {
            (Selection::Serve(_, x), Selection::Serve(_, y)) => assert!(Arc::ptr_eq(x, y)),
            _ => panic!("not served"),
        }
    }
}
