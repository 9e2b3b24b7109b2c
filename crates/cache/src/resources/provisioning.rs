//! Provisioning history: `POST /m2m/v1/devices/history/actions/list`, named by a device
//! identifier without an account, cached per device and exact window (callers that
//! want hits round `latest`, to the minute say). The 202-paged walk is the upstream
//! crate's; one entry holds the whole window.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use devicegraph_upstream::model::{KeyValue, ProvisioningEvent};
use devicegraph_upstream::{Client, DeviceIdentifier, Endpoint};
use futures::TryStreamExt;
use futures::future::BoxFuture;

use crate::key::key_time;
use crate::resource::{Fetches, Info, OwnedBy, Owner, Resource, ResourceKey, per_key};
use crate::weigh::heap_size_of_fields;

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

impl ResourceKey for ProvisioningKey {
    const OWNED_BY: OwnedBy = OwnedBy::Identifier;

    fn owner(&self) -> Owner<'_> {
        Owner::Identifier {
            device: &self.device,
        }
    }

    fn part(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(format!(
            "{}:{}",
            key_time(self.earliest),
            key_time(self.latest)
        )))
    }
}

impl Resource for Provisioning {
    type Key = ProvisioningKey;
    type Value = Arc<Vec<ProvisioningEvent>>;
    const INFO: Info = Info::new("provisioning", "pv", Endpoint::ProvisioningHistory, 3600);

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

heap_size_of_fields!(KeyValue: key, value);

heap_size_of_fields!(
    ProvisioningEvent:
    event_type,
    status,
    event_by,
    mdn,
    msisdn,
    service_plan,
    extended_attributes,
);
