//! The `portshare` binary: parse the command line, run the library.

use std::process::ExitCode;

use portshare::cli::{self, Command, ServiceAction};

mod allocator;
mod service;

fn main() -> ExitCode {
    // Started as `netsh` (a link or copy under that name), it is netsh.
    if let Some(code) = cli::netsh_main() {
        return code;
    }
    let cli = cli::parse();
    // A service has no console: `service run` logs to a file in log_dir.
    if !matches!(
        cli.command,
        Some(Command::Service {
            action: ServiceAction::Run
        })
    ) {
        init_tracing();
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config.as_deref()),
        Command::Http { args } => cli::http(cli.config.as_deref(), &args),
        Command::Maintenance { action } => cli::maintenance(cli.config.as_deref(), action),
        Command::Reload => cli::reload(cli.config.as_deref()),
        Command::Acme { action } => cli::acme(cli.config.as_deref(), &action),
        Command::Cert { command } => cli::cert(cli.config.as_deref(), &command),
        Command::Register { prefixes, backend } => {
            cli::register(cli.config.as_deref(), &prefixes, &backend)
        }
        Command::Run { prefixes, command } => cli::run(cli.config.as_deref(), &prefixes, &command),
        Command::Service { action } => service::command(cli.config.as_deref(), action),
        Command::User { action } => cli::user(&action),
    }
}

/// The log filter when `RUST_LOG` is not set. rustls warns about every
/// client that sends an IP address as SNI (wrk, h2load) although the
/// handshake goes on; the scheduler announces "Job creator created" at every
/// start. Neither tells the user anything, so only their warnings show.
const DEFAULT_LOG_FILTER: &str = "info,rustls=error,tokio_cron_scheduler=warn";

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colour codes only for a terminal: a file or `docker logs` shows
        // them as `^[[2m` noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
}

fn serve(config: Option<&std::path::Path>) -> ExitCode {
    let settings = match cli::settings(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    // systemd (Type=notify): READY=1 once the listeners are up, STOPPING=1
    // as soon as the stop is asked for, before the grace period runs.
    let shutdown = async {
        portshare::server::signals::shutdown_requested().await;
        systemd::notify_stopping();
    };
    match serve_with(settings, shutdown, systemd::notify_ready) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portshare: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the server with its control channel until `shutdown` resolves;
/// `started` is called once the listeners are up. Shared by `serve` and the
/// Windows service (whose `shutdown` is the service-control stop).
fn serve_with(
    settings: portshare::config::Settings,
    shutdown: impl std::future::Future<Output = ()>,
    started: impl FnOnce(),
) -> Result<(), Box<dyn std::error::Error>> {
    // Connections run on their own per-core workers (crate::workers); this
    // runtime only accepts, and runs the control socket and the scheduler.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    tracing::info!(config = %settings.origin, public = %settings.public_dir.display(), "portshare {} starting", env!("CARGO_PKG_VERSION"));
    let result = runtime.block_on(async {
        // Applications register over the control socket once listeners are up.
        let mut control = portshare::control::ControlServer::bind(&settings)?;
        portshare::app::run_with(settings, shutdown, |running| {
            let mut hooks = cli::control_hooks(running);
            // `netsh http flush logbuffer`.
            let flusher = running.log_flush.clone();
            hooks.flush_logs = Some(std::sync::Arc::new(move || {
                let f = flusher.clone();
                Box::pin(async move {
                    if f.flush(std::time::Duration::from_secs(10)).await {
                        Ok(String::new())
                    } else {
                        Err("the log writers did not answer within 10 seconds".to_owned())
                    }
                })
            }));
            control.start(running, hooks);
            started();
        })
        .await?;
        Ok::<(), Box<dyn std::error::Error>>(())
        // `control` drops here: stops accepting, removes the socket file.
    });
    // Connections still open after the grace period are abandoned here.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// sd_notify(3) messages to systemd for `Type=notify` units
/// (contrib/systemd/portshare.service). Without `NOTIFY_SOCKET` in the
/// environment (not started by systemd) nothing is sent.
#[cfg(target_os = "linux")]
mod systemd {
    use sd_notify::NotifyState;

    pub fn notify_ready() {
        send(
            &[NotifyState::Ready, NotifyState::Status("serving")],
            "READY=1",
        );
    }

    pub fn notify_stopping() {
        send(&[NotifyState::Stopping], "STOPPING=1");
    }

    fn send(state: &[NotifyState], what: &str) {
        // A failure is logged, not fatal: systemd then reports the unit as
        // failed to start after TimeoutStartSec, which the log explains.
        if let Err(e) = sd_notify::notify(state) {
            tracing::warn!(error = %e, message = what, "cannot notify systemd (NOTIFY_SOCKET)");
        }
    }
}

/// Elsewhere there is no systemd to tell.
#[cfg(not(target_os = "linux"))]
mod systemd {
    pub fn notify_ready() {}
    pub fn notify_stopping() {}
}
