//! The outbound pacer: the `RequestGate` every upstream HTTP request of the client
//! passes (data reads, every page, retries, logins).
//!
//! Order inside `acquire`, and why:
//! 1. the endpoint's 429 pause: wait it out, or fail at once if it outlasts the
//!    deadline (`RateLimited`, which stale entries cover);
//! 2. a concurrency slot (tokio `Semaphore`, `max_concurrency`), held until the HTTP
//!    request ends (`GatePermit::holding`);
//! 3. the budget (`rate_per_second` with `burst`), taken last so the request is sent
//!    right after its slot in the budget: taking budget first and then queueing for
//!    a concurrency slot would let sends bunch up later. Callers queue for the budget
//!    on a turnstile, so one probe runs per grant, not one per waiter.
//!
//! Both queues (slots and turnstile) are fair between tenants (`fair`): the caller's
//! tenant (API key or address, from the upstream crate's request scope) gets its
//! turn round-robin with the others, so one tenant's fan-out does not make another's
//! single call wait behind all of it.
//!
//! A call that cannot get its budget before its deadline fails with
//! `UpstreamError::Unavailable { reason: "upstream budget exhausted" }`.
//! With Redis configured the budget is shared by every replica (`shared`), falling
//! back to the local one while Redis is unreachable, and so are 429 pauses
//! (`remote_pause`): a pause another replica published is adopted before step 1.

mod fair;
mod local;
mod remote_pause;
mod shared;
mod ticks;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use devicegraph_upstream::{Endpoint, GatePermit, RequestGate, UpstreamError};
use futures::future::BoxFuture;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};
use tracing::{debug, warn};

use self::fair::{FairPermit, FairQueue};
use self::local::LocalBudget;
use self::remote_pause::RemotePauses;
use self::shared::SharedBudget;
use crate::config::StoreConfig;
use crate::error::CacheError;
use crate::metrics::{BUDGET_EXHAUSTED, BUDGET_WAITS, UPSTREAM_PAUSES};
use crate::redis_conn::RedisConn;

/// The reason of the error a call gets when the budget runs out before its deadline.
pub const BUDGET_EXHAUSTED_REASON: &str = "upstream budget exhausted";

/// A `Retry-After` longer than this is treated as this: a misbehaving header must not
/// silence an endpoint for a day.
const MAX_PAUSE: Duration = Duration::from_secs(600);

/// Paces every upstream request; see the module docs. Share one per upstream.
pub struct Pacer {
    local: LocalBudget,
    shared: Option<SharedBudget>,
    slots: FairQueue,
    turnstile: FairQueue,
    pauses: Mutex<HashMap<Endpoint, Instant>>,
    /// 429 pauses published by (and to) the other replicas, with Redis.
    remote: Option<Arc<RemotePauses>>,
    redis: Option<Arc<RedisConn>>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("shared", &self.shared.is_some())
            .field("free_slots", &self.slots.available())
            .finish_non_exhaustive()
    }
}

impl Pacer {
    /// A pacer for the upstream at `upstream_base` (the shared budget's Redis key is
    /// derived from it, so replicas talking to the same upstream share one budget).
    pub fn new(config: &StoreConfig, upstream_base: &str) -> Result<Self, CacheError> {
        let redis = config
            .redis_url()
            .map(RedisConn::open)
            .transpose()?
            .map(Arc::new);
        Self::with_redis(config, upstream_base, redis)
    }

    pub(crate) fn with_redis(
        config: &StoreConfig,
        upstream_base: &str,
        redis: Option<Arc<RedisConn>>,
    ) -> Result<Self, CacheError> {
        let rate = NonZeroU32::new(config.rate_per_second).ok_or(CacheError::Config {
            key: "upstream.rate_per_second",
            reason: "must be at least 1".to_owned(),
        })?;
        // A burst of 0 would block everything; read it as "no burst".
        let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
        if config.max_concurrency == 0 {
            return Err(CacheError::Config {
                key: "upstream.max_concurrency",
                reason: "must be at least 1".to_owned(),
            });
        }
        let shared = redis.as_ref().map(|conn| {
            let key = format!("{}:budget:{upstream_base}", config.redis_key_prefix);
            SharedBudget::new(Arc::clone(conn), key, rate.get())
        });
        let remote = redis.as_ref().map(|conn| {
            Arc::new(RemotePauses::new(
                Arc::clone(conn),
                &config.redis_key_prefix,
                upstream_base,
            ))
        });
        Ok(Self {
            local: LocalBudget::new(rate, burst),
            shared,
            slots: FairQueue::new(config.max_concurrency),
            turnstile: FairQueue::new(1),
            pauses: Mutex::new(HashMap::new()),
            remote,
            redis,
        })
    }

    /// Pauses `endpoint` locally until `until` (a pause already longer stays).
    fn pause_until(&self, endpoint: Endpoint, until: Instant) {
        let mut pauses = self.pauses.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = pauses.entry(endpoint).or_insert(until);
        *slot = (*slot).max(until);
    }

    /// Adopts a pause another replica published for `endpoint` (see `remote_pause`).
    async fn adopt_remote_pause(&self, endpoint: Endpoint) {
        let Some(remote) = &self.remote else {
            return;
        };
        if let Some(left) = remote.check(endpoint).await {
            debug!(
                endpoint = endpoint.name(),
                pause_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
                "upstream paused by another replica"
            );
            self.pause_until(endpoint, Instant::now() + left.min(MAX_PAUSE));
        }
    }

    /// When `endpoint` may be called again after a 429, if it is paused now.
    pub fn paused_until(&self, endpoint: Endpoint) -> Option<Instant> {
        let now = Instant::now();
        let mut pauses = self.pauses.lock().unwrap_or_else(PoisonError::into_inner);
        match pauses.get(&endpoint) {
            Some(until) if *until > now => Some(*until),
            Some(_) => {
                pauses.remove(&endpoint);
                None
            }
            None => None,
        }
    }

    pub fn is_paused(&self, endpoint: Endpoint) -> bool {
        self.paused_until(endpoint).is_some()
    }

    /// `None` without Redis; else whether Redis answers now.
    pub async fn redis_reachable(&self) -> Option<bool> {
        match &self.redis {
            Some(conn) => Some(conn.ping().await),
            None => None,
        }
    }

    async fn acquire_permit(
        &self,
        endpoint: Endpoint,
        deadline: Instant,
    ) -> Result<GatePermit, UpstreamError> {
        loop {
            self.adopt_remote_pause(endpoint).await;
            if let Some(until) = self.paused_until(endpoint) {
                if until > deadline {
                    exhausted("pause");
                    return Err(UpstreamError::RateLimited {
                        endpoint,
                        retry_after: Some(until.saturating_duration_since(Instant::now())),
                    });
                }
                sleep_until(until).await;
            }
            let slot = self.slot(endpoint, deadline).await?;
            self.take_budget(endpoint, deadline).await?;
            // A 429 may have paused the endpoint while we queued: go round again
            // rather than send into the pause.
            if self.is_paused(endpoint) {
                drop(slot);
                continue;
            }
            return Ok(GatePermit::holding(slot));
        }
    }

    async fn slot(
        &self,
        endpoint: Endpoint,
        deadline: Instant,
    ) -> Result<FairPermit, UpstreamError> {
        if let Some(slot) = self.slots.try_acquire() {
            return Ok(slot);
        }
        metrics::counter!(BUDGET_WAITS, "limit" => "concurrency").increment(1);
        match timeout_at(deadline, self.slots.acquire(tenant())).await {
            Ok(slot) => Ok(slot),
            Err(_) => {
                exhausted("concurrency");
                Err(UpstreamError::Unavailable {
                    endpoint,
                    reason: "upstream concurrency limit reached".to_owned(),
                    status: None,
                })
            }
        }
    }

    async fn take_budget(
        &self,
        endpoint: Endpoint,
        deadline: Instant,
    ) -> Result<(), UpstreamError> {
        let fail = || {
            exhausted("rate");
            UpstreamError::Unavailable {
                endpoint,
                reason: BUDGET_EXHAUSTED_REASON.to_owned(),
                status: None,
            }
        };
        let mut waited = false;
        let _turn = match self.turnstile.try_acquire() {
            Some(turn) => turn,
            None => {
                waited = true;
                timeout_at(deadline, self.turnstile.acquire(tenant()))
                    .await
                    .map_err(|_| fail())?
            }
        };
        loop {
            let wait = match self.try_take().await {
                Ok(()) => break,
                Err(wait) => wait,
            };
            if Instant::now() + wait > deadline {
                return Err(fail());
            }
            waited = true;
            sleep(wait).await;
        }
        if waited {
            metrics::counter!(BUDGET_WAITS, "limit" => "rate").increment(1);
        }
        Ok(())
    }

    async fn try_take(&self) -> Result<(), std::time::Duration> {
        let Some(shared) = &self.shared else {
            return self.local.try_take(true);
        };
        // Per-replica smoothing first; the shared window is the cap.
        self.local.try_take(false)?;
        match shared.try_take().await {
            Some(taken) => taken,
            None => self.local.try_take(true),
        }
    }
}

/// Whose turn a wait is: the caller's tenant, or `""` for work done for nobody in
/// particular (background refreshes, logins).
fn tenant() -> Arc<str> {
    devicegraph_upstream::current_tenant().unwrap_or_else(|| Arc::from(""))
}

fn exhausted(limit: &'static str) {
    metrics::counter!(BUDGET_EXHAUSTED, "limit" => limit).increment(1);
}

impl RequestGate for Pacer {
    fn acquire(
        &self,
        endpoint: Endpoint,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<GatePermit, UpstreamError>> {
        Box::pin(self.acquire_permit(endpoint, deadline))
    }

    fn rate_limited(&self, endpoint: Endpoint, retry_after: Duration) {
        let retry_after = retry_after.min(MAX_PAUSE);
        self.pause_until(endpoint, Instant::now() + retry_after);
        if let Some(remote) = &self.remote {
            remote.publish(endpoint, retry_after);
        }
        metrics::counter!(UPSTREAM_PAUSES, "endpoint" => endpoint.name()).increment(1);
        let retry_after_ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
        if retry_after >= Duration::from_secs(1) {
            warn!(
                endpoint = endpoint.name(),
                retry_after_ms, "upstream rate limited; pausing endpoint"
            );
        } else {
            debug!(
                endpoint = endpoint.name(),
                retry_after_ms, "upstream rate limited; pausing endpoint"
            );
        }
    }
}

#[cfg(test)]
mod tests;
