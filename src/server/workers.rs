//! Connection workers: one single-threaded tokio runtime per core.
//!
//! Accepted connections are handed out round-robin, and each one lives on
//! its worker for good. A connection's wake-ups then stay on one thread: no
//! work-stealing, no cross-core task migration, and no futex call to wake a
//! sibling worker for every request, which is where a multi-threaded
//! runtime spent its time under many small requests. Blocking work
//! (`spawn_blocking`) still goes to each runtime's own blocking pool.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use tokio::runtime::Handle;
use tokio::sync::watch;

/// The worker runtimes. Dropping it stops them (without waiting);
/// connections still running there are dropped with their runtime.
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stop: watch::Sender<bool>,
}

impl Workers {
    /// Starts `count` workers (at least one).
    pub fn start(count: usize) -> std::io::Result<Workers> {
        let (stop, stop_rx) = watch::channel(false);
        let mut handles = Vec::new();
        for i in 0..count.max(1) {
            let (tx, rx) = mpsc::channel();
            let mut stop_rx = stop_rx.clone();
            std::thread::Builder::new()
                .name(format!("portshare-worker-{i}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(runtime.handle().clone()));
                    runtime.block_on(async move {
                        while !*stop_rx.borrow_and_update() {
                            if stop_rx.changed().await.is_err() {
                                break;
                            }
                        }
                    });
                    // Don't wait for blocking tasks (a CGI still reading).
                    runtime.shutdown_background();
                })?;
            let handle = rx
                .recv()
                .map_err(|_| std::io::Error::other("a worker thread ended before it started"))??;
            handles.push(handle);
        }
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
            stop,
        })
    }

    /// One worker per available core.
    pub fn per_core() -> std::io::Result<Workers> {
        Workers::start(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Runs `task` on the next worker.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn(task);
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
