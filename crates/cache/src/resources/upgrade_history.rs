//! Firmware upgrade history of one device: `GET /fota/v3/reports/{acc}/devices/{imei}`,
//! one request per device.

use std::sync::Arc;
use std::time::Duration;

use devicegraph_upstream::model::FirmwareUpgrade;
use devicegraph_upstream::{AccountName, Client, Endpoint, Imei};
use futures::future::BoxFuture;

use crate::resource::{Fetches, OwnedBy, Owner, Resource, per_key};
use crate::weigh::HeapSize;

/// Upgrade history, keyed by account and IMEI.
#[derive(Debug)]
pub struct UpgradeHistory;

impl Resource for UpgradeHistory {
    type Key = (AccountName, Imei);
    type Value = Arc<Vec<FirmwareUpgrade>>;
    const NAME: &'static str = "upgrade_history";
    const TAG: &'static str = "uh";
    const ENDPOINT: Endpoint = Endpoint::UpgradeHistory;
    const OWNED_BY: OwnedBy = OwnedBy::Device;
    const DEFAULT_TTL: Duration = Duration::from_secs(600);

    fn owner((account, imei): &Self::Key) -> Owner<'_> {
        Owner::Device { account, imei }
    }

    fn weigh(value: &Self::Value) -> usize {
        value.heap_size()
    }

    fn fetch(client: &Client, keys: Vec<Self::Key>) -> BoxFuture<'static, Fetches<Self>> {
        per_key::<Self, _, _>(client, keys, |client, (account, imei)| async move {
            client.upgrade_history(&account, &imei).await.map(Arc::new)
        })
    }
}

impl HeapSize for FirmwareUpgrade {
    fn heap_size(&self) -> usize {
        self.device_id.heap_size()
            + self.campaign_id.heap_size()
            + self.account_name.heap_size()
            + self.firmware_name.heap_size()
            + self.firmware_from.heap_size()
            + self.firmware_to.heap_size()
            + self.status.heap_size()
            + self.reason.heap_size()
    }
}
