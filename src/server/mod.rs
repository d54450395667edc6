//! Listeners, the connection loop, and graceful shutdown. What is served
//! (the registrations, the site, TLS, maintenance) is put together in
//! `app`, which starts a [`Server`] with it.
//!
//! Listeners follow registrations: a port is listened on (IPv4 and IPv6)
//! while at least one registered prefix uses it, and closed when the last
//! one goes. Every worker accepts on every listening socket ([`accept`]).
//! Each connection passes HTTP.sys's request checks
//! ([`guard`]) and is then served by hyper-util's auto builder (HTTP/1.1 and
//! HTTP/2); bodiless HTTP/1.1 requests to a site or a proxied application are
//! answered without hyper ([`direct`]) until a request comes that needs it.
//! Shutdown is a watch channel: accept loops stop, hyper finishes
//! in-flight requests, and after the grace period whatever is left is
//! dropped.

mod accept;
mod activity;
mod addresses;
mod connection;
mod direct;
mod drain;
mod guard;
mod http3;
mod listener;
pub mod signals;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::dispatch::Shared;
use crate::registry::PortSet;
use crate::tls::Tls;
use crate::urlprefix::Scheme;

use crate::workers::Workers;
pub use addresses::ListenAddresses;
pub use guard::{GuardContext, Guarded};
pub use http3::Http3Error;
pub use listener::bind_port;

/// Failures of the listening side at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source} (is another program using port {port}? choose another port in GLOBAL.INI)", port = addr.port())]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("nothing to serve: no URL prefix is registered (http_port and https_port are both 0 and no [app:NAME] section)")]
    NoPorts,
    #[error("cannot start the connection workers: {0}")]
    Workers(std::io::Error),
}

/// The listening side of a running server: listeners that follow the
/// registered ports, and the signals that stop and drain them.
pub struct Server {
    shared: Arc<Shared>,
    workers: Arc<Workers>,
    stop: watch::Sender<bool>,
    /// Connections hold receivers; shutdown waits until all are gone.
    drain: watch::Sender<bool>,
    follower: JoinHandle<()>,
}

impl Server {
    /// Listens on every port in `ports` now, on each address in `addrs` (a
    /// port that cannot be bound is an error), then follows `ports` as
    /// registrations come and go and `addrs` as the IP listen list changes
    /// (`netsh http add|delete iplisten`).
    pub fn start(
        shared: Arc<Shared>,
        tls: Option<Arc<Tls>>,
        mut ports: watch::Receiver<PortSet>,
        mut addrs: watch::Receiver<Vec<IpAddr>>,
    ) -> Result<Server, ServerError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (drain_tx, drain_rx) = watch::channel(false);
        let workers = Arc::new(Workers::per_core().map_err(ServerError::Workers)?);
        let http3 = http3_for(&shared, tls.as_deref(), &drain_rx);
        let mut listeners = Listeners {
            shared: shared.clone(),
            workers: workers.clone(),
            tls,
            http3,
            drain: drain_rx,
            stop: stop_rx,
            addrs: addrs.borrow_and_update().clone(),
            open: BTreeMap::new(),
        };
        let mut wanted = ports.borrow_and_update().clone();
        if wanted.is_empty() {
            return Err(ServerError::NoPorts);
        }
        listeners.sync(&wanted, true)?;
        let mut stop_follow = stop_tx.subscribe();
        let follower = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop_follow.changed() => break,
                    changed = ports.changed() => {
                        if changed.is_err() { break; }
                        wanted = ports.borrow_and_update().clone();
                        if let Err(e) = listeners.sync(&wanted, false) {
                            tracing::error!(error = %e, "opening a listener for a new registration failed");
                        }
                    }
                    Ok(()) = addrs.changed() => {
                        let new = addrs.borrow_and_update().clone();
                        listeners.listen_on(new, &wanted).await;
                    }
                }
            }
            listeners.close_all().await;
        });
        Ok(Server {
            shared,
            workers,
            stop: stop_tx,
            drain: drain_tx,
            follower,
        })
    }

    /// Becomes `true` when shutdown begins (for tasks that should stop then).
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Stops accepting, lets connections finish for at most `grace`, then
    /// stops the workers (whatever still runs there ends now).
    pub async fn shutdown(self, grace: std::time::Duration) {
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: no new connections, finishing requests in flight"
        );
        self.shared
            .stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.stop.send(true);
        let _ = self.follower.await;
        let _ = self.drain.send(true);
        tokio::select! {
            _ = self.drain.closed() => tracing::info!("all connections closed"),
            _ = tokio::time::sleep(grace) => {
                tracing::warn!("grace period over; closing the remaining connections");
            }
        }
        drop(self.shared);
        drop(self.workers);
    }
}

/// HTTP/3's shared state, when `http3=yes` and TLS is available; a QUIC
/// setup that cannot be made leaves the server on TCP alone (and says why).
fn http3_for(
    shared: &Arc<Shared>,
    tls: Option<&Tls>,
    drain: &watch::Receiver<bool>,
) -> Option<Arc<http3::Http3>> {
    let tls = tls.filter(|_| shared.settings.http3)?;
    let quic = tls
        .quic()
        .map_err(|e| http3::Http3Error::Tls(e.to_string()))
        .and_then(|quic| http3::Http3::new(shared.clone(), Arc::new(quic), drain.clone()));
    match quic {
        Ok(h3) => Some(Arc::new(h3)),
        Err(e) => {
            tracing::error!(error = %e, "HTTP/3 is off");
            None
        }
    }
}

/// The open listening sockets: per (scheme, port), one accept loop per
/// listening address (and for HTTPS, a QUIC endpoint on the same address).
struct Listeners {
    shared: Arc<Shared>,
    workers: Arc<Workers>,
    tls: Option<Arc<Tls>>,
    http3: Option<Arc<http3::Http3>>,
    drain: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
    /// The addresses every port is served on.
    addrs: Vec<IpAddr>,
    open: BTreeMap<(Scheme, u16), BTreeMap<IpAddr, Accepting>>,
}

/// One listening socket's accept loop and the switch that stops it.
struct Accepting {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Accepting {
    async fn close(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

impl Listeners {
    /// Opens listeners for new ports (and for addresses a port is not yet
    /// served on) and closes those of ports no longer used. At start-up
    /// (`strict`) a port that can't be bound is an error.
    fn sync(&mut self, wanted: &PortSet, strict: bool) -> Result<(), ServerError> {
        let gone: Vec<_> = self
            .open
            .keys()
            .filter(|k| !wanted.contains(k))
            .copied()
            .collect();
        for key in gone {
            if let Some(sockets) = self.open.remove(&key) {
                tracing::info!(
                    port = key.1,
                    "last prefix on the port is gone; closing its listeners"
                );
                for accepting in sockets.into_values() {
                    let _ = accepting.stop.send(true);
                }
            }
        }
        for &(scheme, port) in wanted {
            let missing: Vec<IpAddr> = match self.open.get(&(scheme, port)) {
                Some(open) => self
                    .addrs
                    .iter()
                    .filter(|ip| !open.contains_key(ip))
                    .copied()
                    .collect(),
                None => self.addrs.clone(),
            };
            if missing.is_empty() {
                continue;
            }
            let tls = match scheme {
                Scheme::Http => None,
                Scheme::Https => match &self.tls {
                    Some(t) => Some(t.clone()),
                    None => {
                        tracing::error!(port, "HTTPS prefix registered but TLS is not available");
                        continue;
                    }
                },
            };
            let sockets = match bind_port(&missing, port) {
                Ok(s) => s,
                Err(e) if !strict => {
                    tracing::error!(error = %e, "cannot listen for a registered prefix");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let open = self.open.entry((scheme, port)).or_default();
            for (ip, l) in sockets {
                if let Ok(addr) = l.local_addr() {
                    tracing::info!("listening on {}://{addr}", scheme.as_str());
                }
                let (stop, stop_rx) = watch::channel(false);
                // HTTP/3 on the same address and port; it stops with the
                // TCP listener (the same switches).
                let alt_svc = match (&self.http3, scheme) {
                    (Some(h3), Scheme::Https) => {
                        match h3.open(ip, port, self.stop.clone(), stop_rx.clone()) {
                            Ok(value) => Some(connection::AltSvc {
                                value,
                                quic: h3.tls.clone(),
                            }),
                            Err(e) => {
                                tracing::warn!(error = %e, "HTTP/3 is not served here");
                                None
                            }
                        }
                    }
                    _ => None,
                };
                let ctx = Arc::new(connection::ListenerContext {
                    shared: self.shared.clone(),
                    builder: connection_builder(),
                    tls: tls.clone(),
                    drain: self.drain.clone(),
                    alt_svc,
                });
                let tasks = accept::start(l, ctx, &self.workers, self.stop.clone(), stop_rx);
                open.insert(ip, Accepting { stop, tasks });
            }
        }
        Ok(())
    }

    /// Serves every port on `addrs` from now on: listeners on addresses no
    /// longer listed close (their connections go on), new ones open, and
    /// those on addresses still listed are not touched.
    async fn listen_on(&mut self, addrs: Vec<IpAddr>, wanted: &PortSet) {
        if addrs == self.addrs {
            return;
        }
        tracing::info!(addresses = ?addrs, "the listening addresses changed");
        self.addrs = addrs;
        let mut closing = Vec::new();
        for open in self.open.values_mut() {
            let gone: Vec<IpAddr> = open
                .keys()
                .filter(|ip| !self.addrs.contains(ip))
                .copied()
                .collect();
            closing.extend(gone.iter().filter_map(|ip| open.remove(ip)));
        }
        for accepting in closing {
            accepting.close().await;
        }
        if let Err(e) = self.sync(wanted, false) {
            tracing::error!(error = %e, "opening listeners on the new addresses failed");
        }
    }

    async fn close_all(self) {
        for accepting in self.open.into_values().flat_map(BTreeMap::into_values) {
            accepting.close().await;
        }
    }
}

/// Longer than any HeaderWait netsh accepts (65,535 s); with [`NeverFires`]
/// it does not matter, but hyper wants a duration.
const HYPER_HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(86_400);

/// hyper's HTTP/1 header-read timer, made never to fire: the guard runs
/// HTTP.sys's HeaderWait timer (configurable, 120 s by default) and hyper's
/// own (30 s by default) must not cut it short.
///
/// Why not switch hyper's timer off: only with one set does hyper start
/// reading the next request head as soon as a response is done, and that
/// read is where the guard parks an idle connection. Without it, 10,000
/// idle keep-alive connections held 61 MiB instead of 40 ((h) in
/// bench/RESULTS.md). A real tokio timer, though, cost an allocation, a
/// timer-wheel insertion and a removal for every request; this one costs
/// nothing (its sleep is zero-sized, so boxing it allocates nothing).
#[derive(Clone, Copy)]
struct NeverFires;

impl hyper::rt::Timer for NeverFires {
    fn sleep(&self, _: std::time::Duration) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Never)
    }

    fn sleep_until(&self, _: std::time::Instant) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Never)
    }
}

/// A sleep that never ends (and so never needs to wake anyone).
struct Never;

impl Future for Never {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Pending
    }
}

impl hyper::rt::Sleep for Never {}

fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(NeverFires)
        .header_read_timeout(HYPER_HEADER_READ_TIMEOUT)
        // HTTP.sys writes header names in their usual case.
        .title_case_headers(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        // Larger windows than h2's 64 KiB defaults: fewer WINDOW_UPDATE
        // round trips for many concurrent streams.
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .max_concurrent_streams(256)
        // What hyper buffers per stream ahead of the client's window (h2's
        // default is 400 KiB): 256 streams whose windows a client keeps
        // shut hold at most 16 MiB until MinSendRate ends the connection.
        .max_send_buf_size(64 * 1024);
    builder
}
