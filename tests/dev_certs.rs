//! Issue 21 point 3: certificates from the development CA for the private names the
//! https prefixes name. The real server; rustls clients that trust the development CA
//! alone (read from the server's store), so a handshake that completes proves the
//! certificate chains to it and covers the SNI name. Every wait polls with a deadline.

mod common;

use common::accept_all::accepting_client;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{cli, ok, wait_for, wait_output, TestServer};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use sha1::{Digest, Sha1};

/// The appid of the development certificates' bindings, as the README documents it.
const DEV_APPID: &str = "{7a1f5a0e-ac3e-4e2d-8f01-646576636100}";
const HAND_APPID: &str = "{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}";
const WAIT: Duration = Duration::from_secs(20);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(s: &TestServer, args: &[&str]) -> Output {
    let child = cli(&s.config, args).spawn().expect("start portshare");
    wait_output(child, Duration::from_secs(30))
}

/// The first 40-hex-digit word of the line of `table` that contains `marker`.
fn thumb_in(table: &str, marker: &str) -> Option<String> {
    table
        .lines()
        .filter(|l| l.contains(marker))
        .flat_map(|l| l.split_whitespace())
        .find(|w| w.len() == 40 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
}

/// The development CA's certificate, from the server's store.
fn dev_ca(s: &TestServer) -> CertificateDer<'static> {
    let list = ok(&run(s, &["cert", "list"]));
    let thumb = thumb_in(&list, "CN=portshare development CA")
        .unwrap_or_else(|| panic!("no development CA in {list}"));
    CertificateDer::from_pem_file(s.dir.path().join("certs").join(format!("{thumb}.pem")))
        .expect("the CA's PEM file")
}

/// `http show sslcert`'s certificate hash and appid for a binding key
/// (`myapp.test:8443`, `0.0.0.0:8443`).
fn shown(s: &TestServer, key: &str) -> Option<(String, String)> {
    let out = ok(&run(s, &["http", "show", "sslcert"]));
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(':') && l.trim_end().ends_with(&format!(": {key}")))?;
    let value = |label: &str| {
        lines[at + 1..]
            .iter()
            .take(4)
            .find(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.split_once(": "))
            .map(|(_, v)| v.trim().to_owned())
    };
    Some((value("Certificate Hash")?, value("Application ID")?))
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Client configurations: one trusting `ca` alone, one trusting anything.
#[derive(Clone)]
struct Clients {
    trusting: Arc<ClientConfig>,
    any: Arc<ClientConfig>,
}

impl Clients {
    fn new(ca: CertificateDer<'static>) -> Clients {
        let mut roots = RootCertStore::empty();
        roots.add(ca).expect("the CA as a root");
        let mut trusting = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        trusting.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut any = accepting_client(rustls::DEFAULT_VERSIONS);
        any.alpn_protocols = vec![b"http/1.1".to_vec()];
        Clients {
            trusting: Arc::new(trusting),
            any: Arc::new(any),
        }
    }
}

/// What one HTTPS request saw.
#[derive(Debug)]
struct Answer {
    thumb: String,
    status: u16,
    body: String,
}

/// `GET /` over a new TLS connection to 127.0.0.1:`port` with SNI `name`.
fn get(config: &Arc<ClientConfig>, port: u16, name: &str) -> Result<Answer, String> {
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let mut conn = ClientConnection::new(config.clone(), server_name).map_err(|e| e.to_string())?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
    tcp.set_write_timeout(Some(Duration::from_secs(10))).ok();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    let thumb = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| hex::encode(Sha1::digest(c.as_ref())))
        .unwrap_or_default();
    let mut stream = StreamOwned::new(conn, tcp);
    let request = format!("GET / HTTP/1.1\r\nHost: {name}:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A close without close_notify still ends a complete response.
            Err(_) if !buf.is_empty() => break,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let response = text(&buf);
    let status = response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok(Answer {
        thumb,
        status,
        body,
    })
}

/// Waits until a client trusting the development CA alone gets 200 from `name`;
/// panics with the last failure after [`WAIT`].
fn wait_trusted(c: &Clients, port: u16, name: &str) -> Answer {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let last = match get(&c.trusting, port, name) {
            Ok(a) if a.status == 200 => return a,
            Ok(a) => format!("status {}", a.status),
            Err(e) => e,
        };
        assert!(
            std::time::Instant::now() < deadline,
            "no trusted answer from {name} within {WAIT:?}: {last}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A backend that answers every request with `answer` (the application).
fn backend(answer: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("backend listener");
    let port = listener.local_addr().expect("backend address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(match stream.try_clone() {
                    Ok(s) => s,
                    Err(_) => return,
                });
                let mut stream = stream;
                loop {
                    // One request head (no bodies here), then the answer.
                    let mut line = String::new();
                    let mut head_done = false;
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if line == "\r\n" {
                            head_done = true;
                            break;
                        }
                        line.clear();
                    }
                    if !head_done {
                        return;
                    }
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if stream.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn index(public: &std::path::Path) {
    std::fs::write(public.join("index.html"), "the site\n").expect("index");
}

fn register(s: &TestServer, prefix: &str, backend: u16) -> Child {
    cli(
        &s.config,
        &[
            "register",
            prefix,
            "--backend",
            &format!("http://127.0.0.1:{backend}"),
        ],
    )
    .spawn()
    .expect("start portshare register")
}

fn stop(mut child: Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    if wait_for(WAIT, "register to end", || child.try_wait().ok().flatten())
        .code()
        .is_none()
    {
        let _ = child.kill();
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// `host_name`, an `[app:NAME]` prefix and a run-time registration each get a
/// certificate from the development CA, bound as `hostnameport=NAME:PORT` with the
/// documented appid; a client that trusts only the CA completes the handshake and
/// gets the site's or the application's answer.
#[cfg(unix)]
#[test]
fn registered_names_get_certificates_from_the_development_ca() {
    let app = backend("the app\n");
    let s = TestServer::prepare_tls("host_name=site.test", index);
    let p = s.https_port;
    s.append_config(&format!(
        "\n[app:web]\nprefix=https://app.test:{p}/\nbackend=http://127.0.0.1:{app}\n"
    ));
    let s = s.launch(&[]);
    let clients = Clients::new(dev_ca(&s));

    let site = wait_trusted(&clients, p, "site.test");
    assert_eq!(site.body, "the site\n");
    let web = wait_trusted(&clients, p, "app.test");
    assert_eq!(web.body, "the app\n");
    assert_ne!(site.thumb, web.thumb, "one certificate per name");

    // Registered at run time: works as soon as the prefix is registered.
    let holder = register(&s, &format!("https://myapp.test:{p}/"), app);
    let mine = wait_trusted(&clients, p, "myapp.test");
    assert_eq!(mine.body, "the app\n");

    for (name, answer) in [
        ("site.test", &site),
        ("app.test", &web),
        ("myapp.test", &mine),
    ] {
        let (hash, appid) = shown(&s, &format!("{name}:{p}"))
            .unwrap_or_else(|| panic!("hostnameport={name}:{p} is not in http show sslcert"));
        assert_eq!(hash, answer.thumb, "{name}");
        assert_eq!(appid, DEV_APPID, "{name}");
    }
    // The first-run certificate (0.0.0.0 / [::]) comes from the same CA (no prefix
    // names localhost here: the handshake completes, the request gets 400).
    let first = get(&clients.trusting, p, "localhost").expect("the first-run certificate");
    assert_eq!(
        shown(&s, &format!("0.0.0.0:{p}")).map(|b| b.0),
        Some(first.thumb)
    );

    // The certificate is an ordinary store entry.
    let list = ok(&run(&s, &["cert", "list"]));
    assert!(list.contains(&mine.thumb.to_uppercase()), "{list}");
    stop(holder);
}

/// A binding made by hand for a name is never replaced, not even one that took over
/// a development binding (`http update sslcert`).
#[cfg(unix)]
#[test]
fn hand_made_bindings_are_left_alone() {
    let app = backend("the app\n");
    let s = TestServer::prepare_tls("host_name=hand.test,other.test", index);
    let p = s.https_port;
    let list = ok(&run(&s, &["cert", "new", "--dns", "hand.test"]));
    let hand = thumb_in(&list, "CN=hand.test").unwrap_or_else(|| panic!("{list}"));
    ok(&run(
        &s,
        &[
            "http",
            "add",
            "sslcert",
            &format!("hostnameport=hand.test:{p}"),
            &format!("certhash={hand}"),
            &format!("appid={HAND_APPID}"),
        ],
    ));
    let s = s.launch(&[]);
    let clients = Clients::new(dev_ca(&s));

    // other.test bound by the manager shows that it has looked.
    let other = wait_trusted(&clients, p, "other.test");
    assert_eq!(
        shown(&s, &format!("other.test:{p}")),
        Some((other.thumb.clone(), DEV_APPID.to_owned()))
    );
    assert_eq!(
        shown(&s, &format!("hand.test:{p}")),
        Some((hand.clone(), HAND_APPID.to_owned()))
    );
    let served = get(&clients.any, p, "hand.test").expect("hand.test");
    assert_eq!(served.thumb, hand);
    // Not trusted: the hand-made certificate is self-signed, not the CA's.
    assert!(get(&clients.trusting, p, "hand.test").is_err());

    // The user takes over other.test's binding.
    ok(&run(
        &s,
        &[
            "http",
            "update",
            "sslcert",
            &format!("hostnameport=other.test:{p}"),
            &format!("certhash={hand}"),
            &format!("appid={HAND_APPID}"),
        ],
    ));
    wait_for(WAIT, "the user's certificate for other.test", || {
        get(&clients.any, p, "other.test")
            .ok()
            .filter(|a| a.thumb == hand)
    });
    // A registry change makes the manager look again: it binds the new name and
    // leaves both hand-made bindings as they are.
    let holder = register(&s, &format!("https://third.test:{p}/"), app);
    wait_trusted(&clients, p, "third.test");
    for name in ["hand.test", "other.test"] {
        assert_eq!(
            shown(&s, &format!("{name}:{p}")),
            Some((hand.clone(), HAND_APPID.to_owned())),
            "{name}"
        );
    }
    stop(holder);
}

/// With certificates that live 12 seconds (`PORTSHARE_DEV_CERT_LIFETIME`), the
/// development certificate and the first-run certificate are each renewed before they
/// expire, and requests made all along — verified against the CA, so an expired
/// certificate would fail them — never fail.
#[test]
fn short_lived_certificates_are_renewed_without_a_failed_request() {
    let s = TestServer::prepare_tls("host_name=myapp.test,localhost", index)
        .launch(&[("PORTSHARE_DEV_CERT_LIFETIME", "12")]);
    let p = s.https_port;
    let clients = Clients::new(dev_ca(&s));
    let first_dev = wait_trusted(&clients, p, "myapp.test").thumb;
    let first_run = wait_trusted(&clients, p, "localhost").thumb;
    assert_ne!(first_dev, first_run);
    // localhost is served by the first-run binding already: no binding of its own.
    assert_eq!(shown(&s, &format!("localhost:{p}")), None);

    let stop_flag = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let load = {
        let (stop_flag, seen, failures, config) = (
            stop_flag.clone(),
            seen.clone(),
            failures.clone(),
            clients.trusting.clone(),
        );
        std::thread::spawn(move || {
            while !stop_flag.load(Ordering::SeqCst) {
                for name in ["myapp.test", "localhost"] {
                    match get(&config, p, name) {
                        Ok(a) if a.status == 200 && a.body == "the site\n" => {
                            if let Ok(mut s) = seen.lock() {
                                s.push((name.to_owned(), a.thumb));
                            }
                        }
                        Ok(a) => failures
                            .lock()
                            .map(|mut f| f.push(format!("{name}: status {}", a.status)))
                            .unwrap_or(()),
                        Err(e) => failures
                            .lock()
                            .map(|mut f| f.push(format!("{name}: {e}")))
                            .unwrap_or(()),
                    }
                }
            }
        })
    };
    let renewed = |name: &str, first: &str| {
        seen.lock()
            .map(|s| s.iter().any(|(n, t)| n == name && t != first))
            .unwrap_or(false)
    };
    // Renewal comes when a third of the 12 s (plus a little backdating) is left.
    wait_for(Duration::from_secs(40), "both certificates renewed", || {
        (renewed("myapp.test", &first_dev) && renewed("localhost", &first_run)).then_some(())
    });
    stop_flag.store(true, Ordering::SeqCst);
    load.join().expect("load thread");
    let failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    let count = seen.lock().map(|s| s.len()).unwrap_or(0);
    assert!(count > 10, "only {count} requests");

    // The bindings name the new certificates; the replaced ones leave the folder.
    let (hash, appid) = shown(&s, &format!("myapp.test:{p}")).expect("myapp.test binding");
    assert_eq!(appid, DEV_APPID);
    assert_ne!(hash, first_dev);
    let certs = s.dir.path().join("certs");
    wait_for(WAIT, "the replaced certificates deleted", || {
        (!certs.join(format!("{first_dev}.pem")).exists()
            && !certs.join(format!("{first_run}.pem")).exists())
        .then_some(())
    });
}
