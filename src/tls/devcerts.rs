//! Development certificates for private names, kept by the server itself (issue 21,
//! point 3): every explicit host name of an https prefix that no SSL binding serves
//! and ACME does not look after gets a certificate from the development CA — the CA
//! the first-run certificate comes from, and the one `portshare cert trust` trusts —
//! bound as `hostnameport=NAME:PORT` with the fixed appid [`DEVCERT_APPID`]. So
//! `https://myapp.test:8443/` works as soon as the prefix is registered, in
//! GLOBAL.INI (`host_name`, `[app:NAME]`) or at run time, after one trust step.
//!
//! Why it works through the ordinary parts: the HTTP.sys model stays the one model.
//! The certificate is a normal [`CertStore`] entry, the binding a normal store record
//! written through [`Store::update`] (lock, re-read, atomic write), and the TLS layer's
//! hot reload puts it in service — so `http show sslcert` and `cert list` show it,
//! and a user can replace it with the commands they already know.
//!
//! The rules, and why:
//! - Names: the `HostRule::Explicit` hosts of the https prefixes registered now.
//!   `+` and `*` name no host. An IP-bound prefix (`https://127.0.0.1:8443/`) is
//!   left out: HTTP.sys keys an address's certificate as `ipport=IP:PORT`, which wins
//!   over every other binding for connections to that address, so an automatic one
//!   would hide the wildcard binding the user made (and the first-run certificate
//!   covers 127.0.0.1 and ::1 already).
//! - Left alone: `hostnameport=NAME:PORT` with another appid (made by hand, or
//!   ACME's); a name ACME looks after (ACME only replaces its own bindings, so ours
//!   would block it: ours for such a name are removed); a port with a `ccs` binding
//!   (the user chose how that port finds certificates); a name an `ipport` binding of
//!   the port serves already with a certificate that covers it (a hand-made
//!   wildcard certificate, the first run's `localhost`). When such a binding appears
//!   later, ours is removed — HTTP.sys would otherwise pick `hostnameport` first and
//!   hide the user's certificate. Bindings made by hand are never changed.
//! - One certificate per name (SAN = the name), shared by its ports; 365 days (the
//!   `cert new` default, under the 397 browsers accept), never past the CA's end.
//!   [`LIFETIME_ENV`] shortens it, for tests that watch a renewal.
//! - Renewal, of these certificates and of the first-run certificate: when a third of
//!   the lifetime is left (as ACME does), checked at start, whenever the registrations
//!   change, and at least hourly — sooner when a certificate falls due. A name no
//!   longer registered keeps its binding (reused when it comes back) but is not
//!   renewed; the replaced certificate is deleted once no binding uses it.
//!
//! Nothing here can stop the server: a failure (a read-only store, say) is a log line
//! and a retry with back-off.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

use crate::certs::ca::{self, DEV_CA_NAME};
use crate::certs::{CertError, CertStore, Certificate, Thumbprint, DEFAULT_DAYS};
use crate::store::{
    BindingFlags, BindingKey, SslBinding, Store, StoreData, StoreError, UpdateError, FIRSTRUN_APPID,
};
use crate::urlprefix::{HostRule, Scheme, UrlPrefix};

/// The application id of the bindings this manager makes (`http show sslcert` shows
/// it). Its last group is "devca" in ASCII hex; the first groups are ACME's, whose
/// last group says "acme". A binding with any other appid is never touched.
pub const DEVCERT_APPID: &str = "{7a1f5a0e-ac3e-4e2d-8f01-646576636100}";

/// Environment variable: the lifetime, in seconds, of the certificates the server
/// issues from the development CA (these and the first-run certificate), between
/// [`MIN_LIFETIME`] and 397 days. For tests that watch a renewal without waiting
/// months; unset, certificates last 365 days.
pub const LIFETIME_ENV: &str = "PORTSHARE_DEV_CERT_LIFETIME";

/// The shortest lifetime [`LIFETIME_ENV`] may set: renewal comes after two thirds of
/// it, and a reload must take effect in the third left.
pub const MIN_LIFETIME: Duration = Duration::from_secs(5);

/// The longest wait between two looks when nothing falls due sooner.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// The wait after a first failed look; it doubles up to [`CHECK_INTERVAL`].
const FIRST_RETRY: Duration = Duration::from_secs(60);

/// The shortest wait between timed looks, so that a certificate due at once (a
/// clock set back) cannot make a busy loop.
const MIN_WAIT: Duration = Duration::from_secs(1);

/// The names the first-run certificate is renewed with when the old one names none.
const FIRSTRUN_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Why looking after a name failed. Every message names what it was about.
#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    #[error("development certificates: cannot read the SSL bindings: {0}")]
    Store(#[source] StoreError),
    #[error("the {DEV_CA_NAME} cannot be made or used in {}: {source}", dir.display())]
    Ca {
        dir: PathBuf,
        #[source]
        source: CertError,
    },
    #[error("{name}: cannot issue a certificate from the {DEV_CA_NAME}: {source}")]
    Issue {
        name: String,
        #[source]
        source: CertError,
    },
    #[error(
        "{name}: cannot save the new certificate in {}: {source}; let the server's user write there",
        dir.display()
    )]
    Save {
        name: String,
        dir: PathBuf,
        #[source]
        source: CertError,
    },
    #[error("{name}: cannot bind the certificate: {source}")]
    Bind {
        name: String,
        #[source]
        source: StoreError,
    },
    #[error("development certificates: the check did not finish: {detail}")]
    Task { detail: String },
}

/// Host name (lowercase) → the HTTPS ports prefixes naming it are registered on.
pub type Names = BTreeMap<String, BTreeSet<u16>>;

/// The explicit host names of the https prefixes among `prefixes`, with their ports.
pub fn wanted<'a>(prefixes: impl IntoIterator<Item = &'a UrlPrefix>) -> Names {
    let mut names = Names::new();
    for p in prefixes {
        if p.scheme() != Scheme::Https {
            continue;
        }
        if let HostRule::Explicit(name) = p.host() {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !name.is_empty() {
                names.entry(name).or_default().insert(p.port());
            }
        }
    }
    names
}

/// The lifetime of the certificates issued from the development CA: [`LIFETIME_ENV`]
/// when set to a usable value (else a warning, once), 365 days otherwise.
pub fn configured_lifetime() -> Duration {
    static LIFETIME: OnceLock<Duration> = OnceLock::new();
    *LIFETIME.get_or_init(|| {
        let default = Duration::from_secs(u64::from(DEFAULT_DAYS) * 86_400);
        let Some(value) = std::env::var_os(LIFETIME_ENV) else {
            return default;
        };
        let max = Duration::from_secs(u64::from(ca::MAX_LEAF_DAYS) * 86_400);
        match value.to_str().and_then(|v| v.trim().parse::<u64>().ok()) {
            Some(secs) if (MIN_LIFETIME..=max).contains(&Duration::from_secs(secs)) => {
                tracing::info!(
                    "{LIFETIME_ENV}={secs}: certificates from the {DEV_CA_NAME} last {secs} seconds"
                );
                Duration::from_secs(secs)
            }
            _ => {
                tracing::warn!(
                    "{LIFETIME_ENV}={value:?} is ignored: give whole seconds between {} and {}",
                    MIN_LIFETIME.as_secs(),
                    max.as_secs()
                );
                default
            }
        }
    })
}

/// `wanted`, cut so that a certificate issued now by `ca` ends a minute before it.
pub(crate) fn lifetime_under(ca: &Certificate, wanted: Duration, now: DateTime<Utc>) -> Duration {
    let left = (ca.info.not_after - now - TimeDelta::minutes(1))
        .to_std()
        .unwrap_or(Duration::ZERO);
    wanted.min(left).max(Duration::from_secs(1))
}

/// The development CA among `certs`, or a new one saved in `cert_dir`. A CA that ends
/// within a day counts as gone: the certificates it could still issue would last
/// hours, and renewals would come ever faster.
pub(crate) fn ensure_dev_ca(
    cert_dir: &Path,
    certs: &[Certificate],
    now: DateTime<Utc>,
) -> Result<Certificate, CertError> {
    if let Some(c) = ca::dev_ca(certs, now + TimeDelta::days(1)) {
        return Ok(c.clone());
    }
    if let Some(old) = ca::dev_ca(certs, now) {
        tracing::warn!(
            thumbprint = %old.thumbprint,
            "the {DEV_CA_NAME} ends on {}; a new one is made, and clients must trust it \
             (`portshare cert trust`)",
            old.info.not_after.format("%Y-%m-%d")
        );
    }
    let made = CertStore::save(cert_dir, &ca::new_ca(DEV_CA_NAME, ca::DEFAULT_CA_DAYS)?)?;
    tracing::info!(thumbprint = %made.thumbprint, "made the {DEV_CA_NAME}");
    Ok(made)
}

/// The moment a certificate valid from `not_before` to `not_after` should be
/// renewed: when a third of its lifetime is left (at once when it never was valid).
pub fn renew_at(not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> DateTime<Utc> {
    let lifetime = not_after - not_before;
    if lifetime <= TimeDelta::zero() {
        return DateTime::<Utc>::MIN_UTC;
    }
    not_after - lifetime / 3
}

/// Whether a certificate is due for renewal at `now`.
pub fn is_due(cert: &Certificate, now: DateTime<Utc>) -> bool {
    now >= renew_at(cert.info.not_before, cert.info.not_after)
}

fn is_dev(b: &SslBinding) -> bool {
    b.appid.eq_ignore_ascii_case(DEVCERT_APPID)
}

fn is_firstrun(b: &SslBinding) -> bool {
    b.appid.eq_ignore_ascii_case(FIRSTRUN_APPID)
}

fn names_binding(b: &SslBinding, name: &str) -> bool {
    matches!(&b.key, BindingKey::HostnamePort(n, _) if n.eq_ignore_ascii_case(name))
}

/// What one look at the store did.
#[derive(Debug, Default)]
pub(crate) struct Pass {
    /// A binding was added, renewed or removed: the TLS layer should reload.
    pub changed: bool,
    /// The soonest renewal among the certificates looked after.
    pub next_due: Option<DateTime<Utc>>,
    /// Bindings left alone: (the binding, why). Logged once each.
    pub skipped: Vec<(String, String)>,
    pub errors: Vec<DevCertError>,
}

impl Pass {
    fn due(&mut self, cert: &Certificate) {
        let at = renew_at(cert.info.not_before, cert.info.not_after);
        self.next_due = Some(self.next_due.map_or(at, |d| d.min(at)));
    }
}

/// The certificate folder as one look sees it, and the development CA once needed.
struct Folder<'a> {
    dir: &'a Path,
    store: Store,
    certs: Vec<Certificate>,
    ca: Option<Certificate>,
    now: DateTime<Utc>,
}

impl Folder<'_> {
    fn find(&self, certhash: &str) -> Option<&Certificate> {
        let t = certhash.parse::<Thumbprint>().ok()?;
        self.certs.iter().find(|c| c.thumbprint == t)
    }

    /// Issues a certificate for `names` from the development CA and saves it.
    fn issue(&mut self, label: &str, names: &[String]) -> Result<Certificate, DevCertError> {
        let ca = match &self.ca {
            Some(c) => c.clone(),
            None => {
                let c = ensure_dev_ca(self.dir, &self.certs, self.now).map_err(|source| {
                    DevCertError::Ca {
                        dir: self.dir.to_path_buf(),
                        source,
                    }
                })?;
                self.certs.push(c.clone());
                self.ca = Some(c.clone());
                c
            }
        };
        let lifetime = lifetime_under(&ca, configured_lifetime(), self.now);
        let cert =
            ca::issue_lasting(&ca, names, lifetime).map_err(|source| DevCertError::Issue {
                name: label.to_owned(),
                source,
            })?;
        let saved = CertStore::save(self.dir, &cert).map_err(|source| DevCertError::Save {
            name: label.to_owned(),
            dir: self.dir.to_path_buf(),
            source,
        })?;
        self.certs.push(saved.clone());
        Ok(saved)
    }

    /// Deletes the certificate `hash` unless a binding still names it (checked under
    /// the store lock by the caller: `used`).
    fn forget(&self, label: &str, hash: &str, used: bool) {
        let Ok(t) = hash.parse::<Thumbprint>() else {
            return;
        };
        if used {
            return;
        }
        match CertStore::delete(self.dir, &t) {
            Ok(_) => {
                tracing::debug!(name = label, thumbprint = %t, "deleted the replaced development certificate")
            }
            Err(e) => tracing::warn!(
                name = label,
                "the replaced development certificate stays in the folder: {e}"
            ),
        }
    }
}

/// Why (name, port) is served by a binding of someone else's, or `None`.
fn covered(folder: &Folder<'_>, data: &StoreData, name: &str, port: u16) -> Option<String> {
    for b in data
        .sslcert
        .iter()
        .filter(|b| b.key.port() == port && !is_dev(b))
    {
        match &b.key {
            BindingKey::Ccs(_) => {
                return Some(format!(
                    "ccs={port} chooses the certificates of port {port}"
                ))
            }
            BindingKey::IpPort(addr) => {
                if folder
                    .find(&b.certhash)
                    .is_some_and(|c| ca::covers(c, name))
                {
                    return Some(format!(
                        "ipport={addr} serves it already (certificate {})",
                        b.certhash
                    ));
                }
            }
            BindingKey::HostnamePort(..) => {}
        }
    }
    None
}

/// Under the store lock: our bindings `hostnameport=name:PORT` for `ports` point at
/// `new` (added where there is none; another appid's are never touched), and so do
/// ours of the name on other ports that still named `old`. Returns whether the file
/// changed, and whether `old` and `new` are still bound anywhere.
fn bind_name(
    store: &Store,
    name: &str,
    ports: &[u16],
    new: Thumbprint,
    old: Option<&str>,
) -> Result<(bool, bool, bool), StoreError> {
    let hash = new.to_string();
    let outcome = store.update(|data| {
        let mut changed = false;
        for &port in ports {
            let key = BindingKey::HostnamePort(name.to_owned(), port);
            match data.sslcert.iter_mut().find(|b| b.key == key) {
                Some(b) if !is_dev(b) => {}
                Some(b) => {
                    if b.certhash != hash {
                        b.certhash = hash.clone();
                        changed = true;
                    }
                }
                None => {
                    data.sslcert.push(SslBinding {
                        key,
                        certhash: hash.clone(),
                        appid: DEVCERT_APPID.to_owned(),
                        certstorename: "MY".to_owned(),
                        flags: BindingFlags::default(),
                    });
                    changed = true;
                }
            }
        }
        if let Some(old) = old {
            for b in data.sslcert.iter_mut().filter(|b| {
                is_dev(b) && names_binding(b, name) && b.certhash.eq_ignore_ascii_case(old)
            }) {
                b.certhash = hash.clone();
                changed = true;
            }
        }
        let used = |h: &str| {
            data.sslcert
                .iter()
                .any(|b| b.certhash.eq_ignore_ascii_case(h))
        };
        Ok::<_, std::convert::Infallible>((changed, old.is_some_and(used), used(&hash)))
    });
    match outcome {
        Ok(v) => Ok(v),
        Err(UpdateError::Store(e)) => Err(e),
        Err(UpdateError::Rejected(never)) => match never {},
    }
}

/// Under the store lock: removes our bindings of `name` (on `ports`, or every port
/// when `None`). Returns the certificates they named that no binding names any more.
fn release(store: &Store, name: &str, ports: Option<&[u16]>) -> Result<Vec<String>, StoreError> {
    let outcome = store.update(|data| {
        let mut hashes = Vec::new();
        data.sslcert.retain(|b| {
            let ours = is_dev(b)
                && names_binding(b, name)
                && ports.is_none_or(|p| p.contains(&b.key.port()));
            if ours {
                hashes.push(b.certhash.clone());
            }
            !ours
        });
        hashes.sort();
        hashes.dedup();
        hashes.retain(|h| {
            !data
                .sslcert
                .iter()
                .any(|b| b.certhash.eq_ignore_ascii_case(h))
        });
        Ok::<_, std::convert::Infallible>(hashes)
    });
    match outcome {
        Ok(v) => Ok(v),
        Err(UpdateError::Store(e)) => Err(e),
        Err(UpdateError::Rejected(never)) => match never {},
    }
}

/// Removes our bindings of `name` (see [`release`]) and deletes what they named.
fn release_and_log(
    folder: &Folder<'_>,
    out: &mut Pass,
    name: &str,
    ports: Option<&[u16]>,
    why: &str,
) {
    match release(&folder.store, name, ports) {
        Ok(unused) => {
            out.changed = true;
            tracing::info!(name, "removed the development certificate's binding: {why}");
            for h in unused {
                folder.forget(name, &h, false);
            }
        }
        Err(source) => out.errors.push(DevCertError::Bind {
            name: name.to_owned(),
            source,
        }),
    }
}

/// One look at the store: binds, renews and releases as the rules in the module
/// documentation say. `names`: the registered explicit https names; `acme`: the names
/// ACME looks after. Blocking file I/O: run it off the runtime.
pub(crate) fn look(cert_dir: &Path, names: &Names, acme: &[String], now: DateTime<Utc>) -> Pass {
    let mut out = Pass::default();
    let store = Store::in_cert_dir(cert_dir);
    let data = match store.load() {
        Ok(d) => d,
        Err(e) => {
            out.errors.push(DevCertError::Store(e));
            return out;
        }
    };
    let (certs, _) = CertStore::scan(cert_dir);
    let mut folder = Folder {
        dir: cert_dir,
        store,
        certs,
        ca: None,
        now,
    };
    let is_acme = |name: &str| acme.iter().any(|a| a.eq_ignore_ascii_case(name));

    // Ours of a name ACME now looks after would block ACME: they go.
    let acme_held: BTreeSet<String> = data
        .sslcert
        .iter()
        .filter(|b| is_dev(b))
        .filter_map(|b| match &b.key {
            BindingKey::HostnamePort(n, _) if is_acme(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    for name in &acme_held {
        release_and_log(&folder, &mut out, name, None, "ACME looks after this name");
    }

    for (name, ports) in names {
        if is_acme(name) {
            continue;
        }
        let mut ours = Vec::new();
        let mut free = Vec::new();
        let mut yield_to = Vec::new();
        for &port in ports {
            let key = BindingKey::HostnamePort(name.clone(), port);
            let existing = data.binding(&key);
            if let Some(b) = existing.filter(|b| !is_dev(b)) {
                out.skipped.push((
                    format!("hostnameport={key}"),
                    format!("bound by hand (appid {})", b.appid),
                ));
                continue;
            }
            match (covered(&folder, &data, name, port), existing) {
                (Some(why), Some(_)) => yield_to.push((port, why)),
                (Some(why), None) => out.skipped.push((format!("hostnameport={key}"), why)),
                (None, Some(_)) => ours.push(port),
                (None, None) => free.push(port),
            }
        }
        for (port, why) in yield_to {
            release_and_log(&folder, &mut out, name, Some(&[port]), &why);
        }
        if ours.is_empty() && free.is_empty() {
            continue;
        }
        // The certificate in service: that of our binding on one of these ports, else
        // of ours for the name on another port (another server sharing cert_dir).
        let current_hash = ours
            .iter()
            .find_map(|&p| {
                data.binding(&BindingKey::HostnamePort(name.clone(), p))
                    .map(|b| b.certhash.clone())
            })
            .or_else(|| {
                data.sslcert
                    .iter()
                    .find(|b| is_dev(b) && names_binding(b, name))
                    .map(|b| b.certhash.clone())
            });
        let current = current_hash
            .as_deref()
            .and_then(|h| folder.find(h))
            .filter(|c| c.key.is_some() && ca::covers(c, name) && !is_due(c, now))
            .cloned();
        let all: Vec<u16> = ours.iter().chain(&free).copied().collect();
        let (cert, old) = match current {
            Some(c) => (c, None),
            None => match folder.issue(name, std::slice::from_ref(name)) {
                Ok(c) => (c, current_hash.clone()),
                Err(e) => {
                    out.errors.push(e);
                    continue;
                }
            },
        };
        // Nothing to write when every port names the certificate already.
        let settled = old.is_none()
            && all.iter().all(|&p| {
                data.binding(&BindingKey::HostnamePort(name.clone(), p))
                    .is_some_and(|b| b.certhash == cert.thumbprint.to_string())
            });
        if !settled {
            match bind_name(&folder.store, name, &all, cert.thumbprint, old.as_deref()) {
                Ok((changed, old_used, new_used)) => {
                    out.changed |= changed;
                    if changed {
                        let keys: Vec<String> = all.iter().map(|p| format!("{name}:{p}")).collect();
                        tracing::info!(
                            name = %name,
                            thumbprint = %cert.thumbprint,
                            "{} a certificate from the {DEV_CA_NAME} for {name}, bound as \
                             hostnameport={} until {}; clients accept it once they trust the CA \
                             (`portshare cert trust`)",
                            if old.is_some() { "renewed" } else { "bound" },
                            keys.join(", hostnameport="),
                            cert.info.not_after.format("%Y-%m-%d %H:%M:%S UTC")
                        );
                    }
                    if let Some(o) = &old {
                        folder.forget(name, o, old_used);
                    }
                    if !new_used {
                        // Every port was bound by hand meanwhile.
                        folder.forget(name, &cert.thumbprint.to_string(), false);
                        continue;
                    }
                }
                Err(source) => {
                    out.errors.push(DevCertError::Bind {
                        name: name.clone(),
                        source,
                    });
                    continue;
                }
            }
        }
        out.due(&cert);
    }

    renew_firstrun(&mut folder, &data, &mut out);
    out
}

/// Renews the first-run certificate (the bindings with [`FIRSTRUN_APPID`]) when due.
fn renew_firstrun(folder: &mut Folder<'_>, data: &StoreData, out: &mut Pass) {
    let hashes: BTreeSet<String> = data
        .sslcert
        .iter()
        .filter(|b| is_firstrun(b))
        .map(|b| b.certhash.to_ascii_lowercase())
        .collect();
    let label = "the first-run certificate";
    for hash in hashes {
        // A certificate that is gone or keyless is the TLS layer's to report.
        let Some(old) = folder.find(&hash).filter(|c| c.key.is_some()).cloned() else {
            continue;
        };
        if !is_due(&old, folder.now) {
            out.due(&old);
            continue;
        }
        let mut names: Vec<String> = old.info.dns_names.clone();
        names.extend(old.info.ip_addresses.iter().map(ToString::to_string));
        if names.is_empty() {
            names = FIRSTRUN_NAMES.iter().map(|n| (*n).to_owned()).collect();
        }
        let new = match folder.issue(label, &names) {
            Ok(c) => c,
            Err(e) => {
                out.errors.push(e);
                continue;
            }
        };
        let new_hash = new.thumbprint.to_string();
        let updated = folder.store.update(|d| {
            let mut keys = Vec::new();
            for b in d
                .sslcert
                .iter_mut()
                .filter(|b| is_firstrun(b) && b.certhash.eq_ignore_ascii_case(&hash))
            {
                b.certhash = new_hash.clone();
                keys.push(b.key.to_string());
            }
            let used = |h: &str| d.sslcert.iter().any(|b| b.certhash.eq_ignore_ascii_case(h));
            Ok::<_, std::convert::Infallible>((keys, used(&hash), used(&new_hash)))
        });
        match updated {
            Ok((keys, old_used, new_used)) => {
                if !keys.is_empty() {
                    out.changed = true;
                    tracing::info!(
                        thumbprint = %new.thumbprint,
                        "renewed the first-run certificate from the {DEV_CA_NAME} ({}), bound to {} until {}",
                        names.join(", "),
                        keys.join(" and "),
                        new.info.not_after.format("%Y-%m-%d %H:%M:%S UTC")
                    );
                }
                folder.forget(label, &hash, old_used);
                if new_used {
                    out.due(&new);
                } else {
                    folder.forget(label, &new_hash, false);
                }
            }
            Err(UpdateError::Store(source)) => out.errors.push(DevCertError::Bind {
                name: label.to_owned(),
                source,
            }),
            Err(UpdateError::Rejected(never)) => match never {},
        }
    }
}

/// The task that keeps the development certificates: see the module documentation.
pub struct DevCertManager {
    cert_dir: PathBuf,
    acme: Arc<ArcSwap<Vec<String>>>,
    names: Box<dyn Fn() -> Names + Send + Sync>,
    on_bound: Box<dyn Fn() + Send + Sync>,
}

/// Removes our bindings (and their unused certificates) of `acme`'s names,
/// which ACME now looks after: they would keep its certificates from being
/// chosen. Blocking file I/O.
pub fn hand_over(cert_dir: &Path, acme: &[String]) {
    if acme.is_empty() {
        return;
    }
    let store = Store::in_cert_dir(cert_dir);
    for name in acme {
        match release(&store, name, None) {
            Ok(unused) => {
                for h in unused {
                    if let Ok(t) = h.parse::<Thumbprint>() {
                        let _ = CertStore::delete(cert_dir, &t);
                    }
                }
            }
            Err(e) => tracing::warn!(
                name = %name,
                "cannot hand the name over to ACME: {e}"
            ),
        }
    }
}

impl DevCertManager {
    /// `acme`: the names ACME looks after (left to it; a reload changes
    /// them); `names`: the registered explicit https names now (read at every
    /// look); `on_bound`: asks the TLS layer to reload. Hands over at once our
    /// bindings of names ACME looks after, so that ACME, which starts next,
    /// finds them free.
    pub fn new(
        cert_dir: PathBuf,
        acme: Arc<ArcSwap<Vec<String>>>,
        names: Box<dyn Fn() -> Names + Send + Sync>,
        on_bound: Box<dyn Fn() + Send + Sync>,
    ) -> DevCertManager {
        hand_over(&cert_dir, &acme.load());
        DevCertManager {
            cert_dir,
            acme,
            names,
            on_bound,
        }
    }

    /// Looks after the certificates until `stopping` turns true: at once, whenever
    /// `changes` (the registry's generation) moves, and when a certificate falls due
    /// (at least every [`CHECK_INTERVAL`]).
    pub async fn run(self, mut changes: watch::Receiver<u64>, mut stopping: watch::Receiver<bool>) {
        changes.mark_unchanged();
        let mut failures: u32 = 0;
        let mut reported: HashSet<(String, String)> = HashSet::new();
        loop {
            if *stopping.borrow() {
                return;
            }
            let names = (self.names)();
            let cert_dir = self.cert_dir.clone();
            let acme = Vec::clone(&self.acme.load());
            let pass =
                tokio::task::spawn_blocking(move || look(&cert_dir, &names, &acme, Utc::now()))
                    .await
                    .unwrap_or_else(|e| Pass {
                        errors: vec![DevCertError::Task {
                            detail: e.to_string(),
                        }],
                        ..Pass::default()
                    });
            if pass.changed {
                (self.on_bound)();
            }
            for (binding, why) in pass.skipped {
                if reported.insert((binding.clone(), why.clone())) {
                    tracing::info!("development certificates: {binding} is left alone: {why}");
                }
            }
            let until_due = pass
                .next_due
                .and_then(|d| (d - Utc::now()).to_std().ok())
                .unwrap_or(Duration::ZERO);
            let mut wait = if pass.next_due.is_some() {
                until_due.min(CHECK_INTERVAL)
            } else {
                CHECK_INTERVAL
            };
            if pass.errors.is_empty() {
                failures = 0;
            } else {
                let retry = FIRST_RETRY
                    .saturating_mul(2u32.saturating_pow(failures.min(16)))
                    .min(CHECK_INTERVAL);
                failures = failures.saturating_add(1);
                for e in &pass.errors {
                    tracing::error!(
                        "{e}; the current certificate (if any) stays in service; trying again in {} s",
                        retry.as_secs()
                    );
                }
                wait = wait.min(retry);
            }
            let wait = wait.max(MIN_WAIT);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                changed = stopping.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(d: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::days(d)
    }

    fn prefixes(list: &[&str]) -> Vec<UrlPrefix> {
        list.iter().map(|p| UrlPrefix::parse(p).unwrap()).collect()
    }

    fn bindings(dir: &Path) -> Vec<SslBinding> {
        Store::in_cert_dir(dir).load().unwrap().sslcert
    }

    fn names(list: &[(&str, u16)]) -> Names {
        let mut n = Names::new();
        for (name, port) in list {
            n.entry((*name).to_owned()).or_default().insert(*port);
        }
        n
    }

    #[test]
    fn renews_when_a_third_is_left() {
        assert_eq!(renew_at(day(0), day(90)), day(60));
        assert_eq!(renew_at(day(5), day(1)), DateTime::<Utc>::MIN_UTC);
    }

    #[test]
    fn only_explicit_https_names_are_wanted() {
        let p = prefixes(&[
            "https://MyApp.test:8443/",
            "https://myapp.test:9443/api/",
            "http://plain.test:8080/",
            "https://+:8443/",
            "https://*:8443/",
            "https://127.0.0.1:8443/",
            "https://[::1]:8443/",
        ]);
        let w = wanted(&p);
        assert_eq!(w, names(&[("myapp.test", 8443), ("myapp.test", 9443)]));
    }

    #[test]
    fn binds_renews_and_leaves_hand_made_bindings_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let store = Store::in_cert_dir(d);
        // A hand-made binding for one name.
        let hand = CertStore::save(
            d,
            &crate::certs::new_self_signed(&["hand.test".to_owned()], 30).unwrap(),
        )
        .unwrap();
        store
            .update(|data| {
                data.sslcert.push(SslBinding {
                    key: BindingKey::HostnamePort("hand.test".into(), 8443),
                    certhash: hand.thumbprint.to_string(),
                    appid: "{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}".into(),
                    certstorename: "MY".into(),
                    flags: BindingFlags::default(),
                });
                Ok::<_, ()>(())
            })
            .unwrap();
        let wanted = names(&[
            ("myapp.test", 8443),
            ("myapp.test", 9443),
            ("hand.test", 8443),
            ("public.example.org", 8443),
        ]);
        let acme = vec!["public.example.org".to_owned()];
        let now = Utc::now();
        let pass = look(d, &wanted, &acme, now);
        assert!(pass.errors.is_empty(), "{:?}", pass.errors);
        assert!(pass.changed);
        let b = bindings(d);
        let ours: Vec<&SslBinding> = b.iter().filter(|b| is_dev(b)).collect();
        assert_eq!(ours.len(), 2, "{b:?}");
        assert!(ours.iter().all(|b| names_binding(b, "myapp.test")));
        assert_eq!(ours[0].certhash, ours[1].certhash);
        let hand_binding = b.iter().find(|b| names_binding(b, "hand.test")).unwrap();
        assert_eq!(hand_binding.certhash, hand.thumbprint.to_string());
        assert_eq!(
            pass.skipped
                .iter()
                .filter(|(k, _)| k.contains("hand.test"))
                .count(),
            1
        );
        // The leaf: the name alone, issued by the development CA.
        let leaf = CertStore::find(d, &ours[0].certhash.parse().unwrap()).unwrap();
        assert_eq!(leaf.info.dns_names, vec!["myapp.test".to_owned()]);
        let (all, _) = CertStore::scan(d);
        let dev = ca::dev_ca(&all, now).unwrap();
        assert_eq!(leaf.chain.get(1), dev.chain.first());
        let due = pass.next_due.unwrap();
        assert!(due > now + TimeDelta::days(200), "{due}");

        // Again: nothing to do.
        let again = look(d, &wanted, &acme, now);
        assert!(!again.changed && again.errors.is_empty());
        assert_eq!(bindings(d), b);

        // When due: a new certificate on both ports, the old one deleted.
        let later = renew_at(leaf.info.not_before, leaf.info.not_after) + TimeDelta::minutes(1);
        let renewed = look(d, &wanted, &acme, later);
        assert!(
            renewed.changed && renewed.errors.is_empty(),
            "{:?}",
            renewed.errors
        );
        let b2 = bindings(d);
        let ours2: Vec<&SslBinding> = b2.iter().filter(|b| is_dev(b)).collect();
        assert_eq!(ours2.len(), 2);
        assert!(ours2
            .iter()
            .all(|b| b.certhash != leaf.thumbprint.to_string()));
        assert!(CertStore::find(d, &leaf.thumbprint).is_err());
        assert!(b2.iter().any(|b| b.certhash == hand.thumbprint.to_string()));

        // The name now handed to ACME: ours go.
        let acme2 = vec!["myapp.test".to_owned(), "public.example.org".to_owned()];
        let handed = look(d, &wanted, &acme2, later);
        assert!(handed.changed);
        assert!(!bindings(d).iter().any(is_dev));
    }

    #[test]
    fn gives_way_to_an_ipport_binding_that_covers_the_name() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let wanted = names(&[("www.site.test", 443), ("localhost", 443)]);
        let now = Utc::now();
        assert!(look(d, &wanted, &[], now).errors.is_empty());
        assert_eq!(bindings(d).iter().filter(|b| is_dev(b)).count(), 2);
        // The user binds a wildcard certificate to 0.0.0.0:443: it serves the name.
        let wild = CertStore::save(
            d,
            &crate::certs::new_self_signed(&["*.site.test".to_owned()], 30).unwrap(),
        )
        .unwrap();
        Store::in_cert_dir(d)
            .update(|data| {
                data.sslcert.push(SslBinding {
                    key: BindingKey::IpPort("0.0.0.0:443".parse().unwrap()),
                    certhash: wild.thumbprint.to_string(),
                    appid: "{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}".into(),
                    certstorename: "MY".into(),
                    flags: BindingFlags::default(),
                });
                Ok::<_, ()>(())
            })
            .unwrap();
        let pass = look(d, &wanted, &[], now);
        assert!(pass.changed && pass.errors.is_empty());
        let b = bindings(d);
        let ours: Vec<&SslBinding> = b.iter().filter(|b| is_dev(b)).collect();
        assert_eq!(ours.len(), 1);
        assert!(names_binding(ours[0], "localhost"));
    }

    #[test]
    fn renews_the_first_run_certificate() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let old = CertStore::save(
            d,
            &crate::certs::new_self_signed(&["localhost".to_owned(), "::1".to_owned()], 30)
                .unwrap(),
        )
        .unwrap();
        let old_hash = old.thumbprint.to_string();
        Store::in_cert_dir(d)
            .update(|data| {
                for k in ["0.0.0.0:8443", "[::]:8443"] {
                    data.sslcert.push(SslBinding {
                        key: BindingKey::IpPort(k.parse().unwrap()),
                        certhash: old_hash.clone(),
                        appid: FIRSTRUN_APPID.into(),
                        certstorename: "MY".into(),
                        flags: BindingFlags::default(),
                    });
                }
                Ok::<_, ()>(())
            })
            .unwrap();
        let now = Utc::now();
        let pass = look(d, &Names::new(), &[], now);
        assert!(!pass.changed);
        assert_eq!(
            pass.next_due,
            Some(renew_at(old.info.not_before, old.info.not_after))
        );
        let later = old.info.not_after - TimeDelta::days(1);
        let pass = look(d, &Names::new(), &[], later);
        assert!(pass.changed && pass.errors.is_empty(), "{:?}", pass.errors);
        let b = bindings(d);
        assert_eq!(b.len(), 2);
        // Both families follow, to the same new certificate.
        assert!(b
            .iter()
            .all(|x| x.certhash == b[0].certhash && x.certhash != old_hash && is_firstrun(x)));
        let new = CertStore::find(d, &b[0].certhash.parse().unwrap()).unwrap();
        assert_eq!(new.info.dns_names, vec!["localhost".to_owned()]);
        assert_eq!(new.info.ip_addresses.len(), 1);
        assert_eq!(new.chain.len(), 2, "issued by the development CA");
        assert!(CertStore::find(d, &old.thumbprint).is_err());
    }

    #[test]
    fn leaves_end_before_their_ca() {
        let ca = ca::new_ca(DEV_CA_NAME, 2).unwrap();
        let now = Utc::now();
        let l = lifetime_under(&ca, Duration::from_secs(365 * 86_400), now);
        assert!(l < Duration::from_secs(2 * 86_400), "{l:?}");
        assert!(ca::issue_lasting(&ca, &["a.test".to_owned()], l).is_ok());
        // A CA that ends within a day is replaced.
        let tmp = tempfile::tempdir().unwrap();
        let fresh = ensure_dev_ca(
            tmp.path(),
            std::slice::from_ref(&ca),
            now + TimeDelta::days(1) + TimeDelta::hours(1),
        )
        .unwrap();
        assert_ne!(fresh.thumbprint, ca.thumbprint);
        let kept = ensure_dev_ca(tmp.path(), std::slice::from_ref(&ca), now).unwrap();
        assert_eq!(kept.thumbprint, ca.thumbprint);
    }
}
