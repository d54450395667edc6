//! HTTP.sys URL-prefix routing on the real server: categories, longest
//! match on whole segments, IP-bound prefixes by local address, IPv6.

mod common;

use std::net::SocketAddr;

use common::{raw_exchange, RawResponse, TestServer};

fn get(addr: SocketAddr, host: &str, path: &str) -> RawResponse {
    RawResponse::parse(&raw_exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    ))
}

#[test]
fn longest_match_on_whole_segments() {
    let s = TestServer::start_with("host_name=http://+:{port}/ http://+:{port}/dir/sna/", |p| {
        std::fs::create_dir_all(p.join("dir")).unwrap();
        std::fs::write(p.join("x"), "via /dir/sna/").unwrap();
        std::fs::write(p.join("dir/snap.htm"), "via /").unwrap();
        std::fs::write(p.join("dir/sna"), "sna via /").unwrap();
    });
    assert_eq!(
        get(s.addr(), "a.test", "/dir/sna/x").text(),
        "via /dir/sna/"
    );
    assert_eq!(get(s.addr(), "a.test", "/dir/snap.htm").text(), "via /");
    assert_eq!(get(s.addr(), "a.test", "/dir/sna").text(), "sna via /");
    // Case-insensitive, percent-decoded, dot segments removed.
    assert_eq!(
        get(s.addr(), "a.test", "/DIR/%53na/x").text(),
        "via /dir/sna/"
    );
    assert_eq!(get(s.addr(), "a.test", "/other/../dir/sna/x").status, 400); // site refuses '..'
}

#[test]
fn strong_wildcard_beats_a_longer_explicit_host() {
    let s = TestServer::start_with(
        "host_name=http://+:{port}/a/ http://www.x.test:{port}/a/b/",
        |p| {
            std::fs::create_dir_all(p.join("b")).unwrap();
            std::fs::write(p.join("b/file"), "plus won").unwrap();
            std::fs::write(p.join("file"), "explicit won").unwrap();
        },
    );
    assert_eq!(get(s.addr(), "www.x.test", "/a/b/file").text(), "plus won");
    // `+` claims every host on the port, so a path under no prefix is 404.
    assert_eq!(get(s.addr(), "unknown.test", "/zzz").status, 404);
}

#[test]
fn explicit_host_then_weak_wildcard() {
    let s = TestServer::start_with(
        "host_name=http://www.x.test:{port}/ http://*:{port}/w/",
        |p| {
            std::fs::write(p.join("f"), "file").unwrap();
        },
    );
    assert_eq!(get(s.addr(), "www.x.test", "/f").text(), "file");
    assert_eq!(get(s.addr(), "WWW.X.TEST:1234", "/f").text(), "file");
    assert_eq!(get(s.addr(), "other.test", "/w/f").text(), "file");
    let r = get(s.addr(), "other.test", "/f");
    assert_eq!(r.status, 404, "* claims every host, but not this path");
}

#[test]
fn ip_bound_prefix_matches_by_local_address() {
    // Linux routes all of 127.0.0.0/8 to loopback.
    let s = TestServer::start_with(
        "listen=127.0.0.1,127.0.0.2\nhost_name=http://127.0.0.2:{port}/ http://www.x.test:{port}/",
        |p| std::fs::write(p.join("f"), "ip-bound").unwrap(),
    );
    let v4_2: SocketAddr = ([127, 0, 0, 2], s.port).into();
    assert_eq!(get(v4_2, "anything.test", "/f").text(), "ip-bound");
    let r = get(s.addr(), "anything.test", "/f");
    assert_eq!(r.status, 400, "127.0.0.1 has no prefix for that host");
    assert!(r.text().contains("Invalid Hostname"));
    assert_eq!(get(s.addr(), "www.x.test", "/f").text(), "ip-bound");
}

#[test]
fn ipv6_ip_bound_prefix() {
    let s = TestServer::start_with("host_name=http://[::1]:{port}/", |p| {
        std::fs::write(p.join("f"), "v6").unwrap()
    });
    let v6: SocketAddr = format!("[::1]:{}", s.port).parse().unwrap();
    assert_eq!(get(v6, "[::1]", "/f").text(), "v6");
    assert_eq!(get(s.addr(), "localhost", "/f").status, 400);
}

/// Starts portshare with `ini` and expects it to refuse; returns stderr.
fn refused(ini: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("public")).unwrap();
    let file = dir.path().join("GLOBAL.INI");
    std::fs::write(&file, ini).unwrap();
    let out = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "should refuse: {ini}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_port_serves_one_scheme() {
    let port = common::free_port();
    let err = refused(&format!(
        "[param]\nlisten=127.0.0.1\nhttp_port={port}\nhttps_port=0\n\n[app:x]\nprefix=https://+:{port}/x/\nbackend=http://127.0.0.1:9\n"
    ));
    assert!(err.contains("a port serves one scheme"), "{err}");
}

#[test]
fn invalid_prefix_in_config_is_refused_with_reason() {
    let err = refused("[param]\nhost_name=http://+:80/api\n");
    assert!(
        err.contains("[param] host_name") && err.contains("must end with '/'"),
        "{err}"
    );
}
