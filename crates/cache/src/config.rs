//! The store's configuration (`[cache]` plus the outbound limits of `[upstream]`).
//! Plain data: the root crate parses and validates the TOML and fills it in.

use std::time::Duration;

use crate::resource::Ttls;

/// `[cache]` plus the outbound limits of `[upstream]`.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub ttl: Ttls,
    pub max_bytes: u64,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    /// Optional shared L2 cache (and shared upstream budget) across replicas.
    pub redis_url: Option<String>,
    /// Upstream budget, requests per second, all callers together.
    pub rate_per_second: u32,
    /// Burst allowed above the steady rate.
    pub burst: u32,
    /// In-flight upstream requests, all callers together.
    pub max_concurrency: usize,
    /// First segment of every Redis key this store writes (values live under
    /// `{prefix}:v2:...`, the shared budget under `{prefix}:budget:...`). Replicas that
    /// should share a cache and a budget use the same prefix.
    pub redis_key_prefix: String,
    /// Calls that may wait for a concurrency slot or budget at once; a call that
    /// would wait beyond this is shed at once (`UpstreamError::Shed`).
    pub max_queued: usize,
    /// The longest a call waits for a concurrency slot or budget before it is shed.
    pub max_queue_wait: Duration,
    /// Share of the concurrency slots and of the budget's burst that background work
    /// (`devicegraph_upstream::is_background`) leaves to interactive calls.
    pub background_reserve: f64,
    /// The longest one shared upstream fetch may run (its L2 read and every upstream
    /// call, page, retry and pacer wait in it) before it is abandoned: the requests
    /// waiting on it get a timeout (or their stale copy), nothing is stored, and the
    /// next request starts a new fetch. Not the per-call `upstream.timeout`: a fetch
    /// may make several calls. Set it to the request timeout, past which no waiter
    /// has a use for the answer.
    pub fetch_timeout: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            ttl: Ttls::default(),
            max_bytes: 256 * 1024 * 1024,
            stale_while_revalidate: Duration::from_secs(30),
            stale_if_error: Duration::from_secs(3600),
            redis_url: None,
            rate_per_second: 50,
            burst: 50,
            max_concurrency: 64,
            redis_key_prefix: "devicegraph".to_owned(),
            max_queued: 256,
            max_queue_wait: Duration::from_secs(2),
            background_reserve: 0.25,
            fetch_timeout: Duration::from_secs(30),
        }
    }
}

impl StoreConfig {
    /// The Redis URL if one is set (an empty string, as in the default TOML, is none).
    pub(crate) fn redis_url(&self) -> Option<&str> {
        self.redis_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
    }
}
