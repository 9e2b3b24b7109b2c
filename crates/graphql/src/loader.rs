//! The device-details DataLoader: every `Device` of one operation (from `devices`,
//! campaign page nodes, aliases of `device`) asks for its details here; the loader only
//! gathers the keys of one operation into one `Store::get_many::<Details>` call.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use devicegraph_cache::resources::Details;
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

    /// Hands the gathered keys to the store as they are: the store fetches one
    /// batch per account and the upstream crate cuts it into requests.
    async fn load(
        &self,
        keys: &[DeviceKey],
    ) -> Result<HashMap<DeviceKey, DetailsResult>, Infallible> {
        tracing::debug!(devices = keys.len(), "device details batch");
        Ok(self.store.get_many::<Details>(keys.to_vec()).await)
    }
}
