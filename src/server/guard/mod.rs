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
//! bytes with nothing but the socket (and, over TLS, rustls's session
//! state, about 4 KiB of it a read buffer), then starts a fresh hyper connection
//! on it. The client sees one keep-alive connection throughout.
//!
//! Written by hand because no HTTP library offers HTTP.sys's answers; the
//! parsing is a scan for line ends, not a full HTTP parser — hyper still
//! parses every head it is given.
//!
//! [`PARK_AT_ONCE_ABOVE`]: park::PARK_AT_ONCE_ABOVE

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::activity::Activity;
use crate::config::Limits;
use crate::errors::HttpSysError;
use crate::logs::{HttpErrRecord, LineSink};

mod framing;
mod head;
mod park;
mod timers;

use head::RequestLine;
use park::PARK_AFTER;
pub use park::{Park, Parked};
use timers::SendWatch;

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

    fn inner(&mut self) -> io::Result<Pin<&mut S>>
    where
        S: Unpin,
    {
        self.inner.as_mut().map(Pin::new).ok_or_else(detached)
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
