//! `POST /m2m/v1/devices/history/actions/list`: the provisioning events (activate,
//! suspend, restore, ...) of one device, by any identifier kind, in a time window.
//!
//! Paging: by time. The body names the device and `[earliest, latest]`; the upstream
//! answers up to 500 records, oldest first, with HTTP 200 for the last page and 202
//! when more remain. The next request moves `earliest` to the last record's
//! `occurredAt`, so it repeats every record at that instant: [`BoundaryDedup`] drops
//! exactly those repeats and [`ProvisioningPager`] ends a walk that stops advancing.
//! Quirks: the 202 status is the "more" signal even when the body's `hasMoreData`
//! is missing; `earliest`/`latest` are sent with full sub-second precision;
//! `occurredAt` and `eventType` are required; `extendedAttributes` is a list of
//! `{key, value}`, a plain object or `null`.

use std::collections::HashMap;

use async_stream::try_stream;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Client, decode, json_body, post};
use crate::decode::walk::Field;
use crate::decode::{DecodeError, body_with, object_body};
use crate::error::{Endpoint, UpstreamError};
use crate::ids::DeviceIdentifier;
use crate::paging::{MAX_PAGES, pagination};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: Option<String>,
}

/// One provisioning event of `POST /m2m/v1/devices/history/actions/list`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProvisioningEvent {
    pub occurred_at: Timestamp,
    pub event_type: String,
    pub status: Option<String>,
    pub event_by: Option<String>,
    pub mdn: Option<String>,
    pub msisdn: Option<String>,
    pub service_plan: Option<String>,
    /// `null` on the wire becomes empty.
    pub extended_attributes: Vec<KeyValue>,
}

/// One response of the provisioning-history endpoint (status 200 = last, 202 = more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisioningPage {
    pub events: Vec<ProvisioningEvent>,
    pub has_more_data: bool,
}

impl Client {
    /// One provisioning-history request (200 = last page, 202 = more).
    pub async fn provisioning_history_page(
        &self,
        device: &DeviceIdentifier,
        earliest: DateTime<Utc>,
        latest: DateTime<Utc>,
    ) -> Result<ProvisioningPage, UpstreamError> {
        const EP: Endpoint = Endpoint::ProvisioningHistory;
        let url = self.url(&["m2m", "v1", "devices", "history", "actions", "list"]);
        // Full sub-second precision: a truncated `earliest` would bring back records
        // from before the boundary that the dedup would not recognise as repeats.
        let body = json_body(
            EP,
            &serde_json::json!({
                "deviceId": { "kind": device.kind().wire_name(), "id": device.id() },
                "earliest": earliest.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                "latest": latest.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            }),
        )?;
        let response = self.call(EP, None, post(url, body)).await?;
        let mut page = decode(EP, &response, parse_provisioning_page)?;
        // 202 is the documented "more" signal; honour it even if the body's
        // hasMoreData is missing.
        page.has_more_data |= response.status == reqwest::StatusCode::ACCEPTED;
        Ok(page)
    }

    /// All provisioning events in `[earliest, latest]`, oldest first, across 202
    /// pages, with exactly the repeated boundary records dropped.
    pub fn provisioning_history(
        &self,
        device: DeviceIdentifier,
        earliest: DateTime<Utc>,
        latest: DateTime<Utc>,
    ) -> BoxStream<'static, Result<ProvisioningEvent, UpstreamError>> {
        let client = self.clone();
        Box::pin(try_stream! {
            let mut pager = ProvisioningPager::new(earliest);
            loop {
                let page = client
                    .provisioning_history_page(&device, pager.earliest(), latest)
                    .await?;
                let (fresh, more) = pager.accept(page)?;
                for event in fresh {
                    yield event;
                }
                if !more {
                    break;
                }
            }
        })
    }
}

/// Drops exactly the provisioning records a 202 page repeats.
///
/// After a page ending at time `T`, the next request starts at `earliest = T`, so the
/// upstream sends again every record at `T` it already sent. We keep the multiset of
/// records received with `occurredAt == T` and drop each repeat once: distinct events
/// sharing `T` are kept, and identical events sent twice in the original history are
/// counted, not collapsed.
#[derive(Debug, Default)]
pub(crate) struct BoundaryDedup {
    boundary: Option<DateTime<Utc>>,
    received_at_boundary: HashMap<ProvisioningEvent, usize>,
}

impl BoundaryDedup {
    /// Filters one page and moves the boundary to its last record.
    pub(crate) fn accept(&mut self, events: Vec<ProvisioningEvent>) -> Vec<ProvisioningEvent> {
        let last = events.last().map(|e| e.occurred_at);
        let mut repeats = self.received_at_boundary.clone();
        let fresh: Vec<ProvisioningEvent> = events
            .into_iter()
            .filter(|e| {
                if Some(e.occurred_at) != self.boundary {
                    return true;
                }
                match repeats.get_mut(e) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        false
                    }
                    _ => true,
                }
            })
            .collect();
        let Some(last) = last else {
            return fresh;
        };
        // Records dropped above were at the old boundary and are counted already.
        if Some(last) != self.boundary {
            self.boundary = Some(last);
            self.received_at_boundary.clear();
        }
        for e in fresh.iter().filter(|e| e.occurred_at == last) {
            *self.received_at_boundary.entry(e.clone()).or_insert(0) += 1;
        }
        fresh
    }
}

/// The provisioning-history walk through 202 pages, without the I/O.
#[derive(Debug)]
pub(crate) struct ProvisioningPager {
    earliest: DateTime<Utc>,
    dedup: BoundaryDedup,
    pages: u64,
}

impl ProvisioningPager {
    pub(crate) fn new(earliest: DateTime<Utc>) -> Self {
        Self {
            earliest,
            dedup: BoundaryDedup::default(),
            pages: 0,
        }
    }

    /// `earliest` for the next request.
    pub(crate) fn earliest(&self) -> DateTime<Utc> {
        self.earliest
    }

    /// Takes the page answered for [`Self::earliest`]: its new records, and whether
    /// to fetch more.
    pub(crate) fn accept(
        &mut self,
        page: ProvisioningPage,
    ) -> Result<(Vec<ProvisioningEvent>, bool), UpstreamError> {
        const EP: Endpoint = Endpoint::ProvisioningHistory;
        self.pages += 1;
        let last = page.events.last().map(|e| e.occurred_at);
        let fresh = self.dedup.accept(page.events);
        if !page.has_more_data {
            return Ok((fresh, false));
        }
        let Some(last) = last else {
            return Err(pagination(EP, "hasMoreData with an empty page"));
        };
        if last < self.earliest {
            return Err(pagination(EP, "page ends before the requested earliest"));
        }
        if last == self.earliest && fresh.is_empty() {
            return Err(pagination(
                EP,
                "page neither moves past earliest nor adds a record",
            ));
        }
        if self.pages >= MAX_PAGES {
            return Err(pagination(EP, format!("more than {MAX_PAGES} pages")));
        }
        self.earliest = last;
        Ok((fresh, true))
    }
}

/// `POST /m2m/v1/devices/history/actions/list` (status 200 or 202; missing
/// `hasMoreData` is `false`).
pub fn parse_provisioning_page(body: &[u8]) -> Result<ProvisioningPage, DecodeError> {
    body_with(
        body,
        object_body,
        "a provisioning history page",
        provisioning_page,
    )
}

/// One 200/202 body; the status code itself is the client's business.
fn provisioning_page(root: Field<'_, '_>) -> Result<ProvisioningPage, DecodeError> {
    let page = root.object()?;
    Ok(ProvisioningPage {
        events: page
            .field(&["provisioningHistory"])
            .list(provisioning_event)?,
        has_more_data: page.field(&["hasMoreData"]).flag()?,
    })
}

fn provisioning_event(item: Field<'_, '_>) -> Result<ProvisioningEvent, DecodeError> {
    let e = item.object()?;
    Ok(ProvisioningEvent {
        // Required: pagination moves `earliest` to it and deduplicates on it.
        occurred_at: e.field(&["occurredAt"]).req_timestamp()?,
        event_type: e.field(&["eventType"]).req_string()?,
        status: e.field(&["status"]).opt_string()?,
        event_by: e.field(&["eventBy"]).opt_string()?,
        mdn: e.field(&["mdn"]).opt_string()?,
        msisdn: e.field(&["msisdn"]).opt_string()?,
        service_plan: e.field(&["servicePlan"]).opt_string()?,
        extended_attributes: extended_attributes(e.field(&["extendedAttributes"]))?,
    })
}

/// Documented as a list of `{key, value}`; `null` is empty, and a plain JSON
/// object `{"k": "v"}` is accepted as the same pairs. Values are kept exactly as
/// sent (an attribute whose value is `"N/A"` says so on purpose).
fn extended_attributes(field: Field<'_, '_>) -> Result<Vec<KeyValue>, DecodeError> {
    if let Some(Value::Object(_)) = field.value() {
        return field.object()?.entries(|key, value| {
            Ok(KeyValue {
                key: key.to_owned(),
                value: value.opt_raw_string()?,
            })
        });
    }
    field.list(|item| {
        let kv = item.object()?;
        Ok(KeyValue {
            key: kv.field(&["key"]).req_string()?,
            value: kv.field(&["value"]).opt_raw_string()?,
        })
    })
}

#[cfg(test)]
#[path = "provisioning_tests.rs"]
mod tests;
