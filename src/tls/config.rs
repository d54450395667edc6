//! rustls `ServerConfig`s: one per binding (its certificate and flags), built when a
//! snapshot is built, never per handshake.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

use crate::certs::Certificate;
use crate::store::BindingFlags;

/// ALPN protocol ids, server preference order.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP11: &[u8] = b"http/1.1";
/// HTTP/3 over QUIC (RFC 9114), the only protocol a QUIC handshake offers.
pub const ALPN_H3: &[u8] = b"h3";

/// The one crypto provider: ring, with rustls's default (modern) cipher suites and
/// key exchange groups.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A `ServerConfig` serving `cert` with the binding's `flags`:
/// - TLS 1.2 and 1.3 only (`disablelegacytls` is therefore always in effect);
///   `disabletls12` / `disabletls13` drop one of them, both is an error;
/// - ALPN `h2`, `http/1.1`, or only `http/1.1` with `disablehttp2`;
/// - `clientcertnegotiation`: a client certificate is requested, not required;
/// - the server's cipher suite order wins (rustls's defaults: AES-256-GCM,
///   AES-128-GCM, ChaCha20-Poly1305; ECDHE only).
///
/// The certificate's chain is sent as given: its file's, completed from the store's
/// intermediates when the snapshot is built.
pub fn server_config(cert: &Certificate, flags: &BindingFlags) -> Result<ServerConfig, String> {
    let key = cert
        .key
        .as_ref()
        .ok_or_else(|| "the certificate has no private key".to_owned())?
        .clone_key();
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        match (flags.disabletls12, flags.disabletls13) {
            (true, true) => {
                return Err(
                    "both TLS 1.2 and TLS 1.3 are disabled (disabletls12 and disabletls13); \
                     no protocol is left"
                        .into(),
                )
            }
            (true, false) => vec![&rustls::version::TLS13],
            (false, true) => vec![&rustls::version::TLS12],
            (false, false) => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        };
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = if flags.clientcertnegotiation {
        builder.with_client_cert_verifier(Arc::new(NegotiateClientCert { provider }))
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(cert.chain.clone(), key)
        .map_err(|e| format!("rustls cannot use the certificate and key: {e}"))?;
    // Server cipher order, as Schannel does (and testssl.sh expects).
    config.ignore_client_order = true;
    config.alpn_protocols = if flags.disablehttp2 {
        vec![ALPN_HTTP11.to_vec()]
    } else {
        vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()]
    };
    Ok(config)
}

/// The rustls config of QUIC handshakes: TLS 1.3 only (QUIC has no other),
/// ALPN `h3`, no early data (0-RTT requests could be replayed, and a
/// replayed POST to an application is not harmless), and the certificate
/// from `resolver`, which picks it per handshake from the bindings as a TCP
/// handshake does (`super::quic`). Client certificates are not asked for:
/// `clientcertnegotiation` bindings are served over TCP only.
pub fn quic_server_config(
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.ignore_client_order = true;
    config.alpn_protocols = vec![ALPN_H3.to_vec()];
    config.max_early_data_size = 0;
    Ok(config)
}

/// A config whose handshakes always fail: no certificate resolves, so rustls answers
/// the ClientHello with a fatal alert. Used when no binding matches, or the binding
/// says `reject`.
pub fn refusing_config() -> Arc<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12]);
    match builder {
        Ok(b) => Arc::new(b.with_no_client_auth().with_cert_resolver(Arc::new(NoCert))),
        // The ring provider supports both versions; this cannot fail. Fall back to the
        // plain builder (which uses the process default provider) rather than panic.
        Err(_) => Arc::new(
            ServerConfig::builder()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(NoCert)),
        ),
    }
}

#[derive(Debug)]
struct NoCert;

impl ResolvesServerCert for NoCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        None
    }
}

/// `clientcertnegotiation=enable`: ask for a client certificate, accept the connection
/// without one. A certificate that is sent must prove possession of its key (the
/// handshake signature is checked); it is not checked against a trust store — as with
/// HTTP.sys, deciding whether to trust it is the application's business.
#[derive(Debug)]
struct NegotiateClientCert {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for NegotiateClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
