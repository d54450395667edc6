//! Failed logins per client address, so that guessing passwords is slow.
//!
//! An address (an IPv6 client by its /64, which one host usually owns
//! whole) that fails [`MAX_FAILURES`] times within [`WINDOW`] is refused
//! (`429`, no password check at all) for [`BLOCK`]. Only wrong credentials
//! count: the credential-less request a browser sends first is not a
//! failure. The map is bounded: past [`MAX_ENTRIES`] addresses, finished
//! entries are dropped, and if that is not enough the oldest half goes —
//! an attacker with that many addresses is not stopped by a per-address
//! limit anyway, and the memory stays bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed in one window before the address is blocked.
pub const MAX_FAILURES: u32 = 10;
/// The window the failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How long a blocked address stays blocked.
pub const BLOCK: Duration = Duration::from_secs(60);
/// Addresses tracked at most.
const MAX_ENTRIES: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

/// Failures per address.
#[derive(Debug, Default)]
pub struct Throttle {
    entries: Mutex<HashMap<IpAddr, Entry>>,
    /// Whether any address has ever been blocked: until one is, a request
    /// with credentials asks nothing of the shared map (every worker would
    /// otherwise take its lock on every protected request).
    any_blocked: std::sync::atomic::AtomicBool,
}

/// The key an address is counted under.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut s = v6.segments();
            s[4..].fill(0);
            IpAddr::V6(s.into())
        }
        v4 => v4,
    }
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        // Every edit is a single insert or field update: a panic elsewhere
        // cannot leave the map inconsistent, so a poisoned lock is usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `ip` is still blocked, if it is.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if !self.any_blocked.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let entries = self.lock();
        let until = entries.get(&key(ip))?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Records a failure; returns whether the address is now blocked.
    pub fn fail(&self, ip: IpAddr, now: Instant) -> bool {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            prune(&mut entries, now);
        }
        let e = entries.entry(key(ip)).or_insert(Entry {
            window_start: now,
            failures: 0,
            blocked_until: None,
        });
        if now.duration_since(e.window_start) >= WINDOW {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures += 1;
        if e.failures >= MAX_FAILURES {
            e.blocked_until = Some(now + BLOCK);
            self.any_blocked
                .store(true, std::sync::atomic::Ordering::Relaxed);
            // A new window starts when the block ends.
            e.failures = 0;
            e.window_start = now + BLOCK;
            return true;
        }
        false
    }
}

/// Drops entries whose window and block are over; if none are, the
/// oldest half.
fn prune(entries: &mut HashMap<IpAddr, Entry>, now: Instant) {
    entries.retain(|_, e| {
        now.saturating_duration_since(e.window_start) < WINDOW
            || e.blocked_until.is_some_and(|u| u > now)
    });
    if entries.len() >= MAX_ENTRIES {
        let mut starts: Vec<Instant> = entries.values().map(|e| e.window_start).collect();
        starts.sort_unstable();
        if let Some(median) = starts.get(starts.len() / 2).copied() {
            entries.retain(|_, e| e.window_start > median);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_too_many_failures_then_forgives() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for i in 1..MAX_FAILURES {
            assert!(!t.fail(ip, t0), "failure {i}");
            assert_eq!(t.blocked(ip, t0), None);
        }
        assert!(t.fail(ip, t0));
        assert_eq!(t.blocked(ip, t0), Some(BLOCK));
        assert_eq!(t.blocked(other, t0), None);
        assert_eq!(t.blocked(ip, t0 + BLOCK), None);
    }

    #[test]
    fn failures_spread_over_windows_do_not_block() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..3 * MAX_FAILURES {
            let now = t0 + WINDOW / (MAX_FAILURES / 2) * i;
            assert!(!t.fail(ip, now));
        }
    }

    #[test]
    fn ipv6_counts_by_64() {
        let t = Throttle::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            let ip: IpAddr = format!("2001:db8::{i}").parse().unwrap();
            t.fail(ip, t0);
        }
        assert!(t.blocked("2001:db8::ffff".parse().unwrap(), t0).is_some());
        assert!(t.blocked("2001:db8:0:1::1".parse().unwrap(), t0).is_none());
    }
}
