//! Log files that do not grow for ever (src/logs/file.rs): under many
//! concurrent requests, with a tiny `log_max_size` forcing a rollover every
//! few dozen lines, HTTP.sys's 1 MiB `ErrorLogFileTruncateSize` for
//! httperr.log, and an external logrotate renaming access.log and sending
//! SIGUSR1 meanwhile, every line is in exactly one file, whole, and no file
//! is past its limit. The midnight rollover and `log_keep_days` are tested
//! with a moved clock in src/logs/file.rs.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{raw_exchange, wait_output, TestServer, BIN};

const ACCESS_LIMIT: u64 = 4096;
const HTTPERR_LIMIT: u64 = 1024 * 1024;

/// Every file in `dir` whose name starts with `stem`, with its text.
fn files(dir: &Path, stem: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("read the log folder")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(stem) {
                return None;
            }
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((name, text))
        })
        .collect();
    v.sort();
    v
}

/// `id=` values in the lines of `files` that contain `marker`, counted.
fn ids(files: &[(String, String)], marker: &str) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for (_, text) in files {
        for line in text.lines() {
            if let Some(at) = line.find(marker) {
                let id: String = line[at + marker.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                *seen.entry(id).or_insert(0) += 1;
            }
        }
    }
    seen
}

#[cfg(unix)]
#[test]
fn no_line_lost_or_split_across_rollovers_under_load() {
    let s = TestServer::start_with(
        &format!(
            "host_name=www.site.test\nlog_max_size={ACCESS_LIMIT}\nlog_keep_days=1\n[http]\nErrorLogFileTruncateSize={HTTPERR_LIMIT}\n"
        ),
        |p| std::fs::write(p.join("a.txt"), "a").expect("a.txt"),
    );
    let logs = s.logs();
    let pid = s.child.as_ref().expect("running").id().to_string();
    const THREADS: usize = 6;
    const ACCESS_PER_THREAD: usize = 200;
    // A URI of 3000 bytes makes an httperr line of about 3 KiB: 1 MiB in
    // about 340 lines.
    const ERRORS_PER_THREAD: usize = 130;
    // Segments under UrlSegmentMaxLength (260), or the line is `URL`'s.
    let long = vec!["u".repeat(200); 15].join("/");
    let rotated = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (s, long, logs, pid, rotated) = (&s, &long, &logs, &pid, &rotated);
            scope.spawn(move || {
                for i in 0..ACCESS_PER_THREAD.max(ERRORS_PER_THREAD) {
                    if i < ACCESS_PER_THREAD {
                        let r = raw_exchange(
                            s.addr(),
                            format!("GET /a.txt?id=a{t}-{i} HTTP/1.1\r\nHost: www.site.test\r\nConnection: close\r\n\r\n").as_bytes(),
                        );
                        assert!(r.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&r));
                    }
                    if i < ERRORS_PER_THREAD {
                        // A host nobody claims: HTTP.sys's 400 and a `Hostname` line
                        // (whose cs-uri is the path, without the query).
                        let r = raw_exchange(
                            s.addr(),
                            format!("GET /{long}/ide{t}-{i} HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n").as_bytes(),
                        );
                        assert!(r.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&r));
                    }
                    // One thread plays logrotate now and then: rename, then SIGUSR1.
                    if t == 0 && i % 40 == 39 {
                        let k = rotated.fetch_add(1, Ordering::Relaxed);
                        // The server may be renaming it at this moment itself.
                        if std::fs::rename(logs.join("access.log"), logs.join(format!("access.log.rot{k}"))).is_ok() {
                            let status = Command::new("kill").args(["-USR1", pid]).status().expect("kill");
                            assert!(status.success());
                        }
                    }
                }
            });
        }
    });
    let access_total = THREADS * ACCESS_PER_THREAD;
    let errors_total = THREADS * ERRORS_PER_THREAD;
    // Every line reaches a file within the writers' pause; wait for all
    // (and after the deadline, show what is missing).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (access, httperr) = loop {
        let access = files(&logs, "access");
        let httperr = files(&logs, "httperr");
        let complete = ids(&access, "?id=a").values().sum::<usize>() >= access_total
            && ids(&httperr, "/ide").values().sum::<usize>() >= errors_total;
        if complete || std::time::Instant::now() > deadline {
            break (access, httperr);
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    // Each line exactly once.
    let a = ids(&access, "?id=a");
    let missing: Vec<String> = (0..THREADS)
        .flat_map(|t| (0..ACCESS_PER_THREAD).map(move |i| format!("a{t}-{i}")))
        .filter(|id| !a.contains_key(&id[1..]))
        .take(10)
        .collect();
    assert_eq!(a.len(), access_total, "missing e.g. {missing:?}");
    assert!(a.values().all(|n| *n == 1), "duplicated access lines");
    let e = ids(&httperr, "/ide");
    assert_eq!(
        e.len(),
        errors_total,
        "{:?}",
        httperr
            .iter()
            .map(|f| (&f.0, f.1.len()))
            .collect::<Vec<_>>()
    );
    assert!(e.values().all(|n| *n == 1), "duplicated httperr lines");

    // Whole lines only, and no file past its limit.
    for (name, text) in &access {
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{name} ends inside a line"
        );
        assert!(
            text.len() as u64 <= ACCESS_LIMIT,
            "{name}: {} bytes",
            text.len()
        );
        for line in text.lines() {
            assert!(
                line.starts_with("127.0.0.1 - - [")
                    && line.ends_with("\"-\" \"-\"")
                    // The file, or HTTP.sys's 400 page for the other host.
                    && (line.contains("\" 200 1 ") || line.contains("\" 400 334 ")),
                "{name}: broken line {line:?}"
            );
        }
    }
    let numbered = |list: &[(String, String)], stem: &str| {
        list.iter()
            .filter(|(n, _)| {
                n.strip_prefix(stem)
                    .and_then(|r| r.strip_suffix(".log"))
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
            .count()
    };
    // About 90 bytes a line: a rollover every ~45 lines.
    assert!(
        numbered(&access, "access") >= 10,
        "{:?}",
        access.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(
        access.iter().any(|(n, _)| n.starts_with("access.log.rot")),
        "logrotate's files"
    );
    for (name, text) in &httperr {
        assert!(
            text.len() as u64 <= HTTPERR_LIMIT,
            "{name}: {} bytes",
            text.len()
        );
        assert!(
            text.starts_with("#Software: Microsoft HTTP API 2.0\r\n"),
            "{name} has no header"
        );
        assert!(text.ends_with("\r\n"), "{name} ends inside a line");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.trim_end_matches('\r').split(' ').collect();
            assert_eq!(f.len(), 13, "{name}: broken line {line:?}");
            assert_eq!(&f[9..], ["400", "-", "Hostname", "-"], "{name}");
        }
    }
    assert!(
        numbered(&httperr, "httperr") >= 2,
        "{:?}",
        httperr.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
}

#[test]
fn log_keys_are_checked() {
    for (extra, key, says) in [
        ("log_keep_days=soon", "log_keep_days", "number of days"),
        ("log_max_size=12Q", "log_max_size", "not a size"),
        ("log_rollover=weekly", "log_rollover", "not allowed"),
        (
            "\n[http]\nErrorLogFileTruncateSize=4096",
            "errorlogfiletruncatesize",
            "no less than 1 MiB",
        ),
    ] {
        let s = TestServer::prepare(extra, |_| {});
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&s.config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start portshare");
        let out = wait_output(child, Duration::from_secs(20));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra}: started");
        assert!(err.contains(key) && err.contains(says), "{extra}: {err}");
    }
}
