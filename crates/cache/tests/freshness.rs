//! TTL, stale-while-revalidate, stale-if-error, 429 pauses and invalidation against
//! the simulator over real HTTP, with the cache's clock moved by hand (the network
//! and the simulator run in real time; only the cache's notion of age jumps).
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use devicegraph_cache::resources::*;
use devicegraph_cache::{CacheError, Freshness, InvalidateScope, ManualClock, StoreConfig};
use devicegraph_sim::RunningSim;
use devicegraph_upstream::UpstreamError;
use serde_json::json;
use support::*;

const CHECK_INS_TTL: Duration = Duration::from_secs(60);
const SWR: Duration = Duration::from_secs(30);
const SIE: Duration = Duration::from_secs(3600);

fn config() -> StoreConfig {
    let mut config = store_config();
    config.ttl.set("check_ins", CHECK_INS_TTL);
    config.stale_while_revalidate = SWR;
    config.stale_if_error = SIE;
    config
}

/// Waits (bounded) until the simulator has seen `want` calls to `endpoint`.
async fn wait_for_calls(sim: &RunningSim, endpoint: &str, want: u64) -> u64 {
    for _ in 0..100 {
        let n = calls(&stats(sim).await, endpoint);
        if n >= want {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    calls(&stats(sim).await, endpoint)
}

/// Waits (bounded) until the simulator holds no request.
async fn wait_until_idle(sim: &RunningSim) {
    for _ in 0..250 {
        if stats(sim).await["inFlight"].as_u64() == Some(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the simulator still holds a request after 5 s");
}

#[tokio::test]
async fn fresh_then_revalidated_once_in_the_background() {
    let sim = sim(10_000).await;
    let clock = ManualClock::new();
    let store = store(&sim, config(), Arc::new(clock.clone()));
    let (account, imei) = (account(), sample_imeis(&sim)[0].clone());

    assert_eq!(
        store
            .get::<CheckIns>((account.clone(), imei.clone()))
            .await
            .unwrap()
            .freshness,
        Freshness::Miss
    );
    clock.advance(CHECK_INS_TTL - Duration::from_secs(1));
    assert_eq!(
        store
            .get::<CheckIns>((account.clone(), imei.clone()))
            .await
            .unwrap()
            .freshness,
        Freshness::Hit
    );
    assert_eq!(calls(&stats(&sim).await, "check_in_history"), 1);

    // Past the TTL, inside the SWR window: 100 requests are served from cache at
    // once and trigger one refresh between them. The simulator holds the refresh for
    // a second: all answers are in while it still holds it, so none waited for it.
    clock.advance(Duration::from_secs(10));
    faults(
        &sim,
        json!({"latencyMs": 1_000, "endpoints": ["check_in_history"]}),
    )
    .await;
    let answers = futures::future::join_all(
        (0..100).map(|_| store.get::<CheckIns>((account.clone(), imei.clone()))),
    )
    .await;
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().unwrap().freshness == Freshness::Hit)
    );
    assert_eq!(wait_for_calls(&sim, "check_in_history", 2).await, 2);
    let during = stats(&sim).await;
    assert!(
        during["inFlight"].as_u64().unwrap() >= 1,
        "served without waiting for the refresh: it is still under way ({during})"
    );
    // Once it is answered, nothing else was sent meanwhile.
    wait_until_idle(&sim).await;
    assert_eq!(
        calls(&stats(&sim).await, "check_in_history"),
        2,
        "one refresh, not one per request"
    );

    // The refresh restarted the TTL.
    clock.advance(CHECK_INS_TTL - Duration::from_secs(1));
    assert_eq!(
        store
            .get::<CheckIns>((account.clone(), imei.clone()))
            .await
            .unwrap()
            .freshness,
        Freshness::Hit
    );
    assert_eq!(calls(&stats(&sim).await, "check_in_history"), 2);
}

#[tokio::test]
async fn expired_entries_cover_upstream_failures_within_stale_if_error() {
    let sim = sim(10_000).await;
    let clock = ManualClock::new();
    let store = store(&sim, config(), Arc::new(clock.clone()));
    let (account, imei) = (account(), sample_imeis(&sim)[0].clone());
    let fresh = store
        .get::<CheckIns>((account.clone(), imei.clone()))
        .await
        .unwrap();
    let details = details_of(&store, &account, std::slice::from_ref(&imei)).await;
    assert_eq!(details[&imei].as_ref().unwrap().freshness, Freshness::Miss);

    clock.advance(Duration::from_secs(600) + SWR + Duration::from_secs(1));
    faults(&sim, json!({"errorRate": 1.0})).await;
    let stale = store
        .get::<CheckIns>((account.clone(), imei.clone()))
        .await
        .unwrap();
    assert_eq!(stale.freshness, Freshness::Stale);
    assert_eq!(stale.value, fresh.value);
    let details = details_of(&store, &account, std::slice::from_ref(&imei)).await;
    assert_eq!(details[&imei].as_ref().unwrap().freshness, Freshness::Stale);

    // A device never seen has nothing to fall back on.
    let other = sample_imeis(&sim)[1].clone();
    let err = store
        .get::<CheckIns>((account.clone(), other.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CacheError::Upstream(UpstreamError::Unavailable { .. })),
        "{err:?}"
    );

    // Past the stale-if-error window the failure shows.
    clock.advance(SIE);
    assert!(
        store
            .get::<CheckIns>((account.clone(), imei.clone()))
            .await
            .is_err()
    );

    faults(&sim, json!({"clear": true})).await;
    assert_eq!(
        store
            .get::<CheckIns>((account.clone(), imei.clone()))
            .await
            .unwrap()
            .freshness,
        Freshness::Miss
    );
}

#[tokio::test]
async fn a_429_pauses_the_endpoint_and_stale_answers_cover_the_pause() {
    let sim = sim(10_000).await;
    let clock = ManualClock::new();
    let store = store(&sim, config(), Arc::new(clock.clone()));
    let account = account();
    let imeis = sample_imeis(&sim);
    for imei in &imeis[0..3] {
        store
            .get::<CheckIns>((account.clone(), imei.clone()))
            .await
            .unwrap();
    }
    clock.advance(CHECK_INS_TTL + SWR + Duration::from_secs(1));
    faults(
        &sim,
        json!({"rateLimitRate": 1.0, "retryAfterSecs": 30, "endpoints": ["check_in_history"]}),
    )
    .await;
    let before = stats(&sim).await;

    // The first request meets the 429 (Retry-After 30 s, past its 5 s deadline) and
    // is covered by its stale entry; the pacer now pauses the endpoint.
    let started = tokio::time::Instant::now();
    assert_eq!(
        store
            .get::<CheckIns>((account.clone(), imeis[0].clone()))
            .await
            .unwrap()
            .freshness,
        Freshness::Stale
    );
    assert!(
        store
            .pacer()
            .unwrap()
            .is_paused(devicegraph_upstream::Endpoint::CheckInHistory)
    );
    // During the pause: stale entries are served without asking, cold keys fail fast.
    assert_eq!(
        store
            .get::<CheckIns>((account.clone(), imeis[1].clone()))
            .await
            .unwrap()
            .freshness,
        Freshness::Stale
    );
    assert_eq!(
        store
            .get::<CheckIns>((account.clone(), imeis[2].clone()))
            .await
            .unwrap()
            .freshness,
        Freshness::Stale
    );
    let cold = store
        .get::<CheckIns>((account.clone(), imeis[5].clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            cold,
            CacheError::Upstream(UpstreamError::RateLimited { .. })
        ),
        "{cold:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "nothing waited out the pause"
    );
    // Other endpoints are not paused.
    assert!(
        store
            .get::<UpgradeHistory>((account.clone(), imeis[0].clone()))
            .await
            .is_ok()
    );

    let after = stats(&sim).await;
    assert_eq!(
        calls(&after, "check_in_history") - calls(&before, "check_in_history"),
        1
    );
}

#[tokio::test]
async fn invalidation_drops_entries_and_says_how_many() {
    let sim = sim(10_000).await;
    let store = store(&sim, config(), Arc::new(ManualClock::new()));
    let account = account();
    let imeis = sample_imeis(&sim);
    let campaign = sim
        .catalog()
        .campaigns
        .iter()
        .find(|c| c.account == ACCOUNT)
        .unwrap()
        .id
        .parse()
        .unwrap();
    details_of(&store, &account, &imeis[0..3]).await;
    store
        .get::<CheckIns>((account.clone(), imeis[0].clone()))
        .await
        .unwrap();
    store
        .get::<UpgradeHistory>((account.clone(), imeis[0].clone()))
        .await
        .unwrap();
    let page = store
        .get::<CampaignPages>(CampaignPageKey::new(&account, &campaign, None))
        .await
        .unwrap();
    let cursor = page.value.last_seen_device_id.clone();
    store
        .get::<CampaignPages>(CampaignPageKey::new(&account, &campaign, cursor.as_deref()))
        .await
        .unwrap();

    let device = InvalidateScope {
        account: account.clone(),
        imei: Some(imeis[0].clone()),
        campaign: None,
    };
    assert_eq!(store.invalidate(&device).await, 3);
    let pages = InvalidateScope {
        account: account.clone(),
        imei: None,
        campaign: Some(campaign),
    };
    assert_eq!(store.invalidate(&pages).await, 2);
    let all = InvalidateScope {
        account: account.clone(),
        imei: None,
        campaign: None,
    };
    assert_eq!(store.invalidate(&all).await, 2);
    assert_eq!(store.entry_count(), 0);

    let before = calls(&stats(&sim).await, "check_in_history");
    assert_eq!(
        store
            .get::<CheckIns>((account.clone(), imeis[0].clone()))
            .await
            .unwrap()
            .freshness,
        Freshness::Miss
    );
    assert_eq!(calls(&stats(&sim).await, "check_in_history"), before + 1);
}
