//! The script's process: starting it, feeding the request body to its
//! stdin, logging its stderr, reading its output while it runs, and
//! supervising it after the head is sent (killing it at the CGI timeout or
//! when the response is abandoned). Killing means the script's whole
//! process group (see `group`).

use std::future::Future;
use std::io;
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, ChildStdin, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::group::Script;
use crate::body::RequestBody;

/// How much of a script's stderr is logged.
const STDERR_LOGGED: usize = 4 * 1024;

/// Starts the child, retrying briefly on ETXTBSY ("text file busy": the
/// script was being written a moment ago, e.g. an upload just finished).
pub(super) async fn spawn(cmd: &mut Command) -> io::Result<Child> {
    const ETXTBSY: i32 = 26;
    let mut delay = Duration::from_millis(10);
    for _ in 0..5 {
        match cmd.spawn() {
            Err(e) if cfg!(unix) && e.raw_os_error() == Some(ETXTBSY) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    cmd.spawn()
}

/// Kills the script with its group and reaps it, so no zombie is left.
pub(super) async fn stop(script: &mut Script, stdin_task: Option<JoinHandle<()>>) {
    if let Some(t) = stdin_task {
        t.abort();
    }
    script.stop().await;
}

/// Runs `read`, a read of the script's output. Should the script exit
/// first, what it left running is killed ([`Script::wait`]), so the read
/// sees end-of-file once the output so far is read, instead of waiting for
/// a background child that still holds the pipe.
pub(super) async fn read_output<T>(script: &mut Script, read: impl Future<Output = T>) -> T {
    tokio::pin!(read);
    tokio::select! {
        out = &mut read => return out,
        _ = script.wait() => {}
    }
    read.await
}

/// Copies the request body to the script's stdin; closing stdin at the end
/// tells the script the body is complete.
pub(super) async fn feed_stdin(mut body: RequestBody, mut stdin: ChildStdin) {
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    // An error means the script stopped reading: fine.
                    if stdin.write_all(&data).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "request body for a CGI script ended early");
                return;
            }
        }
    }
    let _ = stdin.shutdown().await;
}

/// Logs the first [`STDERR_LOGGED`] bytes of the script's stderr and drains
/// the rest (a full pipe would block the script).
pub(super) async fn log_stderr(mut stderr: ChildStderr, script: String) {
    let mut kept = Vec::new();
    let mut total = 0usize;
    let mut buf = vec![0u8; 8192];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total += n;
                let room = STDERR_LOGGED.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    if total > 0 {
        let text = String::from_utf8_lossy(&kept);
        tracing::warn!(
            script = %script,
            bytes = total,
            truncated = total > kept.len(),
            "CGI script wrote to stderr: {}",
            text.trim_end()
        );
    }
}

/// Waits for the script to end after its headers were sent (then kills
/// what it left running, which ends its output); kills it at the deadline
/// or when the response is dropped before the end of its output (the
/// client went away).
pub(super) async fn supervise(
    mut child: Script,
    deadline: Instant,
    mut abort: oneshot::Receiver<()>,
    stdin_task: Option<JoinHandle<()>>,
    script: String,
) {
    let mut abort_open = true;
    loop {
        tokio::select! {
            status = child.wait() => {
                match status {
                    Ok(s) if s.success() => {}
                    Ok(s) => tracing::warn!(script = %script, status = %s, "CGI script failed after sending its headers"),
                    Err(e) => tracing::warn!(script = %script, error = %e, "waiting for a CGI script failed"),
                }
                break;
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::error!(script = %script, "CGI script still running at the CGI timeout; stopping it");
                child.stop().await;
                break;
            }
            r = &mut abort, if abort_open => match r {
                Ok(()) => {
                    tracing::debug!(script = %script, "response abandoned; stopping the CGI script");
                    child.stop().await;
                    break;
                }
                // The output was read to its end: let the script finish.
                Err(_) => abort_open = false,
            },
        }
    }
    if let Some(t) = stdin_task {
        t.abort();
    }
}

/// Tells the supervisor to kill the script when dropped, unless the output
/// was read to its end first.
pub(super) struct AbortGuard(pub(super) Option<oneshot::Sender<()>>);

impl AbortGuard {
    pub(super) fn finished(&mut self) {
        self.0.take();
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}
