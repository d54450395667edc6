//! A site's own error pages (`error_page.CODE=/file`): the site's answers
//! with that status carry the file, with the status and headers kept; the
//! pages HTTP.sys itself writes stay byte-exact.

mod common;

use common::TestServer;

#[test]
fn the_sites_page_is_sent_with_the_status() {
    let s = TestServer::start_with(
        "error_page.404=/errors/404.html\nerror_page.405=/errors/405.txt\nerror_page.403=/errors/missing.html",
        |p| {
            std::fs::create_dir(p.join("errors")).unwrap();
            std::fs::write(p.join("errors/404.html"), "<h1>Not here</h1>").unwrap();
            std::fs::write(p.join("errors/405.txt"), "GET only").unwrap();
            std::fs::write(p.join("a.txt"), "a").unwrap();
        },
    );
    let r = s.get("/nothing/here");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "<h1>Not here</h1>");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("17"));
    let r = s.request("DELETE /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.text(), "GET only");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // The files themselves are still files.
    assert_eq!(s.get("/errors/404.html").status, 200);
}

#[test]
fn a_missing_page_falls_back_and_httpsys_pages_stay_exact() {
    // Only `localhost` is served: another host gets HTTP.sys's 400.
    let plain = TestServer::start("host_name=localhost");
    let custom = TestServer::start_with(
        "host_name=localhost\nerror_page.404=/gone.html\nerror_page.403=/gone.html",
        |_| {},
    );
    // The page file does not exist: the built-in page, same status.
    let a = plain.get("/x");
    let b = custom.get("/x");
    assert_eq!(b.status, 404);
    assert_eq!(a.body, b.body);
    // HTTP.sys's own answers (here Invalid Hostname) are not the site's.
    let bad = "GET / HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n";
    let a = plain.raw(bad.as_bytes());
    let b = custom.raw(bad.as_bytes());
    let strip_date = |r: &[u8]| -> String {
        String::from_utf8_lossy(r)
            .lines()
            .filter(|l| !l.starts_with("Date:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        String::from_utf8_lossy(&a).starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{}",
        String::from_utf8_lossy(&a)
    );
    assert_eq!(strip_date(&a), strip_date(&b));
}
