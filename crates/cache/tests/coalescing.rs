//! Coalescing and per-IMEI granularity, counted at the simulator over real HTTP.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use devicegraph_cache::resources::*;
use devicegraph_cache::{CacheError, Freshness, TokioClock};
use devicegraph_upstream::{CampaignId, DeviceIdKind, DeviceIdentifier, UpstreamError};
use futures::future::join_all;
use serde_json::json;
use support::*;

const ENDPOINTS: [&str; 5] = [
    "device_details",
    "upgrade_history",
    "check_in_history",
    "campaign_devices",
    "provisioning_history",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_identical_cold_requests_cost_one_call_per_resource() {
    let sim = sim(10_000).await;
    let catalog = sim.catalog();
    let store = store(&sim, store_config(), Arc::new(TokioClock));
    let account = account();
    let imei = sample_imeis(&sim)[0].clone();
    let campaign: CampaignId = catalog
        .campaigns
        .iter()
        .find(|c| c.account == ACCOUNT)
        .unwrap()
        .id
        .parse()
        .unwrap();
    let device = DeviceIdentifier::new(DeviceIdKind::Imei, imei.as_str()).unwrap();
    let earliest: DateTime<Utc> = catalog.provisioning_window.earliest.parse().unwrap();
    let latest: DateTime<Utc> = catalog.provisioning_window.latest.parse().unwrap();
    // Slow answers keep every request of the stampede in flight together.
    faults(&sim, json!({"latencyMs": 200})).await;
    let before = stats(&sim).await;

    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let s = store.clone();
        let (a, i, c, d) = (
            account.clone(),
            imei.clone(),
            campaign.clone(),
            device.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let details = details_of(&s, &a, std::slice::from_ref(&i)).await;
            let details = details[&i]
                .as_ref()
                .map(|f| f.freshness)
                .map_err(Clone::clone);
            let upgrades = s
                .get::<UpgradeHistory>((a.clone(), i.clone()))
                .await
                .map(|f| f.freshness);
            let check_ins = s
                .get::<CheckIns>((a.clone(), i.clone()))
                .await
                .map(|f| f.freshness);
            let page = s
                .get::<CampaignPages>(CampaignPageKey::new(&a, &c, None))
                .await
                .map(|f| f.freshness);
            let provisioning = s
                .get::<Provisioning>(ProvisioningKey {
                    device: d.clone(),
                    earliest,
                    latest,
                })
                .await
                .map(|f| f.freshness);
            [details, upgrades, check_ins, page, provisioning]
        }));
    }
    let answers: Vec<[Result<Freshness, CacheError>; 5]> = join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let after = stats(&sim).await;

    for (n, endpoint) in ENDPOINTS.iter().enumerate() {
        let made = calls(&after, endpoint) - calls(&before, endpoint);
        let misses = answers
            .iter()
            .filter(|a| a[n] == Ok(Freshness::Miss))
            .count();
        let hits = answers
            .iter()
            .filter(|a| a[n] == Ok(Freshness::Hit))
            .count();
        println!(
            "stampede {endpoint}: 1000 requests -> {made} upstream call(s) ({misses} coalesced misses, {hits} hits)"
        );
        assert_eq!(made, 1, "{endpoint}");
        assert_eq!(misses + hits, 1000, "{endpoint}: every request answered");
    }
    assert!(calls(&after, "oauth_token") <= 1 && calls(&after, "session_login") <= 1);
}

#[tokio::test]
async fn overlapping_concurrent_batches_fetch_each_imei_once() {
    let sim = sim(10_000).await;
    let store = store(&sim, store_config(), Arc::new(TokioClock));
    store.client().ensure_authenticated().await.unwrap();
    let imeis = sample_imeis(&sim);
    assert!(imeis.len() >= 8);
    faults(&sim, json!({"latencyMs": 300})).await;
    let before = stats(&sim).await;

    let account = account();
    let (first, second) = (&imeis[0..5], &imeis[2..8]);
    let (a, b) = tokio::join!(details_of(&store, &account, first), async {
        // Start the second batch while the first is in flight.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        details_of(&store, &account, second).await
    });
    let after = stats(&sim).await;
    assert!(
        a.values()
            .chain(b.values())
            .all(|r| r.as_ref().unwrap().freshness == Freshness::Miss)
    );
    assert!(
        a.values()
            .chain(b.values())
            .all(|r| r.as_ref().unwrap().value.is_some())
    );
    let made = calls(&after, "device_details") - calls(&before, "device_details");
    println!("overlapping batches of 5 and 6 IMEIs (3 shared): {made} device_details calls");
    assert_eq!(
        made, 2,
        "the second batch asked only for its 3 new IMEIs and waited for the rest"
    );
}

#[tokio::test]
async fn a_later_batch_fetches_only_the_missing_imeis() {
    let sim = sim(10_000).await;
    let store = store(&sim, store_config(), Arc::new(TokioClock));
    let imeis = sample_imeis(&sim);
    let account = account();
    details_of(&store, &account, &imeis[0..4]).await;
    let before = stats(&sim).await;
    let answers = details_of(&store, &account, &imeis[2..7]).await;
    let after = stats(&sim).await;
    assert_eq!(
        calls(&after, "device_details") - calls(&before, "device_details"),
        1
    );
    for (n, imei) in imeis[2..7].iter().enumerate() {
        let want = if n < 2 {
            Freshness::Hit
        } else {
            Freshness::Miss
        };
        assert_eq!(answers[imei].as_ref().unwrap().freshness, want, "{imei}");
    }
    // Asking again for all of them costs nothing.
    details_of(&store, &account, &imeis[0..7]).await;
    assert_eq!(
        calls(&stats(&sim).await, "device_details"),
        calls(&after, "device_details")
    );
}

#[tokio::test]
async fn unknown_devices_and_not_found_answers_are_cached() {
    let sim = sim(10_000).await;
    let store = store(&sim, store_config(), Arc::new(TokioClock));
    let account = account();
    let known = sample_imeis(&sim)[0].clone();
    let unknown = unknown_imeis(&sim)[0].clone();

    let first = details_of(&store, &account, &[known.clone(), unknown.clone()]).await;
    assert!(first[&known].as_ref().unwrap().value.is_some());
    let absent = first[&unknown].as_ref().unwrap();
    assert!(absent.value.is_none());
    assert_eq!(absent.freshness, Freshness::Miss);

    let history = store
        .get::<UpgradeHistory>((account.clone(), unknown.clone()))
        .await;
    let Err(CacheError::Upstream(UpstreamError::Api { error_code, .. })) = &history else {
        panic!("expected the upstream's not-found error, got {history:?}")
    };
    assert!(error_code.ends_with("NotFound"), "{error_code}");

    let before = stats(&sim).await;
    let again = details_of(&store, &account, std::slice::from_ref(&unknown)).await;
    assert_eq!(again[&unknown].as_ref().unwrap().freshness, Freshness::Hit);
    assert!(again[&unknown].as_ref().unwrap().value.is_none());
    assert_eq!(
        store
            .get::<UpgradeHistory>((account.clone(), unknown.clone()))
            .await
            .unwrap_err(),
        history.unwrap_err()
    );
    let after = stats(&sim).await;
    assert_eq!(
        calls(&after, "device_details"),
        calls(&before, "device_details")
    );
    assert_eq!(
        calls(&after, "upgrade_history"),
        calls(&before, "upgrade_history")
    );
}
