//! What a certificate says about itself, in the words Windows uses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::x509::X509Name;

/// The facts about a certificate that portshare shows and checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject as Windows prints it: most specific part first, e.g. `CN=site.test, O=Example, C=US`.
    pub subject: String,
    /// Issuer in the same style.
    pub issuer: String,
    /// The subject's common name (first CN), if any.
    pub common_name: Option<String>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// DNS names from the subject alternative name extension (as written, e.g. `*.site.test`).
    pub dns_names: Vec<String>,
    /// IP addresses from the subject alternative name extension.
    pub ip_addresses: Vec<IpAddr>,
    /// True when the certificate may be used by a TLS server: it has no extended key usage
    /// extension, or the extension lists serverAuth (1.3.6.1.5.5.7.3.1) or anyExtendedKeyUsage.
    pub has_server_auth_eku: bool,
    /// True when the certificate's own signature uses SHA-1.
    pub signature_is_sha1: bool,
    /// True when subject and issuer are the same name (and the key identifiers, if present, agree).
    pub is_self_signed: bool,
    /// True when basic constraints say `CA:true`: the certificate may issue
    /// others (an intermediate or a root).
    pub is_ca: bool,
}

/// Parse a DER certificate; the error is x509-parser's description.
pub(crate) fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => Ok(cert),
        Err(e) => Err(e.to_string()),
    }
}

impl CertInfo {
    /// Read the facts from a parsed certificate.
    pub(crate) fn from_x509(cert: &X509Certificate<'_>) -> Self {
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => dns_names.push((*n).to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            ip_addresses.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        let has_server_auth_eku = match cert.extended_key_usage() {
            Ok(None) => true,
            Ok(Some(eku)) => eku.value.server_auth || eku.value.any,
            // A malformed or duplicated EKU extension: Windows would not accept it either.
            Err(_) => false,
        };
        let sig_oid = cert.signature_algorithm.algorithm.to_id_string();
        let signature_is_sha1 = SHA1_SIGNATURE_OIDS.contains(&sig_oid.as_str());
        Self {
            subject: windows_name(cert.subject()),
            issuer: windows_name(cert.issuer()),
            common_name: cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_string),
            not_before: to_utc(cert.validity().not_before.timestamp()),
            not_after: to_utc(cert.validity().not_after.timestamp()),
            dns_names,
            ip_addresses,
            has_server_auth_eku,
            signature_is_sha1,
            is_self_signed: is_self_issued(cert),
            is_ca: matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca),
        }
    }

    /// Parse a DER certificate and read its facts.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        parse(der).map(|c| Self::from_x509(&c))
    }
}

/// sha1WithRSAEncryption, ecdsa-with-SHA1, dsa-with-sha1, and the old OIW sha1WithRSA.
const SHA1_SIGNATURE_OIDS: &[&str] = &[
    "1.2.840.113549.1.1.5",
    "1.2.840.10045.4.1",
    "1.2.840.10040.4.3",
    "1.3.14.3.2.29",
];

fn to_utc(ts: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(ts, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b)
            .ok()
            .map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        16 => <[u8; 16]>::try_from(b)
            .ok()
            .map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        _ => None,
    }
}

/// Subject == issuer, and where both key identifiers are present they agree.
pub(crate) fn is_self_issued(cert: &X509Certificate<'_>) -> bool {
    if cert.subject().as_raw() != cert.issuer().as_raw() {
        return false;
    }
    match (subject_key_id(cert), authority_key_id(cert)) {
        (Some(ski), Some(aki)) => ski == aki,
        _ => true,
    }
}

pub(crate) fn subject_key_id<'a>(cert: &X509Certificate<'a>) -> Option<&'a [u8]> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
            _ => None,
        })
}

pub(crate) fn authority_key_id<'a>(cert: &X509Certificate<'a>) -> Option<&'a [u8]> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
            _ => None,
        })
}

/// Does `issuer` look like the certificate that signed `child`? (name match, and key
/// identifiers agree where both are present.)
pub(crate) fn issued_by(child: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    if child.issuer().as_raw() != issuer.subject().as_raw() {
        return false;
    }
    match (authority_key_id(child), subject_key_id(issuer)) {
        (Some(aki), Some(ski)) => aki == ski,
        _ => true,
    }
}

/// Windows prints distinguished names most specific first (`CN=…, O=…, C=…`) with its own
/// short labels (`S=` for state, `E=` for e-mail).
pub(crate) fn windows_name(name: &X509Name<'_>) -> String {
    let mut parts = Vec::new();
    for rdn in name.iter_rdn() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|attr| {
                let oid = attr.attr_type().to_id_string();
                let label = match oid.as_str() {
                    "2.5.4.3" => "CN".to_string(),
                    "2.5.4.10" => "O".to_string(),
                    "2.5.4.11" => "OU".to_string(),
                    "2.5.4.7" => "L".to_string(),
                    "2.5.4.8" => "S".to_string(),
                    "2.5.4.6" => "C".to_string(),
                    "2.5.4.9" => "STREET".to_string(),
                    "2.5.4.5" => "SERIALNUMBER".to_string(),
                    "2.5.4.4" => "SN".to_string(),
                    "2.5.4.42" => "G".to_string(),
                    "2.5.4.12" => "T".to_string(),
                    "1.2.840.113549.1.9.1" => "E".to_string(),
                    "0.9.2342.19200300.100.1.25" => "DC".to_string(),
                    other => format!("OID.{other}"),
                };
                let value = match attr.as_str() {
                    Ok(s) => quote_value(s),
                    Err(_) => format!("#{}", hex::encode(attr.attr_value().data)),
                };
                format!("{label}={value}")
            })
            .collect();
        parts.push(attrs.join(" + "));
    }
    parts.reverse();
    parts.join(", ")
}

/// Windows quotes a value containing separators or leading/trailing blanks.
fn quote_value(s: &str) -> String {
    let needs = s.is_empty()
        || s.starts_with(' ')
        || s.ends_with(' ')
        || s.chars()
            .any(|c| matches!(c, ',' | '+' | '=' | '"' | '\n' | '<' | '>' | '#' | ';'));
    if needs {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    #[test]
    fn windows_order_and_labels() {
        let mut params =
            CertificateParams::new(vec!["site.test".into(), "10.0.0.1".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CountryName, "US");
        params
            .distinguished_name
            .push(DnType::StateOrProvinceName, "WA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example, Inc");
        params
            .distinguished_name
            .push(DnType::CommonName, "site.test");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let info = CertInfo::from_der(cert.der()).unwrap();
        assert_eq!(info.subject, "CN=site.test, O=\"Example, Inc\", S=WA, C=US");
        assert_eq!(info.issuer, info.subject);
        assert_eq!(info.common_name.as_deref(), Some("site.test"));
        assert_eq!(info.dns_names, vec!["site.test".to_string()]);
        assert_eq!(
            info.ip_addresses,
            vec!["10.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert!(info.has_server_auth_eku, "no EKU extension means any use");
        assert!(!info.signature_is_sha1);
        assert!(info.is_self_signed);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(CertInfo::from_der(b"not a certificate").is_err());
    }
}
