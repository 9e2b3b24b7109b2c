//! `/_sim/stats`: calls per endpoint, concurrency and rate peaks, reset.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{ACCOUNT, Session, start};
use devicegraph_sim::{Endpoint, SimConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn counts_calls_concurrency_and_rate() {
    let sim = start(SimConfig::default()).await;
    let s = Session::open(&sim).await;
    let imei = sim.catalog().sample_imeis[ACCOUNT][0].clone();
    let path = format!("/fota/v2/logging/{ACCOUNT}/devices/{imei}/checkInHistory");

    let stats: Value = s.control("stats", None).await;
    assert_eq!(stats["calls"]["oauth_token"], 1);
    assert_eq!(stats["calls"]["session_login"], 1);
    for e in Endpoint::ALL {
        assert!(
            stats["calls"][e.name()].is_u64(),
            "every endpoint listed: {}",
            e.name()
        );
    }

    // Eight requests held in flight together by a latency fault.
    s.control("faults", Some(json!({ "latencyMs": 300 }))).await;
    let calls = (0..8).map(|_| s.get(&path).send());
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().status(), StatusCode::OK);
    }
    // Unauthenticated calls count too.
    let r = s
        .http
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let stats = sim.stats();
    assert_eq!(stats.calls_to(Endpoint::CheckInHistory), 9);
    assert_eq!(stats.total_calls, 11);
    assert_eq!(stats.data_calls(), 9);
    assert_eq!(stats.peak_concurrency, 8);
    assert_eq!(stats.peak_rate_per_second["check_in_history"], 9);
    assert_eq!(stats.in_flight, 0);
    assert_eq!((stats.tokens_issued, stats.sessions_issued), (1, 1));

    let r = s
        .http
        .post(format!("{}/_sim/reset", s.root))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let stats: Value = s.control("stats", None).await;
    assert_eq!(stats["totalCalls"], 0);
    assert_eq!(stats["peakConcurrency"], 0);
    assert_eq!(stats["calls"]["check_in_history"], 0);
}

#[tokio::test]
async fn paced_requests_show_a_low_peak_rate() {
    let sim = start(SimConfig::default()).await;
    let s = Session::open(&sim).await;
    let imei = sim.catalog().sample_imeis[ACCOUNT][0].clone();
    let path = format!("/fota/v3/reports/{ACCOUNT}/devices/{imei}");
    // Four requests 400 ms apart: never more than three within one second.
    for _ in 0..4 {
        assert_eq!(s.get_json(&path).await.0, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let peak = sim.stats().peak_rate_per_second["upgrade_history"];
    assert!((1..=3).contains(&peak), "{peak}");
}
