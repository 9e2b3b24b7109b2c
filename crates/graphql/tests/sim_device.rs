//! `device` and `devices` against the simulator over HTTP: merged fields, ordering,
//! timestamps, and the upstream calls each selection costs (counted at the simulator).
#![allow(clippy::unwrap_used)]

mod common;

use common::{ACCOUNT, SimEnv, codes};
use serde_json::{Value, json};

const FULL: &str = r#"
query($a: String!, $i: IMEI!) {
  device(account: $a, imei: $i) {
    imei account mdn make model firmware fotaEligible licenseAssigned status protocol
    createTime upgradeTime statusTime refreshTime lastConnectionTime
    software { name version upgradeTime } files
    upgradeHistory { campaignId firmwareName firmwareFrom firmwareTo startDate reportUpdatedTime status reason }
    checkIns { clientType result failureType timeCompleted }
    lastCheckIn { clientType result failureType timeCompleted }
    two: checkIns(last: 2) { timeCompleted }
  }
}"#;

fn is_utc_millis(v: &Value) -> bool {
    let Some(s) = v.as_str() else {
        return v.is_null();
    };
    let b = s.as_bytes();
    s.len() == 24
        && s.ends_with('Z')
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// Asserts `list` is sorted newest first by `key` (RFC 3339 UTC strings sort as
/// instants; nulls last).
fn assert_newest_first(list: &[Value], key: &str) {
    let keys: Vec<Option<&str>> = list.iter().map(|e| e[key].as_str()).collect();
    for pair in keys.windows(2) {
        match (pair[0], pair[1]) {
            (Some(a), Some(b)) => assert!(a >= b, "{key} not newest first: {keys:?}"),
            (None, Some(_)) => panic!("{key}: null before a value: {keys:?}"),
            _ => {}
        }
    }
}

/// A sample device with at least two upgrade-history entries and two check-ins.
async fn busy_device(env: &SimEnv) -> (String, Value) {
    for imei in env.sample_imeis(ACCOUNT) {
        let r = env.run(FULL, json!({"a": ACCOUNT, "i": imei})).await;
        assert!(r.get("errors").is_none(), "{r:#}");
        let d = &r["data"]["device"];
        if d["upgradeHistory"].as_array().unwrap().len() >= 2
            && d["checkIns"].as_array().unwrap().len() >= 3
        {
            return (imei, d.clone());
        }
    }
    panic!("no sample device with histories");
}

#[tokio::test]
async fn device_merges_details_and_histories_newest_first() {
    let env = SimEnv::default().await;
    let (imei, d) = busy_device(&env).await;
    assert_eq!(d["imei"], imei.as_str());
    assert_eq!(d["account"], ACCOUNT);
    assert!(d["firmware"].is_string(), "{d:#}");
    for key in [
        "createTime",
        "upgradeTime",
        "statusTime",
        "refreshTime",
        "lastConnectionTime",
    ] {
        assert!(is_utc_millis(&d[key]), "{key} = {}", d[key]);
    }
    let upgrades = d["upgradeHistory"].as_array().unwrap();
    assert_newest_first(upgrades, "reportUpdatedTime");
    for u in upgrades {
        assert!(is_utc_millis(&u["reportUpdatedTime"]), "{u}");
        assert!(u["status"].is_string());
        if let Some(date) = u["startDate"].as_str() {
            assert_eq!(date.len(), 10, "{date}");
        }
    }
    let check_ins = d["checkIns"].as_array().unwrap();
    assert_newest_first(check_ins, "timeCompleted");
    for c in check_ins {
        assert!(is_utc_millis(&c["timeCompleted"]), "{c}");
        for (key, allowed) in [
            (
                "clientType",
                &[
                    "UNKNOWN",
                    "DEVICE",
                    "ROVA_CONTAINER",
                    "WIFI_CLIENT",
                    "ROVA_CLIENT",
                    "ROVA_CLIENT_APP_STORE",
                ][..],
            ),
            ("result", &["FAILED", "SUCCEEDED", "BUSY", "UNKNOWN"][..]),
        ] {
            assert!(allowed.contains(&c[key].as_str().unwrap()), "{c}");
        }
    }
    assert_eq!(d["lastCheckIn"], check_ins[0]);
    let two: Vec<&Value> = d["two"].as_array().unwrap().iter().collect();
    assert_eq!(two.len(), 2);
    assert_eq!(two[0]["timeCompleted"], check_ins[0]["timeCompleted"]);
    assert_eq!(two[1]["timeCompleted"], check_ins[1]["timeCompleted"]);
}

#[tokio::test]
async fn a_resolver_only_calls_for_what_is_selected() {
    let env = SimEnv::default().await;
    let imei = env.sample_imeis(ACCOUNT)[0].clone();
    env.reset().await;
    let r = env
        .run(
            "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { firmware } }",
            json!({"a": ACCOUNT, "i": imei}),
        )
        .await;
    assert!(r["data"]["device"]["firmware"].is_string(), "{r:#}");
    assert_eq!(r["extensions"]["cacheStatus"], "MISS");
    assert_eq!(env.calls("device_details").await, 1);
    assert_eq!(env.calls("upgrade_history").await, 0);
    assert_eq!(env.calls("check_in_history").await, 0);

    // checkIns and lastCheckIn share one check-in call within an operation (another
    // device, so a caching store has nothing of it yet).
    let other = env.sample_imeis(ACCOUNT)[1].clone();
    env.reset().await;
    let r = env
        .run(
            "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { \
             upgradeHistory { status } checkIns { result } lastCheckIn { result } } }",
            json!({"a": ACCOUNT, "i": other}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    assert_eq!(env.calls("device_details").await, 1);
    assert_eq!(env.calls("upgrade_history").await, 1);
    assert_eq!(env.calls("check_in_history").await, 1);
}

#[tokio::test]
async fn devices_keep_order_with_nulls_in_one_batch() {
    let env = SimEnv::default().await;
    let samples = env.sample_imeis(ACCOUNT);
    let unknown = env.sim.catalog().unknown_imeis[0].clone();
    let asked = vec![
        samples[3].clone(),
        unknown.clone(),
        samples[1].clone(),
        samples[3].clone(),
    ];
    env.reset().await;
    let r = env
        .run(
            "query($a: String!, $l: [IMEI!]!, $x: IMEI!) { devices(account: $a, imeis: $l) { imei firmware } \
             x: device(account: $a, imei: $x) { imei } }",
            json!({"a": ACCOUNT, "l": asked, "x": samples[5]}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    let list = r["data"]["devices"].as_array().unwrap();
    assert_eq!(list.len(), 4);
    assert_eq!(list[0]["imei"], samples[3].as_str());
    assert!(list[1].is_null(), "unknown IMEI must be null: {}", list[1]);
    assert_eq!(list[2]["imei"], samples[1].as_str());
    assert_eq!(list[3]["imei"], samples[3].as_str());
    assert_eq!(r["data"]["x"]["imei"], samples[5].as_str());
    // `devices` and the aliased `device` share one details request.
    assert_eq!(env.calls("device_details").await, 1);

    // An unknown IMEI through `device` is null without error.
    let r = env
        .run(
            "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { imei } }",
            json!({"a": ACCOUNT, "i": unknown}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    assert!(r["data"]["device"].is_null());
}

#[tokio::test]
async fn negative_last_is_refused_before_the_check_in_call() {
    let env = SimEnv::default().await;
    let imei = env.sample_imeis(ACCOUNT)[0].clone();
    env.reset().await;
    let r = env
        .run(
            "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { checkIns(last: -1) { result } } }",
            json!({"a": ACCOUNT, "i": imei}),
        )
        .await;
    assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r:#}");
    assert_eq!(env.calls("check_in_history").await, 0);
    let r = env
        .run(
            "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { \
             provisioningHistory(earliest: \"2024-02-01T00:00:00Z\", latest: \"2023-01-01T00:00:00-05:00\") { eventType } } }",
            json!({"a": ACCOUNT, "i": imei}),
        )
        .await;
    assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r:#}");
    assert_eq!(env.calls("provisioning_history").await, 0);
}

#[tokio::test]
async fn provisioning_history_by_device_and_by_identifier() {
    let env = SimEnv::default().await;
    let catalog = env.sim.catalog();
    let earliest = catalog.provisioning_window.earliest.clone();
    let latest = catalog.provisioning_window.latest.clone();
    let imei = env.sample_imeis(ACCOUNT)[0].clone();
    let r = env
        .run(
            "query($a: String!, $i: IMEI!, $e: DateTime!, $l: DateTime!) { \
             device(account: $a, imei: $i) { provisioningHistory(earliest: $e, latest: $l) { occurredAt eventType extendedAttributes { key value } } } \
             provisioningHistory(device: {kind: IMEI, id: $i}, earliest: $e, latest: $l) { occurredAt eventType } }",
            json!({"a": ACCOUNT, "i": imei, "e": earliest, "l": latest}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    let by_device = r["data"]["device"]["provisioningHistory"]
        .as_array()
        .unwrap();
    let by_id = r["data"]["provisioningHistory"].as_array().unwrap();
    assert!(!by_device.is_empty());
    assert_eq!(by_device.len(), by_id.len());
    let times: Vec<&str> = by_id
        .iter()
        .map(|e| e["occurredAt"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:?}"
    );
    assert!(by_id.iter().all(|e| is_utc_millis(&e["occurredAt"])));
}

#[tokio::test]
async fn aliases_share_one_details_call() {
    let env = SimEnv::default().await;
    let s = env.sample_imeis(ACCOUNT);
    env.reset().await;
    let r = env
        .run(
            "query($a: String!, $x: IMEI!, $y: IMEI!, $z: IMEI!) { \
             x: device(account: $a, imei: $x) { imei } y: device(account: $a, imei: $y) { imei } \
             z: device(account: $a, imei: $z) { imei checkIns(last: 1) { result } } }",
            json!({"a": ACCOUNT, "x": s[0], "y": s[1], "z": s[2]}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    assert_eq!(r["data"]["y"]["imei"], s[1].as_str());
    assert_eq!(r["data"]["z"]["checkIns"].as_array().unwrap().len(), 1);
    assert_eq!(env.calls("device_details").await, 1);
}

#[tokio::test]
async fn upstream_requests_carry_the_request_id() {
    let env = SimEnv::default().await;
    let s = env.sample_imeis(ACCOUNT);
    let r = env
        .run(
            "query($a: String!, $x: IMEI!, $y: IMEI!) { \
             x: device(account: $a, imei: $x) { imei } y: device(account: $a, imei: $y) { checkIns { result } } }",
            json!({"a": ACCOUNT, "x": s[0], "y": s[1]}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    // Every upstream request, including the DataLoader's batch on its own task, went
    // out under the caller's request id (common::run_as sets "test-request").
    let seen = env.gate.1.lock().unwrap().clone();
    assert!(
        seen.iter().any(|(e, _)| e.name() == "device_details"),
        "{seen:?}"
    );
    for (endpoint, id) in &seen {
        assert_eq!(id.as_deref(), Some("test-request"), "{endpoint}: {seen:?}");
    }
}

/// Runs `query` as `execute` does for `/graphql`; the response as JSON and whether
/// full validation was skipped.
async fn run_raw(env: &SimEnv, query: &str, variables: Value) -> (Value, bool) {
    let request = async_graphql::Request::new(query)
        .variables(async_graphql::Variables::from_json(variables));
    let executed = devicegraph_graphql::execute(
        &env.schema,
        request,
        devicegraph_graphql::RequestContext::new(devicegraph_graphql::AccountScope::All),
    )
    .await;
    (
        serde_json::to_value(&executed.response).unwrap(),
        executed.validation_reused,
    )
}

/// The validated-operation fast path: only an exact repeat of an operation that ran
/// without error skips full validation, and it answers exactly as the full path.
#[tokio::test]
async fn only_an_exact_repeat_of_a_clean_operation_skips_full_validation() {
    let env = SimEnv::default().await;
    let imeis = env.sample_imeis(ACCOUNT);
    let vars = |imei: &str| json!({"a": ACCOUNT, "i": imei});

    let (first, reused) = run_raw(&env, FULL, vars(&imeis[0])).await;
    assert!(!reused, "a new operation is fully validated");
    assert!(first["errors"].is_null(), "{first}");
    let (second, reused) = run_raw(&env, FULL, vars(&imeis[0])).await;
    assert!(reused, "the exact repeat skips full validation");
    assert_eq!(second["data"], first["data"], "and answers the same");
    assert!(second["errors"].is_null());

    // Other variables, or another operation name, are another operation.
    let (_, reused) = run_raw(&env, FULL, vars(&imeis[1])).await;
    assert!(!reused, "other variables");
    let named = FULL.replacen("query(", "query Named(", 1);
    let (_, reused) = run_raw(&env, &named, vars(&imeis[0])).await;
    assert!(!reused, "another text");

    // Variables that fail validation are refused every time, never remembered.
    let bad = "361004961400807"; // wrong Luhn digit
    for _ in 0..2 {
        let (refused, reused) = run_raw(&env, FULL, vars(bad)).await;
        assert!(!reused);
        assert_eq!(codes(&refused), ["BAD_USER_INPUT"], "{refused}");
    }
    // An operation that validated but ran with an error (a resolver's refusal) is
    // not remembered.
    let last = "query($a: String!, $i: IMEI!, $n: Int!) { device(account: $a, imei: $i) { checkIns(last: $n) { result } } }";
    for _ in 0..2 {
        let (answer, reused) =
            run_raw(&env, last, json!({"a": ACCOUNT, "i": imeis[0], "n": -1})).await;
        assert!(!reused);
        assert_eq!(codes(&answer), ["BAD_USER_INPUT"], "{answer}");
    }
    // A document that does not validate stays refused on repeat.
    for _ in 0..2 {
        let (refused, reused) = run_raw(&env, "{ device { nope } }", json!({})).await;
        assert!(!reused);
        assert_eq!(codes(&refused), ["BAD_USER_INPUT"; 3], "{refused}");
    }
}

#[tokio::test]
async fn with_reuse_validation_off_every_operation_is_fully_validated() {
    let env = SimEnv::start(
        devicegraph_sim::SimConfig::default(),
        devicegraph_graphql::GraphqlConfig {
            reuse_validation: false,
            ..Default::default()
        },
        std::time::Duration::from_secs(10),
    )
    .await;
    let imei = env.sample_imeis(ACCOUNT)[0].clone();
    for _ in 0..3 {
        let (answer, reused) = run_raw(&env, FULL, json!({"a": ACCOUNT, "i": imei})).await;
        assert!(!reused);
        assert!(answer["errors"].is_null(), "{answer}");
    }
}

/// The README's figure: `devices` of 2,500 IMEIs costs exactly three details calls
/// (1,000 IMEIs per upstream request), counted at the simulator.
#[tokio::test]
async fn devices_of_2500_imeis_cost_three_details_calls() {
    let config = devicegraph_graphql::GraphqlConfig {
        documents: devicegraph_graphql::DocumentLimits {
            max_list_length: 2_500,
            ..devicegraph_graphql::DocumentLimits::default()
        },
        ..devicegraph_graphql::GraphqlConfig::default()
    };
    let env = SimEnv::start(
        devicegraph_sim::SimConfig::default(),
        config,
        std::time::Duration::from_secs(20),
    )
    .await;
    // The account's sample devices first, then distinct valid IMEIs it does not have.
    let mut imeis = env.sample_imeis(ACCOUNT);
    let mut n = 0u64;
    while imeis.len() < 2_500 {
        let body = format!("{:014}", 35_123_400_000_000 + n);
        let check = devicegraph_upstream::ids::luhn_check_digit(&body);
        let imei = format!("{body}{check}");
        if !imeis.contains(&imei) {
            imeis.push(imei);
        }
        n += 1;
    }
    let r = env
        .run(
            "query($a: String!, $i: [IMEI!]!) { devices(account: $a, imeis: $i) { imei firmware } }",
            json!({"a": ACCOUNT, "i": imeis}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    let devices = r["data"]["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2_500, "one entry per IMEI asked");
    assert!(devices[0]["firmware"].is_string(), "{:#}", devices[0]);
    assert_eq!(env.calls("device_details").await, 3);
}

/// A cold dashboard fires every upstream call as soon as its keys are known: the
/// histories its cards select are read alongside the details batch, not after it,
/// and not in waves. With the simulator holding each answer for 300 ms, all 11 calls
/// of five cards (1 details batch, 5 upgrade histories, 5 check-in histories) are in
/// flight together, and there are exactly 11.
#[tokio::test]
async fn a_cold_dashboard_reads_details_and_histories_at_once() {
    let env = SimEnv::default().await;
    let imeis: Vec<String> = env.sample_imeis(ACCOUNT).into_iter().take(5).collect();
    assert_eq!(imeis.len(), 5);
    env.reset().await;
    env.faults(json!({"latencyMs": 300})).await;
    let cards: String = imeis
        .iter()
        .enumerate()
        .map(|(i, imei)| {
            format!(
                r#"d{i}: device(account: "{ACCOUNT}", imei: "{imei}") {{ firmware upgradeHistory {{ status }} lastCheckIn {{ result }} }} "#
            )
        })
        .collect();
    let r = env.run(&format!("{{ {cards} }}"), json!({})).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    assert!(r["data"]["d4"]["firmware"].is_string(), "{r:#}");
    let stats = env.stats().await;
    let data_calls = env.calls("device_details").await
        + env.calls("upgrade_history").await
        + env.calls("check_in_history").await;
    assert_eq!(data_calls, 11, "{stats:#}");
    assert_eq!(env.calls("device_details").await, 1, "one batch: {stats:#}");
    assert_eq!(
        stats["peakConcurrency"].as_u64(),
        Some(11),
        "details and histories overlap: {stats:#}"
    );
}

/// Reading ahead never reads a device the cache knows does not exist: a repeated
/// card for an unknown IMEI makes no call once its absence is cached.
#[tokio::test]
async fn reading_ahead_skips_devices_known_to_be_absent() {
    let env = SimEnv::default().await;
    let unknown = "356938035643809";
    // First only the details: the cache learns the device does not exist.
    let details =
        format!(r#"{{ device(account: "{ACCOUNT}", imei: "{unknown}") {{ firmware }} }}"#);
    let r = env.run(&details, json!({})).await;
    assert!(r["data"]["device"].is_null(), "{r:#}");
    // Then a card that also selects its history: nothing is read ahead for it.
    env.reset().await;
    let query = format!(
        r#"{{ device(account: "{ACCOUNT}", imei: "{unknown}") {{ firmware upgradeHistory {{ status }} }} }}"#
    );
    let r = env.run(&query, json!({})).await;
    assert!(r["data"]["device"].is_null(), "{r:#}");
    assert_eq!(env.stats().await["totalCalls"].as_u64(), Some(0));
}
