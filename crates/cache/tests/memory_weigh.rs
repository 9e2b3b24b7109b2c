//! The weigher against reality: a store with room for everything is filled with real
//! device details and campaign pages; the resident memory the process gains should
//! be close to the weighted size moka reports (the weigher estimates heap bytes, not
//! entry counts). One test per binary, so no other test's memory shows in the RSS.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use devicegraph_cache::TokioClock;
use devicegraph_sim::resident_memory_bytes;
use support::fill::{big_campaign, fill};
use support::*;

const MIB: f64 = 1024.0 * 1024.0;

#[tokio::test]
async fn weighted_size_tracks_resident_memory() {
    let sim = sim(100_000).await;
    let (campaign, _) = big_campaign(&sim);
    let mut config = store_config();
    config.max_bytes = 1 << 30;
    let store = store(&sim, config, Arc::new(TokioClock));

    // Warm-up in a store of its own, dropped, so its entries do not count.
    {
        let warm = support::store(&sim, store_config(), Arc::new(TokioClock));
        fill(&warm, &campaign, 2).await;
    }
    let rss_before = resident_memory_bytes().unwrap();
    let weighted_before = store.weighted_size();
    let devices = fill(&store, &campaign, 20).await;
    let weighted = store.weighted_size() - weighted_before;
    let growth = resident_memory_bytes().unwrap().saturating_sub(rss_before);
    let ratio = growth as f64 / weighted as f64;
    println!(
        "weigher calibration: {devices} devices in {} entries -> weighted {:.1} MiB, RSS +{:.1} MiB (RSS/weighted {ratio:.2}, \
         {:.0} weighted bytes per device)",
        store.entry_count(),
        weighted as f64 / MIB,
        growth as f64 / MIB,
        weighted as f64 / devices as f64,
    );
    assert!(devices >= 15_000, "{devices}");
    assert!(
        (0.6..=1.5).contains(&ratio),
        "weighted size is off the real heap by {ratio:.2}x"
    );
}
