//! What an answer was built from: the cache entries (resource, key and entry
//! version) an operation read. A stored answer (the server's response cache) is
//! current exactly while every one of them is still the entry it read and fresh: an
//! invalidation drops an entry, a refresh or refetch stores a new version, and a TTL
//! runs out, on this replica or, through the invalidation fan-out, on any other.

use std::time::Duration;

use devicegraph_cache::{Resource, Store};

/// One entry an answer used.
trait Dep: Send + Sync {
    /// How long the entry stays fresh, if it is still the one that was read.
    fn fresh_for(&self, store: &Store) -> Option<Duration>;
}

struct Read<R: Resource> {
    key: R::Key,
    version: u64,
}

impl<R: Resource> Dep for Read<R> {
    fn fresh_for(&self, store: &Store) -> Option<Duration> {
        match store.current::<R>(&self.key) {
            Some((version, left)) if version == self.version => Some(left),
            _ => None,
        }
    }
}

/// The entries one answer was built from.
#[derive(Default)]
pub struct Dependencies {
    reads: Vec<Box<dyn Dep>>,
}

impl std::fmt::Debug for Dependencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dependencies")
            .field("reads", &self.reads.len())
            .finish()
    }
}

impl Dependencies {
    pub(crate) fn push<R: Resource>(&mut self, key: R::Key, version: u64) {
        self.reads.push(Box::new(Read::<R> { key, version }));
    }

    pub fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }

    pub fn len(&self) -> usize {
        self.reads.len()
    }

    /// How long an answer built from these entries stays current: the shortest
    /// remaining freshness among them; `None` once any of them changed, was dropped
    /// or is no longer fresh.
    pub fn fresh_for(&self, store: &Store) -> Option<Duration> {
        self.reads
            .iter()
            .map(|read| read.fresh_for(store))
            .try_fold(Duration::MAX, |shortest, left| Some(shortest.min(left?)))
    }
}
