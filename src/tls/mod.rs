//! TLS termination: picks the certificate per handshake from the SSL
//! binding table, in HTTP.sys's lookup order. (Being written.)

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::config::Settings;
use crate::logs::LineSink;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS is not available in this build yet")]
    Unavailable,
    #[error("{0}")]
    Certificate(#[from] crate::certs::CertError),
}

/// The TLS side of every HTTPS listener.
pub struct Tls {}

impl Tls {
    /// Loads certificates and bindings (creating the first-run localhost
    /// certificate when needed) and starts watching the store.
    pub fn start(_settings: &Settings, _httperr: LineSink) -> Result<Arc<Tls>, TlsError> {
        Err(TlsError::Unavailable)
    }

    /// Completes the handshake, or logs why not and returns `None`.
    pub async fn accept(
        &self,
        _tcp: TcpStream,
        _local: SocketAddr,
        _peer: SocketAddr,
    ) -> Option<TlsStream<TcpStream>> {
        None
    }
}
