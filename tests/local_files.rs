//! The files portshare leaves on the local machine (issue 19): the control
//! socket is never reachable with a wider mode than intended, store writes
//! keep `sslcert.json`'s owner and mode, and temp files left by a killed
//! writer neither break later writes nor stay around.
//!
//! The owner tests need root (they chown to a numeric uid that has no
//! account, so nothing on the machine changes); as another user they only
//! say that they were skipped.
#![cfg(unix)]

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{wait_for, wait_output, TestServer, BIN};
use portshare::store::Store;

const WAIT: Duration = Duration::from_secs(20);

fn store_file(e: &TestServer) -> PathBuf {
    e.dir.path().join("certs").join("sslcert.json")
}

/// `portshare --config <config> ARGS…`, waited for.
fn run(e: &TestServer, args: &[&str]) -> Output {
    common::run_cli(&e.config, args)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether this test process runs as root (owns what it creates as uid 0).
fn is_root(dir: &Path) -> bool {
    let probe = dir.join("uid-probe");
    std::fs::write(&probe, b"").expect("probe file");
    let root = std::fs::metadata(&probe).expect("probe").uid() == 0;
    std::fs::remove_file(&probe).expect("remove probe");
    root
}

/// A uid (used as gid, too) that no account has: owning files with it
/// changes nothing outside the test's folder.
fn unused_id() -> u32 {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let taken = |id: u32| {
        let field = format!(":{id}:");
        passwd.contains(&field) || group.contains(&field)
    };
    let mut id = 3_900_000 + std::process::id() % 90_000;
    while taken(id) {
        id += 1;
    }
    id
}

/// `setpriv` runs a command as a numeric uid without an account; `None`
/// when it is not installed.
fn setpriv_available() -> bool {
    Command::new("setpriv")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The command `args` run as `id:id` with no supplementary groups.
fn as_user(id: u32, args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={id}"))
        .arg(format!("--regid={id}"))
        .arg("--clear-groups")
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A configuration whose store exists (one reservation, added as root) and
/// whose folders others may enter, as a service's folders are.
fn seeded_store() -> (TestServer, PathBuf) {
    let e = TestServer::prepare("", |_| {});
    let o = run(
        &e,
        &[
            "http",
            "add",
            "urlacl",
            "url=http://+:18080/a/",
            "user=root",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let store = store_file(&e);
    assert!(store.is_file(), "the store was written");
    for d in [e.dir.path().to_path_buf(), e.dir.path().join("certs")] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    }
    (e, store)
}

// ---------------------------------------------------------------------------
// 6. Store writes keep the file's owner and mode
// ---------------------------------------------------------------------------

#[test]
fn store_update_by_root_keeps_owner_and_mode() {
    let (e, store) = seeded_store();
    if !is_root(e.dir.path()) {
        eprintln!("skipped: needs root to give the store another owner");
        return;
    }
    // The server's user owns its store, readable by its group only.
    let id = unused_id();
    std::os::unix::fs::chown(&store, Some(id), Some(id)).expect("chown store");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o640)).expect("chmod");

    let o = run(
        &e,
        &[
            "http",
            "add",
            "urlacl",
            "url=http://+:18080/x/",
            "user=root",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let meta = std::fs::metadata(&store).expect("store");
    assert_eq!((meta.uid(), meta.gid()), (id, id), "owner kept");
    assert_eq!(meta.mode() & 0o7777, 0o640, "mode kept");
    let content = std::fs::read_to_string(&store).expect("read store");
    assert!(content.contains("http://+:18080/x/"), "{content}");

    // And so the server's user still reads it.
    if setpriv_available() {
        let out = as_user(id, &["cat"])
            .arg(&store)
            .output()
            .expect("setpriv cat");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn an_unreadable_store_says_how_to_fix_it() {
    let (e, store) = seeded_store();
    if !is_root(e.dir.path()) || !setpriv_available() {
        eprintln!("skipped: needs root and setpriv to read as another user");
        return;
    }
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let id = unused_id();
    let child = as_user(id, &[BIN])
        .arg("--config")
        .arg(&e.config)
        .args(["http", "show", "urlacl"])
        .spawn()
        .expect("setpriv portshare");
    let out = text(&wait_output(child, WAIT));
    let path = store.display().to_string();
    for want in [
        path.as_str(),
        "may not read the file (owner uid 0, gid 0, mode 0600)",
        "give the server's user read access",
        "chmod 0644",
    ] {
        assert!(out.contains(want), "{want:?} missing in:\n{out}");
    }
}

// ---------------------------------------------------------------------------
// 7. Stale temp files
// ---------------------------------------------------------------------------

/// Temp files beside `store` (anything but the store and its lock).
fn temp_files(store: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store.parent().expect("folder"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    names.sort();
    names
}

#[test]
fn stale_temp_files_neither_break_writes_nor_stay() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::in_cert_dir(dir.path());
    store
        .update(|d| {
            d.timeouts.idle_connection = Some(30);
            Ok::<_, ()>(())
        })
        .expect("first write");

    // Left by writers killed mid-way. With the old naming
    // (`.sslcert.json.<pid>.<n>.tmp`), one from a dead process whose pid is
    // now ours made our own write fail with "File exists".
    let pid = std::process::id();
    let mut stale: Vec<PathBuf> = (0..64)
        .map(|n| dir.path().join(format!(".sslcert.json.{pid}.{n}.tmp")))
        .collect();
    stale.push(dir.path().join(".sslcert.json.4242.0123456789abcdef.tmp"));
    for p in &stale {
        std::fs::write(p, b"{ half").expect("stale temp file");
    }
    // Not a temp file of the store: kept.
    let other = dir.path().join(".sslcert.json.backup");
    std::fs::write(&other, b"mine").expect("other file");

    store
        .update(|d| {
            d.timeouts.idle_connection = Some(31);
            Ok::<_, ()>(())
        })
        .expect("a write despite the stale temp files");
    assert_eq!(
        store.load().expect("load").timeouts.idle_connection,
        Some(31)
    );
    assert_eq!(temp_files(store.path()), Vec::<String>::new());
    assert!(other.exists(), "unrelated files stay");
}

#[test]
fn the_cli_removes_stale_temp_files() {
    let (e, store) = seeded_store();
    let dir = store.parent().expect("certs").to_path_buf();
    let old = dir.join(".sslcert.json.999999.0.tmp");
    let new = dir.join(".sslcert.json.999999.00000000deadbeef.tmp");
    for p in [&old, &new] {
        std::fs::write(p, b"{").expect("stale temp file");
    }
    let o = run(
        &e,
        &[
            "http",
            "add",
            "urlacl",
            "url=http://+:18080/y/",
            "user=root",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(temp_files(&store), Vec::<String>::new());
}

// ---------------------------------------------------------------------------
// 5. The control socket's mode
// ---------------------------------------------------------------------------

/// Under umask 000, bind() makes a 0777 socket. Setting the mode after bind
/// left it open to everyone for a moment, and a chmod on the socket's final
/// name is exactly what the folder's inotify watch sees (IN_ATTRIB): there
/// must be none, and the socket must be 0600 from the moment it has its name.
#[test]
fn control_socket_is_private_from_the_start_under_umask_000() {
    let mut server = TestServer::prepare("", |_| {});
    let dir = server.dir.path().to_path_buf();
    let socket = dir.join("portshare.sock");

    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let _ = tx.send(ev);
    })
    .expect("watcher");
    notify::Watcher::watch(&mut watcher, &dir, notify::RecursiveMode::NonRecursive)
        .expect("watch the folder");

    // exec keeps the pid, so dropping `server` stops the server itself.
    let child = Command::new("sh")
        .arg("-c")
        .arg(r#"umask 000 && exec "$0" --config "$1""#)
        .arg(BIN)
        .arg(&server.config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start portshare under umask 000");
    server.child = Some(child);

    let meta = wait_for(WAIT, "the control socket", || {
        std::fs::symlink_metadata(&socket)
            .ok()
            .filter(|m| m.file_type().is_socket())
    });
    assert_eq!(meta.mode() & 0o777, 0o600);

    // Events arrive in order: once the marker's is in, the socket's are too.
    let marker = dir.join("marker");
    std::fs::write(&marker, b"").expect("marker");
    let deadline = Instant::now() + WAIT;
    let mut socket_events = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = match rx.recv_timeout(left) {
            Ok(Ok(ev)) => ev,
            Ok(Err(e)) => panic!("watch error: {e}"),
            Err(_) => panic!("timed out waiting for the marker's event"),
        };
        if ev.paths.iter().any(|p| p == &marker) {
            break;
        }
        if ev.paths.iter().any(|p| p == &socket) {
            socket_events.push(ev.kind);
        }
    }
    assert!(
        socket_events
            .iter()
            .any(|k| matches!(k, notify::EventKind::Create(_))),
        "the watch saw the socket appear: {socket_events:?}"
    );
    assert!(
        !socket_events.iter().any(|k| matches!(
            k,
            notify::EventKind::Modify(notify::event::ModifyKind::Metadata(_))
        )),
        "the socket's mode was changed after it had its name: {socket_events:?}"
    );

    // The private folder it was bound in goes (just after the socket has
    // its name, so it may still be there for a moment).
    let left_behind = || -> Vec<String> {
        std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".ps"))
            .collect()
    };
    let deadline = Instant::now() + WAIT;
    while !left_behind().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(left_behind().is_empty(), "left behind: {:?}", left_behind());

    // And the socket works.
    std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    drop(server);
}
