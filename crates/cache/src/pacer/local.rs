//! The in-process upstream budget: a GCRA (generic cell rate algorithm) for the steady
//! rate and the burst, plus a sliding one-second window that caps what any one second
//! can see.
//!
//! Why both: a GCRA with rate r and burst b lets b + r requests through in the first
//! second (the bucket is full, then refills), but "rate_per_second" is read by
//! operators (and by ThingSpace) as "never more than r in any second". The window
//! enforces that cap; the GCRA spreads requests out when the burst is below the rate.
//! The window is a little longer than a second (1.1 s) so jitter between our send
//! time and the upstream's arrival time cannot squeeze r + 1 requests into its
//! second: with the simulator in the same busy process, a 30 ms margin was measured
//! to let 22 requests into one second at a budget of 20; 100 ms holds. The cost is a
//! sustained rate of r / 1.1 at most.
//!
//! The GCRA is written out here (it was governor's) because background work needs to
//! ask "is there budget with a reserve left over?" without taking any when there is
//! not, which governor's API cannot answer.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// One second plus headroom for scheduling and network jitter (see the module doc).
pub(crate) const WINDOW: Duration = Duration::from_millis(1_100);

pub(crate) struct LocalBudget {
    /// A std mutex: held for a few comparisons, pushes and pops, never across an await.
    state: Mutex<State>,
    limit: usize,
    burst: u32,
    /// Time the bucket needs to gain one request.
    interval: Duration,
}

struct State {
    /// The GCRA's theoretical arrival time: the bucket is full when it is not after
    /// `now`, and holds `(now + burst * interval - tat) / interval` requests otherwise.
    tat: Option<Instant>,
    /// Send times inside the last `WINDOW`, oldest first.
    window: VecDeque<Instant>,
}

impl LocalBudget {
    pub(crate) fn new(rate_per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            state: Mutex::new(State {
                tat: None,
                window: VecDeque::with_capacity(rate_per_second.get() as usize),
            }),
            limit: rate_per_second.get() as usize,
            burst: burst.get(),
            interval: Duration::from_secs(1) / rate_per_second.get(),
        }
    }

    /// Takes one request from the budget, or says how long to wait before trying
    /// again. With `with_window` false only the GCRA is consulted (the shared Redis
    /// window is the cap then). `reserve` (0 to 1) is the share of the burst and of
    /// the window that must be left after this request (rounded down): 0 for
    /// interactive calls, `background_reserve` for background work.
    pub(crate) fn try_take(&self, with_window: bool, reserve: f64) -> Result<(), Duration> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if with_window {
            while state
                .window
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
            {
                state.window.pop_front();
            }
            let keep = reserved(self.limit, reserve);
            if state.window.len() + keep >= self.limit
                && let Some(oldest) = state.window.get(state.window.len() + keep - self.limit)
            {
                return Err((*oldest + WINDOW)
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(1)));
            }
        }
        let keep = u32::try_from(reserved(self.burst as usize, reserve)).unwrap_or(u32::MAX);
        let tat = state.tat.map_or(now, |tat| tat.max(now)) + self.interval;
        // Taking is allowed when the bucket still holds `keep` requests afterwards.
        let needed = tat + self.interval * keep;
        let capacity = now + self.interval * self.burst;
        if needed > capacity {
            return Err((needed - capacity).max(Duration::from_millis(1)));
        }
        state.tat = Some(tat);
        if with_window {
            state.window.push_back(now);
        }
        Ok(())
    }
}

/// `share` of `of`, rounded down (so a small burst or window still lets background
/// work through when it is entirely free), never all of it.
pub(crate) fn reserved(of: usize, share: f64) -> usize {
    // Small positive numbers; the casts cannot lose anything that matters.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let keep = (of as f64 * share.clamp(0.0, 1.0)).floor() as usize;
    keep.min(of.saturating_sub(1))
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
            match budget.try_take(true, 0.0) {
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
