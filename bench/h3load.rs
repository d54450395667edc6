//! `h3load`: a small HTTP/3 load generator for `bench/h3.sh` (issue 27).
//!
//! Why it exists: Debian 12 packages no HTTP/3 load generator. Its `h2load`
//! (nghttp2-client 1.52) is built without ngtcp2/nghttp3 (not linked, no
//! `h3` in `--npn-list`), so it speaks HTTP/1.1 and HTTP/2 over TCP only;
//! ngtcp2-client's `gtlsclient` fetches a URL but is no load generator. This
//! one uses the crates portshare's own HTTP/3 is built on (quinn 0.11, h3,
//! rustls with ring), as a client.
//!
//! What it does: opens `-c` QUIC connections (each on its own UDP socket, as
//! separate clients would), then keeps `-m` GET requests in flight on each,
//! for `-d` seconds (or until `-n` requests are done) after `--warmup`
//! seconds that are not counted. A request counts when it ends with status
//! 200 and its body fully read; anything else (another status, a reset
//! stream, a timeout, a lost connection) is an error, counted, and the load
//! goes on (a lost connection is reopened). The server certificate is not
//! checked (benchmark only; the handshake's signature still is). ALPN `h3`.
//!
//! Output: progress and an error breakdown on stderr, one line on stdout:
//!
//! ```text
//! requests=N errors=E conn_errors=C seconds=S req_per_s=R p50_ms=X p99_ms=Y max_ms=Z bytes=B all_requests=A
//! ```
//!
//! `requests`, `req_per_s`, the latencies and `bytes` are over the measured
//! window (warm-up excluded); `errors`, `conn_errors` and `all_requests`
//! (successful requests, warm-up and the requests finishing after the
//! window included) over the whole run, for a server's CPU time per request. Exit status 1
//! when no request succeeded.
//!
//! Run (release build: the client shares the machine with the server):
//!
//! ```sh
//! cargo build --release --example h3load
//! target/release/examples/h3load -c 10 -m 10 -d 10 --warmup 1 \
//!     --sni localhost https://127.0.0.1:8443/small.txt
//! ```

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use clap::Parser;
use http::{Request, StatusCode, Uri};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// HTTP/3 load generator (GET requests over QUIC).
#[derive(Parser, Debug)]
#[command(name = "h3load")]
struct Args {
    /// QUIC connections
    #[arg(short = 'c', long = "connections", default_value_t = 10)]
    connections: usize,
    /// Concurrent requests (streams) per connection
    #[arg(short = 'm', long = "streams", default_value_t = 10)]
    streams: usize,
    /// Seconds to measure (after the warm-up); default 10 unless -n is given
    #[arg(short = 'd', long = "duration")]
    duration: Option<f64>,
    /// Requests to measure (after the warm-up), instead of a duration
    #[arg(short = 'n', long = "requests", conflicts_with = "duration")]
    requests: Option<u64>,
    /// Seconds of load before measuring starts
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Server name sent in the TLS handshake (SNI), and the request's
    /// authority; default: the URL's host (an IP address sends no SNI)
    #[arg(long)]
    sni: Option<String>,
    /// Seconds a request (or a handshake) may take before it counts as an error
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Runtime worker threads; default: one per CPU
    #[arg(short = 't', long = "threads")]
    threads: Option<usize>,
    /// https://HOST:PORT/PATH
    url: String,
}

/// Where and what to request.
struct Target {
    addr: SocketAddr,
    server_name: String,
    uri: Uri,
    client: quinn::ClientConfig,
    timeout: Duration,
    /// -m
    streams: usize,
}

/// What every task reads: the target and the clock.
struct Shared {
    t: Arc<Target>,
    /// Requests completing from here on are measured.
    measure_from: Instant,
    /// -d: the end of the measured window.
    deadline: Option<Instant>,
    /// -n: requests left to start in the measured window.
    budget: Option<AtomicU64>,
    /// -n: set when the budget is spent (no request starts after that).
    stop: AtomicBool,
}

impl Shared {
    fn done(&self, now: Instant) -> bool {
        match self.deadline {
            Some(d) => now >= d,
            None => self.stop.load(Ordering::Relaxed),
        }
    }

    /// Whether a request may start now, and whether it is measured (-n: it
    /// took one of the budget's tickets).
    fn start(&self, now: Instant) -> Option<bool> {
        if self.done(now) {
            return None;
        }
        if now < self.measure_from {
            return Some(false);
        }
        let Some(budget) = &self.budget else {
            return Some(true);
        };
        let took = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if took.is_ok() {
            Some(true)
        } else {
            self.stop.store(true, Ordering::Relaxed);
            None
        }
    }
}

#[derive(Default)]
struct Stats {
    ok: u64,
    /// Successful requests of the whole run, warm-up and tail included (for
    /// a server's CPU time over the whole run, per request).
    all_ok: u64,
    errors: u64,
    conn_errors: u64,
    bytes: u64,
    /// Latency of each measured request, in microseconds.
    lat_us: Vec<u32>,
    /// Error messages (shortened) and how often each occurred.
    kinds: BTreeMap<String, u64>,
    /// -n: when the last measured request completed.
    last: Option<Instant>,
}

impl Stats {
    fn error(&mut self, what: String) {
        self.errors += 1;
        *self.kinds.entry(what).or_default() += 1;
    }

    fn conn_error(&mut self, what: String) {
        self.conn_errors += 1;
        *self.kinds.entry(what).or_default() += 1;
    }

    fn merge(&mut self, o: Stats) {
        self.ok += o.ok;
        self.all_ok += o.all_ok;
        self.errors += o.errors;
        self.conn_errors += o.conn_errors;
        self.bytes += o.bytes;
        self.lat_us.extend(o.lat_us);
        for (k, v) in o.kinds {
            *self.kinds.entry(k).or_default() += v;
        }
        self.last = self.last.max(o.last);
    }
}

// Accepts any server certificate (the benchmark serves a throw-away
// self-signed one); signatures are still verified, so the handshake does
// the same work as a real client's. The tests' verifier, not a copy.
#[path = "../tests/common/accept_all.rs"]
mod accept_all;
use accept_all::accepting_client;

fn client_config() -> Result<quinn::ClientConfig, String> {
    let mut tls = accepting_client(&[&rustls::version::TLS13]);
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| format!("QUIC TLS settings: {e}"))?;
    Ok(quinn::ClientConfig::new(Arc::new(quic)))
}

type SendRequest = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// One HTTP/3 connection on its own endpoint (UDP socket).
struct Conn {
    endpoint: quinn::Endpoint,
    quic: quinn::Connection,
    send: SendRequest,
}

impl Conn {
    async fn open(t: &Target) -> Result<Conn, String> {
        tokio::time::timeout(t.timeout, Conn::try_open(t))
            .await
            .map_err(|_| "connect: timed out".to_owned())?
    }

    async fn try_open(t: &Target) -> Result<Conn, String> {
        let local = if t.addr.is_ipv6() {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
        } else {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
        };
        let mut endpoint =
            quinn::Endpoint::client(local).map_err(|e| format!("UDP socket: {e}"))?;
        endpoint.set_default_client_config(t.client.clone());
        let quic = endpoint
            .connect(t.addr, &t.server_name)
            .map_err(|e| format!("connect: {e}"))?
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(quic.clone()))
            .await
            .map_err(|e| format!("h3 setup: {e}"))?;
        // The h3 connection's control streams need polling for as long as
        // the connection lives; it ends when the connection closes.
        tokio::spawn(async move {
            let _ = poll_fn(|cx| driver.poll_close(cx)).await;
        });
        Ok(Conn {
            endpoint,
            quic,
            send,
        })
    }

    /// Closes with H3_NO_ERROR, so the server drops its state now rather
    /// than after its idle timeout.
    async fn close(self) {
        self.quic.close(quinn::VarInt::from_u32(0x100), b"done");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// How a request ended.
enum Outcome {
    Ok(u64),
    Failed(String),
    /// The connection can't carry more requests (closed, GOAWAY).
    ConnGone(String),
}

async fn request(send: &mut SendRequest, uri: &Uri) -> Outcome {
    let req = match Request::get(uri.clone()).body(()) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("request: {e}")),
    };
    let mut stream = match send.send_request(req).await {
        Ok(s) => s,
        Err(e) => return stream_error("send", e),
    };
    if let Err(e) = stream.finish().await {
        return stream_error("finish", e);
    }
    let res = match stream.recv_response().await {
        Ok(r) => r,
        Err(e) => return stream_error("response", e),
    };
    // Read the body whatever the status: the stream is then done with.
    let mut bytes = 0u64;
    loop {
        match stream.recv_data().await {
            Ok(Some(mut chunk)) => {
                let n = chunk.remaining();
                bytes += n as u64;
                chunk.advance(n);
            }
            Ok(None) => break,
            Err(e) => return stream_error("body", e),
        }
    }
    if res.status() != StatusCode::OK {
        return Outcome::Failed(format!("status {}", res.status().as_u16()));
    }
    Outcome::Ok(bytes)
}

fn stream_error(at: &str, e: h3::error::StreamError) -> Outcome {
    let what = format!("{at}: {e}");
    match e {
        h3::error::StreamError::ConnectionError { .. }
        | h3::error::StreamError::RemoteClosing { .. } => Outcome::ConnGone(what),
        _ => Outcome::Failed(what),
    }
}

/// One of a connection's `-m` request loops: one request at a time until
/// the run is over or the connection can't be used.
async fn stream_loop(sh: Arc<Shared>, mut send: SendRequest, quic: quinn::Connection) -> Stats {
    let mut st = Stats::default();
    loop {
        let t0 = Instant::now();
        let Some(measured) = sh.start(t0) else {
            break;
        };
        // After the window ends, only wait a moment for requests in flight.
        let mut until = t0 + sh.t.timeout;
        if let Some(d) = sh.deadline {
            until = until.min(d.max(t0) + Duration::from_secs(1));
        }
        let outcome = tokio::time::timeout_at(until, request(&mut send, &sh.t.uri)).await;
        let t1 = Instant::now();
        let in_window = match sh.deadline {
            Some(d) => t1 >= sh.measure_from && t1 <= d,
            None => measured,
        };
        match outcome {
            Ok(Outcome::Ok(bytes)) => {
                st.all_ok += 1;
                if in_window {
                    st.ok += 1;
                    st.bytes += bytes;
                    let us = (t1 - t0).as_micros().min(u128::from(u32::MAX));
                    st.lat_us.push(us as u32);
                    st.last = Some(t1);
                }
            }
            Ok(Outcome::Failed(what)) => st.error(what),
            Ok(Outcome::ConnGone(what)) => {
                st.error(what);
                break;
            }
            // Cut off a second after the window: not counted, only noted.
            Err(_) if sh.deadline.is_some_and(|d| t1 >= d) => {
                *st.kinds
                    .entry("abandoned: in flight 1 s after the window (no error)".to_owned())
                    .or_default() += 1;
            }
            Err(_) => st.error("request timed out".to_owned()),
        }
        if quic.close_reason().is_some() {
            break;
        }
    }
    st
}

/// One connection slot: runs `-m` request loops on a connection, opens a
/// new connection if it is lost before the run ends.
async fn conn_loop(sh: Arc<Shared>, first: Result<Conn, String>) -> Stats {
    let mut st = Stats::default();
    let mut next = Some(first);
    loop {
        let opened = match next.take() {
            Some(c) => c,
            None => Conn::open(&sh.t).await,
        };
        let conn = match opened {
            Ok(c) => c,
            Err(e) => {
                st.conn_error(e);
                if sh.done(Instant::now()) {
                    break;
                }
                // Don't spin on a server that refuses connections.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut set = JoinSet::new();
        for _ in 0..sh.t.streams {
            set.spawn(stream_loop(
                sh.clone(),
                conn.send.clone(),
                conn.quic.clone(),
            ));
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(s) => st.merge(s),
                Err(e) => st.error(format!("task: {e}")),
            }
        }
        if sh.done(Instant::now()) {
            conn.close().await;
            break;
        }
        let why = conn.quic.close_reason().map_or_else(
            || "server stopped taking requests".to_owned(),
            |r| r.to_string(),
        );
        st.conn_error(format!("connection lost: {why}"));
        conn.close().await;
    }
    st
}

fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

fn secs(v: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|_| format!("{what}: {v} is not a number of seconds"))
}

/// The target: address to connect to, SNI, request URI.
fn target(args: &Args) -> Result<(SocketAddr, String, Uri), String> {
    let url: Uri = args
        .url
        .parse()
        .map_err(|e| format!("URL {}: {e}", args.url))?;
    if url.scheme_str() != Some("https") {
        return Err(format!("URL {}: only https:// is supported", args.url));
    }
    let host = url
        .host()
        .ok_or_else(|| format!("URL {}: no host", args.url))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_u16().unwrap_or(443);
    let addr = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .map_err(|e| format!("{host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}: no address"))?,
    };
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    // With --sni the request names that host too, as a browser would that
    // connected by name.
    let (server_name, authority) = match &args.sni {
        Some(name) => (name.clone(), format!("{name}:{port}")),
        None => (
            host.to_owned(),
            url.authority().map_or(String::new(), |a| a.to_string()),
        ),
    };
    let uri: Uri = format!("https://{authority}{path}")
        .parse()
        .map_err(|e| format!("request URI: {e}"))?;
    Ok((addr, server_name, uri))
}

async fn run(args: Args) -> Result<ExitCode, String> {
    if args.connections == 0 || args.streams == 0 {
        return Err("-c and -m must be at least 1".to_owned());
    }
    let (addr, server_name, uri) = target(&args)?;
    let timeout = secs(args.timeout, "--timeout")?;
    let warmup = secs(args.warmup, "--warmup")?;
    let window = match (args.duration, args.requests) {
        (_, Some(_)) => None,
        (d, None) => Some(secs(d.unwrap_or(10.0), "-d")?),
    };

    // Handshakes first, all at once, so the clock starts with every
    // connection open (a lost one is reopened within the window).
    let t = Arc::new(Target {
        addr,
        server_name,
        uri,
        client: client_config()?,
        timeout,
        streams: args.streams,
    });
    let mut opens = JoinSet::new();
    for _ in 0..args.connections {
        let t = t.clone();
        opens.spawn(async move { Conn::open(&t).await });
    }
    let mut first = Vec::with_capacity(args.connections);
    while let Some(r) = opens.join_next().await {
        first.push(r.map_err(|e| format!("connect task: {e}")).and_then(|c| c));
    }
    let up = first.iter().filter(|c| c.is_ok()).count();
    eprintln!(
        "h3load: {up}/{} connections to {} (SNI {}), {} streams each, GET {}",
        args.connections, t.addr, t.server_name, args.streams, t.uri
    );

    let measure_from = Instant::now() + warmup;
    let sh = Arc::new(Shared {
        t,
        measure_from,
        deadline: window.map(|w| measure_from + w),
        budget: args.requests.map(AtomicU64::new),
        stop: AtomicBool::new(false),
    });
    let mut slots = JoinSet::new();
    for c in first {
        slots.spawn(conn_loop(sh.clone(), c));
    }
    let mut total = Stats::default();
    while let Some(r) = slots.join_next().await {
        match r {
            Ok(s) => total.merge(s),
            Err(e) => total.error(format!("task: {e}")),
        }
    }

    let seconds = match sh.deadline {
        Some(d) => (d - sh.measure_from).as_secs_f64(),
        None => total.last.map_or(0.0, |l| {
            l.saturating_duration_since(sh.measure_from).as_secs_f64()
        }),
    };
    let rps = if seconds > 0.0 {
        total.ok as f64 / seconds
    } else {
        0.0
    };
    total.lat_us.sort_unstable();
    for (what, n) in &total.kinds {
        eprintln!("h3load: {n} × {what}");
    }
    println!(
        "requests={} errors={} conn_errors={} seconds={:.3} req_per_s={:.1} p50_ms={:.3} p99_ms={:.3} max_ms={:.3} bytes={} all_requests={}",
        total.ok,
        total.errors,
        total.conn_errors,
        seconds,
        rps,
        percentile_ms(&total.lat_us, 0.50),
        percentile_ms(&total.lat_us, 0.99),
        percentile_ms(&total.lat_us, 1.0),
        total.bytes,
        total.all_ok,
    );
    Ok(if total.ok > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("h3load: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("h3load: {e}");
            ExitCode::from(2)
        }
    }
}
