//! The `Query` root: argument checks and account scope first, then the store.
//!
//! Every argument is parsed into its identifier newtype and every scope check is made
//! before the first upstream call, so a bad request costs the upstream nothing.

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use devicegraph_upstream::{AccountName, CampaignId, DeviceIdentifier, Imei};

use crate::account::Account;
use crate::campaign::Campaign;
use crate::device::{Device, Wants, check_window, prefetch_histories, provisioning_events};
use crate::error::{Code, bad_input, from_cache, has_code};
use crate::history::ProvisioningEvent;
use crate::node::{self, Node};
use crate::scalars::{GqlDateTime, GqlImei};
use crate::state::{RequestState, path_of};

fn parse_account(account: &str) -> Result<AccountName> {
    account.parse().map_err(|e| bad_input(format!("{e}")))
}

/// The kinds of device identifier provisioning history accepts.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(rename_items = "UPPERCASE")]
pub(crate) enum DeviceIdKind {
    /// Electronic serial number: 11 decimal digits.
    Esn,
    /// SIM card id: up to 20 decimal digits.
    Iccid,
    /// Up to 16 decimal digits.
    Imei,
    /// Mobile directory number: 10 decimal digits.
    Mdn,
    /// Mobile equipment id: 14 hexadecimal characters.
    Meid,
    /// 11 decimal digits.
    Msisdn,
}

impl From<DeviceIdKind> for devicegraph_upstream::DeviceIdKind {
    fn from(k: DeviceIdKind) -> Self {
        match k {
            DeviceIdKind::Esn => Self::Esn,
            DeviceIdKind::Iccid => Self::Iccid,
            DeviceIdKind::Imei => Self::Imei,
            DeviceIdKind::Mdn => Self::Mdn,
            DeviceIdKind::Meid => Self::Meid,
            DeviceIdKind::Msisdn => Self::Msisdn,
        }
    }
}

/// A device identifier of any kind; `id` is checked against the kind's format.
#[derive(InputObject, Debug, Clone)]
pub(crate) struct DeviceIdentifierInput {
    /// Which kind of identifier `id` is.
    kind: DeviceIdKind,
    /// The identifier, e.g. 15 digits for an IMEI or 10 for an MDN.
    id: String,
}

/// The root of every query.
#[derive(Debug, Default, Clone, Copy)]
pub struct Query;

/// The devicegraph queries: devices, campaigns and provisioning history of Verizon
/// ThingSpace accounts, merged, cached and batched.
#[Object]
impl Query {
    /// One device, merged from its details, firmware upgrade history and check-in
    /// history. Null if the account has no such device.
    async fn device(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "ThingSpace account name, e.g. 0000123456-00001.")] account: String,
        #[graphql(desc = "The device's IMEI.")] imei: GqlImei,
    ) -> Result<Option<Device>> {
        let account = parse_account(&account)?;
        let imei = imei.to_imei()?;
        let state = RequestState::of(ctx)?;
        state.check_account(&account)?;
        let key = (account.clone(), imei.clone());
        let wants = Wants::of(ctx.look_ahead());
        let (fetched, ()) = futures::future::join(
            state.device_details(key.clone()),
            prefetch_histories(ctx, wants, std::slice::from_ref(&key)),
        )
        .await;
        let fetched = fetched.map_err(|e| from_cache(&e))?;
        state.note(ctx, fetched.freshness);
        Ok(fetched.value.map(|d| Device::new(account, imei, d)))
    }

    /// Several devices of one account, in the order asked; null where the account has
    /// no such device (or where fetching it failed, with an error naming its path).
    /// Details are fetched in upstream batches of up to 1,000.
    ///
    /// Complexity: the selection counts once per IMEI asked, so the limit bounds the
    /// size of the answer, not only of the query.
    #[graphql(complexity = "imeis.len().max(1).saturating_mul(child_complexity)")]
    async fn devices(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "ThingSpace account name, e.g. 0000123456-00001.")] account: String,
        #[graphql(desc = "The IMEIs to read, in the order the answer should keep.")] imeis: Vec<
            GqlImei,
        >,
    ) -> Result<Vec<Option<Result<Device>>>> {
        let account = parse_account(&account)?;
        let imeis: Vec<Imei> = imeis.iter().map(GqlImei::to_imei).collect::<Result<_>>()?;
        let state = RequestState::of(ctx)?;
        state.check_account(&account)?;
        let keys: Vec<_> = imeis.iter().map(|i| (account.clone(), i.clone())).collect();
        let wants = Wants::of(ctx.look_ahead());
        let (found, ()) = futures::future::join(
            state.device_details_many(keys.clone()),
            prefetch_histories(ctx, wants, &keys),
        )
        .await;
        let base = path_of(ctx);
        let out = imeis
            .into_iter()
            .enumerate()
            .map(|(index, imei)| {
                // Cloned, not removed: a repeated IMEI answers at every position.
                match found.get(&(account.clone(), imei.clone())).cloned() {
                    None => None,
                    Some(Err(e)) => Some(Err(from_cache(&e))),
                    Some(Ok(fetched)) => {
                        state.note_at(fetched.freshness, || format!("{base}.{index}"));
                        fetched
                            .value
                            .map(|d| Ok(Device::new(account.clone(), imei, d)))
                    }
                }
            })
            .collect();
        Ok(out)
    }

    /// A firmware campaign and the status of each of its devices. Null, with a
    /// NOT_FOUND error, when the account has no such campaign (or no such account);
    /// null with its error when it cannot be answered, while the rest of the
    /// operation still is.
    ///
    /// Whether the campaign exists is ThingSpace's answer for a report page: the first
    /// one, read here when `totalDevices` reads it anyway or when no page of
    /// `devices` is selected (one cached entry); otherwise the page `devices` reads
    /// tells (its failure nulls the campaign, `devices` being non-null), after its
    /// arguments are checked, so a bad `first` or `after` costs no call. Other
    /// failures of the first page are reported by the fields that need it.
    async fn campaign(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "ThingSpace account name, e.g. 0000123456-00001.")] account: String,
        #[graphql(desc = "The campaign id, a UUID.")] id: ID,
    ) -> Result<Option<Campaign>> {
        let account = parse_account(&account)?;
        let id: CampaignId = id.as_str().parse().map_err(|e| bad_input(format!("{e}")))?;
        let state = RequestState::of(ctx)?;
        state.check_account(&account)?;
        let selection = ctx.look_ahead();
        if selection.field("totalDevices").exists() || !selection.field("devices").exists() {
            match state.campaign_page(&account, &id, None).await {
                Ok(first) => state.note(ctx, first.freshness),
                Err(e) if has_code(&e, Code::NotFound) => return Err(e),
                Err(_) => {}
            }
        }
        Ok(Some(Campaign::new(account, id)))
    }

    /// Any object by its global id (Relay Global Object Identification).
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "A global id, as the `id` of a `Device` or `CampaignDevice` gave it. A malformed id is BAD_USER_INPUT, one of an account the caller may not read FORBIDDEN."
        )]
        id: ID,
    ) -> Result<Option<Node>> {
        let base = path_of(ctx);
        let mut resolved = node::resolve(ctx, std::slice::from_ref(&id), |_| base.clone()).await?;
        resolved.pop().flatten().transpose()
    }

    /// Several objects by global id, in the order asked; null where none.
    // (The contract's description, verbatim.) Complexity: the selection counts once
    // per id asked.
    #[graphql(complexity = "ids.len().max(1).saturating_mul(child_complexity)")]
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Global ids, at most the configured list limit (1,000 by default). Each position answers on its own: null, or null with its error (BAD_USER_INPUT, FORBIDDEN, ...)."
        )]
        ids: Vec<ID>,
    ) -> Result<Vec<Option<Result<Node>>>> {
        let base = path_of(ctx);
        node::resolve(ctx, &ids, |index| format!("{base}.{index}")).await
    }

    /// One account: its devices as a connection.
    ///
    /// Reading it costs nothing; its `devices` read the account's device list.
    /// Null, with the error, when the account cannot be read (its devices' error).
    async fn account(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "ThingSpace account name, e.g. 0000123456-00001.")] name: String,
    ) -> Result<Option<Account>> {
        let account = parse_account(&name)?;
        RequestState::of(ctx)?.check_account(&account)?;
        Ok(Some(Account::new(account)))
    }

    /// Provisioning history of any device identifier kind, all upstream pages merged,
    /// oldest first; null, with its error, when it cannot be answered (NOT_FOUND for
    /// an identifier ThingSpace does not know), while the rest of the operation still
    /// is. Not tied to an account, so it needs access to all accounts (FORBIDDEN for
    /// API keys limited to some).
    async fn provisioning_history(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The device, by any identifier kind.")] device: DeviceIdentifierInput,
        #[graphql(desc = "Start of the window (inclusive).")] earliest: GqlDateTime,
        #[graphql(desc = "End of the window; must be after `earliest`.")] latest: GqlDateTime,
    ) -> Result<Option<Vec<ProvisioningEvent>>> {
        let id = DeviceIdentifier::new(device.kind.into(), device.id)
            .map_err(|e| bad_input(e.to_string()))?;
        check_window(&earliest, &latest)?;
        RequestState::of(ctx)?.check_all_accounts()?;
        provisioning_events(ctx, &id, &earliest, &latest)
            .await
            .map(Some)
    }
}
