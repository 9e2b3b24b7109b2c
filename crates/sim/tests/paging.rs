//! Paging of the campaign report, device details and provisioning history.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use chrono::{DateTime, FixedOffset};
use common::{ACCOUNT, Session, luhn_imei, start};
use devicegraph_sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn campaign_pages_ascend_across_the_1000_boundary() {
    let sim = start(SimConfig {
        devices: 10_000,
        ..SimConfig::default()
    })
    .await;
    let catalog = sim.catalog();
    let campaign = catalog
        .campaigns
        .iter()
        .find(|c| c.devices > 2_500)
        .expect("a campaign over 2,500 devices");
    let s = Session::open(&sim).await;
    let pages = s.campaign_pages(&campaign.account, &campaign.id).await;
    assert_eq!(pages.len() as u64, campaign.devices.div_ceil(1_000));

    let mut all: Vec<String> = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        // totalDevice is a string, as in the seed page.
        assert_eq!(page["totalDevice"], json!(campaign.devices.to_string()));
        assert_eq!(page["maxPageSize"], 1000);
        let list = page["deviceList"].as_array().unwrap();
        assert!(list.len() <= 1_000);
        let last = i + 1 == pages.len();
        assert_eq!(page["hasMoreData"], !last);
        if last {
            assert_eq!(page["lastSeenDeviceId"], "0");
        } else {
            assert_eq!(list.len(), 1_000);
            assert_eq!(page["lastSeenDeviceId"], list.last().unwrap()["deviceId"]);
        }
        for d in list {
            assert!(
                d["updatedTime"].is_string() || d["statusTime"].is_string(),
                "{d}"
            );
            assert!(d["status"].is_string() && d["recentAttemptTime"].is_string());
            all.push(d["deviceId"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(all.len() as u64, campaign.devices);
    assert!(all.iter().all(|imei| luhn_imei(imei)));
    let numbers: Vec<u64> = all.iter().map(|s| s.parse().unwrap()).collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "ascending, no repeats"
    );

    // Both field variants appear, and the v2 path serves the same report.
    let first = &pages[0]["deviceList"];
    let text = first.to_string();
    assert!(text.contains("statusTime") && text.contains("updatedTime"));
    let (status, v2) = s
        .get_json(&format!(
            "/fota/v2/reports/{}/campaigns/{}/devices?lastSeenDeviceId=0",
            campaign.account, campaign.id
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v2, pages[0]);

    // A cursor that is not a member IMEI still means "greater than".
    let mid: u64 = numbers[1_500] - 1;
    let (_, page) = s
        .get_json(&format!(
            "/fota/v3/reports/{}/campaigns/{}/devices?lastSeenDeviceId={mid}",
            campaign.account, campaign.id
        ))
        .await;
    assert_eq!(
        page["deviceList"][0]["deviceId"],
        json!(numbers[1_500].to_string())
    );

    let (status, body) = s
        .get_json(&format!(
            "/fota/v3/reports/{}/campaigns/nope/devices",
            campaign.account
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errorCode"].is_string());
}

#[tokio::test]
async fn device_details_page_found_devices_in_ascending_order() {
    let sim = start(SimConfig {
        devices: 10_000,
        details_page_size: 100,
        ..SimConfig::default()
    })
    .await;
    let catalog = sim.catalog();
    let s = Session::open(&sim).await;

    // 250 devices of the account (from a campaign report), shuffled, plus unknowns and
    // another account's device.
    let campaign = catalog
        .campaigns
        .iter()
        .find(|c| c.account == ACCOUNT && c.devices >= 250)
        .unwrap();
    let (_, report) = s
        .get_json(&format!(
            "/fota/v3/reports/{ACCOUNT}/campaigns/{}/devices?lastSeenDeviceId=0",
            campaign.id
        ))
        .await;
    let mut mine: Vec<String> = report["deviceList"]
        .as_array()
        .unwrap()
        .iter()
        .take(250)
        .map(|d| d["deviceId"].as_str().unwrap().to_string())
        .collect();
    let mut body: Vec<String> = mine.iter().rev().cloned().collect();
    body.extend(catalog.unknown_imeis.iter().cloned());
    let other = catalog
        .accounts
        .iter()
        .find(|a| a.as_str() != ACCOUNT)
        .unwrap();
    body.push(catalog.sample_imeis[other][0].clone());
    body.push("not-an-imei".into());
    mine.sort();

    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    let mut pages = 0;
    loop {
        let (status, page) = s
            .post_json(
                &format!("/fota/v3/devices/{ACCOUNT}?lastSeenDeviceId={cursor}"),
                &json!({ "deviceList": body }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        assert_eq!(page["accountName"], ACCOUNT);
        assert_eq!(page["maxPageSize"], 100);
        let list = page["deviceList"].as_array().unwrap();
        assert_eq!(page["deviceCount"], list.len());
        for d in list {
            for field in [
                "deviceId",
                "mdn",
                "make",
                "model",
                "firmware",
                "createTime",
                "statusTime",
            ] {
                assert!(d[field].is_string(), "{field} in {d}");
            }
            assert!(d["upgradeTime"].is_string() || d["updateTime"].is_string());
            seen.push(d["deviceId"].as_str().unwrap().to_string());
        }
        if page["hasMoreData"] == false {
            assert_eq!(page["lastSeenDeviceId"], "0");
            break;
        }
        cursor = page["lastSeenDeviceId"].as_str().unwrap().to_string();
        assert_eq!(Some(&cursor), seen.last());
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen, mine,
        "exactly the account's devices, ascending, each once"
    );

    // More than 1,000 IMEIs in one body is refused.
    let too_many: Vec<String> = (0..1_001).map(|i| format!("{i:015}")).collect();
    let (status, body) = s
        .post_json(
            &format!("/fota/v3/devices/{ACCOUNT}"),
            &json!({ "deviceList": too_many }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errorCode"].is_string());
}

/// Provisioning pages as the client sees them: 202 + hasMoreData until the last 200.
#[tokio::test]
async fn provisioning_202_paging_repeats_the_boundary_records() {
    let sim = start(SimConfig::default()).await;
    let catalog = sim.catalog();
    let imei = catalog.provisioning_boundary_devices[ACCOUNT][0].clone();
    let window = catalog.provisioning_window.clone();
    let s = Session::open(&sim).await;
    let pages = s
        .provisioning_pages(&imei, &window.earliest, &window.latest)
        .await;
    assert!(pages.len() >= 3, "a boundary device spans several pages");
    for (i, (status, page)) in pages.iter().enumerate() {
        let last = i + 1 == pages.len();
        assert_eq!(
            *status,
            if last {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            }
        );
        assert_eq!(page["hasMoreData"], !last);
        assert!(page["provisioningHistory"].as_array().unwrap().len() <= 500);
    }

    // The truth: the same device from a simulator whose single page holds everything.
    let big = start(SimConfig {
        provisioning_page_size: 100_000,
        ..SimConfig::default()
    })
    .await;
    let b = Session::open(&big).await;
    let all = b
        .provisioning_pages(&imei, &window.earliest, &window.latest)
        .await;
    assert_eq!(all.len(), 1);
    let truth = all[0].1["provisioningHistory"].as_array().unwrap().clone();
    assert!(truth.len() > 1_000);

    let instant = |r: &Value| {
        DateTime::<FixedOffset>::parse_from_rfc3339(r["occurredAt"].as_str().unwrap()).unwrap()
    };
    // Stitch the pages by dropping exactly the records the previous page ended with.
    let mut stitched: Vec<Value> = Vec::new();
    let mut naive: Vec<Value> = Vec::new();
    for (_, page) in &pages {
        let list = page["provisioningHistory"].as_array().unwrap();
        let boundary = stitched.last().map(instant);
        let repeated = match &boundary {
            Some(ts) => stitched
                .iter()
                .rev()
                .take_while(|r| instant(r) == *ts)
                .count(),
            None => 0,
        };
        if repeated > 0 {
            // The boundary record(s) come back first, identical.
            let tail: Vec<&Value> = stitched[stitched.len() - repeated..].iter().collect();
            let head: Vec<&Value> = list.iter().take(repeated).collect();
            assert_eq!(tail, head, "boundary records are repeated verbatim");
        }
        stitched.extend(list.iter().skip(repeated).cloned());
        // A client that drops by timestamp alone:
        naive.extend(
            list.iter()
                .filter(|r| boundary.is_none_or(|b| instant(r) > b))
                .cloned(),
        );
    }
    assert_eq!(stitched, truth);
    assert!(
        naive.len() < truth.len(),
        "distinct events share the boundary timestamp"
    );
    let distinct: HashSet<String> = stitched.iter().map(Value::to_string).collect();
    assert_eq!(
        distinct.len(),
        stitched.len(),
        "events are distinct records"
    );
}

#[tokio::test]
async fn provisioning_validates_identifiers() {
    let sim = start(SimConfig::default()).await;
    let catalog = sim.catalog();
    let window = &catalog.provisioning_window;
    let s = Session::open(&sim).await;
    let ids = &catalog.sample_identifiers[ACCOUNT];
    let ask = |kind: &str, id: &str| json!({ "deviceId": { "kind": kind, "id": id }, "earliest": window.earliest, "latest": window.latest });
    let path = "/m2m/v1/devices/history/actions/list";
    let (status, by_imei) = s.post_json(path, &ask("imei", &ids.imei)).await;
    assert_eq!(status, StatusCode::OK);
    for (kind, id) in [
        ("IMEI", &ids.imei),
        ("mdn", &ids.mdn),
        ("MSISDN", &ids.msisdn),
        ("iccid", &ids.iccid),
        ("meid", &ids.meid),
    ] {
        let (status, page) = s.post_json(path, &ask(kind, id)).await;
        assert_eq!(status, StatusCode::OK, "{kind}");
        assert_eq!(page, by_imei, "{kind}");
    }
    for (kind, id) in [
        ("imei", "12ab"),
        ("mdn", "123"),
        ("meid", "xyz"),
        ("esn", "1"),
        ("serial", "1"),
    ] {
        let (status, body) = s.post_json(path, &ask(kind, id)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{kind} {id}");
        assert_eq!(body["errorCode"], "REQUEST_FAILED.InvalidParameter");
    }
    let (status, body) = s
        .post_json(path, &ask("imei", &catalog.unknown_imeis[0]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorCode"], "FOTA.DEVICE.NotFound");
    let bad_window = json!({ "deviceId": { "kind": "imei", "id": ids.imei }, "earliest": "yesterday", "latest": window.latest });
    assert_eq!(
        s.post_json(path, &bad_window).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn device_details_protocol_filters_by_management_protocol() {
    let sim = start(SimConfig {
        devices: 10_000,
        ..SimConfig::default()
    })
    .await;
    let catalog = sim.catalog();
    let s = Session::open(&sim).await;
    let imeis = catalog.sample_imeis[ACCOUNT].clone();
    let path = format!("/fota/v3/devices/{ACCOUNT}");
    let (_, all) = s.post_json(&path, &json!({ "deviceList": imeis })).await;
    let all = all["deviceList"].as_array().unwrap().clone();
    // The samples span the account, so both protocols must be there, or the filter
    // below would be checked against an empty answer only.
    for protocol in ["LWM2M", "HTTP"] {
        assert!(
            all.iter().any(|d| d["protocol"] == protocol),
            "no {protocol} sample"
        );
    }
    let mut total = 0;
    for protocol in ["LWM2M", "HTTP"] {
        let (status, page) = s
            .post_json(
                &format!("{path}?protocol={protocol}"),
                &json!({ "deviceList": imeis }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let list = page["deviceList"].as_array().unwrap();
        assert!(
            list.iter().all(|d| d["protocol"] == protocol),
            "{protocol}: {list:?}"
        );
        let expected = all.iter().filter(|d| d["protocol"] == protocol).count();
        assert_eq!(list.len(), expected, "{protocol}");
        total += list.len();
    }
    assert_eq!(
        total,
        all.len(),
        "every device has one of the two protocols"
    );
}
