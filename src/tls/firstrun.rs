//! First run with HTTPS enabled: when neither `0.0.0.0:PORT` nor `[::]:PORT` has a
//! binding, create a `localhost` certificate (as `dotnet dev-certs` does), save it in
//! the store, bind it to both, and tell the user how to trust it.
//!
//! A still-valid certificate made by an earlier first run (self-signed, CN=localhost,
//! SAN localhost, private key, valid 30 more days) is reused instead of making a new
//! one, so a browser exception or trust-store entry stays good.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

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

/// The message printed after binding the first-run certificate.
pub(crate) fn notice(cert: &Certificate, created: bool, port: u16, cert_dir: &Path) -> String {
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
         \x20   portshare cert export {thumb} --out localhost.pem\n\
         \x20   curl --cacert localhost.pem https://localhost:{port}/\n\
         \x20   Linux: sudo cp localhost.pem /usr/local/share/ca-certificates/portshare-localhost.crt && sudo update-ca-certificates\n\
         \x20   macOS: sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain localhost.pem\n\
         \x20   Windows: certutil -addstore -f Root localhost.pem\n\
         Or bind your own certificate: portshare http update sslcert ipport=0.0.0.0:{port} certhash=… appid={PORTSHARE_APPID}\n",
        dir = cert_dir.display(),
    )
}
