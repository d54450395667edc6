//! HTTP/1.1 requests for proxied applications and static sites answered
//! without hyper.
//!
//! Most requests a site or a reverse-proxied application gets are `GET`s
//! without a body. For those, hyper's server is a detour: the guard has
//! already found and checked the head, so hyper would only parse it a
//! second time and encode the response. For a proxied application the
//! proxy writes the backend's request straight from the client's header
//! fields and parses the answer itself: about a third fewer instructions
//! per request (bench/RESULTS.md, (f)). A site reads the parsed fields
//! (`RequestFields::Parsed`, no `HeaderMap`) and its own code answers, the
//! same call hyper's path makes (`dispatch::answer_site`).
//!
//! The rule is simple: a connection (plain or TLS) starts here, and the first
//! request that is not an HTTP/1.1 `GET` or `HEAD` without a body and
//! without `Connection: upgrade`, for a prefix that a proxied application
//! or a site owns and no `[auth:]` section protects, is put back into the
//! stream and the connection goes to hyper, which then serves it until it
//! is parked (a plain connection's next round starts here again). So
//! everything else — HTTP.sys's routing error pages, password checks,
//! bodies, protocol switches, HTTP/1.0, HTTP/2 — has exactly one
//! implementation, hyper's path.
//!
//! What the client gets is byte for byte what hyper would have written
//! (`encode_head` follows hyper's encoder for the cases that reach it;
//! the tests compare the two), and the backend gets the same request
//! bytes as through hyper (`Backend::forward_bodiless`).

use std::future::poll_fn;
use std::mem::MaybeUninit;

use bytes::Bytes;
use http::header::HeaderValue;
use http::Method;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::watch;

use super::drain::Drained;
use super::guard::{Guarded, Next};
use crate::body::RequestBody;
use crate::conn::ConnInfo;
use crate::dispatch::{self, LoggedRequest, Shared};
use crate::headers::{as_str, RequestFields};
use crate::proxy::Backend;
use crate::registry::Handler;
use crate::site::{Site, SiteRequest};

mod classify;
mod date;
mod encode;

use classify::classify;
use encode::write_response;

/// Header fields in a request head (hyper's limit too: a head with more
/// goes to hyper, which refuses it).
const MAX_FIELDS: usize = 100;

/// How [`serve`] ended.
pub(super) enum Served {
    /// The connection is finished, or parked by the guard.
    Ended,
    /// What comes next is hyper's to serve.
    ToHyper,
}

/// Answers requests on `io` for as long as they are ones this module
/// serves.
pub(super) async fn serve<S>(
    io: &mut Guarded<S>,
    shared: &Shared,
    conn: &ConnInfo,
    drain: &watch::Receiver<bool>,
    alt_svc: Option<&HeaderValue>,
) -> Served
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut drained = Drained::new(drain);
    let mut out = Vec::new();
    loop {
        let next = tokio::select! {
            biased;
            next = poll_fn(|cx| io.poll_next(cx)) => next,
            () = &mut drained => return Served::Ended,
        };
        let head = match next {
            Ok(Next::Head(head)) => head,
            Ok(Next::Other) => return Served::ToHyper,
            Ok(Next::End) | Err(_) => return Served::Ended,
        };
        let closing = drained.fired();
        match answer(io, &head, shared, conn, closing, alt_svc, &mut out).await {
            Answered::KeepAlive => {}
            Answered::Close => {
                let _ = io.shutdown().await;
                return Served::Ended;
            }
            Answered::Failed => return Served::Ended,
            Answered::NotMine => {
                io.unread(head);
                return Served::ToHyper;
            }
        }
    }
}

/// The handlers whose requests this module answers.
enum Answerer<'r> {
    Site(&'r Site),
    Proxy(&'r Backend),
}

enum Answered {
    KeepAlive,
    /// The request or the response said `Connection: close` (HTTP.sys's
    /// 503 page does), or the server is shutting down.
    Close,
    /// The client went away, or writing to it or reading the backend's
    /// body failed.
    Failed,
    /// Not a request this module serves; nothing was sent.
    NotMine,
}

async fn answer<S>(
    io: &mut Guarded<S>,
    head: &Bytes,
    shared: &Shared,
    conn: &ConnInfo,
    closing: bool,
    alt_svc: Option<&HeaderValue>,
    out: &mut Vec<u8>,
) -> Answered
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Uninitialised: httparse fills what it uses (see proxy::head).
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut parsed = httparse::Request::new(&mut []);
    match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut parsed,
        head,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        _ => return Answered::NotMine,
    }
    let Some(req) = classify(
        head,
        parsed.method,
        parsed.path,
        parsed.version,
        parsed.headers,
    ) else {
        return Answered::NotMine;
    };
    let host = req.host.and_then(as_str);
    let Ok(route) =
        crate::registry::route_to(&shared.registry.snapshot(), conn, req.target.path(), host)
    else {
        return Answered::NotMine;
    };
    let answerer = match &route.registration.handler {
        Handler::Site(site) => Answerer::Site(site),
        Handler::Proxy(backend) => Answerer::Proxy(backend),
        _ => return Answered::NotMine,
    };
    let started = std::time::Instant::now();
    // A password-protected prefix is checked by the dispatcher (hyper's path).
    if !shared.auth.is_empty() && shared.auth.covers_path(conn, req.target.path(), host) {
        return Answered::NotMine;
    }
    let logged = LoggedRequest {
        method: req.method.as_str(),
        path: req.target.path(),
        target: req.target.as_str(),
        version: "HTTP/1.1",
        referer: req.referer.and_then(as_str),
        user_agent: req.user_agent.and_then(as_str),
        user: None,
    };
    let stats = &route.registration.stats;
    let mut res = match (answerer, stats.enter()) {
        (_, None) => dispatch::queue_full(shared, conn, &logged, &route.registration),
        // The queue place is held until the response head is ready.
        (Answerer::Site(site), Some(_place)) => {
            // The site reads conditional, range and encoding fields by
            // name, from the parsed fields: no map is built.
            let request = SiteRequest {
                method: &req.method,
                raw_path: req.target.path(),
                query: req.target.query(),
                headers: RequestFields::Parsed(parsed.headers),
                prefix_segments: route.prefix.segments(),
                conn,
                remote_user: None,
            };
            dispatch::answer_site(site, request, RequestBody::Empty).await
        }
        (Answerer::Proxy(backend), Some(_place)) => {
            let forwarded = backend.forward_bodiless(
                &req.method,
                req.target.as_str(),
                parsed.headers,
                req.host,
                conn,
            );
            // A client that closes the connection meanwhile cancels the request,
            // as it does through hyper.
            let res = tokio::select! {
                biased;
                res = forwarded => res,
                () = poll_fn(|cx| io.poll_client_gone(cx)) => return Answered::Failed,
            };
            res.unwrap_or_else(|e| {
                stats.proxy_error();
                dispatch::proxy_failed(shared, conn, &logged, &e)
            })
        }
    };
    if let Some(value) = alt_svc {
        res.headers_mut()
            .insert(http::header::ALT_SVC, value.clone());
    }
    dispatch::log_access(shared, conn, &logged, &mut res);
    dispatch::count(Some(&route), 0, &res, started);
    let closing = closing || req.close;
    match write_response(io, res, req.method == Method::HEAD, closing, out).await {
        Ok(true) => Answered::KeepAlive,
        Ok(false) => Answered::Close,
        Err(e) => {
            tracing::debug!(error = %e, "connection ended with an error");
            Answered::Failed
        }
    }
}
