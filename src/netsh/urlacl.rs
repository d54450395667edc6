//! `http add|delete|show urlacl`.
//!
//! Decisions:
//! - Give either `user=` or `sddl=` (not both). `listen` defaults to yes,
//!   `delegate` to no; both `no` is refused (a reservation granting nothing).
//!   `listen`/`delegate` with `sddl=` are refused: the SDDL carries the rights.
//! - With `user=`, an SDDL is generated: rights `GX` (listen), `GW`
//!   (delegate) or `GA` (both), and the account's well-known SID abbreviation
//!   when there is one (`Everyone` → `WD`, `BUILTIN\Users` → `BU`, …), otherwise
//!   the account NAME in the SID position, e.g. `D:(A;;GX;;;alice)`. That is not
//!   a real SID (portshare has no Windows account database); it only records
//!   who the reservation is for.
//! - Well-known accounts are printed as Windows resolves them (`Everyone` →
//!   `\Everyone`); other names as given.
//! - With `sddl=` only, `show urlacl` prints just the SDDL line under the URL.
//! - `url=` of `add` and `delete` goes through [`UrlPrefix::parse`], the parser
//!   registrations and `[app:]` sections use, so a reservation is refused
//!   exactly when a registration of the same string would be (`Error: 87`,
//!   with the parser's reason after `is not a valid URL prefix:`).
//! - The reservation is stored, and shown, exactly as typed (not in the
//!   parser's canonical form).
//! - URLs are compared case-insensitively for duplicates, delete and show.
//! - `delete` of a URL the parser refuses still removes a stored reservation
//!   with that URL (one written before `add` used the parser), so old stores
//!   can be cleaned up; otherwise it is `Error: 87`, not `Error: 2`.
//! - `show urlacl url=X` for an unknown X prints the header, the system
//!   message for error 2 and a `portshare:` line, and exits 2.

use super::params::{parse_yes_no, Params};
use super::{success, AccountLookup, Failure, NetshOutput};
use crate::sddl::Sddl;
use crate::store::{Store, UrlReservation};
use crate::urlprefix::UrlPrefix;
use crate::winerror::{
    system_message, ERROR_ALREADY_EXISTS, ERROR_FILE_NOT_FOUND, ERROR_NONE_MAPPED,
};

const ADD_USAGE: &str = "\
Usage: http add urlacl url=PREFIX user=NAME [listen=yes|no] [delegate=yes|no]
       http add urlacl url=PREFIX sddl=SDDL
       PREFIX: scheme://host:port/path/ e.g. http://+:80/MyUri/";
const DELETE_USAGE: &str = "Usage: http delete urlacl url=PREFIX";
const SHOW_USAGE: &str = "Usage: http show urlacl [url=PREFIX]";

const SHOW_HEADER: &str = "\nURL Reservations:\n-----------------\n\n";

/// Checks that `url` is a URL prefix netsh accepts: the one URL-prefix parser,
/// [`UrlPrefix::parse`]. The error is the parser's reason (one sentence, no
/// full stop).
///
/// A reservation is also kept as typed and compared as text (as netsh
/// does), so a path with `.` or `..` segments would never be the prefix an
/// application registers: it is refused, naming the spelling that works.
fn validate_url(url: &str) -> Result<(), String> {
    let prefix = UrlPrefix::parse(url).map_err(|e| e.to_string())?;
    let dotted = prefix.path().split('/').any(|segment| {
        matches!(
            segment.to_ascii_lowercase().as_str(),
            "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e."
        )
    });
    if dotted {
        let path = prefix.path();
        let canonical = url
            .len()
            .checked_sub(path.len())
            .and_then(|start| url.get(..start))
            .map(|origin| format!("{origin}{}", prefix.path_key()));
        return Err(match canonical {
            Some(c) => {
                format!("a reservation's path must not have '.' or '..' segments (reserve {c})")
            }
            None => "a reservation's path must not have '.' or '..' segments".to_owned(),
        });
    }
    Ok(())
}

/// The `Error: 87` failure for a `url=` the parser refuses.
fn invalid_url(url: &str, why: &str, usage: &'static str) -> Failure {
    Failure::param(
        format!("url '{url}' is not a valid URL prefix: {why}."),
        usage,
    )
}

pub(crate) fn run(
    verb: &str,
    args: &[String],
    store: &Store,
    accounts: &dyn AccountLookup,
) -> NetshOutput {
    match verb {
        "add" => add(args, store, accounts)
            .unwrap_or_else(|f| f.render(Some("Url reservation add failed"))),
        "delete" => {
            delete(args, store).unwrap_or_else(|f| f.render(Some("Url reservation delete failed")))
        }
        _ => show(args, store),
    }
}

fn parse_url(params: &Params, usage: &'static str) -> Result<String, Failure> {
    let url = params.get("url").ok_or_else(|| {
        Failure::param(
            "url= is missing; give the URL prefix, e.g. url=http://+:80/MyUri/.",
            usage,
        )
    })?;
    validate_url(url).map_err(|why| invalid_url(url, &why, usage))?;
    Ok(url.to_owned())
}

/// Windows' display name and SDDL SID abbreviation for well-known accounts.
fn well_known(user: &str) -> Option<(&'static str, &'static str)> {
    const KNOWN: &[(&[&str], &str, &str)] = &[
        (&["everyone", "\\everyone"], "\\Everyone", "WD"),
        (
            &["authenticated users", "nt authority\\authenticated users"],
            "NT AUTHORITY\\Authenticated Users",
            "AU",
        ),
        (
            &["network service", "nt authority\\network service"],
            "NT AUTHORITY\\NETWORK SERVICE",
            "NS",
        ),
        (
            &["local service", "nt authority\\local service"],
            "NT AUTHORITY\\LOCAL SERVICE",
            "LS",
        ),
        (
            &["system", "nt authority\\system"],
            "NT AUTHORITY\\SYSTEM",
            "SY",
        ),
        (&["users", "builtin\\users"], "BUILTIN\\Users", "BU"),
        (
            &["administrators", "builtin\\administrators"],
            "BUILTIN\\Administrators",
            "BA",
        ),
    ];
    let lower = user.to_ascii_lowercase();
    KNOWN
        .iter()
        .find(|(names, _, _)| names.contains(&lower.as_str()))
        .map(|(_, display, sid)| (*display, *sid))
}

fn add(
    args: &[String],
    store: &Store,
    accounts: &dyn AccountLookup,
) -> Result<NetshOutput, Failure> {
    let params = Params::parse(
        args,
        &["url", "user", "listen", "delegate", "sddl"],
        ADD_USAGE,
    )?;
    let url = parse_url(&params, ADD_USAGE)?;
    let p = |e: String| Failure::param(e, ADD_USAGE);
    let reservation = match (params.get("user"), params.get("sddl")) {
        (Some(_), Some(_)) => return Err(p("give either user= or sddl=, not both.".into())),
        (None, None) => {
            return Err(p(
                "say who may use the URL: give user=NAME (e.g. user=Everyone) or sddl=SDDL.".into(),
            ))
        }
        (Some(""), None) => return Err(p("user= must not be empty.".into())),
        (Some(user), None) => {
            let listen = match params.get("listen") {
                Some(v) => parse_yes_no("listen", v).map_err(p)?,
                None => true,
            };
            let delegate = match params.get("delegate") {
                Some(v) => parse_yes_no("delegate", v).map_err(p)?,
                None => false,
            };
            let rights = match (listen, delegate) {
                (true, true) => "GA",
                (true, false) => "GX",
                (false, true) => "GW",
                (false, false) => {
                    return Err(p(
                        "listen=no with delegate=no grants nothing; allow at least one.".into(),
                    ))
                }
            };
            let (display, sid) = match well_known(user) {
                Some(known) => known,
                None => {
                    // As Windows does (netsh's Error 1332): a reservation for
                    // an account that does not exist would never match.
                    let bare = user.rsplit('\\').next().unwrap_or(user);
                    if !accounts.exists(bare) {
                        return Err(Failure::new(
                            ERROR_NONE_MAPPED,
                            format!(
                                "there is no user or group named '{user}' on this machine; check the name (user=NAME, or user=Everyone)."
                            ),
                        ));
                    }
                    (user, user)
                }
            };
            UrlReservation {
                url,
                user: display.to_owned(),
                listen,
                delegate,
                sddl: format!("D:(A;;{rights};;;{sid})"),
            }
        }
        (None, Some(sddl)) => {
            if params.get("listen").is_some() || params.get("delegate").is_some() {
                return Err(p(
                    "listen= and delegate= go with user=; with sddl= the SDDL sets the rights."
                        .into(),
                ));
            }
            // Stored only if the server can evaluate it (deny entries too).
            Sddl::parse(sddl).map_err(|why| {
                p(format!(
                    "sddl '{sddl}' is not a security descriptor portshare can evaluate: {why} (e.g. D:(A;;GX;;;WD))."
                ))
            })?;
            let rights = |r: &str| sddl.contains(&format!("(A;;{r};")) || sddl.contains("(A;;GA;");
            UrlReservation {
                url,
                user: String::new(),
                listen: rights("GX"),
                delegate: rights("GW"),
                sddl: sddl.to_owned(),
            }
        }
    };
    store
        .update(|data| {
            if let Some(existing) = data.reservation(&reservation.url) {
                return Err(Failure::new(
                    ERROR_ALREADY_EXISTS,
                    format!(
                        "{} is reserved already; remove it first with 'http delete urlacl url={}'.",
                        existing.url, existing.url
                    ),
                ));
            }
            data.urlacl.push(reservation);
            Ok(())
        })
        .map_err(Failure::from_update)?;
    Ok(success("URL reservation successfully added"))
}

fn delete(args: &[String], store: &Store) -> Result<NetshOutput, Failure> {
    let params = Params::parse(args, &["url"], DELETE_USAGE)?;
    let url = params.get("url").ok_or_else(|| {
        Failure::param(
            "url= is missing; give the reserved URL to delete.",
            DELETE_USAGE,
        )
    })?;
    let invalid = validate_url(url).err();
    store
        .update(|data| {
            match data.reservation_index(url) {
                // Also when `invalid`: an old store may hold such a URL.
                Some(i) => {
                    data.urlacl.remove(i);
                    Ok(())
                }
                None => Err(match &invalid {
                    Some(why) => invalid_url(url, why, DELETE_USAGE),
                    None => Failure::new(
                        ERROR_FILE_NOT_FOUND,
                        format!(
                            "{url} is not reserved; 'http show urlacl' lists the reservations."
                        ),
                    ),
                }),
            }
        })
        .map_err(Failure::from_update)?;
    Ok(success("URL reservation successfully deleted"))
}

fn show(args: &[String], store: &Store) -> NetshOutput {
    let params = match Params::parse(args, &["url"], SHOW_USAGE) {
        Ok(p) => p,
        Err(f) => return f.render(None),
    };
    let data = match store.load() {
        Ok(d) => d,
        Err(e) => return Failure::from_store(e).render(None),
    };
    match params.get("url") {
        None => NetshOutput {
            stdout: format_urlacl_list(&data.urlacl),
            exit_code: 0,
        },
        Some(url) => match data.reservation(url) {
            Some(r) => NetshOutput {
                stdout: format_urlacl_list(std::slice::from_ref(r)),
                exit_code: 0,
            },
            None => NetshOutput {
                stdout: format!(
                    "{SHOW_HEADER}{}\nportshare: {url} is not reserved.\n\n",
                    system_message(ERROR_FILE_NOT_FOUND)
                ),
                exit_code: ERROR_FILE_NOT_FOUND as i32,
            },
        },
    }
}

/// The `netsh http show urlacl` listing (docs/httpsys.md#netsh-urlacl).
pub fn format_urlacl_list(reservations: &[UrlReservation]) -> String {
    let yes_no = |v: bool| if v { "Yes" } else { "No" };
    let mut out = String::from(SHOW_HEADER);
    for r in reservations {
        out.push_str(&format!("    {:<24}: {}\n", "Reserved URL", r.url));
        if r.user.is_empty() {
            out.push_str(&format!("        SDDL: {}\n", r.sddl));
        } else {
            out.push_str(&format!("        User: {}\n", r.user));
            out.push_str(&format!("            Listen: {}\n", yes_no(r.listen)));
            out.push_str(&format!("            Delegate: {}\n", yes_no(r.delegate)));
            out.push_str(&format!("            SDDL: {}\n", r.sddl));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::validate_url;
    use crate::store::UrlReservation;

    /// docs/httpsys.md#netsh-urlacl, verbatim.
    const SPEC_SHOW: &str = "
URL Reservations:
-----------------

    Reserved URL            : http://+:80/Temporary_Listen_Addresses/
        User: \\Everyone
            Listen: Yes
            Delegate: No
            SDDL: D:(A;;GX;;;WD)

";

    #[test]
    fn add_show_matches_spec() {
        let env = Env::new();
        let out =
            env.run("http add urlacl url=http://+:80/Temporary_Listen_Addresses/ user=Everyone");
        assert_eq!(out.stdout, "\nURL reservation successfully added\n\n");
        assert_eq!(out.exit_code, 0);
        assert_eq!(env.run("http show urlacl").stdout, SPEC_SHOW);
        assert_eq!(
            env.run("http show urlacl url=HTTP://+:80/temporary_listen_addresses/")
                .stdout,
            SPEC_SHOW
        );
    }

    #[test]
    fn explicit_listen_delegate_and_backslash_everyone() {
        let env = Env::new();
        let out = env.run(
            "http add urlacl url=http://+:80/Temporary_Listen_Addresses/ user=\\Everyone listen=yes delegate=no",
        );
        assert_eq!(out.exit_code, 0);
        assert_eq!(env.run("http show urlacl").stdout, SPEC_SHOW);
    }

    #[test]
    fn generated_sddl_for_other_users_and_rights() {
        let env = Env::new();
        env.run("http add urlacl url=http://+:8080/a/ user=alice delegate=yes");
        env.run("http add urlacl url=http://+:8080/b/ user=alice listen=no delegate=yes");
        env.run(
            "http add urlacl url=https://www.example.com:443/ user=Network_Service_Not listen=yes",
        );
        env.run("http add urlacl url=http://+:8081/ user=builtin\\users");
        let out = env.run("http show urlacl").stdout;
        assert!(out.contains("    Reserved URL            : http://+:8080/a/\n        User: alice\n            Listen: Yes\n            Delegate: Yes\n            SDDL: D:(A;;GA;;;alice)\n\n"), "{out}");
        assert!(out.contains("            Listen: No\n            Delegate: Yes\n            SDDL: D:(A;;GW;;;alice)\n"));
        assert!(out.contains("SDDL: D:(A;;GX;;;Network_Service_Not)\n"));
        assert!(out.contains("        User: BUILTIN\\Users\n            Listen: Yes\n            Delegate: No\n            SDDL: D:(A;;GX;;;BU)\n"));
    }

    #[test]
    fn sddl_only_prints_sddl_line() {
        let env = Env::new();
        let out = env.run("http add urlacl url=http://+:80/x/ sddl=D:(A;;GX;;;alice)");
        assert_eq!(out.exit_code, 0, "{}", out.stdout);
        assert_eq!(
            env.run("http show urlacl").stdout,
            "\nURL Reservations:\n-----------------\n\n    Reserved URL            : http://+:80/x/\n        SDDL: D:(A;;GX;;;alice)\n\n"
        );
        let r = &env.store.load().unwrap().urlacl[0];
        assert!(r.listen && !r.delegate);
    }

    #[test]
    fn an_account_that_does_not_exist_is_1332() {
        let env = Env::new();
        let out = env.run("http add urlacl url=http://+:80/x/ user=nosuchuser");
        assert_eq!(out.exit_code, 1332, "{}", out.stdout);
        assert!(out.stdout.starts_with(
            "\nUrl reservation add failed, Error: 1332\nNo mapping between account names and security IDs was done.\n"
        ), "{}", out.stdout);
        let out = env.run("http add urlacl url=http://+:80/x/ user=MACHINE\\nosuchuser");
        assert_eq!(out.exit_code, 1332, "{}", out.stdout);
        assert!(env.store.load().unwrap().urlacl.is_empty());
    }

    #[test]
    fn sddl_the_server_cannot_evaluate_is_87_and_nothing_is_stored() {
        let env = Env::new();
        for sddl in [
            "D:(A;;GX;;;S-1-5-21-1-2-3-1001)",
            "D:(OA;;GX;;;WD)",
            "D:(A;;GX;;;WD",
        ] {
            let out = env.run(&format!("http add urlacl url=http://+:80/x/ sddl={sddl}"));
            assert_eq!(out.exit_code, 87, "{sddl}: {}", out.stdout);
            assert!(
                out.stdout
                    .contains("is not a security descriptor portshare can evaluate"),
                "{}",
                out.stdout
            );
        }
        assert!(env.store.load().unwrap().urlacl.is_empty());
    }

    #[test]
    fn equal_prefixes_spelled_differently_are_one_reservation() {
        let env = Env::new();
        assert_eq!(
            env.run("http add urlacl url=http://+:18080/q/ user=alice")
                .exit_code,
            0
        );
        for same in ["http://+:18080/Q/", "http://+:18080/%71/"] {
            let out = env.run(&format!("http add urlacl url={same} user=bob"));
            assert_eq!(out.exit_code, 183, "{same}: {}", out.stdout);
        }
        // Deleted by any spelling of it.
        assert_eq!(
            env.run("http delete urlacl url=http://+:18080/%51/")
                .exit_code,
            0
        );
        assert!(env.store.load().unwrap().urlacl.is_empty());
    }

    #[test]
    fn duplicate_add_is_183() {
        let env = Env::new();
        env.run("http add urlacl url=http://+:80/api/ user=Everyone");
        let out = env.run("http add urlacl url=http://+:80/API/ user=alice");
        assert_eq!(
            out.stdout,
            "\nUrl reservation add failed, Error: 183\nCannot create a file when that file already exists.\nportshare: http://+:80/api/ is reserved already; remove it first with 'http delete urlacl url=http://+:80/api/'.\n\n"
        );
        assert_eq!(out.exit_code, 183);
    }

    #[test]
    fn delete_known_and_unknown() {
        let env = Env::new();
        env.run("http add urlacl url=http://+:80/api/ user=Everyone");
        let out = env.run("http delete urlacl url=http://+:80/api/");
        assert_eq!(out.stdout, "\nURL reservation successfully deleted\n\n");
        assert_eq!(out.exit_code, 0);
        let out = env.run("http delete urlacl url=http://+:80/api/");
        assert_eq!(
            out.stdout,
            "\nUrl reservation delete failed, Error: 2\nThe system cannot find the file specified.\nportshare: http://+:80/api/ is not reserved; 'http show urlacl' lists the reservations.\n\n"
        );
        assert_eq!(out.exit_code, 2);
    }

    #[test]
    fn show_unknown_and_empty() {
        let env = Env::new();
        assert_eq!(
            env.run("http show urlacl").stdout,
            "\nURL Reservations:\n-----------------\n\n"
        );
        let out = env.run("http show urlacl url=http://+:80/nope/");
        assert_eq!(
            out.stdout,
            "\nURL Reservations:\n-----------------\n\nThe system cannot find the file specified.\nportshare: http://+:80/nope/ is not reserved.\n\n"
        );
        assert_eq!(out.exit_code, 2);
    }

    #[test]
    fn bad_parameters_are_87() {
        let env = Env::new();
        let cases = [
            ("http add urlacl url=http://+:80/api user=Everyone", "portshare: url 'http://+:80/api' is not a valid URL prefix: the URL prefix must end with '/' (http://+:80/api → http://+:80/api/).\n"),
            ("http add urlacl user=Everyone", "portshare: url= is missing;"),
            ("http add urlacl url=http://+:80/", "portshare: say who may use the URL"),
            ("http add urlacl url=http://+:80/ user=a sddl=D:(A;;GX;;;WD)", "portshare: give either user= or sddl=, not both.\n"),
            ("http add urlacl url=http://+:80/ user=a listen=maybe", "portshare: listen must be 'yes' or 'no', not 'maybe'.\n"),
            ("http add urlacl url=http://+:80/ user=a listen=no", "grants nothing"),
            ("http add urlacl url=http://+:80/ sddl=garbage", "is not a security descriptor"),
            ("http add urlacl url=http://+:80/ sddl=D:(A;;GX;;;WD) listen=yes", "listen= and delegate= go with user="),
            ("http delete urlacl", "portshare: url= is missing;"),
        ];
        for (cmd, expected) in cases {
            let out = env.run(cmd);
            assert_eq!(out.exit_code, 87, "{cmd}");
            assert!(out.stdout.contains(expected), "{cmd}\n{}", out.stdout);
            assert!(out.stdout.contains("\nThe parameter is incorrect.\n"));
        }
        let out = env.run("http add urlacl url=ftp://+:80/ user=a");
        assert!(out
            .stdout
            .starts_with("\nUrl reservation add failed, Error: 87\nThe parameter is incorrect.\n"));
        assert!(out.stdout.contains("\n\nUsage: http add urlacl "));
        assert!(!env.store.path().exists());
    }

    #[test]
    fn basic_url_check() {
        for ok in [
            "http://+:80/",
            "https://*:443/api/",
            "HTTP://www.example.com:8080/a/b/",
            "http://[::1]:80/",
            "http://192.168.1.5:80/x/",
        ] {
            assert_eq!(validate_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://+:80",
            "http://+/",
            "http://+:0/",
            "http://+:65536/",
            "http://:80/",
            "http://[::1:80/",
            "ftp://+:80/",
            "http://+:80/api",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn url_goes_through_the_prefix_parser() {
        let env = Env::new();
        let cases = [
            (
                "http://+:080/api/",
                "the port '080' is not a decimal number from 1 to 65535 without a leading zero",
            ),
            (
                "http://+:8080/../b/",
                "the path uses '..' to go above the root",
            ),
            ("http://+:80/a%2Fb/", "encoded '/'"),
            (
                "http://*.example.com:80/",
                "a wildcard (+ or *) must be the whole host",
            ),
        ];
        for (url, why) in cases {
            for verb in ["add", "delete"] {
                let user = if verb == "add" { " user=Everyone" } else { "" };
                let out = env.run(&format!("http {verb} urlacl url={url}{user}"));
                assert_eq!(out.exit_code, 87, "{verb} {url}\n{}", out.stdout);
                let expected = format!(
                    "\nThe parameter is incorrect.\nportshare: url '{url}' is not a valid URL prefix: "
                );
                assert!(
                    out.stdout.contains(&expected),
                    "{verb} {url}\n{}",
                    out.stdout
                );
                assert!(out.stdout.contains(why), "{verb} {url}\n{}", out.stdout);
            }
        }
        assert!(!env.store.path().exists());
    }

    #[test]
    fn delete_removes_an_old_reservation_the_parser_refuses() {
        let env = Env::new();
        env.store
            .update(|d| {
                d.urlacl.push(UrlReservation {
                    url: "http://+:080/old/".into(),
                    user: "alice".into(),
                    listen: true,
                    delegate: false,
                    sddl: "D:(A;;GX;;;alice)".into(),
                });
                Ok::<_, ()>(())
            })
            .expect("seed the store");
        let out = env.run("http delete urlacl url=HTTP://+:080/OLD/");
        assert_eq!(out.stdout, "\nURL reservation successfully deleted\n\n");
        assert!(env.store.load().expect("load").urlacl.is_empty());
    }
}
