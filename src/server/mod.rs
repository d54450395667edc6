//! Listeners, the connection loop, and graceful shutdown.
//!
//! One accept loop per listening socket; each connection is served by
//! hyper-util's auto builder (HTTP/1.1 and HTTP/2). Shutdown is a watch
//! channel: accept loops stop, hyper finishes in-flight requests, and after
//! the grace period whatever is left is dropped.

mod listener;
pub mod signals;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Settings;
use crate::dispatch::{self, ConnInfo, Shared};
use crate::logs::Logs;
use crate::site::Site;
use crate::tls::Tls;

pub use listener::bind_port;

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source} (is another program using port {port}? choose another port in GLOBAL.INI)", port = addr.port())]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("public_dir {path}: {source}")]
    PublicDir {
        path: String,
        source: std::io::Error,
    },
    #[error("nothing to serve: http_port and https_port are both 0")]
    NoPorts,
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Runs the server until `shutdown` resolves, then drains connections for
/// at most the configured grace period.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let settings = Arc::new(settings);
    let site = Site::new(&settings).map_err(|source| ServerError::PublicDir {
        path: settings.public_dir.display().to_string(),
        source,
    })?;
    let logs = Logs::start(settings.log_dir.as_deref());
    let shared = Arc::new(Shared::new(settings.clone(), site, &logs));

    let tls = if settings.https_port != 0 {
        match Tls::start(&settings, logs.httperr.clone()) {
            Ok(tls) => Some(tls),
            Err(crate::tls::TlsError::Unavailable) => {
                tracing::warn!("HTTPS is not available in this build; serving plain HTTP only");
                None
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let mut listeners = Vec::new();
    for (port, https) in [(settings.http_port, false), (settings.https_port, true)] {
        if port == 0 || (https && tls.is_none()) {
            continue;
        }
        for l in bind_port(&settings.listen, port)? {
            if let Ok(addr) = l.local_addr() {
                let scheme = if https { "https" } else { "http" };
                tracing::info!("listening on {scheme}://{addr}");
            }
            listeners.push((l, tls.clone().filter(|_| https)));
        }
    }
    if listeners.is_empty() {
        return Err(ServerError::NoPorts);
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let graceful = Arc::new(GracefulShutdown::new());
    let mut accept_tasks = Vec::new();
    for (listener, tls) in listeners {
        accept_tasks.push(tokio::spawn(accept_loop(
            listener,
            tls,
            shared.clone(),
            stop_rx.clone(),
            graceful.clone(),
        )));
    }

    shutdown.await;
    tracing::info!(
        grace_secs = settings.shutdown_grace.as_secs(),
        "shutting down: no new connections, finishing requests in flight"
    );
    let _ = stop_tx.send(true);
    for t in accept_tasks {
        let _ = t.await;
    }
    // The accept loops held the only other references.
    let drained = async {
        match Arc::try_unwrap(graceful) {
            Ok(g) => g.shutdown().await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = drained => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(settings.shutdown_grace) => {
            tracing::warn!("grace period over; closing the remaining connections");
        }
    }
    drop(shared);
    // Connections cut at the end of the grace period may still hold log
    // senders; what they sent is written already, so don't wait for them.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), logs.finish()).await;
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    graceful: Arc<GracefulShutdown>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.settings.limits.header_wait_timeout);
    builder.http2().timer(TokioTimer::new());
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: keep serving the connections we have.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let info = Arc::new(ConnInfo {
            peer,
            local,
            https: tls.is_some(),
        });
        let shared = shared.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<Incoming>| {
                dispatch::handle(shared.clone(), info.clone(), req)
            });
            let result = match tls {
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    watcher.watch(conn).await
                }
                Some(tls) => {
                    let Some(stream) = tls.accept(stream, local, peer).await else {
                        return;
                    };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
