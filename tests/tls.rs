//! HTTPS end to end: the real server, real rustls clients. Certificates from
//! `tests/fixtures/certs` (see its README); served leaves are identified by their
//! SHA-1 thumbprint (`thumbprints.txt`).

mod common;

use common::accept_all::AcceptAll;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{cert_fixtures, fixture_thumb, wait_for, TestServer, BIN};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, SignatureScheme, StreamOwned,
    SupportedProtocolVersion,
};
use sha1::{Digest, Sha1};

const APPID: &str = "{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}";

/// Copies fixture `from` into the server's certificate folder as `to`.
fn install(s: &TestServer, from: &str, to: &str) {
    let dir = certs_dir(s);
    std::fs::create_dir_all(&dir).expect("certs dir");
    std::fs::copy(cert_fixtures().join(from), dir.join(to)).expect("copy fixture");
}

/// `name.pem` + `name.key` from the fixtures into the store.
fn install_pair(s: &TestServer, name: &str) {
    install(s, &format!("{name}.pem"), &format!("{name}.pem"));
    install(s, &format!("{name}.key"), &format!("{name}.key"));
}

fn certs_dir(s: &TestServer) -> PathBuf {
    s.dir.path().join("certs")
}

/// Runs `portshare --config … ARGS`.
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
fn bind(s: &TestServer, verb: &str, key: &str, hash: &str, extra: &[&str]) {
    let certhash = format!("certhash={hash}");
    let appid = format!("appid={APPID}");
    let mut args = vec!["http", verb, "sslcert", key, &certhash, &appid];
    args.extend_from_slice(extra);
    let out = cli(s, &args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn index(public: &Path) {
    std::fs::write(public.join("index.html"), "hello tls\n").expect("index");
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/// Sends `clientauth.pem` when asked, and remembers being asked.
#[derive(Debug)]
struct ClientCert {
    asked: AtomicBool,
    key: Arc<CertifiedKey>,
}

impl ClientCert {
    fn new() -> Arc<ClientCert> {
        let dir = cert_fixtures();
        let chain = vec![CertificateDer::from_pem_file(dir.join("clientauth.pem")).expect("pem")];
        let key = PrivateKeyDer::from_pem_file(dir.join("clientauth.key")).expect("key");
        let signer = rustls::crypto::ring::sign::any_supported_type(&key).expect("signer");
        Arc::new(ClientCert {
            asked: AtomicBool::new(false),
            key: Arc::new(CertifiedKey::new(chain, signer)),
        })
    }
}

impl ResolvesClientCert for ClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::SeqCst);
        Some(self.key.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

#[derive(Clone)]
struct Opts {
    sni: Option<&'static str>,
    alpn: Vec<&'static [u8]>,
    versions: Vec<&'static SupportedProtocolVersion>,
    /// Verify against `ca.pem` (the name is the SNI name, else the IP).
    verify: bool,
    client_cert: Option<Arc<ClientCert>>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            sni: None,
            alpn: vec![b"h2", b"http/1.1"],
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
            verify: false,
            client_cert: None,
        }
    }
}

fn sni(name: &'static str) -> Opts {
    Opts {
        sni: Some(name),
        ..Opts::default()
    }
}

struct Tls {
    chain: Vec<CertificateDer<'static>>,
    alpn: Option<Vec<u8>>,
    version: Option<ProtocolVersion>,
    stream: StreamOwned<ClientConnection, TcpStream>,
}

impl Tls {
    fn fixture_thumb(&self) -> String {
        self.chain
            .first()
            .map(|c| hex::encode(Sha1::digest(c.as_ref())))
            .unwrap_or_default()
    }

    /// `GET /` over HTTP/1.1 (only valid when ALPN is not h2); the status code.
    fn get(mut self) -> Result<u16, String> {
        self.stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                // A close without close_notify still ends a complete response.
                Err(_) if !buf.is_empty() => break,
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        let text = String::from_utf8_lossy(&buf);
        text.strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no status line in {text:?}"))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn handshake(addr: SocketAddr, o: &Opts) -> Result<Tls, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&o.versions)
        .map_err(|e| e.to_string())?;
    let builder = if o.verify {
        let mut roots = RootCertStore::empty();
        let ca = CertificateDer::from_pem_file(cert_fixtures().join("ca.pem"))
            .map_err(|e| e.to_string())?;
        roots.add(ca).map_err(|e| e.to_string())?;
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAll(provider())))
    };
    let mut config = match &o.client_cert {
        Some(c) => builder.with_client_cert_resolver(c.clone()),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = o.alpn.iter().map(|p| p.to_vec()).collect();
    config.enable_sni = o.sni.is_some();
    let name: ServerName<'static> = match o.sni {
        Some(n) => ServerName::try_from(n).map_err(|e| e.to_string())?,
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let mut conn = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
    tcp.set_write_timeout(Some(Duration::from_secs(10))).ok();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    // Let the server's view settle (TLS 1.3 tickets / a late alert), then report.
    Ok(Tls {
        chain: conn
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
            .unwrap_or_default(),
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        version: conn.protocol_version(),
        stream: StreamOwned::new(conn, tcp),
    })
}

fn v4(s: &TestServer) -> SocketAddr {
    ([127, 0, 0, 1], s.https_port).into()
}

fn v6(s: &TestServer) -> SocketAddr {
    SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), s.https_port)
}

/// Thumbprint served for (address, options); panics on a failed handshake.
fn served(addr: SocketAddr, o: &Opts) -> String {
    match handshake(addr, o) {
        Ok(t) => t.fixture_thumb(),
        Err(e) => panic!("handshake with {addr} ({:?}) failed: {e}", o.sni),
    }
}

fn httperr(s: &TestServer) -> String {
    std::fs::read_to_string(s.logs().join("httperr.log")).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn first_run_creates_binds_and_serves_a_localhost_certificate() {
    let mut s = TestServer::prepare_tls("", index).launch(&[]);
    let store = std::fs::read_to_string(certs_dir(&s).join("sslcert.json")).expect("sslcert.json");
    let json: serde_json::Value = serde_json::from_str(&store).expect("json");
    let bindings = json["sslcert"].as_array().expect("bindings");
    assert_eq!(bindings.len(), 2, "{store}");
    let hash = bindings[0]["certhash"].as_str().expect("hash").to_owned();
    let keys: Vec<String> = bindings
        .iter()
        .map(|b| b["ipport"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        keys,
        vec![
            format!("0.0.0.0:{}", s.https_port),
            format!("[::]:{}", s.https_port)
        ]
    );
    assert_eq!(bindings[1]["certhash"].as_str(), Some(hash.as_str()));
    let key_file = certs_dir(&s).join(format!("{hash}.key"));
    assert!(certs_dir(&s).join(format!("{hash}.pem")).is_file());
    assert!(key_file.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // `launch` waits for the HTTP port only; the HTTPS listeners and their
    // binding may be ready a moment later.
    for addr in [v4(&s), v6(&s)] {
        wait_for(Duration::from_secs(10), "the HTTPS listeners", || {
            handshake(addr, &Opts::default()).ok()
        });
    }
    // Served on IPv4 without SNI and on IPv6 with SNI localhost, HTTP/1.1 and h2.
    let t = handshake(v4(&s), &Opts::default()).expect("v4 handshake");
    assert_eq!(t.fixture_thumb(), hash);
    assert_eq!(t.alpn.as_deref(), Some(&b"h2"[..]));
    let t = handshake(
        v6(&s),
        &Opts {
            sni: Some("localhost"),
            alpn: vec![b"http/1.1"],
            ..Opts::default()
        },
    )
    .expect("v6 handshake");
    assert_eq!(t.fixture_thumb(), hash);
    assert_eq!(t.get(), Ok(200));
    // The certificate covers localhost, 127.0.0.1 and ::1.
    let info = portshare::certs::CertInfo::from_der(
        handshake(v4(&s), &Opts::default()).expect("hs").chain[0].as_ref(),
    )
    .expect("parse");
    assert_eq!(info.subject, "CN=localhost");
    // Issued by the development CA (issue 21), which `cert trust` makes clients trust.
    assert_eq!(info.issuer, "CN=portshare development CA, O=portshare");
    assert_eq!(info.dns_names, vec!["localhost".to_owned()]);
    assert_eq!(info.ip_addresses.len(), 2);

    let out = s.terminate();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&hash.to_uppercase()), "{err}");
    // `portshare`, or its full path while it is not on PATH (tests/first_steps.rs).
    assert!(err.contains(" cert export "), "{err}");

    // A second start keeps the binding and the certificate.
    let s = s.launch(&[]);
    assert_eq!(served(v4(&s), &Opts::default()), hash);
    let names = std::fs::read_dir(certs_dir(&s)).expect("dir").count();
    assert_eq!(
        names, 6,
        "leaf pem and key, development CA pem and key, sslcert.json, lock"
    );
}

#[test]
fn lookup_order_ip_v4_v6_hostname_ccs() {
    let s = TestServer::prepare_tls("", index);
    for name in ["rsa", "ecdsa", "p384", "other", "wildcard"] {
        install_pair(&s, name);
    }
    let p = s.https_port;
    bind(
        &s,
        "add",
        &format!("ipport=0.0.0.0:{p}"),
        &fixture_thumb("rsa.pem"),
        &[],
    );
    bind(
        &s,
        "add",
        &format!("ipport=[::]:{p}"),
        &fixture_thumb("ecdsa.pem"),
        &[],
    );
    bind(
        &s,
        "add",
        &format!("hostnameport=other.test:{p}"),
        &fixture_thumb("other.pem"),
        &[],
    );
    let out = cli(
        &s,
        &[
            "http",
            "add",
            "sslcert",
            &format!("ccs={p}"),
            &format!("appid={APPID}"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let s = s.launch(&[]);

    // IPv4 vs IPv6 wildcard bindings, no SNI.
    assert_eq!(served(v4(&s), &Opts::default()), fixture_thumb("rsa.pem"));
    assert_eq!(served(v6(&s), &Opts::default()), fixture_thumb("ecdsa.pem"));
    // hostname:port beats 0.0.0.0 / [::] for its SNI name (any case, trailing dot).
    assert_eq!(
        served(v4(&s), &sni("other.test")),
        fixture_thumb("other.pem")
    );
    assert_eq!(
        served(v6(&s), &sni("OTHER.test")),
        fixture_thumb("other.pem")
    );
    // ccs: a store certificate whose SAN covers the name; wildcard one label deep.
    assert_eq!(served(v4(&s), &sni("p384.test")), fixture_thumb("p384.pem"));
    assert_eq!(served(v4(&s), &sni("ec.test")), fixture_thumb("ecdsa.pem"));
    assert_eq!(
        served(v4(&s), &sni("a.wild.test")),
        fixture_thumb("wildcard.pem")
    );
    // Not covered by any SAN: falls through to the IP binding.
    assert_eq!(
        served(v4(&s), &sni("a.b.wild.test")),
        fixture_thumb("rsa.pem")
    );
    assert_eq!(served(v4(&s), &sni("wild.test")), fixture_thumb("rsa.pem"));
    assert_eq!(
        served(v6(&s), &sni("nothing.test")),
        fixture_thumb("ecdsa.pem")
    );

    // An exact IP:port binding beats everything, for IPv4 and IPv6 (picked up live).
    bind(
        &s,
        "add",
        &format!("ipport=127.0.0.1:{p}"),
        &fixture_thumb("p384.pem"),
        &[],
    );
    bind(
        &s,
        "add",
        &format!("ipport=[::1]:{p}"),
        &fixture_thumb("wildcard.pem"),
        &[],
    );
    wait_for(Duration::from_secs(3), "the exact IP bindings", || {
        (served(v4(&s), &sni("other.test")) == fixture_thumb("p384.pem")
            && served(v6(&s), &sni("other.test")) == fixture_thumb("wildcard.pem"))
        .then_some(())
    });
    assert_eq!(served(v4(&s), &Opts::default()), fixture_thumb("p384.pem"));
    assert_eq!(
        served(v6(&s), &Opts::default()),
        fixture_thumb("wildcard.pem")
    );
}

#[test]
fn full_chain_is_sent_from_pem_and_pfx() {
    let s = TestServer::prepare_tls("", index);
    install(&s, "ecdsa-fullchain.pem", "ecdsa-fullchain.pem");
    install(&s, "ecdsa.key", "ecdsa-fullchain.key");
    install(&s, "rsa-aes.pfx", "rsa-aes.pfx");
    std::fs::write(certs_dir(&s).join("rsa-aes.pfx.password"), "test\n").expect("pw");
    let p = s.https_port;
    bind(
        &s,
        "add",
        &format!("ipport=0.0.0.0:{p}"),
        &fixture_thumb("ecdsa.pem"),
        &[],
    );
    bind(
        &s,
        "add",
        &format!("ipport=[::]:{p}"),
        &fixture_thumb("rsa.pem"),
        &[],
    );
    let s = s.launch(&[]);

    let verified = |addr, name| {
        handshake(
            addr,
            &Opts {
                sni: Some(name),
                verify: true,
                ..Opts::default()
            },
        )
    };
    // The client trusts only the root: it verifies because the intermediate is sent.
    let t = verified(v4(&s), "ec.test").expect("verified ECDSA chain");
    assert_eq!(t.chain.len(), 2);
    assert_eq!(t.fixture_thumb(), fixture_thumb("ecdsa.pem"));
    let t = verified(v6(&s), "site.test").expect("verified RSA chain from the PFX");
    assert_eq!(t.chain.len(), 2);
    assert_eq!(t.fixture_thumb(), fixture_thumb("rsa.pem"));
    // And a name the certificate does not cover fails verification on the client.
    assert!(verified(v4(&s), "site.test").is_err());
}

#[test]
fn binding_flags_alpn_versions_client_cert_reject() {
    let s = TestServer::prepare_tls("", index);
    install_pair(&s, "rsa");
    let p = s.https_port;
    let h = fixture_thumb("rsa.pem");
    bind(&s, "add", &format!("ipport=0.0.0.0:{p}"), &h, &[]);
    for (name, flag) in [
        ("h1.test", "disablehttp2=enable"),
        ("tls12.test", "disabletls13=enable"),
        ("tls13.test", "disabletls12=enable"),
        ("cc.test", "clientcertnegotiation=enable"),
        ("reject.test", "reject=enable"),
        ("legacy.test", "disablelegacytls=enable"),
    ] {
        bind(&s, "add", &format!("hostnameport={name}:{p}"), &h, &[flag]);
    }
    let s = s.launch(&[]);
    let a = v4(&s);

    // Defaults: h2 preferred, TLS 1.3; http/1.1 when that is all the client offers.
    let t = handshake(a, &Opts::default()).expect("default");
    assert_eq!(t.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(t.version, Some(ProtocolVersion::TLSv1_3));
    let t = handshake(
        a,
        &Opts {
            alpn: vec![b"http/1.1"],
            ..Opts::default()
        },
    )
    .expect("h1");
    assert_eq!(t.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(t.get(), Ok(200));
    // TLS 1.2 works by default too.
    let t = handshake(
        a,
        &Opts {
            versions: vec![&rustls::version::TLS12],
            ..Opts::default()
        },
    )
    .expect("default TLS 1.2");
    assert_eq!(t.version, Some(ProtocolVersion::TLSv1_2));

    // disablehttp2: only http/1.1 is negotiated, even for a client preferring h2.
    let t = handshake(a, &sni("h1.test")).expect("disablehttp2");
    assert_eq!(t.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(t.get(), Ok(200));
    let t = handshake(
        a,
        &Opts {
            sni: Some("h1.test"),
            alpn: vec![b"h2"],
            ..Opts::default()
        },
    );
    assert!(
        t.is_err(),
        "h2-only client must fail ALPN on a disablehttp2 binding"
    );

    // disabletls13: TLS 1.2 only.
    let t = handshake(a, &sni("tls12.test")).expect("disabletls13");
    assert_eq!(t.version, Some(ProtocolVersion::TLSv1_2));
    let only13 = Opts {
        sni: Some("tls12.test"),
        versions: vec![&rustls::version::TLS13],
        ..Opts::default()
    };
    assert!(handshake(a, &only13).is_err());
    // disabletls12: TLS 1.3 only.
    let t = handshake(a, &sni("tls13.test")).expect("disabletls12");
    assert_eq!(t.version, Some(ProtocolVersion::TLSv1_3));
    let only12 = Opts {
        sni: Some("tls13.test"),
        versions: vec![&rustls::version::TLS12],
        ..Opts::default()
    };
    assert!(handshake(a, &only12).is_err());
    // disablelegacytls changes nothing (nothing below TLS 1.2 is ever offered).
    assert!(handshake(a, &sni("legacy.test")).is_ok());

    // clientcertnegotiation: a certificate is requested (TLS 1.3 and 1.2), not required.
    for versions in [vec![&rustls::version::TLS13], vec![&rustls::version::TLS12]] {
        let cc = ClientCert::new();
        let t = handshake(
            a,
            &Opts {
                sni: Some("cc.test"),
                alpn: vec![b"http/1.1"],
                versions: versions.clone(),
                client_cert: Some(cc.clone()),
                ..Opts::default()
            },
        )
        .expect("client cert handshake");
        assert_eq!(t.get(), Ok(200));
        assert!(
            cc.asked.load(Ordering::SeqCst),
            "no CertificateRequest ({versions:?})"
        );
    }
    let without = handshake(
        a,
        &Opts {
            sni: Some("cc.test"),
            alpn: vec![b"http/1.1"],
            ..Opts::default()
        },
    )
    .expect("no client cert");
    assert_eq!(without.get(), Ok(200));
    // Other bindings do not ask.
    let cc = ClientCert::new();
    handshake(
        a,
        &Opts {
            client_cert: Some(cc.clone()),
            ..Opts::default()
        },
    )
    .expect("default with client cert");
    assert!(!cc.asked.load(Ordering::SeqCst));

    // reject: the handshake is refused, and httperr says why.
    let e = handshake(a, &sni("reject.test"))
        .err()
        .expect("reject must fail");
    assert!(e.contains("alert"), "{e}");
    wait_for(Duration::from_secs(5), "SSL_Rejected in httperr", || {
        httperr(&s).contains(" SSL_Rejected ").then_some(())
    });
}

#[test]
fn no_binding_fails_with_an_alert_and_an_httperr_line() {
    let s = TestServer::prepare_tls("", index);
    install_pair(&s, "rsa");
    // Only IPv6 is bound, so the first-run step does nothing and IPv4 has no binding.
    bind(
        &s,
        "add",
        &format!("ipport=[::]:{}", s.https_port),
        &fixture_thumb("rsa.pem"),
        &[],
    );
    let s = s.launch(&[]);
    assert_eq!(served(v6(&s), &Opts::default()), fixture_thumb("rsa.pem"));
    let e = handshake(v4(&s), &sni("site.test"))
        .err()
        .expect("no binding must fail");
    assert!(e.contains("alert"), "{e}");
    let line = wait_for(Duration::from_secs(5), "SSL_NoBinding in httperr", || {
        httperr(&s)
            .lines()
            .find(|l| l.contains(" SSL_NoBinding "))
            .map(str::to_owned)
    });
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields.len(), 13, "{line}");
    assert_eq!(fields[2], "127.0.0.1");
    assert_eq!(fields[4], "127.0.0.1");
    assert_eq!(fields[5], s.https_port.to_string());
    assert_eq!(&fields[6..10], &["-", "-", "-", "-"]);
    assert_eq!(fields[11], "SSL_NoBinding");
    // Nothing was bound behind the user's back.
    let json = std::fs::read_to_string(certs_dir(&s).join("sslcert.json")).expect("json");
    assert!(!json.contains("0.0.0.0"), "{json}");
}

/// Makes HTTPS requests on new connections until stopped; counts failures and
/// records the thumbprint of every handshake.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    last: Arc<Mutex<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, sni: Option<&'static str>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let last = Arc::new(Mutex::new(String::new()));
        let (st, okc, fl, la) = (stop.clone(), ok.clone(), failures.clone(), last.clone());
        let thread = std::thread::spawn(move || {
            let o = Opts {
                sni,
                alpn: vec![b"http/1.1"],
                ..Opts::default()
            };
            while !st.load(Ordering::SeqCst) {
                let result = handshake(addr, &o).and_then(|t| {
                    let th = t.fixture_thumb();
                    t.get().map(|status| (th, status))
                });
                match result {
                    Ok((th, 200)) => {
                        if let Ok(mut l) = la.lock() {
                            *l = th;
                        }
                        okc.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok((_, status)) => fl
                        .lock()
                        .map(|mut f| f.push(format!("status {status}")))
                        .unwrap_or(()),
                    Err(e) => fl.lock().map(|mut f| f.push(e)).unwrap_or(()),
                }
            }
        });
        Load {
            stop,
            ok,
            failures,
            last,
            thread: Some(thread),
        }
    }

    fn last(&self) -> String {
        self.last.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The thumbprint of a request that started after this call.
    fn next_thumb(&self) -> String {
        let n = self.ok.load(Ordering::SeqCst);
        wait_for(Duration::from_secs(5), "two more requests", || {
            (self.ok.load(Ordering::SeqCst) >= n + 2).then_some(())
        });
        self.last()
    }

    /// Waits until the load sees `thumb`; returns how long that took.
    fn wait_for_thumb(&self, thumb: &str, what: &str) -> Duration {
        let start = Instant::now();
        let n = self.ok.load(Ordering::SeqCst);
        wait_for(Duration::from_secs(2), what, || {
            (self.ok.load(Ordering::SeqCst) > n && self.last() == thumb).then_some(())
        });
        start.elapsed()
    }

    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("load thread");
        }
        let failures = self.failures.lock().map(|f| f.clone()).unwrap_or_default();
        assert!(failures.is_empty(), "failed requests: {failures:?}");
        self.ok.load(Ordering::SeqCst)
    }
}

#[test]
fn hot_reload_netsh_update_without_failed_requests() {
    let s = TestServer::prepare_tls("", index);
    install_pair(&s, "rsa");
    install_pair(&s, "other");
    install_pair(&s, "ecdsa");
    let p = s.https_port;
    let key = format!("ipport=0.0.0.0:{p}");
    bind(&s, "add", &key, &fixture_thumb("rsa.pem"), &[]);
    let s = s.launch(&[]);
    let load = Load::start(v4(&s), None);
    load.wait_for_thumb(&fixture_thumb("rsa.pem"), "the first certificate");

    bind(&s, "update", &key, &fixture_thumb("other.pem"), &[]);
    let took = load.wait_for_thumb(&fixture_thumb("other.pem"), "the updated binding");
    eprintln!("netsh update took effect after {took:?}");

    // SIGHUP reloads and does not stop the server.
    #[cfg(unix)]
    {
        let pid = s.child.as_ref().map(|c| c.id()).expect("pid");
        bind(&s, "update", &key, &fixture_thumb("rsa.pem"), &[]);
        let _ = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status();
        load.wait_for_thumb(&fixture_thumb("rsa.pem"), "the binding after SIGHUP");
    }

    // A binding whose certificate vanished keeps the last good one in service.
    std::fs::remove_file(certs_dir(&s).join("other.pem")).expect("rm");
    bind(&s, "update", &key, &fixture_thumb("rsa.pem"), &[]);
    let json = std::fs::read_to_string(certs_dir(&s).join("sslcert.json")).expect("json");
    let broken = json.replace(&fixture_thumb("rsa.pem"), &fixture_thumb("other.pem"));
    std::fs::write(certs_dir(&s).join("sslcert.json"), broken).expect("write");
    // A valid change elsewhere shows when the broken one has been processed.
    bind(
        &s,
        "add",
        &format!("hostnameport=marker.test:{p}"),
        &fixture_thumb("ecdsa.pem"),
        &[],
    );
    wait_for(Duration::from_secs(3), "the marker binding", || {
        (served(v4(&s), &sni("marker.test")) == fixture_thumb("ecdsa.pem")).then_some(())
    });
    assert_eq!(load.next_thumb(), fixture_thumb("rsa.pem"));
    let n = load.finish();
    assert!(n > 10, "only {n} requests");
    let mut s = s;
    let out = s.terminate();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        log.contains("still serving the previous certificate"),
        "{log}"
    );
}

/// A Kubernetes Secret volume: `tls.crt` → `..data/tls.crt`, `..data` →
/// `..<timestamp>`; an update writes a new timestamped folder and renames a new
/// `..data` symlink over the old one.
#[cfg(unix)]
#[test]
fn hot_reload_kubernetes_secret_swap_and_broken_update() {
    use portshare::certs::{new_self_signed, to_pem};
    use std::os::unix::fs::symlink;

    let s = TestServer::prepare_tls("", index);
    let dir = certs_dir(&s);
    std::fs::create_dir_all(&dir).expect("certs");
    let write_version = |name: &str, files: &[(&str, String)]| {
        let v = dir.join(name);
        std::fs::create_dir_all(&v).expect("version dir");
        for (f, text) in files {
            std::fs::write(v.join(f), text).expect("secret file");
        }
        let tmp = dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        symlink(name, &tmp).expect("symlink");
        std::fs::rename(&tmp, dir.join("..data")).expect("swap");
    };
    let pair = |names: &[&str]| {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let c = new_self_signed(&names, 30).expect("cert");
        let (chain, key) = to_pem(&c).expect("pem");
        (c.thumbprint.to_string(), chain, key.expect("key"))
    };
    let (t1, c1, k1) = pair(&["k8s.test"]);
    write_version(
        "..2026_11_23_10_00_00.1",
        &[("tls.crt", c1), ("tls.key", k1)],
    );
    for f in ["tls.crt", "tls.key", "extra.crt", "extra.key"] {
        symlink(format!("..data/{f}"), dir.join(f)).expect("symlink");
    }
    let out = cli(
        &s,
        &[
            "http",
            "add",
            "sslcert",
            &format!("ccs={}", s.https_port),
            &format!("appid={APPID}"),
        ],
    );
    assert!(out.status.success());
    let s = s.launch(&[]);

    let load = Load::start(v4(&s), Some("k8s.test"));
    load.wait_for_thumb(&t1, "the first Secret certificate");

    let (t2, c2, k2) = pair(&["k8s.test"]);
    write_version(
        "..2026_11_23_11_00_00.2",
        &[("tls.crt", c2.clone()), ("tls.key", k2.clone())],
    );
    let took = load.wait_for_thumb(&t2, "the renewed Secret certificate");
    eprintln!("Secret swap took effect after {took:?}");

    // A broken update (damaged tls.crt) keeps t2 in service; the extra certificate in
    // the same update shows that the update has been read.
    let (t3, c3, k3) = pair(&["extra.test"]);
    write_version(
        "..2026_11_23_12_00_00.3",
        &[
            (
                "tls.crt",
                "-----BEGIN CERTIFICATE-----\nnot base64!\n".to_owned(),
            ),
            ("tls.key", k2),
            ("extra.crt", c3),
            ("extra.key", k3),
        ],
    );
    wait_for(Duration::from_secs(3), "the extra certificate", || {
        handshake(v4(&s), &sni("extra.test"))
            .ok()
            .filter(|t| t.fixture_thumb() == t3)
            .map(|_| ())
    });
    assert_eq!(load.next_thumb(), t2);
    let n = load.finish();
    assert!(n > 10, "only {n} requests");
    let mut s = s;
    let out = s.terminate();
    let err = String::from_utf8_lossy(&out.stdout);
    assert!(err.contains("keeping the certificate"), "{err}");
}

/// Issue 22 point 1: on a fresh install the first run binds both families; the
/// user's `add` for one of them succeeds, replaces the automatic binding, says so,
/// and warns that the other family still gets the automatic certificate (at bind
/// time and at the next start).
#[test]
fn users_add_replaces_the_first_run_binding() {
    let mut s = TestServer::prepare_tls("", index).launch(&[]);
    wait_for(Duration::from_secs(10), "the HTTPS listener", || {
        handshake(v4(&s), &Opts::default()).ok()
    });
    let automatic = served(v4(&s), &Opts::default());
    let p = s.https_port;
    install_pair(&s, "rsa");
    let rsa = fixture_thumb("rsa.pem");
    let certhash = format!("certhash={rsa}");
    let appid = format!("appid={APPID}");
    let key = format!("ipport=0.0.0.0:{p}");
    let out = cli(&s, &["http", "add", "sslcert", &key, &certhash, &appid]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with(&format!(
            "\nSSL Certificate successfully added\n\nportshare: replaced the binding portshare had made by itself for 0.0.0.0:{p} (certificate {automatic}).\nportshare: warning: 0.0.0.0:{p} is bound to your certificate but [::]:{p} is not"
        )),
        "{text}"
    );
    assert!(
        text.contains("still get the automatic certificate bound to [::]:"),
        "{text}"
    );
    let shown =
        String::from_utf8_lossy(&cli(&s, &["http", "show", "sslcert", &key]).stdout).into_owned();
    assert!(
        shown.contains(&format!("Certificate Hash             : {rsa}\n")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("Application ID               : {APPID}\n")),
        "{shown}"
    );
    // The running server picks it up; IPv6 keeps the automatic certificate.
    wait_for(Duration::from_secs(10), "the new binding", || {
        (served(v4(&s), &Opts::default()) == rsa).then_some(())
    });
    assert_eq!(served(v6(&s), &Opts::default()), automatic);
    // A second add on the same key is the user's own: Error 183 as before.
    let out = cli(&s, &["http", "add", "sslcert", &key, &certhash, &appid]);
    assert_eq!(out.status.code(), Some(183));

    // The start-up warning.
    let out = s.terminate();
    assert!(out.status.success());
    let mut s = s.launch(&[]);
    let out = s.terminate();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains(&format!(
            "0.0.0.0:{p} is bound to your certificate but [::]:{p} is not"
        )),
        "{all}"
    );

    // Binding the other family too: replaced, and no warning any more.
    let key6 = format!("ipport=[::]:{p}");
    let out = cli(&s, &["http", "add", "sslcert", &key6, &certhash, &appid]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("replaced the binding portshare had made"),
        "{text}"
    );
    assert!(!text.contains("is bound to your certificate"), "{text}");
}

/// Issue 22 point 5: an intermediate imported on its own (no key) completes the
/// chain of a leaf imported without it, as HTTP.sys builds chains from the
/// machine's stores; `cert list` marks it; it cannot be bound; a leaf-only
/// re-import keeps a stored chain.
#[test]
fn intermediate_imported_alone_completes_the_served_chain() {
    let s = TestServer::prepare_tls("", index);
    let files = tempfile::tempdir().expect("temp dir");
    // No `.key` beside them: the intermediate without key, the leaf with its own.
    let ca2 = files.path().join("ca2.cer");
    std::fs::copy(cert_fixtures().join("intermediate.pem"), &ca2).expect("copy");
    let leaf = files.path().join("site.pem");
    std::fs::copy(cert_fixtures().join("rsa.pem"), &leaf).expect("copy");
    std::fs::copy(
        cert_fixtures().join("rsa.key"),
        files.path().join("site.key"),
    )
    .expect("copy");

    let ca2 = ca2.display().to_string();
    let out = cli(&s, &["cert", "import", &ca2]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("(intermediate CA, completes chains)"),
        "{text}"
    );
    assert!(
        text.contains("kept as an intermediate certificate"),
        "{text}"
    );
    let out = cli(&s, &["cert", "import", &leaf.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = String::from_utf8_lossy(&cli(&s, &["cert", "list"]).stdout).into_owned();
    assert!(
        list.contains("CN=portshare Test Intermediate CA  (intermediate CA, completes chains)")
            || list.contains("(intermediate CA, completes chains)"),
        "{list}"
    );

    // The intermediate has no key: binding it is still Error 1312.
    let inter = {
        let der =
            CertificateDer::from_pem_file(cert_fixtures().join("intermediate.pem")).expect("pem");
        hex::encode(Sha1::digest(der.as_ref()))
    };
    let p = s.https_port;
    let out = cli(
        &s,
        &[
            "http",
            "add",
            "sslcert",
            &format!("ipport=0.0.0.0:{p}"),
            &format!("certhash={inter}"),
            &format!("appid={APPID}"),
        ],
    );
    assert_eq!(out.status.code(), Some(1312 % 256));
    bind(
        &s,
        "add",
        &format!("ipport=0.0.0.0:{p}"),
        &fixture_thumb("rsa.pem"),
        &[],
    );
    bind(
        &s,
        "add",
        &format!("ipport=[::]:{p}"),
        &fixture_thumb("rsa.pem"),
        &[],
    );
    let s = s.launch(&[]);

    // A client that trusts only the root verifies: leaf + intermediate are sent.
    let t = wait_for(Duration::from_secs(10), "the HTTPS listener", || {
        handshake(
            v4(&s),
            &Opts {
                sni: Some("site.test"),
                verify: true,
                ..Opts::default()
            },
        )
        .ok()
    });
    assert_eq!(t.chain.len(), 2);
    assert_eq!(t.fixture_thumb(), fixture_thumb("rsa.pem"));
    assert_eq!(hex::encode(Sha1::digest(t.chain[1].as_ref())), inter);

    // And as `openssl s_client -showcerts` sees it (openssl is required).
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{p}"),
            "-servername",
            "site.test",
            "-showcerts",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl is needed for this test (apt-get install openssl)");
    drop(child.stdin.take());
    let out = common::wait_output(child, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("CN=portshare Test Intermediate")
            || text.contains("CN = portshare Test Intermediate"),
        "{text}"
    );

    // Re-importing the leaf alone over an entry with the full chain keeps the chain.
    let full = files.path().join("full.pem");
    std::fs::copy(cert_fixtures().join("rsa-fullchain.pem"), &full).expect("copy");
    std::fs::copy(
        cert_fixtures().join("rsa.key"),
        files.path().join("full.key"),
    )
    .expect("copy");
    let fresh = TestServer::prepare("", |_| {});
    let import = |f: &Path| {
        let out = cli(&fresh, &["cert", "import", &f.display().to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    import(&full);
    import(&leaf);
    let stored = std::fs::read_to_string(
        fresh
            .dir
            .path()
            .join(format!("certs/{}.pem", fixture_thumb("rsa.pem"))),
    )
    .expect("stored chain");
    assert_eq!(stored.matches("BEGIN CERTIFICATE").count(), 2, "{stored}");
}
