//! The one place where failures become HTTP responses.
//!
//! Two families: the pages HTTP.sys writes itself (byte-identical templates,
//! `Server: Microsoft-HTTPAPI/2.0`, each with its httperr reason), and the
//! answers of portshare's own handlers (static site, CGI, proxy), which carry
//! `Server: portshare/<version>`.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::body::Body;
use crate::headers::SERVER;
use crate::site::cgi::CgiError;
use crate::site::SiteError;

static HTTPAPI_SERVER: HeaderValue = HeaderValue::from_static("Microsoft-HTTPAPI/2.0");
static US_ASCII_HTML: HeaderValue = HeaderValue::from_static("text/html; charset=us-ascii");
static UTF8_HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
static CLOSE: HeaderValue = HeaderValue::from_static("close");

/// Errors that HTTP.sys answers itself, before or instead of an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HttpSysError {
    #[error("no URL prefix is registered for the request's host")]
    InvalidHostname,
    #[error("the request URL is invalid")]
    InvalidUrl,
    #[error("the request has an invalid header")]
    InvalidHeader,
    #[error("a request header line is longer than MaxFieldLength")]
    FieldTooLong,
    #[error("the request headers are longer than MaxRequestBytes")]
    RequestTooLong,
    #[error("the request is badly formed")]
    BadRequest,
    #[error("the request's HTTP version is not supported")]
    VersionNotSupported,
    #[error("no registered URL prefix matches the path")]
    NotFound,
    #[error("the request URL is longer than the limits")]
    UrlTooLong,
    #[error("the application that registered the URL has gone")]
    ServiceUnavailable,
    /// The registration's request queue holds `RequestQueueLimit` requests
    /// already (HTTP.sys's 503, httperr reason `QueueFull`).
    #[error("the application's request queue is full")]
    QueueFull,
}

struct Page {
    status: StatusCode,
    title: &'static str,
    heading: &'static str,
    text: &'static str,
}

impl HttpSysError {
    fn page(self) -> Page {
        use HttpSysError::*;
        let bad = |heading, text| Page {
            status: StatusCode::BAD_REQUEST,
            title: "Bad Request",
            heading,
            text,
        };
        match self {
            InvalidHostname => bad(
                "Bad Request - Invalid Hostname",
                "The request hostname is invalid.",
            ),
            InvalidUrl => bad("Bad Request - Invalid URL", "The request URL is invalid."),
            InvalidHeader => bad(
                "Bad Request - Invalid Header",
                "The request has an invalid header name.",
            ),
            FieldTooLong | RequestTooLong => bad(
                "Bad Request - Request Too Long",
                "The size of the request headers is too long.",
            ),
            BadRequest => bad("Bad Request", "The request is badly formed."),
            VersionNotSupported => Page {
                status: StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                title: "Version Not Supported",
                heading: "Version Not Supported",
                text: "The request version is not supported.",
            },
            NotFound => Page {
                status: StatusCode::NOT_FOUND,
                title: "Not Found",
                heading: "Not Found",
                text: "The requested resource is not found.",
            },
            UrlTooLong => Page {
                status: StatusCode::URI_TOO_LONG,
                title: "Request URL Too Long",
                heading: "Request URL Too Long",
                text: "The request URL is too long.",
            },
            ServiceUnavailable | QueueFull => Page {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "Service Unavailable",
                heading: "Service Unavailable",
                text: "The service is unavailable.",
            },
        }
    }

    pub fn status(self) -> StatusCode {
        self.page().status
    }

    /// The `s-reason` field of the httperr log.
    pub fn reason(self) -> &'static str {
        use HttpSysError::*;
        match self {
            InvalidHostname => "Hostname",
            InvalidUrl => "URL",
            InvalidHeader => "Header",
            FieldTooLong => "FieldLength",
            RequestTooLong => "RequestLength",
            BadRequest => "BadRequest",
            VersionNotSupported => "Version_N/S",
            NotFound => "NotFound",
            UrlTooLong => "URL_Length",
            ServiceUnavailable => "AppOffline",
            QueueFull => "QueueFull",
        }
    }

    /// The HTML page, in HTTP.sys's template (CRLF line ends).
    pub fn body(self) -> String {
        let p = self.page();
        format!(
            "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\">\r\n\
             <HTML><HEAD><TITLE>{}</TITLE>\r\n\
             <META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\"></HEAD>\r\n\
             <BODY><h2>{}</h2>\r\n\
             <hr><p>HTTP Error {}. {}</p>\r\n\
             </BODY></HTML>\r\n",
            p.title,
            p.heading,
            p.status.as_u16(),
            p.text
        )
    }

    /// The complete response HTTP.sys would send, headers in its order.
    pub fn response(self) -> Response<Body> {
        let body = self.body();
        let len = body.len();
        let mut res = Response::new(Body::full(body));
        *res.status_mut() = self.status();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, US_ASCII_HTML.clone());
        h.insert(header::SERVER, HTTPAPI_SERVER.clone());
        if let Ok(date) =
            HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now()))
        {
            h.insert(header::DATE, date);
        }
        h.insert(header::CONNECTION, CLOSE.clone());
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        res
    }

    /// Raw bytes of the response, for errors found before hyper has a request
    /// (malformed request heads): status line, headers, body.
    pub fn raw_response(self) -> Bytes {
        let p = self.page();
        let body = self.body();
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: text/html; charset=us-ascii\r\nServer: Microsoft-HTTPAPI/2.0\r\nDate: {}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
            p.status.as_u16(),
            match p.status.as_u16() {
                414 => "Request-URI Too Long",
                s => p.status.canonical_reason().unwrap_or(if s >= 500 { "Error" } else { "Bad Request" }),
            },
            httpdate::fmt_http_date(std::time::SystemTime::now()),
            body.len(),
            body
        )
        .into()
    }
}

/// A short page for portshare's own error answers.
fn own_page(status: StatusCode, detail: &str) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body><h1>{code} {reason}</h1>\n<p>{detail}</p></body></html>\n",
        code = status.as_u16()
    );
    let len = body.len();
    let mut res = Response::new(Body::full(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, UTF8_HTML.clone());
    res.headers_mut().insert(header::SERVER, SERVER.clone());
    // hyper would add it on the wire anyway; set here, the access log's
    // size field (read from this header) shows the page's size, not `-`.
    res.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    res
}

/// The built-in site's answer to a failed request.
pub fn site_error_response(err: &SiteError) -> Response<Body> {
    match err {
        SiteError::NotFound => own_page(
            StatusCode::NOT_FOUND,
            "The requested file was not found on this server.",
        ),
        SiteError::BadPath => own_page(StatusCode::BAD_REQUEST, "The request path is not valid."),
        SiteError::MethodNotAllowed { allow } => {
            let mut res = own_page(
                StatusCode::METHOD_NOT_ALLOWED,
                "This method is not allowed for the requested resource.",
            );
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            res
        }
        SiteError::RangeNotSatisfiable { len } => {
            let mut res = own_page(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "The requested range is not satisfiable.",
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            res
        }
        SiteError::Io(e) => {
            tracing::error!(error = %e, "reading a file from the public folder failed");
            own_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server could not read the requested file.",
            )
        }
        SiteError::Cgi(e) => cgi_error_response(e),
    }
}

/// A CGI script that gave no usable answer: 504 when it ran out of time,
/// 403 when it may not be executed, otherwise 502 (the "gateway" — the
/// script — failed). The details go to the log, not to the client.
fn cgi_error_response(err: &CgiError) -> Response<Body> {
    tracing::error!(error = %err, "CGI script failed");
    match err {
        CgiError::Timeout { .. } => own_page(
            StatusCode::GATEWAY_TIMEOUT,
            "The script did not answer in time.",
        ),
        CgiError::NotExecutable { .. } => own_page(
            StatusCode::FORBIDDEN,
            "The server is not allowed to run the requested script.",
        ),
        CgiError::Spawn { .. }
        | CgiError::Exited { .. }
        | CgiError::BadHeaders { .. }
        | CgiError::Io { .. } => own_page(
            StatusCode::BAD_GATEWAY,
            "The script did not produce a valid response.",
        ),
    }
}

/// A proxied application's failure: gone or unreachable → HTTP.sys's 503
/// (what HTTP.sys answers when a request queue has no process behind it);
/// too slow → 504; an answer that isn't HTTP → 502.
pub fn proxy_error_response(err: &crate::proxy::ProxyError) -> Response<Body> {
    use crate::proxy::ProxyError;
    tracing::warn!(error = %err, "forwarding to the application failed");
    match err {
        ProxyError::Loop => own_page(
            StatusCode::LOOP_DETECTED,
            "The request came back to this server through its own proxy.",
        ),
        ProxyError::Timeout(_) => own_page(
            StatusCode::GATEWAY_TIMEOUT,
            "The application did not answer in time.",
        ),
        ProxyError::BadResponse(_) => own_page(
            StatusCode::BAD_GATEWAY,
            "The application did not send a valid response.",
        ),
        // The guard has answered for itself (HTTP/1.x); on HTTP/2 the client
        // gets HTTP.sys's page for a bad request.
        ProxyError::ClientBody => HttpSysError::BadRequest.response(),
        ProxyError::Unreachable(_)
        | ProxyError::Gone(_)
        | ProxyError::BadBackend(_)
        | ProxyError::Invalid { .. } => HttpSysError::ServiceUnavailable.response(),
    }
}

/// A request under a password-protected prefix (`crate::auth`) that may not
/// go on: `401` with the Basic challenge (also for wrong credentials, so
/// the browser asks again), `403` over plain HTTP, `429` with `Retry-After`
/// for an address that failed too often, `503` when the password checks
/// are swamped.
pub fn auth_response(denied: &crate::auth::AuthDenied) -> Response<Body> {
    use crate::auth::AuthDenied;
    match denied {
        AuthDenied::Missing { realm } | AuthDenied::Failed { realm } => {
            let mut res = own_page(
                StatusCode::UNAUTHORIZED,
                "This folder is password-protected: give a user name and password.",
            );
            // The realm was checked when the configuration was read (no
            // quote, backslash or control character).
            if let Ok(v) =
                HeaderValue::from_str(&format!("Basic realm=\"{realm}\", charset=\"UTF-8\""))
            {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            res
        }
        AuthDenied::HttpsRequired => own_page(
            StatusCode::FORBIDDEN,
            "This folder is password-protected and passwords are not accepted over plain HTTP, \
             where anyone on the way could read them. Use HTTPS: the same address with https://.",
        ),
        AuthDenied::Throttled { retry_after } => {
            let mut res = own_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many wrong passwords from this address; try again later.",
            );
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            res
        }
        AuthDenied::Busy => {
            let mut res = own_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy checking passwords; try again in a moment.",
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            res
        }
    }
}
