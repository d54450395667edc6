//! The threads that check passwords, away from the connection workers.
//!
//! A bcrypt check takes tens of milliseconds of CPU on purpose. Run on a
//! connection worker it would stall every other connection of that worker;
//! run on tokio's blocking pool, fifty at once would get fifty threads that
//! the kernel shares the cores with equally, the workers included. So the
//! checks have their own few threads (one less than the cores, at least
//! one), started on first use, with a bounded queue, and on Linux at a
//! lower scheduling priority (nice 10): when a burst of logins meets
//! ordinary requests, the workers win the CPU and the logins wait.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

/// Checks waiting at most; past that the server answers "busy".
const QUEUE: usize = 1024;
/// The nice value of the checking threads (Linux).
#[cfg(target_os = "linux")]
const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// The queue is full: too many checks are waiting already.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too many password checks are waiting")]
pub struct Busy;

/// A lazily started pool of password-checking threads.
#[derive(Debug, Default)]
pub struct CheckPool {
    sender: OnceLock<Option<SyncSender<Job>>>,
}

impl CheckPool {
    fn sender(&self) -> Option<&SyncSender<Job>> {
        self.sender.get_or_init(start).as_ref()
    }

    /// Runs `f` on a checking thread and waits (asynchronously) for it.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        match self.sender() {
            Some(sender) => match sender.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => return Err(Busy),
                // The threads are gone (a job never panics out of them, as
                // the checks return errors, but be safe): tokio's blocking
                // pool does it.
                Err(TrySendError::Disconnected(job)) => {
                    drop(tokio::task::spawn_blocking(job));
                }
            },
            // No thread could be started: tokio's blocking pool does it.
            None => drop(tokio::task::spawn_blocking(job)),
        }
        rx.await.map_err(|_| Busy)
    }
}

/// Starts the threads; `None` if not even one could be started.
fn start() -> Option<SyncSender<Job>> {
    let count = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .max(1);
    let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    let mut started = 0;
    for i in 0..count {
        let rx = rx.clone();
        match std::thread::Builder::new()
            .name(format!("portshare-auth-{i}"))
            .spawn(move || worker(&rx))
        {
            Ok(_) => started += 1,
            Err(e) => tracing::warn!(error = %e, "could not start a password-checking thread"),
        }
    }
    (started > 0).then_some(tx)
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        // The lock is held only while waiting for the next job.
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job();
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: setpriority only reads its arguments; on Linux, PRIO_PROCESS
    // with 0 applies to the calling thread alone.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
    if rc != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "could not lower the priority of a password-checking thread"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_off_the_calling_thread() {
        let pool = CheckPool::default();
        let here = std::thread::current().id();
        let there = pool.run(|| std::thread::current().id()).await.unwrap();
        assert_ne!(here, there);
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("portshare-auth-"));
    }
}
