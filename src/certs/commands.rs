//! `portshare cert new|import|list|delete|export|trust`: the certificate store as PowerShell's
//! `cert:\LocalMachine\My` drive shows it. Each command returns what to print and the
//! exit code; the CLI only prints.
//!
//! Output decisions:
//! - `new`, `import` and `list` print PowerShell's `Format-Table` view of certificates:
//!   two empty lines, `   PSParentPath: Microsoft.PowerShell.Security\Certificate::LocalMachine\My`,
//!   an empty line, the `Thumbprint` column 41 characters wide plus one space (so
//!   `Subject` starts in column 43), dashes under each header word, one row per
//!   certificate with the thumbprint in uppercase, then two empty lines. Subjects are
//!   never truncated (PowerShell cuts them at the console width).
//! - `list --verbose` prints a `Format-List` block per certificate (Subject, Issuer,
//!   Thumbprint, NotBefore, NotAfter in PowerShell's en-US form and local time,
//!   DnsNameList as `{a, b}`, HasPrivateKey, and the store file).
//! - Warnings go to stderr as `WARNING: sentence` (PowerShell's warning stream).
//! - Every failure prints `portshare cert VERB: reason` naming the file or argument on
//!   stderr and exits 1; an empty store lists nothing and exits 0.
//! - `export`: `.pem`/`.crt` = the chain as PEM (add `--include-key` for the private
//!   key, then the file is 0600), `.cer`/`.der` = the leaf as DER (as
//!   `Export-Certificate`), `.pfx`/`.p12` = chain and key, encrypted with `--password`
//!   (empty if not given), file 0600. A CA's private key is written only with
//!   `--include-key` (also for .pfx), so that the certificate handed to other
//!   machines carries no key by mistake.
//! - `trust`: see [`super::trust`].
//! - `delete` refuses while an SSL binding in `sslcert.json` names the certificate,
//!   unless `--force`; it then warns that those bindings point nowhere (a running server
//!   keeps serving the certificate it has loaded for them until they change).

use std::fs;
use std::path::Path;

use chrono::{Local, Utc};

use super::{ca, new_self_signed, to_pem, to_pfx, validate, CertStore, Certificate, Thumbprint};
use crate::store::Store;

/// What a command prints, and its exit code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

impl CommandOutput {
    fn ok(stdout: String) -> Self {
        CommandOutput {
            stdout,
            ..Default::default()
        }
    }

    fn fail(verb: &str, message: impl std::fmt::Display) -> Self {
        CommandOutput {
            stdout: String::new(),
            stderr: format!("portshare cert {verb}: {message}\n"),
            code: 1,
        }
    }

    fn warn(&mut self, message: impl std::fmt::Display) {
        self.stderr.push_str(&format!("WARNING: {message}\n"));
    }
}

const PS_PARENT: &str = "Microsoft.PowerShell.Security\\Certificate::LocalMachine\\My";

/// PowerShell's table of certificates (see the module notes for the layout).
pub fn format_table(certs: &[&Certificate]) -> String {
    let mut out = format!("\n\n   PSParentPath: {PS_PARENT}\n\n");
    out.push_str(&format!("{:<42}{}\n", "Thumbprint", "Subject"));
    out.push_str(&format!("{:<42}{}\n", "----------", "-------"));
    for c in certs {
        out.push_str(&format!(
            "{:<42}{}{}\n",
            c.thumbprint.to_upper(),
            c.info.subject,
            role_note(c)
        ));
    }
    out.push_str("\n\n");
    out
}

/// portshare's addition to a table row: what a key-less CA certificate is for
/// (PowerShell shows such certificates under another store, which portshare,
/// with one store, cannot).
fn role_note(c: &Certificate) -> &'static str {
    match (c.key.is_some(), c.info.is_ca, c.info.is_self_signed) {
        (false, true, false) => "  (intermediate CA, completes chains)",
        (false, true, true) => "  (root CA, never sent)",
        // A CA with its key issues certificates (`cert new --signer`).
        (true, true, _) => "  (CA, issues certificates)",
        _ => "",
    }
}

/// `Format-List`-style details of each certificate.
pub fn format_list(certs: &[&Certificate]) -> String {
    let mut out = format!("\n\n   PSParentPath: {PS_PARENT}\n\n");
    let when = |d: &chrono::DateTime<Utc>| {
        d.with_timezone(&Local)
            .format("%-m/%-d/%Y %-I:%M:%S %p")
            .to_string()
    };
    for c in certs {
        let i = &c.info;
        let mut names: Vec<String> = i.dns_names.clone();
        names.extend(i.ip_addresses.iter().map(|a| a.to_string()));
        let rows = [
            ("Subject", i.subject.clone()),
            ("Issuer", i.issuer.clone()),
            ("Thumbprint", c.thumbprint.to_upper()),
            ("NotBefore", when(&i.not_before)),
            ("NotAfter", when(&i.not_after)),
            ("DnsNameList", format!("{{{}}}", names.join(", "))),
            (
                "HasPrivateKey",
                if c.key.is_some() { "True" } else { "False" }.to_owned(),
            ),
            ("File", c.source.display().to_string()),
        ];
        for (label, value) in rows {
            out.push_str(&format!("{label:<13} : {value}\n"));
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

/// `cert new --dns NAME… [--days N] [--signer THUMBPRINT]`: a self-signed certificate
/// as `New-SelfSignedCertificate -DnsName` makes it, or with `--signer` one issued by
/// that CA of the store (stored with the CA after it, as its chain), saved in the store.
/// `days` defaults to [`super::DEFAULT_DAYS`].
pub fn new(
    cert_dir: &Path,
    dns: &[String],
    days: Option<u32>,
    signer: Option<&str>,
) -> CommandOutput {
    let names: Vec<String> = dns
        .iter()
        .flat_map(|n| n.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return CommandOutput::fail("new", "give at least one name with --dns NAME");
    }
    let days = days.unwrap_or(super::DEFAULT_DAYS);
    let made = match signer {
        None => new_self_signed(&names, days),
        Some(text) => {
            let thumb = match text.parse::<Thumbprint>() {
                Ok(t) => t,
                Err(e) => return CommandOutput::fail("new", format!("--signer: {e}")),
            };
            let ca = match CertStore::find(cert_dir, &thumb) {
                Ok(c) => c,
                Err(e) => return CommandOutput::fail("new", format!("--signer: {e}")),
            };
            ca::issue(&ca, &names, days)
        }
    };
    let cert = match made {
        Ok(c) => c,
        Err(e) => return CommandOutput::fail("new", e),
    };
    match CertStore::save(cert_dir, &cert) {
        Ok(stored) => CommandOutput::ok(format_table(&[&stored])),
        Err(e) => CommandOutput::fail("new", e),
    }
}

/// `cert new --ca [--name CN] [--days N]`: a root CA with its key in the store, to
/// issue certificates with `--signer` and to trust with `cert trust`.
pub fn new_ca(cert_dir: &Path, name: Option<&str>, days: Option<u32>) -> CommandOutput {
    // A second development CA is legal but rarely meant: clients trust one of them.
    let earlier = match name {
        None => ca::dev_ca(&CertStore::scan(cert_dir).0, Utc::now()).map(|c| c.thumbprint),
        Some(_) => None,
    };
    let cert = match ca::new_ca(
        name.unwrap_or(ca::DEV_CA_NAME),
        days.unwrap_or(ca::DEFAULT_CA_DAYS),
    ) {
        Ok(c) => c,
        Err(e) => return CommandOutput::fail("new", e),
    };
    match CertStore::save(cert_dir, &cert) {
        Ok(stored) => {
            let thumb = stored.thumbprint.to_upper();
            let mut out = CommandOutput::ok(format_table(&[&stored]));
            out.stdout.push_str(&format!(
                "portshare: issue server certificates with `portshare cert new --dns NAME --signer {thumb}`; \
                 make clients trust them with `portshare cert trust {thumb}` \
                 (on other devices: `portshare cert export {thumb} --out ca.crt`). \
                 Keep {}.key private: whoever has it can make certificates those clients trust.\n",
                stored.thumbprint
            ));
            if let Some(t) = earlier {
                out.warn(format!(
                    "the store already had a development CA ({}); clients that trust it do not \
                     trust this one. `cert trust` without a thumbprint now picks the one valid \
                     longest; delete the one you do not want (portshare cert delete THUMBPRINT)",
                    t.to_upper()
                ));
            }
            out
        }
        Err(e) => CommandOutput::fail("new", e),
    }
}

/// Where `import` gets the PFX password from.
pub enum Password<'a> {
    /// The file's `.password` sibling, else empty.
    Default,
    Given(&'a str),
    File(&'a Path),
}

/// `cert import FILE [--password P | --password-file F]`: validate and copy into the
/// store (as `<thumbprint>.pem` + `.key`).
pub fn import(cert_dir: &Path, file: &Path, password: Password<'_>) -> CommandOutput {
    let pw_text;
    let pw = match password {
        Password::Default => None,
        Password::Given(p) => Some(p),
        Password::File(f) => match fs::read(f) {
            Ok(bytes) => {
                pw_text = String::from_utf8_lossy(&bytes)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned();
                Some(pw_text.as_str())
            }
            Err(e) => {
                return CommandOutput::fail(
                    "import",
                    format!("--password-file {}: cannot read it: {e}", f.display()),
                )
            }
        },
    };
    if !file.is_file() {
        return CommandOutput::fail("import", format!("{}: no such file", file.display()));
    }
    match CertStore::import(cert_dir, file, pw) {
        Ok(stored) if stored.key.is_none() => {
            // A CA certificate kept without a key: server-certificate checks do not
            // apply to it; say what it is for instead.
            let mut out = CommandOutput::ok(format_table(&[&stored]));
            out.stdout.push_str(if stored.info.is_self_signed {
                "portshare: kept as a root certificate. portshare never sends roots (clients must trust them themselves), and it cannot be bound (no private key).\n"
            } else {
                "portshare: kept as an intermediate certificate: the chains of bound certificates it issued are completed with it. It cannot be bound (no private key).\n"
            });
            out
        }
        Ok(stored) => {
            let mut out = CommandOutput::ok(format_table(&[&stored]));
            for w in validate(&stored, None, Utc::now()) {
                out.warn(w);
            }
            out
        }
        Err(e) => CommandOutput::fail("import", e),
    }
}

/// `cert list [--verbose]`.
pub fn list(cert_dir: &Path, verbose: bool) -> CommandOutput {
    let (mut certs, errors) = CertStore::scan(cert_dir);
    certs.sort_by(|a, b| {
        a.info
            .subject
            .cmp(&b.info.subject)
            .then(a.thumbprint.cmp(&b.thumbprint))
    });
    let refs: Vec<&Certificate> = certs.iter().collect();
    let mut out = CommandOutput::ok(if refs.is_empty() {
        String::new()
    } else if verbose {
        format_list(&refs)
    } else {
        format_table(&refs)
    });
    for e in errors {
        out.warn(format!("skipped {e}"));
    }
    out
}

fn parse_thumbprint(verb: &str, text: &str) -> Result<Thumbprint, CommandOutput> {
    text.parse::<Thumbprint>()
        .map_err(|e| CommandOutput::fail(verb, e))
}

/// `cert delete THUMBPRINT [--force]`.
pub fn delete(cert_dir: &Path, thumbprint: &str, force: bool) -> CommandOutput {
    let thumb = match parse_thumbprint("delete", thumbprint) {
        Ok(t) => t,
        Err(o) => return o,
    };
    // An unknown thumbprint is reported as such, bound or not.
    let own_files = [
        cert_dir.join(format!("{thumb}.pem")),
        cert_dir.join(format!("{thumb}.key")),
    ];
    if !own_files.iter().any(|f| f.is_file()) {
        if let Err(e) = CertStore::find(cert_dir, &thumb) {
            return CommandOutput::fail("delete", e);
        }
    }
    let store = Store::in_cert_dir(cert_dir);
    let users: Vec<String> = match store.load() {
        Ok(data) => data
            .sslcert
            .iter()
            .filter(|b| b.certhash == thumb.to_string())
            .map(|b| format!("{}={}", b.key.param_name(), b.key))
            .collect(),
        Err(e) if !force => {
            return CommandOutput::fail(
                "delete",
                format!("cannot check the SSL bindings: {e} (--force deletes anyway)"),
            )
        }
        Err(_) => Vec::new(),
    };
    if !users.is_empty() && !force {
        return CommandOutput::fail(
            "delete",
            format!(
                "certificate {} is used by the SSL binding(s) {}; delete or update them first \
                 (portshare http delete sslcert {}), or pass --force",
                thumb.to_upper(),
                users.join(", "),
                users[0]
            ),
        );
    }
    match CertStore::delete(cert_dir, &thumb) {
        Ok(removed) => {
            let files: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
            let mut out = CommandOutput::ok(format!(
                "Deleted certificate {} ({}).\n",
                thumb.to_upper(),
                files.join(", ")
            ));
            if !users.is_empty() {
                out.warn(format!(
                    "the SSL binding(s) {} still name this certificate; a running server keeps \
                     serving the copy it has loaded until they are updated or deleted",
                    users.join(", ")
                ));
            }
            out
        }
        Err(e) => CommandOutput::fail("delete", e),
    }
}

enum ExportKind {
    Pem,
    Der,
    Pfx,
}

/// `cert export THUMBPRINT --out FILE [--password P] [--include-key]`.
pub fn export(
    cert_dir: &Path,
    thumbprint: &str,
    out_path: &Path,
    password: Option<&str>,
    include_key: bool,
) -> CommandOutput {
    let thumb = match parse_thumbprint("export", thumbprint) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let ext = out_path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let kind = match ext.as_str() {
        "pem" | "crt" => ExportKind::Pem,
        "cer" | "der" => ExportKind::Der,
        "pfx" | "p12" => ExportKind::Pfx,
        _ => {
            return CommandOutput::fail(
                "export",
                format!(
                    "--out {}: unknown file type; use .pem or .crt (PEM chain), .cer or .der \
                     (DER certificate) or .pfx or .p12 (with the private key)",
                    out_path.display()
                ),
            )
        }
    };
    if password.is_some() && !matches!(kind, ExportKind::Pfx) {
        return CommandOutput::fail(
            "export",
            format!(
                "--password applies to .pfx/.p12 files only, not {}",
                out_path.display()
            ),
        );
    }
    if include_key && matches!(kind, ExportKind::Der) {
        return CommandOutput::fail(
            "export",
            format!(
                "--include-key applies to .pem/.crt and .pfx/.p12 files, not {} (a .cer/.der \
                 file holds the certificate alone)",
                out_path.display()
            ),
        );
    }
    let cert = match CertStore::find(cert_dir, &thumb) {
        Ok(c) => c,
        Err(e) => return CommandOutput::fail("export", e),
    };
    let (data, private, what): (Vec<u8>, bool, &str) = match kind {
        ExportKind::Pem => {
            let (chain, key) = match to_pem(&cert) {
                Ok(p) => p,
                Err(e) => return CommandOutput::fail("export", e),
            };
            match (include_key, key) {
                (false, _) => (chain.into_bytes(), false, "certificate chain (PEM)"),
                (true, Some(k)) => (
                    (chain + &k).into_bytes(),
                    true,
                    "certificate chain and private key (PEM)",
                ),
                (true, None) => {
                    return CommandOutput::fail(
                        "export",
                        format!(
                            "certificate {} has no private key in the store ({})",
                            thumb.to_upper(),
                            cert.source.display()
                        ),
                    )
                }
            }
        }
        ExportKind::Der => match cert.chain.first() {
            Some(leaf) => (leaf.as_ref().to_vec(), false, "certificate (DER)"),
            None => return CommandOutput::fail("export", "the certificate chain is empty"),
        },
        ExportKind::Pfx => {
            // A CA's key lets whoever has it make certificates every machine that
            // trusts the CA accepts: it leaves the store only when asked for.
            if cert.info.is_ca && !include_key {
                return CommandOutput::fail(
                    "export",
                    format!(
                        "certificate {} is a CA and a .pfx/.p12 file carries its private key; \
                         to hand the CA to other machines export the certificate alone \
                         (--out ca.crt or ca.cer), or pass --include-key to export the key too",
                        thumb.to_upper()
                    ),
                );
            }
            if let Err(e) = cert.require_key() {
                return CommandOutput::fail("export", e);
            }
            match to_pfx(&cert, password.unwrap_or("")) {
                Ok(bytes) => (bytes, true, "certificate chain and private key (PKCS#12)"),
                Err(e) => return CommandOutput::fail("export", e),
            }
        }
    };
    if let Err(e) = write_file(out_path, &data, private) {
        return CommandOutput::fail(
            "export",
            format!("--out {}: cannot write it: {e}", out_path.display()),
        );
    }
    let mut out = CommandOutput::ok(format!(
        "Exported the {what} of {} to {}.\n",
        thumb.to_upper(),
        out_path.display()
    ));
    if matches!(kind, ExportKind::Pfx) && password.is_none_or(str::is_empty) {
        out.warn("the PFX file is protected with an empty password; pass --password to set one");
    }
    out
}

/// Writes via a temporary file and rename; `private` files are 0600 on Unix.
fn write_file(path: &Path, data: &[u8], private: bool) -> std::io::Result<()> {
    crate::atomic_file::write_atomic(path, data, private)
}
