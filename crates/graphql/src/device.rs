//! The merged `Device`: details (always loaded, they decide whether the device
//! exists) plus upgrade history, check-ins and provisioning history, each fetched only
//! when the query selects it, and the freshness of each part the operation loads.

use std::cmp::Ordering;
use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};
use devicegraph_cache::resources::{CheckIns, Provisioning, ProvisioningKey, UpgradeHistory};
use devicegraph_upstream::model::{self, DeviceDetails};
use devicegraph_upstream::{AccountName, DeviceIdKind, DeviceIdentifier, Imei};
use futures::future::join_all;

use crate::error::bad_input;
use crate::freshness::DeviceFreshness;
use crate::global_id::GlobalId;
use crate::history::{CheckIn, FirmwareUpgrade, ProvisioningEvent};
use crate::scalars::{GqlDateTime, GqlImei};
use crate::state::RequestState;
pub(crate) use crate::wants::Wants;
use crate::wants::keep_last;

fn dt(t: Option<DateTime<Utc>>) -> Option<GqlDateTime> {
    t.map(GqlDateTime)
}

/// A device of an account whose details the upstream returned.
pub(crate) struct Device {
    account: AccountName,
    imei: Imei,
    details: Arc<DeviceDetails>,
}

impl Device {
    pub(crate) fn new(account: AccountName, imei: Imei, details: Arc<DeviceDetails>) -> Self {
        Self {
            account,
            imei,
            details,
        }
    }

    /// The device's check-ins, newest first (shared by `checkIns` and `lastCheckIn`,
    /// which the per-request memo serves from one upstream call).
    async fn newest_check_ins(&self, ctx: &Context<'_>) -> Result<Vec<model::CheckIn>> {
        let key = (self.account.clone(), self.imei.clone());
        let fetched = RequestState::of(ctx)?.history::<CheckIns>(ctx, key).await?;
        let mut list: Vec<model::CheckIn> = fetched.as_ref().clone();
        sort_check_ins(&mut list);
        Ok(list)
    }
}

/// Newest first by completion time; entries without one go last. `sort_by` is stable,
/// so ties keep the upstream's order.
pub(crate) fn sort_check_ins(list: &mut [model::CheckIn]) {
    list.sort_by_key(|c| std::cmp::Reverse(c.time_completed));
}

/// Newest first by report time, falling back to the start date (at midnight UTC) for
/// entries without one; ties keep the upstream's order.
pub(crate) fn sort_upgrades(list: &mut [model::FirmwareUpgrade]) {
    fn key(u: &model::FirmwareUpgrade) -> Option<DateTime<Utc>> {
        u.report_updated_time.or_else(|| {
            u.start_date
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
    }
    list.sort_by(|a, b| match key(b).cmp(&key(a)) {
        Ordering::Equal => b.start_date.cmp(&a.start_date),
        other => other,
    });
}

/// Checks `earliest < latest` before any upstream call.
pub(crate) fn check_window(earliest: &GqlDateTime, latest: &GqlDateTime) -> Result<()> {
    if earliest.0 >= latest.0 {
        return Err(bad_input(format!(
            "earliest ({}) must be before latest ({})",
            earliest.0.to_rfc3339(),
            latest.0.to_rfc3339()
        )));
    }
    Ok(())
}

/// Reads the histories `wants` names for every device of `keys` at once (all of
/// them concurrently: the shared budget and `upstream.max_concurrency` pace them),
/// except devices the cache already knows do not exist. The fields that need them
/// find them in the operation's memo.
///
/// Every resolver that builds a `Device` calls it (with what the device selection
/// wants, even nothing): it also records, for `Device.freshness`, which parts the
/// operation loads for each device.
///
/// The reads run on a task of their own, so that starting them costs the calling
/// resolver almost nothing: the other `device` resolvers of the operation keep
/// enqueueing their details in the same DataLoader batch instead of missing its
/// window and making a second upstream request.
pub(crate) async fn prefetch_histories(
    ctx: &Context<'_>,
    wants: Wants,
    keys: &[(AccountName, Imei)],
) {
    let Ok(state) = ctx.data::<Arc<RequestState>>() else {
        return;
    };
    state.select_parts(keys, wants);
    if wants.is_empty() {
        return;
    }
    let keys: Vec<(AccountName, Imei)> = keys
        .iter()
        .filter(|k| !state.known_absent(k))
        .cloned()
        .collect();
    if keys.is_empty() {
        return;
    }
    let state = Arc::clone(state);
    let reads = async move {
        let upgrades = keys
            .iter()
            .filter(|_| wants.upgrades())
            .map(|k| state.prefetch::<UpgradeHistory>(k.clone()));
        let check_ins = keys
            .iter()
            .filter(|_| wants.check_ins())
            .map(|k| state.prefetch::<CheckIns>(k.clone()));
        futures::future::join(join_all(upgrades), join_all(check_ins)).await;
    };
    // Carries the request's scope (request id, call meter, tenant, deadline) to the
    // task. A failed or cancelled task only means the fields read for themselves.
    let _ = tokio::spawn(crate::state::in_request_scope(reads)).await;
}

/// Provisioning events of `id` in a window already checked, oldest first (shared by
/// `Device.provisioningHistory` and the top-level `provisioningHistory`).
pub(crate) async fn provisioning_events(
    ctx: &Context<'_>,
    id: &DeviceIdentifier,
    earliest: &GqlDateTime,
    latest: &GqlDateTime,
) -> Result<Vec<ProvisioningEvent>> {
    let key = ProvisioningKey {
        device: id.clone(),
        earliest: earliest.0,
        latest: latest.0,
    };
    let fetched = RequestState::of(ctx)?
        .history::<Provisioning>(ctx, key)
        .await?;
    Ok(fetched.iter().cloned().map(ProvisioningEvent).collect())
}

/// One device, merged from its details, firmware upgrade history and check-in
/// history. History fields cost one upstream call each (per device) and are fetched
/// only when selected.
#[Object]
impl Device {
    /// The global id (Relay): opaque, stable across requests and replicas; encodes
    /// the account and IMEI, and `node(id:)` reads the device back.
    pub(crate) async fn id(&self) -> ID {
        ID(GlobalId::device(&self.account, &self.imei))
    }

    /// The device's IMEI.
    async fn imei(&self) -> GqlImei {
        GqlImei::output(self.imei.as_str())
    }

    /// The account the device was read from, e.g. 0000123456-00001.
    async fn account(&self) -> &str {
        self.account.as_str()
    }

    /// Mobile directory number, when the device has one.
    async fn mdn(&self) -> Option<&str> {
        self.details.mdn.as_deref()
    }

    /// Manufacturer.
    async fn make(&self) -> Option<&str> {
        self.details.make.as_deref()
    }

    /// Model name.
    async fn model(&self) -> Option<&str> {
        self.details.model.as_deref()
    }

    /// Current firmware version.
    async fn firmware(&self) -> Option<&str> {
        self.details.firmware.as_deref()
    }

    /// Whether the device may take firmware-over-the-air upgrades.
    async fn fota_eligible(&self) -> Option<bool> {
        self.details.fota_eligible
    }

    /// Whether a FOTA license is assigned to the device.
    async fn license_assigned(&self) -> Option<bool> {
        self.details.license_assigned
    }

    /// Raw upstream device status.
    async fn status(&self) -> Option<&str> {
        self.details.status.as_deref()
    }

    /// Management protocol, e.g. LWM2M or OMADM.
    async fn protocol(&self) -> Option<&str> {
        self.details.protocol.as_deref()
    }

    /// When the device record was created.
    async fn create_time(&self) -> Option<GqlDateTime> {
        dt(self.details.create_time)
    }

    /// When the device was last upgraded.
    async fn upgrade_time(&self) -> Option<GqlDateTime> {
        dt(self.details.upgrade_time)
    }

    /// When the status last changed.
    async fn status_time(&self) -> Option<GqlDateTime> {
        dt(self.details.status_time)
    }

    /// When the upstream last refreshed this record.
    async fn refresh_time(&self) -> Option<GqlDateTime> {
        dt(self.details.refresh_time)
    }

    /// When the device last connected. Null when the upstream says N/A.
    async fn last_connection_time(&self) -> Option<GqlDateTime> {
        dt(self.details.last_connection_time)
    }

    /// Software components installed on the device.
    async fn software(&self) -> Vec<Software> {
        self.details
            .software
            .iter()
            .cloned()
            .map(Software)
            .collect()
    }

    /// Names of the files on the device.
    async fn files(&self) -> &[String] {
        &self.details.files
    }

    /// Firmware upgrade history. Newest first.
    async fn upgrade_history(&self, ctx: &Context<'_>) -> Result<Vec<FirmwareUpgrade>> {
        let key = (self.account.clone(), self.imei.clone());
        let fetched = RequestState::of(ctx)?
            .history::<UpgradeHistory>(ctx, key)
            .await?;
        let mut list: Vec<model::FirmwareUpgrade> = fetched.as_ref().clone();
        sort_upgrades(&mut list);
        Ok(list.into_iter().map(FirmwareUpgrade).collect())
    }

    /// Check-in history. Newest first; `last` keeps only the newest N.
    async fn check_ins(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Keep only the newest N check-ins (N >= 0); all when omitted.")]
        last: Option<i32>,
    ) -> Result<Vec<CheckIn>> {
        let keep = keep_last(last)?;
        let mut list = self.newest_check_ins(ctx).await?;
        if let Some(n) = keep {
            list.truncate(n);
        }
        Ok(list.into_iter().map(CheckIn).collect())
    }

    /// The newest check-in, if any.
    async fn last_check_in(&self, ctx: &Context<'_>) -> Result<Option<CheckIn>> {
        Ok(self
            .newest_check_ins(ctx)
            .await?
            .into_iter()
            .next()
            .map(CheckIn))
    }

    /// Provisioning history of this device (identifier kind IMEI), all upstream pages
    /// merged, oldest first.
    async fn provisioning_history(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Start of the window (inclusive).")] earliest: GqlDateTime,
        #[graphql(desc = "End of the window; must be after `earliest`.")] latest: GqlDateTime,
    ) -> Result<Vec<ProvisioningEvent>> {
        check_window(&earliest, &latest)?;
        let id = DeviceIdentifier::new(DeviceIdKind::Imei, self.imei.as_str())
            .map_err(|e| bad_input(e.to_string()))?;
        provisioning_events(ctx, &id, &earliest, &latest).await
    }

    /// Freshness of the parts selected in this operation; null for parts not loaded.
    /// Never calls the upstream: details are always loaded with the device, and the
    /// histories only have a freshness when the operation selects them for this
    /// device (`upgradeHistory`; `checkIns` or `lastCheckIn`).
    async fn freshness(&self) -> DeviceFreshness {
        DeviceFreshness::new((self.account.clone(), self.imei.clone()))
    }
}

/// A software component installed on a device.
pub(crate) struct Software(model::Software);

/// A software component installed on a device.
#[Object]
impl Software {
    /// Component name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Installed version.
    async fn version(&self) -> Option<&str> {
        self.0.version.as_deref()
    }

    /// When the component was last upgraded.
    async fn upgrade_time(&self) -> Option<GqlDateTime> {
        dt(self.0.upgrade_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};
    use devicegraph_upstream::model::{CheckInResult, ClientType, FailureType};

    fn ci(t: Option<i64>, tag: &str) -> model::CheckIn {
        model::CheckIn {
            device_id: Some(tag.into()),
            client_type: ClientType::Device,
            result: CheckInResult::Succeeded,
            failure_type: FailureType::None,
            time_completed: t.and_then(|s| Utc.timestamp_opt(s, 0).single()),
        }
    }

    #[test]
    fn check_ins_newest_first_stable() {
        let mut v = vec![
            ci(Some(10), "a"),
            ci(None, "n"),
            ci(Some(30), "b"),
            ci(Some(10), "c"),
        ];
        sort_check_ins(&mut v);
        let tags: Vec<_> = v.iter().filter_map(|c| c.device_id.clone()).collect();
        assert_eq!(tags, ["b", "a", "c", "n"]);
    }

    #[test]
    fn upgrades_fall_back_to_start_date() {
        let up = |t: Option<i64>, d: Option<(i32, u32, u32)>, tag: &str| model::FirmwareUpgrade {
            device_id: None,
            campaign_id: Some(tag.into()),
            account_name: None,
            firmware_name: None,
            firmware_from: None,
            firmware_to: None,
            start_date: d.and_then(|(y, m, dd)| NaiveDate::from_ymd_opt(y, m, dd)),
            report_updated_time: t.and_then(|s| Utc.timestamp_opt(s, 0).single()),
            status: "UpgradeSuccess".into(),
            reason: None,
        };
        let day = 86_400;
        let mut v = vec![
            up(Some(day), None, "old"),
            up(None, Some((1970, 1, 5)), "dated"),
            up(Some(3 * day), None, "new"),
            up(None, None, "none"),
        ];
        sort_upgrades(&mut v);
        let tags: Vec<_> = v.iter().filter_map(|u| u.campaign_id.clone()).collect();
        assert_eq!(tags, ["dated", "new", "old", "none"]);
    }
}
