//! The certificate store directory (`certs/`): every PEM/CER/PFX file in it, known by
//! thumbprint. `import` writes `<thumbprint>.pem` (chain) and `<thumbprint>.key`
//! (PKCS#8, mode 0600) atomically.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{pem, pfx, read, to_pem, CertError, Certificate, Result, Thumbprint};

/// Operations on a store directory. Stateless: every call reads the directory afresh.
#[derive(Debug, Clone, Copy, Default)]
pub struct CertStore;

enum Kind {
    Pem,
    Pfx,
}

fn kind_of(path: &Path) -> Option<Kind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "pem" | "crt" | "cer" => Some(Kind::Pem),
        "pfx" | "p12" => Some(Kind::Pfx),
        _ => None,
    }
}

/// `NAME.key` next to `NAME.pem`.
fn sibling_key(path: &Path) -> PathBuf {
    path.with_extension("key")
}

/// `NAME.pfx.password` next to `NAME.pfx`.
fn sibling_password(path: &Path) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(".password");
    PathBuf::from(name)
}

/// The password for a PFX: its `.password` file without the trailing newline, else empty.
fn password_for(path: &Path) -> Result<String> {
    let pw_path = sibling_password(path);
    match fs::read(&pw_path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            Ok(text.trim_end_matches(['\n', '\r']).to_string())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(CertError::Read {
            path: pw_path,
            source,
        }),
    }
}

/// Load one store file. `Ok(None)` for files that are not certificates (key-only PEM).
fn load_file(path: &Path, password: Option<&str>) -> Result<Option<Certificate>> {
    let data = read(path)?;
    let is_pfx = match kind_of(path) {
        Some(Kind::Pfx) => true,
        Some(Kind::Pem) => false,
        // Unknown extension (import of an arbitrary file): decide by content.
        None => !pem::looks_like_pem(&data) && super::info::parse(&data).is_err(),
    };
    if is_pfx {
        let pw = match password {
            Some(p) => p.to_string(),
            None => password_for(path)?,
        };
        return pfx::load_pfx_bytes(path, &data, &pw).map(Some);
    }
    if pem::is_key_only(&data) {
        return Ok(None);
    }
    let key = sibling_key(path);
    let inline_key = pem::looks_like_pem(&data) && pem::has_key(&data);
    let key_path = (!inline_key && key != path && key.is_file()).then_some(key.as_path());
    super::load_bytes(path, &data, key_path, password.unwrap_or("")).map(Some)
}

/// Write via a temporary file and rename; `private` files are 0600 on Unix.
fn write_atomic(path: &Path, data: &[u8], private: bool) -> Result<()> {
    crate::atomic_file::write_atomic(path, data, private).map_err(|source| CertError::Write {
        path: path.to_path_buf(),
        source,
    })
}

impl CertStore {
    /// Load every certificate file in `dir`: `*.pem`/`*.crt`/`*.cer` (key in the file or in
    /// the sibling `NAME.key`) and `*.pfx`/`*.p12` (password from `NAME.pfx.password`, else
    /// empty). Key-only PEM files, `*.key`, `*.json`, `*.password` and other files are
    /// skipped. Files that fail to load come back as errors; the scan itself never fails.
    /// Certificates are deduplicated by thumbprint (one with a private key wins).
    pub fn scan(dir: &Path) -> (Vec<Certificate>, Vec<CertError>) {
        let (all, errors) = Self::scan_all(dir);
        let mut out: Vec<Certificate> = Vec::with_capacity(all.len());
        let mut index: HashMap<Thumbprint, usize> = HashMap::new();
        for cert in all {
            match index.get(&cert.thumbprint) {
                Some(&i) => {
                    if out[i].key.is_none() && cert.key.is_some() {
                        out[i] = cert;
                    }
                }
                None => {
                    index.insert(cert.thumbprint, out.len());
                    out.push(cert);
                }
            }
        }
        (out, errors)
    }

    /// Every certificate file, without deduplication, in file-name order.
    fn scan_all(dir: &Path) -> (Vec<Certificate>, Vec<CertError>) {
        let mut certs = Vec::new();
        let mut errors = Vec::new();
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return (certs, errors),
            Err(source) => {
                errors.push(CertError::Read {
                    path: dir.to_path_buf(),
                    source,
                });
                return (certs, errors);
            }
        };
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => paths.push(e.path()),
                Err(source) => errors.push(CertError::Read {
                    path: dir.to_path_buf(),
                    source,
                }),
            }
        }
        paths.sort();
        for path in paths {
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_none_or(|n| n.starts_with('.'));
            if hidden || kind_of(&path).is_none() || !path.is_file() {
                continue;
            }
            match load_file(&path, None) {
                Ok(Some(c)) => certs.push(c),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        (certs, errors)
    }

    /// The certificate with this thumbprint, or [`CertError::NotFound`] (netsh 1312).
    pub fn find(dir: &Path, thumbprint: &Thumbprint) -> Result<Certificate> {
        Self::scan(dir)
            .0
            .into_iter()
            .find(|c| c.thumbprint == *thumbprint)
            .ok_or_else(|| CertError::NotFound {
                dir: dir.to_path_buf(),
                thumbprint: *thumbprint,
            })
    }

    /// Import a PEM/CER/PFX file into the store. PFX password: `password`, else the file's
    /// `.password` sibling, else empty; PEM key: in the file, else the `NAME.key` sibling.
    /// The certificate must have a private key that belongs to it. Writes
    /// `<thumbprint>.pem` and `<thumbprint>.key` and returns the stored certificate
    /// (`source` = the new `.pem`). Warnings are for the caller: see [`super::validate`].
    ///
    /// A CA certificate without a key (an intermediate, e.g. `ca2.cer`) is kept as
    /// `<thumbprint>.pem` alone: it completes the chains of other certificates
    /// ([`super::complete_chains`]) as Windows' intermediate store does, and cannot be
    /// bound. Re-importing a certificate that is already in the store with its chain
    /// from a file with the leaf alone keeps the stored chain.
    pub fn import(dir: &Path, file: &Path, password: Option<&str>) -> Result<Certificate> {
        let mut cert = load_file(file, password)?.ok_or_else(|| CertError::NoCertificate {
            path: file.to_path_buf(),
        })?;
        if let Some(old) = Self::scan(dir)
            .0
            .into_iter()
            .find(|c| c.thumbprint == cert.thumbprint)
        {
            if cert.chain.len() == 1 && old.chain.len() > 1 {
                cert.chain = old.chain;
            }
        }
        if cert.key.is_none() && cert.info.is_ca {
            return Self::save_without_key(dir, &cert);
        }
        cert.require_key()?;
        Self::save(dir, &cert)
    }

    /// A key-less CA certificate as `<thumbprint>.pem`.
    fn save_without_key(dir: &Path, cert: &Certificate) -> Result<Certificate> {
        let (chain, _) = to_pem(cert)?;
        fs::create_dir_all(dir).map_err(|source| CertError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let pem_path = dir.join(format!("{}.pem", cert.thumbprint));
        write_atomic(&pem_path, chain.as_bytes(), false)?;
        let mut stored = cert.clone();
        stored.source = pem_path;
        Ok(stored)
    }

    /// Write a certificate (with its key) into the store as `<thumbprint>.pem` +
    /// `<thumbprint>.key`; used by `import` and for newly generated certificates.
    pub fn save(dir: &Path, cert: &Certificate) -> Result<Certificate> {
        cert.require_key()?;
        let (chain, key) = to_pem(cert)?;
        let key = key.ok_or_else(|| CertError::NoPrivateKey {
            path: cert.source.clone(),
        })?;
        fs::create_dir_all(dir).map_err(|source| CertError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let pem_path = dir.join(format!("{}.pem", cert.thumbprint));
        let key_path = dir.join(format!("{}.key", cert.thumbprint));
        // Key first, so a concurrent scan never sees the chain without its key.
        write_atomic(&key_path, key.as_bytes(), true)?;
        write_atomic(&pem_path, chain.as_bytes(), false)?;
        let mut stored = cert.clone();
        stored.source = pem_path;
        Ok(stored)
    }

    /// Remove every file in the store that holds the certificate with this thumbprint,
    /// with its `.key` / `.password` sibling. Returns the removed paths.
    pub fn delete(dir: &Path, thumbprint: &Thumbprint) -> Result<Vec<PathBuf>> {
        let (all, _) = Self::scan_all(dir);
        let mut targets: Vec<PathBuf> = Vec::new();
        for cert in all.iter().filter(|c| c.thumbprint == *thumbprint) {
            targets.push(cert.source.clone());
            let extra = match kind_of(&cert.source) {
                Some(Kind::Pfx) => sibling_password(&cert.source),
                _ => sibling_key(&cert.source),
            };
            targets.push(extra);
        }
        // The store's own names, even if the chain file no longer loads.
        targets.push(dir.join(format!("{thumbprint}.pem")));
        targets.push(dir.join(format!("{thumbprint}.key")));
        let mut removed = Vec::new();
        for t in targets {
            if removed.contains(&t) || !t.is_file() {
                continue;
            }
            fs::remove_file(&t).map_err(|source| CertError::Write {
                path: t.clone(),
                source,
            })?;
            removed.push(t);
        }
        if removed.is_empty() {
            return Err(CertError::NotFound {
                dir: dir.to_path_buf(),
                thumbprint: *thumbprint,
            });
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{new_self_signed, testutil, to_pfx};
    use super::*;

    fn pem_of(c: &rustls_pki_types::CertificateDer<'_>) -> String {
        super::super::keys::pem_block("CERTIFICATE", c.as_ref())
    }

    #[test]
    fn scan_mixed_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = testutil::chain(&["a.test"]);
        // PEM + sibling key
        fs::write(d.join("a.pem"), pem_of(&a.leaf) + &pem_of(&a.intermediate)).unwrap();
        fs::write(d.join("a.key"), a.leaf_key.serialize_pem()).unwrap();
        // The same certificate again, chain only: deduplicated, the keyed one wins.
        fs::write(d.join("a-copy.crt"), pem_of(&a.leaf)).unwrap();
        // PFX with password file (trailing newline trimmed)
        let b = new_self_signed(&["b.test".into()], 30).unwrap();
        fs::write(d.join("b.pfx"), to_pfx(&b, "pw").unwrap()).unwrap();
        fs::write(d.join("b.pfx.password"), "pw\r\n").unwrap();
        // PFX without password file and a non-empty password: an error, not a failed scan.
        let c = new_self_signed(&["c.test".into()], 30).unwrap();
        fs::write(d.join("c.p12"), to_pfx(&c, "other").unwrap()).unwrap();
        // Key-only PEM, JSON, junk with a certificate extension, DER .cer
        fs::write(d.join("lonely.pem"), a.leaf_key.serialize_pem()).unwrap();
        fs::write(d.join("sslcert.json"), "{}").unwrap();
        fs::write(d.join("junk.cer"), "junk").unwrap();
        let e = new_self_signed(&["e.test".into()], 30).unwrap();
        fs::write(d.join("e.cer"), e.chain[0].as_ref()).unwrap();

        let (certs, errors) = CertStore::scan(d);
        let thumbs: Vec<Thumbprint> = certs.iter().map(|c| c.thumbprint).collect();
        assert_eq!(certs.len(), 3, "{thumbs:?} {errors:?}");
        let ca = certs
            .iter()
            .find(|c| c.info.subject == "CN=a.test")
            .unwrap();
        assert!(ca.key.is_some());
        assert_eq!(ca.chain.len(), 2);
        assert!(certs
            .iter()
            .any(|c| c.thumbprint == b.thumbprint && c.key.is_some()));
        assert!(certs
            .iter()
            .any(|c| c.thumbprint == e.thumbprint && c.key.is_none()));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors
            .iter()
            .any(|e| matches!(e, CertError::WrongPassword { .. })));
        assert!(errors
            .iter()
            .any(|e| matches!(e, CertError::NotPemOrPfx { .. })));

        // Missing directory: empty, no error.
        let (c, e) = CertStore::scan(&d.join("nope"));
        assert!(c.is_empty() && e.is_empty());
    }

    #[test]
    fn import_find_delete() {
        let src = tempfile::tempdir().unwrap();
        let store = tempfile::tempdir().unwrap();
        let store_dir = store.path().join("certs");
        let cert = new_self_signed(&["site.test".into()], 30).unwrap();
        let pfx_path = src.path().join("site.pfx");
        fs::write(&pfx_path, to_pfx(&cert, "secret").unwrap()).unwrap();

        let e = CertStore::import(&store_dir, &pfx_path, Some("wrong")).unwrap_err();
        assert!(matches!(e, CertError::WrongPassword { .. }));

        let stored = CertStore::import(&store_dir, &pfx_path, Some("secret")).unwrap();
        assert_eq!(stored.thumbprint, cert.thumbprint);
        let pem = store_dir.join(format!("{}.pem", cert.thumbprint));
        let key = store_dir.join(format!("{}.key", cert.thumbprint));
        assert_eq!(stored.source, pem);
        assert!(pem.is_file() && key.is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&key).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let key_text = fs::read_to_string(&key).unwrap();
        assert!(key_text.starts_with("-----BEGIN PRIVATE KEY-----"));
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(&store_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");

        let found = CertStore::find(&store_dir, &cert.thumbprint).unwrap();
        assert!(found.key.is_some());

        // Importing twice is harmless.
        CertStore::import(&store_dir, &pfx_path, Some("secret")).unwrap();

        let removed = CertStore::delete(&store_dir, &cert.thumbprint).unwrap();
        assert_eq!(removed.len(), 2);
        let e = CertStore::delete(&store_dir, &cert.thumbprint).unwrap_err();
        assert_eq!(e.netsh_code(), Some(1312));
        assert!(CertStore::find(&store_dir, &cert.thumbprint).is_err());
    }

    #[test]
    fn import_requires_key() {
        let src = tempfile::tempdir().unwrap();
        let cert = new_self_signed(&["site.test".into()], 30).unwrap();
        let p = src.path().join("public.cer");
        fs::write(&p, cert.chain[0].as_ref()).unwrap();
        let e = CertStore::import(&src.path().join("store"), &p, None).unwrap_err();
        assert!(matches!(e, CertError::NoPrivateKey { .. }), "{e}");
        assert_eq!(e.netsh_code(), Some(1312));
    }

    #[test]
    fn delete_removes_dropped_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cert = new_self_signed(&["site.test".into()], 30).unwrap();
        fs::write(d.join("site.pfx"), to_pfx(&cert, "pw").unwrap()).unwrap();
        fs::write(d.join("site.pfx.password"), "pw\n").unwrap();
        let removed = CertStore::delete(d, &cert.thumbprint).unwrap();
        assert_eq!(
            removed,
            vec![d.join("site.pfx"), d.join("site.pfx.password")]
        );
    }
}
