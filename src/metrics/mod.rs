//! Server metrics for `metrics=PREFIX`: what a monitor needs to keep the
//! server up for months (requests per request queue and status class,
//! bytes, latency, connections, TLS handshakes, certificate expiry, ACME,
//! maintenance, CGI, proxy errors), and the request-queue lengths that
//! HTTP.sys's `RequestQueueLimit` is checked against.
//!
//! Why per worker: a counter every worker adds to would be one cache line
//! bouncing between the cores on every request. Each worker thread adds to
//! its own copy ([`PerWorker`], cache-line aligned), with no lock, and a
//! scrape sums the copies. The one shared atomic per request is a queue's
//! in-flight count: the limit needs the exact total, as HTTP.sys's does.
//!
//! This module sits low in the module graph (it knows only `workers`), so
//! that `dispatch`, `tls`, `acme`, `site` and `server` can all count into
//! it; the registry hands each registration its [`QueueStats`].

mod exposition;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};
use std::time::Instant;

use crate::workers::PerWorker;

pub use exposition::render;

/// Upper bounds of the latency histogram's buckets, in microseconds (the
/// last, `+Inf`, is implicit): from a cached file (well under 1 ms) to a
/// slow backend or CGI script.
const LATENCY_BOUNDS_US: [u64; 12] = [
    250, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 2_500_000,
    10_000_000,
];
const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// HTTP status classes 1xx..5xx.
const CLASSES: usize = 5;

/// One worker's counters. Aligned so that two workers' copies never share
/// a cache line (128: adjacent-line prefetch pairs lines on x86).
#[repr(align(128))]
#[derive(Default)]
struct WorkerCounters {
    latency: [AtomicU64; LATENCY_BUCKETS],
    latency_sum_us: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    tls_full: AtomicU64,
    tls_resumed: AtomicU64,
    /// Parked keep-alive connections: +1 when parked, −1 when resumed or
    /// closed (a connection stays on its worker, so each copy balances).
    parked: AtomicI64,
    /// Requests no registration took (HTTP.sys's own 400 and 404 answers).
    unrouted: [AtomicU64; CLASSES],
    cgi_runs: AtomicU64,
    cgi_timeouts: AtomicU64,
}

/// One worker's counters for one request queue.
#[repr(align(128))]
#[derive(Default)]
struct QueueCounters {
    status: [AtomicU64; CLASSES],
    rejected: AtomicU64,
    proxy_errors: AtomicU64,
}

/// Adds to a counter. Relaxed `fetch_add`: threads that are not workers
/// (HTTP/3, CGI's blocking threads) share one copy, so a plain store could
/// lose counts; on a worker's own cache line it costs no contention.
#[inline]
fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

fn class_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, CLASSES) - 1
}

/// A request queue (one per registration, or shared by the registrations
/// that name the same queue): its in-flight count, limit and counters.
pub struct QueueStats {
    name: String,
    in_flight: AtomicUsize,
    limit: AtomicUsize,
    /// The most requests that were ever in the queue at once.
    peak: AtomicUsize,
    counters: PerWorker<QueueCounters>,
}

impl std::fmt::Debug for QueueStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueStats")
            .field("name", &self.name)
            .field("in_flight", &self.in_flight.load(Relaxed))
            .field("limit", &self.limit.load(Relaxed))
            .finish()
    }
}

/// A request's place in its queue, given back when dropped.
pub struct QueueSlot<'a>(&'a QueueStats);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

impl QueueStats {
    fn new(name: String, limit: usize) -> QueueStats {
        QueueStats {
            name,
            in_flight: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
            peak: AtomicUsize::new(0),
            counters: PerWorker::new(QueueCounters::default),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Requests in the queue now.
    pub fn length(&self) -> usize {
        self.in_flight.load(Relaxed)
    }

    /// `RequestQueueLimit` (or the application's `queue_limit=`).
    pub fn limit(&self) -> usize {
        self.limit.load(Relaxed)
    }

    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Relaxed);
    }

    /// Takes a place in the queue, or `None` when it is full (counted as
    /// rejected; the caller answers HTTP.sys's 503 with reason QueueFull).
    #[inline]
    pub fn enter(&self) -> Option<QueueSlot<'_>> {
        let before = self.in_flight.fetch_add(1, Relaxed);
        if before >= self.limit.load(Relaxed) {
            self.in_flight.fetch_sub(1, Relaxed);
            add(&self.counters.get().rejected, 1);
            return None;
        }
        // Written only when it grows: a plain load otherwise, so the
        // common case does not write a second shared line.
        if before >= self.peak.load(Relaxed) {
            self.peak.fetch_max(before + 1, Relaxed);
        }
        Some(QueueSlot(self))
    }

    /// Counts a request this queue answered (or refused).
    #[inline]
    pub fn record(&self, status: u16, bytes_in: u64, bytes_out: u64, started: Instant) {
        add(&self.counters.get().status[class_index(status)], 1);
        record_common(bytes_in, bytes_out, started);
    }

    /// A request the proxy could not forward to this application.
    pub fn proxy_error(&self) {
        add(&self.counters.get().proxy_errors, 1);
    }

    fn sum(&self, field: impl Fn(&QueueCounters) -> &AtomicU64) -> u64 {
        self.counters.each().map(|c| field(c).load(Relaxed)).sum()
    }
}

/// The latency and bytes of a request, whichever queue took it.
#[inline]
fn record_common(bytes_in: u64, bytes_out: u64, started: Instant) {
    let w = metrics().workers.get();
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let bucket = LATENCY_BOUNDS_US
        .iter()
        .position(|&bound| micros <= bound)
        .unwrap_or(LATENCY_BUCKETS - 1);
    add(&w.latency[bucket], 1);
    add(&w.latency_sum_us, micros);
    if bytes_in > 0 {
        add(&w.bytes_in, bytes_in);
    }
    add(&w.bytes_out, bytes_out);
}

/// Counts a request that no registration took (HTTP.sys answered it).
pub fn record_unrouted(status: u16, bytes_in: u64, bytes_out: u64, started: Instant) {
    add(&metrics().workers.get().unrouted[class_index(status)], 1);
    record_common(bytes_in, bytes_out, started);
}

/// How a TLS handshake went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    Full,
    Resumed,
}

/// Counts a completed TLS handshake.
pub fn tls_handshake(kind: Handshake) {
    let w = metrics().workers.get();
    add(
        match kind {
            Handshake::Full => &w.tls_full,
            Handshake::Resumed => &w.tls_resumed,
        },
        1,
    );
}

/// A parked keep-alive connection, counted until dropped.
pub struct ParkedConnection(());

impl ParkedConnection {
    pub fn enter() -> ParkedConnection {
        metrics().workers.get().parked.fetch_add(1, Relaxed);
        ParkedConnection(())
    }
}

impl Drop for ParkedConnection {
    fn drop(&mut self) {
        metrics().workers.get().parked.fetch_sub(1, Relaxed);
    }
}

/// A CGI script was started.
pub fn cgi_run() {
    add(&metrics().workers.get().cgi_runs, 1);
}

/// A CGI script ran out of `[cgi] timeout`.
pub fn cgi_timeout() {
    add(&metrics().workers.get().cgi_timeouts, 1);
}

/// What one ACME look at a name ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeRenewal {
    /// A new certificate was issued.
    Issued,
    /// Another server sharing `cert_dir` renewed it.
    PickedUp,
    Failed,
}

/// Counts an ACME renewal (rare: plain shared atomics).
pub fn acme_renewal(outcome: AcmeRenewal) {
    let m = metrics();
    let counter = match outcome {
        AcmeRenewal::Issued => &m.acme_issued,
        AcmeRenewal::PickedUp => &m.acme_picked_up,
        AcmeRenewal::Failed => &m.acme_failed,
    };
    add(counter, 1);
}

/// Counts a maintenance run and its result.
pub fn maintenance_run(succeeded: bool) {
    let m = metrics();
    add(
        if succeeded {
            &m.maintenance_ok
        } else {
            &m.maintenance_failed
        },
        1,
    );
}

/// A certificate served by an SSL binding, for the expiry gauge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundCertificate {
    /// The binding, as netsh names it (`ipport=0.0.0.0:443`).
    pub binding: String,
    /// Lowercase hex SHA-1.
    pub thumbprint: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// Replaces the list of bound certificates (at every TLS reload).
pub fn set_bound_certificates(certs: Vec<BoundCertificate>) {
    *lock(&metrics().certificates) = certs;
}

/// Everything counted, process-wide.
pub struct Metrics {
    workers: PerWorker<WorkerCounters>,
    /// Live queues by name. Weak: a queue no registration uses any more
    /// leaves the scrape.
    queues: Mutex<BTreeMap<String, Weak<QueueStats>>>,
    certificates: Mutex<Vec<BoundCertificate>>,
    acme_issued: AtomicU64,
    acme_picked_up: AtomicU64,
    acme_failed: AtomicU64,
    maintenance_ok: AtomicU64,
    maintenance_failed: AtomicU64,
}

/// One process-wide set, as there is one HTTP service: counting sites in
/// `tls`, `acme` and `site` need no handle passed down to them.
static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    workers: PerWorker::new(WorkerCounters::default),
    queues: Mutex::default(),
    certificates: Mutex::default(),
    acme_issued: AtomicU64::new(0),
    acme_picked_up: AtomicU64::new(0),
    acme_failed: AtomicU64::new(0),
    maintenance_ok: AtomicU64::new(0),
    maintenance_failed: AtomicU64::new(0),
});

fn metrics() -> &'static Metrics {
    &METRICS
}

/// A lock on a list that is only ever replaced or appended to whole: a
/// panic elsewhere cannot leave it half-edited, so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The queue named `name`, made on first use; registrations naming the
/// same queue share it (as HTTP.sys's URL groups share a request queue),
/// and a re-registration (a reload) keeps its counts. Its limit becomes
/// `limit`.
pub fn queue(name: &str, limit: usize) -> Arc<QueueStats> {
    let mut queues = lock(&metrics().queues);
    if let Some(q) = queues.get(name).and_then(Weak::upgrade) {
        q.set_limit(limit);
        return q;
    }
    // Dead entries go when the map has doubled since the last sweep: the
    // map stays within twice the live queues, and a registration costs
    // O(1) amortized (a sweep at every new name made registering n
    // queues O(n²); tests/registration_cost.rs).
    static SWEPT_AT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let swept_at = SWEPT_AT.load(std::sync::atomic::Ordering::Relaxed);
    if queues.len() >= (2 * swept_at).max(64) {
        queues.retain(|_, q| q.strong_count() > 0);
        SWEPT_AT.store(queues.len(), std::sync::atomic::Ordering::Relaxed);
    }
    let q = Arc::new(QueueStats::new(name.to_owned(), limit));
    queues.insert(name.to_owned(), Arc::downgrade(&q));
    q
}

/// The live queues, by name.
fn live_queues() -> Vec<Arc<QueueStats>> {
    lock(&metrics().queues)
        .values()
        .filter_map(Weak::upgrade)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_limit_refuses_beyond_and_frees_on_drop() {
        let q = queue("metrics-test-limit", 2);
        let a = q.enter();
        let b = q.enter();
        assert!(a.is_some() && b.is_some());
        assert!(q.enter().is_none());
        assert_eq!(q.length(), 2);
        drop(a);
        assert!(q.enter().is_some());
        assert_eq!(q.length(), 1);
        assert_eq!(q.sum(|c| &c.rejected), 1);
        assert_eq!(q.peak.load(Relaxed), 2);
    }

    #[test]
    fn same_name_shares_the_queue_and_takes_the_new_limit() {
        let a = queue("metrics-test-shared", 5);
        let b = queue("metrics-test-shared", 7);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.limit(), 7);
    }

    #[test]
    fn status_classes() {
        assert_eq!(class_index(100), 0);
        assert_eq!(class_index(204), 1);
        assert_eq!(class_index(503), 4);
        assert_eq!(class_index(42), 0);
        assert_eq!(class_index(999), 4);
    }
}
