//! Shared helpers for the store's integration tests: a simulator on port 0, a store
//! connected to it, the simulator's control API over HTTP, and the Redis switch.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use devicegraph_cache::resources::Details;
use devicegraph_cache::{CacheError, Clock, Fetched, Store, StoreConfig, Ttls};
use devicegraph_sim::{RunningSim, SimConfig};
use devicegraph_upstream::model::DeviceDetails;
use devicegraph_upstream::{AccountName, ClientConfig, Credentials, Imei};
use serde_json::Value;

pub mod fill;

/// Device details for `imeis` of `account`, by IMEI (`Store::get_many::<Details>`).
pub async fn details_of(
    store: &Store,
    account: &AccountName,
    imeis: &[Imei],
) -> HashMap<Imei, Result<Fetched<Option<Arc<DeviceDetails>>>, CacheError>> {
    let keys = imeis
        .iter()
        .map(|imei| (account.clone(), imei.clone()))
        .collect();
    store
        .get_many::<Details>(keys)
        .await
        .into_iter()
        .map(|((_, imei), answer)| (imei, answer))
        .collect()
}

pub const ACCOUNT: &str = "0000123456-00001";

pub fn account() -> AccountName {
    ACCOUNT.parse().unwrap()
}

pub async fn sim(devices: u64) -> RunningSim {
    let config = SimConfig {
        devices,
        ..SimConfig::default()
    };
    devicegraph_sim::spawn_on(config, "127.0.0.1:0")
        .await
        .unwrap()
}

pub fn client_config(sim: &RunningSim, timeout: Duration) -> ClientConfig {
    let credentials = Credentials {
        client_id: "sim-client".into(),
        client_secret: "sim-secret".into(),
        username: "sim-user".into(),
        password: "sim-password".into(),
    };
    let mut config = ClientConfig::new(sim.base_url().parse().unwrap(), credentials);
    config.timeout = timeout;
    config.max_attempts = 1;
    config
}

/// Generous limits: tests of caching must not be slowed by the budget.
pub fn store_config() -> StoreConfig {
    StoreConfig {
        ttl: Ttls::default(),
        max_bytes: 64 << 20,
        rate_per_second: 10_000,
        burst: 10_000,
        max_concurrency: 64,
        ..StoreConfig::default()
    }
}

pub fn store(sim: &RunningSim, config: StoreConfig, clock: Arc<dyn Clock>) -> Store {
    Store::connect_with_clock(config, client_config(sim, Duration::from_secs(5)), clock).unwrap()
}

/// `GET /_sim/stats`.
pub async fn stats(sim: &RunningSim) -> Value {
    reqwest::get(format!("{}/_sim/stats", sim.root_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Calls to `endpoint` in a stats snapshot.
pub fn calls(stats: &Value, endpoint: &str) -> u64 {
    stats["calls"][endpoint].as_u64().unwrap_or(0)
}

/// `POST /_sim/faults`.
pub async fn faults(sim: &RunningSim, body: Value) {
    let status = reqwest::Client::new()
        .post(format!("{}/_sim/faults", sim.root_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "faults refused: {status}");
}

/// `POST /_sim/reset`.
pub async fn reset(sim: &RunningSim) {
    reqwest::Client::new()
        .post(format!("{}/_sim/reset", sim.root_url()))
        .send()
        .await
        .unwrap();
}

pub fn sample_imeis(sim: &RunningSim) -> Vec<Imei> {
    sim.catalog().sample_imeis[ACCOUNT]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

pub fn unknown_imeis(sim: &RunningSim) -> Vec<Imei> {
    sim.catalog()
        .unknown_imeis
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

/// `n` distinct valid IMEIs (mostly unknown to the simulator).
pub fn generated_imeis(n: u64) -> Vec<Imei> {
    (0..n)
        .map(|i| {
            let body = format!("{:014}", 35_123_400_000_000 + i);
            let check = devicegraph_upstream::ids::luhn_check_digit(&body);
            format!("{body}{check}").parse().unwrap()
        })
        .collect()
}

/// The Redis URL for tests, or `None` after writing to stderr why the test is skipped.
/// With `DEVICEGRAPH_REQUIRE_REDIS=1` a missing URL fails the test instead.
pub fn redis_url() -> Option<String> {
    match std::env::var("DEVICEGRAPH_TEST_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("DEVICEGRAPH_REQUIRE_REDIS").as_deref() != Ok("1"),
                "DEVICEGRAPH_REQUIRE_REDIS=1 but DEVICEGRAPH_TEST_REDIS_URL is not set"
            );
            // Straight to fd 2, not `eprintln!`: libtest captures the macros' output of
            // passing tests, and a skip must be visible in a plain `cargo test`.
            let _ = writeln!(
                std::io::stderr(),
                "skipping Redis test: DEVICEGRAPH_TEST_REDIS_URL not set (see README)"
            );
            None
        }
    }
}

/// A key prefix no other test (or earlier run) uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("dgtest:{test}:{}:{nanos}", std::process::id())
}
