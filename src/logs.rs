//! Access log (NCSA combined) and httperr log (HTTP.sys W3C format).
//!
//! Request handlers only format a line and hand it to a bounded channel;
//! one writer thread per log appends it with plain blocking writes (no file
//! I/O on the async workers). The writer drains the channel in batches
//! every 20–80 ms and flushes after each, so `tail -f` sees a line within
//! a fraction of a second and a busy server pays no wake-up per line. If the disk can't keep up and the channel is
//! full, lines are dropped and counted rather than queued without bound or
//! stalling requests; the writer reports how many.
//!
//! The files do not grow for ever: `access.log` and `httperr.log` roll over
//! at local midnight and at a size limit (`file.rs`), old ones are deleted
//! after `log_keep_days`, and `SIGUSR1` reopens every file for an external
//! logrotate (`reopen.rs`). The writer thread owns its file, so a rollover
//! falls between two lines.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use chrono::{DateTime, Local, Utc};

mod file;
#[cfg(unix)]
mod reopen;

pub use file::Rotation;
use file::{Clock, Header, LogFile};

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
        dir: PathBuf,
        /// The file name without `.log`: `access`, `httperr`, `maintenance`.
        stem: &'static str,
        header: Option<Header>,
        rotation: Option<Rotation>,
        clock: Clock,
    },
    Stdout,
}

impl Target {
    fn name(&self) -> String {
        match self {
            Target::File { dir, stem, .. } => dir.join(format!("{stem}.log")).display().to_string(),
            Target::Stdout => "stdout".to_owned(),
        }
    }
}

/// Where a writer's lines go now: its file, or stdout when the file could
/// not be opened (a reopen tries the file again).
enum Output {
    File(LogFile),
    Stdout(std::io::BufWriter<std::io::Stdout>),
}

impl Output {
    fn open(target: &Target) -> Output {
        match target {
            Target::Stdout => Output::stdout(),
            Target::File {
                dir,
                stem,
                header,
                rotation,
                clock,
            } => match LogFile::open(dir, stem, *header, *rotation, clock.clone()) {
                Ok(f) => Output::File(f),
                Err(e) => {
                    tracing::error!(file = %target.name(), error = %e, "cannot open log file; its lines go to stdout");
                    Output::stdout()
                }
            },
        }
    }

    fn stdout() -> Output {
        Output::Stdout(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ))
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Output::File(f) => f.write_line(line),
            Output::Stdout(out) => out.write_all(line),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::File(f) => f.flush(),
            Output::Stdout(out) => out.flush(),
        }
    }

    /// Between batches: the midnight rollover.
    fn tick(&mut self) {
        if let Output::File(f) = self {
            f.tick();
        }
    }

    /// `SIGUSR1`: the file again by its name.
    fn reopen(&mut self, target: &Target) {
        match self {
            Output::File(f) => {
                if let Err(e) = f.reopen() {
                    tracing::error!(file = %f.path().display(), error = %e, "cannot reopen the log file; the next line tries again");
                }
            }
            Output::Stdout(_) if matches!(target, Target::File { .. }) => {
                let _ = self.flush();
                *self = Output::open(target);
            }
            Output::Stdout(_) => {}
        }
    }
}

/// Asks every writer to close its file and open it again by its name
/// (`SIGUSR1`, after an external logrotate renamed the files). Cloning is cheap.
#[derive(Clone)]
pub struct Reopener {
    /// Bumped once per request; each writer reopens when it sees a new value.
    generation: Arc<AtomicU64>,
    threads: Vec<std::thread::Thread>,
}

impl Reopener {
    pub fn reopen(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for t in &self.threads {
            t.unpark();
        }
    }
}

/// A writer thread and the flag that tells it to write what is queued and end.
struct Writer {
    thread: JoinHandle<()>,
    stop: Arc<AtomicBool>,
    flush: FlushHandle,
}

/// Asks one writer to write out what is queued now: the writer reads
/// `requested` before draining its queue and stores that value in `done`
/// once the drained lines are flushed to the file.
#[derive(Clone)]
struct FlushHandle {
    thread: std::thread::Thread,
    requested: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
}

/// Makes the log writers write out every line logged so far, now
/// (`netsh http flush logbuffer`). Cloning is cheap.
#[derive(Clone, Default)]
pub struct LogFlusher {
    writers: Vec<FlushHandle>,
}

impl LogFlusher {
    /// Resolves once every line sent before the call is in its file, or
    /// after `limit`; `false` if a writer did not answer in time.
    pub async fn flush(&self, limit: std::time::Duration) -> bool {
        let wanted: Vec<(u64, &FlushHandle)> = self
            .writers
            .iter()
            .map(|w| {
                let n = w.requested.fetch_add(1, Ordering::AcqRel) + 1;
                w.thread.unpark();
                (n, w)
            })
            .collect();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if wanted
                .iter()
                .all(|(n, w)| w.done.load(Ordering::Acquire) >= *n)
            {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

fn spawn_writer(target: Target, reopen: Arc<AtomicU64>) -> (LineSink, Option<Writer>) {
    let (tx, rx) = mpsc::sync_channel::<String>(QUEUE_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    let counter = dropped.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let requested = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let (flush_requested, flush_done) = (requested.clone(), done.clone());
    let thread = std::thread::Builder::new()
        .name("portshare-log".into())
        .spawn(move || {
            let mut out = Output::open(&target);
            let mut reopened = reopen.load(Ordering::Acquire);
            // The writer polls instead of blocking in `recv`: a receiver
            // parked in `recv` must be woken (a futex call and a context
            // switch) for every line, which cost a busy server more than the
            // formatting did. Polling batches the lines of a busy period and
            // backs off when the server is quiet.
            let mut pause = WRITE_PAUSE_MIN;
            loop {
                // Read before draining, so lines sent before `finish` are
                // written in this last round.
                let stop = stopping.load(Ordering::Acquire);
                // Likewise for a flush request: the lines sent before it are
                // drained in this round.
                let flush_wanted = flush_requested.load(Ordering::Acquire);
                // Lines drained after a SIGUSR1 go to the file of that name.
                let generation = reopen.load(Ordering::Acquire);
                if generation != reopened {
                    reopened = generation;
                    out.reopen(&target);
                }
                out.tick();
                let mut ok = true;
                let mut wrote = false;
                let disconnected = loop {
                    match rx.try_recv() {
                        Ok(line) => {
                            ok &= out.write_line(line.as_bytes()).is_ok();
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
                flush_done.store(flush_wanted, Ordering::Release);
                let lost = counter.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    tracing::warn!(file = %target.name(), lines = lost, "log lines dropped: the log could not keep up");
                }
                if disconnected || stop {
                    break;
                }
                // `finish` unparks the thread: shutdown does not wait out a pause.
                std::thread::park_timeout(pause);
            }
            let _ = out.flush();
        });
    match thread {
        Ok(thread) => {
            let flush = FlushHandle {
                thread: thread.thread().clone(),
                requested,
                done,
            };
            (
                LineSink { tx, dropped },
                Some(Writer {
                    thread,
                    stop,
                    flush,
                }),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start a log writer; its lines are lost");
            (LineSink { tx, dropped }, None)
        }
    }
}

/// The server's logs. Dropping every clone of the sinks lets the writers end.
pub struct Logs {
    pub access: LineSink,
    pub httperr: LineSink,
    pub maintenance: LineSink,
    writers: Vec<Option<Writer>>,
    reopener: Reopener,
    /// The `SIGUSR1` listener, ended by `finish`.
    signal_task: Option<tokio::task::JoinHandle<()>>,
}

/// How the files in `log_dir` roll over: `[param] log_rollover`,
/// `log_keep_days`, `log_max_size` and `[http] ErrorLogFileTruncateSize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPolicy {
    pub access: Rotation,
    pub httperr: Rotation,
    /// `log_rollover=external`: the files are never rolled over nor deleted
    /// here; an external logrotate renames them and sends `SIGUSR1`.
    pub external: bool,
}

impl LogPolicy {
    pub fn from_settings(settings: &crate::config::Settings) -> LogPolicy {
        let l = &settings.logs;
        LogPolicy {
            access: Rotation {
                max_size: l.access_max_size,
                keep_days: l.keep_days,
            },
            httperr: Rotation {
                max_size: l.error_max_size,
                keep_days: l.keep_days,
            },
            external: l.external_rollover,
        }
    }
}

impl Default for LogPolicy {
    /// The keys' defaults: kept 30 days; access.log only at midnight,
    /// httperr.log also at HTTP.sys's 1 MiB.
    fn default() -> Self {
        LogPolicy {
            access: Rotation {
                max_size: 0,
                keep_days: 30,
            },
            httperr: Rotation {
                max_size: 1024 * 1024,
                keep_days: 30,
            },
            external: false,
        }
    }
}

impl Logs {
    /// `log_dir = None`: access lines go to stdout, httperr lines too.
    /// The files roll over as the keys' defaults say.
    pub fn start(log_dir: Option<&Path>) -> Logs {
        Logs::start_with(log_dir, LogPolicy::default(), file::system_clock())
    }

    /// The server's logs as `settings` configure them.
    pub fn for_settings(settings: &crate::config::Settings) -> Logs {
        Logs::start_with(
            settings.log_dir.as_deref(),
            LogPolicy::from_settings(settings),
            file::system_clock(),
        )
    }

    fn start_with(log_dir: Option<&Path>, policy: LogPolicy, clock: Clock) -> Logs {
        let target = |stem: &'static str, header: Option<Header>, rotation: Option<Rotation>| {
            match log_dir {
                Some(d) => Target::File {
                    dir: d.to_owned(),
                    stem,
                    header,
                    rotation,
                    clock: clock.clone(),
                },
                None => Target::Stdout,
            }
        };
        let own = |r: Rotation| (!policy.external).then_some(r);
        let generation = Arc::new(AtomicU64::new(0));
        let (access, a) = spawn_writer(
            target("access", None, own(policy.access)),
            generation.clone(),
        );
        let (httperr, h) = spawn_writer(
            target("httperr", Some(httperr_header), own(policy.httperr)),
            generation.clone(),
        );
        // A line a day: maintenance.log never rolls over (the maintenance
        // script's history stays in one file), but SIGUSR1 reopens it.
        let (maintenance, m) = spawn_writer(target("maintenance", None, None), generation.clone());
        let writers = vec![a, h, m];
        let reopener = Reopener {
            generation,
            threads: writers
                .iter()
                .flatten()
                .map(|w| w.thread.thread().clone())
                .collect(),
        };
        // Also without files: a stray SIGUSR1 must not end the server.
        #[cfg(unix)]
        let signal_task = reopen::listen(reopener.clone());
        #[cfg(not(unix))]
        let signal_task = None;
        Logs {
            access,
            httperr,
            maintenance,
            writers,
            reopener,
            signal_task,
        }
    }

    /// What `SIGUSR1` does: every file is closed and opened again by its name.
    pub fn reopener(&self) -> Reopener {
        self.reopener.clone()
    }

    /// What `netsh http flush logbuffer` uses to write the logs out now.
    pub fn flusher(&self) -> LogFlusher {
        LogFlusher {
            writers: self
                .writers
                .iter()
                .flatten()
                .map(|w| w.flush.clone())
                .collect(),
        }
    }

    /// Waits until every line sent so far is written. Call once the server
    /// has stopped: the writers end although clones of the sinks may still
    /// exist (TLS and the maintenance keep theirs until the very end), and
    /// lines sent after this are lost.
    pub async fn finish(self) {
        if let Some(task) = self.signal_task {
            task.abort();
        }
        drop(self.access);
        drop(self.httperr);
        drop(self.maintenance);
        let writers = self.writers;
        let _ = tokio::task::spawn_blocking(move || {
            for w in writers.into_iter().flatten() {
                w.stop.store(true, Ordering::Release);
                w.thread.thread().unpark();
                let _ = w.thread.join();
            }
        })
        .await;
    }
}

/// One access-log line in NCSA combined format (read by GoAccess, AWStats,
/// Webalizer, …).
pub struct AccessRecord<'a> {
    /// The client's IP address as text ([`crate::conn::ConnInfo::client_ip`]).
    pub client: &'a str,
    pub method: &'a str,
    pub target: &'a str,
    pub version: &'a str,
    pub status: u16,
    pub bytes: Option<u64>,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// The authenticated user (`%u`), `-` when there is none.
    pub user: Option<&'a str>,
}

impl AccessRecord<'_> {
    /// The line, built with `push_str` rather than `write!`: one is made for
    /// every request, and the formatting machinery cost more than the rest
    /// of the logging together.
    pub fn line(&self) -> String {
        let mut s = String::with_capacity(self.capacity());
        self.push_before_size(&mut s);
        push_size(&mut s, self.bytes);
        self.push_after_size(&mut s);
        s
    }

    /// The line of a response whose size is known once its body has been
    /// sent (a stream without `Content-Length`): `bytes` is not used.
    pub fn pending(&self, sink: &LineSink) -> PendingLine {
        let mut before = String::with_capacity(self.capacity());
        self.push_before_size(&mut before);
        let mut after = String::new();
        self.push_after_size(&mut after);
        PendingLine {
            before,
            after,
            sink: sink.clone(),
        }
    }

    fn capacity(&self) -> usize {
        96 + self.client.len()
            + self.target.len()
            + self.referer.map_or(0, str::len)
            + self.user_agent.map_or(0, str::len)
    }

    /// Everything up to the status and the space after it.
    fn push_before_size(&self, s: &mut String) {
        s.push_str(self.client);
        s.push_str(" - ");
        match self.user {
            // Names are checked when added (`portshare user add`); escaped
            // all the same, and a space too, which would split the field.
            Some(user) if !user.is_empty() => push_escaped_field(s, user),
            _ => s.push('-'),
        }
        s.push_str(" [");
        push_clf_time(s);
        s.push_str("] \"");
        s.push_str(self.method);
        s.push(' ');
        push_escaped(s, self.target);
        s.push(' ');
        s.push_str(self.version);
        s.push_str("\" ");
        s.push_str(itoa::Buffer::new().format(self.status));
        s.push(' ');
    }

    /// Referer, user agent and the line's end.
    fn push_after_size(&self, s: &mut String) {
        for field in [self.referer, self.user_agent] {
            s.push_str(" \"");
            push_escaped(s, field.unwrap_or("-"));
            s.push('"');
        }
        s.push('\n');
    }
}

/// `%b`: the body's size, `-` when it is not known.
fn push_size(s: &mut String, bytes: Option<u64>) {
    match bytes {
        Some(b) => s.push_str(itoa::Buffer::new().format(b)),
        None => s.push('-'),
    }
}

/// An access-log line waiting for its response's size (see
/// [`AccessRecord::pending`]). The time in it is the request's.
pub struct PendingLine {
    before: String,
    after: String,
    sink: LineSink,
}

impl PendingLine {
    /// Logs the line with the `bytes` the body had (`-` for none, as
    /// Apache's `%b`).
    pub fn finish(self, bytes: u64) {
        let PendingLine {
            mut before,
            after,
            sink,
        } = self;
        push_size(&mut before, (bytes > 0).then_some(bytes));
        before.push_str(&after);
        sink.send(before);
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

/// Appends `s` with quotes, backslashes and control characters escaped:
/// they would break a log line's fields.
fn push_escaped(out: &mut String, s: &str) {
    // Request targets and header values are printable ASCII nearly always.
    // A fold rather than `all`: without an early exit it is vectorised.
    let special = s.bytes().fold(false, |special, b| {
        special | !(0x20..0x7f).contains(&b) | (b == b'"') | (b == b'\\')
    });
    if !special {
        out.push_str(s);
        return;
    }
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
}

/// [`push_escaped`] for an unquoted field: a space becomes `\x20`.
fn push_escaped_field(out: &mut String, s: &str) {
    for (i, part) in s.split(' ').enumerate() {
        if i > 0 {
            out.push_str("\\x20");
        }
        push_escaped(out, part);
    }
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

impl<'a> HttpErrRecord<'a> {
    /// A connection refused before any request (a TLS handshake HTTP.sys
    /// would not complete): only the addresses and the reason.
    pub fn connection(client: SocketAddr, server: SocketAddr, reason: &'a str) -> Self {
        HttpErrRecord {
            client,
            server,
            version: None,
            method: None,
            uri: None,
            status: None,
            reason,
            queue: None,
        }
    }

    pub fn line(&self) -> String {
        // W3C fields are separated by spaces (so a space becomes `+`), and
        // a client's bytes must not drive a log viewer: control characters
        // are written as `\xHH`, as in the access log.
        let dash = |v: Option<&str>| match v {
            Some(v) if !v.is_empty() => {
                let mut out = String::with_capacity(v.len());
                for c in v.chars() {
                    match c {
                        ' ' => out.push('+'),
                        c if c.is_control() => {
                            let _ = write!(out, "\\x{:02x}", c as u32);
                        }
                        c => out.push(c),
                    }
                }
                out
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(target: &'a str, user_agent: Option<&'a str>) -> AccessRecord<'a> {
        AccessRecord {
            client: "192.0.2.7",
            method: "GET",
            target,
            version: "HTTP/1.1",
            status: 200,
            bytes: Some(1234),
            referer: None,
            user_agent,
            user: None,
        }
    }

    #[test]
    fn access_user_field() {
        let mut r = record("/", None);
        r.user = Some("ann");
        assert!(r.line().starts_with("192.0.2.7 - ann ["));
        r.user = Some("a b\"c");
        assert!(
            r.line().starts_with("192.0.2.7 - a\\x20b\\\"c ["),
            "{}",
            r.line()
        );
    }

    /// Everything but the time, which is checked for its shape.
    fn without_time(line: &str) -> String {
        let open = line.find('[').expect("a time field");
        let close = line.find(']').expect("a time field");
        let time = &line[open + 1..close];
        assert_eq!(time.len(), "23/Nov/2026:10:00:00 +0000".len(), "{time}");
        assert_eq!(&time[2..3], "/");
        format!("{}[T]{}", &line[..open], &line[close + 1..])
    }

    #[test]
    fn access_line_is_ncsa_combined() {
        let line = record("/a/b?c=d", Some("curl/8.0")).line();
        assert_eq!(
            without_time(&line),
            "192.0.2.7 - - [T] \"GET /a/b?c=d HTTP/1.1\" 200 1234 \"-\" \"curl/8.0\"\n"
        );
        let mut r = record("/", None);
        r.bytes = None;
        r.status = 404;
        assert_eq!(
            without_time(&r.line()),
            "192.0.2.7 - - [T] \"GET / HTTP/1.1\" 404 - \"-\" \"-\"\n"
        );
    }

    /// A pending line is the line, with the size it is finished with.
    #[test]
    fn pending_line_is_the_line_with_the_size_sent() {
        let (tx, rx) = mpsc::sync_channel(4);
        let sink = LineSink {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let mut r = record("/cgi/x.sh?a=1", Some("curl/8.0"));
        r.bytes = None;
        r.pending(&sink).finish(5_242_880);
        r.pending(&sink).finish(0);
        r.bytes = Some(5_242_880);
        let sent = rx.try_recv().expect("a line");
        assert_eq!(without_time(&sent), without_time(&r.line()));
        r.bytes = None;
        let empty = rx.try_recv().expect("a line");
        assert_eq!(without_time(&empty), without_time(&r.line()), "no body: -");
    }

    #[test]
    fn access_line_escapes_what_would_break_its_fields() {
        let line = record("/x", Some("a \"quoted\" \\ agent\u{7f}\u{85}é")).line();
        assert_eq!(
            without_time(&line),
            "192.0.2.7 - - [T] \"GET /x HTTP/1.1\" 200 1234 \"-\" \"a \\\"quoted\\\" \\\\ agent\\x7f\\x85é\"\n"
        );
    }

    #[test]
    fn httperr_line_escapes_control_characters() {
        let client: SocketAddr = "192.0.2.7:5000".parse().expect("address");
        let record = HttpErrRecord {
            client,
            server: client,
            version: Some("HTTP/1.1"),
            method: Some("G\u{8}ET"),
            uri: Some("/a\u{1b}[2J b\u{0}\u{b}\u{7f}"),
            status: Some(400),
            reason: "URL",
            queue: None,
        };
        let line = record.line();
        assert!(
            line.contains(" G\\x08ET /a\\x1b[2J+b\\x00\\x0b\\x7f 400 - URL -\r\n"),
            "{line:?}"
        );
        let body = &line[..line.len() - 2];
        assert!(!body.chars().any(char::is_control), "{line:?}");
    }

    #[tokio::test]
    async fn flusher_writes_out_what_was_logged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = Logs::start(Some(dir.path()));
        let flusher = logs.flusher();
        assert_eq!(flusher.writers.len(), 3);
        for round in 0..3 {
            let line = format!("line {round}\n");
            logs.access.send(line.clone());
            assert!(flusher.flush(std::time::Duration::from_secs(5)).await);
            let text = std::fs::read_to_string(dir.path().join("access.log")).expect("access.log");
            assert!(text.ends_with(&line), "{text:?}");
        }
        // httperr.log exists with its header once flushed.
        let text = std::fs::read_to_string(dir.path().join("httperr.log")).expect("httperr.log");
        assert!(
            text.starts_with("#Software: Microsoft HTTP API 2.0"),
            "{text}"
        );
        logs.finish().await;
        // A flusher without writers answers at once.
        assert!(LogFlusher::default().flush(std::time::Duration::ZERO).await);
    }
}
