//! Configuration reload without a restart: `SIGHUP`, `portshare reload`
//! (through the control channel) and, with `watch_config=yes`, a change of
//! GLOBAL.INI.
//!
//! The file is read and checked as at start-up — every section, every
//! site's folder, every backend — and only a configuration that passes as a
//! whole is put in force; otherwise the error is logged (and returned to
//! `portshare reload`) and the running one stays. In force means: the
//! registrations GLOBAL.INI made are replaced by the new ones in one step
//! (sites, `[app:]`, `host_name`, ports, CGI, `metrics=`/`health=`), so
//! listeners open and close as the ports follow; run-time registrations
//! from the control socket are not touched; the `[http]` limits apply to
//! new connections (those open keep theirs, so nothing in flight or idle
//! is disturbed); `listen=` and the maintenance URL and time follow.
//! The `[auth:]` sections are checked with the rest and swapped in with
//! the registrations (a section left as it was keeps its cache); when
//! `[acme]` or the names it covers changed, the ACME manager is restarted
//! once the new configuration is in force. What a running server cannot
//! change (`cert_dir`, `log_dir`, `control_socket`, `http3`,
//! `session_tickets`, `shutdown_grace`) is named in the outcome as needing a restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{apply_netsh_timeouts, configured_registrations, AcmeRunner};
use crate::config::Settings;
use crate::dispatch::Shared;
use crate::maintenance::Maintenance;
use crate::registry::{RegistrationId, Registry};
use crate::server::ListenAddresses;

/// Why a reload was refused; the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the server runs on built-in defaults (no GLOBAL.INI was found at start), so there is no file to reload")]
    NoFile,
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Start(#[from] super::StartError),
    #[error("{0}")]
    Register(#[from] crate::registry::RegisterError),
    #[error("{0}")]
    Auth(#[from] crate::auth::AuthError),
    #[error("reading the configuration failed: {0}")]
    Join(String),
}

/// The parts of a running server a reload changes.
pub(super) struct Targets {
    pub registry: Arc<Registry>,
    pub shared: Arc<Shared>,
    pub listen: Arc<ListenAddresses>,
    pub maintenance: Arc<Maintenance>,
    pub acme: Arc<AcmeRunner>,
}

/// What a reload changes, and what it has done so far.
pub struct Reloader {
    file: Option<PathBuf>,
    targets: Targets,
    stopping: watch::Receiver<bool>,
    /// The settings in force and the registrations they made. The lock
    /// also keeps two reloads from interleaving.
    current: Mutex<(Arc<Settings>, Vec<RegistrationId>)>,
}

impl Reloader {
    pub(super) fn new(
        settings: Arc<Settings>,
        configured: Vec<RegistrationId>,
        targets: Targets,
        stopping: watch::Receiver<bool>,
    ) -> Reloader {
        let file = match &settings.origin {
            crate::config::Origin::File(p) => Some(p.clone()),
            crate::config::Origin::Defaults => None,
        };
        Reloader {
            file,
            targets,
            stopping,
            current: Mutex::new((settings, configured)),
        }
    }

    /// The configuration file a reload reads.
    pub fn file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }

    /// Reads GLOBAL.INI again and puts it in force, or refuses it whole.
    /// `why` is logged (`SIGHUP`, `portshare reload`, `file changed`).
    /// Returns what changed, for `portshare reload` to print.
    pub async fn reload(&self, why: &str) -> Result<String, ReloadError> {
        let file = self.file.clone().ok_or(ReloadError::NoFile)?;
        // File I/O and folder checks: off the runtime's threads.
        let loaded = tokio::task::spawn_blocking(move || {
            let mut settings = Settings::load(Some(&file))?;
            apply_netsh_timeouts(&mut settings);
            Ok::<_, crate::config::ConfigError>(settings)
        })
        .await
        .map_err(|e| ReloadError::Join(e.to_string()))?;
        let mut result = loaded
            .map_err(ReloadError::from)
            .and_then(|s| self.apply(s));
        if let Ok((outcome, settings)) = &mut result {
            if let Some(acme) = self.targets.acme.follow(settings, &self.stopping).await {
                outcome.push_str("; ");
                outcome.push_str(&acme);
            }
        }
        let result = result.map(|(outcome, _)| outcome);
        match &result {
            Ok(outcome) => tracing::info!(reason = why, "configuration reloaded: {outcome}"),
            Err(e) => tracing::error!(
                reason = why,
                error = %e,
                "configuration reload refused; the running configuration stays"
            ),
        }
        result
    }

    /// Puts `new` in force, or nothing of it; returns the outcome and the
    /// settings now in force.
    fn apply(&self, new: Settings) -> Result<(String, Arc<Settings>), ReloadError> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let registrations = configured_registrations(&self.targets.registry, &new)?;
        let auth = self.targets.shared.auth.prepare(&new.auth)?;
        let (sites, apps) = (new.all_sites().len(), new.apps.len());
        let ids = self.targets.registry.replace(&current.1, registrations)?;
        self.targets.shared.auth.install(auth);
        let new = Arc::new(new);
        self.targets.shared.set_limits(new.limits.clone());
        self.targets.listen.set_configured(new.listen.clone());
        self.targets.maintenance.reconfigure(new.clone());
        let restart = needs_restart(&current.0, &new);
        *current = (new.clone(), ids);
        let mut outcome = format!("{sites} site(s), {apps} application(s)");
        if !restart.is_empty() {
            outcome.push_str(&format!(
                "; these take effect after a restart: {}",
                restart.join(", ")
            ));
        }
        Ok((outcome, new))
    }

    /// Reloads whenever the file changes (`watch_config=yes`): its size,
    /// modification time or identity (a Kubernetes ConfigMap swaps a
    /// symlink), looked at once a second. A file caught half-written fails
    /// to parse and is tried again at the next change.
    pub async fn watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(file) = self.file.clone() else {
            return;
        };
        // As the file was when it was read, so that a change made while
        // the server started is not missed.
        let mut last = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .file_stamp;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let now = crate::config::stamp(&file);
            if now != last {
                last = now;
                let _ = self.reload("the configuration file changed").await;
            }
        }
    }

    /// Reloads at every `SIGHUP` caught by `hangups` (Unix).
    pub async fn on_hangup(self: Arc<Self>, mut hangups: Hangups, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                got = hangups.next() => {
                    if !got { return; }
                    let _ = self.reload("SIGHUP").await;
                }
            }
        }
    }
}

/// `SIGHUP`, caught from the moment this is made. Made before the
/// listeners open: a `SIGHUP` that came before the handler was installed
/// would end the process (the signal's default action), and a service
/// manager may send one as soon as the port answers.
pub struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    /// Installs the handler; must run inside the runtime.
    pub fn catch() -> Hangups {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signal = signal(SignalKind::hangup())
                .inspect_err(|e| tracing::warn!(error = %e, "cannot catch SIGHUP; reload with `portshare reload`"))
                .ok();
            Hangups { signal }
        }
        #[cfg(not(unix))]
        Hangups {}
    }

    /// The next `SIGHUP`; `false` when none can come.
    async fn next(&mut self) -> bool {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal {
            return signal.recv().await.is_some();
        }
        std::future::pending::<bool>().await
    }
}

/// The keys whose change a running server cannot apply.
fn needs_restart(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.cert_dir != new.cert_dir {
        keys.push("[param] cert_dir");
    }
    if old.log_dir != new.log_dir {
        keys.push("[param] log_dir");
    }
    if old.control_socket != new.control_socket {
        keys.push("[param] control_socket");
    }
    if old.http3 != new.http3 {
        keys.push("[param] http3");
    }
    if old.session_tickets != new.session_tickets {
        keys.push("[param] session_tickets");
    }
    if old.shutdown_grace != new.shutdown_grace {
        keys.push("[param] shutdown_grace");
    }
    keys
}
