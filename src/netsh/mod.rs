//! `netsh http …` compatible commands, independent of any argument parser.
//!
//! [`run`] takes the words after the program name (`["http", "add", "sslcert",
//! "ipport=0.0.0.0:443", …]`), applies them to the [`Store`] and returns what
//! netsh would print plus an exit code.
//!
//! Output conventions (as netsh): a message is printed as an empty line, the
//! message, an empty line. A failure prints netsh's error line
//! (`SSL Certificate add failed, Error: 183`), the Windows system message for the
//! error number, then ONE `portshare: …` line saying what happened and what to
//! do; the exit code is the Windows error number (on Unix the process exit status
//! is that number modulo 256 — e.g. 1312 becomes 32 — still nonzero).
//! Parameter errors (error 87) add a `Usage:` line after that.
//!
//! Command words and parameter names are case-insensitive, as in netsh.
//! Positional (name-less) parameters and command abbreviations are not
//! supported.

mod cache;
mod dump;
mod iplisten;
mod params;
pub mod script;
mod servicestate;
mod setting;
mod sslcert;
mod timeout;
mod urlacl;
mod usage;

pub use cache::{format_cache_params, format_cache_state, CacheEntryState};
pub use dump::format_dump;
pub use iplisten::format_iplisten;
pub use servicestate::{
    format_request_queue_view, format_service_state, RegistrationState, ServiceStateSnapshot,
    ServiceStateSource,
};
pub use setting::{format_settings, ServiceSettings};
pub use sslcert::format_sslcert_list;
pub use timeout::format_timeouts;
pub use urlacl::format_urlacl_list;

use crate::store::{Store, StoreError, UpdateError};
use crate::winerror::{
    system_message, ERROR_ACCESS_DENIED, ERROR_GEN_FAILURE, ERROR_INVALID_DATA,
    ERROR_INVALID_PARAMETER,
};

/// Result of a command: what to print on stdout, and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetshOutput {
    pub stdout: String,
    pub exit_code: i32,
}

/// What the certificate store knows about a thumbprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// No certificate with that thumbprint.
    Unknown,
    /// The certificate is there but without a private key.
    NoKey,
    /// Certificate and private key present.
    Ok,
}

/// Asks the certificate store about a thumbprint (40 lowercase hex digits).
pub trait CertLookup {
    fn cert_status(&self, certhash: &str) -> CertStatus;

    /// Why clients may refuse the certificate (expired, no serverAuth EKU, SHA-1
    /// signature, `hostname` not covered, incomplete chain): one sentence each,
    /// printed after the success message of `add`/`update sslcert`.
    fn warnings(&self, _certhash: &str, _hostname: Option<&str>) -> Vec<String> {
        Vec::new()
    }
}

/// Whether an account name (`urlacl user=`) names a user or group here.
pub trait AccountLookup {
    fn exists(&self, name: &str) -> bool;
}

/// The machine's accounts: on Unix the user and group databases
/// (`/etc/passwd`, `/etc/group`); on Windows every name is taken (the
/// account database is not read there).
pub struct SystemAccounts;

impl AccountLookup for SystemAccounts {
    #[cfg(unix)]
    fn exists(&self, name: &str) -> bool {
        let listed = |file: &str| {
            std::fs::read_to_string(file).is_ok_and(|text| {
                text.lines()
                    .any(|line| line.split(':').next().is_some_and(|n| n == name))
            })
        };
        listed("/etc/passwd") || listed("/etc/group")
    }

    #[cfg(not(unix))]
    fn exists(&self, _name: &str) -> bool {
        true
    }
}

/// The environment a command runs in.
pub struct NetshContext<'a> {
    pub certs: &'a dyn CertLookup,
    pub accounts: &'a dyn AccountLookup,
    /// Where `show servicestate` gets the live registrations. `None` (server
    /// not reachable) prints a snapshot without server sessions.
    pub service_state: Option<&'a dyn ServiceStateSource>,
    /// The HTTPS port and the addresses the server listens on (from the
    /// configuration), for the warning about binding only one address
    /// family; `None` when HTTPS is off or unknown.
    pub https_listeners: Option<(u16, Vec<std::net::IpAddr>)>,
}

/// Runs one netsh command. Never panics on user input.
pub fn run(args: &[String], store: &Store, ctx: &NetshContext<'_>) -> NetshOutput {
    if let Some(out) = help(args) {
        return out;
    }
    let words: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
    let word = |i: usize| words.get(i).map(String::as_str);
    let params = args.get(3..).unwrap_or(&[]);
    match (word(0), word(1), word(2)) {
        (Some("http"), Some(verb @ ("add" | "update" | "delete" | "show")), Some("sslcert")) => {
            let verb = match verb {
                "add" => sslcert::Verb::Add,
                "update" => sslcert::Verb::Update,
                "delete" => sslcert::Verb::Delete,
                _ => sslcert::Verb::Show,
            };
            sslcert::run(verb, params, store, ctx)
        }
        (Some("http"), Some(verb @ ("add" | "delete" | "show")), Some("urlacl")) => {
            urlacl::run(verb, params, store, ctx.accounts)
        }
        (Some("http"), Some(verb @ ("add" | "delete" | "show")), Some("timeout")) => {
            timeout::run(verb, params, store)
        }
        (Some("http"), Some(verb @ ("add" | "delete" | "show")), Some("iplisten")) => {
            iplisten::run(verb, params, store, ctx)
        }
        (Some("http"), Some("show"), Some("cachestate")) => cache::show_state(params, ctx),
        (Some("http"), Some("delete"), Some("cache")) => cache::delete(params, ctx),
        (Some("http"), Some("add"), Some("cacheparam")) => cache::add_param(params, store, ctx),
        (Some("http"), Some("show"), Some("cacheparam")) => cache::show_param(params, store),
        (Some("http"), Some("show"), Some("servicestate")) => servicestate::run(params, store, ctx),
        (Some("http"), Some("show"), Some("setting")) => setting::show(params, store, ctx),
        (Some("http"), Some("flush"), Some("logbuffer")) => setting::flush(params, ctx),
        (Some("http"), Some("dump"), _) => dump::run(args.get(2..).unwrap_or(&[]), store),
        _ => unknown_command(args),
    }
}

/// The commands [`run`] understands, one per line, for help texts.
pub const COMMANDS: &str = "\
http add|update|delete|show sslcert ipport=IP:PORT | hostnameport=HOST:PORT | ccs=PORT ...
http add|delete|show urlacl url=PREFIX [user=NAME listen=yes delegate=no | sddl=SDDL]
http add|delete|show timeout [timeouttype=idleconnectiontimeout|headerwaittimeout value=SECONDS]
http add|delete|show iplisten [ipaddress=IPADDRESS]
http add|show cacheparam [type=maxcacheresponsesize|cacherangechunksize value=BYTES]
http show cachestate [url=URL]
http delete cache [url=URL] [recursive=yes|no]
http dump
http flush logbuffer
http show setting
http show servicestate [view=session|requestq] [verbose=yes|no]";

/// The commands of each verb, as netsh lists a context's commands.
const VERB_COMMANDS: &[(&str, &[(&str, &str)])] = &[
    (
        "add",
        &[
            ("add cacheparam", "Adds an HTTP service cache parameter"),
            ("add iplisten", "Adds an IP address to the IP listen list."),
            ("add sslcert", "Adds an SSL server certificate binding."),
            ("add timeout", "Adds a global timeout to the service."),
            ("add urlacl", "Adds a URL reservation entry."),
        ],
    ),
    (
        "delete",
        &[
            (
                "delete cache",
                "Deletes entries from the HTTP service kernel URI cache.",
            ),
            (
                "delete iplisten",
                "Deletes an IP address from the IP listen list.",
            ),
            ("delete sslcert", "Deletes SSL server certificate bindings."),
            (
                "delete timeout",
                "Deletes a global timeout and makes the service use the default value.",
            ),
            ("delete urlacl", "Deletes a URL reservation."),
        ],
    ),
    (
        "flush",
        &[(
            "flush logbuffer",
            "Flushes the internal buffers for the logfiles.",
        )],
    ),
    (
        "show",
        &[
            (
                "show cacheparam",
                "Shows cache parameters of the HTTP service.",
            ),
            (
                "show cachestate",
                "Lists cached URI resources and their associated properties.",
            ),
            (
                "show iplisten",
                "Displays all the IP addresses in the IP listen list.",
            ),
            ("show servicestate", "Shows a snapshot of the HTTP service."),
            (
                "show setting",
                "Shows the values of the HTTP service settings.",
            ),
            ("show sslcert", "Displays SSL certificate bindings."),
            ("show timeout", "Shows the timeout values of the service."),
            ("show urlacl", "Displays URL reservations."),
        ],
    ),
    (
        "update",
        &[(
            "update sslcert",
            "Updates an SSL server certificate binding.",
        )],
    ),
];

/// The word netsh takes as a request for help.
fn is_help_word(w: &str) -> bool {
    matches!(w, "?" | "/?" | "-?" | "help" | "/help" | "-help" | "--help")
}

/// `http` alone, `http ?` / `http help`, `http add ?`: the list of commands
/// of that context, as netsh prints it; `http add sslcert ?` (or `help`,
/// `/?`): that command's usage text (exit code 0). `None` for anything
/// else. Needs no store, so callers may answer it before loading anything.
pub fn help(args: &[String]) -> Option<NetshOutput> {
    let words: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let list = |rows: &[(&str, &str)], verb: Option<&str>| {
        let mut out =
            String::from("\nThe following commands are available:\n\nCommands in this context:\n");
        for (cmd, what) in rows {
            out.push_str(&format!("{cmd:<18} - {what}\n"));
        }
        // netsh points to `COMMAND ?` here; portshare shows the parameters
        // at once (a command given without them prints its own usage too).
        out.push_str("\nUsage:\n");
        for line in COMMANDS.lines() {
            // `http add|update|delete|show sslcert …`: the second word lists the verbs.
            let verbs = line.split(' ').nth(1).unwrap_or("");
            if verb.is_none_or(|v| verbs.split('|').any(|w| w == v)) {
                out.push_str(&format!("    {line}\n"));
            }
        }
        out.push('\n');
        NetshOutput {
            stdout: out,
            exit_code: 0,
        }
    };
    let usage = |text: &str| NetshOutput {
        stdout: text.to_owned(),
        exit_code: 0,
    };
    match words.as_slice() {
        ["http"] => Some(list(&HTTP_CONTEXT, None)),
        ["http", "dump", h] if is_help_word(h) => Some(usage(usage::DUMP)),
        // `http show iplisten ?`: netsh shows a command's usage when its
        // first parameter asks for help.
        ["http", verb, table, h, ..] if is_help_word(h) => {
            usage::command_usage(verb, table).map(usage)
        }
        ["http", h] if is_help_word(h) => Some(list(&HTTP_CONTEXT, None)),
        ["http", verb] | ["http", verb, _] => {
            let (_, rows) = VERB_COMMANDS.iter().find(|(v, _)| v == verb)?;
            // `http add` alone (netsh enters the add context) or `http add ?`.
            match words.get(2) {
                None => Some(list(rows, Some(verb))),
                Some(h) if is_help_word(h) => Some(list(rows, Some(verb))),
                Some(_) => None,
            }
        }
        _ => None,
    }
}

/// The `http` context's commands (netsh's wording).
const HTTP_CONTEXT: [(&str, &str); 8] = [
    ("?", "Displays a list of commands."),
    ("add", "Adds a configuration entry to a table."),
    ("delete", "Deletes a configuration entry from a table."),
    ("dump", "Displays a configuration script."),
    ("flush", "Flushes internal data."),
    ("help", "Displays a list of commands."),
    ("show", "Displays information."),
    ("update", "Updates a configuration entry in a table."),
];

/// The commands in one sentence, for the "not a command" explanation.
const KNOWN: &str = "add|update|delete|show sslcert, add|delete|show urlacl, add|delete|show timeout, add|delete|show iplisten, add|show cacheparam, show cachestate, delete cache, dump, flush logbuffer, show setting, show servicestate.";

/// netsh's "command was not found" (error 87) with the list of commands.
pub fn unknown_command(args: &[String]) -> NetshOutput {
    let shown = args.join(" ");
    let explain = if shown.is_empty() {
        format!("no command given; the http commands are: {KNOWN}")
    } else {
        format!("'{shown}' is not a command portshare knows; the http commands are: {KNOWN}")
    };
    let mut out = String::from("\n");
    if !shown.is_empty() {
        out.push_str(&format!("The following command was not found: {shown}.\n"));
    }
    out.push_str(&format!(
        "Error: {ERROR_INVALID_PARAMETER}\n{}\nportshare: {explain}\n\nUsage:\n",
        system_message(ERROR_INVALID_PARAMETER)
    ));
    for line in COMMANDS.lines() {
        out.push_str(&format!("    {line}\n"));
    }
    out.push('\n');
    NetshOutput {
        stdout: out,
        exit_code: ERROR_INVALID_PARAMETER as i32,
    }
}

// ---------------------------------------------------------------------------
// Message helpers shared by the commands (the error numbers and their
// Windows messages are in `crate::winerror`)
// ---------------------------------------------------------------------------

/// A failure a command reports: Windows error number and the plain-language
/// `portshare:` sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub code: u32,
    pub explain: String,
    /// Printed after the error block for parameter errors.
    pub usage: Option<&'static str>,
}

impl Failure {
    pub fn new(code: u32, explain: impl Into<String>) -> Failure {
        Failure {
            code,
            explain: explain.into(),
            usage: None,
        }
    }

    pub fn param(explain: impl Into<String>, usage: &'static str) -> Failure {
        Failure {
            code: ERROR_INVALID_PARAMETER,
            explain: explain.into(),
            usage: Some(usage),
        }
    }

    pub fn from_store(e: StoreError) -> Failure {
        let code = match &e {
            StoreError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                ERROR_ACCESS_DENIED
            }
            StoreError::Io { .. } => ERROR_GEN_FAILURE,
            StoreError::Parse { .. } | StoreError::Invalid { .. } => ERROR_INVALID_DATA,
        };
        Failure::new(code, format!("the store could not be used: {e}"))
    }

    pub fn from_update(e: UpdateError<Failure>) -> Failure {
        match e {
            UpdateError::Store(e) => Failure::from_store(e),
            UpdateError::Rejected(f) => f,
        }
    }

    /// Renders the failure under netsh's error line `{head}, Error: N` (or a
    /// bare `Error: N` when the command has no such line).
    pub fn render(&self, head: Option<&str>) -> NetshOutput {
        let mut out = String::from("\n");
        match head {
            Some(h) => out.push_str(&format!("{h}, Error: {}\n", self.code)),
            None => out.push_str(&format!("Error: {}\n", self.code)),
        }
        out.push_str(system_message(self.code));
        out.push('\n');
        out.push_str(&format!("portshare: {}\n", self.explain));
        out.push('\n');
        if let Some(usage) = self.usage {
            out.push_str(usage);
            out.push_str("\n\n");
        }
        NetshOutput {
            stdout: out,
            exit_code: self.code as i32,
        }
    }
}

/// `\n{msg}\n\n`, exit code 0.
pub(crate) fn success(msg: &str) -> NetshOutput {
    NetshOutput {
        stdout: format!("\n{msg}\n\n"),
        exit_code: 0,
    }
}

/// A `show` command that takes no parameters and prints what `format`
/// makes of the store (`show iplisten`, `show timeout`, `show cacheparam`).
pub(crate) fn show_stored(
    args: &[String],
    store: &Store,
    usage: &'static str,
    format: impl FnOnce(&crate::store::StoreData) -> String,
) -> NetshOutput {
    if let Err(f) = params::Params::parse(args, &[], usage) {
        return f.render(None);
    }
    match store.load() {
        Ok(d) => NetshOutput {
            stdout: format(&d),
            exit_code: 0,
        },
        Err(e) => Failure::from_store(e).render(None),
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use std::collections::HashMap;

    pub const HASH: &str = "46aab740254a12c9146142067f5cf69e583154ad";
    pub const APPID: &str = "{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}";

    /// A fake certificate store.
    #[derive(Default)]
    pub struct FakeCerts(pub HashMap<String, CertStatus>);

    impl CertLookup for FakeCerts {
        fn cert_status(&self, certhash: &str) -> CertStatus {
            self.0.get(certhash).copied().unwrap_or(CertStatus::Unknown)
        }
    }

    /// Every account exists but those whose names start with `nosuch`.
    pub struct FakeAccounts;

    impl AccountLookup for FakeAccounts {
        fn exists(&self, name: &str) -> bool {
            !name.starts_with("nosuch")
        }
    }

    pub struct Env {
        pub _dir: tempfile::TempDir,
        pub store: Store,
        pub certs: FakeCerts,
    }

    impl Env {
        pub fn new() -> Env {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Store::in_cert_dir(dir.path());
            let mut certs = FakeCerts::default();
            certs.0.insert(HASH.into(), CertStatus::Ok);
            certs.0.insert("1".repeat(40), CertStatus::NoKey);
            certs.0.insert("2".repeat(40), CertStatus::Ok);
            Env {
                _dir: dir,
                store,
                certs,
            }
        }

        pub fn run(&self, line: &str) -> NetshOutput {
            let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
            self.run_args(&args)
        }

        pub fn run_args(&self, args: &[String]) -> NetshOutput {
            self.run_args_live(args, None)
        }

        /// [`Env::run`] with a running server's state (`live`).
        pub fn run_live(&self, live: &dyn ServiceStateSource, line: &str) -> NetshOutput {
            let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
            self.run_args_live(&args, Some(live))
        }

        fn run_args_live(
            &self,
            args: &[String],
            service_state: Option<&dyn ServiceStateSource>,
        ) -> NetshOutput {
            let ctx = NetshContext {
                certs: &self.certs,
                accounts: &FakeAccounts,
                service_state,
                https_listeners: None,
            };
            run(args, &self.store, &ctx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;

    #[test]
    fn unknown_command_is_87_with_usage() {
        let env = Env::new();
        let out = env.run("http frob sslcert");
        assert_eq!(out.exit_code, 87);
        assert!(out
            .stdout
            .starts_with("\nThe following command was not found: http frob sslcert.\nError: 87\nThe parameter is incorrect.\nportshare: 'http frob sslcert' is not a command portshare knows;"));
        assert!(out
            .stdout
            .contains("\nUsage:\n    http add|update|delete|show sslcert"));
        assert!(out
            .stdout
            .ends_with("http show servicestate [view=session|requestq] [verbose=yes|no]\n\n"));

        let out = env.run("");
        assert_eq!(out.exit_code, 87);
        assert!(out
            .stdout
            .starts_with("\nError: 87\nThe parameter is incorrect.\nportshare: no command given;"));

        // `update urlacl` does not exist in netsh either.
        assert_eq!(env.run("http update urlacl url=http://+:80/").exit_code, 87);
    }

    #[test]
    fn http_alone_and_help_list_the_commands() {
        let env = Env::new();
        for line in ["http", "http ?", "HTTP Help", "http /?"] {
            let out = env.run(line);
            assert_eq!(out.exit_code, 0, "{line}: {}", out.stdout);
            assert!(
                out.stdout.contains("Commands in this context:\n?"),
                "{line}: {}",
                out.stdout
            );
            assert!(out.stdout.contains("\nadd "), "{}", out.stdout);
        }
        for line in ["http add", "http add ?"] {
            let out = env.run(line);
            assert_eq!(out.exit_code, 0, "{line}: {}", out.stdout);
            assert!(out.stdout.contains("add sslcert"), "{}", out.stdout);
            assert!(!out.stdout.contains("show servicestate"), "{}", out.stdout);
        }
        // Not help: still the error with its usage.
        assert_eq!(env.run("http frob").exit_code, 87);
        assert_eq!(env.run("http show frob").exit_code, 87);
    }

    #[test]
    fn help_after_a_command_prints_its_usage() {
        let env = Env::new();
        for (line, head) in [
            (
                "http add sslcert ?",
                "\nUsage: add sslcert hostnameport=<name:port>",
            ),
            ("http show iplisten help", "\nUsage: show iplisten\n"),
            ("HTTP Add IPListen /?", "\nUsage: add iplisten [ipaddress=]"),
            (
                "http add cacheparam ?",
                "\nUsage: add cacheparam [type=]cacherangechunksize|maxcacheresponsesize",
            ),
            (
                "http delete cache -?",
                "\nUsage: delete cache [[url=]<string>]",
            ),
            (
                "http show cachestate ?",
                "\nUsage: show cachestate [[url=]<string>]",
            ),
            ("http flush logbuffer help", "\nUsage: flush logbuffer\n"),
            ("http dump ?", "\nUsage: dump\n"),
        ] {
            let out = env.run(line);
            assert_eq!(out.exit_code, 0, "{line}: {}", out.stdout);
            assert!(out.stdout.starts_with(head), "{line}: {}", out.stdout);
        }
        // Every command has its text, and every verb list names it.
        for (verb, table, _) in super::usage::COMMAND_USAGE {
            let out = env.run(&format!("http {verb} {table} ?"));
            assert_eq!(out.exit_code, 0, "{verb} {table}");
            let list = env.run(&format!("http {verb} ?"));
            assert!(
                list.stdout.contains(&format!("\n{verb} {table} ")),
                "{verb} {table}: {}",
                list.stdout
            );
        }
        assert!(!env.store.path().exists());
        // Not a command: still the error.
        assert_eq!(env.run("http show frob ?").exit_code, 87);
    }

    #[test]
    fn command_words_are_case_insensitive() {
        let env = Env::new();
        let out = env.run("HTTP Show SSLCert");
        assert_eq!(out.exit_code, 0, "{}", out.stdout);
    }
}
