//! One client connection, from accept to close: the TLS handshake, HTTP.sys's
//! checks ([`Guarded`]), hyper (or `direct`), and parking between requests.
//!
//! A plain-HTTP/1 keep-alive connection is served in rounds. A round starts
//! in `direct`, which answers proxied requests without hyper, and goes on
//! as one hyper connection on the socket from the first request `direct`
//! does not serve; it ends when the guard parks the
//! connection (idle for a while, nothing in flight; see `guard`). Between rounds the task
//! holds only the socket and waits for it to become readable, so ten
//! thousand idle keep-alive clients cost little more than their sockets.
//! HTTPS connections are served in a single round, HTTP/2 ones by hyper.

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

use super::activity::Activity;
use super::direct::{self, Served};
use super::drain::Drained;
use super::guard::{GuardContext, Guarded, Park};
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
        None => serve_plain(stream, &ctx, &info, &activity, &mut drain).await,
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
    let mut io = Guarded::new(stream, ctx.guard_context(info, activity));
    // As on plain HTTP, but in a single round (an HTTPS connection is not
    // parked).
    match direct::serve(&mut io, &ctx.shared, info, drain, alt_svc.as_ref()).await {
        Served::Ended => {}
        Served::ToHyper => serve_round(ctx, info, io, activity, drain, alt_svc).await,
    }
}

async fn serve_plain(
    stream: TcpStream,
    ctx: &ListenerContext,
    info: &Arc<ConnInfo>,
    activity: &Arc<Activity>,
    drain: &mut watch::Receiver<bool>,
) {
    let mut io = Guarded::new(stream, ctx.guard_context(info, activity));
    loop {
        let (to, mut handed_back) = oneshot::channel();
        let mut round = io.with_park(Park {
            open_connections: ctx.shared.open_connections.clone(),
            to,
        });
        // Boxed, so that the state of a round is freed while the
        // connection is parked rather than kept inline in this task.
        let served = Box::pin(direct::serve(&mut round, &ctx.shared, info, drain, None)).await;
        match served {
            Served::Ended => drop(round),
            Served::ToHyper => Box::pin(serve_round(ctx, info, round, activity, drain, None)).await,
        }
        let Ok(parked) = handed_back.try_recv() else {
            return; // closed for good: by the client, an error or a timer
        };
        // Observable, so that tests can tell parking happened (it is
        // otherwise invisible to the client, by design).
        tracing::debug!(target: "portshare::park", peer = %info.peer, "connection parked");
        drop(handed_back); // its allocation, while the connection waits
        let _parked = crate::metrics::ParkedConnection::enter();

        tokio::select! {
            ready = parked.stream.readable() => {
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
        tracing::debug!(target: "portshare::park", peer = %info.peer, "parked connection resumed");
        io = Guarded::resume(
            parked.stream,
            ctx.guard_context(info, activity),
            parked.idle_deadline,
        );
    }
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
