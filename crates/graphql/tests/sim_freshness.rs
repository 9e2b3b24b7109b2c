//! `freshness` end to end over the simulator: fetch times and ages of each part,
//! stale parts and why, null for parts the operation does not load (with the
//! simulator's call counts to prove that selecting freshness calls nothing), and the
//! answers that may be stored by the response cache.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{ACCOUNT, SimEnv};
use devicegraph_cache::{Clock, ManualClock, Store, StoreConfig, Ttls};
use devicegraph_graphql::{AccountScope, GraphqlConfig, RequestContext, build_schema, execute};
use devicegraph_sim::SimConfig;
use devicegraph_upstream::ClientConfig;
use serde_json::{Value, json};

const PARTS: &str = "fetchedAt ageSeconds stale staleReason";

async fn env_with_clock() -> (SimEnv, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let env = SimEnv::start_with_clock(
        SimConfig::default(),
        GraphqlConfig::default(),
        Duration::from_secs(5),
        Arc::clone(&clock) as Arc<dyn Clock>,
    )
    .await;
    (env, clock)
}

fn instant(v: &Value) -> DateTime<Utc> {
    let text = v.as_str().unwrap_or_else(|| panic!("not a DateTime: {v}"));
    assert!(text.ends_with('Z'), "{text}");
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// Upstream calls per data endpoint since the start.
async fn calls(env: &SimEnv) -> [u64; 3] {
    let stats = env.stats().await;
    let n = |e: &str| stats["calls"][e].as_u64().unwrap_or(0);
    [
        n("device_details"),
        n("upgrade_history"),
        n("check_in_history"),
    ]
}

/// The minimum: a device's details freshness costs the details call the device
/// needs anyway; the histories' freshness is null, and nothing else is called,
/// unless the operation selects the history for that device.
#[tokio::test]
async fn parts_not_loaded_have_no_freshness_and_cost_nothing() {
    let (env, clock) = env_with_clock().await;
    let imei = env.sample_imeis(ACCOUNT)[0].clone();
    let vars = json!({"a": ACCOUNT, "i": imei});

    let only = format!(
        "query($a: String!, $i: IMEI!) {{ device(account: $a, imei: $i) {{ \
         freshness {{ details {{ {PARTS} }} upgradeHistory {{ {PARTS} }} checkIns {{ {PARTS} }} }} }} }}"
    );
    let r = env.run(&only, vars.clone()).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    let f = &r["data"]["device"]["freshness"];
    let fetched = instant(&f["details"]["fetchedAt"]);
    // The cache's clock stands still: the fetch time is its wall time (to the ms).
    let wall: DateTime<Utc> = clock.wall().into();
    assert!(
        (0..=1).contains(&(wall - fetched).num_milliseconds()),
        "fetched at {fetched}, clock {wall}"
    );
    assert_eq!(f["details"]["ageSeconds"], 0);
    assert_eq!(f["details"]["stale"], false);
    assert_eq!(f["details"]["staleReason"], Value::Null);
    assert_eq!(f["upgradeHistory"], Value::Null, "{r:#}");
    assert_eq!(f["checkIns"], Value::Null, "{r:#}");
    assert_eq!(
        calls(&env).await,
        [1, 0, 0],
        "only the details the device needs"
    );

    // Selecting the upgrade history for the device gives it a freshness (and costs
    // exactly the history call the field makes); check-ins stay null and uncalled.
    let with_history = format!(
        "query($a: String!, $i: IMEI!) {{ device(account: $a, imei: $i) {{ \
         upgradeHistory {{ status }} \
         freshness {{ details {{ fetchedAt }} upgradeHistory {{ {PARTS} }} checkIns {{ fetchedAt }} }} }} }}"
    );
    let r = env.run(&with_history, vars.clone()).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    let f = &r["data"]["device"]["freshness"];
    assert_eq!(
        instant(&f["details"]["fetchedAt"]),
        fetched,
        "the same entry"
    );
    instant(&f["upgradeHistory"]["fetchedAt"]);
    assert_eq!(f["upgradeHistory"]["stale"], false);
    assert_eq!(f["checkIns"], Value::Null);
    assert_eq!(calls(&env).await, [1, 1, 0]);

    // `lastCheckIn` reads the check-ins: they have a freshness, through a fragment
    // too; the upgrade history, not selected this time, has none.
    let fragment = "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { ...Card } } \
                    fragment Card on Device { lastCheckIn { result } \
                    freshness { upgradeHistory { fetchedAt } checkIns { fetchedAt stale } } }";
    let r = env.run(fragment, vars).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    let f = &r["data"]["device"]["freshness"];
    assert_eq!(f["upgradeHistory"], Value::Null);
    instant(&f["checkIns"]["fetchedAt"]);
    assert_eq!(calls(&env).await, [1, 1, 1]);
}

/// `devices` and campaign nodes: every device has its own freshness, and a part one
/// selection of a device reads (another alias of it) counts for the operation.
#[tokio::test]
async fn every_device_of_a_list_has_its_own_freshness() {
    let (env, _clock) = env_with_clock().await;
    let s = env.sample_imeis(ACCOUNT);
    let q = "query($a: String!, $l: [IMEI!]!, $x: IMEI!) { \
             devices(account: $a, imeis: $l) { imei checkIns(last: 1) { result } \
               freshness { details { fetchedAt } checkIns { fetchedAt } upgradeHistory { fetchedAt } } } \
             other: device(account: $a, imei: $x) { freshness { details { ageSeconds } checkIns { fetchedAt } } } }";
    let r = env
        .run(q, json!({"a": ACCOUNT, "l": [s[0], s[1]], "x": s[2]}))
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    for d in r["data"]["devices"].as_array().unwrap() {
        instant(&d["freshness"]["details"]["fetchedAt"]);
        instant(&d["freshness"]["checkIns"]["fetchedAt"]);
        assert_eq!(d["freshness"]["upgradeHistory"], Value::Null);
    }
    assert_eq!(r["data"]["other"]["freshness"]["details"]["ageSeconds"], 0);
    assert_eq!(r["data"]["other"]["freshness"]["checkIns"], Value::Null);
    // One batch of three details, check-ins only for the two devices that select them.
    assert_eq!(calls(&env).await, [1, 0, 2]);
}

/// Ages grow with the cache's clock while the fetch time stays the entry's; a
/// refetch after the TTL gives a new fetch time and age 0.
#[tokio::test]
async fn ages_grow_and_fetch_times_stay_until_a_refetch() {
    let (env, clock) = env_with_clock().await;
    let imei = env.sample_imeis(ACCOUNT)[0].clone();
    let q = "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { \
             checkIns { result } freshness { details { fetchedAt ageSeconds } \
             checkIns { fetchedAt ageSeconds stale } } } }";
    let vars = json!({"a": ACCOUNT, "i": imei});
    let first = env.run(q, vars.clone()).await;
    let f0 = &first["data"]["device"]["freshness"];
    assert_eq!(f0["details"]["ageSeconds"], 0, "{first:#}");
    let details_at = instant(&f0["details"]["fetchedAt"]);
    let check_ins_at = instant(&f0["checkIns"]["fetchedAt"]);

    clock.advance(Duration::from_secs(42));
    let later = env.run(q, vars.clone()).await;
    let f = &later["data"]["device"]["freshness"];
    assert_eq!(later["extensions"]["cacheStatus"], "HIT", "{later:#}");
    assert_eq!(instant(&f["details"]["fetchedAt"]), details_at);
    assert_eq!(f["details"]["ageSeconds"], 42);
    assert_eq!(f["checkIns"]["ageSeconds"], 42);
    assert_eq!(f["checkIns"]["stale"], false);
    // fetchedAt + ageSeconds is the cache clock's now.
    let now: DateTime<Utc> = clock.wall().into();
    let implied = details_at + chrono::Duration::seconds(42);
    assert!(
        (now - implied).num_milliseconds().abs() < 1_000,
        "{now} vs {implied}"
    );
    assert_eq!(calls(&env).await, [1, 0, 1]);

    // Past the check-ins' TTL (60 s) and stale-while-revalidate (30 s): refetched,
    // with a new fetch time; the details (TTL 5 min) are still the first entry.
    clock.advance(Duration::from_secs(60));
    let refetched = env.run(q, vars).await;
    let f = &refetched["data"]["device"]["freshness"];
    assert_eq!(f["checkIns"]["ageSeconds"], 0, "{refetched:#}");
    let new_at = instant(&f["checkIns"]["fetchedAt"]);
    assert!(
        new_at >= check_ins_at + chrono::Duration::seconds(102),
        "{new_at} vs {check_ins_at}"
    );
    assert_eq!(f["details"]["ageSeconds"], 102);
    assert_eq!(calls(&env).await, [1, 0, 2]);
}

/// Past every TTL and the upstream failing: each part is served stale, with the
/// reason the failure gives and the age of the entry it fell back on.
#[tokio::test]
async fn stale_parts_say_why() {
    let (env, clock) = env_with_clock().await;
    let imei = env.sample_imeis(ACCOUNT)[0].clone();
    let q = format!(
        "query($a: String!, $i: IMEI!) {{ device(account: $a, imei: $i) {{ \
         upgradeHistory {{ status }} freshness {{ details {{ {PARTS} }} upgradeHistory {{ {PARTS} }} }} }} }}"
    );
    let vars = json!({"a": ACCOUNT, "i": imei});
    let fresh = env.run(&q, vars.clone()).await;
    assert!(fresh.get("errors").is_none(), "{fresh:#}");
    let fetched_at = fresh["data"]["device"]["freshness"]["details"]["fetchedAt"].clone();

    // Past every TTL (the longest is 10 minutes), within stale-if-error (1 hour).
    clock.advance(Duration::from_secs(15 * 60));
    for (faults, reason) in [
        (json!({"errorRate": 1.0}), "UPSTREAM_ERROR"),
        (json!({"dropRate": 1.0}), "UPSTREAM_UNAVAILABLE"),
        (
            json!({"rateLimitRate": 1.0, "retryAfterSecs": 1}),
            "RATE_LIMITED",
        ),
    ] {
        env.faults(json!({"clear": true})).await;
        env.faults(faults.clone()).await;
        let stale = env.run(&q, vars.clone()).await;
        assert!(stale.get("errors").is_none(), "{faults}: {stale:#}");
        assert_eq!(stale["extensions"]["cacheStatus"], "STALE");
        let f = &stale["data"]["device"]["freshness"];
        for part in ["details", "upgradeHistory"] {
            assert_eq!(f[part]["stale"], true, "{faults} {part}: {stale:#}");
            assert_eq!(f[part]["staleReason"], reason, "{faults} {part}");
            assert_eq!(f[part]["ageSeconds"], 900, "{faults} {part}");
        }
        assert_eq!(f["details"]["fetchedAt"], fetched_at, "the old entry's");
    }

    // The upstream is back: fresh again.
    env.faults(json!({"clear": true})).await;
    let back = env.run(&q, vars).await;
    let f = &back["data"]["device"]["freshness"];
    assert_eq!(f["details"]["stale"], false, "{back:#}");
    assert_eq!(f["details"]["staleReason"], Value::Null);
    assert_eq!(f["details"]["ageSeconds"], 0);
}

/// With the pacer (as the server runs): a 429 pauses the endpoint, and while it is
/// paused an expired entry is served without asking the upstream at all, marked
/// RATE_LIMITED.
#[tokio::test]
async fn a_paused_endpoint_is_served_stale_as_rate_limited_without_a_call() {
    let sim = devicegraph_sim::spawn_on(SimConfig::default(), "127.0.0.1:0")
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new());
    let mut client = ClientConfig::new(sim.base_url().parse().unwrap(), common::credentials());
    client.timeout = Duration::from_secs(5);
    client.max_attempts = 1;
    let config = StoreConfig {
        ttl: Ttls::default(),
        rate_per_second: 10_000,
        burst: 10_000,
        max_concurrency: 64,
        ..StoreConfig::default()
    };
    let store =
        Store::connect_with_clock(config, client, Arc::clone(&clock) as Arc<dyn Clock>).unwrap();
    let schema = build_schema(store, GraphqlConfig::default());
    let http = reqwest::Client::new();
    let control = |path: &str| format!("{}{path}", sim.root_url());
    let imei = sim.catalog().sample_imeis[ACCOUNT][0].clone();
    let q = format!(
        "query($a: String!, $i: IMEI!) {{ device(account: $a, imei: $i) {{ \
         checkIns {{ result }} freshness {{ checkIns {{ {PARTS} }} }} }} }}"
    );
    let vars = json!({"a": ACCOUNT, "i": imei});
    let fresh = common::run(&schema, &q, vars.clone()).await;
    assert!(fresh.get("errors").is_none(), "{fresh:#}");

    clock.advance(Duration::from_secs(15 * 60));
    let faults =
        json!({"rateLimitRate": 1.0, "retryAfterSecs": 120, "endpoints": ["check_in_history"]});
    let set = http
        .post(control("/_sim/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success());
    let check_ins = || async {
        let stats: Value = http
            .get(control("/_sim/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["calls"]["check_in_history"].as_u64().unwrap_or(0)
    };

    // The first read asks, is refused with 429 and falls back on the old entry.
    let before = check_ins().await;
    let refused = common::run(&schema, &q, vars.clone()).await;
    let f = &refused["data"]["device"]["freshness"]["checkIns"];
    assert_eq!(f["staleReason"], "RATE_LIMITED", "{refused:#}");
    assert_eq!(check_ins().await, before + 1);

    // Within the pause, the next read does not ask at all.
    let paused = common::run(&schema, &q, vars).await;
    let f = &paused["data"]["device"]["freshness"]["checkIns"];
    assert_eq!(f["stale"], true, "{paused:#}");
    assert_eq!(f["staleReason"], "RATE_LIMITED");
    assert_eq!(f["ageSeconds"], 900);
    assert_eq!(check_ins().await, before + 1, "no call while paused");
}

/// A campaign page's freshness is its report pages', read anyway: no extra call,
/// and its age grows like any entry's.
#[tokio::test]
async fn a_campaign_page_has_the_freshness_of_its_report() {
    let (env, clock) = env_with_clock().await;
    let (campaign, _) = env.campaign_over(ACCOUNT, 10);
    let q = "query($a: String!, $c: ID!) { campaign(account: $a, id: $c) { \
             devices(first: 5) { freshness { fetchedAt ageSeconds stale staleReason } \
               edges { node { device { upgradeHistory { status } \
                 freshness { details { fetchedAt } upgradeHistory { fetchedAt } checkIns { fetchedAt } } } } } } } }";
    let vars = json!({"a": ACCOUNT, "c": campaign});
    let r = env.run(q, vars.clone()).await;
    assert!(r.get("errors").is_none(), "{r:#}");
    let f = &r["data"]["campaign"]["devices"]["freshness"];
    let at = instant(&f["fetchedAt"]);
    assert_eq!(f["ageSeconds"], 0);
    assert_eq!(f["stale"], false);
    assert_eq!(f["staleReason"], Value::Null);
    // The page's devices: details and the selected upgrade history, no check-ins.
    let edges = r["data"]["campaign"]["devices"]["edges"]
        .as_array()
        .unwrap();
    assert_eq!(edges.len(), 5);
    for edge in edges {
        let d = &edge["node"]["device"]["freshness"];
        instant(&d["details"]["fetchedAt"]);
        instant(&d["upgradeHistory"]["fetchedAt"]);
        assert_eq!(d["checkIns"], Value::Null, "{r:#}");
    }
    assert_eq!(calls(&env).await, [1, 5, 0]);

    clock.advance(Duration::from_secs(20));
    let r = env.run(q, vars).await;
    let f = &r["data"]["campaign"]["devices"]["freshness"];
    assert_eq!(instant(&f["fetchedAt"]), at);
    assert_eq!(f["ageSeconds"], 20);
    assert_eq!(env.calls("campaign_devices").await, 1);
}

/// Whether an answer may be stored by the response cache: one that states an age
/// may not (it is true only when built); one with fetch times and stale flags may.
#[tokio::test]
async fn answers_that_state_an_age_are_not_stored() {
    let (env, _clock) = env_with_clock().await;
    let imei = env.sample_imeis(ACCOUNT)[0].clone();
    let storable = |q: &'static str| {
        let schema = env.schema.clone();
        let imei = imei.clone();
        async move {
            let request = async_graphql::Request::new(q).variables(
                async_graphql::Variables::from_json(json!({"a": ACCOUNT, "i": imei})),
            );
            let executed = execute(&schema, request, RequestContext::new(AccountScope::All)).await;
            assert!(
                executed.response.errors.is_empty(),
                "{:?}",
                executed.response
            );
            executed.dependencies.is_some()
        }
    };
    let plain = "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { firmware } }";
    let fetched = "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { firmware \
                   freshness { details { fetchedAt stale staleReason } } } }";
    let aged = "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { firmware \
                freshness { details { ageSeconds } } } }";
    let aged_null = "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { firmware \
                     freshness { checkIns { ageSeconds } } } }";
    assert!(storable(plain).await);
    assert!(storable(fetched).await);
    assert!(!storable(aged).await);
    // No part, so no age in the answer: nothing keeps it out.
    assert!(storable(aged_null).await);
}

/// The schema serves the contract's (revision 2) freshness types and fields with
/// their types (the whole contract is checked by `sdl_contract.rs` once its copy is
/// updated).
#[test]
fn the_schema_serves_the_contract_freshness() {
    use async_graphql::parser::parse_schema;
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

    let (schema, _) = common::offline(GraphqlConfig::default());
    let sdl = devicegraph_graphql::sdl(&schema);
    let doc = parse_schema(&sdl).unwrap();
    let field_type = |ty: &str, field: &str| -> Option<String> {
        doc.definitions.iter().find_map(|d| match d {
            TypeSystemDefinition::Type(t) if t.node.name.node == ty => match &t.node.kind {
                TypeKind::Object(o) => o
                    .fields
                    .iter()
                    .find(|f| f.node.name.node == field)
                    .map(|f| f.node.ty.node.to_string()),
                _ => None,
            },
            _ => None,
        })
    };
    let want = [
        ("Freshness", "fetchedAt", "DateTime"),
        ("Freshness", "ageSeconds", "Int"),
        ("Freshness", "stale", "Boolean!"),
        ("Freshness", "staleReason", "String"),
        ("DeviceFreshness", "details", "Freshness"),
        ("DeviceFreshness", "upgradeHistory", "Freshness"),
        ("DeviceFreshness", "checkIns", "Freshness"),
        ("Device", "freshness", "DeviceFreshness!"),
        ("CampaignDeviceConnection", "freshness", "Freshness"),
    ];
    for (ty, field, expected) in want {
        assert_eq!(
            field_type(ty, field).as_deref(),
            Some(expected),
            "{ty}.{field}\n\n{sdl}"
        );
    }
}
