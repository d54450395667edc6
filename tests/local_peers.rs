//! Control peers that are another local user — neither root nor the
//! server's own user — with real accounts: what such a peer may ask the
//! server to do on its behalf (src/control/access.rs, src/control/acl.rs,
//! the per-user limits in src/control/mod.rs).
//!
//! Tests run as root, so the server runs as root and each test creates
//! system users of its own (`useradd`, removed with `userdel` when the test
//! ends) and runs the CLI (and small `python3` helpers: a TCP listener, a
//! raw protocol client) as them with `CommandExt::uid`/`gid`.
//!
//! How the users reach the control socket: the server's folder gets the
//! set-group-ID bit and the first test user's primary group (mode 2750)
//! before the server starts. That is the server's documented shared-folder
//! setup (src/control/unix.rs): the socket is then made 0660 with that
//! group, so the group's users may connect — no socket is chmodded by the
//! test and no user is added to an existing group. A second user of a test
//! is created with the first one's group as its primary group.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{queue_pids, wait_for, wait_output, TestServer, BIN};

/// Every single wait; each test stays well under 20 s in all.
const WAIT: Duration = Duration::from_secs(10);

/// The system's Python (the one on root's PATH may live under /root, which
/// other users cannot enter).
const PYTHON: &str = "/usr/bin/python3";

/// An account-management tool from the usual system folders (the test's
/// PATH may lack the sbin folders); the bare name if none has it, so that
/// starting it fails and the test with it.
fn tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A system user that exists while the guard lives.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl TestUser {
    /// A new user with a group of its own.
    fn new() -> TestUser {
        TestUser::create(None)
    }

    /// A new user whose primary group is `other`'s group.
    fn in_group_of(other: &TestUser) -> TestUser {
        TestUser::create(Some(other))
    }

    fn create(group: Option<&TestUser>) -> TestUser {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        let name = format!("ps{:010x}", h.finish() & 0xff_ffff_ffff);
        let gid = group.map(|g| g.gid.to_string());
        // Tests running in parallel may find the password files locked for a
        // moment: try again until the deadline, fail on anything else.
        wait_for(WAIT, &format!("useradd {name}"), || {
            let mut cmd = Command::new(tool("useradd"));
            cmd.args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ]);
            if let Some(gid) = &gid {
                cmd.args(["--no-user-group", "--gid", gid]);
            }
            let out = cmd
                .arg(&name)
                .output()
                .unwrap_or_else(|e| panic!("cannot run useradd (is it installed?): {e}"));
            if out.status.success() {
                return Some(());
            }
            let err = text(&out.stderr);
            assert!(err.contains("lock"), "useradd {name} failed: {err}");
            None
        });
        // The guard first, so the account goes even if what follows fails.
        let mut user = TestUser {
            name,
            uid: u32::MAX,
            gid: u32::MAX,
        };
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, &user.name])
                .output()
                .expect("run id");
            assert!(
                out.status.success(),
                "id {flag} {}: {}",
                user.name,
                text(&out.stderr)
            );
            text(&out.stdout).trim().parse().expect("a numeric id")
        };
        let (uid, gid) = (id("-u"), id("-g"));
        (user.uid, user.gid) = (uid, gid);
        assert_ne!(user.uid, 0, "the test user must not be root");
        user
    }

    /// `cmd` runs as this user (its primary group only), from `/`.
    fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.uid(self.uid).gid(self.gid).current_dir("/")
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Its processes are gone (their guards were dropped first). No panic
        // here: a failing test is already unwinding.
        let deadline = Instant::now() + WAIT;
        loop {
            match Command::new(tool("userdel")).arg(&self.name).output() {
                Ok(out) if out.status.success() => return,
                Ok(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => {
                    eprintln!("userdel {} failed: {other:?}", self.name);
                    return;
                }
            }
        }
    }
}

/// A child process, killed when the guard is dropped; its stdout lines
/// are read on a thread so that each can be awaited with a deadline.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    what: String,
}

impl Proc {
    fn spawn(mut cmd: Command, what: &str) -> Proc {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc {
            child,
            stdin,
            lines: rx,
            what: what.to_owned(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line the process prints; panics with its stderr if none
    /// comes in time.
    fn line(&mut self) -> String {
        let got = self.lines.recv_timeout(WAIT);
        got.unwrap_or_else(|e| {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("{} printed no line ({e:?}); stderr: {err}", self.what)
        })
    }

    /// Closes its stdin (the helpers below then end).
    fn close_stdin(&mut self) {
        self.stdin = None;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP listener on `host:port` (0: any port) owned by `user` (a
/// `python3` process), and its port. It accepts nothing; being listed in /proc/net/tcp is enough.
fn user_listener(user: &TestUser, host: &str, port: u16) -> (Proc, u16) {
    assert!(Path::new(PYTHON).exists(), "{PYTHON} is needed");
    let script = "import socket, sys\n\
         s = socket.socket()\n\
         s.bind((sys.argv[1], int(sys.argv[2])))\n\
         s.listen()\n\
         print(s.getsockname()[1], flush=True)\n\
         sys.stdin.read()\n";
    let mut cmd = Command::new(PYTHON);
    cmd.args(["-I", "-c", script, host, &port.to_string()]);
    user.apply(&mut cmd);
    let mut proc = Proc::spawn(cmd, &format!("a listener of {}", user.name));
    let port = proc.line().trim().parse().expect("the listener's port");
    (proc, port)
}

/// One raw control connection made by `user` (a `python3` client that
/// relays lines between its stdin and the socket).
struct UserSession(Proc);

impl UserSession {
    fn open(site: &Site, user: &TestUser) -> UserSession {
        assert!(Path::new(PYTHON).exists(), "{PYTHON} is needed");
        let script = "import socket, sys\n\
             s = socket.socket(socket.AF_UNIX)\n\
             s.settimeout(10)\n\
             s.connect(sys.argv[1])\n\
             f = s.makefile('rwb')\n\
             while True:\n\
             \x20   line = sys.stdin.buffer.readline()\n\
             \x20   if not line:\n\
             \x20       break\n\
             \x20   f.write(line.rstrip(b'\\n') + b'\\n')\n\
             \x20   f.flush()\n\
             \x20   answer = f.readline()\n\
             \x20   sys.stdout.buffer.write(answer or b'EOF\\n')\n\
             \x20   sys.stdout.flush()\n";
        let mut cmd = Command::new(PYTHON);
        cmd.args(["-I", "-c", script]).arg(site.socket());
        user.apply(&mut cmd);
        UserSession(Proc::spawn(
            cmd,
            &format!("a control client of {}", user.name),
        ))
    }

    /// Sends one request line; the server's answer.
    fn ask(&mut self, line: &str) -> serde_json::Value {
        let stdin = self.0.stdin.as_mut().expect("stdin");
        stdin.write_all(line.as_bytes()).expect("send");
        stdin.write_all(b"\n").expect("send");
        stdin.flush().expect("send");
        let answer = self.0.line();
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{answer:?}: {e}"))
    }
}

/// Asserts `v` is an error answer with `code` whose message contains `why`.
fn assert_refused(v: &serde_json::Value, code: u32, why: &str) {
    assert_eq!(v["error"]["code"], code, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(why), "expected {why:?} in {v}");
}

/// A running server whose control socket the test users may reach, and
/// the `portshare` program they can run.
struct Site {
    server: TestServer,
    bin: PathBuf,
}

impl Site {
    /// A server whose folder is shared with `group_of`'s primary group.
    fn start(group_of: &TestUser) -> Site {
        let server = TestServer::prepare("", |_| {});
        let dir = server.dir.path().to_path_buf();
        std::os::unix::fs::chown(&dir, None, Some(group_of.gid)).expect("chgrp the folder");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2750))
            .expect("chmod the folder");
        std::fs::set_permissions(&server.config, std::fs::Permissions::from_mode(0o644))
            .expect("chmod GLOBAL.INI");
        let bin = program_for_users(&dir);
        let server = server.launch(&[]);
        let site = Site { server, bin };
        let meta = std::fs::metadata(site.socket()).expect("control socket");
        assert_eq!(meta.mode() & 0o777, 0o660, "socket mode");
        assert_eq!(meta.gid(), group_of.gid, "socket group");
        site
    }

    fn socket(&self) -> PathBuf {
        self.server.dir.path().join("portshare.sock")
    }

    fn port(&self) -> u16 {
        self.server.port
    }

    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("--config")
            .arg(&self.server.config)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// `portshare ARGS…` as root, waited for.
    fn as_root(&self, args: &[&str]) -> Output {
        let child = self
            .command(Path::new(BIN), args)
            .spawn()
            .expect("start portshare");
        wait_output(child, WAIT)
    }

    /// `portshare ARGS…` as `user`, waited for.
    fn as_user(&self, user: &TestUser, args: &[&str]) -> Output {
        let mut cmd = self.command(&self.bin, args);
        user.apply(&mut cmd);
        wait_output(cmd.spawn().expect("start portshare as the user"), WAIT)
    }

    /// `portshare register …` (`args`) as `user`, expected to be refused:
    /// its output once it exits; a panic if it registers instead.
    fn register_as(&self, user: &TestUser, args: &[&str]) -> Output {
        let mut proc = self.spawn_as(user, args);
        match proc.lines.recv_timeout(WAIT) {
            Ok(line) => panic!("{} was not refused: {line}", proc.what),
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("{} did not answer", proc.what),
            // Its stdout closed: it is ending.
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
        }
        let status = wait_for(WAIT, "portshare register to exit", || {
            proc.child.try_wait().ok().flatten()
        });
        let mut stderr = Vec::new();
        if let Some(mut e) = proc.child.stderr.take() {
            let _ = e.read_to_end(&mut stderr);
        }
        Output {
            status,
            stdout: Vec::new(),
            stderr,
        }
    }

    /// `portshare ARGS…` as `user`, left running (e.g. `register`).
    fn spawn_as(&self, user: &TestUser, args: &[&str]) -> Proc {
        let mut cmd = self.command(&self.bin, args);
        user.apply(&mut cmd);
        Proc::spawn(
            cmd,
            &format!("portshare {} as {}", args.join(" "), user.name),
        )
    }

    /// `portshare http add urlacl ARGS…` as root.
    fn reserve(&self, args: &[&str]) {
        let mut all = vec!["http", "add", "urlacl"];
        all.extend_from_slice(args);
        let out = self.as_root(&all);
        assert!(
            out.status.success(),
            "{all:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }

    fn servicestate(&self) -> String {
        let out = self.as_root(&["http", "show", "servicestate"]);
        assert!(out.status.success(), "servicestate: {}", text(&out.stdout));
        text(&out.stdout)
    }

    /// Waits until `url` (as servicestate prints it) is registered; while
    /// waiting, `holder` must not have ended (it would have failed).
    fn wait_registered(&self, url: &str, holder: &mut Proc) -> String {
        wait_for(WAIT, &format!("{url} in servicestate"), || {
            if let Ok(Some(status)) = holder.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = holder.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("{} ended with {status}: {err}", holder.what);
            }
            let state = self.servicestate();
            state.lines().any(|l| l.trim() == url).then_some(state)
        })
    }
}

/// The `portshare` binary if every folder above it lets others search and
/// the file lets them run it; else a copy (mode 0755) in `dir`.
fn program_for_users(dir: &Path) -> PathBuf {
    let bin = Path::new(BIN);
    let others_may_run = bin
        .ancestors()
        .skip(1)
        .filter(|d| !d.as_os_str().is_empty())
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.mode() & 0o001 != 0))
        && std::fs::metadata(bin).is_ok_and(|m| m.mode() & 0o005 == 0o005);
    if others_may_run {
        return bin.to_path_buf();
    }
    let copy = dir.join("portshare");
    std::fs::copy(bin, &copy).expect("copy portshare");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    copy
}

/// Asserts a CLI run failed with netsh's `Error: 5` and exit code 5, and
/// that its explanation contains `why`.
fn assert_denied(out: &Output, why: &str, what: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{what}: {err}");
    assert!(
        err.contains("Error: 5\nAccess is denied.\nportshare: "),
        "{what}: {err}"
    );
    assert!(err.contains(why), "{what}: expected {why:?} in {err}");
}

/// A Unix socket bound by root at `path` with `mode`, answering every
/// request with 200 and the body `unix`.
fn root_unix_backend(path: &Path, mode: u32) {
    let listener = UnixListener::bind(path).expect("bind the backend socket");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nunix",
            );
        }
    });
}

/// A folder of root's with `mode` (the test's temp dir itself is made
/// searchable for others, as /tmp is).
fn root_folder(base: &tempfile::TempDir, name: &str, mode: u32) -> PathBuf {
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod the temp dir");
    let dir = base.path().join(name);
    std::fs::create_dir(&dir).expect("folder");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
    dir
}

#[test]
fn tcp_backend_must_be_the_users_own_loopback_listener() {
    let user = TestUser::new();
    let site = Site::start(&user);
    let port = site.port();
    site.reserve(&[
        &format!("url=http://+:{port}/"),
        &format!("user={}", user.name),
    ]);
    let (_listener, own) = user_listener(&user, "127.0.0.1", 0);
    let roots = std::net::TcpListener::bind("127.0.0.1:0").expect("root's listener");
    let root_port = roots.local_addr().expect("addr").port();

    // Root's service on loopback: not the user's to name.
    let out = site.register_as(
        &user,
        &[
            "register",
            &format!("http://+:{port}/theirs/"),
            "--backend",
            &format!("http://127.0.0.1:{root_port}"),
        ],
    );
    assert_denied(
        &out,
        &format!(
            "nothing that user {} runs listens on port {root_port} of this machine",
            user.name
        ),
        "root's listener",
    );
    // Another machine (a documentation address): privileged peers only.
    let out = site.register_as(
        &user,
        &[
            "register",
            &format!("http://+:{port}/remote/"),
            "--backend",
            &format!("http://192.0.2.1:{own}"),
        ],
    );
    assert_denied(
        &out,
        "a backend on 192.0.2.1 can be named only by the server's own user or root",
        "a remote backend",
    );

    // The user's own listener is accepted.
    let prefix = format!("http://+:{port}/own/");
    let backend = format!("http://127.0.0.1:{own}");
    let mut holder = site.spawn_as(&user, &["register", &prefix, "--backend", &backend]);
    site.wait_registered(&format!("HTTP://+:{port}/OWN/"), &mut holder);
    assert!(holder.line().starts_with("Registered http://+:"));

    // Root itself may name root's listener.
    let mut root_holder = Proc::spawn(
        site.command(
            Path::new(BIN),
            &[
                "register",
                &format!("http://+:{port}/theirs/"),
                "--backend",
                &format!("http://127.0.0.1:{root_port}"),
            ],
        ),
        "root's register",
    );
    site.wait_registered(&format!("HTTP://+:{port}/THEIRS/"), &mut root_holder);
}

#[test]
fn unix_backend_must_be_reachable_with_the_users_permissions() {
    let user = TestUser::new();
    let site = Site::start(&user);
    let port = site.port();
    site.reserve(&[
        &format!("url=http://+:{port}/"),
        &format!("user={}", user.name),
    ]);
    let sockets = tempfile::tempdir().expect("temp dir");
    let closed = root_folder(&sockets, "closed", 0o700);
    let open = root_folder(&sockets, "open", 0o755);
    let hidden = closed.join("app.sock");
    let private = open.join("private.sock");
    let public = open.join("app.sock");
    root_unix_backend(&hidden, 0o777);
    root_unix_backend(&private, 0o700);
    root_unix_backend(&public, 0o777);

    // A socket in a folder the user may not search.
    let out = site.register_as(
        &user,
        &[
            "register",
            &format!("http://+:{port}/closed/"),
            "--backend",
            &format!("unix:{}", hidden.display()),
        ],
    );
    assert_denied(
        &out,
        &format!("user {} may not open {} (", user.name, closed.display()),
        "a socket in a 0700 folder",
    );
    // A socket the user may not write to.
    let out = site.register_as(
        &user,
        &[
            "register",
            &format!("http://+:{port}/private/"),
            "--backend",
            &format!("unix:{}", private.display()),
        ],
    );
    assert_denied(
        &out,
        &format!("user {} may not open {} (", user.name, private.display()),
        "a 0700 socket",
    );
    assert!(!site.servicestate().contains("/CLOSED/"));

    // Mode 0777 in a 0755 folder: the user could connect, so may name it.
    let prefix = format!("http://+:{port}/sock/");
    let backend = format!("unix:{}", public.display());
    let mut holder = site.spawn_as(&user, &["register", &prefix, "--backend", &backend]);
    site.wait_registered(&format!("HTTP://+:{port}/SOCK/"), &mut holder);
    // Requests under the prefix reach that socket.
    let r = site.server.get("/sock/x");
    assert_eq!((r.status, r.text().as_str()), (200, "unix"), "{r:?}");
}

#[test]
fn sddl_entries_are_evaluated_in_order() {
    let alice = TestUser::new();
    let bob = TestUser::in_group_of(&alice);
    let site = Site::start(&alice);
    let port = site.port();
    let name = &alice.name;
    site.reserve(&[
        &format!("url=http://+:{port}/deny/"),
        &format!("sddl=D:(D;;GX;;;{name})(A;;GX;;;WD)"),
    ]);
    site.reserve(&[
        &format!("url=http://+:{port}/allow/"),
        &format!("sddl=D:(A;;GX;;;WD)(D;;GX;;;{name})"),
    ]);
    // A backend both users may reach.
    let sockets = tempfile::tempdir().expect("temp dir");
    let socket = root_folder(&sockets, "open", 0o755).join("app.sock");
    root_unix_backend(&socket, 0o777);
    let backend = format!("unix:{}", socket.display());

    // Deny first: alice is refused, everyone else (bob) may register.
    let deny = format!("http://+:{port}/deny/");
    let out = site.register_as(&alice, &["register", &deny, "--backend", &backend]);
    assert_denied(
        &out,
        &format!("no URL reservation lets user '{name}' register it"),
        "deny entry first",
    );
    let mut bobs = site.spawn_as(&bob, &["register", &deny, "--backend", &backend]);
    site.wait_registered(&format!("HTTP://+:{port}/DENY/"), &mut bobs);

    // Allow first: the allow entry decides for alice.
    let allow = format!("http://+:{port}/allow/");
    let mut alices = site.spawn_as(&alice, &["register", &allow, "--backend", &backend]);
    site.wait_registered(&format!("HTTP://+:{port}/ALLOW/"), &mut alices);
    let r = site.server.get("/allow/x");
    assert_eq!((r.status, r.text().as_str()), (200, "unix"), "{r:?}");
}

#[test]
fn maintenance_run_is_for_root_and_the_servers_user_only() {
    let user = TestUser::new();
    let site = Site::start(&user);

    let out = site.as_user(&user, &["maintenance", "run"]);
    let said = text(&out.stdout);
    // netsh's layout and exit code, as for a refused registration.
    assert_eq!(out.status.code(), Some(5), "{said}");
    assert!(
        said.starts_with("\nError: 5\nAccess is denied.\n"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "user {} may not run the maintenance; only root may",
            user.name
        )),
        "{said}"
    );
    let mut session = UserSession::open(&site, &user);
    assert_refused(
        &session.ask(r#"{"maintenance_run": {}}"#),
        5,
        &format!(
            "user {} may not run the maintenance; only root may",
            user.name
        ),
    );

    // Root gets past the check (this server has no maintenance URL).
    let out = site.as_root(&["maintenance", "run"]);
    let err = text(&out.stderr);
    assert!(!err.contains("may not run"), "{err}");
    assert!(err.contains("daily_maintenance is not set"), "{err}");
}

#[test]
fn process_ids_a_user_names_must_be_its_own() {
    let user = TestUser::new();
    let site = Site::start(&user);
    let port = site.port();
    site.reserve(&[
        &format!("url=http://+:{port}/"),
        &format!("user={}", user.name),
    ]);
    let (listener, own) = user_listener(&user, "127.0.0.1", 0);
    let users_pid = listener.pid();
    // This test process runs as root.
    let roots_pid = std::process::id();
    let register = |pid: u32| {
        format!(
            r#"{{"register": {{"prefixes": ["http://+:{port}/app/"], "backend": "http://127.0.0.1:{own}", "pid": {pid}}}}}"#
        )
    };
    let not_yours = format!(
        "process {roots_pid} is not one of user {}'s processes",
        user.name
    );

    let mut session = UserSession::open(&site, &user);
    assert_refused(&session.ask(&register(roots_pid)), 5, &not_yours);
    let v = session.ask(&register(users_pid));
    let id = v["ok"]["id"].as_u64().unwrap_or_else(|| panic!("{v}"));
    assert_refused(
        &session.ask(&format!(
            r#"{{"attach": {{"id": {id}, "pid": {roots_pid}}}}}"#
        )),
        5,
        &not_yours,
    );
    let v = session.ask(&format!(
        r#"{{"attach": {{"id": {id}, "pid": {users_pid}}}}}"#
    ));
    assert!(v.get("ok").is_some(), "{v}");

    let url = format!("HTTP://+:{port}/APP/");
    let state = site.wait_registered(&url, &mut session.0);
    let pids = queue_pids(&state, &url);
    assert!(pids.contains(&users_pid), "{pids:?}");
    assert!(!pids.contains(&roots_pid), "{pids:?}");
}

/// Has `user` open 32 control connections (each counted: it has had an
/// answer) and then a 33rd, and checks the 33rd is refused with code 5 and
/// closed. The 32 stay open until the returned process's stdin closes.
/// Also returns the refusal's sentence.
fn hold_32_connections(site: &Site, user: &TestUser) -> (Proc, String) {
    assert!(Path::new(PYTHON).exists(), "{PYTHON} is needed");
    let script = "import socket, sys\n\
         path, n = sys.argv[1], int(sys.argv[2])\n\
         def connect():\n\
         \x20   s = socket.socket(socket.AF_UNIX)\n\
         \x20   s.settimeout(10)\n\
         \x20   s.connect(path)\n\
         \x20   return s, s.makefile('rwb')\n\
         held = []\n\
         for i in range(n):\n\
         \x20   s, f = connect()\n\
         \x20   f.write(b'{\"servicestate\": {}}\\n')\n\
         \x20   f.flush()\n\
         \x20   answer = f.readline()\n\
         \x20   if not answer.startswith(b'{\"ok\"'):\n\
         \x20       print('connection', i + 1, 'refused:', answer.decode().strip(), flush=True)\n\
         \x20       sys.exit(1)\n\
         \x20   held.append((s, f))\n\
         print('holding', n, flush=True)\n\
         s, f = connect()\n\
         print(f.readline().decode().strip(), flush=True)\n\
         print('closed' if f.read() == b'' else 'still open', flush=True)\n\
         s.close()\n\
         sys.stdin.read()\n";
    let mut cmd = Command::new(PYTHON);
    cmd.args(["-I", "-c", script]).arg(site.socket()).arg("32");
    user.apply(&mut cmd);
    let mut holder = Proc::spawn(cmd, "32 control connections");
    assert_eq!(holder.line(), "holding 32");
    let refused = holder.line();
    let v: serde_json::Value =
        serde_json::from_str(&refused).unwrap_or_else(|e| panic!("{refused:?}: {e}"));
    let why = format!(
        "user {} has 32 control connections open already; close one first",
        user.name
    );
    assert_refused(&v, 5, &why);
    assert_eq!(holder.line(), "closed", "the 33rd connection is closed");
    (holder, why)
}

/// `portshare register` as `user` (it fails before the backend matters).
fn register_x(site: &Site, user: &TestUser) -> Output {
    let prefix = format!("http://+:{}/x/", site.port());
    site.register_as(
        user,
        &["register", &prefix, "--backend", "http://127.0.0.1:9"],
    )
}

#[test]
fn at_most_32_control_connections_per_user() {
    let user = TestUser::new();
    let site = Site::start(&user);
    let (mut holder, _) = hold_32_connections(&site, &user);

    // The CLI as the 33rd fails too. (Not asserted as Error 5 here: see
    // `cli_as_the_33rd_connection_reports_error_5`.)
    let out = register_x(&site, &user);
    assert!(!out.status.success(), "{}", text(&out.stderr));
    // Root is not limited.
    site.servicestate();

    // Once the 32 close, the user may connect again.
    holder.close_stdin();
    wait_for(WAIT, "the user's connections to be released", || {
        let out = site.as_user(&user, &["http", "show", "servicestate"]);
        out.status.success().then_some(())
    });
}

/// Known gap: the server writes the refusal and closes the connection
/// without reading the request; when that happens before the CLI has sent
/// its request, the CLI's write fails (EPIPE) and it reports `Error: 31`
/// "Broken pipe" instead of the refusal (about 1 run in 5 here).
#[test]
fn cli_as_the_33rd_connection_reports_error_5() {
    let user = TestUser::new();
    let site = Site::start(&user);
    let (_holder, why) = hold_32_connections(&site, &user);
    for _ in 0..20 {
        assert_denied(&register_x(&site, &user), &why, "the 33rd connection");
    }
}

#[test]
fn at_most_1000_prefixes_per_user() {
    let user = TestUser::new();
    let site = Site::start(&user);
    let port = site.port();
    site.reserve(&[
        &format!("url=http://+:{port}/"),
        &format!("user={}", user.name),
    ]);
    let (_listener, own) = user_listener(&user, "127.0.0.1", 0);
    let backend = format!("http://127.0.0.1:{own}");
    let prefixes: Vec<String> = (0..=1000)
        .map(|i| format!("http://+:{port}/p{i}/"))
        .collect();
    let args = |range: std::ops::Range<usize>| -> Vec<&str> {
        let mut a = vec!["register"];
        a.extend(prefixes[range].iter().map(String::as_str));
        a.extend(["--backend", &backend]);
        a
    };

    // 1001 in one call: refused as a whole.
    let out = site.register_as(&user, &args(0..1001));
    assert_denied(
        &out,
        &format!(
            "user {} holds 0 URL prefixes; at most 1000 may be registered by one user",
            user.name
        ),
        "1001 prefixes at once",
    );
    assert!(!site
        .servicestate()
        .contains(&format!("HTTP://+:{port}/P0/")));

    // 1000 are fine; one more is not.
    let mut holder = site.spawn_as(&user, &args(0..1000));
    site.wait_registered(&format!("HTTP://+:{port}/P999/"), &mut holder);
    let out = site.register_as(&user, &args(1000..1001));
    assert_denied(
        &out,
        &format!(
            "user {} holds 1000 URL prefixes; at most 1000 may be registered by one user",
            user.name
        ),
        "the 1001st prefix",
    );
    // The limit is per user: root registers it.
    let mut root_holder = Proc::spawn(
        site.command(
            Path::new(BIN),
            &["register", &prefixes[1000], "--backend", &backend],
        ),
        "root's register",
    );
    site.wait_registered(&format!("HTTP://+:{port}/P1000/"), &mut root_holder);
}

/// Known gap: the TCP check asks only whether the user listens on the
/// port *somewhere* (any address in /proc/net/tcp), not on the address the
/// backend names. A user listening on 127.0.0.2:P may name root's
/// 127.0.0.1:P.
#[test]
fn a_listener_on_another_address_is_not_the_named_backend() {
    let user = TestUser::new();
    let site = Site::start(&user);
    let port = site.port();
    site.reserve(&[
        &format!("url=http://+:{port}/"),
        &format!("user={}", user.name),
    ]);
    let roots = std::net::TcpListener::bind("127.0.0.1:0").expect("root's listener");
    let root_port = roots.local_addr().expect("addr").port();
    let (_listener, _) = user_listener(&user, "127.0.0.2", root_port);
    let out = site.register_as(
        &user,
        &[
            "register",
            &format!("http://+:{port}/theirs/"),
            "--backend",
            &format!("http://127.0.0.1:{root_port}"),
        ],
    );
    assert_denied(
        &out,
        &format!("nothing that user {} runs listens", user.name),
        "root's listener, user's on 127.0.0.2",
    );
}

/// Known gap: the Unix-socket check walks the folders of the path as
/// written; a symbolic link to a folder inside one the user may not search
/// skips that folder (and the link can be changed after registering).
#[test]
fn a_symlink_does_not_skip_a_closed_folder() {
    let user = TestUser::new();
    let site = Site::start(&user);
    let port = site.port();
    site.reserve(&[
        &format!("url=http://+:{port}/"),
        &format!("user={}", user.name),
    ]);
    let sockets = tempfile::tempdir().expect("temp dir");
    let closed = root_folder(&sockets, "closed", 0o700);
    let inner = closed.join("inner");
    std::fs::create_dir(&inner).expect("inner folder");
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    root_unix_backend(&inner.join("app.sock"), 0o777);
    let link = sockets.path().join("link");
    std::os::unix::fs::symlink(&inner, &link).expect("symlink");
    let out = site.register_as(
        &user,
        &[
            "register",
            &format!("http://+:{port}/hidden/"),
            "--backend",
            &format!("unix:{}", link.join("app.sock").display()),
        ],
    );
    assert_denied(
        &out,
        &format!("user {} may not open", user.name),
        "a socket behind a link",
    );
}
