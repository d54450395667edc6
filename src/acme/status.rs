//! What `portshare acme status` shows and how `portshare acme renew` reaches
//! the manager.
//!
//! Why a handle: the manager is one task that orders one name at a time, so
//! a renewal asked for over the control socket is queued to that task (it
//! cannot race a scheduled renewal of the same name) and answered when done.
//! The status is a table the manager updates after each look at a name; the
//! control socket only reads it. Without a running server, the store alone
//! still tells which names ACME bound and when they are due ([`from_store`]).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::certs::{CertStore, Thumbprint};
use crate::store::{BindingKey, Store};

use super::renew;
use super::ACME_APPID;

/// The certificate a name has now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    pub thumbprint: Thumbprint,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl CertSummary {
    pub fn of(cert: &crate::certs::Certificate) -> CertSummary {
        CertSummary {
            thumbprint: cert.thumbprint,
            not_before: cert.info.not_before,
            not_after: cert.info.not_after,
        }
    }
}

/// How the last look at a name ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastResult {
    /// Not looked at yet.
    Pending,
    /// A new certificate was issued and bound.
    Issued,
    /// Another server sharing `cert_dir` issued it; this one took it over.
    PickedUp,
    /// The certificate is not due.
    UpToDate,
    /// Every port of the name is bound by hand.
    HandMade,
    /// The order failed; the message says why and what to do.
    Failed(String),
}

/// One name as `acme status` shows it.
#[derive(Debug, Clone)]
pub struct NameStatus {
    pub name: String,
    pub cert: Option<CertSummary>,
    /// When the manager looks at the name next (a retry after a failure).
    pub next_attempt: Option<DateTime<Utc>>,
    pub last: LastResult,
    pub last_at: Option<DateTime<Utc>>,
    /// The renewal time chosen in the ACME server's suggested window (ARI),
    /// when it has one; otherwise a third of the lifetime left decides.
    pub ari_renewal: Option<DateTime<Utc>>,
}

/// A renewal asked for over the control socket: the names (all when
/// empty), and where the per-name outcomes go.
pub(super) struct RenewRequest {
    pub names: Vec<String>,
    pub reply: oneshot::Sender<Vec<(String, Result<String, String>)>>,
}

/// The running manager, as the control socket sees it.
pub struct AcmeHandle {
    status: Mutex<Vec<NameStatus>>,
    requests: mpsc::Sender<RenewRequest>,
}

impl AcmeHandle {
    pub(super) fn new(names: &[String], requests: mpsc::Sender<RenewRequest>) -> AcmeHandle {
        AcmeHandle {
            status: Mutex::new(
                names
                    .iter()
                    .map(|n| NameStatus {
                        name: n.clone(),
                        cert: None,
                        next_attempt: None,
                        last: LastResult::Pending,
                        last_at: None,
                        ari_renewal: None,
                    })
                    .collect(),
            ),
            requests,
        }
    }

    /// Records the outcome of a look at `name`.
    pub(super) fn record(
        &self,
        name: &str,
        cert: Option<CertSummary>,
        last: LastResult,
        next_attempt: DateTime<Utc>,
    ) {
        // Each update replaces one row whole; a poisoned table is still whole.
        let mut table = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(row) = table.iter_mut().find(|r| r.name == name) {
            if cert.is_some() {
                row.cert = cert;
            }
            row.last = last;
            row.last_at = Some(Utc::now());
            row.next_attempt = Some(next_attempt);
        }
    }

    /// Records the renewal time chosen in the ARI window of `name`'s
    /// certificate (`None`: the directory has no ARI).
    pub(super) fn record_ari(&self, name: &str, at: Option<DateTime<Utc>>) {
        let mut table = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(row) = table.iter_mut().find(|r| r.name == name) {
            row.ari_renewal = at;
        }
    }

    /// A copy of the table.
    pub fn snapshot(&self) -> Vec<NameStatus> {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `acme status` of the running server.
    pub fn report(&self) -> String {
        report(&self.snapshot())
    }

    /// Renews `names` (every name when empty) now. `Ok` with the report
    /// when every renewal succeeded, else `Err` with it.
    pub async fn renew(&self, names: Vec<String>) -> Result<String, String> {
        let known: Vec<String> = self.snapshot().into_iter().map(|r| r.name).collect();
        let unknown: Vec<&String> = names
            .iter()
            .filter(|n| !known.iter().any(|k| k.eq_ignore_ascii_case(n)))
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "ACME does not look after {} (it does: {}); see 'portshare acme status'",
                unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if known.is_empty() {
                    "no name".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        }
        let (reply, answer) = oneshot::channel();
        let names = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        self.requests
            .send(RenewRequest { names, reply })
            .await
            .map_err(|_| "the ACME manager has stopped (the server is shutting down)".to_owned())?;
        let outcomes = answer.await.map_err(|_| {
            "the ACME manager stopped before the renewal ended (the server is shutting down)"
                .to_owned()
        })?;
        let mut text = String::new();
        let mut failed = false;
        for (name, outcome) in outcomes {
            match outcome {
                Ok(done) => {
                    let _ = writeln!(text, "{name}: {done}");
                }
                Err(e) => {
                    failed = true;
                    let _ = writeln!(text, "{name}: renewal failed: {e}");
                }
            }
        }
        if failed {
            Err(text.trim_end().to_owned())
        } else {
            Ok(text)
        }
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The status table as text, one block per name.
pub fn report(rows: &[NameStatus]) -> String {
    if rows.is_empty() {
        return "ACME looks after no name.\n".into();
    }
    let mut out = String::new();
    for row in rows {
        let _ = writeln!(out, "{}", row.name);
        match &row.cert {
            Some(c) => {
                let _ = writeln!(out, "    Thumbprint   : {}", c.thumbprint);
                let _ = writeln!(out, "    Not after    : {}", time(c.not_after));
                let due = match row.ari_renewal {
                    Some(at) => format!("{} (in the ACME server's renewal window, ARI)", time(at)),
                    None => time(renew::renew_at(c.not_before, c.not_after)),
                };
                let _ = writeln!(out, "    Renewal due  : {due}");
            }
            None => {
                let _ = writeln!(out, "    Thumbprint   : (none yet)");
            }
        }
        if let Some(next) = row.next_attempt {
            let _ = writeln!(out, "    Next check   : {}", time(next));
        }
        let result = match &row.last {
            LastResult::Pending => "not looked at yet",
            LastResult::Issued => "certificate issued and bound",
            LastResult::PickedUp => "certificate issued by another server sharing cert_dir",
            LastResult::UpToDate => "up to date",
            LastResult::HandMade => "bound by hand; left alone",
            LastResult::Failed(_) => "failed",
        };
        match row.last_at {
            Some(at) => {
                let _ = writeln!(out, "    Last result  : {result} ({})", time(at));
            }
            None => {
                let _ = writeln!(out, "    Last result  : {result}");
            }
        }
        if let LastResult::Failed(e) = &row.last {
            let _ = writeln!(out, "    Last error   : {e}");
        }
    }
    out
}

/// What the store knows without a server: each name bound with ACME's
/// appid, its certificate and when it is due.
pub fn from_store(cert_dir: &Path) -> Result<String, String> {
    let data = Store::in_cert_dir(cert_dir)
        .load()
        .map_err(|e| e.to_string())?;
    let (certs, _) = CertStore::scan(cert_dir);
    let mut rows: Vec<NameStatus> = Vec::new();
    for b in data
        .sslcert
        .iter()
        .filter(|b| b.appid.eq_ignore_ascii_case(ACME_APPID))
    {
        let BindingKey::HostnamePort(name, _) = &b.key else {
            continue;
        };
        if rows.iter().any(|r| &r.name == name) {
            continue;
        }
        let cert = b
            .certhash
            .parse::<Thumbprint>()
            .ok()
            .and_then(|t| certs.iter().find(|c| c.thumbprint == t))
            .map(CertSummary::of);
        rows.push(NameStatus {
            name: name.clone(),
            cert,
            next_attempt: None,
            last: LastResult::Pending,
            last_at: None,
            ari_renewal: None,
        });
    }
    if rows.is_empty() {
        return Ok(format!(
            "The store in {} has no certificate bound by ACME.\n",
            cert_dir.display()
        ));
    }
    let mut out = report(&rows);
    // Without the server there is no last result: say so once, not per name.
    out = out.replace("    Last result  : not looked at yet\n", "");
    Ok(out)
}
