//! Renders the typed records as ThingSpace JSON, quirks included.
//!
//! Which variant a record uses (`statusTime` or `updatedTime`, `fileList` or
//! `filesList`, `id` or `campaignId`, codes as strings, numbers or names, `"N/A"`)
//! is a deterministic function of the seed and the record, so a given record always
//! looks the same while a page mixes all variants: a client must handle each.

use serde_json::{Map, Value, json};

use crate::data::fleet::MODELS;
use crate::data::provisioning::ProvisioningEvent;
use crate::data::records::{CampaignDeviceStatus, CheckIn, DeviceInfo, UpgradeEntry};
use crate::data::rng::{domain, hash};
use crate::data::time::{date_only, go_default, iso_millis_z, iso_trimmed_z, rfc3339_offset};

/// Kinds of quirk decisions, salting the hash.
#[derive(Clone, Copy)]
enum Quirk {
    CheckInCodes = 1,
    UpgradeId = 2,
    CampaignTime = 3,
    FilesList = 4,
    UpgradeTime = 5,
    NotAvailable = 6,
}

/// A per-record draw in `0..1000`.
fn draw(seed: u64, quirk: Quirk, a: u64, b: u64) -> u64 {
    hash(seed, domain::WIRE ^ ((quirk as u64) << 8), a, b) % 1000
}

const CLIENT_TYPES: [&str; 8] = [
    "Unknown",
    "Device",
    "Unknown",
    "RovaContainer",
    "Unknown",
    "WiFiClient",
    "RovaClient",
    "RovaClientAppStore",
];
const RESULTS: [&str; 3] = ["Failed", "Succeeded", "Busy"];
const FAILURE_TYPES: [&str; 8] = [
    "None",
    "UnspecifiedError",
    "AuthenticationFailure",
    "EnrollmentPolicyFailure",
    "DecryptionFailure",
    "NoAssignedSetting",
    "EncryptionFailure",
    "ConfigurationErrors",
];

/// A code as the string `"0".."7"` (documented), a number, or its name.
fn code(style: u64, value: u8, names: &[&str]) -> Value {
    match style {
        0 => Value::String(value.to_string()),
        1 => json!(value),
        _ => Value::String(
            names
                .get(usize::from(value))
                .copied()
                .unwrap_or("Unknown")
                .to_string(),
        ),
    }
}

pub(crate) fn check_in(seed: u64, index: u64, imei: u64, position: usize, c: &CheckIn) -> Value {
    let d = draw(seed, Quirk::CheckInCodes, index, position as u64);
    let style = if d < 700 {
        0
    } else if d < 850 {
        1
    } else {
        2
    };
    json!({
        "deviceId": imei.to_string(),
        "clientType": code(style, c.client_type, &CLIENT_TYPES),
        "result": code(style, c.result, &RESULTS),
        "failureType": code(style, c.failure_type, &FAILURE_TYPES),
        "timeCompleted": iso_millis_z(c.time_ms),
    })
}

pub(crate) fn upgrade(
    seed: u64,
    index: u64,
    imei: u64,
    account: &str,
    position: usize,
    u: &UpgradeEntry,
) -> Value {
    let id_key = if draw(seed, Quirk::UpgradeId, index, position as u64) < 300 {
        "id"
    } else {
        "campaignId"
    };
    let label = MODELS.get(u.model).map_or("Unknown", |m| m.firmware_label);
    let mut m = Map::new();
    m.insert("deviceId".into(), json!(imei.to_string()));
    m.insert(id_key.into(), json!(u.campaign_id));
    m.insert("accountName".into(), json!(account));
    m.insert(
        "firmwareName".into(),
        json!(format!("{label}_{}_{}", u.firmware_from, u.firmware_to)),
    );
    m.insert("firmwareFrom".into(), json!(u.firmware_from));
    m.insert("firmwareTo".into(), json!(u.firmware_to));
    m.insert("startDate".into(), json!(date_only(u.start_ms)));
    m.insert("reportUpdatedTime".into(), json!(go_default(u.report_ms)));
    m.insert("status".into(), json!(u.status));
    m.insert("reason".into(), json!(u.reason));
    Value::Object(m)
}

pub(crate) fn campaign_device(
    seed: u64,
    campaign: u64,
    imei: u64,
    s: &CampaignDeviceStatus,
) -> Value {
    let time_key = if draw(seed, Quirk::CampaignTime, campaign, imei) < 500 {
        "statusTime"
    } else {
        "updatedTime"
    };
    let mut m = Map::new();
    m.insert("deviceId".into(), json!(imei.to_string()));
    m.insert("status".into(), json!(s.status));
    m.insert("resultReason".into(), json!(s.reason));
    m.insert(time_key.into(), json!(iso_trimmed_z(s.updated_ms)));
    m.insert(
        "recentAttemptTime".into(),
        json!(iso_trimmed_z(s.recent_attempt_ms)),
    );
    if let Some(next) = s.next_attempt_ms {
        m.insert("nextAttemptTime".into(), json!(iso_trimmed_z(next)));
    }
    Value::Object(m)
}

pub(crate) fn device(seed: u64, d: &DeviceInfo) -> Value {
    let model = MODELS.get(d.model);
    let upgrade_key = if draw(seed, Quirk::UpgradeTime, d.index, 0) < 250 {
        "updateTime"
    } else {
        "upgradeTime"
    };
    let last_connection = match (d.last_connection_ms, last_connection_shape(seed, d.index)) {
        (Some(ms), LastConnection::Rfc3339) => json!(iso_millis_z(ms)),
        (Some(ms), LastConnection::GoDefault) => json!(go_default(ms)),
        _ => json!("N/A"),
    };
    let mut m = Map::new();
    m.insert("deviceId".into(), json!(d.imei.to_string()));
    m.insert("mdn".into(), json!(d.mdn.to_string()));
    m.insert("model".into(), json!(model.map_or("Unknown", |m| m.model)));
    m.insert("make".into(), json!(model.map_or("Unknown", |m| m.make)));
    m.insert("firmware".into(), json!(d.firmware));
    m.insert("fotaEligible".into(), json!(d.fota_eligible));
    m.insert("licenseAssigned".into(), json!(d.license_assigned));
    m.insert("status".into(), json!(d.status));
    m.insert(
        "protocol".into(),
        json!(model.map_or("LWM2M", |m| m.protocol)),
    );
    if d.has_software {
        let files_key = if draw(seed, Quirk::FilesList, d.index, 0) < 300 {
            "fileList"
        } else {
            "filesList"
        };
        m.insert(
            "softwareList".into(),
            json!([{ "name": model.map_or("firmware", |m| m.firmware_label), "version": d.firmware,
                     "upgradeTime": go_default(d.upgrade_ms) }]),
        );
        m.insert(
            files_key.into(),
            json!([{ "name": format!("{}.bin", d.firmware) }]),
        );
    }
    m.insert("createTime".into(), json!(go_default(d.create_ms)));
    m.insert(upgrade_key.into(), json!(go_default(d.upgrade_ms)));
    m.insert("statusTime".into(), json!(go_default(d.status_ms)));
    m.insert("refreshTime".into(), json!(go_default(d.refresh_ms)));
    m.insert("lastConnectionTime".into(), last_connection);
    Value::Object(m)
}

/// How a device's `lastConnectionTime` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LastConnection {
    /// `2021-12-20T15:21:25.724Z`: the documented `date-time`.
    Rfc3339,
    /// `2021-12-20 15:21:25.724 +0000 UTC`: the seed example's shape.
    GoDefault,
    /// `"N/A"`.
    NotAvailable,
}

/// The shape of device `index`'s `lastConnectionTime` (a device without check-ins is
/// always `"N/A"`). Public SDKs generated from Verizon's API definitions parse only
/// the RFC 3339 shape, which is why the catalog lists devices that have it.
pub(crate) fn last_connection_shape(seed: u64, index: u64) -> LastConnection {
    match draw(seed, Quirk::NotAvailable, index, 0) {
        0..100 => LastConnection::NotAvailable,
        100..400 => LastConnection::GoDefault,
        _ => LastConnection::Rfc3339,
    }
}

pub(crate) fn provisioning(e: &ProvisioningEvent) -> Value {
    let extended = match &e.extended {
        Some(pairs) => Value::Array(
            pairs
                .iter()
                .map(|(k, v)| json!({ "key": k, "value": v }))
                .collect(),
        ),
        None => Value::Null,
    };
    json!({
        "occurredAt": rfc3339_offset(e.occurred_ms, e.offset_minutes),
        "status": e.status,
        "eventBy": e.event_by,
        "eventType": e.event_type,
        "servicePlan": e.service_plan,
        "mdn": e.mdn.map(|m| m.to_string()),
        "msisdn": e.msisdn,
        "extendedAttributes": extended,
    })
}
