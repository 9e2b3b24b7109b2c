//! `Freshness` in the schema: for each part of an answer, when it was fetched from
//! ThingSpace, how old it was when the answer was built, and whether (and why) it
//! was served past its TTL.
//!
//! Built only from what a read already returned ([`Freshness::of`] takes the
//! `Fetched` of a store read), so selecting it never calls the upstream by itself:
//! a part the operation does not load has no freshness (null).
//!
//! `ageSeconds` is true only at the moment the answer is built, so an answer that
//! selects it is kept out of the response cache (see the README, "Freshness"):
//! replayed later, or confirmed with a `304`, it would state an age that is no
//! longer true to clients that do not add the HTTP `Age` (most GraphQL clients do
//! not). `fetchedAt` and `stale` are facts about the cache entries a stored answer
//! is already pinned to (a refresh stores a new entry version, which makes the
//! stored answer miss), so answers selecting them are stored as usual.

use std::time::Duration;

use async_graphql::{Context, Object, Result};
use chrono::{DateTime, Utc};
use devicegraph_cache::resources::{CheckIns, UpgradeHistory};
use devicegraph_cache::{Fetched, StaleReason};

use crate::loader::DeviceKey;
use crate::scalars::GqlDateTime;
use crate::state::RequestState;

/// Where a piece of an answer came from and how old it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Freshness {
    fetched_at: Option<DateTime<Utc>>,
    age: Option<Duration>,
    stale_reason: Option<StaleReason>,
}

impl Freshness {
    /// The freshness of what one store read answered.
    pub(crate) fn of<T>(fetched: &Fetched<T>) -> Self {
        let fetched_at = fetched.stamp.fetched_at.map(DateTime::<Utc>::from);
        Self {
            fetched_at,
            // An age without a fetch time (a value that is no cache entry's) would
            // be an age of nothing.
            age: fetched_at.map(|_| fetched.stamp.age),
            stale_reason: fetched.stamp.stale_reason,
        }
    }

    /// The least fresh of two parts of one answer (a connection page cut from
    /// several upstream pages): the older fetch, the larger age, stale if either
    /// is (with the first stale part's reason). A part with no fetch time does not
    /// hide the other's.
    pub(crate) fn least_fresh(self, other: Self) -> Self {
        let fetched_at = match (self.fetched_at, other.fetched_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let age = match (self.age, other.age) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Self {
            fetched_at,
            age,
            stale_reason: self.stale_reason.or(other.stale_reason),
        }
    }
}

/// Where a piece of an answer came from and how old it is. Selecting it never calls
/// the upstream.
#[Object]
impl Freshness {
    /// When the data was fetched from ThingSpace (on the replica that fetched it;
    /// every replica sharing the Redis cache reports the same instant).
    async fn fetched_at(&self) -> Option<GqlDateTime> {
        self.fetched_at.map(GqlDateTime)
    }

    /// Seconds since fetchedAt at the time of the answer (whole seconds, rounded
    /// down). An answer that selects it is never stored by the response cache, so
    /// it is always the age at the moment the answer was built.
    async fn age_seconds(&self, ctx: &Context<'_>) -> Result<Option<i32>> {
        let Some(age) = self.age else {
            return Ok(None);
        };
        RequestState::of(ctx)?.keep_out_of_response_cache();
        Ok(Some(i32::try_from(age.as_secs()).unwrap_or(i32::MAX)))
    }

    /// True when served past its TTL because the upstream failed or asked us to
    /// wait.
    async fn stale(&self) -> bool {
        self.stale_reason.is_some()
    }

    /// Why it is stale: UPSTREAM_ERROR (ThingSpace answered with a server error),
    /// UPSTREAM_UNAVAILABLE (no answer in time, or the upstream budget ran out),
    /// RATE_LIMITED (ThingSpace answered 429, or we are waiting out its
    /// Retry-After); null when fresh.
    async fn stale_reason(&self) -> Option<&'static str> {
        self.stale_reason.map(StaleReason::as_str)
    }
}

/// Freshness of each part of a merged device.
pub(crate) struct DeviceFreshness {
    key: DeviceKey,
}

impl DeviceFreshness {
    pub(crate) fn new(key: DeviceKey) -> Self {
        Self { key }
    }
}

/// Freshness of each part of a merged device; null for a part this operation does
/// not load for the device.
#[Object]
impl DeviceFreshness {
    /// Device details (make, model, firmware, ...): always loaded with the device.
    async fn details(&self, ctx: &Context<'_>) -> Result<Option<Freshness>> {
        Ok(RequestState::of(ctx)?
            .details_read(&self.key)
            .map(|read| Freshness::of(&read)))
    }

    /// Firmware upgrade history: null unless the operation selects `upgradeHistory`
    /// for this device.
    async fn upgrade_history(&self, ctx: &Context<'_>) -> Result<Option<Freshness>> {
        let state = RequestState::of(ctx)?;
        Ok(state
            .selected_read::<UpgradeHistory>(&self.key, |parts| parts.upgrades())
            .await
            .map(|read| Freshness::of(&read)))
    }

    /// Check-in history: null unless the operation selects `checkIns` or
    /// `lastCheckIn` for this device.
    async fn check_ins(&self, ctx: &Context<'_>) -> Result<Option<Freshness>> {
        let state = RequestState::of(ctx)?;
        Ok(state
            .selected_read::<CheckIns>(&self.key, |parts| parts.check_ins())
            .await
            .map(|read| Freshness::of(&read)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use devicegraph_cache::{Freshness as Served, Stamp};

    use super::*;

    fn read(at_ms: u64, age_s: u64, stale: Option<StaleReason>) -> Fetched<()> {
        Fetched {
            value: (),
            freshness: if stale.is_some() {
                Served::Stale
            } else {
                Served::Hit
            },
            version: 1,
            stamp: Stamp {
                fetched_at: Some(UNIX_EPOCH + Duration::from_millis(at_ms)),
                age: Duration::from_secs(age_s),
                stale_reason: stale,
            },
        }
    }

    #[test]
    fn of_a_read_keeps_its_stamp() {
        let f = Freshness::of(&read(1_700_000_000_123, 42, None));
        assert_eq!(
            f.fetched_at.map(|t| t.timestamp_millis()),
            Some(1_700_000_000_123)
        );
        assert_eq!(f.age, Some(Duration::from_secs(42)));
        assert_eq!(f.stale_reason, None);

        // No fetch time (not a cache entry's value): no age either.
        let none = Fetched {
            value: (),
            freshness: Served::Hit,
            version: 0,
            stamp: Stamp::default(),
        };
        let f = Freshness::of(&none);
        assert_eq!((f.fetched_at, f.age, f.stale_reason), (None, None, None));
    }

    #[test]
    fn several_parts_answer_the_least_fresh() {
        let a = Freshness::of(&read(2_000, 5, None));
        let b = Freshness::of(&read(1_000, 9, Some(StaleReason::RateLimited)));
        let c = Freshness::of(&read(3_000, 1, Some(StaleReason::UpstreamError)));
        let all = a.least_fresh(b).least_fresh(c);
        assert_eq!(all.fetched_at.map(|t| t.timestamp_millis()), Some(1_000));
        assert_eq!(all.age, Some(Duration::from_secs(9)));
        assert_eq!(all.stale_reason, Some(StaleReason::RateLimited));
        // The first stale part's reason, in the order the parts were read.
        assert_eq!(
            c.least_fresh(b).stale_reason,
            Some(StaleReason::UpstreamError)
        );

        let unknown = Freshness::of(&Fetched {
            value: (),
            freshness: Served::Hit,
            version: 0,
            stamp: Stamp::default(),
        });
        assert_eq!(unknown.least_fresh(a), a);
        assert_eq!(a.least_fresh(unknown), a);
    }
}
