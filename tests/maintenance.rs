//! The daily maintenance call on the real clock: scheduled a few seconds
//! ahead, it runs exactly once, through the router, and is recorded.

mod common;

use std::time::Duration;

use common::{wait_for, TestServer};

#[test]
fn scheduled_run_happens_once_and_is_recorded() {
    let at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let time = at.format("%H:%M:%S").to_string();
    let s = TestServer::prepare(
        &format!(
            "daily_maintenance=/tasks/daily.sh?x=1\nmaintenance_time={time}\n\n[cgi]\n.sh = sh\n"
        ),
        |p| {
            std::fs::create_dir_all(p.join("tasks")).unwrap();
            std::fs::write(
                p.join("tasks/daily.sh"),
                "printf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"cleaned up ($HTTP_X_PORTSHARE_MAINTENANCE from $REMOTE_ADDR, $QUERY_STRING)\"\n",
            )
            .unwrap();
        },
    );
    let s = s.launch(&[("TZ", "UTC")]);
    let log = s.logs().join("maintenance.log");
    let line = wait_for(Duration::from_secs(20), "the maintenance run", || {
        std::fs::read_to_string(&log)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
    });
    assert!(
        line.contains(" /tasks/daily.sh?x=1 200 ")
            && line.ends_with("cleaned up (daily from 127.0.0.1, x=1)"),
        "{line}"
    );
    // The result is kept in the store.
    let store = s.dir.path().join("certs/sslcert.json");
    let json = wait_for(Duration::from_secs(5), "the stored result", || {
        std::fs::read_to_string(&store)
            .ok()
            .filter(|t| t.contains("maintenance"))
    });
    assert!(json.contains("\"status\": 200"), "{json}");
    // It went through the router like a client request: access log line.
    let access = s.logs().join("access.log");
    wait_for(Duration::from_secs(2), "the access log line", || {
        std::fs::read_to_string(&access)
            .ok()
            .filter(|t| t.contains("\"GET /tasks/daily.sh?x=1 HTTP/1.1\" 200"))
    });
    // Exactly one run: nothing more within the next two seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        let n = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count();
        assert_eq!(n, 1, "more than one run");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn portshare(s: &TestServer, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(&s.config)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn run_and_status_commands() {
    let s = TestServer::prepare(
        "daily_maintenance=/m.sh\nmaintenance_time=04:05:06\n\n[cgi]\n.sh = sh\n",
        |p| {
            std::fs::write(
                p.join("m.sh"),
                "printf 'Content-Type: text/plain\\r\\n\\r\\nall tidy\\n'\n",
            )
            .unwrap();
        },
    );
    // No server yet: both commands say so.
    let out = portshare(&s, &["maintenance", "run"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no portshare server is running"));
    let out = portshare(&s, &["maintenance", "status"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Maintenance URL : /m.sh") && text.contains("Last run        : never"),
        "{text}"
    );
    assert!(text.contains("no portshare server is running"), "{text}");

    let s = s.launch(&[]);
    let out = portshare(&s, &["maintenance", "run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("/m.sh -> 200") && text.contains("all tidy"),
        "{text}"
    );
    let out = portshare(&s, &["maintenance", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("Time            : 04:05:06"), "{text}");
    assert!(
        text.contains("Last run        : ") && text.contains("all tidy"),
        "{text}"
    );
    assert!(
        text.contains("Next run        : 20") && text.contains("T04:05:06"),
        "{text}"
    );
}

#[test]
fn runs_never_overlap() {
    let s = TestServer::start_with("daily_maintenance=/slow.sh\n\n[cgi]\n.sh = sh\n", |p| {
        std::fs::write(
                p.join("slow.sh"),
                "touch started.flag\nsleep 2\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslow done\\n'\n",
            )
            .unwrap();
    });
    let config = s.config.clone();
    let first = std::thread::spawn(move || {
        std::process::Command::new(common::BIN)
            .arg("--config")
            .arg(&config)
            .args(["maintenance", "run"])
            .output()
            .unwrap()
    });
    // Wait until the first run's script is running.
    let flag = s.public().join("started.flag");
    wait_for(Duration::from_secs(10), "the first run to start", || {
        flag.exists().then_some(())
    });
    let second = portshare(&s, &["maintenance", "run"]);
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("skipped"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let first = first.join().unwrap();
    assert!(first.status.success());
    assert!(String::from_utf8_lossy(&first.stdout).contains("slow done"));
    let log = std::fs::read_to_string(s.logs().join("maintenance.log")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.contains("skipped")).count(),
        1,
        "{log}"
    );
}

#[test]
fn unrouted_maintenance_url_is_a_warning_not_an_error() {
    let mut s = TestServer::start_with(
        "host_name=http://+:{port}/site/\ndaily_maintenance=/elsewhere/m.cgi",
        |_| {},
    );
    // The server keeps serving.
    assert_eq!(s.get("/site/").status, 404);
    let out = s.terminate();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("daily_maintenance")
            && text.contains("no registered URL prefix serves this path"),
        "{text}"
    );
}

#[cfg(unix)]
#[test]
fn timed_out_run_leaves_no_children() {
    let s = TestServer::start_with(
        "daily_maintenance=/orphan.sh\n\n[cgi]\n.sh = sh\ntimeout = 1\n",
        |p| {
            std::fs::write(
                p.join("orphan.sh"),
                "sh -c 'echo $$ > orphan.pid; exec sleep 30' &\nsleep 30\n",
            )
            .unwrap();
        },
    );
    let out = portshare(&s, &["maintenance", "run"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("/orphan.sh -> 504"), "{text}");
    let pid_file = s.public().join("orphan.pid");
    let pid: u32 = wait_for(Duration::from_secs(10), "the child's pid", || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    });
    wait_for(Duration::from_secs(5), "the child to be killed", || {
        common::ended(pid).then_some(())
    });
}

/// Issue 22 point 3: on the first start (no log folder yet, the configuration
/// named by a relative path) the script gets the absolute log folder, and a
/// script that reports it could not do its job is not recorded as success.
#[test]
fn first_start_passes_the_absolute_log_folder_and_failures_are_not_success() {
    let s = TestServer::prepare("daily_maintenance=/m.sh\n\n[cgi]\n.sh = sh\n", |p| {
        std::fs::write(
                p.join("m.sh"),
                "printf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
                 if [ -e fail.flag ]; then echo 'error: could not clean'; else echo \"log folder $PORTSHARE_LOG_DIR\"; fi\n",
            )
            .unwrap();
    });
    assert!(!s.logs().exists(), "the test needs a first start");
    // Started from its folder with `--config GLOBAL.INI`, as a user would.
    let mut child = std::process::Command::new(common::BIN)
        .current_dir(s.dir.path())
        .args(["--config", "GLOBAL.INI"])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = s.addr();
    wait_for(Duration::from_secs(20), "the server to listen", || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
    });
    let out = portshare(&s, &["maintenance", "run"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let logs = s.logs().canonicalize().unwrap().display().to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("-> 200 "), "{text}");
    assert!(text.ends_with(&format!("log folder {logs}\n")), "{text:?}");
    let status =
        String::from_utf8_lossy(&portshare(&s, &["maintenance", "status"]).stdout).into_owned();
    assert!(status.contains(&format!("log folder {logs}")), "{status}");

    // The script says it failed (200 and "error:"): not a success.
    std::fs::write(s.public().join("fail.flag"), "").unwrap();
    let out = portshare(&s, &["maintenance", "run"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("FAILED (the script reported that it failed): error: could not clean"),
        "{err}"
    );
    let store = std::fs::read_to_string(s.dir.path().join("certs/sslcert.json")).unwrap();
    assert!(store.contains("\"failure\""), "{store}");
    // The log is written in the background.
    let line = wait_for(Duration::from_secs(5), "the failed run's log line", || {
        std::fs::read_to_string(s.logs().join("maintenance.log"))
            .ok()
            .and_then(|t| t.lines().find(|l| l.contains("FAILED")).map(str::to_owned))
    });
    assert!(line.contains(" /m.sh 200 "), "{line}");
    let _ = child.kill();
    let _ = child.wait();
}

/// The bundled script answers 500 with an "error:" line when the log folder
/// it is given does not exist.
#[test]
fn bundled_script_fails_without_its_log_folder() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/public/maintenance.cgi");
    let out = std::process::Command::new("sh")
        .arg(script)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("PORTSHARE_LOG_DIR", "/nonexistent/portshare-logs")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Status: 500 "), "{text}");
    assert!(
        text.contains("\r\n\r\nerror: log folder /nonexistent/portshare-logs does not exist"),
        "{text}"
    );
    let out = std::process::Command::new("sh")
        .arg(script)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("PORTSHARE_LOG_DIR", "./logs")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("Status: 500 ") && text.contains("error: "),
        "{text}"
    );
}
