//! The schemas of `/openapi.json`: the JSON the `/v1` routes send, which is the
//! GraphQL data of the same fields (a test in `super` compares each with its GraphQL
//! namesake), and the problem+json of their errors. Never built: utoipa reads them.

use chrono::{DateTime, NaiveDate, Utc};
use utoipa::ToSchema;

/// A ThingSpace billing account name: digits, `-`, digits, leading zeros kept, e.g.
/// `0000123456-00001`.
#[derive(ToSchema)]
#[schema(example = "0000123456-00001")]
#[allow(dead_code)]
pub(crate) struct AccountName(String);

/// A 15-digit IMEI whose last digit is its Luhn check digit. The pattern says only
/// "15 digits": a pattern cannot express the Luhn rule, which the server checks too
/// (a wrong check digit is a 400 `BAD_USER_INPUT`).
#[derive(ToSchema)]
#[schema(example = "361004961400806")]
#[allow(dead_code)]
pub(crate) struct Imei(String);

/// A FOTA campaign id: a UUID.
#[derive(ToSchema)]
#[schema(example = "f841e14a-7c9f-11ec-b56c-76bbdf26f3b9")]
#[allow(dead_code)]
pub(crate) struct CampaignId(String);

/// An optional part of a device to embed (`?include=`).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) enum IncludePart {
    /// Firmware upgrade history, newest first.
    UpgradeHistory,
    /// Check-ins, newest first.
    CheckIns,
    /// The latest check-in.
    LastCheckIn,
}

/// A device merged from its details, firmware upgrade history and check-ins.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct Device {
    imei: Imei,
    account: AccountName,
    mdn: Option<String>,
    make: Option<String>,
    model: Option<String>,
    firmware: Option<String>,
    fota_eligible: Option<bool>,
    license_assigned: Option<bool>,
    status: Option<String>,
    protocol: Option<String>,
    create_time: Option<DateTime<Utc>>,
    upgrade_time: Option<DateTime<Utc>>,
    status_time: Option<DateTime<Utc>>,
    refresh_time: Option<DateTime<Utc>>,
    /// Null when the upstream says N/A.
    last_connection_time: Option<DateTime<Utc>>,
    software: Vec<Software>,
    files: Vec<String>,
    /// Newest first; present with `include=upgradeHistory`.
    upgrade_history: Option<Vec<FirmwareUpgrade>>,
    /// Newest first; present with `include=checkIns`.
    check_ins: Option<Vec<CheckIn>>,
    /// Present with `include=lastCheckIn`.
    last_check_in: Option<CheckIn>,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct Software {
    name: String,
    version: Option<String>,
    upgrade_time: Option<DateTime<Utc>>,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct FirmwareUpgrade {
    campaign_id: Option<String>,
    firmware_name: Option<String>,
    firmware_from: Option<String>,
    firmware_to: Option<String>,
    start_date: Option<NaiveDate>,
    report_updated_time: Option<DateTime<Utc>>,
    /// Raw upstream status, e.g. UpgradeSuccess, UpgradeFailed, DeviceRejected.
    status: String,
    reason: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)]
pub(crate) enum ClientType {
    Unknown,
    Device,
    RovaContainer,
    WifiClient,
    RovaClient,
    RovaClientAppStore,
}

#[derive(ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)]
pub(crate) enum CheckInResult {
    Failed,
    Succeeded,
    Busy,
    Unknown,
}

#[derive(ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)]
pub(crate) enum CheckInFailure {
    None,
    UnspecifiedError,
    AuthenticationFailure,
    EnrollmentPolicyFailure,
    DecryptionFailure,
    NoAssignedSetting,
    EncryptionFailure,
    ConfigurationErrors,
    Unknown,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct CheckIn {
    client_type: ClientType,
    result: CheckInResult,
    failure_type: CheckInFailure,
    time_completed: Option<DateTime<Utc>>,
}

/// One device's status in a campaign.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct CampaignDevice {
    imei: Imei,
    status: String,
    result_reason: Option<String>,
    updated_time: Option<DateTime<Utc>>,
    recent_attempt_time: Option<DateTime<Utc>>,
    next_attempt_time: Option<DateTime<Utc>>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct BatchRequest {
    /// The IMEIs to read, in the order the answer keeps (`maxItems` is the running
    /// limit: `min(1000, limits.max_list_length)`).
    imeis: Vec<Imei>,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct BatchResponse {
    /// The devices found, in the order asked.
    devices: Vec<Device>,
    /// The IMEIs the account has no device for.
    not_found: Vec<Imei>,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct CampaignDevicesPage {
    items: Vec<CampaignDevice>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
    total_count: Option<u64>,
}

/// One page of an account's devices, ascending IMEI.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct AccountDevicesPage {
    items: Vec<Device>,
    /// Pass as `cursor` for the next page; null on the last page. A filtered page
    /// may hold fewer than `limit` devices (even none) and still have one.
    next_cursor: Option<String>,
    /// Devices in the account, when ThingSpace reports it (usually null).
    total_count: Option<u64>,
}

/// ThingSpace's own error, carried with `UPSTREAM_ERROR`.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct UpstreamErrorInfo {
    error_code: String,
    error_message: Option<String>,
}

/// RFC 9457 problem details.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct Problem {
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    /// One of [`super::problem_codes`] (the schema's `enum` is set by
    /// [`super::CommonErrors`]).
    code: String,
    upstream: Option<UpstreamErrorInfo>,
    request_id: Option<String>,
}
