//! Directory listings (`listing=yes`): the HTML page and its JSON twin for a
//! folder without index.html — hostile names escaped and linked so the
//! links work, dotfiles and script sources left out, parent link, sorting,
//! methods, the cap on huge folders, symlinks, and the option per site.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{RawResponse, TestServer};

const ON: &str = "listing=yes";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write a site file");
}

/// Names that try to break out of the markup or the link.
const HOSTILE: &[(&str, &str)] = &[
    // A file name cannot hold `/`, so `</script>` is out of reach; these
    // open elements instead.
    ("<script>alert(1).txt", "script-file"),
    ("<img src=x onerror=alert(1)>.txt", "img-file"),
    ("quote\"s.txt", "quote-file"),
    ("it's.txt", "apostrophe-file"),
    ("100%.txt", "percent-file"),
    ("a b.txt", "space-file"),
    ("a#b.txt", "hash-file"),
    ("q?x=1.txt", "question-file"),
    ("fish & chips.txt", "amp-file"),
];

fn hostile_site(p: &Path) {
    for (name, text) in HOSTILE {
        write(p, name, text);
    }
    // Left out: dotfiles, script sources (built-in list, any case, and a
    // configured CGI extension).
    write(p, ".env", "SECRET=1");
    std::fs::create_dir_all(p.join(".git")).unwrap();
    write(p, "run.php", "<?php secret();");
    write(p, "deploy.SH", "rm -rf /");
    write(p, "task.tcl", "puts secret");
    // Shown: folders (first, with a slash), one named like a script.
    std::fs::create_dir_all(p.join("sub")).unwrap();
    write(&p.join("sub"), "inner.txt", "inner");
    std::fs::create_dir_all(p.join("tools.php")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"bad-\xff-name.txt");
        std::fs::write(p.join(name), "not utf-8").unwrap();
    }
}

fn get_accept(s: &TestServer, path: &str, accept: &str) -> RawResponse {
    s.request(&format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    ))
}

/// `(href, text)` of every `<a>` in the page's table body.
fn links(html: &str) -> Vec<(String, String)> {
    let body = html.split("<tbody>").nth(1).unwrap_or("");
    body.split("<a href=\"")
        .skip(1)
        .map(|rest| {
            let (href, rest) = rest.split_once("\">").expect("closed href");
            let (text, _) = rest.split_once("</a>").expect("closed link");
            (href.to_owned(), text.to_owned())
        })
        .collect()
}

/// The shown names of the rows, without the parent link.
fn names(html: &str) -> Vec<String> {
    links(html)
        .into_iter()
        .filter(|(href, _)| href != "../")
        .map(|(_, text)| text)
        .collect()
}

#[test]
fn html_listing_escapes_hostile_names_and_its_links_work() {
    let s = TestServer::start_with(&format!("{ON}\n\n[cgi]\n.tcl = sh\n"), hostile_site);
    let r = s.get("/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert_eq!(r.header("vary"), Some("Accept"));
    let csp = r.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("style-src 'unsafe-inline'"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");
    let html = r.text();
    // A phone-sized page, no outside assets, nothing to run.
    assert!(html.contains("<meta name=\"viewport\" content=\"width=device-width"));
    for absent in ["<script", "<img", "http://", "https://", "<link"] {
        assert!(!html.contains(absent), "{absent} in\n{html}");
    }
    // Escaped text.
    assert!(html.contains("&lt;script&gt;alert(1).txt"), "{html}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;.txt"));
    assert!(html.contains("quote&quot;s.txt"));
    assert!(html.contains("it&#39;s.txt"));
    assert!(html.contains("fish &amp; chips.txt"));
    // Percent-encoded links.
    let all = links(&html);
    let href = |shown: &str| {
        all.iter()
            .find(|(_, text)| text == shown)
            .map(|(h, _)| h.clone())
            .unwrap_or_else(|| panic!("no link for {shown} in {all:?}"))
    };
    assert_eq!(href("a b.txt"), "a%20b.txt");
    assert_eq!(href("100%.txt"), "100%25.txt");
    assert_eq!(href("quote&quot;s.txt"), "quote%22s.txt");
    assert_eq!(href("a#b.txt"), "a%23b.txt");
    assert_eq!(href("q?x=1.txt"), "q%3Fx%3D1.txt");
    assert_eq!(
        href("&lt;script&gt;alert(1).txt"),
        "%3Cscript%3Ealert%281%29.txt"
    );
    // Every hostile file opens through its link with its own content.
    for (name, text) in HOSTILE {
        let shown = name
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;");
        let link = href(&shown);
        let got = s.get(&format!("/{link}"));
        assert_eq!(got.status, 200, "{name} via {link}");
        assert_eq!(got.text(), *text, "{name} via {link}");
    }
    // Folders first, with a slash; a folder named like a script is a
    // folder, not a script.
    let shown = names(&html);
    assert_eq!(shown.first().map(String::as_str), Some("sub/"), "{shown:?}");
    assert_eq!(shown.get(1).map(String::as_str), Some("tools.php/"));
    assert_eq!(href("sub/"), "sub/");
    // Left out: dotfiles and script sources.
    for hidden in [".env", ".git", "run.php", "deploy.SH", "task.tcl"] {
        assert!(!html.contains(hidden), "{hidden} listed:\n{html}");
    }
    // The site root has no parent link.
    assert!(!all.iter().any(|(h, _)| h == "../"), "{all:?}");
    // Sizes: human and exact; times in UTC.
    assert!(html.contains("title=\"9 bytes\">9 B<"), "{html}");
    assert!(html.contains("<time datetime=\"20"), "{html}");

    #[cfg(unix)]
    {
        // Shown with U+FFFD, linked with its real byte; the path decoder
        // refuses non-UTF-8, so the link is answered 400, not another file.
        assert_eq!(href("bad-\u{fffd}-name.txt"), "bad-%FF-name.txt");
        assert_eq!(s.get("/bad-%FF-name.txt").status, 400);
    }
}

#[test]
fn parent_link_and_sorting_by_size_and_time() {
    let s = TestServer::start_with(ON, |p| {
        let d = p.join("docs");
        std::fs::create_dir_all(d.join("zeta")).unwrap();
        std::fs::create_dir_all(d.join("alpha")).unwrap();
        write(&d, "medium.txt", &"m".repeat(2_000));
        write(&d, "big.txt", &"b".repeat(30_000));
        write(&d, "Small.txt", "s");
        // Distinct times: big oldest, Small newest.
        let set = |name: &str, secs: u64| {
            let f = std::fs::File::options()
                .write(true)
                .open(d.join(name))
                .unwrap();
            f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(secs))
                .unwrap();
        };
        set("big.txt", 1_000_000_000);
        set("medium.txt", 1_500_000_000);
        set("Small.txt", 1_700_000_000);
    });
    let page = |q: &str| {
        let r = s.get(&format!("/docs/{q}"));
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        r.text()
    };
    let html = page("");
    // Default: name, ascending, case-insensitive; folders first.
    assert_eq!(
        names(&html),
        ["alpha/", "zeta/", "big.txt", "medium.txt", "Small.txt"]
    );
    assert_eq!(links(&html).first().map(|(h, _)| h.as_str()), Some("../"));
    assert!(html.contains("Index of /docs/"));
    // Column headers link to the sorts; the current one flips its order.
    assert!(
        html.contains("href=\"?sort=name&amp;order=desc\""),
        "{html}"
    );
    assert!(html.contains("href=\"?sort=size&amp;order=asc\""));
    assert!(html.contains("href=\"?sort=time&amp;order=asc\""));
    assert!(html.contains("title=\"30000 bytes\">29 KiB<"), "{html}");
    assert!(html.contains("title=\"2000 bytes\">2.0 KiB<"));
    assert!(html.contains("title=\"1 byte\">1 B<"));
    assert!(html.contains("<time datetime=\"2001-09-09T01:46:40Z\">2001-09-09 01:46</time>"));

    let html = page("?sort=size&order=asc");
    assert_eq!(
        names(&html),
        ["alpha/", "zeta/", "Small.txt", "medium.txt", "big.txt"]
    );
    assert!(html.contains("href=\"?sort=size&amp;order=desc\""));
    let html = page("?sort=size&order=desc");
    assert_eq!(
        names(&html),
        ["zeta/", "alpha/", "big.txt", "medium.txt", "Small.txt"]
    );
    let html = page("?sort=time");
    assert_eq!(&names(&html)[2..], ["big.txt", "medium.txt", "Small.txt"]);
    // Nonsense in the query: the default order, not an error.
    let html = page("?sort=%3Cx%3E&order=sideways&other=1");
    assert_eq!(&names(&html)[2..], ["big.txt", "medium.txt", "Small.txt"]);

    // The parent link leads to the parent's listing.
    let root = s.get("/");
    assert_eq!(root.status, 200);
    assert_eq!(names(&root.text()), ["docs/"]);
    // A subfolder's link works too.
    assert_eq!(s.get("/docs/alpha/").status, 200);
}

#[test]
fn json_for_clients_that_prefer_it() {
    let s = TestServer::start_with(ON, |p| {
        std::fs::create_dir_all(p.join("sub")).unwrap();
        write(p, "a b.txt", "12345");
        write(p, ".hidden", "x");
        write(p, "x.py", "print()");
    });
    let r = get_accept(&s, "/", "application/json");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("vary"), Some("Accept"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    // Keys in a reader-friendly order, name first.
    assert!(
        r.text()
            .starts_with(r#"[{"name":"sub","href":"sub/","type":"dir","size":null,"modified":""#),
        "{}",
        r.text()
    );
    let list = v.as_array().expect("an array");
    assert_eq!(list.len(), 2, "{v}");
    let dir = &list[0];
    assert_eq!(dir["name"], "sub");
    assert_eq!(dir["href"], "sub/");
    assert_eq!(dir["type"], "dir");
    assert!(dir["size"].is_null());
    let file = &list[1];
    assert_eq!(file["name"], "a b.txt");
    assert_eq!(file["href"], "a%20b.txt");
    assert_eq!(file["type"], "file");
    assert_eq!(file["size"], 5);
    let modified = file["modified"].as_str().expect("a time");
    // RFC 3339, UTC, whole seconds: 2024-05-01T12:34:56Z.
    assert_eq!(modified.len(), 20, "{modified}");
    assert!(modified.ends_with('Z') && modified.as_bytes()[10] == b'T');
    assert_eq!(file.as_object().map(|o| o.len()), Some(5));

    // Sorting applies to JSON too.
    let r = get_accept(&s, "/?sort=name&order=desc", "application/json");
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(v[0]["name"], "sub");

    // q-values: JSON only when ranked above HTML.
    let r = get_accept(&s, "/", "text/html;q=0.5, application/json");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let r = get_accept(&s, "/", browser);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("vary"), Some("Accept"));
    let r = get_accept(&s, "/", "application/json;q=0, */*");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
}

#[test]
fn index_html_head_methods_and_the_slash_redirect() {
    let s = TestServer::start_with(ON, |p| {
        std::fs::create_dir_all(p.join("home")).unwrap();
        write(&p.join("home"), "index.html", "<h1>home</h1>");
        std::fs::create_dir_all(p.join("list")).unwrap();
        write(&p.join("list"), "one.txt", "1");
    });
    // A folder with index.html: the page, not a listing.
    let r = s.get("/home/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<h1>home</h1>");
    // Without the slash: the usual redirect, also with listings on.
    let r = s.get("/list");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/list/"));

    let get = s.get("/list/");
    assert_eq!(get.status, 200);
    let head = s.request("HEAD /list/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    for name in [
        "content-type",
        "content-length",
        "vary",
        "content-security-policy",
    ] {
        assert_eq!(head.header(name), get.header(name), "{name}");
    }
    let post = s.request(
        "POST /list/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    // A folder that does not exist stays 404.
    assert_eq!(s.get("/nothing/").status, 404);
}

#[test]
fn listing_off_by_default_is_404_as_before() {
    let s = TestServer::start_with("", |p| {
        std::fs::create_dir_all(p.join("list")).unwrap();
        write(&p.join("list"), "one.txt", "1");
    });
    let r = s.get("/list/");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("one.txt"));
    assert_eq!(s.get("/").status, 404);
    let r = get_accept(&s, "/list/", "application/json");
    assert_eq!(r.status, 404);
}

#[test]
fn a_site_section_lists_while_param_does_not() {
    let other = tempfile::tempdir().unwrap();
    write(other.path(), "shared.txt", "from the files site");
    std::fs::create_dir_all(other.path().join("deeper")).unwrap();
    let extra = format!(
        "listing=no\n\n[site:files]\nprefix=http://+:{{port}}/files/\npublic_dir={}\nlisting=yes\n",
        other.path().display()
    );
    let s = TestServer::start_with(&extra, |p| {
        std::fs::create_dir_all(p.join("list")).unwrap();
        write(&p.join("list"), "one.txt", "1");
    });
    // The default site: off.
    assert_eq!(s.get("/list/").status, 404);
    // The section: on, at its prefix's root (no parent link above it).
    let r = s.get("/files/");
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    assert_eq!(names(&html), ["deeper/", "shared.txt"]);
    assert!(!links(&html).iter().any(|(h, _)| h == "../"));
    assert!(html.contains("Index of /files/"));
    // Its relative links resolve under the prefix.
    assert_eq!(s.get("/files/shared.txt").text(), "from the files site");
    let r = s.get("/files/deeper/");
    assert_eq!(r.status, 200);
    assert_eq!(
        links(&r.text()),
        [("../".to_owned(), "../ (parent folder)".to_owned())]
    );
}

#[cfg(unix)]
#[test]
fn symlinks_only_inside_the_folder() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.txt", "outside");
    let out = outside.path().to_path_buf();
    let s = TestServer::start_with(ON, move |p| {
        use std::os::unix::fs::symlink;
        write(p, "real.txt", "inside");
        write(p, "script.php", "<?php");
        std::fs::create_dir_all(p.join("folder")).unwrap();
        symlink(p.join("real.txt"), p.join("link-in.txt")).unwrap();
        symlink(p.join("folder"), p.join("link-dir")).unwrap();
        symlink(out.join("secret.txt"), p.join("link-out.txt")).unwrap();
        symlink(&out, p.join("link-out-dir")).unwrap();
        symlink(p.join("missing"), p.join("broken")).unwrap();
        // Named harmlessly, but the server refuses to send the script.
        symlink(p.join("script.php"), p.join("innocent.txt")).unwrap();
    });
    let html = s.get("/").text();
    assert_eq!(
        names(&html),
        ["folder/", "link-dir/", "link-in.txt", "real.txt"],
        "{html}"
    );
    assert_eq!(s.get("/link-in.txt").text(), "inside");
    assert_eq!(s.get("/link-dir/").status, 200);
}

#[test]
fn a_huge_folder_is_capped_and_quick() {
    const FILES: usize = 30_000;
    let s = TestServer::start_with(ON, |p| {
        let d = p.join("huge");
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..FILES {
            std::fs::File::create(d.join(format!("f{i:06}.txt"))).unwrap();
        }
    });
    let started = Instant::now();
    let r = s.get("/huge/");
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("listing-truncated"), Some("true"));
    let html = r.text();
    assert_eq!(names(&html).len(), 10_000);
    assert!(
        html.contains("only 10000 are listed"),
        "{}",
        &html[html.len() - 300..]
    );
    // Generous for a debug build on a busy machine; the point is "not many
    // seconds", and the size is bounded by the cap.
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(r.body.len() < 4 * 1024 * 1024, "{}", r.body.len());

    let r = get_accept(&s, "/huge/", "application/json");
    assert_eq!(r.header("listing-truncated"), Some("true"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(v.as_array().map(Vec::len), Some(10_000));
}
