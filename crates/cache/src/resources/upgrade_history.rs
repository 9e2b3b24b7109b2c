//! Firmware upgrade history of one device: `GET /fota/v3/reports/{acc}/devices/{imei}`,
//! one request per device.

use std::sync::Arc;

use devicegraph_upstream::model::FirmwareUpgrade;
use devicegraph_upstream::{AccountName, Client, Endpoint, Imei};
use futures::future::BoxFuture;

use crate::resource::{Fetches, Info, Resource, per_key};
use crate::weigh::heap_size_of_fields;

/// Upgrade history, keyed by account and IMEI.
#[derive(Debug)]
pub struct UpgradeHistory;

impl Resource for UpgradeHistory {
    type Key = (AccountName, Imei);
    type Value = Arc<Vec<FirmwareUpgrade>>;
    const INFO: Info = Info::new("upgrade_history", "uh", Endpoint::UpgradeHistory, 600);

    fn fetch(client: &Client, keys: Vec<Self::Key>) -> BoxFuture<'static, Fetches<Self>> {
        per_key::<Self, _, _>(client, keys, |client, (account, imei)| async move {
            client.upgrade_history(&account, &imei).await.map(Arc::new)
        })
    }
}

heap_size_of_fields!(
    FirmwareUpgrade:
    device_id,
    campaign_id,
    account_name,
    firmware_name,
    firmware_from,
    firmware_to,
    status,
    reason,
);
