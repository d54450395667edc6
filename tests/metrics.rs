//! `metrics=PREFIX` and `health=PREFIX`: the Prometheus page after some
//! requests (by queue and status class, the latency histogram, open
//! connections, TLS handshakes and the bound certificate's expiry), a
//! metrics prefix kept to loopback, and the health check answering 200 and
//! then 503 once shutdown has begun.
#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::slow_backend::SlowBackend;
use common::{free_port, raw_exchange, wait_for, RawResponse, TestServer};

fn get(addr: SocketAddr, host: &str, path: &str) -> RawResponse {
    RawResponse::parse(&raw_exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    ))
}

/// The value of the sample line that starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn scrape(port: u16) -> String {
    let res = get(
        ([127, 0, 0, 1], port).into(),
        &format!("127.0.0.1:{port}"),
        "/metrics/",
    );
    assert_eq!(res.status, 200, "{}", res.head);
    assert!(
        res.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{}",
        res.head
    );
    res.text()
}

#[test]
fn scrape_counts_requests_by_queue_and_class_and_stays_on_loopback() {
    let mport = free_port();
    let s = TestServer::start_with(
        &format!("metrics=http://127.0.0.1:{mport}/metrics/"),
        |public| std::fs::write(public.join("index.html"), "hello\n").expect("index"),
    );
    for _ in 0..3 {
        assert_eq!(s.get("/index.html").status, 200);
    }
    for _ in 0..2 {
        assert_eq!(s.get("/missing.html").status, 404);
    }
    let text = scrape(mport);
    assert_eq!(
        sample(
            &text,
            "portshare_requests_total{queue=\"site\",class=\"2xx\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "portshare_requests_total{queue=\"site\",class=\"4xx\"}"
        ),
        Some(2.0),
        "{text}"
    );
    let count = sample(&text, "portshare_request_duration_seconds_count").expect("histogram");
    assert!(count >= 5.0, "{text}");
    assert_eq!(
        sample(
            &text,
            "portshare_request_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        Some(count),
        "{text}"
    );
    assert!(
        text.contains("# TYPE portshare_request_duration_seconds histogram"),
        "{text}"
    );
    // The scrape's own connection is open.
    assert!(
        sample(&text, "portshare_open_connections").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(&text, "portshare_sent_bytes_total").is_some_and(|n| n >= 18.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "portshare_queue_limit{queue=\"site\"}"),
        Some(1000.0),
        "{text}"
    );
    assert!(
        text.contains("portshare_tls_handshakes_total{kind=\"full\"} 0"),
        "{text}"
    );

    // The prefix names 127.0.0.1: a connection to ::1 does not reach it.
    if let Ok(mut c) = TcpStream::connect(("::1", mport)) {
        c.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let _ = write!(
            c,
            "GET /metrics/ HTTP/1.1\r\nHost: 127.0.0.1:{mport}\r\nConnection: close\r\n\r\n"
        );
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        let res = RawResponse::parse(&buf);
        assert_ne!(res.status, 200, "{}", res.head);
        assert!(!res.text().contains("portshare_requests_total"));
    }
}

#[test]
fn tls_handshakes_and_certificate_expiry() {
    let mport = free_port();
    let s = TestServer::prepare_tls(
        &format!("metrics=http://127.0.0.1:{mport}/metrics/"),
        |public| std::fs::write(public.join("index.html"), "hello\n").expect("index"),
    )
    .launch(&[]);
    let url = format!("https://localhost:{}/index.html", s.https_port);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = rt.block_on(async {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .resolve("localhost", ([127, 0, 0, 1], s.https_port).into())
            .build()
            .expect("client");
        client.get(&url).send().await.map(|r| r.status().as_u16())
    });
    assert_eq!(status.ok(), Some(200));
    let text = scrape(mport);
    assert!(
        sample(&text, "portshare_tls_handshakes_total{kind=\"full\"}").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    // The first-run certificate is bound: about a year to go.
    let expiry = text
        .lines()
        .find(|l| l.starts_with("portshare_certificate_expiry_seconds{"))
        .unwrap_or_else(|| panic!("no certificate expiry in {text}"));
    let secs: f64 = expiry
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!(secs > 30.0 * 86_400.0, "{expiry}");
    assert!(expiry.contains(&format!(":{}\"", s.https_port)), "{expiry}");
}

/// Splits `bytes` into the responses it holds (each with Content-Length).
fn responses(mut bytes: &[u8]) -> Vec<RawResponse> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = RawResponse::parse(&bytes[..end + 4]);
        let len: usize = head
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let total = (end + 4 + len).min(bytes.len());
        out.push(RawResponse::parse(&bytes[..total]));
        bytes = &bytes[total..];
    }
    out
}

#[test]
fn health_is_200_while_serving_and_503_during_shutdown() {
    let backend = SlowBackend::start();
    let mut s = TestServer::start(&format!(
        "health=http://+:{{port}}/healthz/\n\n[app:slow]\nprefix=http://+:{{port}}/slow/\nbackend=http://127.0.0.1:{}\n",
        backend.port
    ));
    let ok = s.get("/healthz/");
    assert_eq!(ok.status, 200, "{}", ok.head);
    assert_eq!(ok.text(), "ok\n");

    // A slow request in flight, with a health check pipelined behind it on
    // the same connection: the listener closes at SIGTERM, so an open
    // connection is where a load balancer still asks.
    let mut c = TcpStream::connect(s.addr()).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(20))).ok();
    c.write_all(
        b"GET /slow/x HTTP/1.1\r\nHost: localhost\r\n\r\nGET /healthz/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .expect("send");
    wait_for(
        Duration::from_secs(10),
        "the slow request at the backend",
        || (backend.arrived.load(Ordering::SeqCst) >= 1).then_some(()),
    );
    let pid = s.child.as_ref().expect("running").id();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    wait_for(Duration::from_secs(10), "the listener to close", || {
        TcpStream::connect(s.addr()).err().map(|_| ())
    });
    backend.release.store(true, Ordering::SeqCst);
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    let answers = responses(&buf);
    assert_eq!(answers.len(), 2, "{:?}", String::from_utf8_lossy(&buf));
    assert_eq!(answers[0].status, 200);
    assert_eq!(answers[1].status, 503, "{}", answers[1].head);
    assert_eq!(answers[1].text(), "stopping\n");
    let out = s.terminate_wait();
    assert!(out.status.success(), "exit status {:?}", out.status);
}
