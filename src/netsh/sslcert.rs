//! `http add|update|delete|show sslcert`.
//!
//! Decisions:
//! - `certhash` is required for `ipport`/`hostnameport`, optional for `ccs`
//!   (the central certificate store picks certificates by SNI name); a missing
//!   hash or store name prints `(null)` as netsh does.
//! - A certhash unknown to the certificate store fails like a missing private
//!   key, with error 1312 (what Windows reports when the certificate is not in
//!   the machine's MY store), but with its own `portshare:` sentence.
//! - `update` needs the same parameters as `add` and replaces the whole record
//!   in place (flags not given return to their defaults), like netsh.
//! - `certstorename` is recorded and shown; portshare has one store.
//! - `show sslcert <key>` for a key without a binding prints the header, the
//!   system message for error 2 and a `portshare:` line, and exits 2.
//! - `Disable QUIC` and the newer flags (OCSP stapling, token binding,
//!   extended events, session ticket, session ID) are printed only when set
//!   (docs/httpsys.md#netsh-sslcert's layout, which the tests follow byte for
//!   byte, has no such lines). They are kept and dumped (`http dump`).

use super::params::{parse_appid, parse_certhash, parse_enable, parse_number, Params};
use super::{success, CertStatus, Failure, NetshContext, NetshOutput};
use crate::store::{BindingFlags, BindingKey, SslBinding, Store};
use crate::winerror::{
    system_message, ERROR_ALREADY_EXISTS, ERROR_FILE_NOT_FOUND, ERROR_NO_SUCH_LOGON_SESSION,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Add,
    Update,
    Delete,
    Show,
}

const ADD_USAGE: &str = "\
Usage: http add sslcert ipport=IP:PORT | hostnameport=HOST:PORT | ccs=PORT
             certhash=THUMBPRINT appid={GUID} [certstorename=MY]
             [FLAG=enable|disable ...] [revocationfreshnesstime=N] [urlretrievaltimeout=N]
             [sslctlidentifier=ID] [sslctlstorename=NAME]
       FLAG: clientcertnegotiation verifyclientcertrevocation
             verifyrevocationwithcachedclientcertonly usagecheck dsmapperusage reject
             disablehttp2 disablequic disablelegacytls disabletls12 disabletls13
             disableocspstapling enabletokenbinding logextendedevents
             enablesessionticket disablesessionid";
const UPDATE_USAGE: &str = "\
Usage: http update sslcert ipport=IP:PORT | hostnameport=HOST:PORT | ccs=PORT
             certhash=THUMBPRINT appid={GUID} [certstorename=MY] [FLAG=enable|disable ...]
       (same parameters as 'http add sslcert'; the binding is replaced)";
const DELETE_USAGE: &str =
    "Usage: http delete sslcert ipport=IP:PORT | hostnameport=HOST:PORT | ccs=PORT";
const SHOW_USAGE: &str =
    "Usage: http show sslcert [ipport=IP:PORT | hostnameport=HOST:PORT | ccs=PORT]";

const KEY_PARAMS: &[&str] = &["ipport", "hostnameport", "ccs"];

/// Enable/disable flags: parameter name and the field it sets, in netsh's
/// parameter order (also the order `http dump` writes them).
type FlagField = fn(&mut BindingFlags) -> &mut bool;
const FLAG_PARAMS: &[(&str, FlagField)] = &[
    ("clientcertnegotiation", |f| &mut f.clientcertnegotiation),
    ("verifyclientcertrevocation", |f| {
        &mut f.verifyclientcertrevocation
    }),
    ("verifyrevocationwithcachedclientcertonly", |f| {
        &mut f.verifyrevocationwithcachedclientcertonly
    }),
    ("usagecheck", |f| &mut f.usagecheck),
    ("dsmapperusage", |f| &mut f.dsmapperusage),
    ("reject", |f| &mut f.reject),
    ("disablehttp2", |f| &mut f.disablehttp2),
    ("disablequic", |f| &mut f.disablequic),
    ("disablelegacytls", |f| &mut f.disablelegacytls),
    ("disabletls12", |f| &mut f.disabletls12),
    ("disabletls13", |f| &mut f.disabletls13),
    ("disableocspstapling", |f| &mut f.disableocspstapling),
    ("enabletokenbinding", |f| &mut f.enabletokenbinding),
    ("logextendedevents", |f| &mut f.logextendedevents),
    ("enablesessionticket", |f| &mut f.enablesessionticket),
    ("disablesessionid", |f| &mut f.disablesessionid),
];

/// Each enable/disable flag of `f` with its parameter name.
pub(crate) fn flag_values(f: &BindingFlags) -> Vec<(&'static str, bool)> {
    let mut copy = f.clone();
    FLAG_PARAMS
        .iter()
        .map(|(name, field)| (*name, *field(&mut copy)))
        .collect()
}

const OTHER_PARAMS: &[&str] = &[
    "certhash",
    "appid",
    "certstorename",
    "revocationfreshnesstime",
    "urlretrievaltimeout",
    "sslctlidentifier",
    "sslctlstorename",
];

pub(crate) fn run(
    verb: Verb,
    args: &[String],
    store: &Store,
    ctx: &NetshContext<'_>,
) -> NetshOutput {
    let head = match verb {
        Verb::Add => Some("SSL Certificate add failed"),
        Verb::Update => Some("SSL Certificate update failed"),
        Verb::Delete => Some("SSL Certificate deletion failed"),
        Verb::Show => None,
    };
    let result = match verb {
        Verb::Add | Verb::Update => add_or_update(verb, args, store, ctx),
        Verb::Delete => delete(args, store),
        Verb::Show => return show(args, store),
    };
    match result {
        Ok(out) => out,
        Err(f) => f.render(head),
    }
}

fn add_or_update(
    verb: Verb,
    args: &[String],
    store: &Store,
    ctx: &NetshContext<'_>,
) -> Result<NetshOutput, Failure> {
    let usage = if verb == Verb::Add {
        ADD_USAGE
    } else {
        UPDATE_USAGE
    };
    let allowed: Vec<&str> = KEY_PARAMS
        .iter()
        .chain(OTHER_PARAMS)
        .copied()
        .chain(FLAG_PARAMS.iter().map(|(n, _)| *n))
        .collect();
    let params = Params::parse(args, &allowed, usage)?;
    let binding = binding_from_params(&params, usage)?;

    if !binding.certhash.is_empty() {
        check_certificate(ctx, &binding.certhash)?;
    }

    let key = binding.key.clone();
    let hostname = match &key {
        BindingKey::HostnamePort(h, _) => Some(h.clone()),
        _ => None,
    };
    let warnings = if binding.certhash.is_empty() {
        Vec::new()
    } else {
        ctx.certs.warnings(&binding.certhash, hostname.as_deref())
    };
    let mut replaced_automatic = None;
    let mut lone_family = None;
    store
        .update(|data| {
            let existing = data.sslcert.iter().position(|b| b.key == key);
            let result = match (verb, existing) {
                // A binding portshare made by itself gives way to the user's:
                // the README's `add` must work on a fresh install.
                (Verb::Add, Some(i)) if data.sslcert[i].is_automatic() => {
                    replaced_automatic = Some(data.sslcert[i].certhash.clone());
                    data.sslcert[i] = binding;
                    Ok(())
                }
                (Verb::Add, Some(_)) => Err(Failure::new(
                    ERROR_ALREADY_EXISTS,
                    format!(
                        "a binding for {key} exists already; use 'http update sslcert' to replace it."
                    ),
                )),
                (Verb::Add, None) => {
                    data.sslcert.push(binding);
                    Ok(())
                }
                (_, Some(i)) => {
                    data.sslcert[i] = binding;
                    Ok(())
                }
                (_, None) => Err(Failure::new(
                    ERROR_FILE_NOT_FOUND,
                    format!(
                        "there is no binding for {key} to update; use 'http add sslcert' to create it."
                    ),
                )),
            };
            if result.is_ok() {
                if let (BindingKey::IpPort(addr), Some((port, listen))) =
                    (&key, &ctx.https_listeners)
                {
                    if addr.ip().is_unspecified() && addr.port() == *port {
                        lone_family = data.lone_family_warning(*port, listen);
                    }
                }
            }
            result
        })
        .map_err(Failure::from_update)?;
    let mut out = success(if verb == Verb::Add {
        "SSL Certificate successfully added"
    } else {
        "SSL Certificate successfully updated"
    });
    // portshare additions after netsh's message: what was replaced, then
    // what clients may object to.
    if let Some(old) = &replaced_automatic {
        out.stdout.push_str(&format!(
            "portshare: replaced the binding portshare had made by itself for {key} (certificate {old}).\n"
        ));
    }
    if let Some(w) = &lone_family {
        out.stdout.push_str(&format!("portshare: warning: {w}\n"));
    }
    for w in &warnings {
        out.stdout.push_str(&format!("portshare: warning: {w}\n"));
    }
    if !warnings.is_empty() || replaced_automatic.is_some() || lone_family.is_some() {
        out.stdout.push('\n');
    }
    Ok(out)
}

fn binding_from_params(params: &Params, usage: &'static str) -> Result<SslBinding, Failure> {
    let p = |e: String| Failure::param(e, usage);
    let key = params.binding_key(usage)?.ok_or_else(|| {
        Failure::param(
            "say which binding: give ipport=, hostnameport= or ccs=.",
            usage,
        )
    })?;
    let is_ccs = matches!(key, BindingKey::Ccs(_));
    let certhash = match params.get("certhash") {
        Some(v) => parse_certhash(v).map_err(p)?,
        None if is_ccs => String::new(),
        None => {
            return Err(Failure::param(
                "certhash= is missing; give the certificate's thumbprint ('portshare cert list' shows them).",
                usage,
            ))
        }
    };
    let appid = match params.get("appid") {
        Some(v) => parse_appid(v).map_err(p)?,
        None => {
            return Err(Failure::param(
                "appid= is missing; give any GUID in braces that names your application, e.g. appid={00112233-4455-6677-8899-aabbccddeeff}.",
                usage,
            ))
        }
    };
    let certstorename = match params.get("certstorename") {
        Some("") => return Err(p("certstorename must not be empty.".into())),
        Some(v) => v.to_owned(),
        None if certhash.is_empty() => String::new(),
        None => "MY".to_owned(),
    };
    let mut flags = BindingFlags::default();
    for (name, field) in FLAG_PARAMS {
        if let Some(v) = params.get(name) {
            *field(&mut flags) = parse_enable(name, v).map_err(p)?;
        }
    }
    if let Some(v) = params.get("revocationfreshnesstime") {
        flags.revocationfreshnesstime =
            parse_number("revocationfreshnesstime", v, 0, u32::MAX).map_err(p)?;
    }
    if let Some(v) = params.get("urlretrievaltimeout") {
        flags.urlretrievaltimeout =
            parse_number("urlretrievaltimeout", v, 0, u32::MAX).map_err(p)?;
    }
    flags.sslctlidentifier = params.get("sslctlidentifier").map(str::to_owned);
    flags.sslctlstorename = params.get("sslctlstorename").map(str::to_owned);
    Ok(SslBinding {
        key,
        certhash,
        appid,
        certstorename,
        flags,
    })
}

fn check_certificate(ctx: &NetshContext<'_>, certhash: &str) -> Result<(), Failure> {
    match ctx.certs.cert_status(certhash) {
        CertStatus::Ok => Ok(()),
        CertStatus::NoKey => Err(Failure::new(
            ERROR_NO_SUCH_LOGON_SESSION,
            format!(
                "certificate {certhash} has no private key in the certificate store; import it again together with its key (PEM with key, or PFX)."
            ),
        )),
        CertStatus::Unknown => Err(Failure::new(
            ERROR_NO_SUCH_LOGON_SESSION,
            format!(
                "no certificate with thumbprint {certhash} is in the certificate store; add it with 'portshare cert import FILE' or 'portshare cert new'."
            ),
        )),
    }
}

fn delete(args: &[String], store: &Store) -> Result<NetshOutput, Failure> {
    let params = Params::parse(args, KEY_PARAMS, DELETE_USAGE)?;
    let key = params.binding_key(DELETE_USAGE)?.ok_or_else(|| {
        Failure::param(
            "say which binding to delete: give ipport=, hostnameport= or ccs=.",
            DELETE_USAGE,
        )
    })?;
    store
        .update(
            |data| match data.sslcert.iter().position(|b| b.key == key) {
                Some(i) => {
                    data.sslcert.remove(i);
                    Ok(())
                }
                None => Err(Failure::new(
                    ERROR_FILE_NOT_FOUND,
                    format!(
                        "there is no binding for {}={key}; 'http show sslcert' lists the bindings.",
                        key.param_name()
                    ),
                )),
            },
        )
        .map_err(Failure::from_update)?;
    Ok(success("SSL Certificate successfully deleted"))
}

const SHOW_HEADER: &str = "\nSSL Certificate bindings:\n-------------------------\n\n";

fn show(args: &[String], store: &Store) -> NetshOutput {
    let key =
        match Params::parse(args, KEY_PARAMS, SHOW_USAGE).and_then(|p| p.binding_key(SHOW_USAGE)) {
            Ok(k) => k,
            Err(f) => return f.render(None),
        };
    let data = match store.load() {
        Ok(d) => d,
        Err(e) => return Failure::from_store(e).render(None),
    };
    match key {
        None => NetshOutput {
            stdout: format_sslcert_list(&data.sslcert),
            exit_code: 0,
        },
        Some(key) => match data.binding(&key) {
            Some(b) => NetshOutput {
                stdout: format_sslcert_list(std::slice::from_ref(b)),
                exit_code: 0,
            },
            None => NetshOutput {
                stdout: format!(
                    "{SHOW_HEADER}{}\nportshare: there is no SSL binding for {}={key}.\n\n",
                    system_message(ERROR_FILE_NOT_FOUND),
                    key.param_name()
                ),
                exit_code: ERROR_FILE_NOT_FOUND as i32,
            },
        },
    }
}

/// The `netsh http show sslcert` listing of `bindings` (docs/httpsys.md#netsh-sslcert).
pub fn format_sslcert_list(bindings: &[SslBinding]) -> String {
    let mut out = String::from(SHOW_HEADER);
    for b in bindings {
        format_binding(&mut out, b);
        out.push('\n');
    }
    out
}

fn format_binding(out: &mut String, b: &SslBinding) {
    let mut line = |label: &str, value: &str| {
        // Label padded to 28, then " : " — long labels just get one space.
        out.push_str(&format!("    {label:<28} : {value}\n"));
    };
    let null = |s: &str| {
        if s.is_empty() {
            "(null)".to_owned()
        } else {
            s.to_owned()
        }
    };
    let enabled = |v: bool| if v { "Enabled" } else { "Disabled" };
    let set = |v: bool| if v { "Set" } else { "Not Set" };
    let f = &b.flags;
    line(b.key.label(), &b.key.to_string());
    line("Certificate Hash", &null(&b.certhash));
    line("Application ID", &b.appid);
    line("Certificate Store Name", &null(&b.certstorename));
    line(
        "Verify Client Certificate Revocation",
        enabled(f.verifyclientcertrevocation),
    );
    line(
        "Verify Revocation Using Cached Client Certificate Only",
        enabled(f.verifyrevocationwithcachedclientcertonly),
    );
    line("Usage Check", enabled(f.usagecheck));
    line(
        "Revocation Freshness Time",
        &f.revocationfreshnesstime.to_string(),
    );
    line("URL Retrieval Timeout", &f.urlretrievaltimeout.to_string());
    line(
        "Ctl Identifier",
        &null(f.sslctlidentifier.as_deref().unwrap_or("")),
    );
    line(
        "Ctl Store Name",
        &null(f.sslctlstorename.as_deref().unwrap_or("")),
    );
    line("DS Mapper Usage", enabled(f.dsmapperusage));
    line(
        "Negotiate Client Certificate",
        enabled(f.clientcertnegotiation),
    );
    line("Reject Connections", enabled(f.reject));
    line("Disable HTTP2", set(f.disablehttp2));
    line("Disable Legacy TLS Versions", set(f.disablelegacytls));
    line("Disable TLS1.2", set(f.disabletls12));
    line("Disable TLS1.3", set(f.disabletls13));
    // Flags newer than docs/httpsys.md's layout: shown only when set, so the
    // documented listing stays byte for byte.
    for (on, label) in [
        (f.disablequic, "Disable QUIC"),
        (f.disableocspstapling, "Disable OCSP Stapling"),
        (f.enabletokenbinding, "Enable Token Binding"),
        (f.logextendedevents, "Log Extended Events"),
        (f.enablesessionticket, "Enable Session Ticket"),
        (f.disablesessionid, "Disable Session ID"),
    ] {
        if on {
            line(label, set(true));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;

    /// docs/httpsys.md#netsh-sslcert, verbatim.
    const SPEC_SHOW: &str = "
SSL Certificate bindings:
-------------------------

    IP:port                      : 0.0.0.0:443
    Certificate Hash             : 46aab740254a12c9146142067f5cf69e583154ad
    Application ID               : {a227f2f9-d103-4e0f-92a4-7086c8ab35ac}
    Certificate Store Name       : MY
    Verify Client Certificate Revocation : Enabled
    Verify Revocation Using Cached Client Certificate Only : Disabled
    Usage Check                  : Enabled
    Revocation Freshness Time    : 0
    URL Retrieval Timeout        : 0
    Ctl Identifier               : (null)
    Ctl Store Name               : (null)
    DS Mapper Usage              : Disabled
    Negotiate Client Certificate : Disabled
    Reject Connections           : Disabled
    Disable HTTP2                : Not Set
    Disable Legacy TLS Versions  : Not Set
    Disable TLS1.2               : Not Set
    Disable TLS1.3               : Not Set

";

    const ADD_SPEC: &str = "http add sslcert ipport=0.0.0.0:443 certhash=46aab740254a12c9146142067f5cf69e583154ad appid={a227f2f9-d103-4e0f-92a4-7086c8ab35ac}";

    #[test]
    fn add_then_show_matches_spec_byte_for_byte() {
        let env = Env::new();
        let out = env.run(ADD_SPEC);
        assert_eq!(out.stdout, "\nSSL Certificate successfully added\n\n");
        assert_eq!(out.exit_code, 0);
        let out = env.run("http show sslcert");
        assert_eq!(out.stdout, SPEC_SHOW);
        assert_eq!(out.exit_code, 0);
        let out = env.run("http show sslcert ipport=0.0.0.0:443");
        assert_eq!(out.stdout, SPEC_SHOW);
    }

    #[test]
    fn empty_show_is_header_only() {
        let env = Env::new();
        let out = env.run("http show sslcert");
        assert_eq!(
            out.stdout,
            "\nSSL Certificate bindings:\n-------------------------\n\n"
        );
        assert_eq!(out.exit_code, 0);
    }

    #[test]
    fn show_unknown_key() {
        let env = Env::new();
        env.run(ADD_SPEC);
        let out = env.run("http show sslcert ipport=0.0.0.0:444");
        assert_eq!(
            out.stdout,
            "\nSSL Certificate bindings:\n-------------------------\n\nThe system cannot find the file specified.\nportshare: there is no SSL binding for ipport=0.0.0.0:444.\n\n"
        );
        assert_eq!(out.exit_code, 2);
    }

    #[test]
    fn uppercase_spaced_certhash_is_normalised() {
        let env = Env::new();
        let args: Vec<String> = [
            "http",
            "add",
            "sslcert",
            "ipport=0.0.0.0:443",
            "certhash=46 AA B7 40 25 4A 12 C9 14 61 42 06 7F 5C F6 9E 58 31 54 AD",
            "appid={A227F2F9-D103-4E0F-92A4-7086C8AB35AC}",
        ]
        .map(String::from)
        .to_vec();
        let out = env.run_args(&args);
        assert_eq!(out.exit_code, 0, "{}", out.stdout);
        assert_eq!(env.run("http show sslcert").stdout, SPEC_SHOW);
    }

    #[test]
    fn duplicate_add_is_183() {
        let env = Env::new();
        env.run(ADD_SPEC);
        let before = std::fs::read(env.store.path()).unwrap();
        let out = env.run(ADD_SPEC);
        assert_eq!(
            out.stdout,
            "\nSSL Certificate add failed, Error: 183\nCannot create a file when that file already exists.\nportshare: a binding for 0.0.0.0:443 exists already; use 'http update sslcert' to replace it.\n\n"
        );
        assert_eq!(out.exit_code, 183);
        assert_eq!(std::fs::read(env.store.path()).unwrap(), before);
    }

    #[test]
    fn certificate_without_key_or_unknown_is_1312() {
        let env = Env::new();
        let nokey = "1".repeat(40);
        let out = env.run(&format!(
            "http add sslcert ipport=0.0.0.0:443 certhash={nokey} appid={APPID}"
        ));
        assert_eq!(
            out.stdout,
            format!("\nSSL Certificate add failed, Error: 1312\nA specified logon session does not exist. It may already have been terminated.\nportshare: certificate {nokey} has no private key in the certificate store; import it again together with its key (PEM with key, or PFX).\n\n")
        );
        assert_eq!(out.exit_code, 1312);

        let unknown = "3".repeat(40);
        let out = env.run(&format!(
            "http add sslcert ipport=0.0.0.0:443 certhash={unknown} appid={APPID}"
        ));
        assert_eq!(
            out.stdout,
            format!("\nSSL Certificate add failed, Error: 1312\nA specified logon session does not exist. It may already have been terminated.\nportshare: no certificate with thumbprint {unknown} is in the certificate store; add it with 'portshare cert import FILE' or 'portshare cert new'.\n\n")
        );
        assert!(!env.store.path().exists());
    }

    #[test]
    fn bad_guid_and_bad_ipport_are_87() {
        let env = Env::new();
        let out = env.run(&format!(
            "http add sslcert ipport=0.0.0.0:443 certhash={HASH} appid=a227f2f9-d103-4e0f-92a4-7086c8ab35ac"
        ));
        assert_eq!(out.exit_code, 87);
        assert!(out.stdout.starts_with(
            "\nSSL Certificate add failed, Error: 87\nThe parameter is incorrect.\nportshare: appid 'a227f2f9-d103-4e0f-92a4-7086c8ab35ac' is not a GUID in braces"
        ), "{}", out.stdout);
        assert!(out.stdout.contains("\n\nUsage: http add sslcert "));
        assert!(out
            .stdout
            .ends_with("enablesessionticket disablesessionid\n\n"));

        for bad in ["0.0.0.0", "0.0.0.0:99999", "localhost:443", "[::]443"] {
            let out = env.run(&format!(
                "http add sslcert ipport={bad} certhash={HASH} appid={APPID}"
            ));
            assert_eq!(out.exit_code, 87, "{bad}");
            assert!(out.stdout.contains(&format!(
                "portshare: ipport '{bad}' is not IP:PORT (examples: 0.0.0.0:443, [::]:443, 10.0.0.1:443).\n"
            )));
        }
        let out = env.run("http delete sslcert ipport=nope");
        assert_eq!(out.exit_code, 87);
        assert!(out
            .stdout
            .starts_with("\nSSL Certificate deletion failed, Error: 87\n"));
        let out = env.run("http show sslcert ipport=nope");
        assert_eq!(out.exit_code, 87);
        assert!(out
            .stdout
            .starts_with("\nError: 87\nThe parameter is incorrect.\n"));
        assert!(!env.store.path().exists());
    }

    #[test]
    fn missing_and_unknown_parameters_are_87() {
        let env = Env::new();
        let cases = [
            (format!("http add sslcert certhash={HASH} appid={APPID}"), "portshare: say which binding: give ipport=, hostnameport= or ccs=.\n"),
            (format!("http add sslcert ipport=0.0.0.0:443 appid={APPID}"), "portshare: certhash= is missing;"),
            (format!("http add sslcert ipport=0.0.0.0:443 certhash={HASH}"), "portshare: appid= is missing;"),
            (format!("http add sslcert ipport=0.0.0.0:443 ccs=443 certhash={HASH} appid={APPID}"), "portshare: give only one of ipport=, hostnameport= and ccs=.\n"),
            (format!("http add sslcert ipport=0.0.0.0:443 certhash={HASH} appid={APPID} bogus=1"), "portshare: 'bogus' is not a parameter of this command.\n"),
            (format!("http add sslcert ipport=0.0.0.0:443 certhash={HASH} appid={APPID} appid={APPID}"), "portshare: 'appid' is given twice.\n"),
            (format!("http add sslcert ipport=0.0.0.0:443 certhash={HASH} appid={APPID} disablehttp2"), "portshare: 'disablehttp2' is not of the form name=value.\n"),
            (format!("http add sslcert ipport=0.0.0.0:443 certhash={HASH} appid={APPID} disablehttp2=yes"), "portshare: disablehttp2 must be 'enable' or 'disable', not 'yes'.\n"),
            (format!("http add sslcert ipport=0.0.0.0:443 certhash=abc appid={APPID}"), "portshare: certhash 'abc' is not a SHA-1 thumbprint"),
            ("http delete sslcert".to_owned(), "portshare: say which binding to delete"),
        ];
        for (cmd, expected) in cases {
            let out = env.run(&cmd);
            assert_eq!(out.exit_code, 87, "{cmd}");
            assert!(out.stdout.contains(expected), "{cmd}\n{}", out.stdout);
            assert!(
                out.stdout.contains("The parameter is incorrect.\n"),
                "{cmd}"
            );
        }
        assert!(!env.store.path().exists());
    }

    #[test]
    fn update_replaces_in_place() {
        let env = Env::new();
        env.run(ADD_SPEC);
        let other = "2".repeat(40);
        env.run(&format!(
            "http add sslcert ipport=[::]:443 certhash={other} appid={APPID}"
        ));
        let out = env.run(&format!(
            "http update sslcert ipport=0.0.0.0:443 certhash={other} appid={APPID} disablehttp2=enable clientcertnegotiation=enable"
        ));
        assert_eq!(out.stdout, "\nSSL Certificate successfully updated\n\n");
        assert_eq!(out.exit_code, 0);
        let data = env.store.load().unwrap();
        assert_eq!(data.sslcert.len(), 2);
        assert_eq!(data.sslcert[0].key.to_string(), "0.0.0.0:443");
        assert_eq!(data.sslcert[0].certhash, other);
        assert!(data.sslcert[0].flags.disablehttp2);
        let shown = env.run("http show sslcert ipport=0.0.0.0:443").stdout;
        assert!(shown.contains("    Negotiate Client Certificate : Enabled\n"));
        assert!(shown.contains("    Disable HTTP2                : Set\n"));

        let out = env.run(&format!(
            "http update sslcert ipport=0.0.0.0:8443 certhash={other} appid={APPID}"
        ));
        assert_eq!(
            out.stdout,
            "\nSSL Certificate update failed, Error: 2\nThe system cannot find the file specified.\nportshare: there is no binding for 0.0.0.0:8443 to update; use 'http add sslcert' to create it.\n\n"
        );
        assert_eq!(out.exit_code, 2);
    }

    #[test]
    fn delete_known_and_unknown() {
        let env = Env::new();
        env.run(ADD_SPEC);
        let out = env.run("http delete sslcert ipport=0.0.0.0:443");
        assert_eq!(out.stdout, "\nSSL Certificate successfully deleted\n\n");
        assert_eq!(out.exit_code, 0);
        let out = env.run("http delete sslcert ipport=0.0.0.0:443");
        assert_eq!(
            out.stdout,
            "\nSSL Certificate deletion failed, Error: 2\nThe system cannot find the file specified.\nportshare: there is no binding for ipport=0.0.0.0:443; 'http show sslcert' lists the bindings.\n\n"
        );
        assert_eq!(out.exit_code, 2);
    }

    #[test]
    fn hostnameport_and_ccs_layouts() {
        let env = Env::new();
        assert_eq!(
            env.run(&format!(
                "http add sslcert hostnameport=Site.Test:443 certhash={HASH} appid={APPID} certstorename=WebHosting disablequic=enable"
            ))
            .exit_code,
            0
        );
        assert_eq!(
            env.run(&format!("http add sslcert ccs=8443 appid={APPID}"))
                .exit_code,
            0
        );
        let out = env.run("http show sslcert").stdout;
        assert!(out.contains(
            "    Hostname:port                : site.test:443\n    Certificate Hash             : 46aab740254a12c9146142067f5cf69e583154ad\n    Application ID               : {a227f2f9-d103-4e0f-92a4-7086c8ab35ac}\n    Certificate Store Name       : WebHosting\n"
        ), "{out}");
        assert!(out.contains("    Disable TLS1.3               : Not Set\n    Disable QUIC                 : Set\n\n"));
        assert!(out.contains(
            "    Central Certificate Store    : 8443\n    Certificate Hash             : (null)\n    Application ID               : {a227f2f9-d103-4e0f-92a4-7086c8ab35ac}\n    Certificate Store Name       : (null)\n"
        ), "{out}");
        let one = env
            .run("http show sslcert hostnameport=SITE.test:443")
            .stdout;
        assert!(one.contains("site.test:443"));
        assert!(!one.contains("Central"));
        assert_eq!(
            env.run("http delete sslcert ccs=8443").stdout,
            "\nSSL Certificate successfully deleted\n\n"
        );
    }

    #[test]
    fn broken_store_is_reported_with_its_path() {
        let env = Env::new();
        std::fs::write(env.store.path(), "{ not json").unwrap();
        let out = env.run(ADD_SPEC);
        assert_eq!(out.exit_code, 13);
        assert!(out.stdout.starts_with(
            "\nSSL Certificate add failed, Error: 13\nThe data is invalid.\nportshare: the store could not be used: "
        ));
        assert!(out.stdout.contains("sslcert.json"));
        let out = env.run("http show sslcert");
        assert_eq!(out.exit_code, 13);
    }
}
