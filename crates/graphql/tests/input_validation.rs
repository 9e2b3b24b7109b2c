//! Requests refused before any upstream call: the upstream here is unroutable and a
//! counting gate proves no request was even attempted.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use common::{codes, offline, run, run_as};
use devicegraph_graphql::{AccountScope, GraphqlConfig};
use serde_json::{Value, json};

const GOOD_IMEI: &str = "490154203237518";
const ACCOUNT: &str = "0000123456-00001";
const CAMPAIGN: &str = "f841e14a-7c9f-11ec-b56c-76bbdf26f3b9";

/// Runs `query`, expects exactly one error with `code`, no upstream attempt, and
/// returns the error message.
async fn refused(query: &str, variables: Value, code: &str) -> String {
    refused_as(query, variables, code, AccountScope::All).await
}

async fn refused_as(query: &str, variables: Value, code: &str, scope: AccountScope) -> String {
    let (schema, gate) = offline(GraphqlConfig::default());
    let response = run_as(&schema, query, variables, scope).await;
    assert_eq!(codes(&response), [code], "{response:#}");
    assert_eq!(
        gate.0.load(Ordering::SeqCst),
        0,
        "an upstream call was attempted"
    );
    // An error is no cache hit; a request error (the operation did not start) has no
    // cache status at all.
    assert_ne!(response["extensions"]["cacheStatus"], "HIT", "{response:#}");
    response["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn bad_imeis_are_refused_naming_the_value() {
    // Wrong Luhn digit, as a literal and as a variable.
    let msg = refused(
        r#"{ device(account: "0000123456-00001", imei: "490154203237519") { firmware } }"#,
        json!({}),
        "BAD_USER_INPUT",
    )
    .await;
    assert!(msg.contains("490154203237519"), "{msg}");
    let msg = refused(
        "query($i: IMEI!) { device(account: \"0000123456-00001\", imei: $i) { firmware } }",
        json!({"i": "12345"}),
        "BAD_USER_INPUT",
    )
    .await;
    assert!(msg.contains("12345"), "{msg}");
    // One bad IMEI in a list refuses the whole field before any call.
    let msg = refused(
        "query($l: [IMEI!]!) { devices(account: \"0000123456-00001\", imeis: $l) { firmware } }",
        json!({"l": [GOOD_IMEI, "49015420323751x"]}),
        "BAD_USER_INPUT",
    )
    .await;
    assert!(msg.contains("49015420323751x"), "{msg}");
    // Not a string at all.
    refused(
        "query($i: IMEI!) { device(account: \"0000123456-00001\", imei: $i) { firmware } }",
        json!({"i": 490154203237518u64}),
        "BAD_USER_INPUT",
    )
    .await;
}

#[tokio::test]
async fn bad_account_and_campaign_ids_are_refused() {
    let msg = refused(
        &format!(r#"{{ device(account: "../etc", imei: "{GOOD_IMEI}") {{ firmware }} }}"#),
        json!({}),
        "BAD_USER_INPUT",
    )
    .await;
    assert!(msg.contains("../etc"), "{msg}");
    refused(
        r#"{ campaign(account: "0000123456-00001", id: "a/b") { id totalDevices } }"#,
        json!({}),
        "BAD_USER_INPUT",
    )
    .await;
    refused(
        &format!(r#"{{ campaign(account: "", id: "{CAMPAIGN}") {{ id }} }}"#),
        json!({}),
        "BAD_USER_INPUT",
    )
    .await;
    // The issue's examples: an account name is digits, a dash and digits; a campaign
    // id is a UUID.
    let msg = refused(
        &format!(r#"{{ device(account: "0", imei: "{GOOD_IMEI}") {{ firmware }} }}"#),
        json!({}),
        "BAD_USER_INPUT",
    )
    .await;
    assert!(msg.contains(r#""0" is not an account name"#), "{msg}");
    let msg = refused(
        r#"{ campaign(account: "0000123456-00001", id: "nope") { id } }"#,
        json!({}),
        "BAD_USER_INPUT",
    )
    .await;
    assert!(msg.contains(r#""nope" is not a campaign id"#), "{msg}");
    refused(
        &format!(r#"{{ devices(account: "0", imeis: ["{GOOD_IMEI}"]) {{ firmware }} }}"#),
        json!({}),
        "BAD_USER_INPUT",
    )
    .await;
}

#[tokio::test]
async fn campaign_page_arguments_are_checked() {
    let q = format!(
        "query($f: Int, $a: String) {{ campaign(account: \"0000123456-00001\", id: \"{CAMPAIGN}\") \
         {{ devices(first: $f, after: $a) {{ totalCount }} }} }}"
    );
    let q = q.as_str();
    let msg = refused(q, json!({"f": 1001}), "BAD_USER_INPUT").await;
    assert!(msg.contains("1001"), "{msg}");
    refused(q, json!({"f": -1}), "BAD_USER_INPUT").await;
    let msg = refused(q, json!({"a": "not-a-cursor"}), "BAD_USER_INPUT").await;
    assert!(msg.contains("not-a-cursor"), "{msg}");
}

#[tokio::test]
async fn provisioning_window_and_identifiers_are_checked() {
    let q = "query($k: DeviceIdKind!, $id: String!, $e: DateTime!, $l: DateTime!) { \
             provisioningHistory(device: {kind: $k, id: $id}, earliest: $e, latest: $l) { eventType } }";
    let vars = |k: &str, id: &str, e: &str, l: &str| json!({"k": k, "id": id, "e": e, "l": l});
    let msg = refused(
        q,
        vars(
            "MDN",
            "5086303371",
            "2024-02-01T00:00:00Z",
            "2024-01-01T00:00:00Z",
        ),
        "BAD_USER_INPUT",
    )
    .await;
    assert!(msg.contains("earliest"), "{msg}");
    // Equal bounds are not "before".
    refused(
        q,
        vars(
            "MDN",
            "5086303371",
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00Z",
        ),
        "BAD_USER_INPUT",
    )
    .await;
    for (kind, id) in [
        ("MDN", "15086303371"),
        ("ESN", "1234567890"),
        ("MEID", "A10000009296G2"),
        ("ICCID", "891413907808007842591"),
        ("IMEI", "12345678901234567"),
        ("MSISDN", "1508630337"),
    ] {
        let msg = refused(
            q,
            vars(kind, id, "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"),
            "BAD_USER_INPUT",
        )
        .await;
        assert!(msg.contains(id), "{kind} {id}: {msg}");
    }
    // Not RFC 3339.
    refused(
        q,
        vars("MDN", "5086303371", "yesterday", "2024-02-01T00:00:00Z"),
        "BAD_USER_INPUT",
    )
    .await;
    // Device-level provisioning checks the window too (the device itself would need
    // an upstream call, so this is covered against the simulator).
}

#[tokio::test]
async fn accounts_outside_the_scope_are_forbidden() {
    let only = || AccountScope::Only(HashSet::from(["0000999999-00001".parse().unwrap()]));
    refused_as(
        &format!(r#"{{ device(account: "{ACCOUNT}", imei: "{GOOD_IMEI}") {{ firmware }} }}"#),
        json!({}),
        "FORBIDDEN",
        only(),
    )
    .await;
    refused_as(
        &format!(r#"{{ devices(account: "{ACCOUNT}", imeis: ["{GOOD_IMEI}"]) {{ firmware }} }}"#),
        json!({}),
        "FORBIDDEN",
        only(),
    )
    .await;
    refused_as(
        &format!(r#"{{ campaign(account: "{ACCOUNT}", id: "{CAMPAIGN}") {{ totalDevices }} }}"#),
        json!({}),
        "FORBIDDEN",
        only(),
    )
    .await;
    // Provisioning by identifier is not tied to an account: needs every account.
    refused_as(
        r#"{ provisioningHistory(device: {kind: MDN, id: "5086303371"},
             earliest: "2024-01-01T00:00:00Z", latest: "2024-02-01T00:00:00Z") { eventType } }"#,
        json!({}),
        "FORBIDDEN",
        only(),
    )
    .await;
}

#[tokio::test]
async fn syntax_and_validation_errors_are_bad_user_input() {
    refused("{ device(", json!({}), "BAD_USER_INPUT").await;
    refused("{ nosuchfield }", json!({}), "BAD_USER_INPUT").await;
    refused(
        &format!(r#"{{ device(account: "{ACCOUNT}", imei: "{GOOD_IMEI}") {{ nosuch }} }}"#),
        json!({}),
        "BAD_USER_INPUT",
    )
    .await;
    // A required argument missing.
    refused(
        r#"{ device(account: "x") { firmware } }"#,
        json!({}),
        "BAD_USER_INPUT",
    )
    .await;
    // No mutations nor subscriptions here: one error each, saying so (`refused`
    // checks there is exactly one).
    for (operation, says) in [
        ("mutation { anything }", "no mutations"),
        (
            "mutation Rename($x: String) { rename(to: $x) }",
            "no mutations",
        ),
        ("subscription { anything }", "no subscriptions"),
    ] {
        let msg = refused(operation, json!({}), "BAD_USER_INPUT").await;
        assert!(msg.contains(says), "{operation}: {msg}");
    }
}

#[tokio::test]
async fn too_deep_or_too_complex_queries_are_refused() {
    let (schema, gate) = offline(GraphqlConfig {
        max_depth: 3,
        max_complexity: 10,
        ..GraphqlConfig::default()
    });
    let too_deep = format!(
        r#"{{ campaign(account: "{ACCOUNT}", id: "{CAMPAIGN}") {{ devices {{ edges {{ node {{ imei }} }} }} }} }}"#
    );
    let response = run(&schema, &too_deep, json!({})).await;
    assert_eq!(codes(&response), ["QUERY_TOO_COMPLEX"], "{response:#}");
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("depth")
    );

    let many = (0..12)
        .map(|i| {
            format!(r#"d{i}: device(account: "{ACCOUNT}", imei: "{GOOD_IMEI}") {{ firmware }}"#)
        })
        .collect::<Vec<_>>()
        .join(" ");
    let response = run(&schema, &format!("{{ {many} }}"), json!({})).await;
    assert_eq!(codes(&response), ["QUERY_TOO_COMPLEX"], "{response:#}");
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("complexity")
    );
    assert_eq!(gate.0.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn introspection_follows_the_config() {
    let query = "{ __schema { queryType { name } } }";
    let (on, _) = offline(GraphqlConfig::default());
    let response = run(&on, query, json!({})).await;
    assert_eq!(response["data"]["__schema"]["queryType"]["name"], "Query");

    // GraphiQL's introspection nests deeper than the data-query depth limit.
    let (limited, _) = offline(GraphqlConfig {
        max_depth: 3,
        ..GraphqlConfig::default()
    });
    let deep =
        "{ __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }";
    let response = run(&limited, deep, json!({})).await;
    assert!(response.get("errors").is_none(), "{response:#}");

    let (off, gate) = offline(GraphqlConfig {
        introspection: false,
        ..GraphqlConfig::default()
    });
    let response = run(&off, query, json!({})).await;
    // async-graphql alone answers disabled introspection with a bare null; we say why.
    assert_eq!(response["data"], Value::Null, "{response:#}");
    assert_eq!(codes(&response), ["BAD_USER_INPUT"], "{response:#}");
    let message = response["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("introspection is disabled"), "{message}");
    // __typename is not introspection and still answers.
    let response = run(&off, "{ __typename }", json!({})).await;
    assert_eq!(response["data"]["__typename"], "Query", "{response:#}");
    assert_eq!(gate.0.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn every_error_carries_a_code() {
    let (schema, _) = offline(GraphqlConfig::default());
    // An operation name that does not exist: refused by async-graphql itself.
    let request = async_graphql::Request::new("query A { __typename }").operation_name("B");
    let executed = devicegraph_graphql::execute(
        &schema,
        request,
        devicegraph_graphql::RequestContext::new(AccountScope::All),
    )
    .await;
    let json = serde_json::to_value(&executed.response).unwrap();
    assert_eq!(codes(&json), ["BAD_USER_INPUT"], "{json:#}");
}

#[tokio::test]
async fn repeated_documents_are_checked_every_time() {
    // Parsed documents are cached per schema: a repeat must still meet the limits,
    // the input checks and the syntax check, exactly like the first sending.
    let (schema, gate) = offline(GraphqlConfig {
        max_depth: 3,
        ..GraphqlConfig::default()
    });
    let too_deep = format!(
        r#"{{ campaign(account: "{ACCOUNT}", id: "{CAMPAIGN}") {{ devices {{ edges {{ node {{ imei }} }} }} }} }}"#
    );
    let bad_imei =
        "query($i: IMEI!) { device(account: \"0000123456-00001\", imei: $i) { firmware } }";
    for _ in 0..3 {
        let response = run(&schema, &too_deep, json!({})).await;
        assert_eq!(codes(&response), ["QUERY_TOO_COMPLEX"], "{response:#}");
        let response = run(&schema, "{ device(", json!({})).await;
        assert_eq!(codes(&response), ["BAD_USER_INPUT"], "{response:#}");
        let response = run(&schema, bad_imei, json!({"i": "12345"})).await;
        assert_eq!(codes(&response), ["BAD_USER_INPUT"], "{response:#}");
    }
    assert_eq!(gate.0.load(Ordering::SeqCst), 0);
}
