//! The campaign report as a Relay connection over ascending IMEIs.
//!
//! The client's page size is independent of the upstream's 1,000-device pages: a
//! client page is cut from as many upstream pages as it needs (each fetched through
//! `Store::campaign_page`, cached per upstream cursor), starting from the upstream page
//! its cursor is anchored to (see `cursor.rs`).
//!
//! A `CampaignDevice` read back by its global id (`node`) is found on the same cached
//! pages ([`find_rows`]): free right after the page that gave the id, bounded by
//! [`NODE_SCAN_PAGES`] upstream pages on a cold cache.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use devicegraph_cache::Freshness as CacheFreshness;
use devicegraph_upstream::model::CampaignDevice as WireDevice;
use devicegraph_upstream::{AccountName, CampaignId, Endpoint, Imei, UpstreamError};

use crate::cost::{FILTER_SCAN_PAGES, NODE_SCAN_PAGES};
use crate::cursor::{Cursor, Owner, id_cmp};
use crate::device::{Device, Wants, prefetch_histories};
use crate::error::{Code, bad_input, coded, from_cache, from_upstream};
use crate::freshness::Freshness;
use crate::global_id::GlobalId;
use crate::scalars::{GqlDateTime, GqlImei};
use crate::state::RequestState;

/// Upstream pages one client page may walk before we call the upstream broken
/// (10 million devices at 1,000 a page).
const MAX_UPSTREAM_PAGES: usize = 10_000;

/// A campaign of one account.
pub(crate) struct Campaign {
    account: AccountName,
    id: CampaignId,
}

impl Campaign {
    pub(crate) fn new(account: AccountName, id: CampaignId) -> Self {
        Self { account, id }
    }
}

fn broken(reason: &str) -> async_graphql::Error {
    from_upstream(&UpstreamError::Pagination {
        endpoint: Endpoint::CampaignDevices,
        reason: reason.to_owned(),
    })
}

/// A firmware campaign and the status of each of its devices.
#[Object]
impl Campaign {
    /// The campaign id.
    async fn id(&self) -> ID {
        ID(self.id.as_str().to_owned())
    }

    /// The account the campaign belongs to.
    async fn account(&self) -> &str {
        self.account.as_str()
    }

    /// Number of devices in the campaign, as the upstream reports it.
    async fn total_devices(&self, ctx: &Context<'_>) -> Result<Option<i32>> {
        let state = RequestState::of(ctx)?;
        let page = state.campaign_page(&self.account, &self.id, None).await?;
        state.note(ctx, page.freshness);
        Ok(page.value.total_devices.and_then(|n| i32::try_from(n).ok()))
    }

    /// Relay-style connection over the campaign's devices in ascending IMEI order. The
    /// page size is the client's, independent of the upstream's 1,000. `status` keeps
    /// only devices whose raw status equals it.
    ///
    /// Complexity: the selection counts once per device asked (`first`).
    #[graphql(
        complexity = "usize::try_from(first.unwrap_or(100)).unwrap_or(0).max(1).saturating_mul(child_complexity)"
    )]
    async fn devices(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            default = 100,
            desc = "Page size, 0 up to the configured maximum (1,000 by default)."
        )]
        first: Option<i32>,
        #[graphql(desc = "Return devices after this cursor (an `endCursor` or edge `cursor`).")]
        after: Option<String>,
        #[graphql(desc = "Keep only devices whose raw status equals this, e.g. UpgradeFailed.")]
        status: Option<String>,
    ) -> Result<CampaignDeviceConnection> {
        let state = RequestState::of(ctx)?;
        let first = first.unwrap_or(100);
        let want = usize::try_from(first)
            .ok()
            .filter(|n| *n <= state.max_page_size())
            .ok_or_else(|| {
                bad_input(format!(
                    "first must be between 0 and {}, got {first}",
                    state.max_page_size()
                ))
            })?;
        let owner = Owner::Campaign {
            account: &self.account,
            campaign: &self.id,
        };
        let after = after
            .as_deref()
            .map(|c| Cursor::decode(c, owner))
            .transpose()
            .map_err(|e| bad_input(e.to_string()))?;
        let walk = Walk {
            state,
            account: &self.account,
            campaign: &self.id,
            want,
            status: status.as_deref(),
        };
        walk.run(ctx, after).await
    }
}

/// One client page being cut from upstream pages.
struct Walk<'a> {
    state: &'a RequestState,
    account: &'a AccountName,
    campaign: &'a CampaignId,
    want: usize,
    status: Option<&'a str>,
}

impl Walk<'_> {
    async fn run(
        self,
        ctx: &Context<'_>,
        after: Option<Cursor>,
    ) -> Result<CampaignDeviceConnection> {
        let has_previous_page = after.is_some();
        let floor = after.as_ref().map(|c| c.imei.clone());
        let mut upstream_cursor = after.and_then(|c| c.anchor);
        let mut edges: Vec<CampaignDeviceEdge> = Vec::with_capacity(self.want.min(1_000));
        let mut total = None;
        let mut has_next_page = false;

        let owner = Owner::Campaign {
            account: self.account,
            campaign: self.campaign,
        };
        // A filter may match nothing for a long stretch: scan at most the pages the
        // unfiltered page would need plus FILTER_SCAN_PAGES, then return what was
        // found with `hasNextPage` and an end cursor at the last device scanned, so
        // one cheap query cannot walk a whole 500,000-device campaign (the cost
        // estimate counts the same bound).
        let scan_limit = if self.status.is_some() {
            (self.want as u64).div_ceil(1_000) + FILTER_SCAN_PAGES
        } else {
            MAX_UPSTREAM_PAGES as u64
        };
        let mut scan_end: Option<String> = None;
        let mut pages = 0usize;
        // Of the upstream pages this page is cut from (read anyway).
        let mut freshness: Option<Freshness> = None;
        loop {
            pages += 1;
            if pages > MAX_UPSTREAM_PAGES {
                return Err(broken("too many upstream pages"));
            }
            let fetched = self
                .state
                .campaign_page(self.account, self.campaign, upstream_cursor.as_deref())
                .await?;
            self.state.note(ctx, fetched.freshness);
            let this = Freshness::of(&fetched);
            freshness = Some(freshness.map_or(this, |f| f.least_fresh(this)));
            let page = fetched.value;
            total = total.or(page.total_devices);

            let above_floor = |d: &&WireDevice| {
                floor
                    .as_deref()
                    .is_none_or(|f| id_cmp(&d.device_id, f) == Ordering::Greater)
            };
            let wanted = |d: &&WireDevice| self.status.is_none_or(|s| d.status == s);
            for dev in page.devices.iter().filter(above_floor).filter(wanted) {
                if edges.len() == self.want {
                    has_next_page = true;
                    break;
                }
                edges.push(CampaignDeviceEdge::new(
                    self.account,
                    self.campaign,
                    owner,
                    dev,
                    upstream_cursor.clone(),
                ));
            }
            if has_next_page || !page.has_more_data {
                break;
            }
            // Unfiltered, a full page plus the upstream's promise of more data is
            // enough to know a next page exists: no extra upstream call for it.
            if self.status.is_none() && edges.len() == self.want {
                has_next_page = true;
                break;
            }
            if page.devices.is_empty() {
                return Err(broken("hasMoreData with an empty page"));
            }
            let Some(next) = page.last_seen_device_id.clone() else {
                return Err(broken("hasMoreData without lastSeenDeviceId"));
            };
            if let Some(cur) = &upstream_cursor
                && id_cmp(&next, cur) != Ordering::Greater
            {
                return Err(broken("lastSeenDeviceId did not advance"));
            }
            if pages as u64 >= scan_limit {
                has_next_page = true;
                scan_end = Some(
                    Cursor {
                        imei: next.clone(),
                        anchor: upstream_cursor.clone(),
                    }
                    .encode(owner),
                );
                break;
            }
            // When the anchored page no longer reaches the cursor (devices left the
            // campaign), jump straight to the cursor instead of walking up to it.
            upstream_cursor = Some(match &floor {
                Some(f) if id_cmp(f, &next) == Ordering::Greater => f.clone(),
                _ => next,
            });
        }
        // Load the details of every device on the page in one batch now, when the
        // query selects them, rather than relying on the DataLoader's timing window
        // to gather hundreds of nested `device` resolvers: the nodes then find their
        // details in the loader's per-request cache.
        let device = ctx
            .look_ahead()
            .field("edges")
            .field("node")
            .field("device");
        if device.exists() {
            let keys: Vec<_> = edges
                .iter()
                .filter_map(|e| e.node.device.device_id.parse::<Imei>().ok())
                .map(|imei| (self.account.clone(), imei))
                .collect();
            // Histories the nodes select are read alongside the details.
            futures::future::join(
                self.state.device_details_many(keys.clone()),
                prefetch_histories(ctx, Wants::of(device), &keys),
            )
            .await;
        }
        let page_info = PageInfo {
            has_next_page,
            has_previous_page,
            start_cursor: edges.first().map(|e| e.cursor.clone()),
            // A scan cut short continues after the last device it looked at.
            end_cursor: scan_end.or_else(|| edges.last().map(|e| e.cursor.clone())),
        };
        Ok(CampaignDeviceConnection {
            edges,
            page_info,
            total_count: total.and_then(|n| i32::try_from(n).ok()),
            freshness,
        })
    }
}

/// A page of a campaign's devices.
#[derive(SimpleObject)]
pub(crate) struct CampaignDeviceConnection {
    /// The devices of this page, in ascending IMEI order.
    edges: Vec<CampaignDeviceEdge>,
    /// Where this page sits in the whole list.
    page_info: PageInfo,
    /// Number of devices in the campaign (before any `status` filter), as the
    /// upstream reports it.
    total_count: Option<i32>,
    /// Freshness of the campaign report this page was cut from: of the least fresh
    /// of the upstream report pages it read (the oldest fetch, stale if any was).
    /// Never calls the upstream.
    freshness: Option<Freshness>,
}

/// One device of a campaign page and its cursor.
#[derive(SimpleObject)]
pub(crate) struct CampaignDeviceEdge {
    /// Opaque position of this device; pass as `after` to continue after it.
    cursor: String,
    /// The device's status in the campaign.
    node: CampaignDevice,
}

impl CampaignDeviceEdge {
    fn new(
        account: &AccountName,
        campaign: &CampaignId,
        owner: Owner<'_>,
        dev: &WireDevice,
        anchor: Option<String>,
    ) -> Self {
        let cursor = Cursor {
            imei: dev.device_id.clone(),
            anchor,
        }
        .encode(owner);
        Self {
            cursor,
            node: CampaignDevice::new(account, campaign, dev),
        }
    }
}

/// Relay page information (of the campaign and the account connections).
#[derive(SimpleObject)]
pub(crate) struct PageInfo {
    /// Whether devices follow this page (with the connection's filters applied).
    pub(crate) has_next_page: bool,
    /// True when the page was asked for with `after`.
    pub(crate) has_previous_page: bool,
    /// Cursor of the first edge.
    pub(crate) start_cursor: Option<String>,
    /// Cursor of the last edge; pass as `after` for the next page.
    pub(crate) end_cursor: Option<String>,
}

/// A device's status in a campaign.
#[derive(Clone)]
pub(crate) struct CampaignDevice {
    account: AccountName,
    campaign: CampaignId,
    device: WireDevice,
}

impl CampaignDevice {
    fn new(account: &AccountName, campaign: &CampaignId, device: &WireDevice) -> Self {
        Self {
            account: account.clone(),
            campaign: campaign.clone(),
            device: device.clone(),
        }
    }
}

/// A device's status in a campaign.
#[Object]
impl CampaignDevice {
    /// The global id (Relay) of this device's row in this campaign: opaque, stable
    /// across requests and replicas; `node(id:)` reads it back.
    pub(crate) async fn id(&self) -> ID {
        ID(GlobalId::campaign_device(
            &self.account,
            &self.campaign,
            &self.device.device_id,
        ))
    }

    /// The device's IMEI.
    async fn imei(&self) -> GqlImei {
        GqlImei::output(self.device.device_id.as_str())
    }

    /// Raw upstream status, e.g. UpgradeSuccess, UpgradeFailed, UpgradePending.
    async fn status(&self) -> &str {
        &self.device.status
    }

    /// Why the device is in this status, when the upstream says.
    async fn result_reason(&self) -> Option<&str> {
        self.device.result_reason.as_deref()
    }

    /// When the status last changed.
    async fn updated_time(&self) -> Option<GqlDateTime> {
        self.device.updated_time.map(GqlDateTime)
    }

    /// When the last upgrade attempt happened.
    async fn recent_attempt_time(&self) -> Option<GqlDateTime> {
        self.device.recent_attempt_time.map(GqlDateTime)
    }

    /// When the next upgrade attempt is planned.
    async fn next_attempt_time(&self) -> Option<GqlDateTime> {
        self.device.next_attempt_time.map(GqlDateTime)
    }

    /// The merged device; loaded in batches across the whole page.
    async fn device(&self, ctx: &Context<'_>) -> Result<Option<Device>> {
        let Ok(imei) = self.device.device_id.parse::<Imei>() else {
            tracing::warn!(
                device_id = %self.device.device_id,
                "campaign lists a device id that is not a valid IMEI"
            );
            return Ok(None);
        };
        let state = RequestState::of(ctx)?;
        let fetched = state
            .device_details((self.account.clone(), imei.clone()))
            .await
            .map_err(|e| from_cache(&e))?;
        state.note(ctx, fetched.freshness);
        Ok(fetched
            .value
            .map(|d| Device::new(self.account.clone(), imei, d)))
    }
}

/// What reading some devices of one campaign back by id found.
pub(crate) struct Rows {
    /// The rows found, by device id.
    pub(crate) found: HashMap<String, CampaignDevice>,
    /// The worst freshness of the pages read.
    pub(crate) freshness: CacheFreshness,
    /// Set when the walk stopped at [`NODE_SCAN_PAGES`] uncached pages: the last
    /// device id it saw. Ids above it were not looked for.
    pub(crate) scanned_to: Option<String>,
}

impl Rows {
    /// The row of `device_id`: `Ok(None)` when the campaign does not list it, an
    /// error when it lies beyond the pages the walk could read.
    pub(crate) fn get(&self, device_id: &str) -> Result<Option<CampaignDevice>> {
        if let Some(row) = self.found.get(device_id) {
            return Ok(Some(row.clone()));
        }
        match &self.scanned_to {
            Some(last) if id_cmp(device_id, last) == Ordering::Greater => Err(coded(
                Code::QueryTooComplex,
                format!(
                    "campaign device {device_id} lies beyond the {NODE_SCAN_PAGES} uncached \
                     campaign pages one id lookup may fetch; page through Campaign.devices \
                     first, or ask again (each lookup caches the pages it read)"
                ),
            )),
            _ => Ok(None),
        }
    }
}

fn worse(a: CacheFreshness, b: CacheFreshness) -> CacheFreshness {
    match (a, b) {
        (CacheFreshness::Stale, _) | (_, CacheFreshness::Stale) => CacheFreshness::Stale,
        (CacheFreshness::Miss, _) | (_, CacheFreshness::Miss) => CacheFreshness::Miss,
        _ => CacheFreshness::Hit,
    }
}

/// Finds the rows of `wanted` device ids of one campaign, walking its upstream pages
/// from the first, through the operation's memo and the cache (the entries
/// `Campaign.devices` reads), until a page reaches the highest id wanted. Pages are in
/// ascending device order, so an id below the end of the walk that was not seen is not
/// in the campaign. At most [`NODE_SCAN_PAGES`] of the pages may be uncached; the
/// walk stops there (see [`Rows::get`]).
pub(crate) async fn find_rows(
    state: &RequestState,
    account: &AccountName,
    campaign: &CampaignId,
    wanted: &HashSet<String>,
) -> Result<Rows> {
    let mut rows = Rows {
        found: HashMap::new(),
        freshness: CacheFreshness::Hit,
        scanned_to: None,
    };
    let Some(highest) = wanted.iter().max_by(|a, b| id_cmp(a, b)) else {
        return Ok(rows);
    };
    let mut cursor: Option<String> = None;
    let mut uncached = 0u64;
    for _ in 0..MAX_UPSTREAM_PAGES {
        if !state.campaign_page_cached(account, campaign, cursor.as_deref()) {
            uncached += 1;
            if uncached > NODE_SCAN_PAGES {
                rows.scanned_to = Some(cursor.unwrap_or_default());
                return Ok(rows);
            }
        }
        let fetched = state
            .campaign_page(account, campaign, cursor.as_deref())
            .await?;
        rows.freshness = worse(rows.freshness, fetched.freshness);
        let page = fetched.value;
        for dev in page
            .devices
            .iter()
            .filter(|d| wanted.contains(&d.device_id))
        {
            rows.found.insert(
                dev.device_id.clone(),
                CampaignDevice::new(account, campaign, dev),
            );
        }
        let reached = page
            .devices
            .last()
            .is_some_and(|d| id_cmp(&d.device_id, highest) != Ordering::Less);
        if reached || !page.has_more_data {
            return Ok(rows);
        }
        if page.devices.is_empty() {
            return Err(broken("hasMoreData with an empty page"));
        }
        let Some(next) = page.last_seen_device_id.clone() else {
            return Err(broken("hasMoreData without lastSeenDeviceId"));
        };
        if let Some(cur) = &cursor
            && id_cmp(&next, cur) != Ordering::Greater
        {
            return Err(broken("lastSeenDeviceId did not advance"));
        }
        cursor = Some(next);
    }
    Err(broken("too many upstream pages"))
}
