//! The control socket with real processes: `portshare run`, `portshare
//! register`, `http show servicestate`, and the socket itself.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use common::{cli, queue_pids, run_cli, wait_for, wait_output, TestServer, BIN};

const WAIT: Duration = Duration::from_secs(20);

fn site_server() -> TestServer {
    TestServer::start_with("", |public| {
        std::fs::create_dir_all(public.join("api")).expect("api dir");
        std::fs::write(public.join("api/x.txt"), "site").expect("x.txt");
    })
}

fn socket(server: &TestServer) -> PathBuf {
    server.dir.path().join("portshare.sock")
}

/// `portshare --config <config> ARGS…`, output captured.
fn spawn(server: &TestServer, args: &[&str]) -> Child {
    cli(&server.config, args).spawn().expect("start portshare")
}

fn servicestate(server: &TestServer) -> String {
    let out = run_cli(&server.config, &["http", "show", "servicestate"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "servicestate failed: {text}");
    text
}

fn wait_registered(server: &TestServer, url: &str) -> String {
    wait_for(WAIT, &format!("{url} in servicestate"), || {
        let s = servicestate(server);
        s.contains(url).then_some(s)
    })
}

fn wait_unregistered(server: &TestServer, url: &str) {
    wait_for(WAIT, &format!("{url} to leave servicestate"), || {
        (!servicestate(server).contains(url)).then_some(())
    })
}

fn kill_term(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn run_registers_for_the_childs_lifetime() {
    let server = site_server();
    let port = server.port;
    assert_eq!(server.get("/api/x.txt").text(), "site");

    // The child: another portshare serving its own folder on $PORT.
    let child_dir = server.dir.path().join("child");
    std::fs::create_dir_all(child_dir.join("public/api")).expect("child dir");
    std::fs::write(child_dir.join("public/api/x.txt"), "child").expect("child file");
    let child_ini = child_dir.join("child.ini");
    std::fs::write(
        &child_ini,
        "[param]\nlisten=127.0.0.1\nhttps_port=0\nlog_dir=\ncontrol_socket=\n",
    )
    .expect("child.ini");
    let script = format!(
        "PORTSHARE_HTTP_PORT=$PORT exec '{BIN}' --config '{}'",
        child_ini.display()
    );
    let prefix = format!("http://+:{port}/api/");
    let run = spawn(
        &server,
        &["run", "--prefix", &prefix, "--", "sh", "-c", &script],
    );
    let run_pid = run.id();

    let url = format!("HTTP://+:{port}/API/");
    wait_registered(&server, &url);
    // `run` registers first, then starts CMD and attaches its PID.
    let (state, child_pid) = wait_for(WAIT, "the child's PID on the queue", || {
        let state = servicestate(&server);
        let pids = queue_pids(&state, &url);
        let child = pids.iter().copied().find(|&p| p != run_pid)?;
        Some((state, child))
    });
    assert!(
        queue_pids(&state, &url).contains(&run_pid),
        "{run_pid} missing: {state}"
    );

    // The prefix now belongs to the app: the child's answer (an error page
    // from the proxy only while the child is still starting).
    wait_for(WAIT, "/api/x.txt to reach the application", || {
        let r = server.get("/api/x.txt");
        (r.status == 200 && r.text() == "child").then_some(())
    });
    // The rest of the site is untouched.
    std::fs::write(server.public().join("index.txt"), "root").expect("index");
    assert_eq!(server.get("/index.txt").text(), "root");

    // The child ends → `run` ends with its exit code → the prefix is free.
    kill_term(child_pid);
    let out = wait_output(run, WAIT);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(WAIT, "/api/x.txt to be the site's again", || {
        let r = server.get("/api/x.txt");
        (r.status == 200 && r.text() == "site").then_some(())
    });
    wait_unregistered(&server, &url);
}

#[test]
fn run_passes_the_exit_code_on_and_sets_port() {
    let server = site_server();
    let prefix = format!("http://+:{}/job/", server.port);
    let marker = server.dir.path().join("port.txt");
    let script = format!("echo $PORT > '{}'; exit 7", marker.display());
    let run = spawn(
        &server,
        &["run", "--prefix", &prefix, "--", "sh", "-c", &script],
    );
    let out = wait_output(run, WAIT);
    assert_eq!(out.status.code(), Some(7));
    let port: u16 = std::fs::read_to_string(&marker)
        .expect("marker")
        .trim()
        .parse()
        .expect("PORT is a number");
    assert!(port > 0);
    wait_unregistered(&server, &format!("HTTP://+:{}/JOB/", server.port));

    // A command that cannot start: 127, nothing left registered.
    let run = spawn(
        &server,
        &["run", "--prefix", &prefix, "--", "/nonexistent/program"],
    );
    let out = wait_output(run, WAIT);
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot start '/nonexistent/program'"));
    wait_unregistered(&server, &format!("HTTP://+:{}/JOB/", server.port));
}

#[test]
fn duplicate_registration_is_error_183() {
    let server = site_server();
    let port = server.port;
    let prefix = format!("http://+:{port}/api/");
    let holder = spawn(
        &server,
        &["register", &prefix, "--backend", "http://127.0.0.1:9"],
    );
    let url = format!("HTTP://+:{port}/API/");
    let state = wait_registered(&server, &url);

    // servicestate shows the holder's PID under its queue.
    assert_eq!(queue_pids(&state, &url), vec![holder.id()]);
    assert!(state.contains("Request queue name: Request queue is unnamed."));
    // The built-in site is listed too, owned by the server.
    assert!(state.contains(&format!("                HTTP://+:{port}/\n")));

    for (dup, what) in [
        (prefix.clone(), "same prefix"),
        (format!("http://+:{port}/API/"), "other case"),
        (format!("http://+:{port}/"), "the site's prefix"),
    ] {
        let out = run_cli(
            &server.config,
            &["register", &dup, "--backend", "http://127.0.0.1:9"],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(
                "Error: 183\nCannot create a file when that file already exists.\nportshare: "
            ),
            "{what}: {err}"
        );
        assert_eq!(out.status.code(), Some(183), "{what}");
    }
    // `run` with a taken prefix fails the same way, before starting CMD.
    let marker = server.dir.path().join("started");
    let script = format!("touch '{}'", marker.display());
    let out = run_cli(
        &server.config,
        &["run", "--prefix", &prefix, "--", "sh", "-c", &script],
    );
    assert_eq!(out.status.code(), Some(183));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Error: 183"));
    assert!(
        !marker.exists(),
        "CMD must not start when registering fails"
    );

    // Another category on the same port is not a conflict.
    let weak = format!("http://*:{port}/api/");
    let other = spawn(
        &server,
        &["register", &weak, "--backend", "http://127.0.0.1:9"],
    );
    wait_registered(&server, &format!("HTTP://*:{port}/API/"));

    // SIGTERM (like Ctrl-C) ends `register` cleanly; the prefix is free.
    kill_term(holder.id());
    let out = wait_output(holder, WAIT);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Registered http://+:"));
    wait_unregistered(&server, &url);
    kill_term(other.id());
    assert!(wait_output(other, WAIT).status.success());
}

#[test]
fn invalid_requests_are_error_87() {
    let server = site_server();
    let port = server.port;
    for (args, what) in [
        (
            vec![
                "register".to_owned(),
                format!("http://+:{port}/api"),
                "--backend".into(),
                "http://127.0.0.1:9".into(),
            ],
            "no trailing slash",
        ),
        (
            vec![
                "register".to_owned(),
                format!("http://+:{port}/api/"),
                "--backend".into(),
                "ftp://x".into(),
            ],
            "bad backend",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_cli(&server.config, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Error: 87\nThe parameter is incorrect.\n"),
            "{what}: {err}"
        );
        assert_eq!(out.status.code(), Some(87), "{what}");
    }
}

#[test]
fn without_a_server_the_commands_say_so() {
    let server = TestServer::prepare("", |_| {});
    let out = run_cli(
        &server.config,
        &[
            "register",
            "http://+:8080/x/",
            "--backend",
            "http://127.0.0.1:9",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no portshare server is running"), "{err}");
    assert!(
        err.contains(&socket(&server).display().to_string()),
        "{err}"
    );

    let out = run_cli(&server.config, &["http", "show", "servicestate"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("Error: 1062\nThe service has not been started.\n"),
        "{text}"
    );
    assert!(text.contains("no portshare server is running"), "{text}");

    // Parameter errors are still reported as such.
    let out = run_cli(
        &server.config,
        &["http", "show", "servicestate", "view=queues"],
    );
    assert_eq!(out.status.code(), Some(87));

    // A disabled control socket is explained, too.
    let disabled = TestServer::prepare("control_socket=", |_| {});
    let out = run_cli(
        &disabled.config,
        &["run", "--prefix", "http://+:8080/x/", "--", "true"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("control socket is disabled"));
}

#[test]
fn socket_is_private_and_cleaned_up() {
    // A stale socket from a crashed server is replaced.
    let prepared = TestServer::prepare("", |_| {});
    let path = prepared.dir.path().join("portshare.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
    assert!(path.exists());
    let mut server = prepared.launch(&[]);

    let meta = std::fs::metadata(&path).expect("socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // A second server on the same configuration refuses to start.
    let second = spawn(&server, &[]);
    let out = wait_output(second, WAIT);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another portshare server is running"), "{err}");
    assert!(path.exists(), "the running server's socket must stay");

    let out = server.terminate();
    assert!(out.status.success());
    assert!(!path.exists(), "socket file left behind");
}

#[test]
fn registration_lives_as_long_as_the_connection() {
    let server = site_server();
    let port = server.port;
    let mut conn = UnixStream::connect(socket(&server)).expect("connect");
    conn.set_read_timeout(Some(WAIT)).ok();
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut ask = |line: &str| -> serde_json::Value {
        conn.write_all(line.as_bytes()).expect("send");
        conn.write_all(b"\n").expect("send");
        let mut answer = String::new();
        reader.read_line(&mut answer).expect("answer");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{answer:?}: {e}"))
    };

    let v = ask("this is not json");
    assert_eq!(v["error"]["code"], 87);
    // No daily_maintenance configured: the hook answers with an error.
    let v = ask(r#"{"maintenance_run": {}}"#);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("daily_maintenance is not set")),
        "{v}"
    );
    let v = ask(&format!(
        r#"{{"register": {{"prefixes": ["http://+:{port}/a/", "http://+:{port}/b/"], "backend": "http://127.0.0.1:9", "pid": 4242}}}}"#
    ));
    let id = v["ok"]["id"].as_u64().unwrap_or_else(|| panic!("{v}"));
    let v = ask(&format!(r#"{{"attach": {{"id": {id}, "pid": 4343}}}}"#));
    assert!(v.get("ok").is_some(), "{v}");
    let v = ask(r#"{"attach": {"id": 999999, "pid": 1}}"#);
    assert_eq!(v["error"]["code"], 2);
    // All or nothing: one taken prefix refuses the whole request.
    let v = ask(&format!(
        r#"{{"register": {{"prefixes": ["http://+:{port}/c/", "http://+:{port}/a/"], "backend": "http://127.0.0.1:9"}}}}"#
    ));
    assert_eq!(v["error"]["code"], 183, "{v}");

    let state = wait_registered(&server, &format!("HTTP://+:{port}/B/"));
    assert!(!state.contains(&format!("HTTP://+:{port}/C/")));
    let pids = queue_pids(&state, &format!("HTTP://+:{port}/A/"));
    assert!(pids.contains(&4242) && pids.contains(&4343), "{pids:?}");
    assert_eq!(server.get("/a/x").status, 503);

    // Closing the connection frees both prefixes.
    drop(conn);
    drop(reader);
    wait_unregistered(&server, &format!("HTTP://+:{port}/A/"));
    assert!(!servicestate(&server).contains(&format!("HTTP://+:{port}/B/")));
    wait_for(WAIT, "/a/x to be the site's 404", || {
        (server.get("/a/x").status == 404).then_some(())
    });
}

#[test]
fn listener_follows_registrations_on_a_new_port() {
    let server = site_server();
    let other = common::free_port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], other).into();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "nothing on the new port yet"
    );
    // A backend of its own (the server itself is refused as a backend: a
    // request could loop through it).
    let backend_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("backend");
    let backend = format!("http://{}", backend_listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in backend_listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nsite",
            );
        }
    });
    let prefix = format!("http://+:{other}/api/");
    let mut holder = spawn(&server, &["register", &prefix, "--backend", &backend]);
    wait_registered(&server, &prefix.to_uppercase());
    let answer = wait_for(WAIT, "the new port to answer", || {
        std::net::TcpStream::connect(addr).ok()?;
        let r = common::RawResponse::parse(&common::raw_exchange(
            addr,
            b"GET /api/x.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        ));
        (r.status == 200).then_some(r)
    });
    assert_eq!(answer.text(), "site");
    // The last prefix on the port goes: the listener closes.
    kill_term(holder.id());
    let _ = holder.wait();
    wait_unregistered(&server, &prefix.to_uppercase());
    wait_for(WAIT, "the port to close", || {
        std::net::TcpStream::connect(addr).is_err().then_some(())
    });
    // The server's own port is unaffected.
    assert_eq!(server.get("/api/x.txt").text(), "site");
}
