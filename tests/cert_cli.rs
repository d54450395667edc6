//! `portshare cert …` and the certificate side of `portshare http … sslcert`, run as
//! the real binary against a temporary store.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{cert_fixtures, fixture_thumb, ok, TestServer, BIN};
use sha1::{Digest, Sha1};

const APPID: &str = "appid={a227f2f9-d103-4e0f-92a4-7086c8ab35ac}";

/// A configuration (not started) whose store is `<dir>/certs`.
fn env() -> TestServer {
    TestServer::prepare("", |_| {})
}

fn certs(e: &TestServer) -> PathBuf {
    e.dir.path().join("certs")
}

fn run(e: &TestServer, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(&e.config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run portshare")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn failed(o: &Output) -> String {
    assert!(!o.status.success(), "should fail: {}", stdout(o));
    stderr(o)
}

/// PowerShell's table for one certificate.
fn table(thumb_upper: &str, subject: &str) -> String {
    format!(
        "\n\n   PSParentPath: Microsoft.PowerShell.Security\\Certificate::LocalMachine\\My\n\n\
         Thumbprint                                Subject\n\
         ----------                                -------\n\
         {thumb_upper}  {subject}\n\n\n"
    )
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn new_prints_the_powershell_table_and_saves_with_a_private_key() {
    let e = env();
    let out = ok(&run(
        &e,
        &[
            "cert",
            "new",
            "--dns",
            "site.test",
            "--dns",
            "www.site.test,127.0.0.1",
            "--days",
            "30",
        ],
    ));
    let row = out
        .lines()
        .find(|l| l.ends_with("  CN=site.test"))
        .expect("row");
    let upper = &row[..40];
    assert_eq!(out, table(upper, "CN=site.test"));
    assert!(upper
        .chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
    let lower = upper.to_lowercase();
    let pem = certs(&e).join(format!("{lower}.pem"));
    let key = certs(&e).join(format!("{lower}.key"));
    assert!(pem.is_file() && key.is_file());
    #[cfg(unix)]
    assert_eq!(mode(&key), 0o600);

    let cert = portshare::certs::load(&pem, Some(&key), "").expect("load");
    assert_eq!(cert.info.dns_names, vec!["site.test", "www.site.test"]);
    assert_eq!(cert.info.ip_addresses.len(), 1);
    let days = (cert.info.not_after - chrono::Utc::now()).num_days();
    assert!((29..=30).contains(&days), "{days}");

    // list shows the same table; --verbose the details.
    assert_eq!(ok(&run(&e, &["cert", "list"])), out);
    let v = ok(&run(&e, &["cert", "list", "--verbose"]));
    assert!(v.contains(&format!("Thumbprint    : {upper}\n")), "{v}");
    assert!(
        v.contains("DnsNameList   : {site.test, www.site.test, 127.0.0.1}\n"),
        "{v}"
    );
    assert!(v.contains("HasPrivateKey : True\n"), "{v}");
    assert!(v.contains("NotAfter      : "), "{v}");

    // Bad input: clear messages, nonzero exit.
    let err = failed(&run(&e, &["cert", "new", "--dns", "bad name"]));
    assert!(err.contains("'bad name' is not a valid DNS name"), "{err}");
    let err = failed(&run(&e, &["cert", "new", "--dns", "a.test", "--days", "0"]));
    assert!(err.contains("between 1 and"), "{err}");
    failed(&run(&e, &["cert", "new"]));
}

#[test]
fn import_pem_pfx_variants_and_failures() {
    let e = env();
    let src = tempfile::tempdir().expect("tmp");
    // PEM with the key in the file.
    let out = ok(&run(
        &e,
        &[
            "cert",
            "import",
            cert_fixtures()
                .join("rsa-combined.pem")
                .to_str()
                .unwrap_or(""),
        ],
    ));
    assert_eq!(
        out,
        table(&fixture_thumb("rsa.pem").to_uppercase(), "CN=site.test")
    );
    // PEM with NAME.key beside it.
    std::fs::copy(cert_fixtures().join("ecdsa.pem"), src.path().join("ec.pem")).expect("copy");
    std::fs::copy(cert_fixtures().join("ecdsa.key"), src.path().join("ec.key")).expect("copy");
    let out = ok(&run(
        &e,
        &[
            "cert",
            "import",
            src.path().join("ec.pem").to_str().unwrap_or(""),
        ],
    ));
    assert!(
        out.contains(&fixture_thumb("ecdsa.pem").to_uppercase()),
        "{out}"
    );
    // PFX: AES with --password, legacy 3DES/RC2 with --password-file, seed-style.
    let e2 = env();
    let f = |n: &str| cert_fixtures().join(n).to_string_lossy().into_owned();
    let out = ok(&run(
        &e2,
        &["cert", "import", &f("rsa-aes.pfx"), "--password", "test"],
    ));
    assert!(
        out.contains(&fixture_thumb("rsa.pem").to_uppercase()),
        "{out}"
    );
    let pw = src.path().join("pw.txt");
    std::fs::write(&pw, "test\n").expect("pw");
    let out = ok(&run(
        &e2,
        &[
            "cert",
            "import",
            &f("rsa-legacy.pfx"),
            "--password-file",
            pw.to_str().unwrap_or(""),
        ],
    ));
    assert!(
        out.contains(&fixture_thumb("rsa.pem").to_uppercase()),
        "{out}"
    );
    let out = ok(&run(
        &e2,
        &["cert", "import", &f("ecdsa-aes.pfx"), "--password", "test"],
    ));
    assert!(
        out.contains(&fixture_thumb("ecdsa.pem").to_uppercase()),
        "{out}"
    );
    let out = ok(&run(
        &e2,
        &[
            "cert",
            "import",
            &f("seed-style.pfx"),
            "--password",
            "secret",
        ],
    ));
    assert!(
        out.contains(&fixture_thumb("rsa.pem").to_uppercase()),
        "{out}"
    );
    // The chain came along: the stored PEM has leaf + intermediate.
    let stored =
        std::fs::read_to_string(certs(&e2).join(format!("{}.pem", fixture_thumb("rsa.pem"))))
            .expect("stored pem");
    assert_eq!(stored.matches("BEGIN CERTIFICATE").count(), 2);
    #[cfg(unix)]
    assert_eq!(
        mode(&certs(&e2).join(format!("{}.key", fixture_thumb("rsa.pem")))),
        0o600
    );

    // Wrong password: names the file, says what to do.
    let err = failed(&run(
        &e2,
        &["cert", "import", &f("rsa-aes.pfx"), "--password", "nope"],
    ));
    assert!(err.contains("rsa-aes.pfx: wrong password"), "{err}");
    // No private key: refused.
    let err = failed(&run(
        &e2,
        &["cert", "import", &f("nokey.pfx"), "--password", "test"],
    ));
    assert!(
        err.contains("nokey.pfx: the file contains no private key"),
        "{err}"
    );
    // Key and certificate that do not belong together.
    let err = failed(&run(&e2, &["cert", "import", &f("mismatch.pem")]));
    assert!(err.contains("does not belong"), "{err}");
    // Missing file / password file.
    let err = failed(&run(&e2, &["cert", "import", "/nonexistent/x.pfx"]));
    assert!(err.contains("/nonexistent/x.pfx"), "{err}");
    let err = failed(&run(
        &e2,
        &[
            "cert",
            "import",
            &f("rsa-aes.pfx"),
            "--password-file",
            "/nonexistent/pw",
        ],
    ));
    assert!(err.contains("--password-file /nonexistent/pw"), "{err}");
    // Expired: imported, with a warning.
    let o = run(&e2, &["cert", "import", &f("expired.pem")]);
    ok(&o);
    assert!(
        stderr(&o).contains("WARNING: The certificate expired on"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn binding_without_private_key_is_refused_with_1312() {
    let e = env();
    std::fs::create_dir_all(certs(&e)).expect("certs");
    std::fs::copy(
        cert_fixtures().join("nokey.pfx"),
        certs(&e).join("nokey.pfx"),
    )
    .expect("copy");
    std::fs::write(certs(&e).join("nokey.pfx.password"), "test").expect("pw");
    let hash = format!("certhash={}", fixture_thumb("rsa.pem"));
    let o = run(
        &e,
        &["http", "add", "sslcert", "ipport=0.0.0.0:443", &hash, APPID],
    );
    let out = stdout(&o);
    assert!(!o.status.success());
    assert!(
        out.contains("SSL Certificate add failed, Error: 1312"),
        "{out}"
    );
    assert!(out.contains("has no private key"), "{out}");
    // The list shows it without a key.
    let v = ok(&run(&e, &["cert", "list", "-v"]));
    assert!(v.contains("HasPrivateKey : False"), "{v}");
}

#[test]
fn add_sslcert_prints_warnings_for_an_expired_certificate() {
    let e = env();
    ok(&run(
        &e,
        &[
            "cert",
            "import",
            cert_fixtures().join("expired.pem").to_str().unwrap_or(""),
        ],
    ));
    let hash = format!("certhash={}", fixture_thumb("expired.pem"));
    let out = ok(&run(
        &e,
        &[
            "http",
            "add",
            "sslcert",
            "hostnameport=www.example.test:443",
            &hash,
            APPID,
        ],
    ));
    assert!(
        out.starts_with("\nSSL Certificate successfully added\n\nportshare: warning: The certificate expired on 2021-01-01"),
        "{out}"
    );
    assert!(
        out.contains("portshare: warning: The certificate does not cover www.example.test"),
        "{out}"
    );
    assert!(out.ends_with(".\n\n"), "{out:?}");
    // A good certificate for its name: no warnings.
    ok(&run(
        &e,
        &[
            "cert",
            "import",
            cert_fixtures()
                .join("rsa-combined.pem")
                .to_str()
                .unwrap_or(""),
        ],
    ));
    let hash = format!("certhash={}", fixture_thumb("rsa.pem"));
    let out = ok(&run(
        &e,
        &[
            "http",
            "add",
            "sslcert",
            "hostnameport=site.test:443",
            &hash,
            APPID,
        ],
    ));
    assert_eq!(out, "\nSSL Certificate successfully added\n\n");
    // clientAuth-only and SHA-1 certificates.
    ok(&run(
        &e,
        &[
            "cert",
            "import",
            cert_fixtures()
                .join("clientauth.pem")
                .to_str()
                .unwrap_or(""),
        ],
    ));
    let hash = format!("certhash={}", fixture_thumb("clientauth.pem"));
    let out = ok(&run(
        &e,
        &["http", "add", "sslcert", "ipport=0.0.0.0:443", &hash, APPID],
    ));
    assert!(out.contains("Server Authentication"), "{out}");
    ok(&run(
        &e,
        &[
            "cert",
            "import",
            cert_fixtures().join("sha1.pem").to_str().unwrap_or(""),
        ],
    ));
    let hash = format!("certhash={}", fixture_thumb("sha1.pem"));
    let out = ok(&run(
        &e,
        &[
            "http",
            "update",
            "sslcert",
            "ipport=0.0.0.0:443",
            &hash,
            APPID,
        ],
    ));
    assert!(out.contains("SHA-1"), "{out}");
}

#[test]
fn delete_is_refused_while_bound_unless_forced() {
    let e = env();
    ok(&run(
        &e,
        &[
            "cert",
            "import",
            cert_fixtures()
                .join("rsa-combined.pem")
                .to_str()
                .unwrap_or(""),
        ],
    ));
    let t = fixture_thumb("rsa.pem");
    let hash = format!("certhash={t}");
    ok(&run(
        &e,
        &[
            "http",
            "add",
            "sslcert",
            "ipport=0.0.0.0:8443",
            &hash,
            APPID,
        ],
    ));
    let err = failed(&run(&e, &["cert", "delete", &t.to_uppercase()]));
    assert!(err.contains("ipport=0.0.0.0:8443"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert!(certs(&e).join(format!("{t}.pem")).is_file());

    let o = run(&e, &["cert", "delete", &t, "--force"]);
    let out = ok(&o);
    assert!(
        out.starts_with(&format!("Deleted certificate {}", t.to_uppercase())),
        "{out}"
    );
    assert!(
        stderr(&o).contains("WARNING: the SSL binding(s) ipport=0.0.0.0:8443"),
        "{}",
        stderr(&o)
    );
    assert!(!certs(&e).join(format!("{t}.pem")).exists());
    assert!(!certs(&e).join(format!("{t}.key")).exists());
    assert_eq!(ok(&run(&e, &["cert", "list"])), "");

    // Unknown and malformed thumbprints.
    let err = failed(&run(&e, &["cert", "delete", &t]));
    assert!(err.contains("no certificate with thumbprint"), "{err}");
    let err = failed(&run(&e, &["cert", "delete", "xyz"]));
    assert!(
        err.contains("'xyz' is not a certificate thumbprint"),
        "{err}"
    );
}

#[test]
fn export_round_trips() {
    let e = env();
    let out_dir = tempfile::tempdir().expect("tmp");
    let o = |n: &str| out_dir.path().join(n).to_string_lossy().into_owned();
    ok(&run(
        &e,
        &[
            "cert",
            "import",
            cert_fixtures().join("rsa-aes.pfx").to_str().unwrap_or(""),
            "--password",
            "test",
        ],
    ));
    let t = fixture_thumb("rsa.pem");

    // PFX with a password → import into another store → same certificate.
    let out = ok(&run(
        &e,
        &[
            "cert",
            "export",
            &t,
            "--out",
            &o("x.pfx"),
            "--password",
            "pw",
        ],
    ));
    assert!(out.contains("x.pfx"), "{out}");
    #[cfg(unix)]
    assert_eq!(mode(&out_dir.path().join("x.pfx")), 0o600);
    let e2 = env();
    let err = failed(&run(
        &e2,
        &["cert", "import", &o("x.pfx"), "--password", "wrong"],
    ));
    assert!(err.contains("wrong password"), "{err}");
    let back = ok(&run(
        &e2,
        &["cert", "import", &o("x.pfx"), "--password", "pw"],
    ));
    assert_eq!(back, table(&t.to_uppercase(), "CN=site.test"));
    let stored = std::fs::read_to_string(certs(&e2).join(format!("{t}.pem"))).expect("pem");
    assert_eq!(stored.matches("BEGIN CERTIFICATE").count(), 2, "chain kept");

    // PEM: the chain only, world-readable; with --include-key the key too, 0600.
    ok(&run(&e, &["cert", "export", &t, "--out", &o("x.pem")]));
    let pem = std::fs::read_to_string(o("x.pem")).expect("pem");
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(!pem.contains("PRIVATE KEY"));
    ok(&run(
        &e,
        &["cert", "export", &t, "--out", &o("k.pem"), "--include-key"],
    ));
    let pem = std::fs::read_to_string(o("k.pem")).expect("pem");
    assert!(pem.contains("BEGIN PRIVATE KEY"));
    #[cfg(unix)]
    assert_eq!(mode(&out_dir.path().join("k.pem")), 0o600);
    let e3 = env();
    let back = ok(&run(&e3, &["cert", "import", &o("k.pem")]));
    assert!(back.contains(&t.to_uppercase()));

    // DER: the leaf, whose SHA-1 is the thumbprint.
    ok(&run(&e, &["cert", "export", &t, "--out", &o("x.cer")]));
    let der = std::fs::read(o("x.cer")).expect("der");
    assert_eq!(hex::encode(Sha1::digest(&der)), t);

    // Failures name the argument.
    let err = failed(&run(&e, &["cert", "export", &t, "--out", &o("x.txt")]));
    assert!(err.contains("--out") && err.contains("x.txt"), "{err}");
    let err = failed(&run(
        &e,
        &[
            "cert",
            "export",
            &t,
            "--out",
            &o("y.pem"),
            "--password",
            "x",
        ],
    ));
    assert!(err.contains("--password applies to .pfx"), "{err}");
    let err = failed(&run(
        &e,
        &["cert", "export", &"0".repeat(40), "--out", &o("z.pem")],
    ));
    assert!(err.contains("no certificate with thumbprint"), "{err}");
    let err = failed(&run(
        &e,
        &["cert", "export", &t, "--out", "/nonexistent/dir/a.pem"],
    ));
    assert!(err.contains("/nonexistent/dir/a.pem"), "{err}");
}

/// Invoked as `netsh` (a symlink, as in a container), the binary takes netsh's
/// command line.
#[cfg(unix)]
#[test]
fn runs_under_the_name_netsh() {
    let e = env();
    let bin = tempfile::tempdir().expect("tmp");
    for name in ["netsh", "NETSH.exe"] {
        let link = bin.path().join(name);
        std::os::unix::fs::symlink(BIN, &link).expect("symlink");
        let o = Command::new(&link)
            .args(["http", "show", "sslcert"])
            .env("PORTSHARE_CONFIG", &e.config)
            .output()
            .expect("run netsh");
        assert_eq!(
            ok(&o),
            "\nSSL Certificate bindings:\n-------------------------\n\n"
        );
    }
    let netsh = bin.path().join("netsh");
    let o = Command::new(&netsh)
        .args([
            "http",
            "add",
            "sslcert",
            "ipport=0.0.0.0:443",
            "certhash=00",
            APPID,
        ])
        .env("PORTSHARE_CONFIG", &e.config)
        .output()
        .expect("run netsh");
    assert!(
        stdout(&o).contains("SSL Certificate add failed, Error: 87"),
        "{}",
        stdout(&o)
    );
}

/// The appids portshare treats as its own (bindings that give way to the user's)
/// are the first run's and ACME's, defined once in the store module.
#[test]
fn automatic_appids_are_first_runs_and_acmes() {
    use portshare::store::AUTOMATIC_APPIDS;
    assert!(AUTOMATIC_APPIDS.contains(&portshare::tls::PORTSHARE_APPID));
    assert!(AUTOMATIC_APPIDS.contains(&portshare::acme::ACME_APPID));
    assert!(AUTOMATIC_APPIDS.contains(&portshare::tls::devcerts::DEVCERT_APPID));
    assert_eq!(AUTOMATIC_APPIDS.len(), 3);
}
