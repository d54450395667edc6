//! `SIGUSR1` reopens the log files (Unix): the signal an external logrotate
//! sends after renaming them (`postrotate kill -USR1 …`), as nginx uses it.
//! Without this, the server would go on writing into the renamed files.

use tokio::signal::unix::{signal, SignalKind};

use super::Reopener;

/// Listens for `SIGUSR1` on the current tokio runtime until the task is
/// aborted; `None` outside a runtime or when the signal cannot be caught
/// (then a `SIGUSR1` ends the process, as for any program that ignores it).
pub(super) fn listen(reopener: Reopener) -> Option<tokio::task::JoinHandle<()>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    // `signal` registers with the runtime's driver: it must run inside it.
    let _inside = runtime.enter();
    let mut usr1 = match signal(SignalKind::user_defined1()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot catch SIGUSR1; log files cannot be reopened for logrotate");
            return None;
        }
    };
    Some(runtime.spawn(async move {
        while usr1.recv().await.is_some() {
            tracing::info!("SIGUSR1 received: reopening the log files");
            reopener.reopen();
        }
    }))
}
