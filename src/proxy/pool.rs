//! Idle keep-alive connections to one backend, one pool per worker runtime
//! (a connection is registered with the reactor of the runtime that opened
//! it, so using it from another would bounce every wake-up between threads).
//!
//! Last in, first out: the most recently used connection is the least
//! likely to have been closed by the backend. A reaper task runs while the
//! pool holds connections and closes those idle too long or closed by the
//! backend, so no socket lingers half-closed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::connection::Connection;

/// How long an idle connection to a backend is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per backend and worker; more are closed.
const MAX_IDLE: usize = 256;
/// How often the reaper looks at the idle connections.
const REAP_EVERY: Duration = Duration::from_secs(5);

#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<Vec<Idle>>,
    reaping: AtomicBool,
}

struct Idle {
    conn: Connection,
    since: Instant,
}

impl Idle {
    fn usable(&self, now: Instant) -> bool {
        now.duration_since(self.since) < IDLE_TIMEOUT && self.conn.reader.still_idle()
    }
}

impl Pool {
    /// An idle connection still open at the backend, if there is one.
    pub(super) fn checkout(&self) -> Option<Connection> {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(candidate) = idle.pop() {
            if candidate.usable(now) {
                let mut conn = candidate.conn;
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// Keeps a connection whose last exchange ended cleanly.
    pub(super) fn checkin(self: &Arc<Self>, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() >= MAX_IDLE {
            return;
        }
        idle.push(Idle {
            conn,
            since: Instant::now(),
        });
        if !self.reaping.swap(true, Ordering::Relaxed) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(reap(Arc::downgrade(self)));
                }
                Err(_) => self.reaping.store(false, Ordering::Relaxed),
            }
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Closes unusable idle connections until the pool is empty (or gone).
async fn reap(pool: Weak<Pool>) {
    loop {
        tokio::time::sleep(REAP_EVERY).await;
        let Some(pool) = pool.upgrade() else { return };
        let mut idle = pool.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        idle.retain(|i| i.usable(now));
        if idle.is_empty() {
            // Under the lock, so a check-in either sees this or was seen here.
            pool.reaping.store(false, Ordering::Relaxed);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::connection::Address;
    use super::*;

    struct Backend {
        listener: tokio::net::TcpListener,
        address: Address,
    }

    impl Backend {
        async fn start() -> Backend {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let address = Address::Tcp {
                host: "127.0.0.1".into(),
                port,
            };
            Backend { listener, address }
        }

        async fn live(&self) -> (Connection, tokio::net::TcpStream) {
            let conn = Connection::open(&self.address).await.expect("connect");
            let (peer, _) = self.listener.accept().await.expect("accept");
            (conn, peer)
        }

        /// A connection the backend has closed, once this side has seen it.
        async fn closed(&self) -> Connection {
            let (conn, peer) = self.live().await;
            drop(peer);
            for _ in 0..10_000 {
                if !conn.reader.still_idle() {
                    return conn;
                }
                tokio::task::yield_now().await;
            }
            panic!("the close was not seen");
        }
    }

    /// A pool holding a live connection and, checked in last, one the
    /// backend closed; the live one's peer must be kept open.
    async fn live_then_closed() -> (Arc<Pool>, Backend, tokio::net::TcpStream) {
        let backend = Backend::start().await;
        let pool = Arc::new(Pool::default());
        let (live, peer) = backend.live().await;
        pool.checkin(live);
        pool.checkin(backend.closed().await);
        (pool, backend, peer)
    }

    #[tokio::test]
    async fn checkout_skips_closed_connections() {
        let (pool, _backend, _peer) = live_then_closed().await;
        let conn = pool.checkout().expect("the live connection");
        assert!(conn.reused);
        assert_eq!(pool.len(), 0, "the closed one was dropped on the way");
        assert!(pool.checkout().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn reaper_closes_connections_the_backend_closed() {
        let (pool, _backend, _peer) = live_then_closed().await;
        assert_eq!(pool.len(), 2);
        tokio::time::sleep(REAP_EVERY * 2).await;
        assert_eq!(pool.len(), 1, "the closed connection is reaped");
        assert!(pool.reaping.load(Ordering::Relaxed));
    }
}
