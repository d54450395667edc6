//! What one connection has going on, as the guard needs to know it: the
//! requests in flight and the response bodies waiting for the client.
//!
//! The service (hyper's side) counts; the guard (the socket's side) reads.
//! From these the guard decides whether an HTTP/1 connection may be parked,
//! whether an HTTP/2 connection is idle (no stream active), and whether a
//! slow client is holding a response back (HTTP.sys's `MinSendRate`).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use http_body::{Frame, SizeHint};

use crate::body::Body;

/// Counters shared by one connection's service and its guard.
#[derive(Debug, Default)]
pub struct Activity {
    /// Requests whose response bodies hyper still holds.
    in_flight: AtomicUsize,
    /// Requests started on the connection, ever (the HTTP/2 idle timer
    /// restarts when this moves).
    started: AtomicUsize,
    /// Response bodies that hyper has not asked for more data since they
    /// last gave some (or since the response was handed over): what is
    /// left of them waits on the client taking what was sent.
    waiting_on_client: AtomicUsize,
    /// Woken when the last request in flight is done.
    idle: AtomicWaker,
}

impl Activity {
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }

    /// Wakes `waker` once no request is in flight (at once if none is).
    pub fn wake_when_idle(&self, waker: &std::task::Waker) {
        self.idle.register(waker);
        if self.in_flight() == 0 {
            self.idle.wake();
        }
    }

    fn leave(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.idle.wake();
        }
    }

    /// A response body is held back by the client (see the field).
    pub fn waiting_on_client(&self) -> bool {
        self.waiting_on_client.load(Ordering::Relaxed) > 0
    }

    /// Counts a request that is being handled (before its response exists).
    pub fn enter(self: &Arc<Activity>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// A request counted in flight until dropped.
pub struct InFlight(Arc<Activity>);

impl InFlight {
    /// The response is ready: the count moves to its body.
    pub fn into_body(self, body: Body) -> TrackedBody {
        let activity = self.0.clone();
        // The body takes over this request's in-flight count.
        std::mem::forget(self);
        activity.waiting_on_client.fetch_add(1, Ordering::Relaxed);
        TrackedBody {
            body,
            activity,
            waiting: true,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// A response body that keeps its request counted in flight until hyper
/// drops it, and tells whether hyper is waiting for it or it for hyper.
pub struct TrackedBody {
    body: Body,
    activity: Arc<Activity>,
    /// Counted in `waiting_on_client`.
    waiting: bool,
}

impl TrackedBody {
    fn set_waiting(&mut self, waiting: bool) {
        if waiting != self.waiting {
            self.waiting = waiting;
            let counter = &self.activity.waiting_on_client;
            if waiting {
                counter.fetch_add(1, Ordering::Relaxed);
            } else {
                counter.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        // Data given: until hyper asks again, the rest waits on hyper
        // writing it, and so on the client. Pending: on the application.
        // The end: on nobody.
        this.set_waiting(matches!(polled, Poll::Ready(Some(Ok(_)))));
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.set_waiting(false);
        self.activity.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn counts_follow_the_body() {
        let activity = Arc::new(Activity::default());
        let req = activity.enter();
        assert_eq!((activity.in_flight(), activity.started()), (1, 1));
        assert!(!activity.waiting_on_client());
        let mut body = req.into_body(Body::full("ok"));
        // Handed over, not yet asked for: waits on the client.
        assert!(activity.waiting_on_client());
        let frame = body.frame().await;
        assert!(matches!(frame, Some(Ok(_))));
        assert!(activity.waiting_on_client());
        assert!(body.frame().await.is_none());
        assert!(!activity.waiting_on_client());
        assert_eq!(activity.in_flight(), 1);
        drop(body);
        assert_eq!((activity.in_flight(), activity.started()), (0, 1));
        let dropped = activity.enter();
        drop(dropped);
        assert_eq!((activity.in_flight(), activity.started()), (0, 2));
    }
}
