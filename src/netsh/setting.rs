//! `http show setting` and `http flush logbuffer`.
//!
//! `show setting` prints the HTTP service settings portshare has: whether it
//! listens beyond localhost (HTTP.sys's `EnableNonLocalhostListening`,
//! from `listen=`) and the `[http]` limits and timers under their HTTP.sys
//! registry names (`HKLM\System\CurrentControlSet\Services\HTTP\Parameters`),
//! with the idle-connection and header-wait timers of `add timeout`
//! overriding `[http]` as the server applies them. Layout as netsh prints it
//! on Windows 10/11, from memory, unverified: a title, a dashed rule, then
//! one `    Name : value` line per setting.
//!
//! `flush logbuffer` asks the running server (over the control socket) to
//! write out access.log and httperr.log now; the success message is
//! netsh's, from memory, unverified.

use super::params::Params;
use super::{success, Failure, NetshContext, NetshOutput};
use crate::config::Limits;
use crate::store::Store;

const SHOW_USAGE: &str = "Usage: http show setting";
const FLUSH_USAGE: &str = "Usage: http flush logbuffer";

/// What `show setting` needs from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSettings {
    /// The `[http]` limits and timers.
    pub limits: Limits,
    /// `listen=` (empty: every address).
    pub listen: Vec<std::net::IpAddr>,
}

pub(crate) fn show(args: &[String], store: &Store, ctx: &NetshContext<'_>) -> NetshOutput {
    if let Err(f) = Params::parse(args, &[], SHOW_USAGE) {
        return f.render(None);
    }
    let mut settings = ctx
        .service_state
        .and_then(|s| s.settings())
        .unwrap_or_default();
    // `add timeout` wins over `[http]`, as when the server starts.
    match store.load() {
        Ok(data) => data.timeouts.apply_to(&mut settings.limits),
        Err(e) => return Failure::from_store(e).render(None),
    }
    NetshOutput {
        stdout: format_settings(&settings),
        exit_code: 0,
    }
}

/// The `netsh http show setting` text.
pub fn format_settings(s: &ServiceSettings) -> String {
    let l = &s.limits;
    let non_local = s.listen.is_empty() || s.listen.iter().any(|ip| !ip.is_loopback());
    let rows: [(&str, String); 11] = [
        (
            "EnableNonLocalhostListening",
            if non_local { "Enabled" } else { "Disabled" }.to_owned(),
        ),
        ("MaxConnections", l.max_connections.to_string()),
        ("MaxFieldLength", l.max_field_length.to_string()),
        ("MaxRequestBytes", l.max_request_bytes.to_string()),
        ("UrlSegmentMaxLength", l.url_segment_max_length.to_string()),
        ("UrlSegmentMaxCount", l.url_segment_max_count.to_string()),
        (
            "IdleConnectionTimeout (secs)",
            l.idle_connection_timeout.as_secs().to_string(),
        ),
        (
            "HeaderWaitTimeout (secs)",
            l.header_wait_timeout.as_secs().to_string(),
        ),
        (
            "EntityBodyTimeout (secs)",
            l.entity_body_timeout.as_secs().to_string(),
        ),
        ("MinSendRate (bytes/sec)", l.min_send_rate.to_string()),
        (
            "MinSendRateWindow (secs)",
            l.min_send_rate_window.as_secs().to_string(),
        ),
    ];
    let mut out = String::from(
        "\nSetting value for the HTTP service:\n\
         -----------------------------------\n\n",
    );
    for (name, value) in rows {
        out.push_str(&format!("    {name:<29}: {value}\n"));
    }
    out.push('\n');
    out
}

pub(crate) fn flush(args: &[String], ctx: &NetshContext<'_>) -> NetshOutput {
    // `flush logbuffer` takes no parameters.
    if let Err(f) = Params::parse(args, &[], FLUSH_USAGE) {
        return f.render(None);
    }
    let result = match ctx.service_state {
        Some(source) => source.flush_logs(),
        None => Err((
            crate::winerror::ERROR_NOT_SUPPORTED,
            "there is no running server to ask".to_owned(),
        )),
    };
    match result {
        Ok(()) => success("Log buffer flushed successfully."),
        Err((code, explain)) => Failure::new(code, explain).render(Some("Flush log buffer failed")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{ServiceStateSnapshot, ServiceStateSource};
    use super::*;
    use std::cell::Cell;

    const DEFAULTS: &str = "
Setting value for the HTTP service:
-----------------------------------

    EnableNonLocalhostListening  : Enabled
    MaxConnections               : 0
    MaxFieldLength               : 16384
    MaxRequestBytes              : 16384
    UrlSegmentMaxLength          : 260
    UrlSegmentMaxCount           : 255
    IdleConnectionTimeout (secs) : 120
    HeaderWaitTimeout (secs)     : 120
    EntityBodyTimeout (secs)     : 120
    MinSendRate (bytes/sec)      : 150
    MinSendRateWindow (secs)     : 10

";

    struct Live {
        settings: ServiceSettings,
        flushed: Cell<u32>,
        running: bool,
    }

    impl ServiceStateSource for Live {
        fn snapshot(&self) -> ServiceStateSnapshot {
            ServiceStateSnapshot::default()
        }
        fn settings(&self) -> Option<ServiceSettings> {
            Some(self.settings.clone())
        }
        fn flush_logs(&self) -> Result<(), (u32, String)> {
            if !self.running {
                return Err((2, "the server is not running".into()));
            }
            self.flushed.set(self.flushed.get() + 1);
            Ok(())
        }
    }

    #[test]
    fn show_setting_defaults_and_configured_values() {
        let env = Env::new();
        let out = env.run("http show setting");
        assert_eq!(out.exit_code, 0);
        assert_eq!(out.stdout, DEFAULTS);

        let mut settings = ServiceSettings::default();
        settings.limits.max_connections = 50;
        settings.limits.idle_connection_timeout = std::time::Duration::from_secs(30);
        settings.listen = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        let live = Live {
            settings,
            flushed: Cell::new(0),
            running: true,
        };
        // The store's timeout wins over [http].
        assert_eq!(
            env.run("http add timeout timeouttype=headerwaittimeout value=45")
                .exit_code,
            0
        );
        let out = env.run_live(&live, "HTTP Show Setting");
        assert_eq!(out.exit_code, 0, "{}", out.stdout);
        assert!(
            out.stdout
                .contains("    EnableNonLocalhostListening  : Disabled\n"),
            "{}",
            out.stdout
        );
        assert!(out
            .stdout
            .contains("    MaxConnections               : 50\n"));
        assert!(out
            .stdout
            .contains("    IdleConnectionTimeout (secs) : 30\n"));
        assert!(out
            .stdout
            .contains("    HeaderWaitTimeout (secs)     : 45\n"));

        let out = env.run("http show setting foo=bar");
        assert_eq!(out.exit_code, 87, "{}", out.stdout);
    }

    #[test]
    fn flush_logbuffer_asks_the_server() {
        let env = Env::new();
        let live = Live {
            settings: ServiceSettings::default(),
            flushed: Cell::new(0),
            running: true,
        };
        let out = env.run_live(&live, "http flush logbuffer");
        assert_eq!(out.exit_code, 0, "{}", out.stdout);
        assert_eq!(out.stdout, "\nLog buffer flushed successfully.\n\n");
        assert_eq!(live.flushed.get(), 1);

        let stopped = Live {
            running: false,
            ..live
        };
        let out = env.run_live(&stopped, "http flush logbuffer");
        assert_eq!(out.exit_code, 2, "{}", out.stdout);
        assert!(out.stdout.starts_with(
            "\nFlush log buffer failed, Error: 2\nThe system cannot find the file specified.\nportshare: the server is not running\n"
        ), "{}", out.stdout);

        // No server to ask at all (no live source): error 50.
        let out = env.run("http flush logbuffer");
        assert_eq!(out.exit_code, 50, "{}", out.stdout);
        assert_eq!(env.run("http flush logbuffer now=yes").exit_code, 87);
    }
}
