//! A site's response headers: the safe defaults (`X-Content-Type-Options`,
//! `Referrer-Policy`) on every answer unless switched off, `header=` lines,
//! and `hsts=` on HTTPS answers only.

mod common;

use std::time::Duration;

use common::TestServer;

/// An HTTPS GET (the first-run certificate is not trusted here).
fn https_get(s: &TestServer, path: &str) -> reqwest::Response {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _in_runtime = rt.enter();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let url = format!("https://127.0.0.1:{}{path}", s.https_port);
    common::wait_for(Duration::from_secs(10), "an HTTPS answer", || {
        rt.block_on(client.get(&url).send()).ok()
    })
}

#[test]
fn safe_defaults_are_on_every_answer_of_the_site() {
    let s = TestServer::start_with("host_name=localhost\nredirect=/old /new", |p| {
        std::fs::write(p.join("a.txt"), "a").unwrap()
    });
    for (path, status) in [("/a.txt", 200), ("/missing", 404), ("/old", 301)] {
        let r = s.get(path);
        assert_eq!(r.status, status, "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            r.header("referrer-policy"),
            Some("strict-origin-when-cross-origin"),
            "{path}"
        );
        assert_eq!(r.header("strict-transport-security"), None, "{path}");
    }
    // HTTP.sys's own pages are not the site's: byte-exact as before.
    let r = s.request("GET / HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-content-type-options"), None);
}

#[test]
fn defaults_can_be_switched_off_and_header_lines_are_added() {
    let s = TestServer::start_with(
        "security_headers=no\nheader=Permissions-Policy: camera=()\nheader=X-Site: family",
        |p| std::fs::write(p.join("a.txt"), "a").unwrap(),
    );
    let r = s.get("/a.txt");
    assert_eq!(r.header("x-content-type-options"), None);
    assert_eq!(r.header("referrer-policy"), None);
    assert_eq!(r.header("permissions-policy"), Some("camera=()"));
    assert_eq!(r.header("x-site"), Some("family"));
    assert_eq!(s.get("/missing").header("x-site"), Some("family"));
}

#[test]
fn hsts_is_sent_over_https_only() {
    let s = TestServer::prepare_tls("hsts=31536000 includeSubDomains", |p| {
        std::fs::write(p.join("a.txt"), "a").unwrap()
    })
    .launch(&[]);
    let res = https_get(&s, "/a.txt");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=31536000; includeSubDomains")
    );
    assert_eq!(
        res.headers()
            .get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
    let plain = s.get("/a.txt");
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("strict-transport-security"), None);
}
