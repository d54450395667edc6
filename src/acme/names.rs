//! Which names get a certificate, and on which HTTPS ports each is bound.
//!
//! Why a rule and not "every host name": a public ACME directory (Let's
//! Encrypt) refuses names that are not in public DNS, and every refused
//! order counts against its rate limits. So by default only the explicit
//! host names of the configured https prefixes (`host_name`, `[app:NAME]`
//! prefixes) that can be public DNS names are ordered; IP addresses, `+`,
//! `*`, `localhost` and the reserved private suffixes are skipped, each
//! listed at start-up with the reason. `[acme] names` overrides the choice
//! (a private ACME server may issue for `site.internal`).

use std::collections::BTreeSet;

use crate::config::{AcmeSettings, Settings};
use crate::urlprefix::{HostRule, Scheme, UrlPrefix};

/// Suffixes that are never in public DNS (RFC 6761, RFC 6762, RFC 8375,
/// ICANN's `.internal`).
const PRIVATE_SUFFIXES: &[&str] = &[
    "localhost",
    "local",
    "internal",
    "home.arpa",
    "test",
    "example",
    "invalid",
];

/// A name to keep a certificate for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Lowercase ASCII (punycode for internationalised names).
    pub name: String,
    /// The HTTPS ports it is bound on (`hostnameport=NAME:PORT`), ascending.
    pub ports: Vec<u16>,
}

/// A name (or host rule) left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub name: String,
    pub why: String,
}

/// Why `name` cannot be a public DNS name, or `None` when it can be.
pub fn private_reason(name: &str) -> Option<&'static str> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<std::net::IpAddr>().is_ok() || crate::urlprefix::is_ip_literal(&name) {
        return Some("an IP address (certificates are ordered for host names)");
    }
    for suffix in PRIVATE_SUFFIXES {
        if name == *suffix || name.ends_with(&format!(".{suffix}")) {
            return Some("a private name, never in public DNS (name it in [acme] names= for a private ACME server)");
        }
    }
    if !name.contains('.') {
        return Some("a single-label name, not in public DNS (name it in [acme] names= for a private ACME server)");
    }
    None
}

/// The https prefixes configured at start-up (built-in site and `[app:]`).
fn https_prefixes(settings: &Settings) -> impl Iterator<Item = &UrlPrefix> {
    settings
        .site_prefixes
        .iter()
        .chain(settings.apps.iter().flat_map(|a| &a.prefixes))
        .filter(|p| p.scheme() == Scheme::Https)
}

/// The HTTPS ports `name` is served on: those of prefixes naming it or
/// taking every host (`+`, `*`); else `https_port` (when not 0).
fn ports_for(settings: &Settings, name: &str) -> Vec<u16> {
    let ports: BTreeSet<u16> = https_prefixes(settings)
        .filter(|p| match p.host() {
            HostRule::Explicit(h) => h == name,
            HostRule::StrongWildcard | HostRule::WeakWildcard => true,
            HostRule::IpBound(_) => false,
        })
        .map(|p| p.port())
        .collect();
    if ports.is_empty() && settings.https_port != 0 {
        return vec![settings.https_port];
    }
    ports.into_iter().collect()
}

/// The names to order and those skipped, in configuration order.
pub fn select(settings: &Settings, acme: &AcmeSettings) -> (Vec<Target>, Vec<Skipped>) {
    let mut targets: Vec<Target> = Vec::new();
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut skip = |name: String, why: &str| {
        if !skipped.iter().any(|s| s.name == name) {
            skipped.push(Skipped {
                name,
                why: why.to_owned(),
            });
        }
    };
    let candidates: Vec<String> = match &acme.names {
        Some(names) => names.clone(),
        None => {
            let mut names = Vec::new();
            for p in https_prefixes(settings) {
                match p.host() {
                    HostRule::Explicit(h) => match private_reason(h) {
                        None => names.push(h.clone()),
                        Some(why) => skip(h.clone(), why),
                    },
                    HostRule::IpBound(_) => skip(
                        p.host().to_string(),
                        "an IP address (certificates are ordered for host names)",
                    ),
                    HostRule::StrongWildcard | HostRule::WeakWildcard => skip(
                        p.host().to_string(),
                        "a wildcard prefix names no host (list the names in [acme] names=)",
                    ),
                }
            }
            names
        }
    };
    for name in candidates {
        if targets.iter().any(|t| t.name == name) {
            continue;
        }
        let ports = ports_for(settings, &name);
        if ports.is_empty() {
            skip(
                name,
                "no https prefix serves it and https_port is 0 (set https_port)",
            );
            continue;
        }
        targets.push(Target { name, ports });
    }
    (targets, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ini: &str) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("public")).unwrap();
        let file = dir.path().join("GLOBAL.INI");
        std::fs::write(&file, ini).unwrap();
        Settings::load_with_env(Some(&file), &[]).unwrap()
    }

    #[test]
    fn private_names_are_recognised() {
        for private in [
            "localhost",
            "a.localhost",
            "nas.local",
            "db.internal",
            "router.home.arpa",
            "site.test",
            "www.example",
            "x.invalid",
            "intranet",
            "127.0.0.1",
            "[::1]",
        ] {
            assert!(private_reason(private).is_some(), "{private}");
        }
        for public in [
            "spaceship.dyndns.org",
            "www.site.com",
            "testing.org",
            "local.io",
        ] {
            assert_eq!(private_reason(public), None, "{public}");
        }
    }

    #[test]
    fn default_names_are_the_public_https_hosts() {
        let s = settings(
            "[param]\nhost_name=www.site.org site.test + 10.0.0.1 https://*:8443/\nhttps_port=8443\n\
             [app:api]\nprefix=https://api.site.org:9443/ http://plain.site.org:8080/\nbackend=http://127.0.0.1:3000\n\
             [acme]\n",
        );
        let acme = s.acme.clone().unwrap();
        let (targets, skipped) = select(&s, &acme);
        assert_eq!(
            targets,
            vec![
                Target {
                    name: "www.site.org".into(),
                    ports: vec![8443]
                },
                Target {
                    name: "api.site.org".into(),
                    ports: vec![8443, 9443]
                },
            ]
        );
        let names: Vec<&str> = skipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["site.test", "+", "10.0.0.1", "*"]);
    }

    #[test]
    fn explicit_names_are_taken_as_given() {
        let s = settings(
            "[param]\nhost_name=+\nhttps_port=8443\n[acme]\nnames=site.internal, localhost\n",
        );
        let acme = s.acme.clone().unwrap();
        let (targets, skipped) = select(&s, &acme);
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].name, "site.internal");
        assert_eq!(targets[1].ports, vec![8443]);
        assert!(skipped.is_empty());
        let s = settings("[param]\nhttps_port=0\n[acme]\nnames=www.site.org\n");
        let (targets, skipped) = select(&s, s.acme.as_ref().unwrap());
        assert!(targets.is_empty());
        assert!(skipped[0].why.contains("https_port"), "{skipped:?}");
    }
}
