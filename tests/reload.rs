//! Configuration reload without a restart (`portshare reload`, SIGHUP,
//! `watch_config=yes`): sites and applications come and go under load
//! with no failed request, a bad file is refused whole, run-time
//! registrations and keep-alive connections survive.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{cli, run_cli, wait_for, TestServer};

/// A backend answering every request with `ok` (one request a
/// connection), on a port of its own.
fn backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("backend listener");
    let port = listener.local_addr().expect("backend address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                // The head ends with an empty line.
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let _ = (&stream).write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            });
        }
    });
    port
}

/// The server's GLOBAL.INI as prepared, to write variants of.
struct Config {
    path: std::path::PathBuf,
    base: String,
}

impl Config {
    fn of(s: &TestServer) -> Config {
        Config {
            path: s.config.clone(),
            base: std::fs::read_to_string(&s.config).expect("read config"),
        }
    }

    fn write(&self, extra: &str) {
        // Written whole and renamed into place, as an editor or a
        // ConfigMap swap does: a reader never sees half a file.
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n{extra}", self.base)).expect("write config");
        std::fs::rename(&tmp, &self.path).expect("rename config");
    }
}

fn reload(s: &TestServer) -> (bool, String) {
    let out = run_cli(&s.config, &["reload"]);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn server() -> (TestServer, Config, String, u16) {
    let s = TestServer::start_with("", |p| std::fs::write(p.join("a.txt"), "a").unwrap());
    let extra_dir = s.dir.path().join("extra");
    std::fs::create_dir_all(&extra_dir).unwrap();
    std::fs::write(extra_dir.join("x.txt"), "extra").unwrap();
    let config = Config::of(&s);
    let port = backend();
    (s, config, extra_dir.display().to_string(), port)
}

fn with_site_and_app(port: u16, dir: &str, backend: u16) -> String {
    format!(
        "[site:extra]\nprefix=http://+:{port}/extra/\npublic_dir={dir}\n\
         [app:b]\nprefix=http://+:{port}/b/\nbackend=http://127.0.0.1:{backend}\n"
    )
}

#[test]
fn twenty_reloads_under_load_lose_no_request() {
    let (s, config, dir, backend) = server();
    let s = Arc::new(s);
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (s, stop, done, failed) = (s.clone(), stop.clone(), done.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = s.get("/a.txt");
                    if r.status != 200 || r.body != b"a" {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // A keep-alive connection opened before the reloads.
    let mut kept = TcpStream::connect(s.addr()).expect("connect");
    kept.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let ask = |stream: &mut TcpStream| {
        stream
            .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send on the kept connection");
        let mut buf = [0u8; 1024];
        let n = stream
            .read(&mut buf)
            .expect("answer on the kept connection");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(ask(&mut kept).starts_with("HTTP/1.1 200 "));

    for round in 0..20 {
        let with = round % 2 == 0;
        config.write(&if with {
            with_site_and_app(s.port, &dir, backend)
        } else {
            String::new()
        });
        let (ok, out) = reload(&s);
        assert!(ok, "round {round}: {out}");
        assert!(out.contains("Configuration reloaded"), "{out}");
        if with {
            assert_eq!(s.get("/extra/x.txt").text(), "extra", "round {round}");
            assert_eq!(s.get("/b/anything").text(), "ok", "round {round}");
        } else {
            assert_eq!(s.get("/extra/x.txt").status, 404, "round {round}");
            assert_eq!(s.get("/b/anything").status, 404, "round {round}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().expect("load thread");
    }
    assert!(done.load(Ordering::Relaxed) > 20, "the load ran");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(
        ask(&mut kept).starts_with("HTTP/1.1 200 "),
        "kept-alive connection survives"
    );
}

#[test]
fn a_bad_file_is_refused_whole_and_the_running_configuration_stays() {
    let (s, config, dir, backend) = server();
    config.write(&with_site_and_app(s.port, &dir, backend));
    assert!(reload(&s).0);
    config.write(&format!(
        "{}\n[site:broken]\nprefix=http://+:{}/broken/\npublic_dir={}/missing\n",
        with_site_and_app(s.port, &dir, backend),
        s.port,
        dir
    ));
    let (ok, out) = reload(&s);
    assert!(!ok, "{out}");
    assert!(out.contains("[site:broken] public_dir"), "{out}");
    assert!(out.contains("the running one stays"), "{out}");
    assert_eq!(s.get("/extra/x.txt").text(), "extra");
    assert_eq!(s.get("/b/").text(), "ok");

    config.write("bogus=1");
    let (ok, out) = reload(&s);
    assert!(!ok);
    assert!(out.contains("[param] bogus: unknown key"), "{out}");
    assert_eq!(s.get("/extra/x.txt").text(), "extra");
}

#[test]
fn run_time_registrations_survive_a_reload() {
    let (s, config, dir, backend) = server();
    let prefix = format!("http://+:{}/live/", s.port);
    let mut holder = cli(
        &s.config,
        &[
            "register",
            &prefix,
            "--backend",
            &format!("http://127.0.0.1:{backend}"),
        ],
    )
    .spawn()
    .expect("start register");
    wait_for(Duration::from_secs(20), "the run-time registration", || {
        (s.get("/live/x").status == 200).then_some(())
    });
    config.write(&with_site_and_app(s.port, &dir, backend));
    assert!(reload(&s).0);
    assert_eq!(s.get("/live/x").text(), "ok");
    config.write("");
    assert!(reload(&s).0);
    assert_eq!(s.get("/live/x").text(), "ok");
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn sighup_and_a_watched_file_reload() {
    let (s, config, dir, backend) = server();
    config.write(&with_site_and_app(s.port, &dir, backend));
    let pid = s.child.as_ref().map(|c| c.id()).expect("server pid");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    wait_for(Duration::from_secs(10), "the reload after SIGHUP", || {
        (s.get("/extra/x.txt").status == 200).then_some(())
    });

    // watch_config=yes: a change of the file is enough.
    let watched = TestServer::start_with("watch_config=yes", |p| {
        std::fs::write(p.join("a.txt"), "a").unwrap()
    });
    let config = Config::of(&watched);
    config.write(&with_site_and_app(watched.port, &dir, backend));
    wait_for(
        Duration::from_secs(10),
        "the reload after the change",
        || (watched.get("/b/x").status == 200).then_some(()),
    );
    assert_eq!(watched.get("/extra/x.txt").text(), "extra");
}

#[test]
fn auth_sections_follow_a_reload() {
    let (s, config, _, _) = server();
    let public = s.dir.path().join("public");
    std::fs::create_dir_all(public.join("priv")).unwrap();
    std::fs::write(public.join("priv/x.txt"), "secret").unwrap();
    let hash = portshare::auth::htpasswd::hash_password("pw", 4).unwrap();
    std::fs::write(s.dir.path().join("users.htpasswd"), format!("ann:{hash}\n")).unwrap();
    let get = |auth: &str| {
        s.request(&format!(
            "GET /priv/x.txt HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
        ))
        .status
    };
    // "ann:pw" and "ann:no" in Base64.
    let (good, bad) = (
        "Authorization: Basic YW5uOnB3\r\n",
        "Authorization: Basic YW5uOm5v\r\n",
    );
    assert_eq!(get(""), 200);
    let section = |users: &str| {
        format!(
            "[auth:p]\nprefix=http://+:{}/priv/\nusers={users}\nallow_http=yes\n",
            s.port
        )
    };

    config.write(&section("users.htpasswd"));
    let (ok, out) = reload(&s);
    assert!(ok, "{out}");
    assert!(!out.contains("restart"), "{out}");
    assert_eq!(get(""), 401);
    assert_eq!(get(bad), 401);
    assert_eq!(get(good), 200);

    // A users file that cannot be read refuses the reload whole.
    config.write(&section("missing.htpasswd"));
    let (ok, out) = reload(&s);
    assert!(!ok, "{out}");
    assert!(
        out.contains("[auth:p]") && out.contains("missing.htpasswd"),
        "{out}"
    );
    assert_eq!(get(""), 401);
    assert_eq!(get(good), 200);

    config.write("");
    let (ok, out) = reload(&s);
    assert!(ok, "{out}");
    assert_eq!(get(""), 200);
}
