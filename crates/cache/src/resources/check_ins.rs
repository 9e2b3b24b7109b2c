//! Check-in history of one device: `GET .../logging/{acc}/devices/{imei}/checkInHistory`,
//! one request per device, newest order as the upstream sends it.

use std::sync::Arc;

use devicegraph_upstream::model::{CheckIn, CheckInResult, ClientType, FailureType};
use devicegraph_upstream::{AccountName, Client, Endpoint, Imei};
use futures::future::BoxFuture;

use crate::resource::{Fetches, Info, Resource, per_key};
use crate::weigh::HeapSize;

/// Check-in history, keyed by account and IMEI.
#[derive(Debug)]
pub struct CheckIns;

impl Resource for CheckIns {
    type Key = (AccountName, Imei);
    type Value = Arc<Vec<CheckIn>>;
    const INFO: Info = Info::new("check_ins", "ci", Endpoint::CheckInHistory, 60);

    fn fetch(client: &Client, keys: Vec<Self::Key>) -> BoxFuture<'static, Fetches<Self>> {
        per_key::<Self, _, _>(client, keys, |client, (account, imei)| async move {
            client.check_in_history(&account, &imei).await.map(Arc::new)
        })
    }
}

impl HeapSize for CheckIn {
    fn heap_size(&self) -> usize {
        let client = match &self.client_type {
            ClientType::Other(s) => s.heap_size(),
            _ => 0,
        };
        let result = match &self.result {
            CheckInResult::Other(s) => s.heap_size(),
            _ => 0,
        };
        let failure = match &self.failure_type {
            FailureType::Other(s) => s.heap_size(),
            _ => 0,
        };
        self.device_id.heap_size() + client + result + failure
    }
}
