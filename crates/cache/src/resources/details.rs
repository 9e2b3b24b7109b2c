//! Device details: `POST /fota/v3/devices/{acc}` with a `deviceList`. Many devices per
//! request, so a miss is fetched as one batch per account (the upstream crate chunks
//! it) and split per IMEI. An IMEI absent from a successful answer is a device the
//! account does not have: cached as `None` for `ttl.not_found`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use devicegraph_upstream::model::{DetailsChunk, DeviceDetails, Software};
use devicegraph_upstream::{AccountName, Client, Endpoint, Imei};
use futures::future::{BoxFuture, join_all};

use crate::resource::Ttls;
use crate::resource::{Fetches, Info, Resource};
use crate::weigh::heap_size_of_fields;

/// Device details, keyed by account and IMEI; `None` = no such device.
#[derive(Debug)]
pub struct Details;

impl Resource for Details {
    type Key = (AccountName, Imei);
    type Value = Option<Arc<DeviceDetails>>;
    const INFO: Info = Info::new("device_details", "dd", Endpoint::DeviceDetails, 300);

    /// An absent device is remembered for `not_found`, like any "not found".
    fn ttl(value: &Self::Value, ttls: &Ttls) -> Duration {
        if value.is_some() {
            ttls.of::<Self>()
        } else {
            ttls.not_found
        }
    }

    fn fetch(client: &Client, keys: Vec<Self::Key>) -> BoxFuture<'static, Fetches<Self>> {
        let mut by_account: BTreeMap<AccountName, Vec<Imei>> = BTreeMap::new();
        for (account, imei) in keys {
            by_account.entry(account).or_default().push(imei);
        }
        let batches = by_account.into_iter().map(|(account, imeis)| {
            let client = client.clone();
            async move {
                let chunks = client.device_details_batch(&account, imeis).await;
                split(&account, chunks)
            }
        });
        let batches: Vec<_> = batches.collect();
        Box::pin(async move { join_all(batches).await.into_iter().flatten().collect() })
    }
}

/// A batch's answer per IMEI asked.
fn split(account: &AccountName, chunks: Vec<DetailsChunk>) -> Fetches<Details> {
    let mut out = Vec::new();
    for chunk in chunks {
        let key = |imei: Imei| (account.clone(), imei);
        match chunk.result {
            Ok(list) => {
                let mut found: HashMap<String, Arc<DeviceDetails>> = list
                    .into_iter()
                    .map(|d| (d.device_id.trim().to_owned(), Arc::new(d)))
                    .collect();
                out.extend(chunk.imeis.into_iter().map(|imei| {
                    let details = found.remove(imei.as_str());
                    (key(imei), Ok(details))
                }));
            }
            Err(e) => out.extend(
                chunk
                    .imeis
                    .into_iter()
                    .map(|imei| (key(imei), Err(e.clone()))),
            ),
        }
    }
    out
}

heap_size_of_fields!(Software: name, version);

heap_size_of_fields!(
    DeviceDetails:
    device_id,
    account_name,
    mdn,
    model,
    make,
    firmware,
    status,
    protocol,
    software,
    files,
);
