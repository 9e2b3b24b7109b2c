//! One lazily made Redis connection shared by the L2 cache and the shared budget.
//!
//! Redis is an optimisation here, never a dependency of a request: every operation is
//! bounded by a short timeout, a failure is logged (at most every 30 s at warn level)
//! and the caller falls back (L1 only, local budget). After a failure Redis is
//! bypassed for a few seconds, so an absent or hung Redis costs nothing per request. Once made, redis-rs's `ConnectionManager` reconnects by itself.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::{Instant, timeout};
use tracing::{debug, warn};

use crate::error::CacheError;
use crate::metrics;

/// Bound on one Redis operation (a pipeline or a script call).
pub(crate) const OP_TIMEOUT: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failure, requests skip Redis this long before one tries again.
const RECONNECT_AFTER: Duration = Duration::from_secs(5);
const WARN_EVERY: Duration = Duration::from_secs(30);

#[derive(Default)]
struct State {
    conn: Option<ConnectionManager>,
    failed_at: Option<Instant>,
    warned_at: Option<Instant>,
}

pub(crate) struct RedisConn {
    client: redis::Client,
    state: Mutex<State>,
    /// Serialises connection attempts so a burst of first requests waits for one
    /// connect instead of each opening its own.
    connecting: tokio::sync::Mutex<()>,
}

impl RedisConn {
    /// Parses the URL; connects on first use.
    pub(crate) fn open(url: &str) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(|e| CacheError::Config {
            key: "cache.redis_url",
            reason: format!("not a usable Redis URL: {}", e.category().to_lowercase()),
        })?;
        Ok(Self {
            client,
            state: Mutex::default(),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    /// The client, for connections that cannot be shared (the invalidation listener's blocking reads).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection, or `None` when Redis is unreachable (the caller falls back).
    pub(crate) async fn get(&self) -> Option<ConnectionManager> {
        if let Some(conn) = self.ready() {
            return conn;
        }
        let _turn = self.connecting.lock().await;
        if let Some(conn) = self.ready() {
            return conn;
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(OP_TIMEOUT)
            .set_number_of_retries(1);
        let made = timeout(
            CONNECT_TIMEOUT * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await;
        match made {
            Ok(Ok(conn)) => {
                debug!("redis connected");
                let mut state = self.state();
                state.conn = Some(conn.clone());
                state.failed_at = None;
                Some(conn)
            }
            Ok(Err(e)) => {
                self.failure("connect", e.category());
                None
            }
            Err(_) => {
                self.failure("connect", "timed out");
                None
            }
        }
    }

    /// `Some(conn)` when connected, `Some(None)` while backing off after a failure,
    /// `None` when a connect should be attempted.
    fn ready(&self) -> Option<Option<ConnectionManager>> {
        let state = self.state();
        // A failed operation or connect bypasses Redis for a while: a hung Redis must
        // not add an operation timeout to every request.
        if state
            .failed_at
            .is_some_and(|at| at.elapsed() < RECONNECT_AFTER)
        {
            return Some(None);
        }
        state.conn.clone().map(Some)
    }

    /// Logs a failed operation (rate-limited), counts it, and bypasses Redis for
    /// `RECONNECT_AFTER`; `what` never contains data or credentials, only the error
    /// category.
    pub(crate) fn failure(&self, op: &'static str, what: &str) {
        metrics::redis_error(op);
        let now = Instant::now();
        let loud = {
            let mut state = self.state();
            state.failed_at = Some(now);
            let loud = state
                .warned_at
                .is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
            if loud {
                state.warned_at = Some(now);
            }
            loud
        };
        if loud {
            warn!(
                op,
                error = what,
                "redis unavailable; falling back to the local cache and budget"
            );
        } else {
            debug!(op, error = what, "redis unavailable");
        }
    }

    /// Whether Redis answers a PING now (readiness).
    pub(crate) async fn ping(&self) -> bool {
        let Some(mut conn) = self.get().await else {
            return false;
        };
        let pong = timeout(
            OP_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        matches!(pong, Ok(Ok(_)))
    }
}
