//! Hostile requests over real HTTP (issue "safe to expose"): each is refused with its
//! code and 0 upstream calls while the gateway keeps answering, and the dashboards
//! it exists for still pass under the default limits. Times are measured by
//! `benches/security/run.sh`, not asserted here.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{ACCOUNT, TestApp, codes, spawn_app, spawn_app_configured};
use devicegraph::config::{ApiKey, AuthMode, KeyAccounts};
use devicegraph_sim::SimConfig;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// `levels` fragments, each spreading the previous one twice (2^levels selections).
fn fan_out(levels: usize, account: &str) -> String {
    let mut q = format!(
        "query {{ ...F{levels} }} fragment F0 on Query {{ device(account: \"{account}\", imei: \"490154203237518\") {{ imei }} }}"
    );
    for i in 1..=levels {
        q.push_str(&format!(
            " fragment F{i} on Query {{ ...F{} ...F{} }}",
            i - 1,
            i - 1
        ));
    }
    q
}

async fn upstream_calls(app: &TestApp) -> u64 {
    app.sim_stats().await["calls"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragment_bombs_are_refused_while_probes_keep_answering() {
    let app = spawn_app().await;
    app.sim_reset().await;
    let probes = {
        let client = app.client.clone();
        let url = app.url("/healthz");
        tokio::spawn(async move {
            let mut answered = 0;
            for _ in 0..40 {
                let r = tokio::time::timeout(Duration::from_secs(5), client.get(&url).send())
                    .await
                    .expect("/healthz answered during the flood")
                    .unwrap();
                assert_eq!(r.status(), 200);
                answered += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            answered
        })
    };
    // The 1.3 KB original and a flood of 2^k variants, 8 at a time.
    let mut flood = Vec::new();
    for k in (20..=30).cycle().take(66) {
        let client = app.client.clone();
        let url = app.url("/graphql");
        flood.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({ "query": fan_out(k, ACCOUNT) }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }));
    }
    for answer in flood {
        let body = answer.await.unwrap();
        assert_eq!(codes(&body), ["QUERY_TOO_COMPLEX"], "{body:#}");
    }
    assert_eq!(probes.await.unwrap(), 40);
    assert_eq!(upstream_calls(&app).await, 0);
}

fn key(name: &str, secret: &str) -> ApiKey {
    ApiKey {
        name: name.to_owned(),
        sha256: Sha256::digest(secret.as_bytes()).into(),
        accounts: KeyAccounts::All,
    }
}

/// `n` well-formed IMEIs the simulator does not have (always uncached).
fn fresh_imeis(n: usize, offset: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let body = format!("99{:012}", offset + i);
            let digit = devicegraph_upstream::ids::luhn_check_digit(&body);
            format!("{body}{digit}")
        })
        .collect()
}

const CARDS: &str = "query($a: String!, $i: [IMEI!]!) { devices(account: $a, imeis: $i) { imei upgradeHistory { status } checkIns(last: 3) { result } } }";

#[tokio::test]
async fn one_key_cannot_drain_the_shared_upstream_budget() {
    let app = spawn_app_configured(|c| {
        c.auth.mode = AuthMode::ApiKey;
        c.auth.api_keys = vec![key("greedy", "greedy-secret"), key("other", "other-secret")];
        c.limits.upstream_calls_per_minute = 300;
    })
    .await;
    let send = |secret: &'static str, imeis: Vec<String>| {
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(secret)
            .header("accept", "application/graphql-response+json")
            .header("x-devicegraph-cost", "1")
            .json(&json!({ "query": CARDS, "variables": {"a": ACCOUNT, "i": imeis} }))
            .send()
    };
    // 100 uncached devices with both histories: about 201 calls each time.
    let first = send("greedy-secret", fresh_imeis(100, 0)).await.unwrap();
    assert_eq!(first.status(), 200);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["extensions"]["cost"]["estimate"]["upstreamCalls"], 201);
    let calls = upstream_calls(&app).await;

    let second = send("greedy-secret", fresh_imeis(100, 1000)).await.unwrap();
    assert_eq!(second.status(), 429);
    let retry: u64 = second.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = second.json().await.unwrap();
    assert_eq!(codes(&body), ["RATE_LIMITED"]);
    assert_eq!(upstream_calls(&app).await, calls, "refused before any call");

    // The other tenant's budget is untouched.
    let other = send("other-secret", fresh_imeis(100, 2000)).await.unwrap();
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn an_answer_over_the_response_cap_is_replaced_by_an_error() {
    let app = spawn_app_configured(|c| c.limits.max_response_bytes = 4096).await;
    let imeis: Vec<String> = (0..3).map(|n| app.sample_imei(ACCOUNT, n)).collect();
    let small = app
        .graphql(
            "query($a: String!, $i: [IMEI!]!) { devices(account: $a, imeis: $i) { imei } }",
            json!({"a": ACCOUNT, "i": imeis}),
        )
        .await;
    assert!(small.get("errors").is_none(), "{small:#}");
    let (campaign, _) = {
        let c = app.catalog();
        let c = c
            .campaigns
            .iter()
            .find(|c| c.account == ACCOUNT && c.devices >= 200)
            .unwrap();
        (c.id.clone(), c.devices)
    };
    let big = app
        .graphql(
            "query($a: String!, $c: ID!) { campaign(account: $a, id: $c) { devices(first: 200) { edges { cursor node { imei status updatedTime } } } } }",
            json!({"a": ACCOUNT, "c": campaign}),
        )
        .await;
    assert_eq!(codes(&big), ["QUERY_TOO_COMPLEX"], "{big:#}");
    assert!(
        big["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("4096 bytes")
    );
}

#[tokio::test]
async fn dashboards_pass_under_the_default_limits() {
    let sim = SimConfig {
        devices: 20_000,
        ..SimConfig::default()
    };
    let app = common::spawn_app_with(sim, |_| {}).await;
    let campaign = app
        .catalog()
        .campaigns
        .iter()
        .find(|c| c.account == ACCOUNT && c.devices >= 500)
        .map(|c| c.id.clone())
        .unwrap();
    app.sim_reset().await;
    let page = app
        .graphql(
            "query($a: String!, $c: ID!) { campaign(account: $a, id: $c) { devices(first: 500) { edges { node { imei status device { firmware lastConnectionTime } } } } } }",
            json!({"a": ACCOUNT, "c": campaign}),
        )
        .await;
    assert!(page.get("errors").is_none(), "{page:#}");
    let edges = page["data"]["campaign"]["devices"]["edges"]
        .as_array()
        .unwrap();
    assert_eq!(edges.len(), 500);
    assert_eq!(app.calls("campaign_devices").await, 1);
    assert_eq!(app.calls("device_details").await, 1);

    // 100 device cards with both histories: 201 upstream calls cold, none warm.
    let imeis: Vec<&str> = edges[..100]
        .iter()
        .map(|e| e["node"]["imei"].as_str().unwrap())
        .collect();
    let cards = "query($a: String!, $i: [IMEI!]!) { devices(account: $a, imeis: $i) { imei firmware upgradeHistory { status } checkIns(last: 3) { result } lastCheckIn { result } } }";
    for _ in 0..2 {
        let r = app.graphql(cards, json!({"a": ACCOUNT, "i": imeis})).await;
        assert!(r.get("errors").is_none(), "{r:#}");
        assert_eq!(r["data"]["devices"].as_array().unwrap().len(), 100);
    }
    assert_eq!(app.calls("upgrade_history").await, 100);
    assert_eq!(app.calls("check_in_history").await, 100);
}

#[tokio::test]
async fn errors_neither_echo_long_input_nor_suggest_hidden_names() {
    let app = spawn_app_configured(|c| c.graphql.introspection = false).await;
    // A 300 KB document (one long name, so few tokens) with a syntax error at its end.
    let long = format!("{{ {} }}}}", "a".repeat(300_000));
    let r = app.post_graphql(&long, json!({})).await;
    let body = r.text().await.unwrap();
    assert!(body.len() < 2_000, "error of {} bytes", body.len());
    // A misspelled field: the error names it but suggests nothing.
    let r = app
        .graphql(
            &format!(
                "{{ device(account: \"{ACCOUNT}\", imei: \"490154203237518\") {{ firmwar }} }}"
            ),
            json!({}),
        )
        .await;
    let message = r["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("firmwar"), "{message}");
    assert!(!message.contains("Did you mean"), "{message}");
}
