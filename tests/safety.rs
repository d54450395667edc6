//! No request reaches outside public_dir, and dotfiles stay hidden.

mod common;

use common::TestServer;

const SECRET: &str = "TOP-SECRET-OUTSIDE-ROOT";

fn setup() -> TestServer {
    TestServer::start_with("", |public| {
        let top = public.parent().unwrap();
        std::fs::write(top.join("secret.txt"), SECRET).unwrap();
        std::fs::write(public.join("ok.txt"), "fine").unwrap();
        std::fs::write(public.join(".htaccess"), SECRET).unwrap();
        std::fs::create_dir_all(public.join(".git")).unwrap();
        std::fs::write(public.join(".git/config"), SECRET).unwrap();
        std::fs::create_dir_all(public.join("sub")).unwrap();
        std::fs::write(public.join("sub/inner.txt"), "inner").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(top.join("secret.txt"), public.join("link.txt")).unwrap();
            std::os::unix::fs::symlink(top, public.join("uplink")).unwrap();
            std::os::unix::fs::symlink(public.join("ok.txt"), public.join("inside-link.txt"))
                .unwrap();
        }
    })
}

/// Request targets that try to leave the root or reach hidden files.
const SPELLINGS: &[&str] = &[
    "/../secret.txt",
    "/../../secret.txt",
    "/sub/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/%2e%2e%2fsecret.txt",
    "/%2e%2e%2Fsecret.txt",
    "/..%2fsecret.txt",
    "/..%2Fsecret.txt",
    "/sub/..%2f..%2fsecret.txt",
    "/%2e./secret.txt",
    "/.%2e/secret.txt",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/..%5csecret.txt",
    "/..%5Csecret.txt",
    "/sub%5c..%5c..%5csecret.txt",
    "/..\\secret.txt",
    "/sub\\..\\..\\secret.txt",
    "/%252e%252e/secret.txt",
    "/%c0%ae%c0%ae/secret.txt",
    "/%c0%ae%c0%ae%c0%afsecret.txt",
    "/%e0%80%ae%e0%80%ae/secret.txt",
    "/%c1%9c..%c1%9csecret.txt",
    "/..%c0%afsecret.txt",
    "/..%u2216secret.txt",
    "/ok.txt%00/../../secret.txt",
    "/%00../secret.txt",
    "/..%00/secret.txt",
    "/....//secret.txt",
    "/..../secret.txt",
    "/.../secret.txt",
    "/./../secret.txt",
    "/sub/./../../secret.txt",
    "//../secret.txt",
    "///..//..//secret.txt",
    "/link.txt",
    "/uplink/secret.txt",
    "/uplink/public/ok.txt/../../secret.txt",
    "/.htaccess",
    "/%2ehtaccess",
    "/.git/config",
    "/.git/",
    "/%2egit/config",
    "/sub/../.htaccess",
    "/.htaccess%00.txt",
    "/secret.txt",
    "/..;/secret.txt",
    "/sub/..;/..;/secret.txt",
    "/ok.txt::$DATA",
    "/ok.txt.",
    "/ok.txt%20",
    "/%2e%2e%5c%2e%2e%5csecret.txt",
    "/sub/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/%2f%2e%2e%2fsecret.txt",
    "http://localhost/../secret.txt",
    "http://localhost/%2e%2e/secret.txt",
    "http://evil.test/../../secret.txt",
    "../secret.txt",
    "*",
];

#[test]
fn traversal_corpus_never_leaves_root() {
    assert!(SPELLINGS.len() >= 50);
    let s = setup();
    for target in SPELLINGS {
        let raw = s.raw(
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let text = String::from_utf8_lossy(&raw);
        assert!(
            !text.contains(SECRET),
            "{target} disclosed the secret: {text}"
        );
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{target}: no status in {text:?}"));
        assert!(
            status == 400 || status == 404,
            "{target}: expected 400/404, got {status}"
        );
    }
}

#[test]
fn legitimate_paths_still_work() {
    let s = setup();
    assert_eq!(s.get("/ok.txt").text(), "fine");
    assert_eq!(s.get("/sub/inner.txt").text(), "inner");
    assert_eq!(s.get("/sub/%69nner.txt").text(), "inner");
    #[cfg(unix)]
    assert_eq!(s.get("/inside-link.txt").text(), "fine");
}
