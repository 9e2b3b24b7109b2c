//! Five of the six ThingSpace data endpoints (the account's device list is in
//! `account_devices`), and the refusals and query parameters they share.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::gate::{Needs, enter_or_answer};
use super::respond::{bad_request, codes};
use crate::data::fleet::MODELS;
use crate::data::provisioning::{self, ProvisioningEvent};
use crate::data::records;
use crate::data::time::parse_request_time;
use crate::endpoint::Endpoint;
use crate::wire;

/// Most IMEIs a device-details request body may name.
const MAX_DETAILS_BODY: usize = 1_000;

/// A request the simulator refuses with ThingSpace's HTTP 400 error body.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refusal {
    #[error("Account {0} was not found")]
    Account(String),
    #[error("Device {0} was not found in this account")]
    Device(String),
    /// A device named by an identifier alone (provisioning history takes no account).
    #[error("Device {0} was not found")]
    Identifier(String),
    #[error("Campaign {0} was not found")]
    Campaign(String),
    #[error("{0}")]
    Invalid(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let code = match &self {
            Self::Account(_) => codes::ACCOUNT_NOT_FOUND,
            Self::Device(_) | Self::Identifier(_) => codes::DEVICE_NOT_FOUND,
            Self::Campaign(_) => codes::CAMPAIGN_NOT_FOUND,
            Self::Invalid(_) => codes::INVALID_PARAMETER,
        };
        bad_request(code, self.to_string())
    }
}

pub(super) fn answer(result: Result<Response, Refusal>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

pub(super) fn account_or_400(state: &AppState, acc: &str) -> Result<usize, Refusal> {
    state
        .world
        .fleet
        .account(acc)
        .ok_or_else(|| Refusal::Account(acc.to_string()))
}

fn device_or_400(state: &AppState, account: usize, imei: &str) -> Result<u64, Refusal> {
    state
        .world
        .device_in(account, imei)
        .ok_or_else(|| Refusal::Device(imei.to_string()))
}

/// `lastSeenDeviceId` from the query: `None` for absent, empty or `0`.
pub(super) fn last_seen(query: Option<&str>) -> Result<Option<u64>, Refusal> {
    let value = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "lastSeenDeviceId")
        .map(|(_, v)| v.trim().to_string());
    match value.as_deref() {
        None | Some("") | Some("0") => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| Refusal::Invalid(format!("lastSeenDeviceId {v:?} is not a device id"))),
    }
}

pub(super) fn protocol_filter(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "protocol")
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A per-device history read: the gate, the account and device lookups with their
/// documented refusals, then `list` renders the device's records as the JSON list.
async fn device_history(
    state: &AppState,
    endpoint: Endpoint,
    headers: &HeaderMap,
    (acc, imei): (&str, &str),
    list: fn(&AppState, usize, u64) -> Vec<Value>,
) -> Response {
    let _guard = enter_or_answer!(state, endpoint, headers, Needs::BearerAndSession);
    answer(account_or_400(state, acc).and_then(|account| {
        let index = device_or_400(state, account, imei)?;
        Ok(Json(list(state, account, index)).into_response())
    }))
}

pub(crate) async fn check_in_history(
    State(state): State<Arc<AppState>>,
    Path((acc, imei)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = (acc.as_str(), imei.as_str());
    device_history(&state, Endpoint::CheckInHistory, &headers, path, check_ins).await
}

fn check_ins(state: &AppState, _account: usize, index: u64) -> Vec<Value> {
    let fleet = &state.world.fleet;
    let imei = fleet.blocks.imei_of(index).unwrap_or_default();
    records::check_ins(fleet, index)
        .iter()
        .enumerate()
        .map(|(k, c)| wire::check_in(fleet.seed, index, imei, k, c))
        .collect()
}

pub(crate) async fn upgrade_history(
    State(state): State<Arc<AppState>>,
    Path((acc, imei)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = (acc.as_str(), imei.as_str());
    device_history(&state, Endpoint::UpgradeHistory, &headers, path, upgrades).await
}

fn upgrades(state: &AppState, account: usize, index: u64) -> Vec<Value> {
    let fleet = &state.world.fleet;
    let name = fleet.accounts.get(account).map_or("", |a| a.name.as_str());
    let imei = fleet.blocks.imei_of(index).unwrap_or_default();
    records::upgrade_history(fleet, index)
        .iter()
        .enumerate()
        .map(|(k, u)| wire::upgrade(fleet.seed, index, imei, name, k, u))
        .collect()
}

pub(crate) async fn campaign_devices(
    State(state): State<Arc<AppState>>,
    Path((acc, campaign_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let _guard = enter_or_answer!(
        state,
        Endpoint::CampaignDevices,
        headers,
        Needs::BearerAndSession
    );
    answer(campaign_answer(
        &state,
        &acc,
        &campaign_id,
        query.as_deref(),
    ))
}

fn campaign_answer(
    state: &AppState,
    acc: &str,
    campaign_id: &str,
    query: Option<&str>,
) -> Result<Response, Refusal> {
    let account = account_or_400(state, acc)?;
    let fleet = &state.world.fleet;
    let campaign = fleet
        .campaign(account, campaign_id.trim())
        .ok_or_else(|| Refusal::Campaign(campaign_id.to_string()))?;
    let cursor = last_seen(query)?;
    let page_size = state.pages.campaign;
    let mut index = cursor.map_or(campaign.start, |c| {
        fleet.blocks.first_after(c, campaign.start, campaign.end)
    });
    let mut list = Vec::with_capacity(page_size.min(1_000));
    let mut last_imei = None;
    while index < campaign.end && list.len() < page_size {
        if fleet.in_campaign(campaign, index) {
            let imei = fleet.blocks.imei_of(index).unwrap_or_default();
            let status = records::campaign_status(fleet, campaign, index);
            list.push(wire::campaign_device(
                fleet.seed,
                campaign.ordinal,
                imei,
                &status,
            ));
            last_imei = Some(imei);
        }
        index += 1;
    }
    let mut has_more = (index..campaign.end).any(|i| fleet.in_campaign(campaign, i));
    let mut next = if has_more { last_imei.unwrap_or(0) } else { 0 };
    if state.faults().breaks_pagination(Endpoint::CampaignDevices) {
        // The cursor never moves: the same lastSeenDeviceId comes back for ever.
        state.counters.fault("broken_pagination");
        has_more = true;
        next = cursor.or(last_imei).unwrap_or(0);
    }
    Ok(Json(json!({
        "totalDevice": campaign.devices.to_string(),
        "hasMoreData": has_more,
        "lastSeenDeviceId": next.to_string(),
        "maxPageSize": page_size,
        "deviceList": list,
    }))
    .into_response())
}

pub(crate) async fn device_details(
    State(state): State<Arc<AppState>>,
    Path(acc): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _guard = enter_or_answer!(
        state,
        Endpoint::DeviceDetails,
        headers,
        Needs::BearerAndSession
    );
    answer(details_answer(&state, &acc, query.as_deref(), &body))
}

fn details_answer(
    state: &AppState,
    acc: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, Refusal> {
    let account = account_or_400(state, acc)?;
    let cursor = last_seen(query)?;
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|_| Refusal::Invalid("The request body is not valid JSON".into()))?;
    let requested = parsed
        .get("deviceList")
        .and_then(Value::as_array)
        .ok_or_else(|| Refusal::Invalid("deviceList is required".into()))?;
    if requested.len() > MAX_DETAILS_BODY {
        return Err(Refusal::Invalid(format!(
            "deviceList names {} devices; at most {MAX_DETAILS_BODY} are allowed",
            requested.len()
        )));
    }
    // Found devices only, in ascending IMEI order (= index order), past the cursor.
    let mut found: Vec<u64> = requested
        .iter()
        .filter_map(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .filter_map(|s| state.world.device_in(account, &s))
        .collect();
    found.sort_unstable();
    found.dedup();
    let fleet = &state.world.fleet;
    // `protocol` filters by the device's management protocol (LWM2M, HTTP), as the
    // reference page documents; absent or empty means every protocol.
    if let Some(protocol) = protocol_filter(query) {
        found.retain(|i| {
            records::device_info(fleet, &state.world.mdns, *i)
                .and_then(|d| MODELS.get(d.model))
                .is_some_and(|m| m.protocol.eq_ignore_ascii_case(&protocol))
        });
    }
    if let Some(c) = cursor {
        found.retain(|i| fleet.blocks.imei_of(*i).is_some_and(|imei| imei > c));
    }
    let page_size = state.pages.details;
    let page = &found[..found.len().min(page_size)];
    let mut has_more = found.len() > page.len();
    let last_imei = page.last().and_then(|i| fleet.blocks.imei_of(*i));
    let mut next = if has_more { last_imei.unwrap_or(0) } else { 0 };
    if state.faults().breaks_pagination(Endpoint::DeviceDetails) {
        state.counters.fault("broken_pagination");
        has_more = true;
        next = cursor.or(last_imei).unwrap_or(0);
    }
    let list: Vec<Value> = page
        .iter()
        .filter_map(|i| records::device_info(fleet, &state.world.mdns, *i))
        .map(|d| wire::device(fleet.seed, &d))
        .collect();
    Ok(Json(json!({
        "accountName": fleet.accounts.get(account).map_or("", |a| a.name.as_str()),
        "deviceCount": list.len(),
        "deviceList": list,
        "hasMoreData": has_more,
        "lastSeenDeviceId": next.to_string(),
        "maxPageSize": page_size,
    }))
    .into_response())
}

pub(crate) async fn provisioning_history(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _guard = enter_or_answer!(
        state,
        Endpoint::ProvisioningHistory,
        headers,
        Needs::BearerAndSession
    );
    answer(provisioning_answer(&state, &body))
}

fn provisioning_answer(state: &AppState, body: &[u8]) -> Result<Response, Refusal> {
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|_| Refusal::Invalid("The request body is not valid JSON".into()))?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let device = parsed.get("deviceId");
    let (Some(kind), Some(id)) = (
        text(device.and_then(|d| d.get("kind"))),
        text(device.and_then(|d| d.get("id"))),
    ) else {
        return Err(Refusal::Invalid(
            "deviceId.kind and deviceId.id are required".into(),
        ));
    };
    let index = state
        .world
        .resolve(&kind, id.trim())
        .map_err(|e| Refusal::Invalid(e.to_string()))?
        .ok_or_else(|| Refusal::Identifier(format!("{kind} {id}")))?;
    let time = |name: &str| {
        text(parsed.get(name))
            .as_deref()
            .and_then(parse_request_time)
    };
    let (Some(earliest), Some(latest)) = (time("earliest"), time("latest")) else {
        return Err(Refusal::Invalid(
            "earliest and latest must be RFC 3339 date-times".into(),
        ));
    };
    if earliest > latest {
        return Err(Refusal::Invalid("earliest is after latest".into()));
    }
    let fleet = &state.world.fleet;
    let account = fleet
        .account_of(index)
        .and_then(|a| fleet.accounts.get(a))
        .map_or("", |a| a.name.as_str());
    let created = records::created_ms(fleet, index);
    let events = provisioning::events(
        fleet,
        index,
        created,
        state.world.mdns.mdn_of(index),
        account,
    );
    let (mut page, mut has_more) =
        provisioning::page(&events, earliest, latest, state.pages.provisioning);
    if state
        .faults()
        .breaks_pagination(Endpoint::ProvisioningHistory)
    {
        // Claim more while only repeating what the client already has (the records
        // at exactly `earliest`), so resending never makes progress.
        state.counters.fault("broken_pagination");
        let same = page
            .iter()
            .take_while(|e| e.occurred_ms == earliest)
            .count();
        page = &page[..same];
        has_more = true;
    }
    Ok(provisioning_response(page, has_more))
}

fn provisioning_response(page: &[ProvisioningEvent], has_more: bool) -> Response {
    let status = if has_more {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let list: Vec<Value> = page.iter().map(wire::provisioning).collect();
    (
        status,
        Json(json!({ "provisioningHistory": list, "hasMoreData": has_more })),
    )
        .into_response()
}
