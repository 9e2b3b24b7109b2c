//! `POST /fota/v3/devices/{acc}?lastSeenDeviceId=N` with body `{"deviceList": [IMEI,
//! ...]}`: the details (make, model, firmware, connection times, software) of the
//! named devices of one account.
//!
//! One request names at most [`DETAILS_CHUNK`] (1,000) IMEIs, so this is the one
//! place that chunks a batch: sorted, deduplicated, cut into chunks of at most 1,000.
//! Paging within a chunk: by `lastSeenDeviceId` in ascending IMEI order (first request
//! `0`), walked by `paging`'s `follow_cursor`. Quirks: an IMEI the account does not
//! know is simply absent from the answer; a device usually carries no `accountName`
//! and inherits the page's; the upgrade time is `upgradeTime` or `updateTime`; files
//! are `filesList` or `fileList`; software and file entries may be bare names;
//! `lastConnectionTime` may be `"N/A"`.

use async_stream::try_stream;
use futures::stream::{BoxStream, Stream};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Client, decode, json_body, post};
use crate::decode::walk::Field;
use crate::decode::{DecodeError, body_with, object_body};
use crate::error::{Endpoint, UpstreamError};
use crate::ids::{AccountName, Imei};
use crate::paging::{CursorPage, follow_cursor};
use crate::time::Timestamp;

/// Most IMEIs one device-details request may name.
const DETAILS_CHUNK: usize = 1_000;

/// Device details from `POST /fota/v3/devices/{acc}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceDetails {
    /// The IMEI exactly as the upstream sent it.
    pub device_id: String,
    pub account_name: Option<String>,
    pub mdn: Option<String>,
    pub model: Option<String>,
    pub make: Option<String>,
    pub firmware: Option<String>,
    pub fota_eligible: Option<bool>,
    pub license_assigned: Option<bool>,
    pub status: Option<String>,
    pub protocol: Option<String>,
    pub software: Vec<Software>,
    /// `filesList` / `fileList`, reduced to file names.
    pub files: Vec<String>,
    pub create_time: Option<Timestamp>,
    /// `upgradeTime` / `updateTime`.
    pub upgrade_time: Option<Timestamp>,
    pub status_time: Option<Timestamp>,
    pub refresh_time: Option<Timestamp>,
    /// `None` when the upstream says `"N/A"`.
    pub last_connection_time: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Software {
    pub name: String,
    pub version: Option<String>,
    pub upgrade_time: Option<Timestamp>,
}

/// One page of device details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceDetailsPage {
    pub account_name: Option<String>,
    pub device_count: Option<u64>,
    pub has_more_data: bool,
    /// `None` when absent or `"0"` (no more data).
    pub last_seen_device_id: Option<String>,
    pub max_page_size: Option<u32>,
    pub devices: Vec<DeviceDetails>,
}

/// One chunk of a details batch and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DetailsChunk {
    /// The IMEIs this chunk asked for: sorted, distinct, at most 1,000.
    pub imeis: Vec<Imei>,
    /// The chunk's devices in the upstream's (IMEI) order, or why the chunk failed. An IMEI of
    /// `imeis` absent from a successful answer is unknown to the account.
    pub result: Result<Vec<DeviceDetails>, UpstreamError>,
}

impl Client {
    /// One request for details of at most 1,000 IMEIs, after `last_seen`.
    pub async fn device_details_page(
        &self,
        account: &AccountName,
        imeis: &[Imei],
        last_seen: Option<&str>,
    ) -> Result<DeviceDetailsPage, UpstreamError> {
        const EP: Endpoint = Endpoint::DeviceDetails;
        if imeis.len() > DETAILS_CHUNK {
            return Err(UpstreamError::InvalidRequest {
                endpoint: EP,
                reason: format!(
                    "{} IMEIs in one request; the upstream takes at most {DETAILS_CHUNK}",
                    imeis.len()
                ),
            });
        }
        if imeis.is_empty() {
            // Nothing to ask: spare the upstream a request.
            return Ok(DeviceDetailsPage {
                account_name: Some(account.as_str().to_owned()),
                device_count: Some(0),
                has_more_data: false,
                last_seen_device_id: None,
                max_page_size: None,
                devices: Vec::new(),
            });
        }
        let mut url = self.url(&["fota", "v3", "devices", account.as_str()]);
        url.query_pairs_mut()
            .append_pair("lastSeenDeviceId", last_seen.unwrap_or("0"));
        let list: Vec<&str> = imeis.iter().map(Imei::as_str).collect();
        let body = json_body(EP, &serde_json::json!({ "deviceList": list }))?;
        let response = self.call(EP, Some(account), post(url, body)).await?;
        decode(EP, &response, parse_device_details_page)
    }

    /// Details for any number of IMEIs as one stream: the chunks of
    /// [`Self::device_details_batch`] (at most 1,000 sorted, distinct IMEIs each),
    /// asked one after the other, each following `lastSeenDeviceId`; the first error
    /// ends the stream. Unknown IMEIs are simply absent from the stream.
    pub fn device_details(
        &self,
        account: AccountName,
        imeis: Vec<Imei>,
    ) -> BoxStream<'static, Result<DeviceDetails, UpstreamError>> {
        let client = self.clone();
        Box::pin(try_stream! {
            for chunk in chunks(imeis) {
                let devices = client.chunk_details(&account, &chunk);
                futures::pin_mut!(devices);
                while let Some(device) = devices.next().await {
                    yield device?;
                }
            }
        })
    }

    /// Details for any number of IMEIs of one account: sorted, deduplicated, cut into
    /// chunks of at most 1,000 sent concurrently (the request gate paces them), each
    /// chunk following `lastSeenDeviceId` through its pages. One answer per chunk, so
    /// one failed chunk does not fail the others; an IMEI absent from a successful
    /// chunk is unknown to the account.
    pub async fn device_details_batch(
        &self,
        account: &AccountName,
        imeis: Vec<Imei>,
    ) -> Vec<DetailsChunk> {
        let answers = chunks(imeis).into_iter().map(|imeis| async move {
            let result = self.chunk_details(account, &imeis).try_collect().await;
            DetailsChunk { imeis, result }
        });
        futures::future::join_all(answers).await
    }

    /// Every device of one chunk, following `lastSeenDeviceId` through its pages.
    fn chunk_details<'a>(
        &'a self,
        account: &'a AccountName,
        chunk: &'a [Imei],
    ) -> impl Stream<Item = Result<DeviceDetails, UpstreamError>> + Send + 'a {
        follow_cursor(
            Endpoint::DeviceDetails,
            |d: &DeviceDetails| d.device_id.as_str(),
            move |last_seen| async move {
                let page = self
                    .device_details_page(account, chunk, last_seen.as_deref())
                    .await?;
                Ok(CursorPage {
                    has_more: page.has_more_data,
                    reported: page.last_seen_device_id,
                    items: page.devices,
                })
            },
        )
    }
}

/// `imeis` sorted (the upstream pages each request in IMEI order), deduplicated and
/// cut into chunks of at most [`DETAILS_CHUNK`].
fn chunks(mut imeis: Vec<Imei>) -> Vec<Vec<Imei>> {
    imeis.sort();
    imeis.dedup();
    imeis.chunks(DETAILS_CHUNK).map(<[Imei]>::to_vec).collect()
}

/// `POST /fota/v3/devices/{acc}`. A device's `accountName` falls back to the page's.
pub fn parse_device_details_page(body: &[u8]) -> Result<DeviceDetailsPage, DecodeError> {
    body_with(
        body,
        object_body,
        "a device details page",
        device_details_page,
    )
}

/// Both spellings of the upgrade timestamp (`upgradeTime` documented, `updateTime` SDK).
const UPGRADE_TIME: &[&str] = &["upgradeTime", "updateTime"];

fn device_details_page(root: Field<'_, '_>) -> Result<DeviceDetailsPage, DecodeError> {
    let page = root.object()?;
    let account_name = page.field(&["accountName"]).opt_string()?;
    let devices = page
        .field(&["deviceList"])
        .list(|item| device_details(item, account_name.as_deref()))?;
    Ok(DeviceDetailsPage {
        device_count: page.field(&["deviceCount"]).opt_u64()?,
        has_more_data: page.field(&["hasMoreData"]).flag()?,
        last_seen_device_id: page.field(&["lastSeenDeviceId"]).opt_cursor()?,
        max_page_size: page.field(&["maxPageSize"]).opt_u32()?,
        account_name,
        devices,
    })
}

/// A device object usually has no `accountName` of its own; it inherits the
/// page's so that a device streamed on its own still knows its account. (The
/// account device list, `account_devices`, sends the same objects.)
pub(crate) fn device_details(
    item: Field<'_, '_>,
    page_account: Option<&str>,
) -> Result<DeviceDetails, DecodeError> {
    let d = item.object()?;
    Ok(DeviceDetails {
        device_id: d.field(&["deviceId"]).req_nonempty_string()?,
        account_name: match d.field(&["accountName"]).opt_string()? {
            Some(own) => Some(own),
            None => page_account.map(str::to_owned),
        },
        mdn: d.field(&["mdn"]).opt_string()?,
        model: d.field(&["model"]).opt_string()?,
        make: d.field(&["make"]).opt_string()?,
        firmware: d.field(&["firmware"]).opt_string()?,
        fota_eligible: d.field(&["fotaEligible"]).opt_bool()?,
        license_assigned: d.field(&["licenseAssigned"]).opt_bool()?,
        status: d.field(&["status"]).opt_string()?,
        protocol: d.field(&["protocol"]).opt_string()?,
        software: d.field(&["softwareList"]).list(software)?,
        files: d.field(&["filesList", "fileList"]).list(file_name)?,
        create_time: d.field(&["createTime"]).opt_timestamp()?,
        upgrade_time: d.field(UPGRADE_TIME).opt_timestamp()?,
        status_time: d.field(&["statusTime"]).opt_timestamp()?,
        refresh_time: d.field(&["refreshTime"]).opt_timestamp()?,
        last_connection_time: d.field(&["lastConnectionTime"]).opt_timestamp()?,
    })
}

/// A `softwareList` entry: `{name, version, upgradeTime}`, or a bare name.
fn software(item: Field<'_, '_>) -> Result<Software, DecodeError> {
    if let Some(Value::String(name)) = item.value() {
        return Ok(Software {
            name: name.clone(),
            version: None,
            upgrade_time: None,
        });
    }
    let s = item.object()?;
    Ok(Software {
        name: s.field(&["name"]).req_string()?,
        version: s.field(&["version"]).opt_string()?,
        upgrade_time: s.field(UPGRADE_TIME).opt_timestamp()?,
    })
}

/// A `filesList`/`fileList` entry: `{"name": ...}` or a bare file name.
fn file_name(item: Field<'_, '_>) -> Result<String, DecodeError> {
    if let Some(Value::String(name)) = item.value() {
        return Ok(name.clone());
    }
    item.object()?.field(&["name"]).req_string()
}
