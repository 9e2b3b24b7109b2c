//! `freshness` over real HTTP: the README's dashboard example on the embedded
//! simulator, what the response cache stores of answers with freshness (fetch times
//! yes, ages no), and the fetch time kept across two gateways sharing Redis.

#![allow(clippy::unwrap_used)]

mod common;

use common::{ACCOUNT, TestApp, spawn_app, spawn_app_configured};
use devicegraph::config::UpstreamMode;
use devicegraph_sim::SimConfig;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const README: &str = include_str!("../README.md");

/// The GraphQL block between the README's `freshness-example` markers.
fn readme_example() -> &'static str {
    let start = README
        .find("<!-- freshness-example:start -->")
        .expect("README has the freshness example");
    let block = &README[start..];
    let end = block.find("<!-- freshness-example:end -->").unwrap();
    let block = &block[..end];
    let open = block.find("```graphql\n").unwrap() + "```graphql\n".len();
    let close = block[open..].find("```").unwrap();
    &block[open..open + close]
}

async fn post(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/graphql"))
        .json(body)
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

fn is_instant(v: &Value) -> bool {
    common::is_utc_z(v)
}

#[tokio::test]
async fn the_readme_dashboard_runs_on_the_embedded_simulator() {
    // Simulator mode, as `cargo run` on a fresh clone (same seed and size).
    let twin = SimConfig::default();
    let app = spawn_app_configured(|c| {
        c.upstream.mode = UpstreamMode::Simulator;
        c.simulator.seed = twin.seed;
        c.simulator.devices = twin.devices;
    })
    .await;
    let response = post(&app, &json!({ "query": readme_example() })).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body:#}");

    let page = &body["data"]["campaign"]["devices"];
    assert!(is_instant(&page["freshness"]["fetchedAt"]), "{body:#}");
    assert_eq!(page["freshness"]["stale"], false);
    let edges = page["edges"].as_array().unwrap();
    assert!(
        !edges.is_empty(),
        "the example's campaign has failed devices"
    );
    for edge in edges {
        let f = &edge["node"]["device"]["freshness"];
        assert!(is_instant(&f["details"]["fetchedAt"]), "{edge:#}");
        assert!(is_instant(&f["checkIns"]["fetchedAt"]), "{edge:#}");
        assert_eq!(f["checkIns"]["staleReason"], Value::Null);
    }
    let device = &body["data"]["device"]["freshness"];
    assert!(is_instant(&device["details"]["fetchedAt"]), "{body:#}");
    assert!(device["details"]["ageSeconds"].as_i64().is_some());
    assert_eq!(device["details"]["stale"], false);
    // Not selected for that device: no freshness, and never read.
    assert_eq!(device["upgradeHistory"], Value::Null);
}

/// An answer with fetch times is stored (a repeat is the same bytes, with its
/// `ETag`); one that states an age never is, so its age is always the age when it
/// was built, and a repeat still costs no upstream call.
#[tokio::test]
async fn stored_answers_keep_fetch_times_but_never_an_age() {
    let app = spawn_app().await;
    let imei = app.sample_imei(ACCOUNT, 0);
    let vars = json!({ "a": ACCOUNT, "i": imei });
    let fetched = json!({ "query": "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { \
        firmware freshness { details { fetchedAt stale staleReason } } } }", "variables": vars });
    let aged = json!({ "query": "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { \
        firmware freshness { details { fetchedAt ageSeconds } } } }", "variables": vars });

    let first = post(&app, &fetched).await;
    assert_eq!(header(&first, "x-response-cache"), Some("MISS"));
    let etag = header(&first, "etag").unwrap().to_owned();
    let first: Value = first.json().await.unwrap();
    let at = first["data"]["device"]["freshness"]["details"]["fetchedAt"].clone();
    assert!(is_instant(&at), "{first:#}");
    let repeat = post(&app, &fetched).await;
    assert_eq!(header(&repeat, "x-response-cache"), Some("HIT"));
    assert_eq!(header(&repeat, "etag"), Some(etag.as_str()));
    let repeat: Value = repeat.json().await.unwrap();
    assert_eq!(repeat["data"], first["data"]);

    let calls = app.sim_stats().await["totalCalls"].as_u64();
    for _ in 0..2 {
        let answer = post(&app, &aged).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(header(&answer, "x-response-cache"), None, "never stored");
        assert_eq!(header(&answer, "etag"), None);
        let answer: Value = answer.json().await.unwrap();
        let f = &answer["data"]["device"]["freshness"]["details"];
        assert_eq!(f["fetchedAt"], at, "the same entry");
        assert!(
            f["ageSeconds"].as_i64().is_some_and(|s| s >= 0),
            "{answer:#}"
        );
        assert_eq!(answer["extensions"]["cacheStatus"], "HIT");
    }
    assert_eq!(
        app.sim_stats().await["totalCalls"].as_u64(),
        calls,
        "built from the entity cache, no upstream call"
    );
}

/// Two gateways sharing Redis: the second serves the first's fetch from the L2 and
/// reports the first's fetch time, not the time it read it.
#[tokio::test]
async fn a_second_gateway_reports_the_first_gateways_fetch_time() {
    let Some(redis) = std::env::var("DEVICEGRAPH_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
    else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipping Redis test: DEVICEGRAPH_TEST_REDIS_URL not set (see README)"
        );
        return;
    };
    let admin = "admin-key";
    let configure = |c: &mut devicegraph::Config| {
        c.cache.redis_url = Some(redis.clone());
        c.auth.admin_key_sha256 = Some(Sha256::digest(admin.as_bytes()).into());
    };
    let a = spawn_app_configured(configure).await;
    let b = spawn_app_configured(configure).await;
    let imei = a.sample_imei(ACCOUNT, 3);
    // Earlier runs may have left this device in the shared L2: drop it, so that
    // gateway a fetches it now.
    let dropped = a
        .client
        .post(a.url("/admin/cache/invalidate"))
        .header("x-api-key", admin)
        .json(&json!({ "account": ACCOUNT, "imei": imei }))
        .send()
        .await
        .unwrap();
    assert_eq!(dropped.status(), 200);

    let query = json!({ "query": "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { \
        firmware freshness { details { fetchedAt ageSeconds stale } } } }",
        "variables": { "a": ACCOUNT, "i": imei } });
    let from_a: Value = post(&a, &query).await.json().await.unwrap();
    assert_eq!(from_a["extensions"]["cacheStatus"], "MISS", "{from_a:#}");
    assert_eq!(a.calls("device_details").await, 1);
    let at = from_a["data"]["device"]["freshness"]["details"]["fetchedAt"].clone();
    assert!(is_instant(&at), "{from_a:#}");

    // (`crates/cache/tests/redis.rs` shows the time is the writer's, not derived
    // from the reader's clock, with a writer whose clock is an hour ahead.)
    let from_b: Value = post(&b, &query).await.json().await.unwrap();
    assert!(from_b.get("errors").is_none(), "{from_b:#}");
    let f = &from_b["data"]["device"]["freshness"]["details"];
    assert_eq!(
        f["fetchedAt"], at,
        "the first gateway's fetch time: {from_b:#}"
    );
    assert!(
        f["ageSeconds"]
            .as_i64()
            .is_some_and(|s| (0..5).contains(&s)),
        "{from_b:#}"
    );
    assert_eq!(f["stale"], false);
    assert_eq!(b.calls("device_details").await, 0, "served from the L2");
}
