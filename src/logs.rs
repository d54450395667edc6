//! Access log (NCSA combined) and httperr log (HTTP.sys W3C format).
//!
//! Request handlers only format a line and hand it to a bounded channel;
//! one writer thread per log appends it with plain blocking writes (no file
//! I/O on the async workers). The writer drains the channel in batches
//! every 20–80 ms and flushes after each, so `tail -f` sees a line within
//! a fraction of a second and a busy server pays no wake-up per line. If the disk can't keep up and the channel is
//! full, lines are dropped and counted rather than queued without bound or
//! stalling requests; the writer reports how many.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use chrono::{DateTime, Local, Utc};

/// Lines a log may have waiting before new ones are dropped.
const QUEUE_LINES: usize = 16_384;

/// How long the writer waits between batches: short while lines are
/// coming, doubling up to the maximum when the server is quiet. A line is
/// in the file at most `WRITE_PAUSE_MAX` after it was logged.
const WRITE_PAUSE_MIN: std::time::Duration = std::time::Duration::from_millis(20);
const WRITE_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(80);

/// Header of a new httperr log, as HTTP.sys writes it.
fn httperr_header(now: DateTime<Utc>) -> String {
    format!(
        "#Software: Microsoft HTTP API 2.0\r\n#Version: 1.0\r\n#Date: {}\r\n#Fields: date time c-ip c-port s-ip s-port cs-version cs-method cs-uri sc-status s-siteid s-reason s-queuename\r\n",
        now.format("%Y-%m-%d %H:%M:%S")
    )
}

/// Sends lines to one log's writer. Cloning is cheap.
#[derive(Clone)]
pub struct LineSink {
    tx: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl LineSink {
    pub fn send(&self, line: String) {
        match self.tx.try_send(line) {
            // Disconnected: the writer only stops at shutdown.
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

enum Target {
    File {
        path: PathBuf,
        header: Option<fn(DateTime<Utc>) -> String>,
    },
    Stdout,
}

impl Target {
    fn name(&self) -> String {
        match self {
            Target::File { path, .. } => path.display().to_string(),
            Target::Stdout => "stdout".to_owned(),
        }
    }
}

fn spawn_writer(target: Target) -> (LineSink, Option<JoinHandle<()>>) {
    let (tx, rx) = mpsc::sync_channel::<String>(QUEUE_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    let counter = dropped.clone();
    let thread = std::thread::Builder::new()
        .name("portshare-log".into())
        .spawn(move || {
            let out: Box<dyn std::io::Write + Send> = match open(&target) {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(file = %target.name(), error = %e, "cannot open log file; its lines go to stdout");
                    Box::new(std::io::stdout())
                }
            };
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
            // The writer polls instead of blocking in `recv`: a receiver
            // parked in `recv` must be woken (a futex call and a context
            // switch) for every line, which cost a busy server more than the
            // formatting did. Polling batches the lines of a busy period and
            // backs off when the server is quiet.
            let mut pause = WRITE_PAUSE_MIN;
            loop {
                let mut ok = true;
                let mut wrote = false;
                let disconnected = loop {
                    match rx.try_recv() {
                        Ok(line) => {
                            ok &= out.write_all(line.as_bytes()).is_ok();
                            wrote = true;
                        }
                        Err(mpsc::TryRecvError::Empty) => break false,
                        Err(mpsc::TryRecvError::Disconnected) => break true,
                    }
                };
                if wrote {
                    if !ok || out.flush().is_err() {
                        tracing::warn!(file = %target.name(), "writing a log line failed");
                    }
                    pause = WRITE_PAUSE_MIN;
                } else {
                    pause = (pause * 2).min(WRITE_PAUSE_MAX);
                }
                let lost = counter.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    tracing::warn!(file = %target.name(), lines = lost, "log lines dropped: the log could not keep up");
                }
                if disconnected {
                    break;
                }
                std::thread::sleep(pause);
            }
            let _ = out.flush();
        });
    match thread {
        Ok(handle) => (LineSink { tx, dropped }, Some(handle)),
        Err(e) => {
            tracing::error!(error = %e, "cannot start a log writer; its lines are lost");
            (LineSink { tx, dropped }, None)
        }
    }
}

fn open(target: &Target) -> std::io::Result<Box<dyn std::io::Write + Send>> {
    match target {
        Target::Stdout => Ok(Box::new(std::io::stdout())),
        Target::File { path, header } => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            if let Some(header) = header {
                if file.metadata()?.len() == 0 {
                    file.write_all(header(Utc::now()).as_bytes())?;
                }
            }
            Ok(Box::new(file))
        }
    }
}

/// The server's logs. Dropping every clone of the sinks lets the writers end.
pub struct Logs {
    pub access: LineSink,
    pub httperr: LineSink,
    pub maintenance: LineSink,
    writers: Vec<Option<JoinHandle<()>>>,
}

impl Logs {
    /// `log_dir = None`: access lines go to stdout, httperr lines too.
    pub fn start(log_dir: Option<&Path>) -> Logs {
        let (access, a) = spawn_writer(match log_dir {
            Some(d) => Target::File {
                path: d.join("access.log"),
                header: None,
            },
            None => Target::Stdout,
        });
        let (httperr, h) = spawn_writer(match log_dir {
            Some(d) => Target::File {
                path: d.join("httperr.log"),
                header: Some(httperr_header),
            },
            None => Target::Stdout,
        });
        let (maintenance, m) = spawn_writer(match log_dir {
            Some(d) => Target::File {
                path: d.join("maintenance.log"),
                header: None,
            },
            None => Target::Stdout,
        });
        Logs {
            access,
            httperr,
            maintenance,
            writers: vec![a, h, m],
        }
    }

    /// Waits until every line sent so far is written. Call after the last
    /// sender is gone (the server has stopped).
    pub async fn finish(self) {
        drop(self.access);
        drop(self.httperr);
        drop(self.maintenance);
        let writers = self.writers;
        let _ = tokio::task::spawn_blocking(move || {
            for w in writers.into_iter().flatten() {
                let _ = w.join();
            }
        })
        .await;
    }
}

/// One access-log line in NCSA combined format (read by GoAccess, AWStats,
/// Webalizer, …).
pub struct AccessRecord<'a> {
    pub client: SocketAddr,
    pub method: &'a str,
    pub target: &'a str,
    pub version: &'a str,
    pub status: u16,
    pub bytes: Option<u64>,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

impl AccessRecord<'_> {
    pub fn line(&self) -> String {
        let mut s = String::with_capacity(160);
        let _ = write!(s, "{} - - [", self.client.ip());
        push_clf_time(&mut s);
        let _ = write!(
            s,
            "] \"{} {} {}\" {} ",
            self.method,
            escape(self.target),
            self.version,
            self.status
        );
        match self.bytes {
            Some(b) => {
                let _ = write!(s, "{b}");
            }
            None => s.push('-'),
        }
        let _ = writeln!(
            s,
            " \"{}\" \"{}\"",
            self.referer
                .map(escape)
                .unwrap_or(std::borrow::Cow::Borrowed("-")),
            self.user_agent
                .map(escape)
                .unwrap_or(std::borrow::Cow::Borrowed("-"))
        );
        s
    }
}

/// Appends the current local time as `23/Nov/2026:10:00:00 +0000`. The
/// text changes once a second, so each thread formats it once a second
/// rather than once a request.
fn push_clf_time(out: &mut String) {
    thread_local! {
        static CACHED: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != second {
            c.1 = Local::now().format("%d/%b/%Y:%H:%M:%S %z").to_string();
            c.0 = second;
        }
        out.push_str(&c.1);
    });
}

/// Quotes and control characters would break a log line's fields.
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// One line of the httperr log.
pub struct HttpErrRecord<'a> {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub version: Option<&'a str>,
    pub method: Option<&'a str>,
    pub uri: Option<&'a str>,
    pub status: Option<u16>,
    pub reason: &'a str,
    pub queue: Option<&'a str>,
}

impl HttpErrRecord<'_> {
    pub fn line(&self) -> String {
        let dash = |v: Option<&str>| match v {
            Some(v) if !v.is_empty() => v.replace(' ', "+"),
            _ => "-".to_owned(),
        };
        format!(
            "{} {} {} {} {} {} {} {} {} - {} {}\r\n",
            Utc::now().format("%Y-%m-%d %H:%M:%S"),
            self.client.ip().to_canonical(),
            self.client.port(),
            self.server.ip().to_canonical(),
            self.server.port(),
            dash(self.version),
            dash(self.method),
            dash(self.uri),
            self.status.map_or("-".to_owned(), |s| s.to_string()),
            self.reason,
            dash(self.queue),
        )
    }
}
