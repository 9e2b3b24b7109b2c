//! What every read answers: the value and where it came from, so the HTTP layer can
//! say `X-Cache: HIT | MISS | STALE` and GraphQL can list `extensions.stale`; and
//! [`KeyResult`], the engine's answer for one key, before the store turns a
//! remembered "not found" back into the upstream's error.

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

/// A value and where it came from.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    pub value: T,
    pub freshness: Freshness,
    /// The version of the cache entry the value is (see `Store::current`); 0 when
    /// it is not a cache entry's.
    pub version: u64,
}

impl<T> Fetched<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Fetched<U> {
        Fetched {
            value: f(self.value),
            freshness: self.freshness,
            version: self.version,
        }
    }
}

/// The engine's answer for one key: what the cache keeps for it and its freshness,
/// or why there is none. Lives here rather than in `engine` so `metrics` can tally
/// reads without importing the engine.
pub(crate) type KeyResult<V> = Result<Fetched<Cached<V>>, CacheError>;
