//! `[app:NAME]` reverse proxying, end to end: the real server binary in front
//! of a real HTTP backend (hyper, in a background thread) on a free loopback
//! port or a Unix socket.

mod common;

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{dechunk, free_port, undated, RawResponse, TestServer};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use portshare::errors::HttpSysError;
use tokio::sync::Notify;

type BackendBody = BoxBody<Bytes, io::Error>;

/// A test application. Paths (after any prefix):
/// - `…/echo`: the request body streamed back;
/// - `…/stream`: a chunked body whose second chunk waits for `release`;
/// - `…/slow`: answers after 5 s;
/// - `…/ws`: `101` to an `Upgrade` request, then echoes bytes;
/// - anything else: the request line and headers as text, plus response
///   headers `X-Resp-Kept`, and hop-by-hop ones that must not reach the client.
struct Backend {
    release: Arc<Notify>,
}

async fn app(
    req: Request<Incoming>,
    release: Arc<Notify>,
) -> Result<Response<BackendBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let text = |s: String| Full::new(Bytes::from(s)).map_err(|e| match e {}).boxed();
    let res = if path.ends_with("/echo") {
        Response::new(req.into_body().map_err(io::Error::other).boxed())
    } else if path.ends_with("/stream") {
        let chunks = futures_util::stream::unfold(0u8, move |state| {
            let release = release.clone();
            async move {
                let data: &'static [u8] = match state {
                    0 => b"first-chunk\n",
                    1 => {
                        release.notified().await;
                        b"second-chunk\n"
                    }
                    _ => return None,
                };
                Some((
                    Ok::<_, io::Error>(Frame::data(Bytes::from_static(data))),
                    state + 1,
                ))
            }
        });
        Response::new(StreamBody::new(chunks).boxed())
    } else if path.ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Response::new(text("late\n".into()))
    } else if path.ends_with("/ws") && req.headers().contains_key(hyper::header::UPGRADE) {
        let mut req = req;
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on.await else { return };
            let mut io = TokioIo::new(upgraded);
            let (mut r, mut w) = tokio::io::split(&mut io);
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .body(text(String::new()))
            .unwrap_or_default()
    } else {
        let mut dump = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
        for (k, v) in req.headers() {
            dump.push_str(&format!(
                "{}: {}\n",
                k,
                String::from_utf8_lossy(v.as_bytes())
            ));
        }
        Response::builder()
            .header("x-resp-kept", "yes")
            .header("connection", "x-resp-hop")
            .header("x-resp-hop", "1")
            .header("keep-alive", "timeout=5")
            .body(text(dump))
            .unwrap_or_default()
    };
    Ok(res)
}

enum Listen {
    Tcp(std::net::TcpListener),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener),
}

impl Backend {
    /// Starts a backend on a free loopback port; returns it and the port.
    fn tcp() -> (Backend, u16) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let port = l.local_addr().expect("backend addr").port();
        (Backend::run(Listen::Tcp(l)), port)
    }

    #[cfg(unix)]
    fn unix(path: &std::path::Path) -> Backend {
        let l = std::os::unix::net::UnixListener::bind(path).expect("bind backend socket");
        Backend::run(Listen::Unix(l))
    }

    fn run(listen: Listen) -> Backend {
        let release = Arc::new(Notify::new());
        let rel = release.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("backend runtime");
            rt.block_on(async move {
                match listen {
                    Listen::Tcp(l) => {
                        l.set_nonblocking(true).expect("nonblocking");
                        let l = tokio::net::TcpListener::from_std(l).expect("tokio listener");
                        while let Ok((s, _)) = l.accept().await {
                            serve(s, rel.clone());
                        }
                    }
                    #[cfg(unix)]
                    Listen::Unix(l) => {
                        l.set_nonblocking(true).expect("nonblocking");
                        let l = tokio::net::UnixListener::from_std(l).expect("tokio listener");
                        while let Ok((s, _)) = l.accept().await {
                            serve(s, rel.clone());
                        }
                    }
                }
            });
        });
        Backend { release }
    }
}

fn serve<S>(stream: S, release: Arc<Notify>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = hyper::service::service_fn(move |req| app(req, release.clone()));
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades()
            .await;
    });
}

/// Starts portshare with `sections` (text from `\n[`; `{PORT}` becomes the
/// server's port) and an `index.html` for the built-in site.
fn start(sections: &str) -> TestServer {
    let s = TestServer::prepare(sections, |public| {
        std::fs::write(public.join("index.html"), "site home\n").expect("index.html");
    });
    let ini = std::fs::read_to_string(&s.config).expect("read config");
    std::fs::write(&s.config, ini.replace("{PORT}", &s.port.to_string())).expect("write config");
    s.launch(&[])
}

/// portshare with `/api/` proxied to the backend on `bport`; `extra` is
/// more of the `[app:api]` section (lines ending in `\n`).
fn start_api(bport: u16, extra: &str) -> TestServer {
    start(&format!(
        "\n[app:api]\nprefix=http://+:{{PORT}}/api/\nbackend=http://127.0.0.1:{bport}\n{extra}"
    ))
}

/// A raw client connection to `s`, reads bounded by `secs` seconds.
fn connect(s: &TestServer, secs: u64) -> TcpStream {
    let c = TcpStream::connect(s.addr()).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(secs))).ok();
    c
}

/// The backend's dump of the request: first line and lowercase headers.
fn parse_dump(text: &str) -> (String, Vec<(String, String)>) {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (first, headers)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn forwards_full_url_with_forwarding_headers_and_no_hop_by_hop() {
    let (_backend, bport) = Backend::tcp();
    let s = start_api(bport, "");
    let res = s.request(&format!(
        "GET /api/x?y=1 HTTP/1.1\r\nHost: example.test:{port}\r\nX-Forwarded-For: 10.9.8.7\r\n\
         Connection: close, X-Custom\r\nX-Custom: 1\r\nKeep-Alive: timeout=5\r\n\
         Proxy-Connection: keep-alive\r\nTE: trailers\r\nProxy-Authorization: Basic eDp5\r\n\
         X-Kept: yes\r\n\r\n",
        port = s.port
    ));
    assert_eq!(res.status, 200, "{}", res.text());
    let (first, h) = parse_dump(&res.text());
    assert_eq!(first, "GET /api/x?y=1 HTTP/1.1");
    let host = format!("example.test:{}", s.port);
    assert_eq!(header(&h, "host"), Some(host.as_str()));
    assert_eq!(header(&h, "x-forwarded-host"), Some(host.as_str()));
    assert_eq!(header(&h, "x-forwarded-for"), Some("10.9.8.7, 127.0.0.1"));
    assert_eq!(header(&h, "x-forwarded-proto"), Some("http"));
    assert_eq!(header(&h, "x-kept"), Some("yes"));
    for hop in [
        "x-custom",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "proxy-authorization",
    ] {
        assert_eq!(header(&h, hop), None, "backend saw {hop}: {h:?}");
    }
    // And on the way back.
    assert_eq!(res.header("x-resp-kept"), Some("yes"));
    assert_eq!(res.header("x-resp-hop"), None, "{}", res.head);
    assert_eq!(res.header("keep-alive"), None, "{}", res.head);

    // HEAD: the backend's Content-Length, no body.
    let head = s.request("HEAD /api/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert_eq!(head.status, 200, "{}", head.head);
    assert!(head.body.is_empty());
    let get_len = s
        .request("GET /api/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .body
        .len();
    // The dump starts with the method: "HEAD" is one byte longer than "GET".
    let head_len = (get_len + 1).to_string();
    assert_eq!(head.header("content-length"), Some(head_len.as_str()));

    // The built-in site keeps the rest of the port.
    let site = s.get("/");
    assert_eq!(site.status, 200);
    assert_eq!(site.text(), "site home\n");
    // Outside the prefix: not the app's.
    let other = s.get("/apix");
    assert_eq!(other.status, 404);

    // Keep-alive to portshare and to the backend: several requests on one
    // client connection.
    let mut c = connect(&s, 10);
    for i in 0..3 {
        c.write_all(format!("GET /api/k{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
            .expect("send");
        let (head, body) = read_response(&mut c);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            String::from_utf8_lossy(&body).starts_with(&format!("GET /api/k{i} HTTP/1.1")),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// Reads one response with a Content-Length or chunked body from a kept-alive
/// connection.
fn read_response(c: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut byte).expect("response head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let lower = head.to_ascii_lowercase();
    if let Some(len) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        let mut body = vec![0; len];
        c.read_exact(&mut body).expect("body");
        return (head, body);
    }
    assert!(lower.contains("transfer-encoding: chunked"), "{head}");
    let mut raw = Vec::new();
    loop {
        c.read_exact(&mut byte).expect("chunked body");
        raw.push(byte[0]);
        if raw.ends_with(b"\r\n0\r\n\r\n") || raw == b"0\r\n\r\n" {
            return (head, dechunk(&raw));
        }
    }
}

fn upload(chunked: bool) {
    let (_backend, bport) = Backend::tcp();
    let s = start_api(bport, "");
    let data: Arc<Vec<u8>> = Arc::new(
        (0..5 * 1024 * 1024u32)
            .map(|i| (i * 31 % 251) as u8)
            .collect(),
    );
    let mut c = connect(&s, 30);
    let mut w = c.try_clone().expect("clone socket");
    let sent = data.clone();
    // Write while the response is read: both directions stream at once.
    let writer = std::thread::spawn(move || -> io::Result<()> {
        if chunked {
            w.write_all(
                b"POST /api/echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
            )?;
            for chunk in sent.chunks(64 * 1024) {
                w.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                w.write_all(chunk)?;
                w.write_all(b"\r\n")?;
            }
            w.write_all(b"0\r\n\r\n")
        } else {
            w.write_all(
                format!(
                    "POST /api/echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                    sent.len()
                )
                .as_bytes(),
            )?;
            w.write_all(&sent)
        }
    });
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).expect("read response");
    writer.join().expect("writer thread").expect("send body");
    let res = RawResponse::parse(&raw);
    assert_eq!(res.status, 200, "{}", res.head);
    if !chunked {
        assert_eq!(
            res.header("content-length"),
            Some("5242880"),
            "{}",
            res.head
        );
    }
    let body = res.unchunked_body();
    assert_eq!(body.len(), data.len());
    assert!(body == *data, "echoed body differs");
}

#[test]
fn post_5mb_streams_both_ways_with_content_length() {
    upload(false);
}

#[test]
fn post_5mb_streams_both_ways_chunked() {
    upload(true);
}

#[test]
fn chunked_response_is_streamed_not_buffered() {
    let (backend, bport) = Backend::tcp();
    let s = start_api(bport, "");
    let mut c = connect(&s, 10);
    c.write_all(b"GET /api/stream HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .expect("send");
    // The first chunk arrives while the backend still holds the second.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("first-chunk") {
        let n = c
            .read(&mut buf)
            .expect("first chunk before the second is released");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(!String::from_utf8_lossy(&got).contains("second-chunk"));
    backend.release.notify_one();
    c.read_to_end(&mut got).expect("rest");
    let res = RawResponse::parse(&got);
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("transfer-encoding"),
        Some("chunked"),
        "{}",
        res.head
    );
    assert_eq!(res.unchunked_body(), b"first-chunk\nsecond-chunk\n");
}

#[test]
fn backend_down_is_http_sys_503() {
    let dead = free_port();
    let s = start(&format!(
        "\n[app:api]\nprefix=http://+:{{PORT}}/api/\nbackend=http://127.0.0.1:{dead}\n\
         \n[app:gone]\nprefix=http://+:{{PORT}}/gone/\nbackend=unix:/nonexistent/portshare-test.sock\n"
    ));
    for path in ["/api/x", "/gone/x"] {
        if cfg!(not(unix)) && path == "/gone/x" {
            continue;
        }
        let res = s.get(path);
        assert_eq!(res.status, 503, "{path}: {}", res.head);
        assert_eq!(res.text(), HttpSysError::ServiceUnavailable.body());
        assert_eq!(res.header("server"), Some("Microsoft-HTTPAPI/2.0"));
    }
}

#[test]
fn slow_backend_times_out_with_504() {
    let (_backend, bport) = Backend::tcp();
    let s = start_api(bport, "timeout=1\n");
    let started = Instant::now();
    let res = s.get("/api/slow");
    let took = started.elapsed();
    assert_eq!(res.status, 504, "{}", res.head);
    assert!(
        took >= Duration::from_millis(900),
        "answered after {took:?}"
    );
    assert!(took < Duration::from_secs(4), "answered after {took:?}");
    assert!(res
        .header("server")
        .is_some_and(|s| s.starts_with("portshare/")));
}

/// The timeout counts from each request: a pooled backend connection's
/// timer is moved on, not left at its first request's deadline.
#[test]
fn timeout_counts_from_each_request_on_a_reused_backend_connection() {
    let (_backend, bport) = Backend::tcp();
    let s = start_api(bport, "timeout=1\n");
    // One client connection, so both requests are served by the same
    // worker and its pooled backend connection.
    let mut c = connect(&s, 10);
    c.write_all(b"GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n")
        .expect("first request");
    let (head, _) = read_response(&mut c);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Not waiting for the server: most of the first request's second
    // passes, so a deadline left over from it would fire early.
    std::thread::sleep(Duration::from_millis(700));
    let started = Instant::now();
    c.write_all(b"GET /api/slow HTTP/1.1\r\nHost: h\r\n\r\n")
        .expect("second request");
    let (head, _) = read_response(&mut c);
    let took = started.elapsed();
    assert!(head.starts_with("HTTP/1.1 504"), "{head}");
    assert!(
        took >= Duration::from_millis(900),
        "answered after {took:?}"
    );
    assert!(took < Duration::from_secs(4), "answered after {took:?}");
}

#[test]
fn websocket_upgrade_passes_through() {
    let (_backend, bport) = Backend::tcp();
    let s = start_api(bport, "");
    let mut c = connect(&s, 10);
    c.write_all(
        b"GET /api/ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut byte).expect("101 head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(head.contains("connection: upgrade"), "{head}");
    for msg in [&b"hello through portshare"[..], b"\x00\x01binary\xff"] {
        c.write_all(msg).expect("write after 101");
        let mut back = vec![0; msg.len()];
        c.read_exact(&mut back).expect("echo");
        assert_eq!(back, msg);
    }
}

#[cfg(unix)]
#[test]
fn unix_socket_backend_both_spellings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("app.sock");
    let _backend = Backend::unix(&sock);
    let sock = sock.display();
    let s = start(&format!(
        "\n[app:u1]\nprefix=http://+:{{PORT}}/u1/\nbackend=unix:{sock}\n\
         \n[app:u2]\nprefix=http://+:{{PORT}}/u2/\nbackend={sock}\n"
    ));
    for path in ["/u1/a?b=c", "/u2/d"] {
        let res = s.get(path);
        assert_eq!(res.status, 200, "{path}: {}", res.head);
        let (first, h) = parse_dump(&res.text());
        assert_eq!(first, format!("GET {path} HTTP/1.1"));
        assert_eq!(header(&h, "host"), Some("localhost"));
        assert_eq!(header(&h, "x-forwarded-for"), Some("127.0.0.1"));
    }
}

#[test]
fn http2_client_is_forwarded_as_http1() {
    let (_backend, bport) = Backend::tcp();
    let s = start_api(bport, "");
    let url = s.url("/api/h2?q=2");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (version, text) = rt.block_on(async {
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .expect("client");
        let res = client.get(&url).send().await.expect("h2 request");
        (res.version(), res.text().await.expect("body"))
    });
    assert_eq!(version, reqwest::Version::HTTP_2);
    let (first, h) = parse_dump(&text);
    assert_eq!(first, "GET /api/h2?q=2 HTTP/1.1");
    let addr: SocketAddr = s.addr();
    assert_eq!(header(&h, "host"), Some(addr.to_string().as_str()));
    assert_eq!(
        header(&h, "x-forwarded-host"),
        Some(addr.to_string().as_str())
    );
}

/// A backend that answers every request head it reads with `answer`
/// (bytes as they go on the wire), then closes the connection if `close`.
/// Counts the connections it accepted.
struct ScriptedBackend {
    port: u16,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl ScriptedBackend {
    fn start(answer: &'static [u8], close: bool) -> ScriptedBackend {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let port = l.local_addr().expect("backend addr").port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(mut stream) = stream else { return };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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
                            if stream.write_all(answer).is_err() || close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        ScriptedBackend { port, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn server(&self) -> TestServer {
        start(&format!(
            "\n[app:api]\nprefix=http://+:{{PORT}}/api/\nbackend=http://127.0.0.1:{}\n",
            self.port
        ))
    }
}

/// Sends `n` GETs on one kept-alive client connection (so one worker and
/// its pool serve them all) and returns the responses.
fn get_kept_alive(s: &TestServer, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut c = connect(s, 10);
    (0..n)
        .map(|i| {
            c.write_all(format!("GET /api/{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
                .expect("send");
            read_response(&mut c)
        })
        .collect()
}

/// `n` GETs on one kept-alive client connection to a backend that answers
/// `answer` (closing after each if `close`): each gets a response starting
/// with `status_line` and carrying `body`, and the backend accepted
/// `accepted` connections.
fn kept_alive_through(
    answer: &'static [u8],
    close: bool,
    n: usize,
    status_line: &str,
    body: &[u8],
    accepted: usize,
) {
    let backend = ScriptedBackend::start(answer, close);
    let s = backend.server();
    for (head, got) in get_kept_alive(&s, n) {
        assert!(head.starts_with(status_line), "{head}");
        assert_eq!(got, body);
    }
    assert_eq!(backend.accepted(), accepted);
}

#[test]
fn backend_connection_is_kept_alive_and_reused() {
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    kept_alive_through(ok, false, 5, "HTTP/1.1 200", b"ok", 1);
}

#[test]
fn backend_closing_idle_connections_is_not_seen_by_clients() {
    // Keep-alive is implied (HTTP/1.1, no Connection: close), but the
    // backend closes after each answer: the next request finds the pooled
    // connection closed, or is retried on a new one if it raced the close.
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    kept_alive_through(ok, true, 10, "HTTP/1.1 200", b"ok", 10);
}

#[test]
fn chunked_answer_with_interim_100_and_trailers_then_reuse() {
    let answer =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 Fine\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
    kept_alive_through(answer, false, 3, "HTTP/1.1 200 Fine\r\n", b"hello world", 1);
}

#[test]
fn answer_without_length_is_read_until_close() {
    let backend = ScriptedBackend::start(b"HTTP/1.1 200 OK\r\n\r\nbody until close", true);
    let s = backend.server();
    let res = s.get("/api/x");
    assert_eq!(res.status, 200, "{}", res.head);
    assert_eq!(res.unchunked_body(), b"body until close");
}

#[test]
fn invalid_backend_answers_are_502() {
    for answer in [
        &b"SSH-2.0-OpenSSH_9.6\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    ] {
        let backend = ScriptedBackend::start(answer, true);
        let s = backend.server();
        let res = s.get("/api/x");
        assert_eq!(
            res.status,
            502,
            "{}: {}",
            String::from_utf8_lossy(answer),
            res.head
        );
    }
}

#[test]
fn backend_closing_mid_body_ends_the_client_response_early() {
    let backend = ScriptedBackend::start(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
        true,
    );
    let s = backend.server();
    // The client connection closes (no hang); hyper drops what it had not
    // flushed yet, so the client sees a truncated response or none.
    let raw = s.raw(b"GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n");
    if !raw.is_empty() {
        let res = RawResponse::parse(&raw);
        assert_eq!(res.status, 200, "{}", res.head);
        assert!(res.body.len() < 100, "{:?}", res.body);
    }
    // The server is fine afterwards.
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn requests_served_without_hyper_get_the_bytes_hyper_would_send() {
    // Plain GET and HEAD requests to an application are answered by
    // `server::direct`; the same requests with `Content-Length: 0` go
    // through hyper. Each pair, pipelined with a second request that
    // closes the connection, must come back byte for byte the same.
    let answers: &[(&[u8], bool)] = &[
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
            false,
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 Fine\r\nTransfer-Encoding: chunked\r\n\
              set-cookie: a=1\r\nX-Other: 1\r\nSet-Cookie: b=2\r\n\r\n\
              5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\nuntil close",
            true,
        ),
        (b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", false),
        (
            b"HTTP/1.1 304 Not Modified\r\nETag: \"1\"\r\nContent-Length: 5\r\n\r\n",
            false,
        ),
        (
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nKeep-Alive: timeout=5\r\n\r\n",
            false,
        ),
    ];
    for &(answer, close) in answers {
        let backend = ScriptedBackend::start(answer, close);
        let s = backend.server();
        for method in ["GET", "HEAD"] {
            let exchange = |extra: &str| {
                let request = format!(
                    "{method} /api/x HTTP/1.1\r\nHost: h\r\n{extra}\r\n\
                     {method} /api/y HTTP/1.1\r\nHost: h\r\n{extra}Connection: close\r\n\r\n"
                );
                undated(&s.raw(request.as_bytes()))
            };
            let direct = exchange("");
            let through_hyper = exchange("Content-Length: 0\r\n");
            assert!(direct.starts_with("HTTP/1.1 "), "{direct}");
            assert_eq!(
                direct,
                through_hyper,
                "{method}, backend answer {}",
                String::from_utf8_lossy(answer)
            );
        }
    }
}

/// Splits a stream of responses that all carry `Content-Length`.
fn split_responses(mut raw: &[u8]) -> Vec<RawResponse> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head")
            + 4;
        let head = RawResponse::parse(&raw[..end]);
        let len: usize = head
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Content-Length: {}", head.head));
        out.push(RawResponse::parse(&raw[..end + len]));
        raw = &raw[end + len..];
    }
    out
}

#[test]
fn one_connection_moves_between_direct_answers_and_hyper_in_order() {
    let (_backend, bport) = Backend::tcp();
    let s = start_api(bport, "");
    // One write: answered without hyper, then a body (hyper), then the
    // rest on hyper, the built-in site among them.
    let raw = s.raw(
        b"GET /api/a HTTP/1.1\r\nHost: h\r\nReferer: http://ref.test/\r\nUser-Agent: direct/1.0\r\n\r\n\
          POST /api/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
          GET /api/b HTTP/1.1\r\nHost: h\r\n\r\n\
          GET / HTTP/1.1\r\nHost: h\r\n\r\n\
          GET /api/c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    let responses = split_responses(&raw);
    let bodies: Vec<String> = responses
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.head);
            r.text().lines().next().unwrap_or("").to_owned()
        })
        .collect();
    assert_eq!(
        bodies,
        [
            "GET /api/a HTTP/1.1",
            "hello",
            "GET /api/b HTTP/1.1",
            "site home",
            "GET /api/c HTTP/1.1"
        ]
    );
    assert_eq!(responses[4].header("connection"), Some("close"));

    // A fresh connection starts without hyper again: pipelined GETs.
    let raw = s.raw(
        b"GET /api/d HTTP/1.1\r\nHost: h\r\n\r\nGET /api/e HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    let firsts: Vec<String> = split_responses(&raw)
        .iter()
        .map(|r| r.text().lines().next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(firsts, ["GET /api/d HTTP/1.1", "GET /api/e HTTP/1.1"]);

    // The access log has the request answered without hyper.
    let log = s.logs().join("access.log");
    let line = common::wait_for(Duration::from_secs(2), "the access log line", || {
        std::fs::read_to_string(&log)
            .ok()
            .and_then(|t| t.lines().find(|l| l.contains("/api/a ")).map(str::to_owned))
    });
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    let len = responses[0].body.len();
    assert!(
        line.ends_with(&format!(
            "] \"GET /api/a HTTP/1.1\" 200 {len} \"http://ref.test/\" \"direct/1.0\""
        )),
        "{line}"
    );
}

#[test]
fn a_client_that_goes_away_cancels_its_request_to_the_backend() {
    // A backend that never answers, and reports when the proxy closes
    // the connection a request came on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let bport = l.local_addr().expect("backend addr").port();
    let (events, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut stream) = stream else { return };
            let events = events.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = events.send("request");
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
                let _ = events.send("closed");
            });
        }
    });
    let s = start_api(bport, "");
    // Without hyper, and through hyper (a body, if empty).
    for extra in ["", "Content-Length: 0\r\n"] {
        let mut c = connect(&s, 10);
        c.write_all(format!("GET /api/x HTTP/1.1\r\nHost: h\r\n{extra}\r\n").as_bytes())
            .expect("send");
        let wait = Duration::from_secs(10);
        assert_eq!(seen.recv_timeout(wait), Ok("request"), "{extra:?}");
        drop(c);
        // Well before the backend's 60 s timeout.
        assert_eq!(seen.recv_timeout(wait), Ok("closed"), "{extra:?}");
    }
}

#[test]
fn https_requests_are_forwarded_over_http1_and_h2() {
    let (_backend, bport) = Backend::tcp();
    // First run: a localhost certificate is made and bound to the HTTPS port.
    let s = TestServer::prepare_tls("\n[app:api]\nprefix=https://+:{HTTPS}/api/\n", |public| {
        std::fs::write(public.join("index.html"), "site home\n").expect("index.html");
    });
    let ini = std::fs::read_to_string(&s.config).expect("read config");
    let ini = ini.replace("{HTTPS}", &s.https_port.to_string())
        + &format!("backend=http://127.0.0.1:{bport}\n");
    std::fs::write(&s.config, ini).expect("write config");
    let s = s.launch(&[]);
    let url = format!("https://127.0.0.1:{}/api/tls?q=1", s.https_port);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for http2 in [false, true] {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(10));
        let client = if http2 {
            client.http2_prior_knowledge()
        } else {
            client.http1_only()
        }
        .build()
        .expect("client");
        // The HTTPS listener may come up a moment after the HTTP one.
        let (version, text) = common::wait_for(Duration::from_secs(10), "an HTTPS answer", || {
            rt.block_on(async {
                let res = client.get(&url).send().await.ok()?;
                Some((res.version(), res.text().await.ok()?))
            })
        });
        let expected = if http2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        };
        assert_eq!(version, expected);
        let (first, h) = parse_dump(&text);
        assert_eq!(first, "GET /api/tls?q=1 HTTP/1.1", "{text}");
        assert_eq!(header(&h, "x-forwarded-proto"), Some("https"), "{text}");
        assert_eq!(header(&h, "x-forwarded-for"), Some("127.0.0.1"), "{text}");
    }
}
