//! Cross-replica invalidation over Redis pub/sub.
//!
//! The shared L2 is cleared by whichever replica invalidates, but every replica also
//! holds its own L1, which would keep serving the old value until its TTL. So a store
//! with Redis configured publishes each invalidation's scope on
//! `{prefix}:invalidate` after doing it locally, and runs a subscriber task that
//! applies the scopes other stores publish to its own L1 only (the L2 is already
//! clean; re-deleting it would be wasted work), through the same epoch guard as a
//! local invalidation so its in-flight fetches do not store what they read before.
//!
//! Best effort, like every Redis use here: a failed publish is logged, never an error
//! for the caller; the subscriber reconnects with backoff and ignores (logs) payloads
//! it cannot read. Pub/sub delivers only to connected subscribers: an invalidation
//! published while a replica is disconnected is lost to it, and its L1 copies live
//! until their TTL, as before this module existed.
//!
//! Each store has its own origin id, carried in the message, so a store ignores the
//! echo of its own publications (it already invalidated).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use devicegraph_upstream::{AccountName, CampaignId, Imei};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tracing::{debug, warn};

use crate::config::InvalidateScope;
use crate::engine::Engine;
use crate::metrics;
use crate::redis_conn::{OP_TIMEOUT, RedisConn};

/// Version of the message format; a message of another version is ignored.
const VERSION: u32 = 1;
/// Bound on connecting and subscribing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The wire form of one invalidation.
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

/// Publishes this store's invalidations and owns its subscriber task (aborted when
/// the store, and so this, is dropped).
pub(crate) struct Fanout {
    conn: Arc<RedisConn>,
    channel: String,
    origin: String,
    subscriber: Option<JoinHandle<()>>,
}

impl Drop for Fanout {
    fn drop(&mut self) {
        if let Some(task) = self.subscriber.take() {
            task.abort();
        }
    }
}

/// The channel invalidations of stores sharing `prefix` are published on.
pub(crate) fn channel(prefix: &str) -> String {
    format!("{prefix}:invalidate")
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
    /// Starts the subscriber applying other stores' invalidations to `engine` (not
    /// started without a tokio runtime: publishing still works from one later).
    pub(crate) fn start(conn: Arc<RedisConn>, prefix: &str, engine: &Arc<Engine>) -> Self {
        let channel = channel(prefix);
        let origin = new_origin();
        let subscriber = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Some(runtime.spawn(subscribe(
                conn.client().clone(),
                channel.clone(),
                origin.clone(),
                Arc::downgrade(engine),
            ))),
            Err(_) => {
                debug!("no tokio runtime: invalidation subscriber not started");
                None
            }
        };
        Self {
            conn,
            channel,
            origin,
            subscriber,
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
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(&self.channel).arg(body);
        match timeout(OP_TIMEOUT, publish.query_async::<i64>(&mut conn)).await {
            Ok(Ok(receivers)) => debug!(receivers, "invalidation published"),
            Ok(Err(e)) => self.conn.failure("invalidate_publish", e.category()),
            Err(_) => self.conn.failure("invalidate_publish", "timed out"),
        }
    }
}

/// The scope a payload asks to invalidate; `None` for our own echo and for anything
/// unreadable (logged: it is a bug or a foreign publisher, never worth a panic).
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

/// The subscriber task: (re)connects with exponential backoff, until the engine is
/// gone (or the task is aborted by [`Fanout`]'s drop).
async fn subscribe(client: redis::Client, channel: String, origin: String, engine: Weak<Engine>) {
    let mut backoff = BACKOFF_MIN;
    while engine.strong_count() > 0 {
        match listen(&client, &channel, &origin, &engine).await {
            // Subscribed, then the connection ended: try again soon.
            Ok(()) => {
                backoff = BACKOFF_MIN;
                debug!("invalidation subscription ended; reconnecting");
            }
            Err(what) => {
                metrics::redis_error("invalidate_subscribe");
                debug!(
                    error = what,
                    ?backoff,
                    "invalidation subscriber not connected"
                );
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One subscription: `Err` if it could not be made, `Ok` once the stream ends.
async fn listen(
    client: &redis::Client,
    channel: &str,
    origin: &str,
    engine: &Weak<Engine>,
) -> Result<(), String> {
    let mut pubsub = match timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(e)) => return Err(e.category().to_owned()),
        Err(_) => return Err("connect timed out".to_owned()),
    };
    match timeout(CONNECT_TIMEOUT, pubsub.subscribe(channel)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.category().to_owned()),
        Err(_) => return Err("subscribe timed out".to_owned()),
    }
    debug!(channel, "invalidation subscriber listening");
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let Some(engine) = engine.upgrade() else {
            return Ok(());
        };
        let dropped = apply(&engine, message.get_payload_bytes(), origin);
        debug!(dropped, "applied another replica's invalidation");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::clock::TokioClock;
    use crate::freshness::Windows;
    use crate::key::CacheKey;
    use crate::value::{Answer, CachedValue};

    const IMEI: &str = "490154203237518";

    fn engine() -> Engine {
        let windows = Windows {
            stale_while_revalidate: Duration::from_secs(30),
            stale_if_error: Duration::from_secs(60),
        };
        Engine::new(1 << 20, windows, Arc::new(TokioClock), None, None)
    }

    fn key() -> CacheKey {
        CacheKey::CheckIns {
            account: "0000123456-00001".parse().unwrap(),
            imei: IMEI.parse().unwrap(),
        }
    }

    fn answer() -> Answer {
        Answer {
            value: CachedValue::CheckIns(Arc::new(Vec::new())),
            ttl: Duration::from_secs(60),
        }
    }

    fn payload(origin: &str, imei: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "v": 1, "origin": origin, "account": "0000123456-00001", "imei": imei,
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn malformed_payloads_are_ignored_and_a_good_one_is_applied() {
        let engine = engine();
        engine.insert(key(), answer());
        let bad: [&[u8]; 5] = [
            b"",
            b"not json",
            b"{\"v\":1}",
            br#"{"v":2,"origin":"other","account":"0000123456-00001"}"#,
            &payload("other", "not-an-imei"),
        ];
        for body in bad {
            assert_eq!(apply(&engine, body, "me"), 0);
        }
        assert_eq!(apply(&engine, &payload("me", IMEI), "me"), 0, "own echo");
        assert_eq!(engine.entry_count(), 1, "nothing dropped so far");
        assert_eq!(apply(&engine, &payload("other", IMEI), "me"), 1);
        assert_eq!(engine.entry_count(), 0);
    }

    #[test]
    fn a_published_message_decodes_to_its_scope() {
        let message = Message {
            v: VERSION,
            origin: "a".into(),
            account: "0000123456-00001".parse().unwrap(),
            imei: Some(IMEI.parse().unwrap()),
            campaign: None,
        };
        let body = serde_json::to_vec(&message).unwrap();
        let scope = decode(&body, "b").unwrap();
        assert_eq!(scope.account.as_str(), "0000123456-00001");
        assert_eq!(scope.imei.unwrap().as_str(), IMEI);
        assert!(scope.campaign.is_none());
        assert!(decode(&body, "a").is_none());
        assert_ne!(new_origin(), new_origin());
    }
}
