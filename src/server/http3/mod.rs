//! HTTP/3: a QUIC endpoint (quinn) next to every HTTPS listener, serving
//! requests with h3 into the same `dispatch::handle` as hyper's connections.
//!
//! Why beside the TCP listeners rather than a server of its own: HTTP.sys
//! serves QUIC on exactly the ports and addresses it serves HTTPS on, so an
//! endpoint is opened and closed with each HTTPS listening socket (same IP,
//! same port, UDP) and stops with the same switches. What differs from TCP:
//!
//! - the TLS handshake is quinn's; the certificate is still chosen per
//!   handshake in HTTP.sys's order by `tls::QuicTls` (same snapshot, same
//!   hot reloads), TLS 1.3 only, ALPN `h3`, no 0-RTT;
//! - address validation: a client whose address is not yet proven (no
//!   Retry or NEW_TOKEN token) is sent a Retry first, so a spoofed source
//!   address gets one small packet, never a certificate chain (quinn also
//!   caps what it sends before validation at three times what it got);
//! - `MaxConnections` counts QUIC connections with TCP ones (the same
//!   semaphore); over the limit, the connection is refused at once;
//! - the idle timer is QUIC's idle timeout, set to `IdleConnectionTimeout`:
//!   a client that vanishes costs nothing once it has passed;
//! - shutdown: GOAWAY, requests in flight finish, then the connection is
//!   closed with H3_NO_ERROR (`connection.rs`).

mod body;
mod connection;
mod socket;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{IdleTimeout, TransportConfig, VarInt};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Limits;
use crate::dispatch::Shared;
use crate::tls::QuicTls;

/// Concurrent request streams per connection, as many as hyper allows an
/// HTTP/2 connection (`server::connection_builder`).
const MAX_STREAMS: u32 = 256;
/// Unidirectional streams a client may open: HTTP/3 needs three (control,
/// QPACK encoder and decoder); a few more for GREASE streams.
const MAX_UNI_STREAMS: u32 = 16;
/// Flow-control windows, as the HTTP/2 side's: a stream's 1 MiB, the
/// connection's 4 MiB (bounds what one client can make the server buffer).
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 4 << 20;
/// Handshakes waiting to be accepted, and the bytes they may hold: far
/// below quinn's defaults (65,536 and 100 MiB) since this loop accepts at
/// once; a flood beyond it is dropped by quinn.
const MAX_INCOMING: usize = 4096;
const INCOMING_BUFFER_TOTAL: u64 = 16 << 20;
/// How long a closed endpoint waits for its connections' CONNECTION_CLOSE
/// to be sent before its socket goes.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Failures opening an HTTP/3 endpoint (the TCP listener stays; HTTP/3 is
/// then not advertised on that address).
#[derive(Debug, thiserror::Error)]
pub enum Http3Error {
    #[error("cannot listen for HTTP/3 on udp {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("the QUIC TLS configuration is unusable: {0}")]
    Tls(String),
    #[error("cannot advertise HTTP/3: {0}")]
    AltSvc(#[from] http::header::InvalidHeaderValue),
}

/// What every HTTP/3 endpoint of a server shares.
pub(super) struct Http3 {
    pub shared: Arc<Shared>,
    pub tls: Arc<QuicTls>,
    /// Becomes `true` at shutdown; every QUIC connection holds a receiver.
    pub drain: watch::Receiver<bool>,
    /// The endpoints' settings (their TLS config refuses handshakes; each
    /// connection gets its own, from `tls`). One token key for all, so a
    /// Retry or NEW_TOKEN token from one endpoint is good at every other.
    base: quinn::ServerConfig,
}

impl Http3 {
    pub fn new(
        shared: Arc<Shared>,
        tls: Arc<QuicTls>,
        drain: watch::Receiver<bool>,
    ) -> Result<Http3, Http3Error> {
        let crypto = QuicServerConfig::try_from(tls.endpoint_config())
            .map_err(|e| Http3Error::Tls(e.to_string()))?;
        let mut base = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        base.transport_config(Arc::new(transport(&shared.settings.limits)))
            .max_incoming(MAX_INCOMING)
            .incoming_buffer_size_total(INCOMING_BUFFER_TOTAL);
        Ok(Http3 {
            shared,
            tls,
            drain,
            base,
        })
    }

    /// Opens the endpoint for `ip`:`port` (UDP) and serves it until
    /// `stop_all` or `stop_this` changes (or its sender goes). Returns the
    /// `Alt-Svc` value TCP responses on that address should carry.
    pub fn open(
        self: &Arc<Self>,
        ip: IpAddr,
        port: u16,
        stop_all: watch::Receiver<bool>,
        stop_this: watch::Receiver<bool>,
    ) -> Result<HeaderValue, Http3Error> {
        // Digits and fixed text: a valid header value.
        let alt_svc = HeaderValue::from_str(&format!("h3=\":{port}\"; ma=86400"))?;
        let addr = SocketAddr::new(ip, port);
        let endpoint = socket::bind(addr, self.base.clone())
            .map_err(|source| Http3Error::Bind { addr, source })?;
        tracing::info!("listening on https://{addr} (HTTP/3, udp)");
        tokio::spawn(accept_loop(
            endpoint,
            addr,
            self.clone(),
            stop_all,
            stop_this,
        ));
        Ok(alt_svc)
    }

    /// A connection's own config: the endpoint's, with a TLS config whose
    /// certificate resolver knows the connection's addresses.
    fn connection_config(
        &self,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Result<quinn::ServerConfig, Http3Error> {
        let crypto = QuicServerConfig::try_from(self.tls.handshake_config(local, peer))
            .map_err(|e| Http3Error::Tls(e.to_string()))?;
        let mut config = self.base.clone();
        config.crypto = Arc::new(crypto);
        Ok(config)
    }
}

/// QUIC's transport settings from the `[http]` limits.
fn transport(limits: &Limits) -> TransportConfig {
    let mut t = TransportConfig::default();
    // The idle timer: no packet from the client for this long ends the
    // connection. A value QUIC cannot carry (over 2^62 ms) is as good as
    // the largest it can.
    let idle = IdleTimeout::try_from(limits.idle_connection_timeout)
        .unwrap_or_else(|_| IdleTimeout::from(VarInt::MAX));
    t.max_idle_timeout(Some(idle))
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS))
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW))
        .receive_window(VarInt::from_u32(CONNECTION_WINDOW))
        .send_window(u64::from(CONNECTION_WINDOW));
    t
}

/// A UDP socket on `addr` (IPv6 sockets IPv6-only, as the TCP listeners,
/// so `0.0.0.0:P` and `[::]:P` coexist) and a quinn endpoint on it.
async fn accept_loop(
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    ctx: Arc<Http3>,
    mut stop_all: watch::Receiver<bool>,
    mut stop_this: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let incoming = tokio::select! {
            _ = stop_all.changed() => break,
            _ = stop_this.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            incoming = endpoint.accept() => match incoming {
                Some(i) => i,
                None => break,
            },
        };
        let peer = incoming.remote_address();
        // Address validation: prove the address first (a Retry round
        // trip, skipped by a client that has a token from an earlier
        // connection), so spoofed Initials cost one small packet.
        if !incoming.remote_address_validated() {
            if incoming.may_retry() {
                if let Err(e) = incoming.retry() {
                    tracing::debug!(%peer, error = %e, "QUIC retry failed");
                }
            } else {
                incoming.ignore();
            }
            continue;
        }
        // MaxConnections: the same slots as TCP connections.
        let Ok(slot) = ctx.shared.connection_slot() else {
            tracing::debug!(%peer, "MaxConnections reached; QUIC connection refused");
            incoming.refuse();
            continue;
        };
        // A wildcard socket learns the address the client wrote to from
        // the packet; the certificate choice needs it (IP:port bindings).
        let local = SocketAddr::new(incoming.local_ip().unwrap_or(addr.ip()), addr.port());
        let config = match ctx.connection_config(local, peer) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::error!(error = %e, "QUIC connection refused");
                incoming.refuse();
                continue;
            }
        };
        match incoming.accept_with(config) {
            Ok(connecting) => {
                connections.spawn(connection::serve(
                    connecting,
                    peer,
                    local,
                    ctx.clone(),
                    slot,
                ));
            }
            Err(e) => tracing::debug!(%peer, error = %e, "QUIC connection failed"),
        }
    }
    // No new connections from here on; those open go on (to their end, or
    // to the drain at shutdown) on a task of their own, so that whoever
    // closes this listener does not wait for them.
    endpoint.set_server_config(None);
    let drain = ctx.drain.clone();
    tokio::spawn(async move {
        while connections.join_next().await.is_some() {}
        // Lets the CONNECTION_CLOSE frames go out before the socket does;
        // the drain receiver keeps shutdown waiting that long.
        let _ = tokio::time::timeout(CLOSE_LINGER, endpoint.wait_idle()).await;
        drop(drain);
    });
}
