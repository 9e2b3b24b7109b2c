//! Relay global ids and `node`/`nodes` against the simulator over HTTP: ids round-trip
//! through the same cache entries (upstream calls counted at the simulator), device
//! ids batch into one details call, campaign-device ids resolve from the campaign's
//! cached pages, and forged, malformed or foreign ids are refused before any call.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{ACCOUNT, SimEnv, codes, run_as};
use devicegraph_graphql::{AccountScope, GraphqlConfig, RequestContext, execute};
use devicegraph_sim::SimConfig;
use serde_json::{Value, json};

const OTHER_ACCOUNT: &str = "0000123456-00002";

/// The documented `v1` encoding of a device id (README): what clients may have
/// persisted, so it must not change.
fn device_id(account: &str, imei: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:Device:{account}:{imei}"))
}

fn row_id(account: &str, campaign: &str, imei: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:CampaignDevice:{account}:{campaign}:{imei}"))
}

const NODE: &str = r#"query($id: ID!) { node(id: $id) {
  __typename id
  ... on Device { imei account firmware }
  ... on CampaignDevice { imei status device { id imei firmware } }
} }"#;

const NODES: &str = r#"query($ids: [ID!]!) { nodes(ids: $ids) {
  __typename id
  ... on Device { imei account firmware }
  ... on CampaignDevice { imei status }
} }"#;

/// Upstream calls other than logins.
async fn data_calls(env: &SimEnv) -> u64 {
    let stats = env.stats().await;
    stats["calls"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "token" && *k != "session_login")
        .map(|(_, v)| v.as_u64().unwrap_or(0))
        .sum()
}

/// The first `n` IMEIs (and statuses) of a campaign, from one campaign page that
/// loads no device.
async fn campaign_imeis(env: &SimEnv, campaign: &str, n: usize) -> Vec<String> {
    let r = env
        .run(
            "query($a: String!, $c: ID!, $f: Int) { campaign(account: $a, id: $c) { \
             devices(first: $f) { edges { node { imei } } } } }",
            json!({"a": ACCOUNT, "c": campaign, "f": n}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    r["data"]["campaign"]["devices"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["imei"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_device_id_round_trips_through_the_same_cache_entry() {
    let env = SimEnv::default().await;
    let imei = env.sample_imeis(ACCOUNT)[0].clone();
    let r = env
        .run(
            "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { id imei firmware } }",
            json!({"a": ACCOUNT, "i": imei}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    let id = r["data"]["device"]["id"].as_str().unwrap().to_owned();
    assert_eq!(id, device_id(ACCOUNT, &imei), "the documented v1 encoding");

    env.reset().await;
    let r = env.run(NODE, json!({"id": id})).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    let node = &r["data"]["node"];
    assert_eq!(node["__typename"], "Device");
    assert_eq!(node["id"], id.as_str());
    assert_eq!(node["imei"], imei.as_str());
    assert_eq!(node["account"], ACCOUNT);
    assert!(node["firmware"].is_string(), "{node}");
    assert_eq!(
        data_calls(&env).await,
        0,
        "node read the entry device filled"
    );
    assert_eq!(r["extensions"]["cacheStatus"], "HIT");

    // The same id from another schema over the same upstream (another replica):
    // ids carry no per-process state.
    let other = SimEnv::default().await;
    let r = other.run(NODE, json!({"id": id})).await;
    assert_eq!(r["data"]["node"]["imei"], imei.as_str(), "{r:#}");
}

#[tokio::test]
async fn nodes_of_100_device_ids_cost_one_details_call() {
    let env = SimEnv::default().await;
    let (campaign, _) = env.campaign_over(ACCOUNT, 1_000);
    let imeis = campaign_imeis(&env, &campaign, 100).await;
    assert_eq!(imeis.len(), 100);
    let ids: Vec<String> = imeis.iter().map(|i| device_id(ACCOUNT, i)).collect();

    env.reset().await;
    let r = env.run(NODES, json!({"ids": ids})).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    let nodes = r["data"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 100);
    for ((node, imei), id) in nodes.iter().zip(&imeis).zip(&ids) {
        assert_eq!(node["__typename"], "Device");
        assert_eq!(node["imei"], imei.as_str(), "in the order asked");
        assert_eq!(node["id"], id.as_str());
        assert!(node["firmware"].is_string(), "{node}");
    }
    let details = env.calls("device_details").await;
    eprintln!("nodes of 100 device ids, cold: device_details={details}");
    assert_eq!(details, 1);
    assert_eq!(
        data_calls(&env).await,
        1,
        "nothing but the one details call"
    );

    // Warm: nothing upstream; `device` reads the same entries.
    env.reset().await;
    let r = env.run(NODES, json!({"ids": ids})).await;
    assert_eq!(r["data"]["nodes"].as_array().unwrap().len(), 100);
    let r = env
        .run(
            "query($a: String!, $i: [IMEI!]!) { devices(account: $a, imeis: $i) { id } }",
            json!({"a": ACCOUNT, "i": imeis}),
        )
        .await;
    let via_devices: Vec<&Value> = r["data"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["id"])
        .collect();
    assert_eq!(via_devices.len(), ids.len());
    for (got, want) in via_devices.iter().zip(&ids) {
        assert_eq!(got.as_str(), Some(want.as_str()));
    }
    assert_eq!(data_calls(&env).await, 0);
}

#[tokio::test]
async fn unknown_devices_are_null_without_error() {
    let env = SimEnv::default().await;
    let catalog = env.sim.catalog();
    let unknown = catalog.unknown_imeis[0].clone();
    let known = env.sample_imeis(ACCOUNT)[1].clone();
    let r = env
        .run(NODE, json!({"id": device_id(ACCOUNT, &unknown)}))
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    assert!(r["data"]["node"].is_null());

    let ids = [device_id(ACCOUNT, &known), device_id(ACCOUNT, &unknown)];
    let r = env.run(NODES, json!({"ids": ids})).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    assert_eq!(r["data"]["nodes"][0]["imei"], known.as_str());
    assert!(r["data"]["nodes"][1].is_null());
    assert_eq!(r["data"]["nodes"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn forged_malformed_and_oversized_ids_are_bad_user_input_with_no_call() {
    let env = SimEnv::default().await;
    let imei = env.sample_imeis(ACCOUNT)[0].clone();
    let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let bad_luhn = format!("{}{}", &imei[..14], (imei.as_bytes()[14] - b'0' + 1) % 10);
    for bad in [
        String::new(),
        "not base64!".into(),
        imei.clone(),
        "A".repeat(300),
        "A".repeat(100_000),
        b64(&format!("v9:Device:{ACCOUNT}:{imei}")),
        b64(&format!(
            "v1:Campaign:{ACCOUNT}:f841e14a-7c9f-11ec-b56c-76bbdf26f3b9"
        )),
        b64(&format!("v1:Device:{ACCOUNT}:{bad_luhn}")),
        b64(&format!("v1:Device:{ACCOUNT}:{imei}:extra")),
        b64(&format!("v1:Device:../../{ACCOUNT}:{imei}")),
        b64(&format!("v1:CampaignDevice:{ACCOUNT}:c:{imei}x")),
    ] {
        let r = env.run(NODE, json!({"id": bad})).await;
        assert!(r["data"]["node"].is_null(), "{bad}: {r:#}");
        assert_eq!(codes(&r), vec!["BAD_USER_INPUT"], "{bad}: {r:#}");
        let message = r["errors"][0]["message"].as_str().unwrap();
        assert!(message.len() < 200, "short message: {message}");
        assert_eq!(r["errors"][0]["path"], json!(["node"]));
    }
    // In `nodes`, each position fails on its own.
    let ids = [device_id(ACCOUNT, &imei), "garbage".into()];
    let r = env.run(NODES, json!({"ids": ids})).await;
    assert_eq!(r["data"]["nodes"][0]["imei"], imei.as_str(), "{r:#}");
    assert!(r["data"]["nodes"][1].is_null());
    assert_eq!(codes(&r), vec!["BAD_USER_INPUT"]);
    assert_eq!(r["errors"][0]["path"], json!(["nodes", 1]));
    assert_eq!(env.calls("device_details").await, 1, "only the good id");
}

#[tokio::test]
async fn an_id_of_an_account_outside_the_callers_scope_is_forbidden() {
    let env = SimEnv::default().await;
    let mine = env.sample_imeis(ACCOUNT)[0].clone();
    let theirs = env.sample_imeis(OTHER_ACCOUNT)[0].clone();
    let (campaign, _) = env.campaign_over(OTHER_ACCOUNT, 5);
    let narrow = || AccountScope::Only([ACCOUNT.parse().unwrap()].into());
    env.reset().await;

    for id in [
        device_id(OTHER_ACCOUNT, &theirs),
        row_id(OTHER_ACCOUNT, &campaign, &theirs),
    ] {
        let r = run_as(&env.schema, NODE, json!({"id": id}), narrow()).await;
        assert!(r["data"]["node"].is_null(), "{r:#}");
        assert_eq!(codes(&r), vec!["FORBIDDEN"], "{r:#}");
    }
    let ids = [device_id(ACCOUNT, &mine), device_id(OTHER_ACCOUNT, &theirs)];
    let r = run_as(&env.schema, NODES, json!({"ids": ids}), narrow()).await;
    assert_eq!(r["data"]["nodes"][0]["imei"], mine.as_str(), "{r:#}");
    assert!(r["data"]["nodes"][1].is_null());
    assert_eq!(codes(&r), vec!["FORBIDDEN"]);
    assert_eq!(r["errors"][0]["path"], json!(["nodes", 1]));

    // Nothing of the other account was read: one details call, for the own device.
    let stats = env.stats().await;
    assert_eq!(stats["calls"]["device_details"], 1, "{stats}");
    assert_eq!(stats["calls"]["campaign_devices"], 0, "{stats}");
}

#[tokio::test]
async fn campaign_device_ids_resolve_from_the_cached_campaign_pages() {
    let env = SimEnv::default().await;
    let (campaign, total) = env.campaign_over(ACCOUNT, 2_500);
    // The last page's devices: the walk crosses every upstream page.
    let r = env
        .run(
            "query($a: String!, $c: ID!) { campaign(account: $a, id: $c) { \
             devices(first: 1000) { pageInfo { endCursor } } } }",
            json!({"a": ACCOUNT, "c": campaign}),
        )
        .await;
    let mut after = r["data"]["campaign"]["devices"]["pageInfo"]["endCursor"].clone();
    let mut rows: Vec<Value> = Vec::new();
    loop {
        let r = env
            .run(
                "query($a: String!, $c: ID!, $after: String) { campaign(account: $a, id: $c) { \
                 devices(first: 1000, after: $after) { pageInfo { hasNextPage endCursor } \
                 edges { node { id imei status device { id } } } } } }",
                json!({"a": ACCOUNT, "c": campaign, "after": after}),
            )
            .await;
        assert!(r.get("errors").is_none(), "{r:#}");
        let conn = &r["data"]["campaign"]["devices"];
        rows.extend(
            conn["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
        if conn["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(rows.len() as u64, total - 1_000);
    let picked: Vec<&Value> = [0, rows.len() / 2, rows.len() - 1]
        .iter()
        .map(|i| &rows[*i])
        .collect();
    for row in &picked {
        let imei = row["imei"].as_str().unwrap();
        assert_eq!(row["id"], row_id(ACCOUNT, &campaign, imei).as_str());
        assert_eq!(row["device"]["id"], device_id(ACCOUNT, imei).as_str());
    }

    env.reset().await;
    let row = picked[1];
    let r = env.run(NODE, json!({"id": row["id"]})).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    let node = &r["data"]["node"];
    assert_eq!(node["__typename"], "CampaignDevice");
    assert_eq!(node["id"], row["id"]);
    assert_eq!(node["imei"], row["imei"]);
    assert_eq!(node["status"], row["status"]);
    assert_eq!(node["device"]["id"], row["device"]["id"]);
    assert!(node["device"]["firmware"].is_string());
    let ids: Vec<&Value> = picked.iter().map(|r| &r["id"]).collect();
    let r = env.run(NODES, json!({"ids": ids})).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    for (node, row) in r["data"]["nodes"].as_array().unwrap().iter().zip(&picked) {
        assert_eq!(node["imei"], row["imei"]);
        assert_eq!(node["status"], row["status"]);
    }
    assert_eq!(
        data_calls(&env).await,
        0,
        "the pages and details the campaign pages cached"
    );

    // A device the campaign does not list is null.
    let outsider = env
        .sample_imeis(ACCOUNT)
        .into_iter()
        .find(|i| !rows.iter().any(|r| r["imei"] == i.as_str()));
    if let Some(outsider) = outsider {
        let r = env
            .run(NODE, json!({"id": row_id(ACCOUNT, &campaign, &outsider)}))
            .await;
        assert!(r.get("errors").is_none(), "{r:#}");
        assert!(r["data"]["node"].is_null(), "{r:#}");
    }
}

/// Device ids and the `device` of campaign-device ids share one details batch.
#[tokio::test]
async fn device_ids_and_campaign_rows_devices_share_one_details_call() {
    let env = SimEnv::default().await;
    let (campaign, _) = env.campaign_over(ACCOUNT, 1_000);
    let imeis = campaign_imeis(&env, &campaign, 20).await;
    env.reset().await;
    let mut ids: Vec<String> = imeis[..10]
        .iter()
        .map(|i| row_id(ACCOUNT, &campaign, i))
        .collect();
    ids.extend(imeis[10..].iter().map(|i| device_id(ACCOUNT, i)));
    let r = env
        .run(
            r#"query($ids: [ID!]!) { nodes(ids: $ids) {
              ... on CampaignDevice { imei device { imei firmware } }
              ... on Device { imei firmware } } }"#,
            json!({"ids": ids}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    let nodes = r["data"]["nodes"].as_array().unwrap();
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(node["imei"], imeis[i].as_str());
        let firmware = if i < 10 {
            &node["device"]["firmware"]
        } else {
            &node["firmware"]
        };
        assert!(firmware.is_string(), "{node}");
    }
    let stats = env.stats().await;
    assert_eq!(stats["calls"]["device_details"], 1, "{stats}");
    assert_eq!(stats["calls"]["campaign_devices"], 0, "the page is cached");
}

/// On a cold cache a campaign-device id walks the campaign's pages from the first,
/// and only so far: the estimate says what it will cost, and past `NODE_SCAN_PAGES`
/// uncached pages the id is refused rather than walking a whole campaign.
#[tokio::test]
async fn a_cold_campaign_device_id_walks_a_bounded_number_of_pages() {
    let env = SimEnv::start(
        SimConfig {
            campaign_page_size: 10,
            ..SimConfig::default()
        },
        GraphqlConfig::default(),
        Duration::from_secs(10),
    )
    .await;
    let (campaign, total) = env.campaign_over(ACCOUNT, 300);
    let all = {
        let r = env
            .run(
                "query($a: String!, $c: ID!) { campaign(account: $a, id: $c) { \
                 devices(first: 1000) { edges { node { imei } } } } }",
                json!({"a": ACCOUNT, "c": campaign}),
            )
            .await;
        r["data"]["campaign"]["devices"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["imei"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(all.len() as u64, total.min(1000));

    // A fresh gateway over the same simulator: nothing cached.
    let cold = SimEnv::start(
        SimConfig {
            campaign_page_size: 10,
            ..SimConfig::default()
        },
        GraphqlConfig::default(),
        Duration::from_secs(10),
    )
    .await;
    // Device 45 lies on the fifth page of ten.
    let r = cold
        .run(NODE, json!({"id": row_id(ACCOUNT, &campaign, &all[45])}))
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    assert_eq!(r["data"]["node"]["imei"], all[45].as_str());
    assert_eq!(cold.calls("campaign_devices").await, 5);

    // Device 145 (page 15) is ten uncached pages further: the most one lookup reads
    // (the first five pages are cached now and cost nothing).
    cold.reset().await;
    let r = cold
        .run(NODE, json!({"id": row_id(ACCOUNT, &campaign, &all[145])}))
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    assert_eq!(r["data"]["node"]["imei"], all[145].as_str());
    assert_eq!(cold.calls("campaign_devices").await, 10);

    // Device 265 (page 27) is twelve uncached pages away: refused, having read ten.
    cold.reset().await;
    let r = cold
        .run(NODE, json!({"id": row_id(ACCOUNT, &campaign, &all[265])}))
        .await;
    assert!(r["data"]["node"].is_null(), "{r:#}");
    assert_eq!(codes(&r), vec!["QUERY_TOO_COMPLEX"], "{r:#}");
    assert_eq!(cold.calls("campaign_devices").await, 10);
}

/// `extensions.cost` of node queries: what executing them will send upstream.
#[tokio::test]
async fn the_estimate_of_node_queries_is_what_they_cost() {
    let env = SimEnv::default().await;
    let (campaign, _) = env.campaign_over(ACCOUNT, 1_000);
    let imeis = campaign_imeis(&env, &campaign, 300).await;
    // A fresh schema over the same upstream: nothing cached.
    let cold = SimEnv::default().await;
    let costed = |query: &'static str, variables: Value| {
        let schema = cold.schema.clone();
        async move {
            let request = async_graphql::Request::new(query)
                .variables(async_graphql::Variables::from_json(variables));
            let mut ctx = RequestContext::new(AccountScope::All);
            ctx.report_cost = true;
            let executed = execute(&schema, request, ctx).await;
            serde_json::to_value(&executed.response).unwrap()
        }
    };
    let ids: Vec<String> = imeis.iter().map(|i| device_id(ACCOUNT, i)).collect();
    let with_history = r#"query($ids: [ID!]!) { nodes(ids: $ids) {
        ... on Device { firmware upgradeHistory { status } } } }"#;
    let r = costed(with_history, json!({"ids": ids[..3]})).await;
    let cost = &r["extensions"]["cost"];
    assert_eq!(cost["estimate"]["deviceDetails"], 1, "{cost:#}");
    assert_eq!(cost["estimate"]["upgradeHistory"], 3, "{cost:#}");
    let r = costed(with_history, json!({"ids": ids[..3]})).await;
    assert_eq!(r["extensions"]["cost"]["estimate"]["upstreamCalls"], 0);
    assert_eq!(r["extensions"]["cost"]["upstreamCalls"], 0);

    // A campaign-device id on a cold campaign: the bound, then nothing once cached.
    let row = row_id(ACCOUNT, &campaign, &imeis[299]);
    let r = costed(NODE, json!({"id": row})).await;
    let cost = &r["extensions"]["cost"];
    assert_eq!(cost["estimate"]["campaignPages"], 10, "{cost:#}");
    assert_eq!(cost["estimate"]["deviceDetails"], 1, "its device {{ ... }}");
    assert_eq!(r["data"]["node"]["imei"], imeis[299].as_str(), "{r:#}");
    let r = costed(NODE, json!({"id": row})).await;
    assert_eq!(
        r["extensions"]["cost"]["estimate"]["upstreamCalls"], 0,
        "{r:#}"
    );
    assert_eq!(r["extensions"]["cost"]["upstreamCalls"], 0);

    // Lists longer than limits.max_list_length are refused before anything runs.
    let too_many: Vec<String> = (0..1_001).map(|_| ids[0].clone()).collect();
    let r = costed(NODES, json!({"ids": too_many})).await;
    assert_eq!(codes(&r), vec!["BAD_USER_INPUT"], "{r:#}");
    assert!(r["data"].is_null());
}
