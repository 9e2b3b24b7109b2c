//! Stale marking end to end: a caching store past its TTL whose upstream fails serves
//! the old value, and the response names the paths served stale.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ACCOUNT, SimEnv};
use devicegraph_cache::ManualClock;
use devicegraph_graphql::GraphqlConfig;
use devicegraph_sim::SimConfig;
use serde_json::json;

#[tokio::test]
async fn answers_served_past_their_ttl_are_marked_stale() {
    let clock = Arc::new(ManualClock::new());
    let env = SimEnv::start_with_clock(
        SimConfig::default(),
        GraphqlConfig::default(),
        Duration::from_secs(5),
        Arc::clone(&clock) as Arc<dyn devicegraph_cache::Clock>,
    )
    .await;
    let s = env.sample_imeis(ACCOUNT);
    let query = "query($a: String!, $x: IMEI!, $l: [IMEI!]!) { \
                 device(account: $a, imei: $x) { imei upgradeHistory { status } } \
                 devices(account: $a, imeis: $l) { imei } }";
    let vars = json!({"a": ACCOUNT, "x": s[0], "l": [s[1], s[2]]});
    let fresh = env.run(query, vars.clone()).await;
    assert!(fresh.get("errors").is_none(), "{fresh:#}");
    assert_eq!(fresh["extensions"]["cacheStatus"], "MISS");
    assert!(fresh["extensions"].get("stale").is_none());

    let warm = env.run(query, vars.clone()).await;
    assert_eq!(warm["extensions"]["cacheStatus"], "HIT", "{warm:#}");

    // Past every TTL (the longest is 10 minutes), within stale-if-error (1 hour).
    clock.advance(Duration::from_secs(15 * 60));
    env.faults(json!({"errorRate": 1.0})).await;
    let stale = env.run(query, vars).await;
    assert!(stale.get("errors").is_none(), "{stale:#}");
    assert_eq!(stale["data"], fresh["data"]);
    assert_eq!(stale["extensions"]["cacheStatus"], "STALE");
    assert_eq!(
        stale["extensions"]["stale"],
        json!(["device", "device.upgradeHistory", "devices.0", "devices.1"]),
        "{stale:#}"
    );
}
