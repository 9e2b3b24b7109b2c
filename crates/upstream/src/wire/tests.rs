//! Unit and property tests of the wire parsers: error paths, top-level shapes,
//! token secrecy, and "never panics" over arbitrary bytes and JSON values.
//! The seed payloads themselves are parsed in `tests/seeds.rs`.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[test]
fn unparseable_optional_timestamp_names_its_path() {
    let body = json!({"deviceList": [
        {"deviceId": "1"}, {"deviceId": "2"}, {"deviceId": "3"},
        {"deviceId": "4", "createTime": "yesterday"},
    ]});
    let err = parse_device_details_page(&bytes(&body)).unwrap_err();
    assert_eq!(err.field, "deviceList[3].createTime");
    assert!(err.message.contains("yesterday"), "{}", err.message);
}

#[test]
fn absent_spellings_of_optional_timestamps() {
    for absent in [json!(null), json!(""), json!("N/A"), json!(" n/a ")] {
        let body = json!({"deviceList": [{"deviceId": "1", "lastConnectionTime": absent}]});
        let page = parse_device_details_page(&bytes(&body)).unwrap();
        assert_eq!(page.devices[0].last_connection_time, None);
    }
}

#[test]
fn required_fields_name_their_path() {
    type Check = fn(&[u8]) -> Result<(), DecodeError>;
    let cases: [(Check, Value, &str); 6] = [
        (
            |b| parse_device_details_page(b).map(drop),
            json!({"deviceList": [{"mdn": "1"}]}),
            "deviceList[0].deviceId",
        ),
        (
            |b| parse_device_details_page(b).map(drop),
            json!({"deviceList": [{"deviceId": ""}]}),
            "deviceList[0].deviceId",
        ),
        (
            |b| parse_campaign_page(b).map(drop),
            json!({"deviceList": [{"deviceId": "1", "status": "x"}, {"status": "x"}]}),
            "deviceList[1].deviceId",
        ),
        (
            |b| parse_upgrade_history(b).map(drop),
            json!([{"deviceId": "1"}]),
            "[0].status",
        ),
        (
            |b| parse_provisioning_page(b).map(drop),
            json!({"provisioningHistory": [{"eventType": "Activate", "occurredAt": "N/A"}]}),
            "provisioningHistory[0].occurredAt",
        ),
        (
            |b| parse_device_details_page(b).map(drop),
            json!({"deviceList": [{"deviceId": "1", "filesList": [{"size": 3}]}]}),
            "deviceList[0].filesList[0].name",
        ),
    ];
    for (parse, body, path) in cases {
        let err = parse(&bytes(&body)).unwrap_err();
        assert_eq!(err.field, path, "{body}");
    }
}

#[test]
fn wrong_types_name_the_type_found() {
    let err = parse_campaign_page(br#"{"totalDevice": {"n": 1}}"#).unwrap_err();
    assert_eq!(err.field, "totalDevice");
    assert!(err.message.contains("found an object"), "{}", err.message);
    let err = parse_device_details_page(br#"{"deviceList": {"deviceId": "1"}}"#).unwrap_err();
    assert_eq!(err.field, "deviceList");
    let err = parse_device_details_page(br#"{"deviceList": ["1"]}"#).unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.message.as_str()),
        ("deviceList[0]", "expected an object, found a string")
    );
}

#[test]
fn top_level_shape_errors_have_an_empty_field() {
    let html = b"<html><body>502 Bad Gateway</body></html>";
    for (result, needle) in [
        (parse_campaign_page(html).map(drop), "HTML"),
        (parse_campaign_page(b"").map(drop), "empty"),
        (parse_campaign_page(b"[]").map(drop), "found a list"),
        (parse_check_in_history(b"{}").map(drop), "found an object"),
        (parse_upgrade_history(b"\"x\"").map(drop), "found a string"),
        (
            parse_provisioning_page(b"{\"provisioningHistory\": [").map(drop),
            "not valid JSON",
        ),
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.field, "");
        assert!(
            err.message.contains(needle),
            "{} lacks {needle}",
            err.message
        );
    }
}

#[test]
fn null_bodies_and_lists_are_empty() {
    assert_eq!(parse_check_in_history(b"null").unwrap(), vec![]);
    assert_eq!(parse_upgrade_history(b" [] ").unwrap(), vec![]);
    let page = parse_provisioning_page(br#"{"provisioningHistory": null}"#).unwrap();
    assert!(page.events.is_empty() && !page.has_more_data);
    let page =
        parse_campaign_page(b"\xEF\xBB\xBF{\"deviceList\": null, \"hasMoreData\": \"false\"}")
            .unwrap();
    assert!(page.devices.is_empty() && !page.has_more_data);
}

#[test]
fn extended_attributes_as_pairs_or_object() {
    let body = json!({"provisioningHistory": [
        {"occurredAt": "2015-12-17T13:56:13-05:00", "eventType": "Activate",
         "extendedAttributes": [{"key": "a", "value": "N/A"}, {"key": "b", "value": null}]},
        {"occurredAt": "2015-12-17T13:56:13-05:00", "eventType": "Activate",
         "extendedAttributes": {"c": "3", "d": 4}},
    ]});
    let page = parse_provisioning_page(&bytes(&body)).unwrap();
    let pairs: Vec<_> = page
        .events
        .iter()
        .flat_map(|e| e.extended_attributes.iter())
        .map(|kv| (kv.key.as_str(), kv.value.as_deref()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("a", Some("N/A")),
            ("b", None),
            ("c", Some("3")),
            ("d", Some("4"))
        ]
    );
}

#[test]
fn error_bodies_of_all_three_shapes() {
    let documented = parse_error_body(
        br#"{"errorCode":"FOTA.DEVICE.NotFound","errorMessage":"no such device"}"#,
    )
    .unwrap();
    assert_eq!(documented.error_code, "FOTA.DEVICE.NotFound");
    assert_eq!(documented.error_message.as_deref(), Some("no such device"));
    let fault = parse_error_body(
        br#"{"fault":{"code":900901,"message":"Invalid Credentials","description":"Make sure"}}"#,
    )
    .unwrap();
    assert_eq!(
        (fault.error_code.as_str(), fault.error_message.as_deref()),
        ("900901", Some("Invalid Credentials"))
    );
    let oauth =
        parse_error_body(br#"{"error":"invalid_client","error_description":"bad"}"#).unwrap();
    assert_eq!(oauth.error_code, "invalid_client");
    let bad_message =
        parse_error_body(br#"{"errorCode":"X.Y.Z","errorMessage":{"nested":1}}"#).unwrap();
    assert_eq!(
        (bad_message.error_code.as_str(), bad_message.error_message),
        ("X.Y.Z", None)
    );
    for not_error in [
        &b"<html>"[..],
        b"{}",
        b"[]",
        br#"{"errorCode":""}"#,
        br#"{"errorCode":{}}"#,
        br#"{"fault":"x"}"#,
    ] {
        assert_eq!(
            parse_error_body(not_error),
            None,
            "{}",
            String::from_utf8_lossy(not_error)
        );
    }
}

#[test]
fn an_absurd_error_code_is_bounded() {
    let code = "X".repeat(100_000);
    let body = serde_json::to_vec(&json!({ "errorCode": code, "errorMessage": "m" })).unwrap();
    let parsed = parse_error_body(&body).unwrap();
    assert_eq!(parsed.error_code.chars().count(), 200);
}

#[test]
fn tokens_parse_with_string_or_number_expiry() {
    let t = parse_oauth_token(
        br#"{"access_token":"abc","token_type":"Bearer","expires_in":"3599","scope":"x"}"#,
    )
    .unwrap();
    assert_eq!((t.access_token.as_str(), t.expires_in), ("abc", Some(3599)));
    let t = parse_oauth_token(br#"{"access_token":"abc","expires_in":3600}"#).unwrap();
    assert_eq!((t.token_type, t.expires_in), (None, Some(3600)));
    assert_eq!(
        parse_session_token(br#"{"sessionToken":"s3cr3t"}"#)
            .unwrap()
            .session_token,
        "s3cr3t"
    );
    assert_eq!(
        parse_session_token(br#"{"sessionToken":""}"#)
            .unwrap_err()
            .field,
        "sessionToken"
    );
    assert_eq!(
        parse_oauth_token(br#"{"token_type":"Bearer"}"#)
            .unwrap_err()
            .field,
        "access_token"
    );
}

/// A JSON value biased towards the fields the parsers read, so arbitrary input
/// reaches deep into every code path.
fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "deviceList",
            "deviceId",
            "filesList",
            "fileList",
            "softwareList",
            "name",
            "createTime",
            "upgradeTime",
            "updateTime",
            "statusTime",
            "updatedTime",
            "lastConnectionTime",
            "totalDevice",
            "deviceCount",
            "maxPageSize",
            "hasMoreData",
            "lastSeenDeviceId",
            "fotaEligible",
            "status",
            "campaignId",
            "id",
            "startDate",
            "clientType",
            "result",
            "failureType",
            "timeCompleted",
            "provisioningHistory",
            "occurredAt",
            "eventType",
            "extendedAttributes",
            "key",
            "value",
            "mdn",
            "access_token",
            "expires_in",
            "sessionToken",
            "errorCode",
            "fault",
            "code",
            "message",
            "error",
        ])
        .prop_map(str::to_owned),
        "[a-z]{1,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "N/A",
            "0",
            "1",
            "7",
            "true",
            "false",
            "2689",
            "-1",
            "Succeeded",
            "2022-01-25",
            "2022-01-26 03:45:01.608 +0000 UTC",
            "2015-12-17T13:56:13-05:00",
            "2022-13-45",
        ])
        .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 96, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn parse_all(body: &[u8]) -> Vec<Option<DecodeError>> {
    vec![
        parse_device_details_page(body).err(),
        parse_upgrade_history(body).err(),
        parse_check_in_history(body).err(),
        parse_campaign_page(body).err(),
        parse_provisioning_page(body).err(),
        parse_oauth_token(body).err(),
        parse_session_token(body).err(),
    ]
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_all(&body);
        let _ = parse_error_body(&body);
    }

    #[test]
    fn never_panics_on_arbitrary_json(v in arb_json()) {
        let body = bytes(&v);
        for err in parse_all(&body).into_iter().flatten() {
            // Paths are well formed: no leading dot, no empty segment.
            prop_assert!(!err.field.starts_with('.') && !err.field.contains(".."), "{:?}", err);
        }
        let _ = parse_error_body(&body);
    }

    #[test]
    fn pages_wrapped_around_arbitrary_devices_never_panic(devices in prop::collection::vec(arb_json(), 0..4)) {
        let body = bytes(&json!({"deviceList": devices, "provisioningHistory": devices}));
        let _ = parse_all(&body);
    }

    /// Whatever else is wrong with a token body, the token never reaches the error.
    #[test]
    fn tokens_never_appear_in_errors(
        token in "[A-Za-z0-9]{12,40}",
        other in arb_json(),
        broken in 0usize..4,
    ) {
        let bodies = [
            json!({"access_token": token, "expires_in": other}).to_string(),
            json!({"access_token": [token.clone()], "sessionToken": {"t": token}}).to_string(),
            json!({"sessionToken": [token]}).to_string(),
            // Truncated JSON: the syntax error must not quote the body.
            format!("{{\"access_token\":\"{token}\",\"expires_in\":"),
        ];
        let body = &bodies[broken];
        for err in [parse_oauth_token(body.as_bytes()).err(), parse_session_token(body.as_bytes()).err()].into_iter().flatten() {
            prop_assert!(!err.to_string().contains(&token), "{}", err);
        }
    }
}
