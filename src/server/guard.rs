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
    /// Chunked body: `n` data bytes, then CRLF.
    ChunkData(u64),
    /// Chunked body: trailer lines until an empty one.
    Trailers,
    /// HTTP/2 or an upgraded connection: no more checks.
    Passthrough,
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
}

/// Where a parked connection goes, and how the guard knows that no
/// response is in flight.
pub struct Park<S> {
    /// Requests whose responses are not yet completely handed to hyper
    /// (kept by the connection's service).
    pub in_flight: Arc<AtomicUsize>,
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
    idle_deadline: Instant,
    park: Option<Park<S>>,
    /// Bytes were written since the last completed flush: hyper may still
    /// hold part of a response.
    unflushed: bool,
    /// End-of-stream was reported to hyper to park the connection.
    parked: bool,
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
            idle_deadline,
            park: None,
            unflushed: false,
            parked: false,
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
            && self
                .park
                .as_ref()
                .is_some_and(|p| p.in_flight.load(Ordering::Relaxed) == 0)
    }

    /// So many connections are open that idle ones are parked at once.
    fn crowded(&self) -> bool {
        self.park
            .as_ref()
            .is_some_and(|p| p.open_connections.load(Ordering::Relaxed) > PARK_AT_ONCE_ABOVE)
    }

    /// A response is going out: between requests, the idle timer counts
    /// from its end.
    fn response_written(&mut self) {
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
        self.error_out = err.raw_response();
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
                Phase::Passthrough => {
                    if self.pending.is_empty() {
                        return false;
                    }
                    self.ready_out = self.pending.split().freeze();
                    return true;
                }
                Phase::Failing | Phase::Closed => return true,
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
                        self.phase = Phase::Passthrough;
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
                                    self.phase = next;
                                    self.ready_out = head.freeze();
                                    self.head_ready = true;
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
                        if self.pending.len() > 4096 {
                            self.fail(HttpSysError::BadRequest, None);
                            return true;
                        }
                        return false;
                    };
                    let line = &self.pending[..eol];
                    let size_part = line.split(|b| *b == b';').next().unwrap_or(b"");
                    let size = std::str::from_utf8(size_part)
                        .ok()
                        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok());
                    let Some(size) = size else {
                        self.fail(HttpSysError::BadRequest, None);
                        return true;
                    };
                    self.ready_out = self.pending.split_to(eol + 2).freeze();
                    self.phase = if size == 0 {
                        Phase::Trailers
                    } else {
                        Phase::ChunkData(size + 2)
                    };
                }
                Phase::ChunkData(n) => {
                    if !self.pass_body(n, Phase::ChunkData, Phase::ChunkSize) {
                        return false;
                    }
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
        self.phase == Phase::Passthrough && self.pending.is_empty() && self.ready_out.is_empty()
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
            // Need more bytes from the client.
            if self.phase != Phase::Passthrough && self.timer_expired(cx) {
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
        this.response_written();
        this.inner()?.poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.response_written();
        this.inner()?.poll_write_vectored(cx, bufs)
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

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// End of the head including the blank line: the first `\r\n\r\n` or
/// `\n\n` (bare-LF heads are accepted too). One pass over the line ends.
fn find_head_end(b: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', b).find_map(|i| match b.get(i + 1) {
        Some(b'\n') => Some(i + 2),
        Some(b'\r') if i > 0 && b[i - 1] == b'\r' && b.get(i + 2) == Some(&b'\n') => Some(i + 3),
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
            let n: u64 = std::str::from_utf8(value)
                .ok()
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
    // After an upgrade request or CONNECT the bytes may stop being HTTP/1.
    if upgrade || rl.method == "CONNECT" {
        return Ok(Phase::Passthrough);
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
            Ok(Phase::Passthrough)
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
            (b"GET / HTTP/1.1\nHost: a\n\r\n", None),
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
}
