//! Access log (NCSA combined) in log_dir, visible within a second; stdout
//! when log_dir is empty.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{wait_for, TestServer, BIN};

#[test]
fn access_log_line_appears_within_a_second_in_combined_format() {
    let s = TestServer::start_with("", |p| std::fs::write(p.join("a.txt"), "hello").unwrap());
    let r = s.request(
        "GET /a.txt?q=1 HTTP/1.1\r\nHost: x\r\nReferer: http://ref.test/\r\nUser-Agent: logtest/1.0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let log = s.logs().join("access.log");
    let line = wait_for(Duration::from_secs(1), "the access log line", || {
        std::fs::read_to_string(&log).ok().and_then(|t| {
            t.lines()
                .find(|l| l.contains("/a.txt?q=1"))
                .map(str::to_owned)
        })
    });
    // 127.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "GET /a.txt?q=1 HTTP/1.1" 200 5 "http://ref.test/" "logtest/1.0"
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.ends_with("] \"GET /a.txt?q=1 HTTP/1.1\" 200 5 \"http://ref.test/\" \"logtest/1.0\""),
        "{line}"
    );
    let date = &line[line.find('[').unwrap() + 1..line.find(']').unwrap()];
    assert!(
        chrono::DateTime::parse_from_str(date, "%d/%b/%Y:%H:%M:%S %z").is_ok(),
        "{date}"
    );
}

#[test]
fn quotes_in_user_agent_cannot_break_fields() {
    let s = TestServer::start_with("", |p| std::fs::write(p.join("a.txt"), "x").unwrap());
    s.request("GET /a.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: evil\" 200 1 \"x\r\nConnection: close\r\n\r\n");
    let log = s.logs().join("access.log");
    let line = wait_for(Duration::from_secs(1), "the access log line", || {
        std::fs::read_to_string(&log)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
    });
    assert!(line.ends_with("\"evil\\\" 200 1 \\\"x\""), "{line}");
}

#[test]
fn httperr_log_has_w3c_header() {
    let s = TestServer::start("");
    let log = s.logs().join("httperr.log");
    let text = wait_for(Duration::from_secs(2), "httperr.log", || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("#Fields:"))
    });
    assert!(text.starts_with("#Software: Microsoft HTTP API 2.0\r\n#Version: 1.0\r\n#Date: "));
    assert!(text.contains("#Fields: date time c-ip c-port s-ip s-port cs-version cs-method cs-uri sc-status s-siteid s-reason s-queuename\r\n"));
}

#[test]
fn empty_log_dir_sends_access_lines_to_stdout() {
    let s = TestServer::prepare("log_dir=", |p| {
        std::fs::write(p.join("a.txt"), "x").unwrap()
    });
    // `log_dir=` appended after the default `log_dir=logs`: the later key wins.
    // The server's stderr goes to a file, so that a failure can show it.
    let stderr_path = s.dir.path().join("stderr.txt");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&s.config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut s = s;
    s.child = Some(child);
    wait_for(Duration::from_secs(20), "the server", || {
        std::net::TcpStream::connect(s.addr()).ok()
    });
    let reply =
        s.raw(b"GET /a.txt?stdout=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if reply.is_empty() {
        let status = s.child.as_mut().map(|c| c.try_wait());
        panic!(
            "no reply; server status {status:?}, its stderr:\n{}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
    }
    assert!(
        reply.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let line = rx
        .recv_timeout(Duration::from_secs(2))
        .expect("an access line on stdout");
    assert!(
        line.contains("\"GET /a.txt?stdout=1 HTTP/1.1\" 200 1"),
        "{line}"
    );
    assert!(!s.logs().join("access.log").exists());
}
