//! The byte bound: a store limited to 2 MiB is filled with about 40 MiB (25,000 devices) of real
//! device details and campaign pages; moka's weighted size must stay within the
//! bound, and the process's resident memory must grow by a small multiple of the
//! bound, not by what was read. One test per binary, so no other test's memory
//! shows in the process's RSS.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use devicegraph_cache::TokioClock;
use devicegraph_sim::resident_memory_bytes;
use support::fill::{big_campaign, fill};
use support::*;

const BOUND: u64 = 2 << 20;
const MIB: f64 = 1024.0 * 1024.0;

#[tokio::test]
async fn a_small_bound_holds_in_weighted_size_and_in_resident_memory() {
    let sim = sim(100_000).await;
    let (campaign, members) = big_campaign(&sim);
    let mut config = store_config();
    config.max_bytes = BOUND;
    let store = store(&sim, config, Arc::new(TokioClock));

    // Warm up everything that allocates once (tokens, connections, the simulator's
    // tables, allocator arenas) in a store of its own, dropped, so the measurement
    // sees the bounded cache and the transient buffers of reading.
    {
        let warm = support::store(&sim, store_config(), Arc::new(TokioClock));
        fill(&warm, &campaign, 2).await;
    }
    store.client().ensure_authenticated().await.unwrap();
    let rss_before = resident_memory_bytes().unwrap();

    let devices = fill(&store, &campaign, 25).await;
    let held = store.weighted_size();
    let rss_after = resident_memory_bytes().unwrap();
    let growth = rss_after.saturating_sub(rss_before);
    println!(
        "memory bound {:.1} MiB: read {devices} devices (campaign of {members}) -> weighted size {:.2} MiB in {} entries; \
         RSS {:.1} MiB -> {:.1} MiB (+{:.1} MiB)",
        BOUND as f64 / MIB,
        held as f64 / MIB,
        store.entry_count(),
        rss_before as f64 / MIB,
        rss_after as f64 / MIB,
        growth as f64 / MIB,
    );
    assert!(
        devices >= 20_000,
        "the test must read far past the bound: {devices} devices"
    );
    assert!(held <= BOUND, "weighted size {held} over the bound");
    assert!(held >= BOUND / 2, "the cache is actually used: {held}");
    // Unbounded, 25,000 cached devices would add about 40 MiB (see memory_weigh.rs).
    assert!(
        growth < 12 * (1 << 20),
        "RSS grew {:.1} MiB",
        growth as f64 / MIB
    );
}
