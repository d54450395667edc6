//! `http add|delete|show iplisten`: the IP listen list, HTTP.sys's
//! `ListenOnlyList`, kept in the store (`iplisten`). A non-empty list is the
//! only set of addresses the server listens on; the server reads it with
//! [`crate::store::Store::iplisten`].
//!
//! Messages as netsh prints them (docs/httpsys.md#netsh-iplisten):
//! `IP address successfully added` / `IP address successfully deleted`; an
//! address already in the list is error 183, one not in it error 2. The
//! failure heads (`IP address add failed`, `IP address delete failed`)
//! follow netsh's pattern for the other tables and are unverified.
//!
//! `show iplisten` prints the header, then each address on its own line,
//! indented four spaces, then an empty line:
//!
//! ```text
//!
//! IP addresses present in the IP listen list:
//! -------------------------------------------
//!
//!     127.0.0.1
//!     ::1
//!
//! ```
//!
//! `ipaddress=` may also be given without its name (`add iplisten 10.0.0.1`),
//! as Microsoft's own examples write it.

use std::net::IpAddr;

use super::params::Params;
use super::{success, Failure, NetshContext, NetshOutput};
use crate::store::Store;
use crate::winerror::{ERROR_ALREADY_EXISTS, ERROR_FILE_NOT_FOUND};

const ADD_USAGE: &str = "Usage: http add iplisten ipaddress=IPADDRESS";
const DELETE_USAGE: &str = "Usage: http delete iplisten ipaddress=IPADDRESS";
const SHOW_USAGE: &str = "Usage: http show iplisten";

pub(crate) fn run(
    verb: &str,
    args: &[String],
    store: &Store,
    ctx: &NetshContext<'_>,
) -> NetshOutput {
    let changed = match verb {
        "add" => add(args, store),
        "delete" => delete(args, store),
        _ => return show(args, store),
    };
    match changed {
        Ok(out) => {
            // The running server listens on the new list now; one that is
            // not running reads the store when it starts, so not reaching
            // one is no failure of the command.
            if let Some(live) = ctx.service_state {
                if let Err((code, why)) = live.store_settings_changed() {
                    tracing::debug!(code, why, "running server not told of the IP listen list");
                }
            }
            out
        }
        Err(f) if verb == "add" => f.render(Some("IP address add failed")),
        Err(f) => f.render(Some("IP address delete failed")),
    }
}

/// `ipaddress=ADDR`, or the address alone.
fn address(args: &[String], usage: &'static str) -> Result<IpAddr, Failure> {
    let named: Vec<String> = match args {
        [only] if !only.contains('=') => vec![format!("ipaddress={only}")],
        _ => args.to_vec(),
    };
    let params = Params::parse(&named, &["ipaddress"], usage)?;
    let value = params.get("ipaddress").ok_or_else(|| {
        Failure::param(
            "ipaddress= is missing; give an IPv4 or IPv6 address (0.0.0.0 or :: for every address of that family).",
            usage,
        )
    })?;
    // `[::1]` as in a URL is taken too: that is how IPv6 is written elsewhere.
    let bare = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(value);
    bare.parse::<IpAddr>().map_err(|_| {
        Failure::param(
            format!(
                "ipaddress '{value}' is not an IPv4 or IPv6 address (examples: 10.0.0.1, ::1, 0.0.0.0, ::); give no port."
            ),
            usage,
        )
    })
}

fn add(args: &[String], store: &Store) -> Result<NetshOutput, Failure> {
    let ip = address(args, ADD_USAGE)?;
    store
        .update(|data| {
            if data.iplisten.contains(&ip) {
                return Err(Failure::new(
                    ERROR_ALREADY_EXISTS,
                    format!("{ip} is already in the IP listen list ('http show iplisten')."),
                ));
            }
            data.iplisten.push(ip);
            Ok(())
        })
        .map_err(Failure::from_update)?;
    Ok(success("IP address successfully added"))
}

fn delete(args: &[String], store: &Store) -> Result<NetshOutput, Failure> {
    let ip = address(args, DELETE_USAGE)?;
    store
        .update(|data| match data.iplisten.iter().position(|a| *a == ip) {
            Some(i) => {
                data.iplisten.remove(i);
                Ok(())
            }
            None => Err(Failure::new(
                ERROR_FILE_NOT_FOUND,
                format!("{ip} is not in the IP listen list ('http show iplisten' lists it)."),
            )),
        })
        .map_err(Failure::from_update)?;
    Ok(success("IP address successfully deleted"))
}

fn show(args: &[String], store: &Store) -> NetshOutput {
    super::show_stored(args, store, SHOW_USAGE, |d| format_iplisten(&d.iplisten))
}

/// The `netsh http show iplisten` listing.
pub fn format_iplisten(list: &[IpAddr]) -> String {
    let mut out = String::from(
        "\nIP addresses present in the IP listen list:\n\
         -------------------------------------------\n\n",
    );
    for ip in list {
        out.push_str(&format!("    {ip}\n"));
    }
    if !list.is_empty() {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;

    const HEAD: &str =
        "\nIP addresses present in the IP listen list:\n-------------------------------------------\n\n";

    #[test]
    fn add_show_delete() {
        let env = Env::new();
        assert_eq!(env.run("http show iplisten").stdout, HEAD);
        let out = env.run("http add iplisten ipaddress=127.0.0.1");
        assert_eq!(
            (out.stdout.as_str(), out.exit_code),
            ("\nIP address successfully added\n\n", 0)
        );
        assert_eq!(env.run("http add iplisten ::1").exit_code, 0);
        assert_eq!(
            env.run("HTTP SHOW IPLISTEN").stdout,
            format!("{HEAD}    127.0.0.1\n    ::1\n\n")
        );
        assert_eq!(
            env.store.iplisten().unwrap(),
            [
                "127.0.0.1".parse::<std::net::IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );

        let out = env.run("http add iplisten ipaddress=[::1]");
        assert_eq!(out.exit_code, 183, "{}", out.stdout);
        assert!(out.stdout.starts_with(
            "\nIP address add failed, Error: 183\nCannot create a file when that file already exists.\n"
        ), "{}", out.stdout);

        let out = env.run("http delete iplisten ipaddress=127.0.0.1");
        assert_eq!(out.stdout, "\nIP address successfully deleted\n\n");
        let out = env.run("http delete iplisten ipaddress=127.0.0.1");
        assert_eq!(out.exit_code, 2);
        assert!(out.stdout.starts_with(
            "\nIP address delete failed, Error: 2\nThe system cannot find the file specified.\nportshare: 127.0.0.1 is not in the IP listen list"
        ), "{}", out.stdout);
    }

    #[test]
    fn bad_addresses_are_87() {
        let env = Env::new();
        for line in [
            "http add iplisten ipaddress=1.2.3",
            "http add iplisten ipaddress=10.0.0.1:80",
            "http add iplisten",
            "http add iplisten address=10.0.0.1",
            "http delete iplisten ipaddress=host.test",
        ] {
            let out = env.run(line);
            assert_eq!(out.exit_code, 87, "{line}: {}", out.stdout);
            assert!(
                out.stdout.contains("\nThe parameter is incorrect.\n"),
                "{}",
                out.stdout
            );
            assert!(out.stdout.contains("\nUsage: http "), "{}", out.stdout);
        }
        assert_eq!(env.run("http show iplisten x=1").exit_code, 87);
        assert!(!env.store.path().exists());
    }
}
