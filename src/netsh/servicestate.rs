//! `http show servicestate` (session view), docs/httpsys.md#netsh-servicestate.
//!
//! Each live registration (an application, or the built-in site) is shown as
//! HTTP.sys shows one application: one server session, holding one URL group
//! with the registration's URLs (uppercased, as netsh prints them), served by
//! one request queue attached to the registration's processes. IDs are
//! synthetic: session N is `FF000001` followed by `2000000N` in hex (8 digits),
//! its URL group `FE000001` followed by `4000000N`. The session timeouts show
//! the service-wide values (idle connection / header wait from the store, the
//! fixed 120 s / 150 bytes/s defaults otherwise).
//!
//! `view=requestq` shows the same registrations queue first: each request
//! queue with its limit (`Max requests`, `RequestQueueLimit` or the
//! application's `queue_limit=`), the requests in it now, its processes and
//! the URL group it serves, then the server
//! sessions with their properties. Layout as netsh prints it on Windows
//! 10/11, from memory, unverified.
//!
//! Supported parameters: `view=session|requestq` (session is the default)
//! and `verbose=yes|no` (accepted, no effect: portshare has no further
//! detail to show).

use super::params::{parse_yes_no, Params};
use super::{Failure, NetshContext, NetshOutput};
use crate::store::{Store, Timeouts, DEFAULT_TIMEOUT_SECS};

const USAGE: &str = "Usage: http show servicestate [view=session|requestq] [verbose=yes|no]";

/// What the running server reports for `show servicestate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceStateSnapshot {
    /// The service-wide timers.
    pub timeouts: Timeouts,
    /// One entry per registration (server session + URL group + request queue).
    pub registrations: Vec<RegistrationState>,
}

/// One registration: its URL prefixes and the processes serving them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationState {
    /// URL prefixes as registered; printed uppercased.
    pub urls: Vec<String>,
    /// Process IDs attached to the request queue.
    pub pids: Vec<u32>,
    /// Request queue name; `None` prints `Request queue is unnamed.`.
    pub queue_name: Option<String>,
    /// Requests in the queue now (`view=requestq`).
    pub queue_length: u64,
    /// The queue's limit, `Max requests` (`RequestQueueLimit`, 1000 by
    /// default as in HTTP.sys).
    pub queue_limit: u64,
}

impl Default for RegistrationState {
    fn default() -> Self {
        RegistrationState {
            urls: Vec::new(),
            pids: Vec::new(),
            queue_name: None,
            queue_length: 0,
            queue_limit: 1000,
        }
    }
}

/// Supplies the live snapshot (implemented by whoever talks to the server).
/// Also what the running server offers to the other live commands (`show
/// setting`, `flush logbuffer`).
pub trait ServiceStateSource {
    fn snapshot(&self) -> ServiceStateSnapshot;

    /// The service settings `show setting` prints (`None`: the defaults).
    fn settings(&self) -> Option<super::ServiceSettings> {
        None
    }

    /// Asks the running server to write its logs out now; the Windows
    /// error number and the `portshare:` sentence on failure.
    fn flush_logs(&self) -> Result<(), (u32, String)> {
        Err(no_server())
    }

    /// The running server's in-memory file cache (`show cachestate`):
    /// every entry, or those under `url`.
    fn cache_state(
        &self,
        _url: Option<&str>,
    ) -> Result<Vec<super::CacheEntryState>, (u32, String)> {
        Err(no_server())
    }

    /// Drops cache entries (`delete cache`); how many files were dropped.
    fn delete_cache(&self, _url: Option<&str>, _recursive: bool) -> Result<usize, (u32, String)> {
        Err(no_server())
    }

    /// Tells the running server that the store's cache parameters or IP
    /// listen list changed.
    fn store_settings_changed(&self) -> Result<(), (u32, String)> {
        Err(no_server())
    }
}

/// What a live command answers when nothing can reach a server.
pub(crate) fn no_server() -> (u32, String) {
    (
        crate::winerror::ERROR_NOT_SUPPORTED,
        "there is no running server to ask".to_owned(),
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    Session,
    RequestQueue,
}

pub(crate) fn run(args: &[String], store: &Store, ctx: &NetshContext<'_>) -> NetshOutput {
    let params = match Params::parse(args, &["view", "verbose"], USAGE) {
        Ok(p) => p,
        Err(f) => return f.render(None),
    };
    let view = match params.get("view") {
        None => View::Session,
        Some(v) if v.eq_ignore_ascii_case("session") => View::Session,
        Some(v) if v.eq_ignore_ascii_case("requestq") => View::RequestQueue,
        Some(v) => {
            return Failure::param(
                format!("view '{v}' is not a view; give view=session or view=requestq."),
                USAGE,
            )
            .render(None);
        }
    };
    if let Some(v) = params.get("verbose") {
        if let Err(e) = parse_yes_no("verbose", v) {
            return Failure::param(e, USAGE).render(None);
        }
    }
    let snapshot = match ctx.service_state {
        Some(source) => source.snapshot(),
        None => match store.load() {
            Ok(d) => ServiceStateSnapshot {
                timeouts: d.timeouts,
                registrations: Vec::new(),
            },
            Err(e) => return Failure::from_store(e).render(None),
        },
    };
    NetshOutput {
        stdout: match view {
            View::Session => format_service_state(&snapshot),
            View::RequestQueue => format_request_queue_view(&snapshot),
        },
        exit_code: 0,
    }
}

/// The `netsh http show servicestate view=requestq` text for `snapshot`
/// (layout as netsh prints it on Windows 10/11, from memory, unverified).
pub fn format_request_queue_view(snapshot: &ServiceStateSnapshot) -> String {
    let mut out = String::from(
        "\nSnapshot of HTTP service state (Request Queue View):\n\
         -----------------------------------------------------\n\n",
    );
    for (i, reg) in snapshot.registrations.iter().enumerate() {
        let n = i as u64 + 1;
        out.push_str(&request_queue(reg, "", true));
        out.push_str("    URL groups:\n");
        out.push_str(&url_group(reg, n, "    "));
        out.push('\n');
    }
    for i in 0..snapshot.registrations.len() {
        out.push_str(&server_session(&snapshot.timeouts, i as u64 + 1));
        out.push('\n');
    }
    out
}

const UNNAMED: &str = "Request queue is unnamed.";

/// `Server session ID: …` and its properties (session N).
fn server_session(t: &Timeouts, n: u64) -> String {
    format!(
        "Server session ID: FF000001{:08X}\n\
         \x20   Version: 2.0\n\
         \x20   State: Active\n\
         \x20   Properties:\n\
         \x20       Max bandwidth: 4294967295\n\
         \x20       Timeouts:\n\
         \x20           Entity body timeout (secs): {d}\n\
         \x20           Drain entity body timeout (secs): {d}\n\
         \x20           Request queue timeout (secs): {d}\n\
         \x20           Idle connection timeout (secs): {idle}\n\
         \x20           Header wait timeout (secs): {header}\n\
         \x20           Minimum send rate (bytes/sec): 150\n",
        0x2000_0000 + n,
        d = DEFAULT_TIMEOUT_SECS,
        idle = t.idle_connection_secs(),
        header = t.header_wait_secs(),
    )
}

/// `URL group ID: …` with its URLs (group N), each line after `indent`.
fn url_group(reg: &RegistrationState, n: u64, indent: &str) -> String {
    let queue = reg.queue_name.as_deref().unwrap_or(UNNAMED);
    let mut out = format!(
        "URL group ID: FE000001{:08X}\n\
         \x20   State: Active\n\
         \x20   Request queue name: {queue}\n\
         \x20   Properties:\n\
         \x20       Max bandwidth: inherited\n\
         \x20       Max connections: inherited\n\
         \x20       Timeouts:\n\
         \x20           Timeout values inherited\n\
         \x20       Number of registered URLs: {}\n\
         \x20       Registered URLs:\n",
        0x4000_0000 + n,
        reg.urls.len(),
    );
    for url in &reg.urls {
        out.push_str(&format!("            {}\n", url.to_uppercase()));
    }
    out.lines().map(|l| format!("{indent}{l}\n")).collect()
}

/// `Request queue name: …` with its processes, each line after `indent`;
/// with `length`, the requests in the queue now after its maximum (HTTP.sys's
/// `CurrentQueueSize` performance counter, which the queue view shows).
fn request_queue(reg: &RegistrationState, indent: &str, length: bool) -> String {
    let queue = reg.queue_name.as_deref().unwrap_or(UNNAMED);
    let current = if length {
        format!("    Current requests in queue: {}\n", reg.queue_length)
    } else {
        String::new()
    };
    let mut out = format!(
        "Request queue name: {queue}\n\
         \x20   Version: 2.0\n\
         \x20   State: Active\n\
         \x20   Request queue 503 verbosity level: Basic\n\
         \x20   Max requests: {}\n\
         {current}\
         \x20   Number of active processes attached: {}\n\
         \x20   Process IDs:\n",
        reg.queue_limit,
        reg.pids.len()
    );
    for pid in &reg.pids {
        out.push_str(&format!("        {pid}\n"));
    }
    out.lines().map(|l| format!("{indent}{l}\n")).collect()
}

/// The `netsh http show servicestate` (session view) text for `snapshot`.
pub fn format_service_state(snapshot: &ServiceStateSnapshot) -> String {
    let mut out = String::from(
        "\nSnapshot of HTTP service state (Server Session View):\n\
         -----------------------------------------------------\n\n",
    );
    for (i, reg) in snapshot.registrations.iter().enumerate() {
        let n = i as u64 + 1;
        out.push_str(&server_session(&snapshot.timeouts, n));
        out.push_str("    URL groups:\n");
        out.push_str(&url_group(reg, n, "    "));
        out.push('\n');
    }
    if !snapshot.registrations.is_empty() {
        out.push_str("Request queues:\n");
        for reg in &snapshot.registrations {
            out.push_str(&request_queue(reg, "    ", false));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{run, NetshContext};
    use super::*;

    /// The layout given in the task brief.
    const EXAMPLE: &str = "
Snapshot of HTTP service state (Server Session View):
-----------------------------------------------------

Server session ID: FF00000120000001
    Version: 2.0
    State: Active
    Properties:
        Max bandwidth: 4294967295
        Timeouts:
            Entity body timeout (secs): 120
            Drain entity body timeout (secs): 120
            Request queue timeout (secs): 120
            Idle connection timeout (secs): 120
            Header wait timeout (secs): 120
            Minimum send rate (bytes/sec): 150
    URL groups:
    URL group ID: FE00000140000001
        State: Active
        Request queue name: Request queue is unnamed.
        Properties:
            Max bandwidth: inherited
            Max connections: inherited
            Timeouts:
                Timeout values inherited
            Number of registered URLs: 1
            Registered URLs:
                HTTP://+:80/API/

Request queues:
    Request queue name: Request queue is unnamed.
        Version: 2.0
        State: Active
        Request queue 503 verbosity level: Basic
        Max requests: 1000
        Number of active processes attached: 1
        Process IDs:
            1234

";

    struct Fixed(ServiceStateSnapshot);
    impl ServiceStateSource for Fixed {
        fn snapshot(&self) -> ServiceStateSnapshot {
            self.0.clone()
        }
    }

    fn one_registration() -> ServiceStateSnapshot {
        ServiceStateSnapshot {
            timeouts: Timeouts::default(),
            registrations: vec![RegistrationState {
                urls: vec!["http://+:80/api/".into()],
                pids: vec![1234],
                queue_name: None,
                ..Default::default()
            }],
        }
    }

    #[test]
    fn layout_matches_example() {
        assert_eq!(format_service_state(&one_registration()), EXAMPLE);
    }

    #[test]
    fn several_registrations_and_timeouts() {
        let mut s = one_registration();
        s.timeouts.idle_connection = Some(60);
        s.registrations.push(RegistrationState {
            urls: vec![
                "https://dash.home.test:443/".into(),
                "http://*:8080/".into(),
            ],
            pids: vec![7, 8],
            queue_name: Some("dash".into()),
            ..Default::default()
        });
        let out = format_service_state(&s);
        assert!(out.contains("            Idle connection timeout (secs): 60\n"));
        assert!(out.contains("Server session ID: FF00000120000002\n"));
        assert!(out.contains("    URL group ID: FE00000140000002\n        State: Active\n        Request queue name: dash\n"));
        assert!(out.contains("            Number of registered URLs: 2\n            Registered URLs:\n                HTTPS://DASH.HOME.TEST:443/\n                HTTP://*:8080/\n\nRequest queues:\n"));
        assert!(out.ends_with("    Request queue name: dash\n        Version: 2.0\n        State: Active\n        Request queue 503 verbosity level: Basic\n        Max requests: 1000\n        Number of active processes attached: 2\n        Process IDs:\n            7\n            8\n\n"));
    }

    #[test]
    fn run_uses_source_or_prints_empty_snapshot() {
        let env = Env::new();
        let out = env.run("http show servicestate");
        assert_eq!(
            out.stdout,
            "\nSnapshot of HTTP service state (Server Session View):\n-----------------------------------------------------\n\n"
        );
        assert_eq!(out.exit_code, 0);

        let source = Fixed(one_registration());
        let ctx = NetshContext {
            certs: &env.certs,
            accounts: &FakeAccounts,
            service_state: Some(&source),
            https_listeners: None,
        };
        let args: Vec<String> = [
            "http",
            "show",
            "servicestate",
            "view=session",
            "verbose=yes",
        ]
        .map(String::from)
        .to_vec();
        let out = run(&args, &env.store, &ctx);
        assert_eq!(out.stdout, EXAMPLE);

        let out = env.run("http show servicestate view=queues");
        assert_eq!(out.exit_code, 87);
        assert!(out.stdout.starts_with(
            "\nError: 87\nThe parameter is incorrect.\nportshare: view 'queues' is not a view;"
        ));

        let out = env.run("http show servicestate view=RequestQ verbose=yes");
        assert_eq!(out.exit_code, 0, "{}", out.stdout);
        assert_eq!(
            out.stdout,
            "\nSnapshot of HTTP service state (Request Queue View):\n-----------------------------------------------------\n\n"
        );
    }

    #[test]
    fn request_queue_view_layout() {
        let want = "
Snapshot of HTTP service state (Request Queue View):
-----------------------------------------------------

Request queue name: Request queue is unnamed.
    Version: 2.0
    State: Active
    Request queue 503 verbosity level: Basic
    Max requests: 1000
    Current requests in queue: 0
    Number of active processes attached: 1
    Process IDs:
        1234
    URL groups:
    URL group ID: FE00000140000001
        State: Active
        Request queue name: Request queue is unnamed.
        Properties:
            Max bandwidth: inherited
            Max connections: inherited
            Timeouts:
                Timeout values inherited
            Number of registered URLs: 1
            Registered URLs:
                HTTP://+:80/API/

Server session ID: FF00000120000001
    Version: 2.0
    State: Active
    Properties:
        Max bandwidth: 4294967295
        Timeouts:
            Entity body timeout (secs): 120
            Drain entity body timeout (secs): 120
            Request queue timeout (secs): 120
            Idle connection timeout (secs): 120
            Header wait timeout (secs): 120
            Minimum send rate (bytes/sec): 150

";
        assert_eq!(format_request_queue_view(&one_registration()), want);
        let env = Env::new();
        let source = Fixed(one_registration());
        let ctx = NetshContext {
            certs: &env.certs,
            accounts: &FakeAccounts,
            service_state: Some(&source),
            https_listeners: None,
        };
        let args: Vec<String> = [
            "http",
            "show",
            "servicestate",
            "view=requestq",
            "verbose=no",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(run(&args, &env.store, &ctx).stdout, want);
    }
}
