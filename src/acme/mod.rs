//! Certificates that browsers trust, with no manual step: ACME (RFC 8555,
//! Let's Encrypt) inside the server, phase 1 (HTTP-01).
//!
//! Why it lives in the server and works through the existing parts: the
//! HTTP.sys model stays the one model. The HTTP-01 challenge is a
//! registration in the prefix table ([`challenge`]); an issued certificate
//! is an ordinary [`crate::certs::CertStore`] entry known by its thumbprint,
//! bound as `hostnameport=NAME:PORT` with the fixed appid [`ACME_APPID`]
//! through the store's locked update, and put into service by the TLS
//! layer's hot reload — so `http show sslcert` and `cert list` show it like
//! any other. A binding the user made by hand for the same name and port (a
//! different appid) is never replaced.
//!
//! This file is the manager task: at start, then at each name's renewal
//! time or daily, whichever is sooner ([`renew::wait_until`]), it looks
//! at each name ([`names`]), renews when due ([`renew`]: inside the ACME
//! server's suggested window when the directory has ARI, else when a third
//! of the lifetime is left) through an order ([`order`]), and on failure
//! keeps the old certificate, logs one line (the ACME problem's type and
//! detail, what to do) and backs off — longer when the server's
//! `Retry-After` says so ([`client`]), never beyond a day. Nothing here can
//! stop the server: every failure is a log line and a retry.

pub mod challenge;
pub mod client;
pub mod names;
pub mod order;
pub mod renew;
pub mod status;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::certs::{CertError, CertStore, Certificate, Thumbprint};
use crate::config::AcmeSettings;
use crate::store::{BindingFlags, BindingKey, SslBinding, Store, StoreError, UpdateError};

use crate::tls::alpn_challenge::AlpnChallenges;
use challenge::Http01Tokens;
use names::Target;
use order::AcmeAccount;
use renew::{Backoff, Window};
use status::{AcmeHandle, CertSummary, LastResult, RenewRequest};

/// The application id of the bindings ACME makes (`http show sslcert`
/// shows it). Its last group is "acme" in ASCII hex. A binding for the same
/// `hostnameport` with any other appid was made by hand and is left alone.
pub const ACME_APPID: &str = "{7a1f5a0e-ac3e-4e2d-8f01-61636d650001}";

/// The lock file in `cert_dir` that guards ordering: servers sharing the
/// folder (behind one load balancer) place one order between them, and the
/// others take the certificate from the store once the lock is free.
pub const ORDER_LOCK_FILE: &str = "acme-order.lock";

/// How long a server waits for another's order before giving up (and
/// retrying with back-off): well beyond one order's own waits.
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// Why looking after a name (or the account) failed. Every message names
/// the `[acme]` key or the host name, and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error(
        "[acme] ca_root {}: {detail}; give a PEM file with the root certificate of the ACME \
         server's own HTTPS (-----BEGIN CERTIFICATE-----), or remove the key to use the system's roots",
        path.display()
    )]
    CaRoot { path: PathBuf, detail: String },
    #[error(
        "cannot set up the HTTPS client for the ACME server: {detail}; set [acme] ca_root to the \
         PEM file of the ACME server's root"
    )]
    HttpClient { detail: String },
    #[error(
        "[acme] directory {url} cannot be used: {detail}; check the URL, that this machine can \
         reach it, and [acme] ca_root for a private ACME server"
    )]
    Directory { url: String, detail: String },
    #[error("[acme] directory {url} refused to register the account: {problem}")]
    AccountRefused { url: String, problem: String },
    #[error(
        "{}: {detail}; fix or delete the file (a new ACME account is then registered)",
        path.display()
    )]
    AccountFile { path: PathBuf, detail: String },
    #[error("{name}: the ACME server refused {step}: {problem}")]
    Refused {
        name: String,
        step: &'static str,
        problem: String,
        /// How long the server's `Retry-After` asked to wait (a rate limit).
        retry_after: Option<Duration>,
    },
    #[error("{name}: {step} failed: {detail}; portshare retries later")]
    Order {
        name: String,
        step: &'static str,
        detail: String,
    },
    #[error(
        "{name}: the ACME server offers no challenge this server can answer ({allowed}); \
         allow the other type with [acme] challenge=, and serve its port (http_port for \
         http-01, https_port for tls-alpn-01)"
    )]
    NoChallenge { name: String, allowed: &'static str },
    #[error(
        "{name}: cannot publish the HTTP-01 token in {}: {detail}; let the server's user write there",
        dir.display()
    )]
    Token {
        name: String,
        dir: PathBuf,
        detail: String,
    },
    #[error("{name}: the issued certificate cannot be stored: {source}")]
    Save { name: String, source: CertError },
    #[error("{name}: the issued certificate cannot be bound: {source}")]
    Bind { name: String, source: StoreError },
    #[error(
        "{name}: the order lock {}: {detail}; let the server's user write in the certificate folder",
        path.display()
    )]
    Lock {
        name: String,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "{name}: another server sharing the certificate folder has held {} for {} min; \
         if no server is ordering, the lock is stale: stop the servers sharing it and try again",
        path.display(), LOCK_WAIT.as_secs() / 60
    )]
    LockTimeout { name: String, path: PathBuf },
}

impl AcmeError {
    /// A failed ACME request while ordering for `name`.
    fn order(name: &str, step: &'static str, e: instant_acme::Error) -> AcmeError {
        match e {
            instant_acme::Error::Api(p) => AcmeError::refused(name, step, &p),
            other => AcmeError::Order {
                name: name.to_owned(),
                step,
                detail: error_chain(&other),
            },
        }
    }

    fn refused(name: &str, step: &'static str, p: &instant_acme::Problem) -> AcmeError {
        AcmeError::Refused {
            name: name.to_owned(),
            step,
            problem: format!("{}; {}", problem_text(p), advice(name, p)),
            retry_after: None,
        }
    }

    /// The server's `Retry-After` on a refusal, if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AcmeError::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// An error and its sources, `: `-separated (hyper's "client error
/// (Connect)" says nothing without them).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// An ACME problem document as one line: its type, detail and subproblems.
pub(crate) fn problem_text(p: &instant_acme::Problem) -> String {
    let mut text = format!(
        "{} ({})",
        p.detail.as_deref().unwrap_or("no detail given"),
        p.r#type.as_deref().unwrap_or("no problem type")
    );
    for sub in &p.subproblems {
        text.push_str(&format!("; {sub}"));
    }
    text
}

/// What to do about an ACME problem, by its type (RFC 8555 §6.7).
fn advice(name: &str, p: &instant_acme::Problem) -> String {
    let kind = p
        .r#type
        .as_deref()
        .and_then(|t| t.rsplit(':').next())
        .unwrap_or("");
    match kind {
        "rateLimited" => format!(
            "the ACME server's rate limit for {name} or this account was reached (see the ACME \
             server's rate-limit documentation; test against its staging directory, not \
             production); nothing to do but wait: portshare retries with back-off, no sooner \
             than the server's Retry-After"
        ),
        "rejectedIdentifier" | "malformed" | "caa" => format!(
            "the ACME server will not issue for {name}; check that it is a public DNS name you own \
             (and its CAA records), or leave it out with [acme] names="
        ),
        "connection" | "dns" | "unauthorized" | "incorrectResponse" | "tls" => format!(
            "check that {name} resolves to this server and that port 80 reaches its http_port"
        ),
        "externalAccountRequired" => {
            "this ACME server needs external account binding, which portshare does not support yet"
                .into()
        }
        _ => "portshare retries with back-off".into(),
    }
}

/// A wait as people say it ("5 min", "2 h", "1 h 30 min"), to the nearest
/// minute: a Retry-After of 7200 s read a moment later is still "2 h".
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        return format!("{s} s");
    }
    let min = (s + 30) / 60;
    match (min / 60, min % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// What the manager needs from the rest of the server.
pub struct Manager {
    acme: AcmeSettings,
    cert_dir: PathBuf,
    targets: Vec<Target>,
    /// HTTP-01 answers, when `challenge=` allows them and http_port is served.
    tokens: Option<Arc<Http01Tokens>>,
    /// TLS-ALPN-01 answers, when `challenge=` allows them and HTTPS is served.
    alpn: Option<Arc<AlpnChallenges>>,
    /// Called after a binding changed: asks the TLS layer to reload now
    /// (its watcher would notice within two seconds anyway).
    on_bound: Box<dyn Fn() + Send + Sync>,
    handle: Arc<AcmeHandle>,
    /// Renewals asked for over the control socket; taken by `run`.
    requests: Option<mpsc::Receiver<RenewRequest>>,
    /// By name: the renewal time chosen in the server's ARI window.
    ari: Mutex<HashMap<String, AriChoice>>,
}

/// A renewal time chosen in the ARI window of one certificate: kept while
/// the window stays the same, so that asking again does not move it.
#[derive(Debug, Clone)]
struct AriChoice {
    thumbprint: Thumbprint,
    window: Window,
    at: DateTime<Utc>,
    /// When the server wants the window asked for again.
    ask_again: DateTime<Utc>,
}

/// Why a certificate is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    ThirdLeft,
    AriWindow,
}

/// When a certificate is to be renewed.
struct Plan {
    at: DateTime<Utc>,
    /// Look again no later than this (ARI's `Retry-After`).
    recheck: Option<Duration>,
    why: Why,
    /// The certificate's ARI identifier, for the renewal order's `replaces`.
    replaces: Option<instant_acme::CertificateIdentifier<'static>>,
}

impl Plan {
    fn third_left(cert: &Certificate) -> Plan {
        Plan {
            at: renew::renew_at(cert.info.not_before, cert.info.not_after),
            recheck: None,
            why: Why::ThirdLeft,
            replaces: None,
        }
    }
}

/// What [`Manager::keep`] found.
enum Kept {
    /// Not due: look again after the wait.
    Kept(Looked),
    /// Due (when there is a certificate, with its plan).
    Due(Option<Plan>),
}

/// One name's schedule.
struct NameState {
    target: Target,
    next: Instant,
    backoff: Backoff,
}

/// How a look at a name ended well.
struct Looked {
    /// Until the next look.
    wait: Duration,
    last: LastResult,
}

impl Manager {
    pub fn new(
        acme: AcmeSettings,
        cert_dir: PathBuf,
        targets: Vec<Target>,
        tokens: Option<Arc<Http01Tokens>>,
        alpn: Option<Arc<AlpnChallenges>>,
        on_bound: Box<dyn Fn() + Send + Sync>,
    ) -> Manager {
        // A few queued requests at most: each waits for its answer anyway.
        let (tx, rx) = mpsc::channel(8);
        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        if let Some(alpn) = &alpn {
            // Either server sharing cert_dir may get the validation.
            alpn.share_through(&cert_dir.join(challenge::CHALLENGE_DIR));
        }
        Manager {
            acme,
            cert_dir,
            targets,
            tokens,
            alpn,
            on_bound,
            handle: Arc::new(AcmeHandle::new(&names, tx)),
            requests: Some(rx),
            ari: Mutex::new(HashMap::new()),
        }
    }

    /// For `portshare acme status|renew` (the control socket).
    pub fn handle(&self) -> Arc<AcmeHandle> {
        self.handle.clone()
    }

    /// Looks after every name until `stopping` turns true.
    pub async fn run(mut self, mut stopping: watch::Receiver<bool>) {
        let Some(mut requests) = self.requests.take() else {
            return;
        };
        let now = Instant::now();
        let mut states: Vec<NameState> = self
            .targets
            .iter()
            .map(|t| NameState {
                target: t.clone(),
                next: now,
                backoff: Backoff::default(),
            })
            .collect();
        let mut account: Option<AcmeAccount> = None;
        let mut account_backoff = Backoff::default();
        loop {
            if *stopping.borrow() {
                return;
            }
            let now = Instant::now();
            for i in 0..states.len() {
                if states[i].next > now {
                    continue;
                }
                // Stop promptly: an order can take a while.
                if *stopping.borrow() {
                    return;
                }
                let outcome = self
                    .look_and_settle(&mut states, i, &mut account, &mut account_backoff, false)
                    .await;
                if outcome.is_err() && account.is_none() {
                    // The account failed: every name waits already.
                    break;
                }
            }
            let next = states
                .iter()
                .map(|s| s.next)
                .min()
                .unwrap_or_else(|| Instant::now() + renew::CHECK_INTERVAL);
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                changed = stopping.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                Some(request) = requests.recv() => {
                    let mut outcomes = Vec::new();
                    for i in 0..states.len() {
                        let name = &states[i].target.name;
                        if !request.names.is_empty() && !request.names.contains(name) {
                            continue;
                        }
                        let name = name.clone();
                        let outcome = self
                            .look_and_settle(&mut states, i, &mut account, &mut account_backoff, true)
                            .await;
                        outcomes.push((name, outcome));
                    }
                    // The asker may have gone (its connection closed): nothing to do.
                    let _ = request.reply.send(outcomes);
                }
            }
        }
    }

    /// Looks at `states[i]` (renews it at once when `force`), records the
    /// outcome in the status table and schedules the next look. Returns
    /// the outcome as `acme renew` prints it.
    async fn look_and_settle(
        &self,
        states: &mut [NameState],
        i: usize,
        account: &mut Option<AcmeAccount>,
        account_backoff: &mut Backoff,
        force: bool,
    ) -> Result<String, String> {
        let target = states[i].target.clone();
        let mut seen = None;
        let result = self.look_at(account, &target, force, &mut seen).await;
        let later = |wait: Duration| {
            chrono::Utc::now() + chrono::TimeDelta::from_std(wait).unwrap_or_default()
        };
        let outcome = match result {
            Ok(looked) => {
                match looked.last {
                    LastResult::Issued => {
                        crate::metrics::acme_renewal(crate::metrics::AcmeRenewal::Issued)
                    }
                    LastResult::PickedUp => {
                        crate::metrics::acme_renewal(crate::metrics::AcmeRenewal::PickedUp)
                    }
                    _ => {}
                }
                states[i].backoff.succeeded();
                states[i].next = Instant::now() + looked.wait;
                let text = match (&looked.last, &seen) {
                    (LastResult::HandMade, _) => Err(format!(
                        "every port of {} is bound by hand; ACME leaves it alone",
                        target.name
                    )),
                    (last, Some(c)) => Ok(format!(
                        "{}: thumbprint {}, not after {}",
                        match last {
                            LastResult::Issued => "renewed",
                            LastResult::PickedUp => "renewed by another server sharing cert_dir",
                            _ => "up to date",
                        },
                        c.thumbprint,
                        c.not_after.format("%Y-%m-%d %H:%M:%S UTC")
                    )),
                    (_, None) => Ok("done".to_owned()),
                };
                self.handle
                    .record(&target.name, seen, looked.last, later(looked.wait));
                text
            }
            Err(Failure::Account(e)) => {
                crate::metrics::acme_renewal(crate::metrics::AcmeRenewal::Failed);
                let wait = account_backoff.failed();
                tracing::error!("ACME: {e}; trying again in {}", human(wait));
                // The account is every name's: all of them wait.
                let next = Instant::now() + wait;
                for s in states.iter_mut() {
                    s.next = s.next.max(next);
                    self.handle.record(
                        &s.target.name,
                        None,
                        LastResult::Failed(e.to_string()),
                        later(wait),
                    );
                }
                Err(e.to_string())
            }
            Err(Failure::Name(e)) => {
                crate::metrics::acme_renewal(crate::metrics::AcmeRenewal::Failed);
                let backoff = states[i].backoff.failed();
                let wait = renew::retry_wait(backoff, e.retry_after());
                let asked = if wait > backoff {
                    " (as the ACME server's Retry-After asks)"
                } else {
                    ""
                };
                tracing::error!(
                    name = %target.name,
                    "ACME: {e}; the current certificate (if any) stays in service; trying again in {}{asked}",
                    human(wait)
                );
                states[i].next = Instant::now() + wait;
                self.handle.record(
                    &target.name,
                    seen,
                    LastResult::Failed(e.to_string()),
                    later(wait),
                );
                Err(e.to_string())
            }
        };
        if account.is_some() {
            account_backoff.succeeded();
        }
        outcome
    }

    /// The name's bindings and certificate as the store has them now.
    async fn current(&self, target: &Target) -> Result<Current, Failure> {
        let cert_dir = self.cert_dir.clone();
        let t = target.clone();
        blocking(&target.name, move || current_state(&cert_dir, &t)).await
    }

    /// When `cert` is to be renewed: at a time chosen in the renewal
    /// window the ACME server suggests when its directory has ARI (RFC
    /// 9773), else when a third of its lifetime is left. Asking for the
    /// window needs the account; when that fails, the third decides (the
    /// account's failure is said when an order needs it).
    async fn plan(
        &self,
        account: &mut Option<AcmeAccount>,
        name: &str,
        cert: &Certificate,
    ) -> Plan {
        let third = Plan::third_left(cert);
        let Some(leaf) = cert.chain.first() else {
            return third;
        };
        let now = Utc::now();
        let known = self
            .ari
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .filter(|c| c.thumbprint == cert.thumbprint)
            .cloned();
        let ari_plan = |c: &AriChoice, now: DateTime<Utc>| Plan {
            at: c.at,
            recheck: Some((c.ask_again - now).to_std().unwrap_or(Duration::ZERO)),
            why: Why::AriWindow,
            replaces: order::certificate_id(leaf),
        };
        if let Some(c) = known.as_ref().filter(|c| now < c.ask_again) {
            return ari_plan(c, now);
        }
        if account.is_none() {
            match order::account(&self.acme, &self.cert_dir).await {
                Ok(a) => *account = Some(a),
                Err(e) => {
                    tracing::debug!(
                        name,
                        "ACME: no renewal window (ARI) without the account: {e}"
                    );
                    return known.map_or(third, |c| ari_plan(&c, now));
                }
            }
        }
        let Some(acct) = account.as_ref() else {
            return third;
        };
        match order::renewal_window(acct, name, leaf).await {
            Ok(None) => {
                self.handle.record_ari(name, None);
                third
            }
            Ok(Some((window, hint))) => {
                let recheck = renew::ari_recheck(hint);
                let at = match &known {
                    Some(c) if c.window == window => c.at,
                    _ => {
                        let at = renew::time_in_window(window, renew::random_fraction());
                        tracing::info!(
                            name,
                            thumbprint = %cert.thumbprint,
                            "ACME: the ACME server suggests renewing between {} and {} (ARI); \
                             renewal at {}",
                            window.start.format("%Y-%m-%d %H:%M:%S UTC"),
                            window.end.format("%Y-%m-%d %H:%M:%S UTC"),
                            at.format("%Y-%m-%d %H:%M:%S UTC"),
                        );
                        at
                    }
                };
                if at >= cert.info.not_after {
                    // A window past the certificate's end would leave the
                    // name without one: not followed.
                    tracing::warn!(
                        name,
                        "ACME: the ACME server's renewal window (ARI) ends after the certificate \
                         does; renewing when a third of its lifetime is left instead"
                    );
                    self.handle.record_ari(name, None);
                    return third;
                }
                let choice = AriChoice {
                    thumbprint: cert.thumbprint,
                    window,
                    at,
                    ask_again: now + chrono::TimeDelta::from_std(recheck).unwrap_or_default(),
                };
                let plan = ari_plan(&choice, now);
                self.ari
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.to_owned(), choice);
                self.handle.record_ari(name, Some(at));
                plan
            }
            Err(e) => {
                tracing::warn!(
                    name,
                    "ACME: {e}; {}",
                    if known.is_some() {
                        "the renewal time already chosen in its window stands"
                    } else {
                        "renewing when a third of the lifetime is left until it answers"
                    }
                );
                match known {
                    // Asked again in an hour, not at once.
                    Some(c) => Plan {
                        recheck: Some(Duration::from_secs(3600)),
                        ..ari_plan(&c, now)
                    },
                    None => third,
                }
            }
        }
    }

    /// When the certificate in the store is not due: binds it where it is
    /// not bound yet and says when to look again. [`Kept::Due`] when it is
    /// due (or there is none).
    async fn keep(
        &self,
        account: &mut Option<AcmeAccount>,
        target: &Target,
        current: &Current,
        last: LastResult,
    ) -> Result<Kept, Failure> {
        let Some(cert) = &current.certificate else {
            return Ok(Kept::Due(None));
        };
        let plan = self.plan(account, &target.name, cert).await;
        let now = Utc::now();
        if now >= plan.at {
            return Ok(Kept::Due(Some(plan)));
        }
        if current.unbound_ports {
            self.bind(target, &current.managed_ports, cert, None)
                .await?;
            tracing::info!(
                name = %target.name,
                thumbprint = %cert.thumbprint,
                ports = ?current.managed_ports,
                "ACME: bound the certificate already in the certificate folder"
            );
        }
        Ok(Kept::Kept(Looked {
            wait: renew::wait_until(plan.at, plan.recheck, now),
            last,
        }))
    }

    /// Looks at one name: binds or renews as needed (renews at once when
    /// `force`). `seen` gets the certificate the name has.
    async fn look_at(
        &self,
        account: &mut Option<AcmeAccount>,
        target: &Target,
        force: bool,
        seen: &mut Option<CertSummary>,
    ) -> Result<Looked, Failure> {
        let hand_made = Looked {
            wait: renew::CHECK_INTERVAL,
            last: LastResult::HandMade,
        };
        let current = self.current(target).await?;
        *seen = current.certificate.as_ref().map(CertSummary::of);
        if current.managed_ports.is_empty() {
            // Everything is bound by hand: said once per check.
            return Ok(hand_made);
        }
        let mut due = None;
        if !force {
            match self
                .keep(account, target, &current, LastResult::UpToDate)
                .await?
            {
                Kept::Kept(done) => return Ok(done),
                Kept::Due(plan) => due = plan,
            }
        }
        // One order at a time among the servers sharing cert_dir; the
        // store is read again under the lock, since the server that held
        // it may have just issued this very certificate.
        let _lock = self.order_lock(&target.name).await.map_err(Failure::Name)?;
        let before = seen.as_ref().map(|c| c.thumbprint);
        let current = self.current(target).await?;
        *seen = current.certificate.as_ref().map(CertSummary::of);
        if current.managed_ports.is_empty() {
            return Ok(hand_made);
        }
        let theirs = seen.as_ref().map(|c| c.thumbprint) != before;
        if !force || theirs {
            let last = if theirs {
                LastResult::PickedUp
            } else {
                LastResult::UpToDate
            };
            match self.keep(account, target, &current, last).await? {
                Kept::Kept(done) => {
                    if theirs {
                        tracing::info!(
                            name = %target.name,
                            "ACME: another server sharing the certificate folder has just issued the certificate; it is used here too"
                        );
                    }
                    return Ok(done);
                }
                Kept::Due(plan) => due = plan,
            }
        }
        if let Some(cert) = &current.certificate {
            tracing::info!(
                name = %target.name,
                thumbprint = %cert.thumbprint,
                not_after = %cert.info.not_after,
                "ACME: renewing the certificate ({})",
                match (force, due.as_ref().map(|p| p.why)) {
                    (true, _) => "asked for with 'portshare acme renew'",
                    (false, Some(Why::AriWindow)) =>
                        "inside the renewal window the ACME server suggests (ARI)",
                    (false, _) => "a third of its lifetime is left",
                }
            );
        } else {
            tracing::info!(name = %target.name, directory = %self.acme.directory, "ACME: ordering a certificate");
        }
        if account.is_none() {
            *account = Some(
                order::account(&self.acme, &self.cert_dir)
                    .await
                    .map_err(Failure::Account)?,
            );
        }
        let Some(acct) = account.as_ref() else {
            return Ok(Looked {
                wait: renew::FIRST_RETRY,
                last: LastResult::Pending,
            });
        };
        let responders = order::Responders {
            http01: self.tokens.as_deref(),
            tls_alpn01: self.alpn.as_deref(),
        };
        let replaces = due.and_then(|p| p.replaces);
        let issued = order::issue(acct, &target.name, responders, replaces)
            .await
            .map_err(Failure::Name)?;
        let cert = self.save(target, issued).await?;
        let old = current.certificate.as_ref().map(|c| c.thumbprint);
        self.bind(target, &current.managed_ports, &cert, old)
            .await?;
        *seen = Some(CertSummary::of(&cert));
        tracing::info!(
            name = %target.name,
            thumbprint = %cert.thumbprint,
            not_after = %cert.info.not_after,
            ports = ?current.managed_ports,
            appid = ACME_APPID,
            "ACME: certificate issued and bound"
        );
        let plan = self.plan(account, &target.name, &cert).await;
        Ok(Looked {
            wait: renew::wait_until(plan.at, plan.recheck, Utc::now()),
            last: LastResult::Issued,
        })
    }

    /// Takes [`ORDER_LOCK_FILE`], waiting (without blocking a thread) while
    /// another server holds it. Released when the file is dropped.
    async fn order_lock(&self, name: &str) -> Result<std::fs::File, AcmeError> {
        let path = self.cert_dir.join(ORDER_LOCK_FILE);
        let err = |detail: String| AcmeError::Lock {
            name: name.to_owned(),
            path: path.clone(),
            detail,
        };
        std::fs::create_dir_all(&self.cert_dir).map_err(|e| err(e.to_string()))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| err(format!("cannot open it: {e}")))?;
        let started = Instant::now();
        let mut said = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) => {
                    if !said {
                        said = true;
                        tracing::info!(
                            name,
                            "ACME: another server sharing the certificate folder is ordering; waiting for it"
                        );
                    }
                    if started.elapsed() > LOCK_WAIT {
                        return Err(AcmeError::LockTimeout {
                            name: name.to_owned(),
                            path,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(err(format!("cannot lock it: {e}")))
                }
            }
        }
    }

    /// Stores an issued chain and key as an ordinary certificate entry.
    async fn save(&self, target: &Target, issued: order::Issued) -> Result<Certificate, Failure> {
        let cert_dir = self.cert_dir.clone();
        let name = target.name.clone();
        blocking(&target.name, move || {
            let label = cert_dir.join(format!("{name} (issued by ACME)"));
            let pem = format!("{}\n{}", issued.chain_pem.trim_end(), issued.key_pem);
            let cert =
                crate::certs::load_bytes(&label, pem.as_bytes(), None, "").map_err(|source| {
                    AcmeError::Save {
                        name: name.clone(),
                        source,
                    }
                })?;
            CertStore::save(&cert_dir, &cert).map_err(|source| AcmeError::Save { name, source })
        })
        .await
    }

    /// Binds `cert` as `hostnameport=NAME:PORT` on `ports` (skipping any a
    /// hand-made binding took meanwhile), asks for a TLS reload, and deletes
    /// the `old` certificate when nothing else uses it.
    async fn bind(
        &self,
        target: &Target,
        ports: &[u16],
        cert: &Certificate,
        old: Option<Thumbprint>,
    ) -> Result<(), Failure> {
        let cert_dir = self.cert_dir.clone();
        let name = target.name.clone();
        let ports = ports.to_vec();
        let thumb = cert.thumbprint;
        blocking(&target.name, move || {
            bind_in_store(&cert_dir, &name, &ports, thumb, old)
        })
        .await?;
        (self.on_bound)();
        Ok(())
    }
}

/// A failure of the account (every name waits) or of one name.
enum Failure {
    Account(AcmeError),
    Name(AcmeError),
}

/// Runs store and certificate-folder work (blocking file I/O) off the
/// runtime; a task that did not finish is `name`'s failure.
async fn blocking<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> Result<T, AcmeError> + Send + 'static,
) -> Result<T, Failure> {
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done.map_err(Failure::Name),
        Err(e) => Err(Failure::Name(AcmeError::Order {
            name: name.to_owned(),
            step: "reading the certificate folder",
            detail: e.to_string(),
        })),
    }
}

/// A name's bindings and certificate as the store has them now.
struct Current {
    /// Ports whose `hostnameport` binding is ACME's or absent.
    managed_ports: Vec<u16>,
    /// Whether some managed port has no ACME binding yet.
    unbound_ports: bool,
    /// The certificate of ACME's binding, when it still loads with its key.
    certificate: Option<Certificate>,
}

fn current_state(cert_dir: &Path, target: &Target) -> Result<Current, AcmeError> {
    let data = Store::in_cert_dir(cert_dir)
        .load()
        .map_err(|source| AcmeError::Bind {
            name: target.name.clone(),
            source,
        })?;
    let mut managed_ports = Vec::new();
    let mut unbound_ports = false;
    let mut certhash = None;
    for &port in &target.ports {
        let key = BindingKey::HostnamePort(target.name.clone(), port);
        match data.binding(&key) {
            // The development CA's or the first run's binding gives way
            // (the development CA hands its names over, but a look of it
            // may race a reload that starts ACME).
            Some(b) if b.is_automatic() && !b.appid.eq_ignore_ascii_case(ACME_APPID) => {
                managed_ports.push(port);
                unbound_ports = true;
            }
            Some(b) if !b.appid.eq_ignore_ascii_case(ACME_APPID) => {
                tracing::info!(
                    name = %target.name,
                    "ACME: hostnameport={key} is bound by hand (appid {}); ACME leaves it alone \
                     (delete that binding to let ACME manage it)",
                    b.appid
                );
            }
            Some(b) => {
                managed_ports.push(port);
                certhash.get_or_insert(b.certhash.clone());
            }
            None => {
                managed_ports.push(port);
                unbound_ports = true;
            }
        }
    }
    // None on these ports yet: a certificate ACME bound for the name on
    // another port (another server sharing cert_dir) serves here too.
    let certhash = certhash.or_else(|| {
        data.sslcert
            .iter()
            .find(|b| {
                matches!(&b.key, BindingKey::HostnamePort(n, _) if *n == target.name)
                    && b.appid.eq_ignore_ascii_case(ACME_APPID)
            })
            .map(|b| b.certhash.clone())
    });
    let certificate = certhash
        .and_then(|h| h.parse::<Thumbprint>().ok())
        .and_then(|t| CertStore::find(cert_dir, &t).ok())
        .filter(|c| {
            c.key.is_some()
                && c.info
                    .dns_names
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&target.name))
        });
    if certificate.is_none() {
        unbound_ports = true;
    }
    Ok(Current {
        managed_ports,
        unbound_ports,
        certificate,
    })
}

/// The store update: ACME's bindings for `name` on `ports` point at
/// `thumb`; a hand-made binding (another appid) is never touched.
fn bind_in_store(
    cert_dir: &Path,
    name: &str,
    ports: &[u16],
    thumb: Thumbprint,
    old: Option<Thumbprint>,
) -> Result<(), AcmeError> {
    let store = Store::in_cert_dir(cert_dir);
    let certhash = thumb.to_string();
    let still_used = store
        .update(|data| {
            for &port in ports {
                let key = BindingKey::HostnamePort(name.to_owned(), port);
                match data.sslcert.iter_mut().find(|b| b.key == key) {
                    Some(b) if b.is_automatic() => {
                        b.certhash = certhash.clone();
                        b.appid = ACME_APPID.to_owned();
                    }
                    Some(_) => {}
                    None => data.sslcert.push(SslBinding {
                        key,
                        certhash: certhash.clone(),
                        appid: ACME_APPID.to_owned(),
                        certstorename: "MY".to_owned(),
                        flags: BindingFlags::default(),
                    }),
                }
            }
            // ACME's bindings of the name on other ports (another server
            // sharing cert_dir) follow the renewal too.
            if let Some(o) = old.map(|o| o.to_string()) {
                for b in data.sslcert.iter_mut().filter(|b| {
                    matches!(&b.key, BindingKey::HostnamePort(n, _) if n == name)
                        && b.appid.eq_ignore_ascii_case(ACME_APPID)
                        && b.certhash.eq_ignore_ascii_case(&o)
                }) {
                    b.certhash = certhash.clone();
                }
            }
            let old_used = old.is_some_and(|o| {
                let o = o.to_string();
                data.sslcert.iter().any(|b| b.certhash == o)
            });
            Ok::<_, std::convert::Infallible>(old_used)
        })
        .map_err(|e| AcmeError::Bind {
            name: name.to_owned(),
            source: match e {
                UpdateError::Store(s) => s,
                UpdateError::Rejected(never) => match never {},
            },
        })?;
    if let Some(old) = old.filter(|o| *o != thumb && !still_used) {
        match CertStore::delete(cert_dir, &old) {
            Ok(_) => {
                tracing::info!(name, thumbprint = %old, "ACME: the replaced certificate was deleted")
            }
            Err(e) => tracing::warn!(
                name,
                "ACME: the replaced certificate stays in the folder: {e}"
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_said_to_the_nearest_minute() {
        assert_eq!(human(Duration::from_secs(45)), "45 s");
        assert_eq!(human(Duration::from_secs(300)), "5 min");
        // A Retry-After of 2 h, read a second later.
        assert_eq!(human(Duration::from_secs(7199)), "2 h");
        assert_eq!(human(Duration::from_secs(5400)), "1 h 30 min");
        assert_eq!(human(renew::MAX_RETRY), "24 h");
    }
}
