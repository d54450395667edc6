//! When to renew, and how long to wait after a failure.
//!
//! Why these numbers: a certificate is renewed when a third of its lifetime
//! is left (30 of Let's Encrypt's 90 days, 2 of 6 days for a short-lived
//! one), which leaves room for many retries before it expires. A failed
//! order keeps the old certificate in service and is retried with
//! exponential back-off — 5 minutes, doubling, capped at a day — so a broken
//! setup does not hammer the ACME server (Let's Encrypt limits failed
//! validations to a few an hour) yet recovers by itself once it is fixed.
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
