//! Every fault kind of the simulator against the client over real HTTP: retries,
//! `Retry-After`, dropped connections, stalls, broken pagination.

#![allow(clippy::unwrap_used)]

mod client_support;

use std::time::Duration;

use client_support::*;
use devicegraph_upstream::{
    AccountName, CampaignId, Client, DeviceIdKind, DeviceIdentifier, Endpoint, Imei, UpstreamError,
};
use futures::TryStreamExt;
use serde_json::json;
use tokio::time::Instant;

fn account() -> AccountName {
    ACCOUNT.parse().unwrap()
}

fn sample(sim: &devicegraph_sim::RunningSim) -> Imei {
    sim.catalog().sample_imeis[ACCOUNT][2].parse().unwrap()
}

/// Tokens first, so the faults below only meet data calls.
async fn ready(sim: &devicegraph_sim::RunningSim, client: &Client) {
    client.ensure_authenticated().await.unwrap();
    let _ = sim;
}

#[tokio::test]
async fn http_503_is_retried_until_success() {
    let sim = sim().await;
    let client = client(&sim);
    ready(&sim, &client).await;
    set_faults(
        &sim,
        json!({"errorRate": 1.0, "endpoints": ["upgrade_history"]}),
    )
    .await;
    let watcher = clear_faults_after(&sim, "upgrade_history", 2);
    let before = sim.stats();
    let history = client.upgrade_history(&account(), &sample(&sim)).await;
    watcher.await.unwrap();
    assert!(history.is_ok(), "{history:?}");
    let after = sim.stats();
    assert!(delta(&before, &after, "upgrade_history") >= 3);
    assert!(after.faults_injected["error"] >= 2);
}

#[tokio::test]
async fn http_503_exhausts_the_attempts_then_is_unavailable() {
    let sim = sim().await;
    let client = client(&sim);
    ready(&sim, &client).await;
    set_faults(&sim, json!({"errorRate": 1.0})).await;
    let before = sim.stats();
    match client.check_in_history(&account(), &sample(&sim)).await {
        Err(UpstreamError::Unavailable {
            endpoint: Endpoint::CheckInHistory,
            reason,
            status,
        }) => {
            assert!(reason.contains("503"), "{reason}");
            assert_eq!(status, Some(503), "the upstream's status, typed");
        }
        other => panic!("{other:?}"),
    }
    // max_attempts = 4, and no more.
    assert_eq!(delta(&before, &sim.stats(), "check_in_history"), 4);
}

#[tokio::test]
async fn http_429_honours_retry_after_and_reports_to_the_gate() {
    let sim = sim().await;
    let (client, gate) = recording_client(&sim);
    ready(&sim, &client).await;
    set_faults(
        &sim,
        json!({"rateLimitRate": 1.0, "retryAfterSecs": 1, "endpoints": ["upgrade_history"]}),
    )
    .await;
    let watcher = clear_faults_after(&sim, "upgrade_history", 1);
    let started = Instant::now();
    let history = client.upgrade_history(&account(), &sample(&sim)).await;
    let elapsed = started.elapsed();
    watcher.await.unwrap();
    assert!(history.is_ok(), "{history:?}");
    assert!(
        elapsed >= Duration::from_millis(950),
        "waited only {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "waited {elapsed:?}");
    let reported = gate.rate_limited.lock().unwrap().clone();
    assert_eq!(
        reported,
        vec![(Endpoint::UpgradeHistory, Duration::from_secs(1))]
    );
}

#[tokio::test]
async fn http_429_beyond_the_deadline_fails_at_once() {
    let sim = sim().await;
    let mut config = config(&sim);
    config.timeout = Duration::from_secs(2);
    let client = Client::new(config).unwrap();
    ready(&sim, &client).await;
    set_faults(&sim, json!({"rateLimitRate": 1.0, "retryAfterSecs": 30})).await;
    let before = sim.stats();
    let started = Instant::now();
    match client.upgrade_history(&account(), &sample(&sim)).await {
        Err(UpstreamError::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(30)))
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(delta(&before, &sim.stats(), "upgrade_history"), 1);
}

#[tokio::test]
async fn http_429_exhausting_attempts_is_rate_limited() {
    let sim = sim().await;
    let mut config = config(&sim);
    config.max_attempts = 2;
    let client = Client::new(config).unwrap();
    ready(&sim, &client).await;
    set_faults(&sim, json!({"rateLimitRate": 1.0, "retryAfterSecs": 1})).await;
    match client.check_in_history(&account(), &sample(&sim)).await {
        Err(UpstreamError::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    let sim = sim().await;
    let client = client(&sim);
    ready(&sim, &client).await;
    set_faults(
        &sim,
        json!({"dropRate": 1.0, "endpoints": ["check_in_history"]}),
    )
    .await;
    let watcher = clear_faults_after(&sim, "check_in_history", 2);
    let result = client.check_in_history(&account(), &sample(&sim)).await;
    watcher.await.unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(sim.stats().faults_injected["drop"] >= 2);

    // Dropped every time: unavailable, with a short reason and no body.
    set_faults(&sim, json!({"dropRate": 1.0})).await;
    match client.check_in_history(&account(), &sample(&sim)).await {
        Err(UpstreamError::Unavailable { reason, .. }) => assert!(reason.len() < 100, "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_stalled_upstream_times_out_within_the_deadline() {
    let sim = sim().await;
    let mut config = config(&sim);
    config.timeout = Duration::from_millis(500);
    let client = Client::new(config).unwrap();
    ready(&sim, &client).await;
    set_faults(&sim, json!({"stallRate": 1.0})).await;
    let started = Instant::now();
    let result = client.upgrade_history(&account(), &sample(&sim)).await;
    let elapsed = started.elapsed();
    assert_eq!(
        result,
        Err(UpstreamError::Timeout {
            endpoint: Endpoint::UpgradeHistory
        })
    );
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1_500), "{elapsed:?}");
}

/// A slow answer that still fits the deadline is waited for: one attempt, no early
/// per-attempt timeout and no retry. The latency is two thirds of the deadline, so a
/// second attempt (or an attempt cut short and retried) could not fit in it.
#[tokio::test]
async fn latency_is_tolerated_within_the_deadline() {
    const LATENCY: Duration = Duration::from_millis(400);
    const DEADLINE: Duration = Duration::from_millis(600);
    let sim = sim().await;
    let mut config = config(&sim);
    config.timeout = DEADLINE;
    let client = Client::new(config).unwrap();
    ready(&sim, &client).await;
    set_faults(
        &sim,
        json!({"latencyMs": LATENCY.as_millis() as u64, "endpoints": ["upgrade_history"]}),
    )
    .await;
    let before = sim.stats();
    let started = Instant::now();
    let result = client.upgrade_history(&account(), &sample(&sim)).await;
    let elapsed = started.elapsed();
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        delta(&before, &sim.stats(), "upgrade_history"),
        1,
        "one attempt"
    );
    assert!(elapsed >= LATENCY, "the latency applied: {elapsed:?}");
    assert!(elapsed < DEADLINE, "{elapsed:?}");
}

#[tokio::test]
async fn broken_pagination_ends_every_stream_with_an_error() {
    let sim = sim().await;
    let client = client(&sim);
    let catalog = sim.catalog();
    set_faults(&sim, json!({"brokenPagination": true})).await;
    let limit = Duration::from_secs(10);

    let campaign = catalog
        .campaigns
        .iter()
        .find(|c| c.devices > 1_000)
        .unwrap();
    let stream = client.campaign_devices(
        campaign.account.parse().unwrap(),
        campaign.id.parse::<CampaignId>().unwrap(),
    );
    let result = tokio::time::timeout(limit, stream.try_collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(
        matches!(
            result,
            Err(UpstreamError::Pagination {
                endpoint: Endpoint::CampaignDevices,
                ..
            })
        ),
        "{result:?}"
    );

    let imeis: Vec<Imei> = catalog.sample_imeis[ACCOUNT]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let stream = client.device_details(account(), imeis);
    let result = tokio::time::timeout(limit, stream.try_collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(
        matches!(
            result,
            Err(UpstreamError::Pagination {
                endpoint: Endpoint::DeviceDetails,
                ..
            })
        ),
        "{result:?}"
    );

    let imei = catalog
        .provisioning_boundary_devices
        .values()
        .flatten()
        .next()
        .unwrap();
    let device = DeviceIdentifier::new(DeviceIdKind::Imei, imei.clone()).unwrap();
    let w = &catalog.provisioning_window;
    let stream = client.provisioning_history(
        device,
        w.earliest.parse().unwrap(),
        w.latest.parse().unwrap(),
    );
    let result = tokio::time::timeout(limit, stream.try_collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(
        matches!(
            result,
            Err(UpstreamError::Pagination {
                endpoint: Endpoint::ProvisioningHistory,
                ..
            })
        ),
        "{result:?}"
    );

    // A handful of pages, not a loop.
    let stats = sim.stats();
    assert!(stats.calls["campaign_devices"] <= 3, "{:?}", stats.calls);
    assert!(stats.calls["device_details"] <= 3, "{:?}", stats.calls);
    assert!(
        stats.calls["provisioning_history"] <= 3,
        "{:?}",
        stats.calls
    );
}

#[tokio::test]
async fn every_request_passes_the_gate() {
    let sim = sim().await;
    let (client, gate) = recording_client(&sim);
    set_faults(&sim, json!({"errorRate": 1.0})).await;
    let _ = client.upgrade_history(&account(), &sample(&sim)).await;
    set_faults(&sim, json!({"clear": true})).await;
    let catalog = sim.catalog();
    let campaign = catalog
        .campaigns
        .iter()
        .find(|c| c.devices > 1_000)
        .unwrap();
    let devices: Vec<_> = client
        .campaign_devices(
            campaign.account.parse().unwrap(),
            campaign.id.parse().unwrap(),
        )
        .try_collect()
        .await
        .unwrap();
    assert!(!devices.is_empty());
    let acquired = gate.acquired.lock().unwrap().clone();
    let stats = sim.stats();
    for (endpoint, n) in &stats.calls {
        assert_eq!(
            acquired.get(endpoint.as_str()).copied().unwrap_or(0),
            *n,
            "{endpoint}"
        );
    }
    assert_eq!(acquired["upgrade_history"], 4);
}
