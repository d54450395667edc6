//! Static files from public_dir: types, validators, ranges, precompressed
//! siblings, directories, methods, HTTP/2.

mod common;

use std::path::Path;

use common::TestServer;

fn site(p: &Path) {
    std::fs::write(p.join("small.txt"), "x".repeat(100)).unwrap();
    std::fs::write(p.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::create_dir_all(p.join("docs")).unwrap();
    std::fs::write(p.join("docs/index.html"), "docs index").unwrap();
    std::fs::create_dir_all(p.join("empty")).unwrap();
    std::fs::write(p.join("app.js"), "console.log(1)").unwrap();
    std::fs::write(p.join("app.js.gz"), "GZIP-BYTES").unwrap();
    std::fs::write(p.join("app.js.br"), "BROTLI-BYTES").unwrap();
    std::fs::write(p.join("style.css"), "body{}").unwrap();
    std::fs::write(p.join("style.css.gz"), "GZ-CSS").unwrap();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(p.join("big.bin"), big).unwrap();
}

#[test]
fn get_and_head() {
    let s = TestServer::start_with("", site);
    let r = s.get("/small.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "x".repeat(100).as_bytes());
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("100"));
    assert!(r.header("server").unwrap().starts_with("portshare/"));
    assert!(r.header("date").is_some());
    assert!(r.header("etag").is_some());
    assert!(r.header("last-modified").is_some());

    let h = s.request("HEAD /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-length"), Some("100"));
    assert!(h.body.is_empty());
}

#[test]
fn directories_index_and_redirect() {
    let s = TestServer::start_with("", site);
    assert_eq!(s.get("/").text(), "<h1>home</h1>");
    assert_eq!(s.get("/docs/").text(), "docs index");
    let r = s.get("/docs?a=1");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/docs/?a=1"));
    assert_eq!(s.get("/empty/").status, 404);
    assert_eq!(s.get("/nothing-here").status, 404);
    assert_eq!(s.get("/small.txt/").status, 404);
}

#[test]
fn conditional_requests() {
    let s = TestServer::start_with("", site);
    let r = s.get("/small.txt");
    let etag = r.header("etag").unwrap().to_owned();
    let lm = r.header("last-modified").unwrap().to_owned();
    let c = s.request(&format!(
        "GET /small.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(c.status, 304);
    assert!(c.body.is_empty());
    let c = s.request(&format!(
        "GET /small.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\", W/{etag}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(c.status, 304);
    let c = s.request(&format!(
        "GET /small.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: {lm}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(c.status, 304);
    let c = s.request(
        "GET /small.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(c.status, 200);
    let c = s.request(
        "GET /small.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"nope\"\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(c.status, 200);
}

#[test]
fn ranges() {
    let s = TestServer::start_with("", site);
    let range = |spec: &str| {
        s.request(&format!(
            "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: {spec}\r\nConnection: close\r\n\r\n"
        ))
    };
    let expect = |i: u32| (i % 251) as u8;
    let r = range("bytes=10-19");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/2000000"));
    assert_eq!(r.body, (10..20).map(expect).collect::<Vec<_>>());
    let r = range("bytes=-5");
    assert_eq!(r.status, 206);
    assert_eq!(
        r.body,
        (1_999_995..2_000_000).map(expect).collect::<Vec<_>>()
    );
    let r = range("bytes=1999990-");
    assert_eq!(
        r.header("content-range"),
        Some("bytes 1999990-1999999/2000000")
    );
    assert_eq!(r.body.len(), 10);
    let r = range("bytes=2000000-");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */2000000"));
    // Several ranges: the whole file.
    let r = range("bytes=0-1,5-6");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 2_000_000);
    // Small (cached) file ranges too.
    let r = s.request(
        "GET /small.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, b"xxxxx");
}

#[test]
fn large_file_streams_completely() {
    let s = TestServer::start_with("", site);
    let r = s.get("/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 2_000_000);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (i as u32 % 251) as u8));
}

#[test]
fn precompressed_siblings() {
    let s = TestServer::start_with("", site);
    let get = |path: &str, ae: &str| {
        s.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {ae}\r\nConnection: close\r\n\r\n"
        ))
    };
    let r = get("/app.js", "gzip, br");
    assert_eq!(r.text(), "BROTLI-BYTES");
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let r = get("/app.js", "gzip");
    assert_eq!(r.text(), "GZIP-BYTES");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let r = get("/app.js", "br;q=0, gzip;q=0");
    assert_eq!(r.text(), "console.log(1)");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let r = get("/style.css", "br");
    assert_eq!(r.text(), "body{}");
    let r = get("/style.css", "gzip, deflate");
    assert_eq!(r.text(), "GZ-CSS");
    let r = get("/small.txt", "gzip");
    assert_eq!(r.header("vary"), None);
}

#[test]
fn other_methods_get_405_with_allow() {
    let s = TestServer::start_with("", site);
    for m in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = s.request(&format!(
            "{m} /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
}

#[test]
fn keep_alive_and_pipelining() {
    let s = TestServer::start_with("", site);
    let one = "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    let req = format!("{one}{one}GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let out = String::from_utf8_lossy(&s.raw(req.as_bytes())).into_owned();
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 3, "{out}");
    assert!(out.ends_with("<h1>home</h1>"));
}

#[test]
fn http2_prior_knowledge_and_ipv6() {
    let s = TestServer::start_with("", site);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let r = client.get(s.url("/small.txt")).send().await.unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.text().await.unwrap(), "x".repeat(100));
        let v6 = format!("http://[::1]:{}/small.txt", s.port);
        let r = reqwest::get(&v6).await.unwrap();
        assert_eq!(r.status(), 200);
    });
}
