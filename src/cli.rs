//! Command-line interface: `serve` (the default) and the management verbs.
//! Each verb is a thin call into the library; output texts live with the
//! library code that owns them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::certs::{CertStore, Thumbprint};
use crate::config::Settings;
use crate::netsh::{self, CertLookup, CertStatus, NetshContext};
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "portshare",
    version,
    about = "A personal HTTP/HTTPS server with HTTP.sys's port sharing, URL prefixes and netsh commands"
)]
pub struct Cli {
    /// GLOBAL.INI to use (else $PORTSHARE_CONFIG, ./GLOBAL.INI, GLOBAL.INI beside the program)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default command)
    Serve,
    /// netsh-compatible HTTP configuration: add|update|delete|show sslcert|urlacl|timeout, show servicestate
    Http {
        /// netsh arguments, e.g. `add sslcert ipport=0.0.0.0:443 certhash=… appid={…}`
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
}

/// Parses the process arguments. Invoked under the name `netsh` (a symlink
/// in a container), the binary behaves as `portshare`, so
/// `netsh http add sslcert …` works unchanged.
pub fn parse() -> Cli {
    Cli::parse()
}

/// Settings for the management commands, or the message to print.
pub fn settings(config: Option<&Path>) -> Result<Settings, ExitCode> {
    Settings::load(config).map_err(|e| {
        eprintln!("portshare: {e}");
        ExitCode::from(2)
    })
}

/// The certificate store as netsh's `certhash=` checks see it.
struct StoreCerts(Vec<crate::certs::Certificate>);

impl CertLookup for StoreCerts {
    fn cert_status(&self, certhash: &str) -> CertStatus {
        let Ok(wanted) = certhash.parse::<Thumbprint>() else {
            return CertStatus::Unknown;
        };
        match self.0.iter().find(|c| c.thumbprint == wanted) {
            None => CertStatus::Unknown,
            Some(c) if c.key.is_none() => CertStatus::NoKey,
            Some(_) => CertStatus::Ok,
        }
    }
}

/// `portshare http …` / `netsh http …`.
pub fn http(config: Option<&Path>, args: &[String]) -> ExitCode {
    let settings = match settings(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (certs, errors) = CertStore::scan(&settings.cert_dir);
    for e in errors {
        tracing::debug!(error = %e, "certificate store entry skipped");
    }
    let store = Store::in_cert_dir(&settings.cert_dir);
    let lookup = StoreCerts(certs);
    let ctx = NetshContext {
        certs: &lookup,
        service_state: None,
    };
    let mut words = vec!["http".to_owned()];
    words.extend_from_slice(args);
    let out = netsh::run(&words, &store, &ctx);
    print!("{}", out.stdout);
    exit_code(out.exit_code)
}

/// Windows error numbers as exit codes; Unix keeps the low 8 bits, so a
/// multiple of 256 (e.g. 1280) must not turn into success.
pub fn exit_code(code: i32) -> ExitCode {
    match code {
        0 => ExitCode::SUCCESS,
        c if c % 256 == 0 => ExitCode::FAILURE,
        c => ExitCode::from((c % 256) as u8),
    }
}
