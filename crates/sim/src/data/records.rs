//! Per-device records, derived on demand from `(seed, device index)`: the device
//! details, firmware upgrade history, check-ins and per-campaign status.
//!
//! These are typed and quirk-free; [`crate::wire`] renders them with ThingSpace's
//! field-name variants and timestamp shapes.

use super::fleet::{Campaign, Fleet, MODELS};
use super::rng::{Rng, domain};
use super::time::{DAY_MS, HOUR_MS, SECOND_MS, data_now_ms, ms_from_ymd, reason_date};

/// The device-details record.
#[derive(Debug, Clone)]
pub(crate) struct DeviceInfo {
    pub(crate) index: u64,
    pub(crate) imei: u64,
    pub(crate) mdn: u64,
    pub(crate) model: usize,
    pub(crate) firmware: &'static str,
    pub(crate) fota_eligible: bool,
    pub(crate) license_assigned: bool,
    pub(crate) status: &'static str,
    pub(crate) create_ms: i64,
    pub(crate) upgrade_ms: i64,
    pub(crate) status_ms: i64,
    pub(crate) refresh_ms: i64,
    /// `None` is sent as `"N/A"`.
    pub(crate) last_connection_ms: Option<i64>,
    /// Whether the record carries `softwareList` / files lists at all.
    pub(crate) has_software: bool,
}

/// One firmware upgrade of a device.
#[derive(Debug, Clone)]
pub(crate) struct UpgradeEntry {
    pub(crate) campaign_id: String,
    pub(crate) model: usize,
    pub(crate) firmware_from: &'static str,
    pub(crate) firmware_to: &'static str,
    pub(crate) start_ms: i64,
    pub(crate) report_ms: i64,
    pub(crate) status: &'static str,
    pub(crate) reason: String,
}

/// A device's status within one campaign.
#[derive(Debug, Clone)]
pub(crate) struct CampaignDeviceStatus {
    pub(crate) status: &'static str,
    pub(crate) reason: String,
    pub(crate) updated_ms: i64,
    pub(crate) recent_attempt_ms: i64,
    pub(crate) next_attempt_ms: Option<i64>,
}

/// One device check-in; codes per the check-in seed's tables.
#[derive(Debug, Clone)]
pub(crate) struct CheckIn {
    pub(crate) client_type: u8,
    pub(crate) result: u8,
    pub(crate) failure_type: u8,
    pub(crate) time_ms: i64,
}

/// Device creation times fall in this range, before every campaign.
pub(crate) fn created_ms(fleet: &Fleet, index: u64) -> i64 {
    let mut r = Rng::new(fleet.seed, domain::DEVICE, index, 1);
    let lo = ms_from_ymd(2019, 1, 1);
    let hi = ms_from_ymd(2021, 3, 1);
    lo + r.range(0, (hi - lo) as u64) as i64
}

pub(crate) fn device_info(
    fleet: &Fleet,
    mdns: &super::idents::Mdns,
    index: u64,
) -> Option<DeviceInfo> {
    let imei = fleet.blocks.imei_of(index)?;
    let model = fleet.blocks.model_of(index);
    let mut r = Rng::new(fleet.seed, domain::DEVICE, index, 0);
    let create_ms = created_ms(fleet, index);
    let upgrades = upgrade_history(fleet, index);
    let newest_success = upgrades.iter().find(|u| u.status == "UpgradeSuccess");
    let initial = MODELS[model]
        .firmwares
        .get(r.range(0, 9) as usize % MODELS[model].firmwares.len());
    let firmware = newest_success
        .map(|u| u.firmware_to)
        .or(initial.copied())
        .unwrap_or("unknown");
    let upgrade_ms =
        newest_success.map_or(create_ms + r.range(1, 30) as i64 * DAY_MS, |u| u.report_ms);
    let check_ins = check_ins(fleet, index);
    let status = [
        "Active", "Active", "Active", "Active", "Active", "Active", "Active", "Active", "Inactive",
    ];
    Some(DeviceInfo {
        index,
        imei,
        mdn: mdns.mdn_of(index),
        model,
        firmware,
        fota_eligible: r.chance(950),
        license_assigned: r.chance(850),
        status: r.pick(&status).copied().unwrap_or("Active"),
        create_ms,
        upgrade_ms,
        status_ms: upgrade_ms + r.range(0, 3 * DAY_MS as u64) as i64,
        refresh_ms: data_now_ms() - r.range(HOUR_MS as u64, 3 * DAY_MS as u64) as i64,
        last_connection_ms: check_ins.first().map(|c| c.time_ms),
        has_software: r.chance(700),
    })
}

const REASON_SUCCESS: &str = "Upgrade completed successfully";
const REASON_MODEL: &str = "Device make/model do not meet software prerequisites.";
const REASON_BUSY: &str = "Device scheduled for firmware upgrade previously, needs to be completed before another upgrade is scheduled.";

/// Status and reason for one upgrade attempt; `end_ms` is the campaign's end date.
fn pick_status(r: &mut Rng, model_ok: bool, next_ms: i64, end_ms: i64) -> (&'static str, String) {
    if !model_ok {
        return ("DeviceRejected", REASON_MODEL.to_string());
    }
    match r.weighted(&[55, 10, 20, 10, 5]) {
        0 => ("UpgradeSuccess", REASON_SUCCESS.to_string()),
        1 => (
            "UpgradeFailed",
            format!(
                "Upgrade failed, processing is not allowed after campaign end date {}",
                reason_date(end_ms)
            ),
        ),
        2 => (
            "UpgradePending",
            format!(
                "Upgrade pending, the device upgrade is estimated to be scheduled for {}",
                reason_date(next_ms)
            ),
        ),
        3 => ("DeviceRejected", REASON_BUSY.to_string()),
        _ => (
            "upgradeFailure",
            "Upgrade failed, firmware download interrupted".to_string(),
        ),
    }
}

/// A device's status in campaign `c` (the caller checked membership).
pub(crate) fn campaign_status(fleet: &Fleet, c: &Campaign, index: u64) -> CampaignDeviceStatus {
    let mut r = Rng::new(fleet.seed, domain::CAMPAIGN_STATUS, c.ordinal, index);
    let recent_attempt_ms = c.start_ms + r.range(0, (c.end_ms - c.start_ms) as u64) as i64;
    let updated_ms = recent_attempt_ms + r.range(0, 40 * SECOND_MS as u64) as i64;
    // Next attempts are scheduled on a 5-minute grid, as in the seed example.
    let next_ms = (recent_attempt_ms + r.range(HOUR_MS as u64, 24 * HOUR_MS as u64) as i64)
        / 300_000
        * 300_000;
    let model_ok = fleet.blocks.model_of(index) == c.model;
    let (status, reason) = pick_status(&mut r, model_ok, next_ms, c.end_ms);
    let retries = matches!(
        status,
        "UpgradePending" | "UpgradeFailed" | "upgradeFailure"
    );
    CampaignDeviceStatus {
        status,
        reason,
        updated_ms,
        recent_attempt_ms,
        next_attempt_ms: retries.then_some(next_ms),
    }
}

/// Upgrade history, newest first: one entry per campaign the device belongs to, plus
/// older upgrades from campaigns outside the simulated set, 0 to 6 entries in all.
pub(crate) fn upgrade_history(fleet: &Fleet, index: u64) -> Vec<UpgradeEntry> {
    let Some(account) = fleet.account_of(index) else {
        return Vec::new();
    };
    let model = fleet.blocks.model_of(index);
    let mut out: Vec<UpgradeEntry> = fleet
        .campaigns
        .iter()
        .filter(|c| c.account == account && fleet.in_campaign(c, index))
        .take(6)
        .map(|c| {
            let s = campaign_status(fleet, c, index);
            UpgradeEntry {
                campaign_id: c.id.clone(),
                model: c.model,
                firmware_from: c.firmware_from,
                firmware_to: c.firmware_to,
                start_ms: c.start_ms,
                report_ms: s.updated_ms,
                status: s.status,
                reason: s.reason,
            }
        })
        .collect();
    let mut r = Rng::new(fleet.seed, domain::UPGRADES, index, 0);
    let target = r.range(0, 6) as usize;
    let created = created_ms(fleet, index);
    let last_old = ms_from_ymd(2021, 5, 31);
    while out.len() < target {
        let firmwares = MODELS[model].firmwares;
        let from = r.range(0, firmwares.len() as u64 - 1) as usize;
        let to = (from + 1) % firmwares.len();
        let start_ms = (created
            + r.range(DAY_MS as u64, (last_old - created).max(DAY_MS + 1) as u64) as i64)
            / DAY_MS
            * DAY_MS;
        let report_ms = start_ms + r.range(HOUR_MS as u64, 2 * DAY_MS as u64) as i64;
        let (status, reason) =
            pick_status(&mut r, true, report_ms + DAY_MS, start_ms + 14 * DAY_MS);
        out.push(UpgradeEntry {
            campaign_id: r.uuid_v1(),
            model,
            firmware_from: firmwares[from],
            firmware_to: firmwares[to],
            start_ms,
            report_ms,
            status,
            reason,
        });
    }
    out.sort_by(|a, b| {
        b.start_ms
            .cmp(&a.start_ms)
            .then(b.report_ms.cmp(&a.report_ms))
    });
    out
}

/// Check-ins, newest first, 0 to 20 of them.
pub(crate) fn check_ins(fleet: &Fleet, index: u64) -> Vec<CheckIn> {
    let mut r = Rng::new(fleet.seed, domain::CHECK_INS, index, 0);
    let count = r.range(0, 20);
    let mut t = data_now_ms() - r.range(0, 2 * DAY_MS as u64) as i64;
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let client_type = [1u8, 0, 3, 5, 6, 7][r.weighted(&[80, 4, 4, 4, 4, 4])];
        let result = [1u8, 0, 2][r.weighted(&[80, 15, 5])];
        let failure_type = if result == 0 { r.range(1, 7) as u8 } else { 0 };
        out.push(CheckIn {
            client_type,
            result,
            failure_type,
            time_ms: t,
        });
        t -= r.range(2 * HOUR_MS as u64, 3 * DAY_MS as u64) as i64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idents::Mdns;

    #[test]
    fn records_are_deterministic_and_bounded() {
        let fleet = Fleet::generate(42, 10_000);
        let mdns = Mdns::new(42);
        for index in (0..10_000).step_by(97) {
            let a = upgrade_history(&fleet, index);
            assert!(a.len() <= 6);
            assert!(a.windows(2).all(|w| w[0].start_ms >= w[1].start_ms));
            let b = upgrade_history(&fleet, index);
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
            let c = check_ins(&fleet, index);
            assert!(c.len() <= 20);
            assert!(c.windows(2).all(|w| w[0].time_ms > w[1].time_ms));
            let d = device_info(&fleet, &mdns, index);
            assert!(d.is_some());
        }
        assert!(device_info(&fleet, &mdns, 10_000).is_none());
    }
}
