//! Connection workers: one single-threaded tokio runtime per core.
//!
//! Each worker accepts connections itself (on Windows they are handed out
//! round-robin; `server::accept`), and each one lives on its worker for
//! good. A connection's wake-ups then stay on one thread: no
//! work-stealing, no cross-core task migration, and no futex call to wake a
//! sibling worker for every request, which is where a multi-threaded
//! runtime spent its time under many small requests. Blocking work
//! (`spawn_blocking`) still goes to each runtime's own blocking pool.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};

use tokio::runtime::Handle;
use tokio::sync::watch;

thread_local! {
    /// The index of the worker this thread runs, if it is one.
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// How many workers [`Workers::per_core`] starts.
pub fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One `T` per worker, made on first use there, and one more for threads
/// that are not workers. For things bound to the runtime that made them,
/// such as a connection pool whose connections are driven by that
/// runtime's reactor: each worker then uses only its own.
pub struct PerWorker<T> {
    slots: Box<[OnceLock<T>]>,
    other: OnceLock<T>,
    make: Box<dyn Fn() -> T + Send + Sync>,
}

impl<T> PerWorker<T> {
    pub fn new(make: impl Fn() -> T + Send + Sync + 'static) -> PerWorker<T> {
        PerWorker {
            slots: (0..worker_count()).map(|_| OnceLock::new()).collect(),
            other: OnceLock::new(),
            make: Box::new(make),
        }
    }

    /// The calling worker's `T`.
    pub fn get(&self) -> &T {
        let slot = WORKER
            .with(Cell::get)
            .and_then(|i| self.slots.get(i))
            .unwrap_or(&self.other);
        slot.get_or_init(|| (self.make)())
    }

    /// Every `T` made so far (the workers' and the other threads'), for
    /// summing per-worker counters.
    pub fn each(&self) -> impl Iterator<Item = &T> {
        self.slots
            .iter()
            .chain(std::iter::once(&self.other))
            .filter_map(OnceLock::get)
    }
}

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
                    WORKER.with(|w| w.set(Some(i)));
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
        Workers::start(worker_count())
    }

    /// Runs one task made by `make` on every worker.
    pub fn spawn_each<F>(&self, make: impl Fn() -> F) -> Vec<tokio::task::JoinHandle<()>>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handles.iter().map(|h| h.spawn(make())).collect()
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
