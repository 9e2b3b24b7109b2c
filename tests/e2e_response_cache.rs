//! The response cache over real HTTP: a repeat is served from stored bytes (no
//! execution, no upstream call), `If-None-Match` answers 304, and a stored answer is
//! never served once an entry it was built from changed; callers whose account
//! scopes differ never share an answer; stale answers are not stored.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{ACCOUNT, spawn_app_configured};
use devicegraph::config::{ApiKey, AuthMode, KeyAccounts};
use devicegraph_upstream::AccountName;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const CARD: &str = "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { \
                    imei firmware upgradeHistory { status } checkIns(last: 5) { result } } }";

fn sha(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

async fn post(app: &common::TestApp, body: &Value, etag: Option<&str>) -> reqwest::Response {
    let mut request = app.client.post(app.url("/graphql")).json(body);
    if let Some(etag) = etag {
        request = request.header("if-none-match", etag);
    }
    request.send().await.unwrap()
}

/// Whether `response` says `X-Response-Cache: which` (an answer that may not be
/// stored, e.g. built from entries dropped meanwhile, has no such header).
fn served_as(response: &reqwest::Response, which: &str) -> bool {
    response
        .headers()
        .get("x-response-cache")
        .is_some_and(|v| v == which)
}

/// `POST /admin/cache/invalidate` of one device of `ACCOUNT`.
async fn invalidate(app: &common::TestApp, admin_key: &str, imei: &str) {
    let response = app
        .client
        .post(app.url("/admin/cache/invalidate"))
        .header("x-api-key", admin_key)
        .json(&json!({ "account": ACCOUNT, "imei": imei }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_repeat_is_served_from_stored_bytes_until_an_entry_it_used_changes() {
    let admin = "admin-key";
    let app = spawn_app_configured(|c| c.auth.admin_key_sha256 = Some(sha(admin))).await;
    let imei = app.sample_imei(ACCOUNT, 0);
    let body = json!({ "query": CARD, "variables": { "a": ACCOUNT, "i": imei } });

    let first = post(&app, &body, None).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-cache"], "MISS");
    assert_eq!(first.headers()["x-response-cache"], "MISS", "stored");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let cache_control = first.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    let max_age: u64 = cache_control
        .strip_prefix("private, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&max_age),
        "the shortest TTL among the entries (check-ins: 60 s): {cache_control}"
    );
    let first: Value = first.json().await.unwrap();
    assert!(first["data"]["device"]["firmware"].is_string(), "{first}");

    // The same operation, variables in another key order: stored bytes, no upstream
    // call, no execution.
    app.sim_reset().await;
    let reordered = json!({ "variables": { "i": imei, "a": ACCOUNT }, "query": CARD });
    let second = post(&app, &reordered, None).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["x-cache"], "HIT");
    assert_eq!(second.headers()["x-response-cache"], "HIT");
    assert_eq!(second.headers()["etag"].to_str().unwrap(), etag);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["data"], first["data"]);
    assert_eq!(second["extensions"]["cacheStatus"], "HIT");

    // A current tag: 304, no body.
    let not_modified = post(&app, &body, Some(&etag)).await;
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"].to_str().unwrap(), etag);
    assert!(not_modified.bytes().await.unwrap().is_empty());
    assert_eq!(app.sim_stats().await["totalCalls"].as_u64(), Some(0));

    // Invalidate the device: the stored answer is not served again. The answer is
    // built afresh (upstream read again); its bytes are the same, so the tag the
    // client holds still names them: 304, and the new answer is stored.
    invalidate(&app, admin, &imei).await;
    let third = post(&app, &body, Some(&etag)).await;
    assert_eq!(
        third.headers()["x-response-cache"],
        "MISS",
        "executed again"
    );
    assert_eq!(
        third.status(),
        304,
        "the same bytes: the held tag is current"
    );
    assert_eq!(third.headers()["etag"].to_str().unwrap(), etag);
    assert!(app.calls("device_details").await >= 1);
    let fourth = post(&app, &body, None).await;
    assert_eq!(fourth.headers()["x-response-cache"], "HIT");

    // A tag the answer does not have (another answer's, or bytes since changed):
    // the full answer.
    let other = post(&app, &body, Some("\"00000000000000000000000000000000\"")).await;
    assert_eq!(other.status(), 200);
    assert_eq!(other.headers()["etag"].to_str().unwrap(), etag);
}

/// Tags name bytes, not one process's entry versions: a client polling through a
/// load balancer gets 304 from a replica that never answered it before.
#[tokio::test]
async fn a_tag_from_one_replica_is_current_on_another() {
    let a = spawn_app_configured(|_| {}).await;
    let b = spawn_app_configured(|_| {}).await;
    let imei = a.sample_imei(ACCOUNT, 3);
    let body = json!({ "query": CARD, "variables": { "a": ACCOUNT, "i": imei } });
    let first = post(&a, &body, None).await;
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    // Replica b has never seen the operation: it executes it, and its bytes are
    // replica a's.
    let on_b = post(&b, &body, Some(&etag)).await;
    assert_eq!(on_b.headers()["x-response-cache"], "MISS");
    assert_eq!(on_b.status(), 304);
    // ...and then from its own stored answer.
    let again = post(&b, &body, Some(&etag)).await;
    assert_eq!(again.headers()["x-response-cache"], "HIT");
    assert_eq!(again.status(), 304);
    // The other media type is another representation, with its own tag.
    let graphql_response = b
        .client
        .post(b.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .header("if-none-match", &etag)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(graphql_response.status(), 200);
    assert_ne!(graphql_response.headers()["etag"].to_str().unwrap(), etag);
}

#[tokio::test]
async fn callers_whose_scopes_differ_never_share_an_answer() {
    let app = spawn_app_configured(|c| {
        c.auth.mode = AuthMode::ApiKey;
        c.auth.api_keys = vec![
            ApiKey {
                name: "owner".into(),
                sha256: sha("owner-key"),
                accounts: KeyAccounts::Only([ACCOUNT.parse::<AccountName>().unwrap()].into()),
            },
            ApiKey {
                name: "other".into(),
                sha256: sha("other-key"),
                accounts: KeyAccounts::Only(
                    ["0000123456-00002".parse::<AccountName>().unwrap()].into(),
                ),
            },
        ];
    })
    .await;
    let imei = app.sample_imei(ACCOUNT, 0);
    let body = json!({ "query": CARD, "variables": { "a": ACCOUNT, "i": imei } });
    let ask = |key: &'static str| {
        app.client
            .post(app.url("/graphql"))
            .header("x-api-key", key)
            .json(&body)
            .send()
    };
    let owner: Value = ask("owner-key").await.unwrap().json().await.unwrap();
    assert!(owner["data"]["device"]["firmware"].is_string(), "{owner}");
    let again = ask("owner-key").await.unwrap();
    assert_eq!(again.headers()["x-response-cache"], "HIT");

    let other = ask("other-key").await.unwrap();
    assert!(
        other.headers().get("x-response-cache").is_none(),
        "executed (and, refused, not stored): {:?}",
        other.headers()
    );
    let other: Value = other.json().await.unwrap();
    assert!(other["data"]["device"].is_null(), "{other}");
    assert_eq!(common::codes(&other), ["FORBIDDEN"], "{other}");
}

#[tokio::test]
async fn stale_answers_are_served_marked_and_never_stored() {
    let app = spawn_app_configured(|c| {
        c.cache.ttl.set("check_ins", Duration::from_secs(1));
        c.cache.stale_while_revalidate = Duration::ZERO;
        c.upstream.max_attempts = 1;
    })
    .await;
    let imei = app.sample_imei(ACCOUNT, 0);
    let body = json!({ "query": CARD, "variables": { "a": ACCOUNT, "i": imei } });
    assert_eq!(post(&app, &body, None).await.headers()["x-cache"], "MISS");
    assert_eq!(post(&app, &body, None).await.headers()["x-cache"], "HIT");

    // Past the check-ins' TTL, with the upstream failing: served stale, marked.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.sim_faults(json!({ "errorRate": 1.0, "endpoints": ["check_in_history"] }))
        .await;
    for _ in 0..2 {
        let stale = post(&app, &body, None).await;
        assert_eq!(stale.headers()["x-cache"], "STALE");
        assert!(stale.headers().get("etag").is_none());
        assert!(
            stale.headers().get("x-response-cache").is_none(),
            "not stored"
        );
        let stale: Value = stale.json().await.unwrap();
        assert_eq!(stale["extensions"]["stale"], json!(["device.checkIns"]));
    }
}

#[tokio::test]
async fn v1_get_routes_are_stored_and_answer_304_for_a_current_tag() {
    let app = spawn_app_configured(|_| {}).await;
    let imei = app.sample_imei(ACCOUNT, 1);
    let path = format!("/v1/accounts/{ACCOUNT}/devices/{imei}?include=upgradeHistory,checkIns");
    let first = app.get(&path).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-response-cache"], "MISS");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let first: Value = first.json().await.unwrap();

    app.sim_reset().await;
    let second = app.get(&path).await;
    assert_eq!(second.headers()["x-response-cache"], "HIT");
    assert_eq!(second.headers()["content-type"], "application/json");
    let second: Value = second.json().await.unwrap();
    assert_eq!(second, first);
    let not_modified = app
        .client
        .get(app.url(&path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_eq!(app.sim_stats().await["totalCalls"].as_u64(), Some(0));

    // An unknown device is a 404 problem, never stored.
    let unknown = format!("/v1/accounts/{ACCOUNT}/devices/356938035643809");
    for _ in 0..2 {
        let response = app.get(&unknown).await;
        assert_eq!(response.status(), 404);
        assert!(response.headers().get("x-response-cache").is_none());
    }
}

/// Through Redis: an invalidation made on one replica makes the answers another
/// replica stored from that device miss there too.
#[tokio::test]
async fn an_invalidation_on_another_replica_reaches_its_stored_answers() {
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
        c.auth.admin_key_sha256 = Some(sha(admin));
    };
    let a = spawn_app_configured(configure).await;
    let b = spawn_app_configured(configure).await;
    let imei = a.sample_imei(ACCOUNT, 2);
    let body = json!({ "query": CARD, "variables": { "a": ACCOUNT, "i": imei } });
    // Replica b's invalidation listener empties b's memory once when it first
    // connects (it cannot know what it missed before), which may land after b's
    // first answers: wait until b serves a stored answer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !served_as(&post(&b, &body, None).await, "HIT") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica b never served its stored answer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    invalidate(&a, admin, &imei).await;
    // The other replica applies the invalidation shortly after (a Redis stream).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if served_as(&post(&b, &body, None).await, "MISS") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica b still serves its stored answer 5 s after the invalidation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
