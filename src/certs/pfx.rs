//! PKCS#12 (PFX/P12) files, via the `p12-keystore` crate.
//!
//! Reading covers what Windows and OpenSSL write: modern PBES2 (PBKDF2 + AES-256-CBC, MAC
//! HMAC-SHA256) and legacy PBES1 (pbeWithSHAAnd3-KeyTripleDES-CBC keys,
//! pbeWithSHAAnd40BitRC2-CBC certificates, SHA-1 MAC), including the empty password.
//! Export uses the modern scheme.

use std::path::Path;

use p12_keystore::error::Error as P12Error;
use p12_keystore::{
    EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, Pkcs12Archive, PrivateKeyChain,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{assemble, keys, read, CertError, Certificate, Result};

/// Load a PFX/P12 file. The certificate the private key belongs to becomes the leaf; the
/// other certificates follow in issuing order. A PFX without a private key loads with
/// `key: None` (binding it fails with netsh's 1312). A wrong password is
/// [`CertError::WrongPassword`].
pub fn load_pfx(path: &Path, password: &str) -> Result<Certificate> {
    let data = read(path)?;
    load_pfx_bytes(path, &data, password)
}

pub(crate) fn load_pfx_bytes(path: &Path, data: &[u8], password: &str) -> Result<Certificate> {
    let archive =
        Pkcs12Archive::from_pkcs12(data, password).map_err(|e| pfx_error(path, data, e))?;
    let certs: Vec<CertificateDer<'static>> = archive
        .certs
        .iter()
        .map(|b| CertificateDer::from(b.cert.as_der().to_vec()))
        .collect();
    let keys: Vec<PrivateKeyDer<'static>> = archive
        .keys
        .iter()
        .map(|b| PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(b.key.as_der().to_vec())))
        .collect();
    assemble(path, certs, keys, path)
}

fn pfx_error(path: &Path, data: &[u8], e: P12Error) -> CertError {
    let path = path.to_path_buf();
    match e {
        // The MAC did not verify, or (in a MAC-less file) decryption produced garbage.
        P12Error::MacError(_) | P12Error::UnpadError | P12Error::Pkcs5Error(_) => {
            CertError::WrongPassword { path }
        }
        P12Error::UnsupportedEncryptionScheme | P12Error::UnsupportedMacAlgorithm => {
            CertError::UnsupportedPfx {
                path,
                detail: e.to_string(),
            }
        }
        P12Error::InvalidParameters => CertError::UnsupportedPfx {
            path,
            detail: "invalid parameters or more than 1,000,000 key-derivation iterations".into(),
        },
        P12Error::DerError(_) | P12Error::InvalidVersion | P12Error::UnsupportedContentType
            if !data.starts_with(&[0x30]) =>
        {
            CertError::NotPemOrPfx { path }
        }
        other => CertError::BadPfx {
            path,
            detail: other.to_string(),
        },
    }
}

/// Export a certificate with its key as a PFX protected by `password`, with the modern
/// scheme (PBKDF2-SHA256 + AES-256-CBC, HMAC-SHA256 MAC) that Windows 10 1709+ and
/// OpenSSL 1.1+ read.
pub fn to_pfx(cert: &Certificate, password: &str) -> Result<Vec<u8>> {
    let key = cert.require_key()?;
    let pkcs8 = keys::to_pkcs8(key).map_err(|detail| CertError::UnsupportedKey {
        path: cert.source.clone(),
        detail,
    })?;
    let generate = |e: P12Error| CertError::Generate {
        detail: format!("PFX export of {}: {e}", cert.thumbprint),
    };
    let p12_key = p12_keystore::PrivateKey::from_der(pkcs8.secret_pkcs8_der()).map_err(generate)?;
    let certs = cert
        .chain
        .iter()
        .map(|c| p12_keystore::Certificate::from_der(c.as_ref()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(generate)?;
    let alias = cert.thumbprint.to_string();
    let mut store = KeyStore::new();
    store.add_entry(
        &alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
            cert.thumbprint.0.to_vec(),
            p12_key,
            certs,
        )),
    );
    store
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .write()
        .map_err(generate)
}

#[cfg(test)]
mod tests {
    use super::super::testutil;
    use super::*;
    use crate::certs::Thumbprint;

    fn sample() -> (testutil::Chain, Certificate) {
        let c = testutil::chain(&["site.test"]);
        let p = Path::new("mem.pem");
        let cert = assemble(
            p,
            vec![c.leaf.clone(), c.intermediate.clone(), c.root.clone()],
            vec![c.key()],
            p,
        )
        .unwrap();
        (c, cert)
    }

    #[test]
    fn modern_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (c, cert) = sample();
        let bytes = to_pfx(&cert, "s3cret").unwrap();
        let p = dir.path().join("site.pfx");
        std::fs::write(&p, bytes).unwrap();
        let back = load_pfx(&p, "s3cret").unwrap();
        assert_eq!(back.thumbprint, Thumbprint::of_der(c.leaf.as_ref()));
        assert_eq!(back.chain, cert.chain);
        assert!(back.key.is_some());
        assert_eq!(back.source, p);

        let e = load_pfx(&p, "nope").unwrap_err();
        assert!(matches!(e, CertError::WrongPassword { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "{}: wrong password (put it in {}.password or pass --password)",
                p.display(),
                p.display()
            )
        );
    }

    #[test]
    fn empty_password_and_legacy_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (_, cert) = sample();
        let p = dir.path().join("nopass.pfx");
        std::fs::write(&p, to_pfx(&cert, "").unwrap()).unwrap();
        assert_eq!(load_pfx(&p, "").unwrap().thumbprint, cert.thumbprint);
    }

    #[test]
    fn not_a_pfx() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pfx");
        std::fs::write(&p, b"plain text").unwrap();
        assert!(matches!(
            load_pfx(&p, "").unwrap_err(),
            CertError::NotPemOrPfx { .. }
        ));
        std::fs::write(&p, [0x30, 0x03, 0x02, 0x01, 0x05]).unwrap();
        assert!(matches!(
            load_pfx(&p, "").unwrap_err(),
            CertError::BadPfx { .. }
        ));
    }

    #[test]
    fn export_needs_key() {
        let c = testutil::chain(&["site.test"]);
        let p = Path::new("mem.pem");
        let cert = assemble(p, vec![c.leaf.clone()], vec![], p).unwrap();
        assert_eq!(to_pfx(&cert, "x").unwrap_err().netsh_code(), Some(1312));
    }
}
