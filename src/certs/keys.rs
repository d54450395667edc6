//! Private keys: which certificate they belong to, PKCS#8 conversion, PEM text.

use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The DER SubjectPublicKeyInfo of the key's public half, or why the key cannot be used.
///
/// Uses rustls' ring provider, so "usable here" means exactly "usable for TLS by portshare":
/// RSA (2048 bits and up), ECDSA P-256/P-384, Ed25519.
pub(crate) fn public_key_spki(key: &PrivateKeyDer<'_>) -> Result<Vec<u8>, String> {
    let signer = rustls::crypto::ring::sign::any_supported_type(key)
        .map_err(|_| describe_unsupported(key))?;
    signer
        .public_key()
        .map(|spki| spki.as_ref().to_vec())
        .ok_or_else(|| describe_unsupported(key))
}

/// Human words for a key rustls/ring will not load.
fn describe_unsupported(key: &PrivateKeyDer<'_>) -> String {
    let what = match key {
        PrivateKeyDer::Pkcs1(_) => {
            "an RSA key that cannot be used (smaller than 2048 bits or damaged)".to_string()
        }
        PrivateKeyDer::Sec1(_) => {
            "an EC key on a curve other than P-256/P-384, or a damaged EC key".to_string()
        }
        PrivateKeyDer::Pkcs8(k) => match p12_keystore::PrivateKey::from_der(k.secret_pkcs8_der()) {
            Ok(pk) => match pk.oid().to_string().as_str() {
                "1.2.840.113549.1.1.1" => {
                    "an RSA key that cannot be used (smaller than 2048 bits or damaged)".to_string()
                }
                "1.2.840.10045.2.1" => {
                    "an ECDSA key on a curve other than P-256/P-384 (e.g. P-521)".to_string()
                }
                "1.3.101.113" => "an Ed448 key".to_string(),
                "1.3.101.110" | "1.3.101.111" => "an X25519/X448 key-agreement key".to_string(),
                "1.2.840.10040.4.1" => "a DSA key".to_string(),
                "1.2.840.113549.1.1.10" => "an RSA-PSS-only key".to_string(),
                other => format!("a key with algorithm OID {other}"),
            },
            Err(_) => "a damaged PKCS#8 key".to_string(),
        },
        _ => "a key in an unknown format".to_string(),
    };
    format!("{what}; supported are RSA (2048 bits or more), ECDSA P-256/P-384 and Ed25519")
}

const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01,
];
const NULL: &[u8] = &[0x05, 0x00];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22];

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|p| p.len()).sum();
    let mut out = vec![tag];
    der_len(len, &mut out);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// PrivateKeyInfo { version 0, algorithm, privateKey OCTET STRING }.
fn wrap_pkcs8(alg_params: &[&[u8]], inner: &[u8]) -> Vec<u8> {
    let alg = tlv(0x30, alg_params);
    let octets = tlv(0x04, &[inner]);
    tlv(0x30, &[&[0x02, 0x01, 0x00], &alg, &octets])
}

/// Convert any supported key to PKCS#8 DER (what the `.key` files in the store and PFX
/// export hold). PKCS#1 and SEC1 keys are wrapped; the SEC1 curve is found by trying P-256
/// and P-384 and checking the public key comes out the same.
pub(crate) fn to_pkcs8(key: &PrivateKeyDer<'_>) -> Result<PrivatePkcs8KeyDer<'static>, String> {
    match key {
        PrivateKeyDer::Pkcs8(k) => Ok(k.clone_key()),
        PrivateKeyDer::Pkcs1(k) => Ok(PrivatePkcs8KeyDer::from(wrap_pkcs8(
            &[OID_RSA_ENCRYPTION, NULL],
            k.secret_pkcs1_der(),
        ))),
        PrivateKeyDer::Sec1(k) => {
            let want = public_key_spki(key)?;
            for curve in [OID_P256, OID_P384] {
                let candidate = PrivatePkcs8KeyDer::from(wrap_pkcs8(
                    &[OID_EC_PUBLIC_KEY, curve],
                    k.secret_sec1_der(),
                ));
                let as_key = PrivateKeyDer::Pkcs8(candidate.clone_key());
                if public_key_spki(&as_key).ok().as_deref() == Some(want.as_slice()) {
                    return Ok(candidate);
                }
            }
            Err(describe_unsupported(key))
        }
        _ => Err(describe_unsupported(key)),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One PEM block with 64-character lines.
pub(crate) fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn pem_block_round_trips() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let pem = pem_block("CERTIFICATE", &data);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let back = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), data.as_slice());
    }

    #[test]
    fn long_der_lengths() {
        let mut v = Vec::new();
        der_len(0x7f, &mut v);
        der_len(0x80, &mut v);
        der_len(0x1234, &mut v);
        assert_eq!(v, [0x7f, 0x81, 0x80, 0x82, 0x12, 0x34]);
    }

    #[test]
    fn ecdsa_key_spki_and_pkcs8() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(kp.serialize_der()));
        let spki = public_key_spki(&key).unwrap();
        assert_eq!(spki, rcgen::PublicKeyData::subject_public_key_info(&kp));
        assert_eq!(
            to_pkcs8(&key).unwrap().secret_pkcs8_der(),
            kp.serialize_der().as_slice()
        );
    }

    #[test]
    fn unsupported_key_is_described() {
        // An Ed448 PKCS#8 key (RFC 8410 layout, 57 zero bytes of key material).
        let mut ed448 = vec![
            0x30, 0x47, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x71, 0x04, 0x3B,
            0x04, 0x39,
        ];
        ed448.extend([0u8; 57]);
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ed448));
        let e = public_key_spki(&key).unwrap_err();
        assert!(e.starts_with("an Ed448 key"), "{e}");
        let junk = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(vec![1, 2, 3]));
        assert!(public_key_spki(&junk).unwrap_err().contains("damaged"));
    }
}
