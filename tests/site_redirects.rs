//! Site redirects: `redirect_https=yes` (plain HTTP → 308 to the site's
//! https prefix) and `redirect=FROM TO [STATUS]` lines, checked before files.

mod common;

use common::TestServer;

fn get_host(s: &TestServer, host: &str, path: &str) -> common::RawResponse {
    s.request(&format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ))
}

#[test]
fn plain_http_goes_to_the_https_prefix_with_its_port() {
    let s = TestServer::prepare_tls("redirect_https=yes", |p| {
        std::fs::write(p.join("a.txt"), "a").unwrap()
    })
    .launch(&[]);
    let r = get_host(&s, &format!("example.test:{}", s.port), "/dir/a.txt?x=1&y");
    assert_eq!(r.status, 308, "{}", r.head);
    assert_eq!(
        r.header("location"),
        Some(format!("https://example.test:{}/dir/a.txt?x=1&y", s.https_port).as_str())
    );
    // An IPv6 literal host keeps its brackets.
    let r = get_host(&s, &format!("[::1]:{}", s.port), "/");
    assert_eq!(
        r.header("location"),
        Some(format!("https://[::1]:{}/", s.https_port).as_str())
    );
}

#[test]
fn a_path_site_redirects_under_its_https_path() {
    let s = TestServer::prepare_tls("", |_| {});
    let dir = s.dir.path().join("blog");
    std::fs::create_dir_all(&dir).unwrap();
    let ini = std::fs::read_to_string(&s.config).unwrap();
    let extra = format!(
        "\n[site:blog]\nprefix=http://+:{port}/blog/ https://+:{https}/secure/blog/\npublic_dir={}\nredirect_https=yes\n",
        dir.display(),
        port = s.port,
        https = s.https_port
    );
    std::fs::write(&s.config, ini + &extra).unwrap();
    let s = s.launch(&[]);
    let r = get_host(&s, "blog.test", "/Blog/2024/post.html");
    assert_eq!(r.status, 308, "{}", r.head);
    assert_eq!(
        r.header("location"),
        Some(
            format!(
                "https://blog.test:{}/secure/blog/2024/post.html",
                s.https_port
            )
            .as_str()
        )
    );
    // The built-in site has no redirect_https: served over plain HTTP.
    assert_eq!(s.get("/").status, 404);
}

#[test]
fn redirect_lines_come_before_files_and_keep_the_rest_of_the_path() {
    let s = TestServer::start_with(
        "redirect=/old.html /new.html\nredirect=/docs/ /manual/ 308\nredirect=/go https://example.test/away 302\nredirect=/tmp/ /elsewhere 307",
        |p| {
            std::fs::write(p.join("old.html"), "old").unwrap();
            std::fs::write(p.join("new.html"), "new").unwrap();
        },
    );
    let r = s.get("/old.html");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/new.html"));
    let r = s.get("/docs/a/b.html?v=2");
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("/manual/a/b.html?v=2"));
    let r = s.get("/go");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("https://example.test/away"));
    // Exact paths only match themselves.
    assert_eq!(s.get("/go/further").status, 404);
    let r = s.get("/tmp/x");
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some("/elsewhere/x"));
    // Files elsewhere are served as before.
    assert_eq!(s.get("/new.html").text(), "new");
}
