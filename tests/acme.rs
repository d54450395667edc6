//! ACME (issue 20, phase 1) end to end against a real ACME server: Debian's
//! `pebble`, with `pebble-challtestsrv` as its DNS (every name is
//! 127.0.0.1), on ephemeral loopback ports. The pebble tests fail — never
//! pass silently — when the package is missing (`.ci/run` installs it).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::accept_all::accepting_client;
use common::log_lines::Lines;
use common::{free_port, thumbprint, wait_for, TestServer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const PEBBLE: &str = "/usr/bin/pebble";
const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";
/// `src/acme/mod.rs`'s `ACME_APPID`, as documented.
const ACME_APPID: &str = "{7a1f5a0e-ac3e-4e2d-8f01-61636d650001}";
/// A name the default choice takes (public-looking); pebble's DNS says 127.0.0.1.
const NAME: &str = "www.portshare-acme.net";

fn require_pebble() {
    assert!(
        Path::new(PEBBLE).is_file() && Path::new(CHALLTESTSRV).is_file(),
        "this test needs Debian's pebble package ({PEBBLE} and {CHALLTESTSRV}); install it with \
         `apt-get install -y pebble` (.ci/run does)"
    );
}

/// Kills and reaps its children on drop.
struct Kill(Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running pebble and its DNS.
struct Pebble {
    _procs: Kill,
    dir: tempfile::TempDir,
    /// The directory URL.
    directory: String,
    management: SocketAddr,
    /// The CA of pebble's own HTTPS (for `[acme] ca_root`).
    tls_ca: PathBuf,
    tls_ca_der: CertificateDer<'static>,
}

impl Pebble {
    /// Pebble validating HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port`.
    fn start(http_port: u16, tls_port: u16) -> Pebble {
        Pebble::start_with(http_port, tls_port, serde_json::json!({}))
    }

    /// As [`Pebble::start`], with `extra` keys (pebble 2.4's
    /// `certificateValidityPeriod`, `domainBlocklist`) in its config.
    fn start_with(http_port: u16, tls_port: u16, extra: serde_json::Value) -> Pebble {
        require_pebble();
        let dir = tempfile::tempdir().expect("temp dir");
        // Pebble's own HTTPS certificate, from a test CA.
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pebble test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(
            ca_params,
            rcgen::KeyPair::generate().expect("key"),
        )
        .expect("ca");
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        leaf.subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        let leaf = leaf.signed_by(&leaf_key, &ca).expect("leaf");
        let tls_ca = dir.path().join("ca.pem");
        std::fs::write(&tls_ca, ca.pem()).expect("write ca");
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).expect("write cert");
        std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).expect("write key");

        let listen = free_port();
        let management: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let dns = free_port();
        let dns_management = free_port();
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": management.to_string(),
                "certificate": dir.path().join("cert.pem"),
                "privateKey": dir.path().join("key.pem"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        if let (Some(p), Some(e)) = (config["pebble"].as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        let config_file = dir.path().join("pebble-config.json");
        std::fs::write(&config_file, config.to_string()).expect("write pebble config");
        let log = |name: &str| {
            Stdio::from(std::fs::File::create(dir.path().join(name)).expect("log file"))
        };
        let challtestsrv = Command::new(CHALLTESTSRV)
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("start pebble-challtestsrv");
        let mut procs = Kill(vec![challtestsrv]);
        let pebble = Command::new(PEBBLE)
            .arg("-config")
            .arg(&config_file)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_VA_ALWAYS_VALID", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("start pebble");
        procs.0.push(pebble);
        let listen_addr: SocketAddr = ([127, 0, 0, 1], listen).into();
        let dns_addr: SocketAddr = ([127, 0, 0, 1], dns_management).into();
        wait_for(
            Duration::from_secs(20),
            "pebble and its DNS to listen",
            || {
                let up = |a: &SocketAddr| {
                    TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok()
                };
                (up(&listen_addr) && up(&management) && up(&dns_addr)).then_some(())
            },
        );
        Pebble {
            _procs: procs,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            management,
            tls_ca,
            tls_ca_der: ca.der().clone(),
            dir,
        }
    }

    /// Pebble's logs, for failure messages.
    fn logs(&self) -> String {
        ["pebble.log", "pebble.err", "challtestsrv.err"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The root pebble issues under (`/roots/0` on the management port).
    fn root(&self) -> CertificateDer<'static> {
        let mut roots = RootCertStore::empty();
        roots.add(self.tls_ca_der.clone()).expect("test CA");
        let body = https_get(self.management, "localhost", roots, "/roots/0")
            .unwrap_or_else(|e| panic!("GET /roots/0: {e}\n{}", self.logs()));
        CertificateDer::from_pem_slice(&body).expect("pebble's root is PEM")
    }
}

/// A client configuration trusting only `roots`.
fn trusting(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    Ok(Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// A GET over TLS trusting only `roots`; the response body.
fn https_get(
    addr: SocketAddr,
    sni: &str,
    roots: RootCertStore,
    path: &str,
) -> Result<Vec<u8>, String> {
    https_get_served(addr, sni, trusting(roots)?, path).map(|(body, _)| body)
}

/// The SHA-1 thumbprint of a certificate, as `http show sslcert` shows it.
/// A GET over TLS with `config`; the response body and the thumbprint of
/// the certificate the server presented.
fn https_get_served(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
    path: &str,
) -> Result<(Vec<u8>, String), String> {
    let name = ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?;
    let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| format!("handshake or write: {e}"))?;
    let served = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| thumbprint(c))
        .ok_or("no server certificate")?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        // Servers that close without close_notify.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no response head: {:?}", String::from_utf8_lossy(&out)))?;
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("not 200: {head}"));
    }
    Ok((out[split + 4..].to_vec(), served))
}

/// Runs `portshare --config … ARGS`.
fn cli(s: &TestServer, args: &[&str]) -> Output {
    common::run_cli(&s.config, args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn http01_order_is_bound_and_served_with_a_trusted_certificate() {
    let s = TestServer::prepare_tls(&format!("host_name=localhost {NAME}"), |public| {
        std::fs::write(public.join("index.html"), "hello acme\n").expect("index");
    });
    let pebble = Pebble::start(s.port, s.https_port);
    s.append_config(&format!(
        "\n[acme]\nemail=admin@portshare-acme.net\ndirectory={}\nca_root={}\n",
        pebble.directory,
        pebble.tls_ca.display()
    ));
    let mut s = s.launch(&[("RUST_LOG", "info")]);
    let log = Lines::follow(&mut s);

    // localhost is skipped, with why; the public name is ordered.
    let skipped = log.wait_for("ACME: skipped", Duration::from_secs(10));
    assert!(
        skipped.contains("localhost") && skipped.contains("private"),
        "{skipped}"
    );

    // The challenge prefix is an ordinary registration.
    let state = stdout(&cli(&s, &["http", "show", "servicestate"]));
    // netsh lists URLs in capitals.
    assert!(
        state
            .to_lowercase()
            .contains(&format!("http://+:{}/.well-known/acme-challenge/", s.port)),
        "{state}"
    );
    let unknown = s.get("/.well-known/acme-challenge/no-such-token");
    assert_eq!(unknown.status, 404);

    // The order ends in a binding with ACME's appid.
    let key = format!("{NAME}:{}", s.https_port);
    let shown = wait_for(Duration::from_secs(45), "the ACME binding", || {
        let out = stdout(&cli(
            &s,
            &["http", "show", "sslcert", &format!("hostnameport={key}")],
        ));
        out.contains(ACME_APPID).then_some(out)
    });
    assert!(shown.contains(&key), "{shown}");
    let line = log.wait_for("certificate issued and bound", Duration::from_secs(10));
    assert!(line.contains(NAME), "{line}");
    // Pebble fetched the token from portshare (PEBBLE_VA_ALWAYS_VALID=0).
    wait_for(
        Duration::from_secs(10),
        "the validation in access.log",
        || {
            std::fs::read_to_string(s.logs().join("access.log"))
                .ok()?
                .lines()
                .any(|l| l.contains("GET /.well-known/acme-challenge/") && l.contains("\" 200 "))
                .then_some(())
        },
    );

    // The key is 0600, and so is the account file; `cert list` knows it.
    let certs = s.dir.path().join("certs");
    let thumb = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("Certificate Hash"))
        .and_then(|l| l.split(':').nth(1))
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|| panic!("no certificate hash in {shown}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [format!("{thumb}.key"), "acme-account.json".to_owned()] {
            let mode = std::fs::metadata(certs.join(&f))
                .unwrap_or_else(|e| panic!("{f}: {e}"))
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
    let list = stdout(&cli(&s, &["cert", "list"]));
    assert!(list.to_lowercase().contains(&thumb), "{list}");

    // A client that trusts only pebble's root completes the handshake with SNI.
    let mut roots = RootCertStore::empty();
    roots.add(pebble.root()).expect("pebble root");
    let https: SocketAddr = ([127, 0, 0, 1], s.https_port).into();
    let body = wait_for(Duration::from_secs(10), "a trusted handshake", || {
        https_get(https, NAME, roots.clone(), "/").ok()
    });
    assert_eq!(body, b"hello acme\n");
    assert!(
        log.matching("ACME:").iter().all(|l| !l.contains("ERROR")),
        "{}",
        log.all()
    );
}

#[test]
fn unreachable_directory_still_starts_and_serves() {
    // Nothing listens on the directory's port.
    let dead = free_port();
    let s = TestServer::prepare_tls("", |public| {
        std::fs::write(public.join("index.html"), "still here\n").expect("index");
    });
    s.append_config(&format!(
        "\n[acme]\ndirectory=https://127.0.0.1:{dead}/dir\nnames={NAME}\n"
    ));
    let mut s = s.launch(&[]);
    let log = Lines::follow(&mut s);
    let res = s.get("/");
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "still here\n");
    let line = log.wait_for("[acme] directory", Duration::from_secs(30));
    assert!(line.contains(&format!("127.0.0.1:{dead}")), "{line}");
    assert!(line.contains("trying again in"), "{line}");
    // Still serving, and said once (the next try is minutes away).
    assert_eq!(s.get("/").status, 200);
    assert_eq!(log.matching("[acme] directory").len(), 1, "{}", log.all());
}

#[test]
fn a_binding_made_by_hand_is_left_alone() {
    let s = TestServer::prepare_tls("", |_| {});
    // Nothing listens there: any contact with the directory would fail loudly.
    let dead = free_port();
    s.append_config(&format!(
        "\n[acme]\ndirectory=https://127.0.0.1:{dead}/dir\nnames={NAME}\n"
    ));
    let made = cli(&s, &["cert", "new", "--dns", NAME]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let listed = stdout(&cli(&s, &["cert", "list"]));
    let thumb = listed
        .lines()
        .find(|l| l.contains(NAME))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no certificate in {listed}"))
        .to_ascii_lowercase();
    let key = format!("hostnameport={NAME}:{}", s.https_port);
    let hand = "{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}";
    let bound = cli(
        &s,
        &[
            "http",
            "add",
            "sslcert",
            &key,
            &format!("certhash={thumb}"),
            &format!("appid={hand}"),
        ],
    );
    assert!(
        bound.status.success(),
        "{}{}",
        stdout(&bound),
        String::from_utf8_lossy(&bound.stderr)
    );
    let mut s = s.launch(&[("RUST_LOG", "info")]);
    let log = Lines::follow(&mut s);
    let line = log.wait_for("bound by hand", Duration::from_secs(20));
    assert!(line.contains(NAME) && line.contains(hand), "{line}");
    let shown = stdout(&cli(&s, &["http", "show", "sslcert", &key]));
    assert!(
        shown.contains(hand) && !shown.contains(ACME_APPID),
        "{shown}"
    );
    assert!(log.matching("[acme] directory").is_empty(), "{}", log.all());
}

/// The certificate hash `http show sslcert hostnameport=NAME:PORT` shows
/// for ACME's binding, once there is one.
fn acme_certhash(s: &TestServer, port: u16, timeout: Duration) -> String {
    let key = format!("hostnameport={NAME}:{port}");
    wait_for(timeout, "the ACME binding", || {
        let out = stdout(&cli(s, &["http", "show", "sslcert", &key]));
        if !out.contains(ACME_APPID) {
            return None;
        }
        out.lines()
            .find_map(|l| l.trim().strip_prefix("Certificate Hash"))
            .and_then(|l| l.split(':').nth(1))
            .map(|h| h.trim().to_owned())
    })
}

/// `[acme]` for pebble, with `names=` given when `names` is.
fn acme_section(pebble: &Pebble) -> String {
    format!(
        "\n[acme]\ndirectory={}\nca_root={}\n",
        pebble.directory,
        pebble.tls_ca.display()
    )
}

#[test]
fn acme_status_and_renew_ask_the_running_server() {
    let s = TestServer::prepare_tls(&format!("host_name={NAME}"), |public| {
        std::fs::write(public.join("index.html"), "renew me\n").expect("index");
    });
    let pebble = Pebble::start(s.port, s.https_port);
    s.append_config(&acme_section(&pebble));
    let mut s = s.launch(&[("RUST_LOG", "info")]);
    let log = Lines::follow(&mut s);
    let first = acme_certhash(&s, s.https_port, Duration::from_secs(45));
    log.wait_for("certificate issued and bound", Duration::from_secs(10));

    // Status: the name, its thumbprint, dates and last result.
    let status = cli(&s, &["acme", "status"]);
    let text = stdout(&status);
    assert!(status.status.success(), "{text}");
    assert!(text.contains(NAME), "{text}");
    assert!(text.to_lowercase().contains(&first), "{text}");
    for field in ["Not after", "Renewal due", "Next check", "Last result"] {
        assert!(text.contains(field), "{field}: {text}");
    }
    assert!(text.contains("certificate issued and bound"), "{text}");

    // A name ACME does not look after is refused, naming the ones it does.
    let other = cli(&s, &["acme", "renew", "other.portshare-acme.net"]);
    assert!(!other.status.success());
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        err.contains("other.portshare-acme.net") && err.contains(NAME),
        "{err}"
    );

    // Renew now: a new certificate, bound in place of the old one.
    let renewed = cli(&s, &["acme", "renew", NAME]);
    let out = stdout(&renewed);
    assert!(
        renewed.status.success(),
        "{out}{}\n{}",
        String::from_utf8_lossy(&renewed.stderr),
        pebble.logs()
    );
    assert!(out.contains(NAME) && out.contains("renewed"), "{out}");
    let second = acme_certhash(&s, s.https_port, Duration::from_secs(5));
    assert_ne!(first, second, "the binding's certhash changes");
    assert!(out.to_lowercase().contains(&second), "{out}");
    let text = stdout(&cli(&s, &["acme", "status"]));
    assert!(text.to_lowercase().contains(&second), "{text}");
    // Still served, with the new certificate.
    let mut roots = RootCertStore::empty();
    roots.add(pebble.root()).expect("pebble root");
    let https: SocketAddr = ([127, 0, 0, 1], s.https_port).into();
    let body = wait_for(Duration::from_secs(10), "a trusted handshake", || {
        https_get(https, NAME, roots.clone(), "/").ok()
    });
    assert_eq!(body, b"renew me\n");
}

#[test]
fn acme_commands_say_when_no_server_is_running() {
    let s = TestServer::prepare_tls(&format!("host_name={NAME}"), |_| {});
    let dead = free_port();
    s.append_config(&format!(
        "\n[acme]\ndirectory=https://127.0.0.1:{dead}/dir\n"
    ));
    for args in [&["acme", "status"][..], &["acme", "renew"][..]] {
        let out = cli(&s, args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no portshare server is running"), "{err}");
    }
    // Status still says what the store knows.
    let status = cli(&s, &["acme", "status"]);
    assert!(
        stdout(&status).contains("no certificate bound by ACME"),
        "{}",
        stdout(&status)
    );
}

#[test]
fn two_servers_sharing_cert_dir_place_one_order() {
    let a = TestServer::prepare_tls(&format!("host_name={NAME}"), |public| {
        std::fs::write(public.join("index.html"), "shared\n").expect("index");
    });
    let certs = a.dir.path().join("certs");
    let b = TestServer::prepare_tls(
        &format!("host_name={NAME}\ncert_dir={}", certs.display()),
        |public| {
            std::fs::write(public.join("index.html"), "shared\n").expect("index");
        },
    );
    // Pebble validates through server a; b's tokens reach it through the
    // shared folder.
    let pebble = Pebble::start(a.port, a.https_port);
    a.append_config(&acme_section(&pebble));
    b.append_config(&acme_section(&pebble));
    let mut a = a.launch(&[("RUST_LOG", "info")]);
    let mut b = b.launch(&[("RUST_LOG", "info")]);
    let log_a = Lines::follow(&mut a);
    let log_b = Lines::follow(&mut b);
    let hash_a = acme_certhash(&a, a.https_port, Duration::from_secs(60));
    let hash_b = acme_certhash(&b, b.https_port, Duration::from_secs(30));
    assert_eq!(hash_a, hash_b, "one certificate for both");
    // Let a second order show itself if there were one.
    std::thread::sleep(Duration::from_secs(2));
    let issued =
        log_a.matching("issued and bound").len() + log_b.matching("issued and bound").len();
    assert_eq!(issued, 1, "{}\n---\n{}", log_a.all(), log_b.all());
    let orders = std::fs::read_to_string(pebble.dir.path().join("pebble.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Issued certificate"))
        .count();
    assert_eq!(orders, 1, "{}", pebble.logs());
    // Both serve it.
    let mut roots = RootCertStore::empty();
    roots.add(pebble.root()).expect("pebble root");
    for s in [&a, &b] {
        let https: SocketAddr = ([127, 0, 0, 1], s.https_port).into();
        let body = wait_for(Duration::from_secs(10), "a trusted handshake", || {
            https_get(https, NAME, roots.clone(), "/").ok()
        });
        assert_eq!(body, b"shared\n");
    }
}

#[test]
fn tls_alpn01_order_is_answered_by_the_tls_acceptor() {
    let s = TestServer::prepare_tls(&format!("host_name={NAME}"), |public| {
        std::fs::write(public.join("index.html"), "alpn\n").expect("index");
    });
    // Pebble's HTTP-01 port leads nowhere: only TLS-ALPN-01 can succeed.
    let pebble = Pebble::start(free_port(), s.https_port);
    s.append_config(&format!("{}challenge=tls-alpn-01\n", acme_section(&pebble)));
    let mut s = s.launch(&[("RUST_LOG", "info")]);
    let log = Lines::follow(&mut s);
    // The log (shown on failure) says what became of the order.
    log.wait_for("certificate issued and bound", Duration::from_secs(45));
    log.wait_for("TLS-ALPN-01 challenge answered", Duration::from_secs(5));
    acme_certhash(&s, s.https_port, Duration::from_secs(10));
    // No HTTP-01 registration was made.
    let state = stdout(&cli(&s, &["http", "show", "servicestate"]));
    assert!(!state.to_lowercase().contains("acme-challenge"), "{state}");
    let mut roots = RootCertStore::empty();
    roots.add(pebble.root()).expect("pebble root");
    let https: SocketAddr = ([127, 0, 0, 1], s.https_port).into();
    let body = wait_for(Duration::from_secs(10), "a trusted handshake", || {
        https_get(https, NAME, roots.clone(), "/").ok()
    });
    assert_eq!(body, b"alpn\n");
}

#[test]
fn renewal_at_a_third_left_fails_no_request() {
    let s = TestServer::prepare_tls(&format!("host_name={NAME}"), |public| {
        std::fs::write(public.join("index.html"), "renewal\n").expect("index");
    });
    // 60 s certificates: renewed 40 s after they start.
    let pebble = Pebble::start_with(
        s.port,
        s.https_port,
        serde_json::json!({ "certificateValidityPeriod": 60 }),
    );
    s.append_config(&acme_section(&pebble));
    let mut s = s.launch(&[("RUST_LOG", "info")]);
    let log = Lines::follow(&mut s);
    let first = acme_certhash(&s, s.https_port, Duration::from_secs(45));
    let mut roots = RootCertStore::empty();
    roots.add(pebble.root()).expect("pebble root");
    let config = trusting(roots).expect("client config");
    let https: SocketAddr = ([127, 0, 0, 1], s.https_port).into();
    wait_for(
        Duration::from_secs(10),
        "the first certificate served",
        || {
            https_get_served(https, NAME, config.clone(), "/")
                .ok()
                .filter(|(_, t)| *t == first)
        },
    );

    // Requests one after another, each on a new connection, until a while
    // after the renewal: a few hundred in all.
    let started = std::time::Instant::now();
    let mut requests = 0;
    let mut failures = Vec::new();
    let mut served = vec![first.clone()];
    let mut after_renewal = 0;
    while after_renewal < 20 && started.elapsed() < Duration::from_secs(90) {
        requests += 1;
        match https_get_served(https, NAME, config.clone(), "/") {
            Ok((body, thumb)) => {
                if body != b"renewal\n" {
                    failures.push(format!("body {:?}", String::from_utf8_lossy(&body)));
                }
                if thumb != first {
                    after_renewal += 1;
                }
                if !served.contains(&thumb) {
                    served.push(thumb);
                }
            }
            Err(e) => failures.push(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        after_renewal >= 20,
        "no renewed certificate served within {:?} ({requests} requests)\n{}\n{}",
        started.elapsed(),
        log.all(),
        pebble.logs()
    );
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed: {failures:?}\n{}",
        failures.len(),
        log.all()
    );
    assert!(requests >= 100, "{requests} requests");
    let line = log.wait_for("a third of its lifetime is left", Duration::from_secs(1));
    assert!(line.contains(NAME), "{line}");
    // The binding follows, and the server serves its certificate.
    let now = acme_certhash(&s, s.https_port, Duration::from_secs(5));
    assert_ne!(now, first);
    assert!(served.contains(&now), "{now} not in {served:?}");
}

/// The thumbprint of the first-run certificate (bound to `0.0.0.0:PORT`).
fn first_run_certhash(s: &TestServer) -> String {
    let key = format!("ipport=0.0.0.0:{}", s.https_port);
    wait_for(Duration::from_secs(10), "the first-run binding", || {
        stdout(&cli(s, &["http", "show", "sslcert", &key]))
            .lines()
            .find_map(|l| l.trim().strip_prefix("Certificate Hash"))
            .and_then(|l| l.split(':').nth(1))
            .map(|h| h.trim().to_owned())
    })
}

/// A handshake with SNI `NAME` (an ACME name without its certificate yet)
/// completes with the first-run localhost certificate, not an alert.
fn assert_first_run_certificate_served(s: &TestServer) {
    let config = accepting_client(rustls::DEFAULT_VERSIONS);
    let https: SocketAddr = ([127, 0, 0, 1], s.https_port).into();
    let (body, served) = https_get_served(https, NAME, Arc::new(config), "/")
        .unwrap_or_else(|e| panic!("handshake with SNI {NAME}: {e}"));
    assert!(!body.is_empty());
    assert_eq!(served, first_run_certhash(s));
}

#[test]
fn an_acme_name_without_its_certificate_gets_the_first_run_certificate() {
    let dead = free_port();
    let s = TestServer::prepare_tls(&format!("host_name={NAME}"), |public| {
        std::fs::write(public.join("index.html"), "fallback\n").expect("index");
    });
    s.append_config(&format!(
        "\n[acme]\ndirectory=https://127.0.0.1:{dead}/dir\n"
    ));
    let mut s = s.launch(&[]);
    let log = Lines::follow(&mut s);
    log.wait_for("[acme] directory", Duration::from_secs(30));
    assert_first_run_certificate_served(&s);
}

#[test]
fn unknown_directory_url_is_named_and_the_server_serves() {
    // localhost too, for the plain GET below.
    let s = TestServer::prepare_tls(&format!("host_name=localhost {NAME}"), |public| {
        std::fs::write(public.join("index.html"), "still here\n").expect("index");
    });
    let pebble = Pebble::start(s.port, s.https_port);
    // Pebble's own HTTPS answers 404 there.
    let wrong = pebble.directory.replace("/dir", "/no-such-directory");
    s.append_config(&format!(
        "\n[acme]\ndirectory={wrong}\nca_root={}\n",
        pebble.tls_ca.display()
    ));
    let mut s = s.launch(&[]);
    let log = Lines::follow(&mut s);
    let line = log.wait_for("[acme] directory", Duration::from_secs(30));
    assert!(line.contains(&wrong), "{line}");
    assert!(line.contains("not an ACME directory"), "{line}");
    assert!(line.contains("check the URL"), "{line}");
    assert!(line.contains("trying again in"), "{line}");
    assert_eq!(s.get("/").status, 200);
    assert_eq!(log.matching("[acme] directory").len(), 1, "{}", log.all());
    assert_first_run_certificate_served(&s);
}

#[test]
fn a_rejected_name_is_named_and_the_others_are_issued() {
    const BLOCKED: &str = "blocked.portshare-acme.net";
    // localhost too, for the plain GET below.
    let s = TestServer::prepare_tls(&format!("host_name=localhost {NAME}"), |public| {
        std::fs::write(public.join("index.html"), "one of two\n").expect("index");
    });
    let pebble = Pebble::start_with(
        s.port,
        s.https_port,
        serde_json::json!({ "domainBlocklist": [BLOCKED] }),
    );
    s.append_config(&format!(
        "{}names={BLOCKED},{NAME}\n",
        acme_section(&pebble)
    ));
    let mut s = s.launch(&[("RUST_LOG", "info")]);
    let log = Lines::follow(&mut s);
    let line = log.wait_for("rejectedIdentifier", Duration::from_secs(30));
    assert!(line.contains(BLOCKED), "{line}");
    assert!(line.contains("[acme] names="), "{line}");
    assert!(line.contains("trying again in"), "{line}");
    // The other name is issued and served all the same.
    acme_certhash(&s, s.https_port, Duration::from_secs(45));
    assert_eq!(s.get("/").status, 200);
    assert_eq!(log.matching("rejectedIdentifier").len(), 1, "{}", log.all());
}

#[test]
fn a_ca_root_that_is_not_pem_is_named_and_the_server_serves() {
    let dead = free_port();
    // localhost too, for the plain GET below.
    let s = TestServer::prepare_tls(&format!("host_name=localhost {NAME}"), |public| {
        std::fs::write(public.join("index.html"), "still here\n").expect("index");
    });
    let bad = s.dir.path().join("not-a-root.txt");
    std::fs::write(&bad, "this is not a certificate\n").expect("write");
    s.append_config(&format!(
        "\n[acme]\ndirectory=https://127.0.0.1:{dead}/dir\nca_root={}\n",
        bad.display()
    ));
    let mut s = s.launch(&[]);
    let log = Lines::follow(&mut s);
    let line = log.wait_for("[acme] ca_root", Duration::from_secs(30));
    assert!(line.contains("not-a-root.txt"), "{line}");
    assert!(line.contains("PEM"), "{line}");
    assert_eq!(s.get("/").status, 200);
    assert_eq!(log.matching("[acme] ca_root").len(), 1, "{}", log.all());
    assert_first_run_certificate_served(&s);
}

#[test]
fn http01_without_plain_http_says_so_and_the_server_serves() {
    let dead = free_port();
    let mut s = TestServer::prepare_tls(&format!("host_name={NAME}"), |public| {
        std::fs::write(public.join("index.html"), "https only\n").expect("index");
    });
    let ini = std::fs::read_to_string(&s.config).expect("read config");
    let ini = ini.replacen(&format!("http_port={}\n", s.port), "http_port=0\n", 1);
    std::fs::write(&s.config, ini).expect("write config");
    s.append_config(&format!(
        "\n[acme]\ndirectory=https://127.0.0.1:{dead}/dir\nchallenge=http-01\n"
    ));
    // Only HTTPS listens: the launch waits for it.
    s.port = s.https_port;
    let mut s = s.launch(&[]);
    let log = Lines::follow(&mut s);
    let line = log.wait_for("http_port is 0", Duration::from_secs(20));
    assert!(line.contains("[acme] challenge="), "{line}");
    assert!(line.contains("no certificates are ordered"), "{line}");
    assert_first_run_certificate_served(&s);
    assert_eq!(log.matching("ACME").len(), 1, "{}", log.all());
}

#[test]
fn tls_alpn01_challenge_is_answered_by_the_other_server_sharing_cert_dir() {
    let a = TestServer::prepare_tls(&format!("host_name={NAME}"), |public| {
        std::fs::write(public.join("index.html"), "shared alpn\n").expect("index");
    });
    let certs = a.dir.path().join("certs");
    let b = TestServer::prepare_tls(
        &format!("host_name={NAME}\ncert_dir={}", certs.display()),
        |_| {},
    );
    // Pebble validates TLS-ALPN-01 at server b only (its HTTP-01 port
    // leads nowhere).
    let pebble = Pebble::start(free_port(), b.https_port);
    a.append_config(&format!("{}challenge=tls-alpn-01\n", acme_section(&pebble)));
    // b cannot order (its directory does not answer), so the order is
    // a's, for certain; b's TLS acceptor still answers for it, from the
    // shared challenge folder.
    let dead = free_port();
    b.append_config(&format!(
        "\n[acme]\ndirectory=https://127.0.0.1:{dead}/dir\nchallenge=tls-alpn-01\n"
    ));
    let mut b = b.launch(&[("RUST_LOG", "info")]);
    let log_b = Lines::follow(&mut b);
    // b has tried (and failed) to order, and released the order lock.
    log_b.wait_for("[acme] directory", Duration::from_secs(30));
    let mut a = a.launch(&[("RUST_LOG", "info")]);
    let log_a = Lines::follow(&mut a);
    let issued = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        log_a.wait_for("certificate issued and bound", Duration::from_secs(45))
    }));
    assert!(
        issued.is_ok(),
        "a:\n{}\n---\nb:\n{}\n---\n{}",
        log_a.all(),
        log_b.all(),
        pebble.logs()
    );
    // The validation reached b, which answered it; a never saw it.
    log_b.wait_for("TLS-ALPN-01 challenge answered", Duration::from_secs(5));
    assert!(
        log_a.matching("TLS-ALPN-01 challenge answered").is_empty(),
        "{}",
        log_a.all()
    );
    // The answer is withdrawn from the shared folder once the order is over.
    let shared = certs
        .join("acme-challenges")
        .join(format!("{NAME}.tls-alpn-01"));
    assert!(!shared.exists(), "{}", shared.display());
    acme_certhash(&a, a.https_port, Duration::from_secs(10));
    let mut roots = RootCertStore::empty();
    roots.add(pebble.root()).expect("pebble root");
    let https: SocketAddr = ([127, 0, 0, 1], a.https_port).into();
    let body = wait_for(Duration::from_secs(10), "a trusted handshake", || {
        https_get(https, NAME, roots.clone(), "/").ok()
    });
    assert_eq!(body, b"shared alpn\n");
}

#[test]
fn a_reload_starts_and_stops_acme() {
    let s = TestServer::prepare_tls(&format!("host_name={NAME}"), |public| {
        std::fs::write(public.join("index.html"), "later\n").expect("index");
    });
    let pebble = Pebble::start(s.port, s.https_port);
    let base = std::fs::read_to_string(&s.config).expect("read config");
    let mut s = s.launch(&[("RUST_LOG", "info")]);
    let log = Lines::follow(&mut s);
    let none = cli(&s, &["acme", "status"]);
    assert!(!none.status.success());
    let err = String::from_utf8_lossy(&none.stderr).into_owned();
    assert!(err.contains("does not order certificates"), "{err}");

    s.append_config(&acme_section(&pebble));
    let reload = cli(&s, &["reload"]);
    let out = stdout(&reload);
    assert!(reload.status.success(), "{out}");
    assert!(out.contains(&format!("ACME restarted for {NAME}")), "{out}");
    log.wait_for("certificate issued and bound", Duration::from_secs(60));
    let bound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        acme_certhash(&s, s.https_port, Duration::from_secs(10))
    }));
    assert!(bound.is_ok(), "no ACME binding; the log:\n{}", log.all());
    let status = cli(&s, &["acme", "status"]);
    assert!(status.status.success());
    assert!(stdout(&status).contains(NAME));

    // Reloading the same file leaves the manager alone.
    let again = stdout(&cli(&s, &["reload"]));
    assert!(!again.contains("ACME"), "{again}");

    std::fs::write(&s.config, &base).expect("write config");
    let out = stdout(&cli(&s, &["reload"]));
    assert!(out.contains("ACME stopped"), "{out}");
    let none = cli(&s, &["acme", "status"]);
    assert!(!none.status.success());
}
