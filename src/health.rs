//! `metrics=PREFIX` and `health=PREFIX`: the pages a monitor and a load
//! balancer (or a Kubernetes probe) ask, registered like any other prefix so
//! that they can be kept to loopback (`http://127.0.0.1:9090/metrics/`) or
//! put behind an `[auth:NAME]`, and the request-queue limits of the
//! configured registrations.
//!
//! Separate from `metrics`, which sits below `registry` so that every
//! layer can count into it; this module builds registrations, so it sits
//! above `registry`.

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::body::Body;
use crate::config::Settings;
use crate::registry::{Handler, NewRegistration, Owner, QueueLimits, Registry};

/// The request queue of the metrics page.
pub const METRICS_QUEUE: &str = "portshare-metrics";
/// The request queue of the health check.
pub const HEALTH_QUEUE: &str = "portshare-health";

/// Sets the request-queue limits of the configured registrations
/// (`RequestQueueLimit`, each `[app:NAME]`'s `queue_limit=`) and returns the
/// registrations of `metrics=` and `health=` for `register_configured`.
pub fn configured(registry: &Registry, settings: &Settings) -> Vec<NewRegistration> {
    registry.set_queue_limits(QueueLimits {
        default: settings.limits.request_queue_limit,
        by_queue: settings
            .apps
            .iter()
            .filter_map(|a| Some((a.name.clone(), a.queue_limit?)))
            .collect(),
    });
    let endpoint =
        |prefix: &Option<crate::urlprefix::UrlPrefix>, key: &str, queue: &str, handler| {
            prefix.as_ref().map(|p| NewRegistration {
                owner: Owner::Config {
                    name: key.to_owned(),
                },
                queue: queue.to_owned(),
                prefixes: vec![p.clone()],
                handler,
            })
        };
    [
        endpoint(
            &settings.metrics,
            "metrics",
            METRICS_QUEUE,
            Handler::Metrics,
        ),
        endpoint(&settings.health, "health", HEALTH_QUEUE, Handler::Health),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Only GET and HEAD are answered; anything else gets 405, as a static file.
fn method_allowed(method: &Method) -> Option<Response<Body>> {
    (method != Method::GET && method != Method::HEAD).then(|| {
        crate::errors::site_error_response(&crate::site::SiteError::MethodNotAllowed {
            allow: "GET, HEAD",
        })
    })
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut res = Response::new(Body::full(body));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // A monitor wants now's value, never a cache's.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The health check: 200 `ok` while the server accepts requests, 503
/// `stopping` once shutdown has begun, so a load balancer sends new
/// requests elsewhere while in-flight ones finish.
pub fn health(method: &Method, stopping: bool) -> Response<Body> {
    if let Some(refused) = method_allowed(method) {
        return refused;
    }
    if stopping {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "stopping\n".to_owned(),
        )
    } else {
        text(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ok\n".to_owned(),
        )
    }
}

/// The metrics page (Prometheus text format 0.0.4).
pub fn metrics(method: &Method, open_connections: usize) -> Response<Body> {
    if let Some(refused) = method_allowed(method) {
        return refused;
    }
    text(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        crate::metrics::render(open_connections),
    )
}
