//! The FOTA endpoint not yet in `endpoints/`: device details. Each function maps one located JSON value to a public model;
//! the wire names (documented name first, then the variants UPSTREAM.md lists)
//! are written next to the model field they fill.

use serde_json::Value;

use crate::decode::DecodeError;
use crate::decode::walk::Field;
use crate::model::{DeviceDetails, DeviceDetailsPage, Software};

/// Both spellings of the upgrade timestamp (`upgradeTime` documented, `updateTime` SDK).
const UPGRADE_TIME: &[&str] = &["upgradeTime", "updateTime"];

pub(crate) fn device_details_page(root: Field<'_, '_>) -> Result<DeviceDetailsPage, DecodeError> {
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
/// page's so that a device streamed on its own still knows its account.
fn device_details(
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
