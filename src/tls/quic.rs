//! TLS for QUIC (HTTP/3): the same certificates, chosen in the same HTTP.sys
//! order from the same snapshot as TCP handshakes, following the same hot
//! reloads.
//!
//! quinn runs the handshake itself and gives rustls one `ServerConfig`, so
//! the choice that [`super::Tls::accept`] makes after reading the
//! ClientHello is made here inside a certificate resolver instead: it calls
//! [`Snapshot::select`](super::snapshot::Snapshot::select) and hands the
//! ClientHello on to the chosen binding's own resolver, so the certificate
//! and chain are exactly those a TCP handshake would send. The local address
//! is not part of a ClientHello, so every QUIC connection gets a config whose
//! resolver knows its addresses: a clone of one template (cheap: a few
//! `Arc`s and small vectors; the session cache is shared).
//!
//! A binding with `disablequic` (or `disabletls13`: QUIC is TLS 1.3 only)
//! resolves no certificate, so the handshake fails, as HTTP.sys does not
//! serve QUIC for it either; [`QuicTls::advertised`] tells the TCP side not to
//! advertise HTTP/3 (`Alt-Svc`) on connections to such a binding.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::logs::{HttpErrRecord, LineSink};

use super::snapshot::{Selection, Served};
use super::watch::Reloader;
use super::{Tls, REASON_BAD_BINDING, REASON_NO_BINDING, REASON_REJECTED};

/// What QUIC handshakes need from [`Tls`]; one per HTTP/3 endpoint.
pub struct QuicTls {
    template: ServerConfig,
    reloader: Arc<Reloader>,
    httperr: LineSink,
}

impl Tls {
    /// The TLS side of QUIC endpoints, sharing this `Tls`'s certificates.
    pub fn quic(&self) -> Result<QuicTls, rustls::Error> {
        let refusing = Arc::new(QuicResolver {
            reloader: self.reloader.clone(),
            httperr: self.httperr.clone(),
            addrs: None,
        });
        let mut template = super::config::quic_server_config(refusing)?;
        // The certificate is chosen per handshake here, so QUIC sessions
        // are bound to QUIC, not to a certificate: a QUIC client may resume
        // across a certificate renewal (TCP clients start afresh).
        self.reloader
            .snapshot
            .load()
            .resumption()
            .apply(&mut template, b"quic");
        Ok(QuicTls {
            template,
            reloader: self.reloader.clone(),
            httperr: self.httperr.clone(),
        })
    }
}

impl QuicTls {
    /// The config of an endpoint before it knows a connection's addresses:
    /// every handshake with it fails (each connection gets its own config
    /// from [`QuicTls::handshake_config`]).
    pub fn endpoint_config(&self) -> Arc<ServerConfig> {
        Arc::new(self.template.clone())
    }

    /// The config for one connection from `peer` to `local`: its resolver
    /// picks the binding for `local` and the ClientHello's SNI name.
    pub fn handshake_config(&self, local: SocketAddr, peer: SocketAddr) -> Arc<ServerConfig> {
        let mut config = self.template.clone();
        config.cert_resolver = Arc::new(QuicResolver {
            reloader: self.reloader.clone(),
            httperr: self.httperr.clone(),
            addrs: Some((local, peer)),
        });
        Arc::new(config)
    }

    /// Whether a TCP connection to `local` with this SNI name may be told
    /// about HTTP/3: its binding would also serve a QUIC handshake.
    pub fn advertised(&self, local: SocketAddr, sni: Option<&str>) -> bool {
        let snapshot = self.reloader.snapshot.load();
        matches!(snapshot.select(local, sni), Selection::Serve(_, served) if quic_allowed(served))
    }
}

fn quic_allowed(served: &Served) -> bool {
    let flags = served.flags();
    !flags.disablequic && !flags.disabletls13
}

/// Picks a QUIC connection's certificate per handshake.
struct QuicResolver {
    reloader: Arc<Reloader>,
    httperr: LineSink,
    /// (local, peer); `None` refuses every handshake.
    addrs: Option<(SocketAddr, SocketAddr)>,
}

impl fmt::Debug for QuicResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicResolver")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for QuicResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let (local, peer) = self.addrs?;
        let snapshot = self.reloader.snapshot.load();
        let refused = match snapshot.select(local, hello.server_name()) {
            Selection::Serve(key, served) if quic_allowed(served) => {
                tracing::trace!(%peer, sni = ?hello.server_name(), binding = %key, thumbprint = %served.thumbprint, "QUIC: TLS binding chosen");
                // The binding's own resolver: the same certificate and
                // chain a TCP handshake gets.
                return served.config.cert_resolver.resolve(hello);
            }
            Selection::Serve(key, _) => {
                // Configured, not a failure: no httperr line.
                tracing::debug!(%peer, sni = ?hello.server_name(), binding = %key, "QUIC handshake refused: the binding has disablequic (or disabletls13)");
                return None;
            }
            Selection::Reject(_) => REASON_REJECTED,
            Selection::Broken(..) => REASON_BAD_BINDING,
            Selection::NoBinding => REASON_NO_BINDING,
        };
        tracing::debug!(%peer, %local, sni = ?hello.server_name(), reason = refused, "QUIC handshake refused");
        self.httperr
            .send(HttpErrRecord::connection(peer, local, refused).line());
        None
    }
}
