//! The server put together: settings → site, logs, registry (the
//! configured registrations), TLS, ACME, maintenance → a listening
//! [`Server`], until shutdown. The one place that knows every part; `server` itself only
//! listens, accepts, serves connections and shuts down.

mod acme;
mod reload;

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use crate::config::Settings;
use crate::dispatch::Shared;
use crate::logs::Logs;
use crate::maintenance::Maintenance;
use crate::proxy::Backend;
use crate::registry::{Handler, NewRegistration, Owner, Registry};
use crate::server::{ListenAddresses, Server, ServerError};
use crate::site::Site;
use crate::tls::Tls;
use crate::urlprefix::Scheme;
pub use acme::AcmeRunner;
pub use reload::{Hangups, ReloadError, Reloader};

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("{origin}: [{section}] public_dir {path}: {source}")]
    PublicDir {
        /// Where the settings came from (the file, or built-in defaults).
        origin: String,
        /// `param` for the built-in site, `site:NAME` for the others.
        section: String,
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: [{section}] {key}: {prefix} is already registered by [{holder}] (Error 183); a URL prefix belongs to one section")]
    Conflict {
        origin: String,
        section: String,
        /// `prefix`, or `host_name` for the built-in site.
        key: &'static str,
        prefix: String,
        holder: String,
    },
    #[error("[app:{app}] backend: {source}")]
    Backend {
        app: String,
        source: crate::proxy::ProxyError,
    },
    #[error("cannot register {what}: {source}")]
    Register {
        what: String,
        source: crate::registry::RegisterError,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("[app:{app}] backend {backend} is this server itself (it listens on port {port}), so every request would loop; point backend= at the application's own port")]
    Loop {
        app: String,
        backend: String,
        port: u16,
    },
}

/// Registers every site (the built-in one and each `[site:NAME]`) and every
/// `[app:NAME]` from the settings, all or none; their ids are what a
/// reload replaces.
fn register_configured(
    registry: &Registry,
    settings: &Settings,
) -> Result<Vec<crate::registry::RegistrationId>, StartError> {
    let all = configured_registrations(registry, settings)?;
    registry
        .register_all(all)
        .map_err(|source| StartError::Register {
            what: "the prefixes of host_name and the [site:NAME] and [app:NAME] sections".into(),
            source,
        })
}

/// The registrations GLOBAL.INI makes (sites, applications, `metrics=`
/// and `health=`), checked (folders exist, backends parse, no section
/// claims another's prefix) but not yet registered.
fn configured_registrations(
    registry: &Registry,
    settings: &Settings,
) -> Result<Vec<NewRegistration>, StartError> {
    let sites = settings.all_sites();
    check_sections_apart(settings, &sites)?;
    let mut all = Vec::with_capacity(settings.apps.len() + sites.len());
    for config in &sites {
        let site = Site::new(config, settings).map_err(|source| StartError::PublicDir {
            origin: settings.origin.to_string(),
            section: config.section(),
            path: config.public_dir.display().to_string(),
            source,
        })?;
        // The built-in site keeps the owner and queue names it always had.
        let name = if config.name == crate::config::DEFAULT_SITE {
            "site".to_owned()
        } else {
            format!("site:{}", config.name)
        };
        all.push(NewRegistration {
            owner: Owner::Config { name: name.clone() },
            queue: name,
            prefixes: config.prefixes.clone(),
            handler: Handler::Site(Arc::new(site)),
        });
    }
    // Every port the server will listen on, to refuse a backend that is
    // the server itself.
    let own_ports: Vec<u16> = sites
        .iter()
        .flat_map(|s| &s.prefixes)
        .chain(settings.apps.iter().flat_map(|a| &a.prefixes))
        .map(|p| p.port())
        .collect();
    for app in &settings.apps {
        let mut backend = Backend::parse(&app.backend).map_err(|source| StartError::Backend {
            app: app.name.clone(),
            source,
        })?;
        match backend.target() {
            crate::proxy::BackendTarget::Tcp { host, port } => {
                if own_ports.contains(&port) && is_local(host, &settings.listen) {
                    return Err(StartError::Loop {
                        app: app.name.clone(),
                        backend: app.backend.clone(),
                        port,
                    });
                }
            }
            // A socket file is never one of the server's ports.
            #[cfg(unix)]
            crate::proxy::BackendTarget::Unix(_) => {}
        }
        if let Some(timeout) = app.timeout {
            backend.set_timeout(timeout);
        }
        backend.set_compress(app.compress.clone());
        all.push(NewRegistration {
            owner: Owner::Config {
                name: format!("app:{}", app.name),
            },
            queue: app.name.clone(),
            prefixes: app.prefixes.clone(),
            handler: Handler::Proxy(Arc::new(backend)),
        });
    }
    all.extend(crate::health::configured(registry, settings));
    Ok(all)
}

/// Two sections of GLOBAL.INI that name the same URL prefix: refused with
/// both section names (the registry alone would name only the holder).
fn check_sections_apart(
    settings: &Settings,
    sites: &[crate::config::SiteConfig],
) -> Result<(), StartError> {
    let mut table = crate::urlprefix::PrefixTable::new();
    let sections = sites.iter().map(|s| (s.section(), &s.prefixes)).chain(
        settings
            .apps
            .iter()
            .map(|a| (format!("app:{}", a.name), &a.prefixes)),
    );
    for (section, prefixes) in sections {
        for prefix in prefixes {
            if let Err(conflict) = table.insert(prefix.clone(), section.clone()) {
                let holder = table.get(&conflict.existing).cloned().unwrap_or_default();
                return Err(StartError::Conflict {
                    origin: settings.origin.to_string(),
                    key: if section == "param" {
                        "host_name"
                    } else {
                        "prefix"
                    },
                    section,
                    prefix: prefix.to_string(),
                    holder,
                });
            }
        }
    }
    Ok(())
}

/// Whether `host` names this machine as the server listens on it: a
/// loopback or unspecified address (IPv4-mapped ones too), `localhost`, or
/// one of the `listen` addresses.
pub fn is_local(host: &str, listen: &[std::net::IpAddr]) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>().is_ok_and(|ip| {
        let ip = ip.to_canonical();
        ip.is_loopback() || ip.is_unspecified() || listen.contains(&ip)
    })
}

/// Timers set with `portshare http add timeout` (kept in the store) take
/// precedence over GLOBAL.INI's `[http]` values, as netsh's settings do
/// over the registry defaults on Windows. Read at start-up.
fn apply_netsh_timeouts(settings: &mut Settings) {
    let store = crate::store::Store::in_cert_dir(&settings.cert_dir);
    match store.load() {
        Ok(data) => data.timeouts.apply_to(&mut settings.limits),
        Err(e) => tracing::error!(error = %e, "the store's timeouts are ignored"),
    }
}

/// A running server, for callers that need more than `run` (the control
/// channel, the maintenance scheduler).
pub struct Running {
    pub registry: Arc<Registry>,
    pub settings: Arc<Settings>,
    pub maintenance: Arc<Maintenance>,
    /// The ACME manager in force, when `[acme]` orders certificates.
    pub acme: Arc<AcmeRunner>,
    /// Writes the access and httperr logs out now (`netsh http flush logbuffer`).
    pub log_flush: crate::logs::LogFlusher,
    /// The listening addresses, which follow the store's IP listen list.
    pub listen: Arc<ListenAddresses>,
    /// Re-reads GLOBAL.INI (`portshare reload`).
    pub reload: Arc<Reloader>,
}

/// Runs the server until `shutdown` resolves, then drains connections for
/// at most the configured grace period.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    run_with(settings, shutdown, |_| {}).await
}

/// As [`run`]; `started` is called once the listeners are up.
pub async fn run_with(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    started: impl FnOnce(&Running),
) -> Result<(), StartError> {
    // The signals are caught before the listeners open: until a handler is
    // installed, SIGTERM or SIGHUP end the process at once, and a service
    // manager may send them as soon as the port answers. `shutdown` installs
    // its own at its first poll.
    let mut shutdown = std::pin::pin!(shutdown);
    let stop_at_once =
        std::future::poll_fn(|cx| Poll::Ready(shutdown.as_mut().poll(cx).is_ready())).await;
    let hangups = Hangups::catch();
    let mut settings = settings;
    apply_netsh_timeouts(&mut settings);
    let settings = Arc::new(settings);
    let logs = Logs::for_settings(&settings);
    let registry = Arc::new(Registry::new());
    let configured = register_configured(&registry, &settings)?;
    let needs_tls = registry
        .ports()
        .borrow()
        .iter()
        .any(|(s, _)| *s == Scheme::Https);
    let tls = if needs_tls || settings.https_port != 0 {
        Some(Tls::start(&settings, logs.httperr.clone())?)
    } else {
        None
    };
    // Registers the HTTP-01 prefix; the manager starts after the listeners.
    let (acme, planned) = AcmeRunner::plan(registry.clone(), &settings, tls.clone());
    let acme = Arc::new(acme);
    let auth = Arc::new(crate::auth::Auth::new(&settings.auth)?);
    let shared = Arc::new(Shared::new(settings.clone(), registry.clone(), &logs).with_auth(auth));
    let listen = Arc::new(ListenAddresses::new(
        settings.listen.clone(),
        &crate::store::Store::in_cert_dir(&settings.cert_dir),
    ));
    let server = Server::start(
        shared.clone(),
        tls.clone(),
        registry.ports(),
        listen.subscribe(),
    )?;
    if let Some(tls) = &tls {
        // Certificates for the private names the prefixes name; before ACME starts,
        // so that a name ACME now looks after is handed over first.
        let (names_of, reload) = (registry.clone(), tls.clone());
        let manager = crate::tls::devcerts::DevCertManager::new(
            settings.cert_dir.clone(),
            acme.names(),
            Box::new(move || {
                crate::tls::devcerts::wanted(names_of.snapshot().prefixes.iter().map(|(p, _)| p))
            }),
            Box::new(move || reload.reload()),
        );
        tokio::spawn(manager.run(registry.changes(), server.stopping()));
    }
    // After the listeners: the HTTP-01 validation may come at once.
    acme.start(planned, &server.stopping()).await;
    let maintenance = Arc::new(Maintenance::new(settings.clone(), logs.maintenance.clone()));
    if let Some(url) = &settings.daily_maintenance {
        // Still start: an application may register the URL later.
        if !maintenance.is_routed(&registry.snapshot()) {
            tracing::warn!(
                key = "[param] daily_maintenance",
                %url,
                "no registered URL prefix serves this path over plain HTTP; the maintenance run will fail"
            );
        }
    }
    // Always: a reload may set daily_maintenance later.
    tokio::spawn(maintenance.clone().schedule(server.stopping()));
    let reloader = Arc::new(Reloader::new(
        settings.clone(),
        configured,
        reload::Targets {
            registry: registry.clone(),
            shared: shared.clone(),
            listen: listen.clone(),
            maintenance: maintenance.clone(),
            acme: acme.clone(),
        },
        server.stopping(),
    ));
    tokio::spawn(reloader.clone().on_hangup(hangups, server.stopping()));
    if settings.watch_config {
        tokio::spawn(reloader.clone().watch(server.stopping()));
    }
    started(&Running {
        registry: registry.clone(),
        settings: settings.clone(),
        maintenance: maintenance.clone(),
        acme: acme.clone(),
        log_flush: logs.flusher(),
        listen: listen.clone(),
        reload: reloader.clone(),
    });

    if !stop_at_once {
        shutdown.await;
    }
    server.shutdown(settings.shutdown_grace).await;
    // Connections cut at the end of the grace period may still hold log
    // senders; what they sent is written already, so don't wait for them.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), logs.finish()).await;
    Ok(())
}
