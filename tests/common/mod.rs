//! Shared test harness: starts the real `portshare` binary on ephemeral
//! loopback ports with its own temp folders, and talks to it with raw
//! sockets. Every wait polls with a deadline; nothing sleeps a fixed time.
#![allow(dead_code)]

pub mod accept_all;
pub mod log_lines;
#[cfg(unix)]
pub mod netsh;
pub mod slow_backend;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_portshare");

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port that is free on both 127.0.0.1 and ::1 right now, and not
/// handed to another test of this process before. Picked at random below
/// the kernel's ephemeral range (32768+), so a port just released by one
/// test process is not handed straight to another by `bind(…:0)`.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        let port = 10_000 + (h.finish() % 22_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_err()
            || TcpListener::bind(("::1", port)).is_err()
        {
            continue;
        }
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub struct TestServer {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The HTTPS port (0 unless made with [`TestServer::prepare_tls`]).
    pub https_port: u16,
    pub config: PathBuf,
}

impl TestServer {
    /// Public folder of a new server, to fill before `start`.
    pub fn public(&self) -> PathBuf {
        self.dir.path().join("public")
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// A server on a fresh port with `[param]` defaults for tests plus the
    /// INI text `extra` (which may add keys to `[param]` and further
    /// sections; `{port}` in it is replaced by the server's port). `prepare` may put files into the public folder first.
    pub fn start_with(extra: &str, prepare: impl FnOnce(&Path)) -> TestServer {
        let s = TestServer::prepare(extra, prepare);
        s.launch(&[])
    }

    pub fn start(extra: &str) -> TestServer {
        TestServer::start_with(extra, |_| {})
    }

    /// Writes the config and public folder without starting.
    pub fn prepare(extra: &str, prepare: impl FnOnce(&Path)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let public = dir.path().join("public");
        std::fs::create_dir_all(&public).expect("public dir");
        prepare(&public);
        let port = free_port();
        // `{port}` in the extra text stands for the server's port.
        let extra = extra.replace("{port}", &port.to_string());
        let extra = extra.as_str();
        let config = dir.path().join("GLOBAL.INI");
        let (param_extra, sections) = match extra.find("\n[") {
            Some(i) => (&extra[..i], &extra[i..]),
            None => (extra, ""),
        };
        let ini = format!(
            "[param]\nlisten=127.0.0.1,::1\nhttp_port={port}\nhttps_port=0\npublic_dir=public\nlog_dir=logs\nshutdown_grace=10\n{param_extra}\n{sections}\n"
        );
        std::fs::write(&config, ini).expect("write config");
        TestServer {
            child: None,
            dir,
            port,
            https_port: 0,
            config,
        }
    }

    /// As [`TestServer::prepare`], with HTTPS on a second free port
    /// (`https_port`). The certificate folder is `<dir>/certs`.
    pub fn prepare_tls(extra: &str, prepare: impl FnOnce(&Path)) -> TestServer {
        let mut s = TestServer::prepare(extra, prepare);
        let https = loop {
            let p = free_port();
            if p != s.port {
                break p;
            }
        };
        let ini = std::fs::read_to_string(&s.config).expect("read config");
        let ini = ini.replacen("https_port=0\n", &format!("https_port={https}\n"), 1);
        std::fs::write(&s.config, ini).expect("write config");
        s.https_port = https;
        s
    }

    pub fn launch(self, env: &[(&str, &str)]) -> TestServer {
        let addr = self.addr();
        self.launch_with(env, addr)
    }

    /// [`TestServer::launch`] for a server that listens on `addr` (when the
    /// store's IP listen list leaves out 127.0.0.1, say).
    pub fn launch_on(self, addr: SocketAddr) -> TestServer {
        self.launch_with(&[], addr)
    }

    fn launch_with(mut self, env: &[(&str, &str)], addr: SocketAddr) -> TestServer {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start portshare");
        wait_for(Duration::from_secs(20), "the server to listen", || {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("portshare exited early with {status}: {err}");
            }
            // Both ports when there are two: a test may start with either.
            let https: SocketAddr = (addr.ip(), self.https_port).into();
            let up = |a: &SocketAddr| TcpStream::connect_timeout(a, Duration::from_millis(200));
            (up(&addr).is_ok() && (self.https_port == 0 || up(&https).is_ok())).then_some(())
        });
        self.child = Some(child);
        self
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Appends INI text (a section) to the server's GLOBAL.INI: for
    /// sections that name the HTTPS port, known only once prepared.
    pub fn append_config(&self, ini: &str) {
        let mut text = std::fs::read_to_string(&self.config).expect("read config");
        text.push_str(ini);
        std::fs::write(&self.config, text).expect("write config");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Sends raw bytes, reads until the server closes or `timeout`.
    pub fn raw(&self, request: &[u8]) -> Vec<u8> {
        raw_exchange(self.addr(), request)
    }

    /// A GET with `Connection: close`, parsed.
    pub fn get(&self, path: &str) -> RawResponse {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        ))
    }

    pub fn request(&self, head: &str) -> RawResponse {
        RawResponse::parse(&self.raw(head.as_bytes()))
    }

    /// Waits for a server that was already told to stop.
    pub fn terminate_wait(&mut self) -> Output {
        let child = self.child.take().expect("server running");
        wait_output(child, Duration::from_secs(30))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> Output {
        let child = self.child.take().expect("server running");
        #[cfg(unix)]
        unsafe_kill_term(child.id());
        wait_output(child, Duration::from_secs(30))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `netsh ARGS…` through `link` (the binary under the name netsh), in the
/// link's folder, with `input` on standard input (its end ends the
/// session) and GLOBAL.INI named by `PORTSHARE_CONFIG`.
pub fn run_as_netsh(link: &Path, config: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(link)
        .args(args)
        .current_dir(link.parent().unwrap_or(Path::new(".")))
        .env("PORTSHARE_CONFIG", config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start netsh");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    wait_output(child, Duration::from_secs(20))
}

/// `portshare --config CONFIG ARGS…`, output piped, not started.
pub fn cli(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// [`cli`], run and waited for (with a deadline).
pub fn run_cli(config: &Path, args: &[&str]) -> Output {
    let child = cli(config, args).spawn().expect("start portshare");
    wait_output(child, Duration::from_secs(20))
}

/// Waits for a child with a deadline and collects its output.
pub fn wait_output(mut child: Child, timeout: Duration) -> Output {
    let status = wait_for(timeout, "the process to exit", || {
        child.try_wait().ok().flatten()
    });
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_end(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut stderr);
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

#[cfg(unix)]
fn unsafe_kill_term(pid: u32) {
    // `kill` the command avoids an FFI dependency just for tests.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(request).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn parse(bytes: &[u8]) -> RawResponse {
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(bytes)));
        let head = String::from_utf8_lossy(&bytes[..split]).to_string();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        RawResponse {
            status,
            head,
            headers,
            body: bytes[split + 4..].to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as sent, without the chunked framing (if any).
    pub fn unchunked_body(&self) -> Vec<u8> {
        if self.header("transfer-encoding") == Some("chunked") {
            dechunk(&self.body)
        } else {
            self.body.clone()
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Whether process `pid` has ended. A zombie counts as ended: an orphan is
/// re-parented to PID 1, which in a container may never reap it.
pub fn ended(pid: u32) -> bool {
    if std::path::Path::new("/proc/self/stat").exists() {
        return match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            // The state letter follows the command name in parentheses.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        };
    }
    !std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .status()
        .is_ok_and(|st| st.success())
}

/// The process IDs listed under the request queue of the registration
/// whose URL list contains `url` (registrations and queues are printed in
/// the same order).
pub fn queue_pids(state: &str, url: &str) -> Vec<u32> {
    let sessions: Vec<&str> = state.split("Server session ID:").skip(1).collect();
    let index = sessions
        .iter()
        .position(|s| s.lines().any(|l| l.trim() == url))
        .unwrap_or_else(|| panic!("{url} not in {state}"));
    let queues = state.split("Request queues:").nth(1).expect("queues");
    let queue = queues
        .split("    Request queue name:")
        .nth(index + 1)
        .expect("queue");
    let pids = queue.split("Process IDs:").nth(1).expect("pids");
    pids.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// The SHA-1 thumbprint of a DER certificate, in lowercase hex (as
/// `http show sslcert` prints it).
pub fn thumbprint(der: &[u8]) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Response bytes as text with every `Date` value replaced, for comparing
/// two answers byte for byte.
pub fn undated(bytes: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    let mut at = 0;
    while let Some(i) = text[at..].find("Date: ") {
        let start = at + i + 6;
        let end = (start + 29).min(text.len());
        text.replace_range(start..end, "<date>");
        at = start;
    }
    text
}

/// tests/fixtures/certs: the test certificates and keys.
pub fn cert_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/certs")
}

/// The lowercase thumbprint of a fixture certificate, from
/// tests/fixtures/certs/thumbprints.txt.
pub fn fixture_thumb(pem: &str) -> String {
    let text =
        std::fs::read_to_string(cert_fixtures().join("thumbprints.txt")).expect("thumbprints");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{pem} ")).map(str::to_owned))
        .unwrap_or_else(|| panic!("{pem} not in thumbprints.txt"))
}

/// A whole chunked body without its framing (chunk extensions and trailers
/// dropped).
pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = std::str::from_utf8(&b[..line_end]).expect("chunk size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("hex chunk size");
        b = &b[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// The standard output of a command that must have succeeded; the failure
/// message shows its exit status and both outputs.
pub fn ok(o: &Output) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}
