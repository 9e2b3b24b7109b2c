//! A governor clock on tokio's time, so the budget follows `tokio::time::pause` in
//! tests exactly like the sleeps that wait for it (governor's own clocks would not).

use std::ops::Add;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::nanos::Nanos;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Tick(Instant);

impl From<Instant> for Tick {
    fn from(i: Instant) -> Self {
        Self(i)
    }
}

impl Add<Nanos> for Tick {
    type Output = Self;
    fn add(self, other: Nanos) -> Self {
        Self(self.0 + Duration::from_nanos(other.as_u64()))
    }
}

impl Reference for Tick {
    fn duration_since(&self, earlier: Self) -> Nanos {
        Nanos::from(self.0.saturating_duration_since(earlier.0))
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        self.0
            .checked_sub(Duration::from_nanos(duration.as_u64()))
            .map_or(*self, Self)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokioTicks;

impl Clock for TokioTicks {
    type Instant = Tick;
    fn now(&self) -> Tick {
        Tick(Instant::now())
    }
}
