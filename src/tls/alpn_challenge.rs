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

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// The ALPN protocol id of the challenge.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The challenge handshakes this server answers, by host name.
#[derive(Default)]
pub struct AlpnChallenges {
    live: RwLock<HashMap<String, Arc<ServerConfig>>>,
}

impl std::fmt::Debug for AlpnChallenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlpnChallenges").finish_non_exhaustive()
    }
}

impl AlpnChallenges {
    /// Starts answering `acme-tls/1` handshakes for `name` with a challenge
    /// certificate for `digest` (SHA-256 of the key authorization).
    pub fn publish(&self, name: &str, digest: &[u8]) -> Result<(), String> {
        let config = challenge_config(name, digest)?;
        self.live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_ascii_lowercase(), Arc::new(config));
        Ok(())
    }

    /// Stops answering for `name` (its order is over).
    pub fn withdraw(&self, name: &str) {
        self.live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name.to_ascii_lowercase());
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
            self.live
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&name.to_ascii_lowercase())
                .cloned()
        });
        Some(config)
    }
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
}
