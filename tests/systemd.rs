//! systemd readiness (`Type=notify` in contrib/systemd/portshare.service):
//! the binary, started with `NOTIFY_SOCKET` as systemd starts it, sends
//! `READY=1` only once its port answers, and `STOPPING=1` when SIGTERM
//! asks it to stop. The socket is a datagram socket in a temp folder,
//! standing in for systemd's.
#![cfg(target_os = "linux")]

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{raw_exchange, wait_output, TestServer, BIN};

/// Datagrams received until one holds `wanted` as a line, or panics after `timeout`.
fn wait_message(sock: &UnixDatagram, wanted: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no {wanted} within {timeout:?}; received {seen:?}"
        );
        sock.set_read_timeout(Some(left.min(Duration::from_millis(200))))
            .expect("read timeout");
        match sock.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = text.lines().any(|l| l == wanted);
                seen.push(text);
                if done {
                    return seen;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("receiving from the notify socket: {e}"),
        }
    }
}

#[test]
fn ready_after_the_port_answers_and_stopping_on_sigterm() {
    let s = TestServer::prepare("", |p| {
        std::fs::write(p.join("index.html"), "up").expect("index.html")
    });
    let sock_path = s.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind the notify socket");
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&s.config)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start portshare");
    let pid = child.id();
    // Kill the server if an assertion fails before it is stopped.
    struct KillOnDrop(Option<std::process::Child>);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Some(mut c) = self.0.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut guard = KillOnDrop(Some(child));

    let before = wait_message(&sock, "READY=1", Duration::from_secs(20));
    assert!(
        !before.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "{before:?}"
    );
    // At the moment READY=1 arrives the site answers: systemd starts the
    // units ordered after this one then.
    let response = raw_exchange(
        s.addr(),
        b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("up"), "{text}");

    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_message(&sock, "STOPPING=1", Duration::from_secs(10));
    let child = guard.0.take().expect("child");
    let out = wait_output(child, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
