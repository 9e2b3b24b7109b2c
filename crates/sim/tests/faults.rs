//! Each injected fault, observed from a client's side.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{ACCOUNT, Session, http, start, token};
use devicegraph_sim::{Endpoint, Faults, FaultsPatch, SimConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn history_path(sim: &devicegraph_sim::RunningSim) -> String {
    let imei = &sim.catalog().sample_imeis[ACCOUNT][0];
    format!("/fota/v3/reports/{ACCOUNT}/devices/{imei}")
}

#[tokio::test]
async fn latency_delays_answers() {
    let sim = start(SimConfig::default()).await;
    let s = Session::open(&sim).await;
    let path = history_path(&sim);
    s.control("faults", Some(json!({ "latencyMs": 150, "jitterMs": 50 })))
        .await;
    let started = Instant::now();
    assert_eq!(s.get_json(&path).await.0, StatusCode::OK);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(150), "{took:?}");
    // The token endpoint is not delayed unless named.
    let started = Instant::now();
    assert_eq!(
        token(&s.http, &s.base, "sim-client", "sim-secret")
            .await
            .status(),
        StatusCode::OK
    );
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn error_and_rate_limit_faults() {
    let sim = start(SimConfig::default()).await;
    let s = Session::open(&sim).await;
    let path = history_path(&sim);
    s.control("faults", Some(json!({ "errorRate": 1.0 }))).await;
    assert_eq!(s.get_json(&path).await.0, StatusCode::SERVICE_UNAVAILABLE);

    s.control(
        "faults",
        Some(json!({ "clear": true, "rateLimitRate": 1.0, "retryAfterSecs": 7 })),
    )
    .await;
    let r = s.get(&path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "7");

    let stats = sim.stats();
    assert_eq!(stats.faults_injected["error"], 1);
    assert_eq!(stats.faults_injected["rate_limit"], 1);

    // Half the requests fail, roughly.
    s.control("faults", Some(json!({ "clear": true, "errorRate": 0.5 })))
        .await;
    let mut failed = 0;
    for _ in 0..200 {
        if s.get_json(&path).await.0 == StatusCode::SERVICE_UNAVAILABLE {
            failed += 1;
        }
    }
    assert!((40..=160).contains(&failed), "{failed} of 200");
}

#[tokio::test]
async fn dropped_connections_are_transport_errors() {
    let sim = start(SimConfig::default()).await;
    let s = Session::open(&sim).await;
    let path = history_path(&sim);
    s.control("faults", Some(json!({ "dropRate": 1.0 }))).await;
    let err = s.get(&path).send().await.unwrap_err();
    assert!(err.status().is_none(), "no HTTP answer at all: {err:?}");
    assert!(!err.is_timeout());
    assert_eq!(sim.stats().faults_injected["drop"], 1);
    // The control API is never faulted, and clearing restores service.
    s.control("faults", Some(json!({ "clear": true }))).await;
    assert_eq!(s.get_json(&path).await.0, StatusCode::OK);
}

#[tokio::test]
async fn stalled_requests_never_answer() {
    let sim = start(SimConfig::default()).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let s = Session::open_with(&sim, client).await;
    let path = history_path(&sim);
    sim.set_faults(FaultsPatch {
        stall_rate: Some(1.0),
        ..Default::default()
    })
    .unwrap();
    let err = s.get(&path).send().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    // Once the client gave up, the stalled request is no longer in flight.
    let mut in_flight = 1;
    for _ in 0..50 {
        in_flight = sim.stats().in_flight;
        if in_flight == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(in_flight, 0);
    // Shutdown does not hang on a stalled request.
    let pending = tokio::spawn({
        let req = s.get(&path);
        async move { req.timeout(Duration::from_secs(30)).send().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_secs(5), sim.shutdown())
        .await
        .unwrap();
    assert!(pending.await.unwrap().is_err());
}

#[tokio::test]
async fn broken_pagination_never_advances() {
    let sim = start(SimConfig::default()).await;
    let catalog = sim.catalog();
    let s = Session::open(&sim).await;
    s.control("faults", Some(json!({ "brokenPagination": true })))
        .await;

    let campaign = catalog
        .campaigns
        .iter()
        .find(|c| c.devices > 1_000)
        .unwrap();
    let url = |cursor: &str| {
        format!(
            "/fota/v3/reports/{}/campaigns/{}/devices?lastSeenDeviceId={cursor}",
            campaign.account, campaign.id
        )
    };
    let (_, first) = s.get_json(&url("0")).await;
    assert_eq!(first["hasMoreData"], true);
    let cursor = first["lastSeenDeviceId"].as_str().unwrap().to_string();
    let (_, second) = s.get_json(&url(&cursor)).await;
    assert_eq!(second["hasMoreData"], true);
    assert_eq!(
        second["lastSeenDeviceId"].as_str().unwrap(),
        cursor,
        "cursor repeats"
    );

    let imeis = &catalog.sample_imeis[ACCOUNT];
    let (_, details) = s
        .post_json(
            &format!("/fota/v3/devices/{ACCOUNT}?lastSeenDeviceId=0"),
            &json!({ "deviceList": imeis }),
        )
        .await;
    let cursor = details["lastSeenDeviceId"].as_str().unwrap().to_string();
    assert_eq!(details["hasMoreData"], true);
    let (_, again) = s
        .post_json(
            &format!("/fota/v3/devices/{ACCOUNT}?lastSeenDeviceId={cursor}"),
            &json!({ "deviceList": imeis }),
        )
        .await;
    assert_eq!(again["lastSeenDeviceId"].as_str().unwrap(), cursor);
    assert_eq!(again["deviceList"], json!([]));

    let window = &catalog.provisioning_window;
    let body = json!({ "deviceId": { "kind": "imei", "id": imeis[0] }, "earliest": window.earliest, "latest": window.latest });
    let (status, page) = s
        .post_json("/m2m/v1/devices/history/actions/list", &body)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(page["hasMoreData"], true);
    assert_eq!(page["provisioningHistory"], json!([]));
    assert!(sim.stats().faults_injected["broken_pagination"] >= 5);
}

#[tokio::test]
async fn endpoint_filter_and_startup_faults() {
    // Faults from the config (what the binary's flags set), restricted to one endpoint.
    let faults = Faults {
        error_rate: 1.0,
        endpoints: vec![Endpoint::DeviceDetails],
        ..Faults::default()
    };
    let sim = start(SimConfig {
        faults,
        ..SimConfig::default()
    })
    .await;
    let s = Session::open(&sim).await;
    let imeis = sim.catalog().sample_imeis[ACCOUNT].clone();
    let details = json!({ "deviceList": imeis });
    assert_eq!(
        s.post_json(&format!("/fota/v3/devices/{ACCOUNT}"), &details)
            .await
            .0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(s.get_json(&history_path(&sim)).await.0, StatusCode::OK);
    let current: Value = s.control("faults", None).await;
    assert_eq!(current["endpoints"], json!(["device_details"]));

    // Token and login are faulted only when named.
    s.control("faults", Some(json!({ "endpoints": ["oauth_token"] })))
        .await;
    assert_eq!(
        token(&http(), &s.base, "sim-client", "sim-secret")
            .await
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        s.post_json(&format!("/fota/v3/devices/{ACCOUNT}"), &details)
            .await
            .0,
        StatusCode::OK
    );

    // Reset clears faults; bad settings are refused.
    sim.reset();
    assert_eq!(sim.faults(), Faults::default());
    let r = s
        .http
        .post(format!("{}/_sim/faults", s.root))
        .json(&json!({ "errorRate": 2.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = s
        .http
        .post(format!("{}/_sim/faults", s.root))
        .json(&json!({ "endpoints": ["nope"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// Polls the stats until `in_flight` is `want` (or 5 s pass); returns the last value.
async fn in_flight_becomes(sim: &devicegraph_sim::RunningSim, want: u64) -> u64 {
    let mut in_flight = sim.stats().in_flight;
    for _ in 0..250 {
        if in_flight == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        in_flight = sim.stats().in_flight;
    }
    in_flight
}

#[tokio::test]
async fn dropped_mid_body_sends_headers_then_closes() {
    let sim = start(SimConfig::default()).await;
    let s = Session::open(&sim).await;
    let path = history_path(&sim);
    let (_, whole) = s.get_json(&path).await;
    let whole_len = serde_json::to_vec(&whole).unwrap().len();
    s.control("faults", Some(json!({ "dropMidBodyRate": 1.0 })))
        .await;
    let r = s.get(&path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the head arrives");
    let declared: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(declared >= whole_len / 2, "the full length is declared");
    let err = r.bytes().await.unwrap_err();
    assert!(err.is_body() || err.is_decode(), "{err:?}");
    assert!(!err.is_timeout(), "closed, not stalled: {err:?}");
    assert_eq!(sim.stats().faults_injected["drop_mid_body"], 1);
    assert_eq!(in_flight_becomes(&sim, 0).await, 0);
    s.control("faults", Some(json!({ "clear": true }))).await;
    assert_eq!(s.get_json(&path).await, (StatusCode::OK, whole));
}

#[tokio::test]
async fn stalled_mid_body_holds_the_request_until_the_client_leaves() {
    let sim = start(SimConfig::default()).await;
    let s = Session::open(&sim).await;
    let path = history_path(&sim);
    sim.set_faults(FaultsPatch {
        stall_mid_body_rate: Some(1.0),
        ..Default::default()
    })
    .unwrap();
    let r = s
        .get(&path)
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the head arrives");
    assert_eq!(sim.stats().in_flight, 1, "in flight while the body stalls");
    let err = r.bytes().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(sim.stats().faults_injected["stall_mid_body"], 1);
    // The client gave up and closed: the request is over.
    assert_eq!(in_flight_becomes(&sim, 0).await, 0);
}

#[tokio::test]
async fn retry_after_as_an_http_date() {
    let sim = start(SimConfig::default()).await;
    let s = Session::open(&sim).await;
    let path = history_path(&sim);
    s.control(
        "faults",
        Some(json!({ "rateLimitRate": 1.0, "retryAfterSecs": 5, "retryAfterFormat": "date" })),
    )
    .await;
    let before = std::time::SystemTime::now();
    let r = s.get(&path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let value = r.headers()["retry-after"].to_str().unwrap().to_string();
    let at = httpdate::parse_http_date(&value).unwrap();
    let wait = at.duration_since(before).unwrap();
    assert!(
        (Duration::from_secs(4)..=Duration::from_secs(7)).contains(&wait),
        "{value}: {wait:?}"
    );
    let current: Value = s.control("faults", None).await;
    assert_eq!(current["retryAfterFormat"], "date");
    // Back to seconds.
    s.control("faults", Some(json!({ "retryAfterFormat": "seconds" })))
        .await;
    let r = s.get(&path).send().await.unwrap();
    assert_eq!(r.headers()["retry-after"], "5");
    let r = s
        .http
        .post(format!("{}/_sim/faults", s.root))
        .json(&json!({ "retryAfterFormat": "minutes" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// A client that gives up does not end the simulator's work: the request stays in
/// flight (and counts toward the peak) until its latency has passed, as on a real
/// server. This is what lets a test prove a client keeps at most N calls in flight
/// at the upstream even when it abandons calls.
#[tokio::test]
async fn abandoned_requests_stay_in_flight_until_the_simulator_is_done() {
    let sim = start(SimConfig::default()).await;
    let s = Session::open(&sim).await;
    let path = history_path(&sim);
    s.control("faults", Some(json!({ "latencyMs": 2000 })))
        .await;
    let started = Instant::now();
    // Two waves of five impatient clients: the first wave is gone when the second
    // starts.
    for _ in 0..2 {
        let wave = (0..5).map(|_| s.get(&path).timeout(Duration::from_millis(150)).send());
        for r in futures::future::join_all(wave).await {
            assert!(r.unwrap_err().is_timeout());
        }
    }
    let stats = sim.stats();
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the test relies on both waves starting within the latency"
    );
    assert_eq!(stats.in_flight, 10, "still working on all ten");
    assert_eq!(stats.peak_concurrency, 10);
    assert_eq!(
        in_flight_becomes(&sim, 0).await,
        0,
        "done after the latency"
    );
    assert!(started.elapsed() >= Duration::from_millis(1900));
}
