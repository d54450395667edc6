//! HTTP.sys's request-queue limit: an application with `queue_limit=2` and a
//! backend that holds its answers; the third concurrent request gets
//! HTTP.sys's 503 page and an httperr line with reason `QueueFull`, and
//! `http show servicestate view=requestq` shows the queue's length and limit.
#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::slow_backend::SlowBackend;
use common::{run_cli, wait_for, RawResponse, TestServer};

fn send(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(20))).ok();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    c
}

fn read_all(mut c: TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    RawResponse::parse(&buf)
}

#[test]
fn third_request_beyond_queue_limit_gets_503_queue_full() {
    let backend = SlowBackend::start();
    let mut s = TestServer::start(&format!(
        "\n[app:slow]\nprefix=http://+:{{port}}/slow/\nbackend=http://127.0.0.1:{}\nqueue_limit=2\n",
        backend.port
    ));
    let first = send(s.addr(), "/slow/1");
    let second = send(s.addr(), "/slow/2");
    wait_for(
        Duration::from_secs(10),
        "two requests at the backend",
        || (backend.arrived.load(Ordering::SeqCst) >= 2).then_some(()),
    );

    // The queue is full: HTTP.sys's 503 page at once.
    let third = read_all(send(s.addr(), "/slow/3"));
    assert_eq!(third.status, 503, "{}", third.head);
    assert!(
        third.text().contains("Service Unavailable"),
        "{}",
        third.text()
    );
    assert_eq!(backend.arrived.load(Ordering::SeqCst), 2);

    // The queue view shows the two in flight and the limit.
    let out = run_cli(
        &s.config,
        &["http", "show", "servicestate", "view=requestq"],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let queue = text
        .split("Request queue name: slow\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no queue 'slow' in {text}"));
    assert!(
        queue.contains("    Max requests: 2\n    Current requests in queue: 2\n"),
        "{text}"
    );
    // Other queues keep RequestQueueLimit's default.
    let site = text
        .split("Request queue name: site\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no queue 'site' in {text}"));
    assert!(
        site.contains("    Max requests: 1000\n    Current requests in queue: 0\n"),
        "{text}"
    );

    backend.release.store(true, Ordering::SeqCst);
    assert_eq!(read_all(first).status, 200);
    assert_eq!(read_all(second).status, 200);
    // Places are given back: the queue takes requests again.
    let again = read_all(send(s.addr(), "/slow/4"));
    assert_eq!(again.status, 200, "{}", again.head);

    // The httperr line: 503, reason QueueFull, the queue's name.
    let httperr = s.logs().join("httperr.log");
    let line = wait_for(
        Duration::from_secs(10),
        "the QueueFull httperr line",
        || {
            std::fs::read_to_string(&httperr)
                .ok()?
                .lines()
                .find(|l| l.contains("QueueFull"))
                .map(str::to_owned)
        },
    );
    assert!(line.contains(" /slow/3 "), "{line}");
    assert!(line.contains(" 503 "), "{line}");
    assert!(line.ends_with(" QueueFull slow"), "{line}");
    s.terminate();
}

#[test]
fn request_queue_limit_in_http_section_applies_to_every_queue() {
    let backend = SlowBackend::start();
    let mut s = TestServer::start(&format!(
        "\n[http]\nRequestQueueLimit=1\n[app:slow]\nprefix=http://+:{{port}}/slow/\nbackend=http://127.0.0.1:{}\n",
        backend.port
    ));
    let first = send(s.addr(), "/slow/1");
    wait_for(Duration::from_secs(10), "a request at the backend", || {
        (backend.arrived.load(Ordering::SeqCst) >= 1).then_some(())
    });
    let second = read_all(send(s.addr(), "/slow/2"));
    assert_eq!(second.status, 503, "{}", second.head);
    backend.release.store(true, Ordering::SeqCst);
    assert_eq!(read_all(first).status, 200);
    s.terminate();
}

#[test]
fn bad_queue_limit_is_refused_at_start() {
    let s = TestServer::prepare(
        "\n[app:a]\nprefix=http://+:{port}/a/\nbackend=http://127.0.0.1:9\nqueue_limit=0\n",
        |_| {},
    );
    let out = run_cli(&s.config, &["serve"]);
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("queue_limit"), "{err}");
}
