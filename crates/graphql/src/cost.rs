//! What an operation will cost ThingSpace, estimated before anything runs.
//!
//! Longer than 500 lines on purpose: it is one walk of the operation that mirrors
//! what every resolver will fetch (devices, histories, campaign pages followed from
//! the cache, provisioning windows), so that a change to a resolver and to its cost
//! are made side by side.
//!
//! Complexity counts fields; what hurts the shared upstream budget is calls. This walks
//! the selected operation with its variables and asks the store which entries are
//! already cached, so the estimate is what executing now would send upstream:
//!
//! - device details: one call per 1,000 uncached devices of an account (the batch
//!   size), whether they come from `device`, `devices` or campaign pages;
//! - upgrade history and check-ins: one call per uncached device that selects them;
//! - a campaign: its first report page when `totalDevices` reads it, or when no page
//!   of devices is asked for (the resolver then reads it to know the campaign exists);
//! - a campaign connection: the upstream pages its `first` needs from its cursor
//!   (a cached page chain is followed and costs nothing); with a `status` filter, the
//!   pages the resolver may scan ([`FILTER_SCAN_PAGES`] at most); devices on pages not
//!   yet cached are assumed uncached;
//! - an account connection: the same for its device-list pages (per protocol), with
//!   any of its detail filters counted like `status`; devices on pages not yet cached
//!   need no details call (the page carries their details), devices on cached pages
//!   one per 1,000 whose details are not cached (all scanned ones when filtering);
//! - provisioning history: one call per started year of its window, when uncached;
//! - `node`/`nodes`: a device id costs what `device` would (its details batched with
//!   every other device of the operation); a campaign-device id follows its
//!   campaign's cached page chain from the first page and, where the chain is not
//!   cached, counts the pages the resolver may fetch (at most `NODE_SCAN_PAGES` per
//!   campaign, fewer when a cached page gave the campaign's size).
//!
//! Accounts the caller may not read cost nothing (they answer FORBIDDEN without a
//! call), and reveal nothing of the cache. List arguments longer than
//! `max_list_length` are refused here, before any call. The estimate errs high
//! (a Redis L2 copy is not looked at, concurrent requests may share a fetch), never
//! low for a single request on a cold cache.

use std::collections::{HashMap, HashSet};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Field, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Positioned, Value, Variables};
use chrono::{DateTime, Utc};
use devicegraph_cache::resources::{
    AccountPageKey, AccountPages, CampaignPageKey, CampaignPages, CheckIns, Details, Provisioning,
    ProvisioningKey, UpgradeHistory,
};
use devicegraph_cache::{Resource, Store};
use devicegraph_upstream::{
    AccountName, CampaignId, DeviceIdKind, DeviceIdentifier, Imei, Protocol,
};

use crate::AccountScope;
use crate::cursor::{Cursor, Owner, id_cmp};
use crate::filter::Filter;
use crate::global_id::GlobalId;

/// Devices per upstream device-details request.
const DETAILS_BATCH: u64 = 1_000;
/// Devices per upstream campaign-report page.
const CAMPAIGN_PAGE: u64 = 1_000;
/// Devices per upstream account device-list page (its `maxPageSize`).
pub(crate) const ACCOUNT_PAGE: u64 = 1_000;
/// Upstream pages one filtered campaign page may scan beyond those `first` needs
/// (the resolver stops there and returns a shorter page with `hasNextPage`).
pub(crate) const FILTER_SCAN_PAGES: u64 = 10;
/// Upstream pages not yet cached that reading campaign rows back by id may fetch (the
/// first 10,000 devices of a campaign on a cold cache; `campaign::find_rows`). Cached
/// pages cost nothing and are not counted.
pub(crate) const NODE_SCAN_PAGES: u64 = FILTER_SCAN_PAGES;

/// The estimate, by upstream endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    pub device_details: u64,
    pub upgrade_history: u64,
    pub check_ins: u64,
    pub campaign_pages: u64,
    pub provisioning: u64,
    pub account_pages: u64,
}

impl Estimate {
    pub fn total(&self) -> u64 {
        self.device_details
            .saturating_add(self.upgrade_history)
            .saturating_add(self.check_ins)
            .saturating_add(self.campaign_pages)
            .saturating_add(self.provisioning)
            .saturating_add(self.account_pages)
    }

    /// As reported in `extensions.cost.estimate`.
    pub(crate) fn to_value(self) -> Value {
        let n = |v: u64| Value::Number(v.into());
        crate::error::object([
            ("upstreamCalls", n(self.total())),
            ("deviceDetails", n(self.device_details)),
            ("upgradeHistory", n(self.upgrade_history)),
            ("checkIns", n(self.check_ins)),
            ("campaignPages", n(self.campaign_pages)),
            ("provisioning", n(self.provisioning)),
            ("accountPages", n(self.account_pages)),
        ])
    }
}

/// An argument the estimate refuses (a list over `max_list_length`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{argument} has {len} items; at most {max} are allowed")]
pub(crate) struct TooLong {
    argument: &'static str,
    len: usize,
    max: usize,
}

/// What the devices of one account need.
#[derive(Default)]
struct AccountNeed {
    /// Known devices whose details are not cached.
    details: HashSet<Imei>,
    /// Devices not known yet (on uncached campaign pages), assumed uncached.
    unknown: u64,
}

/// Which parts of a `Device` a selection reads beyond its details.
#[derive(Default)]
struct DeviceParts {
    upgrades: bool,
    check_ins: bool,
    provisioning: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// What a `node`/`nodes` selection reads, per kind of id.
struct NodeParts {
    /// Of a `Device`.
    device: DeviceParts,
    /// Of a `CampaignDevice`'s `device`, when selected.
    row_device: Option<DeviceParts>,
}

pub(crate) struct Estimator<'a> {
    doc: &'a ExecutableDocument,
    variables: &'a Variables,
    store: &'a Store,
    scope: &'a AccountScope,
    max_list_length: usize,
    accounts: HashMap<AccountName, AccountNeed>,
    upgrades: HashSet<(AccountName, Imei)>,
    check_ins: HashSet<(AccountName, Imei)>,
    provisioning: HashSet<(DeviceIdentifier, DateTime<Utc>, DateTime<Utc>)>,
    /// Campaigns whose uncached pages a campaign-device id lookup already counted.
    row_scans: HashSet<(AccountName, CampaignId)>,
    out: Estimate,
}

impl<'a> Estimator<'a> {
    pub(crate) fn new(
        doc: &'a ExecutableDocument,
        variables: &'a Variables,
        store: &'a Store,
        scope: &'a AccountScope,
        max_list_length: usize,
    ) -> Self {
        Self {
            doc,
            variables,
            store,
            scope,
            max_list_length,
            accounts: HashMap::new(),
            upgrades: HashSet::new(),
            check_ins: HashSet::new(),
            provisioning: HashSet::new(),
            row_scans: HashSet::new(),
            out: Estimate::default(),
        }
    }

    /// The estimate for the operation `name` selects (none found: zero, validation
    /// reports it).
    pub(crate) fn run(mut self, name: Option<&str>) -> Result<Estimate, TooLong> {
        let Some(operation) = select_operation(self.doc, name) else {
            return Ok(Estimate::default());
        };
        for field in self.fields(&operation.selection_set.node) {
            self.root(field)?;
        }
        for need in self.accounts.values() {
            let devices = (need.details.len() as u64).saturating_add(need.unknown);
            self.out.device_details = self
                .out
                .device_details
                .saturating_add(devices.div_ceil(DETAILS_BATCH));
        }
        Ok(self.out)
    }

    fn root(&mut self, field: &'a Field) -> Result<(), TooLong> {
        match field.name.node.as_str() {
            "device" => {
                let (Some(account), Some(imei)) = (self.account(field), self.imei_arg(field))
                else {
                    return Ok(());
                };
                let parts = self.device_parts(&field.selection_set.node);
                self.device(&account, &imei, &parts);
            }
            "devices" => {
                let Some(Value::List(items)) = self.arg(field, "imeis") else {
                    return Ok(());
                };
                if items.len() > self.max_list_length {
                    return Err(TooLong {
                        argument: "imeis",
                        len: items.len(),
                        max: self.max_list_length,
                    });
                }
                let Some(account) = self.account(field) else {
                    return Ok(());
                };
                let parts = self.device_parts(&field.selection_set.node);
                for item in items {
                    if let Value::String(s) = item
                        && let Ok(imei) = s.parse::<Imei>()
                    {
                        self.device(&account, &imei, &parts);
                    }
                }
            }
            "campaign" => {
                let (Some(account), Some(Value::String(id))) =
                    (self.account(field), self.arg(field, "id"))
                else {
                    return Ok(());
                };
                let Ok(campaign) = id.parse::<CampaignId>() else {
                    return Ok(());
                };
                let subs = self.fields(&field.selection_set.node);
                let devices: Vec<&Field> = subs
                    .iter()
                    .copied()
                    .filter(|sub| sub.name.node == "devices")
                    .collect();
                let total = subs.iter().any(|sub| sub.name.node == "totalDevices");
                // The first report page: read by `totalDevices`, and by the resolver
                // to know the campaign exists when no page of devices is asked for.
                let first_counted =
                    (total || devices.is_empty()) && self.first_page(&account, &campaign);
                for sub in devices {
                    self.campaign_devices(&account, &campaign, sub, first_counted)?;
                }
            }
            "node" => {
                if let Some(Value::String(id)) = self.arg(field, "id") {
                    let parts = self.node_parts(field);
                    self.node(&id, &parts);
                }
            }
            "nodes" => {
                let Some(Value::List(items)) = self.arg(field, "ids") else {
                    return Ok(());
                };
                if items.len() > self.max_list_length {
                    return Err(TooLong {
                        argument: "ids",
                        len: items.len(),
                        max: self.max_list_length,
                    });
                }
                let parts = self.node_parts(field);
                for item in items {
                    if let Value::String(id) = item {
                        self.node(&id, &parts);
                    }
                }
            }
            "account" => {
                let Some(account) = self.account_in(field, "name") else {
                    return Ok(());
                };
                for sub in self.fields(&field.selection_set.node) {
                    if sub.name.node == "devices" {
                        self.account_devices(&account, sub)?;
                    }
                }
            }
            "provisioningHistory" if *self.scope == AccountScope::All => {
                if let Some(device) = self.identifier(field)
                    && let Some((earliest, latest)) = self.window(field)
                {
                    self.provisioning(device, earliest, latest);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// One device with the parts its selection reads.
    fn device(&mut self, account: &AccountName, imei: &Imei, parts: &DeviceParts) {
        let key = (account.clone(), imei.clone());
        if !self.store.is_cached::<Details>(&key) {
            self.accounts
                .entry(account.clone())
                .or_default()
                .details
                .insert(imei.clone());
        }
        if parts.upgrades && first_uncached::<UpgradeHistory>(self.store, &mut self.upgrades, &key)
        {
            self.out.upgrade_history += 1;
        }
        if parts.check_ins && first_uncached::<CheckIns>(self.store, &mut self.check_ins, &key) {
            self.out.check_ins += 1;
        }
        for (earliest, latest) in &parts.provisioning {
            if let Ok(device) = DeviceIdentifier::new(DeviceIdKind::Imei, imei.as_str()) {
                self.provisioning(device, *earliest, *latest);
            }
        }
    }

    /// One id of `node`/`nodes`; ids that do not decode or that the caller may not
    /// read cost nothing (they are refused without a call).
    fn node(&mut self, id: &str, parts: &NodeParts) {
        let Ok(id) = GlobalId::decode(id) else {
            return;
        };
        if !self.readable(id.account()) {
            return;
        }
        match id {
            GlobalId::Device { account, imei } => self.device(&account, &imei, &parts.device),
            GlobalId::CampaignDevice {
                account,
                campaign,
                device_id,
            } => self.campaign_row(&account, &campaign, &device_id, parts.row_device.as_ref()),
        }
    }

    /// A campaign device read back by id: the cached page chain from the first page,
    /// as `campaign::find_rows` walks it.
    fn campaign_row(
        &mut self,
        account: &AccountName,
        campaign: &CampaignId,
        device_id: &str,
        parts: Option<&DeviceParts>,
    ) {
        let mut cursor: Option<String> = None;
        let mut total: Option<u64> = None;
        let mut seen = 0u64;
        // The chain is as long as the resolver would follow, and no longer.
        for _ in 0..10_000 {
            let key = CampaignPageKey::new(account, campaign, cursor.as_deref());
            let Some(page) = self.store.peek::<CampaignPages>(&key) else {
                break;
            };
            total = total.or(page.total_devices);
            seen = seen.saturating_add(page.devices.len() as u64);
            let covers = page
                .devices
                .last()
                .is_some_and(|d| id_cmp(&d.device_id, device_id) != std::cmp::Ordering::Less);
            if covers || !page.has_more_data {
                let listed = page.devices.iter().any(|d| d.device_id == device_id);
                if let (true, Some(parts), Ok(imei)) = (listed, parts, device_id.parse::<Imei>()) {
                    self.device(account, &imei, parts);
                }
                return;
            }
            match &page.last_seen_device_id {
                Some(next) => cursor = Some(next.clone()),
                None => return,
            }
        }
        // Uncached from here: the pages the resolver may fetch, once per campaign.
        if self.row_scans.insert((account.clone(), campaign.clone())) {
            let left = total
                .map(|t| t.saturating_sub(seen).div_ceil(CAMPAIGN_PAGE).max(1))
                .unwrap_or(NODE_SCAN_PAGES)
                .min(NODE_SCAN_PAGES);
            self.out.campaign_pages = self.out.campaign_pages.saturating_add(left);
        }
        if let Some(parts) = parts {
            self.unknown_devices(account, 1, parts, true);
        }
    }

    /// `count` devices not known before their page is fetched; `details`: whether
    /// their details cost a details call (not when the page carries them).
    fn unknown_devices(
        &mut self,
        account: &AccountName,
        count: u64,
        parts: &DeviceParts,
        details: bool,
    ) {
        if details {
            let need = self.accounts.entry(account.clone()).or_default();
            need.unknown = need.unknown.saturating_add(count);
        }
        if parts.upgrades {
            self.out.upgrade_history = self.out.upgrade_history.saturating_add(count);
        }
        if parts.check_ins {
            self.out.check_ins = self.out.check_ins.saturating_add(count);
        }
        let windows = parts.provisioning.len() as u64;
        self.out.provisioning = self
            .out
            .provisioning
            .saturating_add(count.saturating_mul(windows));
    }

    fn provisioning(
        &mut self,
        device: DeviceIdentifier,
        earliest: DateTime<Utc>,
        latest: DateTime<Utc>,
    ) {
        let key = ProvisioningKey {
            device,
            earliest,
            latest,
        };
        if self.store.is_cached::<Provisioning>(&key) {
            return;
        }
        let ProvisioningKey { device, .. } = key;
        let days = (latest - earliest).num_days().max(1);
        let calls = u64::try_from(days).unwrap_or(u64::MAX).div_ceil(365);
        if self.provisioning.insert((device, earliest, latest)) {
            self.out.provisioning = self.out.provisioning.saturating_add(calls.max(1));
        }
    }

    /// The campaign's first report page; whether it was uncached (and so counted).
    fn first_page(&mut self, account: &AccountName, campaign: &CampaignId) -> bool {
        let uncached = !self
            .store
            .is_cached::<CampaignPages>(&CampaignPageKey::new(account, campaign, None));
        if uncached {
            self.out.campaign_pages += 1;
        }
        uncached
    }

    /// `Campaign.devices(first, after, status) { edges { node { device { ... } } } }`.
    /// `first_counted`: the first report page is already counted (by the campaign).
    fn campaign_devices(
        &mut self,
        account: &AccountName,
        campaign: &CampaignId,
        field: &'a Field,
        first_counted: bool,
    ) -> Result<(), TooLong> {
        let Some(first) = self.first(field)? else {
            return Ok(());
        };
        let filtered = matches!(self.arg(field, "status"), Some(Value::String(_)));
        let owner = crate::cursor::Owner::Campaign { account, campaign };
        let after = match self.arg(field, "after") {
            Some(Value::String(s)) => Cursor::decode(&s, owner).ok(),
            _ => None,
        };
        let parts = self.campaign_device_parts(field);
        // Follow the cached page chain from the cursor's anchor.
        let floor = after.as_ref().map(|c| c.imei.clone());
        let mut cursor = after.and_then(|c| c.anchor);
        let mut remaining = first;
        let mut pages_seen = 0u64;
        while let Some(page) = self.store.peek::<CampaignPages>(&CampaignPageKey::new(
            account,
            campaign,
            cursor.as_deref(),
        )) {
            pages_seen += 1;
            for device in &page.devices {
                if remaining == 0 {
                    break;
                }
                if floor.as_deref().is_some_and(|f| {
                    crate::cursor::id_cmp(&device.device_id, f) != std::cmp::Ordering::Greater
                }) {
                    continue;
                }
                if filtered
                    && let Some(Value::String(status)) = self.arg(field, "status")
                    && device.status != status
                {
                    continue;
                }
                remaining -= 1;
                if let (Some(parts), Ok(imei)) = (&parts, device.device_id.parse::<Imei>()) {
                    self.device(account, &imei, parts);
                }
            }
            if remaining == 0 || !page.has_more_data || pages_seen > FILTER_SCAN_PAGES + 2 {
                return Ok(());
            }
            match &page.last_seen_device_id {
                Some(next) => cursor = Some(next.clone()),
                None => return Ok(()),
            }
        }
        // Uncached from here on (from the first page when the walk starts there and
        // it is not cached: then the campaign's own read has counted it).
        let pages = if filtered {
            remaining.div_ceil(CAMPAIGN_PAGE) + FILTER_SCAN_PAGES
        } else {
            remaining.div_ceil(CAMPAIGN_PAGE).max(1)
        };
        let pages = pages.saturating_sub(u64::from(
            first_counted && pages_seen == 0 && cursor.is_none(),
        ));
        self.out.campaign_pages = self.out.campaign_pages.saturating_add(pages);
        if let Some(parts) = &parts {
            self.unknown_devices(account, remaining, parts, true);
        }
        Ok(())
    }

    /// A connection's `first` (`None`: not a number, validation refuses it), refused
    /// over `max_list_length`.
    fn first(&self, field: &Field) -> Result<Option<u64>, TooLong> {
        let first = match self.arg(field, "first") {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
            Some(_) => return Ok(None),
            // The schema's default.
            None => 100,
        };
        if first > self.max_list_length as u64 {
            return Err(TooLong {
                argument: "first",
                len: usize::try_from(first).unwrap_or(usize::MAX),
                max: self.max_list_length,
            });
        }
        Ok(Some(first))
    }

    /// `Account.devices(first, after, protocol, <filters>) { edges { node { ... } } }`:
    /// mirrors `account.rs`'s walk over the cached page chain, then counts the pages
    /// still to fetch.
    fn account_devices(&mut self, account: &AccountName, field: &'a Field) -> Result<(), TooLong> {
        let Some(first) = self.first(field)? else {
            return Ok(());
        };
        let protocol = match self.arg(field, "protocol") {
            Some(Value::String(s)) => match s.parse::<Protocol>() {
                Ok(p) => Some(p),
                // Refused by the resolver before any call.
                Err(_) => return Ok(()),
            },
            _ => None,
        };
        let text = |name| match self.arg(field, name) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let filter = Filter {
            status: text("status"),
            make: text("make"),
            model: text("model"),
            firmware: text("firmware"),
            fota_eligible: match self.arg(field, "fotaEligible") {
                Some(Value::Boolean(b)) => Some(b),
                _ => None,
            },
        };
        let filtered = !filter.is_empty();
        let after = match self.arg(field, "after") {
            Some(Value::String(s)) => Cursor::decode(&s, Owner::Account { account }).ok(),
            _ => None,
        };
        let parts = self.account_device_parts(field);
        let floor = after.as_ref().map(|c| c.imei.clone());
        let mut cursor = after.and_then(|c| c.anchor);
        let mut remaining = first;
        let mut pages_seen = 0u64;
        while let Some(page) = self.store.peek::<AccountPages>(&AccountPageKey::new(
            account,
            protocol.as_ref(),
            cursor.as_deref(),
        )) {
            pages_seen += 1;
            for device in &page.devices {
                if remaining == 0 {
                    break;
                }
                let id = device.device_id.trim();
                if floor
                    .as_deref()
                    .is_some_and(|f| id_cmp(id, f) != std::cmp::Ordering::Greater)
                {
                    continue;
                }
                let Ok(imei) = id.parse::<Imei>() else {
                    continue;
                };
                let key = (account.clone(), imei);
                // A device whose cached details fail the filter costs nothing; one
                // not cached is read, and assumed to pass (erring high).
                if filtered {
                    match self.store.peek::<Details>(&key) {
                        Some(Some(d)) if !filter.matches(&d) => continue,
                        Some(None) => continue,
                        _ => {}
                    }
                }
                remaining -= 1;
                self.device(account, &key.1, &parts);
            }
            if remaining == 0 || !page.has_more_data || pages_seen > FILTER_SCAN_PAGES + 2 {
                return Ok(());
            }
            match &page.last_seen_device_id {
                Some(next) => cursor = Some(next.clone()),
                None => return Ok(()),
            }
        }
        // Uncached from here on: their details come with the pages.
        let pages = if filtered {
            remaining.div_ceil(ACCOUNT_PAGE) + FILTER_SCAN_PAGES
        } else {
            remaining.div_ceil(ACCOUNT_PAGE).max(1)
        };
        self.out.account_pages = self.out.account_pages.saturating_add(pages);
        self.unknown_devices(account, remaining, &parts, false);
        Ok(())
    }

    /// The selection under `edges { node { ... } }` of an account connection (its
    /// nodes are devices), merged over aliases.
    fn account_device_parts(&self, devices: &'a Field) -> DeviceParts {
        let mut merged = DeviceParts::default();
        for edges in self.named(&devices.selection_set.node, "edges") {
            for node in self.named(&edges.selection_set.node, "node") {
                let parts = self.device_parts(&node.selection_set.node);
                merged.upgrades |= parts.upgrades;
                merged.check_ins |= parts.check_ins;
                merged.provisioning.extend(parts.provisioning);
            }
        }
        merged
    }

    /// The `device` selection under `edges { node { ... } }`, merged over aliases.
    fn campaign_device_parts(&self, devices: &'a Field) -> Option<DeviceParts> {
        let mut found: Option<DeviceParts> = None;
        for edges in self.named(&devices.selection_set.node, "edges") {
            for node in self.named(&edges.selection_set.node, "node") {
                for device in self.named(&node.selection_set.node, "device") {
                    let parts = self.device_parts(&device.selection_set.node);
                    let merged = found.get_or_insert_with(DeviceParts::default);
                    merged.upgrades |= parts.upgrades;
                    merged.check_ins |= parts.check_ins;
                    merged.provisioning.extend(parts.provisioning);
                }
            }
        }
        found
    }

    /// What the selection of `node`/`nodes` reads: of a `Device` (its fields, in
    /// `... on Device` or anywhere: matching by name errs high), and of a
    /// `CampaignDevice`'s `device`.
    fn node_parts(&self, field: &'a Field) -> NodeParts {
        let set = &field.selection_set.node;
        let mut row_device: Option<DeviceParts> = None;
        for device in self.named(set, "device") {
            let parts = self.device_parts(&device.selection_set.node);
            let merged = row_device.get_or_insert_with(DeviceParts::default);
            merged.upgrades |= parts.upgrades;
            merged.check_ins |= parts.check_ins;
            merged.provisioning.extend(parts.provisioning);
        }
        NodeParts {
            device: self.device_parts(set),
            row_device,
        }
    }

    fn device_parts(&self, set: &'a SelectionSet) -> DeviceParts {
        let mut parts = DeviceParts::default();
        for field in self.fields(set) {
            match field.name.node.as_str() {
                "upgradeHistory" => parts.upgrades = true,
                "checkIns" | "lastCheckIn" => parts.check_ins = true,
                "provisioningHistory" => {
                    if let Some(window) = self.window(field) {
                        parts.provisioning.push(window);
                    }
                }
                _ => {}
            }
        }
        parts
    }

    fn named(&self, set: &'a SelectionSet, name: &str) -> Vec<&'a Field> {
        self.fields(set)
            .into_iter()
            .filter(|f| f.name.node == name)
            .collect()
    }

    /// The fields of `set` with fragments spread and `@skip`/`@include` applied.
    /// Bounded by the guard's `max_fields`.
    fn fields(&self, set: &'a SelectionSet) -> Vec<&'a Field> {
        let mut out = Vec::new();
        self.collect(set, &mut out, 0);
        out
    }

    fn collect(&self, set: &'a SelectionSet, out: &mut Vec<&'a Field>, level: usize) {
        if level > crate::guard::MAX_RECURSION {
            return;
        }
        for item in &set.items {
            if self.skipped(item.node.directives()) {
                continue;
            }
            match &item.node {
                Selection::Field(field) => out.push(&field.node),
                Selection::InlineFragment(fragment) => {
                    self.collect(&fragment.node.selection_set.node, out, level + 1);
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = self.doc.fragments.get(&spread.node.fragment_name.node)
                    {
                        self.collect(&fragment.node.selection_set.node, out, level + 1);
                    }
                }
            }
        }
    }

    fn skipped(&self, directives: &[Positioned<async_graphql::parser::types::Directive>]) -> bool {
        directives.iter().any(|d| {
            let condition = d
                .node
                .get_argument("if")
                .and_then(|v| {
                    v.node
                        .clone()
                        .into_const_with(|var| self.variables.get(&var).cloned().ok_or(()))
                        .ok()
                })
                .and_then(|v| match v {
                    Value::Boolean(b) => Some(b),
                    _ => None,
                });
            matches!(
                (d.node.name.node.as_str(), condition),
                ("skip", Some(true)) | ("include", Some(false))
            )
        })
    }

    fn arg(&self, field: &Field, name: &str) -> Option<Value> {
        let value = field.get_argument(name)?;
        value
            .node
            .clone()
            .into_const_with(|var| self.variables.get(&var).cloned().ok_or(()))
            .ok()
    }

    /// The field's `account` when it parses and the caller may read it.
    fn account(&self, field: &Field) -> Option<AccountName> {
        self.account_in(field, "account")
    }

    /// The account named by argument `name` when it parses and the caller may read it.
    fn account_in(&self, field: &Field, name: &str) -> Option<AccountName> {
        let Some(Value::String(s)) = self.arg(field, name) else {
            return None;
        };
        let account: AccountName = s.parse().ok()?;
        self.readable(&account).then_some(account)
    }

    fn readable(&self, account: &AccountName) -> bool {
        match self.scope {
            AccountScope::All => true,
            AccountScope::Only(set) => set.contains(account),
        }
    }

    fn imei_arg(&self, field: &Field) -> Option<Imei> {
        match self.arg(field, "imei")? {
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    fn identifier(&self, field: &Field) -> Option<DeviceIdentifier> {
        let Value::Object(input) = self.arg(field, "device")? else {
            return None;
        };
        let (Some(Value::Enum(kind)), Some(Value::String(id))) =
            (input.get("kind"), input.get("id"))
        else {
            return None;
        };
        let kind = match kind.as_str() {
            "ESN" => DeviceIdKind::Esn,
            "ICCID" => DeviceIdKind::Iccid,
            "IMEI" => DeviceIdKind::Imei,
            "MDN" => DeviceIdKind::Mdn,
            "MEID" => DeviceIdKind::Meid,
            "MSISDN" => DeviceIdKind::Msisdn,
            _ => return None,
        };
        DeviceIdentifier::new(kind, id.as_str()).ok()
    }

    fn window(&self, field: &Field) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let instant = |name| match self.arg(field, name)? {
            Value::String(s) => DateTime::parse_from_rfc3339(&s)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            _ => None,
        };
        let (earliest, latest) = (instant("earliest")?, instant("latest")?);
        (earliest < latest).then_some((earliest, latest))
    }
}

/// The operation `name` selects in `doc` (as execution will pick it), if any.
pub(crate) fn select_operation<'a>(
    doc: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| &op.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// Whether `key` is neither counted yet in this operation (`seen`) nor cached: it
/// will cost one upstream call. Counts it as seen.
fn first_uncached<R: Resource<Key = (AccountName, Imei)>>(
    store: &Store,
    seen: &mut HashSet<(AccountName, Imei)>,
    key: &(AccountName, Imei),
) -> bool {
    !seen.contains(key) && !store.is_cached::<R>(key) && seen.insert(key.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up() {
        let e = Estimate {
            device_details: 1,
            upgrade_history: 2,
            check_ins: 3,
            campaign_pages: 4,
            provisioning: 5,
            account_pages: 6,
        };
        assert_eq!(e.total(), 21);
        let Value::Object(map) = e.to_value() else {
            panic!("an object");
        };
        assert_eq!(map.get("upstreamCalls"), Some(&Value::Number(21.into())));
        assert_eq!(map.get("accountPages"), Some(&Value::Number(6.into())));
    }
}
