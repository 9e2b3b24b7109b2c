//! Invalidation epochs: keep a fetch that was already in flight when an invalidation
//! ran from caching the answer it got before it.
//!
//! The race this closes: an operator changes something upstream, then invalidates.
//! A flight that started before the invalidation may have read the old value (from
//! the upstream or the L2); if it stored that value after the invalidation dropped
//! the entry, the old value would be served for a whole TTL.
//!
//! How: every flight notes the epoch when it starts ([`FlightEpoch`]); every
//! invalidation is recorded with its scope while it runs and, once done, with the
//! epoch it ended at. A flight may store a key only if no invalidation covering the
//! key is running or ended after the flight started. The check and the L1 insert
//! happen under one lock, and an invalidation registers itself (under that lock)
//! before it removes anything, so either the insert comes first and the invalidation
//! removes it, or the flight sees the invalidation and does not insert. A refused
//! flight still answers the requests waiting on it: they asked before the
//! invalidation. Records are kept only while a flight older than their end lives.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::key::AnyKey;
use crate::scope::InvalidateScope;

#[derive(Debug, Default)]
pub(crate) struct Epochs {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Advanced each time an invalidation ends.
    epoch: u64,
    /// Live flights by the epoch they started at (value: how many).
    flights: BTreeMap<u64, usize>,
    invalidations: Vec<Invalidation>,
    next_id: u64,
}

#[derive(Debug)]
struct Invalidation {
    id: u64,
    scope: InvalidateScope,
    /// `None` while it runs.
    ended: Option<u64>,
}

impl State {
    /// Whether an invalidation covering `key` runs now or ended after `started`.
    fn superseded(&self, started: u64, key: &AnyKey) -> bool {
        self.invalidations
            .iter()
            .any(|i| i.ended.is_none_or(|e| e > started) && key.in_scope(&i.scope))
    }

    /// Drops the records no live flight can be affected by any more.
    fn prune(&mut self) {
        let oldest = self.flights.keys().next().copied();
        self.invalidations.retain(|i| match (i.ended, oldest) {
            (None, _) => true,
            (Some(ended), Some(oldest)) => ended > oldest,
            (Some(_), None) => false,
        });
    }
}

impl Epochs {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a single push/remove/assignment: a poisoned lock is consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a flight starting now; call before it reads the L2 or the upstream.
    pub(crate) fn begin_flight(self: &Arc<Self>) -> FlightEpoch {
        let mut state = self.lock();
        let started = state.epoch;
        *state.flights.entry(started).or_insert(0) += 1;
        FlightEpoch {
            epochs: Arc::clone(self),
            started,
        }
    }

    /// Records an invalidation of `scope`, running until the guard is dropped (also
    /// when the invalidating request is cancelled half-way).
    pub(crate) fn begin_invalidation(self: &Arc<Self>, scope: InvalidateScope) -> Invalidating {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.invalidations.push(Invalidation {
            id,
            scope,
            ended: None,
        });
        Invalidating {
            epochs: Arc::clone(self),
            id,
        }
    }

    /// Calls `store` for each item whose key no invalidation superseded since `flight`
    /// started, all under the lock (see the module docs); answers the items stored.
    pub(crate) fn store_current<T>(
        &self,
        flight: &FlightEpoch,
        items: Vec<(AnyKey, T)>,
        mut store: impl FnMut(&AnyKey, &T),
    ) -> Vec<(AnyKey, T)> {
        if items.is_empty() {
            return items;
        }
        let state = self.lock();
        items
            .into_iter()
            .filter(|(key, value)| {
                let current = !state.superseded(flight.started, key);
                if current {
                    store(key, value);
                }
                current
            })
            .collect()
    }

    /// The keys an invalidation covered after `flight` started (used after a write
    /// that could not be made under the lock, to undo it).
    pub(crate) fn superseded<'a>(
        &self,
        flight: &FlightEpoch,
        keys: impl IntoIterator<Item = &'a AnyKey>,
    ) -> Vec<AnyKey> {
        let state = self.lock();
        keys.into_iter()
            .filter(|key| state.superseded(flight.started, key))
            .cloned()
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn records(&self) -> usize {
        self.lock().invalidations.len()
    }
}

/// A live flight's start epoch; unregisters itself when dropped.
#[derive(Debug)]
pub(crate) struct FlightEpoch {
    epochs: Arc<Epochs>,
    started: u64,
}

impl Drop for FlightEpoch {
    fn drop(&mut self) {
        let mut state = self.epochs.lock();
        if let Some(n) = state.flights.get_mut(&self.started) {
            *n -= 1;
            if *n == 0 {
                state.flights.remove(&self.started);
            }
        }
        state.prune();
    }
}

/// A running invalidation; marks it ended when dropped.
#[derive(Debug)]
pub(crate) struct Invalidating {
    epochs: Arc<Epochs>,
    id: u64,
}

impl Drop for Invalidating {
    fn drop(&mut self) {
        let mut state = self.epochs.lock();
        state.epoch += 1;
        let ended = state.epoch;
        if let Some(record) = state.invalidations.iter_mut().find(|i| i.id == self.id) {
            record.ended = Some(ended);
        }
        state.prune();
    }
}

#[cfg(test)]
#[path = "epoch_tests.rs"]
mod tests;
