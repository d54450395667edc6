//! GLOBAL.INI: lookup, defaults, environment overrides, and clear refusals.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, wait_output, TestServer, BIN};
use portshare::config::{CgiRunner, Settings};

/// Runs `portshare --config FILE` and expects it to refuse to start.
fn refused(ini: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("public")).unwrap();
    let file = dir.path().join("GLOBAL.INI");
    std::fs::write(&file, ini).unwrap();
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_output(child, Duration::from_secs(20));
    assert!(!out.status.success(), "should refuse: {ini}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.to_lowercase().contains("backtrace"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one message: {err}");
    assert!(
        err.contains(&file.display().to_string()),
        "names the file: {err}"
    );
    err
}

#[test]
fn bad_port_is_refused_with_file_section_key() {
    let err = refused("[param]\nhttp_port=99999\n");
    assert!(err.contains("[param] http_port"), "{err}");
    assert!(err.contains("1-65535"), "{err}");
}

#[test]
fn bad_time_is_refused() {
    let err = refused("[param]\nmaintenance_time=25:00\n");
    assert!(err.contains("[param] maintenance_time"), "{err}");
    assert!(err.contains("hh:mm:ss"), "{err}");
    refused("[param]\nmaintenance_time=25:00:00\n");
}

#[test]
fn unknown_key_and_section_are_refused() {
    let err = refused("[param]\nhttp_prot=8080\n");
    assert!(err.contains("[param] http_prot"), "{err}");
    assert!(err.contains("allowed keys"), "{err}");
    let err = refused("[parma]\nhttp_port=8080\n");
    assert!(err.contains("[parma]"), "{err}");
}

#[test]
fn malformed_file_is_refused() {
    let err = refused("[param\nhttp_port=8080\n");
    assert!(err.contains("INI"), "{err}");
}

#[test]
fn missing_public_dir_is_refused() {
    let err = refused("[param]\npublic_dir=does-not-exist\n");
    assert!(err.contains("[param] public_dir"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn bad_daily_maintenance_is_refused() {
    let err = refused("[param]\ndaily_maintenance=maintenance.cgi\n");
    assert!(err.contains("[param] daily_maintenance"), "{err}");
}

#[test]
fn sample_global_ini_equals_built_in_defaults() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("GLOBAL.INI");
    let from_file = Settings::load_with_env(Some(&sample), &[]).unwrap();
    // Defaults resolve relative to the working directory, which for tests is
    // the manifest directory too.
    let defaults = Settings::load_with_env(None, &[]).unwrap();
    assert_eq!(from_file.host_name, vec!["+"]);
    assert_eq!(from_file.http_port, 8080);
    assert_eq!(from_file.https_port, 8443);
    assert_eq!(from_file.http_port, defaults.http_port);
    assert_eq!(from_file.https_port, defaults.https_port);
    assert_eq!(from_file.limits, defaults.limits);
    assert_eq!(from_file.maintenance_time, defaults.maintenance_time);
    assert_eq!(
        from_file.public_dir.canonicalize().unwrap(),
        defaults.public_dir.canonicalize().unwrap()
    );
    assert_eq!(from_file.shutdown_grace, Duration::from_secs(10));
    // The sample enables the bundled maintenance script, at the default time.
    assert_eq!(
        from_file.daily_maintenance.as_deref(),
        Some("/maintenance.cgi")
    );
    assert_eq!(defaults.daily_maintenance, None);
    assert_eq!(from_file.cgi.runners.get("cgi"), Some(&CgiRunner::Direct));
}

#[test]
fn environment_overrides_every_section() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("public")).unwrap();
    let file = dir.path().join("GLOBAL.INI");
    std::fs::write(
        &file,
        "[param]\r\nhttp_port=8080 ; inline comment\r\nhost_name=www.site.test, api.site.test\r\n\r\n[http]\r\nMaxFieldLength=1000\r\n\r\n[cgi]\r\n.py = python3\r\n.cgi = direct\r\n",
    )
    .unwrap();
    let env = vec![
        ("PORTSHARE_HTTP_PORT".to_owned(), "9000".to_owned()),
        (
            "PORTSHARE_HTTP__HEADERWAITTIMEOUT".to_owned(),
            "7".to_owned(),
        ),
    ];
    let s = Settings::load_with_env(Some(&file), &env).unwrap();
    assert_eq!(s.http_port, 9000);
    assert_eq!(s.host_name, vec!["www.site.test", "api.site.test"]);
    assert_eq!(s.limits.max_field_length, 1000);
    assert_eq!(s.limits.header_wait_timeout, Duration::from_secs(7));
    assert_eq!(
        s.cgi.runners.get("py"),
        Some(&CgiRunner::Interpreter("python3".into()))
    );
    assert_eq!(s.cgi.runners.get("cgi"), Some(&CgiRunner::Direct));
    assert_eq!(s.public_dir, dir.path().join("public"));

    let bad = vec![("PORTSHARE_HTTP_PROT".to_owned(), "1".to_owned())];
    let err = Settings::load_with_env(Some(&file), &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("PORTSHARE_HTTP_PROT"), "{err}");
}

#[test]
fn utf16_config_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("public")).unwrap();
    let file = dir.path().join("GLOBAL.INI");
    let mut bytes = vec![0xFF, 0xFE];
    for u in "[param]\r\nhttp_port=8181\r\n".encode_utf16() {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    std::fs::write(&file, bytes).unwrap();
    let s = Settings::load_with_env(Some(&file), &[]).unwrap();
    assert_eq!(s.http_port, 8181);
}

#[test]
fn backslashes_in_paths_are_literal() {
    // Windows paths: `\t` is not a tab, a trailing `\` does not continue the line.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("site\\top")).unwrap();
    let file = dir.path().join("GLOBAL.INI");
    std::fs::write(
        &file,
        "[param]\r\npublic_dir=site\\top\r\ncert_dir=keys\\\r\nlog_dir=logs\\new\r\n",
    )
    .unwrap();
    let s = Settings::load_with_env(Some(&file), &[]).unwrap();
    assert!(
        s.public_dir.ends_with("site\\top"),
        "{}",
        s.public_dir.display()
    );
    assert!(
        s.cert_dir.to_string_lossy().ends_with("keys\\"),
        "{}",
        s.cert_dir.display()
    );
    let logs = s.log_dir.unwrap();
    assert!(
        logs.to_string_lossy().ends_with("logs\\new"),
        "{}",
        logs.display()
    );
}

#[test]
fn server_port_comes_from_environment() {
    let port = free_port();
    let server = TestServer::prepare("", |p| std::fs::write(p.join("a.txt"), "env").unwrap());
    let port_s = port.to_string();
    let mut server = server;
    server.port = port;
    let server = server.launch(&[("PORTSHARE_HTTP_PORT", &port_s)]);
    let res = server.get("/a.txt");
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "env");
}

#[test]
fn config_found_through_portshare_config_variable() {
    let server = TestServer::prepare("", |p| std::fs::write(p.join("a.txt"), "var").unwrap());
    let cwd = tempfile::tempdir().unwrap();
    let child = Command::new(BIN)
        .current_dir(cwd.path())
        .env("PORTSHARE_CONFIG", &server.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = server;
    server.child = Some(child);
    let res = common::wait_for(
        Duration::from_secs(20),
        "server via PORTSHARE_CONFIG",
        || {
            std::net::TcpStream::connect(server.addr())
                .ok()
                .map(|_| server.get("/a.txt"))
        },
    );
    assert_eq!(res.text(), "var");
}

#[test]
fn acme_section_is_optional_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("public")).unwrap();
    let file = dir.path().join("GLOBAL.INI");
    // No section: no ACME. An empty section: ACME with the defaults.
    std::fs::write(&file, "[param]\nhttp_port=8080\n").unwrap();
    assert!(Settings::load_with_env(Some(&file), &[])
        .unwrap()
        .acme
        .is_none());
    std::fs::write(&file, "[param]\nhttp_port=8080\n[acme]\n").unwrap();
    let acme = Settings::load_with_env(Some(&file), &[])
        .unwrap()
        .acme
        .unwrap();
    assert_eq!(acme.directory, portshare::config::LETS_ENCRYPT_DIRECTORY);
    assert!(acme.challenge.http01 && acme.challenge.tls_alpn01);
    assert_eq!((acme.email, acme.names, acme.ca_root), (None, None, None));
    std::fs::write(
        &file,
        "[acme]\nemail=admin@site.org\ndirectory=https://acme.internal/dir\nca_root=root.pem\nnames=Site.Internal, bücher.example.org\nchallenge=http-01\n",
    )
    .unwrap();
    let acme = Settings::load_with_env(Some(&file), &[])
        .unwrap()
        .acme
        .unwrap();
    assert_eq!(acme.email.as_deref(), Some("admin@site.org"));
    assert_eq!(acme.ca_root, Some(dir.path().join("root.pem")));
    assert_eq!(
        acme.names,
        Some(vec![
            "site.internal".into(),
            "xn--bcher-kva.example.org".into()
        ])
    );
    assert!(acme.challenge.http01 && !acme.challenge.tls_alpn01);
    // From the environment too.
    let env = vec![(
        "PORTSHARE_ACME__NAMES".to_owned(),
        "www.site.org".to_owned(),
    )];
    let acme = Settings::load_with_env(None, &env).unwrap().acme.unwrap();
    assert_eq!(acme.names, Some(vec!["www.site.org".into()]));

    for (ini, key, says) in [
        ("[acme]\nemail=admin\n", "email", "e-mail"),
        (
            "[acme]\ndirectory=http://acme.site.org/dir\n",
            "directory",
            "https://",
        ),
        ("[acme]\nnames=*.site.org\n", "names", "wildcard"),
        ("[acme]\nnames=10.0.0.1\n", "names", "IP address"),
        ("[acme]\nnames=bad_name.org\n", "names", "host name"),
        ("[acme]\nchallenge=dns-01\n", "challenge", "http-01"),
        ("[acme]\nemial=a@b.org\n", "emial", "allowed keys"),
    ] {
        let err = refused(ini);
        assert!(err.contains(&format!("[acme] {key}")), "{err}");
        assert!(err.contains(says), "{err}");
    }
}
