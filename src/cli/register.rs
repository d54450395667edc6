//! `portshare register`, `portshare run` and the live data behind
//! `portshare http show servicestate`.
//!
//! Failures print netsh's layout on stderr — an empty line, `Error: N`, the
//! Windows message, one `portshare:` sentence — and exit with N (modulo 256
//! on Unix, never 0): `Error: 183` for a prefix someone holds, `Error: 5`
//! without a URL reservation, `Error: 1062` when no server is running.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::exit_code;
use crate::config::Settings;
use crate::control::client::{self, ClientError, Session};
use crate::control::protocol::{RegisterRequest, Request};
use crate::netsh::{ServiceStateSnapshot, ServiceStateSource};
use crate::winerror::{
    system_message, ERROR_FILE_NOT_FOUND, ERROR_GEN_FAILURE, ERROR_INVALID_PARAMETER,
};

/// The netsh-style error block for `code` and `explain`.
pub fn error_text(code: u32, explain: &str) -> String {
    format!(
        "\nError: {code}\n{}\nportshare: {explain}\n\n",
        system_message(code)
    )
}

fn client_error_text(e: &ClientError, settings: &Settings) -> String {
    let explain = match e {
        ClientError::NotRunning(_) => format!(
            "{e}; start it first with 'portshare --config {}'.",
            settings.origin
        ),
        other => other.to_string(),
    };
    error_text(e.code(), &explain)
}

fn fail(code: u32, explain: &str) -> ExitCode {
    eprint!("{}", error_text(code, explain));
    exit_code(code as i32)
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    super::runtime(false)
}

fn control_path(settings: &Settings) -> Result<PathBuf, ExitCode> {
    crate::control::socket_path(settings)
        .map(Path::to_path_buf)
        .map_err(|m| fail(ERROR_FILE_NOT_FOUND, &m))
}

/// Connects and registers; the session holds the registration.
async fn open_registration(
    path: &Path,
    prefixes: &[String],
    backend: &str,
) -> Result<(Session, u64), ClientError> {
    let mut session = Session::connect(path).await?;
    let body = session
        .request(&Request::Register(RegisterRequest {
            prefixes: prefixes.to_vec(),
            backend: backend.to_owned(),
            pid: Some(std::process::id()),
            queue: None,
        }))
        .await?;
    let id = body
        .id
        .ok_or_else(|| ClientError::Protocol("the answer carries no registration id".into()))?;
    Ok((session, id))
}

/// `portshare register PREFIX… --backend URL`: holds the registration until
/// Ctrl-C (or SIGTERM); exits 1 if the server goes away first.
pub fn register(settings: &Settings, prefixes: &[String], backend: &str) -> ExitCode {
    let path = match control_path(settings) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let (mut session, id) = match open_registration(&path, prefixes, backend).await {
            Ok(s) => s,
            Err(e) => {
                eprint!("{}", client_error_text(&e, settings));
                return exit_code(e.code() as i32);
            }
        };
        println!(
            "Registered {} for {backend} (registration {id}); press Ctrl-C to unregister.",
            prefixes.join(" ")
        );
        tokio::select! {
            _ = stop_requested() => {
                println!("Unregistered.");
                ExitCode::SUCCESS
            }
            _ = session.closed() => {
                eprintln!("portshare: the server closed the control connection; the registration is gone.");
                ExitCode::FAILURE
            }
        }
    })
}

/// Ctrl-C, or SIGTERM on Unix.
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A TCP port free on 127.0.0.1 right now.
fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

/// `portshare run --prefix PREFIX… -- CMD ARGS`: registers the prefixes
/// for `http://127.0.0.1:PORT`, starts CMD with `PORT` set, unregisters when
/// CMD exits and exits with its exit code (128 + signal number when a
/// signal ended it). Ctrl-C reaches CMD through the terminal; a second
/// Ctrl-C kills it. SIGTERM is passed on to CMD.
pub fn run(settings: &Settings, prefixes: &[String], command: &[String]) -> ExitCode {
    let Some((program, args)) = command.split_first() else {
        return fail(
            ERROR_INVALID_PARAMETER,
            "no command given; usage: portshare run --prefix PREFIX… -- CMD ARGS",
        );
    };
    let path = match control_path(settings) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("portshare: cannot find a free port on 127.0.0.1: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let backend = format!("http://127.0.0.1:{port}");
        let (mut session, id) = match open_registration(&path, prefixes, &backend).await {
            Ok(s) => s,
            Err(e) => {
                eprint!("{}", client_error_text(&e, settings));
                return exit_code(e.code() as i32);
            }
        };
        let mut child = match tokio::process::Command::new(program)
            .args(args)
            .env("PORT", port.to_string())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("portshare: cannot start '{program}': {e}");
                let code = if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
                return ExitCode::from(code);
            }
        };
        let child_pid = child.id();
        if let Some(pid) = child_pid {
            if let Err(e) = session.request(&Request::Attach { id, pid }).await {
                tracing::warn!(error = %e, "could not attach the child's process ID");
            }
        }
        tracing::debug!(port, pid = ?child_pid, "started '{program}' behind {}", prefixes.join(" "));
        let mut server_alive = true;
        let mut interrupts = 0u32;
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let status = loop {
            #[cfg(unix)]
            let terminated = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let terminated = std::future::pending::<()>();
            tokio::select! {
                status = child.wait() => break status,
                _ = tokio::signal::ctrl_c() => {
                    interrupts += 1;
                    if interrupts > 1 {
                        let _ = child.start_kill();
                    }
                }
                _ = terminated => {
                    if !forward_terminate(child_pid) {
                        let _ = child.start_kill();
                    }
                }
                _ = session.closed(), if server_alive => {
                    server_alive = false;
                    eprintln!("portshare: the server closed the control connection; '{program}' keeps running without its registration.");
                }
            }
        };
        drop(session); // unregisters now, before we report
        match status {
            Ok(s) => child_exit_code(&s),
            Err(e) => {
                eprintln!("portshare: waiting for '{program}' failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Sends SIGTERM to `pid` (with the `kill` utility: no libc binding here).
#[cfg(unix)]
fn forward_terminate(pid: Option<u32>) -> bool {
    let Some(pid) = pid else { return false };
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(not(unix))]
fn forward_terminate(_pid: Option<u32>) -> bool {
    false
}

fn child_exit_code(status: &std::process::ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from((code & 0xff) as u8);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return ExitCode::from((128 + (sig & 0x7f)) as u8);
        }
    }
    ExitCode::FAILURE
}

/// `show servicestate`'s live data, fetched from the running server when
/// (and only if) the command needs it. A failure is remembered for
/// [`LiveServiceState::failure`]; the caller prints that instead.
pub struct LiveServiceState {
    path: Result<PathBuf, String>,
    origin: String,
    /// `[http]` limits and listen addresses, for `show setting`.
    settings: crate::netsh::ServiceSettings,
    failure: RefCell<Option<(u32, String)>>,
}

impl LiveServiceState {
    pub fn new(settings: &Settings) -> LiveServiceState {
        LiveServiceState {
            path: crate::control::socket_path(settings).map(Path::to_path_buf),
            origin: settings.origin.to_string(),
            settings: crate::netsh::ServiceSettings {
                limits: settings.limits.clone(),
                listen: settings.listen.clone(),
            },
            failure: RefCell::new(None),
        }
    }

    /// The netsh-style error text and code if fetching failed.
    pub fn failure(&self) -> Option<(String, u32)> {
        self.failure
            .borrow()
            .as_ref()
            .map(|(code, explain)| (error_text(*code, explain), *code))
    }

    fn fetch(&self) -> Result<ServiceStateSnapshot, (u32, String)> {
        self.ask(client::service_state, "the live registrations are shown")
    }

    /// Sends one request to the running server; `what` completes "… only
    /// while the server runs" in the not-running explanation.
    fn ask<'a, T, F>(
        &'a self,
        request: impl FnOnce(&'a Path) -> F,
        what: &str,
    ) -> Result<T, (u32, String)>
    where
        F: std::future::Future<Output = Result<T, ClientError>>,
    {
        let path = self
            .path
            .as_ref()
            .map_err(|m| (ERROR_FILE_NOT_FOUND, m.clone()))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                (
                    ERROR_GEN_FAILURE,
                    format!("cannot start the async runtime: {e}"),
                )
            })?;
        rt.block_on(request(path)).map_err(|e| {
            let explain = match &e {
                ClientError::NotRunning(_) => format!(
                    "{e}; {what} only while the server runs (start it with 'portshare --config {}').",
                    self.origin
                ),
                other => other.to_string(),
            };
            (e.code(), explain)
        })
    }
}

impl ServiceStateSource for LiveServiceState {
    fn snapshot(&self) -> ServiceStateSnapshot {
        match self.fetch() {
            Ok(s) => s,
            Err(f) => {
                *self.failure.borrow_mut() = Some(f);
                ServiceStateSnapshot::default()
            }
        }
    }

    fn settings(&self) -> Option<crate::netsh::ServiceSettings> {
        Some(self.settings.clone())
    }

    fn flush_logs(&self) -> Result<(), (u32, String)> {
        self.ask(client::flush_logs, "the log buffers are flushed")
    }

    fn cache_state(
        &self,
        url: Option<&str>,
    ) -> Result<Vec<crate::netsh::CacheEntryState>, (u32, String)> {
        let url = url.map(str::to_owned);
        self.ask(
            |p| client::cache_state(p, url),
            "the response cache is shown",
        )
    }

    fn delete_cache(&self, url: Option<&str>, recursive: bool) -> Result<usize, (u32, String)> {
        let url = url.map(str::to_owned);
        self.ask(
            |p| client::delete_cache(p, url, recursive),
            "the response cache is emptied",
        )
        .map(|dropped| dropped.len())
    }

    fn store_settings_changed(&self) -> Result<(), (u32, String)> {
        self.ask(
            client::store_settings_changed,
            "cache parameters and listening addresses follow the store",
        )
    }
}
