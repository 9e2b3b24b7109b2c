//! The retry budget: retries, across every caller, limited to a share of first
//! attempts (Finagle's and Envoy's design).
//!
//! Why: per-call retries multiply an upstream's load exactly when it can least take
//! it. With `max_attempts = 4` and an upstream failing half its calls, each call
//! costs up to four requests; with the budget at 20% the upstream sees at most about
//! 1.2 times the requests a healthy one would, whatever `max_attempts` says. The
//! floor (`min_per_second`) keeps retries possible when traffic is light, where they
//! cost the upstream nothing and spare a client an error.
//!
//! Counted over a sliding window of ten one-second buckets.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Metric: retries refused because the budget was spent.
pub(crate) const RETRY_BUDGET_EXHAUSTED: &str = "devicegraph_upstream_retry_budget_exhausted_total";

const BUCKETS: usize = 10;
const BUCKET: Duration = Duration::from_secs(1);

/// `upstream.retry_budget` and `upstream.retry_budget_min_per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudgetConfig {
    /// Retries allowed per first attempt (0.2 = 20%).
    pub ratio: f64,
    /// Retries allowed per second whatever the traffic.
    pub min_per_second: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_second: 2,
        }
    }
}

pub(crate) struct RetryBudget {
    config: RetryBudgetConfig,
    window: Mutex<Window>,
}

struct Window {
    origin: Instant,
    /// `(bucket number, first attempts, retries)`.
    buckets: [(u64, u64, u64); BUCKETS],
}

impl Window {
    /// The current bucket (reset if it is a new one) and the window's totals.
    fn current(&mut self, now: Instant) -> (usize, u64, u64) {
        let number = u64::try_from(now.saturating_duration_since(self.origin).as_secs())
            .unwrap_or(u64::MAX)
            / BUCKET.as_secs().max(1);
        let index = usize::try_from(number % BUCKETS as u64).unwrap_or(0);
        if self.buckets[index].0 != number {
            self.buckets[index] = (number, 0, 0);
        }
        let oldest = number.saturating_sub(BUCKETS as u64 - 1);
        let (firsts, retries) = self
            .buckets
            .iter()
            .filter(|(n, _, _)| *n >= oldest && *n <= number)
            .fold((0u64, 0u64), |(f, r), (_, firsts, retries)| {
                (f.saturating_add(*firsts), r.saturating_add(*retries))
            });
        (index, firsts, retries)
    }
}

impl RetryBudget {
    pub(crate) fn new(config: RetryBudgetConfig) -> Self {
        Self {
            config,
            window: Mutex::new(Window {
                origin: Instant::now(),
                buckets: [(0, 0, 0); BUCKETS],
            }),
        }
    }

    /// A first attempt was sent: it earns `ratio` of a retry.
    pub(crate) fn first_attempt(&self) {
        let mut window = self.lock();
        let (index, _, _) = window.current(Instant::now());
        window.buckets[index].1 = window.buckets[index].1.saturating_add(1);
    }

    /// Takes one retry from the budget, if there is one left.
    pub(crate) fn try_retry(&self) -> bool {
        let mut window = self.lock();
        let (index, firsts, retries) = window.current(Instant::now());
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        #[allow(clippy::cast_sign_loss)]
        let earned = (self.config.ratio * firsts as f64).floor() as u64;
        let floor = u64::from(self.config.min_per_second) * BUCKETS as u64;
        if retries < earned.saturating_add(floor) {
            window.buckets[index].2 = window.buckets[index].2.saturating_add(1);
            true
        } else {
            false
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_are_a_share_of_first_attempts_plus_a_floor() {
        let budget = RetryBudget::new(RetryBudgetConfig {
            ratio: 0.2,
            min_per_second: 1,
        });
        for _ in 0..100 {
            budget.first_attempt();
        }
        // 20 earned + 10 from the floor (1 per second over 10 s).
        let granted = (0..100).filter(|_| budget.try_retry()).count();
        assert_eq!(granted, 30);
        // After the window has passed, only the floor is left.
        tokio::time::advance(Duration::from_secs(11)).await;
        let granted = (0..100).filter(|_| budget.try_retry()).count();
        assert_eq!(granted, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_budget_refuses_every_retry() {
        let budget = RetryBudget::new(RetryBudgetConfig {
            ratio: 0.0,
            min_per_second: 0,
        });
        for _ in 0..1_000 {
            budget.first_attempt();
        }
        assert!(!budget.try_retry());
    }
}
