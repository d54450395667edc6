//! Warnings about a certificate that loads but that clients may refuse.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::{info, Certificate};

/// Something a client may object to. `Display` is a plain sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    Expired {
        not_after: DateTime<Utc>,
    },
    NotYetValid {
        not_before: DateTime<Utc>,
    },
    /// The certificate has an extended key usage extension without serverAuth.
    NoServerAuth,
    Sha1Signature,
    /// The host name is not among the certificate's names.
    HostnameMismatch {
        hostname: String,
        names: Vec<String>,
    },
    /// The leaf is not self-signed and the certificate that issued it is not in the file.
    IncompleteChain {
        missing_issuer: String,
    },
    /// Only a common name, no subject alternative names: browsers ignore
    /// the CN and refuse such a certificate for any host.
    NoSubjectAltName {
        common_name: Option<String>,
    },
}

fn date(d: &DateTime<Utc>) -> String {
    d.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Expired { not_after } => write!(
                f,
                "The certificate expired on {}; clients will refuse it. Renew it or create a new one.",
                date(not_after)
            ),
            Warning::NotYetValid { not_before } => write!(
                f,
                "The certificate is not valid until {}; check the computer's clock.",
                date(not_before)
            ),
            Warning::NoServerAuth => write!(
                f,
                "The certificate is not meant for servers: its Enhanced Key Usage lacks \
                 Server Authentication (1.3.6.1.5.5.7.3.1), so clients will refuse it."
            ),
            Warning::Sha1Signature => write!(
                f,
                "The certificate is signed with SHA-1, which browsers no longer accept."
            ),
            Warning::HostnameMismatch { hostname, names } => {
                if names.is_empty() {
                    write!(f, "The certificate names no host, so it does not cover {hostname}.")
                } else {
                    write!(
                        f,
                        "The certificate does not cover {hostname}; it is for {}.",
                        names.join(", ")
                    )
                }
            }
            // Whether the issuer is an intermediate or a root cannot be
            // told without it: say what to do in either case (a root must
            // never be added; clients must trust it already).
            Warning::IncompleteChain { missing_issuer } => write!(
                f,
                "The certificate chain may be incomplete: its issuer {missing_issuer} is not in \
                 the file. If that is an intermediate CA, add its certificate after the server \
                 certificate (or import it with 'portshare cert import'); if it is a root CA, do \
                 not add it: clients must already trust it (a private CA's root is installed on \
                 each client)."
            ),
            Warning::NoSubjectAltName { common_name } => write!(
                f,
                "The certificate has no Subject Alternative Name{}: browsers ignore the common \
                 name and will refuse it. Make one that lists its host names, e.g. \
                 'portshare cert new --dns NAME'.",
                common_name
                    .as_ref()
                    .map(|cn| format!(" (only CN={cn})"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// Check a loaded certificate: validity period at `now`, serverAuth EKU, SHA-1 signature,
/// whether `hostname` (if given) is covered, and whether the chain reaches a self-signed
/// certificate or at least contains the leaf's issuer.
pub fn validate(cert: &Certificate, hostname: Option<&str>, now: DateTime<Utc>) -> Vec<Warning> {
    let i = &cert.info;
    let mut out = Vec::new();
    if now > i.not_after {
        out.push(Warning::Expired {
            not_after: i.not_after,
        });
    } else if now < i.not_before {
        out.push(Warning::NotYetValid {
            not_before: i.not_before,
        });
    }
    if !i.has_server_auth_eku {
        out.push(Warning::NoServerAuth);
    }
    if i.signature_is_sha1 {
        out.push(Warning::Sha1Signature);
    }
    if i.dns_names.is_empty() && i.ip_addresses.is_empty() {
        out.push(Warning::NoSubjectAltName {
            common_name: i.common_name.clone(),
        });
    }
    if let Some(host) = hostname {
        if !covers(cert, host) {
            let mut names: Vec<String> = i.dns_names.clone();
            names.extend(i.ip_addresses.iter().map(IpAddr::to_string));
            if names.is_empty() {
                names.extend(i.common_name.iter().cloned());
            }
            out.push(Warning::HostnameMismatch {
                hostname: host.to_string(),
                names,
            });
        }
    }
    if !i.is_self_signed {
        let issuer_present = match cert.chain.first().map(|c| info::parse(c.as_ref())) {
            Some(Ok(leaf)) => cert
                .chain
                .iter()
                .skip(1)
                .any(|c| match info::parse(c.as_ref()) {
                    Ok(ca) => info::issued_by(&leaf, &ca),
                    Err(_) => false,
                }),
            _ => false,
        };
        if !issuer_present {
            out.push(Warning::IncompleteChain {
                missing_issuer: i.issuer.clone(),
            });
        }
    }
    out
}

/// Does the certificate cover `host`? IP literals match IP SANs; DNS names match SAN DNS
/// names (or the CN when there are none), case-insensitively, ignoring a trailing dot, with
/// `*.` covering exactly one label.
pub(crate) fn covers(cert: &Certificate, host: &str) -> bool {
    let host = host.trim().trim_end_matches('.');
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return cert.info.ip_addresses.contains(&ip);
    }
    let host = idna::domain_to_ascii(host).unwrap_or_else(|_| host.to_ascii_lowercase());
    let i = &cert.info;
    let names: Vec<&str> = if i.dns_names.is_empty() {
        i.common_name.iter().map(String::as_str).collect()
    } else {
        i.dns_names.iter().map(String::as_str).collect()
    };
    names.iter().any(|n| name_matches(n, &host))
}

/// `pattern` from the certificate against an ASCII lowercase `host`.
pub(crate) fn name_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => match host.split_once('.') {
            Some((label, rest)) => !label.is_empty() && rest == suffix,
            None => false,
        },
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{assemble, new_self_signed, testutil};
    use super::*;
    use std::path::Path;

    #[test]
    fn wildcard_one_label() {
        assert!(name_matches("*.site.test", "a.site.test"));
        assert!(name_matches("*.Site.Test.", "A.site.test"));
        assert!(!name_matches("*.site.test", "site.test"));
        assert!(!name_matches("*.site.test", "a.b.site.test"));
        assert!(!name_matches("*.site.test", ".site.test"));
        assert!(name_matches("site.test", "SITE.test"));
        assert!(!name_matches("site.test", "www.site.test"));
    }

    #[test]
    fn period_and_hostname() {
        let cert = new_self_signed(&["*.site.test".into()], 10).unwrap();
        let now = Utc::now();
        assert!(validate(&cert, Some("a.site.test"), now).is_empty());
        let w = validate(&cert, Some("a.b.site.test"), now);
        assert!(
            matches!(w.as_slice(), [Warning::HostnameMismatch { .. }]),
            "{w:?}"
        );
        assert_eq!(
            w[0].to_string(),
            "The certificate does not cover a.b.site.test; it is for *.site.test."
        );
        let later = now + chrono::Duration::days(11);
        let w = validate(&cert, None, later);
        assert!(matches!(w.as_slice(), [Warning::Expired { .. }]), "{w:?}");
        assert!(w[0].to_string().starts_with("The certificate expired on "));
        let earlier = now - chrono::Duration::hours(1);
        assert!(matches!(
            validate(&cert, None, earlier).as_slice(),
            [Warning::NotYetValid { .. }]
        ));
    }

    #[test]
    fn a_common_name_without_subject_alt_names_is_warned_about() {
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "legacy.test");
        let key = rcgen::KeyPair::generate().expect("key");
        let der = params.self_signed(&key).expect("certificate").der().clone();
        let p = Path::new("cn-only.pem");
        let cert = assemble(p, vec![der], vec![], p).expect("assembled");
        let w = validate(&cert, None, Utc::now());
        assert_eq!(
            w,
            vec![Warning::NoSubjectAltName {
                common_name: Some("legacy.test".into())
            }]
        );
        assert!(
            w[0].to_string().contains("(only CN=legacy.test)"),
            "{}",
            w[0]
        );
        // A certificate with SANs gets no such warning.
        let with_san = new_self_signed(&["site.test".into()], 10).expect("certificate");
        assert!(validate(&with_san, None, Utc::now()).is_empty());
    }

    #[test]
    fn incomplete_chain() {
        let c = testutil::chain(&["site.test"]);
        let p = Path::new("x.pem");
        let alone = assemble(p, vec![c.leaf.clone()], vec![], p).unwrap();
        let w = validate(&alone, None, Utc::now());
        assert_eq!(
            w,
            vec![Warning::IncompleteChain {
                missing_issuer: "CN=Test Intermediate".into()
            }]
        );
        let with = assemble(p, vec![c.leaf.clone(), c.intermediate.clone()], vec![], p).unwrap();
        assert!(validate(&with, Some("site.test"), Utc::now()).is_empty());
    }
}
