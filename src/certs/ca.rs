//! A local certificate authority, as `mkcert`, `dotnet dev-certs` and Caddy's internal
//! CA keep one: a root certificate with its key in the store (`cert new --ca`), and
//! server certificates issued by it (`cert new --dns NAME --signer THUMBPRINT`, as
//! PowerShell's `New-SelfSignedCertificate -Signer`). Clients trust the root once
//! (`cert trust`) and then accept every certificate it issues.
//!
//! Keys are ECDSA P-256 with SHA-256 signatures. Leaves live at most 397 days, the
//! limit browsers enforce for server certificates; the root lives longer so that one
//! trust step lasts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::selfsigned::{set_validity, subject_alt_names};
use super::{keys, CertError, CertInfo, Certificate, Result, Thumbprint, MAX_DAYS};

/// The common name of the CA portshare makes for itself, and the default of
/// `cert new --ca`: `cert trust` without a thumbprint trusts the CA of this name.
pub const DEV_CA_NAME: &str = "portshare development CA";

/// Default lifetime of a CA: ten years, so that the one trust step lasts.
pub const DEFAULT_CA_DAYS: u32 = 3650;

/// The longest lifetime of an issued server certificate: browsers refuse leaves valid
/// for more than 398 days; one day less leaves room for clock skew.
pub const MAX_LEAF_DAYS: u32 = 397;

fn fail(detail: impl Into<String>) -> CertError {
    CertError::Generate {
        detail: detail.into(),
    }
}

/// A new root CA: subject `CN=<name>, O=portshare`, basicConstraints CA with path
/// length 0 (it issues server certificates only), key usage keyCertSign + cRLSign +
/// digitalSignature, valid `days` days. `source` is left empty.
pub fn new_ca(name: &str, days: u32) -> Result<Certificate> {
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(fail(format!(
            "the validity must be between 1 and {MAX_DAYS} days, not {days}"
        )));
    }
    let name = name.trim();
    if name.is_empty() {
        return Err(fail(
            "the CA name (--name) is empty; give a name or leave --name out",
        ));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    // Most general part first, so Windows shows `CN=…, O=portshare`.
    params
        .distinguished_name
        .push(DnType::OrganizationName, "portshare");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, days);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| fail(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| fail(e.to_string()))?;
    finish(vec![cert.der().clone()], &key)
}

/// Why `signer` cannot issue certificates, as a sentence that says what to do; `None`
/// when it can.
pub fn signer_problem(signer: &Certificate, now: DateTime<Utc>) -> Option<String> {
    let thumb = signer.thumbprint.to_upper();
    if !signer.info.is_ca {
        return Some(format!(
            "certificate {thumb} ({}) is not a CA (its basic constraints do not allow it to \
             issue certificates); make one with `portshare cert new --ca` or name a CA \
             that `portshare cert list` marks as such",
            signer.info.subject
        ));
    }
    if signer.key.is_none() {
        return Some(format!(
            "CA certificate {thumb} ({}) has no private key in the store ({}), so it cannot \
             sign; import it with its key, or make a CA with `portshare cert new --ca`",
            signer.info.subject,
            signer.source.display()
        ));
    }
    if let Some(false) = key_cert_sign(signer) {
        return Some(format!(
            "CA certificate {thumb} ({}) does not allow certificate signing (its key usage \
             lacks keyCertSign); use another CA or make one with `portshare cert new --ca`",
            signer.info.subject
        ));
    }
    if signer.info.not_after <= now {
        return Some(format!(
            "CA certificate {thumb} ({}) expired on {}; make a new one with \
             `portshare cert new --ca`",
            signer.info.subject,
            signer.info.not_after.format("%Y-%m-%d")
        ));
    }
    None
}

/// Whether the key usage extension allows keyCertSign; `None` when there is none
/// (then basic constraints alone decide, as RFC 5280 allows).
fn key_cert_sign(cert: &Certificate) -> Option<bool> {
    let der = cert.chain.first()?;
    let parsed = super::info::parse(der.as_ref()).ok()?;
    match parsed.key_usage() {
        Ok(Some(ku)) => Some(ku.value.key_cert_sign()),
        Ok(None) => None,
        Err(_) => Some(false),
    }
}

/// A server certificate for `names` (DNS names and IP addresses; the first is the
/// CN) issued by `signer`: EKU serverAuth, key usage digitalSignature, ECDSA P-256,
/// valid `days` days (1..=397, and not past the CA's own end). Its chain is the leaf
/// followed by the signer's chain. `source` is left empty.
pub fn issue(signer: &Certificate, names: &[String], days: u32) -> Result<Certificate> {
    let now = Utc::now();
    if let Some(problem) = signer_problem(signer, now) {
        return Err(fail(problem));
    }
    if !(1..=MAX_LEAF_DAYS).contains(&days) {
        return Err(fail(format!(
            "a server certificate may be valid between 1 and {MAX_LEAF_DAYS} days \
             (browsers refuse longer ones), not {days}; give --days {MAX_LEAF_DAYS} or less"
        )));
    }
    let left = (signer.info.not_after - now).num_days();
    if i64::from(days) > left {
        return Err(fail(format!(
            "the CA {} ends on {}, {left} days from now, and a certificate cannot outlive \
             its issuer; give --days {left} or less, or make a new CA",
            signer.thumbprint.to_upper(),
            signer.info.not_after.format("%Y-%m-%d")
        )));
    }
    issue_lasting(signer, names, Duration::from_secs(u64::from(days) * 86_400))
}

/// As [`issue`], for a lifetime that need not be whole days: the server's automatic
/// certificates (`crate::tls::devcerts`), whose tests renew certificates that live
/// seconds. Between one second and 397 days, and not past the CA's end.
///
/// Why the backdating is proportional: `notBefore` lies a tenth of the lifetime (at
/// most ten minutes, as [`issue`] has always done) in the past to absorb clock skew;
/// a fixed ten minutes would make a certificate of seconds mostly past, and due for
/// renewal as soon as it is made.
pub fn issue_lasting(
    signer: &Certificate,
    names: &[String],
    lifetime: Duration,
) -> Result<Certificate> {
    let now = Utc::now();
    if let Some(problem) = signer_problem(signer, now) {
        return Err(fail(problem));
    }
    let max = Duration::from_secs(u64::from(MAX_LEAF_DAYS) * 86_400);
    if lifetime < Duration::from_secs(1) || lifetime > max {
        return Err(fail(format!(
            "a server certificate may be valid between 1 second and {MAX_LEAF_DAYS} days, \
             not {} seconds",
            lifetime.as_secs()
        )));
    }
    let end = chrono::TimeDelta::from_std(lifetime)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| fail("the validity period is out of range"))?;
    if end > signer.info.not_after {
        return Err(fail(format!(
            "the CA {} ends on {}, and a certificate cannot outlive its issuer; \
             make a new CA",
            signer.thumbprint.to_upper(),
            signer.info.not_after.format("%Y-%m-%d %H:%M:%S UTC")
        )));
    }
    let first = names
        .first()
        .ok_or_else(|| fail("give at least one DNS name or IP address with --dns NAME"))?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = subject_alt_names(names).map_err(fail)?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, first.trim());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // Lets clients find the issuer by key identifier, not only by name.
    params.use_authority_key_identifier_extension = true;
    let backdate = (lifetime / 10).min(Duration::from_secs(600));
    let secs = u64::try_from(now.timestamp()).unwrap_or(0);
    // `date_time_ymd(1970, 1, 1)` is the Unix epoch as rcgen's own date type.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(secs) - backdate;
    params.not_after = epoch + Duration::from_secs(secs) + lifetime;

    let ca_der = signer
        .chain
        .first()
        .ok_or_else(|| fail("the signer's certificate chain is empty"))?;
    let ca_key = signer.require_key()?;
    let pkcs8 = keys::to_pkcs8(ca_key).map_err(|detail| CertError::UnsupportedKey {
        path: signer.source.clone(),
        detail,
    })?;
    let ca_key = KeyPair::try_from(&pkcs8).map_err(|e| CertError::UnsupportedKey {
        path: signer.source.clone(),
        detail: format!("the CA's key cannot sign here: {e}"),
    })?;
    let issuer = Issuer::from_ca_cert_der(ca_der, ca_key)
        .map_err(|e| fail(format!("the CA certificate cannot be used: {e}")))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| fail(e.to_string()))?;
    let leaf = params
        .signed_by(&key, &issuer)
        .map_err(|e| fail(e.to_string()))?;
    let mut chain = vec![leaf.der().clone()];
    chain.extend(signer.chain.iter().cloned());
    finish(chain, &key)
}

/// Whether `cert` is valid for `host` (a DNS name, `*.` covering one label, or an IP
/// address), as a client checking the name would decide.
pub fn covers(cert: &Certificate, host: &str) -> bool {
    super::validate::covers(cert, host)
}

/// The certificate for `chain` (leaf first) with `key`.
fn finish(chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> Result<Certificate> {
    let leaf = chain
        .first()
        .ok_or_else(|| fail("no certificate was made"))?;
    let info = CertInfo::from_der(leaf.as_ref()).map_err(fail)?;
    Ok(Certificate {
        thumbprint: Thumbprint::of_der(leaf.as_ref()),
        key: Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        ))),
        chain,
        info,
        source: Default::default(),
    })
}

/// The development CA among `certs`: named [`DEV_CA_NAME`], self-signed, with its
/// key, still valid; the one that lasts longest when there are several.
pub fn dev_ca(certs: &[Certificate], now: DateTime<Utc>) -> Option<&Certificate> {
    certs
        .iter()
        .filter(|c| {
            c.info.is_ca
                && c.info.is_self_signed
                && c.info.common_name.as_deref() == Some(DEV_CA_NAME)
                && signer_problem(c, now).is_none()
        })
        .max_by_key(|c| c.info.not_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::info::{issued_by, parse};
    use crate::certs::{new_self_signed, validate, Warning};

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn ca_has_the_extensions_of_a_root() {
        let ca = new_ca("My CA", 30).unwrap();
        assert!(ca.info.is_ca && ca.info.is_self_signed);
        assert_eq!(ca.info.subject, "CN=My CA, O=portshare");
        let parsed = parse(ca.chain[0].as_ref()).unwrap();
        let ku = parsed.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        assert_eq!(
            parsed
                .basic_constraints()
                .unwrap()
                .unwrap()
                .value
                .path_len_constraint,
            Some(0)
        );
        assert_eq!(
            parsed.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.10045.4.3.2"
        );
        assert!(new_ca(" ", 30).is_err());
        assert!(new_ca("x", 0).is_err());
    }

    #[test]
    fn issued_leaf_chains_to_the_ca() {
        let ca = new_ca(DEV_CA_NAME, 3650).unwrap();
        let leaf = issue(&ca, &names(&["myapp.test", "127.0.0.1", "::1"]), 365).unwrap();
        assert_eq!(leaf.chain.len(), 2);
        assert_eq!(leaf.chain[1], ca.chain[0]);
        let (l, c) = (
            parse(leaf.chain[0].as_ref()).unwrap(),
            parse(ca.chain[0].as_ref()).unwrap(),
        );
        assert!(issued_by(&l, &c));
        assert!(!leaf.info.is_ca && !leaf.info.is_self_signed);
        assert_eq!(leaf.info.issuer, ca.info.subject);
        assert_eq!(leaf.info.dns_names, names(&["myapp.test"]));
        assert_eq!(leaf.info.ip_addresses.len(), 2);
        let eku = l.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        assert_eq!(
            validate(&leaf, Some("myapp.test"), Utc::now()),
            Vec::<Warning>::new()
        );
        let days = (leaf.info.not_after - Utc::now()).num_days();
        assert!((364..=365).contains(&days), "{days}");
    }

    #[test]
    fn refuses_bad_signers_and_lifetimes() {
        let ca = new_ca("CA", 30).unwrap();
        let n = names(&["a.test"]);
        assert!(issue(&ca, &n, MAX_LEAF_DAYS + 1).is_err());
        // Longer than the CA lasts.
        let e = issue(&ca, &n, 200).unwrap_err().to_string();
        assert!(e.contains("cannot outlive"), "{e}");
        assert!(issue(&ca, &n, 20).is_ok());

        let plain = new_self_signed(&n, 30).unwrap();
        let e = issue(&plain, &n, 20).unwrap_err().to_string();
        assert!(e.contains("is not a CA"), "{e}");

        let mut keyless = ca.clone();
        keyless.key = None;
        let e = issue(&keyless, &n, 20).unwrap_err().to_string();
        assert!(e.contains("no private key"), "{e}");
        assert!(issue(&ca, &[], 20).is_err());
    }

    #[test]
    fn short_lifetimes_are_backdated_by_a_tenth() {
        let ca = new_ca(DEV_CA_NAME, 30).unwrap();
        let n = names(&["a.test"]);
        let leaf = issue_lasting(&ca, &n, Duration::from_secs(20)).unwrap();
        let span = leaf.info.not_after - leaf.info.not_before;
        assert_eq!(span.num_seconds(), 22, "20 s and 2 s of backdating");
        assert!(issue_lasting(&ca, &n, Duration::ZERO).is_err());
        // Past the CA's end.
        assert!(issue_lasting(&ca, &n, Duration::from_secs(31 * 86_400)).is_err());
    }

    #[test]
    fn dev_ca_is_found_by_name() {
        let other = new_ca("Other", 30).unwrap();
        let dev = new_ca(DEV_CA_NAME, 30).unwrap();
        let certs = vec![other, dev.clone()];
        assert_eq!(
            dev_ca(&certs, Utc::now()).map(|c| c.thumbprint),
            Some(dev.thumbprint)
        );
        assert!(dev_ca(&certs[..1], Utc::now()).is_none());
    }
}
