//! `portshare http add|delete urlacl`, run as the real binary against a
//! temporary store: the URL goes through the same prefix parser as
//! registrations, so what the parser refuses is `Error: 87` and leaves the
//! store alone.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::TestServer;

/// A configuration (not started) whose store is `<dir>/certs/sslcert.json`.
fn env() -> TestServer {
    TestServer::prepare("", |_| {})
}

fn store_file(e: &TestServer) -> PathBuf {
    e.dir.path().join("certs").join("sslcert.json")
}

fn run(e: &TestServer, args: &[&str]) -> Output {
    common::run_cli(&e.config, args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Adds a valid reservation and returns the store file's bytes after it.
fn seeded() -> (TestServer, Vec<u8>) {
    let e = env();
    let o = run(
        &e,
        &[
            "http",
            "add",
            "urlacl",
            "url=http://+:8080/keep/",
            "user=root",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let before = std::fs::read(store_file(&e)).expect("the store was written");
    (e, before)
}

#[test]
fn prefixes_the_parser_refuses_are_error_87() {
    let (e, before) = seeded();
    // (url, the parser's reason)
    let cases = [
        (
            "http://+:080/api/",
            "the port '080' is not a decimal number from 1 to 65535 without a leading zero",
        ),
        (
            "http://+:8080/../b/",
            "the path uses '..' to go above the root",
        ),
        (
            "http://+:8080/a/../b/",
            "a reservation's path must not have '.' or '..' segments (reserve http://+:8080/b/)",
        ),
    ];
    for (url, why) in cases {
        let arg = format!("url={url}");
        let o = run(&e, &["http", "add", "urlacl", &arg, "user=root"]);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(87), "{url}\n{out}");
        assert!(
            out.starts_with(&format!(
                "\nUrl reservation add failed, Error: 87\nThe parameter is incorrect.\n\
                 portshare: url '{url}' is not a valid URL prefix: {why}.\n\n\
                 Usage: http add urlacl "
            )),
            "{url}\n{out}"
        );

        let o = run(&e, &["http", "delete", "urlacl", &arg]);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(87), "{url}\n{out}");
        assert!(
            out.starts_with(&format!(
                "\nUrl reservation delete failed, Error: 87\nThe parameter is incorrect.\n\
                 portshare: url '{url}' is not a valid URL prefix: {why}.\n\n\
                 Usage: http delete urlacl"
            )),
            "{url}\n{out}"
        );

        let after = std::fs::read(store_file(&e)).expect("the store is still there");
        assert_eq!(after, before, "{url}: the store file changed");
    }
}

#[test]
fn valid_reservation_is_added_and_shown_as_typed() {
    let e = env();
    let o = run(
        &e,
        &[
            "http",
            "add",
            "urlacl",
            "url=HTTP://+:8080/Api/",
            "user=root",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(stdout(&o), "\nURL reservation successfully added\n\n");

    let o = run(&e, &["http", "show", "urlacl"]);
    let out = stdout(&o);
    assert!(
        out.contains("    Reserved URL            : HTTP://+:8080/Api/\n        User: root\n"),
        "{out}"
    );

    let o = run(&e, &["http", "delete", "urlacl", "url=http://+:8080/api/"]);
    assert_eq!(stdout(&o), "\nURL reservation successfully deleted\n\n");
}
