//! An account and every one of its devices, as a Relay connection over ascending
//! IMEIs.
//!
//! Like the campaign connection (`campaign.rs`), the client's page size is
//! independent of the upstream's pages of up to 1,000 devices: a client page is cut
//! from as many upstream pages as it needs, each read through
//! `RequestState::account_page` (cached per protocol and upstream cursor), starting
//! from the upstream page its `after` cursor is anchored to (`cursor.rs`).
//!
//! Nodes are `Device`s whose details come from the device's own `Details` entry, the
//! one `device`, `devices` and campaign pages read too. An upstream page carries
//! every device's details, so a page read from the upstream for this request hands
//! them to those entries (`RequestState::fill_details`): listing an account costs
//! its pages and no details call. A page found in the cache finds its devices'
//! details there as well, or reads the missing ones in one batch per page.
//!
//! Filters: `protocol` is the upstream's own (part of each page's key); `status`,
//! `make`, `model`, `firmware` and `fotaEligible` are evaluated here over each
//! scanned device's details, so they cost what reading those details costs. A
//! selective filter may match nothing for many pages: one client page scans at most
//! the upstream pages the unfiltered page would need plus [`FILTER_SCAN_PAGES`],
//! then answers what it found with `hasNextPage` and an end cursor after the last
//! device scanned, from which the next request goes on.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Context, Object, Result, SimpleObject};
use devicegraph_upstream::{AccountName, Endpoint, Imei, Protocol, UpstreamError};

use crate::campaign::PageInfo;
use crate::cost::{ACCOUNT_PAGE, FILTER_SCAN_PAGES};
use crate::cursor::{Cursor, Owner, id_cmp};
use crate::device::{Device, Wants, prefetch_histories};
use crate::error::{bad_input, from_cache, from_upstream};
use crate::filter::Filter;
use crate::freshness::Freshness;
use crate::loader::{DetailsResult, DeviceKey};
use crate::state::RequestState;

/// Upstream pages one client page may walk before we call the upstream broken
/// (10 million devices at 1,000 a page).
const MAX_UPSTREAM_PAGES: usize = 10_000;

/// One ThingSpace account.
pub(crate) struct Account {
    name: AccountName,
}

impl Account {
    pub(crate) fn new(name: AccountName) -> Self {
        Self { name }
    }
}

fn broken(reason: &str) -> async_graphql::Error {
    from_upstream(&UpstreamError::Pagination {
        endpoint: Endpoint::AccountDevices,
        reason: reason.to_owned(),
    })
}

/// One ThingSpace account.
#[Object]
impl Account {
    /// The account name, e.g. 0000123456-00001.
    async fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Relay-style connection over every device of the account, ascending IMEI.
    ///
    /// The page size is the client's, independent of the upstream's 1,000; cursors
    /// are positions, valid with any page size or filter. `protocol` is filtered by
    /// ThingSpace; the other filters over each device's details, exactly as the
    /// upstream spells the value. A filtered page scans a bounded number of upstream
    /// pages and may come back short with `hasNextPage`: continue from `endCursor`.
    ///
    /// Complexity: the selection counts once per device asked (`first`).
    #[graphql(
        complexity = "usize::try_from(first.unwrap_or(100)).unwrap_or(0).max(1).saturating_mul(child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)]
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
        #[graphql(
            desc = "Only devices of this management protocol (LWM2M, OMADM, HTTP; filtered by ThingSpace)."
        )]
        protocol: Option<String>,
        #[graphql(desc = "Only devices whose raw status equals this, e.g. Active.")] status: Option<
            String,
        >,
        #[graphql(desc = "Only devices of this make, e.g. SEQUANS COMMUNICATIONS.")] make: Option<
            String,
        >,
        #[graphql(desc = "Only devices of this model, e.g. GM01Q.")] model: Option<String>,
        #[graphql(desc = "Only devices running this firmware version.")] firmware: Option<String>,
        #[graphql(desc = "Only devices that may (true) or may not (false) take FOTA upgrades.")]
        fota_eligible: Option<bool>,
    ) -> Result<AccountDeviceConnection> {
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
        let protocol = protocol
            .as_deref()
            .map(str::parse::<Protocol>)
            .transpose()
            .map_err(|e| bad_input(e.to_string()))?;
        let owner = Owner::Account {
            account: &self.name,
        };
        let after = after
            .as_deref()
            .map(|c| Cursor::decode(c, owner))
            .transpose()
            .map_err(|e| bad_input(e.to_string()))?;
        let filter = Filter {
            status,
            make,
            model,
            firmware,
            fota_eligible,
        };
        let walk = Walk {
            state,
            account: &self.name,
            protocol: protocol.as_ref(),
            filter: &filter,
            want,
        };
        walk.run(ctx, after).await
    }
}

/// One client page being cut from upstream pages.
struct Walk<'a> {
    state: &'a RequestState,
    account: &'a AccountName,
    protocol: Option<&'a Protocol>,
    filter: &'a Filter,
    want: usize,
}

impl Walk<'_> {
    async fn run(
        self,
        ctx: &Context<'_>,
        after: Option<Cursor>,
    ) -> Result<AccountDeviceConnection> {
        let has_previous_page = after.is_some();
        let floor = after.as_ref().map(|c| c.imei.clone());
        let mut upstream_cursor = after.and_then(|c| c.anchor);
        let mut edges: Vec<AccountDeviceEdge> = Vec::with_capacity(self.want.min(1_000));
        let mut total = None;
        // Of the upstream pages this page is cut from (read anyway).
        let mut freshness: Option<Freshness> = None;
        let mut has_next_page;
        let owner = Owner::Account {
            account: self.account,
        };
        let filtered = !self.filter.is_empty();
        // See the module docs: the cost estimate counts the same bound.
        let scan_limit = if filtered {
            (self.want as u64).div_ceil(ACCOUNT_PAGE) + FILTER_SCAN_PAGES
        } else {
            MAX_UPSTREAM_PAGES as u64
        };
        let mut scan_end: Option<String> = None;
        let mut pages = 0usize;
        loop {
            pages += 1;
            if pages > MAX_UPSTREAM_PAGES {
                return Err(broken("too many upstream pages"));
            }
            let (key, fetched) = self
                .state
                .account_page(self.account, self.protocol, upstream_cursor.as_deref())
                .await?;
            self.state.note(ctx, fetched.freshness);
            let this = Freshness::of(&fetched);
            freshness = Some(freshness.map_or(this, |f| f.least_fresh(this)));
            self.state.fill_details(&key, &fetched).await;
            let page = Arc::clone(&fetched.value);
            total = total.or(page.total_devices);

            let candidates: Vec<Imei> = page
                .devices
                .iter()
                .filter(|d| {
                    floor
                        .as_deref()
                        .is_none_or(|f| id_cmp(d.device_id.trim(), f) == Ordering::Greater)
                })
                .filter_map(|d| match d.device_id.trim().parse::<Imei>() {
                    Ok(imei) => Some(imei),
                    Err(_) => {
                        tracing::warn!(
                            device_id = %d.device_id,
                            "account list has a device id that is not a valid IMEI"
                        );
                        None
                    }
                })
                .collect();
            has_next_page = self
                .take(ctx, &candidates, upstream_cursor.as_deref(), &mut edges)
                .await?;
            if has_next_page || !page.has_more_data {
                break;
            }
            // A full page plus the upstream's promise of more data is enough to say a
            // next page may exist: no upstream call just to be sure.
            if edges.len() == self.want {
                has_next_page = true;
                break;
            }
            if page.devices.is_empty() {
                return Err(broken("hasMoreData with an empty page"));
            }
            // The upstream's cursor, else (like the client's pager) the page's last id.
            let Some(next) = page
                .last_seen_device_id
                .clone()
                .or_else(|| page.devices.last().map(|d| d.device_id.trim().to_owned()))
            else {
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
            // account), jump straight to the cursor instead of walking up to it.
            upstream_cursor = Some(match &floor {
                Some(f) if id_cmp(f, &next) == Ordering::Greater => f.clone(),
                _ => next,
            });
        }
        // Histories the nodes select are read for the whole page at once.
        let node = ctx.look_ahead().field("edges").field("node");
        let keys: Vec<DeviceKey> = edges
            .iter()
            .map(|e| (self.account.clone(), e.imei.clone()))
            .collect();
        prefetch_histories(ctx, Wants::of(node), &keys).await;
        let page_info = PageInfo {
            has_next_page,
            has_previous_page,
            start_cursor: edges.first().map(|e| e.cursor.clone()),
            // A scan cut short continues after the last device it looked at.
            end_cursor: scan_end.or_else(|| edges.last().map(|e| e.cursor.clone())),
        };
        Ok(AccountDeviceConnection {
            edges,
            page_info,
            total_count: total.and_then(|n| i32::try_from(n).ok()),
            freshness,
        })
    }

    /// Adds the devices of `candidates` (one upstream page's, past the cursor, in
    /// order) that pass the filter to `edges`, until it holds `want`; `true` when it
    /// filled up and another device of this page would pass too. Details are read in
    /// one batch per page: every candidate when filtering (the filter needs them),
    /// else only as many as the page still needs (again, for the few a vanished
    /// device leaves unfilled).
    async fn take(
        &self,
        ctx: &Context<'_>,
        candidates: &[Imei],
        anchor: Option<&str>,
        edges: &mut Vec<AccountDeviceEdge>,
    ) -> Result<bool> {
        let owner = Owner::Account {
            account: self.account,
        };
        let mut loaded: HashMap<DeviceKey, DetailsResult> = HashMap::new();
        let mut requested = 0;
        for (i, imei) in candidates.iter().enumerate() {
            if edges.len() == self.want {
                // Unfiltered, any device left is a next one; filtered, one that passes
                // (their details are loaded already).
                let passes = |imei: &Imei| {
                    loaded
                        .get(&(self.account.clone(), imei.clone()))
                        .and_then(|r| r.as_ref().ok())
                        .and_then(|f| f.value.as_deref())
                        .is_some_and(|d| self.filter.matches(d))
                };
                return Ok(self.filter.is_empty() || candidates[i..].iter().any(passes));
            }
            if i >= requested {
                let more = if self.filter.is_empty() {
                    self.want - edges.len()
                } else {
                    candidates.len() - i
                };
                requested = (i + more).min(candidates.len());
                let keys = candidates[i..requested]
                    .iter()
                    .map(|imei| (self.account.clone(), imei.clone()))
                    .collect();
                loaded.extend(self.state.device_details_many(keys).await);
            }
            let key = (self.account.clone(), imei.clone());
            // The store answers every key it is asked; none is a device that left.
            let Some(result) = loaded.remove(&key) else {
                continue;
            };
            let fetched = result.map_err(|e| from_cache(&e))?;
            self.state.note(ctx, fetched.freshness);
            let Some(details) = fetched.value else {
                // Listed, but the account no longer has it.
                continue;
            };
            if self.filter.matches(&details) {
                let cursor = Cursor {
                    imei: imei.as_str().to_owned(),
                    anchor: anchor.map(str::to_owned),
                }
                .encode(owner);
                edges.push(AccountDeviceEdge {
                    cursor,
                    imei: imei.clone(),
                    node: Device::new(self.account.clone(), imei.clone(), details),
                });
            }
        }
        Ok(false)
    }
}

/// A page of an account's devices.
#[derive(SimpleObject)]
pub(crate) struct AccountDeviceConnection {
    /// The devices of this page, in ascending IMEI order.
    edges: Vec<AccountDeviceEdge>,
    /// Where this page sits in the whole list.
    page_info: PageInfo,
    /// Number of devices in the account (before any filter), when the upstream
    /// reports it; ThingSpace's device list does not, so usually null.
    total_count: Option<i32>,
    /// Freshness of the account's device list this page was cut from: of the least
    /// fresh of the upstream pages it read (the oldest fetch, stale if any was).
    /// Never calls the upstream.
    freshness: Option<Freshness>,
}

/// One device of an account page and its cursor.
#[derive(SimpleObject)]
pub(crate) struct AccountDeviceEdge {
    /// Opaque position of this device; pass as `after` to continue after it.
    cursor: String,
    #[graphql(skip)]
    imei: Imei,
    /// The merged device.
    node: Device,
}
