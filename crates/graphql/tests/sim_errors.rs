//! Upstream failures, injected at the simulator, as the contract's error codes; and
//! partial results where some parts fail.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{ACCOUNT, SimEnv, codes};
use devicegraph_graphql::GraphqlConfig;
use devicegraph_sim::SimConfig;
use serde_json::{Value, json};

const ONE: &str =
    "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { imei firmware } }";

fn assert_generic(r: &Value) {
    let message = r["errors"][0]["message"].as_str().unwrap();
    for leak in ["127.0.0.1", "http", "503", "429", "token", "Bearer"] {
        assert!(!message.contains(leak), "message leaks {leak:?}: {message}");
    }
}

#[tokio::test]
async fn an_unknown_account_is_not_found_with_the_upstream_body_and_spares_the_rest() {
    let env = SimEnv::default().await;
    let imei = env.sample_imeis(ACCOUNT)[0].clone();
    let r = env
        .run(
            "query($i: IMEI!) { ok: device(account: \"0000123456-00001\", imei: $i) { imei } \
             bad: device(account: \"0000000000-00009\", imei: $i) { imei } }",
            json!({"i": imei}),
        )
        .await;
    assert_eq!(r["data"]["ok"]["imei"], imei.as_str(), "{r:#}");
    // Present and null, as GraphQL requires of a failed nullable field.
    assert_eq!(r["data"].get("bad"), Some(&Value::Null), "{r:#}");
    assert_eq!(codes(&r), ["NOT_FOUND"], "{r:#}");
    let err = &r["errors"][0];
    assert_eq!(err["path"], json!(["bad"]));
    assert_eq!(
        err["extensions"]["upstream"]["errorCode"],
        "REQUEST_FAILED.Account.NotFound"
    );
    assert!(err["extensions"]["upstream"]["errorMessage"].is_string());
    assert_eq!(r["extensions"]["cacheStatus"], "MISS", "{r:#}");
}

/// Not a campaign of the simulator (its ids are version-1 UUIDs).
const UNKNOWN_CAMPAIGN: &str = "00000000-0000-4000-8000-000000000000";

/// The case: one unknown campaign in an operation that also asks for good
/// devices no longer wipes the answer. Whatever the campaign's selection, it is
/// null with one NOT_FOUND error quoting ThingSpace, and the devices are answered;
/// asked again within `ttl.not_found`, the campaign costs no upstream call.
#[tokio::test]
async fn an_unknown_campaign_is_null_and_the_rest_of_the_operation_answers() {
    let env = SimEnv::default().await;
    let samples = env.sample_imeis(ACCOUNT);
    let selections = [
        ("{ id totalDevices }", json!(["campaign"])),
        ("{ id account }", json!(["campaign"])),
        (
            "{ totalDevices devices(first: 2) { edges { node { imei } } } }",
            json!(["campaign"]),
        ),
        (
            "{ devices(first: 2) { totalCount edges { node { imei } } } }",
            json!(["campaign", "devices"]),
        ),
    ];
    for (index, (selection, path)) in selections.into_iter().enumerate() {
        let query = format!(
            "query($a: String!, $c: ID!, $l: [IMEI!]!) {{ \
               campaign(account: $a, id: $c) {selection} \
               devices(account: $a, imeis: $l) {{ imei firmware }} }}"
        );
        let vars = json!({"a": ACCOUNT, "c": UNKNOWN_CAMPAIGN, "l": [samples[0], samples[1]]});
        for round in ["cold", "remembered"] {
            env.reset().await;
            let r = env.run(&query, vars.clone()).await;
            assert_eq!(r["data"]["campaign"], Value::Null, "{selection}: {r:#}");
            let devices = r["data"]["devices"].as_array().unwrap();
            assert_eq!(devices[0]["imei"], samples[0].as_str(), "{r:#}");
            assert_eq!(devices[1]["imei"], samples[1].as_str(), "{r:#}");
            assert!(devices[1]["firmware"].is_string(), "{r:#}");
            assert_eq!(codes(&r), ["NOT_FOUND"], "{selection}: {r:#}");
            let err = &r["errors"][0];
            assert_eq!(err["path"], path, "{selection}: {r:#}");
            assert_eq!(
                err["extensions"]["upstream"]["errorCode"],
                "FOTA.CAMPAIGN.NotFound"
            );
            assert!(err["extensions"]["upstream"]["errorMessage"].is_string());
            // Only the very first ask reaches the upstream: every later one, whatever
            // its selection, finds the remembered not-found answer.
            let calls = env.calls("campaign_devices").await;
            if index == 0 && round == "cold" {
                assert_eq!(calls, 1, "{selection}");
            } else {
                assert_eq!(
                    calls, 0,
                    "{selection} ({round}): the not-found answer is remembered"
                );
            }
        }
    }
}

/// A provisioning lookup that fails is null with its error, next to a device that is
/// answered: NOT_FOUND for an identifier ThingSpace does not know, the upstream's
/// own code otherwise.
#[tokio::test]
async fn a_failed_provisioning_history_is_null_and_the_rest_answers() {
    let env = SimEnv::default().await;
    let imei = env.sample_imeis(ACCOUNT)[0].clone();
    let unknown = env.sim.catalog().unknown_imeis[0].clone();
    let query = "query($a: String!, $i: IMEI!, $id: String!) { \
                 provisioningHistory(device: {kind: IMEI, id: $id}, \
                   earliest: \"2020-01-01T00:00:00Z\", latest: \"2024-01-01T00:00:00Z\") { eventType } \
                 device(account: $a, imei: $i) { imei } }";
    let r = env
        .run(query, json!({"a": ACCOUNT, "i": imei, "id": unknown}))
        .await;
    assert_eq!(r["data"]["provisioningHistory"], Value::Null, "{r:#}");
    assert_eq!(r["data"]["device"]["imei"], imei.as_str(), "{r:#}");
    assert_eq!(codes(&r), ["NOT_FOUND"], "{r:#}");
    let err = &r["errors"][0];
    assert_eq!(err["path"], json!(["provisioningHistory"]));
    assert_eq!(
        err["extensions"]["upstream"]["errorCode"],
        "FOTA.DEVICE.NotFound"
    );
    // The endpoint takes no account, and its answer does not pretend otherwise.
    let message = err["extensions"]["upstream"]["errorMessage"]
        .as_str()
        .unwrap();
    assert_eq!(message, format!("Device imei {unknown} was not found"));

    env.faults(json!({"errorRate": 1.0, "endpoints": ["provisioning_history"]}))
        .await;
    let known = env.sample_imeis(ACCOUNT)[1].clone();
    let r = env
        .run(query, json!({"a": ACCOUNT, "i": imei, "id": known}))
        .await;
    assert_eq!(r["data"]["provisioningHistory"], Value::Null, "{r:#}");
    assert_eq!(r["data"]["device"]["imei"], imei.as_str(), "{r:#}");
    assert_eq!(codes(&r), ["UPSTREAM_UNAVAILABLE"], "{r:#}");
}

#[tokio::test]
async fn unavailable_and_rate_limited_upstreams_are_upstream_unavailable() {
    let env = SimEnv::default().await;
    let imei = env.sample_imeis(ACCOUNT)[0].clone();
    for fault in [
        json!({"errorRate": 1.0}),
        json!({"rateLimitRate": 1.0, "retryAfterSecs": 1}),
    ] {
        env.reset().await;
        env.faults(fault.clone()).await;
        let r = env.run(ONE, json!({"a": ACCOUNT, "i": imei})).await;
        assert_eq!(codes(&r), ["UPSTREAM_UNAVAILABLE"], "{fault}: {r:#}");
        assert!(r["data"]["device"].is_null());
        assert_generic(&r);
    }
}

#[tokio::test]
async fn a_stalled_upstream_is_upstream_timeout() {
    let env = SimEnv::start(
        SimConfig::default(),
        GraphqlConfig::default(),
        Duration::from_millis(300),
    )
    .await;
    let imeis = env.sample_imeis(ACCOUNT);
    // Warm the tokens first so the stall hits the data call, not the login; then ask
    // for another device, which no cache can answer.
    let r = env.run(ONE, json!({"a": ACCOUNT, "i": imeis[0]})).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    env.faults(json!({"stallRate": 1.0, "endpoints": ["device_details"]}))
        .await;
    let r = env.run(ONE, json!({"a": ACCOUNT, "i": imeis[1]})).await;
    assert_eq!(codes(&r), ["UPSTREAM_TIMEOUT"], "{r:#}");
    assert_generic(&r);
}

#[tokio::test]
async fn one_failing_part_of_devices_nulls_only_that_part() {
    let env = SimEnv::default().await;
    let samples = env.sample_imeis(ACCOUNT);
    let unknown = env.sim.catalog().unknown_imeis[0].clone();
    env.faults(json!({"errorRate": 1.0, "endpoints": ["upgrade_history"]}))
        .await;
    let r = env
        .run(
            "query($a: String!, $l: [IMEI!]!) { devices(account: $a, imeis: $l) { imei upgradeHistory { status } } }",
            json!({"a": ACCOUNT, "l": [samples[0], unknown, samples[1]]}),
        )
        .await;
    let list = r["data"]["devices"]
        .as_array()
        .unwrap_or_else(|| panic!("{r:#}"));
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(Value::is_null), "{r:#}");
    let mut paths: Vec<Value> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].clone())
        .collect();
    paths.sort_by_key(|p| p.to_string());
    assert_eq!(
        paths,
        [
            json!(["devices", 0, "upgradeHistory"]),
            json!(["devices", 2, "upgradeHistory"])
        ]
    );
    assert_eq!(codes(&r), ["UPSTREAM_UNAVAILABLE", "UPSTREAM_UNAVAILABLE"]);
}

#[tokio::test]
async fn a_failed_details_batch_marks_each_element_with_its_path() {
    let env = SimEnv::default().await;
    let samples = env.sample_imeis(ACCOUNT);
    let warm = env.run(ONE, json!({"a": ACCOUNT, "i": samples[0]})).await;
    assert!(warm.get("errors").is_none());
    env.faults(json!({"errorRate": 1.0, "endpoints": ["device_details"]}))
        .await;
    let r = env
        .run(
            "query($a: String!, $l: [IMEI!]!) { devices(account: $a, imeis: $l) { imei } }",
            json!({"a": ACCOUNT, "l": [samples[0], samples[1]]}),
        )
        .await;
    let list = r["data"]["devices"]
        .as_array()
        .unwrap_or_else(|| panic!("{r:#}"));
    let errors = r["errors"].as_array().unwrap();
    // With a caching store the warmed device is still served; without one, both
    // fail. Either way each failed element is null with an error at its own path.
    assert!(list[1].is_null(), "{r:#}");
    for (i, element) in list.iter().enumerate() {
        let error = errors.iter().find(|e| e["path"] == json!(["devices", i]));
        if element.is_null() {
            let error = error.unwrap_or_else(|| panic!("no error for devices.{i}: {r:#}"));
            assert_eq!(error["extensions"]["code"], "UPSTREAM_UNAVAILABLE");
        } else {
            assert!(error.is_none());
            assert_eq!(element["imei"], samples[i].as_str());
        }
    }
}

/// `devices` stays non-null (it fails only on its arguments or scope, before any
/// call): its failure still nulls `data`, as the spec's null propagation requires.
#[tokio::test]
async fn a_failed_non_null_root_field_nulls_data() {
    let env = SimEnv::default().await;
    let imei = env.sample_imeis(ACCOUNT)[0].clone();
    let r = env
        .run(
            "query($i: IMEI!) { devices(account: \"0\", imeis: [$i]) { imei } \
             device(account: \"0000123456-00001\", imei: $i) { imei } }",
            json!({"i": imei}),
        )
        .await;
    assert_eq!(r["data"], Value::Null, "{r:#}");
    assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r:#}");
    assert_eq!(r["errors"][0]["path"], json!(["devices"]));
}
