//! One request's path through the server: checks → router → handler →
//! response + access-log line.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, Request, Response};
use hyper::body::Incoming;

use crate::body::Body;
use crate::config::Settings;
use crate::errors;
use crate::logs::{AccessRecord, LineSink, Logs};
use crate::site::{Site, SiteRequest};

/// What a handler knows about the connection a request came on.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub https: bool,
}

/// State shared by every connection.
pub struct Shared {
    pub settings: Arc<Settings>,
    pub site: Site,
    pub access_log: LineSink,
    pub httperr_log: LineSink,
}

impl Shared {
    pub fn new(settings: Arc<Settings>, site: Site, logs: &Logs) -> Shared {
        Shared {
            settings,
            site,
            access_log: logs.access.clone(),
            httperr_log: logs.httperr.clone(),
        }
    }
}

fn version_str(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let site_req = SiteRequest {
        method: &parts.method,
        raw_path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        prefix_segments: 0,
        conn: &conn,
    };
    let res = match shared.site.serve(&site_req, body).await {
        Ok(res) => res,
        Err(e) => errors::site_error_response(&e),
    };
    log_access(&shared, &conn, &parts, &res);
    Ok(res)
}

fn log_access(
    shared: &Shared,
    conn: &ConnInfo,
    parts: &http::request::Parts,
    res: &Response<Body>,
) {
    let header = |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let bytes = res
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let record = AccessRecord {
        client: conn.peer,
        method: parts.method.as_str(),
        target,
        version: version_str(parts.version),
        status: res.status().as_u16(),
        bytes: if parts.method == http::Method::HEAD {
            Some(0)
        } else {
            bytes
        },
        referer: header(header::REFERER),
        user_agent: header(header::USER_AGENT),
    };
    shared.access_log.send(record.line());
}
