//! `GET /fota/v3/devices/{acc}`: an account's devices, page by page, over real HTTP.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{ACCOUNT, Session, luhn_imei, start};
use devicegraph_sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every page of `account`'s list (with `protocol` when given), following
/// `lastSeenDeviceId` from `0`.
async fn pages(s: &Session, account: &str, protocol: Option<&str>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let filter = protocol
            .map(|p| format!("&protocol={p}"))
            .unwrap_or_default();
        let (status, page) = s
            .get_json(&format!(
                "/fota/v3/devices/{account}?lastSeenDeviceId={cursor}{filter}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let more = page["hasMoreData"].as_bool().unwrap();
        cursor = page["lastSeenDeviceId"].as_str().unwrap().to_string();
        out.push(page);
        if !more {
            return out;
        }
        assert!(out.len() < 1_000, "account paging does not end");
    }
}

fn devices(pages: &[Value]) -> Vec<Value> {
    pages
        .iter()
        .flat_map(|p| p["deviceList"].as_array().unwrap().clone())
        .collect()
}

fn ids(devices: &[Value]) -> Vec<u64> {
    devices
        .iter()
        .map(|d| d["deviceId"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn every_device_of_the_account_once_in_ascending_pages_of_1000() {
    let sim = start(SimConfig::default()).await;
    let catalog = sim.catalog();
    let total = catalog.account_devices[ACCOUNT];
    assert!(
        total > 2_000,
        "the seed account spans several pages: {total}"
    );
    assert_eq!(catalog.page_sizes.account_devices, 1_000);
    let s = Session::open(&sim).await;
    let pages = pages(&s, ACCOUNT, None).await;
    assert_eq!(pages.len() as u64, total.div_ceil(1_000));
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(page["accountName"], ACCOUNT);
        assert_eq!(page["maxPageSize"], 1000);
        let list = page["deviceList"].as_array().unwrap();
        let last = i + 1 == pages.len();
        assert_eq!(page["hasMoreData"], !last);
        if last {
            assert_eq!(page["lastSeenDeviceId"], "0");
        } else {
            assert_eq!(list.len(), 1_000);
            assert_eq!(page["lastSeenDeviceId"], list.last().unwrap()["deviceId"]);
        }
    }
    let all = devices(&pages);
    let numbers = ids(&all);
    assert_eq!(numbers.len() as u64, total);
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "ascending, no repeats"
    );
    assert!(
        all.iter()
            .all(|d| luhn_imei(d["deviceId"].as_str().unwrap()))
    );
    // The sample IMEIs of the account (its first and last device included) are there.
    for imei in &catalog.sample_imeis[ACCOUNT] {
        assert!(numbers.contains(&imei.parse().unwrap()), "{imei}");
    }

    // Each record is exactly what the details endpoint answers for that device.
    let sample: Vec<&str> = all
        .iter()
        .step_by(577)
        .map(|d| d["deviceId"].as_str().unwrap())
        .collect();
    let (status, details) = s
        .post_json(
            &format!("/fota/v3/devices/{ACCOUNT}"),
            &json!({ "deviceList": sample }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let by_id: BTreeMap<&str, &Value> = all
        .iter()
        .map(|d| (d["deviceId"].as_str().unwrap(), d))
        .collect();
    for d in details["deviceList"].as_array().unwrap() {
        assert_eq!(Some(&d), by_id.get(d["deviceId"].as_str().unwrap()));
    }

    // The other accounts are listed too, and only their own devices.
    let other = &catalog.accounts[1];
    let theirs = ids(&devices(&self::pages(&s, other, None).await));
    assert_eq!(theirs.len() as u64, catalog.account_devices[other]);
    assert!(theirs.iter().all(|i| !numbers.contains(i)));

    let stats = s.control("stats", None).await;
    assert_eq!(
        stats["calls"]["account_devices"],
        pages.len() as u64 + theirs.len().div_ceil(1_000) as u64
    );
}

#[tokio::test]
async fn protocol_keeps_that_protocols_devices_and_cursors_mean_greater_than() {
    let sim = start(SimConfig::default()).await;
    let total = sim.catalog().account_devices[ACCOUNT];
    let s = Session::open(&sim).await;
    let lwm2m = devices(&pages(&s, ACCOUNT, Some("LWM2M")).await);
    let http = devices(&pages(&s, ACCOUNT, Some("http")).await);
    assert!(!lwm2m.is_empty() && !http.is_empty());
    assert!(lwm2m.iter().all(|d| d["protocol"] == "LWM2M"));
    assert!(http.iter().all(|d| d["protocol"] == "HTTP"));
    assert_eq!((lwm2m.len() + http.len()) as u64, total);
    let (_, none) = s
        .get_json(&format!("/fota/v3/devices/{ACCOUNT}?protocol=OMADM"))
        .await;
    assert_eq!(none["deviceList"], json!([]));
    assert_eq!(none["hasMoreData"], false);

    // A cursor that is no device's IMEI still means "greater than".
    let all = ids(&devices(&pages(&s, ACCOUNT, None).await));
    let mid = all[1_500] - 1;
    let (_, page) = s
        .get_json(&format!(
            "/fota/v3/devices/{ACCOUNT}?lastSeenDeviceId={mid}"
        ))
        .await;
    let got = ids(&devices(std::slice::from_ref(&page)));
    assert_eq!(got.first(), Some(&all[1_500]));
}

#[tokio::test]
async fn page_size_is_configurable_and_refusals_are_thingspace_errors() {
    let sim = start(SimConfig {
        account_page_size: 250,
        ..SimConfig::default()
    })
    .await;
    let total = sim.catalog().account_devices[ACCOUNT];
    let s = Session::open(&sim).await;
    let pages = pages(&s, ACCOUNT, None).await;
    assert_eq!(pages.len() as u64, total.div_ceil(250));
    assert_eq!(pages[0]["maxPageSize"], 250);
    assert_eq!(ids(&devices(&pages)).len() as u64, total);

    let (status, body) = s.get_json("/fota/v3/devices/0000999999-00009").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorCode"], "REQUEST_FAILED.Account.NotFound");
    let (status, body) = s
        .get_json(&format!("/fota/v3/devices/{ACCOUNT}?lastSeenDeviceId=abc"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorCode"], "REQUEST_FAILED.InvalidParameter");
    // Both tokens are needed, as on every data endpoint.
    let r = s
        .http
        .get(format!("{}/fota/v3/devices/{ACCOUNT}", s.base))
        .bearer_auth(&s.bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn broken_pagination_repeats_the_cursor() {
    let sim = start(SimConfig::default()).await;
    let s = Session::open(&sim).await;
    s.control(
        "faults",
        Some(json!({ "brokenPagination": true, "endpoints": ["account_devices"] })),
    )
    .await;
    let (_, first) = s.get_json(&format!("/fota/v3/devices/{ACCOUNT}")).await;
    let cursor = first["lastSeenDeviceId"].as_str().unwrap().to_string();
    let (_, second) = s
        .get_json(&format!(
            "/fota/v3/devices/{ACCOUNT}?lastSeenDeviceId={cursor}"
        ))
        .await;
    assert_eq!(second["hasMoreData"], true);
    assert_eq!(second["lastSeenDeviceId"], cursor.as_str());
}
