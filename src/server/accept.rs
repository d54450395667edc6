//! Accepting connections on a listening socket and starting each on a
//! worker.
//!
//! On Unix every worker accepts on the socket itself (a duplicate of it,
//! polled by the worker's own reactor), and a connection is served where it
//! was accepted. Handing each one from an accepting thread to a worker cost
//! two `epoll_ctl` calls (registered with the accepting runtime, then moved),
//! an eventfd write to wake the worker, and that thread's share of two
//! cores: resumed TLS reconnects went from 5,013–5,105/s to 5,370–5,403/s and
//! the server's CPU per connection from 154 to 131 µs (bench/run.sh (d′),
//! bench/RESULTS.md). An idle worker wakes for a connection another took
//! (one `accept4` that finds none); a busy one is not waiting, so the idle
//! one takes the next connection, which is how they share the load.
//!
//! On Windows one loop on the main runtime accepts and hands connections to
//! the workers in turn: nothing here relies on one listening socket being
//! polled from several completion ports.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::task::JoinHandle;

use super::connection::{self, ListenerContext};
use crate::workers::Workers;

/// Starts accepting on `listener` until `stop_all` or `stop_this` fires;
/// the tasks end then.
pub(super) fn start(
    listener: TcpListener,
    ctx: Arc<ListenerContext>,
    workers: &Arc<Workers>,
    stop_all: watch::Receiver<bool>,
    stop_this: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    #[cfg(unix)]
    {
        let listener = match listener.into_std() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot hand the listening socket to the workers");
                return Vec::new();
            }
        };
        workers.spawn_each(|| {
            let copy = listener.try_clone();
            let (ctx, stop_all, stop_this) = (ctx.clone(), stop_all.clone(), stop_this.clone());
            async move {
                let listener = match copy.and_then(TcpListener::from_std) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "a worker cannot accept on the listening socket");
                        return;
                    }
                };
                let mut stops = (stop_all, stop_this);
                while let Some((stream, peer)) = next(&listener, &mut stops).await {
                    if let Some((local, slot)) = admit(&stream, peer, &ctx) {
                        tokio::spawn(connection::serve(stream, peer, local, ctx.clone(), slot));
                    }
                }
            }
        })
    }
    #[cfg(not(unix))]
    {
        let workers = workers.clone();
        vec![tokio::spawn(async move {
            let mut stops = (stop_all, stop_this);
            while let Some((stream, peer)) = next(&listener, &mut stops).await {
                let Some((local, slot)) = admit(&stream, peer, &ctx) else {
                    continue;
                };
                // The connection moves to a worker's reactor.
                let Ok(stream) = stream.into_std() else {
                    continue;
                };
                let ctx = ctx.clone();
                workers.spawn(async move {
                    if let Ok(stream) = TcpStream::from_std(stream) {
                        connection::serve(stream, peer, local, ctx, slot).await;
                    }
                });
            }
        })]
    }
}

/// The next connection, or `None` once a stop switch fires.
async fn next(
    listener: &TcpListener,
    (stop_all, stop_this): &mut (watch::Receiver<bool>, watch::Receiver<bool>),
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            _ = stop_all.changed() => return None,
            _ = stop_this.changed() => return None,
            accepted = listener.accept() => match accepted {
                Ok(a) => return Some(a),
                Err(e) => {
                    // EMFILE and friends: keep serving the connections we have.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Whether to serve a new connection: its local address, and its
/// MaxConnections place (`None` without a limit). Over the limit the
/// connection is closed at once.
fn admit(
    stream: &TcpStream,
    peer: SocketAddr,
    ctx: &ListenerContext,
) -> Option<(SocketAddr, Option<OwnedSemaphorePermit>)> {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok()?;
    let Ok(slot) = ctx.shared.connection_slot() else {
        tracing::debug!(%peer, "MaxConnections reached; connection refused");
        return None;
    };
    Some((local, slot))
}
