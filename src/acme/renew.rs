//! When to renew, and how long to wait after a failure.
//!
//! Why these numbers: a certificate is renewed when a third of its lifetime
//! is left (30 of Let's Encrypt's 90 days, 2 of 6 days for a short-lived
//! one), which leaves room for many retries before it expires. A failed
//! order keeps the old certificate in service and is retried with
//! exponential back-off — 5 minutes, doubling, capped at a day — so a broken
//! setup does not hammer the ACME server (Let's Encrypt limits failed
//! validations to a few an hour) yet recovers by itself once it is fixed.
//!
//! When the ACME directory advertises `renewalInfo` (ACME renewal
//! information, ARI, RFC 9773), the server's suggested window decides
//! instead: a uniformly random moment inside it ([`time_in_window`]), so that
//! the CA can spread renewals out or call them in early (a mass revocation).
//! The window is asked for again when the server's `Retry-After` says, at
//! most daily. Debian's pebble 2.4, which the integration tests run, has no
//! `renewalInfo`, so there the third-of-the-lifetime rule applies; ARI is
//! tested with a loopback stub directory (tests/acme_faults.rs).
//!
//! Pure functions of time, so the policy is tested without waiting.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How often each name is looked at when nothing is due.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// The wait after a first failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(5 * 60);
/// The longest wait between retries.
pub const MAX_RETRY: Duration = Duration::from_secs(24 * 60 * 60);

/// The moment a certificate valid from `not_before` to `not_after` should
/// be renewed: when a third of its lifetime is left.
pub fn renew_at(not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> DateTime<Utc> {
    let lifetime = not_after - not_before;
    if lifetime <= chrono::TimeDelta::zero() {
        // Never valid: replace it at once.
        return DateTime::<Utc>::MIN_UTC;
    }
    not_after - lifetime / 3
}

/// Whether the certificate needs renewing at `now`.
pub fn is_due(not_before: DateTime<Utc>, not_after: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now >= renew_at(not_before, not_after)
}

/// How long to wait before looking again at a certificate that is not due:
/// until it is due, at most [`CHECK_INTERVAL`].
pub fn wait_until_due(
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Duration {
    (renew_at(not_before, not_after) - now)
        .to_std()
        .unwrap_or(Duration::ZERO)
        .min(CHECK_INTERVAL)
}

/// A renewal window suggested by the ACME server (RFC 9773 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// From instant-acme's window (time's `OffsetDateTime`, to the second);
    /// `None` when a bound is out of chrono's range.
    pub fn of(w: &instant_acme::SuggestedWindow) -> Option<Window> {
        Some(Window {
            start: DateTime::from_timestamp(w.start.unix_timestamp(), 0)?,
            end: DateTime::from_timestamp(w.end.unix_timestamp(), 0)?,
        })
    }
}

/// The moment to renew inside `window`: `fraction` (in `[0, 1)`, uniformly
/// random in use: [`random_fraction`]) of the way from its start to its end
/// (RFC 9773 §4.2: "a uniformly random time within the window"). A window
/// whose end is not after its start (invalid by the RFC) is taken as its
/// start: renewing early is the safe side.
pub fn time_in_window(window: Window, fraction: f64) -> DateTime<Utc> {
    let span = window.end - window.start;
    if span <= chrono::TimeDelta::zero() {
        return window.start;
    }
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // Milliseconds: a window is at most days long, far inside f64's 2^53.
    let offset = (span.num_milliseconds() as f64 * fraction) as i64;
    window.start + chrono::TimeDelta::milliseconds(offset).min(span)
}

/// A uniformly random number in `[0, 1)`, from the OS's random source
/// (through `RandomState`'s seed; no cryptographic strength is needed).
pub fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x61726921);
    // 53 bits: exactly representable, strictly below 1.
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// How long to wait before looking again when renewal is due at `at`:
/// until then, but no later than `recheck` (when the server wants its
/// window asked for again) and at most [`CHECK_INTERVAL`].
pub fn wait_until(at: DateTime<Utc>, recheck: Option<Duration>, now: DateTime<Utc>) -> Duration {
    let until = (at - now).to_std().unwrap_or(Duration::ZERO);
    until
        .min(recheck.unwrap_or(CHECK_INTERVAL))
        .min(CHECK_INTERVAL)
}

/// The server's `Retry-After` for its renewal window, bounded: at least a
/// minute (a zero would make the manager spin), at most [`CHECK_INTERVAL`].
pub fn ari_recheck(hint: Duration) -> Duration {
    hint.clamp(Duration::from_secs(60), CHECK_INTERVAL)
}

/// The wait after a failure: the back-off's, or longer when the ACME
/// server's `Retry-After` asked for more — never beyond [`MAX_RETRY`].
pub fn retry_wait(backoff: Duration, retry_after: Option<Duration>) -> Duration {
    retry_after
        .map_or(backoff, |r| r.max(backoff))
        .min(MAX_RETRY)
}

/// Exponential back-off after failures.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Records a failure and returns the wait before the next attempt.
    pub fn failed(&mut self) -> Duration {
        let factor = 2u32.saturating_pow(self.failures.min(20));
        self.failures = self.failures.saturating_add(1);
        FIRST_RETRY.saturating_mul(factor).min(MAX_RETRY)
    }

    /// A success: the next failure starts from [`FIRST_RETRY`] again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::TimeDelta::days(i64::from(d))
    }

    #[test]
    fn renews_when_a_third_is_left() {
        // 90 days: renewed on day 60.
        assert_eq!(renew_at(day(0), day(90)), day(60));
        assert!(!is_due(day(0), day(90), day(59)));
        assert!(is_due(day(0), day(90), day(60)));
        assert!(is_due(day(0), day(90), day(100)));
        // A broken certificate (ends before it starts) is due at once.
        assert!(is_due(day(5), day(1), day(0)));
        // Looked at daily until due, then at once.
        assert_eq!(wait_until_due(day(0), day(90), day(10)), CHECK_INTERVAL);
        assert_eq!(
            wait_until_due(day(0), day(90), day(60) - chrono::TimeDelta::hours(1)),
            Duration::from_secs(3600)
        );
        assert_eq!(wait_until_due(day(0), day(90), day(61)), Duration::ZERO);
    }

    #[test]
    fn the_ari_window_gives_a_random_time_inside_it() {
        let window = Window {
            start: day(50),
            end: day(52),
        };
        assert_eq!(time_in_window(window, 0.0), day(50));
        assert_eq!(time_in_window(window, 0.5), day(51));
        assert!(time_in_window(window, 0.999_999) < day(52));
        // Out-of-range fractions stay inside.
        assert_eq!(time_in_window(window, 7.0), day(52));
        assert_eq!(time_in_window(window, f64::NAN), day(50));
        // A window that ends before it starts: its start.
        let bad = Window {
            start: day(52),
            end: day(50),
        };
        assert_eq!(time_in_window(bad, 0.7), day(52));
        // Randomized: always inside, and not always the same moment.
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let f = random_fraction();
            assert!((0.0..1.0).contains(&f), "{f}");
            let at = time_in_window(window, f);
            assert!(at >= window.start && at < window.end, "{at}");
            seen.insert(at);
        }
        assert!(seen.len() > 100, "{} distinct times", seen.len());
    }

    #[test]
    fn the_next_look_follows_the_window_and_the_servers_hint() {
        let now = day(10);
        // Due in 40 days, window asked for again in 6 h: 6 h.
        let six_hours = Duration::from_secs(6 * 3600);
        assert_eq!(wait_until(day(50), Some(six_hours), now), six_hours);
        // No hint: daily.
        assert_eq!(wait_until(day(50), None, now), CHECK_INTERVAL);
        // Due in an hour: an hour. Past: at once.
        let soon = now + chrono::TimeDelta::hours(1);
        assert_eq!(
            wait_until(soon, Some(six_hours), now),
            Duration::from_secs(3600)
        );
        assert_eq!(wait_until(day(9), Some(six_hours), now), Duration::ZERO);
        // The hint is bounded both ways.
        assert_eq!(ari_recheck(Duration::ZERO), Duration::from_secs(60));
        assert_eq!(ari_recheck(CHECK_INTERVAL * 30), CHECK_INTERVAL);
        assert_eq!(ari_recheck(six_hours), six_hours);
    }

    #[test]
    fn retry_after_lengthens_the_backoff_up_to_a_day() {
        let hour = Duration::from_secs(3600);
        assert_eq!(retry_wait(FIRST_RETRY, None), FIRST_RETRY);
        assert_eq!(retry_wait(FIRST_RETRY, Some(hour)), hour);
        // Shorter than the back-off: the back-off.
        assert_eq!(retry_wait(hour, Some(FIRST_RETRY)), hour);
        // Capped at a day, whatever the server says.
        assert_eq!(retry_wait(FIRST_RETRY, Some(MAX_RETRY * 7)), MAX_RETRY);
    }

    #[test]
    fn backoff_doubles_up_to_a_day_and_resets() {
        let mut b = Backoff::default();
        assert_eq!(b.failed(), FIRST_RETRY);
        assert_eq!(b.failed(), FIRST_RETRY * 2);
        assert_eq!(b.failed(), FIRST_RETRY * 4);
        for _ in 0..100 {
            assert!(b.failed() <= MAX_RETRY);
        }
        assert_eq!(b.failed(), MAX_RETRY);
        b.succeeded();
        assert_eq!(b.failed(), FIRST_RETRY);
    }
}
