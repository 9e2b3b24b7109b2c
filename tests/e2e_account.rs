//! End to end over real HTTP: `GET /v1/accounts/{account}/devices`, the REST face of
//! `account(name).devices`: paging with `nextCursor`, filters, the response cache
//! (`ETag`, 304), refusals, and the account scope of API keys. Upstream calls are
//! counted at the simulator.
#![allow(clippy::unwrap_used)]

mod common;

use common::{ACCOUNT, assert_problem, codes, spawn_app, spawn_app_configured};
use devicegraph::config::{ApiKey, AuthMode, KeyAccounts};
use devicegraph_upstream::AccountName;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PATH: &str = "/v1/accounts/0000123456-00001/devices";

async fn page(app: &common::TestApp, query: &str) -> Value {
    let response = app.get(&format!("{PATH}?{query}")).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{query}: {body}");
    body
}

/// Every item through `nextCursor` with `query` (without cursor); also the pages.
async fn walk(app: &common::TestApp, query: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("{query}&cursor={c}"),
            None => query.to_owned(),
        };
        let page = page(app, &q).await;
        pages += 1;
        assert!(page["totalCount"].is_null(), "ThingSpace gives no total");
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (items, pages),
        }
        assert!(pages < 1_000);
    }
}

#[tokio::test]
async fn rest_account_paging_matches_graphql_and_loses_nothing() {
    let app = spawn_app().await;
    let total = app.catalog().account_devices[ACCOUNT];
    let first = page(&app, "limit=3").await;
    let graphql = app
        .graphql(
            "query($a: String!) { account(name: $a) { devices(first: 3) { totalCount pageInfo { endCursor } edges { node { imei account mdn make model firmware fotaEligible licenseAssigned status protocol createTime upgradeTime statusTime refreshTime lastConnectionTime software { name version upgradeTime } files } } } } }",
            json!({ "a": ACCOUNT }),
        )
        .await;
    let connection = &graphql["data"]["account"]["devices"];
    let nodes: Vec<Value> = connection["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    assert_eq!(first["items"], json!(nodes));
    assert_eq!(first["nextCursor"], connection["pageInfo"]["endCursor"]);

    app.sim_reset().await;
    let (items, pages) = walk(&app, "limit=500").await;
    let imeis: Vec<&str> = items.iter().map(|i| i["imei"].as_str().unwrap()).collect();
    assert_eq!(imeis.len() as u64, total);
    assert_eq!(pages as u64, total.div_ceil(500));
    assert!(
        imeis.windows(2).all(|w| w[0] < w[1]),
        "ascending, no repeats"
    );
    let stats = app.sim_stats().await;
    // Every upstream page once; the first was cached by the requests above.
    assert_eq!(
        stats["calls"]["account_devices"],
        total.div_ceil(1_000) - 1,
        "{stats}"
    );
    assert_eq!(stats["calls"]["device_details"], 0, "{stats}");

    // Filters: each item passes all of them.
    let (generic, _) = walk(&app, "limit=100&make=Generic&fotaEligible=true").await;
    assert!(!generic.is_empty());
    for item in &generic {
        assert_eq!(item["make"], "Generic");
        assert_eq!(item["fotaEligible"], true);
    }
    let (http, _) = walk(&app, "limit=500&protocol=HTTP").await;
    let http_generic = http.iter().filter(|i| i["fotaEligible"] == true).count();
    assert_eq!(
        http_generic,
        generic.len(),
        "Generic devices are the HTTP ones"
    );
}

#[tokio::test]
async fn rest_account_pages_are_stored_and_answer_304_for_a_current_tag() {
    let app = spawn_app().await;
    let path = format!("{PATH}?limit=50&status=Active");
    let first = app.get(&path).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-response-cache"], "MISS");
    assert_eq!(first.headers()["x-cache"], "MISS");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let first: Value = first.json().await.unwrap();

    app.sim_reset().await;
    let second = app.get(&path).await;
    assert_eq!(second.headers()["x-response-cache"], "HIT");
    assert_eq!(second.json::<Value>().await.unwrap(), first);
    let not_modified = app
        .client
        .get(app.url(&path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"].to_str().unwrap(), etag);
    // The next page from its cursor: from the cache, no upstream call either.
    let next = first["nextCursor"].as_str().unwrap();
    let page2 = page(&app, &format!("limit=50&status=Active&cursor={next}")).await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 50);
    assert_eq!(app.sim_stats().await["totalCalls"].as_u64(), Some(0));
}

#[tokio::test]
async fn rest_account_refusals_are_problems_before_any_call() {
    let app = spawn_app().await;
    for (query, what) in [
        ("limit=0", "limit under 1"),
        ("limit=501", "limit over the maximum"),
        ("limit=ten", "limit not a number"),
        ("fotaEligible=yes", "fotaEligible not a boolean"),
        ("cursor=bm90LWEtY3Vyc29y", "forged cursor"),
        ("protocol=LW%20M2M", "malformed protocol"),
        ("colour=red", "unknown parameter"),
    ] {
        let response = app.get(&format!("{PATH}?{query}")).await;
        let body = assert_problem(response, 400, "BAD_USER_INPUT").await;
        assert!(
            body["detail"].as_str().unwrap().len() < 300,
            "{what}: {body}"
        );
    }
    let response = app.get("/v1/accounts/not%20an%20account/devices").await;
    assert_problem(response, 400, "BAD_USER_INPUT").await;
    assert_eq!(app.sim_stats().await["totalCalls"], 0);
}

#[tokio::test]
async fn a_key_for_another_account_is_forbidden() {
    let sha = |key: &str| -> [u8; 32] { Sha256::digest(key.as_bytes()).into() };
    let other = "0000123456-00002";
    let app = spawn_app_configured(|c| {
        c.auth.mode = AuthMode::ApiKey;
        c.auth.api_keys = vec![ApiKey {
            name: "narrow".into(),
            sha256: sha("narrow-key"),
            accounts: KeyAccounts::Only([other.parse::<AccountName>().unwrap()].into()),
        }];
    })
    .await;
    let response = app
        .client
        .get(app.url(&format!("{PATH}?limit=5")))
        .header("x-api-key", "narrow-key")
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "FORBIDDEN").await;
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("x-api-key", "narrow-key")
        .json(&json!({
            "query": "query($a: String!) { account(name: $a) { devices { edges { cursor } } } }",
            "variables": { "a": ACCOUNT },
        }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), ["FORBIDDEN"], "{body}");
    assert_eq!(app.sim_stats().await["totalCalls"], 0);

    // Its own account reads.
    let response = app
        .client
        .get(app.url(&format!("/v1/accounts/{other}/devices?limit=5")))
        .header("x-api-key", "narrow-key")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 5);
    assert!(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["account"] == other)
    );
}
