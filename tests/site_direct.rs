//! Static-site requests answered without hyper (`server::direct`) get the
//! bytes hyper would send: each request goes once as it is (a plain `GET`
//! or `HEAD`, served directly) and once with `Content-Length: 0` (which
//! sends it through hyper), pipelined with a second request that closes
//! the connection; the two byte streams must match, `Date` values aside.

mod common;

use common::{undated, TestServer};

fn site() -> TestServer {
    TestServer::start_with("[cgi]\n.sh = sh\n", |p| {
        std::fs::write(p.join("a.txt"), "hello, world\n").unwrap();
        std::fs::write(p.join("page.html"), "<p>text</p>\n".repeat(400)).unwrap();
        std::fs::create_dir_all(p.join("dir")).unwrap();
        std::fs::write(p.join("dir/index.html"), "<h1>index</h1>\n").unwrap();
        std::fs::create_dir_all(p.join("cgi")).unwrap();
        std::fs::write(
            p.join("cgi/hi.sh"),
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhi %s\\n' \"$QUERY_STRING\"\n",
        )
        .unwrap();
    })
}

#[test]
fn static_answers_without_hyper_match_hyper_byte_for_byte() {
    let s = site();
    let etag = s.get("/a.txt").header("etag").expect("an ETag").to_owned();
    let cases: Vec<(&str, String)> = vec![
        ("/a.txt", String::new()),
        ("/a.txt?x=1", String::new()),
        ("/a.txt", format!("If-None-Match: {etag}\r\n")),
        ("/a.txt", "Range: bytes=2-5\r\n".into()),
        ("/a.txt", "Range: bytes=50-60\r\n".into()),
        ("/page.html", "Accept-Encoding: gzip\r\n".into()),
        ("/page.html", "Accept-Encoding: br, zstd\r\n".into()),
        ("/dir", String::new()),
        ("/dir/", String::new()),
        ("/missing.txt", String::new()),
        ("/cgi/hi.sh?q", String::new()),
        ("/%2e%2e/etc/passwd", String::new()),
    ];
    for (path, extra) in &cases {
        for method in ["GET", "HEAD"] {
            let exchange = |body: &str| {
                let request = format!(
                    "{method} {path} HTTP/1.1\r\nHost: h\r\n{extra}{body}\r\n\
                     {method} /a.txt HTTP/1.1\r\nHost: h\r\n{body}Connection: close\r\n\r\n"
                );
                undated(&s.raw(request.as_bytes()))
            };
            let direct = exchange("");
            let through_hyper = exchange("Content-Length: 0\r\n");
            assert!(direct.starts_with("HTTP/1.1 "), "{direct}");
            assert_eq!(direct, through_hyper, "{method} {path} {extra}");
        }
    }
    // Both ways are logged alike.
    let log = std::fs::read_to_string(s.dir.path().join("logs/access.log")).unwrap_or_default();
    assert!(log.contains("GET /a.txt"), "{log}");
}
