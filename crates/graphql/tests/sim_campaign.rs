//! The campaign connection against the simulator over HTTP: batching costs, Relay
//! paging across upstream page boundaries, the status filter.
#![allow(clippy::unwrap_used)]

mod common;

use common::{ACCOUNT, SimEnv, codes};
use serde_json::{Value, json};

const PAGE: &str = r#"
query($a: String!, $c: ID!, $f: Int, $after: String, $s: String) {
  campaign(account: $a, id: $c) {
    id account totalDevices
    devices(first: $f, after: $after, status: $s) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { imei status updatedTime } }
    }
  }
}"#;

async fn page(
    env: &SimEnv,
    campaign: &str,
    first: i64,
    after: Option<&str>,
    status: Option<&str>,
) -> Value {
    let r = env
        .run(
            PAGE,
            json!({"a": ACCOUNT, "c": campaign, "f": first, "after": after, "s": status}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    r["data"]["campaign"].clone()
}

fn imeis(conn: &Value) -> Vec<String> {
    conn["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["imei"].as_str().unwrap().to_owned())
        .collect()
}

/// Every (imei, status) of the campaign, following `endCursor` with page size `first`.
async fn walk(
    env: &SimEnv,
    campaign: &str,
    first: i64,
    status: Option<&str>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let c = page(env, campaign, first, after.as_deref(), status).await;
        let conn = &c["devices"];
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], after.is_some());
        let edges = conn["edges"].as_array().unwrap();
        assert!(edges.len() <= first as usize);
        for e in edges {
            out.push((
                e["node"]["imei"].as_str().unwrap().to_owned(),
                e["node"]["status"].as_str().unwrap().to_owned(),
            ));
        }
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return out;
        }
        assert_eq!(edges.len(), first as usize, "a page before the end is full");
        after = Some(conn["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
    }
}

#[tokio::test]
async fn a_page_of_500_with_firmware_costs_one_report_and_one_details_call() {
    let env = SimEnv::default().await;
    let (campaign, _) = env.campaign_over(ACCOUNT, 1_000);
    env.reset().await;
    let r = env
        .run(
            "query($a: String!, $c: ID!) { campaign(account: $a, id: $c) { \
             devices(first: 500) { edges { node { imei device { imei firmware } } } } } }",
            json!({"a": ACCOUNT, "c": campaign}),
        )
        .await;
    assert!(r.get("errors").is_none(), "{r:#}");
    let edges = r["data"]["campaign"]["devices"]["edges"]
        .as_array()
        .unwrap();
    assert_eq!(edges.len(), 500);
    for e in edges {
        assert_eq!(e["node"]["device"]["imei"], e["node"]["imei"]);
        assert!(e["node"]["device"]["firmware"].is_string(), "{e}");
    }
    let stats = env.stats().await;
    let (report, details) = (
        stats["calls"]["campaign_devices"].as_u64().unwrap(),
        stats["calls"]["device_details"].as_u64().unwrap(),
    );
    eprintln!(
        "500-device campaign page with device {{ firmware }}: campaign_devices={report} device_details={details}"
    );
    assert_eq!((report, details), (1, 1), "{stats}");
    assert_eq!(stats["calls"]["upgrade_history"], 0);
    assert_eq!(stats["calls"]["check_in_history"], 0);
}

#[tokio::test]
async fn paging_by_700_yields_every_device_once_in_order() {
    let env = SimEnv::default().await;
    let (campaign, total) = env.campaign_over(ACCOUNT, 2_500);
    env.reset().await;
    let seen = walk(&env, &campaign, 700, None).await;
    let calls = env.calls("campaign_devices").await;
    eprintln!("{total} devices by 700: {calls} campaign_devices calls");
    let all: Vec<&String> = seen.iter().map(|(i, _)| i).collect();
    assert_eq!(all.len() as u64, total);
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "strictly ascending, no duplicate"
    );

    // Same answer with a page size that divides the upstream's pages differently.
    let by_999 = walk(&env, &campaign, 999, None).await;
    assert_eq!(by_999, seen);

    let first = page(&env, &campaign, 700, None, None).await;
    assert_eq!(first["totalDevices"].as_u64(), Some(total));
    assert_eq!(first["devices"]["totalCount"].as_u64(), Some(total));
    assert_eq!(first["id"], campaign.as_str());
    let conn = &first["devices"];
    assert_eq!(conn["pageInfo"]["startCursor"], conn["edges"][0]["cursor"]);
    assert_eq!(conn["pageInfo"]["endCursor"], conn["edges"][699]["cursor"]);
    // Cursors are stable: an edge cursor resumes right after its device.
    let mid = conn["edges"][349]["cursor"].as_str().unwrap();
    let resumed = page(&env, &campaign, 10, Some(mid), None).await;
    assert_eq!(imeis(&resumed["devices"])[..], imeis(conn)[350..360]);
}

#[tokio::test]
async fn status_filter_matches_a_client_side_filter() {
    let env = SimEnv::default().await;
    let (campaign, _) = env.campaign_over(ACCOUNT, 2_500);
    let all = walk(&env, &campaign, 1_000, None).await;
    let status = all
        .iter()
        .map(|(_, s)| s.clone())
        .find(|s| all.iter().filter(|(_, x)| x == s).count() < all.len() / 2)
        .unwrap();
    let want: Vec<(String, String)> = all.iter().filter(|(_, s)| *s == status).cloned().collect();
    assert!(want.len() > 10, "{status}: {}", want.len());
    let got = walk(
        &env,
        &campaign,
        (want.len() / 3).max(1) as i64,
        Some(&status),
    )
    .await;
    assert_eq!(got, want, "filter {status}");
}

#[tokio::test]
async fn small_and_empty_pages() {
    let env = SimEnv::default().await;
    let (campaign, total) = env.campaign_over(ACCOUNT, 2_500);
    let zero = page(&env, &campaign, 0, None, None).await;
    assert_eq!(zero["devices"]["edges"].as_array().unwrap().len(), 0);
    assert_eq!(zero["devices"]["pageInfo"]["hasNextPage"], true);
    assert!(zero["devices"]["pageInfo"]["endCursor"].is_null());

    // The default page size is 100.
    let r = env
        .run(
            "query($a: String!, $c: ID!) { campaign(account: $a, id: $c) { devices { edges { cursor } } } }",
            json!({"a": ACCOUNT, "c": campaign}),
        )
        .await;
    assert_eq!(
        r["data"]["campaign"]["devices"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        100
    );

    // The last device's cursor gives an empty last page.
    let all = walk(&env, &campaign, 1_000, None).await;
    assert_eq!(all.len() as u64, total);
    let (small, _) = env.campaign_over(ACCOUNT, 5);
    let whole = page(&env, &small, 1_000, None, None).await;
    let end = whole["devices"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(whole["devices"]["pageInfo"]["hasNextPage"], false);
    let after_end = page(&env, &small, 10, Some(&end), None).await;
    assert_eq!(after_end["devices"]["edges"].as_array().unwrap().len(), 0);
    assert_eq!(after_end["devices"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(after_end["devices"]["pageInfo"]["hasPreviousPage"], true);
}

#[tokio::test]
async fn broken_upstream_pagination_is_an_upstream_error_without_internals() {
    let env = SimEnv::default().await;
    let (campaign, _) = env.campaign_over(ACCOUNT, 2_500);
    env.faults(json!({"brokenPagination": true})).await;
    let r = env
        .run(
            PAGE,
            json!({"a": ACCOUNT, "c": campaign, "f": 1000, "after": null, "s": "NoSuchStatus"}),
        )
        .await;
    assert_eq!(codes(&r), ["UPSTREAM_ERROR"], "{r:#}");
    let message = r["errors"][0]["message"].as_str().unwrap();
    assert!(!message.contains("lastSeenDeviceId"), "{message}");
}
