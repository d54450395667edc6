//! First run with HTTPS enabled: when neither `0.0.0.0:PORT` nor `[::]:PORT` has a
//! binding, create a `localhost` certificate (as `dotnet dev-certs` does), save it in
//! the store, bind it to both, and tell the user how to trust it.
//!
//! A still-valid certificate made by an earlier first run (self-signed, CN=localhost,
//! SAN localhost, private key, valid 30 more days) is reused instead of making a new
//! one, so a browser exception or trust-store entry stays good.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};

use crate::certs::{new_self_signed, CertStore, Certificate, DEFAULT_DAYS};
use crate::store::{BindingFlags, BindingKey, SslBinding, Store, UpdateError};

use super::{TlsError, PORTSHARE_APPID};

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

fn reusable(c: &Certificate) -> bool {
    let i = &c.info;
    c.key.is_some()
        && i.is_self_signed
        && i.subject == "CN=localhost"
        && i.dns_names.iter().any(|n| n == "localhost")
        && i.not_after > Utc::now() + Duration::days(30)
        && i.not_before <= Utc::now()
}

pub(crate) fn ensure(cert_dir: &Path, port: u16) -> Result<FirstRun, TlsError> {
    let store = Store::in_cert_dir(cert_dir);
    let data = store.load()?;
    let keys = wildcard_keys(port);
    if keys.iter().any(|k| data.binding(k).is_some()) {
        return Ok(FirstRun::NotNeeded);
    }
    let (existing, _) = CertStore::scan(cert_dir);
    let (cert, created) = match existing.into_iter().find(reusable) {
        Some(c) => (c, false),
        None => {
            let names = ["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
            let c = new_self_signed(&names, DEFAULT_DAYS)?;
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
    let what = if created {
        "Created a self-signed certificate for localhost"
    } else {
        "Using the self-signed localhost certificate"
    };
    format!(
        "portshare: HTTPS port {port} had no SSL binding.\n\
         {what} (thumbprint {thumb}, in {dir}),\n\
         bound to 0.0.0.0:{port} and [::]:{port}. https://localhost:{port}/ now works.\n\
         Clients do not trust it yet. Export it and trust it:\n\
         \x20   {cmd} cert export {thumb} --out localhost.pem\n\
         \x20   curl --cacert localhost.pem https://localhost:{port}/\n\
         \x20   Linux: sudo cp localhost.pem /usr/local/share/ca-certificates/portshare-localhost.crt && sudo update-ca-certificates\n\
         \x20   macOS: sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain localhost.pem\n\
         \x20   Windows: certutil -addstore -f Root localhost.pem\n\
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
