//! Keep-alive connections between requests. An idle HTTP/1 connection,
//! plain or TLS, is parked (hyper lets go of it, the socket stays open) and resumed when
//! the client sends again; the client must see one ordinary keep-alive
//! connection throughout.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::accept_all::accepting_client;
use common::{RawResponse, TestServer};
use rustls::{ClientConnection, StreamOwned};

fn server(extra: &str) -> TestServer {
    TestServer::prepare(extra, public_files).launch(&[PARK_LOG])
}

/// The two files every test here asks for.
fn public_files(public: &Path) {
    std::fs::write(public.join("a.txt"), "aaa").unwrap();
    std::fs::write(public.join("b.txt"), "bbbb").unwrap();
}

/// Parking is invisible to a client by design: the server says when it
/// parks and resumes a connection, and the tests count that.
const PARK_LOG: (&str, &str) = ("RUST_LOG", "warn,portshare::park=debug");

/// Stops the server; how many times it parked and resumed a connection.
fn parked_and_resumed(mut s: TestServer) -> (usize, usize) {
    let out = s.terminate();
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (
        log.matches("connection parked").count(),
        log.matches("parked connection resumed").count(),
    )
}

/// Reads exactly one response (Content-Length framed) from `c`.
fn read_response(c: &mut impl Read, buf: &mut Vec<u8>) -> RawResponse {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(h) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..h]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= h + 4 + len {
                let rest = buf.split_off(h + 4 + len);
                let one = std::mem::replace(buf, rest);
                return RawResponse::parse(&one);
            }
        }
        assert!(Instant::now() < deadline, "no complete response");
        let mut chunk = [0u8; 4096];
        let n = c.read(&mut chunk).unwrap();
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `GET path` on `c` and reads its response.
fn get(c: &mut (impl Read + Write), buf: &mut Vec<u8>, path: &str) -> RawResponse {
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    read_response(c, buf)
}

fn connect(s: &TestServer) -> TcpStream {
    let c = TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// The client pauses between requests (it is the client being idle, not a
/// wait for the server): long enough for the connection to be parked
/// (after 250 ms idle).
fn pause() {
    std::thread::sleep(Duration::from_millis(400));
}

/// A shorter pause, for a server with more than 256 connections open, which
/// parks idle connections at once.
fn short_pause() {
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn one_connection_serves_requests_separated_by_idle_time() {
    let s = server("");
    let mut c = connect(&s);
    let mut buf = Vec::new();
    for (path, body) in [("/a.txt", "aaa"), ("/b.txt", "bbbb"), ("/a.txt", "aaa")] {
        let r = get(&mut c, &mut buf, path);
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), body);
        pause();
    }
    let (parked, resumed) = parked_and_resumed(s);
    assert!(
        parked >= 3 && resumed >= 2,
        "parked {parked}, resumed {resumed}"
    );
}

#[test]
fn pipelined_requests_after_an_idle_gap_are_all_answered_in_order() {
    let s = server("");
    let mut c = connect(&s);
    let mut buf = Vec::new();
    assert_eq!(get(&mut c, &mut buf, "/a.txt").text(), "aaa");
    pause();
    c.write_all(
        b"GET /b.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_response(&mut c, &mut buf).text(), "bbbb");
    assert_eq!(read_response(&mut c, &mut buf).text(), "aaa");
    assert_eq!(read_response(&mut c, &mut buf).status, 404);
    let (parked, resumed) = parked_and_resumed(s);
    assert!(
        parked >= 1 && resumed >= 1,
        "parked {parked}, resumed {resumed}"
    );
}

#[test]
fn a_request_split_across_an_idle_gap_is_served() {
    let s = server("");
    let mut c = connect(&s);
    let mut buf = Vec::new();
    assert_eq!(get(&mut c, &mut buf, "/a.txt").status, 200);
    pause();
    // A head that arrives in pieces. (The body comes with the head's end:
    // hyper closes a connection whose unread request body is still on
    // its way when the response is done, parked or not.)
    c.write_all(b"POST /b.txt HTTP/1.1\r\nHo").unwrap();
    pause();
    c.write_all(b"st: x\r\nContent-Le").unwrap();
    pause();
    c.write_all(b"ngth: 5\r\n\r\nhello").unwrap();
    let r = read_response(&mut c, &mut buf);
    assert_eq!(r.status, 405, "{}", r.head);
    pause();
    assert_eq!(get(&mut c, &mut buf, "/b.txt").text(), "bbbb");
    let (parked, resumed) = parked_and_resumed(s);
    assert!(
        parked >= 2 && resumed >= 2,
        "parked {parked}, resumed {resumed}"
    );
}

#[test]
fn connection_close_is_honoured_after_an_idle_gap() {
    let s = server("");
    let mut c = connect(&s);
    let mut buf = Vec::new();
    assert_eq!(get(&mut c, &mut buf, "/a.txt").status, 200);
    pause();
    c.write_all(b"GET /b.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut c, &mut buf);
    assert_eq!(r.text(), "bbbb");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing after the last response");
}

#[test]
fn shutdown_closes_idle_connections_at_once() {
    let mut s = server("shutdown_grace=30");
    let mut idle: Vec<TcpStream> = (0..20).map(|_| connect(&s)).collect();
    let mut buf = Vec::new();
    for c in &mut idle {
        assert_eq!(get(c, &mut buf, "/a.txt").status, 200);
    }
    let asked = Instant::now();
    let out = s.terminate();
    assert!(out.status.success(), "exit status {:?}", out.status);
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "idle connections held the shutdown for {:?} (grace is 30 s)",
        asked.elapsed()
    );
    for c in &mut idle {
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(rest.is_empty());
    }
}

#[test]
fn a_crowded_server_parks_at_once_and_still_serves_every_request() {
    let s = server("");
    // More than 256 open connections: idle ones are parked without delay.
    let crowd: Vec<TcpStream> = (0..300).map(|_| connect(&s)).collect();
    let mut c = connect(&s);
    let mut buf = Vec::new();
    for _ in 0..3 {
        assert_eq!(get(&mut c, &mut buf, "/a.txt").text(), "aaa");
        short_pause();
    }
    c.write_all(b"POST /b.txt HTTP/1.1\r\nHo").unwrap();
    short_pause();
    c.write_all(b"st: x\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    assert_eq!(read_response(&mut c, &mut buf).status, 405);
    short_pause();
    c.write_all(b"GET /b.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut c, &mut buf).text(), "bbbb");
    assert_eq!(read_response(&mut c, &mut buf).text(), "aaa");
    // The crowd was served too, each on its own connection.
    for mut k in crowd.into_iter().take(20) {
        assert_eq!(get(&mut k, &mut Vec::new(), "/b.txt").text(), "bbbb");
    }
    // Parked without the 250 ms delay: the pauses here are 20 ms.
    let (parked, resumed) = parked_and_resumed(s);
    assert!(
        parked >= 3 && resumed >= 3,
        "parked {parked}, resumed {resumed}"
    );
}

/// A TLS connection to the server's HTTPS port, with only `version`.
fn connect_tls(
    s: &TestServer,
    version: &'static rustls::SupportedProtocolVersion,
) -> StreamOwned<ClientConnection, TcpStream> {
    let config = accepting_client(&[version]);
    let name = "localhost".try_into().unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", s.https_port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    StreamOwned::new(conn, tcp)
}

#[test]
fn an_idle_https_connection_is_parked_and_resumed() {
    let s = TestServer::prepare_tls("", public_files).launch(&[PARK_LOG]);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut c = connect_tls(&s, version);
        let mut buf = Vec::new();
        for (path, body) in [("/a.txt", "aaa"), ("/b.txt", "bbbb")] {
            assert_eq!(get(&mut c, &mut buf, path).text(), body, "{version:?}");
            pause();
        }
        // Pipelined after the gap, in one TLS record: the first read of the
        // resumed round takes them all.
        c.write_all(
            b"GET /b.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
        assert_eq!(read_response(&mut c, &mut buf).text(), "bbbb");
        assert_eq!(read_response(&mut c, &mut buf).text(), "aaa");
        pause();
        // A head split across records and an idle gap.
        c.write_all(b"GET /a.txt HTTP/1.1\r\nHo").unwrap();
        c.flush().unwrap();
        pause();
        c.write_all(b"st: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut c, &mut buf).text(), "aaa", "{version:?}");
    }
    let (parked, resumed) = parked_and_resumed(s);
    // Per connection: after each of the two single requests and after the
    // pipelined pair (a partial head is never parked).
    assert!(
        parked >= 6 && resumed >= 6,
        "parked {parked}, resumed {resumed}"
    );
}
