//! `GET /fota/v3/reports/{acc}/devices/{imei}`: the firmware upgrades of one device.
//!
//! One request, no paging. The answer is a JSON list (`null` is empty), kept in the
//! order sent. Quirks: the campaign id arrives as `id` or `campaignId`; `startDate`
//! is a date, and a full timestamp there is taken as its UTC date; `status` is
//! required and kept raw (`UpgradeSuccess`, `UpgradeFailed`, `DeviceRejected`, ...).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::decode::walk::Field;
use crate::decode::{DecodeError, body_with, list_body};
use crate::error::{Endpoint, UpstreamError};
use crate::ids::{AccountName, Imei};
use crate::time::Timestamp;

/// One entry of `GET /fota/v3/reports/{acc}/devices/{imei}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareUpgrade {
    pub device_id: Option<String>,
    /// `campaignId` / `id`.
    pub campaign_id: Option<String>,
    pub account_name: Option<String>,
    pub firmware_name: Option<String>,
    pub firmware_from: Option<String>,
    pub firmware_to: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub report_updated_time: Option<Timestamp>,
    /// Raw upstream status (`UpgradeSuccess`, `UpgradeFailed`, `DeviceRejected`, ...).
    pub status: String,
    pub reason: Option<String>,
}

impl Client {
    /// `GET /fota/v3/reports/{acc}/devices/{imei}`, as sent.
    pub async fn upgrade_history(
        &self,
        account: &AccountName,
        imei: &Imei,
    ) -> Result<Vec<FirmwareUpgrade>, UpstreamError> {
        let path = [
            "fota",
            "v3",
            "reports",
            account.as_str(),
            "devices",
            imei.as_str(),
        ];
        self.get_json(
            Endpoint::UpgradeHistory,
            account,
            &path,
            parse_upgrade_history,
        )
        .await
    }
}

/// `GET /fota/v3/reports/{acc}/devices/{imei}`: a JSON list.
pub fn parse_upgrade_history(body: &[u8]) -> Result<Vec<FirmwareUpgrade>, DecodeError> {
    body_with(body, list_body, "an upgrade history", upgrade_history)
}

fn upgrade_history(root: Field<'_, '_>) -> Result<Vec<FirmwareUpgrade>, DecodeError> {
    root.list(|item| {
        let u = item.object()?;
        Ok(FirmwareUpgrade {
            device_id: u.field(&["deviceId"]).opt_string()?,
            campaign_id: u.field(&["id", "campaignId"]).opt_string()?,
            account_name: u.field(&["accountName"]).opt_string()?,
            firmware_name: u.field(&["firmwareName"]).opt_string()?,
            firmware_from: u.field(&["firmwareFrom"]).opt_string()?,
            firmware_to: u.field(&["firmwareTo"]).opt_string()?,
            start_date: u.field(&["startDate"]).opt_date()?,
            report_updated_time: u.field(&["reportUpdatedTime"]).opt_timestamp()?,
            status: u.field(&["status"]).req_string()?,
            reason: u.field(&["reason"]).opt_string()?,
        })
    })
}
