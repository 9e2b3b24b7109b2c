//! Approximate heap bytes of what a cache entry is made of, for moka's weigher, so
//! `cache.max_bytes` bounds memory rather than an entry count.
//!
//! The estimate counts what an entry really allocates: every `String`/`Vec` buffer at
//! its capacity, rounded the way glibc's malloc rounds chunks (16-byte granules, 8 bytes
//! of header, 32 bytes minimum), the `Arc` boxes around values, the key's own strings,
//! and moka's per-entry bookkeeping (measured: see the memory test). This module
//! weighs the parts (upstream models, keys); `value` sums them into an entry's
//! weight next to the types it weighs, so the dependency runs `value` -> `weigh`.

use std::mem::size_of;
use std::sync::Arc;

use devicegraph_upstream::model::{
    CampaignDevice, CampaignPage, CheckIn, CheckInResult, ClientType, DeviceDetails, FailureType,
    FirmwareUpgrade, KeyValue, ProvisioningEvent, Software,
};

use crate::key::CacheKey;

/// moka's own cost per entry: the key and value `Arc`s it wraps, entry info, the
/// access-order and write-order deque nodes, the timer-wheel node for per-entry
/// expiry and the hash-table slot. Calibrated by `tests/memory_bound.rs`.
pub(crate) const MOKA_ENTRY_OVERHEAD: usize = 320;

/// Bytes malloc really hands out for a request of `n` bytes.
pub(crate) fn alloc(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        ((n + 8 + 15) & !15).max(32)
    }
}

/// Heap bytes owned by a value (not counting the value's own inline size).
pub(crate) trait HeapSize {
    fn heap_size(&self) -> usize;
}

impl HeapSize for String {
    fn heap_size(&self) -> usize {
        alloc(self.capacity())
    }
}

impl<T: HeapSize> HeapSize for Option<T> {
    fn heap_size(&self) -> usize {
        self.as_ref().map_or(0, HeapSize::heap_size)
    }
}

impl<T: HeapSize> HeapSize for Vec<T> {
    fn heap_size(&self) -> usize {
        alloc(self.capacity() * size_of::<T>())
            + self.iter().map(HeapSize::heap_size).sum::<usize>()
    }
}

/// An `Arc<T>`: the counted box plus whatever `T` owns.
impl<T: HeapSize> HeapSize for Arc<T> {
    fn heap_size(&self) -> usize {
        alloc(2 * size_of::<usize>() + size_of::<T>()) + T::heap_size(self)
    }
}

impl HeapSize for Software {
    fn heap_size(&self) -> usize {
        self.name.heap_size() + self.version.heap_size()
    }
}

impl HeapSize for DeviceDetails {
    fn heap_size(&self) -> usize {
        self.device_id.heap_size()
            + self.account_name.heap_size()
            + self.mdn.heap_size()
            + self.model.heap_size()
            + self.make.heap_size()
            + self.firmware.heap_size()
            + self.status.heap_size()
            + self.protocol.heap_size()
            + self.software.heap_size()
            + self.files.heap_size()
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

impl HeapSize for CampaignDevice {
    fn heap_size(&self) -> usize {
        self.device_id.heap_size() + self.status.heap_size() + self.result_reason.heap_size()
    }
}

impl HeapSize for CampaignPage {
    fn heap_size(&self) -> usize {
        self.last_seen_device_id.heap_size() + self.devices.heap_size()
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

/// Identifier newtypes keep exactly their text (parsed with `to_owned`).
pub(crate) fn key_heap(key: &CacheKey) -> usize {
    match key {
        CacheKey::DeviceDetails { account, imei }
        | CacheKey::UpgradeHistory { account, imei }
        | CacheKey::CheckIns { account, imei } => {
            alloc(account.as_str().len()) + alloc(imei.as_str().len())
        }
        CacheKey::CampaignPage {
            account,
            campaign,
            cursor,
        } => alloc(account.as_str().len()) + alloc(campaign.as_str().len()) + cursor.heap_size(),
        CacheKey::Provisioning { device, .. } => alloc(device.id().len()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn malloc_rounding() {
        assert_eq!(alloc(0), 0);
        assert_eq!(alloc(1), 32);
        assert_eq!(alloc(24), 32);
        assert_eq!(alloc(25), 48);
        assert_eq!(alloc(100), 112);
    }

    #[test]
    fn strings_count_capacity_not_length() {
        let mut s = String::with_capacity(1000);
        s.push('x');
        assert!(s.heap_size() >= 1000);
        let v: Vec<String> = vec!["ab".into(), "cd".into()];
        assert_eq!(v.heap_size(), alloc(v.capacity() * 24) + 2 * alloc(2));
    }
}
