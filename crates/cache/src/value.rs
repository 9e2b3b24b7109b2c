//! What the cache holds: parsed upstream answers behind `Arc` (a hit clones a pointer,
//! never a body), stamped with when they were stored (on the monotonic clock that
//! decides freshness, and on the wall clock that `Freshness.fetchedAt` reports) and
//! for how long they are fresh, and what each entry weighs (summed from `weigh`'s
//! estimates of its parts).
//!
//! One L1 holds every resource (one byte budget), so its values are [`Slot`]s: the
//! TTL and weight moka needs, and the typed [`Entry`] behind `dyn Any`. Only
//! [`Slot::entry`] looks inside, and it is keyed: a slot is stored under an
//! `AnyKey` of resource `R` only by `Slot::new::<R>`, so it always holds an
//! `Entry<R::Value>`.

use std::any::Any;
use std::mem::size_of;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::key::AnyKey;
use crate::resource::{Cached, Resource};
use crate::weigh::{HeapSize, MOKA_ENTRY_OVERHEAD, alloc};

/// What a fetch produced for one key: a value and how long it stays fresh.
#[derive(Debug, Clone)]
pub(crate) struct Answer<V> {
    pub(crate) value: Cached<V>,
    pub(crate) ttl: Duration,
}

/// A cache entry of one resource.
#[derive(Debug)]
pub(crate) struct Entry<V> {
    pub(crate) value: Cached<V>,
    pub(crate) stored_at: Instant,
    /// Wall-clock time the upstream answered, on the replica that fetched it (an
    /// L2 copy keeps the writer's).
    pub(crate) fetched_at: SystemTime,
    pub(crate) ttl: Duration,
    /// Unique in this process: a new entry for the same key (a refresh, a refetch
    /// after an invalidation) has another version, so whatever was built from the
    /// old one (a stored response) can tell.
    pub(crate) version: u64,
}

/// The next entry version (0 is never used: it marks "not from the cache").
static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);

impl<V> Entry<V> {
    pub(crate) fn new(answer: Answer<V>, stored_at: Instant, fetched_at: SystemTime) -> Self {
        Self {
            value: answer.value,
            stored_at,
            fetched_at,
            ttl: answer.ttl,
            version: NEXT_VERSION.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// An L1 value: an `Arc<Entry<R::Value>>` with what moka needs to know of it.
#[derive(Clone)]
pub(crate) struct Slot {
    pub(crate) ttl: Duration,
    /// Computed once, when stored.
    pub(crate) weight: u32,
    entry: Arc<dyn Any + Send + Sync>,
}

impl Slot {
    pub(crate) fn new<R: Resource>(key: &AnyKey, entry: Arc<Entry<R::Value>>) -> Self {
        Self {
            ttl: entry.ttl,
            weight: entry_weight::<R>(key, &entry),
            entry,
        }
    }

    /// The typed entry (`None` only if the slot is another resource's, which the
    /// key's type rules out).
    pub(crate) fn entry<R: Resource>(&self) -> Option<Arc<Entry<R::Value>>> {
        Arc::clone(&self.entry).downcast::<Entry<R::Value>>().ok()
    }
}

impl HeapSize for crate::resource::NotFound {
    fn heap_size(&self) -> usize {
        self.error_code.heap_size() + self.error_message.heap_size()
    }
}

/// The weight moka charges for `key` -> `entry`: everything the entry keeps alive.
fn entry_weight<R: Resource>(key: &AnyKey, entry: &Entry<R::Value>) -> u32 {
    let value = match &entry.value {
        Cached::Found(v) => v.heap_size(),
        Cached::Absent(nf) => nf.heap_size(),
    };
    let bytes = MOKA_ENTRY_OVERHEAD
        // moka holds the key in its own Arc, the key its resource key in an Arc, and
        // the slot our Entry in an Arc.
        + alloc(2 * size_of::<usize>() + size_of::<AnyKey>())
        + alloc(2 * size_of::<usize>() + size_of::<R::Key>())
        + key.heap()
        + alloc(2 * size_of::<usize>() + size_of::<Entry<R::Value>>())
        + value;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}
