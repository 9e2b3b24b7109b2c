//! What the simulator holds, for demos and tests to find real data
//! (`GET /_sim/catalog`, `RunningSim::catalog()`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::fleet::MODELS;
use crate::data::time::{data_now_ms, data_start_ms, iso_millis_z};
use crate::data::{World, idents, records};
use crate::wire;

/// The simulator's accounts, campaigns and sample identifiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    pub seed: u64,
    pub devices: u64,
    pub accounts: Vec<String>,
    /// Devices per account.
    pub account_devices: BTreeMap<String, u64>,
    pub campaigns: Vec<CatalogCampaign>,
    /// Up to ten IMEIs per account, spread over its range (first and last included).
    pub sample_imeis: BTreeMap<String, Vec<String>>,
    /// Luhn-valid IMEIs that no account has, for not-found tests.
    pub unknown_imeis: Vec<String>,
    /// Devices whose provisioning history spans several 500-record pages with distinct
    /// events sharing one timestamp across a page boundary.
    pub provisioning_boundary_devices: BTreeMap<String, Vec<String>>,
    /// A window containing every provisioning event of every device.
    pub provisioning_window: Window,
    pub page_sizes: PageSizes,
    /// Devices whose device-details record is written only in documented shapes
    /// (`lastConnectionTime` in RFC 3339, never `"N/A"` or Go's format), up to ten per
    /// account: what a strict client such as Verizon's generated Python SDK can parse.
    pub strict_readable_imeis: BTreeMap<String, Vec<String>>,
    /// The other identifiers of the first sample device of each account, for
    /// provisioning-history queries by another `kind`.
    pub sample_identifiers: BTreeMap<String, DeviceIdentifiers>,
}

/// One device's identifiers, as the provisioning endpoint accepts them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceIdentifiers {
    pub imei: String,
    pub meid: String,
    pub mdn: String,
    pub msisdn: String,
    pub iccid: String,
}

/// One campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogCampaign {
    pub account: String,
    pub id: String,
    /// Member devices (the `totalDevice` the report will give).
    pub devices: u64,
    pub make: String,
    pub model: String,
    pub firmware_from: String,
    pub firmware_to: String,
}

/// An RFC 3339 time window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub earliest: String,
    pub latest: String,
}

/// The page sizes in effect (1,000 / 1,000 / 500 / 1,000 unless configured smaller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageSizes {
    pub campaign_devices: usize,
    pub device_details: usize,
    pub provisioning_history: usize,
    /// Devices per page of an account's device list.
    pub account_devices: usize,
}

pub(crate) fn build(world: &World, page_sizes: PageSizes) -> Catalog {
    let fleet = &world.fleet;
    let imei = |i: u64| {
        fleet
            .blocks
            .imei_of(i)
            .map(|n| n.to_string())
            .unwrap_or_default()
    };
    let mut sample_imeis = BTreeMap::new();
    let mut account_devices = BTreeMap::new();
    let mut boundary = BTreeMap::new();
    let mut sample_identifiers = BTreeMap::new();
    let mut strict = BTreeMap::new();
    for a in &fleet.accounts {
        let n = a.end - a.start;
        account_devices.insert(a.name.clone(), n);
        let picks: Vec<u64> = if n <= 10 {
            (a.start..a.end).collect()
        } else {
            (0..10).map(|k| a.start + k * (n - 1) / 9).collect()
        };
        sample_imeis.insert(
            a.name.clone(),
            picks.into_iter().map(imei).collect::<Vec<_>>(),
        );
        let b: Vec<String> = fleet
            .boundary_devices
            .iter()
            .filter(|i| a.contains(**i))
            .map(|i| imei(*i))
            .collect();
        boundary.insert(a.name.clone(), b);
        let readable: Vec<String> = (a.start..a.end)
            .filter(|i| {
                wire::last_connection_shape(fleet.seed, *i) == wire::LastConnection::Rfc3339
                    && records::device_info(fleet, &world.mdns, *i)
                        .is_some_and(|d| d.last_connection_ms.is_some())
            })
            .take(10)
            .map(imei)
            .collect();
        strict.insert(a.name.clone(), readable);
        if n > 0 {
            let full = imei(a.start);
            let mdn = world.mdns.mdn_of(a.start).to_string();
            sample_identifiers.insert(
                a.name.clone(),
                DeviceIdentifiers {
                    meid: full.get(..14).unwrap_or_default().to_string(),
                    imei: full,
                    msisdn: format!("1{mdn}"),
                    mdn,
                    iccid: idents::iccid_of(a.start),
                },
            );
        }
    }
    let campaigns = fleet
        .campaigns
        .iter()
        .map(|c| CatalogCampaign {
            account: fleet
                .accounts
                .get(c.account)
                .map(|a| a.name.clone())
                .unwrap_or_default(),
            id: c.id.clone(),
            devices: c.devices,
            make: MODELS[c.model].make.to_string(),
            model: MODELS[c.model].model.to_string(),
            firmware_from: c.firmware_from.to_string(),
            firmware_to: c.firmware_to.to_string(),
        })
        .collect();
    Catalog {
        seed: fleet.seed,
        devices: world.devices(),
        accounts: fleet.accounts.iter().map(|a| a.name.clone()).collect(),
        account_devices,
        campaigns,
        sample_imeis,
        unknown_imeis: fleet
            .blocks
            .unknown_imeis(5)
            .into_iter()
            .map(|n| n.to_string())
            .collect(),
        provisioning_boundary_devices: boundary,
        provisioning_window: Window {
            earliest: iso_millis_z(data_start_ms()),
            latest: iso_millis_z(data_now_ms()),
        },
        page_sizes,
        strict_readable_imeis: strict,
        sample_identifiers,
    }
}
