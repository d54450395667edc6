//! `http add|delete|show timeout`.
//!
//! Decisions (netsh's exact strings for these are not in docs/httpsys.md#netsh-timeout; these
//! follow the sslcert/urlacl pattern and are unverified against Windows):
//! - `add timeout timeouttype=idleconnectiontimeout|headerwaittimeout value=N`
//!   sets the timer (N in 1..=65535 seconds, HTTP.sys keeps it as a USHORT);
//!   adding over an existing value replaces it. Success: `Timeout successfully
//!   added`; failure: `Timeout add failed, Error: N`.
//! - `delete timeout timeouttype=…` returns the timer to the default (120 s);
//!   a timer that is not set fails with error 2, like the other deletes.
//! - `show timeout` prints both timers, labels padded so the colons align:
//!
//! ```text
//!
//! Service Timeout Parameters:
//! ---------------------------
//!
//! Idle Connection Timeout (secs) : 120
//! Header Wait Timeout (secs)     : 120
//!
//! ```

use super::params::{parse_number, Params};
use super::{success, Failure, NetshOutput};
use crate::store::{Store, Timeouts};
use crate::winerror::ERROR_FILE_NOT_FOUND;

const ADD_USAGE: &str =
    "Usage: http add timeout timeouttype=idleconnectiontimeout|headerwaittimeout value=SECONDS";
const DELETE_USAGE: &str =
    "Usage: http delete timeout timeouttype=idleconnectiontimeout|headerwaittimeout";
const SHOW_USAGE: &str = "Usage: http show timeout";

#[derive(Clone, Copy)]
enum Kind {
    IdleConnection,
    HeaderWait,
}

impl Kind {
    fn slot(self, t: &mut Timeouts) -> &mut Option<u32> {
        match self {
            Kind::IdleConnection => &mut t.idle_connection,
            Kind::HeaderWait => &mut t.header_wait,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::IdleConnection => "idleconnectiontimeout",
            Kind::HeaderWait => "headerwaittimeout",
        }
    }
}

fn parse_kind(params: &Params, usage: &'static str) -> Result<Kind, Failure> {
    match params
        .get("timeouttype")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("idleconnectiontimeout") => Ok(Kind::IdleConnection),
        Some("headerwaittimeout") => Ok(Kind::HeaderWait),
        Some(_) => Err(Failure::param(
            "timeouttype must be idleconnectiontimeout or headerwaittimeout.",
            usage,
        )),
        None => Err(Failure::param(
            "timeouttype= is missing; give idleconnectiontimeout or headerwaittimeout.",
            usage,
        )),
    }
}

pub(crate) fn run(verb: &str, args: &[String], store: &Store) -> NetshOutput {
    match verb {
        "add" => add(args, store).unwrap_or_else(|f| f.render(Some("Timeout add failed"))),
        "delete" => delete(args, store).unwrap_or_else(|f| f.render(Some("Timeout delete failed"))),
        _ => show(args, store),
    }
}

fn add(args: &[String], store: &Store) -> Result<NetshOutput, Failure> {
    let params = Params::parse(args, &["timeouttype", "value"], ADD_USAGE)?;
    let kind = parse_kind(&params, ADD_USAGE)?;
    let value = params.get("value").ok_or_else(|| {
        Failure::param("value= is missing; give the timeout in seconds.", ADD_USAGE)
    })?;
    let value = parse_number("value", value, 1, 65535).map_err(|e| Failure::param(e, ADD_USAGE))?;
    store
        .update(|data| {
            *kind.slot(&mut data.timeouts) = Some(value);
            Ok::<_, Failure>(())
        })
        .map_err(Failure::from_update)?;
    Ok(success("Timeout successfully added"))
}

fn delete(args: &[String], store: &Store) -> Result<NetshOutput, Failure> {
    let params = Params::parse(args, &["timeouttype"], DELETE_USAGE)?;
    let kind = parse_kind(&params, DELETE_USAGE)?;
    store
        .update(|data| match kind.slot(&mut data.timeouts).take() {
            Some(_) => Ok(()),
            None => Err(Failure::new(
                ERROR_FILE_NOT_FOUND,
                format!(
                    "{} is not set; it already has the default of 120 seconds.",
                    kind.name()
                ),
            )),
        })
        .map_err(Failure::from_update)?;
    Ok(success("Timeout successfully deleted"))
}

fn show(args: &[String], store: &Store) -> NetshOutput {
    super::show_stored(args, store, SHOW_USAGE, |d| format_timeouts(&d.timeouts))
}

/// The `netsh http show timeout` listing.
pub fn format_timeouts(t: &Timeouts) -> String {
    format!(
        "\nService Timeout Parameters:\n---------------------------\n\n\
         Idle Connection Timeout (secs) : {}\n\
         Header Wait Timeout (secs)     : {}\n\n",
        t.idle_connection_secs(),
        t.header_wait_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;

    const DEFAULT_SHOW: &str = "
Service Timeout Parameters:
---------------------------

Idle Connection Timeout (secs) : 120
Header Wait Timeout (secs)     : 120

";

    #[test]
    fn show_defaults() {
        let env = Env::new();
        let out = env.run("http show timeout");
        assert_eq!(out.stdout, DEFAULT_SHOW);
        assert_eq!(out.exit_code, 0);
    }

    #[test]
    fn add_show_delete() {
        let env = Env::new();
        let out = env.run("http add timeout timeouttype=IdleConnectionTimeout value=60");
        assert_eq!(out.stdout, "\nTimeout successfully added\n\n");
        assert_eq!(out.exit_code, 0);
        env.run("http add timeout timeouttype=headerwaittimeout value=30");
        env.run("http add timeout timeouttype=headerwaittimeout value=65535");
        assert_eq!(
            env.run("http show timeout").stdout,
            DEFAULT_SHOW
                .replace(": 120\nHeader", ": 60\nHeader")
                .replace("    : 120", "    : 65535")
        );
        let out = env.run("http delete timeout timeouttype=idleconnectiontimeout");
        assert_eq!(out.stdout, "\nTimeout successfully deleted\n\n");
        let out = env.run("http delete timeout timeouttype=idleconnectiontimeout");
        assert_eq!(
            out.stdout,
            "\nTimeout delete failed, Error: 2\nThe system cannot find the file specified.\nportshare: idleconnectiontimeout is not set; it already has the default of 120 seconds.\n\n"
        );
        assert_eq!(out.exit_code, 2);
        let t = env.store.load().unwrap().timeouts;
        assert_eq!((t.idle_connection, t.header_wait), (None, Some(65535)));
    }

    #[test]
    fn bad_parameters_are_87() {
        let env = Env::new();
        let cases = [
            (
                "http add timeout value=5",
                "portshare: timeouttype= is missing;",
            ),
            (
                "http add timeout timeouttype=entitybody value=5",
                "portshare: timeouttype must be",
            ),
            (
                "http add timeout timeouttype=headerwaittimeout",
                "portshare: value= is missing;",
            ),
            (
                "http add timeout timeouttype=headerwaittimeout value=0",
                "portshare: value must be a whole number from 1 to 65535, not '0'.\n",
            ),
            (
                "http add timeout timeouttype=headerwaittimeout value=65536",
                "not '65536'",
            ),
            (
                "http add timeout timeouttype=headerwaittimeout value=abc",
                "not 'abc'",
            ),
            ("http delete timeout", "portshare: timeouttype= is missing;"),
        ];
        for (cmd, expected) in cases {
            let out = env.run(cmd);
            assert_eq!(out.exit_code, 87, "{cmd}");
            assert!(out.stdout.contains(expected), "{cmd}\n{}", out.stdout);
        }
        let out = env.run("http add timeout value=5");
        assert!(out
            .stdout
            .starts_with("\nTimeout add failed, Error: 87\nThe parameter is incorrect.\n"));
        let out = env.run("http show timeout x=1");
        assert_eq!(out.exit_code, 87);
        assert!(!env.store.path().exists());
    }
}
