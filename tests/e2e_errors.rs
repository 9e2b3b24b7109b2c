//! End to end over real HTTP: every error code of the contract, in GraphQL shape on
//! `/graphql` and as problem+json on `/v1`, with the HTTP statuses of the contract.
//!
//! `INTERNAL` is not reachable from outside by design (it marks our own bugs: a
//! panic, an invalid upstream request we built); the rescue point's unit tests in
//! `src/http/problem.rs` cover its rendering and that no internal text leaks.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{
    ACCOUNT, assert_graphql_errors, assert_problem, codes, request_id_of, spawn_app,
    spawn_app_configured,
};
use devicegraph::config::{ApiKey, AuthMode, KeyAccounts};
use devicegraph_upstream::AccountName;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const DEVICE: &str =
    "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { imei firmware } }";

fn sha(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[tokio::test]
async fn bad_user_input_before_any_upstream_call() {
    let app = spawn_app().await;
    app.sim_reset().await;
    // Wrong Luhn digit.
    let body = app
        .graphql(DEVICE, json!({ "a": ACCOUNT, "i": "490154203237519" }))
        .await;
    assert_eq!(codes(&body), vec!["BAD_USER_INPUT"], "{body}");
    let response = app
        .get(&format!("/v1/accounts/{ACCOUNT}/devices/490154203237519"))
        .await;
    assert_problem(response, 400, "BAD_USER_INPUT").await;
    assert_eq!(
        app.sim_stats().await["totalCalls"],
        0,
        "refused before the upstream"
    );
}

#[tokio::test]
async fn unauthenticated_and_forbidden_with_api_keys() {
    let app = spawn_app_configured(|c| {
        c.auth.mode = AuthMode::ApiKey;
        c.auth.api_keys = vec![
            ApiKey {
                name: "narrow".into(),
                sha256: sha("narrow-key"),
                accounts: KeyAccounts::Only(
                    ["0000123456-00002".parse::<AccountName>().unwrap()].into(),
                ),
            },
            ApiKey {
                name: "wide".into(),
                sha256: sha("wide-key"),
                accounts: KeyAccounts::All,
            },
        ];
    })
    .await;
    let imei = app.sample_imei(ACCOUNT, 0);
    let vars = json!({ "a": ACCOUNT, "i": imei });
    let rest = format!("/v1/accounts/{ACCOUNT}/devices/{imei}");

    // No key: 401, GraphQL-shaped on /graphql, problem+json on /v1.
    let response = app.post_graphql(DEVICE, vars.clone()).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), vec!["UNAUTHENTICATED"]);
    assert_problem(app.get(&rest).await, 401, "UNAUTHENTICATED").await;

    // Unknown key.
    let response = app
        .client
        .get(app.url(&rest))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    let body = assert_problem(response, 401, "UNAUTHENTICATED").await;
    assert_eq!(body["detail"], "unknown API key");

    // A key limited to another account: FORBIDDEN.
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("x-api-key", "narrow-key")
        .json(&json!({ "query": DEVICE, "variables": vars }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), vec!["FORBIDDEN"], "{body}");
    let response = app
        .client
        .get(app.url(&rest))
        .header("x-api-key", "narrow-key")
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "FORBIDDEN").await;

    // The wide key reads it.
    let response = app
        .client
        .get(app.url(&rest))
        .bearer_auth("wide-key")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Probes need no key; the GraphiQL page and its assets neither.
    assert_eq!(app.get("/healthz").await.status(), 200);
    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let script = page
        .split('"')
        .find(|piece| piece.starts_with("/graphql/assets/devicegraph-graphiql.js"))
        .unwrap();
    assert_eq!(app.get(script).await.status(), 200);
    // In key mode the page pre-fills the header to complete.
    assert!(page.contains("X-API-Key"), "{page}");
}

#[tokio::test]
async fn rate_limited_with_retry_after_and_draft_headers() {
    let app = spawn_app_configured(|c| {
        c.limits.per_client_rps = 1;
        c.limits.per_client_burst = 2;
    })
    .await;
    let imei = app.sample_imei(ACCOUNT, 0);
    let rest = format!("/v1/accounts/{ACCOUNT}/devices/{imei}");
    let first = app.get(&rest).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["ratelimit-policy"], "1;w=1;burst=2");
    assert_eq!(
        first.headers()["ratelimit"],
        "limit=2, remaining=1, reset=1"
    );
    app.get(&rest).await;

    let refused = app.get(&rest).await;
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(
        refused.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .contains("remaining=0")
    );
    assert_problem(refused, 429, "RATE_LIMITED").await;

    let response = app
        .post_graphql(DEVICE, json!({ "a": ACCOUNT, "i": imei }))
        .await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), vec!["RATE_LIMITED"]);

    // Probes are not limited.
    assert_eq!(app.get("/healthz").await.status(), 200);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("devicegraph_rate_limit_rejections_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn query_too_complex() {
    let app = spawn_app_configured(|c| {
        c.limits.max_depth = 4;
        c.limits.max_complexity = 20;
    })
    .await;
    app.sim_reset().await;
    let deep = "query($a: String!, $id: ID!) { campaign(account: $a, id: $id) { devices { edges { node { device { lastCheckIn { result } } } } } } }";
    let body = app.graphql(deep, json!({ "a": ACCOUNT, "id": "x" })).await;
    assert_eq!(codes(&body), vec!["QUERY_TOO_COMPLEX"], "{body}");
    let wide = "query($a: String!, $i: IMEI!) { a: device(account: $a, imei: $i) { imei make model firmware mdn status protocol } b: device(account: $a, imei: $i) { imei make model firmware mdn status protocol } c: device(account: $a, imei: $i) { imei make model firmware mdn status protocol } }";
    let body = app
        .graphql(
            wide,
            json!({ "a": ACCOUNT, "i": app.sample_imei(ACCOUNT, 0) }),
        )
        .await;
    assert_eq!(codes(&body), vec!["QUERY_TOO_COMPLEX"], "{body}");
    assert_eq!(app.sim_stats().await["totalCalls"], 0);
}

/// Not a campaign of the simulator (its ids are version-1 UUIDs).
const UNKNOWN_CAMPAIGN: &str = "00000000-0000-4000-8000-000000000000";

/// An unknown account or campaign is NOT_FOUND (GraphQL) and a 404 problem (REST),
/// not an upstream failure, still quoting ThingSpace's answer; asked again within
/// `cache.ttl.not_found`, it costs no upstream call.
#[tokio::test]
async fn unknown_accounts_and_campaigns_are_not_found_and_remembered() {
    let app = spawn_app().await;
    let imei = app.sample_imei(ACCOUNT, 0);
    let unknown_account = "9999999999-00001";
    let campaign =
        "query($a: String!, $c: ID!) { campaign(account: $a, id: $c) { id totalDevices } }";
    for round in ["cold", "remembered"] {
        app.sim_reset().await;
        let body = app
            .graphql(DEVICE, json!({ "a": unknown_account, "i": imei }))
            .await;
        assert_eq!(body["data"]["device"], Value::Null, "{body}");
        assert_eq!(codes(&body), vec!["NOT_FOUND"], "{body}");
        let upstream = &body["errors"][0]["extensions"]["upstream"];
        assert_eq!(upstream["errorCode"], "REQUEST_FAILED.Account.NotFound");
        assert!(upstream["errorMessage"].is_string());

        let body = app
            .graphql(campaign, json!({ "a": ACCOUNT, "c": UNKNOWN_CAMPAIGN }))
            .await;
        assert_eq!(body["data"]["campaign"], Value::Null, "{body}");
        assert_eq!(codes(&body), vec!["NOT_FOUND"], "{body}");
        assert_eq!(body["errors"][0]["path"], json!(["campaign"]), "{body}");
        let upstream = &body["errors"][0]["extensions"]["upstream"];
        assert_eq!(upstream["errorCode"], "FOTA.CAMPAIGN.NotFound");

        let response = app
            .get(&format!("/v1/accounts/{unknown_account}/devices/{imei}"))
            .await;
        let problem = assert_problem(response, 404, "NOT_FOUND").await;
        assert_eq!(
            problem["upstream"]["errorCode"],
            "REQUEST_FAILED.Account.NotFound"
        );
        assert!(problem["upstream"]["errorMessage"].is_string());
        let response = app
            .get(&format!(
                "/v1/accounts/{ACCOUNT}/campaigns/{UNKNOWN_CAMPAIGN}/devices?limit=5"
            ))
            .await;
        let problem = assert_problem(response, 404, "NOT_FOUND").await;
        assert_eq!(problem["upstream"]["errorCode"], "FOTA.CAMPAIGN.NotFound");

        let (details, pages) = (
            app.calls("device_details").await,
            app.calls("campaign_devices").await,
        );
        match round {
            // GraphQL asked; REST then found the remembered answers.
            "cold" => assert_eq!((details, pages), (1, 1), "{round}"),
            _ => assert_eq!((details, pages), (0, 0), "{round}"),
        }
    }
}

/// A malformed account name (`0`) or campaign id (`nope`) is refused before any
/// upstream call, in GraphQL and REST alike.
#[tokio::test]
async fn malformed_account_names_and_campaign_ids_are_bad_user_input() {
    let app = spawn_app().await;
    app.sim_reset().await;
    let imei = app.sample_imei(ACCOUNT, 0);
    let body = app.graphql(DEVICE, json!({ "a": "0", "i": imei })).await;
    assert_eq!(codes(&body), vec!["BAD_USER_INPUT"], "{body}");
    let body = app
        .graphql(
            "query($a: String!, $c: ID!) { campaign(account: $a, id: $c) { id totalDevices } }",
            json!({ "a": ACCOUNT, "c": "nope" }),
        )
        .await;
    assert_eq!(codes(&body), vec!["BAD_USER_INPUT"], "{body}");
    assert_eq!(body["data"]["campaign"], Value::Null, "{body}");

    let problem = assert_problem(
        app.get(&format!("/v1/accounts/0/devices/{imei}")).await,
        400,
        "BAD_USER_INPUT",
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("account"),
        "{problem}"
    );
    let problem = assert_problem(
        app.get(&format!("/v1/accounts/{ACCOUNT}/campaigns/nope/devices"))
            .await,
        400,
        "BAD_USER_INPUT",
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("campaign id"),
        "{problem}"
    );
    let response = app
        .client
        .post(app.url("/v1/accounts/0/devices:batch"))
        .json(&json!({ "imeis": [imei] }))
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "BAD_USER_INPUT").await;
    assert_eq!(app.sim_stats().await["totalCalls"], 0);
}

/// The dashboard: one unknown campaign next to good devices answers the
/// devices, over HTTP, with the campaign null and an error; an answer with an error
/// is never a cache HIT, not even once everything it read is cached.
#[tokio::test]
async fn an_unknown_campaign_next_to_good_devices_is_a_partial_answer() {
    let app = spawn_app().await;
    let imeis = [app.sample_imei(ACCOUNT, 0), app.sample_imei(ACCOUNT, 1)];
    let query = "query($a: String!, $c: ID!, $l: [IMEI!]!) { \
                 campaign(account: $a, id: $c) { totalDevices devices(first: 5) { edges { node { imei } } } } \
                 devices(account: $a, imeis: $l) { imei firmware } }";
    let vars = json!({ "a": ACCOUNT, "c": UNKNOWN_CAMPAIGN, "l": imeis });
    for round in ["cold", "warm"] {
        let response = app.post_graphql(query, vars.clone()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-cache"], "MISS", "{round}");
        let body = assert_graphql_errors(response).await;
        assert_eq!(body["data"]["campaign"], Value::Null, "{body}");
        assert_eq!(body["data"]["devices"][0]["imei"], imeis[0].as_str());
        assert_eq!(body["data"]["devices"][1]["imei"], imeis[1].as_str());
        assert!(body["data"]["devices"][1]["firmware"].is_string(), "{body}");
        assert_eq!(codes(&body), vec!["NOT_FOUND"], "{body}");
        assert_eq!(body["extensions"]["cacheStatus"], "MISS", "{round}: {body}");
    }
}

#[tokio::test]
async fn upstream_unavailable_when_thingspace_answers_503() {
    let app = spawn_app_configured(|c| c.upstream.max_attempts = 1).await;
    let imei = app.sample_imei(ACCOUNT, 0);
    app.sim_faults(json!({ "errorRate": 1.0 })).await;
    let body = app
        .graphql(DEVICE, json!({ "a": ACCOUNT, "i": imei }))
        .await;
    assert_eq!(codes(&body), vec!["UPSTREAM_UNAVAILABLE"], "{body}");
    let response = app
        .get(&format!("/v1/accounts/{ACCOUNT}/devices/{imei}"))
        .await;
    assert_problem(response, 503, "UPSTREAM_UNAVAILABLE").await;
}

#[tokio::test]
async fn upstream_timeout_when_thingspace_stalls() {
    let app = spawn_app_configured(|c| c.upstream.timeout = Duration::from_millis(300)).await;
    let imei = app.sample_imei(ACCOUNT, 0);
    // Let the tokens be obtained first, so the stall hits the data call.
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.sim_faults(json!({ "stallRate": 1.0 })).await;
    let response = app
        .post_graphql(DEVICE, json!({ "a": ACCOUNT, "i": imei }))
        .await;
    assert_eq!(
        response.status(),
        504,
        "nothing answered: as on the REST route"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), vec!["UPSTREAM_TIMEOUT"], "{body}");
    let response = app
        .get(&format!("/v1/accounts/{ACCOUNT}/devices/{imei}"))
        .await;
    assert_problem(response, 504, "UPSTREAM_TIMEOUT").await;
}

#[tokio::test]
async fn the_server_request_timeout_answers_504() {
    let app = spawn_app_configured(|c| c.server.request_timeout = Duration::from_millis(200)).await;
    app.sim_faults(json!({ "latencyMs": 2000 })).await;
    let imei = app.sample_imei(ACCOUNT, 0);
    let started = std::time::Instant::now();
    let response = app
        .get(&format!("/v1/accounts/{ACCOUNT}/devices/{imei}"))
        .await;
    assert_problem(response, 504, "UPSTREAM_TIMEOUT").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at the server's deadline"
    );
    let response = app
        .post_graphql(DEVICE, json!({ "a": ACCOUNT, "i": imei }))
        .await;
    assert_eq!(response.status(), 504);
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), vec!["UPSTREAM_TIMEOUT"]);
}

/// Every error answer quotes the request id it was served under (the `X-Request-ID`
/// response header, the client's when it sent a sane one): as `requestId` in a
/// problem and as `extensions.requestId` in each GraphQL error, whether a route or a
/// middleware refused. (`assert_problem` checks `requestId` for every problem the
/// other tests see: rate limit, timeouts, upstream errors.)
#[tokio::test]
async fn every_error_quotes_the_request_id() {
    let app = spawn_app_configured(|c| {
        c.auth.mode = AuthMode::ApiKey;
        c.auth.api_keys = vec![ApiKey {
            name: "dash".into(),
            sha256: sha("dash-key"),
            accounts: KeyAccounts::All,
        }];
        c.limits.max_body_bytes = 1024;
    })
    .await;
    let imei = app.sample_imei(ACCOUNT, 0);
    let rest = app.url(&format!("/v1/accounts/{ACCOUNT}/devices/{imei}"));
    let batch = app.url(&format!("/v1/accounts/{ACCOUNT}/devices:batch"));

    // Middleware refusals, REST shape: auth (the client's id kept)...
    let response = app
        .client
        .get(&rest)
        .header("x-request-id", "dash-401")
        .send()
        .await
        .unwrap();
    assert_eq!(request_id_of(&response), "dash-401");
    let body = assert_problem(response, 401, "UNAUTHENTICATED").await;
    assert_eq!(body["requestId"], "dash-401");
    // ...the body limit (an id of ours)...
    let response = app
        .client
        .post(&batch)
        .header("x-api-key", "dash-key")
        .header("content-type", "application/json")
        .body(vec![b' '; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(request_id_of(&response).len(), 36, "a UUID");
    assert_problem(response, 413, "BAD_USER_INPUT").await;
    // ...no such route, no such method.
    assert_problem(app.get("/v2/nothing").await, 404, "NOT_FOUND").await;
    let response = app
        .client
        .delete(&rest)
        .header("x-api-key", "dash-key")
        .send()
        .await
        .unwrap();
    assert_problem(response, 405, "BAD_USER_INPUT").await;
    // A route's own refusal.
    let response = app
        .client
        .get(app.url(&format!("/v1/accounts/{ACCOUNT}/devices/123")))
        .header("x-api-key", "dash-key")
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "BAD_USER_INPUT").await;

    // GraphQL shape: the auth refusal...
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("x-request-id", "dash-gql-401")
        .json(&json!({ "query": DEVICE, "variables": { "a": ACCOUNT, "i": imei } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body = assert_graphql_errors(response).await;
    assert_eq!(body["errors"][0]["extensions"]["requestId"], "dash-gql-401");
    // ...errors of the executor, one per field (two bad IMEIs)...
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("x-api-key", "dash-key")
        .header("x-request-id", "dash-gql-exec")
        .json(&json!({
            "query": "query($a: String!) { x: device(account: $a, imei: \"490154203237519\") { imei } \
                      y: device(account: $a, imei: \"490154203237510\") { imei } }",
            "variables": { "a": ACCOUNT },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = assert_graphql_errors(response).await;
    assert_eq!(codes(&body), ["BAD_USER_INPUT", "BAD_USER_INPUT"], "{body}");
    assert_eq!(
        body["errors"][1]["extensions"]["requestId"],
        "dash-gql-exec"
    );
    // ...and a request error (nothing executed; 400 in the new media type).
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("x-api-key", "dash-key")
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": "{ device(" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_graphql_errors(response).await;
}

/// With ThingSpace down long enough for the details endpoint's circuit to open:
/// a cold device is refused at once, 503 with `Retry-After` in both shapes; a warm one
/// is served stale; readiness stays up and names the open circuit.
#[tokio::test]
async fn an_open_circuit_is_503_with_retry_after_and_readiness_stays_up() {
    let app = spawn_app_configured(|c| {
        c.upstream.circuit_breaker.min_calls = 4;
        c.upstream.circuit_breaker.open_for = Duration::from_secs(30);
        c.upstream.circuit_breaker.max_open_for = Duration::from_secs(30);
        c.cache
            .ttl
            .set("device_details", Duration::from_millis(200));
        c.cache.stale_while_revalidate = Duration::ZERO;
    })
    .await;
    let warm = app.sample_imei(ACCOUNT, 0);
    let cold = app.sample_imei(ACCOUNT, 1);
    let body = app
        .graphql(DEVICE, json!({ "a": ACCOUNT, "i": warm }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    app.sim_faults(json!({ "errorRate": 1.0 })).await;
    // Failing reads of other devices open the circuit (4 attempts each).
    for n in 2..4 {
        let imei = app.sample_imei(ACCOUNT, n);
        app.post_graphql(DEVICE, json!({ "a": ACCOUNT, "i": imei }))
            .await;
    }
    let before = app.calls("device_details").await;

    let started = std::time::Instant::now();
    let response = app
        .post_graphql(DEVICE, json!({ "a": ACCOUNT, "i": cold }))
        .await;
    let refused_in = started.elapsed();
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), vec!["UPSTREAM_UNAVAILABLE"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], retry_after);
    assert!(refused_in < Duration::from_secs(1), "{refused_in:?}");

    let response = app
        .get(&format!("/v1/accounts/{ACCOUNT}/devices/{cold}"))
        .await;
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503, "UPSTREAM_UNAVAILABLE").await;

    // The warm device is served stale, at once.
    let response = app
        .post_graphql(DEVICE, json!({ "a": ACCOUNT, "i": warm }))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "STALE");
    assert_eq!(
        app.calls("device_details").await,
        before,
        "the open circuit sent nothing"
    );

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["circuits"]["device_details"], "open", "{ready}");
    assert_eq!(ready["circuits"]["check_in_history"], "closed", "{ready}");
}
