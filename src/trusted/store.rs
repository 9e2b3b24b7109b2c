//! The automatic-persisted-query store: query texts clients registered, by the
//! lower-case hex SHA-256 of the text.
//!
//! - Bounded in bytes, not entries: [`CAPACITY_BYTES`] of text, each entry weighed
//!   as its key and text plus [`ENTRY_OVERHEAD`] (moka's node, the `Arc`, the
//!   `String`), so a flood of tiny registrations cannot hold more memory than a few
//!   big ones. A text larger than the per-query bound (the body limit, and never more
//!   than a sixteenth of the store) still runs, but is not kept.
//! - Shared by every caller: the key is the hash of the text, so a hit returns exactly
//!   the text its sender already knows, and authorization runs per request at
//!   execution, never here. Evicting another client's entry costs it one retry with
//!   the full text (the protocol's normal path), nothing more; moka's TinyLFU
//!   admission keeps the entries dashboards repeat.
//! - Synchronous moka: a lookup is a hash-map read, and nothing here awaits.

use std::sync::Arc;

/// Total weight of the store.
pub(crate) const CAPACITY_BYTES: u64 = 16 << 20;
/// Bytes counted per entry beyond its key and text.
const ENTRY_OVERHEAD: usize = 192;

pub(crate) struct ApqStore {
    texts: moka::sync::Cache<String, Arc<str>>,
    max_query_bytes: usize,
}

impl ApqStore {
    /// A store keeping texts of at most `max_query_bytes` (capped at a sixteenth of
    /// the store, so one entry cannot evict everything else).
    pub(crate) fn new(max_query_bytes: u64) -> Self {
        let cap = CAPACITY_BYTES / 16;
        let max_query_bytes = usize::try_from(max_query_bytes.min(cap)).unwrap_or(usize::MAX);
        let texts = moka::sync::Cache::builder()
            .max_capacity(CAPACITY_BYTES)
            .weigher(|key: &String, text: &Arc<str>| {
                u32::try_from(key.len() + text.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .build();
        Self {
            texts,
            max_query_bytes,
        }
    }

    pub(crate) fn get(&self, hash: &str) -> Option<Arc<str>> {
        self.texts.get(hash)
    }

    /// Keeps `text` under `hash` (the caller has checked that it is the text's
    /// hash); returns whether it was kept.
    pub(crate) fn insert(&self, hash: String, text: &str) -> bool {
        if text.len() > self.max_query_bytes {
            tracing::debug!(
                bytes = text.len(),
                max = self.max_query_bytes,
                "persisted query too large to keep"
            );
            return false;
        }
        if !self.texts.contains_key(&hash) {
            self.texts.insert(hash, Arc::from(text));
        }
        true
    }

    #[cfg(test)]
    fn weight(&self) -> u64 {
        self.texts.run_pending_tasks();
        self.texts.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_texts_within_the_byte_bound() {
        let store = ApqStore::new(1 << 20);
        assert!(store.insert("a".repeat(64), "{ one }"));
        assert_eq!(store.get(&"a".repeat(64)).as_deref(), Some("{ one }"));
        assert!(store.get(&"b".repeat(64)).is_none());

        // Twice the capacity offered in 64 KiB texts: the store stays within bound.
        let text = "x".repeat(64 * 1024);
        for n in 0..(2 * CAPACITY_BYTES / (64 * 1024)) {
            assert!(store.insert(format!("{n:064}"), &text));
        }
        assert!(store.weight() <= CAPACITY_BYTES, "{}", store.weight());
    }

    #[test]
    fn refuses_to_keep_a_text_over_the_per_query_bound() {
        let store = ApqStore::new(100);
        assert!(!store.insert("c".repeat(64), &"y".repeat(101)));
        assert!(store.get(&"c".repeat(64)).is_none());
        // The bound never exceeds a sixteenth of the store, whatever the body limit.
        let store = ApqStore::new(u64::MAX);
        let big = "z".repeat(usize::try_from(CAPACITY_BYTES / 16).unwrap_or(0) + 1);
        assert!(!store.insert("d".repeat(64), &big));
    }
}
