//! PEM files: certificate chains with PKCS#8, PKCS#1 or SEC1 keys, in one file or two.

use std::path::Path;

use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{assemble, keys, read, CertError, Certificate, Result};

pub(crate) fn looks_like_pem(data: &[u8]) -> bool {
    data.windows(11).any(|w| w == b"-----BEGIN ")
}

fn looks_encrypted(data: &[u8]) -> bool {
    data.windows(29)
        .any(|w| w == b"-----BEGIN ENCRYPTED PRIVATE ")
        || data.windows(24).any(|w| w == b"Proc-Type: 4,ENCRYPTED")
}

/// Certificates and private keys in PEM text, in file order.
struct Sections {
    certs: Vec<CertificateDer<'static>>,
    keys: Vec<PrivateKeyDer<'static>>,
}

fn sections(path: &Path, data: &[u8]) -> Result<Sections> {
    let mut out = Sections {
        certs: Vec::new(),
        keys: Vec::new(),
    };
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(data) {
        let (kind, der) = item.map_err(|e| CertError::BadPem {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        match kind {
            SectionKind::Certificate => out.certs.push(CertificateDer::from(der)),
            SectionKind::PrivateKey => out.keys.push(PrivateKeyDer::Pkcs8(der.into())),
            SectionKind::RsaPrivateKey => out.keys.push(PrivateKeyDer::Pkcs1(der.into())),
            SectionKind::EcPrivateKey => out.keys.push(PrivateKeyDer::Sec1(der.into())),
            _ => {}
        }
    }
    Ok(out)
}

/// True when `data` is PEM text holding a private key and no certificate (a `.key` file
/// under another name); the store skips such files.
pub(crate) fn is_key_only(data: &[u8]) -> bool {
    if !looks_like_pem(data) {
        return false;
    }
    match sections(Path::new(""), data) {
        Ok(s) => s.certs.is_empty() && (!s.keys.is_empty() || looks_encrypted(data)),
        Err(_) => false,
    }
}

/// True when PEM text holds at least one private key block.
pub(crate) fn has_key(data: &[u8]) -> bool {
    sections(Path::new(""), data).is_ok_and(|s| !s.keys.is_empty()) || looks_encrypted(data)
}

/// Read a private key file: PEM (PKCS#8, PKCS#1 or SEC1; the first key in the file) or
/// DER.
pub(crate) fn read_key_file(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let data = read(path)?;
    if looks_like_pem(&data) {
        let s = sections(path, &data)?;
        match s.keys.into_iter().next() {
            Some(k) => Ok(k),
            None if looks_encrypted(&data) => Err(CertError::EncryptedKey {
                path: path.to_path_buf(),
            }),
            None => Err(CertError::NoPrivateKey {
                path: path.to_path_buf(),
            }),
        }
    } else {
        PrivateKeyDer::try_from(data.as_slice())
            .map(|k| k.clone_key())
            .map_err(|_| CertError::NoPrivateKey {
                path: path.to_path_buf(),
            })
    }
}

/// Load a PEM certificate chain. The key is taken from `key_path` when given, otherwise
/// from `cert_path` itself if it contains one; a chain without a key loads with `key: None`.
/// The certificate the key belongs to becomes the leaf, whatever its position in the file.
pub fn load_pem(cert_path: &Path, key_path: Option<&Path>) -> Result<Certificate> {
    let data = read(cert_path)?;
    if !looks_like_pem(&data) {
        return Err(CertError::NotPemOrPfx {
            path: cert_path.to_path_buf(),
        });
    }
    load_pem_bytes(cert_path, &data, key_path)
}

pub(crate) fn load_pem_bytes(
    path: &Path,
    data: &[u8],
    key_path: Option<&Path>,
) -> Result<Certificate> {
    let s = sections(path, data)?;
    if s.certs.is_empty() {
        return Err(CertError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    let (keys, key_source) = match key_path {
        Some(kp) => (vec![read_key_file(kp)?], kp),
        None => {
            if s.keys.is_empty() && looks_encrypted(data) {
                return Err(CertError::EncryptedKey {
                    path: path.to_path_buf(),
                });
            }
            (s.keys, path)
        }
    };
    assemble(path, s.certs, keys, key_source)
}

/// PEM text of a certificate for export: the chain (leaf first) and, if the certificate
/// has one, its private key as PKCS#8 (`-----BEGIN PRIVATE KEY-----`).
pub fn to_pem(cert: &Certificate) -> Result<(String, Option<String>)> {
    let chain: String = cert
        .chain
        .iter()
        .map(|c| keys::pem_block("CERTIFICATE", c.as_ref()))
        .collect();
    let key = match &cert.key {
        Some(k) => {
            let pkcs8 = keys::to_pkcs8(k).map_err(|detail| CertError::UnsupportedKey {
                path: cert.source.clone(),
                detail,
            })?;
            Some(keys::pem_block("PRIVATE KEY", pkcs8.secret_pkcs8_der()))
        }
        None => None,
    };
    Ok((chain, key))
}

#[cfg(test)]
mod tests {
    use super::super::testutil;
    use super::*;
    use crate::certs::Thumbprint;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn pem(c: &CertificateDer<'_>) -> String {
        keys::pem_block("CERTIFICATE", c.as_ref())
    }

    #[test]
    fn combined_file_intermediate_first() {
        let dir = tempfile::tempdir().unwrap();
        let c = testutil::chain(&["site.test"]);
        let text = format!(
            "{}{}{}",
            pem(&c.intermediate),
            c.leaf_key.serialize_pem(),
            pem(&c.leaf)
        );
        let p = write(dir.path(), "site.pem", &text);
        let cert = load_pem(&p, None).unwrap();
        assert_eq!(cert.thumbprint, Thumbprint::of_der(c.leaf.as_ref()));
        assert_eq!(cert.chain, vec![c.leaf.clone(), c.intermediate.clone()]);
        assert!(cert.key.is_some());
        assert_eq!(cert.info.subject, "CN=site.test");
        assert_eq!(cert.info.issuer, "CN=Test Intermediate");
    }

    #[test]
    fn separate_key_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let c = testutil::chain(&["site.test"]);
        let p = write(
            dir.path(),
            "site.pem",
            &format!("{}{}", pem(&c.leaf), pem(&c.intermediate)),
        );
        let k = write(dir.path(), "site.key", &c.leaf_key.serialize_pem());
        let cert = load_pem(&p, Some(&k)).unwrap();
        let (chain, key) = to_pem(&cert).unwrap();
        let p2 = write(dir.path(), "again.pem", &format!("{chain}{}", key.unwrap()));
        let again = load_pem(&p2, None).unwrap();
        assert_eq!(again.chain, cert.chain);
        assert!(again.key.is_some());
    }

    #[test]
    fn chain_only_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let c = testutil::chain(&["site.test"]);
        let p = write(dir.path(), "chain.pem", &pem(&c.leaf));
        let cert = load_pem(&p, None).unwrap();
        assert!(cert.key.is_none());
        assert_eq!(cert.require_key().unwrap_err().netsh_code(), Some(1312));

        let other = testutil::chain(&["other.test"]);
        let k = write(dir.path(), "other.key", &other.leaf_key.serialize_pem());
        let e = load_pem(&p, Some(&k)).unwrap_err();
        assert!(matches!(e, CertError::KeyMismatch { .. }), "{e}");

        let junk = write(dir.path(), "junk.pem", "hello");
        assert!(matches!(
            load_pem(&junk, None).unwrap_err(),
            CertError::NotPemOrPfx { .. }
        ));

        let keyonly = write(dir.path(), "k.pem", &c.leaf_key.serialize_pem());
        assert!(is_key_only(std::fs::read(&keyonly).unwrap().as_slice()));
        assert!(matches!(
            load_pem(&keyonly, None).unwrap_err(),
            CertError::NoCertificate { .. }
        ));

        let enc = write(
            dir.path(),
            "enc.pem",
            &format!("{}-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", pem(&c.leaf)),
        );
        assert!(matches!(
            load_pem(&enc, None).unwrap_err(),
            CertError::EncryptedKey { .. }
        ));

        let broken = write(
            dir.path(),
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n",
        );
        assert!(matches!(
            load_pem(&broken, None).unwrap_err(),
            CertError::BadPem { .. }
        ));

        let missing = dir.path().join("missing.pem");
        let e = load_pem(&missing, None).unwrap_err();
        assert!(matches!(e, CertError::Read { .. }));
        assert!(e.to_string().contains("missing.pem"));
    }
}
