//! Relay Global Object Identification: the `Node` interface and `Query.node` /
//! `Query.nodes`.
//!
//! An id (`global_id.rs`) names its account; resolving it checks that account against
//! the caller's scope exactly as `device`/`campaign` do, then reads through the same
//! per-operation state, loader and cache entries:
//!
//! - `Device` ids: the details DataLoader (every device id of one `nodes` in one
//!   store batch, so up to 1,000 uncached devices of an account cost one upstream
//!   call), with the histories the selection reads started alongside;
//! - `CampaignDevice` ids: the campaign's cached upstream pages, walked from the
//!   first (`campaign::find_rows`, one walk per campaign for all its ids): nothing
//!   upstream after the page that gave the id, at most `NODE_SCAN_PAGES` pages cold.
//!
//! Per position: a malformed, forged or oversized id is `BAD_USER_INPUT`, an account
//! outside the caller's scope `FORBIDDEN` (nothing of it is read), an object that does
//! not exist `null`. In `nodes` each position fails on its own, like `devices`.

use std::collections::{HashMap, HashSet};

use async_graphql::{Context, ID, Interface, Result};
use devicegraph_upstream::{AccountName, CampaignId, Imei};
use futures::future::join_all;

use crate::campaign::{CampaignDevice, Rows, find_rows};
use crate::device::{Device, Wants, prefetch_histories};
use crate::error::{bad_input, from_cache};
use crate::global_id::GlobalId;
use crate::loader::{DetailsResult, DeviceKey};
use crate::state::RequestState;

/// An object with a global id, opaque to clients, stable across requests and replicas.
#[derive(Interface)]
#[graphql(field(
    name = "id",
    ty = "ID",
    desc = "The global id: opaque, stable across requests and replicas; `node(id:)` reads the object back."
))]
pub(crate) enum Node {
    Device(Device),
    CampaignDevice(CampaignDevice),
}

/// One position of `nodes`: its object, `None` when there is none, or its own error.
pub(crate) type Resolved = Option<Result<Node>>;

/// Resolves `ids` in order; `path(i)` is the response path of position `i` (where
/// its freshness is noted).
pub(crate) async fn resolve(
    ctx: &Context<'_>,
    ids: &[ID],
    path: impl Fn(usize) -> String,
) -> Result<Vec<Resolved>> {
    let state = RequestState::of(ctx)?;
    let decoded: Vec<Result<GlobalId>> = ids
        .iter()
        .map(|id| {
            let id = GlobalId::decode(id.as_str()).map_err(|e| bad_input(e.to_string()))?;
            state.check_account(id.account())?;
            Ok(id)
        })
        .collect();

    let mut device_keys: Vec<DeviceKey> = Vec::new();
    let mut campaigns: HashMap<(AccountName, CampaignId), HashSet<String>> = HashMap::new();
    for id in decoded.iter().flatten() {
        match id {
            GlobalId::Device { account, imei } => {
                device_keys.push((account.clone(), imei.clone()));
            }
            GlobalId::CampaignDevice {
                account,
                campaign,
                device_id,
            } => {
                campaigns
                    .entry((account.clone(), campaign.clone()))
                    .or_default()
                    .insert(device_id.clone());
            }
        }
    }

    // Campaign rows first (a walk of cached pages, usually), so that the devices they
    // select join the device ids' details in one batch.
    let rows = find_all_rows(state, campaigns).await;
    let row_device = ctx.look_ahead().field("device");
    let row_keys: Vec<DeviceKey> = if row_device.exists() {
        rows.iter()
            .filter_map(|((account, _), rows)| Some((account, rows.as_ref().ok()?)))
            .flat_map(|(account, rows)| {
                rows.found
                    .keys()
                    .filter_map(|d| d.parse::<Imei>().ok())
                    .map(|imei| (account.clone(), imei))
            })
            .collect()
    } else {
        Vec::new()
    };
    // The rows' `device` fields then find theirs in the loader's per-operation cache.
    let (devices, ()) = futures::future::join(
        load_devices(
            ctx,
            state,
            device_keys,
            Wants::of(ctx.look_ahead()),
            row_keys.clone(),
        ),
        prefetch_histories(ctx, Wants::of(row_device), &row_keys),
    )
    .await;

    Ok(decoded
        .into_iter()
        .enumerate()
        .map(|(index, id)| {
            let id = match id {
                Ok(id) => id,
                Err(e) => return Some(Err(e)),
            };
            match id {
                GlobalId::Device { account, imei } => {
                    match devices.get(&(account.clone(), imei.clone())).cloned()? {
                        Err(e) => Some(Err(from_cache(&e))),
                        Ok(fetched) => {
                            state.note_at(fetched.freshness, || path(index));
                            fetched
                                .value
                                .map(|d| Ok(Node::Device(Device::new(account, imei, d))))
                        }
                    }
                }
                GlobalId::CampaignDevice {
                    account,
                    campaign,
                    device_id,
                } => match rows.get(&(account, campaign))? {
                    Err(e) => Some(Err(e.clone())),
                    Ok(rows) => {
                        state.note_at(rows.freshness, || path(index));
                        rows.get(&device_id)
                            .map(|row| row.map(Node::CampaignDevice))
                            .transpose()
                    }
                },
            }
        })
        .collect())
}

/// The details of `keys` and `more` in one DataLoader batch (a single device goes the
/// way a lone `device` field does), with the histories `wants` names for `keys` read
/// alongside.
async fn load_devices(
    ctx: &Context<'_>,
    state: &RequestState,
    keys: Vec<DeviceKey>,
    wants: Wants,
    more: Vec<DeviceKey>,
) -> HashMap<DeviceKey, DetailsResult> {
    let histories = prefetch_histories(ctx, wants, &keys);
    match (keys.as_slice(), more.is_empty()) {
        ([], true) => HashMap::new(),
        ([key], true) => {
            let (result, ()) =
                futures::future::join(state.device_details(key.clone()), histories).await;
            HashMap::from([(key.clone(), result)])
        }
        _ => {
            let all = keys.iter().cloned().chain(more).collect();
            let (found, ()) =
                futures::future::join(state.device_details_many(all), histories).await;
            found
        }
    }
}

/// One page walk per campaign, all at once.
async fn find_all_rows(
    state: &RequestState,
    campaigns: HashMap<(AccountName, CampaignId), HashSet<String>>,
) -> HashMap<(AccountName, CampaignId), Result<Rows>> {
    join_all(campaigns.into_iter().map(|(key, wanted)| async move {
        let rows = find_rows(state, &key.0, &key.1, &wanted).await;
        (key, rows)
    }))
    .await
    .into_iter()
    .collect()
}
