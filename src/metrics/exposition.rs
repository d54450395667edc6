//! The scrape: sums the per-worker copies and writes them in the
//! Prometheus text format (0.0.4) through `prometheus-client`, the
//! maintained Rust client, so names, escaping and histogram layout follow
//! the format without hand-written text.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::{
    live_queues, lock, metrics, BoundCertificate, QueueStats, WorkerCounters, CLASSES,
    LATENCY_BOUNDS_US, LATENCY_BUCKETS,
};

const CLASS_NAMES: [&str; CLASSES] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Label of requests no registration took.
const UNROUTED: &str = "(none)";

/// Everything a scrape shows, summed at one moment.
#[derive(Debug, Default)]
struct Scrape {
    open_connections: u64,
    parked: i64,
    latency: [u64; LATENCY_BUCKETS],
    latency_sum_us: u64,
    bytes_in: u64,
    bytes_out: u64,
    tls_full: u64,
    tls_resumed: u64,
    unrouted: [u64; CLASSES],
    cgi_runs: u64,
    cgi_timeouts: u64,
    acme: [(&'static str, u64); 3],
    maintenance: [(&'static str, u64); 2],
    queues: Vec<QueueScrape>,
    certificates: Vec<BoundCertificate>,
    now: i64,
}

#[derive(Debug)]
struct QueueScrape {
    name: String,
    status: [u64; CLASSES],
    rejected: u64,
    proxy_errors: u64,
    length: u64,
    limit: u64,
    peak: u64,
}

fn queue_scrape(q: &Arc<QueueStats>) -> QueueScrape {
    let mut status = [0; CLASSES];
    for c in q.counters.each() {
        for (sum, v) in status.iter_mut().zip(&c.status) {
            *sum += v.load(Relaxed);
        }
    }
    QueueScrape {
        name: q.name.clone(),
        status,
        rejected: q.sum(|c| &c.rejected),
        proxy_errors: q.sum(|c| &c.proxy_errors),
        length: q.length() as u64,
        limit: q.limit() as u64,
        peak: q.peak.load(Relaxed) as u64,
    }
}

fn take(open_connections: usize) -> Scrape {
    let m = metrics();
    let mut s = Scrape {
        open_connections: open_connections as u64,
        ..Scrape::default()
    };
    let sum = |f: fn(&WorkerCounters) -> u64| m.workers.each().map(f).sum::<u64>();
    for w in m.workers.each() {
        for (sum, v) in s.latency.iter_mut().zip(&w.latency) {
            *sum += v.load(Relaxed);
        }
        for (sum, v) in s.unrouted.iter_mut().zip(&w.unrouted) {
            *sum += v.load(Relaxed);
        }
        s.parked += w.parked.load(Relaxed);
    }
    s.latency_sum_us = sum(|w| w.latency_sum_us.load(Relaxed));
    s.bytes_in = sum(|w| w.bytes_in.load(Relaxed));
    s.bytes_out = sum(|w| w.bytes_out.load(Relaxed));
    s.tls_full = sum(|w| w.tls_full.load(Relaxed));
    s.tls_resumed = sum(|w| w.tls_resumed.load(Relaxed));
    s.cgi_runs = sum(|w| w.cgi_runs.load(Relaxed));
    s.cgi_timeouts = sum(|w| w.cgi_timeouts.load(Relaxed));
    s.acme = [
        ("issued", m.acme_issued.load(Relaxed)),
        ("picked_up", m.acme_picked_up.load(Relaxed)),
        ("failed", m.acme_failed.load(Relaxed)),
    ];
    s.maintenance = [
        ("ok", m.maintenance_ok.load(Relaxed)),
        ("failed", m.maintenance_failed.load(Relaxed)),
    ];
    s.queues = live_queues().iter().map(queue_scrape).collect();
    s.certificates = lock(&m.certificates).clone();
    s.now = chrono::Utc::now().timestamp();
    s
}

/// The metrics page: Prometheus text format, `open_connections` being the
/// server's count of client connections open now.
pub fn render(open_connections: usize) -> String {
    let mut registry = Registry::with_prefix("portshare");
    registry.register_collector(Box::new(take(open_connections)));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        // Writing to a String cannot fail; a collector error would be ours.
        tracing::error!(error = %e, "encoding the metrics failed");
    }
    out
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> Result<(), std::fmt::Error> {
    ConstCounter::new(value).encode(encoder.encode_descriptor(
        name,
        help,
        unit,
        MetricType::Counter,
    )?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let mut family = encoder.encode_descriptor(
                "requests",
                "Requests answered, by request queue (registration) and status class",
                None,
                MetricType::Counter,
            )?;
            let named = self.queues.iter().map(|q| (q.name.as_str(), &q.status));
            for (queue, status) in named.chain([(UNROUTED, &self.unrouted)]) {
                for (class, n) in CLASS_NAMES.iter().zip(status) {
                    let labels = [("queue", queue), ("class", class)];
                    ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "queue_rejected_requests",
                "Requests refused with 503 QueueFull because the request queue was full",
                None,
                MetricType::Counter,
            )?;
            for q in &self.queues {
                let labels = [("queue", q.name.as_str())];
                ConstCounter::new(q.rejected).encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, value) in [
            (
                "queue_length",
                "Requests in the request queue now",
                (|q: &QueueScrape| q.length) as fn(&QueueScrape) -> u64,
            ),
            (
                "queue_limit",
                "The request queue's limit (RequestQueueLimit or queue_limit=)",
                |q| q.limit,
            ),
            (
                "queue_peak_length",
                "The most requests the request queue held at once",
                |q| q.peak,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for q in &self.queues {
                let labels = [("queue", q.name.as_str())];
                let v = i64::try_from(value(q)).unwrap_or(i64::MAX);
                ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "proxy_backend_errors",
                "Requests a proxied application's backend could not answer, by application",
                None,
                MetricType::Counter,
            )?;
            for q in &self.queues {
                let labels = [("app", q.name.as_str())];
                ConstCounter::new(q.proxy_errors).encode(family.encode_family(&labels)?)?;
            }
        }
        counter(
            &mut encoder,
            "received",
            "Request body bytes received (from Content-Length)",
            Some(&Unit::Bytes),
            self.bytes_in,
        )?;
        counter(
            &mut encoder,
            "sent",
            "Response body bytes sent (from Content-Length, as the access log)",
            Some(&Unit::Bytes),
            self.bytes_out,
        )?;
        {
            // Per-bucket counts: the encoder adds them up into the
            // cumulative `le` series itself.
            let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_US
                .iter()
                .map(|b| *b as f64 / 1e6)
                .chain([f64::INFINITY])
                .zip(self.latency)
                .collect();
            let count = self.latency.iter().sum();
            encoder
                .encode_descriptor(
                    "request_duration",
                    "Time from the request head to the response head",
                    Some(&Unit::Seconds),
                    MetricType::Histogram,
                )?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    self.latency_sum_us as f64 / 1e6,
                    count,
                    &buckets,
                    None,
                )?;
        }
        gauge(
            &mut encoder,
            "open_connections",
            "Client connections open now (parked ones included)",
            i64::try_from(self.open_connections).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut encoder,
            "parked_connections",
            "Idle keep-alive connections parked now",
            self.parked,
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "tls_handshakes",
                "Completed TLS handshakes, full or resumed",
                None,
                MetricType::Counter,
            )?;
            for (kind, n) in [("full", self.tls_full), ("resumed", self.tls_resumed)] {
                ConstCounter::new(n).encode(family.encode_family(&[("kind", kind)])?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "certificate_expiry",
                "Seconds until the certificate of each SSL binding expires (negative: expired)",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?;
            for c in &self.certificates {
                let labels = [
                    ("binding", c.binding.as_str()),
                    ("thumbprint", c.thumbprint.as_str()),
                ];
                ConstGauge::new(c.not_after - self.now).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "acme_renewals",
                "ACME certificate renewals, by result",
                None,
                MetricType::Counter,
            )?;
            for (result, n) in self.acme {
                ConstCounter::new(n).encode(family.encode_family(&[("result", result)])?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "maintenance_runs",
                "Daily maintenance runs, by result",
                None,
                MetricType::Counter,
            )?;
            for (result, n) in self.maintenance {
                ConstCounter::new(n).encode(family.encode_family(&[("result", result)])?)?;
            }
        }
        counter(
            &mut encoder,
            "cgi_runs",
            "CGI scripts started",
            None,
            self.cgi_runs,
        )?;
        counter(
            &mut encoder,
            "cgi_timeouts",
            "CGI scripts stopped at the [cgi] timeout",
            None,
            self.cgi_timeouts,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn scrape_shows_queue_counts_and_histogram() {
        let q = super::super::queue("metrics-test-render", 3);
        let slot = q.enter();
        q.record(200, 10, 100, Instant::now());
        q.record(503, 0, 5, Instant::now());
        q.proxy_error();
        let text = render(4);
        drop(slot);
        assert!(
            text.contains(
                "portshare_requests_total{queue=\"metrics-test-render\",class=\"2xx\"} 1"
            ),
            "{text}"
        );
        assert!(text
            .contains("portshare_requests_total{queue=\"metrics-test-render\",class=\"5xx\"} 1"));
        assert!(text.contains("portshare_queue_length{queue=\"metrics-test-render\"} 1"));
        assert!(text.contains("portshare_queue_limit{queue=\"metrics-test-render\"} 3"));
        assert!(
            text.contains("portshare_proxy_backend_errors_total{app=\"metrics-test-render\"} 1")
        );
        assert!(text.contains("portshare_open_connections 4"));
        assert!(text.contains("# TYPE portshare_request_duration_seconds histogram"));
        assert!(text.contains("portshare_request_duration_seconds_bucket{le=\"+Inf\"}"));
    }
}
