//! Every example payload of the five ThingSpace seed pages, parsed verbatim, plus
//! variant payloads for each quirk UPSTREAM.md lists.
//!
//! `fixtures/seedNNN_*.json` are byte-for-byte copies of the examples in seed page
//! NNN (request bodies and the repeated error body included). The campaign example
//! of seed 002 is malformed as published (its device list is never closed and the
//! body ends in `}'`): the verbatim copy must give a `DecodeError`, never a panic,
//! and `seed002_campaign_page_repaired.json` is the minimal repair (`]` and `}` in
//! place of `}'`). `fixtures/variant_*` are ours, one quirk each.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, NaiveDate, Utc};
use devicegraph_upstream::model::{CheckInResult, ClientType, FailureType, Timestamp};
use devicegraph_upstream::time::parse_timestamp;
use devicegraph_upstream::wire::{
    parse_campaign_page, parse_check_in_history, parse_device_details_page, parse_error_body,
    parse_oauth_token, parse_provisioning_page, parse_session_token, parse_upgrade_history,
};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("fixtures/", $name)).as_slice()
    };
}

fn at(rfc3339: &str) -> Timestamp {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

fn some_at(rfc3339: &str) -> Option<Timestamp> {
    Some(at(rfc3339))
}

fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

// ---- seed 000: check-in history ----

#[test]
fn seed000_check_in_history() {
    let list = parse_check_in_history(fixture!("seed000_check_in_history.json")).unwrap();
    assert_eq!(list.len(), 1);
    let c = &list[0];
    assert_eq!(c.device_id.as_deref(), Some("990013907835573"));
    // The example's placeholder "string" is not a documented code: kept, not rejected.
    assert_eq!(c.client_type, ClientType::Other("string".into()));
    assert_eq!(c.result, CheckInResult::Other("string".into()));
    assert_eq!(c.failure_type, FailureType::Other("string".into()));
    assert_eq!(c.time_completed, some_at("2020-10-22T19:35:07.753Z"));
}

#[test]
fn variant_check_in_codes_as_numbers_strings_and_names() {
    let list = parse_check_in_history(fixture!("variant_check_in_codes.json")).unwrap();
    let codes: Vec<_> = list
        .iter()
        .map(|c| {
            (
                c.client_type.clone(),
                c.result.clone(),
                c.failure_type.clone(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            (
                ClientType::WifiClient,
                CheckInResult::Succeeded,
                FailureType::None
            ),
            (
                ClientType::RovaClient,
                CheckInResult::Busy,
                FailureType::ConfigurationErrors
            ),
            (
                ClientType::RovaClientAppStore,
                CheckInResult::Succeeded,
                FailureType::UnspecifiedError
            ),
            (
                ClientType::WifiClient,
                CheckInResult::Failed,
                FailureType::AuthenticationFailure
            ),
            (
                ClientType::Other("4".into()),
                CheckInResult::Other("Retrying".into()),
                FailureType::Other("9".into())
            ),
            (
                ClientType::RovaContainer,
                CheckInResult::Failed,
                FailureType::EncryptionFailure
            ),
        ]
    );
    let times: Vec<_> = list.iter().map(|c| c.time_completed).collect();
    let t = some_at("2020-10-22T19:35:07.753Z");
    assert_eq!(times, [t, t, None, None, None, None]);
}

// ---- seed 001: upgrade history ----

#[test]
fn seed001_upgrade_history() {
    let list = parse_upgrade_history(fixture!("seed001_upgrade_history.json")).unwrap();
    assert_eq!(list.len(), 5);
    let first = &list[0];
    assert_eq!(first.device_id.as_deref(), Some("15-digit IMEI"));
    assert_eq!(
        first.campaign_id.as_deref(),
        Some("252d7ffc-7e35-11ec-931d-76f56843c393")
    );
    assert_eq!(first.account_name.as_deref(), Some("0000123456-00001"));
    assert_eq!(
        first.firmware_name.as_deref(),
        Some("SEQUANSCommunications_GM01Q_SR1.2.0.0-10657_SR1.2.0.0-10512")
    );
    assert_eq!(first.firmware_from.as_deref(), Some("SR1.2.0.0-10657"));
    assert_eq!(first.firmware_to.as_deref(), Some("SR1.2.0.0-10512"));
    assert_eq!(first.start_date, date(2022, 1, 25));
    assert_eq!(
        first.reason.as_deref(),
        Some("Upgrade completed successfully")
    );

    // Go's default format, fractions of 2 and 3 digits, normalised to UTC instants.
    let times: Vec<_> = list.iter().map(|u| u.report_updated_time).collect();
    assert_eq!(
        times,
        [
            some_at("2022-01-26T03:45:01.608Z"),
            some_at("2022-01-04T02:45:00.670Z"),
            some_at("2021-12-20T16:00:00.268Z"),
            some_at("2021-12-14T23:18:53.092Z"),
            some_at("2021-11-22T21:12:16.765Z"),
        ]
    );
    let statuses: Vec<_> = list.iter().map(|u| u.status.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "UpgradeSuccess",
            "UpgradeSuccess",
            "DeviceRejected",
            "UpgradeFailed",
            "DeviceRejected"
        ]
    );
    let dates: Vec<_> = list.iter().map(|u| u.start_date).collect();
    assert_eq!(
        dates,
        [
            date(2022, 1, 25),
            date(2022, 1, 3),
            date(2021, 12, 20),
            date(2021, 12, 13),
            date(2021, 11, 22)
        ]
    );
}

#[test]
fn variant_upgrade_history_with_id_and_unknown_statuses() {
    let list = parse_upgrade_history(fixture!("variant_upgrade_history_id.json")).unwrap();
    assert_eq!(
        list[0].campaign_id.as_deref(),
        Some("252d7ffc-7e35-11ec-931d-76f56843c393")
    );
    assert_eq!(
        list[0].start_date,
        date(2022, 1, 25),
        "full timestamp as a date"
    );
    assert_eq!(
        list[0].report_updated_time,
        some_at("2022-01-26T03:45:01.608Z")
    );
    assert_eq!(list[0].status, "upgradeFailure");
    assert_eq!(list[0].reason, None);
    assert_eq!(
        list[1].campaign_id.as_deref(),
        Some("8f5e9a4a-6ce2-11ec-ace7-3ea293843397")
    );
    assert_eq!(list[1].start_date, None);
    assert_eq!(list[1].status, "UpgradeStatusNobodyDocumented");
}

// ---- seed 002: campaign report ----

#[test]
fn seed002_campaign_page_verbatim_is_a_decode_error() {
    let err = parse_campaign_page(fixture!("seed002_campaign_page_verbatim.json")).unwrap_err();
    assert_eq!(err.field, "");
    assert!(err.message.contains("not valid JSON"), "{}", err.message);
}

#[test]
fn seed002_campaign_page_repaired() {
    let page = parse_campaign_page(fixture!("seed002_campaign_page_repaired.json")).unwrap();
    assert_eq!(
        page.total_devices,
        Some(2689),
        "totalDevice sent as a string"
    );
    assert!(page.has_more_data);
    assert_eq!(page.last_seen_device_id.as_deref(), Some("15-digit IMEI"));
    assert_eq!(page.max_page_size, Some(1000));
    assert_eq!(page.devices.len(), 2);
    for d in &page.devices {
        assert_eq!(d.device_id, "15-digit IMEI");
        assert_eq!(d.status, "UpgradePending");
        assert_eq!(
            d.result_reason.as_deref(),
            Some(
                "Upgrade pending, the device upgrade is estimated to be scheduled for 06 Oct 22 18:05 UTC"
            )
        );
        // statusTime folded into updated_time.
        assert_eq!(d.updated_time, some_at("2022-10-05T21:05:27.129Z"));
        assert_eq!(d.recent_attempt_time, some_at("2022-10-05T21:05:01.190Z"));
        assert_eq!(d.next_attempt_time, some_at("2022-10-06T18:35:00Z"));
    }
}

#[test]
fn variant_campaign_page_with_integer_total_and_unknown_statuses() {
    let page = parse_campaign_page(fixture!("variant_campaign_page_integer_total.json")).unwrap();
    assert_eq!(page.total_devices, Some(2689));
    assert!(!page.has_more_data);
    assert_eq!(page.last_seen_device_id, None, "\"0\" means no more");
    let d = &page.devices;
    assert_eq!(
        (d[0].status.as_str(), d[1].status.as_str()),
        ("upgradeFailure", "SomeStatusFromTheFuture")
    );
    assert_eq!(d[0].updated_time, some_at("2022-10-05T21:05:27.129Z"));
    assert_eq!(d[0].next_attempt_time, None, "N/A");
    // The documented `updatedTime` wins over `statusTime` when both are sent.
    assert_eq!(d[1].updated_time, some_at("2022-10-05T21:05:27.129Z"));
    assert_eq!(d[1].result_reason, None);
}

// ---- seed 003: device details ----

#[test]
fn seed003_device_details_page() {
    let page = parse_device_details_page(fixture!("seed003_device_details_page.json")).unwrap();
    assert_eq!(page.account_name.as_deref(), Some("0000123456-00001"));
    assert_eq!(page.device_count, Some(2));
    assert!(!page.has_more_data, "absent hasMoreData");
    assert_eq!(page.last_seen_device_id, None);
    assert_eq!(page.max_page_size, None);
    assert_eq!(page.devices.len(), 2);

    let d = &page.devices[0];
    assert_eq!(d.device_id, "15-digit IMEI");
    assert_eq!(
        d.account_name.as_deref(),
        Some("0000123456-00001"),
        "inherited from the page"
    );
    assert_eq!(d.mdn.as_deref(), Some("10-digit MDN"));
    assert_eq!(d.model.as_deref(), Some("GM01Q"));
    assert_eq!(d.make.as_deref(), Some("SEQUANS COMMUNICATIONS"));
    assert_eq!(d.firmware.as_deref(), Some("SR1.2.0.0-10657"));
    assert_eq!(
        (d.fota_eligible, d.license_assigned),
        (Some(true), Some(true))
    );
    assert_eq!(
        (d.status.as_deref(), d.protocol.as_deref()),
        (Some("Active"), Some("LWM2M"))
    );
    assert!(d.software.is_empty() && d.files.is_empty());
    assert_eq!(d.create_time, some_at("2020-11-10T15:35:00.122Z"));
    assert_eq!(d.upgrade_time, some_at("2022-02-04T06:10:01.441Z"));
    assert_eq!(d.status_time, some_at("2022-02-04T04:03:04.048Z"));
    assert_eq!(d.refresh_time, some_at("2022-02-20T07:39:31.584Z"));
    assert_eq!(d.last_connection_time, some_at("2021-12-20T15:21:25.724Z"));

    let d = &page.devices[1];
    assert_eq!(d.model.as_deref(), Some("NRF9160"));
    assert_eq!(
        d.firmware.as_deref(),
        Some("ee58ac77-f1fd-4960-8dc4-4d32e118a6d4")
    );
    assert_eq!(d.create_time, some_at("2020-06-15T05:29:25.352Z"));
    assert_eq!(d.last_connection_time, some_at("2022-02-21T17:23:50.994Z"));
}

#[test]
fn variant_device_details_sdk_shape() {
    let page = parse_device_details_page(fixture!("variant_device_details_sdk.json")).unwrap();
    assert_eq!(page.device_count, Some(2));
    assert!(page.has_more_data, "\"true\" as a string");
    assert_eq!(
        page.last_seen_device_id.as_deref(),
        Some("990013907835578"),
        "number on the wire"
    );
    assert_eq!(page.max_page_size, Some(1000));

    let a = &page.devices[0];
    assert_eq!(a.mdn, None, "empty string");
    assert_eq!(
        (a.fota_eligible, a.license_assigned),
        (Some(false), Some(true))
    );
    assert_eq!(
        a.files,
        ["fw-a.bin", "fw-b.bin"],
        "fileList of strings and objects"
    );
    assert_eq!(a.software.len(), 1);
    assert_eq!(a.software[0].name, "agent");
    assert_eq!(a.software[0].version.as_deref(), Some("1.2.3"));
    assert_eq!(
        a.software[0].upgrade_time,
        some_at("2022-01-26T03:45:01.608Z")
    );
    assert_eq!(
        a.upgrade_time,
        some_at("2022-02-17T04:03:21.758Z"),
        "updateTime"
    );
    assert_eq!(a.status_time, some_at("2022-02-18T07:32:19.246Z"));
    assert_eq!(a.refresh_time, some_at("2022-02-20T00:00:00Z"), "date only");
    assert_eq!(a.last_connection_time, None, "N/A");

    let b = &page.devices[1];
    assert_eq!(
        b.account_name.as_deref(),
        Some("0000123456-00002"),
        "own account wins"
    );
    assert_eq!((b.mdn.as_deref(), b.status.as_deref()), (None, None));
    assert_eq!(b.license_assigned, Some(false));
    assert!(b.software.is_empty(), "null list");
    assert_eq!(b.files, ["x.bin"], "filesList of objects");
    assert_eq!(
        b.create_time,
        some_at("2020-06-15T05:29:25Z"),
        "Go format without fraction"
    );
    assert_eq!(
        b.upgrade_time,
        some_at("2022-02-17T04:03:21.758Z"),
        "-0500 EST with m="
    );
    assert_eq!((b.status_time, b.refresh_time), (None, None));
}

#[test]
fn variant_invalid_timestamp_names_the_field() {
    let err = parse_device_details_page(fixture!("variant_invalid_timestamp.json")).unwrap_err();
    assert_eq!(err.field, "deviceList[1].createTime");
}

#[test]
fn variant_html_body_is_a_top_level_decode_error() {
    for err in [
        parse_device_details_page(fixture!("variant_html_body.html")).unwrap_err(),
        parse_check_in_history(fixture!("variant_html_body.html")).unwrap_err(),
    ] {
        assert_eq!(err.field, "");
        assert!(err.message.contains("HTML"), "{}", err.message);
    }
}

#[test]
fn seed003_device_details_request_shape() {
    // The request example, kept so the client's body can be compared with it.
    let v: serde_json::Value =
        serde_json::from_slice(fixture!("seed003_device_details_request.json")).unwrap();
    assert_eq!(v["deviceList"].as_array().map(Vec::len), Some(2));
}

// ---- seed 004: provisioning history ----

#[test]
fn seed004_provisioning_page() {
    let page = parse_provisioning_page(fixture!("seed004_provisioning_page.json")).unwrap();
    assert!(!page.has_more_data);
    assert_eq!(page.events.len(), 2);
    let e = &page.events[0];
    assert_eq!(
        e.occurred_at,
        at("2015-12-17T18:56:13Z"),
        "-05:00 normalised"
    );
    assert_eq!(e.status.as_deref(), Some("Success"));
    assert_eq!(e.event_by.as_deref(), Some("Harry Potter"));
    assert_eq!(e.event_type, "Activation Confirmed");
    assert_eq!(e.service_plan.as_deref(), Some("Tablet5GB"));
    assert_eq!(e.mdn, None, "mdn: null");
    assert_eq!(e.msisdn.as_deref(), Some("15086303371"));
    assert!(e.extended_attributes.is_empty(), "extendedAttributes: null");
    let e = &page.events[1];
    assert_eq!(e.occurred_at, at("2015-12-17T19:37:17Z"));
    assert_eq!(e.event_type, "Mobile Terminated SMS Message Sent");
    assert_eq!(e.msisdn.as_deref(), Some("5086303371"));
}

#[test]
fn variant_provisioning_page_with_more_data() {
    let page = parse_provisioning_page(fixture!("variant_provisioning_page_more.json")).unwrap();
    assert!(page.has_more_data);
    let [a, b] = page.events.as_slice() else {
        panic!("two events")
    };
    assert_eq!(
        a.occurred_at, b.occurred_at,
        "Go and RFC 3339 spellings of one instant"
    );
    assert_eq!(a.occurred_at, at("2015-12-17T18:56:13Z"));
    assert_eq!(a.mdn.as_deref(), Some("5086303371"));
    let attrs: Vec<_> = a
        .extended_attributes
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_deref()))
        .collect();
    assert_eq!(
        attrs,
        [("SkuNumber", Some("VZW123")), ("PreIMEI", Some(""))]
    );
    assert_eq!((b.mdn.as_deref(), b.service_plan.as_deref()), (None, None));
}

#[test]
fn seed004_provisioning_request_timestamps() {
    let v: serde_json::Value =
        serde_json::from_slice(fixture!("seed004_provisioning_request.json")).unwrap();
    assert_eq!(v["deviceId"]["kind"], "iccid");
    let earliest = v["earliest"].as_str().and_then(parse_timestamp);
    let latest = v["latest"].as_str().and_then(parse_timestamp);
    assert_eq!(
        (earliest, latest),
        (
            some_at("2015-09-16T00:00:01Z"),
            some_at("2015-09-18T00:00:01Z")
        )
    );
}

// ---- the error body every seed page documents, and the auth bodies ----

#[test]
fn every_seed_error_body() {
    for body in [
        fixture!("seed000_error_body.json"),
        fixture!("seed001_error_body.json"),
        fixture!("seed002_error_body.json"),
        fixture!("seed003_error_body.json"),
        fixture!("seed004_error_body.json"),
    ] {
        let e = parse_error_body(body).unwrap();
        assert_eq!(e.error_code, "error code string");
        assert_eq!(e.error_message.as_deref(), Some("error message string"));
    }
}

#[test]
fn variant_gateway_fault() {
    let e = parse_error_body(fixture!("variant_gateway_fault.json")).unwrap();
    assert_eq!(
        (e.error_code.as_str(), e.error_message.as_deref()),
        ("900901", Some("Invalid Credentials"))
    );
}

#[test]
fn variant_tokens() {
    let t = parse_oauth_token(fixture!("variant_oauth_token.json")).unwrap();
    assert_eq!(t.access_token, "e5e3d2c5-0000-4000-8000-fixturetoken");
    assert_eq!(t.token_type.as_deref(), Some("Bearer"));
    assert_eq!(t.expires_in, Some(3599), "string on the wire");
    assert_eq!(t.scope.as_deref(), Some("ts.mtas ts.transaction"));
    assert!(!format!("{t:?}").contains("fixturetoken"), "Debug redacts");
    let s = parse_session_token(fixture!("variant_session_token.json")).unwrap();
    assert_eq!(s.session_token, "1d1f8e7a-0000-4000-8000-fixturesession");
}

/// Every account name and campaign id of the seed pages' examples, and every one the
/// simulator generates, passes the identifier checks (`ids.rs`): the rules refuse
/// typos and placeholders, not a real account or campaign.
#[tokio::test]
async fn the_seed_pages_and_the_simulators_ids_pass_the_identifier_rules() {
    use devicegraph_upstream::{AccountName, CampaignId};
    fn collect(value: &serde_json::Value, key: &str, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(members) => {
                for (name, member) in members {
                    match member {
                        serde_json::Value::String(s) if name == key => out.push(s.clone()),
                        _ => collect(member, key, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| collect(i, key, out)),
            _ => {}
        }
    }
    let (mut accounts, mut campaigns) = (Vec::new(), Vec::new());
    for page in [
        fixture!("seed001_upgrade_history.json"),
        fixture!("seed002_campaign_page_repaired.json"),
        fixture!("seed003_device_details_page.json"),
    ] {
        let value: serde_json::Value = serde_json::from_slice(page).unwrap();
        collect(&value, "accountName", &mut accounts);
        collect(&value, "campaignId", &mut campaigns);
    }
    assert_eq!(
        (accounts.len(), campaigns.len()),
        (6, 5),
        "the seeds' examples"
    );

    for devices in [10_000, 200_000] {
        let sim = devicegraph_sim::spawn_on(
            devicegraph_sim::SimConfig {
                devices,
                ..devicegraph_sim::SimConfig::default()
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let catalog = sim.catalog();
        accounts.extend(catalog.accounts.iter().cloned());
        campaigns.extend(catalog.campaigns.iter().map(|c| c.id.clone()));
        // Upgrade history names the campaigns of other devices too.
        accounts.extend(catalog.campaigns.iter().map(|c| c.account.clone()));
    }
    assert!(
        accounts.len() > 10 && campaigns.len() > 30,
        "{accounts:?} {campaigns:?}"
    );
    for account in &accounts {
        assert!(account.parse::<AccountName>().is_ok(), "{account}");
    }
    for campaign in &campaigns {
        assert!(campaign.parse::<CampaignId>().is_ok(), "{campaign}");
    }
}
