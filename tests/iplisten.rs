//! `netsh http add|delete iplisten`: a non-empty IP listen list restricts
//! the addresses the server listens on, as on HTTP.sys, and the running
//! server follows a change without a restart.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{run_cli, wait_for, TestServer};

fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn netsh(s: &TestServer, line: &str) -> String {
    let args: Vec<&str> = line.split(' ').collect();
    let out = run_cli(&s.config, &args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{line}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_running_server_follows_the_ip_listen_list() {
    let s = TestServer::start_with("", |p| std::fs::write(p.join("a.txt"), "a").unwrap());
    let v4: SocketAddr = ([127, 0, 0, 1], s.port).into();
    let v6: SocketAddr = (std::net::Ipv6Addr::LOCALHOST, s.port).into();
    assert!(listening(v4) && listening(v6));

    let out = netsh(&s, "http add iplisten ipaddress=127.0.0.1");
    assert!(out.contains("IP address successfully added"), "{out}");
    wait_for(Duration::from_secs(10), "[::1] to stop listening", || {
        (!listening(v6)).then_some(())
    });
    // The address still listed is served throughout.
    assert_eq!(s.get("/a.txt").status, 200);

    let out = netsh(&s, "http delete iplisten ipaddress=127.0.0.1");
    assert!(out.contains("IP address successfully deleted"), "{out}");
    // An empty list: GLOBAL.INI's listen= again.
    wait_for(Duration::from_secs(10), "[::1] to listen again", || {
        listening(v6).then_some(())
    });
    assert!(listening(v4));
}

#[test]
fn a_list_in_the_store_applies_from_the_start() {
    let s = TestServer::prepare("", |p| std::fs::write(p.join("a.txt"), "a").unwrap());
    let out = netsh(&s, "http add iplisten ipaddress=::1");
    assert!(out.contains("IP address successfully added"), "{out}");
    let port = s.port;
    let s = s.launch_on((std::net::Ipv6Addr::LOCALHOST, port).into());
    let v4: SocketAddr = ([127, 0, 0, 1], s.port).into();
    assert!(!listening(v4), "127.0.0.1 is not in the IP listen list");
    let v6: SocketAddr = (std::net::Ipv6Addr::LOCALHOST, s.port).into();
    let mut stream = TcpStream::connect(v6).expect("::1 listens");
    use std::io::{Read, Write};
    stream
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let _ = stream.read_to_end(&mut reply);
    assert!(
        reply.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}
