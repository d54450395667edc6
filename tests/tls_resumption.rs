//! TLS session resumption (`session_tickets=`): TLS 1.2 and 1.3 clients
//! resume with tickets, `openssl s_client` sees the TLS 1.2 ticket and its
//! 12-hour lifetime hint, `session_tickets=no` resumes by session ID only,
//! and `session_tickets=shared` lets a client resume on another server
//! sharing `cert_dir` (instances behind a load balancer), which keys in
//! memory do not.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;

use common::accept_all::accepting_client;
use common::TestServer;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, StreamOwned};

fn client(version: &'static rustls::SupportedProtocolVersion) -> Arc<ClientConfig> {
    Arc::new(accepting_client(&[version]))
}

/// One HTTPS request on a new connection; how its handshake went.
fn fetch(config: &Arc<ClientConfig>, port: u16) -> HandshakeKind {
    let name = "localhost".try_into().expect("server name");
    let conn = ClientConnection::new(config.clone(), name).expect("client connection");
    let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("request");
    // To the end: TLS 1.3 tickets come after the handshake, with the data.
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.ends_with("hello"), "{text}");
    tls.conn.handshake_kind().expect("handshake done")
}

fn server(extra: &str) -> TestServer {
    TestServer::prepare_tls(extra, |p| std::fs::write(p.join("a.txt"), "hello").unwrap())
        .launch(&[])
}

/// What `openssl s_client -tls1_2` prints about the session.
fn openssl_tls12(port: u16) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
            "-tls1_2",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is needed for this test (Debian package openssl)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tls12_and_tls13_clients_resume_with_tickets() {
    let s = server("");
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = client(version);
        assert_eq!(fetch(&config, s.https_port), HandshakeKind::Full);
        assert_eq!(
            fetch(&config, s.https_port),
            HandshakeKind::Resumed,
            "{version:?}"
        );
    }
    let text = openssl_tls12(s.https_port);
    assert!(
        text.contains("TLS session ticket lifetime hint: 43200"),
        "{text}"
    );
}

#[test]
fn without_tickets_sessions_resume_by_id() {
    let s = server("session_tickets=no");
    let text = openssl_tls12(s.https_port);
    assert!(!text.contains("TLS session ticket"), "{text}");
    let config = client(&rustls::version::TLS12);
    assert_eq!(fetch(&config, s.https_port), HandshakeKind::Full);
    assert_eq!(fetch(&config, s.https_port), HandshakeKind::Resumed);
}

/// Servers `a` and `b` on one `cert_dir`, with `tickets`.
fn two_servers(tickets: &str) -> (TestServer, TestServer) {
    let a = server(&format!("session_tickets={tickets}"));
    let certs = a.dir.path().join("certs");
    let b = server(&format!(
        "session_tickets={tickets}\ncert_dir={}",
        certs.display()
    ));
    (a, b)
}

#[test]
fn shared_ticket_keys_resume_on_another_server() {
    let (a, b) = two_servers("shared");
    let keys = std::fs::read_to_string(a.dir.path().join("certs/ticket-keys")).expect("keys file");
    assert_eq!(keys.lines().count(), 1, "one key for both: {keys}");
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = client(version);
        assert_eq!(fetch(&config, a.https_port), HandshakeKind::Full);
        assert_eq!(
            fetch(&config, b.https_port),
            HandshakeKind::Resumed,
            "{version:?}"
        );
    }

    // Keys in memory: b cannot read a's ticket.
    let (a, b) = two_servers("yes");
    let config = client(&rustls::version::TLS13);
    assert_eq!(fetch(&config, a.https_port), HandshakeKind::Full);
    assert_eq!(fetch(&config, b.https_port), HandshakeKind::Full);
}

#[test]
fn a_bad_session_tickets_value_is_named() {
    let s = TestServer::prepare_tls("session_tickets=maybe", |_| {});
    let out = common::run_cli(&s.config, &["http", "show", "sslcert"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("session_tickets") && err.contains("'maybe' is not yes, shared or no"),
        "{err}"
    );
}
