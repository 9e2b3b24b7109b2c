//! Campaign report pages: `GET /fota/v3/reports/{acc}/campaigns/{id}/devices`, cached
//! per upstream page, keyed by the `lastSeenDeviceId` the page was asked with, so a
//! client paging through a report and another reading its first page share entries.

use std::borrow::Cow;
use std::sync::Arc;

use devicegraph_upstream::model::{CampaignDevice, CampaignPage};
use devicegraph_upstream::{AccountName, CampaignId, Client, Endpoint};
use futures::future::BoxFuture;

use crate::resource::{Fetches, Info, OwnedBy, Owner, Resource, ResourceKey, per_key};
use crate::weigh::{HeapSize, heap_size_of_fields};

/// One upstream page of a campaign report.
#[derive(Debug)]
pub struct CampaignPages;

/// A page of a campaign report, by the upstream cursor it was asked with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CampaignPageKey {
    account: AccountName,
    campaign: CampaignId,
    /// `None` = the first page.
    cursor: Option<String>,
}

impl CampaignPageKey {
    /// The page after `last_seen` (`None`, `""` and `"0"` all mean the first page:
    /// `0` is how the upstream spells "from the start", so they share one entry).
    pub fn new(account: &AccountName, campaign: &CampaignId, last_seen: Option<&str>) -> Self {
        Self {
            account: account.clone(),
            campaign: campaign.clone(),
            cursor: last_seen
                .filter(|c| !c.is_empty() && *c != "0")
                .map(str::to_owned),
        }
    }

    /// The upstream cursor (`None` = the first page).
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }
}

impl ResourceKey for CampaignPageKey {
    const OWNED_BY: OwnedBy = OwnedBy::Campaign;

    fn owner(&self) -> Owner<'_> {
        Owner::Campaign {
            account: &self.account,
            campaign: &self.campaign,
        }
    }

    fn part(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.cursor.as_deref().unwrap_or("0")))
    }

    fn part_heap(&self) -> usize {
        self.cursor.heap_size()
    }
}

impl Resource for CampaignPages {
    type Key = CampaignPageKey;
    type Value = Arc<CampaignPage>;
    const INFO: Info = Info::new("campaign_devices", "cp", Endpoint::CampaignDevices, 30);

    fn fetch(client: &Client, keys: Vec<Self::Key>) -> BoxFuture<'static, Fetches<Self>> {
        per_key::<Self, _, _>(client, keys, |client, key| async move {
            client
                .campaign_devices_page(&key.account, &key.campaign, key.cursor.as_deref())
                .await
                .map(Arc::new)
        })
    }
}

heap_size_of_fields!(CampaignDevice: device_id, status, result_reason);

heap_size_of_fields!(CampaignPage: last_seen_device_id, devices);
