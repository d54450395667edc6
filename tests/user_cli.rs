//! `portshare user add|delete|list --file FILE NAME` (issue 25.7): bcrypt
//! lines, other lines kept, mode 0600, atomic replacement, clear refusals.
#![cfg(unix)]

mod common;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use portshare::auth::htpasswd::{Hash, Users};

fn user(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(common::BIN)
        .arg("user")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    common::wait_output(child, std::time::Duration::from_secs(30))
}

fn add(file: &Path, name: &str, password: &str) -> Output {
    let file = file.to_str().unwrap();
    user(
        &[
            "add",
            "--file",
            file,
            "--cost",
            "4",
            "--password-stdin",
            name,
        ],
        Some(&format!("{password}\n")),
    )
}

fn check(file: &Path, name: &str, password: &str) -> bool {
    let users = Users::load(file).unwrap();
    let (hash, known): (Option<&Hash>, bool) = users.hash_for(name);
    known && hash.unwrap().verify(password.as_bytes())
}

#[test]
fn add_change_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    let out = add(&file, "ann", "first pw");
    assert!(out.status.success(), "{out:?}");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("ann:$2y$04$"), "{text}");
    assert!(check(&file, "ann", "first pw"));

    // Other lines stay as they were, comments included.
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.insert_str(0, "# family\n");
    text.push_str("old:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n");
    std::fs::write(&file, &text).unwrap();
    let ino = std::fs::metadata(&file).unwrap().ino();
    let out = add(&file, "bob", "pw2");
    assert!(out.status.success(), "{out:?}");
    // The refused line is reported, not dropped.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("user 'old'"),
        "{out:?}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# family\nann:$2y$"), "{text}");
    assert!(text.contains("\nold:{SHA}"), "{text}");
    // Atomic: a new file renamed over the old one, no temp file left, and
    // still 0600 although the test rewrote it with the default mode.
    let meta = std::fs::metadata(&file).unwrap();
    assert_ne!(meta.ino(), ino, "the file was rewritten in place");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["users"]);

    // A new password for a user replaces its line.
    assert!(add(&file, "old", "strong").status.success());
    assert!(add(&file, "ann", "second pw").status.success());
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.matches("ann:").count(), 1, "{text}");
    assert!(check(&file, "ann", "second pw"));
    assert!(!check(&file, "ann", "first pw"));
    assert!(check(&file, "old", "strong"));

    let out = user(&["list", "--file", file.to_str().unwrap()], None);
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed, "ann\tbcrypt\nold\tbcrypt\nbob\tbcrypt\n");

    let out = user(&["delete", "--file", file.to_str().unwrap(), "bob"], None);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("bob:"), "{text}");
    assert!(text.starts_with("# family\n"), "{text}");

    let out = user(&["delete", "--file", file.to_str().unwrap(), "bob"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user 'bob'"));
}

#[test]
fn refusals() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    for bad in ["a:b", "a b", ""] {
        let out = add(&file, bad, "pw");
        assert!(!out.status.success(), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not a valid user name"),
            "{out:?}"
        );
    }
    let out = add(&file, "ann", "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty"));
    assert!(!file.exists());
    let out = user(&["list", "--file", file.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}
