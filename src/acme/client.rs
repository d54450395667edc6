//! The HTTPS client instant-acme talks to the ACME server through: the
//! same hyper + rustls client as instant-acme's own (the system's roots, or
//! `[acme] ca_root`'s; HTTPS only), wrapped so that the `Retry-After` of a
//! refused request can be read.
//!
//! Why a client of our own: instant-acme 0.8 turns a problem document into
//! an [`instant_acme::Error::Api`] and drops the response's headers, so a
//! rate limit's `Retry-After` (RFC 8555 §6.6) never reaches the caller.
//! [`RetryAfter`] keeps the last one an error response carried; the
//! manager orders one name at a time, so after a refused order it is that
//! order's.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

type Inner = HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// The `Retry-After` of the last error response, shared with the client.
#[derive(Debug, Clone, Default)]
pub struct RetryAfter(Arc<Mutex<Option<SystemTime>>>);

impl RetryAfter {
    /// Forgets the last one (before a new order).
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// How long from now the last error response asked to wait, if it did.
    pub fn remaining(&self) -> Option<Duration> {
        let at = (*self.0.lock().unwrap_or_else(|p| p.into_inner()))?;
        Some(
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }

    fn set(&self, at: SystemTime) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }
}

/// instant-acme's client, recording `Retry-After` on error responses.
pub struct RecordingClient {
    inner: Inner,
    retry_after: RetryAfter,
}

impl RecordingClient {
    /// A client trusting `roots`, or the platform's verifier when `None`.
    pub fn new(
        roots: Option<rustls::RootCertStore>,
        retry_after: RetryAfter,
    ) -> Result<RecordingClient, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match roots {
            Some(roots) => builder.with_tls_config(
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            ),
            None => builder
                .with_provider_and_platform_verifier(provider)
                .map_err(|e| e.to_string())?,
        };
        let connector = builder.https_only().enable_http1().enable_http2().build();
        Ok(RecordingClient {
            inner: HyperClient::builder(TokioExecutor::new()).build(connector),
            retry_after,
        })
    }
}

impl HttpClient for RecordingClient {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let response = HttpClient::request(&self.inner, req);
        let retry_after = self.retry_after.clone();
        Box::pin(async move {
            let response = response.await?;
            // Polling an order in progress carries Retry-After too (a
            // success); only a refusal's matters here.
            let status = response.parts.status;
            if status.is_client_error() || status.is_server_error() {
                if let Some(at) = response
                    .parts
                    .headers
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()))
                {
                    retry_after.set(at);
                }
            }
            Ok(response)
        })
    }
}

/// `Retry-After: SECONDS` or `Retry-After: HTTP-DATE` (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<SystemTime> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return now.checked_add(Duration::from_secs(secs));
    }
    httpdate::parse_http_date(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_as_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(now + Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(10))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
