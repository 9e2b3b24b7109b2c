//! The device-details DataLoader: every `Device` of one operation (from `devices`,
//! campaign page nodes, aliases of `device`) asks for its details here, and the loader
//! turns all of them into one `Store::device_details` call per account.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use devicegraph_cache::{CacheError, Fetched, Store};
use devicegraph_upstream::model::DeviceDetails;
use devicegraph_upstream::{AccountName, Imei};

/// A device is identified by its account and IMEI: the same IMEI asked under two
/// accounts is two upstream questions.
pub(crate) type DeviceKey = (AccountName, Imei);

/// Per device: its details (`None` = the account has no such device) or the failure
/// of the batch it was in. Errors are values, not the loader's error, so one failed
/// account does not fail the devices of another.
pub(crate) type DetailsResult = Result<Fetched<Option<Arc<DeviceDetails>>>, CacheError>;

pub(crate) struct DetailsLoader {
    store: Store,
}

impl DetailsLoader {
    pub(crate) fn new(store: Store) -> Self {
        Self { store }
    }
}

impl Loader<DeviceKey> for DetailsLoader {
    type Value = DetailsResult;
    type Error = Infallible;

    async fn load(
        &self,
        keys: &[DeviceKey],
    ) -> Result<HashMap<DeviceKey, DetailsResult>, Infallible> {
        // Sorted IMEIs per account: deterministic upstream request bodies.
        let mut by_account: BTreeMap<&AccountName, Vec<Imei>> = BTreeMap::new();
        for (account, imei) in keys {
            by_account.entry(account).or_default().push(imei.clone());
        }
        let fetches = by_account.into_iter().map(|(account, mut imeis)| {
            imeis.sort();
            imeis.dedup();
            async move {
                tracing::debug!(account = %account, imeis = imeis.len(), "device details batch");
                (account, self.store.device_details(account, &imeis).await)
            }
        });
        let mut out = HashMap::with_capacity(keys.len());
        for (account, answers) in futures::future::join_all(fetches).await {
            for (imei, answer) in answers {
                out.insert((account.clone(), imei), answer);
            }
        }
        Ok(out)
    }
}
