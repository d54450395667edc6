//! `[acme]` in force: the manager that orders certificates, and the
//! HTTP-01 challenge prefix it answers on.
//!
//! Apart from `app` because a configuration reload restarts it: when
//! `[acme]`, the names it covers or the plain-HTTP port change, the old
//! manager is stopped (an order in flight holds a file lock, which its
//! end releases) and a new one starts from the new plan. The control
//! socket's `acme status|renew` always ask the manager in force, and the
//! development-CA manager always leaves the names it looks after alone.
//! ACME never stops the server: a plan that cannot run is a log line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::acme::challenge::{Http01Tokens, CHALLENGE_PATH};
use crate::acme::names::Target;
use crate::acme::status::AcmeHandle;
use crate::config::{AcmeSettings, Settings};
use crate::registry::{Handler, Owner, RegistrationId, Registry};
use crate::tls::Tls;
use crate::urlprefix::UrlPrefix;

/// How long a stopping manager may take to finish what it does before it
/// is cut short.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What decides a plan: a reload with the same key keeps the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlanKey {
    acme: Option<AcmeSettings>,
    targets: Vec<Target>,
    http_port: u16,
}

impl PlanKey {
    fn of(settings: &Settings) -> PlanKey {
        let targets = match &settings.acme {
            Some(acme) => crate::acme::names::select(settings, acme).0,
            None => Vec::new(),
        };
        PlanKey {
            acme: settings.acme.clone(),
            targets,
            http_port: settings.http_port,
        }
    }
}

/// What ACME will look after, once its challenge prefix is registered.
pub(super) struct AcmePlan {
    acme: AcmeSettings,
    targets: Vec<Target>,
    /// HTTP-01 answers, when allowed and plain HTTP is served.
    tokens: Option<Arc<Http01Tokens>>,
    /// The challenge prefix's registration.
    challenge: Option<RegistrationId>,
    /// Whether TLS-ALPN-01 is allowed (the names are HTTPS names, so the
    /// TLS acceptor runs).
    tls_alpn01: bool,
}

/// The manager running now.
struct Current {
    key: PlanKey,
    challenge: Option<RegistrationId>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Starts, and on reload restarts, the ACME manager.
pub struct AcmeRunner {
    registry: Arc<Registry>,
    cert_dir: PathBuf,
    tls: Option<Arc<Tls>>,
    /// The names ACME looks after now (the development CA leaves them).
    names: Arc<ArcSwap<Vec<String>>>,
    handle: ArcSwapOption<AcmeHandle>,
    current: tokio::sync::Mutex<Option<Current>>,
}

/// The plan made at start-up, for [`AcmeRunner::start`].
pub(super) struct Planned(Option<(PlanKey, AcmePlan)>);

impl AcmeRunner {
    /// Plans ACME for `settings` and registers the HTTP-01 challenge
    /// prefix; the manager starts with [`AcmeRunner::start`], once the
    /// listeners are up (the validation may come at once). `tls`: the
    /// acceptor the certificates are bound into (reloaded after each) and
    /// that answers TLS-ALPN-01.
    pub(super) fn plan(
        registry: Arc<Registry>,
        settings: &Settings,
        tls: Option<Arc<Tls>>,
    ) -> (AcmeRunner, Planned) {
        let key = PlanKey::of(settings);
        let plan = plan_acme(&registry, settings, &key);
        let names = plan.as_ref().map_or_else(Vec::new, names_of);
        let runner = AcmeRunner {
            registry,
            cert_dir: settings.cert_dir.clone(),
            tls,
            names: Arc::new(ArcSwap::from_pointee(names)),
            handle: ArcSwapOption::empty(),
            current: tokio::sync::Mutex::new(None),
        };
        (runner, Planned(plan.map(|p| (key, p))))
    }

    /// The names ACME looks after, as they change with reloads.
    pub fn names(&self) -> Arc<ArcSwap<Vec<String>>> {
        self.names.clone()
    }

    /// The manager in force, for `portshare acme status|renew`.
    pub fn handle(&self) -> Option<Arc<AcmeHandle>> {
        self.handle.load_full()
    }

    /// Starts the manager planned at start-up, if any.
    pub(super) async fn start(&self, planned: Planned, stopping: &watch::Receiver<bool>) {
        let mut current = self.current.lock().await;
        *current = planned.0.map(|(key, plan)| self.spawn(key, plan, stopping));
    }

    /// Follows a reloaded configuration: nothing when the plan is the
    /// same, else the old manager stops and the new plan starts. Returns
    /// what changed, for the reload's outcome.
    pub(super) async fn follow(
        &self,
        settings: &Settings,
        stopping: &watch::Receiver<bool>,
    ) -> Option<String> {
        let key = PlanKey::of(settings);
        let mut current = self.current.lock().await;
        let running = current.as_ref().map(|c| &c.key);
        if running == Some(&key) || (running.is_none() && key.acme.is_none()) {
            return None;
        }
        if let Some(old) = current.take() {
            let _ = old.stop.send(true);
            let mut task = old.task;
            if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
            if let Some(id) = old.challenge {
                self.registry.unregister(id);
            }
        }
        self.handle.store(None);
        let Some(plan) = plan_acme(&self.registry, settings, &key) else {
            self.names.store(Arc::new(Vec::new()));
            return Some("ACME stopped".into());
        };
        let names = names_of(&plan);
        // The development CA leaves these names from now on; its bindings
        // of them are handed over (and one that a look of it made
        // meanwhile gives way to ACME's).
        self.names.store(Arc::new(names.clone()));
        let cert_dir = self.cert_dir.clone();
        let handed = names.clone();
        let _ = tokio::task::spawn_blocking(move || {
            crate::tls::devcerts::hand_over(&cert_dir, &handed)
        })
        .await;
        *current = Some(self.spawn(key, plan, stopping));
        Some(format!("ACME restarted for {}", names.join(", ")))
    }

    fn spawn(&self, key: PlanKey, plan: AcmePlan, stopping: &watch::Receiver<bool>) -> Current {
        let tls = self.tls.clone();
        let manager = crate::acme::Manager::new(
            plan.acme,
            self.cert_dir.clone(),
            plan.targets,
            plan.tokens,
            tls.as_ref()
                .filter(|_| plan.tls_alpn01)
                .map(|t| t.alpn_challenges()),
            Box::new(move || {
                if let Some(tls) = &tls {
                    tls.reload();
                }
            }),
        );
        self.handle.store(Some(manager.handle()));
        // Stops with the server, or when a reload replaces it.
        let (stop, own) = watch::channel(false);
        let mut server = stopping.clone();
        let forward = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = server.wait_for(|s| *s) => { let _ = forward.send(true); }
                _ = forward.closed() => {}
            }
        });
        Current {
            key,
            challenge: plan.challenge,
            stop,
            task: tokio::spawn(manager.run(own)),
        }
    }
}

fn names_of(plan: &AcmePlan) -> Vec<String> {
    plan.targets.iter().map(|t| t.name.clone()).collect()
}

/// `[acme]`: chooses the names (listing those skipped, with why) and, for
/// HTTP-01, registers `http://+:{http_port}/.well-known/acme-challenge/`.
/// `None`, with one log line saying why, when ACME cannot run; the server
/// runs all the same.
fn plan_acme(registry: &Registry, settings: &Settings, key: &PlanKey) -> Option<AcmePlan> {
    let acme = key.acme.clone()?;
    let (_, skipped) = crate::acme::names::select(settings, &acme);
    for s in &skipped {
        tracing::info!(name = %s.name, "ACME: skipped: {}", s.why);
    }
    let targets = key.targets.clone();
    let tls_alpn01 = acme.challenge.tls_alpn01;
    if acme.challenge.http01 && settings.http_port == 0 {
        if tls_alpn01 {
            tracing::info!(
                "ACME: [param] http_port is 0, so HTTP-01 cannot be answered; only TLS-ALPN-01 is (port 443 from the Internet must reach https_port)"
            );
        } else {
            tracing::error!(
                "ACME: the HTTP-01 challenge needs plain HTTP, but [param] http_port is 0; set http_port (port 80 from the Internet must reach it) or allow tls-alpn-01 in [acme] challenge=; no certificates are ordered"
            );
            return None;
        }
    }
    if targets.is_empty() {
        tracing::warn!(
            "ACME: no name to order a certificate for; give the https prefixes public host names (host_name, [app:NAME] prefix) or list them in [acme] names="
        );
        return None;
    }
    let mut tokens = None;
    let mut challenge = None;
    let mut answered = Vec::new();
    if acme.challenge.http01 && settings.http_port != 0 {
        let text = format!("http://+:{}{CHALLENGE_PATH}", settings.http_port);
        let registered = UrlPrefix::parse(&text)
            .map_err(|e| e.to_string())
            .and_then(|prefix| {
                let t = Arc::new(Http01Tokens::new(&settings.cert_dir));
                registry
                    .register(
                        Owner::Config {
                            name: "acme".into(),
                        },
                        "acme".into(),
                        vec![prefix],
                        Handler::AcmeChallenge(t.clone()),
                    )
                    .map(|id| (t, id))
                    .map_err(|e| e.to_string())
            });
        match registered {
            Ok((t, id)) => {
                tokens = Some(t);
                challenge = Some(id);
                answered.push(format!("HTTP-01 at {text}"));
            }
            Err(e) if tls_alpn01 => tracing::error!(
                "ACME: cannot register {text} for the HTTP-01 challenge: {e}; only TLS-ALPN-01 is answered"
            ),
            Err(e) => {
                tracing::error!(
                    "ACME: cannot register {text} for the HTTP-01 challenge: {e}; no certificates are ordered"
                );
                return None;
            }
        }
    }
    if tls_alpn01 {
        answered.push("TLS-ALPN-01 on the HTTPS ports".into());
    }
    let names: Vec<String> = targets
        .iter()
        .map(|t| {
            let ports: Vec<String> = t.ports.iter().map(u16::to_string).collect();
            format!("{} (port {})", t.name, ports.join(", "))
        })
        .collect();
    tracing::info!(
        directory = %acme.directory,
        "ACME: keeping certificates for {}; answering {}",
        names.join(", "),
        answered.join(" and ")
    );
    Some(AcmePlan {
        acme,
        targets,
        tokens,
        challenge,
        tls_alpn01,
    })
}
