//! The guard's timers: arming and checking the one connection timer (idle,
//! park, header wait, entity body), HTTP.sys's `MinSendRate` check on
//! writes, and the HTTP/2 idle and send-rate checks. Kept apart from the
//! framing so that what each timer measures can be read in one place.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::{Guarded, Phase};

/// One window of HTTP.sys's `MinSendRate` check.
pub(super) struct SendWatch {
    timer: Pin<Box<Sleep>>,
    started: Instant,
    /// `Guarded::written` when the window started.
    written: u64,
}

impl<S> Guarded<S> {
    /// Counts what went out; a write that cannot go out starts the send
    /// rate check, which may end the connection.
    pub(super) fn sent(
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

    pub(super) fn arm(&mut self, after: Duration) {
        self.arm_at(Instant::now() + after);
    }

    pub(super) fn arm_at(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if deadline < self.timer.deadline() {
            self.timer.as_mut().reset(deadline);
            // A timer that had fired gave its waker away; reset, it only
            // gets one by being polled again.
            self.timer_waker = None;
        }
    }

    /// The running timer has run out (not just its early wake-up).
    pub(super) fn timer_expired(&mut self, cx: &mut Context<'_>) -> bool {
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
}

impl<S: AsyncRead + AsyncWrite + Unpin> Guarded<S> {
    /// An HTTP/2 connection's bytes, straight into hyper's buffer. While
    /// the client sends nothing, two checks run: IdleConnectionTimeout once
    /// no stream has been active for that long, and the send rate while a
    /// response waits on the client (a stream whose window the client keeps
    /// shut holds its response, and hyper's buffers, for ever otherwise).
    pub(super) fn poll_read_h2(
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
}
