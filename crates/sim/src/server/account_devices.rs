//! `GET /fota/v3/devices/{acc}?lastSeenDeviceId=&protocol=`: every device of an
//! account, one page at a time (the Verizon SDK's
//! `AccountDevicesController.get_account_device_information`).
//!
//! Paged like the campaign report: devices in ascending IMEI order (index order
//! within the account's range), at most `maxPageSize` (1,000) a page; `hasMoreData`
//! says whether devices follow and `lastSeenDeviceId` is the last IMEI of the page,
//! to send back for the next one (`"0"` when nothing follows). `protocol` keeps the
//! devices of that management protocol (case-insensitive, like the details endpoint;
//! absent or empty: every protocol; a value no device has: an empty list). Each
//! device is the very record, quirks included, that `POST /fota/v3/devices/{acc}`
//! answers for it, so the two reads never disagree. The body has the SDK model's
//! fields (`V3AccountDeviceList`): `accountName`, `hasMoreData`, `lastSeenDeviceId`,
//! `maxPageSize`, `deviceList`; like the SDK's model, no total.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::data_routes::{Refusal, account_or_400, answer, last_seen, protocol_filter};
use super::gate::{Needs, enter_or_answer};
use crate::data::fleet::MODELS;
use crate::data::records;
use crate::endpoint::Endpoint;
use crate::wire;

pub(crate) async fn account_devices(
    State(state): State<Arc<AppState>>,
    Path(acc): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let _guard = enter_or_answer!(
        state,
        Endpoint::AccountDevices,
        headers,
        Needs::BearerAndSession
    );
    answer(account_answer(&state, &acc, query.as_deref()))
}

fn account_answer(state: &AppState, acc: &str, query: Option<&str>) -> Result<Response, Refusal> {
    let account = account_or_400(state, acc)?;
    let fleet = &state.world.fleet;
    let range = fleet
        .accounts
        .get(account)
        .ok_or_else(|| Refusal::Account(acc.to_string()))?;
    let cursor = last_seen(query)?;
    let protocol = protocol_filter(query);
    let wanted = |index: u64| {
        protocol.as_deref().is_none_or(|p| {
            MODELS
                .get(fleet.blocks.model_of(index))
                .is_some_and(|m| m.protocol.eq_ignore_ascii_case(p))
        })
    };
    let page_size = state.pages.account;
    let mut index = cursor.map_or(range.start, |c| {
        fleet.blocks.first_after(c, range.start, range.end)
    });
    let mut page = Vec::with_capacity(page_size.min(1_000));
    while index < range.end && page.len() < page_size {
        if wanted(index) {
            page.push(index);
        }
        index += 1;
    }
    let mut has_more = (index..range.end).any(wanted);
    let last_imei = page.last().and_then(|i| fleet.blocks.imei_of(*i));
    let mut next = if has_more { last_imei.unwrap_or(0) } else { 0 };
    if state.faults().breaks_pagination(Endpoint::AccountDevices) {
        // The cursor never moves: the same lastSeenDeviceId comes back for ever.
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
        "accountName": range.name,
        "hasMoreData": has_more,
        "lastSeenDeviceId": next.to_string(),
        "maxPageSize": page_size,
        "deviceList": list,
    }))
    .into_response())
}
