//! Certificates: loading PEM / PFX, thumbprints, self-signed generation, validation warnings.
//!
//! A [`Certificate`] is a leaf certificate plus the rest of its chain, the private key when
//! there is one, the facts portshare shows ([`CertInfo`]) and the file it came from. It is
//! known by its [`Thumbprint`] (SHA-1 of the leaf DER), as in HTTP.sys.

use std::io;
use std::path::{Path, PathBuf};

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub mod ca;
mod chain;
pub mod commands;
#[cfg(test)]
mod fixture_tests;
mod info;
mod keys;
mod pem;
mod pfx;
mod selfsigned;
mod store;
mod thumbprint;
pub mod trust;
#[cfg(windows)]
mod trust_windows;
mod validate;

pub use chain::complete_chains;
pub use info::CertInfo;
pub use pem::{load_pem, to_pem};
pub use pfx::{load_pfx, to_pfx};
pub use selfsigned::{new_self_signed, DEFAULT_DAYS, MAX_DAYS};
pub use store::CertStore;
pub use thumbprint::{Thumbprint, ThumbprintError};
pub use validate::{validate, Warning};

/// A certificate as portshare holds it.
#[derive(Debug)]
pub struct Certificate {
    /// SHA-1 of the leaf certificate's DER.
    pub thumbprint: Thumbprint,
    /// Leaf first, then the rest of the chain in issuing order.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key (checked to belong to the leaf), if the file had one.
    pub key: Option<PrivateKeyDer<'static>>,
    pub info: CertInfo,
    /// The file it was loaded from (or will be written to).
    pub source: PathBuf,
}

impl Clone for Certificate {
    fn clone(&self) -> Self {
        Self {
            thumbprint: self.thumbprint,
            chain: self.chain.clone(),
            key: self.key.as_ref().map(PrivateKeyDer::clone_key),
            info: self.info.clone(),
            source: self.source.clone(),
        }
    }
}

impl Certificate {
    /// The private key, or the "no private key" error (netsh code 1312) naming the source.
    pub fn require_key(&self) -> Result<&PrivateKeyDer<'static>, CertError> {
        self.key.as_ref().ok_or_else(|| CertError::NoPrivateKey {
            path: self.source.clone(),
        })
    }
}

/// For a permission error on `path`: which user portshare runs as, whose the
/// file (or, when it does not exist, its folder) is, and the two fixes. The
/// usual cause is a `certs/` volume owned by the host user while the
/// container runs as another. Empty for other errors.
#[cfg(unix)]
fn access_advice(path: &Path, e: &io::Error) -> String {
    use std::os::unix::fs::MetadataExt;
    if e.kind() != io::ErrorKind::PermissionDenied {
        return String::new();
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let folder = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (what, meta) = match std::fs::metadata(path) {
        Ok(m) => ("the file", Some(m)),
        Err(_) => ("its folder", std::fs::metadata(folder).ok()),
    };
    let owner = match &meta {
        Some(m) => format!(
            "; {what} belongs to uid {} (mode {:04o})",
            m.uid(),
            m.mode() & 0o7777
        ),
        None => String::new(),
    };
    let run_as = match &meta {
        // Running as root is no advice to give.
        Some(m) if m.uid() != me && m.uid() != 0 => format!(
            ", or run portshare as uid {uid} (in a container: docker run --user {uid})",
            uid = m.uid()
        ),
        _ => String::new(),
    };
    let folder = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
    format!(
        " (portshare runs as uid {me}{owner}; give the folder to that user: \
         sudo chown -R {me} {folder} — for a container volume, on the host's folder{run_as})",
        folder = folder.display()
    )
}

#[cfg(not(unix))]
fn access_advice(_path: &Path, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::PermissionDenied {
        " (give the account portshare runs as read and write access to the certificate folder)"
            .to_owned()
    } else {
        String::new()
    }
}

/// What went wrong with a certificate file, and what to do about it. Every message names
/// the file.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{}: cannot read the file: {source}{}", path.display(), access_advice(path, source))]
    Read { path: PathBuf, source: io::Error },

    #[error("{}: cannot write the file: {source}{}", path.display(), access_advice(path, source))]
    Write { path: PathBuf, source: io::Error },

    #[error(
        "{}: not a PEM or PFX file (expected PEM text with a CERTIFICATE block, a DER .cer, \
         or a PKCS#12 .pfx/.p12)",
        path.display()
    )]
    NotPemOrPfx { path: PathBuf },

    #[error("{}: damaged PEM file: {detail}", path.display())]
    BadPem { path: PathBuf, detail: String },

    #[error("{}: the file contains no certificate", path.display())]
    NoCertificate { path: PathBuf },

    #[error("{}: a certificate in the file cannot be read: {detail}", path.display())]
    BadCertificate { path: PathBuf, detail: String },

    #[error(
        "{}: wrong password (put it in {}.password or pass --password)",
        path.display(),
        path.display()
    )]
    WrongPassword { path: PathBuf },

    #[error("{}: damaged PFX file: {detail}", path.display())]
    BadPfx { path: PathBuf, detail: String },

    #[error(
        "{}: unsupported PFX protection ({detail}); re-export it with AES-256 or TripleDES encryption",
        path.display()
    )]
    UnsupportedPfx { path: PathBuf, detail: String },

    #[error(
        "{}: the file contains no private key (export the certificate with its private key, \
         or put the key next to it as a .key file)",
        path.display()
    )]
    NoPrivateKey { path: PathBuf },

    #[error(
        "{}: the private key does not belong to the certificate (key from {}); \
         use the key that was generated with this certificate",
        path.display(),
        key_path.display()
    )]
    KeyMismatch { path: PathBuf, key_path: PathBuf },

    #[error("{}: unsupported key algorithm: {detail}", path.display())]
    UnsupportedKey { path: PathBuf, detail: String },

    #[error(
        "{}: the private key is encrypted; decrypt it first \
         (openssl pkey -in KEY -out KEY.plain) or import a password-protected PFX instead",
        path.display()
    )]
    EncryptedKey { path: PathBuf },

    #[error(
        "{}: no certificate with thumbprint {thumbprint} (see `portshare cert list`)",
        dir.display()
    )]
    NotFound {
        dir: PathBuf,
        thumbprint: Thumbprint,
    },

    #[error("cannot create the certificate: {detail}")]
    Generate { detail: String },
}

impl CertError {
    /// The Windows error code `netsh http add sslcert` reports for this problem, if it has
    /// one: 1312 ("A specified logon session does not exist") when the certificate has no
    /// private key, or is not in the store at all.
    pub fn netsh_code(&self) -> Option<u32> {
        match self {
            CertError::NoPrivateKey { .. } | CertError::NotFound { .. } => {
                Some(crate::winerror::ERROR_NO_SUCH_LOGON_SESSION)
            }
            _ => None,
        }
    }

    /// The file (or store directory) the error is about.
    pub fn path(&self) -> Option<&Path> {
        match self {
            CertError::Read { path, .. }
            | CertError::Write { path, .. }
            | CertError::NotPemOrPfx { path }
            | CertError::BadPem { path, .. }
            | CertError::NoCertificate { path }
            | CertError::BadCertificate { path, .. }
            | CertError::WrongPassword { path }
            | CertError::BadPfx { path, .. }
            | CertError::UnsupportedPfx { path, .. }
            | CertError::NoPrivateKey { path }
            | CertError::KeyMismatch { path, .. }
            | CertError::UnsupportedKey { path, .. }
            | CertError::EncryptedKey { path } => Some(path),
            CertError::NotFound { dir, .. } => Some(dir),
            CertError::Generate { .. } => None,
        }
    }
}

pub type Result<T, E = CertError> = std::result::Result<T, E>;

/// Load a certificate file of any supported kind, deciding by content rather than name:
/// PEM text (key in the file or in `key_path`), a single DER certificate (`.cer`), or
/// PKCS#12 (`password` used only for PFX).
pub fn load(path: &Path, key_path: Option<&Path>, password: &str) -> Result<Certificate> {
    let data = read(path)?;
    load_bytes(path, &data, key_path, password)
}

pub(crate) fn load_bytes(
    path: &Path,
    data: &[u8],
    key_path: Option<&Path>,
    password: &str,
) -> Result<Certificate> {
    if pem::looks_like_pem(data) {
        pem::load_pem_bytes(path, data, key_path)
    } else if info::parse(data).is_ok() {
        let key = match key_path {
            Some(kp) => Some(pem::read_key_file(kp)?),
            None => None,
        };
        let key_source = key_path.unwrap_or(path);
        assemble(
            path,
            vec![CertificateDer::from(data.to_vec())],
            key.into_iter().collect(),
            key_source,
        )
    } else {
        pfx::load_pfx_bytes(path, data, password)
    }
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Build a [`Certificate`] from the certificates and keys found in one file (plus an
/// optional separate key file): choose the leaf, order the chain, check the key.
///
/// Leaf choice: the certificate a key belongs to; without a key, the certificate that
/// issued none of the others (files made "intermediate first, leaf last" are common).
pub(crate) fn assemble(
    path: &Path,
    certs: Vec<CertificateDer<'static>>,
    keys: Vec<PrivateKeyDer<'static>>,
    key_source: &Path,
) -> Result<Certificate> {
    if certs.is_empty() {
        return Err(CertError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    // Drop exact duplicates, keep file order.
    let mut unique: Vec<CertificateDer<'static>> = Vec::with_capacity(certs.len());
    for c in certs {
        if !unique.iter().any(|u| u.as_ref() == c.as_ref()) {
            unique.push(c);
        }
    }
    let certs = unique;
    let parsed = certs
        .iter()
        .map(|c| info::parse(c.as_ref()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|detail| CertError::BadCertificate {
            path: path.to_path_buf(),
            detail,
        })?;

    let (leaf_idx, key) = if keys.is_empty() {
        let idx = (0..parsed.len())
            .find(|&i| {
                !(0..parsed.len()).any(|j| j != i && info::issued_by(&parsed[j], &parsed[i]))
            })
            .unwrap_or(0);
        (idx, None)
    } else {
        let mut unsupported = None;
        let mut found = None;
        'keys: for key in keys {
            let spki = match keys::public_key_spki(&key) {
                Ok(s) => s,
                Err(detail) => {
                    unsupported.get_or_insert(detail);
                    continue;
                }
            };
            for (i, p) in parsed.iter().enumerate() {
                if p.public_key().raw == spki.as_slice() {
                    found = Some((i, key));
                    break 'keys;
                }
            }
        }
        match (found, unsupported) {
            (Some((i, k)), _) => (i, Some(k)),
            (None, Some(detail)) => {
                return Err(CertError::UnsupportedKey {
                    path: key_source.to_path_buf(),
                    detail,
                })
            }
            (None, None) => {
                return Err(CertError::KeyMismatch {
                    path: path.to_path_buf(),
                    key_path: key_source.to_path_buf(),
                })
            }
        }
    };

    // Leaf, then follow issuers through the file; certificates not on the path go last in
    // file order (they are sent too, as the file asked).
    let mut order = vec![leaf_idx];
    loop {
        let cur = order[order.len() - 1];
        if info::is_self_issued(&parsed[cur]) {
            break;
        }
        match (0..parsed.len())
            .find(|&j| !order.contains(&j) && info::issued_by(&parsed[cur], &parsed[j]))
        {
            Some(j) => order.push(j),
            None => break,
        }
    }
    for i in 0..parsed.len() {
        if !order.contains(&i) {
            order.push(i);
        }
    }

    let info = CertInfo::from_x509(&parsed[leaf_idx]);
    let chain: Vec<CertificateDer<'static>> = order.iter().map(|&i| certs[i].clone()).collect();
    Ok(Certificate {
        thumbprint: Thumbprint::of_der(chain[0].as_ref()),
        chain,
        key,
        info,
        source: path.to_path_buf(),
    })
}

#[cfg(test)]
pub(crate) mod testutil {
    //! rcgen-made certificates for unit tests.
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    pub struct Chain {
        pub root: CertificateDer<'static>,
        pub intermediate: CertificateDer<'static>,
        pub leaf: CertificateDer<'static>,
        pub leaf_key: KeyPair,
    }

    impl Chain {
        pub fn key(&self) -> PrivateKeyDer<'static> {
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.serialize_der()))
        }
    }

    fn ca_params(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    }

    pub fn chain(names: &[&str]) -> Chain {
        let root =
            CertifiedIssuer::self_signed(ca_params("Test Root"), KeyPair::generate().unwrap())
                .unwrap();
        let inter_key = KeyPair::generate().unwrap();
        let inter =
            CertifiedIssuer::signed_by(ca_params("Test Intermediate"), inter_key, &root).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, names[0]);
        let leaf = p.signed_by(&leaf_key, &inter).unwrap();
        Chain {
            root: root.der().clone(),
            intermediate: inter.der().clone(),
            leaf: leaf.der().clone(),
            leaf_key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assemble_orders_leaf_first_from_any_order() {
        let c = testutil::chain(&["site.test"]);
        let p = Path::new("x.pem");
        let shuffled = vec![c.intermediate.clone(), c.root.clone(), c.leaf.clone()];
        let want = vec![c.leaf.clone(), c.intermediate.clone(), c.root.clone()];
        // Without a key: the certificate that issued nothing is the leaf.
        let got = assemble(p, shuffled.clone(), vec![], p).unwrap();
        assert_eq!(got.chain, want);
        assert!(got.key.is_none());
        assert_eq!(got.thumbprint, Thumbprint::of_der(c.leaf.as_ref()));
        // With a key: the certificate the key belongs to.
        let got = assemble(p, shuffled, vec![c.key()], p).unwrap();
        assert_eq!(got.chain, want);
        assert!(got.key.is_some());
        assert_eq!(got.require_key().map(|_| ()).ok(), Some(()));
    }

    #[test]
    fn assemble_mismatch_and_empty() {
        let a = testutil::chain(&["a.test"]);
        let b = testutil::chain(&["b.test"]);
        let p = Path::new("x.pem");
        let e = assemble(p, vec![a.leaf.clone()], vec![b.key()], Path::new("x.key")).unwrap_err();
        assert!(matches!(e, CertError::KeyMismatch { .. }), "{e}");
        assert!(e.to_string().contains("does not belong"), "{e}");
        let e = assemble(p, vec![], vec![], p).unwrap_err();
        assert!(matches!(e, CertError::NoCertificate { .. }));
    }

    #[test]
    fn no_key_is_netsh_1312() {
        let c = testutil::chain(&["a.test"]);
        let p = Path::new("certs/site.pem");
        let cert = assemble(p, vec![c.leaf.clone()], vec![], p).unwrap();
        let e = cert.require_key().unwrap_err();
        assert_eq!(e.netsh_code(), Some(1312));
        assert!(e
            .to_string()
            .starts_with("certs/site.pem: the file contains no private key"));
    }

    #[test]
    fn clone_keeps_key() {
        let c = testutil::chain(&["a.test"]);
        let p = Path::new("x.pem");
        let cert = assemble(p, vec![c.leaf.clone()], vec![c.key()], p).unwrap();
        let copy = cert.clone();
        assert_eq!(
            copy.key.as_ref().map(|k| k.secret_der().to_vec()),
            cert.key.as_ref().map(|k| k.secret_der().to_vec())
        );
    }
}
