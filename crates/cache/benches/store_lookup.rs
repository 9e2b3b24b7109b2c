//! Warm-path cost of the store alone (no HTTP, no GraphQL): `Store::get_many::<Details>`
//! for one cached IMEI, and a 100-IMEI batch, served from L1. Not a test; run with
//! `cargo bench -p devicegraph-cache --bench store_lookup`. The HTTP-level warm-path
//! benchmark lives at the workspace root.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use devicegraph_cache::resources::{CampaignPageKey, CampaignPages};
use devicegraph_cache::{Freshness, Store, StoreConfig};
use devicegraph_sim::SimConfig;
use devicegraph_upstream::{AccountName, ClientConfig, Credentials, Imei};
use support::details_of;

const ACCOUNT: &str = "0000123456-00001";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let sim = devicegraph_sim::spawn_on(SimConfig::default(), "127.0.0.1:0")
        .await
        .unwrap();
    let credentials = Credentials {
        client_id: "sim-client".into(),
        client_secret: "sim-secret".into(),
        username: "sim-user".into(),
        password: "sim-password".into(),
    };
    let client = ClientConfig::new(sim.base_url().parse().unwrap(), credentials);
    let store = Store::connect(StoreConfig::default(), client).unwrap();
    let account: AccountName = ACCOUNT.parse().unwrap();
    let imeis: Vec<Imei> = sim.catalog().sample_imeis[ACCOUNT]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let one = &imeis[..1];
    // Warm: one upstream read, then everything is an L1 hit.
    details_of(&store, &account, &imeis).await;
    // 100 distinct devices from the first page of a campaign report.
    let campaign = sim
        .catalog()
        .campaigns
        .iter()
        .find(|c| c.account == ACCOUNT)
        .unwrap()
        .id
        .parse()
        .unwrap();
    let page = store
        .get::<CampaignPages>(CampaignPageKey::new(&account, &campaign, None))
        .await
        .unwrap();
    let batch: Vec<Imei> = page
        .value
        .devices
        .iter()
        .take(100)
        .map(|d| d.device_id.parse().unwrap())
        .collect();
    details_of(&store, &account, &batch).await;
    let before = sim.stats().total_calls;

    let (n, per_call) = measure(|| async {
        let answer = details_of(&store, &account, one).await;
        assert_eq!(answer[&one[0]].as_ref().unwrap().freshness, Freshness::Hit);
    })
    .await;
    println!(
        "warm Store::get_many::<Details>, 1 IMEI, one task: {n} lookups in 2 s = {:.0} lookups/s ({per_call:?} each)",
        n as f64 / 2.0
    );

    let (n, per_call) = measure(|| async {
        details_of(&store, &account, &batch).await;
    })
    .await;
    println!(
        "warm Store::get_many::<Details>, {}-IMEI batch, one task: {:.0} batches/s ({per_call:?} each)",
        batch.len(),
        n as f64 / 2.0
    );

    // Two tasks on two worker threads.
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (store, account, one) = (store.clone(), account.clone(), one.to_vec());
            tokio::spawn(async move {
                let end = Instant::now() + Duration::from_secs(2);
                let mut n = 0u64;
                while Instant::now() < end {
                    for _ in 0..100 {
                        details_of(&store, &account, &one).await;
                    }
                    n += 100;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    println!(
        "warm Store::get_many::<Details>, 1 IMEI, two tasks: {:.0} lookups/s",
        total as f64 / 2.0
    );
    println!(
        "upstream calls during the warm runs: {}",
        sim.stats().total_calls - before
    );
}

async fn measure<F, Fut>(mut f: F) -> (u64, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    let end = start + Duration::from_secs(2);
    let mut n = 0u64;
    while Instant::now() < end {
        for _ in 0..100 {
            f().await;
        }
        n += 100;
    }
    let per_call = start.elapsed() / u32::try_from(n).unwrap_or(u32::MAX);
    (n, per_call)
}
