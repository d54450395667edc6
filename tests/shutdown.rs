//! SIGTERM stops accepting, lets in-flight requests finish, exits 0.
#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{wait_for, TestServer};

const SIZE: usize = 32 * 1024 * 1024;

#[test]
fn in_flight_slow_download_completes_after_sigterm() {
    let mut s = TestServer::start_with("", |p| {
        std::fs::write(p.join("big.bin"), vec![7u8; SIZE]).unwrap();
    });
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = Vec::new();
    let n = c.read(&mut buf).unwrap();
    got.extend_from_slice(&buf[..n]);

    let pid = s.child.as_ref().unwrap().id();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    // New connections are refused once the listener has closed.
    wait_for(Duration::from_secs(10), "the listener to close", || {
        TcpStream::connect(s.addr()).err().map(|_| ())
    });
    // The slow reader still gets every byte.
    loop {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n");
        if let Some(h) = head_end {
            if got.len() - (h + 4) == SIZE {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(1)); // be a slow client
    }
    let h = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(got.starts_with(b"HTTP/1.1 200 OK"));
    assert_eq!(got.len() - (h + 4), SIZE);
    assert!(got[h + 4..].iter().all(|b| *b == 7));
    drop(c);
    let out = s.terminate_wait();
    assert!(out.status.success(), "exit status {:?}", out.status);
}

#[test]
fn grace_period_bounds_shutdown() {
    let mut s = TestServer::start_with("shutdown_grace=1", |p| {
        std::fs::write(p.join("big.bin"), vec![7u8; SIZE]).unwrap();
    });
    // A client that never reads: the server must still exit after the grace.
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 16];
    c.read_exact(&mut first).unwrap();
    let out = s.terminate();
    assert!(out.status.success(), "exit status {:?}", out.status);
}
