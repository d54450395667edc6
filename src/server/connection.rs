//! One client connection, from accept to close: the TLS handshake, HTTP.sys's
//! checks ([`Guarded`]), hyper (or `direct`), and parking between requests.
//!
//! An HTTP/1 keep-alive connection, plain or TLS, is served in rounds. A
//! round starts in `direct`, which answers sites' and proxied applications'
//! bodiless requests without hyper, and goes on as one hyper connection on
//! the socket from the first request `direct` does not serve; it ends when
//! the guard parks the connection (idle for a while, nothing in flight; see
//! `guard`). Between rounds the task holds only the socket (over TLS, with rustls's session state) and waits
//! for it to become readable, so ten thousand idle keep-alive clients cost
//! little more than their sockets. An HTTP/2 connection is one hyper round.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::header::{HeaderValue, ALT_SVC};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit};
use tokio_rustls::server::TlsStream;

use super::activity::Activity;
use super::direct::{self, Served};
use super::drain::Drained;
use super::guard::{GuardContext, Guarded, Park, Parked};
use crate::body::RequestBody;
use crate::conn::ConnInfo;
use crate::dispatch::{self, Shared};
use crate::tls::{QuicTls, Tls};

/// What every connection accepted on one listener shares.
pub(super) struct ListenerContext {
    pub shared: Arc<Shared>,
    pub builder: auto::Builder<TokioExecutor>,
    pub tls: Option<Arc<Tls>>,
    /// Becomes `true` at shutdown: finish what is in flight, then close.
    /// The server waits until every connection has dropped its receiver.
    pub drain: watch::Receiver<bool>,
    /// HTTP/3 is served on this listener's address and port: what its
    /// HTTPS responses say about it.
    pub alt_svc: Option<AltSvc>,
}

/// `Alt-Svc: h3=":PORT"; ma=86400`, for connections whose binding also
/// serves QUIC (not one with `disablequic`).
pub(super) struct AltSvc {
    pub value: HeaderValue,
    pub quic: Arc<QuicTls>,
}

impl ListenerContext {
    fn guard_context(&self, conn: &ConnInfo, activity: &Arc<Activity>) -> GuardContext {
        GuardContext {
            limits: (*self.shared.limits()).clone(),
            peer: conn.peer,
            local: conn.local,
            httperr: self.shared.httperr_log.clone(),
            activity: activity.clone(),
        }
    }
}

/// Serves one accepted connection until it closes. `_slot` is its
/// MaxConnections permit, held for the connection's lifetime.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    ctx: Arc<ListenerContext>,
    _slot: Option<OwnedSemaphorePermit>,
) {
    let _open = Counted::enter(&ctx.shared.open_connections);
    let mut drain = ctx.drain.clone();
    let info = Arc::new(ConnInfo::new(peer, local, ctx.tls.is_some()));
    let activity = Arc::new(Activity::default());
    match &ctx.tls {
        None => serve_in_rounds(stream, &ctx, &info, &activity, &mut drain, None).await,
        // Boxed: the TLS state would otherwise make every task that large.
        Some(tls) => Box::pin(serve_tls(stream, tls, &ctx, &info, &activity, &mut drain)).await,
    }
}

async fn serve_tls(
    stream: TcpStream,
    tls: &Tls,
    ctx: &ListenerContext,
    info: &Arc<ConnInfo>,
    activity: &Arc<Activity>,
    drain: &mut watch::Receiver<bool>,
) {
    let Some(stream) = tls.accept(stream, info.local, info.peer).await else {
        return;
    };
    // Advertised per connection: whether QUIC would serve it depends on
    // the binding its SNI name selects.
    let alt_svc = ctx
        .alt_svc
        .as_ref()
        .filter(|a| {
            a.quic
                .advertised(info.local, stream.get_ref().1.server_name())
        })
        .map(|a| a.value.clone());
    serve_in_rounds(stream, ctx, info, activity, drain, alt_svc).await;
}

/// A connection's stream, which can wait for the client's next bytes
/// while the connection is parked.
trait Parkable: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The client's socket, whose readiness ends the wait.
    fn socket(&self) -> &TcpStream;
    /// Something already received is waiting to be read (plaintext rustls
    /// decrypted but the guard did not take): no need to wait at all.
    fn has_buffered(&self) -> bool;
}

impl Parkable for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
    fn has_buffered(&self) -> bool {
        false
    }
}

impl Parkable for TlsStream<TcpStream> {
    fn socket(&self) -> &TcpStream {
        self.get_ref().0
    }
    fn has_buffered(&self) -> bool {
        // rustls wants to read only once its plaintext is all taken (and
        // no close_notify is waiting to be reported). tokio-rustls
        // processes every complete record it reads, so what is left in
        // rustls's own buffer is a partial record, whose rest the socket
        // will announce.
        !self.get_ref().1.wants_read()
    }
}

/// Serves a connection in rounds: each starts in `direct` and goes on in
/// hyper if need be, until the guard parks the connection. Parked, the
/// task holds only the stream (and for TLS, rustls's session state) and
/// waits for the client's next bytes.
async fn serve_in_rounds<S: Parkable>(
    mut stream: S,
    ctx: &ListenerContext,
    info: &Arc<ConnInfo>,
    activity: &Arc<Activity>,
    drain: &mut watch::Receiver<bool>,
    alt_svc: Option<HeaderValue>,
) {
    let mut resumed = None;
    loop {
        // Boxed: a round's state (the guard, `direct`'s or hyper's) is
        // freed while the connection is parked, so that this task keeps
        // only what a parked connection needs.
        let round = Box::pin(serve_round_parkable(
            stream,
            resumed,
            ctx,
            info,
            activity,
            drain,
            alt_svc.as_ref(),
        ));
        let Some(parked) = round.await else {
            return; // closed for good: by the client, an error or a timer
        };
        // Observable, so that tests can tell parking happened (it is
        // otherwise invisible to the client, by design).
        tracing::debug!(target: "portshare::park", peer = %info.peer, "connection parked");
        let _parked = crate::metrics::ParkedConnection::enter();

        if !parked.stream.has_buffered() {
            tokio::select! {
                ready = parked.stream.socket().readable() => {
                    if ready.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(parked.idle_deadline) => {
                    let guard = ctx.guard_context(info, activity);
                    tracing::debug!(peer = %info.peer, "idle timer fired on a parked connection");
                    guard.log_idle_timeout();
                    return;
                }
                _ = drained(drain) => return,
            }
        }
        tracing::debug!(target: "portshare::park", peer = %info.peer, "parked connection resumed");
        stream = parked.stream;
        resumed = Some(parked.idle_deadline);
    }
}

/// One round on `stream` (`resumed`: after parking, with the idle deadline
/// it had); the stream back if the guard parked it.
async fn serve_round_parkable<S: Parkable>(
    stream: S,
    resumed: Option<tokio::time::Instant>,
    ctx: &ListenerContext,
    info: &Arc<ConnInfo>,
    activity: &Arc<Activity>,
    drain: &mut watch::Receiver<bool>,
    alt_svc: Option<&HeaderValue>,
) -> Option<Parked<S>> {
    let guard = ctx.guard_context(info, activity);
    let io = match resumed {
        None => Guarded::new(stream, guard),
        Some(idle_deadline) => Guarded::resume(stream, guard, idle_deadline),
    };
    let (to, mut handed_back) = oneshot::channel();
    let mut round = io.with_park(Park {
        open_connections: ctx.shared.open_connections.clone(),
        to,
    });
    // Boxed apart: a round that goes on in hyper frees `direct`'s state.
    let served = Box::pin(direct::serve(&mut round, &ctx.shared, info, drain, alt_svc)).await;
    match served {
        Served::Ended => drop(round),
        Served::ToHyper => {
            serve_round(ctx, info, round, activity, drain, alt_svc.cloned()).await;
        }
    }
    handed_back.try_recv().ok()
}

/// One hyper connection on `io`, until it ends or the guard parks it.
async fn serve_round<S>(
    ctx: &ListenerContext,
    info: &Arc<ConnInfo>,
    io: Guarded<S>,
    activity: &Arc<Activity>,
    drain: &mut watch::Receiver<bool>,
    alt_svc: Option<HeaderValue>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = ctx.shared.clone();
    let info = info.clone();
    let activity = activity.clone();
    let svc = service_fn(move |req: hyper::Request<Incoming>| {
        let tracker = activity.enter();
        let response = dispatch::handle(shared.clone(), info.clone(), req.map(RequestBody::Hyper));
        let alt_svc = alt_svc.clone();
        async move {
            let mut res = match response.await {
                Ok(res) => res,
                Err(never) => match never {},
            };
            if let Some(value) = alt_svc {
                res.headers_mut().insert(ALT_SVC, value);
            }
            Ok::<_, Infallible>(res.map(|body| tracker.into_body(body)))
        }
    });
    let conn = ctx
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        biased;
        result = conn.as_mut() => result,
        _ = Drained::new(drain) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Resolves once shutdown has begun.
async fn drained(drain: &mut watch::Receiver<bool>) {
    let _ = drain.wait_for(|stop| *stop).await;
}

/// One count in a counter until dropped: an open connection, or a request
/// in flight until its response body is done with.
pub(super) struct Counted(Arc<AtomicUsize>);

impl Counted {
    pub(super) fn enter(count: &Arc<AtomicUsize>) -> Counted {
        count.fetch_add(1, Ordering::Relaxed);
        Counted(count.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
