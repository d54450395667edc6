//! Shutdown as a connection sees it: a future that resolves once the
//! server starts draining, cheap enough to poll on every request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::sync::watch;

/// A shutdown signal for a connection being served, whose task wakes for every
/// request: polling `wait_for` each time would take the watch's lock,
/// shared by every connection on every worker. This registers the task's
/// waker once; until the waker changes, a poll is one atomic version check.
pub(super) struct Drained {
    signal: watch::Receiver<bool>,
    wait: Pin<Box<dyn Future<Output = ()> + Send>>,
    registered: Option<Waker>,
}

impl Drained {
    pub(super) fn new(drain: &watch::Receiver<bool>) -> Drained {
        let mut waiting = drain.clone();
        Drained {
            signal: drain.clone(),
            wait: Box::pin(async move {
                let _ = waiting.wait_for(|stop| *stop).await;
            }),
            registered: None,
        }
    }

    /// Shutdown has begun.
    pub(super) fn fired(&self) -> bool {
        self.signal.has_changed().unwrap_or(true)
    }
}

impl Future for Drained {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // The value only ever changes to `true`; a closed channel means the
        // server is gone.
        if this.fired() {
            return Poll::Ready(());
        }
        if this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        if this.wait.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        this.registered = Some(cx.waker().clone());
        Poll::Pending
    }
}
