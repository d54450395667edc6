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
    /// Register URL prefixes for a backend on the running server; the
    /// registration lasts until Ctrl-C
    Register {
        /// URL prefixes, e.g. http://+:8080/api/
        #[arg(required = true, value_name = "PREFIX")]
        prefixes: Vec<String>,
        /// Where requests go, e.g. http://127.0.0.1:3000
        #[arg(long, value_name = "URL")]
        backend: String,
    },
    /// Start CMD with PORT set to a free port and register PREFIX… for
    /// http://127.0.0.1:PORT while it runs; exits with CMD's exit code
    Run {
        /// URL prefixes, e.g. --prefix http://+:8080/api/
        #[arg(long = "prefix", required = true, num_args = 1.., value_name = "PREFIX")]
        prefixes: Vec<String>,
        /// The command and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
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
    // Fetched from the running server only if `show servicestate` asks.
    let live = crate::control::commands::LiveServiceState::new(&settings);
    let ctx = NetshContext {
        certs: &lookup,
        service_state: Some(&live),
    };
    let mut words = vec!["http".to_owned()];
    words.extend_from_slice(args);
    let out = netsh::run(&words, &store, &ctx);
    if let Some((text, code)) = live.failure() {
        print!("{text}");
        return exit_code(code as i32);
    }
    print!("{}", out.stdout);
    exit_code(out.exit_code)
}

/// `portshare register PREFIX… --backend URL`.
pub fn register(config: Option<&Path>, prefixes: &[String], backend: &str) -> ExitCode {
    match settings(config) {
        Ok(s) => crate::control::commands::register(&s, prefixes, backend),
        Err(code) => code,
    }
}

/// `portshare run --prefix PREFIX… -- CMD ARGS`.
pub fn run(config: Option<&Path>, prefixes: &[String], command: &[String]) -> ExitCode {
    match settings(config) {
        Ok(s) => crate::control::commands::run(&s, prefixes, command),
        Err(code) => code,
    }
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
