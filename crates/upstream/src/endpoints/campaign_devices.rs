//! `GET /fota/v3/reports/{acc}/campaigns/{id}/devices?lastSeenDeviceId=N`: the
//! devices of one firmware campaign and where each stands.
//!
//! Paging: by `lastSeenDeviceId`, the upstream's pages holding up to 1,000 devices in
//! ascending device id; the first request sends `0`, each next one the cursor the
//! last page reported (or, when it omits one, that page's last device id). The walk
//! and its checks against a cursor that does not advance are `paging`'s
//! `follow_cursor`. Quirks: `totalDevice` is a string or an integer; a
//! `lastSeenDeviceId` of `"0"` means none; a device's update time is `updatedTime`
//! or `statusTime`; `deviceId` and `status` are required.

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::client::{Client, decode, get};
use crate::decode::walk::Field;
use crate::decode::{DecodeError, body_with, object_body};
use crate::error::{Endpoint, UpstreamError};
use crate::ids::{AccountName, CampaignId};
use crate::paging::{CursorPage, follow_cursor};
use crate::time::Timestamp;

/// One device of a campaign report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignDevice {
    pub device_id: String,
    pub status: String,
    pub result_reason: Option<String>,
    /// `updatedTime` / `statusTime`.
    pub updated_time: Option<Timestamp>,
    pub recent_attempt_time: Option<Timestamp>,
    pub next_attempt_time: Option<Timestamp>,
}

/// One page of `GET /fota/v3/reports/{acc}/campaigns/{id}/devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignPage {
    /// `totalDevice`, string or integer on the wire.
    pub total_devices: Option<u64>,
    pub has_more_data: bool,
    /// `None` when absent or `"0"`.
    pub last_seen_device_id: Option<String>,
    pub max_page_size: Option<u32>,
    pub devices: Vec<CampaignDevice>,
}

impl Client {
    /// One page of a campaign report: devices with IMEI greater than `last_seen`
    /// (`None` = from the start, sent as `lastSeenDeviceId=0`).
    pub async fn campaign_devices_page(
        &self,
        account: &AccountName,
        campaign: &CampaignId,
        last_seen: Option<&str>,
    ) -> Result<CampaignPage, UpstreamError> {
        const EP: Endpoint = Endpoint::CampaignDevices;
        let mut url = self.url(&[
            "fota",
            "v3",
            "reports",
            account.as_str(),
            "campaigns",
            campaign.as_str(),
            "devices",
        ]);
        url.query_pairs_mut()
            .append_pair("lastSeenDeviceId", last_seen.unwrap_or("0"));
        let response = self.call(EP, Some(account), get(url)).await?;
        decode(EP, &response, parse_campaign_page)
    }

    /// The whole campaign report as a stream, following `lastSeenDeviceId`.
    pub fn campaign_devices(
        &self,
        account: AccountName,
        campaign: CampaignId,
    ) -> BoxStream<'static, Result<CampaignDevice, UpstreamError>> {
        let client = self.clone();
        Box::pin(follow_cursor(
            Endpoint::CampaignDevices,
            |d: &CampaignDevice| d.device_id.as_str(),
            move |last_seen| {
                let (client, account, campaign) =
                    (client.clone(), account.clone(), campaign.clone());
                async move {
                    let page = client
                        .campaign_devices_page(&account, &campaign, last_seen.as_deref())
                        .await?;
                    Ok(CursorPage {
                        has_more: page.has_more_data,
                        reported: page.last_seen_device_id,
                        items: page.devices,
                    })
                }
            },
        ))
    }
}

/// `GET /fota/v3/reports/{acc}/campaigns/{id}/devices`.
pub fn parse_campaign_page(body: &[u8]) -> Result<CampaignPage, DecodeError> {
    body_with(body, object_body, "a campaign report page", campaign_page)
}

fn campaign_page(root: Field<'_, '_>) -> Result<CampaignPage, DecodeError> {
    let page = root.object()?;
    Ok(CampaignPage {
        total_devices: page.field(&["totalDevice"]).opt_u64()?,
        has_more_data: page.field(&["hasMoreData"]).flag()?,
        last_seen_device_id: page.field(&["lastSeenDeviceId"]).opt_cursor()?,
        max_page_size: page.field(&["maxPageSize"]).opt_u32()?,
        devices: page.field(&["deviceList"]).list(campaign_device)?,
    })
}

fn campaign_device(item: Field<'_, '_>) -> Result<CampaignDevice, DecodeError> {
    let d = item.object()?;
    Ok(CampaignDevice {
        device_id: d.field(&["deviceId"]).req_nonempty_string()?,
        status: d.field(&["status"]).req_string()?,
        result_reason: d.field(&["resultReason"]).opt_string()?,
        updated_time: d.field(&["updatedTime", "statusTime"]).opt_timestamp()?,
        recent_attempt_time: d.field(&["recentAttemptTime"]).opt_timestamp()?,
        next_attempt_time: d.field(&["nextAttemptTime"]).opt_timestamp()?,
    })
}
