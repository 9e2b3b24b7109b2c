//! Cost in upstream calls, estimated before execution, against the simulator: the
//! estimate refuses operations that would drain the upstream budget with 0 calls,
//! matches what a cold run really makes, drops to 0 once cached, and is charged to a
//! caller's budget. Also the document guard and campaign cursors' binding.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{ACCOUNT, SimEnv, codes};
use devicegraph_graphql::{AccountScope, RequestContext, UpstreamBudget, execute};
use devicegraph_upstream::ids::luhn_check_digit;
use serde_json::{Value, json};

const CARDS: &str = r#"query($a: String!, $i: [IMEI!]!) {
  devices(account: $a, imeis: $i) { imei firmware upgradeHistory { status } checkIns(last: 3) { result } }
}"#;

/// `n` well-formed IMEIs the simulator does not have (so nothing can be cached).
fn fresh_imeis(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let body = format!("99{:012}", 500_000 + i);
            format!("{body}{}", luhn_check_digit(&body))
        })
        .collect()
}

/// Runs with `extensions.cost` requested (and an optional budget).
async fn run_costed(
    env: &SimEnv,
    query: &str,
    variables: Value,
    budget: Option<Arc<dyn UpstreamBudget>>,
) -> Value {
    let request = async_graphql::Request::new(query)
        .variables(async_graphql::Variables::from_json(variables));
    let mut ctx = RequestContext::new(AccountScope::All);
    ctx.report_cost = true;
    ctx.budget = budget;
    let executed = execute(&env.schema, request, ctx).await;
    serde_json::to_value(&executed.response).unwrap()
}

async fn total_calls(env: &SimEnv) -> u64 {
    let stats = env.stats().await;
    stats["calls"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "token" && *k != "session_login")
        .map(|(_, v)| v.as_u64().unwrap_or(0))
        .sum()
}

/// Real IMEIs of the account, from a campaign page.
async fn real_imeis(env: &SimEnv, n: usize) -> Vec<String> {
    let (campaign, _) = env.campaign_over(ACCOUNT, n as u64);
    let r = env
        .run(
            r#"query($a: String!, $c: ID!, $f: Int) { campaign(account: $a, id: $c) { devices(first: $f) { edges { node { imei } } } } }"#,
            json!({"a": ACCOUNT, "c": campaign, "f": n}),
        )
        .await;
    r["data"]["campaign"]["devices"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["imei"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_operation_estimated_over_the_limit_is_refused_before_any_call() {
    let env = SimEnv::default().await;
    env.reset().await;
    // 1,000 uncached devices with both histories: 1 details + 2,000 history calls.
    let r = run_costed(
        &env,
        CARDS,
        json!({"a": ACCOUNT, "i": fresh_imeis(1000)}),
        None,
    )
    .await;
    assert_eq!(codes(&r), ["QUERY_TOO_COMPLEX"], "{r:#}");
    assert_eq!(r["data"], Value::Null);
    let cost = &r["errors"][0]["extensions"]["cost"];
    assert_eq!(cost["estimate"]["upstreamCalls"], 2001, "{cost:#}");
    assert_eq!(cost["estimate"]["deviceDetails"], 1);
    assert_eq!(cost["estimate"]["upgradeHistory"], 1000);
    assert_eq!(cost["maxUpstreamCalls"], 500);
    assert_eq!(total_calls(&env).await, 0, "refused with 0 upstream calls");
}

#[tokio::test]
async fn list_arguments_over_the_limit_are_bad_input_with_no_call() {
    let env = SimEnv::default().await;
    env.reset().await;
    let r = run_costed(
        &env,
        "query($a: String!, $i: [IMEI!]!) { devices(account: $a, imeis: $i) { imei } }",
        json!({"a": ACCOUNT, "i": fresh_imeis(1001)}),
        None,
    )
    .await;
    assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r:#}");
    let message = r["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("imeis has 1001 items"), "{message}");
    assert_eq!(total_calls(&env).await, 0);
}

#[tokio::test]
async fn the_estimate_of_a_cold_dashboard_is_what_it_costs_and_warm_it_costs_nothing() {
    let env = SimEnv::default().await;
    let imeis = real_imeis(&env, 100).await;
    assert_eq!(imeis.len(), 100);
    env.reset().await;
    let vars = json!({"a": ACCOUNT, "i": imeis});
    let cold = run_costed(&env, CARDS, vars.clone(), None).await;
    assert!(cold.get("errors").is_none(), "{cold:#}");
    let cost = &cold["extensions"]["cost"];
    // Details of 100 devices in one batch (the campaign page above did not load
    // details), then one call per device and history.
    assert_eq!(cost["estimate"]["upstreamCalls"], 201, "{cost:#}");
    assert_eq!(
        cost["upstreamCalls"], 201,
        "actual calls counted on this request"
    );
    assert_eq!(total_calls(&env).await, 201, "and seen by the simulator");

    let warm = run_costed(&env, CARDS, vars, None).await;
    assert_eq!(warm["extensions"]["cost"]["estimate"]["upstreamCalls"], 0);
    assert_eq!(warm["extensions"]["cost"]["upstreamCalls"], 0);
    assert_eq!(total_calls(&env).await, 201);
}

/// A budget that records charges and refuses past `limit`.
struct Allowance {
    limit: u64,
    spent: AtomicU64,
}

impl UpstreamBudget for Allowance {
    fn charge(&self, calls: u64) -> Result<(), Duration> {
        let spent = self.spent.load(Ordering::SeqCst);
        if spent + calls > self.limit {
            return Err(Duration::from_secs(7));
        }
        self.spent.fetch_add(calls, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn the_estimate_is_charged_to_the_callers_budget() {
    let env = SimEnv::default().await;
    let imeis = real_imeis(&env, 60).await;
    env.reset().await;
    let budget = Arc::new(Allowance {
        limit: 100,
        spent: AtomicU64::new(0),
    });
    let first = json!({"a": ACCOUNT, "i": imeis[..30]});
    let r = run_costed(&env, CARDS, first, Some(budget.clone())).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    assert_eq!(budget.spent.load(Ordering::SeqCst), 61);
    // The next 30 would need 61 more: over the allowance, refused before any call.
    let before = total_calls(&env).await;
    let second = json!({"a": ACCOUNT, "i": imeis[30..]});
    let r = run_costed(&env, CARDS, second, Some(budget.clone())).await;
    assert_eq!(codes(&r), ["RATE_LIMITED"], "{r:#}");
    assert_eq!(r["errors"][0]["extensions"]["retryAfter"], 7);
    assert_eq!(total_calls(&env).await, before);
    // Cached answers cost nothing and are not charged.
    let again = json!({"a": ACCOUNT, "i": imeis[..30]});
    let r = run_costed(&env, CARDS, again, Some(budget.clone())).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    assert_eq!(budget.spent.load(Ordering::SeqCst), 61);
}

#[tokio::test]
async fn a_filtered_campaign_page_scans_a_bounded_number_of_upstream_pages() {
    let sim = devicegraph_sim::SimConfig {
        devices: 200_000,
        ..devicegraph_sim::SimConfig::default()
    };
    let env = SimEnv::start(
        sim,
        devicegraph_graphql::GraphqlConfig::default(),
        Duration::from_secs(10),
    )
    .await;
    let (campaign, devices) = env.campaign_over(ACCOUNT, 12_000);
    env.reset().await;
    let query = r#"query($a: String!, $c: ID!, $after: String) { campaign(account: $a, id: $c) {
        devices(first: 5, status: "NoSuchStatus", after: $after) { edges { cursor } pageInfo { hasNextPage endCursor } } } }"#;
    let r = run_costed(&env, query, json!({"a": ACCOUNT, "c": campaign}), None).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    let conn = &r["data"]["campaign"]["devices"];
    assert_eq!(conn["edges"], json!([]));
    assert_eq!(
        conn["pageInfo"]["hasNextPage"], true,
        "{devices} devices, not all scanned"
    );
    let pages = env.calls("campaign_devices").await;
    assert_eq!(
        pages, 11,
        "one page for first: 5 plus ten filter-scan pages"
    );
    assert_eq!(r["extensions"]["cost"]["estimate"]["campaignPages"], 11);
    // The end cursor continues the scan after the last device looked at.
    let after = conn["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    let r = run_costed(
        &env,
        query,
        json!({"a": ACCOUNT, "c": campaign, "after": after}),
        None,
    )
    .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    assert_eq!(
        env.calls("campaign_devices").await,
        21,
        "ten new pages, the anchor cached"
    );
}

#[tokio::test]
async fn a_cursor_from_another_campaign_is_bad_input() {
    let env = SimEnv::default().await;
    let catalog = env.sim.catalog();
    let mut ours = catalog.campaigns.iter().filter(|c| c.account == ACCOUNT);
    let (a, b) = (
        ours.next().unwrap().id.clone(),
        ours.next().unwrap().id.clone(),
    );
    let query = r#"query($a: String!, $c: ID!, $after: String) { campaign(account: $a, id: $c) {
        devices(first: 2, after: $after) { pageInfo { endCursor } } } }"#;
    let r = env.run(query, json!({"a": ACCOUNT, "c": a})).await;
    let cursor = r["data"]["campaign"]["devices"]["pageInfo"]["endCursor"].clone();
    assert!(cursor.is_string(), "{r:#}");
    let r = env
        .run(query, json!({"a": ACCOUNT, "c": b, "after": cursor}))
        .await;
    assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{r:#}");
    let message = r["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("another campaign or account"), "{message}");
}

#[tokio::test]
async fn a_fragment_bomb_is_refused_at_once_with_no_call() {
    let env = SimEnv::default().await;
    env.reset().await;
    // 30 fragments, each spreading the previous twice: 2^30 selections once spread.
    let mut query = String::from("query { ...F30 } fragment F0 on Query { __typename }");
    for i in 1..=30 {
        query.push_str(&format!(
            " fragment F{i} on Query {{ ...F{} ...F{} }}",
            i - 1,
            i - 1
        ));
    }
    assert!(query.len() < 1_500);
    // A hang guard, not a speed target (benches/security.sh measures the time): the
    // unguarded walk ran for minutes.
    let r = tokio::time::timeout(Duration::from_secs(60), env.run(&query, json!({})))
        .await
        .expect("refused without walking the expansion");
    assert_eq!(codes(&r), ["QUERY_TOO_COMPLEX"], "{r:#}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("fields")
    );
    assert_eq!(total_calls(&env).await, 0);
}

#[tokio::test]
async fn lists_multiply_complexity_so_aliases_cannot_amplify_an_answer() {
    let env = SimEnv::default().await;
    let imei = env.sample_imeis(ACCOUNT)[0].clone();
    // Cache the device: the copies below would cost nothing upstream.
    let warm = env
        .run(
            "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { imei } }",
            json!({"a": ACCOUNT, "i": imei}),
        )
        .await;
    assert!(warm.get("errors").is_none(), "{warm:#}");
    env.reset().await;
    // 30 aliases of 1,000 copies: 30,000 devices in one answer.
    let aliases: String = (0..30)
        .map(|n| format!("d{n}: devices(account: $a, imeis: $i) {{ imei firmware }} "))
        .collect();
    let query = format!("query($a: String!, $i: [IMEI!]!) {{ {aliases} }}");
    let copies = vec![imei; 1000];
    let r = env.run(&query, json!({"a": ACCOUNT, "i": copies})).await;
    assert_eq!(codes(&r), ["QUERY_TOO_COMPLEX"], "{r:#}");
    let message = r["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("complexity"), "{message}");
    assert_eq!(total_calls(&env).await, 0);
}

/// A campaign costs its first report page when the resolver reads it to know the
/// campaign exists (no page of devices selected) or for `totalDevices`, and a first
/// page of devices reads that same page: each cold estimate is what the run makes.
#[tokio::test]
async fn a_campaigns_existence_check_is_estimated_as_it_costs() {
    let selections = [
        ("{ id }", 1),
        ("{ id totalDevices }", 1),
        ("{ devices(first: 5) { edges { cursor } } }", 1),
        ("{ totalDevices devices(first: 5) { edges { cursor } } }", 1),
    ];
    for (selection, calls) in selections {
        // A cold cache each time.
        let env = SimEnv::default().await;
        let (campaign, _) = env.campaign_over(ACCOUNT, 2_500);
        let query =
            format!("query($a: String!, $c: ID!) {{ campaign(account: $a, id: $c) {selection} }}");
        let r = run_costed(&env, &query, json!({"a": ACCOUNT, "c": campaign}), None).await;
        assert!(r.get("errors").is_none(), "{selection}: {r:#}");
        let cost = &r["extensions"]["cost"];
        assert_eq!(
            cost["estimate"]["campaignPages"], calls,
            "{selection}: {cost:#}"
        );
        assert_eq!(env.calls("campaign_devices").await, calls, "{selection}");
    }
}
