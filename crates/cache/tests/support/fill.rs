//! Fills a store with real simulator data: campaign report pages and the details of
//! every device on them, page after page.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use devicegraph_cache::Store;
use devicegraph_cache::resources::{CampaignPageKey, CampaignPages};
use devicegraph_sim::RunningSim;
use devicegraph_upstream::{CampaignId, Imei};

use super::{ACCOUNT, account, details_of};

/// The seed account's largest campaign.
pub fn big_campaign(sim: &RunningSim) -> (CampaignId, u64) {
    let catalog = sim.catalog();
    let c = catalog
        .campaigns
        .iter()
        .filter(|c| c.account == ACCOUNT)
        .max_by_key(|c| c.devices)
        .unwrap();
    (c.id.parse().unwrap(), c.devices)
}

/// Reads `pages` pages of the campaign report and the details of their devices;
/// answers how many devices were read.
pub async fn fill(store: &Store, campaign: &CampaignId, pages: usize) -> usize {
    let account = account();
    let mut cursor: Option<String> = None;
    let mut devices = 0;
    for _ in 0..pages {
        let page = store
            .get::<CampaignPages>(CampaignPageKey::new(&account, campaign, cursor.as_deref()))
            .await
            .unwrap();
        let imeis: Vec<Imei> = page
            .value
            .devices
            .iter()
            .map(|d| d.device_id.parse().unwrap())
            .collect();
        devices += imeis.len();
        let details = details_of(store, &account, &imeis).await;
        assert!(details.values().all(Result::is_ok));
        cursor = page.value.last_seen_device_id.clone();
        if !page.value.has_more_data || cursor.is_none() {
            break;
        }
    }
    devices
}
