//! The optional Redis L2: values shared by every replica, so one replica's upstream
//! fetch serves the others.
//!
//! Each entry is one JSON record under the key's versioned Redis key, expiring with
//! Redis's own `PX` after TTL + retention (the same lifetime as in L1). A reader gets
//! the record and its remaining `PTTL` in one pipeline and computes the entry's age
//! from them, so replicas never compare wall clocks for freshness. The record also
//! carries the writer's wall-clock fetch time, so every replica reports the same
//! `Freshness.fetchedAt` for one entry (not the time it happened to read it). Every
//! failure is logged and treated as a miss: the L2 can make a request cheaper,
//! never fail it.
//!
//! The record format only ever grows by optional fields (`fetched_ms` was added
//! without bumping `key::L2_FORMAT`): a replica of the previous release ignores
//! the field and one of this release reads the previous release's records, so a
//! rolling upgrade keeps one shared L2 and one invalidation key space. A change
//! that an older reader would misread must bump `L2_FORMAT`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::{Instant, timeout};

use crate::key::AnyKey;
use crate::redis_conn::{OP_TIMEOUT, RedisConn};
use crate::resource::{Cached, Resource};
use crate::resources::redis_scope_patterns;
use crate::scope::InvalidateScope;
use crate::value::{Answer, Entry};

/// Invalidation scans, then deletes: give it longer than a single operation.
const INVALIDATE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Serialize)]
struct RecordOut<'a, V> {
    ttl_ms: u64,
    /// TTL + retention as written (the record's full Redis lifetime).
    life_ms: u64,
    /// When the writer fetched the value: milliseconds since the Unix epoch, on its
    /// wall clock.
    fetched_ms: u64,
    value: &'a Cached<V>,
}

#[derive(Deserialize)]
struct RecordIn<V> {
    ttl_ms: u64,
    life_ms: u64,
    /// Absent in records written before it existed: the fetch time is then
    /// estimated from the record's age.
    #[serde(default)]
    fetched_ms: Option<u64>,
    value: Cached<V>,
}

/// `t` in milliseconds since the Unix epoch (0 before it).
fn epoch_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, millis)
}

pub(crate) struct L2 {
    conn: Arc<RedisConn>,
    prefix: String,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl L2 {
    pub(crate) fn new(conn: Arc<RedisConn>, prefix: String) -> Self {
        Self { conn, prefix }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The entries Redis has for `keys` (keys of `R`), in the order asked, with
    /// their age mapped onto `now` (`wall`: the same instant on the wall clock, for
    /// records that do not carry their fetch time).
    pub(crate) async fn get_many<'k, R: Resource>(
        &self,
        keys: impl ExactSizeIterator<Item = &'k AnyKey>,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<Option<Arc<Entry<R::Value>>>> {
        let asked = keys.len();
        let keys: Vec<String> = keys.map(|key| key.redis_key(&self.prefix)).collect();
        let mut found = vec![None; asked];
        if keys.is_empty() {
            return found;
        }
        let Some(mut conn) = self.conn.get().await else {
            return found;
        };
        let mut pipe = redis::pipe();
        for rkey in &keys {
            pipe.get(rkey).pttl(rkey);
        }
        let replies: Vec<redis::Value> =
            match timeout(OP_TIMEOUT, pipe.query_async(&mut conn)).await {
                Ok(Ok(replies)) => replies,
                Ok(Err(e)) => {
                    self.conn.failure("l2_get", e.category());
                    return found;
                }
                Err(_) => {
                    self.conn.failure("l2_get", "timed out");
                    return found;
                }
            };
        for (slot, pair) in found.iter_mut().zip(replies.chunks(2)) {
            let [body, pttl] = pair else { continue };
            let Ok(Some(body)) = redis::from_redis_value::<Option<Vec<u8>>>(body) else {
                continue;
            };
            let Ok(pttl) = redis::from_redis_value::<i64>(pttl) else {
                continue;
            };
            // -1 (no expiry) or -2 (gone meanwhile): not one of ours, or too late.
            let Ok(left_ms) = u64::try_from(pttl) else {
                continue;
            };
            let record: RecordIn<R::Value> = match serde_json::from_slice(&body) {
                Ok(record) => record,
                Err(_) => {
                    // A record this version cannot read: treat as a miss.
                    self.conn.failure("l2_decode", "undecodable record");
                    continue;
                }
            };
            let age = Duration::from_millis(record.life_ms.saturating_sub(left_ms));
            let Some(stored_at) = now.checked_sub(age) else {
                continue;
            };
            let fetched_at = match record.fetched_ms {
                Some(ms) => UNIX_EPOCH + Duration::from_millis(ms),
                None => wall.checked_sub(age).unwrap_or(wall),
            };
            let answer = Answer {
                value: record.value,
                ttl: Duration::from_millis(record.ttl_ms),
            };
            *slot = Some(Arc::new(Entry::new(answer, stored_at, fetched_at)));
        }
        found
    }

    /// Writes fresh entries, each to expire after its TTL + `retention`.
    pub(crate) async fn put_many<R: Resource>(
        &self,
        entries: &[(AnyKey, Arc<Entry<R::Value>>)],
        retention: Duration,
    ) {
        if entries.is_empty() {
            return;
        }
        let Some(mut conn) = self.conn.get().await else {
            return;
        };
        let mut pipe = redis::pipe();
        for (key, entry) in entries {
            let life = entry.ttl.saturating_add(retention);
            let record = RecordOut {
                ttl_ms: millis(entry.ttl),
                life_ms: millis(life),
                fetched_ms: epoch_millis(entry.fetched_at),
                value: &entry.value,
            };
            let Ok(body) = serde_json::to_vec(&record) else {
                continue;
            };
            pipe.cmd("SET")
                .arg(key.redis_key(&self.prefix))
                .arg(body)
                .arg("PX")
                .arg(millis(life).max(1))
                .ignore();
        }
        match timeout(OP_TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.conn.failure("l2_put", e.category()),
            Err(_) => self.conn.failure("l2_put", "timed out"),
        }
    }

    /// Deletes the L2 copies of `keys` (best effort, like every L2 operation).
    pub(crate) async fn delete_many(&self, keys: &[AnyKey]) {
        if keys.is_empty() {
            return;
        }
        let Some(mut conn) = self.conn.get().await else {
            return;
        };
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.del(key.redis_key(&self.prefix)).ignore();
        }
        match timeout(OP_TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.conn.failure("l2_delete", e.category()),
            Err(_) => self.conn.failure("l2_delete", "timed out"),
        }
    }

    /// Deletes every L2 entry in scope; answers the Redis keys it deleted.
    pub(crate) async fn invalidate(&self, scope: &InvalidateScope) -> HashSet<String> {
        let Some(mut conn) = self.conn.get().await else {
            return HashSet::new();
        };
        let patterns = redis_scope_patterns(&self.prefix, scope);
        let work = async {
            let mut candidates: Vec<String> = Vec::new();
            for pattern in &patterns {
                if !pattern.contains('*') {
                    candidates.push(pattern.clone());
                    continue;
                }
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn)
                        .await?;
                    candidates.extend(keys);
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                }
            }
            let mut deleted = HashSet::new();
            if candidates.is_empty() {
                return Ok(deleted);
            }
            let mut pipe = redis::pipe();
            for key in &candidates {
                pipe.del(key);
            }
            let counts: Vec<i64> = pipe.query_async(&mut conn).await?;
            for (key, n) in candidates.into_iter().zip(counts) {
                if n > 0 {
                    deleted.insert(key);
                }
            }
            Ok::<_, redis::RedisError>(deleted)
        };
        match timeout(INVALIDATE_TIMEOUT, work).await {
            Ok(Ok(deleted)) => deleted,
            Ok(Err(e)) => {
                self.conn.failure("l2_invalidate", e.category());
                HashSet::new()
            }
            Err(_) => {
                self.conn.failure("l2_invalidate", "timed out");
                HashSet::new()
            }
        }
    }
}

#[cfg(test)]
#[path = "l2_tests.rs"]
mod tests;
