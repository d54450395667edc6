//! Tests against the OpenSSL-made files in `tests/fixtures/certs` (see its README).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/certs");

fn fx(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

fn thumbprints() -> HashMap<String, Thumbprint> {
    let text = std::fs::read_to_string(fx("thumbprints.txt")).unwrap();
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(name, hex)| (name.to_string(), hex.parse().unwrap()))
        .collect()
}

fn thumb(name: &str) -> Thumbprint {
    thumbprints()[name]
}

fn intermediate() -> Thumbprint {
    let c = load_pem(&fx("intermediate.pem"), None).unwrap();
    c.thumbprint
}

#[test]
fn every_listed_leaf_has_the_listed_thumbprint() {
    let list = thumbprints();
    assert!(list.len() >= 10, "{list:?}");
    for (name, want) in &list {
        // Chain only: the thumbprint does not depend on the key (mismatch.pem has a wrong one).
        let cert = load_pem(&fx(name), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(cert.thumbprint, *want, "{name}");
        assert_eq!(
            cert.thumbprint.to_string(),
            cert.thumbprint.to_upper().to_lowercase()
        );
    }
}

#[test]
fn pem_with_every_key_format() {
    for (pem, key) in [
        ("rsa.pem", "rsa.key"),
        ("rsa.pem", "rsa-pkcs1.key"),
        ("ecdsa.pem", "ecdsa.key"),
        ("ecdsa.pem", "ecdsa-pkcs8.key"),
        ("p384.pem", "p384.key"),
        ("ed25519.pem", "ed25519.key"),
        ("wildcard.pem", "wildcard.key"),
        ("selfsigned.pem", "selfsigned.key"),
    ] {
        let cert =
            load_pem(&fx(pem), Some(&fx(key))).unwrap_or_else(|e| panic!("{pem}+{key}: {e}"));
        assert_eq!(cert.thumbprint, thumb(pem), "{pem}");
        assert!(cert.key.is_some());
        // Export as PKCS#8 PEM and as PFX, and read both back.
        let (chain, key_pem) = to_pem(&cert).unwrap();
        let key_pem = key_pem.unwrap();
        assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pem");
        std::fs::write(&p, format!("{chain}{key_pem}")).unwrap();
        assert_eq!(load_pem(&p, None).unwrap().thumbprint, cert.thumbprint);
        let p = dir.path().join("x.pfx");
        std::fs::write(&p, to_pfx(&cert, "pw").unwrap()).unwrap();
        let back = load_pfx(&p, "pw").unwrap();
        assert_eq!(back.thumbprint, cert.thumbprint);
        assert!(back.key.is_some());
    }
}

#[test]
fn combined_and_fullchain_pem() {
    let rsa = thumb("rsa.pem");
    let c = load_pem(&fx("rsa-combined.pem"), None).unwrap();
    assert_eq!(c.thumbprint, rsa);
    assert!(c.key.is_some());
    assert_eq!(c.chain.len(), 2);
    assert_eq!(Thumbprint::of_der(c.chain[1].as_ref()), intermediate());

    let c = load_pem(&fx("rsa-fullchain.pem"), Some(&fx("rsa.key"))).unwrap();
    assert_eq!(c.thumbprint, rsa);
    assert_eq!(c.chain.len(), 2);
    assert!(validate(&c, Some("site.test"), Utc::now()).is_empty());
    assert!(validate(&c, Some("127.0.0.1"), Utc::now()).is_empty());
    assert!(validate(&c, Some("::1"), Utc::now()).is_empty());

    let c = load_pem(&fx("ecdsa-fullchain.pem"), Some(&fx("ecdsa.key"))).unwrap();
    assert_eq!(c.thumbprint, thumb("ecdsa.pem"));
    assert_eq!(c.info.subject, "CN=ec.test");
    assert_eq!(c.info.issuer, "CN=portshare Test Intermediate CA");
}

#[test]
fn every_pfx_kind() {
    let rsa = thumb("rsa.pem");
    let inter = intermediate();
    for (file, pw, leaf) in [
        ("rsa-aes.pfx", "test", rsa),
        ("rsa-legacy.pfx", "test", rsa),
        ("rsa-3des.pfx", "test", rsa),
        ("rsa-nopass.pfx", "", rsa),
        ("ecdsa-aes.pfx", "test", thumb("ecdsa.pem")),
        ("seed-style.pfx", "secret", rsa),
    ] {
        let c = load_pfx(&fx(file), pw).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(c.thumbprint, leaf, "{file}");
        assert!(c.key.is_some(), "{file}");
        assert_eq!(c.chain.len(), 2, "{file}");
        assert_eq!(Thumbprint::of_der(c.chain[1].as_ref()), inter, "{file}");
        assert!(validate(&c, None, Utc::now()).is_empty(), "{file}");
        // The generic loader decides by content.
        assert_eq!(load(&fx(file), None, pw).unwrap().thumbprint, leaf);

        let wrong = if pw.is_empty() { "x" } else { "wrong" };
        let e = load_pfx(&fx(file), wrong).unwrap_err();
        assert!(matches!(e, CertError::WrongPassword { .. }), "{file}: {e}");
        let shown = fx(file).display().to_string();
        assert_eq!(
            e.to_string(),
            format!("{shown}: wrong password (put it in {shown}.password or pass --password)")
        );
        assert_eq!(e.netsh_code(), None);
    }
}

#[test]
fn pfx_without_key_is_1312() {
    let c = load_pfx(&fx("nokey.pfx"), "test").unwrap();
    assert_eq!(
        c.thumbprint,
        thumb("rsa.pem"),
        "leaf is the certificate that issued nothing"
    );
    assert!(c.key.is_none());
    let e = c.require_key().unwrap_err();
    assert_eq!(e.netsh_code(), Some(1312));
    assert!(
        e.to_string()
            .contains("nokey.pfx: the file contains no private key"),
        "{e}"
    );

    let store = tempfile::tempdir().unwrap();
    let e = CertStore::import(store.path(), &fx("nokey.pfx"), Some("test")).unwrap_err();
    assert_eq!(e.netsh_code(), Some(1312));
}

#[test]
fn mismatched_key() {
    let e = load_pem(&fx("mismatch.pem"), Some(&fx("mismatch.key"))).unwrap_err();
    assert!(matches!(e, CertError::KeyMismatch { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("mismatch.pem: the private key does not belong to the certificate"),
        "{e}"
    );
    let e = load_pem(&fx("rsa.pem"), Some(&fx("ecdsa.key"))).unwrap_err();
    assert!(matches!(e, CertError::KeyMismatch { .. }), "{e}");
}

#[test]
fn warnings() {
    let now = Utc::now();
    let expired = load_pem(&fx("expired.pem"), Some(&fx("expired.key"))).unwrap();
    let w = validate(&expired, Some("expired.test"), now);
    assert!(
        w.iter().any(|w| matches!(w, Warning::Expired { .. })),
        "{w:?}"
    );
    assert!(
        w.iter().any(|w| w
            .to_string()
            .starts_with("The certificate expired on 2021-01-01")),
        "{w:?}"
    );

    let client = load_pem(&fx("clientauth.pem"), Some(&fx("clientauth.key"))).unwrap();
    assert!(!client.info.has_server_auth_eku);
    assert!(validate(&client, None, now).contains(&Warning::NoServerAuth));

    let sha1 = load_pem(&fx("sha1.pem"), Some(&fx("sha1.key"))).unwrap();
    assert!(sha1.info.signature_is_sha1);
    assert!(validate(&sha1, None, now).contains(&Warning::Sha1Signature));

    let wild = load_pem(&fx("wildcard.pem"), Some(&fx("wildcard.key"))).unwrap();
    assert_eq!(wild.info.dns_names, vec!["*.wild.test".to_string()]);
    let mismatch = |host: &str| {
        validate(&wild, Some(host), now)
            .iter()
            .any(|w| matches!(w, Warning::HostnameMismatch { .. }))
    };
    assert!(!mismatch("a.wild.test"));
    assert!(!mismatch("WWW.Wild.Test"));
    assert!(mismatch("wild.test"));
    assert!(mismatch("a.b.wild.test"));

    // A leaf alone, without its intermediate: incomplete chain.
    let rsa = load_pem(&fx("rsa.pem"), Some(&fx("rsa.key"))).unwrap();
    let w = validate(&rsa, Some("site.test"), now);
    assert_eq!(
        w,
        vec![Warning::IncompleteChain {
            missing_issuer: "CN=portshare Test Intermediate CA".into()
        }]
    );

    let ss = load_pem(&fx("selfsigned.pem"), Some(&fx("selfsigned.key"))).unwrap();
    assert!(ss.info.is_self_signed);
    assert!(validate(&ss, Some("localhost"), now).is_empty());
    assert!(!validate(&ss, Some("site.test"), now).is_empty());
}

#[test]
fn scan_the_fixture_directory() {
    let (certs, errors) = CertStore::scan(Path::new(DIR));
    let by_thumb: HashMap<Thumbprint, &Certificate> =
        certs.iter().map(|c| (c.thumbprint, c)).collect();
    assert_eq!(by_thumb.len(), certs.len(), "deduplicated");
    // PEM files with a sibling .key load with the key; SEC1 sibling included.
    for name in [
        "rsa.pem",
        "ecdsa.pem",
        "p384.pem",
        "ed25519.pem",
        "selfsigned.pem",
    ] {
        let c = by_thumb
            .get(&thumb(name))
            .unwrap_or_else(|| panic!("{name} missing"));
        assert!(c.key.is_some(), "{name}");
    }
    // mismatch.pem + mismatch.key is an error; password-protected PFX files without a
    // .password file are wrong-password errors; nothing panics and the scan completes.
    assert!(errors.iter().any(
        |e| matches!(e, CertError::KeyMismatch { path, .. } if path.ends_with("mismatch.pem"))
    ));
    assert!(errors
        .iter()
        .any(|e| matches!(e, CertError::WrongPassword { path } if path.ends_with("rsa-aes.pfx"))));
    // rsa-nopass.pfx (empty password) loads.
    assert!(!errors
        .iter()
        .any(|e| e.path().is_some_and(|p| p.ends_with("rsa-nopass.pfx"))));
    for e in &errors {
        assert!(e.path().is_some(), "{e}");
    }
}

#[test]
fn import_fixture_pfx_and_pem() {
    let store = tempfile::tempdir().unwrap();
    let c = CertStore::import(store.path(), &fx("rsa-legacy.pfx"), Some("test")).unwrap();
    assert_eq!(c.thumbprint, thumb("rsa.pem"));
    let again = CertStore::find(store.path(), &c.thumbprint).unwrap();
    assert_eq!(again.chain, c.chain);
    assert!(again.key.is_some());

    // PEM with its key as sibling NAME.key (SEC1).
    let c = CertStore::import(store.path(), &fx("ecdsa.pem"), None).unwrap();
    assert_eq!(c.thumbprint, thumb("ecdsa.pem"));
    let key_text =
        std::fs::read_to_string(store.path().join(format!("{}.key", c.thumbprint))).unwrap();
    assert!(key_text.starts_with("-----BEGIN PRIVATE KEY-----"));
    let (certs, errors) = CertStore::scan(store.path());
    assert_eq!(certs.len(), 2);
    assert!(errors.is_empty(), "{errors:?}");

    let e = CertStore::import(store.path(), &fx("mismatch.pem"), None).unwrap_err();
    assert!(matches!(e, CertError::KeyMismatch { .. }));
}
