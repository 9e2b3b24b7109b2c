//! Relay global ids over real HTTP with API keys: an id names its account, and a key
//! scoped to other accounts gets FORBIDDEN for it (nothing of that account is read
//! upstream), also when another key's answer for the same operation is in the
//! response cache.
#![allow(clippy::unwrap_used)]

mod common;

use common::{ACCOUNT, codes, spawn_app_configured};
use devicegraph::config::{ApiKey, AuthMode, KeyAccounts};
use devicegraph_upstream::AccountName;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const OTHER: &str = "0000123456-00002";

const DEVICE_ID: &str = "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { id } }";
const NODE: &str = "query($id: ID!) { node(id: $id) { id ... on Device { imei account } } }";
const NODES: &str =
    "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Device { imei account } } }";

fn sha(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

async fn post(app: &common::TestApp, key: &str, query: &str, variables: Value) -> Value {
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("x-api-key", key)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_key_scoped_to_other_accounts_cannot_read_an_id() {
    let app = spawn_app_configured(|c| {
        c.auth.mode = AuthMode::ApiKey;
        c.auth.api_keys = vec![
            ApiKey {
                name: "narrow".into(),
                sha256: sha("narrow-key"),
                accounts: KeyAccounts::Only([OTHER.parse::<AccountName>().unwrap()].into()),
            },
            ApiKey {
                name: "wide".into(),
                sha256: sha("wide-key"),
                accounts: KeyAccounts::All,
            },
        ];
    })
    .await;
    let id_of = |account: &'static str, imei: String| {
        let app = &app;
        async move {
            let body = post(app, "wide-key", DEVICE_ID, json!({"a": account, "i": imei})).await;
            body["data"]["device"]["id"].as_str().unwrap().to_owned()
        }
    };
    let foreign = id_of(ACCOUNT, app.sample_imei(ACCOUNT, 0)).await;
    let own_imei = app.sample_imei(OTHER, 0);
    let own = id_of(OTHER, own_imei.clone()).await;

    // The wide key reads the id, which stores the answer in the response cache.
    let body = post(&app, "wide-key", NODE, json!({"id": foreign})).await;
    assert_eq!(body["data"]["node"]["account"], ACCOUNT, "{body}");

    app.sim_reset().await;
    let body = post(&app, "narrow-key", NODE, json!({"id": foreign})).await;
    assert!(body["data"]["node"].is_null(), "{body}");
    assert_eq!(codes(&body), vec!["FORBIDDEN"], "{body}");
    assert!(!body.to_string().contains("firmware"));

    let body = post(&app, "narrow-key", NODES, json!({"ids": [own, foreign]})).await;
    assert_eq!(
        body["data"]["nodes"][0]["imei"],
        own_imei.as_str(),
        "{body}"
    );
    assert_eq!(body["data"]["nodes"][0]["account"], OTHER);
    assert!(body["data"]["nodes"][1].is_null(), "{body}");
    assert_eq!(codes(&body), vec!["FORBIDDEN"]);
    assert_eq!(body["errors"][0]["path"], json!(["nodes", 1]));
    assert_eq!(
        app.sim_stats().await["totalCalls"],
        0,
        "refused before the upstream (the own device was cached)"
    );
}
