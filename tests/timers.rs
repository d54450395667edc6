//! HTTP.sys timers: header wait (slowloris) and idle connection, each
//! closing the connection without a response and writing an httperr line.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{wait_for, TestServer};

fn server() -> TestServer {
    TestServer::start_with(
        "\n[http]\nHeaderWaitTimeout=1\nIdleConnectionTimeout=2\n",
        |p| std::fs::write(p.join("a.txt"), "a").unwrap(),
    )
}

fn httperr_count(s: &TestServer, reason: &str) -> usize {
    std::fs::read_to_string(s.logs().join("httperr.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!(" {reason} ")))
        .count()
}

/// Reads until EOF; returns what arrived and when the server closed.
fn read_to_close(c: &mut TcpStream) -> (Vec<u8>, Instant) {
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    (out, Instant::now())
}

#[test]
fn slowloris_is_cut_at_header_wait_without_slowing_others() {
    let s = server();
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut c = TcpStream::connect(s.addr()).unwrap();
            c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            c
        })
        .collect();
    // Keep trickling bytes: a byte every 100 ms must not extend the timer.
    let trickle_until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < trickle_until {
        for c in &mut slow {
            let _ = c.write_all(b"a");
        }
        // Other clients are served at once meanwhile.
        let r = s.get("/a.txt");
        assert_eq!(r.status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    for c in &mut slow {
        let (bytes, closed_at) = read_to_close(c);
        assert!(bytes.is_empty(), "no response to a timed-out head");
        assert!(
            closed_at - started < Duration::from_secs(8),
            "cut by the 1 s timer"
        );
    }
    wait_for(Duration::from_secs(2), "Timer_HeaderWait lines", || {
        (httperr_count(&s, "Timer_HeaderWait") >= 20).then_some(())
    });
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let s = server();
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = c.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"));
    let served = Instant::now();
    let (rest, closed_at) = read_to_close(&mut c);
    assert!(rest.is_empty());
    let idle = closed_at - served;
    assert!(
        idle >= Duration::from_millis(1500),
        "closed too early: {idle:?}"
    );
    assert!(idle < Duration::from_secs(10), "closed too late: {idle:?}");
    wait_for(
        Duration::from_secs(2),
        "a Timer_ConnectionIdle line",
        || (httperr_count(&s, "Timer_ConnectionIdle") >= 1).then_some(()),
    );
}

#[test]
fn silent_new_connection_is_closed_by_the_idle_timer() {
    let s = server();
    let mut c = TcpStream::connect(s.addr()).unwrap();
    let (bytes, _) = read_to_close(&mut c);
    assert!(bytes.is_empty());
}

#[test]
fn netsh_timeout_overrides_global_ini() {
    let s = TestServer::prepare("", |_| {});
    let out = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(&s.config)
        .args([
            "http",
            "add",
            "timeout",
            "timeouttype=headerwaittimeout",
            "value=1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let show = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(&s.config)
        .args(["http", "show", "timeout"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("Header Wait Timeout (secs)     : 1"),
        "{text}"
    );
    let s = s.launch(&[]);
    let started = Instant::now();
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let (bytes, closed_at) = read_to_close(&mut c);
    assert!(bytes.is_empty());
    assert!(
        closed_at - started < Duration::from_secs(8),
        "default would be 120 s"
    );
}

#[test]
fn max_connections_refuses_the_extra_connection() {
    let s = TestServer::start_with("\n[http]\nMaxConnections=2\n", |p| {
        std::fs::write(p.join("a.txt"), "a").unwrap()
    });
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = TcpStream::connect(s.addr()).unwrap();
            c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut buf = [0u8; 256];
            let n = c.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            c
        })
        .collect();
    // A third connection is accepted by the OS but closed without an answer.
    let mut third = TcpStream::connect(s.addr()).unwrap();
    let _ = third.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let (bytes, _) = read_to_close(&mut third);
    assert!(bytes.is_empty());
    // Once one closes, a new connection is served again.
    drop(held.pop());
    let r = wait_for(Duration::from_secs(5), "a free connection slot", || {
        let raw = s.raw(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        raw.starts_with(b"HTTP/1.1 200").then_some(raw)
    });
    assert!(r.ends_with(b"a"));
}
