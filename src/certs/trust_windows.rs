//! `cert trust` on Windows: the `Root` store through `certutil`, the machine's store
//! from an elevated prompt, else the current user's (Windows then asks the user to
//! confirm, as for any root added to the user store).

use super::Thumbprint;

/// Adds the CA (PEM text) to `Root`; what was changed, or what to do by hand.
pub(super) fn add(thumb: &Thumbprint, pem: &str) -> Result<String, String> {
    // certutil reads a file; a temporary one holds the certificate alone.
    let file = std::env::temp_dir().join(format!("portshare-{thumb}.crt"));
    std::fs::write(&file, pem).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let path = file.display().to_string();
    let result = match run("certutil", &["-addstore", "Root", &path], None) {
        Ok(()) => Ok(
            "Added the CA to the local machine's Root store (certutil -addstore Root)".to_owned(),
        ),
        Err(machine) => match run("certutil", &["-user", "-addstore", "Root", &path], None) {
            Ok(()) => Ok(
                "Added the CA to the current user's Root store (certutil -user -addstore Root)"
                    .to_owned(),
            ),
            Err(user) => Err(format!(
                "certutil could not add the CA to the Root store ({machine}; {user}); by hand, \
                 from an elevated prompt: portshare cert export {} --out ca.crt, then \
                 certutil -addstore Root ca.crt",
                thumb.to_upper()
            )),
        },
    };
    let _ = std::fs::remove_file(&file);
    result
}

/// Takes the CA out of `Root` (machine and user stores).
pub(super) fn remove(thumb: &Thumbprint) -> Result<String, String> {
    let hash = thumb.to_string();
    let machine = run("certutil", &["-delstore", "Root", &hash], None);
    let user = run("certutil", &["-user", "-delstore", "Root", &hash], None);
    match (machine, user) {
        (Ok(()), _) | (_, Ok(())) => {
            Ok("Removed the CA from the Root store (certutil -delstore Root)".to_owned())
        }
        (Err(m), Err(u)) => Err(format!(
            "certutil could not remove the CA from the Root store ({m}; {u}); by hand, from an \
             elevated prompt: certutil -delstore Root {hash}"
        )),
    }
}

/// Runs certutil to completion; its output (or exit status) as the error. (Its own
/// copy of `trust::run`, so that the two modules do not depend on each other.)
fn run(tool: &str, args: &[&str], _stdin: Option<&[u8]>) -> Result<(), String> {
    let out = std::process::Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {tool}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    // certutil writes its errors to stdout.
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Err(format!("{tool} exited with {}: {said}", out.status))
}
