//! HTTP/3 end to end: the real server, a QUIC + h3 client written with the
//! same crates (quinn, h3), and Debian's ngtcp2 client (`gtlsclient`) as a
//! client nobody here wrote. Certificates from `tests/fixtures/certs`.

mod common;

use common::accept_all::accepting_client;

use std::convert::Infallible;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use common::{cert_fixtures, fixture_thumb, wait_for, TestServer, BIN};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

const APPID: &str = "{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}";

// ---------------------------------------------------------------------------
// Server set-up
// ---------------------------------------------------------------------------

fn install_pair(s: &TestServer, name: &str) {
    let dir = s.dir.path().join("certs");
    std::fs::create_dir_all(&dir).expect("certs dir");
    for ext in ["pem", "key"] {
        std::fs::copy(
            cert_fixtures().join(format!("{name}.{ext}")),
            dir.join(format!("{name}.{ext}")),
        )
        .expect("copy fixture");
    }
}

fn cli(s: &TestServer, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(&s.config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run portshare")
}

/// `http add sslcert KEY certhash=… appid=… EXTRA…`, which must succeed.
fn bind(s: &TestServer, key: &str, pem: &str, extra: &[&str]) {
    let certhash = format!("certhash={}", fixture_thumb(pem));
    let appid = format!("appid={APPID}");
    let mut args = vec!["http", "add", "sslcert", key, &certhash, &appid];
    args.extend_from_slice(extra);
    let out = cli(s, &args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server with HTTPS (and so HTTP/3) on `https_port`: `rsa.pem` bound to
/// `0.0.0.0:P`, `ecdsa.pem` to `[::]:P`, `other.pem` to
/// `hostnameport=other.test:P` with `other_flags`; `hello.txt` in the
/// site; `/api/` proxied to `backend` when given. `{HTTPS}` in `extra`
/// is the HTTPS port.
fn server(extra: &str, backend: Option<u16>, other_flags: &[&str]) -> TestServer {
    let mut sections = String::new();
    if let Some(port) = backend {
        sections.push_str(&format!(
            "\n[app:api]\nprefix=https://+:{{HTTPS}}/api/\nbackend=http://127.0.0.1:{port}\n"
        ));
    }
    let s = TestServer::prepare_tls(&format!("{extra}{sections}"), |public| {
        std::fs::write(public.join("hello.txt"), HELLO).expect("hello.txt");
    });
    let ini = std::fs::read_to_string(&s.config).expect("read config");
    std::fs::write(&s.config, ini.replace("{HTTPS}", &s.https_port.to_string()))
        .expect("write config");
    for name in ["rsa", "ecdsa", "other"] {
        install_pair(&s, name);
    }
    let p = s.https_port;
    bind(&s, &format!("ipport=0.0.0.0:{p}"), "rsa.pem", &[]);
    bind(&s, &format!("ipport=[::]:{p}"), "ecdsa.pem", &[]);
    bind(
        &s,
        &format!("hostnameport=other.test:{p}"),
        "other.pem",
        other_flags,
    );
    s.launch(&[])
}

const HELLO: &str = "hello over QUIC, 0123456789\n";

fn v4(s: &TestServer) -> SocketAddr {
    ([127, 0, 0, 1], s.https_port).into()
}

fn v6(s: &TestServer) -> SocketAddr {
    SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), s.https_port)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Every log file's text (access log and httperr.log).
fn logs(s: &TestServer) -> String {
    fn walk(dir: &Path, out: &mut String) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if let Ok(t) = std::fs::read_to_string(&p) {
                out.push_str(&t);
            }
        }
    }
    let mut out = String::new();
    walk(&s.logs(), &mut out);
    out
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

fn client_tls(alpn: &[u8]) -> rustls::ClientConfig {
    let mut tls = accepting_client(rustls::DEFAULT_VERSIONS);
    tls.alpn_protocols = vec![alpn.to_vec()];
    tls
}

type SendRequest = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// One HTTP/3 connection.
struct H3 {
    conn: quinn::Connection,
    send: SendRequest,
    _endpoint: quinn::Endpoint,
}

impl H3 {
    /// Connects to `addr` with `server_name` as SNI (an IP address sends
    /// none).
    async fn connect(addr: SocketAddr, server_name: &str) -> Result<H3, String> {
        H3::connect_within(addr, server_name, Duration::from_secs(10)).await
    }

    /// [`H3::connect`], failing after `timeout`.
    async fn connect_within(
        addr: SocketAddr,
        server_name: &str,
        timeout: Duration,
    ) -> Result<H3, String> {
        tokio::time::timeout(timeout, H3::try_connect(addr, server_name))
            .await
            .map_err(|_| format!("no HTTP/3 connection within {timeout:?}"))?
    }

    async fn try_connect(addr: SocketAddr, server_name: &str) -> Result<H3, String> {
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_tls(b"h3"))
            .map_err(|e| e.to_string())?;
        let local: SocketAddr = if addr.is_ipv6() {
            "[::1]:0".parse().map_err(|_| "addr")?
        } else {
            "127.0.0.1:0".parse().map_err(|_| "addr")?
        };
        let mut endpoint = quinn::Endpoint::client(local).map_err(|e| e.to_string())?;
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let connecting = endpoint
            .connect(addr, server_name)
            .map_err(|e| e.to_string())?;
        let conn = connecting.await.map_err(|e| e.to_string())?;
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move { poll_fn(|cx| driver.poll_close(cx)).await });
        Ok(H3 {
            conn,
            send,
            _endpoint: endpoint,
        })
    }

    /// The SHA-1 thumbprint of the certificate the server sent.
    fn thumbprint(&self) -> String {
        let certs = self
            .conn
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
            .expect("peer certificates");
        hex::encode(Sha1::digest(certs[0].as_ref()))
    }

    /// Sends `req` (with `body`, if any, in one piece) and reads the whole
    /// response.
    async fn fetch(
        &mut self,
        req: Request<()>,
        body: Option<&'static [u8]>,
    ) -> (Response<()>, Vec<u8>) {
        let mut stream = self.send.send_request(req).await.expect("send request");
        if let Some(b) = body {
            stream
                .send_data(Bytes::from_static(b))
                .await
                .expect("send body");
        }
        stream.finish().await.expect("finish request");
        let res = stream.recv_response().await.expect("response head");
        let mut out = Vec::new();
        while let Some(mut chunk) = stream.recv_data().await.expect("response body") {
            out.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        (res, out)
    }

    async fn get(&mut self, authority: &str, path: &str) -> (Response<()>, Vec<u8>) {
        let req = Request::get(format!("https://{authority}{path}"))
            .body(())
            .expect("request");
        self.fetch(req, None).await
    }
}

/// An HTTPS/1.1 request over TCP with `sni`; the raw response head.
async fn tcp_head(addr: SocketAddr, sni: &str, path: &str) -> String {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls(b"http/1.1")));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from(sni.to_owned()).expect("server name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split("\r\n\r\n").next().unwrap_or("").to_owned()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

// ---------------------------------------------------------------------------
// Backend (for the proxy)
// ---------------------------------------------------------------------------

type BackendBody = BoxBody<Bytes, io::Error>;

/// A test application: `…/echo` streams the request body back; `…/hold`
/// says it has the request (`arrived`) and answers once `release` is
/// notified; anything else gets the request's headers as text.
struct Backend {
    port: u16,
    arrived: Arc<Notify>,
    release: Arc<Notify>,
}

impl Backend {
    fn start() -> Backend {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let port = l.local_addr().expect("backend addr").port();
        let arrived = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let (a, r) = (arrived.clone(), release.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("backend runtime");
            rt.block_on(async move {
                l.set_nonblocking(true).expect("nonblocking");
                let l = tokio::net::TcpListener::from_std(l).expect("tokio listener");
                while let Ok((stream, _)) = l.accept().await {
                    let (a, r) = (a.clone(), r.clone());
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            backend_app(req, a.clone(), r.clone())
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        });
        Backend {
            port,
            arrived,
            release,
        }
    }
}

async fn backend_app(
    req: Request<Incoming>,
    arrived: Arc<Notify>,
    release: Arc<Notify>,
) -> Result<Response<BackendBody>, Infallible> {
    let text = |s: String| Full::new(Bytes::from(s)).map_err(|e| match e {}).boxed();
    let path = req.uri().path().to_owned();
    Ok(if path.ends_with("/echo") {
        Response::new(req.into_body().map_err(io::Error::other).boxed())
    } else if path.ends_with("/hold") {
        arrived.notify_one();
        release.notified().await;
        Response::new(text("held and released\n".into()))
    } else {
        let mut dump = format!("{} {}\n", req.method(), req.uri());
        for (k, v) in req.headers() {
            dump.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        Response::new(text(dump))
    })
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn static_file_and_range_over_http3() {
    let s = server("", None, &[]);
    runtime().block_on(async {
        let mut c = H3::connect(v4(&s), "localhost").await.expect("connect");
        let (res, body) = c.get("localhost", "/hello.txt").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.version(), http::Version::HTTP_3);
        assert_eq!(body, HELLO.as_bytes());
        assert!(res.headers().contains_key(http::header::DATE));
        assert!(!res.headers().contains_key(http::header::CONNECTION));

        let req = Request::get("https://localhost/hello.txt")
            .header("range", "bytes=6-9")
            .body(())
            .expect("request");
        let (res, body) = c.fetch(req, None).await;
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(body, &HELLO.as_bytes()[6..10]);
        assert_eq!(
            res.headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok()),
            Some(format!("bytes 6-9/{}", HELLO.len()).as_str())
        );

        // HTTP.sys's page for what the router refuses, as over HTTP/2.
        let (res, _) = c.get("localhost", "/nothing-here/").await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        // A header line over MaxFieldLength (16 KiB): HTTP.sys's 400.
        let req = Request::get("https://localhost/hello.txt")
            .header("x-long", "a".repeat(17_000))
            .body(())
            .expect("request");
        let (res, _) = c.fetch(req, None).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    });
    wait_for(Duration::from_secs(5), "HTTP/3 access-log lines", || {
        let logs = logs(&s);
        (logs.contains("GET /hello.txt HTTP/3.0") || logs.contains("/hello.txt HTTP/3"))
            .then_some(())
    });
}

#[test]
fn certificate_chosen_by_sni_in_httpsys_order() {
    let s = server("", None, &[]);
    runtime().block_on(async {
        // No SNI: the IP bindings, per address family.
        let c = H3::connect(v4(&s), "127.0.0.1").await.expect("v4");
        assert_eq!(c.thumbprint(), fixture_thumb("rsa.pem"));
        let c = H3::connect(v6(&s), "::1").await.expect("v6");
        assert_eq!(c.thumbprint(), fixture_thumb("ecdsa.pem"));
        // hostname:port beats the IP binding for its SNI name.
        let mut c = H3::connect(v4(&s), "other.test").await.expect("other.test");
        assert_eq!(c.thumbprint(), fixture_thumb("other.pem"));
        let (res, body) = c.get("localhost", "/hello.txt").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body, HELLO.as_bytes());
        // A name without a binding falls through to the IP binding.
        let c = H3::connect(v6(&s), "nothing.test").await.expect("fallback");
        assert_eq!(c.thumbprint(), fixture_thumb("ecdsa.pem"));
    });
}

#[test]
fn alt_svc_on_tcp_responses_and_disablequic_honoured() {
    let backend = Backend::start();
    let s = server("", Some(backend.port), &["disablequic=enable"]);
    let p = s.https_port;
    let expected = format!("h3=\":{p}\"; ma=86400");
    runtime().block_on(async {
        // The static site (hyper) and a proxied GET (served without hyper).
        for path in ["/hello.txt", "/api/dump"] {
            let head = tcp_head(v4(&s), "localhost", path).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert_eq!(header(&head, "alt-svc"), Some(expected.as_str()), "{path}");
            let head = tcp_head(v6(&s), "localhost", path).await;
            assert_eq!(header(&head, "alt-svc"), Some(expected.as_str()), "{path}");
            // The disablequic binding: no HTTP/3 advertised…
            let head = tcp_head(v4(&s), "other.test", path).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert_eq!(header(&head, "alt-svc"), None, "{path}: {head}");
        }
        // …and no QUIC handshake for it.
        let refused = H3::connect(v4(&s), "other.test").await;
        assert!(refused.is_err(), "QUIC handshake for a disablequic binding");
        // The other names still get HTTP/3.
        let mut c = H3::connect(v4(&s), "localhost").await.expect("localhost");
        let (res, _) = c.get("localhost", "/hello.txt").await;
        assert_eq!(res.status(), StatusCode::OK);
    });
    // Plain HTTP responses never advertise HTTP/3.
    let res = s.get("/hello.txt");
    assert_eq!(res.header("alt-svc"), None);
}

#[test]
fn http3_off_listens_on_tcp_only() {
    let s = server("http3=no\n", None, &[]);
    runtime().block_on(async {
        let head = tcp_head(v4(&s), "localhost", "/hello.txt").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(header(&head, "alt-svc"), None);
        // Nothing listens on UDP: no answer at all, so a short wait.
        let none = H3::connect_within(v4(&s), "localhost", Duration::from_secs(2)).await;
        assert!(none.is_err());
    });
}

#[test]
fn proxied_post_streams_its_body_both_ways() {
    let backend = Backend::start();
    let s = server("", Some(backend.port), &[]);
    runtime().block_on(async {
        let mut c = H3::connect(v4(&s), "localhost").await.expect("connect");
        // Forwarding headers: the backend is told the client used HTTPS.
        let (res, body) = c.get("localhost", "/api/dump").await;
        assert_eq!(res.status(), StatusCode::OK);
        let dump = String::from_utf8_lossy(&body).to_lowercase();
        assert!(dump.contains("x-forwarded-proto: https"), "{dump}");
        assert!(dump.starts_with("get /api/dump"), "{dump}");

        // A POST without a length: the first piece comes back through the
        // backend's echo before the second is sent, so both directions
        // stream (nothing waits for the whole body).
        let req = Request::post("https://localhost/api/echo")
            .body(())
            .expect("request");
        let mut stream = c.send.send_request(req).await.expect("send request");
        stream
            .send_data(Bytes::from_static(b"first piece;"))
            .await
            .expect("first piece");
        let res = tokio::time::timeout(Duration::from_secs(10), stream.recv_response())
            .await
            .expect("response head before the body ends")
            .expect("response head");
        assert_eq!(res.status(), StatusCode::OK);
        let mut got = Vec::new();
        while got.len() < b"first piece;".len() {
            let chunk = tokio::time::timeout(Duration::from_secs(10), stream.recv_data())
                .await
                .expect("first piece echoed before the body ends")
                .expect("data");
            let Some(mut chunk) = chunk else { break };
            got.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        assert_eq!(got, b"first piece;");
        let big = vec![b'x'; 3 << 20];
        stream
            .send_data(Bytes::from(big.clone()))
            .await
            .expect("second piece");
        stream.finish().await.expect("finish");
        while let Some(mut chunk) = stream.recv_data().await.expect("data") {
            got.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        assert_eq!(got.len(), b"first piece;".len() + big.len());
        assert!(got[b"first piece;".len()..].iter().all(|&b| b == b'x'));

        // With a Content-Length, the body goes through as sent.
        let req = Request::post("https://localhost/api/echo")
            .header("content-length", "11")
            .body(())
            .expect("request");
        let (res, body) = c.fetch(req, Some(b"hello world")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body, b"hello world");
    });
}

#[test]
fn shutdown_lets_a_request_in_flight_finish() {
    let backend = Backend::start();
    let mut s = server("", Some(backend.port), &[]);
    let addr = v4(&s);
    let rt = runtime();
    rt.block_on(async {
        let mut c = H3::connect(addr, "localhost").await.expect("connect");
        let req = Request::get("https://localhost/api/hold")
            .body(())
            .expect("request");
        let mut stream = c.send.send_request(req).await.expect("send request");
        stream.finish().await.expect("finish");
        tokio::time::timeout(Duration::from_secs(10), backend.arrived.notified())
            .await
            .expect("the request reaches the backend");

        // SIGTERM; the server then waits for the request in flight.
        let pid = s.child.as_ref().expect("running").id();
        let killed = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        // New connections are refused once shutdown has begun.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // A stopped endpoint ignores new handshakes (as a closed
            // port would), so each try is short.
            match H3::connect_within(addr, "localhost", Duration::from_secs(1)).await {
                Err(_) => break,
                Ok(other) => other.conn.close(0u32.into(), b""),
            }
            assert!(
                Instant::now() < deadline,
                "still accepting QUIC connections"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The server is still there for the request it has.
        assert!(
            s.child
                .as_mut()
                .expect("running")
                .try_wait()
                .expect("wait")
                .is_none(),
            "the server exited with a request in flight"
        );
        backend.release.notify_one();
        let res = tokio::time::timeout(Duration::from_secs(10), stream.recv_response())
            .await
            .expect("response in time")
            .expect("response head");
        assert_eq!(res.status(), StatusCode::OK);
        let mut body = Vec::new();
        while let Some(mut chunk) = stream.recv_data().await.expect("body") {
            body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        assert_eq!(body, b"held and released\n");
        c.conn.close(0u32.into(), b"done");
    });
    let out = s.terminate_wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Debian's ngtcp2 example client (GnuTLS), `apt-get install ngtcp2-client`:
/// an HTTP/3 implementation nobody here wrote. Missing is a failure, not a
/// skip (`.ci/run` installs it).
#[test]
fn ngtcp2_client_fetches_a_file() {
    let tool = "gtlsclient";
    let found = Command::new(tool).arg("--help").output();
    assert!(
        found.is_ok(),
        "{tool} is not installed (apt-get install ngtcp2-client)"
    );
    let s = server("", None, &[]);
    let download = tempfile::tempdir().expect("temp dir");
    let p = s.https_port;
    let out = Command::new(tool)
        .args([
            "--quiet",
            "--exit-on-all-streams-close",
            "--timeout=10s",
            "--handshake-timeout=10s",
        ])
        .arg(format!("--download={}", download.path().display()))
        .args(["127.0.0.1", &p.to_string()])
        .arg(format!("https://localhost:{p}/hello.txt"))
        .output()
        .expect("run gtlsclient");
    let got = std::fs::read_to_string(download.path().join("hello.txt")).unwrap_or_default();
    assert_eq!(
        got,
        HELLO,
        "gtlsclient: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
