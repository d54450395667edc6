//! The script and everything it starts, stopped together.
//!
//! On Unix the script runs in a process group of its own (its pid is the
//! group id), and the whole group is killed: at the CGI timeout, when the
//! response is abandoned, when the handle is dropped (server shutdown), and
//! as soon as the script itself has exited — a background child left
//! holding the script's stdout or stderr would otherwise keep the response
//! open (and a pipe in the server) until it ends on its own.
//!
//! On Windows only the script's own process is killed: containing its
//! children would take a job object, and the crate has no Windows API
//! dependency for it.

use std::io;
use std::process::ExitStatus;

use tokio::process::{Child, Command};

/// Makes the script the leader of a new process group.
pub(super) fn own_group(cmd: &mut Command) {
    #[cfg(unix)]
    cmd.process_group(0);
    #[cfg(not(unix))]
    let _ = cmd;
}

/// A running script; dropping it kills the script and its group.
pub(super) struct Script {
    child: Child,
    /// The process group to kill, until it has been killed once after the
    /// script was reaped. Killing it again later could hit an unrelated
    /// group: once the script is reaped and its group empty, the id can be
    /// reused. Before the script is reaped its pid (the group id) cannot.
    #[cfg(unix)]
    group: Option<libc::pid_t>,
}

impl Script {
    /// `child` was started with [`own_group`].
    pub(super) fn new(child: Child) -> Script {
        Script {
            #[cfg(unix)]
            group: child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()),
            child,
        }
    }

    /// Waits for the script to exit, then kills what it left running, so
    /// its pipes reach end-of-file. Cancel-safe.
    pub(super) async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await;
        self.kill_group();
        status
    }

    /// Kills the script and its group and reaps the script, so no zombie
    /// is left.
    pub(super) async fn stop(&mut self) {
        self.kill_group();
        // The script may have left its group (setsid): kill it directly too.
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Sends SIGKILL to the script's process group (once).
    fn kill_group(&mut self) {
        #[cfg(unix)]
        if let Some(group) = self.group.take() {
            // SAFETY: killpg has no memory-safety preconditions. It fails
            // with ESRCH when the group is already empty, which is fine.
            unsafe {
                libc::killpg(group, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        // The child itself is killed by `kill_on_drop` and reaped by tokio.
        self.kill_group();
    }
}
