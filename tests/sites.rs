//! Several sites on one port (`[site:NAME]`): chosen by host name or by
//! path with HTTP.sys's precedence, each serving its own folder, and
//! against applications and run-time registrations; bad site sections stop
//! start-up with one line naming the file, section and key.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{cli, run_cli, wait_for, RawResponse, TestServer};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write a site file");
}

/// A folder outside the server's public folder, with `files`.
fn folder(parent: &TestServer, name: &str, files: &[(&str, &str)]) -> String {
    let dir = parent.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("site folder");
    for (f, text) in files {
        write(&dir, f, text);
    }
    dir.display().to_string()
}

fn get_host(s: &TestServer, host: &str, path: &str) -> RawResponse {
    s.request(&format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ))
}

/// Starts a server whose INI gets `sections(server)` appended (the
/// server's own folders exist by then).
fn start(param: &str, sections: impl FnOnce(&TestServer) -> String) -> TestServer {
    let s = TestServer::prepare(param, |p| write(p, "who.txt", "default"));
    let extra = sections(&s).replace("{port}", &s.port.to_string());
    let ini = std::fs::read_to_string(&s.config).expect("read config");
    std::fs::write(&s.config, format!("{ini}\n{extra}")).expect("write config");
    s.launch(&[])
}

#[test]
fn two_sites_by_host_name_each_serve_their_own_folder() {
    let s = start("host_name=*", |s| {
        let blog = folder(s, "blog", &[("who.txt", "blog")]);
        let photos = folder(s, "photos", &[("who.txt", "photos"), ("only.txt", "p")]);
        format!(
            "[site:blog]\nprefix=http://blog.test:{{port}}/\npublic_dir={blog}\n\
             [site:photos]\nprefix=http://photos.test:{{port}}/\npublic_dir={photos}\n"
        )
    });
    assert_eq!(get_host(&s, "blog.test", "/who.txt").text(), "blog");
    assert_eq!(get_host(&s, "PHOTOS.test", "/who.txt").text(), "photos");
    // Any other host: the built-in site (a weak wildcard, weaker than names).
    assert_eq!(get_host(&s, "other.test", "/who.txt").text(), "default");
    // A site's files never answer another site's requests.
    assert_eq!(get_host(&s, "blog.test", "/only.txt").status, 404);
    assert_eq!(get_host(&s, "photos.test", "/only.txt").status, 200);
}

#[test]
fn two_sites_by_path_and_the_longest_prefix_wins() {
    let s = start("", |s| {
        let blog = folder(s, "blog", &[("who.txt", "blog")]);
        let old = folder(s, "old", &[("who.txt", "old blog")]);
        format!(
            "[site:blog]\nprefix=http://+:{{port}}/blog/\npublic_dir={blog}\n\
             [site:archive]\nprefix=http://+:{{port}}/blog/2019/\npublic_dir={old}\n"
        )
    });
    assert_eq!(s.get("/who.txt").text(), "default");
    assert_eq!(s.get("/blog/who.txt").text(), "blog");
    assert_eq!(s.get("/Blog/2019/who.txt").text(), "old blog");
    // The prefix's path is not part of the file path.
    assert_eq!(s.get("/blog/blog/who.txt").status, 404);

    // Each site is a registration: `show servicestate` lists it.
    let out = run_cli(&s.config, &["http", "show", "servicestate"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("HTTP://+:{}/BLOG/2019/", s.port)),
        "{text}"
    );
    assert!(text.contains("site:archive"), "{text}");
}

#[test]
fn applications_and_run_time_registrations_beat_a_site_on_their_paths() {
    let s = start("", |s| {
        let blog = folder(s, "blog", &[("who.txt", "blog")]);
        format!(
            "[site:blog]\nprefix=http://+:{{port}}/blog/\npublic_dir={blog}\n\
             [app:api]\nprefix=http://+:{{port}}/blog/api/\nbackend=http://127.0.0.1:9\n"
        )
    });
    // The application's prefix is longer: its (unreachable) backend answers
    // with HTTP.sys's 503, not the site's 404.
    assert_eq!(s.get("/blog/api/who.txt").status, 503);
    assert_eq!(s.get("/blog/who.txt").text(), "blog");

    let prefix = format!("http://+:{}/blog/live/", s.port);
    let mut holder = cli(
        &s.config,
        &["register", &prefix, "--backend", "http://127.0.0.1:9"],
    )
    .spawn()
    .expect("start register");
    wait_for(Duration::from_secs(20), "the run-time registration", || {
        (s.get("/blog/live/who.txt").status == 503).then_some(())
    });
    assert_eq!(s.get("/blog/who.txt").text(), "blog");
    let _ = holder.kill();
    let _ = holder.wait();
}

/// The server's exit and its complaint, for a configuration it must refuse.
fn refused(param: &str, sections: impl FnOnce(&TestServer) -> String) -> String {
    let s = TestServer::prepare(param, |_| {});
    let extra = sections(&s).replace("{port}", &s.port.to_string());
    let ini = std::fs::read_to_string(&s.config).expect("read config");
    std::fs::write(&s.config, format!("{ini}\n{extra}")).expect("write config");
    let out = run_cli(&s.config, &[]);
    assert!(!out.status.success(), "the server must not start");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let config = s.config.display().to_string();
    let line = err
        .lines()
        .find(|l| l.contains(&config))
        .unwrap_or_else(|| panic!("no line names {config}: {err}"))
        .to_owned();
    line
}

#[test]
fn bad_site_sections_stop_start_up_naming_file_section_and_key() {
    let line = refused("", |s| {
        format!(
            "[site:blog]\nprefix=http://+:{{port}}/blog/\npublic_dir={}\n",
            s.dir.path().join("missing").display()
        )
    });
    assert!(line.contains("[site:blog] public_dir"), "{line}");
    assert!(line.contains("does not exist"), "{line}");

    let line = refused("", |s| {
        let a = folder(s, "a", &[]);
        format!(
            "[app:api]\nprefix=http://+:{{port}}/x/\nbackend=http://127.0.0.1:9\n\
             [site:blog]\nprefix=http://+:{{port}}/X/\npublic_dir={a}\n"
        )
    });
    assert!(line.contains("is already registered by ["), "{line}");
    assert!(line.contains("(Error 183)"), "{line}");
    assert!(
        line.contains("[site:blog]") && line.contains("[app:api]"),
        "both sections named: {line}"
    );

    let line = refused("", |s| {
        let a = folder(s, "a", &[]);
        format!("[site:blog]\nprefix=http://+:{{port}}/b/\npublic_dir={a}\nredirect=/a /b 303\n")
    });
    assert!(line.contains("[site:blog] redirect"), "{line}");
    assert!(line.contains("'303' is not a redirect status"), "{line}");

    let line = refused("", |s| {
        let a = folder(s, "a", &[]);
        format!("[site:blog]\nprefix=http://+:{{port}}/b/\npublic_dir={a}\nlistings=yes\n")
    });
    assert!(line.contains("[site:blog] listings: unknown key"), "{line}");

    let line = refused("hsts=forever", |_| String::new());
    assert!(line.contains("[param] hsts"), "{line}");
}
