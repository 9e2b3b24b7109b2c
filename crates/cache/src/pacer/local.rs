//! The in-process upstream budget: governor's GCRA for the steady rate and the burst,
//! plus a sliding one-second window that caps what any one second can see.
//!
//! Why both: a GCRA with rate r and burst b lets b + r requests through in the first
//! second (the bucket is full, then refills), but "rate_per_second" is read by
//! operators (and by ThingSpace) as "never more than r in any second". The window
//! enforces that cap; governor spreads requests out when the burst is below the rate.
//! The window is a little longer than a second (1.1 s) so jitter between our send
//! time and the upstream's arrival time cannot squeeze r + 1 requests into its
//! second: with the simulator in the same busy process, a 30 ms margin was measured
//! to let 22 requests into one second at a budget of 20; 100 ms holds. The cost is a
//! sustained rate of r / 1.1 at most.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

use super::ticks::{Tick, TokioTicks};

/// One second plus headroom for scheduling and network jitter (see the module doc).
pub(crate) const WINDOW: Duration = Duration::from_millis(1_100);

type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioTicks, NoOpMiddleware<Tick>>;

pub(crate) struct LocalBudget {
    gcra: Gcra,
    /// Send times inside the last `WINDOW`, oldest first. A std mutex: held for a
    /// few pushes and pops, never across an await.
    window: Mutex<VecDeque<Instant>>,
    limit: usize,
}

impl LocalBudget {
    pub(crate) fn new(rate_per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        let quota = Quota::per_second(rate_per_second).allow_burst(burst);
        Self {
            gcra: RateLimiter::direct_with_clock(quota, TokioTicks),
            window: Mutex::new(VecDeque::with_capacity(rate_per_second.get() as usize)),
            limit: rate_per_second.get() as usize,
        }
    }

    /// Takes one request from the budget, or says how long to wait before trying
    /// again. With `with_window` false only the GCRA is consulted (the shared Redis
    /// window is the cap then).
    pub(crate) fn try_take(&self, with_window: bool) -> Result<(), Duration> {
        let now = Instant::now();
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if with_window {
            while window
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
            {
                window.pop_front();
            }
            if window.len() >= self.limit
                && let Some(oldest) = window.front()
            {
                return Err((*oldest + WINDOW)
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(1)));
            }
        }
        if let Err(not_until) = self.gcra.check() {
            return Err(not_until
                .wait_time_from(Tick::from(now))
                .max(Duration::from_millis(1)));
        }
        if with_window {
            window.push_back(now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
    }

    /// Drives the budget as fast as it allows for `secs` and returns send times.
    async fn drain(budget: &LocalBudget, secs: u64) -> Vec<Instant> {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut sent = Vec::new();
        while Instant::now() < end {
            match budget.try_take(true) {
                Ok(()) => sent.push(Instant::now()),
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
        sent
    }

    fn peak_per_second(sent: &[Instant]) -> usize {
        (0..sent.len())
            .map(|i| {
                sent[i..]
                    .iter()
                    .take_while(|t| t.duration_since(sent[i]) < Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn no_second_ever_sees_more_than_the_rate_even_with_a_full_burst() {
        let budget = LocalBudget::new(nz(20), nz(20));
        let sent = drain(&budget, 5).await;
        assert_eq!(peak_per_second(&sent), 20);
        // Throughput stays close to the rate (the window is 1.1 s).
        assert!(sent.len() >= 95, "sent {}", sent.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_burst_spreads_requests_out() {
        let budget = LocalBudget::new(nz(10), nz(2));
        let sent = drain(&budget, 1).await;
        // 2 at once, then one every 100 ms.
        assert!(sent.len() <= 12, "sent {}", sent.len());
        assert!(
            sent.windows(3)
                .all(|w| w[2].duration_since(w[0]) >= Duration::from_millis(100))
        );
    }
}
