//! The outbound budget under 1,000 concurrent cold requests for distinct keys: the
//! peak rate per second and the peak concurrency the simulator sees never exceed the
//! configuration, and requests the budget cannot serve before their deadline are
//! shed at once (`UpstreamError::Shed`: budget exhausted, too many waiting, or no
//! answer possible before the deadline) instead of queueing forever.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use devicegraph_cache::resources::*;
use devicegraph_cache::{CacheError, Store, TokioClock};
use devicegraph_upstream::UpstreamError;
use futures::future::join_all;
use serde_json::json;
use support::*;

const RATE: u64 = 20;
const CONCURRENCY: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_under_a_thousand_concurrent_cold_requests() {
    let sim = sim(10_000).await;
    let mut config = store_config();
    config.rate_per_second = RATE as u32;
    config.burst = RATE as u32;
    config.max_concurrency = CONCURRENCY as usize;
    let store = Store::connect_with_clock(
        config,
        client_config(&sim, Duration::from_secs(2)),
        Arc::new(TokioClock),
    )
    .unwrap();
    // Each answer takes 50 ms, so the concurrency ceiling matters as well as the rate.
    faults(&sim, json!({"latencyMs": 50})).await;
    let account = account();
    let imeis = generated_imeis(1000);

    let started = tokio::time::Instant::now();
    let tasks = imeis.into_iter().map(|imei| {
        let (store, account) = (store.clone(), account.clone());
        tokio::spawn(async move { store.get::<CheckIns>((account.clone(), imei.clone())).await })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let elapsed = started.elapsed();
    let stats = stats(&sim).await;

    let answered = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Ok(_) | Err(CacheError::Upstream(UpstreamError::Api { .. }))
            )
        })
        .count();
    let exhausted = results
        .iter()
        .filter(|r| matches!(r, Err(CacheError::Upstream(UpstreamError::Shed { .. }))))
        .count();
    // Callers still queued for a concurrency slot at their deadline.
    let no_slot = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(CacheError::Upstream(
                    UpstreamError::Timeout { .. } | UpstreamError::Unavailable { .. }
                ))
            )
        })
        .count();
    let peak_concurrency = stats["peakConcurrency"].as_u64().unwrap();
    let peak_rates = &stats["peakRatePerSecond"];
    let peak_total = stats["peakTotalRatePerSecond"].as_u64().unwrap();
    println!(
        "1000 cold requests, rate {RATE}/s, concurrency {CONCURRENCY}: {answered} answered, {exhausted} shed, \
         {no_slot} found no slot in time, in {elapsed:?}; sim peak concurrency {peak_concurrency}, peak total rate {peak_total}/s, \
         per endpoint {peak_rates}"
    );
    assert!(
        peak_concurrency <= CONCURRENCY,
        "peak concurrency {peak_concurrency}"
    );
    assert!(peak_total <= RATE, "peak rate {peak_total}/s");
    for (endpoint, peak) in peak_rates.as_object().unwrap() {
        assert!(peak.as_u64().unwrap() <= RATE, "{endpoint}: {peak}/s");
    }
    assert_eq!(
        answered + exhausted + no_slot,
        1000,
        "no other failure: {:?}",
        results.iter().find(|r| r.is_err())
    );
    assert!(answered >= 30, "the budget was used: {answered}");
    assert!(exhausted > 500, "the rest were shed: {exhausted}");
    assert!(
        elapsed < Duration::from_secs(5),
        "bounded by the 2 s deadline: {elapsed:?}"
    );
}
