//! Reverse proxy to registered application backends. (Being written.)

use std::net::SocketAddr;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::Body;
use crate::dispatch::ConnInfo;

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("backend '{0}' is not http://HOST:PORT or a Unix socket path")]
    BadBackend(String),
    #[error("the backend is not reachable: {0}")]
    Unreachable(String),
}

/// Where an application listens.
#[derive(Debug)]
pub enum Backend {
    Tcp(SocketAddr),
}

impl Backend {
    pub fn parse(spec: &str) -> Result<Backend, ProxyError> {
        let rest = spec
            .strip_prefix("http://")
            .ok_or_else(|| ProxyError::BadBackend(spec.to_owned()))?;
        let rest = rest.trim_end_matches('/');
        rest.parse()
            .map(Backend::Tcp)
            .map_err(|_| ProxyError::BadBackend(spec.to_owned()))
    }

    /// Forwards one request.
    pub async fn forward(
        &self,
        _req: Request<Incoming>,
        _conn: &ConnInfo,
    ) -> Result<Response<Body>, ProxyError> {
        Err(ProxyError::Unreachable(
            "proxying is not implemented yet".into(),
        ))
    }
}
