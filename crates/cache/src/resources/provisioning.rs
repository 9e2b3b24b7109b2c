//! Provisioning history: `POST /m2m/v1/devices/history/actions/list`, named by a device
//! identifier without an account, cached per device and exact window (callers that
//! want hits round `latest`, to the minute say). The 202-paged walk is the upstream
//! crate's; one entry holds the whole window.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use devicegraph_upstream::model::{KeyValue, ProvisioningEvent};
use devicegraph_upstream::{Client, DeviceIdentifier, Endpoint};
use futures::TryStreamExt;
use futures::future::BoxFuture;

use crate::key::key_time;
use crate::resource::{Fetches, OwnedBy, Owner, Resource, per_key};
use crate::weigh::HeapSize;

/// Every provisioning event of a device in a window, oldest first.
#[derive(Debug)]
pub struct Provisioning;

/// A device and a window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProvisioningKey {
    pub device: DeviceIdentifier,
    pub earliest: DateTime<Utc>,
    pub latest: DateTime<Utc>,
}

impl Resource for Provisioning {
    type Key = ProvisioningKey;
    type Value = Arc<Vec<ProvisioningEvent>>;
    const NAME: &'static str = "provisioning";
    const TAG: &'static str = "pv";
    const ENDPOINT: Endpoint = Endpoint::ProvisioningHistory;
    const OWNED_BY: OwnedBy = OwnedBy::Identifier;
    const DEFAULT_TTL: Duration = Duration::from_secs(3600);

    fn owner(key: &Self::Key) -> Owner<'_> {
        Owner::Identifier {
            device: &key.device,
        }
    }

    fn part(key: &Self::Key) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(format!(
            "{}:{}",
            key_time(key.earliest),
            key_time(key.latest)
        )))
    }

    fn weigh(value: &Self::Value) -> usize {
        value.heap_size()
    }

    fn fetch(client: &Client, keys: Vec<Self::Key>) -> BoxFuture<'static, Fetches<Self>> {
        per_key::<Self, _, _>(client, keys, |client, key| async move {
            let events: Vec<ProvisioningEvent> = client
                .provisioning_history(key.device, key.earliest, key.latest)
                .try_collect()
                .await?;
            Ok(Arc::new(events))
        })
    }
}

impl HeapSize for KeyValue {
    fn heap_size(&self) -> usize {
        self.key.heap_size() + self.value.heap_size()
    }
}

impl HeapSize for ProvisioningEvent {
    fn heap_size(&self) -> usize {
        self.event_type.heap_size()
            + self.status.heap_size()
            + self.event_by.heap_size()
            + self.mdn.heap_size()
            + self.msisdn.heap_size()
            + self.service_plan.heap_size()
            + self.extended_attributes.heap_size()
    }
}
