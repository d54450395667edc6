//! First run with HTTPS enabled: when neither `0.0.0.0:PORT` nor `[::]:PORT` has a
//! binding, issue a `localhost` certificate from the development CA (created in the
//! store on first need, reused afterwards: see [`crate::certs::ca`]), save it, bind it
//! to both, and tell the user how to trust the CA (`cert trust`), as `mkcert` and
//! `dotnet dev-certs` do. One trust step then covers every certificate the CA issues.
//!
//! A still-valid certificate made by an earlier first run (CN=localhost, SAN
//! localhost, private key, issued by the current development CA, not yet due for
//! renewal) is reused instead of making a new one. Renewal itself is
//! [`super::devcerts`]'s: it follows the bindings with this appid.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::certs::ca::{self, DEV_CA_NAME};
use crate::certs::{CertStore, Certificate, Thumbprint};
use crate::store::{BindingFlags, BindingKey, SslBinding, Store, UpdateError};

use super::{devcerts, TlsError, PORTSHARE_APPID};

/// What the first-run step did.
pub(crate) enum FirstRun {
    /// A wildcard IP binding exists already.
    NotNeeded,
    /// Bound `cert` (newly created when `created`).
    Bound {
        cert: Box<Certificate>,
        created: bool,
    },
}

fn wildcard_keys(port: u16) -> [BindingKey; 2] {
    [
        BindingKey::IpPort(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)),
        BindingKey::IpPort(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)),
    ]
}

fn reusable(c: &Certificate, dev_ca: &Certificate, now: DateTime<Utc>) -> bool {
    let i = &c.info;
    // Not due: one the renewal would replace at once is no use.
    c.key.is_some()
        && !i.is_ca
        && i.subject == "CN=localhost"
        && i.dns_names.iter().any(|n| n == "localhost")
        && c.chain.get(1) == dev_ca.chain.first()
        && !devcerts::is_due(c, now)
        && i.not_before <= now
}

pub(crate) fn ensure(cert_dir: &Path, port: u16) -> Result<FirstRun, TlsError> {
    let store = Store::in_cert_dir(cert_dir);
    let data = store.load()?;
    let keys = wildcard_keys(port);
    if keys.iter().any(|k| data.binding(k).is_some()) {
        return Ok(FirstRun::NotNeeded);
    }
    let (existing, _) = CertStore::scan(cert_dir);
    let now = Utc::now();
    let dev_ca = devcerts::ensure_dev_ca(cert_dir, &existing, now)?;
    let (cert, created) = match existing.into_iter().find(|c| reusable(c, &dev_ca, now)) {
        Some(c) => (c, false),
        None => {
            let names = ["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
            // A leaf may not outlive its CA: near the CA's end, a shorter one.
            let lifetime = devcerts::lifetime_under(&dev_ca, devcerts::configured_lifetime(), now);
            let c = ca::issue_lasting(&dev_ca, &names, lifetime)?;
            (CertStore::save(cert_dir, &c)?, true)
        }
    };
    let certhash = cert.thumbprint.to_string();
    let added = store.update(|d| {
        // Another process may have bound the port meanwhile: then leave it alone.
        if keys.iter().any(|k| d.binding(k).is_some()) {
            return Ok::<bool, ()>(false);
        }
        for k in &keys {
            d.sslcert.push(SslBinding {
                key: k.clone(),
                certhash: certhash.clone(),
                appid: PORTSHARE_APPID.to_owned(),
                certstorename: "MY".to_owned(),
                flags: BindingFlags::default(),
            });
        }
        Ok(true)
    });
    match added {
        Ok(true) => Ok(FirstRun::Bound {
            cert: Box::new(cert),
            created,
        }),
        Ok(false) => Ok(FirstRun::NotNeeded),
        Err(UpdateError::Store(e)) => Err(e.into()),
        Err(UpdateError::Rejected(())) => Ok(FirstRun::NotNeeded),
    }
}

/// How to type portshare in the hint: `portshare` when that name on PATH is
/// this program, else the program's full path (after `cargo run` it is
/// `target/…/portshare`, and nothing is on PATH yet); plus `--config FILE`
/// when the search would not find the server's file (it was started with
/// `--config` or `PORTSHARE_CONFIG`). The second value is the line that says
/// how to put it on PATH, when it is not.
fn invocation(config: Option<&Path>) -> (String, Option<String>) {
    let quote = |p: &Path| {
        let t = p.display().to_string();
        if t.contains(char::is_whitespace) {
            format!("\"{t}\"")
        } else {
            t
        }
    };
    let exe = std::env::current_exe().ok();
    let (mut cmd, path_note) = match &exe {
        Some(exe) if !on_path(exe) => (
            quote(exe),
            Some(format!(
                "(portshare is not on PATH; {} is the program. `cargo install --path .` \
                 in the source folder installs it into ~/.cargo/bin.)\n",
                quote(exe)
            )),
        ),
        _ => ("portshare".to_owned(), None),
    };
    if let Some(config) = config {
        cmd.push_str(" --config ");
        cmd.push_str(&quote(config));
    }
    (cmd, path_note)
}

/// Whether `portshare` found through PATH is `exe`.
fn on_path(exe: &Path) -> bool {
    let name = format!("portshare{}", std::env::consts::EXE_SUFFIX);
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    let exe = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    std::env::split_paths(&path)
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .is_some_and(|p| p == exe)
}

/// The `--config` a command needs to reach the server's store: the server's
/// file made absolute, unless the search finds that same file anyway.
pub(crate) fn config_for_commands(origin: &crate::config::Origin) -> Option<PathBuf> {
    let crate::config::Origin::File(file) = origin else {
        return None;
    };
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.clone());
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    match crate::config::Settings::config_found_by_search() {
        Some(found) if same(&found, file) => None,
        _ => Some(absolute),
    }
}

/// The message printed after binding the first-run certificate. `config`:
/// the `--config` the user's commands need (see [`config_for_commands`]).
pub(crate) fn notice(
    cert: &Certificate,
    created: bool,
    port: u16,
    cert_dir: &Path,
    config: Option<&Path>,
) -> String {
    let (cmd, path_note) = invocation(config);
    let thumb = cert.thumbprint.to_upper();
    let ca_thumb = cert
        .chain
        .get(1)
        .map(|der| Thumbprint::of_der(der.as_ref()).to_upper())
        .unwrap_or_default();
    let what = if created {
        "Created a localhost certificate"
    } else {
        "Using the localhost certificate"
    };
    format!(
        "portshare: HTTPS port {port} had no SSL binding.\n\
         {what} issued by the {DEV_CA_NAME} (thumbprint {thumb}, in {dir}),\n\
         bound to 0.0.0.0:{port} and [::]:{port}. https://localhost:{port}/ now works.\n\
         Clients accept it once they trust the CA ({ca_thumb}); on this machine:\n\
         \x20   {cmd} cert trust\n\
         (the system store needs root: it prints the command to run with sudo; --remove undoes it)\n\
         On another computer or a phone, install the CA's certificate:\n\
         \x20   {cmd} cert export {ca_thumb} --out portshare-ca.crt\n\
         \x20   curl --cacert portshare-ca.crt https://localhost:{port}/\n\
         Or bind your own certificate (it replaces this one; bind both families):\n\
         \x20   {cmd} http add sslcert ipport=0.0.0.0:{port} certhash=… appid={{your GUID}}\n\
         \x20   {cmd} http add sslcert ipport=[::]:{port} certhash=… appid={{your GUID}}\n\
         {path_note}",
        dir = std::path::absolute(cert_dir)
            .unwrap_or_else(|_| cert_dir.to_path_buf())
            .display(),
        path_note = path_note.unwrap_or_default(),
    )
}
