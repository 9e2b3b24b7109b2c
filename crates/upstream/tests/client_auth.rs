//! Token renewal, single-flight logins, lockout protection and secrecy, against the
//! simulator over real HTTP.

#![allow(clippy::unwrap_used)]

mod client_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use client_support::*;
use devicegraph_sim::SimConfig;
use devicegraph_upstream::{AccountName, Client, Imei, UpstreamError, with_request_id};
use futures::future::join_all;
use serde_json::json;

fn account() -> AccountName {
    ACCOUNT.parse().unwrap()
}

fn samples(sim: &devicegraph_sim::RunningSim) -> Vec<Imei> {
    sim.catalog().sample_imeis[ACCOUNT]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

async fn hundred_calls(client: &Client, imeis: &[Imei]) -> Vec<Result<(), UpstreamError>> {
    let account = account();
    join_all((0..100).map(|i| {
        let client = client.clone();
        let account = account.clone();
        let imei = imeis[i % imeis.len()].clone();
        async move { client.upgrade_history(&account, &imei).await.map(drop) }
    }))
    .await
}

#[tokio::test]
async fn expired_tokens_are_renewed_once_for_100_concurrent_calls() {
    let sim = sim().await;
    let client = client(&sim);
    client.ensure_authenticated().await.unwrap();
    let before = sim.stats();
    set_faults(&sim, json!({"expireTokens": true})).await;

    let results = hundred_calls(&client, &samples(&sim)).await;
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    let after = sim.stats();
    eprintln!(
        "expireTokens + 100 concurrent calls: logins {}, token requests {}, data calls {}",
        delta(&before, &after, "session_login"),
        delta(&before, &after, "oauth_token"),
        delta(&before, &after, "upgrade_history")
    );
    assert_eq!(
        delta(&before, &after, "session_login"),
        1,
        "exactly one login"
    );
    assert_eq!(
        delta(&before, &after, "oauth_token"),
        1,
        "exactly one token request"
    );
    assert!(delta(&before, &after, "upgrade_history") >= 100);
    assert!(delta(&before, &after, "upgrade_history") <= 200);
}

#[tokio::test]
async fn an_idle_session_is_renewed_once_and_the_bearer_kept() {
    let sim = sim_with(SimConfig {
        session_idle_timeout: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    client.ensure_authenticated().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = sim.stats();

    let results = hundred_calls(&client, &samples(&sim)).await;
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    let after = sim.stats();
    assert_eq!(delta(&before, &after, "session_login"), 1);
    assert_eq!(
        delta(&before, &after, "oauth_token"),
        0,
        "the bearer was still good"
    );
}

#[tokio::test]
async fn the_bearer_is_renewed_before_it_expires() {
    let sim = sim_with(SimConfig {
        token_lifetime: Duration::from_millis(1_500),
        ..SimConfig::default()
    })
    .await;
    let mut config = config(&sim);
    config.token_refresh_margin = Duration::from_millis(1_000);
    let client = Client::new(config).unwrap();
    let imei = samples(&sim)[0].clone();
    client.upgrade_history(&account(), &imei).await.unwrap();
    client.upgrade_history(&account(), &imei).await.unwrap();
    assert_eq!(sim.stats().calls["oauth_token"], 1, "not renewed early");
    // Past lifetime - margin (0.5 s) but before expiry (1.5 s).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = sim.stats();
    client.upgrade_history(&account(), &imei).await.unwrap();
    let after = sim.stats();
    assert_eq!(delta(&before, &after, "oauth_token"), 1);
    assert_eq!(
        delta(&before, &after, "upgrade_history"),
        1,
        "no refused call"
    );
}

#[tokio::test]
async fn a_wrong_password_never_locks_the_account() {
    let sim = sim().await;
    let mut config = config(&sim);
    config.credentials = credentials("sim-secret", "wrong-password");
    let client = Client::new(config).unwrap();
    let imeis = samples(&sim);

    let concurrent = hundred_calls(&client, &imeis).await;
    assert!(concurrent.iter().all(|r| matches!(
        r,
        Err(UpstreamError::Auth { .. } | UpstreamError::BadCredentials { .. })
    )));
    for _ in 0..10 {
        let r = client.upgrade_history(&account(), &imeis[0]).await;
        assert!(
            matches!(
                r,
                Err(UpstreamError::Auth { .. } | UpstreamError::BadCredentials { .. })
            ),
            "{r:?}"
        );
    }
    // By now the client has given up, without touching the network.
    let before = sim.stats();
    let started = tokio::time::Instant::now();
    assert!(matches!(
        client.ensure_authenticated().await,
        Err(UpstreamError::BadCredentials { .. })
    ));
    assert!(matches!(
        client.upgrade_history(&account(), &imeis[0]).await,
        Err(UpstreamError::BadCredentials { .. })
    ));
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(before.total_calls, sim.stats().total_calls);

    let stats = sim.stats();
    eprintln!(
        "wrong password, 110 calls: failed logins {}, locked accounts {}",
        stats.failed_logins, stats.locked_accounts
    );
    assert!(
        stats.failed_logins <= 2,
        "failed logins: {}",
        stats.failed_logins
    );
    assert_eq!(stats.locked_accounts, 0);
    assert_eq!(stats.calls["upgrade_history"], 0);

    // The account still works for a correctly configured client.
    client_support::client(&sim)
        .ensure_authenticated()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_client_secret_stops_after_two_token_requests() {
    let sim = sim().await;
    let mut config = config(&sim);
    config.credentials = credentials("wrong-secret", "sim-password");
    let client = Client::new(config).unwrap();
    let imeis = samples(&sim);
    let _ = hundred_calls(&client, &imeis).await;
    for _ in 0..5 {
        let _ = client.check_in_history(&account(), &imeis[0]).await;
    }
    let r = client.check_in_history(&account(), &imeis[0]).await;
    assert!(
        matches!(r, Err(UpstreamError::BadCredentials { .. })),
        "{r:?}"
    );
    let stats = sim.stats();
    assert!(stats.calls["oauth_token"] <= 2, "{:?}", stats.calls);
    assert_eq!(stats.calls["session_login"], 0);
}

/// Collects everything the tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_and_tokens_never_appear_in_debug_output_or_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded, so a thread default covers every task.
    let _guard = tracing::subscriber::set_default(subscriber);

    let sim = sim().await;
    let mut config = config(&sim);
    config.credentials = credentials("sim-secret", "hunter2-password");
    let client = Client::new(config.clone()).unwrap();
    let mut errors = Vec::new();
    for _ in 0..3 {
        errors.push(
            client
                .upgrade_history(&account(), &samples(&sim)[0])
                .await
                .unwrap_err(),
        );
    }
    // A working client, with its faults: its tokens must not leak either.
    let good = client_support::client(&sim);
    let (acc, imei) = (account(), samples(&sim)[0].clone());
    let call = good.upgrade_history(&acc, &imei);
    with_request_id("req-7f3a".into(), call).await.unwrap();
    set_faults(&sim, json!({"expireTokens": true})).await;
    good.upgrade_history(&account(), &samples(&sim)[0])
        .await
        .unwrap();
    set_faults(&sim, json!({"errorRate": 1.0})).await;
    errors.push(
        good.upgrade_history(&account(), &samples(&sim)[0])
            .await
            .unwrap_err(),
    );

    // The simulator, like ThingSpace, hands the same bearer to every request within
    // its lifetime: this is the token the good client holds.
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/ts/v1/oauth2/token", sim.base_url()))
        .basic_auth("sim-client", Some("sim-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = token["access_token"].as_str().unwrap().to_owned();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("upstream_call"),
        "spans were captured: {logs}"
    );
    // The simulator logs the X-Request-ID it received.
    assert!(
        logs.contains(r#"request_id="req-7f3a""#),
        "request id sent: {logs}"
    );
    let shown = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let text = format!(
        "{config:?} {:?} {client:?} {good:?} {errors:?} {shown} {logs}",
        config.credentials
    );
    for secret in [
        "sim-secret",
        "hunter2-password",
        "sim-password",
        bearer.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(
        text.contains("sim-client") && text.contains("sim-user"),
        "names are fine to show"
    );
}
