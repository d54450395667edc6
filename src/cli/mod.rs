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

mod acme;
mod register;
mod user;

pub use acme::{acme, AcmeAction};
pub use user::{user, UserAction};

#[derive(Debug, Parser)]
#[command(
    name = "portshare",
    version,
    about = "A personal HTTP/HTTPS server with HTTP.sys's port sharing, URL prefixes and netsh commands"
)]
pub struct Cli {
    /// GLOBAL.INI to use (else $PORTSHARE_CONFIG, ./GLOBAL.INI, GLOBAL.INI beside the
    /// invoked path, beside the program, /etc/portshare/GLOBAL.INI —
    /// %ProgramData%\portshare\GLOBAL.INI on Windows)
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
    /// The certificate store (like PowerShell's cert:\LocalMachine\My): new, import, list, delete, export
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// The daily maintenance call: run it now, or show its status
    Maintenance {
        #[command(subcommand)]
        action: MaintenanceAction,
    },
    /// Re-read GLOBAL.INI in the running server and put it in force (as SIGHUP
    /// does); prints the outcome, or the error and exits non-zero
    Reload,
    /// Certificates ordered with ACME ([acme] in GLOBAL.INI): show their status, or renew now
    Acme {
        #[command(subcommand)]
        action: AcmeAction,
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
    /// Users of password-protected prefixes ([auth:NAME] users=FILE): add|delete|list
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Windows service: install|uninstall|start|stop (installs `service run --config FILE`)
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
}

/// `portshare service …` (Windows only; elsewhere it says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum ServiceAction {
    /// Install the "portshare" service (automatic start, LocalSystem) for --config FILE
    /// (default: the GLOBAL.INI found as for `serve`, made absolute)
    Install,
    /// Stop and remove the service
    Uninstall,
    /// Start the installed service
    Start,
    /// Stop the service (gracefully, as Ctrl-C) and wait for it
    Stop,
    /// What the service control manager starts; not for interactive use
    #[command(hide = true)]
    Run,
}

/// `portshare maintenance …`.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum MaintenanceAction {
    /// Run the maintenance URL now in the running server and print the result
    Run,
    /// Show the configured URL and time, the last run and the next run
    Status,
}

/// `portshare cert …`.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Create a certificate in the store: self-signed (as New-SelfSignedCertificate
    /// -DnsName), issued by a CA of the store (--signer), or a root CA (--ca)
    New {
        /// DNS name or IP address; the first is the subject CN (repeat, or separate with commas)
        #[arg(long = "dns", value_name = "NAME", required_unless_present = "ca", num_args = 1.., value_delimiter = ',')]
        dns: Vec<String>,
        /// Validity in days (default 365; 3650 for --ca; at most 397 with --signer)
        #[arg(long)]
        days: Option<u32>,
        /// Issue the certificate from this CA of the store (its thumbprint) instead of self-signing
        #[arg(long, value_name = "THUMBPRINT", requires = "dns")]
        signer: Option<String>,
        /// Make a root CA (with its key) to issue certificates with --signer and to trust with `cert trust`
        #[arg(long, conflicts_with_all = ["dns", "signer"])]
        ca: bool,
        /// The CA's common name (with --ca; default "portshare development CA")
        #[arg(long, value_name = "CN", requires = "ca")]
        name: Option<String>,
    },
    /// Check a PEM or PFX file and copy it (with its private key) into the store
    Import {
        /// PEM (certificate chain + key, or NAME.key beside it) or PFX/P12 file
        file: PathBuf,
        /// PFX password (default: FILE.password beside it, else empty)
        #[arg(long, conflicts_with = "password_file")]
        password: Option<String>,
        /// File whose first line is the PFX password
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// List the certificates in the store
    List {
        /// Show dates, names, key and file of each certificate
        #[arg(long, short)]
        verbose: bool,
    },
    /// Delete a certificate (refused while an SSL binding uses it, unless --force)
    Delete {
        /// The certificate's thumbprint (SHA-1, 40 hex digits, as `cert list` shows it)
        thumbprint: String,
        /// Delete it even while SSL bindings use it (a running server keeps serving
        /// its loaded copy for them until they are updated or deleted)
        #[arg(long)]
        force: bool,
    },
    /// Add a CA of the store to this machine's trust stores (system, NSS via certutil,
    /// Windows Root), or take it out; PORTSHARE_TRUST_DIR redirects it to a test folder
    Trust {
        /// The CA's thumbprint (default: the development CA, "portshare development CA")
        thumbprint: Option<String>,
        /// Take the CA out of the trust stores instead
        #[arg(long)]
        remove: bool,
    },
    /// Write a certificate to a file: .pem/.crt (chain), .cer/.der (DER), .pfx/.p12 (with key)
    Export {
        /// The certificate's thumbprint (SHA-1, 40 hex digits, as `cert list` shows it)
        thumbprint: String,
        /// The file to write; its extension chooses the format (.pem/.crt, .cer/.der, .pfx/.p12)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Password for a .pfx/.p12 file
        #[arg(long)]
        password: Option<String>,
        /// Also write the private key into a .pem/.crt file (mode 0600); needed to put a CA's key into a .pfx
        #[arg(long)]
        include_key: bool,
    },
}

/// Parses the process arguments (under the name `netsh` the program is
/// netsh instead: see [`netsh_main`]).
pub fn parse() -> Cli {
    Cli::parse()
}

/// What a command does with the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// The server: every check, `public_dir` must exist.
    Serve,
    /// Reads the store or talks to the server; `public_dir` is not used.
    Read,
    /// Changes the store (`http add|update|delete`, `cert new|import|delete`).
    Write,
}

/// Settings for serving, or the message to print.
pub fn settings(config: Option<&Path>) -> Result<Settings, ExitCode> {
    load(config, Use::Serve)
}

/// Loads the configuration for `usage`. An error names the file, section
/// and key, or the `PORTSHARE_*` variable that set the bad value.
fn load(config: Option<&Path>, usage: Use) -> Result<Settings, ExitCode> {
    let fail = |message: String| {
        eprintln!("portshare: {message}");
        ExitCode::from(2)
    };
    let file = crate::config::locate(config);
    let mut env = Vec::new();
    for (k, v) in std::env::vars_os() {
        match (k.into_string(), v.into_string()) {
            (Ok(k), Ok(v)) => env.push((k, v)),
            (Ok(k), Err(_)) if k.starts_with("PORTSHARE_") => {
                return Err(fail(format!(
                    "environment variable {k}: the value is not valid Unicode; set it to UTF-8 text"
                )))
            }
            _ => {} // not ours
        }
    }
    let loaded = Settings::load_with_env(file.as_deref(), &env);
    let settings = loaded.map_err(|e| fail(e.blame_env(&env).to_string()))?;
    if usage == Use::Write && settings.origin == crate::config::Origin::Defaults {
        eprintln!("{}", defaults_note(&settings));
    }
    Ok(settings)
}

/// One line for a command that changes state without a GLOBAL.INI: which
/// folder it used, so that a store the server never reads is not made
/// silently.
fn defaults_note(settings: &Settings) -> String {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let cwd = absolute(Path::new("."));
    let searched: Vec<String> = Settings::config_search_dirs()
        .iter()
        .map(|d| absolute(d).display().to_string())
        .collect();
    format!(
        "portshare: no {} found (searched {}); using built-in defaults in {}, store {} \
         (give --config FILE to use the server's)",
        crate::config::DEFAULT_FILE_NAME,
        searched.join(", "),
        cwd.display(),
        absolute(&settings.cert_dir).display()
    )
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

    fn warnings(&self, certhash: &str, hostname: Option<&str>) -> Vec<String> {
        let Ok(wanted) = certhash.parse::<Thumbprint>() else {
            return Vec::new();
        };
        match self.0.iter().find(|c| c.thumbprint == wanted) {
            Some(c) => crate::certs::validate(c, hostname, chrono::Utc::now())
                .into_iter()
                .map(|w| w.to_string())
                .collect(),
            None => Vec::new(),
        }
    }
}

/// `portshare cert …`.
pub fn cert(config: Option<&Path>, command: &CertCommand) -> ExitCode {
    use crate::certs::commands::{self, Password};
    let usage = match command {
        CertCommand::New { .. } | CertCommand::Import { .. } | CertCommand::Delete { .. } => {
            Use::Write
        }
        // `trust` changes the machine's trust stores, not portshare's store.
        CertCommand::List { .. } | CertCommand::Export { .. } | CertCommand::Trust { .. } => {
            Use::Read
        }
    };
    let settings = match load(config, usage) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let dir = &settings.cert_dir;
    let out = match command {
        CertCommand::New {
            ca: true,
            name,
            days,
            ..
        } => commands::new_ca(dir, name.as_deref(), *days),
        CertCommand::New {
            dns, days, signer, ..
        } => commands::new(dir, dns, *days, signer.as_deref()),
        CertCommand::Trust { thumbprint, remove } => crate::certs::trust::trust(
            dir,
            thumbprint.as_deref(),
            *remove,
            &crate::certs::trust::TrustEnv::from_process(),
        ),
        CertCommand::Import {
            file,
            password,
            password_file,
        } => {
            let pw = match (password, password_file) {
                (Some(p), _) => Password::Given(p),
                (None, Some(f)) => Password::File(f),
                (None, None) => Password::Default,
            };
            commands::import(dir, file, pw)
        }
        CertCommand::List { verbose } => commands::list(dir, *verbose),
        CertCommand::Delete { thumbprint, force } => commands::delete(dir, thumbprint, *force),
        CertCommand::Export {
            thumbprint,
            out,
            password,
            include_key,
        } => commands::export(dir, thumbprint, out, password.as_deref(), *include_key),
    };
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    ExitCode::from(out.code)
}

/// `portshare http …`.
pub fn http(config: Option<&Path>, args: &[String]) -> ExitCode {
    let mut words = vec!["http".to_owned()];
    words.extend_from_slice(args);
    let out = netsh_command(config, &words);
    print!("{}", out.stdout);
    exit_code(out.exit_code)
}

/// Runs one full netsh command (`["http", "show", "urlacl"]`) against the
/// store of the configuration; what to print and the exit code. A
/// configuration that cannot be loaded has been reported on stderr (exit 2).
fn netsh_command(config: Option<&Path>, words: &[String]) -> netsh::NetshOutput {
    // Help needs no configuration: it works before there is any.
    if let Some(out) = netsh::help(words) {
        return out;
    }
    let writes = words.get(1).is_some_and(|verb| {
        ["add", "update", "delete"]
            .iter()
            .any(|w| verb.eq_ignore_ascii_case(w))
    });
    // Only the `http` context loads anything; other words get netsh's
    // "not found" without a configuration.
    if !words
        .first()
        .is_some_and(|w| w.eq_ignore_ascii_case("http"))
    {
        return netsh::unknown_command(words);
    }
    let settings = match load(config, if writes { Use::Write } else { Use::Read }) {
        Ok(s) => s,
        // `load` printed why; its exit code is 2.
        Err(_) => {
            return netsh::NetshOutput {
                stdout: String::new(),
                exit_code: 2,
            }
        }
    };
    let (mut certs, errors) = CertStore::scan(&settings.cert_dir);
    for e in errors {
        tracing::debug!(error = %e, "certificate store entry skipped");
    }
    // The chain the server will send, so bind-time warnings judge that one.
    crate::certs::complete_chains(&mut certs);
    let store = Store::in_cert_dir(&settings.cert_dir);
    let lookup = StoreCerts(certs);
    // Fetched from the running server only if `show servicestate` asks.
    let live = register::LiveServiceState::new(&settings);
    let ctx = NetshContext {
        certs: &lookup,
        accounts: &netsh::SystemAccounts,
        service_state: Some(&live),
        https_listeners: (settings.https_port != 0)
            .then(|| (settings.https_port, settings.listen.clone())),
    };
    let out = netsh::run(words, &store, &ctx);
    match live.failure() {
        Some((text, code)) => netsh::NetshOutput {
            stdout: text,
            exit_code: code as i32,
        },
        None => out,
    }
}

/// The program started as `netsh` (argv[0]'s file stem): netsh's command
/// line, scripts and shell, never the server. `None` under any other name.
/// `--config FILE` is taken anywhere, as `portshare` takes it.
pub fn netsh_main() -> Option<ExitCode> {
    let mut argv = std::env::args_os();
    if !netsh::script::invoked_as_netsh(&argv.next()?) {
        return None;
    }
    let mut config = None;
    let mut args = Vec::new();
    while let Some(arg) = argv.next() {
        let Some(arg) = arg.to_str().map(str::to_owned) else {
            eprintln!(
                "portshare: the argument {} is not valid Unicode; give file names and values in UTF-8",
                arg.to_string_lossy()
            );
            return Some(exit_code(crate::winerror::ERROR_INVALID_PARAMETER as i32));
        };
        if arg == "--config" {
            match argv.next() {
                Some(file) => config = Some(PathBuf::from(file)),
                None => {
                    eprintln!("portshare: --config needs a file name after it");
                    return Some(ExitCode::from(2));
                }
            }
        } else if let Some(file) = arg.strip_prefix("--config=") {
            config = Some(PathBuf::from(file));
        } else {
            args.push(arg);
        }
    }
    let stdin = std::io::stdin();
    let interactive = std::io::IsTerminal::is_terminal(&stdin);
    let code = netsh::script::main(
        &args,
        |words: &[String]| netsh_command(config.as_deref(), words),
        &mut std::io::stdout(),
        &mut stdin.lock(),
        interactive,
    );
    Some(exit_code(code))
}

/// `portshare register PREFIX… --backend URL`.
pub fn register(config: Option<&Path>, prefixes: &[String], backend: &str) -> ExitCode {
    match load(config, Use::Read) {
        Ok(s) => register::register(&s, prefixes, backend),
        Err(code) => code,
    }
}

/// `portshare run --prefix PREFIX… -- CMD ARGS`.
pub fn run(config: Option<&Path>, prefixes: &[String], command: &[String]) -> ExitCode {
    match load(config, Use::Read) {
        Ok(s) => register::run(&s, prefixes, command),
        Err(code) => code,
    }
}

/// A tokio runtime for a command (multi-threaded for the server), or the
/// exit code after saying why there is none.
pub fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().map_err(|e| {
        eprintln!("portshare: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
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

/// Handlers the control channel calls for `portshare maintenance …`.
pub fn control_hooks(running: &crate::app::Running) -> crate::control::ControlHooks {
    use crate::maintenance::RunOutcome;
    let run = running.maintenance.clone();
    let status = running.maintenance.clone();
    crate::control::ControlHooks {
        maintenance_run: Some(std::sync::Arc::new(move || {
            let m = run.clone();
            Box::pin(async move {
                match m.run_now().await {
                    RunOutcome::Done(r) if r.succeeded() => Ok(RunOutcome::Done(r).describe()),
                    other => Err(other.describe()),
                }
            })
        })),
        maintenance_status: Some(std::sync::Arc::new(move || {
            let m = status.clone();
            Box::pin(async move { Ok(m.status()) })
        })),
        ..acme::hooks(running)
    }
}

/// What a command that asks the running server needs: the settings, the
/// control socket's path and a runtime; or the exit code after saying why
/// not.
pub(crate) fn server_session(
    config: Option<&Path>,
) -> Result<(Settings, PathBuf, tokio::runtime::Runtime), ExitCode> {
    let settings = load(config, Use::Read)?;
    let path = match crate::control::socket_path(&settings) {
        Ok(p) => p.to_path_buf(),
        Err(e) => {
            eprintln!("portshare: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    let rt = runtime(false)?;
    Ok((settings, path, rt))
}

/// Prints the running server's answer to a command, ending in a newline.
pub(crate) fn print_answer(text: &str) -> ExitCode {
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    ExitCode::SUCCESS
}

/// `portshare reload`: asks the running server to re-read GLOBAL.INI.
pub fn reload(config: Option<&Path>) -> ExitCode {
    use crate::control::client::{self, ClientError};
    let (settings, path, rt) = match server_session(config) {
        Ok(session) => session,
        Err(code) => return code,
    };
    match rt.block_on(client::reload(&path)) {
        Ok(text) => print_answer(&text),
        Err(e @ ClientError::NotRunning(_)) => {
            eprintln!("portshare: {e}");
            eprintln!(
                "portshare: no server runs for {}; it reads the file when it starts",
                settings.origin
            );
            ExitCode::FAILURE
        }
        Err(ClientError::Refused { code, message }) => {
            eprintln!("portshare: reload: {message}");
            exit_code(code as i32)
        }
        Err(e @ ClientError::Denied { .. }) => {
            print!("{}", register::error_text(e.code(), &e.to_string()));
            exit_code(e.code() as i32)
        }
        Err(e) => {
            eprintln!("portshare: reload failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `portshare maintenance run|status`: asks the running server.
pub fn maintenance(config: Option<&Path>, action: MaintenanceAction) -> ExitCode {
    use crate::control::client::{self, ClientError};
    let (settings, path, rt) = match server_session(config) {
        Ok(session) => session,
        Err(code) => return code,
    };
    let answer = rt.block_on(async {
        match action {
            MaintenanceAction::Run => client::maintenance_run(&path).await,
            MaintenanceAction::Status => client::maintenance_status(&path).await,
        }
    });
    match answer {
        Ok(text) => print_answer(&text),
        Err(e @ ClientError::NotRunning(_)) => {
            eprintln!("portshare: {e}");
            if matches!(action, MaintenanceAction::Status) {
                print!("{}", crate::maintenance::status_report(&settings, None));
            } else {
                eprintln!("portshare: start the server first ('portshare serve'); the run happens inside it");
            }
            ExitCode::FAILURE
        }
        // Not allowed: netsh's layout and exit code, as for a registration.
        Err(ClientError::Refused { code, message })
            if code == crate::winerror::ERROR_ACCESS_DENIED =>
        {
            print!("{}", register::error_text(code, &message));
            exit_code(code as i32)
        }
        Err(e @ ClientError::Denied { .. }) => {
            print!("{}", register::error_text(e.code(), &e.to_string()));
            exit_code(e.code() as i32)
        }
        Err(e) => {
            eprintln!(
                "portshare: maintenance {}: {e}",
                match action {
                    MaintenanceAction::Run => "run failed",
                    MaintenanceAction::Status => "status failed",
                }
            );
            ExitCode::FAILURE
        }
    }
}
