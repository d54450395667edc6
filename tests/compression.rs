//! Compression on the fly (issue 25, points 1–4), end to end: the real
//! server, responses decoded with the codec crates and compared with the
//! files; negotiation, no double compression, Vary/ETag/Range/HEAD, the
//! proxy (through `server::direct` and hyper) and `compress=off`.

mod common;

use std::io::{Read, Write};
use std::path::Path;

use common::{RawResponse, TestServer};

/// Some 60 KB of HTML-like text.
fn page() -> Vec<u8> {
    (0..1500u32)
        .flat_map(|i| format!("<p class=\"row\">paragraph {i} of the page</p>\n").into_bytes())
        .collect()
}

/// A "large" file: over the 2 MiB cache limit, so it streams.
fn large() -> Vec<u8> {
    (0..120_000u32)
        .flat_map(|i| format!("{{\"id\":{i},\"name\":\"item {i}\"}}\n").into_bytes())
        .collect()
}

fn site(p: &Path) {
    std::fs::write(p.join("page.html"), page()).unwrap();
    std::fs::write(p.join("big.txt"), large()).unwrap();
    std::fs::write(p.join("tiny.html"), "<p>hi</p>").unwrap();
    std::fs::write(p.join("photo.png"), page()).unwrap();
    std::fs::write(p.join("pre.js"), page()).unwrap();
    std::fs::write(p.join("pre.js.gz"), "PRECOMPRESSED-GZ").unwrap();
}

fn decode(coding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        None => out = body.to_vec(),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("gunzip");
        }
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("brotli");
        }
        Some("zstd") => out = zstd::stream::decode_all(body).expect("zstd"),
        Some(other) => panic!("unexpected coding {other}"),
    }
    out
}

fn decoded(r: &RawResponse) -> Vec<u8> {
    decode(r.header("content-encoding"), &r.unchunked_body())
}

fn req(s: &TestServer, method: &str, path: &str, extra: &str) -> RawResponse {
    s.request(&format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
    ))
}

fn get_ae(s: &TestServer, path: &str, ae: &str) -> RawResponse {
    req(s, "GET", path, &format!("Accept-Encoding: {ae}\r\n"))
}

#[test]
fn each_coding_decodes_to_the_file_cached_and_streamed() {
    let s = TestServer::start_with("", site);
    for (path, want) in [("/page.html", page()), ("/big.txt", large())] {
        for coding in ["zstd", "br", "gzip"] {
            // Twice: the second answer of a small file comes from the cache.
            for _ in 0..2 {
                let r = get_ae(&s, path, coding);
                assert_eq!(r.status, 200, "{path} {coding}");
                assert_eq!(r.header("content-encoding"), Some(coding), "{path}");
                assert_eq!(r.header("vary"), Some("Accept-Encoding"));
                let sent = r.unchunked_body();
                assert!(sent.len() < want.len() / 3, "{path} {coding} barely shrank");
                assert_eq!(decoded(&r), want, "{path} {coding}");
                if path == "/page.html" {
                    assert_eq!(
                        r.header("content-length"),
                        Some(sent.len().to_string().as_str())
                    );
                } else {
                    assert_eq!(r.header("content-length"), None);
                    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
                }
                assert!(r.header("accept-ranges").is_none());
            }
        }
        let r = s.get(path);
        assert_eq!(r.header("content-encoding"), None);
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert_eq!(r.body, want);
    }
    // The access log's size field is what was sent.
    let r = get_ae(&s, "/page.html", "gzip");
    let n = r.unchunked_body().len().to_string();
    common::wait_for(
        std::time::Duration::from_secs(5),
        "the access log line",
        || {
            let log = std::fs::read_dir(s.logs())
                .ok()?
                .flatten()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect::<String>();
            log.lines()
                .any(|l| l.contains("/page.html") && l.contains(&format!(" 200 {n}")))
                .then_some(())
        },
    );
}

#[test]
fn q_values_server_order_and_identity() {
    let s = TestServer::start_with("", site);
    let coding = |ae: &str| {
        get_ae(&s, "/page.html", ae)
            .header("content-encoding")
            .map(str::to_owned)
    };
    assert_eq!(coding("gzip, br, zstd").as_deref(), Some("zstd"));
    assert_eq!(coding("gzip, br").as_deref(), Some("br"));
    assert_eq!(coding("br;q=0.5, gzip;q=0.9").as_deref(), Some("gzip"));
    assert_eq!(coding("zstd;q=0, *").as_deref(), Some("br"));
    assert_eq!(coding("identity;q=0, gzip;q=0.1").as_deref(), Some("gzip"));
    assert_eq!(coding("gzip;q=0, br;q=0, zstd;q=0").as_deref(), None);
    assert_eq!(coding("identity, gzip;q=0.5").as_deref(), None);
    assert_eq!(coding("deflate").as_deref(), None);
    // Not compressible, or too small: sent as is, and no Vary.
    for path in ["/photo.png", "/tiny.html"] {
        let r = get_ae(&s, path, "gzip, br, zstd");
        assert_eq!(r.header("content-encoding"), None, "{path}");
        assert_eq!(r.header("vary"), None, "{path}");
    }
}

#[test]
fn precompressed_sibling_wins_over_on_the_fly() {
    let s = TestServer::start_with("", site);
    let r = get_ae(&s, "/pre.js", "gzip");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.text(), "PRECOMPRESSED-GZ");
    // A coding without a sibling is compressed on the fly.
    let r = get_ae(&s, "/pre.js", "zstd");
    assert_eq!(r.header("content-encoding"), Some("zstd"));
    assert_eq!(decoded(&r), page());
}

#[test]
fn etag_per_coding_conditional_range_and_head() {
    let s = TestServer::start_with("", site);
    let plain = s.get("/page.html");
    let plain_etag = plain.header("etag").expect("etag").to_owned();
    let gz = get_ae(&s, "/page.html", "gzip");
    let gz_etag = gz.header("etag").expect("etag").to_owned();
    assert_eq!(
        gz_etag,
        format!("{}-gzip\"", plain_etag.trim_end_matches('"'))
    );
    let br = get_ae(&s, "/page.html", "br");
    assert_ne!(br.header("etag"), Some(gz_etag.as_str()));

    // If-None-Match matches the variant only.
    let inm = |ae: &str, tag: &str| {
        req(
            &s,
            "GET",
            "/page.html",
            &format!("Accept-Encoding: {ae}\r\nIf-None-Match: {tag}\r\n"),
        )
    };
    let r = inm("gzip", &gz_etag);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(gz_etag.as_str()));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(inm("gzip", &plain_etag).status, 200);
    assert_eq!(inm("br", &gz_etag).status, 200);
    assert_eq!(inm("identity", &plain_etag).status, 304);

    // Range: the identity body, whatever the client accepts.
    let r = req(
        &s,
        "GET",
        "/page.html",
        "Accept-Encoding: gzip, br, zstd\r\nRange: bytes=0-9\r\n",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, &page()[..10]);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));

    // HEAD has GET's headers.
    for (path, ae) in [
        ("/page.html", "gzip"),
        ("/big.txt", "zstd"),
        ("/page.html", ""),
    ] {
        let extra = format!("Accept-Encoding: {ae}\r\n");
        let g = req(&s, "GET", path, &extra);
        let h = req(&s, "HEAD", path, &extra);
        assert!(h.body.is_empty());
        for name in [
            "content-encoding",
            "content-length",
            "etag",
            "vary",
            "content-type",
        ] {
            assert_eq!(h.header(name), g.header(name), "{path} {ae} {name}");
        }
    }
}

#[test]
fn compress_off_per_site_and_levels() {
    let s = TestServer::start_with("compress=off", site);
    let r = get_ae(&s, "/page.html", "gzip, br, zstd");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), None);
    assert_eq!(r.body, page());
    // Siblings are files of the site: still served.
    assert_eq!(get_ae(&s, "/pre.js", "gzip").text(), "PRECOMPRESSED-GZ");

    let s = TestServer::start_with("compress=gzip\ncompress_level=gzip:9", site);
    let r = get_ae(&s, "/page.html", "zstd, br, gzip;q=0.1");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(decoded(&r), page());
    let r = get_ae(&s, "/page.html", "zstd, br");
    assert_eq!(r.header("content-encoding"), None);
}

#[test]
fn bad_settings_are_refused_with_the_key() {
    for (extra, key) in [
        ("compress=lzma", "compress"),
        ("compress_level=gzip:42", "compress_level"),
    ] {
        let s = TestServer::prepare(extra, site);
        let out = common::run_cli(&s.config, &[]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{extra} was accepted: {text}");
        assert!(text.contains(key), "{extra}: {text}");
    }
}

// ---------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------

/// A backend answering every request with `answer` (the whole response,
/// kept alive).
fn backend(answer: Vec<u8>) -> u16 {
    let answer: &'static [u8] = Box::leak(answer.into_boxed_slice());
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                loop {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                    if head.ends_with(b"\r\n\r\n") {
                        head.clear();
                        if stream.write_all(answer).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

fn answer(content_type: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut a = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nETag: \"v1\"\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    a.extend_from_slice(body);
    a
}

fn json() -> Vec<u8> {
    let items: Vec<String> = (0..400)
        .map(|i| format!("{{\"id\":{i},\"name\":\"user {i}\",\"active\":true}}"))
        .collect();
    format!("[{}]", items.join(",")).into_bytes()
}

fn proxy(apps: &[(&str, u16, &str)]) -> TestServer {
    let mut ini = String::new();
    for (name, port, extra) in apps {
        ini.push_str(&format!(
            "\n[app:{name}]\nprefix=http://+:{{port}}/{name}/\nbackend=http://127.0.0.1:{port}\n{extra}"
        ));
    }
    TestServer::start(&ini)
}

#[test]
fn proxied_json_is_compressed_images_and_encoded_answers_are_not() {
    let chunked_json = {
        let j = json();
        let mut a =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for part in j.chunks(1000) {
            a.extend_from_slice(format!("{:X}\r\n", part.len()).as_bytes());
            a.extend_from_slice(part);
            a.extend_from_slice(b"\r\n");
        }
        a.extend_from_slice(b"0\r\n\r\n");
        a
    };
    let s = proxy(&[
        ("json", backend(answer("application/json", "", &json())), ""),
        ("img", backend(answer("image/png", "", &json())), ""),
        (
            "done",
            backend(answer(
                "application/json",
                "Content-Encoding: gzip\r\n",
                &json(),
            )),
            "",
        ),
        (
            "nt",
            backend(answer(
                "application/json",
                "Cache-Control: no-transform\r\n",
                &json(),
            )),
            "",
        ),
        ("stream", backend(chunked_json), ""),
        (
            "off",
            backend(answer("application/json", "", &json())),
            "compress=off\n",
        ),
    ]);
    // GET without a body: served by server::direct; with HTTP/1.0 (and
    // so through hyper) the same.
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        for coding in ["gzip", "br", "zstd"] {
            let r = s.request(&format!(
                "GET /json/x {version}\r\nHost: x\r\nAccept-Encoding: {coding}\r\nConnection: close\r\n\r\n"
            ));
            assert_eq!(r.status, 200);
            assert_eq!(r.header("content-encoding"), Some(coding), "{version}");
            assert_eq!(r.header("vary"), Some("Accept-Encoding"));
            assert_eq!(r.header("etag"), Some(format!("\"v1-{coding}\"").as_str()));
            assert_eq!(decoded(&r), json(), "{version} {coding}");
        }
        let r = s.request(&format!(
            "GET /stream/x {version}\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{version}");
        let sent = if version == "HTTP/1.0" {
            r.body.clone()
        } else {
            r.unchunked_body()
        };
        assert_eq!(decode(Some("gzip"), &sent), json(), "{version} stream");
    }
    let r = get_ae(&s, "/img/x", "gzip");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, json());
    let r = get_ae(&s, "/done/x", "gzip, br");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.body, json(), "compressed a second time");
    let r = get_ae(&s, "/nt/x", "gzip");
    assert_eq!(r.header("content-encoding"), None);
    let r = get_ae(&s, "/off/x", "gzip");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), None);
    assert_eq!(r.body, json());
    // Range: identity, as the backend sent it.
    let r = req(
        &s,
        "GET",
        "/json/x",
        "Accept-Encoding: gzip\r\nRange: bytes=0-5\r\n",
    );
    assert_eq!(r.header("content-encoding"), None);
    // HEAD: the GET's coding and no length.
    let r = req(&s, "HEAD", "/json/x", "Accept-Encoding: gzip\r\n");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-length"), None);
}
