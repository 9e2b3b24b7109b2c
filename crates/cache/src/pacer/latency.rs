//! How long the upstream takes, per endpoint: the time each send held its concurrency
//! slot (the transport holds the permit until ThingSpace answers), so it is the
//! upstream's real latency including calls their caller gave up on.
//!
//! The pacer uses it to refuse calls that cannot be answered before their deadline
//! (see the module docs of `pacer`). Robust by construction:
//! - a small window of recent samples, read at its third quartile: one slow outlier
//!   (or a few, below a quarter of the window) does not move the estimate, while a
//!   real slowdown shows within a few calls;
//! - no estimate until `MIN_SAMPLES` recent samples exist (cold start, or an endpoint
//!   idle for `MAX_AGE`): the pacer never sheds on a guess;
//! - samples age out, so an estimate cannot outlive the conditions that made it (the
//!   pacer also never sheds a call that finds a free slot, so calls keep flowing and
//!   keep the estimate current even when it is pessimistic).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use devicegraph_upstream::Endpoint;
use tokio::time::Instant;

/// Samples kept per endpoint.
const WINDOW: usize = 20;
/// Fewer recent samples than this: no estimate.
const MIN_SAMPLES: usize = 4;
/// Older samples do not count.
const MAX_AGE: Duration = Duration::from_secs(60);

/// Recent hold times, oldest first, with when each ended.
type Window = VecDeque<(Instant, Duration)>;

#[derive(Default)]
pub(crate) struct Latencies {
    /// Per endpoint, and across all endpoints (`None`: how fast slots turn over).
    samples: Mutex<HashMap<Option<Endpoint>, Window>>,
}

impl Latencies {
    pub(crate) fn record(&self, endpoint: Endpoint, held: Duration) {
        let now = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        for key in [Some(endpoint), None] {
            let window = samples.entry(key).or_default();
            if window.len() >= WINDOW {
                window.pop_front();
            }
            window.push_back((now, held));
        }
    }

    /// The expected latency of a call to `endpoint`, if known.
    pub(crate) fn expected(&self, endpoint: Endpoint) -> Option<Duration> {
        self.estimate(Some(endpoint))
    }

    /// The expected time a slot is held, any endpoint, if known.
    pub(crate) fn turnover(&self) -> Option<Duration> {
        self.estimate(None)
    }

    fn estimate(&self, key: Option<Endpoint>) -> Option<Duration> {
        let now = Instant::now();
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let mut recent: Vec<Duration> = samples
            .get(&key)?
            .iter()
            .filter(|(at, _)| now.saturating_duration_since(*at) < MAX_AGE)
            .map(|(_, held)| *held)
            .collect();
        drop(samples);
        if recent.len() < MIN_SAMPLES {
            return None;
        }
        recent.sort_unstable();
        // The third quartile, rounded down: with MIN_SAMPLES or more samples this is
        // never the largest, so one outlier is never the estimate.
        recent.get((recent.len() - 1) * 3 / 4).copied()
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// Samples that fill an endpoint's window.
    pub(crate) const WINDOW: usize = super::WINDOW;
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: Endpoint = Endpoint::DeviceDetails;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn no_estimate_until_enough_samples() {
        let l = Latencies::default();
        for _ in 0..MIN_SAMPLES - 1 {
            l.record(E, ms(100));
        }
        assert_eq!(l.expected(E), None);
        l.record(E, ms(100));
        assert_eq!(l.expected(E), Some(ms(100)));
        assert_eq!(l.expected(Endpoint::CheckInHistory), None, "per endpoint");
        assert_eq!(l.turnover(), Some(ms(100)));
    }

    #[tokio::test(start_paused = true)]
    async fn one_outlier_does_not_move_it_but_a_slowdown_does() {
        let l = Latencies::default();
        for _ in 0..10 {
            l.record(E, ms(100));
        }
        l.record(E, Duration::from_secs(30));
        assert_eq!(l.expected(E), Some(ms(100)));
        for _ in 0..5 {
            l.record(E, ms(1_500));
        }
        assert_eq!(l.expected(E), Some(ms(1_500)));
    }

    #[tokio::test(start_paused = true)]
    async fn old_samples_age_out() {
        let l = Latencies::default();
        for _ in 0..WINDOW {
            l.record(E, ms(5_000));
        }
        tokio::time::advance(MAX_AGE).await;
        assert_eq!(l.expected(E), None);
    }
}
