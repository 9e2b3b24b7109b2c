//! Retry policy arithmetic, kept pure so it can be tested without a network:
//! exponential backoff with full jitter, `Retry-After` parsing, and the saturating
//! instant arithmetic every deadline and renewal time goes through.
//!
//! Full jitter (a uniform delay between zero and the exponential ceiling) rather than
//! "ceiling plus a little noise" because many gateway replicas hitting one busy
//! upstream must spread out, not retry in lock-step.

use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::time::Instant;

/// The longest `Retry-After` we believe. A larger value is almost certainly a server
/// bug; the caller's deadline bounds the wait anyway, so this only keeps arithmetic sane.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Stands in for "never" when `at + wait` does not fit in an `Instant` (tokio uses
/// the same 30 years for its own far future).
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// `at + wait`, saturating to [`FAR_FUTURE`] from `at`. `Instant + Duration` panics on
/// overflow, and the durations added here come from configuration (`Duration::MAX`
/// timeouts) or from the upstream (an `expires_in` of `u64::MAX` seconds).
pub(crate) fn later(at: Instant, wait: Duration) -> Instant {
    at.checked_add(wait)
        .or_else(|| at.checked_add(FAR_FUTURE))
        .unwrap_or(at)
}

/// Exponential backoff: the ceiling starts at `base` and doubles per retry, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) base: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// The exponential ceiling before the `retry`-th retry (1-based): `base * 2^(retry-1)`,
    /// never above `max`.
    pub(crate) fn ceiling(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// A full-jitter delay: uniform in `[0, ceiling(retry)]`.
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        self.delay_with(retry, &mut rand::rng())
    }

    pub(crate) fn delay_with(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rng.random_range(0..=nanos))
    }
}

/// Parses a `Retry-After` header value: either delay-seconds or an HTTP-date (any of
/// the three formats RFC 9110 makes recipients accept). A date in the past means
/// "now". Anything unparseable is `None` (the caller falls back to its own backoff).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Saturate absurd values instead of refusing them: the server clearly wants
        // us to wait a long time.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn backoff() -> Backoff {
        Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = backoff();
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(200));
        assert_eq!(b.ceiling(3), Duration::from_millis(400));
        assert_eq!(b.ceiling(5), Duration::from_millis(1600));
        assert_eq!(b.ceiling(6), Duration::from_secs(2));
        assert_eq!(b.ceiling(1000), Duration::from_secs(2));
        // Retry 0 is treated as the first retry rather than underflowing.
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
    }

    #[test]
    fn zero_base_never_waits() {
        let b = Backoff {
            base: Duration::ZERO,
            max: Duration::from_secs(1),
        };
        assert_eq!(b.delay(3), Duration::ZERO);
    }

    #[test]
    fn jitter_spreads_over_the_whole_range() {
        let b = backoff();
        let mut rng = StdRng::seed_from_u64(7);
        let delays: Vec<_> = (0..1000).map(|_| b.delay_with(3, &mut rng)).collect();
        let max = delays.iter().max().unwrap();
        let min = delays.iter().min().unwrap();
        assert!(*max <= Duration::from_millis(400));
        // Full jitter: both ends of the range are actually used.
        assert!(*max > Duration::from_millis(350), "max {max:?}");
        assert!(*min < Duration::from_millis(50), "min {min:?}");
    }

    proptest! {
        #[test]
        fn delay_is_within_bounds(retry in 0u32..100, base_ms in 0u64..5_000, max_ms in 0u64..60_000, seed: u64) {
            let b = Backoff { base: Duration::from_millis(base_ms), max: Duration::from_millis(max_ms) };
            let mut rng = StdRng::seed_from_u64(seed);
            let d = b.delay_with(retry, &mut rng);
            prop_assert!(d <= b.ceiling(retry));
            prop_assert!(d <= b.max);
        }
    }

    #[test]
    fn later_saturates_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(later(now, Duration::MAX), now + FAR_FUTURE);
        assert_eq!(
            later(now, Duration::from_secs(u64::MAX / 2)),
            now + FAR_FUTURE
        );
    }

    #[test]
    fn retry_after_seconds() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_http_date() {
        // Wed, 21 Oct 2015 07:28:00 GMT
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let now = at - Duration::from_secs(30);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(30))
        );
        // The obsolete formats RFC 9110 still requires recipients to accept.
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:00 2015", now),
            Some(Duration::from_secs(30))
        );
        // A date already past means retry now.
        let later = at + Duration::from_secs(5);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", later),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Wed, 32 Oct 2015 07:28:00 GMT", now),
            None
        );
    }
}
