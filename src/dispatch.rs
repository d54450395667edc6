//! One request's path through the server: route (HTTP.sys precedence) →
//! handler (static site, proxy or ACME HTTP-01 token) → response +
//! access-log line.
//!
//! Malformed request heads never get here: `server::guard` answers them.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, Uri, Version};

use crate::body::{Body, RequestBody};
use crate::config::Settings;
use crate::conn::ConnInfo;
use crate::errors::{self, HttpSysError};
use crate::headers::RequestFields;
use crate::logs::{AccessRecord, HttpErrRecord, LineSink, Logs};
use crate::proxy::ProxyError;
use crate::registry::{route, Handler, Registry, Route};
use crate::site::{Site, SiteRequest};

/// Every `MaxConnections` place is taken.
#[derive(Debug)]
pub struct Full;

/// State shared by every connection.
pub struct Shared {
    pub settings: Arc<Settings>,
    pub registry: Arc<Registry>,
    pub access_log: LineSink,
    pub httperr_log: LineSink,
    /// `MaxConnections`: `None` when unlimited (0).
    connection_slots: Option<Arc<tokio::sync::Semaphore>>,
    /// Client connections open now, on every listener.
    pub open_connections: Arc<std::sync::atomic::AtomicUsize>,
    /// The password-protected prefixes (`[auth:NAME]`).
    pub auth: Arc<crate::auth::Auth>,
    /// The `[http]` limits for new connections (a configuration reload
    /// replaces them; connections keep the ones they started with).
    limits: arc_swap::ArcSwap<crate::config::Limits>,
    /// Shutdown has begun: `health=` answers 503 from then on.
    pub stopping: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub fn new(settings: Arc<Settings>, registry: Arc<Registry>, logs: &Logs) -> Shared {
        let max = settings.limits.max_connections;
        Shared {
            connection_slots: (max > 0).then(|| Arc::new(tokio::sync::Semaphore::new(max))),
            open_connections: Arc::default(),
            limits: arc_swap::ArcSwap::from_pointee(settings.limits.clone()),
            settings,
            registry,
            access_log: logs.access.clone(),
            httperr_log: logs.httperr.clone(),
            auth: Arc::default(),
            stopping: Default::default(),
        }
    }

    /// A new connection's place among `MaxConnections` (TCP and QUIC
    /// alike), held until it closes: `Ok(None)` when there is no limit,
    /// `Err(Full)` when every place is taken.
    pub fn connection_slot(&self) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, Full> {
        match &self.connection_slots {
            None => Ok(None),
            Some(slots) => slots
                .clone()
                .try_acquire_owned()
                .map(Some)
                .map_err(|_| Full),
        }
    }

    /// The `[http]` limits a new connection gets.
    pub fn limits(&self) -> Arc<crate::config::Limits> {
        self.limits.load_full()
    }

    /// Puts reloaded `[http]` limits in force for new connections.
    pub fn set_limits(&self, limits: crate::config::Limits) {
        self.limits.store(Arc::new(limits));
    }

    /// The same, with the protected prefixes.
    pub fn with_auth(self, auth: Arc<crate::auth::Auth>) -> Shared {
        Shared { auth, ..self }
    }
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// What the logs say about a request.
pub struct LoggedRequest<'a> {
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// Path and query, as the access log gives them.
    pub target: &'a str,
    pub version: &'static str,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// The authenticated user (`crate::auth`), the access log's `%u`.
    pub user: Option<&'a str>,
}

/// The fields the access log needs, taken before the request is consumed.
struct AccessFields {
    method: Method,
    uri: Uri,
    version: Version,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    user: Option<crate::auth::AuthUser>,
}

impl AccessFields {
    fn logged(&self) -> LoggedRequest<'_> {
        LoggedRequest {
            method: self.method.as_str(),
            path: self.uri.path(),
            target: self.uri.path_and_query().map_or("/", |pq| pq.as_str()),
            version: version_str(self.version),
            referer: self.referer.as_ref().and_then(|v| v.to_str().ok()),
            user_agent: self.user_agent.as_ref().and_then(|v| v.to_str().ok()),
            user: self.user.as_ref().map(|u| &*u.0),
        }
    }
}

pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    mut req: Request<RequestBody>,
) -> Result<Response<Body>, Infallible> {
    let started = std::time::Instant::now();
    // The body's declared length (Content-Length): no header lookup.
    let bytes_in = http_body::Body::size_hint(req.body()).exact().unwrap_or(0);
    let mut fields = AccessFields {
        method: req.method().clone(),
        uri: req.uri().clone(),
        version: req.version(),
        referer: req.headers().get(header::REFERER).cloned(),
        user_agent: req.headers().get(header::USER_AGENT).cloned(),
        user: None,
    };
    let routed = route(&shared.registry.snapshot(), &conn, req.uri(), req.headers());
    // Password-protected prefixes, before any handler sees the request;
    // ACME HTTP-01 tokens stay reachable for the CA.
    let acme = |r: &Arc<Route>| matches!(r.registration.handler, Handler::AcmeChallenge(_));
    if routed.as_ref().is_ok_and(|r| !acme(r)) {
        match shared.auth.check(&conn, &mut req).await {
            Ok(user) => fields.user = user,
            Err(denied) => {
                let logged = fields.logged();
                let mut res = errors::auth_response(&denied);
                if let Some(reason) = denied.reason() {
                    log_httperr_reason(&shared, &conn, &logged, res.status().as_u16(), reason);
                }
                log_access(&shared, &conn, &logged, &mut res);
                count(routed.as_ref().ok(), bytes_in, &res, started);
                return Ok(res);
            }
        }
    }
    let logged = fields.logged();
    // A place in the registration's request queue (RequestQueueLimit),
    // held until the response head is ready.
    let place = routed.as_ref().ok().map(|r| r.registration.stats.enter());
    let mut res = match &routed {
        Err(err) => {
            log_httperr(&shared, &conn, &logged, *err);
            err.response()
        }
        Ok(route) if matches!(place, Some(None)) => {
            queue_full(&shared, &conn, &logged, &route.registration)
        }
        // The handlers' futures are boxed: inline they would make this
        // future (which hyper moves for every request) kilobytes large.
        Ok(route) => match &route.registration.handler {
            Handler::Site(site) => Box::pin(serve_site(site, &conn, route, req)).await,
            Handler::Proxy(backend) => match Box::pin(backend.forward(req, &conn)).await {
                Ok(res) => res,
                Err(e) => {
                    route.registration.stats.proxy_error();
                    proxy_failed(&shared, &conn, &logged, &e)
                }
            },
            Handler::Metrics => crate::health::metrics(
                req.method(),
                shared.open_connections.load(Ordering::Relaxed),
            ),
            Handler::Health => {
                crate::health::health(req.method(), shared.stopping.load(Ordering::Relaxed))
            }
            Handler::AcmeChallenge(tokens) => {
                let res = acme_challenge(tokens, route, req.method(), req.uri().path());
                if res.status() == http::StatusCode::NOT_FOUND {
                    log_httperr(&shared, &conn, &logged, HttpSysError::NotFound);
                }
                res
            }
        },
    };
    drop(place);
    log_access(&shared, &conn, &logged, &mut res);
    count(routed.as_ref().ok(), bytes_in, &res, started);
    Ok(res)
}

/// Counts an answered request for `metrics=`: under its registration's
/// queue, or as one HTTP.sys answered itself.
pub fn count(
    route: Option<&Arc<Route>>,
    bytes_in: u64,
    res: &Response<Body>,
    started: std::time::Instant,
) {
    let status = res.status().as_u16();
    let bytes_out = http_body::Body::size_hint(res.body()).exact().unwrap_or(0);
    match route {
        Some(r) => r
            .registration
            .stats
            .record(status, bytes_in, bytes_out, started),
        None => crate::metrics::record_unrouted(status, bytes_in, bytes_out, started),
    }
}

/// HTTP.sys's 503 for a request whose queue is full (`RequestQueueLimit`),
/// with an httperr line naming the queue.
pub fn queue_full(
    shared: &Shared,
    conn: &ConnInfo,
    req: &LoggedRequest<'_>,
    registration: &crate::registry::Registration,
) -> Response<Body> {
    let err = HttpSysError::QueueFull;
    tracing::debug!(
        queue = %registration.queue,
        limit = registration.stats.limit(),
        "request queue full"
    );
    let record = HttpErrRecord {
        queue: Some(registration.stats.name()),
        ..request_record(conn, req, err.status().as_u16(), err.reason())
    };
    shared.httperr_log.send(record.line());
    err.response()
}

/// The answer to a request the proxy could not forward; HTTP.sys's 503
/// also goes to httperr.log.
pub fn proxy_failed(
    shared: &Shared,
    conn: &ConnInfo,
    req: &LoggedRequest<'_>,
    err: &ProxyError,
) -> Response<Body> {
    let res = errors::proxy_error_response(err);
    if res.status() == http::StatusCode::SERVICE_UNAVAILABLE {
        log_httperr(shared, conn, req, HttpSysError::ServiceUnavailable);
    }
    res
}

async fn serve_site(
    site: &Site,
    conn: &ConnInfo,
    route: &Route,
    req: Request<RequestBody>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let user = parts.extensions.get::<crate::auth::AuthUser>();
    let request = SiteRequest {
        method: &parts.method,
        raw_path: parts.uri.path(),
        query: parts.uri.query(),
        headers: RequestFields::Map(&parts.headers),
        prefix_segments: route.prefix.segments(),
        conn,
        remote_user: user.map(|u| &*u.0),
    };
    answer_site(site, request, body).await
}

/// A site's answer to `req`, with its error pages and its response
/// headers: shared by hyper's path and the one without hyper
/// (`server::direct`).
pub async fn answer_site(site: &Site, req: SiteRequest<'_>, body: RequestBody) -> Response<Body> {
    let mut res = match site.serve(&req, body).await {
        Ok(res) => res,
        Err(e) => site.error_page(errors::site_error_response(&e)).await,
    };
    site.finish(&mut res, req.conn.https);
    res
}

/// An ACME HTTP-01 validation request: 200 with the key authorization
/// (`text/plain`) for a token of an order in flight, HTTP.sys's 404 for
/// anything else under the prefix, 405 for methods other than GET and HEAD.
fn acme_challenge(
    tokens: &crate::acme::challenge::Http01Tokens,
    route: &Route,
    method: &Method,
    path: &str,
) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        return errors::site_error_response(&crate::site::SiteError::MethodNotAllowed {
            allow: "GET, HEAD",
        });
    }
    let answer = crate::urlprefix::normalize_path_cased(path)
        .ok()
        .and_then(|p| route.prefix.strip_from(&p).map(str::to_owned))
        .and_then(|token| tokens.answer(&token));
    match answer {
        Some(key_authorization) => {
            let mut res = Response::new(Body::full(key_authorization));
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            res
        }
        None => HttpSysError::NotFound.response(),
    }
}

fn log_httperr(shared: &Shared, conn: &ConnInfo, req: &LoggedRequest<'_>, err: HttpSysError) {
    log_httperr_reason(shared, conn, req, err.status().as_u16(), err.reason());
}

/// An httperr.log line.
fn log_httperr_reason(
    shared: &Shared,
    conn: &ConnInfo,
    req: &LoggedRequest<'_>,
    status: u16,
    reason: &str,
) {
    shared
        .httperr_log
        .send(request_record(conn, req, status, reason).line());
}

/// The httperr.log record of a request answered with `status`.
fn request_record<'a>(
    conn: &ConnInfo,
    req: &LoggedRequest<'a>,
    status: u16,
    reason: &'a str,
) -> HttpErrRecord<'a> {
    HttpErrRecord {
        client: conn.peer,
        server: conn.local,
        version: Some(req.version),
        method: Some(req.method),
        uri: Some(req.path),
        status: Some(status),
        reason,
        queue: None,
    }
}

/// Writes the access-log line for a request and its response.
///
/// The size is the `Content-Length`. A streamed body without one (CGI
/// output, a chunked proxied answer) is counted as it goes out, and its
/// line logged when it ends: the line then follows the lines of requests
/// that finished earlier, as in nginx's and Apache's logs.
pub fn log_access(
    shared: &Shared,
    conn: &ConnInfo,
    req: &LoggedRequest<'_>,
    res: &mut Response<Body>,
) {
    let bytes = res
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let streamed = bytes.is_none() && matches!(res.body(), Body::Stream(_));
    let record = AccessRecord {
        client: &conn.client_ip,
        method: req.method,
        target: req.target,
        version: req.version,
        status: res.status().as_u16(),
        bytes: if req.method == "HEAD" { Some(0) } else { bytes },
        referer: req.referer,
        user_agent: req.user_agent,
        user: req.user,
    };
    if streamed && req.method != "HEAD" {
        let line = record.pending(&shared.access_log);
        let body = std::mem::replace(res.body_mut(), Body::empty());
        *res.body_mut() = body.counted(move |bytes| line.finish(bytes));
    } else {
        shared.access_log.send(record.line());
    }
}
