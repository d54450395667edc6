//! ACME faults and ARI (issue 20, points 4 and 7) that Debian's pebble 2.4
//! cannot produce: a rate limit (`rateLimited`, with `Retry-After`) and a
//! renewal window (ACME renewal information, RFC 9773 — pebble 2.4's
//! directory has no `renewalInfo`). A tiny ACME server stands in for it on
//! loopback: HTTPS (instant-acme's client is HTTPS only) with a test CA given
//! as `[acme] ca_root`, serving the directory, nonces, new accounts (no
//! signature checks: it is not under test), the renewal window, and a
//! problem document for every new order.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::accept_all::accepting_client;
use common::log_lines::Lines;
use common::{thumbprint, wait_for, TestServer};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConnection, StreamOwned};

/// `src/acme/mod.rs`'s `ACME_APPID`, as documented.
const ACME_APPID: &str = "{7a1f5a0e-ac3e-4e2d-8f01-61636d650001}";
/// A name the default choice takes (public-looking).
const NAME: &str = "www.portshare-acme.net";

/// What the stub answers to a new order, and its renewal window.
#[derive(Clone)]
struct Behaviour {
    /// Problem type (after `urn:ietf:params:acme:error:`), detail, status.
    order_problem: (&'static str, &'static str, u16),
    /// `Retry-After` seconds on the refused order.
    retry_after: Option<u64>,
    /// `renewalInfo` in the directory, with this window (RFC 3339 start
    /// and end); `None`: no ARI, as pebble 2.4.
    ari: Option<(String, String)>,
}

/// The loopback ACME server.
struct Stub {
    _dir: tempfile::TempDir,
    directory: String,
    ca_root: PathBuf,
    /// "METHOD PATH" of each request, in order.
    requests: Arc<Mutex<Vec<String>>>,
}

impl Stub {
    fn start(behaviour: Behaviour) -> Stub {
        let dir = tempfile::tempdir().expect("temp dir");
        let (ca, ca_pem) = test_ca("stub ACME CA");
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        leaf.subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        let leaf = leaf.signed_by(&leaf_key, &ca).expect("leaf");
        let ca_root = dir.path().join("stub-ca.pem");
        std::fs::write(&ca_root, ca_pem).expect("write ca");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .expect("stub TLS config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stub");
        let base = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let b = base.clone();
        std::thread::spawn(move || {
            let nonce = Arc::new(AtomicU64::new(1));
            for tcp in listener.incoming().map_while(Result::ok) {
                let (config, seen, base, behaviour, nonce) = (
                    config.clone(),
                    seen.clone(),
                    b.clone(),
                    behaviour.clone(),
                    nonce.clone(),
                );
                std::thread::spawn(move || {
                    let _ = serve(tcp, config, &seen, &base, &behaviour, &nonce);
                });
            }
        });
        Stub {
            _dir: dir,
            directory: format!("{base}/dir"),
            ca_root,
            requests,
        }
    }

    fn requests(&self, prefix: &str) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| r.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn section(&self) -> String {
        format!(
            "\n[acme]\ndirectory={}\nca_root={}\n",
            self.directory,
            self.ca_root.display()
        )
    }
}

/// A self-signed CA and its PEM.
fn test_ca(cn: &str) -> (rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, String) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().expect("key"))
        .expect("ca");
    let pem = ca.pem();
    (ca, pem)
}

/// One request per connection (`Connection: close`).
fn serve(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    seen: &Mutex<Vec<String>>,
    base: &str,
    b: &Behaviour,
    nonce: &AtomicU64,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    let mut reader = BufReader::new(&mut tls);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    seen.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(format!("{method} {path}"));
    let fresh = format!("nonce{}", nonce.fetch_add(1, Ordering::SeqCst));
    let (status, headers, body): (u16, Vec<(&str, String)>, String) =
        match (method.as_str(), path.as_str()) {
            ("GET", "/dir") => {
                let mut d = serde_json::json!({
                    "newNonce": format!("{base}/nonce"),
                    "newAccount": format!("{base}/account"),
                    "newOrder": format!("{base}/order"),
                });
                if b.ari.is_some() {
                    d["renewalInfo"] = format!("{base}/ari").into();
                }
                (
                    200,
                    vec![("Content-Type", "application/json".into())],
                    d.to_string(),
                )
            }
            ("HEAD", "/nonce") | ("GET", "/nonce") => (200, vec![], String::new()),
            ("POST", "/account") => (
                201,
                vec![
                    ("Location", format!("{base}/account/1")),
                    ("Content-Type", "application/json".into()),
                ],
                r#"{"status":"valid"}"#.into(),
            ),
            ("POST", "/order") => {
                let (kind, detail, status) = b.order_problem;
                let mut h = vec![("Content-Type", "application/problem+json".into())];
                if let Some(s) = b.retry_after {
                    h.push(("Retry-After", s.to_string()));
                }
                let doc = serde_json::json!({
                    "type": format!("urn:ietf:params:acme:error:{kind}"),
                    "detail": detail,
                    "status": status,
                });
                (status, h, doc.to_string())
            }
            ("GET", p) if p.starts_with("/ari/") && b.ari.is_some() => {
                let (start, end) = b.ari.clone().unwrap_or_default();
                let doc = serde_json::json!({
                    "suggestedWindow": { "start": start, "end": end }
                });
                (
                    200,
                    vec![
                        ("Content-Type", "application/json".into()),
                        ("Retry-After", "21600".into()),
                    ],
                    doc.to_string(),
                )
            }
            _ => (404, vec![], "not found".into()),
        };
    let mut head = format!(
        "HTTP/1.1 {status} Stub\r\nReplay-Nonce: {fresh}\r\nConnection: close\r\nContent-Length: {}\r\n",
        if method == "HEAD" { 0 } else { body.len() }
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes())?;
    if method != "HEAD" {
        tls.write_all(body.as_bytes())?;
    }
    tls.flush()?;
    tls.conn.send_close_notify();
    tls.flush()
}

fn cli(s: &TestServer, args: &[&str]) -> std::process::Output {
    common::run_cli(&s.config, args)
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A GET over HTTPS with SNI `NAME`: the body and the thumbprint of the
/// certificate served (any is accepted).
fn served_for_name(s: &TestServer) -> (String, String) {
    let config = accepting_client(rustls::DEFAULT_VERSIONS);
    let name = ServerName::try_from(NAME.to_owned()).expect("name");
    let conn = ClientConnection::new(Arc::new(config), name).expect("client");
    let https: SocketAddr = ([127, 0, 0, 1], s.https_port).into();
    let tcp = TcpStream::connect_timeout(&https, Duration::from_secs(5)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(
        format!("GET / HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap_or_else(|e| panic!("handshake with SNI {NAME}: {e}"));
    let served = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| thumbprint(c))
        .expect("a server certificate");
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    (String::from_utf8_lossy(&out).into_owned(), served)
}

/// The certificate hash `http show sslcert KEY` shows.
fn certhash(s: &TestServer, key: &str) -> Option<String> {
    stdout(&cli(s, &["http", "show", "sslcert", key]))
        .lines()
        .find_map(|l| l.trim().strip_prefix("Certificate Hash"))
        .and_then(|l| l.split(':').nth(1))
        .map(|h| h.trim().to_owned())
}

#[test]
fn a_rate_limited_order_is_named_retried_after_and_the_server_serves() {
    const DETAIL: &str = "too many certificates (5) already issued for this exact set of \
                          identifiers in the last 168h0m0s";
    let stub = Stub::start(Behaviour {
        order_problem: ("rateLimited", DETAIL, 429),
        retry_after: Some(7200),
        ari: None,
    });
    // localhost too, for the plain GET below.
    let s = TestServer::prepare_tls(&format!("host_name=localhost {NAME}"), |public| {
        std::fs::write(public.join("index.html"), "still here\n").expect("index");
    });
    s.append_config(&stub.section());
    let mut s = s.launch(&[("RUST_LOG", "info")]);
    let log = Lines::follow(&mut s);
    let line = log.wait_for("rateLimited", Duration::from_secs(30));
    // One line: the name, the problem's type and detail, what to do, when.
    assert!(line.contains(NAME), "{line}");
    assert!(
        line.contains("urn:ietf:params:acme:error:rateLimited"),
        "{line}"
    );
    assert!(line.contains(DETAIL), "{line}");
    assert!(line.contains("rate limit"), "{line}");
    assert!(line.contains("stays in service"), "{line}");
    // The server's Retry-After (2 h) beats the first back-off (5 min).
    assert!(line.contains("trying again in 2 h"), "{line}");
    assert!(line.contains("Retry-After"), "{line}");
    // Still serving, HTTPS with the first-run certificate for the name.
    assert_eq!(s.get("/").status, 200);
    let first_run = wait_for(Duration::from_secs(10), "the first-run binding", || {
        certhash(&s, &format!("ipport=0.0.0.0:{}", s.https_port))
    });
    let (response, served) = served_for_name(&s);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(served, first_run);
    // Said once, and no second order before the Retry-After.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(log.matching("rateLimited").len(), 1, "{}", log.all());
    assert_eq!(stub.requests("POST /order").len(), 1);
    let status = stdout(&cli(&s, &["acme", "status"]));
    assert!(status.contains("rateLimited"), "{status}");
}

#[test]
fn a_rejected_identifier_is_named_with_what_to_do() {
    let stub = Stub::start(Behaviour {
        order_problem: (
            "rejectedIdentifier",
            "Error creating new order :: Cannot issue for \"www.portshare-acme.net\": \
             The ACME server refuses to issue a certificate for this domain name",
            400,
        ),
        retry_after: None,
        ari: None,
    });
    let s = TestServer::prepare_tls(&format!("host_name=localhost {NAME}"), |public| {
        std::fs::write(public.join("index.html"), "still here\n").expect("index");
    });
    s.append_config(&stub.section());
    let mut s = s.launch(&[("RUST_LOG", "info")]);
    let log = Lines::follow(&mut s);
    let line = log.wait_for("rejectedIdentifier", Duration::from_secs(30));
    assert!(line.contains(NAME), "{line}");
    assert!(line.contains("refuses to issue"), "{line}");
    assert!(line.contains("[acme] names="), "{line}");
    // No Retry-After: the first back-off.
    assert!(line.contains("trying again in 5 min"), "{line}");
    assert!(!line.contains("Retry-After"), "{line}");
    assert_eq!(s.get("/").status, 200);
    let (response, _) = served_for_name(&s);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(log.matching("rejectedIdentifier").len(), 1, "{}", log.all());
}

/// A certificate for `NAME` (with the authority key identifier ARI needs)
/// from a test CA, imported and bound as ACME's; its thumbprint and ARI
/// identifier (`AKI.SERIAL`, base64url).
fn place_acme_certificate(s: &TestServer) -> (String, String) {
    let (ca, _) = test_ca("previous ACME CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec![NAME.to_owned()]).expect("params");
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x0a, 0x1b, 0x2c, 0x3d]));
    let now = std::time::SystemTime::now();
    params.not_before = (now - Duration::from_secs(86_400)).into();
    params.not_after = (now + Duration::from_secs(89 * 86_400)).into();
    let cert = params.signed_by(&key, &ca).expect("leaf");
    let file = s.dir.path().join("previous.pem");
    std::fs::write(
        &file,
        format!("{}{}{}", cert.pem(), ca.pem(), key.serialize_pem()),
    )
    .expect("write pem");
    let imported = cli(s, &["cert", "import", &file.display().to_string()]);
    assert!(
        imported.status.success(),
        "{}{}",
        stdout(&imported),
        String::from_utf8_lossy(&imported.stderr)
    );
    let thumb = thumbprint(cert.der());
    let bound = cli(
        s,
        &[
            "http",
            "add",
            "sslcert",
            &format!("hostnameport={NAME}:{}", s.https_port),
            &format!("certhash={thumb}"),
            &format!("appid={ACME_APPID}"),
        ],
    );
    assert!(
        bound.status.success(),
        "{}{}",
        stdout(&bound),
        String::from_utf8_lossy(&bound.stderr)
    );
    // The ARI identifier: base64url of the AKI's key identifier and of
    // the DER serial's content.
    let parsed = x509_parser::parse_x509_certificate(cert.der())
        .expect("parse")
        .1;
    let aki = parsed
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("authority key identifier");
    let b64 = |bytes: &[u8]| {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    let id = format!("{}.{}", b64(&aki), b64(parsed.tbs_certificate.raw_serial()));
    (thumb, id)
}

#[test]
fn the_ari_window_decides_the_renewal_and_a_failure_keeps_the_certificate() {
    // The window is in the past: renew now (RFC 9773 §4.2).
    let start = chrono::Utc::now() - chrono::TimeDelta::hours(2);
    let end = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    let stub = Stub::start(Behaviour {
        order_problem: ("rateLimited", "slow down", 429),
        retry_after: None,
        ari: Some((start.to_rfc3339(), end.to_rfc3339())),
    });
    let s = TestServer::prepare_tls(&format!("host_name=localhost {NAME}"), |public| {
        std::fs::write(public.join("index.html"), "kept\n").expect("index");
    });
    let (thumb, id) = place_acme_certificate(&s);
    s.append_config(&stub.section());
    let mut s = s.launch(&[("RUST_LOG", "info")]);
    let log = Lines::follow(&mut s);
    // Only a third of its 90 days would wait two months; the window says now.
    let line = log.wait_for("(ARI); renewal at", Duration::from_secs(30));
    assert!(line.contains(NAME), "{line}");
    let line = log.wait_for("renewing the certificate", Duration::from_secs(10));
    assert!(
        line.contains("inside the renewal window the ACME server suggests (ARI)"),
        "{line}"
    );
    log.wait_for("rateLimited", Duration::from_secs(10));
    // The window was asked for this very certificate.
    let asked = stub.requests("GET /ari/");
    assert!(
        asked.iter().any(|r| r == &format!("GET /ari/{id}")),
        "{asked:?} (expected {id})"
    );
    // The failed renewal keeps the certificate in service and bound.
    assert_eq!(
        certhash(&s, &format!("hostnameport={NAME}:{}", s.https_port)).as_deref(),
        Some(thumb.as_str())
    );
    let (response, served) = served_for_name(&s);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(served, thumb);
    let status = stdout(&cli(&s, &["acme", "status"]));
    assert!(
        status.contains("in the ACME server's renewal window, ARI"),
        "{status}"
    );
}

#[test]
fn a_future_ari_window_waits_for_it() {
    let start = chrono::Utc::now() + chrono::TimeDelta::days(10);
    let end = chrono::Utc::now() + chrono::TimeDelta::days(11);
    let stub = Stub::start(Behaviour {
        order_problem: ("serverInternal", "no order expected", 500),
        retry_after: None,
        ari: Some((start.to_rfc3339(), end.to_rfc3339())),
    });
    let s = TestServer::prepare_tls(&format!("host_name=localhost {NAME}"), |_| {});
    place_acme_certificate(&s);
    s.append_config(&stub.section());
    let mut s = s.launch(&[("RUST_LOG", "info")]);
    let log = Lines::follow(&mut s);
    let line = log.wait_for("(ARI); renewal at", Duration::from_secs(30));
    // The chosen moment lies inside the window.
    let at = line
        .split("renewal at ")
        .nth(1)
        .and_then(|t| t.split(" UTC").next())
        .and_then(|t| chrono::NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S").ok())
        .map(|t| t.and_utc())
        .unwrap_or_else(|| panic!("no time in {line}"));
    assert!(
        at >= start - chrono::TimeDelta::seconds(1) && at <= end,
        "{at} not in {start}..{end}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(stub.requests("POST /order").is_empty(), "{}", log.all());
    assert!(
        log.matching("renewing the certificate").is_empty(),
        "{}",
        log.all()
    );
    let status = stdout(&cli(&s, &["acme", "status"]));
    assert!(
        status.contains(&format!(
            "{} (in the ACME server's renewal window, ARI)",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        )),
        "{status}"
    );
}
