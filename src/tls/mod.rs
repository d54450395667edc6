//! TLS termination: picks the certificate per handshake from the SSL binding table, in
//! HTTP.sys's lookup order, and reloads it when the store changes.
//!
//! A handshake reads the ClientHello first (`LazyConfigAcceptor`), chooses the binding
//! from the local address and the SNI name ([`snapshot::Snapshot::select`]) and
//! continues with that binding's prebuilt `ServerConfig` — flags such as
//! `disablehttp2` or `disabletls13` are config-level settings in rustls, so every
//! binding has its own. Everything a handshake needs is an immutable snapshot behind an
//! `ArcSwap`; handshakes never lock.
//!
//! Failed handshakes that are the server's doing write an httperr line (HTTP.sys has no
//! such reasons; these are portshare's, in its naming style):
//! - `SSL_NoBinding` — no binding matches the local address / SNI name;
//! - `SSL_Rejected` — the binding has `reject=enable`;
//! - `SSL_BadBinding` — the binding's certificate cannot be used (not in the store, no
//!   private key, …) and no earlier certificate is in service for it.
//!
//! The client gets a fatal alert in each case (rustls sends `access_denied` when no
//! certificate resolves). Handshakes that fail on the client's side (bad messages,
//! unknown CA alert, timeout) are logged at debug level only.

pub mod alpn_challenge;
mod config;
pub mod devcerts;
mod firstrun;
mod quic;
pub mod resumption;
mod snapshot;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::Acceptor;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use crate::config::Settings;
use crate::logs::{HttpErrRecord, LineSink};

use snapshot::Selection;
use watch::Reloader;

pub use quic::QuicTls;
pub use watch::{DEBOUNCE, POLL_INTERVAL};

/// The application id portshare puts on the bindings it creates itself (first run).
pub const PORTSHARE_APPID: &str = crate::store::FIRSTRUN_APPID;

/// Upper bound for a TLS handshake (the HeaderWait timer, if shorter, applies instead).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// httperr reasons for handshakes portshare refuses.
pub const REASON_NO_BINDING: &str = "SSL_NoBinding";
pub const REASON_REJECTED: &str = "SSL_Rejected";
pub const REASON_BAD_BINDING: &str = "SSL_BadBinding";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Certificate(#[from] crate::certs::CertError),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot create the certificate folder {}: {source}", path.display())]
    CertDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("[param] session_tickets: {0}")]
    Tickets(#[from] resumption::TicketError),
}

/// The TLS side of every HTTPS listener.
pub struct Tls {
    reloader: Arc<Reloader>,
    refuse: Arc<ServerConfig>,
    httperr: LineSink,
    handshake_timeout: Duration,
    /// Wakes the reload task (`reload`, and the notify watcher holds a clone).
    reload_tx: mpsc::UnboundedSender<()>,
    /// TLS-ALPN-01 answers, looked at before the bindings.
    alpn: Arc<alpn_challenge::AlpnChallenges>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Tls {
    /// Loads certificates and bindings (creating the first-run localhost
    /// certificate when needed) and starts watching the store.
    ///
    /// Must be called inside a Tokio runtime (it spawns the reload task).
    pub fn start(settings: &Settings, httperr: LineSink) -> Result<Arc<Tls>, TlsError> {
        let cert_dir = settings.cert_dir.clone();
        std::fs::create_dir_all(&cert_dir).map_err(|source| TlsError::CertDir {
            path: cert_dir.clone(),
            source,
        })?;
        if settings.https_port != 0 {
            match firstrun::ensure(&cert_dir, settings.https_port) {
                Ok(firstrun::FirstRun::NotNeeded) => {}
                Ok(firstrun::FirstRun::Bound { cert, created }) => {
                    let config = firstrun::config_for_commands(&settings.origin);
                    eprint!(
                        "{}",
                        firstrun::notice(
                            &cert,
                            created,
                            settings.https_port,
                            &cert_dir,
                            config.as_deref()
                        )
                    );
                }
                // A read-only store (e.g. a mounted Secret) must not stop the server:
                // handshakes without a binding fail and are logged.
                Err(e @ TlsError::Certificate(_)) => tracing::error!(
                    "cannot create the first-run localhost certificate: {e}; \
                     HTTPS on port {} has no certificate until one is bound",
                    settings.https_port
                ),
                Err(e) => return Err(e),
            }
        }
        if settings.https_port != 0 {
            // Said at every start: the bind-time warning may have scrolled away.
            if let Ok(data) = crate::store::Store::in_cert_dir(&cert_dir).load() {
                if let Some(w) = data.lone_family_warning(settings.https_port, &settings.listen) {
                    tracing::warn!("SSL bindings: {w}");
                }
            }
        }
        // The first load must succeed (a broken sslcert.json stops the start-up with
        // its message); later reloads keep the last good snapshot instead.
        let resumption = resumption::Resumption::new(settings.session_tickets, &cert_dir)?;
        let first = snapshot::build(&cert_dir, &snapshot::Snapshot::resuming(resumption))?;
        tracing::info!(bindings = ?first.describe(), "SSL bindings loaded");
        crate::metrics::set_bound_certificates(first.bound_certificates());
        let reloader = Arc::new(Reloader::new(cert_dir.clone(), first));
        let (reload_tx, reload_rx) = mpsc::unbounded_channel();
        let watcher = watch::watcher(&cert_dir, reload_tx.clone());
        tokio::spawn(watch::run(reloader.clone(), reload_rx, None));
        Ok(Arc::new(Tls {
            reloader,
            refuse: config::refusing_config(),
            httperr,
            handshake_timeout: HANDSHAKE_TIMEOUT.min(settings.limits.header_wait_timeout),
            reload_tx,
            alpn: Arc::default(),
            _watcher: watcher,
        }))
    }

    /// Asks for a reload of the certificates and bindings (as SIGHUP does); it happens
    /// in the background within the debounce time.
    pub fn reload(&self) {
        let _ = self.reload_tx.send(());
    }

    /// Where the ACME manager publishes its TLS-ALPN-01 answers.
    pub fn alpn_challenges(&self) -> Arc<alpn_challenge::AlpnChallenges> {
        self.alpn.clone()
    }

    /// Completes the handshake, or logs why not and returns `None`.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Option<TlsStream<TcpStream>> {
        let deadline = tokio::time::Instant::now() + self.handshake_timeout;
        let acceptor = LazyConfigAcceptor::new(Acceptor::default(), tcp);
        let start = match tokio::time::timeout_at(deadline, acceptor).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS ClientHello unreadable");
                return None;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out before the ClientHello");
                return None;
            }
        };
        let sni = start.client_hello().server_name().map(str::to_owned);
        let hello = start.client_hello();
        if let Some(challenge) = self.alpn.select(sni.as_deref(), hello.alpn()) {
            // The validation only needs the handshake; no request follows.
            let Some(config) = challenge else {
                tracing::debug!(%peer, sni = ?sni, "acme-tls/1 handshake for a name with no order in flight");
                return None;
            };
            match tokio::time::timeout_at(deadline, start.into_stream(config)).await {
                Ok(Ok(mut stream)) => {
                    tracing::info!(%peer, sni = ?sni, "ACME: TLS-ALPN-01 challenge answered");
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "acme-tls/1 handshake failed"),
                Err(_) => tracing::debug!(%peer, "acme-tls/1 handshake timed out"),
            }
            return None;
        }
        let snapshot = self.reloader.snapshot.load();
        let (config, refused) = match snapshot.select(local, sni.as_deref()) {
            Selection::Serve(key, served) => {
                tracing::trace!(%peer, sni = ?sni, binding = %key, thumbprint = %served.thumbprint, "TLS binding chosen");
                (served.config.clone(), None)
            }
            Selection::Reject(key) => {
                tracing::debug!(%peer, sni = ?sni, binding = %key, "binding says reject");
                (self.refuse.clone(), Some(REASON_REJECTED))
            }
            Selection::Broken(key, why) => {
                tracing::debug!(%peer, sni = ?sni, binding = %key, "binding unusable: {why}");
                (self.refuse.clone(), Some(REASON_BAD_BINDING))
            }
            Selection::NoBinding => (self.refuse.clone(), Some(REASON_NO_BINDING)),
        };
        drop(snapshot);
        if let Some(reason) = refused {
            self.httperr
                .send(HttpErrRecord::connection(peer, local, reason).line());
            tracing::debug!(%peer, %local, sni = ?sni, reason, "TLS handshake refused");
        }
        match tokio::time::timeout_at(deadline, start.into_stream(config)).await {
            Ok(Ok(stream)) if refused.is_none() => {
                crate::metrics::tls_handshake(match stream.get_ref().1.handshake_kind() {
                    Some(rustls::HandshakeKind::Resumed) => crate::metrics::Handshake::Resumed,
                    _ => crate::metrics::Handshake::Full,
                });
                Some(stream)
            }
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                if refused.is_none() {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                None
            }
        }
    }
}
