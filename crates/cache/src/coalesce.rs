//! Coalescing: at most one upstream fetch per key at a time.
//!
//! The in-flight map goes from a key to the *flight* fetching it. A flight covers
//! one or more keys (a device-details batch covers many IMEIs); its result is
//! published once, on a `watch` channel, to every request that joined it. A batch
//! therefore claims only the IMEIs nobody is fetching and joins the flights of the
//! others, which is what makes overlapping concurrent batches cost one upstream read
//! per IMEI.
//!
//! The map sits behind a `std::sync::Mutex`: it is held only for map operations and
//! a synchronous L1 re-check, never across an `.await`.
//!
//! However a flight ends, its waiters are answered and its keys are released, so one
//! bad fetch costs the requests that shared it and never the ones after:
//! - it answers (values or errors): published, then [`FlightGuard`] unregisters;
//! - it is dropped before publishing (its fetch panicked, the runtime is shutting
//!   down): the guard unregisters the keys, then the channel closes and every waiter
//!   reads "no answer" ([`Flight::wait`] is `None`). Unregistering first means a
//!   request arriving after the close starts a new flight instead of joining a dead
//!   one.
//!
//! A hung fetch is bounded by the engine (the flight's deadline), not here.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use devicegraph_upstream::UpstreamError;
use tokio::sync::watch;

use crate::key::AnyKey;
use crate::resource::Resource;
use crate::value::Entry;

/// The result of one key of a flight.
#[derive(Debug)]
pub(crate) enum KeyOutcome<V> {
    /// A value fresh from the upstream, or a fresh copy from the L2 (`from_l2`).
    Value { entry: Arc<Entry<V>>, from_l2: bool },
    /// The fetch failed; `stale` is an expired L2 copy a waiter may serve if it has
    /// no stale copy of its own and the error is transient.
    Failed {
        error: UpstreamError,
        stale: Option<Arc<Entry<V>>>,
    },
}

/// Everything a flight of resource `R` produced, keyed like its claims.
pub(crate) type Published<R> = HashMap<<R as Resource>::Key, KeyOutcome<<R as Resource>::Value>>;

/// A flight's result as its channel carries it: a `Published<R>` of the flight's
/// resource (the in-flight map holds flights of every resource; a key of `R` is only
/// ever claimed by a flight of `R`).
type Slot = Option<Arc<dyn Any + Send + Sync>>;

/// A handle to join a flight.
#[derive(Debug, Clone)]
pub(crate) struct Flight {
    id: u64,
    rx: watch::Receiver<Slot>,
}

impl Flight {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Waits for the flight's result; `None` if it ended without publishing (its task
    /// panicked or was cancelled by runtime shutdown).
    pub(crate) async fn wait<R: Resource>(mut self) -> Option<Arc<Published<R>>> {
        let published = match self.rx.wait_for(Option::is_some).await {
            Ok(slot) => slot.clone()?,
            Err(_) => return None,
        };
        published.downcast::<Published<R>>().ok()
    }
}

/// The publishing side of a flight, owned by the task that fetches (inside its
/// [`FlightGuard`]).
#[derive(Debug)]
pub(crate) struct FlightSender {
    tx: watch::Sender<Slot>,
}

#[derive(Debug, Default)]
pub(crate) struct Inflight {
    map: Mutex<HashMap<AnyKey, Flight>>,
    next_id: AtomicU64,
}

impl Inflight {
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<AnyKey, Flight>> {
        // A panic while holding the lock cannot leave the map inconsistent (single
        // inserts/removes), so a poisoned lock is still usable.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new flight, not yet registered for any key.
    pub(crate) fn new_flight(&self) -> (Flight, FlightSender) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        (Flight { id, rx }, FlightSender { tx })
    }

    /// How many keys are being fetched right now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Owns a flight's publishing side and unregisters its keys when the fetching task
/// ends, however it ends (a panicking fetch must not leave keys claimed forever).
/// Only entries still owned by this flight are removed. The sender is a field, so
/// it is dropped (closing the channel of a flight that never published) only after
/// `drop` has unregistered the keys.
pub(crate) struct FlightGuard {
    pub(crate) inflight: Arc<Inflight>,
    pub(crate) id: u64,
    pub(crate) keys: Vec<AnyKey>,
    pub(crate) sender: FlightSender,
}

impl FlightGuard {
    pub(crate) fn publish<R: Resource>(&self, result: Published<R>) {
        // No receiver left (every waiter gave up) is fine: the cache already has it.
        let _ = self.sender.tx.send(Some(Arc::new(result)));
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut map = self.inflight.lock();
        for key in &self.keys {
            if map.get(key).is_some_and(|f| f.id == self.id) {
                map.remove(key);
            }
        }
    }
}
