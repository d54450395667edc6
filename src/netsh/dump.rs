//! `http dump`: a script, in netsh's dump layout, that recreates the
//! configuration when run with `netsh exec FILE` (or `netsh -f FILE`).
//!
//! Decisions:
//! - Every SSL binding is written with all its parameters, defaults
//!   included, so the script does not depend on this version's defaults.
//! - A reservation made with `user=` is written with `user=`, `listen=` and
//!   `delegate=` (its SDDL is generated again, identically); one made with
//!   `sddl=` only is written with `sddl=`.
//! - Only timeouts that are set are written (an unset one is the default);
//!   likewise the cache parameters.
//! - The IP listen list is written in its order, one `add iplisten` each.
//! - Values with spaces are put in double quotes, which the script reader
//!   removes (as netsh's does).

use super::sslcert::flag_values;
use super::{Failure, NetshOutput};
use crate::store::{SslBinding, Store, StoreData, UrlReservation};

const HEAD: &str =
    "#========================\n# HTTP Configuration\n#========================\npushd http\n\n";
const USAGE: &str = "Usage: http dump";
const TAIL: &str = "\npopd\n# End of HTTP configuration\n";

pub(crate) fn run(args: &[String], store: &Store) -> NetshOutput {
    if args
        .first()
        .is_some_and(|a| super::is_help_word(&a.to_ascii_lowercase()))
    {
        return NetshOutput {
            stdout: format!("\n{USAGE}\n\n"),
            exit_code: 0,
        };
    }
    if let Some(extra) = args.first() {
        return Failure::param(
            format!("'http dump' takes no parameters; remove '{extra}'."),
            USAGE,
        )
        .render(None);
    }
    match store.load() {
        Ok(data) => NetshOutput {
            stdout: format_dump(&data),
            exit_code: 0,
        },
        Err(e) => Failure::from_store(e).render(None),
    }
}

/// The dump script for `data`.
pub fn format_dump(data: &StoreData) -> String {
    let mut out = String::from(HEAD);
    for b in &data.sslcert {
        out.push_str(&sslcert_line(b));
        out.push('\n');
    }
    for r in &data.urlacl {
        out.push_str(&urlacl_line(r));
        out.push('\n');
    }
    let t = &data.timeouts;
    for (name, value) in [
        ("idleconnectiontimeout", t.idle_connection),
        ("headerwaittimeout", t.header_wait),
    ] {
        if let Some(v) = value {
            out.push_str(&format!("add timeout timeouttype={name} value={v}\n"));
        }
    }
    for ip in &data.iplisten {
        out.push_str(&format!("add iplisten ipaddress={ip}\n"));
    }
    let c = &data.cacheparam;
    for (name, value) in [
        ("maxcacheresponsesize", c.max_response_size),
        ("cacherangechunksize", c.range_chunk_size),
    ] {
        if let Some(v) = value {
            out.push_str(&format!("add cacheparam type={name} value={v}\n"));
        }
    }
    out.push_str(TAIL);
    out
}

/// `name=value`, the value quoted when it has spaces (account names such as
/// `NT AUTHORITY\Authenticated Users`).
fn param(name: &str, value: &str) -> String {
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        format!(" {name}=\"{value}\"")
    } else {
        format!(" {name}={value}")
    }
}

fn sslcert_line(b: &SslBinding) -> String {
    let mut line = String::from("add sslcert");
    line.push_str(&param(b.key.param_name(), &b.key.to_string()));
    // A `ccs` binding may have neither (the certificate is chosen by name).
    if !b.certhash.is_empty() {
        line.push_str(&param("certhash", &b.certhash));
    }
    line.push_str(&param("appid", &b.appid));
    if !b.certstorename.is_empty() {
        line.push_str(&param("certstorename", &b.certstorename));
    }
    let f = &b.flags;
    line.push_str(&param(
        "revocationfreshnesstime",
        &f.revocationfreshnesstime.to_string(),
    ));
    line.push_str(&param(
        "urlretrievaltimeout",
        &f.urlretrievaltimeout.to_string(),
    ));
    if let Some(id) = &f.sslctlidentifier {
        line.push_str(&param("sslctlidentifier", id));
    }
    if let Some(name) = &f.sslctlstorename {
        line.push_str(&param("sslctlstorename", name));
    }
    for (name, on) in flag_values(f) {
        line.push_str(&param(name, if on { "enable" } else { "disable" }));
    }
    line
}

fn urlacl_line(r: &UrlReservation) -> String {
    let mut line = String::from("add urlacl");
    line.push_str(&param("url", &r.url));
    if r.user.is_empty() {
        line.push_str(&param("sddl", &r.sddl));
    } else {
        line.push_str(&param("user", &r.user));
        line.push_str(&param("listen", if r.listen { "yes" } else { "no" }));
        line.push_str(&param("delegate", if r.delegate { "yes" } else { "no" }));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;

    #[test]
    fn dump_writes_every_parameter_and_round_trips() {
        let env = Env::new();
        for line in [
            format!("http add sslcert ipport=0.0.0.0:443 certhash={HASH} appid={APPID} disablehttp2=enable enablesessionticket=enable revocationfreshnesstime=30"),
            format!("http add sslcert hostnameport=a.test:8443 certhash={HASH} appid={APPID} sslctlstorename=CA"),
            format!("http add sslcert ccs=9443 appid={APPID}"),
            "http add urlacl url=http://+:8080/a/ user=Everyone delegate=yes".to_owned(),
            "http add urlacl url=http://+:8080/b/ sddl=D:(A;;GX;;;WD)".to_owned(),
            "http add timeout timeouttype=headerwaittimeout value=30".to_owned(),
            "http add iplisten ipaddress=::1".to_owned(),
            "http add iplisten ipaddress=127.0.0.1".to_owned(),
            "http add cacheparam type=maxcacheresponsesize value=65536".to_owned(),
        ] {
            let out = env.run(&line);
            assert_eq!(out.exit_code, 0, "{line}: {}", out.stdout);
        }
        let dump = env.run("http dump");
        assert_eq!(dump.exit_code, 0);
        let text = dump.stdout;
        assert!(text.starts_with("#========================\n# HTTP Configuration\n#========================\npushd http\n"), "{text}");
        assert!(
            text.ends_with("popd\n# End of HTTP configuration\n"),
            "{text}"
        );
        assert!(text.contains(" enablesessionticket=enable"), "{text}");
        assert!(
            text.contains(" user=\\Everyone listen=yes delegate=yes\n"),
            "{text}"
        );
        assert!(
            text.contains("add timeout timeouttype=headerwaittimeout value=30\n"),
            "{text}"
        );
        assert!(!text.contains("idleconnectiontimeout"), "{text}");
        assert!(
            text.contains("add iplisten ipaddress=::1\nadd iplisten ipaddress=127.0.0.1\n"),
            "{text}"
        );
        assert!(
            text.contains("add cacheparam type=maxcacheresponsesize value=65536\n"),
            "{text}"
        );
        assert!(!text.contains("cacherangechunksize"), "{text}");

        // The `add` lines, run again in a fresh store, give the same store.
        let before = env.store.load().expect("load");
        let fresh = Env::new();
        for line in text.lines().filter(|l| l.starts_with("add ")) {
            let out = fresh.run(&format!("http {line}"));
            assert_eq!(out.exit_code, 0, "{line}: {}", out.stdout);
        }
        assert_eq!(fresh.store.load().expect("load"), before);
    }

    #[test]
    fn dump_refuses_parameters() {
        let env = Env::new();
        assert_eq!(env.run("http dump x=1").exit_code, 87);
    }
}
