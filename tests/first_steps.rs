//! Issue 22: what a new user meets first — where commands find their
//! configuration (from any folder, through a `netsh` link, the system
//! location), the hints and help texts, log output without colour codes, a
//! prompt exit on SIGTERM, the README's `portshare run` example, and the
//! messages for a control socket or certificate folder this user may not use.
//!
//! The system location is never `/etc` here: `PORTSHARE_SYSTEM_CONFIG_DIR`
//! points it at a temp folder. Tests that need a second user run the
//! program as `nobody` (uid 65534, which exists on every Linux system; no
//! account is created) and are skipped when not running as root.
//!
//! Unix only: the tests stop processes with `kill`, run `sh` and link with
//! symlinks.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{wait_for, wait_output, TestServer, BIN};

const WAIT: Duration = Duration::from_secs(10);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `portshare ARGS` run in `cwd`, with the system location at `system` and
/// none of the test environment's own configuration variables.
fn portshare(cwd: &Path, system: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("PORTSHARE_CONFIG")
        .env_remove("RUST_LOG")
        .env("PORTSHARE_SYSTEM_CONFIG_DIR", system)
        .stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("run portshare")
}

/// A new folder `name` in `dir`.
fn folder(dir: &Path, name: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).expect("create folder");
    d
}

fn kill_term(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| text(&o.stdout).trim() == "0")
}

#[test]
fn system_location_is_found_from_any_folder_and_needs_no_public_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let system = folder(dir.path(), "etc");
    // No public/ beside it: commands that use the store must not need it.
    std::fs::write(system.join("GLOBAL.INI"), "[param]\ncert_dir=store\n").expect("ini");
    let elsewhere = folder(dir.path(), "elsewhere");

    let out = run(portshare(
        &elsewhere,
        &system,
        &[
            "http",
            "add",
            "timeout",
            "timeouttype=idleconnectiontimeout",
            "value=77",
        ],
    ));
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        system.join("store/sslcert.json").is_file(),
        "the store beside the system GLOBAL.INI was not written"
    );
    assert!(!elsewhere.join("certs").exists(), "a second store was made");
    assert!(
        !text(&out.stderr).contains("built-in defaults"),
        "{}",
        text(&out.stderr)
    );

    let out = run(portshare(&elsewhere, &system, &["http", "show", "timeout"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("77"), "{}", text(&out.stdout));
    let out = run(portshare(&elsewhere, &system, &["cert", "list"]));
    assert!(out.status.success(), "{}", text(&out.stderr));

    // ./GLOBAL.INI comes before the system location.
    let local = folder(dir.path(), "local");
    std::fs::write(local.join("GLOBAL.INI"), "[param]\ncert_dir=mine\n").expect("ini");
    let out = run(portshare(
        &local,
        &system,
        &[
            "http",
            "add",
            "timeout",
            "timeouttype=headerwaittimeout",
            "value=30",
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(local.join("mine/sslcert.json").is_file());
}

#[test]
fn serving_still_needs_the_public_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let system = folder(dir.path(), "etc");
    std::fs::write(system.join("GLOBAL.INI"), "[param]\nhttp_port=0\n").expect("ini");
    let out = run(portshare(dir.path(), &system, &["serve"]));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("public_dir"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn writing_on_built_in_defaults_says_which_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = folder(dir.path(), "no-system-file");
    let cwd = folder(dir.path(), "work");
    let out = run(portshare(
        &cwd,
        &empty,
        &[
            "http",
            "add",
            "timeout",
            "timeouttype=idleconnectiontimeout",
            "value=60",
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("built-in defaults"), "{err}");
    assert!(
        err.contains(&cwd.join("certs").display().to_string()),
        "{err}"
    );
    assert!(err.contains("--config"), "{err}");
    // Reading says nothing.
    let out = run(portshare(&cwd, &empty, &["http", "show", "timeout"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn global_ini_beside_a_netsh_link_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = folder(dir.path(), "bin");
    std::os::unix::fs::symlink(BIN, bin.join("netsh")).expect("symlink");
    std::fs::write(bin.join("GLOBAL.INI"), "[param]\ncert_dir=linkstore\n").expect("ini");
    let system = folder(dir.path(), "etc");
    let elsewhere = folder(dir.path(), "elsewhere");
    let add = [
        "http",
        "add",
        "timeout",
        "timeouttype=idleconnectiontimeout",
        "value=61",
    ];

    // By its path…
    let mut cmd = Command::new(bin.join("netsh"));
    cmd.args(add)
        .current_dir(&elsewhere)
        .env_remove("PORTSHARE_CONFIG")
        .env("PORTSHARE_SYSTEM_CONFIG_DIR", &system);
    let out = run(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(bin.join("linkstore/sslcert.json").is_file());

    // …and by its name through PATH, as a script calls `netsh`.
    std::fs::remove_dir_all(bin.join("linkstore")).expect("remove store");
    let mut cmd = Command::new("netsh");
    cmd.args(["http", "show", "timeout"])
        .current_dir(&elsewhere)
        .env("PATH", &bin)
        .env_remove("PORTSHARE_CONFIG")
        .env("PORTSHARE_SYSTEM_CONFIG_DIR", &system);
    let out = run(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut cmd = Command::new("netsh");
    cmd.args(add)
        .current_dir(&elsewhere)
        .env("PATH", &bin)
        .env_remove("PORTSHARE_CONFIG")
        .env("PORTSHARE_SYSTEM_CONFIG_DIR", &system);
    let out = run(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(bin.join("linkstore/sslcert.json").is_file());
    assert!(!elsewhere.join("certs").exists());
}

#[test]
fn a_command_from_another_folder_reaches_the_running_server() {
    let server = TestServer::start("");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    // The server's folder as the system location: no --config anywhere.
    let out = run(portshare(
        elsewhere.path(),
        server.dir.path(),
        &["http", "show", "servicestate"],
    ));
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let shown = text(&out.stdout);
    assert!(shown.contains(&format!(":{}/", server.port)), "{shown}");
}

#[test]
fn environment_errors_name_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let system = folder(dir.path(), "etc");
    std::fs::write(system.join("GLOBAL.INI"), "[param]\n").expect("ini");
    let mut cmd = portshare(dir.path(), &system, &["http", "show", "sslcert"]);
    cmd.env("PORTSHARE_HTTP_PORT", "eighty");
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("environment variable PORTSHARE_HTTP_PORT: 'eighty' is not a port number"),
        "{err}"
    );
    assert!(!err.contains("GLOBAL.INI"), "{err}");
}

#[test]
fn http_alone_and_help_list_the_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No configuration at all: help needs none.
    for args in [&["http"][..], &["http", "?"], &["http", "help"]] {
        let out = run(portshare(dir.path(), dir.path(), args));
        let shown = text(&out.stdout);
        assert!(out.status.success(), "{args:?}: {shown}");
        assert!(shown.contains("Commands in this context:"), "{shown}");
        assert!(
            shown.contains("http add|update|delete|show sslcert"),
            "{shown}"
        );
        assert!(!shown.contains("not found"), "{shown}");
    }
    let out = run(portshare(dir.path(), dir.path(), &["http", "show", "?"]));
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("show servicestate"));
}

#[test]
fn help_describes_cert_delete_and_export_arguments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let help = |args: &[&str]| text(&run(portshare(dir.path(), dir.path(), args)).stdout);
    let delete = help(&["cert", "delete", "--help"]);
    for line in delete.lines() {
        let l = line.trim();
        if l.starts_with("<THUMBPRINT>") || l.starts_with("--force") {
            assert!(l.split_whitespace().count() > 2, "no description: {l}");
        }
    }
    assert!(delete.contains("--force"), "{delete}");
    assert!(delete.contains("SSL bindings"), "{delete}");
    let export = help(&["cert", "export", "--help"]);
    assert!(export.contains("--out <FILE>"), "{export}");
    assert!(export.contains("extension chooses"), "{export}");
    assert!(export.contains("thumbprint"), "{export}");
}

/// Starts a prepared server with the default log filter (RUST_LOG unset)
/// and stdout to a pipe; returns the child and a receiver of its stdout lines.
fn spawn_unfiltered(s: &TestServer) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&s.config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start portshare");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes_and_no_scheduler_chatter() {
    let s = TestServer::prepare("daily_maintenance=/maintenance.cgi\nlog_dir=", |_| {});
    let (mut child, lines) = spawn_unfiltered(&s);
    let mut seen = Vec::new();
    // The schedule is set (the scheduler has its job) once this line is out.
    wait_for(WAIT, "the maintenance schedule", || {
        while let Ok(l) = lines.try_recv() {
            seen.push(l);
        }
        seen.iter()
            .any(|l| l.contains("next maintenance run"))
            .then_some(())
    });
    // A request, so an access line (log_dir= → stdout) is in the output too;
    // the CLI round trip also gives the scheduler time to log its job.
    assert_eq!(s.get("/").status, 404);
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&s.config)
        .args(["maintenance", "status"])
        .output()
        .expect("maintenance status");
    assert!(out.status.success(), "{}", text(&out.stderr));
    kill_term(child.id());
    let status = wait_for(WAIT, "the server to exit", || {
        child.try_wait().ok().flatten()
    });
    assert!(status.success());
    while let Ok(l) = lines.recv_timeout(WAIT) {
        seen.push(l);
    }
    let all = seen.join("\n");
    assert!(all.contains("listening on"), "{all}");
    assert!(all.contains("\"GET / HTTP/1.1\" 404"), "{all}");
    assert!(
        !all.contains('\u{1b}'),
        "ANSI escape codes in piped output:\n{all}"
    );
    assert!(!all.contains("Job creator created"), "{all}");
}

#[test]
fn idle_server_exits_within_a_second_of_sigterm() {
    let s = TestServer::prepare_tls("daily_maintenance=/maintenance.cgi", |_| {});
    let mut s = s.launch(&[]);
    let https: std::net::SocketAddr = ([127, 0, 0, 1], s.https_port).into();
    wait_for(WAIT, "the HTTPS listener", || {
        std::net::TcpStream::connect(https).ok().map(|_| ())
    });
    assert_eq!(s.get("/").status, 404);
    let started = Instant::now();
    let out = s.terminate();
    let took = started.elapsed();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        took < Duration::from_secs(1),
        "an idle server took {took:?} to exit after SIGTERM"
    );
}

#[test]
fn not_found_access_line_has_the_size_of_the_page_sent() {
    let mut s = TestServer::start("");
    let res = s.get("/nothing-here");
    assert_eq!(res.status, 404);
    let size = res.body.len();
    assert!(size > 0);
    let log = s.logs().join("access.log");
    let line = wait_for(WAIT, "the access line", || {
        std::fs::read_to_string(&log)
            .ok()?
            .lines()
            .find(|l| l.contains("/nothing-here"))
            .map(str::to_owned)
    });
    assert!(
        line.contains(&format!("\" 404 {size} ")),
        "expected size {size}: {line}"
    );
    s.terminate();
}

#[test]
fn first_run_hint_names_the_program_and_the_config() {
    let s = TestServer::prepare_tls("", |_| {});
    // PATH without the build folder, as after a fresh `cargo run`.
    let mut s = s.launch(&[("PATH", "/usr/bin:/bin")]);
    let out = s.terminate();
    let err = text(&out.stderr);
    let config = std::path::absolute(&s.config).expect("absolute");
    let prefix = format!("{BIN} --config {} cert export ", config.display());
    let line = err
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no export command with --config in:\n{err}"));
    assert!(err.contains("cargo install --path ."), "{err}");
    assert!(err.contains("not on PATH"), "{err}");

    // The printed command works as printed, from another folder.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let words: Vec<&str> = line.split_whitespace().collect();
    let out = Command::new(words[0])
        .args(&words[1..])
        .current_dir(elsewhere.path())
        .env_remove("PORTSHARE_CONFIG")
        .env("PORTSHARE_SYSTEM_CONFIG_DIR", elsewhere.path())
        .output()
        .expect("run the printed command");
    assert!(out.status.success(), "{line}: {}", text(&out.stderr));
    // The file named after `--out` (the development CA's certificate).
    let file = words
        .iter()
        .skip_while(|w| **w != "--out")
        .nth(1)
        .expect("--out FILE in the printed command");
    let pem = std::fs::read_to_string(elsewhere.path().join(file)).expect("pem");
    assert!(pem.contains("BEGIN CERTIFICATE"));
}

#[test]
fn readme_run_example_serves_through_its_prefix() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let find = |start: &str| {
        readme
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("README.md has no line starting with {start:?}"))
            .to_owned()
    };
    let mkdir = find("mkdir -p demo/api");
    let run_line = find("portshare run --prefix http://+:8080/api/");
    let curl = find("curl http://localhost:8080/api/");
    let path = curl
        .split_whitespace()
        .nth(1)
        .and_then(|u| u.strip_prefix("http://localhost:8080"))
        .expect("a URL in the curl line")
        .to_owned();

    let s = TestServer::start("");
    let work = tempfile::tempdir().expect("tempdir");
    let status = Command::new("sh")
        .args(["-c", &mkdir])
        .current_dir(work.path())
        .status()
        .expect("sh");
    assert!(status.success(), "{mkdir}");
    let run_line = run_line.replace(":8080", &format!(":{}", s.port)).replacen(
        "portshare ",
        &format!("exec '{BIN}' --config '{}' ", s.config.display()),
        1,
    );
    let mut app = Command::new("sh")
        .args(["-c", &run_line])
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start portshare run");
    let res = wait_for(WAIT, "the README's app to answer", || {
        if let Ok(Some(st)) = app.try_wait() {
            let mut e = String::new();
            if let Some(mut err) = app.stderr.take() {
                let _ = err.read_to_string(&mut e);
            }
            panic!("`{run_line}` exited with {st}: {e}");
        }
        let r = s.get(&path);
        (r.status == 200).then_some(r)
    });
    assert_eq!(res.text(), "Hello from Python\n");
    kill_term(app.id());
    let out = wait_output(app, WAIT);
    let _ = out;
}

#[test]
fn control_socket_refusal_says_permission_denied_and_who_may() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !is_root() {
        eprintln!("skipped: needs root to run a command as nobody");
        return;
    }
    let s = TestServer::start("");
    // Let nobody read the configuration and reach the socket's folder.
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&s.config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&s.config)
        .args(["http", "show", "servicestate"])
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run as nobody");
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(5), "{shown}");
    assert!(shown.contains("Error: 5\nAccess is denied."), "{shown}");
    assert!(
        shown.contains("permission denied on the control socket"),
        "{shown}"
    );
    assert!(shown.contains("only its owner root"), "{shown}");
    assert!(!shown.contains("Error: 31"), "{shown}");
}

/// Runs the prepared server as nobody until it listens, stops it, and
/// returns its stdout (the log).
fn serve_as_nobody(s: &TestServer) -> String {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&s.config)
        .env("RUST_LOG", "warn")
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start portshare as nobody");
    wait_for(WAIT, "the server to listen", || {
        if let Ok(Some(st)) = child.try_wait() {
            let mut e = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = err.read_to_string(&mut e);
            }
            panic!("portshare exited with {st}: {e}");
        }
        std::net::TcpStream::connect(s.addr()).ok().map(|_| ())
    });
    kill_term(child.id());
    let out = wait_output(child, WAIT);
    text(&out.stdout)
}

#[test]
fn certificate_folder_the_server_cannot_use_is_explained() {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        eprintln!("skipped: needs root to run the server as nobody");
        return;
    }
    // As in a container whose certs/ volume belongs to the host's user.
    let s = TestServer::prepare_tls("log_dir=\ncontrol_socket=", |_| {});
    let certs = folder(s.dir.path(), "certs");
    for dir in [s.dir.path(), &s.public(), &certs] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::set_permissions(&s.config, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    // The first-run certificate cannot be written.
    let log = serve_as_nobody(&s);
    let line = log
        .lines()
        .find(|l| l.contains("cannot write the file"))
        .unwrap_or_else(|| panic!("no write failure in:\n{log}"));
    assert!(line.contains(&certs.display().to_string()), "{line}");
    assert!(line.contains(".key"), "{line}");
    assert!(line.contains("portshare runs as uid 65534"), "{line}");
    assert!(
        line.contains(&format!("chown -R 65534 {}", certs.display())),
        "{line}"
    );

    // Made by root instead, its key (mode 0600) cannot be read.
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&s.config)
        .args(["cert", "new", "--dns", "localhost"])
        .output()
        .expect("cert new");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = serve_as_nobody(&s);
    let line = log
        .lines()
        .find(|l| l.contains("cannot read the file"))
        .unwrap_or_else(|| panic!("no read failure in:\n{log}"));
    assert!(line.contains(".key"), "{line}");
    assert!(line.contains("portshare runs as uid 65534"), "{line}");
    assert!(line.contains("the file belongs to uid 0"), "{line}");
    assert!(line.contains("chown -R 65534"), "{line}");
}
