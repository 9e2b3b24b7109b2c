//! The upstream budget shared by every replica: a sliding one-second window kept in
//! Redis (a sorted set of send times) and updated by one atomic Lua script, so two
//! replicas can never both take the last slot. Time comes from Redis's own `TIME`,
//! so replicas with skewed clocks still agree.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::timeout;

use super::local::{WINDOW, reserved};
use crate::redis_conn::{OP_TIMEOUT, RedisConn};

/// Returns 0 when a slot was taken, else microseconds until the oldest send leaves
/// the window.
const TAKE: &str = r"
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, math.ceil(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
";

/// Distinguishes Store instances inside one process (tests run two).
static INSTANCE: AtomicU64 = AtomicU64::new(0);

pub(crate) struct SharedBudget {
    conn: Arc<RedisConn>,
    key: String,
    limit: u32,
    script: redis::Script,
    member_prefix: String,
    seq: AtomicU64,
}

impl SharedBudget {
    pub(crate) fn new(conn: Arc<RedisConn>, key: String, limit: u32) -> Self {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let member_prefix = format!(
            "{}-{started}-{}",
            std::process::id(),
            INSTANCE.fetch_add(1, Ordering::Relaxed)
        );
        Self {
            conn,
            key,
            limit,
            script: redis::Script::new(TAKE),
            member_prefix,
            seq: AtomicU64::new(0),
        }
    }

    /// `Some(Ok)`: a slot was taken; `Some(Err(wait))`: try again after `wait`;
    /// `None`: Redis is unreachable (use the local budget). `reserve` of the window
    /// is left to others: background work takes only below it (0 for interactive).
    pub(crate) async fn try_take(&self, reserve: f64) -> Option<Result<(), Duration>> {
        let keep = u32::try_from(reserved(self.limit as usize, reserve)).unwrap_or(u32::MAX);
        let mut conn = self.conn.get().await?;
        let member = format!(
            "{}-{}",
            self.member_prefix,
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let window_us = u64::try_from(WINDOW.as_micros()).unwrap_or(u64::MAX);
        let mut call = self.script.key(&self.key);
        call.arg(self.limit.saturating_sub(keep).max(1))
            .arg(window_us)
            .arg(member);
        match timeout(OP_TIMEOUT, call.invoke_async::<i64>(&mut conn)).await {
            Ok(Ok(0)) => Some(Ok(())),
            Ok(Ok(us)) => Some(Err(Duration::from_micros(us.unsigned_abs()))),
            Ok(Err(e)) => {
                self.conn.failure("budget", e.category());
                None
            }
            Err(_) => {
                self.conn.failure("budget", "timed out");
                None
            }
        }
    }
}
