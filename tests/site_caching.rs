//! Caching headers: an explicit policy on every file by default (`no-cache`
//! for HTML so edits show at once, an hour for other files), `cache_control=`
//! for the site, `cache_control.EXT=` per extension, `off` for none; on 304
//! answers too (they must carry what the 200 would).

mod common;

use common::TestServer;

fn files(p: &std::path::Path) {
    std::fs::write(p.join("index.html"), "<p>home</p>").unwrap();
    std::fs::write(p.join("style.css"), "p{}").unwrap();
    std::fs::write(p.join("photo.jpg"), "jpg").unwrap();
}

#[test]
fn the_default_policy_is_explicit_and_kept_on_304() {
    let s = TestServer::start_with("", files);
    let html = s.get("/");
    assert_eq!(html.header("cache-control"), Some("no-cache"));
    assert!(html.header("etag").is_some() && html.header("last-modified").is_some());
    assert_eq!(
        s.get("/style.css").header("cache-control"),
        Some("max-age=3600")
    );
    let etag = html.header("etag").unwrap_or_default().to_owned();
    let r = s.request(&format!(
        "GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(r.status, 304);
    assert_eq!(r.header("cache-control"), Some("no-cache"));
}

#[test]
fn site_and_extension_policies_win() {
    let s = TestServer::start_with(
        "cache_control=public, max-age=60\ncache_control.css=max-age=604800, immutable",
        files,
    );
    assert_eq!(
        s.get("/").header("cache-control"),
        Some("public, max-age=60")
    );
    assert_eq!(
        s.get("/style.css").header("cache-control"),
        Some("max-age=604800, immutable")
    );
    assert_eq!(
        s.get("/photo.jpg").header("cache-control"),
        Some("public, max-age=60")
    );
    let off = TestServer::start_with("cache_control=off\ncache_control.jpg=max-age=9", files);
    assert_eq!(off.get("/").header("cache-control"), None);
    assert_eq!(
        off.get("/photo.jpg").header("cache-control"),
        Some("max-age=9")
    );
}
