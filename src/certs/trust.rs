//! `portshare cert trust [THUMBPRINT] [--remove]`: adds a CA of the store to the trust
//! stores of this machine (as `mkcert -install` or `caddy trust` do), or takes it out.
//!
//! - Debian/Ubuntu: `/usr/local/share/ca-certificates/portshare-<thumb>.crt`, then
//!   `update-ca-certificates`.
//! - Fedora/RHEL: `/etc/pki/ca-trust/source/anchors/portshare-<thumb>.pem`, then
//!   `update-ca-trust extract`.
//! - NSS databases (Chromium's `~/.pki/nssdb`, Firefox profiles) through `certutil`,
//!   when it is installed and the database exists.
//! - Windows: the `Root` store through `certutil -addstore` (see `trust_windows`).
//!
//! Each step that cannot be done (no privileges, no tool) is reported with the command
//! that does it by hand; the exit code is 1 only when nothing could be done.
//!
//! `PORTSHARE_TRUST_DIR=DIR` replaces all of that with a test location: the anchor is
//! written to DIR and, instead of running `update-ca-certificates`, the bundle file
//! `PORTSHARE_TRUST_BUNDLE` (default `DIR/ca-bundle.crt`) is rebuilt from every `*.crt`
//! in DIR — what clients get with `curl --cacert` or `cafile=`. No system tool runs and
//! no NSS database is touched then, so tests never change the machine they run on.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::commands::CommandOutput;
use super::{ca, keys, CertStore, Certificate, Thumbprint};

/// Names a test anchor folder; see the module notes.
pub const TRUST_DIR_ENV: &str = "PORTSHARE_TRUST_DIR";
/// The bundle file rebuilt under [`TRUST_DIR_ENV`].
pub const TRUST_BUNDLE_ENV: &str = "PORTSHARE_TRUST_BUNDLE";

/// Where `cert trust` works: the test folder and bundle when set, and the home folder
/// (for NSS databases).
#[derive(Debug, Clone, Default)]
pub struct TrustEnv {
    pub test_dir: Option<PathBuf>,
    pub bundle: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// The user who ran `sudo`, whose browsers' NSS databases root does not see.
    pub sudo_user: Option<String>,
}

impl TrustEnv {
    /// From the process environment (empty values count as unset).
    pub fn from_process() -> Self {
        let path = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        TrustEnv {
            test_dir: path(TRUST_DIR_ENV),
            bundle: path(TRUST_BUNDLE_ENV),
            home: path("HOME"),
            sudo_user: std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty()),
        }
    }
}

/// What the steps did: lines for stdout, and what could not be done (with the command
/// to do it by hand) for stderr.
#[derive(Debug, Default)]
struct Report {
    done: Vec<String>,
    failed: Vec<String>,
}

/// The anchor's file name, also used to find it again for `--remove`.
fn anchor_name(thumb: &Thumbprint, ext: &str) -> String {
    format!("portshare-{thumb}.{ext}")
}

/// `cert trust [THUMBPRINT] [--remove]`.
pub fn trust(
    cert_dir: &Path,
    thumbprint: Option<&str>,
    remove: bool,
    env: &TrustEnv,
) -> CommandOutput {
    let verb = "trust";
    let (certs, _) = CertStore::scan(cert_dir);
    let thumb = match thumbprint {
        Some(text) => match text.parse::<Thumbprint>() {
            Ok(t) => t,
            Err(e) => return fail(verb, e),
        },
        None => match ca::dev_ca(&certs, Utc::now()) {
            Some(c) => c.thumbprint,
            None => {
                return fail(
                    verb,
                    format!(
                        "there is no development CA (\"{}\") in the store {}; name the CA \
                         to trust: `portshare cert trust THUMBPRINT` (`portshare cert list` \
                         marks CAs), or make one with `portshare cert new --ca`",
                        ca::DEV_CA_NAME,
                        cert_dir.display()
                    ),
                )
            }
        },
    };
    let cert = certs.into_iter().find(|c| c.thumbprint == thumb);
    let pem = match (&cert, remove) {
        (Some(c), _) => match c.chain.first() {
            Some(der) => keys::pem_block("CERTIFICATE", der.as_ref()),
            None => return fail(verb, "the certificate chain is empty"),
        },
        // Removal works by thumbprint, even after the CA left the store.
        (None, true) => String::new(),
        (None, false) => {
            return fail(
                verb,
                format!(
                    "no certificate with thumbprint {} in the store {} (see `portshare cert list`)",
                    thumb.to_upper(),
                    cert_dir.display()
                ),
            )
        }
    };
    if let (Some(c), false) = (&cert, remove) {
        if !c.info.is_ca {
            return fail(
                verb,
                format!(
                    "certificate {} ({}) is not a CA; trust the CA that issues your \
                     certificates instead (`portshare cert new --ca`, then \
                     `portshare cert new --dns NAME --signer CA-THUMBPRINT`)",
                    thumb.to_upper(),
                    c.info.subject
                ),
            );
        }
    }
    let hand_file = hand_file(cert.as_ref(), &thumb);
    let mut report = Report::default();
    match &env.test_dir {
        Some(dir) => test_store(
            dir,
            env.bundle.as_deref(),
            &thumb,
            &pem,
            remove,
            &mut report,
        ),
        None => system_stores(env, &thumb, &pem, &hand_file, remove, &mut report),
    }

    let what = match &cert {
        Some(c) => format!("{} ({})", thumb.to_upper(), c.info.subject),
        None => thumb.to_upper(),
    };
    let mut out = CommandOutput::default();
    for line in &report.done {
        out.stdout.push_str(line);
        out.stdout.push('\n');
    }
    for line in &report.failed {
        out.stderr.push_str(&format!("WARNING: {line}\n"));
    }
    if report.done.is_empty() {
        out.stderr.push_str(&format!(
            "portshare cert trust: CA {what} was {} no trust store; see the warnings above\n",
            if remove { "removed from" } else { "added to" }
        ));
        out.code = 1;
    } else {
        out.stdout.push_str(&if remove {
            format!("CA {what} is no longer trusted where listed above.\n")
        } else {
            format!(
                "CA {what} is trusted where listed above; restart browsers to see it. \
                 Other devices: `portshare cert export {} --out ca.crt` and install ca.crt there.\n",
                thumb.to_upper()
            )
        });
    }
    out
}

fn fail(verb: &str, message: impl std::fmt::Display) -> CommandOutput {
    CommandOutput {
        stdout: String::new(),
        stderr: format!("portshare cert {verb}: {message}\n"),
        code: 1,
    }
}

/// A file holding the CA certificate alone for hand-typed commands: the store's PEM
/// file when it has no key in it, else the one `cert export` writes first.
fn hand_file(cert: Option<&Certificate>, thumb: &Thumbprint) -> (String, String) {
    if let Some(c) = cert {
        let is_pem = c
            .source
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("pem"));
        let keyless = std::fs::read_to_string(&c.source).is_ok_and(|t| {
            !t.contains("PRIVATE KEY") && t.matches("BEGIN CERTIFICATE").count() == 1
        });
        if is_pem && keyless {
            let path = std::path::absolute(&c.source).unwrap_or_else(|_| c.source.clone());
            return (path.display().to_string(), String::new());
        }
    }
    (
        "ca.crt".to_owned(),
        format!(
            "portshare cert export {} --out ca.crt && ",
            thumb.to_upper()
        ),
    )
}

/// The test location: anchor in `dir`, bundle rebuilt from every `*.crt` there.
fn test_store(
    dir: &Path,
    bundle: Option<&Path>,
    thumb: &Thumbprint,
    pem: &str,
    remove: bool,
    report: &mut Report,
) {
    let anchor = dir.join(anchor_name(thumb, "crt"));
    let step = if remove {
        match std::fs::remove_file(&anchor) {
            Ok(()) => Ok(format!("Removed {}", anchor.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(format!("{} was not there", anchor.display()))
            }
            Err(e) => Err(format!("cannot remove {}: {e}", anchor.display())),
        }
    } else {
        std::fs::create_dir_all(dir)
            .and_then(|()| crate::atomic_file::write_atomic(&anchor, pem.as_bytes(), false))
            .map(|()| format!("Added {}", anchor.display()))
            .map_err(|e| format!("cannot write {}: {e}", anchor.display()))
    };
    match step {
        Ok(line) => report.done.push(line),
        Err(line) => {
            report.failed.push(line);
            return;
        }
    }
    let bundle = bundle
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("ca-bundle.crt"));
    match rebuild_bundle(dir, &bundle) {
        Ok(n) => report.done.push(format!(
            "Rebuilt {} ({n} certificate file(s) from {}; {TRUST_DIR_ENV} is set, so no system \
             trust store was changed)",
            bundle.display(),
            dir.display()
        )),
        Err(e) => report
            .failed
            .push(format!("cannot rebuild {}: {e}", bundle.display())),
    }
}

/// Concatenates every `*.crt` in `dir` (but `bundle` itself) into `bundle`, in name
/// order as `update-ca-certificates` does; the number of files.
fn rebuild_bundle(dir: &Path, bundle: &Path) -> std::io::Result<usize> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "crt") && p.as_path() != bundle)
        .collect();
    files.sort();
    let mut text = String::new();
    for f in &files {
        let t = std::fs::read_to_string(f)?;
        text.push_str(t.trim_end());
        text.push('\n');
    }
    crate::atomic_file::write_atomic(bundle, text.as_bytes(), false)?;
    Ok(files.len())
}

/// This machine's stores: the system store, then NSS databases.
#[cfg(windows)]
fn system_stores(
    _env: &TrustEnv,
    thumb: &Thumbprint,
    pem: &str,
    _hand: &(String, String),
    remove: bool,
    report: &mut Report,
) {
    let r = if remove {
        super::trust_windows::remove(thumb)
    } else {
        super::trust_windows::add(thumb, pem)
    };
    match r {
        Ok(line) => report.done.push(line),
        Err(line) => report.failed.push(line),
    }
}

#[cfg(not(windows))]
fn system_stores(
    env: &TrustEnv,
    thumb: &Thumbprint,
    pem: &str,
    hand: &(String, String),
    remove: bool,
    report: &mut Report,
) {
    if cfg!(target_os = "macos") {
        let (file, export) = hand;
        report.failed.push(if remove {
            format!(
                "portshare does not change the macOS keychain; by hand: \
                 sudo security delete-certificate -Z {} /Library/Keychains/System.keychain",
                thumb.to_upper()
            )
        } else {
            format!(
                "portshare does not change the macOS keychain; by hand: {export}sudo security \
                 add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {file}"
            )
        });
    } else {
        linux_system(thumb, pem, hand, remove, report);
    }
    nss(env, thumb, pem, remove, report);
}

/// Debian-style or Fedora-style anchors, whichever this system has.
#[cfg(not(windows))]
fn linux_system(
    thumb: &Thumbprint,
    pem: &str,
    hand: &(String, String),
    remove: bool,
    report: &mut Report,
) {
    let layouts = [
        (
            "/usr/local/share/ca-certificates",
            "crt",
            "update-ca-certificates",
            &[][..],
        ),
        (
            "/etc/pki/ca-trust/source/anchors",
            "pem",
            "update-ca-trust",
            &["extract"][..],
        ),
    ];
    let Some((dir, ext, tool, args)) = layouts
        .iter()
        .find(|(dir, _, tool, _)| Path::new(dir).is_dir() && find_tool(tool).is_some())
    else {
        report.failed.push(
            "no system trust store found (neither /usr/local/share/ca-certificates with \
             update-ca-certificates nor /etc/pki/ca-trust/source/anchors with update-ca-trust); \
             install the ca-certificates package, or add the CA to your clients by hand"
                .to_owned(),
        );
        return;
    };
    let anchor = Path::new(dir).join(anchor_name(thumb, ext));
    let (file, export) = hand;
    let update = std::iter::once(*tool)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let by_hand = if remove {
        format!("sudo rm -f {} && sudo {update}", anchor.display())
    } else {
        format!(
            "{export}sudo cp {file} {} && sudo {update}",
            anchor.display()
        )
    };
    let written = if remove {
        match std::fs::remove_file(&anchor) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    } else {
        crate::atomic_file::write_atomic(&anchor, pem.as_bytes(), false).map(|()| true)
    };
    match written {
        Ok(false) => {
            report
                .done
                .push(format!("{} was not there (system store)", anchor.display()));
            return;
        }
        Ok(true) => {}
        Err(e) => {
            let why = if e.kind() == std::io::ErrorKind::PermissionDenied {
                "permission denied (the system store needs root)".to_owned()
            } else {
                e.to_string()
            };
            report.failed.push(format!(
                "cannot {} {}: {why}; run this command with sudo, or by hand: {by_hand}",
                if remove { "remove" } else { "write" },
                anchor.display()
            ));
            return;
        }
    }
    match run(tool, args, None) {
        Ok(()) => report.done.push(format!(
            "{} {} and ran {update} (system store)",
            if remove { "Removed" } else { "Added" },
            anchor.display()
        )),
        Err(e) => report.failed.push(format!(
            "{} {}, but {update} failed: {e}; run it by hand: sudo {update}",
            if remove { "removed" } else { "wrote" },
            anchor.display()
        )),
    }
}

/// NSS databases (Chromium's `~/.pki/nssdb`, Firefox profiles) that exist.
#[cfg(not(windows))]
fn nss(env: &TrustEnv, thumb: &Thumbprint, pem: &str, remove: bool, report: &mut Report) {
    if let Some(user) = &env.sudo_user {
        // Under sudo, HOME is root's (or ambiguous): the user's browsers are not reached.
        report.failed.push(format!(
            "run as root through sudo, so the browsers' NSS databases of {user} were not \
             changed; run `portshare cert trust {}{}` again as {user}, without sudo, for those",
            thumb.to_upper(),
            if remove { " --remove" } else { "" }
        ));
        return;
    }
    let Some(home) = &env.home else { return };
    let mut dbs: Vec<PathBuf> = Vec::new();
    let chromium = home.join(".pki/nssdb");
    if chromium.join("cert9.db").is_file() {
        dbs.push(chromium);
    }
    for profiles in [
        home.join(".mozilla/firefox"),
        home.join("snap/firefox/common/.mozilla/firefox"),
    ] {
        if let Ok(entries) = std::fs::read_dir(&profiles) {
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("cert9.db").is_file())
                .collect();
            found.sort();
            dbs.extend(found);
        }
    }
    if dbs.is_empty() {
        return;
    }
    let nick = format!("portshare {thumb}");
    if find_tool("certutil").is_none() {
        report.failed.push(format!(
            "browsers keep their own trust store ({}); certutil is not installed, so it \
             was not changed: install it (apt install libnss3-tools, or dnf install nss-tools) \
             and run this command again, or import the CA in the browser's certificate settings",
            dbs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return;
    }
    for db in dbs {
        let target = format!("sql:{}", db.display());
        let r = if remove {
            run("certutil", &["-D", "-d", &target, "-n", &nick], None)
        } else {
            run(
                "certutil",
                &["-A", "-d", &target, "-t", "C,,", "-n", &nick, "-a"],
                Some(pem.as_bytes()),
            )
        };
        match r {
            Ok(()) => report.done.push(format!(
                "{} \"{nick}\" {} the NSS database {}",
                if remove { "Removed" } else { "Added" },
                if remove { "from" } else { "to" },
                db.display()
            )),
            Err(e) => report.failed.push(format!(
                "certutil could not change {}: {e}; by hand: certutil {} -d {target} -n \"{nick}\"{}",
                db.display(),
                if remove { "-D" } else { "-A -t C,, -a -i ca.crt" },
                if remove { "" } else { " (with ca.crt from `portshare cert export`)" }
            )),
        }
    }
}

/// The program `name` on PATH.
#[cfg(not(windows))]
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs a tool to completion; its stderr (or exit status) as the error.
#[cfg(not(windows))]
fn run(tool: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(tool)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {tool}: {e}"))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data)
            .map_err(|e| format!("cannot write to {tool}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{tool} did not finish: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        Err(format!(
            "{tool} exited with {}{}",
            out.status,
            if err.is_empty() {
                String::new()
            } else {
                format!(": {err}")
            }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::ca::{new_ca, DEV_CA_NAME};
    use crate::certs::new_self_signed;

    fn env_for(dir: &Path) -> TrustEnv {
        TrustEnv {
            test_dir: Some(dir.join("anchors")),
            bundle: Some(dir.join("bundle.pem")),
            // No home: NSS is never looked at (nor is it with a test dir).
            home: None,
            sudo_user: None,
        }
    }

    #[test]
    fn adds_and_removes_in_the_test_location() {
        let tmp = tempfile::tempdir().unwrap();
        let store = tmp.path().join("certs");
        let ca = CertStore::save(&store, &new_ca(DEV_CA_NAME, 30).unwrap()).unwrap();
        let env = env_for(tmp.path());

        // Default: the development CA.
        let out = trust(&store, None, false, &env);
        assert_eq!(out.code, 0, "{out:?}");
        let anchor = tmp
            .path()
            .join("anchors")
            .join(format!("portshare-{}.crt", ca.thumbprint));
        assert!(anchor.is_file());
        let bundle = std::fs::read_to_string(tmp.path().join("bundle.pem")).unwrap();
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 1);
        assert!(!bundle.contains("PRIVATE KEY"));

        let out = trust(&store, Some(&ca.thumbprint.to_string()), true, &env);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(!anchor.exists());
        let bundle = std::fs::read_to_string(tmp.path().join("bundle.pem")).unwrap();
        assert!(!bundle.contains("BEGIN CERTIFICATE"));
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let tmp = tempfile::tempdir().unwrap();
        let store = tmp.path().join("certs");
        let env = env_for(tmp.path());
        let out = trust(&store, None, false, &env);
        assert_eq!(out.code, 1);
        assert!(
            out.stderr.contains("cert trust THUMBPRINT"),
            "{}",
            out.stderr
        );

        let leaf =
            CertStore::save(&store, &new_self_signed(&["a.test".into()], 30).unwrap()).unwrap();
        let out = trust(&store, Some(&leaf.thumbprint.to_string()), false, &env);
        assert_eq!(out.code, 1);
        assert!(out.stderr.contains("is not a CA"), "{}", out.stderr);
        assert!(!tmp.path().join("anchors").exists());

        let out = trust(&store, Some("00"), false, &env);
        assert_eq!(out.code, 1);
    }
}
