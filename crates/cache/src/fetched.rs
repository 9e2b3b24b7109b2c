//! What every read answers: the value and where it came from, so the HTTP layer can
//! say `X-Cache: HIT | MISS | STALE` and GraphQL can list `extensions.stale` and
//! answer `freshness` (when the value was fetched, how old it was when read, and
//! why it was served stale: [`Stamp`]); and [`KeyResult`], the engine's answer for
//! one key, before the store turns a remembered "not found" back into the
//! upstream's error.

use std::time::{Duration, SystemTime};

use devicegraph_upstream::UpstreamError;

use crate::error::CacheError;
use crate::resource::Cached;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Freshness {
    /// From cache, within its TTL (or within the stale-while-revalidate window).
    Hit,
    /// Fetched from the upstream for this request.
    Miss,
    /// From cache past its TTL because the upstream failed (stale-if-error).
    Stale,
}

impl Freshness {
    /// Lower-case label for logs and metrics (`hit`, `miss`, `stale`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
        }
    }
}

/// Why an entry was served past its TTL (stale-if-error), named as the GraphQL
/// `Freshness.staleReason` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StaleReason {
    /// The upstream answered, with a server error (HTTP 5xx).
    UpstreamError,
    /// The upstream gave no answer in time (connect failure, dropped connection,
    /// timeout), or the call was not sent: the outbound budget ran out, too many
    /// calls were waiting, or the endpoint's circuit is open.
    UpstreamUnavailable,
    /// The upstream answered 429, or the endpoint is paused for its `Retry-After`,
    /// so the entry was served without asking.
    RateLimited,
}

impl StaleReason {
    /// The reason a transient failure gives an entry served in its place.
    pub fn of(error: &UpstreamError) -> Self {
        match error {
            UpstreamError::RateLimited { .. } => Self::RateLimited,
            UpstreamError::Unavailable {
                status: Some(_), ..
            } => Self::UpstreamError,
            // Only transient errors serve stale entries; the others are listed for
            // completeness (an answer we could not use is the upstream's error).
            UpstreamError::Api { .. }
            | UpstreamError::Decode { .. }
            | UpstreamError::Pagination { .. } => Self::UpstreamError,
            UpstreamError::Unavailable { status: None, .. }
            | UpstreamError::Shed { .. }
            | UpstreamError::Timeout { .. }
            | UpstreamError::Auth { .. }
            | UpstreamError::BadCredentials { .. }
            | UpstreamError::InvalidRequest { .. } => Self::UpstreamUnavailable,
        }
    }

    /// `UPSTREAM_ERROR`, `UPSTREAM_UNAVAILABLE` or `RATE_LIMITED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UpstreamError => "UPSTREAM_ERROR",
            Self::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            Self::RateLimited => "RATE_LIMITED",
        }
    }
}

/// When a value was fetched from the upstream, how old it was when this read
/// answered, and why it was served stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// Wall-clock time the upstream's answer was stored, on the replica that
    /// fetched it (kept through the Redis L2, so every replica reports the same
    /// instant); `None` for a value that is not a cache entry's.
    pub fetched_at: Option<SystemTime>,
    /// The entry's age when this read answered, on the cache's monotonic clock (an
    /// L2 copy's age is the writer's, measured by Redis's own expiry, so replicas
    /// never compare wall clocks); zero for a value fetched by this read.
    pub age: Duration,
    /// Set exactly when the value was served stale ([`Freshness::Stale`]).
    pub stale_reason: Option<StaleReason>,
}

/// A value and where it came from.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    pub value: T,
    pub freshness: Freshness,
    /// The version of the cache entry the value is (see `Store::current`); 0 when
    /// it is not a cache entry's.
    pub version: u64,
    /// When the entry was fetched and how old it was when read.
    pub stamp: Stamp,
}

impl<T> Fetched<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Fetched<U> {
        Fetched {
            value: f(self.value),
            freshness: self.freshness,
            version: self.version,
            stamp: self.stamp,
        }
    }

    /// Everything but the value (to keep where an answer came from without
    /// keeping the answer).
    pub fn meta(&self) -> Fetched<()> {
        Fetched {
            value: (),
            freshness: self.freshness,
            version: self.version,
            stamp: self.stamp,
        }
    }
}

/// The engine's answer for one key: what the cache keeps for it and its freshness,
/// or why there is none. Lives here rather than in `engine` so `metrics` can tally
/// reads without importing the engine.
pub(crate) type KeyResult<V> = Result<Fetched<Cached<V>>, CacheError>;

#[cfg(test)]
mod tests {
    use super::*;
    use devicegraph_upstream::Endpoint;

    #[test]
    fn stale_reasons_follow_the_failure() {
        let e = Endpoint::DeviceDetails;
        let unavailable = |status| UpstreamError::Unavailable {
            endpoint: e,
            reason: "x".into(),
            status,
        };
        let cases = [
            (unavailable(Some(503)), "UPSTREAM_ERROR"),
            (unavailable(None), "UPSTREAM_UNAVAILABLE"),
            (
                UpstreamError::Timeout { endpoint: e },
                "UPSTREAM_UNAVAILABLE",
            ),
            (
                UpstreamError::RateLimited {
                    endpoint: e,
                    retry_after: None,
                },
                "RATE_LIMITED",
            ),
        ];
        for (error, reason) in cases {
            assert!(error.is_transient(), "{error:?}");
            assert_eq!(StaleReason::of(&error).as_str(), reason, "{error:?}");
        }
    }
}
