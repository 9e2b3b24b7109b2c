//! The normalised, public shapes of everything the ThingSpace data endpoints return.
//!
//! These are what the rest of devicegraph sees: one UTC instant type, `None` for
//! absent/`"N/A"`, both field-name variants folded into one field, and unknown
//! status/code values kept (never rejected). The lenient wire parsing that produces
//! them lives in `wire.rs`.

use serde::{Deserialize, Serialize};

pub use crate::decode::bodies::{OAuthToken, SessionToken, UpstreamErrorBody};
pub use crate::endpoints::campaign_devices::{CampaignDevice, CampaignPage};
pub use crate::endpoints::check_ins::{CheckIn, CheckInResult, ClientType, FailureType};
pub use crate::endpoints::provisioning::{KeyValue, ProvisioningEvent, ProvisioningPage};
pub use crate::endpoints::upgrade_history::FirmwareUpgrade;
pub use crate::time::Timestamp;

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
