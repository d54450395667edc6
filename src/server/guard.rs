//! HTTP.sys's request checks and connection timers, in front of hyper.
//!
//! HTTP.sys answers a malformed or oversized HTTP/1.x request head itself,
//! with its own error page, before any application sees it; hyper would
//! answer such requests with its own bare responses. So every HTTP/1.x byte
//! passes through [`Guarded`] first: it collects each request head, checks it
//! against the `[http]` limits, and only then hands it to hyper (or, whole,
//! to `server::direct`: [`Guarded::poll_next`]). A bad head
//! is answered with the HTTP.sys page (written straight to the socket) and
//! the connection is closed, as HTTP.sys does. Body bytes are passed through
//! while their framing (Content-Length or chunked) is followed, so the next
//! pipelined head is found. HTTP/2 connections and upgraded connections
//! (WebSocket) are passed through untouched.
//!
//! The guard also runs the two configurable timers: the idle timer (no
//! traffic at all between requests) and the header-wait timer (a head that
//! has started but is not complete — slowloris). A timer that fires closes
//! the connection without a response and writes an httperr line.
//!
//! Parking: an idle keep-alive connection should cost next to nothing, but
//! hyper keeps its read and write buffers (16 KiB) for as long as it owns a
//! connection. So when a plain-HTTP/1 connection has been idle for
//! [`PARK_AFTER`] (at once when more than [`PARK_AT_ONCE_ABOVE`] connections
//! are open) with nothing in flight — every response flushed, no partial
//! request — the guard
//! reports end-of-stream to hyper, which then closes its side cleanly
//! (without shutting the socket: that is a no-op here), and the socket is
//! handed back through [`Park`]. The connection loop waits for the next
//! bytes with nothing but the socket, then starts a fresh hyper connection
//! on it. The client sees one keep-alive connection throughout.
//!
//! Written by hand because no HTTP library offers HTTP.sys's answers; the
//! parsing is a scan for line ends, not a full HTTP parser — hyper still
//! parses every head it is given.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use super::activity::Activity;
use crate::config::Limits;
use crate::errors::HttpSysError;
use crate::logs::{HttpErrRecord, LineSink};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long a connection must have been idle before it is parked. A client
/// that sends its next request sooner (a page's other resources, a load
/// generator) keeps its hyper connection: parking and resuming cost more
/// than the buffers do over such a short time.
pub const PARK_AFTER: Duration = Duration::from_millis(250);

/// With more open connections than this, a connection is parked as soon as
/// it has nothing to read: memory then matters more than the cost of
/// resuming.
pub const PARK_AT_ONCE_ABOVE: usize = 256;

/// Where the byte stream from the client stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Collecting a request head.
    Head,
    /// Passing `n` more body bytes.
    Body(u64),
    /// Chunked body: reading a chunk-size line.
    ChunkSize,
    /// Chunked body: `n` data bytes.
    ChunkData(u64),
    /// Chunked body: the CRLF after a chunk's data.
    ChunkEnd,
    /// Chunked body: trailer lines until an empty one.
    Trailers,
    /// HTTP/2: hyper's from here; the guard keeps only the idle timer
    /// (no stream active) and the send-rate check.
    H2,
    /// A request that may switch protocols (`Upgrade`, `CONNECT`) has been
    /// handed on: what the client sends next is held back until the
    /// response shows whether the switch happened.
    AwaitSwitch { connect: bool },
    /// The protocol was switched (a `101`, or a `2xx` to `CONNECT`): the
    /// bytes are no longer HTTP/1, no more checks.
    Tunnel,
    /// An error page is being written; then EOF.
    Failing,
    /// The connection is finished (timer fired or error written).
    Closed,
}

/// What the guard needs to know about the connection.
pub struct GuardContext {
    pub limits: Limits,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub httperr: LineSink,
    pub activity: Arc<Activity>,
}

/// Where a parked connection goes, and how the guard knows that no
/// response is in flight.
pub struct Park<S> {
    /// Connections open on the whole server.
    pub open_connections: Arc<AtomicUsize>,
    pub to: oneshot::Sender<Parked<S>>,
}

/// An idle connection handed back by the guard.
pub struct Parked<S> {
    pub stream: S,
    /// When the idle timer (IdleConnectionTimeout) runs out.
    pub idle_deadline: Instant,
}

/// What [`Guarded::poll_next`] found.
pub enum Next {
    /// One whole request head, checked.
    Head(Bytes),
    /// Bytes that are not a request head (an HTTP/2 preface): hyper's.
    Other,
    /// The stream has ended (or is being parked).
    End,
}

impl GuardContext {
    fn log(&self, err: Option<HttpSysError>, reason: &str, head: Option<&RequestLine<'_>>) {
        let record = HttpErrRecord {
            client: self.peer,
            server: self.local,
            version: head.map(|h| h.version),
            method: head.map(|h| h.method),
            uri: head.map(|h| h.target),
            status: err.map(|e| e.status().as_u16()),
            reason,
            queue: None,
        };
        self.httperr.send(record.line());
    }

    /// The idle timer ran out on a parked connection.
    pub fn log_idle_timeout(&self) {
        self.log(None, "Timer_ConnectionIdle", None);
    }
}

/// A client stream seen through HTTP.sys's request checks.
pub struct Guarded<S> {
    /// Always `Some` while hyper uses the stream; taken when it is
    /// handed back after parking.
    inner: Option<S>,
    ctx: GuardContext,
    phase: Phase,
    /// Bytes read from the client, not yet handed to hyper (or checked).
    pending: BytesMut,
    /// Checked bytes ready for hyper.
    ready_out: Bytes,
    /// `ready_out` is one whole request head, none of it read yet.
    head_ready: bool,
    error_out: Bytes,
    /// Fires at or before `deadline`. Every request would move it twice
    /// (head started, response written), so it is only moved earlier at
    /// once; when it fires before `deadline` it is re-armed then.
    timer: Pin<Box<Sleep>>,
    /// When the running timer (idle, park, header wait or entity body)
    /// really runs out.
    deadline: Instant,
    /// The waker the timer was last polled with. Until the timer fires,
    /// polling it again with the same waker changes nothing, and the guard
    /// would otherwise poll it several times per request.
    timer_waker: Option<Waker>,
    first_exchange: bool,
    /// Chunk-extension bytes in the current request body.
    chunk_ext_bytes: usize,
    idle_deadline: Instant,
    park: Option<Park<S>>,
    /// Bytes were written since the last completed flush: hyper may still
    /// hold part of a response.
    unflushed: bool,
    /// End-of-stream was reported to hyper to park the connection.
    parked: bool,
    /// Response bytes written to the client, ever.
    written: u64,
    /// Something was written since the last head was handed to hyper.
    answered: bool,
    /// The guard refused a request in the middle of its body.
    failed_in_body: bool,
    /// The guard has answered for itself and closed: hyper's late writes
    /// must not follow its page.
    page_sent: bool,
    /// `Activity::started` when the HTTP/2 idle timer was last armed.
    started_seen: usize,
    /// The last write to the client could not go out (its window is full).
    write_blocked: bool,
    /// Measures the send rate while a response waits on the client.
    send_watch: Option<SendWatch>,
    /// hyper's read, waiting while a protocol switch is decided.
    switch_waker: Option<Waker>,
}

/// One window of HTTP.sys's `MinSendRate` check.
struct SendWatch {
    timer: Pin<Box<Sleep>>,
    started: Instant,
    /// `Guarded::written` when the window started.
    written: u64,
}

fn answered_by_guard() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the request was refused with HTTP.sys's page and the connection closed",
    )
}

fn detached() -> io::Error {
    io::Error::other("the connection was handed back for parking")
}

impl<S> Guarded<S> {
    pub fn new(inner: S, ctx: GuardContext) -> Guarded<S> {
        let idle = ctx.limits.idle_connection_timeout;
        Guarded::resume(inner, ctx, Instant::now() + idle)
    }

    /// A stream that was parked, with the idle deadline it had.
    pub fn resume(inner: S, ctx: GuardContext, idle_deadline: Instant) -> Guarded<S> {
        Guarded {
            inner: Some(inner),
            ctx,
            phase: Phase::Head,
            pending: BytesMut::new(),
            ready_out: Bytes::new(),
            head_ready: false,
            error_out: Bytes::new(),
            timer: Box::pin(tokio::time::sleep_until(idle_deadline)),
            deadline: idle_deadline,
            timer_waker: None,
            first_exchange: true,
            chunk_ext_bytes: 0,
            idle_deadline,
            park: None,
            unflushed: false,
            parked: false,
            written: 0,
            answered: false,
            failed_in_body: false,
            page_sent: false,
            started_seen: 0,
            write_blocked: false,
            send_watch: None,
            switch_waker: None,
        }
    }

    /// Lets the guard park the connection when it goes idle (plain
    /// HTTP/1 only: see the module documentation).
    pub fn with_park(mut self, park: Park<S>) -> Guarded<S> {
        self.park = Some(park);
        self
    }

    fn inner(&mut self) -> io::Result<Pin<&mut S>>
    where
        S: Unpin,
    {
        self.inner.as_mut().map(Pin::new).ok_or_else(detached)
    }

    /// Nothing is in flight in either direction, so hyper may let go.
    fn can_park(&self) -> bool {
        self.phase == Phase::Head
            && !self.first_exchange
            && self.pending.is_empty()
            && self.ready_out.is_empty()
            && !self.unflushed
            && self.park.is_some()
            && self.ctx.activity.in_flight() == 0
    }

    /// So many connections are open that idle ones are parked at once.
    fn crowded(&self) -> bool {
        self.park
            .as_ref()
            .is_some_and(|p| p.open_connections.load(Ordering::Relaxed) > PARK_AT_ONCE_ABOVE)
    }

    /// Counts what went out; a write that cannot go out starts the send
    /// rate check, which may end the connection.
    fn sent(
        &mut self,
        polled: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(n)) => {
                self.written += n as u64;
                self.write_blocked = false;
            }
            Poll::Pending => {
                self.write_blocked = true;
                if self.send_too_slow(cx) {
                    self.close_for("Timer_MinBytesPerSecond");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client took the response more slowly than MinSendRate",
                    )));
                }
            }
            Poll::Ready(Err(_)) => {}
        }
        polled
    }

    /// Ends the connection because a timer ran out: end-of-stream to
    /// hyper, and an httperr line.
    fn close_for(&mut self, reason: &'static str) {
        tracing::debug!(peer = %self.ctx.peer, reason, "timer fired; closing the connection");
        self.ctx.log(None, reason, None);
        self.phase = Phase::Closed;
        self.send_watch = None;
    }

    /// HTTP.sys's `MinSendRate`: true when, over a whole window during which
    /// a response waited on the client, fewer bytes went out than the rate
    /// allows. Measures only while something waits on the client, so a
    /// slow application or a long poll never counts against it.
    fn send_too_slow(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.write_blocked && !self.ctx.activity.waiting_on_client() {
            self.send_watch = None;
            return false;
        }
        let window = self.ctx.limits.min_send_rate_window;
        let watch = self.send_watch.get_or_insert_with(|| SendWatch {
            timer: Box::pin(tokio::time::sleep(window)),
            started: Instant::now(),
            written: self.written,
        });
        if watch.timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        let sent = self.written - watch.written;
        let allowed = watch.started.elapsed().as_secs_f64() * self.ctx.limits.min_send_rate as f64;
        if (sent as f64) < allowed {
            return true;
        }
        // Fast enough: measure the next window.
        watch.started = Instant::now();
        watch.written = self.written;
        watch.timer.as_mut().reset(watch.started + window);
        let _ = watch.timer.as_mut().poll(cx);
        false
    }

    /// A response is going out (`first` is the start of this write): between
    /// requests, the idle timer counts from its end. After a request that
    /// could switch protocols, the response's status line says whether it
    /// did: only a `101` (a `2xx` to `CONNECT`) that hyper actually writes
    /// turns the checks off.
    fn response_written(&mut self, first: &[u8]) {
        self.answered = true;
        if let Phase::AwaitSwitch { connect } = self.phase {
            let switched = if connect {
                first.starts_with(b"HTTP/1.1 2")
            } else {
                first.starts_with(b"HTTP/1.1 101 ")
            };
            self.phase = if switched { Phase::Tunnel } else { Phase::Head };
            if let Some(reader) = self.switch_waker.take() {
                reader.wake();
            }
        }
        self.unflushed = true;
        if self.phase == Phase::Head && self.pending.is_empty() {
            let now = Instant::now();
            let t = self.ctx.limits.idle_connection_timeout;
            self.idle_deadline = now + t;
            self.arm_at(
                now + if self.park.is_some() {
                    t.min(PARK_AFTER)
                } else {
                    t
                },
            );
        }
    }

    fn arm(&mut self, after: Duration) {
        self.arm_at(Instant::now() + after);
    }

    fn arm_at(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if deadline < self.timer.deadline() {
            self.timer.as_mut().reset(deadline);
            // A timer that had fired gave its waker away; reset, it only
            // gets one by being polled again.
            self.timer_waker = None;
        }
    }

    /// The running timer has run out (not just its early wake-up).
    fn timer_expired(&mut self, cx: &mut Context<'_>) -> bool {
        // Not fired and already set to wake this task: nothing to do.
        if !self.timer.is_elapsed()
            && self
                .timer_waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return false;
        }
        while self.timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= self.deadline {
                return true;
            }
            let deadline = self.deadline;
            self.timer.as_mut().reset(deadline);
        }
        self.timer_waker = Some(cx.waker().clone());
        false
    }

    fn fail(&mut self, err: HttpSysError, head: Option<&RequestLine<'_>>) {
        self.ctx.log(Some(err), err.reason(), head);
        // In a body, the request is hyper's already: it gets end-of-stream
        // mid-body (its application sees the body fail), and the page goes
        // out unless a response has begun.
        self.failed_in_body = self.phase != Phase::Head;
        self.error_out = if self.failed_in_body && self.answered {
            Bytes::new()
        } else {
            err.raw_response()
        };
        self.ready_out = Bytes::new();
        self.pending.clear();
        self.phase = Phase::Failing;
    }

    /// Hands up to `n` pending body bytes to hyper; the phase becomes
    /// `more(left)` or, when all `n` are through, `done`. False when no
    /// bytes are pending.
    fn pass_body(&mut self, n: u64, more: fn(u64) -> Phase, done: Phase) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let take = usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(self.pending.len());
        self.ready_out = self.pending.split_to(take).freeze();
        let left = n - take as u64;
        self.phase = if left == 0 { done } else { more(left) };
        true
    }

    /// Moves checked bytes from `pending` to `ready_out`, advancing the
    /// phase; returns false when more input is needed.
    fn advance(&mut self) -> bool {
        loop {
            if !self.ready_out.is_empty() {
                return true;
            }
            self.head_ready = false;
            match self.phase {
                Phase::H2 | Phase::Tunnel => {
                    if self.pending.is_empty() {
                        return false;
                    }
                    self.ready_out = self.pending.split().freeze();
                    return true;
                }
                Phase::Failing | Phase::Closed => return true,
                // Held until the response is seen (`poll_write`).
                Phase::AwaitSwitch { .. } => return false,
                Phase::Head => {
                    if self.pending.is_empty() {
                        return false;
                    }
                    if self.first_exchange
                        && H2_PREFACE
                            .starts_with(&self.pending[..self.pending.len().min(H2_PREFACE.len())])
                    {
                        if self.pending.len() < H2_PREFACE.len() {
                            return false;
                        }
                        self.phase = Phase::H2;
                        // From now on the idle timer only (see `poll_read_h2`).
                        self.arm(self.ctx.limits.idle_connection_timeout);
                        continue;
                    }
                    // Tolerate blank lines before a request (RFC 9112 2.2).
                    while self.pending.starts_with(b"\r\n") {
                        self.pending.advance(2);
                    }
                    match find_head_end(&self.pending) {
                        None => {
                            if let Some(err) = partial_head_error(&self.pending, &self.ctx.limits) {
                                let line =
                                    String::from_utf8_lossy(first_line(&self.pending)).into_owned();
                                let head = RequestLine::parse(&line);
                                self.fail(err, head.as_ref());
                            }
                            return matches!(self.phase, Phase::Failing);
                        }
                        Some(end) => {
                            let head = self.pending.split_to(end);
                            match check_head(&head, &self.ctx.limits) {
                                Ok(next) => {
                                    self.first_exchange = false;
                                    self.chunk_ext_bytes = 0;
                                    self.phase = next;
                                    self.ready_out = escape_target(head);
                                    self.head_ready = true;
                                    self.answered = false;
                                }
                                Err(err) => {
                                    let line =
                                        String::from_utf8_lossy(first_line(&head)).into_owned();
                                    let parsed = RequestLine::parse(&line);
                                    self.fail(err, parsed.as_ref());
                                }
                            }
                        }
                    }
                }
                Phase::Body(n) => {
                    if !self.pass_body(n, Phase::Body, Phase::Head) {
                        return false;
                    }
                }
                Phase::ChunkSize => {
                    let Some(eol) = find_crlf(&self.pending) else {
                        if self.pending.len() > MAX_CHUNK_LINE {
                            self.fail(HttpSysError::BadRequest, None);
                            return true;
                        }
                        return false;
                    };
                    let Some((size, ext)) = parse_chunk_line(&self.pending[..eol]) else {
                        self.fail(HttpSysError::BadRequest, None);
                        return true;
                    };
                    // hyper refuses a body whose extensions add up to more.
                    self.chunk_ext_bytes += ext;
                    if self.chunk_ext_bytes > MAX_CHUNK_EXTENSIONS {
                        self.fail(HttpSysError::BadRequest, None);
                        return true;
                    }
                    self.ready_out = self.pending.split_to(eol + 2).freeze();
                    self.phase = if size == 0 {
                        Phase::Trailers
                    } else {
                        Phase::ChunkData(size)
                    };
                }
                Phase::ChunkData(n) => {
                    if !self.pass_body(n, Phase::ChunkData, Phase::ChunkEnd) {
                        return false;
                    }
                }
                Phase::ChunkEnd => {
                    if self.pending.len() < 2 {
                        return false;
                    }
                    if !self.pending.starts_with(b"\r\n") {
                        self.fail(HttpSysError::BadRequest, None);
                        return true;
                    }
                    self.ready_out = self.pending.split_to(2).freeze();
                    self.phase = Phase::ChunkSize;
                }
                Phase::Trailers => {
                    let Some(eol) = find_crlf(&self.pending) else {
                        if self.pending.len() > self.ctx.limits.max_request_bytes {
                            self.fail(HttpSysError::RequestTooLong, None);
                            return true;
                        }
                        return false;
                    };
                    let empty = eol == 0;
                    if !empty && !is_field_line(&self.pending[..eol]) {
                        self.fail(HttpSysError::BadRequest, None);
                        return true;
                    }
                    self.ready_out = self.pending.split_to(eol + 2).freeze();
                    if empty {
                        self.phase = Phase::Head;
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // HTTP/2 and upgraded connections: once nothing is buffered here,
        // read straight into hyper's buffer.
        if this.passing_through() {
            if this.phase == Phase::H2 {
                return this.poll_read_h2(cx, buf);
            }
            return this.inner()?.poll_read(cx, buf);
        }
        ready!(this.poll_ready_out(cx))?;
        // Empty: end of stream.
        let n = this.ready_out.len().min(buf.remaining());
        buf.put_slice(&this.ready_out[..n]);
        this.ready_out.advance(n);
        this.head_ready = false;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Guarded<S> {
    /// HTTP/2 or upgraded, with nothing buffered here.
    fn passing_through(&self) -> bool {
        matches!(self.phase, Phase::H2 | Phase::Tunnel)
            && self.pending.is_empty()
            && self.ready_out.is_empty()
    }

    /// An HTTP/2 connection's bytes, straight into hyper's buffer. While
    /// the client sends nothing, two checks run: IdleConnectionTimeout once
    /// no stream has been active for that long, and the send rate while a
    /// response waits on the client (a stream whose window the client keeps
    /// shut holds its response, and hyper's buffers, for ever otherwise).
    fn poll_read_h2(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Poll::Ready(read) = self.inner()?.poll_read(cx, buf) {
            return Poll::Ready(read);
        }
        if self.send_too_slow(cx) {
            self.close_for("Timer_MinBytesPerSecond");
            return Poll::Ready(Ok(()));
        }
        if self.timer_expired(cx) {
            let activity = &self.ctx.activity;
            if activity.in_flight() > 0 || activity.started() != self.started_seen {
                // A stream was active during the period: count again.
                self.started_seen = activity.started();
                self.arm(self.ctx.limits.idle_connection_timeout);
                let _ = self.timer_expired(cx);
            } else {
                self.close_for("Timer_ConnectionIdle");
                return Poll::Ready(Ok(()));
            }
        }
        Poll::Pending
    }

    /// The next request, for a server that answers some requests without
    /// hyper (`server::direct`): a whole checked head, taken out of the
    /// stream; or word that what comes next is something else (an HTTP/2
    /// preface, say), left for hyper to read.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Next>> {
        if self.passing_through() {
            return Poll::Ready(Ok(Next::Other));
        }
        ready!(self.poll_ready_out(cx))?;
        Poll::Ready(Ok(if self.ready_out.is_empty() {
            Next::End
        } else if self.head_ready {
            self.head_ready = false;
            Next::Head(std::mem::take(&mut self.ready_out))
        } else {
            Next::Other
        }))
    }

    /// Puts back a head taken by [`Guarded::poll_next`], for hyper to read.
    pub fn unread(&mut self, head: Bytes) {
        debug_assert!(self.ready_out.is_empty());
        self.ready_out = head;
    }

    /// Fills `ready_out` with checked bytes; left empty, it means end of
    /// stream (the client closed, a timer fired, an error page went out,
    /// or the connection is being parked).
    fn poll_ready_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.parked {
            return Poll::Ready(Ok(()));
        }
        loop {
            match self.phase {
                Phase::Closed => return Poll::Ready(Ok(())),
                Phase::Failing => {
                    // A bad head after pipelined requests: their responses
                    // go first, as HTTP.sys answers in order.
                    if !self.failed_in_body && self.ctx.activity.in_flight() > 0 {
                        self.ctx.activity.wake_when_idle(cx.waker());
                        if self.ctx.activity.in_flight() > 0 {
                            return Poll::Pending;
                        }
                    }
                    self.page_sent = true;
                    while !self.error_out.is_empty() {
                        let out = self.error_out.clone();
                        let n = ready!(self.inner()?.poll_write(cx, &out))?;
                        if n == 0 {
                            break;
                        }
                        self.error_out.advance(n);
                    }
                    let _ = ready!(self.inner()?.poll_flush(cx));
                    let _ = ready!(self.inner()?.poll_shutdown(cx));
                    self.phase = Phase::Closed;
                    return Poll::Ready(Ok(()));
                }
                _ => {}
            }
            if self.advance() && !self.ready_out.is_empty() {
                if self.pending.is_empty() && self.pending.capacity() > 0 {
                    // Let the allocation go once hyper has taken the bytes.
                    self.pending = BytesMut::new();
                }
                return Poll::Ready(Ok(()));
            }
            if matches!(self.phase, Phase::Failing | Phase::Closed) {
                continue;
            }
            if let Phase::AwaitSwitch { .. } = self.phase {
                // Nothing is read until the response is seen; the
                // application's timers (the proxy's) run meanwhile.
                self.switch_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            // Need more bytes from the client.
            if !matches!(self.phase, Phase::H2 | Phase::Tunnel) && self.timer_expired(cx) {
                if self.phase == Phase::Head
                    && self.pending.is_empty()
                    && Instant::now() < self.idle_deadline
                {
                    // The park timer (PARK_AFTER), not the idle timer.
                    if self.can_park() {
                        // End-of-stream to hyper; the socket goes back on drop.
                        self.parked = true;
                        return Poll::Ready(Ok(()));
                    }
                    let deadline = self.idle_deadline;
                    self.arm_at(deadline);
                    continue;
                }
                let reason = match (self.phase, self.pending.is_empty()) {
                    (Phase::Head, true) => "Timer_ConnectionIdle",
                    (Phase::Head, false) => "Timer_HeaderWait",
                    _ => "Timer_EntityBody",
                };
                tracing::debug!(peer = %self.ctx.peer, reason, "timer fired; closing the connection");
                self.ctx.log(None, reason, None);
                self.phase = Phase::Closed;
                return Poll::Ready(Ok(()));
            }
            let Poll::Ready(n) = self.poll_fill(cx)? else {
                if self.can_park() && self.crowded() {
                    self.parked = true;
                    return Poll::Ready(Ok(()));
                }
                return Poll::Pending;
            };
            if n == 0 {
                // Client closed. Anything half-received is dropped.
                self.phase = Phase::Closed;
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// Reads what the client sent into `pending`, and starts the timer
    /// that the first bytes of a head (or more of a body) start. `Ok(0)`:
    /// the client closed the connection.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let was_empty = self.pending.is_empty();
        // Read into a stack buffer: an idle keep-alive connection then
        // holds no receive buffer of its own.
        let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); 8192];
        let mut rb = ReadBuf::uninit(&mut chunk);
        ready!(self.inner()?.poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        if n > 0 {
            self.pending.extend_from_slice(rb.filled());
            match self.phase {
                Phase::Head if was_empty => {
                    let t = self.ctx.limits.header_wait_timeout;
                    self.arm(t);
                }
                Phase::Head => {}
                _ => {
                    let t = self.ctx.limits.entity_body_timeout;
                    self.arm(t);
                }
            }
        }
        Poll::Ready(Ok(n))
    }

    /// While `server::direct` answers a request: ready when the client has
    /// closed the connection (or it failed), which hyper too notices in the
    /// middle of a request. What the client sends meanwhile (a pipelined
    /// request) is kept for later, up to a head's worth.
    pub fn poll_client_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.pending.len() <= self.ctx.limits.max_request_bytes {
            match self.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0) | Err(_)) => {
                    self.phase = Phase::Closed;
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
        // Enough is waiting: leave the rest in the socket.
        Poll::Pending
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.page_sent {
            return Poll::Ready(Err(answered_by_guard()));
        }
        this.response_written(data);
        let polled = this.inner()?.poll_write(cx, data);
        this.sent(polled, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.page_sent {
            return Poll::Ready(Err(answered_by_guard()));
        }
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        this.response_written(first);
        let polled = this.inner()?.poll_write_vectored(cx, bufs);
        this.sent(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(S::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.inner()?.poll_flush(cx))?;
        this.unflushed = false;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.parked {
            // hyper closes its side; the socket stays open for the client.
            return Poll::Ready(Ok(()));
        }
        this.inner()?.poll_shutdown(cx)
    }
}

impl<S> Drop for Guarded<S> {
    fn drop(&mut self) {
        if !self.parked {
            return;
        }
        if let (Some(park), Some(stream)) = (self.park.take(), self.inner.take()) {
            let _ = park.to.send(Parked {
                stream,
                idle_deadline: self.idle_deadline,
            });
        }
    }
}

/// Bytes HTTP.sys takes in a URL but hyper's parsers refuse (httparse in
/// the request line, `http::Uri` in the path or query), which hyper would
/// answer with a bare `400` and no log line. Browsers send them
/// percent-encoded; so, from here on, does portshare.
const ESCAPED_IN_TARGET: [bool; 256] = {
    let mut table = [false; 256];
    let set = b"\"<>\\^`{|}";
    let mut i = 0;
    while i < set.len() {
        table[set[i] as usize] = true;
        i += 1;
    }
    table
};

/// The checked head, its request target's [`ESCAPED_IN_TARGET`] bytes
/// percent-encoded (a new buffer only when there are any).
fn escape_target(head: BytesMut) -> Bytes {
    let line_end = memchr::memchr(b'\n', &head).unwrap_or(head.len());
    let Some(start) = memchr::memchr(b' ', &head[..line_end]).map(|i| i + 1) else {
        return head.freeze();
    };
    let end = memchr::memchr(b' ', &head[start..line_end]).map_or(line_end, |i| start + i);
    let target = &head[start..end];
    if !target
        .iter()
        .fold(false, |any, &b| any | ESCAPED_IN_TARGET[usize::from(b)])
    {
        return head.freeze();
    }
    let mut out = BytesMut::with_capacity(head.len() + 16);
    out.extend_from_slice(&head[..start]);
    for &b in target {
        if ESCAPED_IN_TARGET[usize::from(b)] {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            out.extend_from_slice(&[b]);
        }
    }
    out.extend_from_slice(&head[end..]);
    out.freeze()
}

/// Longest chunk-size line accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Chunk extensions allowed in one body, all lines together (hyper's
/// limit: past it, hyper fails the body, so the guard refuses it first).
const MAX_CHUNK_EXTENSIONS: usize = 16 * 1024;

/// A chunk-size line without its CRLF (RFC 9112 §7.1): the size and the
/// length of its extensions, or `None` when it is malformed. Strict, so
/// that nothing the guard passes is refused by hyper's decoder afterwards
/// (which would turn a client's bad request into an application failure):
/// hex digits only (no sign, no leading space), then
/// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
fn parse_chunk_line(line: &[u8]) -> Option<(u64, usize)> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    let size = u64::from_str_radix(std::str::from_utf8(&line[..digits]).ok()?, 16).ok()?;
    let ext = &line[digits..];
    let mut rest = ext;
    let skip_ws =
        |b: &[u8]| -> usize { b.iter().take_while(|c| matches!(c, b' ' | b'\t')).count() };
    let token_len = |b: &[u8]| -> usize {
        b.iter()
            .take_while(|&&c| TOKEN_BYTES[usize::from(c)])
            .count()
    };
    loop {
        rest = &rest[skip_ws(rest)..];
        if rest.is_empty() {
            return Some((size, ext.len()));
        }
        rest = rest.strip_prefix(b";")?;
        rest = &rest[skip_ws(rest)..];
        let name = token_len(rest);
        if name == 0 {
            return None;
        }
        rest = &rest[name..];
        let after = &rest[skip_ws(rest)..];
        if let Some(value) = after.strip_prefix(b"=") {
            let value = &value[skip_ws(value)..];
            let len = if value.first() == Some(&b'"') {
                quoted_string_len(value)?
            } else {
                token_len(value)
            };
            if len == 0 {
                return None;
            }
            rest = &value[len..];
        }
    }
}

/// Length of the quoted-string at the start of `b` (RFC 9110 §5.6.4).
fn quoted_string_len(b: &[u8]) -> Option<usize> {
    let mut i = 1;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => return Some(i + 1),
            b'\\' => {
                let escaped = *b.get(i + 1)?;
                if has_control(&[escaped]) {
                    return None;
                }
                i += 2;
            }
            c if has_control(&[c]) => return None,
            _ => i += 1,
        }
    }
    None
}

/// A header field line (a trailer): a token, `:`, a value without
/// control characters.
fn is_field_line(line: &[u8]) -> bool {
    memchr::memchr(b':', line)
        .is_some_and(|colon| is_token(&line[..colon]) && !has_control(&line[colon + 1..]))
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// End of the head including the blank line, as httparse (and so hyper and
/// `server::direct`) finds it: a line end (`\n` or `\r\n`) followed by an
/// empty line (`\n` or `\r\n`), in any mix, so `\n\r\n` ends a head too.
/// Were the two to disagree, a request pipelined after such a head would
/// reach hyper without being checked. One pass over the line ends.
fn find_head_end(b: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', b).find_map(|i| match b.get(i + 1) {
        Some(b'\n') => Some(i + 2),
        Some(b'\r') if b.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

fn first_line(b: &[u8]) -> &[u8] {
    let end = b
        .iter()
        .position(|c| *c == b'\r' || *c == b'\n')
        .unwrap_or(b.len());
    &b[..end.min(2048)]
}

/// Limits that can be judged before the head is complete, in HTTP.sys's
/// order: the request line, then one header line, then the whole head.
fn partial_head_error(b: &[u8], limits: &Limits) -> Option<HttpSysError> {
    let mut ends = memchr::memchr_iter(b'\n', b);
    let Some(first_end) = ends.next() else {
        return (b.len() > limits.max_field_length).then_some(HttpSysError::UrlTooLong);
    };
    if first_end > limits.max_field_length {
        return Some(HttpSysError::UrlTooLong);
    }
    let mut start = first_end + 1;
    let mut longest = 0;
    for end in ends {
        longest = longest.max(end - start);
        start = end + 1;
    }
    longest = longest.max(b.len() - start);
    if longest > limits.max_field_length {
        return Some(HttpSysError::FieldTooLong);
    }
    (b.len() > limits.max_request_bytes).then_some(HttpSysError::RequestTooLong)
}

struct RequestLine<'a> {
    method: &'a str,
    target: &'a str,
    version: &'a str,
}

impl<'a> RequestLine<'a> {
    /// Exactly three parts, separated by single spaces.
    fn parse(line: &'a str) -> Option<RequestLine<'a>> {
        let (method, rest) = line.split_at(memchr::memchr(b' ', line.as_bytes())?);
        let rest = &rest[1..];
        let (target, version) = rest.split_at(memchr::memchr(b' ', rest.as_bytes())?);
        let version = &version[1..];
        if memchr::memchr(b' ', version.as_bytes()).is_some() {
            return None;
        }
        Some(RequestLine {
            method,
            target,
            version,
        })
    }
}

/// RFC 9110 `tchar`, by byte value.
const TOKEN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| TOKEN_BYTES[usize::from(b)])
}

/// A control character other than tab. A fold rather than `any`: without
/// an early exit the loop is vectorised, and a bad byte is the rare case.
fn has_control(value: &[u8]) -> bool {
    value.iter().fold(false, |bad, &b| {
        bad | ((b < 0x20) & (b != b'\t')) | (b == 0x7f)
    })
}

/// Checks a complete head; on success returns the phase for what follows.
/// Works on bytes, one pass per line: it runs for every request.
fn check_head(head: &[u8], limits: &Limits) -> Result<Phase, HttpSysError> {
    // No line is longer than the whole head: a short head needs no scan.
    if head.len() > limits.max_field_length.min(limits.max_request_bytes) {
        if let Some(err) = partial_head_error(head, limits) {
            return Err(err);
        }
    }
    let text = std::str::from_utf8(head).map_err(|_| HttpSysError::BadRequest)?;
    let (request_line, fields) = match memchr::memchr(b'\n', head) {
        Some(i) => (&text[..i], &head[i + 1..]),
        None => (text, &[][..]),
    };
    let request_line = request_line.strip_suffix('\r').unwrap_or(request_line);
    let rl = RequestLine::parse(request_line).ok_or(HttpSysError::BadRequest)?;
    if !is_token(rl.method.as_bytes()) {
        return Err(HttpSysError::BadRequest);
    }
    match rl.version {
        "HTTP/1.1" | "HTTP/1.0" => {}
        v if v.starts_with("HTTP/") && v.len() == 8 => {
            return Err(HttpSysError::VersionNotSupported)
        }
        _ => return Err(HttpSysError::BadRequest),
    }
    check_target(rl.target, rl.method, limits)?;

    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut upgrade = false;
    let mut start = 0;
    while start < fields.len() {
        let end = memchr::memchr(b'\n', &fields[start..]).map_or(fields.len(), |i| start + i);
        let line = &fields[start..end];
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.len() > limits.max_field_length {
            return Err(HttpSysError::FieldTooLong);
        }
        let colon = memchr::memchr(b':', line).ok_or(HttpSysError::InvalidHeader)?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if !is_token(name) {
            return Err(HttpSysError::InvalidHeader);
        }
        if has_control(value) {
            return Err(HttpSysError::InvalidHeader);
        }
        let value = value.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            // Digits only: `u64::from_str` would also take a sign, which
            // hyper refuses.
            let n: u64 = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse().ok())
                .ok_or(HttpSysError::BadRequest)?;
            if content_length.is_some_and(|c| c != n) {
                return Err(HttpSysError::BadRequest);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = value.rsplit(|b| *b == b',').next().unwrap_or(b"");
            if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(HttpSysError::BadRequest);
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = true;
        }
    }
    if chunked && content_length.is_some() {
        return Err(HttpSysError::BadRequest);
    }
    // After an upgrade request or CONNECT the bytes may stop being HTTP/1,
    // but only once the switch is answered (a request with a body never
    // switches here: WebSocket and CONNECT have none).
    let bodiless = !chunked && content_length.unwrap_or(0) == 0;
    if bodiless && (upgrade || rl.method == "CONNECT") {
        return Ok(Phase::AwaitSwitch {
            connect: rl.method == "CONNECT",
        });
    }
    Ok(match (chunked, content_length) {
        (true, _) => Phase::ChunkSize,
        (false, Some(n)) if n > 0 => Phase::Body(n),
        _ => Phase::Head,
    })
}

/// The request target: origin-form, absolute-form, or `*` for OPTIONS;
/// segment length and count limits.
fn check_target(target: &str, method: &str, limits: &Limits) -> Result<(), HttpSysError> {
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(())
        } else {
            Err(HttpSysError::InvalidUrl)
        };
    }
    let path = if target.starts_with('/') {
        target
    } else {
        let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
        let rest = if lower.starts_with("http://") {
            &target[7..]
        } else if lower.starts_with("https://") {
            &target[8..]
        } else {
            return Err(HttpSysError::InvalidUrl);
        };
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        }
    };
    // Spaces, controls, DEL and non-ASCII. A fold, as in `has_control`.
    if target
        .bytes()
        .fold(false, |bad, b| bad | (b <= 0x20) | (b >= 0x7f))
    {
        return Err(HttpSysError::InvalidUrl);
    }
    let path = path.as_bytes();
    let path = &path[..memchr::memchr2(b'?', b'#', path).unwrap_or(path.len())];
    // `path` starts with '/': each further '/' (and the end) closes a segment.
    let mut count = 0usize;
    let mut segment_start = 1;
    for end in memchr::memchr_iter(b'/', path)
        .skip(1)
        .chain(std::iter::once(path.len()))
    {
        count += 1;
        if end - segment_start > limits.url_segment_max_length {
            return Err(HttpSysError::InvalidUrl);
        }
        segment_start = end + 1;
    }
    if count > limits.url_segment_max_count {
        return Err(HttpSysError::InvalidUrl);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(head: &str) -> Result<Phase, HttpSysError> {
        check_head(head.as_bytes(), &Limits::default())
    }

    #[test]
    fn heads() {
        assert_eq!(check("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(Phase::Head));
        assert_eq!(
            check("POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            Ok(Phase::Body(5))
        );
        assert_eq!(
            check("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(Phase::ChunkSize)
        );
        assert_eq!(
            check("GET / HTTP/2.0\r\n\r\n"),
            Err(HttpSysError::VersionNotSupported)
        );
        assert_eq!(check("GET / FOO\r\n\r\n"), Err(HttpSysError::BadRequest));
        assert_eq!(
            check("G(T / HTTP/1.1\r\n\r\n"),
            Err(HttpSysError::BadRequest)
        );
        assert_eq!(
            check("GET x HTTP/1.1\r\n\r\n"),
            Err(HttpSysError::InvalidUrl)
        );
        assert_eq!(
            check("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"),
            Err(HttpSysError::InvalidHeader)
        );
        assert_eq!(
            check("GET / HTTP/1.1\r\nNoColon\r\n\r\n"),
            Err(HttpSysError::InvalidHeader)
        );
        let long_seg = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(261));
        assert_eq!(check(&long_seg), Err(HttpSysError::InvalidUrl));
        let many = format!("GET {} HTTP/1.1\r\n\r\n", "/a".repeat(256));
        assert_eq!(check(&many), Err(HttpSysError::InvalidUrl));
        assert_eq!(
            check("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HttpSysError::BadRequest)
        );
        assert_eq!(
            check("POST / HTTP/1.1\nTransfer-Encoding: gzip , Chunked \nContent-length:\t7\n\n"),
            Err(HttpSysError::BadRequest),
            "chunked with a length"
        );
        assert_eq!(
            check("POST / HTTP/1.1\nTransfer-Encoding: gzip , Chunked \n\n"),
            Ok(Phase::ChunkSize)
        );
        assert_eq!(
            check("POST / HTTP/1.1\r\nContent-length:\t7 \r\n\r\n"),
            Ok(Phase::Body(7))
        );
        assert_eq!(
            check("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Err(HttpSysError::BadRequest)
        );
        for bad in ["5x", "", "-1", "5\u{a0}", "1, 2"] {
            let head = format!("POST / HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(check(&head), Err(HttpSysError::BadRequest), "{bad:?}");
        }
        assert_eq!(
            check("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            Err(HttpSysError::BadRequest)
        );
        assert_eq!(
            check("GET / HTTP/1.1\r\nUpgrade: websocket\r\nX: a\x01\r\n\r\n"),
            Err(HttpSysError::InvalidHeader)
        );
        assert_eq!(
            check("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
            Ok(Phase::AwaitSwitch { connect: false })
        );
    }

    #[test]
    fn request_line_and_target_limits() {
        for line in [
            "GET  / HTTP/1.1",
            "GET / HTTP/1.1 ",
            "GET /",
            "GET",
            " GET / HTTP/1.1",
        ] {
            assert_eq!(
                check(&format!("{line}\r\n\r\n")),
                Err(HttpSysError::BadRequest),
                "{line:?}"
            );
        }
        let seg = |n: usize| "a".repeat(n);
        let ok = format!("GET /{}/{}?{} HTTP/1.1\r\n\r\n", seg(260), seg(3), seg(300));
        assert_eq!(check(&ok), Ok(Phase::Head));
        let ok = format!("GET {}/ HTTP/1.1\r\n\r\n", "/a".repeat(254));
        assert_eq!(check(&ok), Ok(Phase::Head), "255 segments");
        let bad = format!("GET http://h/x/{}#y HTTP/1.1\r\n\r\n", seg(261));
        assert_eq!(check(&bad), Err(HttpSysError::InvalidUrl));
        assert_eq!(check("GET HTTP://h HTTP/1.1\r\n\r\n"), Ok(Phase::Head));
        assert_eq!(
            check("GET /a\x7fb HTTP/1.1\r\n\r\n"),
            Err(HttpSysError::InvalidUrl)
        );
        assert_eq!(
            check("GET /\u{e9} HTTP/1.1\r\n\r\n"),
            Err(HttpSysError::InvalidUrl)
        );
        assert_eq!(check("OPTIONS * HTTP/1.1\r\n\r\n"), Ok(Phase::Head));
        assert_eq!(
            check("GET * HTTP/1.1\r\n\r\n"),
            Err(HttpSysError::InvalidUrl)
        );
        assert_eq!(
            check("GET / HTTP/1.1\r\nX-Tab:\ta\tb\r\nX~!#$%&'*+-.^_`|: 1\r\n\r\n"),
            Ok(Phase::Head)
        );
        assert_eq!(
            check("GET / HTTP/1.1\r\nX\u{e9}: 1\r\n\r\n"),
            Err(HttpSysError::InvalidHeader)
        );
    }

    #[test]
    fn head_end_is_the_first_blank_line() {
        let cases: [(&[u8], Option<usize>); 9] = [
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nnext", Some(27)),
            (b"GET / HTTP/1.1\nHost: a\n\nnext", Some(24)),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\n", Some(26)),
            (b"GET / HTTP/1.1\nHost: a\n\r\nnext", Some(25)),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r", None),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", None),
            (b"\n\n", Some(2)),
            (b"\r\n\r\n", Some(4)),
            (b"", None),
        ];
        for (bytes, end) in cases {
            assert_eq!(
                find_head_end(bytes),
                end,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn targets_are_escaped_where_hyper_would_refuse_them() {
        let escaped = |head: &str| {
            let out = escape_target(BytesMut::from(head));
            String::from_utf8(out.to_vec()).expect("text")
        };
        assert_eq!(
            escaped("GET /a<b>?q=\"x\"&`{|}^\\ HTTP/1.1\r\nX: <\r\n\r\n"),
            "GET /a%3Cb%3E?q=%22x%22&%60%7B%7C%7D%5E%5C HTTP/1.1\r\nX: <\r\n\r\n"
        );
        let plain = "GET /a?b=c HTTP/1.1\r\n\r\n";
        assert_eq!(escaped(plain), plain);
    }

    /// The guard and httparse (hyper's and `direct`'s parser) agree on
    /// where a head ends, for every mix of line ends.
    #[test]
    fn head_end_agrees_with_httparse() {
        let ends: [&[u8]; 2] = [b"\n", b"\r\n"];
        for mask in 0u32..16 {
            let end = |bit: u32| ends[((mask >> bit) & 1) as usize];
            let mut head = b"GET / HTTP/1.1".to_vec();
            head.extend_from_slice(end(0));
            head.extend_from_slice(b"Host: a");
            head.extend_from_slice(end(1));
            head.extend_from_slice(b"X: 1");
            head.extend_from_slice(end(2));
            head.extend_from_slice(end(3));
            let complete = head.len();
            head.extend_from_slice(b"GET /next HTTP/1.1\r\n\r\n");
            let mut fields = [httparse::EMPTY_HEADER; 8];
            let parsed = httparse::Request::new(&mut fields).parse(&head);
            assert!(
                matches!(parsed, Ok(httparse::Status::Complete(n)) if n == complete),
                "{parsed:?}"
            );
            assert_eq!(find_head_end(&head), Some(complete), "{head:?}");
        }
    }
}
