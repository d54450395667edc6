//! Request smuggling through the reverse proxy.
//!
//! portshare stands between clients and applications it does not control.
//! If it and a backend ever disagree on where one request ends and the next
//! begins, a client can hide a request in the body of its own — reaching
//! paths, and taking forwarding headers, that were never its to send — or
//! make the backend read another client's request (cookies and all) as part
//! of one it planted on a pooled backend connection. The usual ways in are a
//! `Connection` header naming a header the proxy then drops
//! (`Connection: Content-Length` strips the framing from the forwarded head,
//! and the body is read as the next request) and framings that two parsers
//! may read differently (two lengths, a length and `chunked`, codings other
//! than `chunked`, lengths Rust's integer parser takes but HTTP does not).
//!
//! These tests put a recording backend — a plain socket that parses
//! requests by hand and keeps every byte — behind the real server binary,
//! and check that the backend saw exactly the requests the clients sent:
//! one per client request, with its method, path and body, the body framed
//! by `Content-Length` or `chunked` in the forwarded head, and nothing made
//! from a body. Ambiguous framings must be refused with HTTP.sys's 400 page
//! before anything reaches the backend. Every case runs over plain HTTP
//! (`plain::…`) and over TLS (`tls::…`), and both of the server's paths are
//! covered: bodiless HTTP/1.1 `GET`s are answered by `server::direct`,
//! everything else by hyper.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{wait_for, RawResponse, TestServer};
use portshare::errors::HttpSysError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A whole request hidden in a body: if it ever reaches the backend as a
/// request, the client smuggled it past the proxy.
const SMUGGLED: &str = "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n";

/// A hidden request that asks for a body: planted on a pooled backend
/// connection, it would take the start of the next request sent there —
/// whoever's it is — as its body.
const CAPTURE: &str = "POST /admin/capture HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n";

/// The backend's answer to every request it parses.
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// The backend's answer to bytes that are not a request head; then it closes.
const REFUSED: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// How long a client waits for a response.
const READ_TIMEOUT: Duration = Duration::from_secs(4);

/// How long the backend must have read nothing before what it saw is
/// checked: bytes smuggled behind a request arrive with it or just after.
const QUIET: Duration = Duration::from_millis(150);

// ---------------------------------------------------------------------------
// The recording backend
// ---------------------------------------------------------------------------

/// How a request's body was delimited in its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length,
    Chunked,
    /// `Content-Length` and `Transfer-Encoding` both: never acceptable.
    Both,
}

/// One request as the backend parsed it.
#[derive(Debug, Clone)]
struct Seen {
    /// Which backend connection it came on (in accept order).
    conn: usize,
    method: String,
    target: String,
    version: String,
    /// Names in lower case, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    framing: Framing,
}

impl Seen {
    /// Every value of header `name` (lower case).
    fn fields(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Everything the backend saw.
#[derive(Default)]
struct Log {
    requests: Vec<Seen>,
    /// Bytes where a request head should have started but did not, per
    /// backend connection.
    garbled: Vec<(usize, Vec<u8>)>,
    /// All bytes received, per backend connection.
    raw: Vec<Vec<u8>>,
    /// Bytes received and not yet a whole request, per backend connection.
    unparsed: Vec<Vec<u8>>,
    last_read: Option<Instant>,
}

struct Backend {
    port: u16,
    log: Arc<Mutex<Log>>,
}

/// A request wanted at the backend.
struct Want<'a> {
    method: &'a str,
    target: &'a str,
    body: &'a [u8],
}

fn want<'a>(method: &'a str, target: &'a str, body: &'a str) -> Want<'a> {
    Want {
        method,
        target,
        body: body.as_bytes(),
    }
}

impl Backend {
    fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let port = listener.local_addr().expect("backend addr").port();
        let log = Arc::new(Mutex::new(Log::default()));
        let shared = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let id = {
                    let mut log = lock(&shared);
                    log.raw.push(Vec::new());
                    log.unparsed.push(Vec::new());
                    log.raw.len() - 1
                };
                let log = shared.clone();
                std::thread::spawn(move || serve_connection(stream, id, &log));
            }
        });
        Backend { port, log }
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        lock(&self.log)
    }

    /// Waits (bounded) until `n` requests or garbled heads were seen and
    /// the backend has then read nothing for [`QUIET`].
    fn settle(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (count, last) = {
                let log = self.lock();
                (log.requests.len() + log.garbled.len(), log.last_read)
            };
            let quiet = last.is_none_or(|t| t.elapsed() >= QUIET);
            if (count >= n && quiet) || Instant::now() > deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Checks that the backend saw exactly `wanted`, in order, each framed
    /// and whole, and nothing else; takes what it saw, so that the next
    /// check starts afresh.
    fn check(&self, wanted: &[Want<'_>]) -> Result<Vec<Seen>, String> {
        self.settle(wanted.len());
        let mut log = self.lock();
        let report = describe(&log);
        let requests = std::mem::take(&mut log.requests);
        let garbled = std::mem::take(&mut log.garbled);
        let fail = |why: String| Err(format!("{why}\n  the backend saw:\n{report}"));
        if !garbled.is_empty() {
            return fail(
                "bytes that are not a request head reached the backend where a request \
                 should start (a request made from another's body)"
                    .into(),
            );
        }
        if log.unparsed.iter().any(|u| !u.is_empty()) {
            return fail(
                "a backend connection holds the start of a request no client sent \
                 (smuggled, waiting for the next request to complete it)"
                    .into(),
            );
        }
        if requests.len() != wanted.len() {
            return fail(format!(
                "{} requests reached the backend for {} sent",
                requests.len(),
                wanted.len()
            ));
        }
        for (i, (seen, w)) in requests.iter().zip(wanted).enumerate() {
            if (seen.method.as_str(), seen.target.as_str()) != (w.method, w.target) {
                return fail(format!(
                    "request {i} is {} {}, not {} {}",
                    seen.method, seen.target, w.method, w.target
                ));
            }
            if seen.body != w.body {
                return fail(format!(
                    "request {i}'s body is {:?}, not {:?}",
                    String::from_utf8_lossy(&seen.body),
                    String::from_utf8_lossy(w.body)
                ));
            }
            if seen.framing == Framing::Both {
                return fail(format!(
                    "request {i} was forwarded with both Content-Length and Transfer-Encoding"
                ));
            }
        }
        Ok(requests)
    }
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the backend saw, one line each, for failure messages.
fn describe(log: &Log) -> String {
    let mut out = String::new();
    for s in &log.requests {
        let headers: Vec<String> = s.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        out.push_str(&format!(
            "    conn {}: {} {} {} [{}] framing {:?}, body {:?}\n",
            s.conn,
            s.method,
            s.target,
            s.version,
            headers.join(" | "),
            s.framing,
            String::from_utf8_lossy(&s.body)
        ));
    }
    for (conn, bytes) in &log.garbled {
        out.push_str(&format!(
            "    conn {conn}: NOT A REQUEST HEAD: {:?}\n",
            String::from_utf8_lossy(bytes)
        ));
    }
    for (conn, bytes) in log.unparsed.iter().enumerate() {
        if !bytes.is_empty() {
            out.push_str(&format!(
                "    conn {conn}: INCOMPLETE, WAITING: {:?}\n",
                String::from_utf8_lossy(bytes)
            ));
        }
    }
    for (conn, bytes) in log.raw.iter().enumerate() {
        out.push_str(&format!(
            "    conn {conn} raw bytes: {:?}\n",
            String::from_utf8_lossy(bytes)
        ));
    }
    if out.is_empty() {
        out.push_str("    nothing\n");
    }
    out
}

/// One backend connection: requests answered in turn (keep-alive) until
/// the proxy closes it or sends something that is not a request.
fn serve_connection(mut stream: TcpStream, id: usize, log: &Mutex<Log>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        loop {
            match parse_request(&buf) {
                Parse::Request(mut seen, used) => {
                    buf.drain(..used);
                    seen.conn = id;
                    {
                        let mut log = lock(log);
                        log.requests.push(seen);
                        log.unparsed[id] = buf.clone();
                    }
                    if stream.write_all(OK).is_err() {
                        return;
                    }
                }
                Parse::Garbled => {
                    {
                        let mut log = lock(log);
                        log.garbled.push((id, std::mem::take(&mut buf)));
                        log.unparsed[id].clear();
                    }
                    let _ = stream.write_all(REFUSED);
                    return;
                }
                Parse::Partial => break,
            }
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut log = lock(log);
        log.raw[id].extend_from_slice(&chunk[..n]);
        log.unparsed[id] = buf.clone();
        log.last_read = Some(Instant::now());
    }
}

enum Parse {
    /// More bytes are needed.
    Partial,
    /// Not a request head.
    Garbled,
    /// A whole request, and how many bytes it took.
    Request(Seen, usize),
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `METHOD SP target SP HTTP/1.x`, strictly.
fn request_line(line: &[u8]) -> Option<(String, String, String)> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = parts.next().is_none()
        && !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_uppercase())
        && !target.is_empty()
        && target.bytes().all(|b| b.is_ascii_graphic())
        && matches!(version, "HTTP/1.1" | "HTTP/1.0");
    valid.then(|| (method.to_owned(), target.to_owned(), version.to_owned()))
}

/// `name: value` with a token name and no control characters but tab.
fn header_line(line: &[u8]) -> Option<(String, String)> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.iter().all(|&b| token(b)) {
        return None;
    }
    if value.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f)) {
        return None;
    }
    Some((
        String::from_utf8_lossy(name).to_ascii_lowercase(),
        String::from_utf8_lossy(value.trim_ascii()).into_owned(),
    ))
}

/// One request at the start of `buf`: the head until the blank line, then
/// the body by `Transfer-Encoding: chunked` or `Content-Length`.
fn parse_request(buf: &[u8]) -> Parse {
    if buf.is_empty() {
        return Parse::Partial;
    }
    let Some(line_end) = find(buf, b"\r\n") else {
        return if buf.len() > 16 * 1024 {
            Parse::Garbled
        } else {
            Parse::Partial
        };
    };
    let Some((method, target, version)) = request_line(&buf[..line_end]) else {
        return Parse::Garbled;
    };
    // The header lines complete so far, and whether the blank line came.
    let mut headers = Vec::new();
    let mut at = line_end + 2;
    let head_end = loop {
        let Some(end) = find(&buf[at..], b"\r\n") else {
            return Parse::Partial;
        };
        if end == 0 {
            break at + 2;
        }
        match header_line(&buf[at..at + end]) {
            Some(field) => headers.push(field),
            None => return Parse::Garbled,
        }
        at += end + 2;
    };
    let values = |name: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_owned()))
            .collect()
    };
    let codings = values("transfer-encoding");
    let lengths = values("content-length");
    let rest = &buf[head_end..];
    let (body, used, framing) = if let Some(last) = codings.last() {
        if !last.eq_ignore_ascii_case("chunked") {
            return Parse::Garbled;
        }
        let framing = if lengths.is_empty() {
            Framing::Chunked
        } else {
            Framing::Both
        };
        match dechunk(rest) {
            Err(()) => return Parse::Garbled,
            Ok(None) => return Parse::Partial,
            Ok(Some((body, used))) => (body, used, framing),
        }
    } else if let Some(first) = lengths.first() {
        let valid = !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit());
        let Some(n) = first.parse::<usize>().ok().filter(|_| valid) else {
            return Parse::Garbled;
        };
        if lengths.iter().any(|l| l != first) {
            return Parse::Garbled;
        }
        if rest.len() < n {
            return Parse::Partial;
        }
        (rest[..n].to_vec(), n, Framing::Length)
    } else {
        (Vec::new(), 0, Framing::None)
    };
    let seen = Seen {
        conn: 0,
        method,
        target,
        version,
        headers,
        body,
        framing,
    };
    Parse::Request(seen, head_end + used)
}

/// A chunked body at the start of `b`: `Ok(None)` while incomplete, else
/// the data and the bytes it took (trailers included).
fn dechunk(b: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ()> {
    let mut at = 0;
    let mut body = Vec::new();
    loop {
        let Some(end) = find(&b[at..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&b[at..at + end]).map_err(|_| ())?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| ())?;
        at += end + 2;
        if size == 0 {
            loop {
                let Some(end) = find(&b[at..], b"\r\n") else {
                    return Ok(None);
                };
                at += end + 2;
                if end == 0 {
                    return Ok(Some((body, at)));
                }
            }
        }
        if b.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&b[at..at + size]);
        if &b[at + size..at + size + 2] != b"\r\n" {
            return Err(());
        }
        at += size + 2;
    }
}

// ---------------------------------------------------------------------------
// portshare in front of it, and raw clients over TCP or TLS
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// portshare with `/api/` proxied to a recording backend.
struct Proxy {
    scheme: Scheme,
    backend: Backend,
    /// For [`Scheme::Https`]: trusts the server's generated certificate.
    tls: Option<Arc<ClientConfig>>,
    server: TestServer,
}

impl Proxy {
    fn start(scheme: Scheme) -> Proxy {
        let backend = Backend::start();
        let section = |prefix: &str| {
            format!(
                "\n[app:api]\nprefix={prefix}/api/\nbackend=http://127.0.0.1:{}\ntimeout=3\n",
                backend.port
            )
        };
        let (server, tls) = match scheme {
            Scheme::Http => (TestServer::start(&section("http://+:{port}")), None),
            Scheme::Https => {
                // As tests/proxy.rs: the first run makes and binds a
                // localhost certificate, which the client then trusts.
                let s = TestServer::prepare_tls(&section("https://+:{HTTPS}"), |_| {});
                let ini = std::fs::read_to_string(&s.config).expect("read config");
                let ini = ini.replace("{HTTPS}", &s.https_port.to_string());
                std::fs::write(&s.config, ini).expect("write config");
                let s = s.launch(&[]);
                let config = client_config(&s);
                (s, Some(config))
            }
        };
        let proxy = Proxy {
            scheme,
            backend,
            tls,
            server,
        };
        // The HTTPS listener may come up a moment after the HTTP one.
        wait_for(Duration::from_secs(10), "the listener", || {
            proxy.try_connect().ok()
        });
        proxy
    }

    fn try_connect(&self) -> Result<Box<dyn Stream>, String> {
        let port = match self.scheme {
            Scheme::Http => self.server.port,
            Scheme::Https => self.server.https_port,
        };
        let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(READ_TIMEOUT)).ok();
        tcp.set_write_timeout(Some(READ_TIMEOUT)).ok();
        let Some(config) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let conn = ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        Ok(Box::new(tls))
    }

    /// A new client connection with `request` sent on it.
    fn send(&self, request: &str) -> Client {
        let mut c = Client {
            stream: self.try_connect().expect("connect to portshare"),
            buf: Vec::new(),
        };
        c.send(request);
        c
    }
}

/// Trusts the CA that issued the certificate the server made on its first run.
fn client_config(s: &TestServer) -> Arc<ClientConfig> {
    let certs = s.dir.path().join("certs");
    let hash = wait_for(Duration::from_secs(10), "the generated certificate", || {
        let store = std::fs::read_to_string(certs.join("sslcert.json")).ok()?;
        let json: serde_json::Value = serde_json::from_str(&store).ok()?;
        json["sslcert"][0]["certhash"].as_str().map(str::to_owned)
    });
    // The file holds the leaf and the development CA that issued it: trust the CA.
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(certs.join(format!("{hash}.pem")))
            .expect("certificate")
            .collect::<Result<_, _>>()
            .expect("certificates");
    let mut roots = RootCertStore::empty();
    roots
        .add(chain.last().expect("a certificate").clone())
        .expect("trust the certificate");
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    Arc::new(config)
}

/// A client connection that reads responses one by one.
struct Client {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
}

impl Client {
    fn send(&mut self, request: &str) {
        self.stream
            .write_all(request.as_bytes())
            .and_then(|()| self.stream.flush())
            .expect("send the request");
    }

    /// Reads more; false once the connection has ended (or timed out; a
    /// TLS close without close_notify ends it too).
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next response, or `None` if the connection ended first.
    fn response(&mut self) -> Option<RawResponse> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill() {
                return None;
            }
        };
        let head = RawResponse::parse(&self.buf[..head_end]);
        let end = if let Some(len) = head.header("content-length") {
            let len: usize = len.parse().ok()?;
            while self.buf.len() < head_end + len {
                if !self.fill() {
                    return None;
                }
            }
            head_end + len
        } else if head.header("transfer-encoding") == Some("chunked") {
            loop {
                if let Some(i) = find(&self.buf[head_end..], b"0\r\n\r\n") {
                    break head_end + i + 5;
                }
                if !self.fill() {
                    return None;
                }
            }
        } else {
            while self.fill() {}
            self.buf.len()
        };
        let response = RawResponse::parse(&self.buf[..end]);
        self.buf.drain(..end);
        Some(response)
    }
}

/// A 200 with the backend's `ok`.
fn expect_ok(what: &str, res: Option<RawResponse>) -> Result<(), String> {
    match res {
        Some(r) if r.status == 200 && r.body == b"ok" => Ok(()),
        Some(r) => Err(format!(
            "{what}: the client got {:?} {:?}, not the backend's 200 ok",
            r.head,
            r.text()
        )),
        None => Err(format!("{what}: the client got no response")),
    }
}

/// HTTP.sys's 400 page, as tests/httpsys_errors.rs checks it.
fn expect_bad_request(res: Option<RawResponse>) -> Result<(), String> {
    let Some(r) = res else {
        return Err("no response, not HTTP.sys's 400".into());
    };
    let page = HttpSysError::BadRequest.body();
    if r.status != 400
        || r.text() != page
        || r.header("server") != Some("Microsoft-HTTPAPI/2.0")
        || r.header("connection") != Some("close")
    {
        return Err(format!(
            "not HTTP.sys's 400 Bad Request page: {:?} {:?}",
            r.head,
            r.text()
        ));
    }
    Ok(())
}

/// Panics with every failure of `case`, if any.
fn report(case: &str, results: impl IntoIterator<Item = Result<(), String>>) {
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{case}:\n{}", failures.join("\n---\n"));
}

/// Header `name` at the backend has exactly one value, which `ok` accepts.
fn one_field(seen: &Seen, name: &str, ok: impl Fn(&str) -> bool) -> Result<(), String> {
    match seen.fields(name)[..] {
        [v] if ok(v) => Ok(()),
        ref got => Err(format!(
            "{} {}: the backend got {name}: {got:?}",
            seen.method, seen.target
        )),
    }
}

/// `X-Forwarded-For` whose last item is the real peer.
fn forwarded_for_peer(v: &str) -> bool {
    v.rsplit(',').next().map(str::trim) == Some("127.0.0.1")
}

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

/// `POST` with `Connection: {connection}` and [`SMUGGLED`] as its body: the
/// backend must get the body as the body.
fn body_named_by_connection(scheme: Scheme, version: &str, connection: &str) {
    let p = Proxy::start(scheme);
    let request = format!(
        "POST /api/upload {version}\r\nHost: h\r\nConnection: {connection}\r\n\
         Content-Length: {}\r\n\r\n{SMUGGLED}",
        SMUGGLED.len()
    );
    let res = p.send(&request).response();
    let seen = p.backend.check(&[want("POST", "/api/upload", SMUGGLED)]);
    report(
        &format!("{scheme:?}, {version}, Connection: {connection}"),
        [seen.map(drop), expect_ok("the POST", res)],
    );
}

fn connection_content_length_http11(scheme: Scheme) {
    body_named_by_connection(scheme, "HTTP/1.1", "Content-Length");
}

fn connection_content_length_http10(scheme: Scheme) {
    body_named_by_connection(scheme, "HTTP/1.0", "Content-Length");
}

fn connection_keep_alive_content_length(scheme: Scheme) {
    body_named_by_connection(scheme, "HTTP/1.1", "keep-alive, content-length");
}

fn connection_close_content_length(scheme: Scheme) {
    body_named_by_connection(scheme, "HTTP/1.1", "close, Content-Length");
}

fn connection_content_length_upper_case(scheme: Scheme) {
    body_named_by_connection(scheme, "HTTP/1.1", "CONTENT-LENGTH");
}

fn connection_transfer_encoding_chunked(scheme: Scheme) {
    let p = Proxy::start(scheme);
    let request = format!(
        "POST /api/upload HTTP/1.1\r\nHost: h\r\nConnection: Transfer-Encoding\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n",
        SMUGGLED.len()
    );
    let res = p.send(&request).response();
    let seen = p.backend.check(&[want("POST", "/api/upload", SMUGGLED)]);
    report(
        &format!("{scheme:?}, Connection: Transfer-Encoding, chunked"),
        [seen.map(drop), expect_ok("the POST", res)],
    );
}

/// A body request (hyper's path) with `Connection: {connection}` and the
/// extra header lines `extra`; `check` looks at what the backend got.
fn named_forwarding_header(
    scheme: Scheme,
    connection: &str,
    extra: &str,
    check: impl Fn(&Seen) -> Result<(), String>,
) {
    let p = Proxy::start(scheme);
    let request = format!(
        "POST /api/upload HTTP/1.1\r\nHost: h\r\nConnection: {connection}\r\n{extra}\
         Content-Length: {}\r\n\r\n{SMUGGLED}",
        SMUGGLED.len()
    );
    let res = p.send(&request).response();
    let seen = p.backend.check(&[want("POST", "/api/upload", SMUGGLED)]);
    let fields = match &seen {
        Ok(s) => check(&s[0]),
        Err(_) => Ok(()),
    };
    report(
        &format!("{scheme:?}, Connection: {connection}"),
        [seen.map(drop), fields, expect_ok("the POST", res)],
    );
}

fn connection_host(scheme: Scheme) {
    named_forwarding_header(scheme, "host", "", |s| {
        one_field(s, "host", |v| v == "h")?;
        one_field(s, "x-forwarded-host", |v| v == "h")
    });
}

fn connection_x_forwarded_for(scheme: Scheme) {
    named_forwarding_header(
        scheme,
        "x-forwarded-for",
        "X-Forwarded-For: 6.6.6.6\r\n",
        |s| one_field(s, "x-forwarded-for", forwarded_for_peer),
    );
}

fn connection_x_forwarded_proto(scheme: Scheme) {
    let spoofed = match scheme {
        Scheme::Http => "X-Forwarded-Proto: https\r\n",
        Scheme::Https => "X-Forwarded-Proto: http\r\n",
    };
    named_forwarding_header(scheme, "x-forwarded-proto", spoofed, |s| {
        one_field(s, "x-forwarded-proto", |v| v == scheme.name())
    });
}

/// Bodiless HTTP/1.1 GETs, answered by `server::direct`, whose
/// `Connection` names forwarding and framing headers.
fn direct_get_connection_names_forwarding_headers(scheme: Scheme) {
    let p = Proxy::start(scheme);
    let mut c = p.send(
        "GET /api/direct HTTP/1.1\r\nHost: h\r\nConnection: host, x-forwarded-for\r\n\
         X-Forwarded-For: 6.6.6.6\r\n\r\n\
         GET /api/direct2 HTTP/1.1\r\nHost: h\r\n\
         Connection: content-length, transfer-encoding, x-forwarded-proto\r\n\
         X-Forwarded-Proto: spoofed\r\n\r\n",
    );
    let first = c.response();
    let second = c.response();
    let seen = p.backend.check(&[
        want("GET", "/api/direct", ""),
        want("GET", "/api/direct2", ""),
    ]);
    let mut results = vec![
        expect_ok("the first GET", first),
        expect_ok("the second GET", second),
    ];
    match seen {
        Ok(seen) => {
            for s in &seen {
                results.push(one_field(s, "host", |v| v == "h"));
                results.push(one_field(s, "x-forwarded-for", forwarded_for_peer));
                results.push(one_field(s, "x-forwarded-proto", |v| v == scheme.name()));
                if s.framing != Framing::None {
                    results.push(Err(format!(
                        "{}: a bodiless GET was forwarded with framing {:?}",
                        s.target, s.framing
                    )));
                }
            }
        }
        Err(e) => results.push(Err(e)),
    }
    report(&format!("{scheme:?}, direct GETs"), results);
}

/// After a body request with `Connection: Content-Length`, the next
/// request on the same client connection (sent in the same write) reaches
/// the backend as itself.
fn next_request_on_the_connection_is_its_own(scheme: Scheme) {
    let p = Proxy::start(scheme);
    let mut c = p.send(&format!(
        "POST /api/first HTTP/1.1\r\nHost: h\r\nConnection: Content-Length\r\n\
         Content-Length: {}\r\n\r\n{SMUGGLED}\
         GET /api/second HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        SMUGGLED.len()
    ));
    let first = c.response();
    let second = c.response();
    let seen = p.backend.check(&[
        want("POST", "/api/first", SMUGGLED),
        want("GET", "/api/second", ""),
    ]);
    report(
        &format!("{scheme:?}, a second request after Connection: Content-Length"),
        [
            seen.map(drop),
            expect_ok("the POST", first),
            expect_ok("the GET after it", second),
        ],
    );
}

/// Body requests that plant [`CAPTURE`] on every worker's pooled backend
/// connection (one client connection per worker: the server runs one per
/// core, as many as this process sees, and hands connections out
/// round-robin), then another client's request with its cookie: it must
/// reach the backend as its own request, its cookie in no one's body.
fn another_client_is_not_swallowed(scheme: Scheme) {
    let p = Proxy::start(scheme);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let attack = format!(
        "POST /api/attack HTTP/1.1\r\nHost: h\r\nConnection: Content-Length\r\n\
         Content-Length: {}\r\n\r\n{CAPTURE}",
        CAPTURE.len()
    );
    let mut results = Vec::new();
    // Kept open until the end, so that nothing of theirs is cut short.
    let mut attackers = Vec::new();
    for i in 0..workers {
        let mut c = p.send(&attack);
        results.push(expect_ok(&format!("attacker {i}"), c.response()));
        attackers.push(c);
    }
    let victim = p
        .send("GET /api/victim HTTP/1.1\r\nHost: h\r\nCookie: victim=1\r\n\r\n")
        .response();
    results.push(expect_ok("the victim", victim));
    let mut wanted: Vec<Want<'_>> = (0..workers)
        .map(|_| want("POST", "/api/attack", CAPTURE))
        .collect();
    wanted.push(want("GET", "/api/victim", ""));
    p.backend.settle(wanted.len());
    let leaked: Vec<String> = p
        .backend
        .lock()
        .requests
        .iter()
        .filter(|s| find(&s.body, b"victim=1").is_some())
        .map(|s| format!("{} {}", s.method, s.target))
        .collect();
    if !leaked.is_empty() {
        results.push(Err(format!(
            "the victim's cookie was in the body of {leaked:?}"
        )));
    }
    match p.backend.check(&wanted) {
        Ok(seen) => {
            let victim = &seen[workers];
            results.push(one_field(victim, "cookie", |v| v == "victim=1"));
        }
        Err(e) => results.push(Err(e)),
    }
    drop(attackers);
    report(
        &format!("{scheme:?}, a second client after Connection: Content-Length"),
        results,
    );
}

/// Framings two parsers may read differently: each is refused with
/// HTTP.sys's 400 and nothing reaches the backend (a GET on a new
/// connection after each is the only request it sees).
fn ambiguous_framing_is_refused_with_400(scheme: Scheme) {
    let p = Proxy::start(scheme);
    let hello_then = format!("hello{SMUGGLED}");
    let last_chunk_then = format!("0\r\n\r\n{SMUGGLED}");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "Content-Length twice, different",
            format!("Content-Length: 5\r\nContent-Length: {}", hello_then.len()),
            &hello_then,
        ),
        (
            "Content-Length: 5, 6",
            "Content-Length: 5, 6".into(),
            &hello_then,
        ),
        (
            "Content-Length and Transfer-Encoding: chunked",
            format!(
                "Content-Length: {}\r\nTransfer-Encoding: chunked",
                last_chunk_then.len()
            ),
            &last_chunk_then,
        ),
        (
            "Transfer-Encoding: chunked, identity",
            "Transfer-Encoding: chunked, identity".into(),
            &last_chunk_then,
        ),
        (
            "Transfer-Encoding: identity",
            "Transfer-Encoding: identity".into(),
            SMUGGLED,
        ),
        (
            "Content-Length: +5",
            "Content-Length: +5".into(),
            &hello_then,
        ),
        (
            "Content-Length: 0x5",
            "Content-Length: 0x5".into(),
            &hello_then,
        ),
    ];
    let mut failures = Vec::new();
    for (i, (name, fields, body)) in cases.iter().enumerate() {
        let mut c = p.send(&format!(
            "POST /api/upload HTTP/1.1\r\nHost: h\r\n{fields}\r\n\r\n{body}"
        ));
        let mut results = vec![expect_bad_request(c.response())];
        if let Some(more) = c.response() {
            results.push(Err(format!(
                "the connection went on after the 400: {:?}",
                more.head
            )));
        }
        let probe = format!("/api/probe{i}");
        let mut probed = p.send(&format!(
            "GET {probe} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        ));
        results.push(expect_ok("the GET after it", probed.response()));
        results.push(p.backend.check(&[want("GET", &probe, "")]).map(drop));
        failures.extend(
            results
                .into_iter()
                .filter_map(Result::err)
                .map(|e| format!("[{name}] {e}")),
        );
    }
    report(
        &format!("{scheme:?}, ambiguous framings"),
        failures.into_iter().map(Err),
    );
}

/// Each case as `plain::NAME` (HTTP) and `tls::NAME` (HTTPS).
macro_rules! plain_and_tls {
    ($($name:ident),* $(,)?) => {
        mod plain {
            $(#[test]
            fn $name() {
                super::$name(super::Scheme::Http);
            })*
        }
        mod tls {
            $(#[test]
            fn $name() {
                super::$name(super::Scheme::Https);
            })*
        }
    };
}

plain_and_tls!(
    connection_content_length_http11,
    connection_content_length_http10,
    connection_keep_alive_content_length,
    connection_close_content_length,
    connection_content_length_upper_case,
    connection_transfer_encoding_chunked,
    connection_host,
    connection_x_forwarded_for,
    connection_x_forwarded_proto,
    direct_get_connection_names_forwarding_headers,
    next_request_on_the_connection_is_its_own,
    another_client_is_not_swallowed,
    ambiguous_framing_is_refused_with_400,
);
