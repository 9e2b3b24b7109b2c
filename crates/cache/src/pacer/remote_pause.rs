//! 429 pauses shared by every replica through Redis.
//!
//! ThingSpace rate-limits the client, not the replica: when one replica is told to
//! back off, the others must back off too, or they keep drawing 429s (and may get
//! the account locked). The replica that met the 429 publishes the pause as a Redis
//! key per endpoint that expires with the pause (`PX` = `Retry-After`, only ever
//! lengthened); every replica reads the key's remaining `PTTL` before sending to
//! that endpoint and adopts it as a local pause. Remaining time rather than a
//! timestamp, so replicas never compare wall clocks.
//!
//! Cheap: a replica asks Redis about an endpoint at most once per `RECHECK_EVERY`
//! (the first caller past the interval asks; the others go on with what is known,
//! and a pause found is kept locally, so it costs nothing more until it ends).
//! Never a failure: publishing runs on its own task, an unreachable or slow Redis
//! reads as "no remote pause" (bounded by the connection's operation timeout and
//! then bypassed, see `redis_conn`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use devicegraph_upstream::Endpoint;
use tokio::time::{Instant, timeout};
use tracing::debug;

use crate::redis_conn::{OP_TIMEOUT, RedisConn};

/// How long a replica trusts what it last learnt of an endpoint's remote pause.
pub(crate) const RECHECK_EVERY: Duration = Duration::from_millis(100);

/// Sets the pause key unless it already outlasts this pause (two replicas meeting
/// 429s with different `Retry-After`s keep the longer).
const PUBLISH: &str = r"
local want = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < want then
  redis.call('SET', KEYS[1], '1', 'PX', want)
end
return 0
";

pub(crate) struct RemotePauses {
    conn: Arc<RedisConn>,
    /// `{prefix}:pause:{upstream base}:`; the endpoint name completes the key.
    key_prefix: String,
    script: redis::Script,
    /// When each endpoint was last asked about (or is being asked about).
    checked: Mutex<HashMap<Endpoint, Instant>>,
}

impl RemotePauses {
    pub(crate) fn new(conn: Arc<RedisConn>, prefix: &str, upstream_base: &str) -> Self {
        Self {
            conn,
            key_prefix: format!("{prefix}:pause:{upstream_base}:"),
            script: redis::Script::new(PUBLISH),
            checked: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, endpoint: Endpoint) -> String {
        format!("{}{}", self.key_prefix, endpoint.name())
    }

    /// Publishes a pause of `endpoint` for `pause`, in the background (called from
    /// the synchronous `RequestGate::rate_limited`).
    pub(crate) fn publish(self: &Arc<Self>, endpoint: Endpoint, pause: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = Arc::clone(self);
        runtime.spawn(async move { this.publish_now(endpoint, pause).await });
    }

    async fn publish_now(&self, endpoint: Endpoint, pause: Duration) {
        let Some(mut conn) = self.conn.get().await else {
            return;
        };
        let ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX).max(1);
        let key = self.key(endpoint);
        let mut call = self.script.key(&key);
        call.arg(ms);
        match timeout(OP_TIMEOUT, call.invoke_async::<i64>(&mut conn)).await {
            Ok(Ok(_)) => debug!(
                endpoint = endpoint.name(),
                pause_ms = ms,
                "published upstream pause"
            ),
            Ok(Err(e)) => self.conn.failure("pause_publish", e.category()),
            Err(_) => self.conn.failure("pause_publish", "timed out"),
        }
    }

    /// The remaining remote pause of `endpoint`, when it is due a check and Redis
    /// knows one; `None` otherwise (including while another caller is asking).
    pub(crate) async fn check(&self, endpoint: Endpoint) -> Option<Duration> {
        {
            let now = Instant::now();
            let mut checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
            if checked
                .get(&endpoint)
                .is_some_and(|at| now.saturating_duration_since(*at) < RECHECK_EVERY)
            {
                return None;
            }
            // Claimed before asking, so concurrent callers do not all ask.
            checked.insert(endpoint, now);
        }
        let mut conn = self.conn.get().await?;
        let mut cmd = redis::cmd("PTTL");
        cmd.arg(self.key(endpoint));
        match timeout(OP_TIMEOUT, cmd.query_async::<i64>(&mut conn)).await {
            // -2: no pause; -1: a key without expiry is not one of ours.
            Ok(Ok(ms)) => u64::try_from(ms)
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
            Ok(Err(e)) => {
                self.conn.failure("pause_check", e.category());
                None
            }
            Err(_) => {
                self.conn.failure("pause_check", "timed out");
                None
            }
        }
    }
}
