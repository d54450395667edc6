//! The HTTP edge against a hostile client (issue 17): each test sends an
//! attack's raw bytes and asserts that HTTP.sys's checks and timers still
//! hold — after an `Upgrade` that was not answered with `101`, after a head
//! that ends in `\n\r\n`, on HTTP/2 connections that go quiet or keep their
//! windows shut, for slow readers, and for malformed chunked bodies.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{wait_for, TestServer};

fn httperr(s: &TestServer) -> String {
    std::fs::read_to_string(s.logs().join("httperr.log")).unwrap_or_default()
}

fn wait_httperr(s: &TestServer, needle: &str) -> String {
    wait_for(Duration::from_secs(10), needle, || {
        httperr(s)
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_owned)
    })
}

/// Reads one response with a `Content-Length` (or none: up to the close).
fn read_response(c: &mut TcpStream) -> String {
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(len) = len {
                if got.len() >= end + 4 + len {
                    return String::from_utf8_lossy(&got[..end + 4 + len]).into_owned();
                }
            }
        }
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads until the server closes; how long it took.
fn time_to_close(c: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    c.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 65536];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return started.elapsed(),
            Err(e) => panic!("the server did not close the connection within {limit:?}: {e}"),
        }
    }
}

fn site(http: &str) -> TestServer {
    TestServer::start_with(&format!("\n[http]\n{http}\n"), |p| {
        std::fs::write(p.join("a.txt"), "a").unwrap();
    })
}

#[test]
fn upgrade_not_answered_with_101_keeps_the_checks() {
    for upgrade in [
        "Upgrade: websocket\r\n",
        "Upgrade: websocket\r\nConnection: Upgrade\r\n",
    ] {
        let s = site("HeaderWaitTimeout=1");
        let mut c = TcpStream::connect(s.addr()).unwrap();
        write!(c, "GET /a.txt HTTP/1.1\r\nHost: x\r\n{upgrade}\r\n").unwrap();
        let first = read_response(&mut c);
        assert!(first.starts_with("HTTP/1.1 200 OK"), "{first}");
        // MaxFieldLength still applies on this connection.
        let long = "a".repeat(20_000);
        write!(
            c,
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Long: {long}\r\n\r\n"
        )
        .unwrap();
        let second = read_response(&mut c);
        assert!(
            second.starts_with("HTTP/1.1 400 Bad Request"),
            "{upgrade:?}: {second}"
        );
        wait_httperr(&s, " FieldLength ");

        // And the header-wait timer.
        let mut c = TcpStream::connect(s.addr()).unwrap();
        write!(c, "GET /a.txt HTTP/1.1\r\nHost: x\r\n{upgrade}\r\n").unwrap();
        let first = read_response(&mut c);
        assert!(first.starts_with("HTTP/1.1 200 OK"), "{first}");
        c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        let took = time_to_close(&mut c, Duration::from_secs(10));
        assert!(took < Duration::from_secs(5), "{took:?}");
        wait_httperr(&s, " Timer_HeaderWait ");
    }
}

#[test]
fn connect_not_answered_with_2xx_keeps_the_checks() {
    let s = site("");
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.write_all(b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n")
        .unwrap();
    let first = read_response(&mut c);
    assert!(!first.starts_with("HTTP/1.1 2"), "{first}");
    if first.to_ascii_lowercase().contains("connection: close") {
        return; // closed: nothing can follow unchecked
    }
    let long = "b".repeat(300);
    write!(c, "GET /{long} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let second = read_response(&mut c);
    assert!(second.starts_with("HTTP/1.1 400 Bad Request"), "{second}");
}

#[test]
fn head_ending_in_lf_crlf_does_not_let_the_next_head_past_the_checks() {
    let s = site("");
    let mut c = TcpStream::connect(s.addr()).unwrap();
    let long = "s".repeat(300); // UrlSegmentMaxLength is 260
    write!(
        c,
        "GET /a.txt HTTP/1.1\nHost: x\n\r\nGET /{long} HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    // The server closes after the error page: read both answers to the end.
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut both = Vec::new();
    let _ = c.read_to_end(&mut both);
    let both = String::from_utf8_lossy(&both);
    assert!(both.starts_with("HTTP/1.1 200 OK"), "{both}");
    let second = &both[both.find("\r\n\r\na").expect("the first body") + 5..];
    assert!(second.starts_with("HTTP/1.1 400 Bad Request"), "{both}");
    assert!(second.contains("Invalid URL"), "{both}");
    wait_httperr(&s, " URL ");
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

#[test]
fn http2_connection_with_no_stream_is_closed_at_the_idle_timeout() {
    let s = site("IdleConnectionTimeout=1");
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.write_all(H2_PREFACE).unwrap();
    c.write_all(H2_SETTINGS).unwrap();
    let took = time_to_close(&mut c, Duration::from_secs(10));
    assert!(took < Duration::from_secs(4), "{took:?}");
    wait_httperr(&s, " Timer_ConnectionIdle ");
}

/// An HTTP/2 client that reads response heads but keeps every window shut.
#[test]
fn http2_streams_held_by_shut_windows_end_the_connection() {
    let s = TestServer::start_with(
        "\n[http]\nMinSendRateWindow=1\nIdleConnectionTimeout=60\n",
        |p| std::fs::write(p.join("big.bin"), vec![7u8; 1 << 20]).unwrap(),
    );
    let addr = s.addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .initial_stream_window_size(0)
                .initial_connection_window_size(65_535)
                .handshake::<_, http_body_util::Empty<bytes::Bytes>>(hyper_util::rt::TokioIo::new(
                    tcp,
                ))
                .await
                .unwrap();
        let conn = tokio::spawn(conn);
        let mut held = Vec::new();
        for _ in 0..16 {
            let req = http::Request::get(format!("http://{addr}/big.bin"))
                .body(http_body_util::Empty::new())
                .unwrap();
            send.ready().await.unwrap();
            let res = send.send_request(req).await.unwrap();
            assert_eq!(res.status(), 200);
            held.push(res); // bodies never read
        }
        let started = Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(15), conn).await;
        assert!(ended.is_ok(), "the connection is still open after 15 s");
        assert!(started.elapsed() < Duration::from_secs(8));
    });
    wait_httperr(&s, " Timer_MinBytesPerSecond ");
}

/// An HTTP/1.1 client that never reads its response.
#[test]
fn http1_reader_below_min_send_rate_is_disconnected() {
    let size = 64 << 20; // more than loopback's socket buffers hold
    let s = TestServer::start_with("\n[http]\nMinSendRateWindow=1\n", |p| {
        std::fs::write(p.join("big.bin"), vec![7u8; size]).unwrap()
    });
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    wait_httperr(&s, " Timer_MinBytesPerSecond ");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("not closed: {e}"),
        }
    }
    assert!(got < size, "the whole response arrived ({got} bytes)");
}

/// A backend that answers every request `200 ok`, and counts them.
fn backend() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    // One answer per request head seen.
                    while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                        got.drain(..end + 4);
                        if head.contains("transfer-encoding: chunked") {
                            // Consume up to the last chunk.
                            while !got.windows(5).any(|w| w == b"0\r\n\r\n") {
                                match stream.read(&mut buf) {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => got.extend_from_slice(&buf[..n]),
                                }
                            }
                            if let Some(i) = got.windows(5).position(|w| w == b"0\r\n\r\n") {
                                got.drain(..i + 5);
                            }
                        }
                        seen.fetch_add(1, Ordering::SeqCst);
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    }
                }
            });
        }
    });
    (port, count)
}

#[test]
fn malformed_chunked_bodies_are_400_bad_request_not_an_application_failure() {
    let (bport, _) = backend();
    let s = TestServer::start(&format!(
        "\n[app:api]\nprefix=http://+:{{port}}/api/\nbackend=http://127.0.0.1:{bport}\n"
    ));
    let good = "5;name=value;quoted=\"a b\"\r\nhello\r\n0\r\n\r\n";
    let mut c = TcpStream::connect(s.addr()).unwrap();
    write!(
        c,
        "POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{good}"
    )
    .unwrap();
    let res = read_response(&mut c);
    assert!(res.starts_with("HTTP/1.1 200 OK"), "{res}");

    for bad in [
        "+5\r\nhello\r\n0\r\n\r\n",
        " 5\r\nhello\r\n0\r\n\r\n",
        "5\r\nhelloXY0\r\n\r\n",
        "5;=x\r\nhello\r\n0\r\n\r\n",
        "5;a=\"b\r\nhello\r\n0\r\n\r\n",
        "5 x\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "5\r\nhello\r\n0\r\nbad trailer\r\n\r\n",
    ] {
        let mut c = TcpStream::connect(s.addr()).unwrap();
        write!(
            c,
            "POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{bad}"
        )
        .unwrap();
        let res = read_response(&mut c);
        assert!(
            res.starts_with("HTTP/1.1 400 Bad Request"),
            "{bad:?}: {res}"
        );
    }
    wait_for(Duration::from_secs(10), "eight BadRequest lines", || {
        (httperr(&s).matches(" BadRequest ").count() >= 8).then_some(())
    });
    let log = httperr(&s);
    assert!(!log.contains("AppOffline"), "{log}");
}

/// Bytes HTTP.sys takes in a URL and hyper's parsers refuse: accepted,
/// percent-encoded on the way in, and answered and logged like any other
/// request (they once got a bare `400` and no log line).
#[test]
fn url_bytes_http_sys_accepts_are_answered_and_logged() {
    let s = site("");
    for target in ["/a.txt?x=\"y\"", "/a.txt?q=<b>", "/a.txt?`{|}^"] {
        let res = s.get(target);
        assert_eq!(res.status, 200, "{target}");
    }
    let res = s.get("/no<such>file");
    assert_eq!(res.status, 404);
    let log = wait_for(Duration::from_secs(10), "access log lines", || {
        let log = std::fs::read_to_string(s.logs().join("access.log")).unwrap_or_default();
        (log.lines().count() >= 4).then_some(log)
    });
    assert!(log.contains("/a.txt?q=%3Cb%3E"), "{log}");
    assert!(log.contains("/no%3Csuch%3Efile HTTP/1.1\" 404"), "{log}");
}
