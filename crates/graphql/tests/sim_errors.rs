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
async fn upstream_error_answers_carry_the_upstream_body_and_spare_the_rest() {
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
    assert_eq!(codes(&r), ["UPSTREAM_ERROR"], "{r:#}");
    let err = &r["errors"][0];
    assert_eq!(err["path"], json!(["bad"]));
    let code = err["extensions"]["upstream"]["errorCode"].as_str().unwrap();
    assert!(code.contains("Account.NotFound"), "{code}");
    assert!(err["extensions"]["upstream"]["errorMessage"].is_string());
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

#[tokio::test]
async fn a_failed_non_null_root_field_nulls_data() {
    let env = SimEnv::default().await;
    let r = env
        .run(
            "{ campaign(account: \"0000000000-00009\", id: \"c1\") { devices { totalCount } } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"], Value::Null, "{r:#}");
    assert_eq!(codes(&r), ["UPSTREAM_ERROR"], "{r:#}");
    assert_eq!(r["errors"][0]["path"], json!(["campaign", "devices"]));
}
