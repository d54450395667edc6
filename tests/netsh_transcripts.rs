//! The procedures of the four source documents (cFos Personal Net, Serraview,
//! the "Configure HTTPS with HTTP.sys" post, the RRAS certificate change),
//! run through the real binary invoked as `netsh` in the three ways
//! administrators run them — piped, `netsh -c http …` one line at a time, and
//! `netsh exec FILE` — and compared byte for byte with the reference
//! transcripts in tests/fixtures/netsh/ (each says where its layouts come
//! from). A script written for Windows must print the same whichever way it
//! is run, so all three forms are held to the one fixture.
//!
//! Also here: the live cache commands (`show cachestate`, `delete cache`)
//! against a running server, and the `iplisten` / `cacheparam` commands
//! through the binary.

#![cfg(unix)]

mod common;

use std::path::Path;

use common::netsh::Netsh;
use common::TestServer;

/// One reference transcript: `==== script`, `==== output`, `==== exit`
/// sections after a `#` header.
struct Fixture {
    name: String,
    script: String,
    output: String,
    exit: i32,
}

impl Fixture {
    fn load(name: &str) -> Fixture {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/netsh")
            .join(format!("{name}.txt"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let section = |head: &str, next: Option<&str>| -> String {
            let start = text
                .find(&format!("\n==== {head}\n"))
                .unwrap_or_else(|| panic!("{name}: no '==== {head}' section"))
                + head.len()
                + 7;
            let end = match next {
                Some(n) => text[start..]
                    .find(&format!("==== {n}\n"))
                    .map(|i| start + i)
                    .unwrap_or_else(|| panic!("{name}: no '==== {n}' section")),
                None => text.len(),
            };
            text[start..end].to_owned()
        };
        let exit = section("exit", None);
        Fixture {
            name: name.to_owned(),
            script: section("script", Some("output")),
            output: section("output", Some("exit")),
            exit: exit
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: exit '{exit}' is not a number")),
        }
    }

    /// The script's command lines (no comments, no blank lines).
    fn lines(&self) -> impl Iterator<Item = &str> {
        self.script
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
    }
}

/// A fresh configuration (not started) with the test certificates in its
/// store and a `netsh` symlink beside it.
fn netsh() -> Netsh {
    netsh_with(TestServer::prepare("", |_| {}))
}

fn netsh_with(server: TestServer) -> Netsh {
    let n = Netsh::with(server);
    // rsa.pem and other.pem, with the intermediate that completes
    // their chains (so no chain warning follows `add sslcert`).
    for cert in ["rsa.pem", "other.pem", "intermediate.pem"] {
        n.import_fixture_cert(cert);
    }
    n
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Splits a line as cmd.exe hands it to a program: at spaces, double quotes
/// grouping and removed.
fn split_args(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut started) = (false, false);
    for c in line.chars() {
        match c {
            '"' => (quoted, started) = (!quoted, true),
            ' ' | '\t' if !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// Runs `fixture` piped, with `-c` per line and with `exec`, each on a fresh
/// store, and compares each with the reference.
fn check(name: &str) {
    let f = Fixture::load(name);
    let compare = |form: &str, out: &str, code: Option<i32>, stderr: &str| {
        assert_eq!(
            out, f.output,
            "{}: the {form} form printed something else (stderr: {stderr})",
            f.name
        );
        assert_eq!(
            code,
            Some(f.exit),
            "{}: exit code of the {form} form",
            f.name
        );
    };

    // Piped, with CRLF as PowerShell and cmd send lines.
    let n = netsh();
    let o = n.run(&[], &f.script.replace('\n', "\r\n"));
    compare("piped", &text(&o.stdout), o.status.code(), &text(&o.stderr));

    // `netsh -c http VERB …`, one process per line; the script's exit code
    // is the last failing line's, as netsh's.
    let n = netsh();
    let (mut out, mut code, mut err) = (String::new(), 0, String::new());
    for line in f.lines() {
        let words = split_args(line);
        assert_eq!(
            words.first().map(String::as_str),
            Some("http"),
            "{name}: {line}"
        );
        let mut args = vec!["-c", "http"];
        args.extend(words[1..].iter().map(String::as_str));
        let o = n.run(&args, "");
        out.push_str(&text(&o.stdout));
        err.push_str(&text(&o.stderr));
        match o.status.code() {
            Some(0) => {}
            Some(c) => code = c,
            None => panic!("{name}: netsh {args:?} was killed"),
        }
    }
    compare("-c", &out, Some(code), &err);

    // `netsh exec FILE`.
    let n = netsh();
    let file = n.dir().join(format!("{name}.script"));
    std::fs::write(&file, &f.script).expect("write script");
    let o = n.run(&["exec", &file.to_string_lossy()], "");
    compare("exec", &text(&o.stdout), o.status.code(), &text(&o.stderr));
}

#[test]
fn cfos_personal_net_procedure() {
    check("cfos-personal-net");
}

#[test]
fn serraview_procedure() {
    check("serraview");
}

#[test]
fn httpsys_https_post_piped_powershell_form() {
    check("httpsys-https-post");
}

#[test]
fn rras_certificate_change_procedure() {
    check("rras-certificate-change");
}

const IPLISTEN_HEAD: &str =
    "\nIP addresses present in the IP listen list:\n-------------------------------------------\n\n";

#[test]
fn iplisten_is_kept_and_dumped() {
    let n = netsh();
    let o = n.run(
        &[],
        "http add iplisten ipaddress=127.0.0.1\nhttp add iplisten ::1\nhttp show iplisten\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert_eq!(
        text(&o.stdout),
        format!(
            "\nIP address successfully added\n\n\nIP address successfully added\n\n{IPLISTEN_HEAD}    127.0.0.1\n    ::1\n\n"
        )
    );
    // Netsh's errors: 183 for an address in the list, 2 for one not in it,
    // 87 for something that is no address.
    let o = n.run(
        &["-c", "http", "add", "iplisten", "ipaddress=127.0.0.1"],
        "",
    );
    assert_eq!(o.status.code(), Some(183), "{}", text(&o.stdout));
    assert!(text(&o.stdout).starts_with(
        "\nIP address add failed, Error: 183\nCannot create a file when that file already exists.\n"
    ));
    let o = n.run(&["http", "delete", "iplisten", "ipaddress=10.9.9.9"], "");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    assert!(text(&o.stdout).starts_with(
        "\nIP address delete failed, Error: 2\nThe system cannot find the file specified.\n"
    ));
    let o = n.run(&["http", "add", "iplisten", "ipaddress=localhost"], "");
    assert_eq!(o.status.code(), Some(87), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("\nThe parameter is incorrect.\n"));

    // The dump recreates the list and the cache parameters.
    let o = n.run(
        &[
            "http",
            "add",
            "cacheparam",
            "type=maxcacheresponsesize",
            "value=0x10000",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert_eq!(text(&o.stdout), "\nCache parameter successfully added\n\n");
    let shows = |n: &Netsh| -> Vec<String> {
        ["iplisten", "cacheparam"]
            .iter()
            .map(|what| text(&n.run(&["http", "show", what], "").stdout))
            .collect()
    };
    let before = shows(&n);
    assert!(
        before[1].contains("Max cache response size (bytes) : 65536\n"),
        "{}",
        before[1]
    );
    let dump = text(&n.run(&["http", "dump"], "").stdout);
    assert!(
        dump.contains("add iplisten ipaddress=127.0.0.1\nadd iplisten ipaddress=::1\n"),
        "{dump}"
    );
    let fresh = netsh();
    let file = fresh.dir().join("dump.txt");
    std::fs::write(&file, &dump).expect("write dump");
    let o = fresh.run(&["exec", &file.to_string_lossy()], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert_eq!(shows(&fresh), before);

    // Help after a command: its usage, exit 0, from any form.
    let o = n.run(&["http", "show", "iplisten", "help"], "");
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).starts_with("\nUsage: show iplisten\n"));
    let o = n.run(&[], "http\nadd iplisten ?\n");
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).starts_with("\nUsage: add iplisten [ipaddress=]"));
}

#[test]
fn cache_commands_follow_the_running_server() {
    // Without a server: the live commands say there is none.
    let stopped = netsh();
    let o = stopped.run(&["http", "show", "cachestate"], "");
    assert_eq!(o.status.code(), Some(1062 % 256), "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).starts_with("\nError: 1062\nThe service has not been started.\n"),
        "{}",
        text(&o.stdout)
    );
    assert!(text(&o.stdout).contains("only while the server runs"));

    let server = TestServer::prepare("", |public| {
        std::fs::write(public.join("hello.txt"), "hello\n").expect("write hello.txt");
        std::fs::create_dir(public.join("docs")).expect("mkdir docs");
        std::fs::write(public.join("docs").join("a.txt"), "a\n").expect("write a.txt");
    })
    .launch(&[]);
    let port = server.port;
    let n = netsh_with(server);
    for path in ["/hello.txt", "/hello.txt", "/docs/a.txt"] {
        assert_eq!(n.server.get(path).status, 200);
    }
    let o = n.run(&["http", "show", "cachestate"], "");
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(
        out.starts_with("\nSnapshot of HTTP response cache:\n--------------------------------\n\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "URL: http://+:{port}/hello.txt\nStatus code: 200\nHTTP verb: GET\n"
        )),
        "{out}"
    );
    assert!(
        out.contains("Request queue name: site\nContent length: 6\nHit count: 1\n"),
        "{out}"
    );

    // `url=` narrows to the entries under it; `delete cache` drops them.
    let url = format!("url=http://localhost:{port}/docs/");
    let o = n.run(&["http", "show", "cachestate", &url], "");
    let out = text(&o.stdout);
    assert!(out.contains("/docs/a.txt\n"), "{out}");
    assert!(!out.contains("hello.txt"), "{out}");
    let o = n.run(&["http", "delete", "cache", &url, "recursive=yes"], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert_eq!(text(&o.stdout), "\nCache entries successfully deleted\n\n");
    let o = n.run(&["http", "show", "cachestate", &url], "");
    assert_eq!(
        text(&o.stdout),
        "\nThere were no cache entries corresponding to the provided URL\n\n"
    );
    // Nothing cached there any more: error 2.
    let o = n.run(&["http", "delete", "cache", &url, "recursive=yes"], "");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    assert!(text(&o.stdout).starts_with("\nCache delete failed, Error: 2\n"));

    // Everything.
    let o = n.run(&[], "http delete cache\nhttp show cachestate\n");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert_eq!(
        text(&o.stdout),
        "\nCache entries successfully deleted\n\n\nThere were no cache entries corresponding to the provided URL\n\n"
    );
    // The file is served (and cached) again.
    assert_eq!(n.server.get("/hello.txt").text(), "hello\n");
    let o = n.run(&["http", "show", "cachestate"], "");
    assert!(
        text(&o.stdout).contains("/hello.txt\n"),
        "{}",
        text(&o.stdout)
    );
}
