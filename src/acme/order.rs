//! The instant-acme flow: the account (created once, its key kept in
//! `cert_dir` and reused), one order per name — HTTP-01 or TLS-ALPN-01
//! challenge, CSR, certificate chain — and the renewal window of a
//! certificate (ARI, RFC 9773) when the directory has one.
//!
//! Why a file of its own: this is the only code that talks to the ACME
//! server, so every network failure becomes an [`AcmeError`] here, with the
//! ACME problem document's type and detail when the server sent one. The
//! certificate's key is made here with rcgen (ECDSA P-256) rather than by
//! instant-acme, so it is PKCS#8 PEM that [`crate::certs`] stores as is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use instant_acme::{
    Account, AccountBuilder, AccountCredentials, AuthorizationStatus, CertificateIdentifier,
    ChallengeType, Identifier, NewAccount, NewOrder, Order, OrderStatus, RetryPolicy,
};

use super::challenge::Http01Tokens;
use super::client::{RecordingClient, RetryAfter};
use super::renew::Window;
use super::{error_chain, problem_text, AcmeError};
use crate::config::AcmeSettings;
use crate::tls::alpn_challenge::AlpnChallenges;

/// The account file in `cert_dir`: directory URL → instant-acme's
/// credentials (account URL and PKCS#8 key), mode 0600.
pub const ACCOUNT_FILE: &str = "acme-account.json";

/// How long one order may take, for each of its waits (validation,
/// issuance). Let's Encrypt usually takes seconds.
const ORDER_WAIT: Duration = Duration::from_secs(120);

/// How this server can answer a challenge: HTTP-01 through the prefix
/// table, TLS-ALPN-01 through the TLS acceptor (each when `[acme]
/// challenge=` allows it and its port is served).
#[derive(Clone, Copy)]
pub struct Responders<'a> {
    pub http01: Option<&'a Http01Tokens>,
    pub tls_alpn01: Option<&'a AlpnChallenges>,
}

/// A certificate chain and its key, as the ACME server issued them.
pub struct Issued {
    /// PEM, leaf first.
    pub chain_pem: String,
    /// PKCS#8 PEM.
    pub key_pem: String,
}

/// An ACME account and the `Retry-After` of its client's last refused
/// request (instant-acme's errors do not carry it).
pub struct AcmeAccount {
    pub account: Account,
    pub retry_after: RetryAfter,
}

/// The HTTP client for the directory: the system's roots, or `ca_root`'s.
fn builder(acme: &AcmeSettings) -> Result<(AccountBuilder, RetryAfter), AcmeError> {
    let roots = match &acme.ca_root {
        None => None,
        Some(path) => Some(read_ca_root(path)?),
    };
    let retry_after = RetryAfter::default();
    let client =
        RecordingClient::new(roots, retry_after.clone()).map_err(|detail| match &acme.ca_root {
            Some(path) => AcmeError::CaRoot {
                path: path.clone(),
                detail,
            },
            None => AcmeError::HttpClient { detail },
        })?;
    Ok((Account::builder_with_http(Box::new(client)), retry_after))
}

/// `ca_root` must be a readable PEM file with certificates (instant-acme
/// would only say "invalid PEM"); every one in it is trusted.
fn read_ca_root(path: &Path) -> Result<rustls::RootCertStore, AcmeError> {
    use rustls_pki_types::pem::PemObject;
    let err = |detail: String| AcmeError::CaRoot {
        path: path.to_path_buf(),
        detail,
    };
    let data = std::fs::read(path).map_err(|e| err(format!("cannot read the file: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&data) {
        let cert = cert.map_err(|e| err(format!("not a valid PEM file: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| err(format!("not a usable root certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(err("the file holds no PEM certificate".into()));
    }
    Ok(roots)
}

type SavedAccounts = BTreeMap<String, serde_json::Value>;

fn read_accounts(path: &Path) -> Result<SavedAccounts, AcmeError> {
    let err = |detail: String| AcmeError::AccountFile {
        path: path.to_path_buf(),
        detail,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| err(format!("not a portshare ACME account file: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SavedAccounts::new()),
        Err(e) => Err(err(format!("cannot read the file: {e}"))),
    }
}

/// The ACME account for `[acme] directory`: restored from `cert_dir`'s
/// account file, or registered (agreeing to the server's terms of service,
/// as writing the `[acme]` section does) and saved there.
pub async fn account(acme: &AcmeSettings, cert_dir: &Path) -> Result<AcmeAccount, AcmeError> {
    let path: PathBuf = cert_dir.join(ACCOUNT_FILE);
    let mut saved = read_accounts(&path)?;
    let directory_error = |source: instant_acme::Error| match source {
        instant_acme::Error::Api(p) => AcmeError::AccountRefused {
            url: acme.directory.clone(),
            problem: problem_text(&p),
        },
        // A web server's error page (pebble's "404 page not found", an
        // HTML page) instead of the directory document.
        instant_acme::Error::Json(e) => AcmeError::Directory {
            url: acme.directory.clone(),
            detail: format!(
                "the answer is not an ACME directory (a JSON object naming newNonce, newAccount \
                 and newOrder; reading it said: {e})"
            ),
        },
        other => AcmeError::Directory {
            url: acme.directory.clone(),
            detail: error_chain(&other),
        },
    };
    if let Some(value) = saved.get(&acme.directory) {
        let credentials: AccountCredentials =
            serde_json::from_value(value.clone()).map_err(|e| AcmeError::AccountFile {
                path: path.clone(),
                detail: format!("the account for {} cannot be read: {e}", acme.directory),
            })?;
        let (builder, retry_after) = builder(acme)?;
        let account = builder
            .from_credentials(credentials)
            .await
            .map_err(directory_error)?;
        return Ok(AcmeAccount {
            account,
            retry_after,
        });
    }
    let contact = acme.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (builder, retry_after) = builder(acme)?;
    let (account, credentials) = builder
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            acme.directory.clone(),
            None,
        )
        .await
        .map_err(directory_error)?;
    let value = serde_json::to_value(&credentials).map_err(|e| AcmeError::AccountFile {
        path: path.clone(),
        detail: format!("cannot serialise the new account: {e}"),
    })?;
    saved.insert(acme.directory.clone(), value);
    let text = serde_json::to_vec_pretty(&saved).map_err(|e| AcmeError::AccountFile {
        path: path.clone(),
        detail: format!("cannot serialise the accounts: {e}"),
    })?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    crate::atomic_file::write_atomic(&path, &text, true).map_err(|e| AcmeError::AccountFile {
        path: path.clone(),
        detail: format!("cannot write the file: {e}"),
    })?;
    tracing::info!(
        directory = %acme.directory,
        account = account.id(),
        "ACME account registered; its key is kept in {}",
        path.display()
    );
    Ok(AcmeAccount {
        account,
        retry_after,
    })
}

/// The renewal window the ACME server suggests for the certificate `leaf`
/// (DER), and how long until it may be asked for again. `Ok(None)` when the
/// directory has no `renewalInfo` (pebble 2.4, many private CAs) or the
/// certificate cannot be identified (no authority key identifier): then a
/// third of the lifetime left decides.
pub async fn renewal_window(
    account: &AcmeAccount,
    name: &str,
    leaf: &rustls_pki_types::CertificateDer<'_>,
) -> Result<Option<(Window, Duration)>, AcmeError> {
    let Ok(id) = CertificateIdentifier::try_from(leaf) else {
        return Ok(None);
    };
    match account.account.renewal_info(&id).await {
        Ok((info, recheck)) => match Window::of(&info.suggested_window) {
            Some(window) => Ok(Some((window, recheck))),
            None => Err(AcmeError::Order {
                name: name.to_owned(),
                step: "fetching the renewal window (ARI)",
                detail: "the window's dates are out of range".into(),
            }),
        },
        Err(instant_acme::Error::Unsupported(_)) => Ok(None),
        Err(e) => Err(AcmeError::order(
            name,
            "fetching the renewal window (ARI)",
            e,
        )),
    }
}

/// The ARI identifier of the certificate `leaf` replaces (the `replaces`
/// of a renewal order, RFC 9773 §5).
pub fn certificate_id(
    leaf: &rustls_pki_types::CertificateDer<'_>,
) -> Option<CertificateIdentifier<'static>> {
    CertificateIdentifier::try_from(leaf)
        .ok()
        .map(CertificateIdentifier::into_owned)
}

/// Orders a certificate for `name`, answering its challenge through
/// `responders` (HTTP-01 when offered, else TLS-ALPN-01). The answers are
/// withdrawn whatever the outcome. `replaces` names the certificate this
/// one renews, when the directory has ARI. A refusal carries the server's
/// `Retry-After`, if it gave one.
pub async fn issue(
    account: &AcmeAccount,
    name: &str,
    responders: Responders<'_>,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<Issued, AcmeError> {
    account.retry_after.clear();
    let mut result = place_and_issue(&account.account, name, responders, replaces).await;
    if let Err(AcmeError::Refused { retry_after, .. }) = &mut result {
        *retry_after = account.retry_after.remaining();
    }
    result
}

async fn place_and_issue(
    account: &Account,
    name: &str,
    responders: Responders<'_>,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<Issued, AcmeError> {
    let identifiers = [Identifier::Dns(name.to_owned())];
    let mut new_order = NewOrder::new(&identifiers);
    if let Some(id) = replaces {
        new_order = new_order.replaces(id);
    }
    let mut order = account
        .new_order(&new_order)
        .await
        .map_err(|e| AcmeError::order(name, "placing the order", e))?;
    let mut published = Vec::new();
    let result = validate_and_finalize(&mut order, name, responders, &mut published).await;
    if let Some(tokens) = responders.http01 {
        for token in published {
            tokens.withdraw(&token);
        }
    }
    if let Some(alpn) = responders.tls_alpn01 {
        alpn.withdraw(name);
    }
    result
}

async fn validate_and_finalize(
    order: &mut Order,
    name: &str,
    responders: Responders<'_>,
    published: &mut Vec<String>,
) -> Result<Issued, AcmeError> {
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz =
            authz.map_err(|e| AcmeError::order(name, "fetching the authorization", e))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(AcmeError::Order {
                    name: name.to_owned(),
                    step: "fetching the authorization",
                    detail: format!("the authorization is {other:?}"),
                })
            }
        }
        let offered = |t: ChallengeType| authz.challenges.iter().any(|c| c.r#type == t);
        let kind = match responders {
            Responders {
                http01: Some(_), ..
            } if offered(ChallengeType::Http01) => ChallengeType::Http01,
            Responders {
                tls_alpn01: Some(_),
                ..
            } if offered(ChallengeType::TlsAlpn01) => ChallengeType::TlsAlpn01,
            _ => {
                return Err(AcmeError::NoChallenge {
                    name: name.to_owned(),
                    allowed: allowed(responders),
                })
            }
        };
        let Some(mut challenge) = authz.challenge(kind.clone()) else {
            return Err(AcmeError::NoChallenge {
                name: name.to_owned(),
                allowed: allowed(responders),
            });
        };
        let key_authorization = challenge.key_authorization();
        match (kind, responders.http01, responders.tls_alpn01) {
            (ChallengeType::Http01, Some(tokens), _) => {
                tokens
                    .publish(&challenge.token, key_authorization.as_str())
                    .map_err(|e| AcmeError::Token {
                        name: name.to_owned(),
                        dir: tokens.dir().to_path_buf(),
                        detail: e.to_string(),
                    })?;
                published.push(challenge.token.clone());
            }
            (_, _, Some(alpn)) => alpn
                .publish(name, key_authorization.digest().as_ref())
                .map_err(|detail| AcmeError::Order {
                    name: name.to_owned(),
                    step: "making the TLS-ALPN-01 certificate",
                    detail,
                })?,
            _ => {
                return Err(AcmeError::NoChallenge {
                    name: name.to_owned(),
                    allowed: allowed(responders),
                })
            }
        }
        challenge
            .set_ready()
            .await
            .map_err(|e| AcmeError::order(name, "starting the validation", e))?;
    }
    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(ORDER_WAIT);
    let status = order
        .poll_ready(&retry)
        .await
        .map_err(|e| AcmeError::order(name, "waiting for the validation", e))?;
    if status != OrderStatus::Ready {
        return Err(validation_failure(order, name).await);
    }
    let key = rcgen::KeyPair::generate().map_err(|e| AcmeError::Order {
        name: name.to_owned(),
        step: "making the key",
        detail: e.to_string(),
    })?;
    let csr = rcgen::CertificateParams::new(vec![name.to_owned()])
        .and_then(|mut params| {
            params.distinguished_name = rcgen::DistinguishedName::new();
            params.serialize_request(&key)
        })
        .map_err(|e| AcmeError::Order {
            name: name.to_owned(),
            step: "making the certificate request",
            detail: e.to_string(),
        })?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(|e| AcmeError::order(name, "finalizing the order", e))?;
    let chain_pem = order
        .poll_certificate(&retry)
        .await
        .map_err(|e| AcmeError::order(name, "fetching the certificate", e))?;
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
    })
}

/// The challenge types this server can answer, for a message.
fn allowed(r: Responders<'_>) -> &'static str {
    match (r.http01.is_some(), r.tls_alpn01.is_some()) {
        (true, true) => "http-01 or tls-alpn-01",
        (true, false) => "http-01",
        (false, true) => "tls-alpn-01",
        (false, false) => "none",
    }
}

/// Why an order became invalid: the first challenge's problem document.
async fn validation_failure(order: &mut Order, name: &str) -> AcmeError {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let Ok(state) = authz.refresh().await else {
            continue;
        };
        if let Some(problem) = state.challenges.iter().find_map(|c| c.error.as_ref()) {
            return AcmeError::refused(name, "validating the challenge", problem);
        }
    }
    AcmeError::Order {
        name: name.to_owned(),
        step: "waiting for the validation",
        detail: "the order became invalid and the server gave no reason".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ca_root: Option<PathBuf>) -> AcmeSettings {
        AcmeSettings {
            email: None,
            directory: "https://127.0.0.1:9/dir".into(),
            ca_root,
            names: None,
            challenge: crate::config::AcmeChallenges {
                http01: true,
                tls_alpn01: false,
            },
        }
    }

    #[tokio::test]
    async fn ca_root_that_is_not_pem_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("root.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        let e = account(&settings(Some(bad.clone())), dir.path())
            .await
            .err()
            .unwrap();
        assert!(matches!(e, AcmeError::CaRoot { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("[acme] ca_root"), "{text}");
        assert!(text.contains(&bad.display().to_string()), "{text}");
        let e = account(&settings(Some(dir.path().join("missing.pem"))), dir.path())
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[tokio::test]
    async fn damaged_account_file_is_named_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(ACCOUNT_FILE);
        std::fs::write(&file, "{").unwrap();
        let e = account(&settings(None), dir.path()).await.err().unwrap();
        assert!(matches!(e, AcmeError::AccountFile { .. }), "{e}");
        assert!(e.to_string().contains("delete"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "{");
    }
}
