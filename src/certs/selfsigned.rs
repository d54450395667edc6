//! Self-signed certificates as `New-SelfSignedCertificate -DnsName a,b` makes them
//! (docs/httpsys.md#certificates), with an ECDSA P-256 key.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{CertError, CertInfo, Certificate, Result, Thumbprint};

/// PowerShell's default validity, in days.
pub const DEFAULT_DAYS: u32 = 365;

/// The longest validity accepted (100 years), keeping dates far from the year-9999 limit.
pub const MAX_DAYS: u32 = 36_500;

/// Make a self-signed server certificate the way PowerShell's `New-SelfSignedCertificate`
/// does: Subject and Issuer `CN=<first name>`, every name in the SAN (IP literals as IP
/// SANs, Unicode names as punycode), NotBefore ten minutes ago, valid `days` days from
/// now, key usage DigitalSignature + KeyEncipherment, EKU serverAuth + clientAuth.
/// The key is ECDSA P-256. `source` is left empty; the store sets it when saving.
pub fn new_self_signed(dns_names: &[String], days: u32) -> Result<Certificate> {
    let fail = |detail: String| CertError::Generate { detail };
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(fail(format!(
            "the validity must be between 1 and {MAX_DAYS} days, not {days}"
        )));
    }
    let first = dns_names
        .first()
        .ok_or_else(|| fail("give at least one DNS name or IP address".into()))?;

    let mut params = CertificateParams::default();
    params.subject_alt_names = subject_alt_names(dns_names).map_err(fail)?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, first.trim());
    set_validity(&mut params, days);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| fail(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| fail(e.to_string()))?;
    let der = cert.der().clone();
    let info = CertInfo::from_der(der.as_ref()).map_err(fail)?;
    Ok(Certificate {
        thumbprint: Thumbprint::of_der(der.as_ref()),
        chain: vec![der],
        key: Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        ))),
        info,
        source: PathBuf::new(),
    })
}

/// The SAN entries for `names`: IP literals (bracketed or not) as IP SANs, other names
/// as DNS SANs in ASCII (IDNA). The error names the bad entry.
pub(super) fn subject_alt_names(names: &[String]) -> std::result::Result<Vec<SanType>, String> {
    let mut sans = Vec::with_capacity(names.len());
    for name in names {
        let name = name.trim();
        if let Ok(ip) = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            sans.push(SanType::IpAddress(ip));
            continue;
        }
        let ascii =
            to_ascii_name(name).ok_or_else(|| format!("'{name}' is not a valid DNS name"))?;
        let ia5 = ascii
            .clone()
            .try_into()
            .map_err(|e| format!("'{name}' is not a valid DNS name: {e}"))?;
        sans.push(SanType::DnsName(ia5));
    }
    Ok(sans)
}

/// NotBefore ten minutes ago (clients with a slightly slow clock accept it at once),
/// NotAfter `days` days from now.
pub(super) fn set_validity(params: &mut CertificateParams, days: u32) {
    let now = Utc::now().timestamp().max(600) as u64;
    // `date_time_ymd(1970, 1, 1)` is the Unix epoch as rcgen's own date type.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(now - 600);
    params.not_after = epoch + Duration::from_secs(now + u64::from(days) * 86_400);
}

/// A DNS name in ASCII (IDNA), keeping a leading `*.` wildcard label.
fn to_ascii_name(name: &str) -> Option<String> {
    let (prefix, rest) = match name.strip_prefix("*.") {
        Some(rest) => ("*.", rest),
        None => ("", name),
    };
    let rest = rest.trim_end_matches('.');
    if rest.is_empty() {
        return None;
    }
    let ascii = idna::domain_to_ascii(rest).ok()?;
    if ascii.is_empty() || ascii.contains(['*', ' ', '/', ':']) {
        return None;
    }
    Some(format!("{prefix}{ascii}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{keys, validate, Warning};

    #[test]
    fn powershell_defaults() {
        let names = vec![
            "site.test".to_string(),
            "www.site.test".into(),
            "127.0.0.1".into(),
            "::1".into(),
        ];
        let before = Utc::now();
        let cert = new_self_signed(&names, DEFAULT_DAYS).unwrap();
        let info = &cert.info;
        assert_eq!(info.subject, "CN=site.test");
        assert_eq!(info.issuer, "CN=site.test");
        assert!(info.is_self_signed);
        assert!(info.has_server_auth_eku);
        assert_eq!(
            info.dns_names,
            vec!["site.test".to_string(), "www.site.test".into()]
        );
        assert_eq!(info.ip_addresses.len(), 2);
        let nb = (before - info.not_before).num_seconds();
        assert!((595..=605).contains(&nb), "NotBefore {nb}s ago");
        let days = (info.not_after - before).num_days();
        assert!((364..=365).contains(&days), "{days}");
        assert_eq!(cert.thumbprint, Thumbprint::of_der(cert.chain[0].as_ref()));

        // Key belongs to the certificate.
        let spki = keys::public_key_spki(cert.key.as_ref().unwrap()).unwrap();
        let parsed = crate::certs::info::parse(cert.chain[0].as_ref()).unwrap();
        assert_eq!(parsed.public_key().raw, spki.as_slice());

        // Key usage and EKU as PowerShell sets them.
        let ku = parsed.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
        let eku = parsed.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);

        assert_eq!(
            validate(&cert, Some("WWW.site.test."), Utc::now()),
            Vec::<Warning>::new()
        );
        assert_eq!(
            validate(&cert, Some("127.0.0.1"), Utc::now()),
            Vec::<Warning>::new()
        );
    }

    #[test]
    fn idn_and_wildcard_and_errors() {
        let cert = new_self_signed(&["bücher.test".into(), "*.site.test".into()], 30).unwrap();
        assert_eq!(
            cert.info.dns_names,
            vec!["xn--bcher-kva.test".to_string(), "*.site.test".into()]
        );
        assert!(new_self_signed(&[], 30).is_err());
        assert!(new_self_signed(&["bad name".into()], 30).is_err());
        assert!(new_self_signed(&["*.".into()], 30).is_err());
        assert!(new_self_signed(&["a.test".into()], 0).is_err());
        assert!(new_self_signed(&["a.test".into()], u32::MAX).is_err());
        assert!(new_self_signed(&["a.test".into()], MAX_DAYS).is_ok());
    }
}
