//! The crate's metric names and the few helpers that record them, through the
//! `metrics` facade (the root binary installs the Prometheus exporter).
//!
//! A leaf: it imports only the value types it counts (`fetched`), never the modules
//! that record (`engine`, `pacer`, `redis_conn`, `fanout`). Resources are named by
//! their `Resource::NAME`.

use devicegraph_upstream::metric_help::MetricHelp;
use tracing::debug;

use crate::fetched::{Freshness, KeyResult};

pub(crate) const CACHE_REQUESTS: &str = "devicegraph_cache_requests_total";
pub(crate) const CACHE_COALESCED: &str = "devicegraph_cache_coalesced_total";
pub(crate) const CACHE_BYTES: &str = "devicegraph_cache_bytes";
pub(crate) const CACHE_REFRESHES: &str = "devicegraph_cache_background_refreshes_total";
pub(crate) const REDIS_ERRORS: &str = "devicegraph_cache_redis_errors_total";
pub(crate) const BUDGET_WAITS: &str = "devicegraph_upstream_budget_waits_total";
pub(crate) const BUDGET_EXHAUSTED: &str = "devicegraph_upstream_budget_exhausted_total";
pub(crate) const UPSTREAM_PAUSES: &str = "devicegraph_upstream_pauses_total";
pub(crate) const UPSTREAM_SHED: &str = "devicegraph_upstream_shed_total";
pub(crate) const UPSTREAM_QUEUED: &str = "devicegraph_upstream_queued";

/// Every metric the cache records, with its HELP text (re-exported as
/// `devicegraph_cache::METRICS`).
pub const METRICS: &[MetricHelp] = &[
    MetricHelp::counter(
        CACHE_REQUESTS,
        "Keys read through the cache, by resource and outcome (hit, miss, stale, error).",
    ),
    MetricHelp::counter(
        CACHE_COALESCED,
        "Keys that waited on another request's upstream fetch instead of making their own, by resource.",
    ),
    MetricHelp::gauge(
        CACHE_BYTES,
        "Estimated heap bytes held by the in-memory cache (bounded by cache.max_bytes).",
    ),
    MetricHelp::counter(
        CACHE_REFRESHES,
        "Background refreshes of entries served past their TTL (stale-while-revalidate), by resource.",
    ),
    MetricHelp::counter(
        REDIS_ERRORS,
        "Failed Redis operations (L2 cache, shared budget, invalidation stream), by operation.",
    ),
    MetricHelp::counter(
        BUDGET_WAITS,
        "Upstream calls that waited for the shared budget, by limit (rate or concurrency).",
    ),
    MetricHelp::counter(
        BUDGET_EXHAUSTED,
        "Upstream calls that failed because the shared budget stayed spent until their deadline, by limit.",
    ),
    MetricHelp::counter(
        UPSTREAM_PAUSES,
        "Pauses of an endpoint after a ThingSpace 429 with Retry-After, by endpoint.",
    ),
    MetricHelp::counter(
        UPSTREAM_SHED,
        "Upstream calls not sent (load shedding), by reason: queue_full (max_queued calls already waiting), queue_wait (max_queue_wait), deadline (could not be answered before its deadline), background (a background refresh deferred to interactive calls).",
    ),
    MetricHelp::gauge(
        UPSTREAM_QUEUED,
        "Upstream calls waiting for a concurrency slot or for budget now (at most upstream.max_queued).",
    ),
];

/// `n` keys answered with `outcome`: `hit`, `miss`, `stale` or `error`.
pub(crate) fn requests(resource: &'static str, outcome: &'static str, n: u64) {
    metrics::counter!(CACHE_REQUESTS, "resource" => resource, "outcome" => outcome).increment(n);
}

/// A key waited on another request's upstream fetch instead of making its own.
pub(crate) fn coalesced(resource: &'static str, n: u64) {
    metrics::counter!(CACHE_COALESCED, "resource" => resource).increment(n);
}

pub(crate) fn bytes(weighted: u64) {
    // Precision loss above 2^53 bytes is irrelevant for a gauge.
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(CACHE_BYTES).set(weighted as f64);
}

pub(crate) fn refresh(resource: &'static str) {
    metrics::counter!(CACHE_REFRESHES, "resource" => resource).increment(1);
}

pub(crate) fn redis_error(op: &'static str) {
    metrics::counter!(REDIS_ERRORS, "op" => op).increment(1);
}

/// How the keys of one read were answered, counted as they are (the read then
/// records them with one counter update per outcome, not per key).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    hits: u64,
    misses: u64,
    stale: u64,
    errors: u64,
}

impl Tally {
    pub(crate) fn count<V>(&mut self, result: &KeyResult<V>) {
        match result {
            Ok(f) if f.freshness == Freshness::Hit => self.hits += 1,
            Ok(f) if f.freshness == Freshness::Miss => self.misses += 1,
            Ok(_) => self.stale += 1,
            Err(_) => self.errors += 1,
        }
    }

    /// Metrics and one log event for the read.
    pub(crate) fn record(&self, resource: &'static str) {
        let Self {
            hits,
            misses,
            stale,
            errors,
        } = *self;
        for (outcome, n) in [
            ("hit", hits),
            ("miss", misses),
            ("stale", stale),
            ("error", errors),
        ] {
            if n > 0 {
                requests(resource, outcome, n);
            }
        }
        if hits + misses + stale + errors == 1 {
            let cache = if hits > 0 {
                "hit"
            } else if misses > 0 {
                "miss"
            } else if stale > 0 {
                "stale"
            } else {
                "error"
            };
            debug!(resource, cache, "cache lookup");
        } else {
            debug!(resource, hits, misses, stale, errors, "cache lookup");
        }
    }
}
