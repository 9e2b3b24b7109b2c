//! `account(name).devices` against the simulator over HTTP: every device exactly once
//! through client pages of any size, what each walk costs upstream (counted at the
//! simulator), cursors, each filter against the simulator's own data, the scan bound,
//! and the account scope.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ACCOUNT, SimEnv, codes, credentials, run_as};
use devicegraph_cache::{ManualClock, Store, StoreConfig};
use devicegraph_graphql::{AccountScope, GraphqlConfig, RequestContext, build_schema, execute};
use devicegraph_sim::SimConfig;
use devicegraph_upstream::model::DeviceDetails;
use devicegraph_upstream::{Client, ClientConfig, Protocol};
use futures::TryStreamExt as _;
use serde_json::{Value, json};

const PAGE: &str = r#"
query($a: String!, $f: Int, $after: String, $p: String, $s: String, $mk: String,
      $md: String, $fw: String, $fe: Boolean) {
  account(name: $a) {
    name
    devices(first: $f, after: $after, protocol: $p, status: $s, make: $mk, model: $md,
            firmware: $fw, fotaEligible: $fe) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { imei account make model firmware status fotaEligible protocol } }
    }
  }
}"#;

/// The filters of one walk (GraphQL variable names).
#[derive(Default, Clone)]
struct Filters(serde_json::Map<String, Value>);

impl Filters {
    fn with(mut self, name: &str, value: Value) -> Self {
        self.0.insert(name.to_owned(), value);
        self
    }
}

async fn page(env: &SimEnv, first: i64, after: Option<&str>, filters: &Filters) -> Value {
    let mut vars = filters.0.clone();
    vars.insert("a".into(), json!(ACCOUNT));
    vars.insert("f".into(), json!(first));
    vars.insert("after".into(), json!(after));
    let r = env.run(PAGE, Value::Object(vars)).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    assert_eq!(r["data"]["account"]["name"], ACCOUNT);
    r["data"]["account"]["devices"].clone()
}

/// Every node of the account's list, following `endCursor` with page size `first`;
/// also the number of client pages.
async fn walk(env: &SimEnv, first: i64, filters: &Filters) -> (Vec<Value>, usize) {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let conn = page(env, first, after.as_deref(), filters).await;
        pages += 1;
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], after.is_some());
        let edges = conn["edges"].as_array().unwrap();
        assert!(edges.len() <= first as usize);
        for e in edges {
            assert_eq!(e["node"]["account"], ACCOUNT);
            out.push(e["node"].clone());
        }
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return (out, pages);
        }
        after = Some(conn["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
        assert!(pages < 10_000, "the walk does not end");
    }
}

fn imeis(nodes: &[Value]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| n["imei"].as_str().unwrap().to_owned())
        .collect()
}

/// The simulator's own list (read with a plain client, before the counts start).
async fn truth(env: &SimEnv, protocol: Option<&str>) -> Vec<DeviceDetails> {
    let config = ClientConfig::new(env.sim.base_url().parse().unwrap(), credentials());
    let client = Client::new(config).unwrap();
    let protocol = protocol.map(|p| p.parse::<Protocol>().unwrap());
    client
        .account_devices(ACCOUNT.parse().unwrap(), protocol)
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn walking_in_pages_of_700_yields_every_device_once_in_order_then_costs_nothing() {
    let env = SimEnv::default().await;
    let total = env.sim.catalog().account_devices[ACCOUNT];
    let expected: Vec<String> = truth(&env, None)
        .await
        .into_iter()
        .map(|d| d.device_id)
        .collect();
    assert_eq!(expected.len() as u64, total);
    env.reset().await;

    let (nodes, pages) = walk(&env, 700, &Filters::default()).await;
    assert_eq!(imeis(&nodes), expected, "every device once, ascending");
    assert_eq!(pages as u64, total.div_ceil(700));
    let stats = env.stats().await;
    let upstream_pages = total.div_ceil(1_000);
    eprintln!(
        "{total} devices in pages of 700 ({pages} client pages), cold: {stats}",
        stats = stats["calls"]
    );
    assert_eq!(stats["calls"]["account_devices"], upstream_pages, "{stats}");
    assert_eq!(
        stats["calls"]["device_details"], 0,
        "the pages carry the details"
    );
    assert_eq!(stats["calls"]["upgrade_history"], 0);
    assert_eq!(stats["calls"]["check_in_history"], 0);

    env.reset().await;
    let (again, _) = walk(&env, 700, &Filters::default()).await;
    assert_eq!(again, nodes);
    let stats = env.stats().await;
    assert_eq!(stats["totalCalls"], 0, "a warm walk costs nothing: {stats}");

    // The nodes are the devices' own details: a `device` read of one is a cache hit.
    let one = &nodes[4_321 % nodes.len()];
    let r = env
        .run(
            "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { imei firmware status make } }",
            json!({"a": ACCOUNT, "i": one["imei"]}),
        )
        .await;
    assert_eq!(r["extensions"]["cacheStatus"], "HIT", "{r:#}");
    assert_eq!(r["data"]["device"]["firmware"], one["firmware"]);
    assert_eq!(env.stats().await["totalCalls"], 0);
}

#[tokio::test]
async fn cursors_survive_another_page_size_and_forged_ones_are_refused() {
    let env = SimEnv::default().await;
    let (all, _) = walk(&env, 1_000, &Filters::default()).await;
    let all = imeis(&all);

    // 300, then 1,000 from its end cursor, then 7: the same list.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for first in [300, 1_000, 7, 999, 1] {
        let conn = page(&env, first, after.as_deref(), &Filters::default()).await;
        seen.extend(imeis(
            &conn["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone())
                .collect::<Vec<_>>(),
        ));
        after = Some(conn["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 300 + 1_000 + 7 + 999 + 1);
    assert_eq!(seen[..], all[..seen.len()]);

    // An edge's cursor continues right after it.
    let conn = page(&env, 5, None, &Filters::default()).await;
    let third = conn["edges"][2]["cursor"].as_str().unwrap();
    let next = page(&env, 1, Some(third), &Filters::default()).await;
    assert_eq!(next["edges"][0]["node"]["imei"], all[3].as_str());

    env.reset().await;
    let campaign_cursor = {
        let (campaign, _) = env.campaign_over(ACCOUNT, 10);
        let r = env
            .run(
                "query($a: String!, $c: ID!) { campaign(account: $a, id: $c) { devices(first: 1) { pageInfo { endCursor } } } }",
                json!({"a": ACCOUNT, "c": campaign}),
            )
            .await;
        r["data"]["campaign"]["devices"]["pageInfo"]["endCursor"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let calls_before = env.stats().await["totalCalls"].as_u64().unwrap();
    let huge = "A".repeat(100_000);
    for forged in [
        "djI6Zm9yZ2Vk",
        "not a cursor",
        campaign_cursor.as_str(),
        huge.as_str(),
    ] {
        let r = env
            .run(PAGE, json!({"a": ACCOUNT, "f": 10, "after": forged}))
            .await;
        assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{forged:.40}: {r:#}");
        assert!(r["errors"][0]["message"].as_str().unwrap().len() < 400);
    }
    // Refused before any upstream call.
    assert_eq!(
        env.stats().await["totalCalls"].as_u64().unwrap(),
        calls_before
    );

    for (vars, what) in [
        (json!({"a": ACCOUNT, "f": 1_001}), "first over the maximum"),
        (json!({"a": ACCOUNT, "f": -1}), "negative first"),
        (json!({"a": ACCOUNT, "p": "LW M2M"}), "malformed protocol"),
        (json!({"a": "0000 123", "f": 1}), "malformed account"),
    ] {
        let r = env.run(PAGE, vars).await;
        assert_eq!(codes(&r), ["BAD_USER_INPUT"], "{what}: {r:#}");
    }
}

/// Every filter against the simulator's own data: walked in pages of 250, the
/// filtered list is exactly the simulator's devices that match.
#[tokio::test]
async fn each_filter_keeps_exactly_the_matching_devices() {
    let env = SimEnv::default().await;
    let all = truth(&env, None).await;
    let ids = |keep: &dyn Fn(&DeviceDetails) -> bool| -> Vec<String> {
        all.iter()
            .filter(|d| keep(d))
            .map(|d| d.device_id.clone())
            .collect()
    };
    let firmware = all[17].firmware.clone().unwrap();
    let cases: Vec<(Filters, Vec<String>)> = vec![
        (
            Filters::default().with("s", json!("Inactive")),
            ids(&|d| d.status.as_deref() == Some("Inactive")),
        ),
        (
            Filters::default().with("mk", json!("Generic")),
            ids(&|d| d.make.as_deref() == Some("Generic")),
        ),
        (
            Filters::default().with("md", json!("NRF9160")),
            ids(&|d| d.model.as_deref() == Some("NRF9160")),
        ),
        (
            Filters::default().with("fw", json!(firmware)),
            ids(&|d| d.firmware.as_deref() == Some(firmware.as_str())),
        ),
        (
            Filters::default().with("fe", json!(false)),
            ids(&|d| d.fota_eligible == Some(false)),
        ),
        (
            Filters::default().with("p", json!("http")),
            ids(&|d| d.protocol.as_deref() == Some("HTTP")),
        ),
        (
            Filters::default()
                .with("p", json!("LWM2M"))
                .with("s", json!("Active"))
                .with("fe", json!(true)),
            ids(&|d| {
                d.protocol.as_deref() == Some("LWM2M")
                    && d.status.as_deref() == Some("Active")
                    && d.fota_eligible == Some(true)
            }),
        ),
        (Filters::default().with("s", json!("active")), Vec::new()),
    ];
    for (filters, expected) in cases {
        let (nodes, _) = walk(&env, 250, &filters).await;
        let label = Value::Object(filters.0.clone());
        assert_eq!(imeis(&nodes), expected, "{label}");
        eprintln!(
            "filter {label}: {} of {} devices",
            expected.len(),
            all.len()
        );
        for node in &nodes {
            for (var, field) in [
                ("s", "status"),
                ("mk", "make"),
                ("md", "model"),
                ("fw", "firmware"),
                ("fe", "fotaEligible"),
            ] {
                if let Some(want) = filters.0.get(var) {
                    assert_eq!(&node[field], want, "{label}: {node}");
                }
            }
        }
    }
    // Filters read cached pages and details only: after the first walk, nothing.
    env.reset().await;
    walk(&env, 100, &Filters::default().with("mk", json!("Generic"))).await;
    assert_eq!(env.stats().await["totalCalls"], 0);
}

#[tokio::test]
async fn a_filter_matching_nothing_scans_a_bounded_number_of_pages_per_request() {
    let env = SimEnv::start(
        SimConfig {
            account_page_size: 100,
            ..SimConfig::default()
        },
        GraphqlConfig::default(),
        Duration::from_secs(10),
    )
    .await;
    let total = env.sim.catalog().account_devices[ACCOUNT];
    let upstream_pages = total.div_ceil(100);
    assert!(upstream_pages > 30, "{upstream_pages}");
    env.reset().await;
    let nothing = Filters::default().with("s", json!("NoSuchStatus"));
    let first = page(&env, 10, None, &nothing).await;
    assert_eq!(first["edges"], json!([]));
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let scanned = env.calls("account_devices").await;
    // ceil(10 / 1,000) + 10: the bound the cost estimate also counts.
    assert_eq!(scanned, 11);
    // Continuing from the end cursor goes on where the scan stopped, to the end.
    let (nodes, requests) = walk(&env, 10, &nothing).await;
    assert!(nodes.is_empty());
    let calls = env.calls("account_devices").await;
    eprintln!(
        "no-match filter over {upstream_pages} upstream pages: {requests} requests, {calls} page calls"
    );
    assert_eq!(requests as u64, upstream_pages.div_ceil(11));
    // The walk re-read the first 11 pages from the cache only.
    assert_eq!(calls, upstream_pages);
    assert_eq!(env.calls("device_details").await, 0);
}

#[tokio::test]
async fn expired_details_of_a_cached_page_cost_one_batch_per_page() {
    let sim = devicegraph_sim::spawn_on(SimConfig::default(), "127.0.0.1:0")
        .await
        .unwrap();
    let mut config = StoreConfig::default();
    config.ttl.set("device_details", Duration::from_secs(60));
    config.ttl.set("account_devices", Duration::from_secs(600));
    let clock = Arc::new(ManualClock::new());
    let mut client_config = ClientConfig::new(sim.base_url().parse().unwrap(), credentials());
    client_config.max_attempts = 1;
    let store = Store::with_clock(Client::new(client_config).unwrap(), config, clock.clone());
    let schema = build_schema(store, GraphqlConfig::default());
    let http = reqwest::Client::new();
    let calls = |endpoint: &'static str| {
        let (http, url) = (http.clone(), format!("{}/_sim/stats", sim.root_url()));
        async move {
            let stats: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            stats["calls"][endpoint].as_u64().unwrap_or(0)
        }
    };
    let query = "query($a: String!) { account(name: $a) { devices(first: 1000) { edges { node { imei firmware } } } } }";
    let vars = json!({"a": ACCOUNT});
    let cold = common::run(&schema, query, vars.clone()).await;
    assert!(cold.get("errors").is_none(), "{cold:#}");
    assert_eq!(
        (
            calls("account_devices").await,
            calls("device_details").await
        ),
        (1, 0)
    );
    // Past the details' TTL and stale-while-revalidate window, within the page's.
    clock.advance(Duration::from_secs(120));
    let warm_page = common::run(&schema, query, vars.clone()).await;
    assert_eq!(warm_page["data"], cold["data"]);
    assert_eq!(
        (
            calls("account_devices").await,
            calls("device_details").await
        ),
        (1, 1),
        "one details batch for the page's 1,000 devices"
    );
    let filtered = "query($a: String!) { account(name: $a) { devices(first: 5, status: \"Inactive\") { edges { node { imei } } } } }";
    let r = common::run(&schema, filtered, vars).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    assert_eq!(calls("device_details").await, 1, "all cached again");
}

#[tokio::test]
async fn another_account_than_the_callers_is_forbidden_without_a_call() {
    let env = SimEnv::default().await;
    let catalog = env.sim.catalog();
    let other = catalog.accounts[1].clone();
    env.reset().await;
    let scope = AccountScope::Only([other.parse().unwrap()].into_iter().collect());
    let r = run_as(
        &env.schema,
        PAGE,
        json!({"a": ACCOUNT, "f": 10}),
        scope.clone(),
    )
    .await;
    assert_eq!(codes(&r), ["FORBIDDEN"], "{r:#}");
    assert_eq!(r["data"]["account"], Value::Null);
    assert_eq!(env.stats().await["totalCalls"], 0);
    // The key's own account reads.
    let r = run_as(
        &env.schema,
        "query($a: String!) { account(name: $a) { devices(first: 3) { edges { node { imei account } } } } }",
        json!({"a": other}),
        scope,
    )
    .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    assert_eq!(
        r["data"]["account"]["devices"]["edges"][0]["node"]["account"],
        other.as_str()
    );
}

#[tokio::test]
async fn histories_of_a_page_are_read_together_and_unknown_accounts_fail_their_field() {
    let env = SimEnv::default().await;
    env.reset().await;
    let r = env
        .run(
            "query($a: String!) { account(name: $a) { devices(first: 5) { edges { node { imei upgradeHistory { status } lastCheckIn { result } } } } } }",
            json!({"a": ACCOUNT}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    let stats = env.stats().await;
    assert_eq!(stats["calls"]["account_devices"], 1);
    assert_eq!(stats["calls"]["upgrade_history"], 5);
    assert_eq!(stats["calls"]["check_in_history"], 5);
    assert_eq!(stats["calls"]["device_details"], 0);

    let r = env
        .run(
            "query { account(name: \"0000999999-00009\") { devices { edges { cursor } } } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["account"], Value::Null, "{r:#}");
    assert_eq!(
        r["errors"][0]["extensions"]["upstream"]["errorCode"], "REQUEST_FAILED.Account.NotFound",
        "{r:#}"
    );
}

/// Runs with `extensions.cost` requested.
async fn run_costed(env: &SimEnv, query: &str, variables: Value) -> Value {
    let request = async_graphql::Request::new(query)
        .variables(async_graphql::Variables::from_json(variables));
    let mut ctx = RequestContext::new(AccountScope::All);
    ctx.report_cost = true;
    let executed = execute(&env.schema, request, ctx).await;
    serde_json::to_value(&executed.response).unwrap()
}

#[tokio::test]
async fn the_estimate_counts_the_pages_a_walk_will_read_and_nothing_once_cached() {
    let env = SimEnv::default().await;
    env.reset().await;
    let query = "query($a: String!, $f: Int, $s: String, $after: String) { account(name: $a) { devices(first: $f, status: $s, after: $after) { edges { node { imei firmware } } pageInfo { endCursor } } } }";
    let cold = run_costed(&env, query, json!({"a": ACCOUNT, "f": 1_000})).await;
    assert!(cold.get("errors").is_none(), "{cold:#}");
    let estimate = &cold["extensions"]["cost"]["estimate"];
    assert_eq!(estimate["accountPages"], 1, "{estimate}");
    assert_eq!(estimate["deviceDetails"], 0, "the page carries the details");
    assert_eq!(estimate["upstreamCalls"], 1);
    assert_eq!(env.calls("account_devices").await, 1);
    assert_eq!(env.calls("device_details").await, 0);

    // From the end of the cached first page, the next 1,000 need one more page.
    let after = cold["data"]["account"]["devices"]["pageInfo"]["endCursor"].clone();
    let vars = json!({"a": ACCOUNT, "f": 1_000, "after": after});
    let more = run_costed(&env, query, vars.clone()).await;
    let estimate = &more["extensions"]["cost"]["estimate"];
    assert_eq!(estimate["accountPages"], 1, "{more:#}");
    assert_eq!(estimate["deviceDetails"], 0);
    assert_eq!(env.calls("account_devices").await, 2);

    let warm = run_costed(&env, query, vars).await;
    assert_eq!(warm["extensions"]["cost"]["estimate"]["upstreamCalls"], 0);

    // A filter counts the pages it may scan (one for `first` plus ten), or, over
    // cached pages and details, nothing.
    let fresh = SimEnv::default().await;
    let filtered = run_costed(
        &fresh,
        query,
        json!({"a": ACCOUNT, "f": 10, "s": "Inactive"}),
    )
    .await;
    assert_eq!(
        filtered["extensions"]["cost"]["estimate"]["accountPages"],
        11
    );
    let again = run_costed(&env, query, json!({"a": ACCOUNT, "f": 10, "s": "Inactive"})).await;
    assert_eq!(
        again["extensions"]["cost"]["estimate"]["upstreamCalls"], 0,
        "{again:#}"
    );
}
