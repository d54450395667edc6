//! TLS-ALPN-01 answers (RFC 8737): a handshake that offers only the
//! `acme-tls/1` protocol for a name with an order in flight gets a
//! self-signed certificate for that name carrying the key authorization's
//! digest in the critical acmeIdentifier extension, and the connection ends
//! after the handshake.
//!
//! Why before the SSL binding lookup: the validation must reach the server
//! whatever is bound for the name (nothing yet, a hand-made binding, the
//! first-run certificate), and an ordinary handshake must never see the
//! challenge certificate — only `acme-tls/1` handshakes come here.
//!
//! Servers sharing `cert_dir` (behind one load balancer) place one order
//! between them, and the validation may reach any of them. So, as HTTP-01
//! tokens are, each answer is also written to the shared challenge folder
//! (`cert_dir/acme-challenges/NAME.tls-alpn-01`, the key authorization's
//! digest in hex — not secret: the validation server sees it in the clear
//! certificate); a challenge handshake for a name with no order in flight
//! here is answered from there, with a challenge certificate of this
//! server's own making for the same digest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// The ALPN protocol id of the challenge.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The ending of an answer's file in the shared challenge folder.
const SHARED_SUFFIX: &str = ".tls-alpn-01";

/// The challenge handshakes this server answers, by host name.
#[derive(Default)]
pub struct AlpnChallenges {
    live: RwLock<HashMap<String, Arc<ServerConfig>>>,
    /// The shared challenge folder, once the ACME manager gave it
    /// ([`AlpnChallenges::share_through`]).
    shared: RwLock<Option<PathBuf>>,
    /// Configs made for other servers' answers, by name, with their
    /// digest: a certificate is made once per answer, not per handshake.
    from_shared: RwLock<HashMap<String, SharedAnswer>>,
}

/// A config made for another server's answer, and the digest it is for.
type SharedAnswer = ([u8; 32], Arc<ServerConfig>);

impl std::fmt::Debug for AlpnChallenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlpnChallenges").finish_non_exhaustive()
    }
}

impl AlpnChallenges {
    /// Shares answers with the other servers using the same `cert_dir`:
    /// published ones are written to its challenge folder `dir`, and theirs
    /// are read from it. Called by the ACME manager (the TLS layer starts
    /// before it, and does not know where ACME keeps its files).
    pub fn share_through(&self, dir: &Path) {
        *self.shared.write().unwrap_or_else(|p| p.into_inner()) = Some(dir.to_owned());
    }

    /// The shared file of `name`'s answer, when answers are shared and the
    /// name cannot name a path outside the folder.
    fn shared_file(&self, name: &str) -> Option<PathBuf> {
        let dir = self
            .shared
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        is_file_name(name).then(|| dir.join(format!("{name}{SHARED_SUFFIX}")))
    }

    /// Starts answering `acme-tls/1` handshakes for `name` with a challenge
    /// certificate for `digest` (SHA-256 of the key authorization), here and
    /// (through the shared folder) in other servers sharing `cert_dir`.
    pub fn publish(&self, name: &str, digest: &[u8]) -> Result<(), String> {
        let name = name.to_ascii_lowercase();
        let config = challenge_config(&name, digest)?;
        self.live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone(), Arc::new(config));
        if let Some(path) = self.shared_file(&name) {
            let write = || -> std::io::Result<()> {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                crate::atomic_file::write_atomic(&path, hex::encode(digest).as_bytes(), false)
            };
            write().map_err(|e| {
                format!(
                    "cannot write {} for other servers sharing the certificate folder: {e}; \
                     let the server's user write there",
                    path.display()
                )
            })?;
        }
        Ok(())
    }

    /// Stops answering for `name` (its order is over).
    pub fn withdraw(&self, name: &str) {
        let name = name.to_ascii_lowercase();
        self.live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
        if let Some(path) = self.shared_file(&name) {
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(
                        "cannot remove the ACME challenge file {}: {e}; it is harmless, delete it by hand",
                        path.display()
                    );
                }
            }
        }
    }

    /// Another server's answer for `name`, from the shared folder. A small
    /// file read on the handshake's task: challenge handshakes are few
    /// (one per validation), and ordinary ones never come here.
    fn shared_answer(&self, name: &str) -> Option<Arc<ServerConfig>> {
        let path = self.shared_file(name)?;
        let digest = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| hex::decode(text.trim()).ok())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
        let mut cache = self.from_shared.write().unwrap_or_else(|p| p.into_inner());
        let Some(digest) = digest else {
            // Withdrawn (or never a digest): forget its certificate.
            cache.remove(name);
            return None;
        };
        if let Some((d, config)) = cache.get(name) {
            if *d == digest {
                return Some(config.clone());
            }
        }
        match challenge_config(name, &digest) {
            Ok(config) => {
                let config = Arc::new(config);
                cache.insert(name.to_owned(), (digest, config.clone()));
                Some(config)
            }
            Err(e) => {
                tracing::warn!(
                    name,
                    "ACME: cannot answer another server's TLS-ALPN-01 challenge: {e}"
                );
                None
            }
        }
    }

    /// The config for a handshake offering `alpn` with SNI `sni`: `Some`
    /// when it is a challenge handshake (then `Some(None)` when no order
    /// for the name is in flight), `None` for an ordinary handshake.
    pub fn select<'a>(
        &self,
        sni: Option<&str>,
        mut alpn: Option<impl Iterator<Item = &'a [u8]>>,
    ) -> Option<Option<Arc<ServerConfig>>> {
        // RFC 8737 §3: the validation offers acme-tls/1 and nothing else.
        let offered: Vec<&[u8]> = alpn.as_mut().map(|a| a.collect()).unwrap_or_default();
        if offered != [ACME_TLS_ALPN] {
            return None;
        }
        let config = sni.and_then(|name| {
            let name = name.to_ascii_lowercase();
            let live = self
                .live
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&name)
                .cloned();
            live.or_else(|| self.shared_answer(&name))
        });
        Some(config)
    }
}

/// Whether `name` (lower-case) can be a file name in the shared folder: a
/// DNS name's characters only, no leading dot, no `..`.
fn is_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// A rustls config that serves only the challenge certificate over
/// `acme-tls/1`.
fn challenge_config(name: &str, digest: &[u8]) -> Result<ServerConfig, String> {
    // rcgen asserts the length; say it instead of panicking.
    if digest.len() != 32 {
        return Err(format!(
            "the key authorization digest has {} bytes, not 32",
            digest.len()
        ));
    }
    let key = rcgen::KeyPair::generate().map_err(|e| format!("making the key: {e}"))?;
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(|e| format!("{name}: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("making the challenge certificate: {e}"))?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = super::config::provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| format!("rustls cannot use the challenge key: {e}"))?;
    // A resolver, not `with_single_cert`: that one checks the certificate
    // with webpki, which refuses the critical acmeIdentifier extension.
    let certified = Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing_key));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(certified)));
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    Ok(config)
}

/// Always the challenge certificate.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_acme_tls_handshakes_are_challenges() {
        let c = AlpnChallenges::default();
        let h2: &[&[u8]] = &[b"h2", b"http/1.1"];
        assert!(c
            .select(Some("a.example.net"), Some(h2.iter().copied()))
            .is_none());
        assert!(c
            .select(Some("a.example.net"), None::<std::iter::Empty<&[u8]>>)
            .is_none());
        let acme: &[&[u8]] = &[ACME_TLS_ALPN];
        // A challenge handshake with no order in flight: refused.
        assert!(matches!(
            c.select(Some("a.example.net"), Some(acme.iter().copied())),
            Some(None)
        ));
        c.publish("A.example.net", &[7u8; 32]).unwrap();
        assert!(matches!(
            c.select(Some("a.example.net"), Some(acme.iter().copied())),
            Some(Some(_))
        ));
        c.withdraw("a.example.net");
        assert!(matches!(
            c.select(Some("a.example.net"), Some(acme.iter().copied())),
            Some(None)
        ));
        assert!(c.publish("a.example.net", &[1u8; 5]).is_err());
    }

    #[test]
    fn answers_are_shared_through_the_certificate_folder() {
        let dir = tempfile::tempdir().unwrap();
        let a = AlpnChallenges::default();
        let b = AlpnChallenges::default();
        a.share_through(dir.path());
        b.share_through(dir.path());
        let acme: &[&[u8]] = &[ACME_TLS_ALPN];
        a.publish("A.example.net", &[7u8; 32]).unwrap();
        let file = dir.path().join("a.example.net.tls-alpn-01");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            hex::encode([7u8; 32])
        );
        // The other server answers it, with a certificate for the digest.
        let Some(Some(config)) = b.select(Some("a.example.net"), Some(acme.iter().copied())) else {
            panic!("b does not answer a's challenge");
        };
        // Made once per answer, not per handshake.
        let Some(Some(again)) = b.select(Some("a.example.net"), Some(acme.iter().copied())) else {
            panic!("b stopped answering");
        };
        assert!(Arc::ptr_eq(&config, &again));
        // A new answer (a new order) gets a new certificate.
        a.publish("a.example.net", &[8u8; 32]).unwrap();
        let Some(Some(third)) = b.select(Some("a.example.net"), Some(acme.iter().copied())) else {
            panic!("b stopped answering");
        };
        assert!(!Arc::ptr_eq(&config, &third));
        a.withdraw("a.example.net");
        assert!(!file.exists());
        assert!(matches!(
            b.select(Some("a.example.net"), Some(acme.iter().copied())),
            Some(None)
        ));
        // Names that would leave the folder are never looked up.
        for bad in ["../x", "a/b", ".hidden", "a..b"] {
            assert!(!is_file_name(bad), "{bad}");
        }
        // Without sharing, nothing is written.
        let c = AlpnChallenges::default();
        c.publish("c.example.net", &[1u8; 32]).unwrap();
        assert!(!dir.path().join("c.example.net.tls-alpn-01").exists());
    }
}
