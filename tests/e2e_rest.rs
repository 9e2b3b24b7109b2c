//! End to end over real HTTP: the `/v1` JSON API returns exactly GraphQL's data
//! (devices, batches, campaign pages), problem+json errors, and marks stale answers.
#![allow(clippy::unwrap_used)]

mod common;

use common::{ACCOUNT, assert_problem, spawn_app, spawn_app_configured};
use serde_json::{Value, json};

const FULL_DEVICE: &str = r#"query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) {
  imei account mdn make model firmware fotaEligible licenseAssigned status protocol
  createTime upgradeTime statusTime refreshTime lastConnectionTime
  software { name version upgradeTime } files
  upgradeHistory { campaignId firmwareName firmwareFrom firmwareTo startDate reportUpdatedTime status reason }
  checkIns { clientType result failureType timeCompleted } } }"#;

#[tokio::test]
async fn rest_device_is_the_graphql_device() {
    let app = spawn_app().await;
    let imei = app.sample_imei(ACCOUNT, 2);
    let graphql = app
        .graphql(FULL_DEVICE, json!({ "a": ACCOUNT, "i": imei }))
        .await;
    let response = app
        .get(&format!(
            "/v1/accounts/{ACCOUNT}/devices/{imei}?include=upgradeHistory,checkIns"
        ))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-cache"],
        "HIT",
        "GraphQL just fetched it"
    );
    let rest: Value = response.json().await.unwrap();
    assert_eq!(rest, graphql["data"]["device"]);
    assert!(rest["upgradeHistory"].is_array() && rest["checkIns"].is_array());

    // Without include, no history fields (and no history calls).
    let other = app.sample_imei(ACCOUNT, 5);
    app.sim_reset().await;
    let response = app
        .get(&format!("/v1/accounts/{ACCOUNT}/devices/{other}"))
        .await;
    assert_eq!(response.headers()["x-cache"], "MISS");
    let plain: Value = response.json().await.unwrap();
    assert_eq!(plain["imei"], other.as_str());
    assert!(plain.get("upgradeHistory").is_none() && plain.get("checkIns").is_none());
    assert_eq!(
        app.calls("upgrade_history").await + app.calls("check_in_history").await,
        0
    );
}

#[tokio::test]
async fn rest_batch_splits_found_and_not_found() {
    let app = spawn_app().await;
    let catalog = app.catalog();
    let known = &catalog.sample_imeis[ACCOUNT];
    let unknown = &catalog.unknown_imeis[0];
    let asked = json!([known[4], unknown, known[0]]);
    app.sim_reset().await;
    let response = app
        .client
        .post(app.url(&format!("/v1/accounts/{ACCOUNT}/devices:batch")))
        .json(&json!({ "imeis": asked }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-cache"));
    let body: Value = response.json().await.unwrap();
    let imeis: Vec<&str> = body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["imei"].as_str().unwrap())
        .collect();
    assert_eq!(imeis, vec![known[4].as_str(), known[0].as_str()]);
    assert_eq!(body["notFound"], json!([unknown]));
    assert_eq!(app.calls("device_details").await, 1);

    let graphql = app
        .graphql(
            "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { imei account mdn make model firmware fotaEligible licenseAssigned status protocol createTime upgradeTime statusTime refreshTime lastConnectionTime software { name version upgradeTime } files } }",
            json!({ "a": ACCOUNT, "i": known[4] }),
        )
        .await;
    assert_eq!(body["devices"][0], graphql["data"]["device"]);
}

/// `count` distinct IMEIs with valid Luhn digits (mostly unknown to the simulator).
fn luhn_imeis(count: usize) -> Vec<String> {
    (0..count)
        .map(|n| {
            let body = format!("35693803{n:06}");
            let sum: u32 = body
                .bytes()
                .rev()
                .enumerate()
                .map(|(i, b)| {
                    let d = u32::from(b - b'0');
                    if i % 2 == 0 {
                        let d = d * 2;
                        if d > 9 { d - 9 } else { d }
                    } else {
                        d
                    }
                })
                .sum();
            format!("{body}{}", (10 - sum % 10) % 10)
        })
        .collect()
}

/// Found by schemathesis: the route accepts up to 1,000 IMEIs with any `include`,
/// but one operation reading them all was over `limits.max_complexity` (a device
/// with both histories weighs 34) or `limits.max_upstream_calls`, so a valid batch
/// was refused QUERY_TOO_COMPLEX. The route now reads a batch in as many
/// operations as the limits need, and repeated IMEIs once.
#[tokio::test]
async fn a_full_batch_with_histories_is_answered_within_the_limits() {
    let app = spawn_app_configured(|c| {
        c.limits.upstream_calls_per_minute = 0;
        // Exactly ten devices with both histories an operation (34 each)...
        c.limits.max_complexity = 340;
        // ...and a call limit that allows them (1 details + 2 per device).
        c.limits.documents.max_upstream_calls = 21;
    })
    .await;
    let known = app.catalog().sample_imeis[ACCOUNT].clone();
    let mut asked = luhn_imeis(40);
    asked.extend(known.iter().take(5).cloned());
    asked.push(known[0].clone());
    app.sim_reset().await;
    let response = app
        .client
        .post(app.url(&format!(
            "/v1/accounts/{ACCOUNT}/devices:batch?include=upgradeHistory,checkIns"
        )))
        .json(&json!({ "imeis": asked }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let found: Vec<&str> = body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["imei"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = known.iter().take(5).map(String::as_str).collect();
    expected.push(&known[0]);
    assert_eq!(found, expected, "in the order asked, the repeat included");
    assert_eq!(body["notFound"].as_array().unwrap().len(), 40);
    assert!(body["devices"][0]["upgradeHistory"].is_array());
    // 45 distinct IMEIs, ten an operation.
    assert_eq!(app.calls("device_details").await, 5);

    // With the defaults, the largest batch with every part.
    let app = spawn_app_configured(|c| c.limits.upstream_calls_per_minute = 0).await;
    let response = app
        .client
        .post(app.url(&format!(
            "/v1/accounts/{ACCOUNT}/devices:batch?include=upgradeHistory,checkIns,lastCheckIn"
        )))
        .json(&json!({ "imeis": luhn_imeis(1000) }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["notFound"].as_array().unwrap().len(), 1000);
}

#[tokio::test]
async fn rest_campaign_paging_matches_graphql_and_loses_nothing() {
    let app = spawn_app().await;
    let campaign = app
        .catalog()
        .campaigns
        .into_iter()
        .filter(|c| c.devices > 1000 && c.devices < 4000)
        .min_by_key(|c| c.devices)
        .unwrap();
    let path = format!(
        "/v1/accounts/{}/campaigns/{}/devices",
        campaign.account, campaign.id
    );

    let first: Value = app
        .get(&format!("{path}?limit=3"))
        .await
        .json()
        .await
        .unwrap();
    let graphql = app
        .graphql(
            "query($a: String!, $id: ID!) { campaign(account: $a, id: $id) { devices(first: 3) { totalCount pageInfo { endCursor } edges { node { imei status resultReason updatedTime recentAttemptTime nextAttemptTime } } } } }",
            json!({ "a": campaign.account, "id": campaign.id }),
        )
        .await;
    let connection = &graphql["data"]["campaign"]["devices"];
    let nodes: Vec<Value> = connection["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    assert_eq!(first["items"], json!(nodes));
    assert_eq!(first["totalCount"], connection["totalCount"]);
    assert_eq!(first["nextCursor"], connection["pageInfo"]["endCursor"]);

    let mut imeis: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit=900&cursor={c}"),
            None => format!("{path}?limit=900"),
        };
        let response = app.get(&url).await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        assert_eq!(page["totalCount"], campaign.devices);
        imeis.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["imei"].as_str().unwrap().to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(imeis.len() as u64, campaign.devices);
    assert!(
        imeis.windows(2).all(|w| w[0] < w[1]),
        "ascending, no duplicates"
    );

    // The status filter keeps only devices with that raw status.
    let status = first["items"][0]["status"].as_str().unwrap().to_owned();
    let filtered: Value = app
        .get(&format!("{path}?limit=50&status={status}"))
        .await
        .json()
        .await
        .unwrap();
    let items = filtered["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|i| i["status"] == status.as_str()));
}

#[tokio::test]
async fn rest_errors_are_problem_json() {
    let app = spawn_app_configured(|c| c.limits.max_body_bytes = 4096).await;
    let catalog = app.catalog();
    let imei = &catalog.sample_imeis[ACCOUNT][0];

    let body = assert_problem(
        app.get(&format!("/v1/accounts/{ACCOUNT}/devices/123456789012345"))
            .await,
        400,
        "BAD_USER_INPUT",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("imei"), "{body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:devicegraph:problem:")
    );
    assert!(body["requestId"].is_string());
    assert_problem(
        app.get(&format!("/v1/accounts/bad%20account/devices/{imei}"))
            .await,
        400,
        "BAD_USER_INPUT",
    )
    .await;
    assert_problem(
        app.get(&format!(
            "/v1/accounts/{ACCOUNT}/devices/{imei}?include=everything"
        ))
        .await,
        400,
        "BAD_USER_INPUT",
    )
    .await;
    let unknown = &catalog.unknown_imeis[0];
    assert_problem(
        app.get(&format!("/v1/accounts/{ACCOUNT}/devices/{unknown}"))
            .await,
        404,
        "NOT_FOUND",
    )
    .await;
    let campaign = &catalog.campaigns[0];
    let path = format!(
        "/v1/accounts/{}/campaigns/{}/devices",
        campaign.account, campaign.id
    );
    assert_problem(
        app.get(&format!("{path}?limit=0")).await,
        400,
        "BAD_USER_INPUT",
    )
    .await;
    assert_problem(
        app.get(&format!("{path}?cursor=not-a-cursor")).await,
        400,
        "BAD_USER_INPUT",
    )
    .await;
    assert_problem(
        app.get(&format!("{path}?colour=red")).await,
        400,
        "BAD_USER_INPUT",
    )
    .await;
    assert_problem(app.get("/v1/nothing/here").await, 404, "NOT_FOUND").await;

    let batch = app.url(&format!("/v1/accounts/{ACCOUNT}/devices:batch"));
    let response = app
        .client
        .post(&batch)
        .body("{\"imeis\": [")
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "BAD_USER_INPUT").await;
    let response = app
        .client
        .post(&batch)
        .json(&json!({ "imeis": [imei, "12345"] }))
        .send()
        .await
        .unwrap();
    let body = assert_problem(response, 400, "BAD_USER_INPUT").await;
    assert!(
        body["detail"].as_str().unwrap().starts_with("imeis[1]"),
        "{body}"
    );
    let too_big = json!({ "imeis": vec![imei.clone(); 1000] });
    let response = app.client.post(&batch).json(&too_big).send().await.unwrap();
    assert_problem(response, 413, "BAD_USER_INPUT").await;
    let response = app.client.delete(&batch).send().await.unwrap();
    assert_eq!(response.status(), 405);
}

/// Past its TTL and with ThingSpace failing, a cached answer is served and marked
/// stale: `X-Cache: STALE` on REST, `extensions.stale` on GraphQL.
#[tokio::test]
async fn stale_answers_are_marked_when_the_upstream_fails() {
    let app = spawn_app_configured(|c| {
        c.cache
            .ttl
            .set("device_details", std::time::Duration::from_millis(200));
        c.cache.stale_while_revalidate = std::time::Duration::ZERO;
        c.upstream.max_attempts = 1;
    })
    .await;
    let imei = app.sample_imei(ACCOUNT, 3);
    let path = format!("/v1/accounts/{ACCOUNT}/devices/{imei}");
    let fresh = app.get(&path).await;
    assert_eq!(fresh.headers()["x-cache"], "MISS");
    let fresh: Value = fresh.json().await.unwrap();

    app.sim_faults(json!({ "errorRate": 1.0 })).await;
    // The one real wait of these tests: the TTL has to pass on the server's clock.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let stale = app.get(&path).await;
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.headers()["x-cache"], "STALE");
    let stale: Value = stale.json().await.unwrap();
    assert_eq!(stale, fresh);

    let body = app
        .graphql(
            "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { imei firmware } }",
            json!({ "a": ACCOUNT, "i": imei }),
        )
        .await;
    assert_eq!(body["data"]["device"]["imei"], imei.as_str());
    assert!(body["extensions"]["stale"].is_array(), "{body}");
    assert_eq!(body["extensions"]["cacheStatus"], "STALE");
}
