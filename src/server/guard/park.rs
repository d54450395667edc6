//! Parking an idle keep-alive connection: when the guard lets hyper go
//! (so that its buffers are freed) and how the socket is handed back to the
//! connection loop (see the module documentation of [`super`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Guarded, Phase};

/// How long a connection must have been idle before it is parked. A client
/// that sends its next request sooner (a page's other resources, a load
/// generator) keeps its hyper connection: parking and resuming cost more
/// than the buffers do over such a short time.
pub const PARK_AFTER: Duration = Duration::from_millis(250);

/// With more open connections than this, a connection is parked as soon as
/// it has nothing to read: memory then matters more than the cost of
/// resuming.
pub const PARK_AT_ONCE_ABOVE: usize = 256;

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

impl<S> Guarded<S> {
    /// Lets the guard park the connection when it goes idle (HTTP/1
    /// only: see the module documentation).
    pub fn with_park(mut self, park: Park<S>) -> Guarded<S> {
        self.park = Some(park);
        self
    }

    /// Nothing is in flight in either direction, so hyper may let go.
    pub(super) fn can_park(&self) -> bool {
        self.phase == Phase::Head
            && !self.first_exchange
            && self.pending.is_empty()
            && self.ready_out.is_empty()
            && !self.unflushed
            && self.park.is_some()
            && self.ctx.activity.in_flight() == 0
    }

    /// So many connections are open that idle ones are parked at once.
    pub(super) fn crowded(&self) -> bool {
        self.park
            .as_ref()
            .is_some_and(|p| p.open_connections.load(Ordering::Relaxed) > PARK_AT_ONCE_ABOVE)
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
