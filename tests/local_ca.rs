//! The local certificate authority (issue 21): `cert new --ca`, `cert new --signer`,
//! `cert export` of a CA, and `cert trust` into a temporary trust folder — then curl
//! and Python complete the handshake with the bundle alone (no `-k`). Every test runs
//! the real binary against its own temp folders; `cert trust` always runs with
//! `PORTSHARE_TRUST_DIR` set, so the machine's trust stores are never touched.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{cli, ok, wait_for, wait_output, TestServer};

const APPID: &str = "appid={a227f2f9-d103-4e0f-92a4-7086c8ab35ac}";

fn run(s: &TestServer, args: &[&str]) -> Output {
    let child = cli(&s.config, args).spawn().expect("start portshare");
    wait_output(child, Duration::from_secs(30))
}

/// `cert trust …` with the trust folder and bundle inside the test's temp folder.
fn trust(s: &TestServer, args: &[&str]) -> Output {
    let mut all = vec!["cert", "trust"];
    all.extend_from_slice(args);
    let child = cli(&s.config, &all)
        .env("PORTSHARE_TRUST_DIR", anchors(s))
        .env("PORTSHARE_TRUST_BUNDLE", bundle(s))
        .spawn()
        .expect("start portshare");
    wait_output(child, Duration::from_secs(30))
}

fn anchors(s: &TestServer) -> PathBuf {
    s.dir.path().join("anchors")
}

fn bundle(s: &TestServer) -> PathBuf {
    s.dir.path().join("bundle.pem")
}

fn certs(s: &TestServer) -> PathBuf {
    s.dir.path().join("certs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn failed(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "should fail with 1: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stderr)
}

/// The thumbprint in the one row of a `cert new` table.
fn thumb_of(table: &str) -> String {
    table
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|w| w.len() == 40 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no thumbprint in {table}"))
        .to_ascii_lowercase()
}

/// The store's files and their contents, to show a refused command changed nothing.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap_or_default(),
                )
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn ca_is_made_listed_and_exported_without_its_key() {
    let s = TestServer::prepare("", |_| {});
    let out = ok(&run(
        &s,
        &["cert", "new", "--ca", "--name", "Test Root", "--days", "30"],
    ));
    let ca = thumb_of(&out);
    assert!(
        out.contains("CN=Test Root, O=portshare  (CA, issues certificates)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("--signer {}", ca.to_uppercase())),
        "{out}"
    );
    #[cfg(unix)]
    assert_eq!(mode(&certs(&s).join(format!("{ca}.key"))), 0o600);
    let list = ok(&run(&s, &["cert", "list"]));
    assert!(list.contains("(CA, issues certificates)"), "{list}");

    // The public certificate alone, world-readable.
    let crt = s.dir.path().join("ca.crt");
    ok(&run(
        &s,
        &["cert", "export", &ca, "--out", crt.to_str().unwrap_or("")],
    ));
    let pem = std::fs::read_to_string(&crt).expect("ca.crt");
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 1);
    assert!(!pem.contains("PRIVATE KEY"));

    // A .pfx carries the key: only when asked.
    let pfx = s.dir.path().join("ca.pfx");
    let pfx_arg = pfx.to_str().unwrap_or("");
    let err = failed(&run(&s, &["cert", "export", &ca, "--out", pfx_arg]));
    assert!(
        err.contains("is a CA") && err.contains("--include-key"),
        "{err}"
    );
    assert!(!pfx.exists());
    ok(&run(
        &s,
        &[
            "cert",
            "export",
            &ca,
            "--out",
            pfx_arg,
            "--include-key",
            "--password",
            "pw",
        ],
    ));
    #[cfg(unix)]
    assert_eq!(mode(&pfx), 0o600);
}

#[test]
fn signer_must_be_a_ca_with_a_key() {
    let s = TestServer::prepare("", |_| {});
    let leaf = thumb_of(&ok(&run(&s, &["cert", "new", "--dns", "plain.test"])));
    let ca = thumb_of(&ok(&run(&s, &["cert", "new", "--ca", "--name", "Keyless"])));
    // The CA again, without its key: export the certificate, delete, import it.
    let crt = s.dir.path().join("keyless.crt");
    let crt_arg = crt.to_str().unwrap_or("");
    ok(&run(&s, &["cert", "export", &ca, "--out", crt_arg]));
    ok(&run(&s, &["cert", "delete", &ca]));
    ok(&run(&s, &["cert", "import", crt_arg]));

    let before = snapshot(&certs(&s));
    let cases = [
        (leaf.as_str(), "is not a CA"),
        (ca.as_str(), "no private key"),
        (
            "0123456789abcdef0123456789abcdef01234567",
            "no certificate with thumbprint",
        ),
        ("nothex", "--signer"),
    ];
    for (signer, expected) in cases {
        let err = failed(&run(
            &s,
            &["cert", "new", "--dns", "a.test", "--signer", signer],
        ));
        assert!(err.contains(expected), "{signer}: {err}");
        assert_eq!(
            snapshot(&certs(&s)),
            before,
            "store changed by --signer {signer}"
        );
    }
    // A lifetime clients refuse.
    let good = thumb_of(&ok(&run(&s, &["cert", "new", "--ca"])));
    let before = snapshot(&certs(&s));
    let err = failed(&run(
        &s,
        &[
            "cert", "new", "--dns", "a.test", "--signer", &good, "--days", "398",
        ],
    ));
    assert!(err.contains("397"), "{err}");
    assert_eq!(snapshot(&certs(&s)), before);
    // --ca with --dns is a usage error (clap, exit 2), not a certificate.
    let o = run(&s, &["cert", "new", "--ca", "--dns", "a.test"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

#[test]
fn trust_refuses_a_leaf_and_needs_a_name_without_a_dev_ca() {
    let s = TestServer::prepare("", |_| {});
    let err = failed(&trust(&s, &[]));
    assert!(err.contains("cert trust THUMBPRINT"), "{err}");
    let leaf = thumb_of(&ok(&run(&s, &["cert", "new", "--dns", "plain.test"])));
    let err = failed(&trust(&s, &[&leaf]));
    assert!(err.contains("is not a CA"), "{err}");
    assert!(!anchors(&s).exists());
}

/// Which program runs `name`, or a failed test: the handshake check needs it.
fn require(name: &str) {
    let found = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{name} is needed for this test and was not found on PATH"
    );
}

/// Runs a client with a deadline.
fn client(cmd: &mut Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start client");
    wait_output(child, Duration::from_secs(30))
}

#[test]
fn curl_and_python_trust_a_certificate_issued_by_a_trusted_ca() {
    require("curl");
    require("python3");
    let s = TestServer::prepare_tls("", |public| {
        std::fs::write(public.join("index.html"), "hello trusted\n").expect("index");
    });
    let p = s.https_port;
    // The default CA name is the development CA, which `cert trust` finds by itself.
    let ca = thumb_of(&ok(&run(&s, &["cert", "new", "--ca"])));
    let leaf = thumb_of(&ok(&run(
        &s,
        &[
            "cert",
            "new",
            "--dns",
            "localhost,127.0.0.1,::1",
            "--signer",
            &ca,
        ],
    )));
    for key in [format!("ipport=0.0.0.0:{p}"), format!("ipport=[::]:{p}")] {
        let hash = format!("certhash={leaf}");
        ok(&run(&s, &["http", "add", "sslcert", &key, &hash, APPID]));
    }
    let out = ok(&trust(&s, &[]));
    assert!(out.contains("Added") && out.contains(&ca), "{out}");
    let pem = std::fs::read_to_string(bundle(&s)).expect("bundle");
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 1, "{pem}");

    let s = s.launch(&[]);
    wait_for(Duration::from_secs(20), "the HTTPS port", || {
        std::net::TcpStream::connect(("127.0.0.1", p)).ok()
    });
    let url = format!("https://localhost:{p}/");
    let bundle_arg = bundle(&s);

    let o = client(
        Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&bundle_arg)
            .arg(&url),
    );
    assert!(o.status.success(), "curl: {}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "hello trusted\n");

    let script = "import ssl, sys, urllib.request\n\
                  ctx = ssl.create_default_context(cafile=sys.argv[1])\n\
                  body = urllib.request.urlopen(sys.argv[2], context=ctx, timeout=20).read()\n\
                  sys.stdout.write(body.decode())\n";
    let o = client(
        Command::new("python3")
            .args(["-c", script])
            .arg(&bundle_arg)
            .arg(&url),
    );
    assert!(o.status.success(), "python: {}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "hello trusted\n");

    // After --remove the bundle no longer holds the CA, and curl refuses the server.
    ok(&trust(&s, &["--remove"]));
    let pem = std::fs::read_to_string(bundle(&s)).expect("bundle");
    assert!(!pem.contains("BEGIN CERTIFICATE"), "{pem}");
    let other = s.dir.path().join("other.pem");
    let other_ca = thumb_of(&ok(&run(&s, &["cert", "new", "--ca", "--name", "Other"])));
    ok(&run(
        &s,
        &[
            "cert",
            "export",
            &other_ca,
            "--out",
            other.to_str().unwrap_or(""),
        ],
    ));
    let o = client(
        Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&other)
            .arg(&url),
    );
    assert!(
        !o.status.success(),
        "curl trusted a server its CA did not issue"
    );
}

/// Issue 21 point 5 as a user meets it: a fresh server binds its first-run
/// certificate, `cert trust` (no thumbprint: the development CA) builds the bundle,
/// and curl verifies `https://localhost:PORT/` with it.
#[test]
fn first_run_certificate_is_trusted_after_cert_trust() {
    require("curl");
    let s = TestServer::prepare_tls("", |public| {
        std::fs::write(public.join("index.html"), "first run\n").expect("index");
    })
    .launch(&[]);
    let p = s.https_port;
    wait_for(Duration::from_secs(20), "the HTTPS port", || {
        std::net::TcpStream::connect(("127.0.0.1", p)).ok()
    });
    let list = ok(&run(&s, &["cert", "list"]));
    assert!(
        list.contains("CN=portshare development CA, O=portshare  (CA, issues certificates)"),
        "{list}"
    );
    ok(&trust(&s, &[]));
    let o = client(
        Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(bundle(&s))
            .arg(format!("https://localhost:{p}/")),
    );
    assert!(o.status.success(), "curl: {}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "first run\n");

    // A new CA without --name warns that a development CA exists already.
    let o = run(&s, &["cert", "new", "--ca"]);
    ok(&o);
    assert!(
        text(&o.stderr).contains("already had a development CA"),
        "{}",
        text(&o.stderr)
    );
}
