//! Cross-replica invalidation through a Redis stream, with gap detection.
//!
//! The shared L2 is cleared by whichever replica invalidates, but every replica also
//! holds its own L1, which would keep serving the old value until its TTL. So a store
//! with Redis configured appends each invalidation's scope to the stream
//! `{prefix}:invalidations` after doing it locally, and runs a listener task that
//! applies the scopes other stores append to its own L1 only (the L2 is already
//! clean; re-deleting it would be wasted work), through the same epoch guard as a
//! local invalidation so its in-flight fetches do not store what they read before.
//!
//! Why a stream and not pub/sub: pub/sub delivers only to connected subscribers, so a
//! replica whose connection blipped would silently keep an invalidated copy for a
//! whole TTL. A stream keeps the last [`LOG_LEN`] (about) entries; a listener resumes
//! after the last entry it applied. Every entry also carries a sequence number from
//! `INCR {prefix}:invalidations:seq`, made in the same script as the append, so a
//! listener notices what the stream can no longer give it: entries trimmed away while
//! it was gone, or the keys deleted (a flush). On any such gap, and on its first
//! connection (it cannot know what it missed before), the listener drops its whole
//! L1: over-invalidating costs L2 reads, missing an invalidation serves wrong data.
//!
//! Best effort towards the caller, like every Redis use here: a failed append is
//! logged, never an error for the invalidating request; the listener reconnects with
//! backoff and ignores (logs) entries it cannot read. Each store has its own origin id,
//! carried in the entry, so a store skips its own entries (it already invalidated) but
//! still counts them in the sequence.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use devicegraph_upstream::{AccountName, CampaignId, Imei};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use redis::{AsyncConnectionConfig, RedisResult};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tracing::{debug, warn};

use crate::engine::Engine;
use crate::metrics;
use crate::redis_conn::{OP_TIMEOUT, RedisConn};
use crate::scope::InvalidateScope;

/// Version of the message format; a message of another version is ignored.
const VERSION: u32 = 1;
/// About how many invalidations the stream keeps (`XADD MAXLEN ~`); a replica away
/// for longer than this many invalidations clears its L1 instead of catching up.
pub(crate) const LOG_LEN: usize = 10_000;
/// How long one `XREAD` waits for new entries before asking again.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries read at most per `XREAD`.
const BATCH: usize = 512;
/// Bound on connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Appends one entry and numbers it, atomically.
/// KEYS[1] the stream, KEYS[2] the sequence; ARGV[1] the message, ARGV[2] the length kept.
const APPEND: &str = r"
local n = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'n', n, 'm', ARGV[1])
return n
";

/// The wire form of one invalidation (field `m` of a stream entry).
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    v: u32,
    origin: String,
    account: AccountName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    imei: Option<Imei>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    campaign: Option<CampaignId>,
}

/// The Redis keys of one prefix's invalidation log.
#[derive(Debug, Clone)]
struct Keys {
    stream: String,
    seq: String,
    /// `CLIENT SETNAME` of the listeners' connections (tests and operators find them
    /// in `CLIENT LIST`).
    listener_name: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        let stream = format!("{prefix}:invalidations");
        let safe: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_:.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            seq: format!("{stream}:seq"),
            stream,
            listener_name: format!("devicegraph-invalidations:{safe}"),
        }
    }
}

/// Appends this store's invalidations and owns its listener task (aborted when the
/// store, and so this, is dropped).
pub(crate) struct Fanout {
    conn: Arc<RedisConn>,
    keys: Keys,
    origin: String,
    script: redis::Script,
    listener: Option<JoinHandle<()>>,
}

impl Drop for Fanout {
    fn drop(&mut self) {
        if let Some(task) = self.listener.take() {
            task.abort();
        }
    }
}

/// An id no other store (in this or another process) has: process id, a per-process
/// counter and the start time.
fn new_origin() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{n}-{nanos:x}", std::process::id())
}

impl Fanout {
    /// Starts the listener applying other stores' invalidations to `engine` (not
    /// started without a tokio runtime: appending still works from one later).
    pub(crate) fn start(conn: Arc<RedisConn>, prefix: &str, engine: &Arc<Engine>) -> Self {
        let keys = Keys::new(prefix);
        let origin = new_origin();
        let listener = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Some(runtime.spawn(listen_forever(
                conn.client().clone(),
                keys.clone(),
                origin.clone(),
                Arc::downgrade(engine),
            ))),
            Err(_) => {
                debug!("no tokio runtime: invalidation listener not started");
                None
            }
        };
        Self {
            conn,
            keys,
            origin,
            script: redis::Script::new(APPEND),
            listener,
        }
    }

    /// Tells the other stores sharing the prefix to drop `scope` from their L1.
    pub(crate) async fn publish(&self, scope: &InvalidateScope) {
        let message = Message {
            v: VERSION,
            origin: self.origin.clone(),
            account: scope.account.clone(),
            imei: scope.imei.clone(),
            campaign: scope.campaign.clone(),
        };
        let Ok(body) = serde_json::to_vec(&message) else {
            return;
        };
        let Some(mut conn) = self.conn.get().await else {
            return;
        };
        let mut append = self.script.prepare_invoke();
        append
            .key(&self.keys.stream)
            .key(&self.keys.seq)
            .arg(body)
            .arg(LOG_LEN);
        match timeout(OP_TIMEOUT, append.invoke_async::<u64>(&mut conn)).await {
            Ok(Ok(seq)) => debug!(seq, "invalidation appended"),
            Ok(Err(e)) => self.conn.failure("invalidate_publish", e.category()),
            Err(_) => self.conn.failure("invalidate_publish", "timed out"),
        }
    }
}

/// The scope a payload asks to invalidate; `None` for our own echo and for anything
/// unreadable (logged: it is a bug or a foreign writer, never worth a panic).
fn decode(payload: &[u8], own_origin: &str) -> Option<InvalidateScope> {
    let message: Message = match serde_json::from_slice(payload) {
        Ok(message) => message,
        Err(e) => {
            warn!(error = %e, "ignoring an unreadable invalidation message");
            return None;
        }
    };
    if message.v != VERSION {
        warn!(
            version = message.v,
            "ignoring an invalidation message of another version"
        );
        return None;
    }
    if message.origin == own_origin {
        return None;
    }
    Some(InvalidateScope {
        account: message.account,
        imei: message.imei,
        campaign: message.campaign,
    })
}

/// Applies one payload to `engine`'s L1; answers the entries dropped.
fn apply(engine: &Engine, payload: &[u8], own_origin: &str) -> u64 {
    match decode(payload, own_origin) {
        Some(scope) => engine.invalidate_l1(&scope),
        None => 0,
    }
}

/// Where a listener stands in the log: the last entry id it read and that entry's
/// sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    id: String,
    seq: u64,
}

/// What a listener must do about entries it may have missed.
#[derive(Debug, PartialEq, Eq)]
enum Catch {
    /// Nothing missed, or everything missed is still in the stream: read on from
    /// where the listener stood.
    ReadOn(Cursor),
    /// Something missed cannot be read any more: clear the L1, then read on from
    /// the given cursor.
    Clear(Cursor),
}

/// On (re)connecting: `cursor` is where the listener stood (`None` before its first
/// connection), `head` the stream's newest entry id (`None`: empty or absent) and
/// `seq` the sequence counter now (0: absent).
fn on_connect(cursor: Option<&Cursor>, head: Option<&str>, seq: u64) -> Catch {
    let now = Cursor {
        id: head.unwrap_or("0-0").to_owned(),
        seq,
    };
    match cursor {
        // Before the first connection nothing can be known about what was missed.
        None => Catch::Clear(now),
        // The counter went back: the keys were deleted (a flush) while we were away.
        Some(at) if seq < at.seq => Catch::Clear(now),
        // Appended while we were away, but the stream is gone: those entries are lost.
        Some(at) if seq > at.seq && head.is_none() => Catch::Clear(now),
        // Anything else: `XREAD` after our id gives what we missed, and the sequence
        // check of the first entry tells whether trimming took some of it.
        Some(at) => Catch::ReadOn(at.clone()),
    }
}

/// Whether an entry numbered `next` follows `cursor` directly (no entry missed).
fn follows(cursor: &Cursor, next: u64) -> bool {
    cursor.seq.checked_add(1) == Some(next)
}

/// The listener task: (re)connects with exponential backoff, until the engine is
/// gone (or the task is aborted by [`Fanout`]'s drop). The cursor survives
/// reconnections, so what was appended meanwhile is read on return.
async fn listen_forever(client: redis::Client, keys: Keys, origin: String, engine: Weak<Engine>) {
    let mut cursor: Option<Cursor> = None;
    let mut backoff = BACKOFF_MIN;
    while engine.strong_count() > 0 {
        match listen(&client, &keys, &origin, &engine, &mut cursor, &mut backoff).await {
            // Connected, then the engine went away.
            Ok(()) => return,
            Err(what) => {
                metrics::redis_error("invalidate_listen");
                debug!(error = %what, ?backoff, "invalidation listener not connected");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Drops `engine`'s whole L1: after a `gap` (entries missed that the log cannot give
/// back: loud), or on the first connection (nothing can be known about before: quiet).
fn clear(engine: &Engine, gap: bool) {
    let dropped = engine.clear_l1();
    if gap {
        warn!(
            dropped,
            "invalidations were missed (log trimmed or flushed); cleared the local cache"
        );
    } else {
        debug!(
            dropped,
            "first sync with the invalidation log; cleared the local cache"
        );
    }
}

/// One connection: `Err` when it could not be made or broke, `Ok` once the engine
/// is gone. Resets `backoff` once in sync, so a long-lived connection that breaks is
/// retried promptly.
async fn listen(
    client: &redis::Client,
    keys: &Keys,
    origin: &str,
    engine: &Weak<Engine>,
    cursor: &mut Option<Cursor>,
    backoff: &mut Duration,
) -> RedisResult<()> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(BLOCK + CONNECT_TIMEOUT);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;

    // Where the log stands, read atomically.
    let (seq, head): (Option<u64>, StreamRangeReply) = redis::pipe()
        .atomic()
        .get(&keys.seq)
        .cmd("XREVRANGE")
        .arg(&keys.stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await?;
    let head = head.ids.first().map(|entry| entry.id.as_str());
    let mut at = match on_connect(cursor.as_ref(), head, seq.unwrap_or(0)) {
        Catch::ReadOn(at) => at,
        Catch::Clear(now) => {
            if let Some(engine) = engine.upgrade() {
                clear(&engine, cursor.is_some());
            }
            now
        }
    };
    *cursor = Some(at.clone());
    *backoff = BACKOFF_MIN;
    // Named once in sync, so whoever sees the name sees a listener that is current.
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(&keys.listener_name)
        .query_async::<()>(&mut conn)
        .await?;
    debug!(stream = keys.stream, "invalidation listener reading");

    loop {
        let reply = read(&mut conn, keys, &at.id).await?;
        let Some(engine) = engine.upgrade() else {
            return Ok(());
        };
        for entry in reply.keys.into_iter().flat_map(|key| key.ids) {
            at = step(&engine, &at, entry, origin);
        }
        *cursor = Some(at.clone());
    }
}

async fn read(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    after: &str,
) -> RedisResult<StreamReadReply> {
    let reply: Option<StreamReadReply> = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(BATCH)
        .arg("BLOCK")
        .arg(u64::try_from(BLOCK.as_millis()).unwrap_or(5_000))
        .arg("STREAMS")
        .arg(&keys.stream)
        .arg(after)
        .query_async(conn)
        .await?;
    Ok(reply.unwrap_or_default())
}

/// Applies one entry read after `at`; answers the new cursor.
fn step(engine: &Engine, at: &Cursor, entry: StreamId, origin: &str) -> Cursor {
    let Some(seq) = entry.get::<u64>("n") else {
        // Not ours to read (no number): skip it, keeping our place in the sequence.
        warn!(
            id = entry.id,
            "ignoring an invalidation entry without a sequence number"
        );
        return Cursor {
            id: entry.id,
            seq: at.seq,
        };
    };
    if !follows(at, seq) {
        debug!(
            after = at.seq,
            got = seq,
            "the invalidation log skipped entries"
        );
        clear(engine, true);
    }
    let payload: Vec<u8> = entry.get("m").unwrap_or_default();
    let dropped = apply(engine, &payload, origin);
    debug!(seq, dropped, "applied an invalidation entry");
    Cursor { id: entry.id, seq }
}

#[cfg(test)]
#[path = "fanout_tests.rs"]
mod tests;
