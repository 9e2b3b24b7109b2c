//! Hostile and absurd request input: every one must get a ThingSpace-style refusal
//! (or a correct empty answer), never a panic, a hang or a 5xx.

#![allow(clippy::unwrap_used)]

mod common;

use common::{ACCOUNT, Session, start};
use devicegraph_sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The simulator must still answer normally after the hostile request.
async fn still_serving(s: &Session) {
    let (status, _) = s
        .get_json("/fota/v3/reports/0000123456-00001/campaigns/none/devices")
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "campaign not found, still serving"
    );
}

#[tokio::test]
async fn absurd_last_seen_device_ids_are_refused_or_empty() {
    let sim = start(SimConfig::default()).await;
    let catalog = sim.catalog();
    let campaign = &catalog.campaigns[0];
    let s = Session::open(&sim).await;
    let path = |cursor: &str| {
        format!(
            "/fota/v3/reports/{}/campaigns/{}/devices?lastSeenDeviceId={cursor}",
            campaign.account, campaign.id
        )
    };
    // Past every IMEI: an empty last page.
    for cursor in ["18446744073709551615", "999999999999999"] {
        let (status, page) = s.get_json(&path(cursor)).await;
        assert_eq!(status, StatusCode::OK, "{cursor}: {page}");
        assert_eq!(page["hasMoreData"], false);
        assert_eq!(page["deviceList"], json!([]));
    }
    // Not a device id at all.
    for cursor in [
        "-1",
        "1e400",
        "100000000000000000000000000000",
        "abc",
        "%FF%FE",
    ] {
        let (status, body) = s.get_json(&path(cursor)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{cursor}: {body}");
        assert_eq!(body["errorCode"], "REQUEST_FAILED.InvalidParameter");
    }
    let details = format!("/fota/v3/devices/{ACCOUNT}?lastSeenDeviceId=-5");
    let (status, body) = s.post_json(&details, &json!({"deviceList": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    still_serving(&s).await;
}

#[tokio::test]
async fn absurd_provisioning_windows() {
    let sim = start(SimConfig::default()).await;
    let catalog = sim.catalog();
    let imei = &catalog.sample_imeis[ACCOUNT][0];
    let s = Session::open(&sim).await;
    let path = "/m2m/v1/devices/history/actions/list";
    let ask = |earliest: &str, latest: &str| json!({ "deviceId": { "kind": "imei", "id": imei }, "earliest": earliest, "latest": latest });
    // As far apart as RFC 3339 allows: the whole history, in one page.
    let (status, page) = s
        .post_json(
            path,
            &ask("0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(!page["provisioningHistory"].as_array().unwrap().is_empty());
    // Reversed, and offsets that push a date past the representable range.
    for (earliest, latest) in [
        ("2024-01-01T00:00:00Z", "2020-01-01T00:00:00Z"),
        ("9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59Z"),
        ("", ""),
    ] {
        let (status, body) = s.post_json(path, &ask(earliest, latest)).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{earliest}..{latest}: {body}"
        );
        assert_eq!(body["errorCode"], "REQUEST_FAILED.InvalidParameter");
    }
    // Identifiers of the wrong type or absurd length.
    for device in [
        json!({"kind": "iccid", "id": "9".repeat(5_000)}),
        json!({"kind": 7, "id": []}),
    ] {
        let body = json!({ "deviceId": device, "earliest": "2020-01-01", "latest": "2021-01-01" });
        let (status, _) = s.post_json(path, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    still_serving(&s).await;
}

#[tokio::test]
async fn huge_or_malformed_bodies_and_paths() {
    let sim = start(SimConfig::default()).await;
    let s = Session::open(&sim).await;
    let details = format!("/fota/v3/devices/{ACCOUNT}");
    // More IMEIs than allowed.
    let list: Vec<String> = (0..1_001).map(|i| format!("{i:015}")).collect();
    let (status, body) = s.post_json(&details, &json!({ "deviceList": list })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Wrong element types are skipped, not fatal.
    let (status, body) = s
        .post_json(
            &details,
            &json!({ "deviceList": [null, {}, [], 1.5, -1, true] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deviceList"], json!([]));
    // A body far past any real request is refused before it is parsed.
    let big = "x".repeat(8 << 20);
    let r = s
        .post(&details, &Value::Null)
        .body(big)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    // Bytes that are not UTF-8, in the body and in a path segment.
    let r = s
        .post(&details, &Value::Null)
        .body(vec![0xff, 0xfe, b'{'])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = s
        .get("/fota/v2/logging/%FF%FE/devices/%C0/checkInHistory")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    still_serving(&s).await;
}
