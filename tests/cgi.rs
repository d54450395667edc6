//! CGI/1.1 against the real server binary: meta-variables, request and
//! response streaming, status/redirect headers, failures (502/504, killed
//! and reaped), source never disclosed, environment not leaked.
#![cfg(unix)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use common::{ended, wait_for, TestServer};

const SH: &str = "\n[cgi]\n.sh = sh\n.cgi = direct\n";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cgi")
}

/// Copies fixture scripts into `dir` (keeping their modes).
fn copy(dir: &Path, names: &[&str]) {
    std::fs::create_dir_all(dir).expect("script dir");
    for name in names {
        std::fs::copy(fixtures().join(name), dir.join(name)).expect("copy fixture");
    }
}

fn server(extra: &str, scripts: &[&str]) -> TestServer {
    TestServer::start_with(extra, |public| copy(public, scripts))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// `NAME=value` lines of `env` output.
fn env_map(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn meta_variables_for_get_with_query_and_path_info() {
    let s = TestServer::start_with(SH, |public| copy(&public.join("tools"), &["env.sh"]));
    let res = client()
        .get(s.url("/tools/env.sh/a/b%20c?x=1&y=%20"))
        .header("X-Test", "hello")
        .header("Authorization", "Basic c2VjcmV0")
        .header("Proxy", "http://evil.example/")
        .header("Cookie", "a=1")
        .header("X-Multi", "1")
        .header("Accept", "*/*")
        .header("X-Multi", "2")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-script"], "env");
    let text = res.text().await.expect("body");
    let env = env_map(&text);
    let var = |k: &str| env.get(k).map(String::as_str);
    let public = s.public().canonicalize().expect("public");
    let port = s.port.to_string();
    assert_eq!(var("REQUEST_METHOD"), Some("GET"), "{text}");
    assert_eq!(var("QUERY_STRING"), Some("x=1&y=%20"));
    assert_eq!(var("REQUEST_URI"), Some("/tools/env.sh/a/b%20c?x=1&y=%20"));
    assert_eq!(var("SCRIPT_NAME"), Some("/tools/env.sh"));
    assert_eq!(var("PATH_INFO"), Some("/a/b c"));
    let translated = format!("{}/a/b c", public.display());
    assert_eq!(var("PATH_TRANSLATED"), Some(translated.as_str()));
    let script = public.join("tools/env.sh").display().to_string();
    assert_eq!(var("SCRIPT_FILENAME"), Some(script.as_str()));
    let root = public.display().to_string();
    assert_eq!(var("DOCUMENT_ROOT"), Some(root.as_str()));
    let tools = public.join("tools").display().to_string();
    assert_eq!(var("PWD"), Some(tools.as_str()), "working directory");
    assert_eq!(var("REMOTE_ADDR"), Some("127.0.0.1"));
    assert!(var("REMOTE_PORT")
        .and_then(|p| p.parse::<u16>().ok())
        .is_some());
    assert_eq!(var("SERVER_PORT"), Some(port.as_str()));
    assert_eq!(var("SERVER_NAME"), Some("127.0.0.1"));
    assert_eq!(var("SERVER_PROTOCOL"), Some("HTTP/1.1"));
    assert_eq!(var("GATEWAY_INTERFACE"), Some("CGI/1.1"));
    assert!(var("SERVER_SOFTWARE").is_some_and(|v| v.starts_with("portshare/")));
    assert_eq!(var("REDIRECT_STATUS"), Some("200"));
    assert_eq!(var("HTTP_X_TEST"), Some("hello"));
    assert_eq!(var("HTTP_COOKIE"), Some("a=1"));
    // One variable per name, its values joined in the request's order.
    assert_eq!(var("HTTP_X_MULTI"), Some("1, 2"));
    assert_eq!(var("HTTP_HOST"), Some(format!("127.0.0.1:{port}").as_str()));
    let logs = s.logs().canonicalize().expect("logs").display().to_string();
    assert_eq!(var("PORTSHARE_LOG_DIR"), Some(logs.as_str()));
    for absent in [
        "HTTP_AUTHORIZATION",
        "HTTP_PROXY",
        "HTTPS",
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
        "HTTP_CONTENT_LENGTH",
    ] {
        assert_eq!(var(absent), None, "{absent} must not be set");
    }
}

#[tokio::test]
async fn trailing_slash_and_no_path_info() {
    let s = server(SH, &["env.sh"]);
    let c = client();
    let text = c.get(s.url("/env.sh")).send().await.expect("request");
    let env = env_map(&text.text().await.expect("body"));
    assert_eq!(env.get("PATH_INFO"), None);
    assert_eq!(env.get("PATH_TRANSLATED"), None);
    assert_eq!(env.get("QUERY_STRING").map(String::as_str), Some(""));
    let text = c.get(s.url("/env.sh/")).send().await.expect("request");
    let env = env_map(&text.text().await.expect("body"));
    assert_eq!(env.get("PATH_INFO").map(String::as_str), Some("/"));
    // SitePath's rules still apply to the part after the script.
    let res = c
        .get(s.url("/env.sh/.git/config"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn server_environment_is_not_passed_to_scripts() {
    let s = TestServer::prepare(SH, |public| copy(public, &["env.sh"]))
        .launch(&[("CGI_TEST_SECRET", "x"), ("HOME", "/nonexistent-home")]);
    let text = client()
        .get(s.url("/env.sh"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    let env = env_map(&text);
    assert!(!text.contains("CGI_TEST_SECRET"), "{text}");
    // The harness sets RUST_LOG for the server: not for scripts either.
    assert!(!env.contains_key("RUST_LOG"), "{text}");
    assert!(!env.contains_key("HOME"), "{text}");
    assert!(env.get("PATH").is_some_and(|p| !p.is_empty()), "{text}");
}

#[tokio::test]
async fn post_body_is_streamed_to_the_script_and_back() {
    let s = server(SH, &["echo.sh"]);
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let res = client()
        .post(s.url("/echo.sh"))
        .header("Content-Type", "application/x-test")
        .body(body.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-content-length"], "200000");
    let got = res.bytes().await.expect("body");
    assert_eq!(got.len(), body.len());
    assert!(got[..] == body[..], "echoed body differs");
    // Through hyper (a request with a body): the size sent is logged too.
    let line = logged_line(&s, "\"POST /echo.sh HTTP/1.1\"");
    assert!(line.contains("\" 200 200000 \""), "{line}");
}

#[tokio::test]
async fn chunked_request_body_reaches_the_script() {
    let s = server(SH, &["echo.sh"]);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..50)
        .map(|i| Ok(vec![b'a' + (i % 26) as u8; 1000]))
        .collect();
    let expected: Vec<u8> = chunks.iter().flatten().flatten().copied().collect();
    let res = client()
        .put(s.url("/echo.sh"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    // Streamed without buffering: the length is not known up front.
    assert_eq!(res.headers()["x-content-length"], "none");
    let got = res.bytes().await.expect("body");
    assert!(got[..] == expected[..], "echoed body differs");
}

#[test]
fn location_without_status_is_a_302() {
    let s = server(SH, &["redirect.sh", "local_redirect.sh"]);
    let res = s.get("/redirect.sh");
    assert_eq!(res.status, 302, "{}", res.head);
    assert_eq!(
        res.header("location"),
        Some("https://example.com/elsewhere?a=1")
    );
    // A local redirect is answered as a redirect too (not followed inside).
    let res = s.get("/local_redirect.sh");
    assert_eq!(res.status, 302, "{}", res.head);
    assert_eq!(res.header("location"), Some("/other.html"));
}

#[test]
fn status_header_sets_code_and_reason() {
    let s = server(SH, &["teapot.sh"]);
    let res = s.get("/teapot.sh");
    assert_eq!(res.status, 418);
    assert!(
        res.head.starts_with("HTTP/1.1 418 I'm a teapot\r\n"),
        "{}",
        res.head
    );
    assert_eq!(res.header("x-custom"), Some("yes"));
    assert!(res.header("status").is_none(), "{}", res.head);
    assert!(res.text().contains("short and stout"));
}

#[tokio::test]
async fn large_output_arrives_complete() {
    let s = server(SH, &["big.sh"]);
    let res = client()
        .get(s.url("/big.sh"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let got = res.bytes().await.expect("body");
    let expected: Vec<u8> = b"0123456789abcdef\n"
        .iter()
        .copied()
        .cycle()
        .take(5 * 1024 * 1024)
        .collect();
    assert_eq!(got.len(), expected.len());
    assert!(got[..] == expected[..], "output differs");
    // No Content-Length: the access log has the size that was sent.
    let line = access_line(&s, "/big.sh");
    assert!(line.contains("\" 200 5242880 \""), "{line}");
}

#[test]
fn failing_and_malformed_scripts_are_502() {
    let s = server(SH, &["fail.sh", "malformed.sh", "silent.sh"]);
    for path in ["/fail.sh", "/malformed.sh", "/silent.sh"] {
        let res = s.get(path);
        assert_eq!(res.status, 502, "{path}: {}", res.head);
        assert!(!res.text().contains("leaked-body"), "{path}");
    }
}

#[test]
fn hanging_script_is_504_and_killed() {
    let s = server("\n[cgi]\n.sh = sh\ntimeout = 1\n", &["hang.sh"]);
    let started = Instant::now();
    let res = s.get("/hang.sh");
    let took = started.elapsed();
    assert_eq!(res.status, 504, "{}", res.head);
    assert!(
        took >= Duration::from_millis(900),
        "answered too early: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "answered too late: {took:?}"
    );
    let pid_file = s.public().join("hang.pid");
    let pid: u32 = wait_for(Duration::from_secs(5), "the script's pid", || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    });
    // Killed and reaped: no process and no zombie left.
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if Path::new("/proc/self").exists() {
        wait_for(Duration::from_secs(5), "the script process to go", || {
            (!proc_dir.exists()).then_some(())
        });
    } else {
        wait_for(Duration::from_secs(5), "the script process to go", || {
            let alive = std::process::Command::new("kill")
                .args(["-0", &pid.to_string()])
                .status()
                .is_ok_and(|st| st.success());
            (!alive).then_some(())
        });
    }
}

#[test]
fn script_source_is_never_disclosed() {
    // No [cgi] at all: script extensions are 404, not their source.
    let s = server("", &["env.sh", "hello.cgi"]);
    for path in ["/env.sh", "/hello.cgi", "/ENV.SH"] {
        let res = s.get(path);
        assert_eq!(res.status, 404, "{path}");
        assert!(!res.text().contains("printf"), "{path}");
    }
    // [cgi] configures .cgi only: a .sh file is still not sent.
    let s = server("\n[cgi]\n.cgi = direct\n", &["env.sh"]);
    let res = s.get("/env.sh");
    assert_eq!(res.status, 404);
    assert!(!res.text().contains("printf"));
    // A configured extension that names no file.
    let res = s.get("/missing.cgi/x");
    assert_eq!(res.status, 404);
}

#[test]
fn head_gets_headers_without_body() {
    let s = server(SH, &["teapot.sh"]);
    let res = s.request("HEAD /teapot.sh HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(res.status, 418, "{}", res.head);
    assert_eq!(res.header("content-type"), Some("text/plain"));
    assert!(res.body.is_empty(), "{:?}", res.text());
}

#[test]
fn direct_scripts_need_the_execute_bit() {
    use std::os::unix::fs::PermissionsExt;
    let s = TestServer::start_with(SH, |public| {
        copy(public, &["hello.cgi"]);
        std::fs::copy(fixtures().join("hello.cgi"), public.join("plain.cgi")).expect("copy");
        std::fs::set_permissions(
            public.join("plain.cgi"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        std::fs::set_permissions(
            public.join("hello.cgi"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
    });
    let res = s.get("/hello.cgi");
    assert_eq!(res.status, 200, "{}", res.head);
    assert!(
        res.text().contains("hello from /hello.cgi"),
        "{}",
        res.text()
    );
    let res = s.get("/plain.cgi");
    assert_eq!(res.status, 403, "{}", res.head);
    assert!(!res.text().contains("printf"));
}

#[test]
fn maintenance_script_removes_old_logs() {
    let s = TestServer::start_with(SH, |public| {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("public/maintenance.cgi"),
            public.join("maintenance.cgi"),
        )
        .expect("copy maintenance.cgi");
        let logs = public.parent().expect("temp dir").join("logs");
        std::fs::create_dir_all(&logs).expect("logs");
        let old = SystemTime::now() - Duration::from_secs(40 * 86400);
        for (name, time) in [
            ("old-1.log", Some(old)),
            ("old-2.log", Some(old)),
            ("recent.log", None),
        ] {
            let f = std::fs::File::create(logs.join(name)).expect("log file");
            if let Some(t) = time {
                f.set_modified(t).expect("set mtime");
            }
        }
    });
    let res = s.get("/maintenance.cgi");
    assert_eq!(res.status, 200, "{}", res.head);
    let logs = s.logs().canonicalize().expect("logs");
    let text = res.text();
    assert!(
        text.contains(&format!(
            "removed 2 files older than 30 days from {}",
            logs.display()
        )),
        "{text}"
    );
    assert!(!logs.join("old-1.log").exists());
    assert!(!logs.join("old-2.log").exists());
    assert!(logs.join("recent.log").exists());
    assert!(logs.join("access.log").exists());
}

#[tokio::test]
async fn timeout_after_the_headers_cuts_the_response_off() {
    let s = server("\n[cgi]\n.sh = sh\ntimeout = 1\n", &["stall.sh"]);
    let started = Instant::now();
    let res = client()
        .get(s.url("/stall.sh"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    // The response must not look complete: the body ends with an error.
    assert!(
        res.bytes().await.is_err(),
        "a cut-off body must be an error"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Stops the server and returns what it logged (its tracing output, which
/// goes to stdout; stderr too, for good measure).
fn stop_and_read_log(s: &mut TestServer) -> String {
    let out = s.terminate();
    let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    log
}

/// Waits for the access-log line of a request for `path`.
fn access_line(s: &TestServer, path: &str) -> String {
    logged_line(s, &format!("\"GET {path} HTTP/"))
}

/// Waits for the access-log line that contains `needle`.
fn logged_line(s: &TestServer, needle: &str) -> String {
    let log = s.logs().join("access.log");
    wait_for(Duration::from_secs(5), "the access log line", || {
        std::fs::read_to_string(&log)
            .ok()
            .and_then(|t| t.lines().find(|l| l.contains(needle)).map(str::to_owned))
    })
}

/// The script's output frames its body inconsistently: the client gets the
/// Bad Gateway page, the access log the 502, the server log the reason.
fn assert_bad_framing_is_502(script: &str, why: &str) {
    let mut s = server(SH, &[script]);
    let path = format!("/{script}");
    let res = s.get(&path);
    assert_eq!(res.status, 502, "{path}: {}", res.head);
    assert!(
        res.text()
            .contains("The script did not produce a valid response."),
        "{path}: {}",
        res.text()
    );
    let line = access_line(&s, &path);
    assert!(line.contains("\" 502 "), "{line}");
    let log = stop_and_read_log(&mut s);
    assert!(
        log.lines().any(|l| l.contains(&path) && l.contains(why)),
        "{path}: no log line saying {why:?} in:\n{log}"
    );
}

#[test]
fn two_different_content_lengths_are_502() {
    assert_bad_framing_is_502(
        "cl_twice.sh",
        "two different Content-Length values: 5 and 6",
    );
}

#[test]
fn content_length_with_transfer_encoding_is_502() {
    assert_bad_framing_is_502("cl_chunked.sh", "both Content-Length and Transfer-Encoding");
}

#[test]
fn content_length_that_is_not_a_decimal_number_is_502() {
    assert_bad_framing_is_502("cl_plus.sh", "invalid Content-Length \"+5\"");
}

#[test]
fn body_known_to_be_shorter_than_its_content_length_is_502() {
    assert_bad_framing_is_502(
        "short.sh",
        "Content-Length is 100 but the output ended after 5 bytes",
    );
}

#[test]
fn transfer_encoding_alone_is_dropped_and_the_server_frames() {
    let s = server(SH, &["chunked.sh"]);
    let res = s.get("/chunked.sh");
    assert_eq!(res.status, 200, "{}", res.head);
    // One Transfer-Encoding: the server's own chunked framing, not the
    // script's header on top of it.
    let te: Vec<_> = res
        .headers
        .iter()
        .filter(|(k, _)| k == "transfer-encoding")
        .collect();
    assert_eq!(te.len(), 1, "{}", res.head);
    assert_eq!(te[0].1, "chunked");
    assert!(res.header("content-length").is_none(), "{}", res.head);
    assert!(
        res.text().contains("hello from chunked.sh"),
        "{:?}",
        res.text()
    );
}

#[test]
fn output_past_the_content_length_is_discarded_and_logged() {
    let mut s = server(SH, &["long.sh"]);
    let res = s.get("/long.sh");
    assert_eq!(res.status, 200, "{}", res.head);
    assert_eq!(res.header("content-length"), Some("5"));
    assert_eq!(res.text(), "hello");
    let log = stop_and_read_log(&mut s);
    assert!(
        log.lines().any(|l| l.contains("/long.sh")
            && l.contains("wrote more than the 5 bytes its Content-Length announced")),
        "no log line about the extra output in:\n{log}"
    );
}

#[test]
fn body_cut_short_after_the_head_aborts_the_connection() {
    use std::io::{Read, Write};
    let mut s = server(SH, &["short_late.sh"]);
    let mut stream = std::net::TcpStream::connect(s.addr()).expect("connect");
    // Well below the CGI timeout (60 s): a response left hanging until the
    // script is killed would run into this.
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    stream
        .write_all(b"GET /short_late.sh HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let end = loop {
        match stream.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    if let Err(e) = &end {
        assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the connection was left hanging: {e}"
        );
    }
    let res = common::RawResponse::parse(&got);
    assert_eq!(res.status, 200, "{}", res.head);
    assert_eq!(res.header("content-length"), Some("1000000"));
    assert!(
        res.body.len() <= 100_000,
        "more than the script wrote: {}",
        res.body.len()
    );
    let log = stop_and_read_log(&mut s);
    assert!(
        log.lines().any(|l| l.contains("/short_late.sh")
            && l.contains("ended after 100000 of the 1000000 bytes")),
        "no log line about the short body in:\n{log}"
    );
}

#[tokio::test]
async fn bad_framing_over_http2() {
    let s = server(SH, &["cl_twice.sh", "short_late.sh"]);
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let res = client
        .get(s.url("/cl_twice.sh"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 502);
    // Cut off after the head: the stream is reset, the body is an error.
    let res = client
        .get(s.url("/short_late.sh"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    assert!(
        res.bytes().await.is_err(),
        "a cut-off body must be an error"
    );
}

/// The pid a fixture script wrote to `file` in the public folder.
fn read_pid(s: &TestServer, file: &str) -> u32 {
    let path = s.public().join(file);
    wait_for(Duration::from_secs(10), file, || {
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    })
}

fn assert_ends(pid: u32, what: &str) {
    wait_for(Duration::from_secs(5), what, || ended(pid).then_some(()));
}

#[tokio::test]
async fn background_child_does_not_hold_the_response_open() {
    // A timeout far above what the answer should take: before the fix the
    // response stayed open until it and was then cut off.
    let s = server("\n[cgi]\n.sh = sh\ntimeout = 20\n", &["background.sh"]);
    let started = Instant::now();
    let res = client()
        .get(s.url("/background.sh"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let body = res.text().await.expect("a complete body");
    let took = started.elapsed();
    assert_eq!(body, "first\nlast\n");
    assert!(
        took < Duration::from_secs(10),
        "the response waited for the script's child: {took:?}"
    );
    let pid = read_pid(&s, "background.pid");
    assert_ends(pid, "the script's background child to be killed");
}

#[test]
fn children_of_a_script_timed_out_before_its_headers_are_killed() {
    let s = server("\n[cgi]\n.sh = sh\ntimeout = 1\n", &["orphan.sh"]);
    let started = Instant::now();
    let res = s.get("/orphan.sh");
    assert_eq!(res.status, 504, "{}", res.head);
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid = read_pid(&s, "orphan.pid");
    assert_ends(pid, "the timed-out script's child to be killed");
}

#[tokio::test]
async fn children_of_a_script_timed_out_after_its_headers_are_killed() {
    let s = server("\n[cgi]\n.sh = sh\ntimeout = 1\n", &["orphan.sh"]);
    let res = client()
        .get(s.url("/orphan.sh?head"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    assert!(
        res.bytes().await.is_err(),
        "a cut-off body must be an error"
    );
    let pid = read_pid(&s, "orphan.pid");
    assert_ends(pid, "the timed-out script's child to be killed");
}

#[test]
fn server_shutdown_kills_running_scripts_and_their_children() {
    let mut s = server(
        "shutdown_grace=1\n\n[cgi]\n.sh = sh\ntimeout = 60\n",
        &["orphan.sh"],
    );
    let addr = s.addr();
    let request = std::thread::spawn(move || {
        common::raw_exchange(
            addr,
            b"GET /orphan.sh HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
    });
    let pid = read_pid(&s, "orphan.pid");
    let out = s.terminate();
    assert!(out.status.success(), "{:?}", out.status);
    assert_ends(pid, "the running script's child to be killed at shutdown");
    // The connection was closed with the server.
    let _ = request.join();
}
