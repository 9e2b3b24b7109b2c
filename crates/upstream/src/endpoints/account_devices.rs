//! `GET /fota/v3/devices/{acc}?lastSeenDeviceId=N&protocol=P`: every device of one
//! account with its details (Verizon's SDK:
//! `AccountDevicesController.get_account_device_information`).
//!
//! Paging: by `lastSeenDeviceId`, like the campaign report: pages of up to
//! `maxPageSize` (1,000) devices in ascending IMEI order; the first request sends
//! `0`, each next one the cursor the last page reported (or, when it omits one, that
//! page's last device id). The walk and its checks against a cursor that does not
//! advance are `paging`'s `follow_cursor`. `protocol` is filtered by the upstream
//! (absent: every protocol). Each device is the same object the details endpoint
//! (`device_details`) sends, parsed by the same function, quirks included.
//! The SDK's model of the page (`V3AccountDeviceList`) has no total; a
//! `totalDevice` (string or integer, as in the campaign report) is read when sent.

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use super::device_details::{DeviceDetails, device_details};
use crate::client::{Client, decode, get};
use crate::decode::walk::Field;
use crate::decode::{DecodeError, body_with, object_body};
use crate::error::{Endpoint, UpstreamError};
use crate::ids::{AccountName, Protocol};
use crate::paging::{CursorPage, follow_cursor};

/// One page of `GET /fota/v3/devices/{acc}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountDevicesPage {
    pub account_name: Option<String>,
    /// `totalDevice` when the upstream sends one (the SDK's model has none).
    pub total_devices: Option<u64>,
    pub has_more_data: bool,
    /// `None` when absent or `"0"` (no more data).
    pub last_seen_device_id: Option<String>,
    pub max_page_size: Option<u32>,
    /// In the upstream's (ascending IMEI) order.
    pub devices: Vec<DeviceDetails>,
}

impl Client {
    /// One page of the account's devices: those with IMEI greater than `last_seen`
    /// (`None` = from the start, sent as `lastSeenDeviceId=0`), of `protocol` only
    /// when given.
    pub async fn account_devices_page(
        &self,
        account: &AccountName,
        protocol: Option<&Protocol>,
        last_seen: Option<&str>,
    ) -> Result<AccountDevicesPage, UpstreamError> {
        const EP: Endpoint = Endpoint::AccountDevices;
        let mut url = self.url(&["fota", "v3", "devices", account.as_str()]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("lastSeenDeviceId", last_seen.unwrap_or("0"));
            if let Some(protocol) = protocol {
                query.append_pair("protocol", protocol.as_str());
            }
        }
        let response = self.call(EP, Some(account), get(url)).await?;
        decode(EP, &response, parse_account_devices_page)
    }

    /// Every device of the account as a stream, following `lastSeenDeviceId`.
    pub fn account_devices(
        &self,
        account: AccountName,
        protocol: Option<Protocol>,
    ) -> BoxStream<'static, Result<DeviceDetails, UpstreamError>> {
        let client = self.clone();
        Box::pin(follow_cursor(
            Endpoint::AccountDevices,
            |d: &DeviceDetails| d.device_id.as_str(),
            move |last_seen| {
                let (client, account, protocol) =
                    (client.clone(), account.clone(), protocol.clone());
                async move {
                    let page = client
                        .account_devices_page(&account, protocol.as_ref(), last_seen.as_deref())
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

/// `GET /fota/v3/devices/{acc}`. A device's `accountName` falls back to the page's.
pub fn parse_account_devices_page(body: &[u8]) -> Result<AccountDevicesPage, DecodeError> {
    body_with(
        body,
        object_body,
        "an account device list page",
        account_devices_page,
    )
}

fn account_devices_page(root: Field<'_, '_>) -> Result<AccountDevicesPage, DecodeError> {
    let page = root.object()?;
    let account_name = page.field(&["accountName"]).opt_string()?;
    let devices = page
        .field(&["deviceList"])
        .list(|item| device_details(item, account_name.as_deref()))?;
    Ok(AccountDevicesPage {
        total_devices: page.field(&["totalDevice"]).opt_u64()?,
        has_more_data: page.field(&["hasMoreData"]).flag()?,
        last_seen_device_id: page.field(&["lastSeenDeviceId"]).opt_cursor()?,
        max_page_size: page.field(&["maxPageSize"]).opt_u32()?,
        account_name,
        devices,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(body: &serde_json::Value) -> Result<AccountDevicesPage, DecodeError> {
        parse_account_devices_page(&serde_json::to_vec(body).unwrap())
    }

    /// The SDK's `V3AccountDeviceList` shape, devices with the details' quirks.
    #[test]
    fn reads_the_sdk_shape_with_the_details_quirks() {
        let page = parse(&json!({
            "accountName": "0000123456-00001",
            "hasMoreData": true,
            "lastSeenDeviceId": "990013907835578",
            "maxPageSize": 1000,
            "deviceList": [
                {"deviceId": "990013907835573", "make": "SEQUANS COMMUNICATIONS",
                 "model": "GM01Q", "firmware": "SR1.2.0.0-10512", "fotaEligible": "true",
                 "status": "Active", "protocol": "LWM2M", "lastConnectionTime": "N/A",
                 "fileList": [{"name": "a.bin"}],
                 "updateTime": "2022-01-26 03:45:01.608 +0000 UTC"},
                {"deviceId": "990013907835578", "accountName": "other", "filesList": ["b.bin"]},
            ],
        }))
        .unwrap();
        assert!(page.has_more_data);
        assert_eq!(page.total_devices, None);
        assert_eq!(page.max_page_size, Some(1000));
        assert_eq!(page.last_seen_device_id.as_deref(), Some("990013907835578"));
        let [first, second] = page.devices.as_slice() else {
            panic!("two devices: {page:?}");
        };
        assert_eq!(first.account_name.as_deref(), Some("0000123456-00001"));
        assert_eq!(first.fota_eligible, Some(true));
        assert_eq!(first.last_connection_time, None);
        assert!(first.upgrade_time.is_some());
        assert_eq!(first.files, ["a.bin"]);
        assert_eq!(second.account_name.as_deref(), Some("other"));
        assert_eq!(second.files, ["b.bin"]);
    }

    #[test]
    fn a_total_is_read_when_sent_and_the_last_page_has_no_cursor() {
        for total in [json!("2689"), json!(2689)] {
            let page = parse(&json!({
                "totalDevice": total, "hasMoreData": false, "lastSeenDeviceId": "0",
                "deviceList": [],
            }))
            .unwrap();
            assert_eq!(page.total_devices, Some(2689));
            assert_eq!(page.last_seen_device_id, None);
            assert!(page.devices.is_empty());
        }
        let missing = parse(&json!({"deviceList": [{"mdn": "1"}]})).unwrap_err();
        assert_eq!(missing.field, "deviceList[0].deviceId");
        assert!(parse_account_devices_page(b"[]").is_err());
    }
}
