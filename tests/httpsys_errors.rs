//! HTTP.sys's own error answers, byte for byte, and their httperr lines.

mod common;

use std::time::Duration;

use common::{wait_for, TestServer};

/// The HTTP.sys error page template (docs/httpsys.md#error-pages).
fn page(title: &str, heading: &str, code: u16, text: &str) -> String {
    format!(
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\">\r\n<HTML><HEAD><TITLE>{title}</TITLE>\r\n<META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\"></HEAD>\r\n<BODY><h2>{heading}</h2>\r\n<hr><p>HTTP Error {code}. {text}</p>\r\n</BODY></HTML>\r\n"
    )
}

/// Checks a raw response against HTTP.sys's exact status line, headers
/// (order and case; the Date value varies) and body.
fn assert_httpsys(raw: &[u8], status_line: &str, body: &str) {
    let text = String::from_utf8_lossy(raw);
    let (head, got_body) = text.split_once("\r\n\r\n").expect("a response head");
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines[0], status_line, "{text}");
    assert_eq!(
        lines[1], "Content-Type: text/html; charset=us-ascii",
        "{text}"
    );
    assert_eq!(lines[2], "Server: Microsoft-HTTPAPI/2.0", "{text}");
    assert!(
        lines[3].starts_with("Date: ") && lines[3].ends_with(" GMT"),
        "{text}"
    );
    assert_eq!(lines[4], "Connection: close", "{text}");
    assert_eq!(
        lines[5],
        format!("Content-Length: {}", body.len()),
        "{text}"
    );
    assert_eq!(lines.len(), 6, "{text}");
    assert_eq!(got_body, body);
}

fn server() -> TestServer {
    TestServer::start_with("host_name=www.site.test", |p| {
        std::fs::write(p.join("index.html"), "home").unwrap();
    })
}

fn httperr_has(s: &TestServer, needle: &str) -> String {
    let log = s.logs().join("httperr.log");
    wait_for(Duration::from_secs(2), needle, || {
        std::fs::read_to_string(&log)
            .ok()
            .and_then(|t| t.lines().find(|l| l.contains(needle)).map(str::to_owned))
    })
}

#[test]
fn invalid_hostname_is_334_bytes() {
    let s = server();
    let raw = s.raw(b"GET /x HTTP/1.1\r\nHost: other.test\r\n\r\n");
    let body = page(
        "Bad Request",
        "Bad Request - Invalid Hostname",
        400,
        "The request hostname is invalid.",
    );
    assert_eq!(body.len(), 334);
    assert_httpsys(&raw, "HTTP/1.1 400 Bad Request", &body);
    let line = httperr_has(&s, " Hostname ");
    // date time c-ip c-port s-ip s-port cs-version cs-method cs-uri sc-status s-siteid s-reason s-queuename
    let f: Vec<&str> = line.split(' ').collect();
    assert_eq!(f.len(), 13, "{line}");
    assert_eq!(f[2], "127.0.0.1");
    assert_eq!(f[4], "127.0.0.1");
    assert_eq!(f[5], s.port.to_string());
    assert_eq!(
        &f[6..],
        ["HTTP/1.1", "GET", "/x", "400", "-", "Hostname", "-"]
    );
}

#[test]
fn not_found_for_unregistered_path() {
    let s = TestServer::start_with("host_name=http://www.site.test:{port}/app/", |p| {
        std::fs::write(p.join("x.txt"), "x").unwrap()
    });
    let ok =
        s.request("GET /app/x.txt HTTP/1.1\r\nHost: www.site.test\r\nConnection: close\r\n\r\n");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.text(), "x");
    let raw = s.raw(b"GET /other HTTP/1.1\r\nHost: www.site.test\r\n\r\n");
    assert_httpsys(
        &raw,
        "HTTP/1.1 404 Not Found",
        &page(
            "Not Found",
            "Not Found",
            404,
            "The requested resource is not found.",
        ),
    );
}

#[test]
fn malformed_url() {
    let s = server();
    for target in ["nonsense", "/a%00b", "/%2e%2e/%2e%2e/x", "/a%zz"] {
        let raw = s.raw(format!("GET {target} HTTP/1.1\r\nHost: www.site.test\r\n\r\n").as_bytes());
        assert_httpsys(
            &raw,
            "HTTP/1.1 400 Bad Request",
            &page(
                "Bad Request",
                "Bad Request - Invalid URL",
                400,
                "The request URL is invalid.",
            ),
        );
    }
    httperr_has(&s, " URL ");
}

#[test]
fn bad_header() {
    let s = server();
    let raw = s.raw(b"GET / HTTP/1.1\r\nHost: www.site.test\r\nBad Header: x\r\n\r\n");
    assert_httpsys(
        &raw,
        "HTTP/1.1 400 Bad Request",
        &page(
            "Bad Request",
            "Bad Request - Invalid Header",
            400,
            "The request has an invalid header name.",
        ),
    );
    httperr_has(&s, " Header ");
}

#[test]
fn headers_too_long() {
    let s = server();
    let too_long = page(
        "Bad Request",
        "Bad Request - Request Too Long",
        400,
        "The size of the request headers is too long.",
    );
    // One header line over MaxFieldLength (16384).
    let raw = s.raw(
        format!(
            "GET / HTTP/1.1\r\nHost: www.site.test\r\nX-Big: {}\r\n\r\n",
            "a".repeat(17000)
        )
        .as_bytes(),
    );
    assert_httpsys(&raw, "HTTP/1.1 400 Bad Request", &too_long);
    httperr_has(&s, " FieldLength ");
    // Many small headers over MaxRequestBytes (16384) in total.
    let many: String = (0..40)
        .map(|i| format!("X-H{i}: {}\r\n", "b".repeat(500)))
        .collect();
    let raw = s.raw(format!("GET / HTTP/1.1\r\nHost: www.site.test\r\n{many}\r\n").as_bytes());
    assert_httpsys(&raw, "HTTP/1.1 400 Bad Request", &too_long);
    httperr_has(&s, " RequestLength ");
}

#[test]
fn url_too_long() {
    let s = server();
    let long: String = "/abcdefghij".repeat(1700);
    let raw = s.raw(format!("GET {long} HTTP/1.1\r\nHost: www.site.test\r\n\r\n").as_bytes());
    assert_httpsys(
        &raw,
        "HTTP/1.1 414 Request-URI Too Long",
        &page(
            "Request URL Too Long",
            "Request URL Too Long",
            414,
            "The request URL is too long.",
        ),
    );
    httperr_has(&s, " URL_Length ");
}

#[test]
fn limits_come_from_the_http_section() {
    let s = TestServer::start("\n[http]\nMaxFieldLength=100\n");
    let r = s.request(&format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(120)
    ));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Request Too Long"));
    let r = s.request("GET / HTTP/1.1\r\nHost: x\r\nX-A: short\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 404); // empty public dir, but past the checks
}

#[test]
fn valid_requests_after_checks_keep_alive() {
    let s = server();
    let one = "GET / HTTP/1.1\r\nHost: www.site.test\r\n\r\n";
    let post = "POST /index.html HTTP/1.1\r\nHost: www.site.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let req = format!(
        "{one}{post}{one}GET / HTTP/1.1\r\nHost: www.site.test\r\nConnection: close\r\n\r\n"
    );
    let out = String::from_utf8_lossy(&s.raw(req.as_bytes())).into_owned();
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 3, "{out}");
    assert_eq!(out.matches("HTTP/1.1 405").count(), 1, "{out}");
}
