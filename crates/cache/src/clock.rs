//! The clock freshness is decided with. Entries are stamped with `Clock::now()` when
//! stored and judged against it when read, so tests can move time for the cache alone
//! ([`ManualClock`]) while the network, the simulator and timeouts run in real time,
//! or pause all of tokio's time ([`TokioClock`] follows `tokio::time::pause`).
//!
//! Freshness is decided on the monotonic [`Clock::now`] only. [`Clock::wall`] is
//! what an entry's fetch time is reported in (`Freshness.fetchedAt`): wall-clock
//! time, never compared between replicas.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// A monotonic time source, and the wall clock that goes with it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;

    /// Wall-clock time now, to stamp an entry with when it was fetched. The system
    /// clock unless the clock is a test's.
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// tokio's clock: real time in production, paused/advanced time under
/// `#[tokio::test(start_paused = true)]`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to (on top of tokio's clock at creation).
/// Clones share the same offset.
#[derive(Debug, Clone)]
pub struct ManualClock {
    base: Instant,
    /// The wall-clock time at `base`: the wall clock moves with the offset too, so a
    /// test sees fetch times and ages that agree.
    wall_base: SystemTime,
    offset: Arc<Mutex<Duration>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            wall_base: SystemTime::now(),
            offset: Arc::new(Mutex::new(Duration::ZERO)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(PoisonError::into_inner);
        *offset += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + self.offset()
    }

    fn wall(&self) -> SystemTime {
        self.wall_base + self.offset()
    }
}

impl ManualClock {
    fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = ManualClock::new();
        let other = clock.clone();
        let t0 = clock.now();
        let w0 = clock.wall();
        assert_eq!(clock.now(), t0);
        assert_eq!(clock.wall(), w0);
        other.advance(Duration::from_secs(90));
        assert_eq!(clock.now() - t0, Duration::from_secs(90));
        assert_eq!(
            clock.wall().duration_since(w0).ok(),
            Some(Duration::from_secs(90))
        );
    }
}
