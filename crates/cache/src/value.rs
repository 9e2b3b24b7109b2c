//! What the cache holds: parsed upstream answers behind `Arc` (a hit clones a pointer,
//! never a body), stamped with when they were stored and for how long they are fresh,
//! and what each entry weighs (summed from `weigh`'s estimates of its parts).

use std::mem::size_of;
use std::sync::Arc;
use std::time::Duration;

use devicegraph_upstream::model::{
    CampaignPage, CheckIn, DeviceDetails, FirmwareUpgrade, ProvisioningEvent,
};
use devicegraph_upstream::{Endpoint, UpstreamError};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::key::CacheKey;
use crate::weigh::{HeapSize, MOKA_ENTRY_OVERHEAD, alloc, key_heap};

/// One cached upstream answer. Serialisable for the Redis L2 copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum CachedValue {
    /// `None`: the account has no such device (the IMEI was absent from a successful
    /// details answer).
    Device(Option<Arc<DeviceDetails>>),
    Upgrades(Arc<Vec<FirmwareUpgrade>>),
    CheckIns(Arc<Vec<CheckIn>>),
    CampaignPage(Arc<CampaignPage>),
    Provisioning(Arc<Vec<ProvisioningEvent>>),
    /// A documented "not found" error answer (`*.NotFound` code), remembered for
    /// `ttl.not_found` like an absent device.
    Absent(Arc<NotFound>),
}

/// The parts of an upstream "not found" error worth replaying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NotFound {
    pub(crate) status: u16,
    pub(crate) error_code: String,
    pub(crate) error_message: String,
}

impl NotFound {
    /// `Some` for errors that say the thing does not exist. Codes are stable
    /// (`FOTA.DEVICE.NotFound`, `REQUEST_FAILED.Account.NotFound`); messages are not.
    pub(crate) fn from_error(error: &UpstreamError) -> Option<Self> {
        match error {
            UpstreamError::Api {
                status,
                error_code,
                error_message,
                ..
            } if error_code.ends_with(".NotFound") => Some(Self {
                status: *status,
                error_code: error_code.clone(),
                error_message: error_message.clone(),
            }),
            _ => None,
        }
    }

    pub(crate) fn to_error(&self, endpoint: Endpoint) -> UpstreamError {
        UpstreamError::Api {
            endpoint,
            status: self.status,
            error_code: self.error_code.clone(),
            error_message: self.error_message.clone(),
        }
    }
}

/// What a fetch produced for one key: a value and how long it stays fresh.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) value: CachedValue,
    pub(crate) ttl: Duration,
}

/// A cache entry. Its weight is computed once, when stored.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) value: CachedValue,
    pub(crate) stored_at: Instant,
    pub(crate) ttl: Duration,
    pub(crate) weight: u32,
}

impl Entry {
    pub(crate) fn new(key: &CacheKey, answer: Answer, stored_at: Instant) -> Self {
        let weight = entry_weight(key, &answer.value);
        Self {
            value: answer.value,
            stored_at,
            ttl: answer.ttl,
            weight,
        }
    }
}

impl HeapSize for NotFound {
    fn heap_size(&self) -> usize {
        self.error_code.heap_size() + self.error_message.heap_size()
    }
}

impl HeapSize for CachedValue {
    fn heap_size(&self) -> usize {
        match self {
            Self::Device(v) => v.heap_size(),
            Self::Upgrades(v) => v.heap_size(),
            Self::CheckIns(v) => v.heap_size(),
            Self::CampaignPage(v) => v.heap_size(),
            Self::Provisioning(v) => v.heap_size(),
            Self::Absent(v) => v.heap_size(),
        }
    }
}

/// The weight moka charges for `key` -> `value`: everything the entry keeps alive.
pub(crate) fn entry_weight(key: &CacheKey, value: &CachedValue) -> u32 {
    let bytes = MOKA_ENTRY_OVERHEAD
        // moka holds the key in its own Arc, and our Entry in an Arc.
        + alloc(2 * size_of::<usize>() + size_of::<CacheKey>())
        + key_heap(key)
        + alloc(2 * size_of::<usize>() + size_of::<Entry>())
        + value.heap_size();
    u32::try_from(bytes).unwrap_or(u32::MAX)
}
