//! The outbound pacer: the `RequestGate` every upstream HTTP request of the client
//! passes (data reads, every page, retries, logins). It paces, and it sheds: a call
//! that cannot be sent in time is refused at once (`UpstreamError::Shed`, which a
//! stale entry covers and which otherwise reaches the client as UPSTREAM_UNAVAILABLE
//! with a retry-after), instead of queueing without bound and timing out.
//!
//! Order inside `acquire`, and why:
//! 1. the endpoint's 429 pause: wait it out, or fail at once if it outlasts the
//!    deadline or `max_queue_wait` (`RateLimited`, which stale entries cover);
//! 2. a concurrency slot (`max_concurrency`), held until ThingSpace answers (the
//!    transport keeps the `GatePermit` until then). A free slot is taken at once and
//!    never refused on a prediction, so calls keep flowing and the latency estimate
//!    stays current. Otherwise the call waits, and is shed:
//!    - at once if `max_queued` calls already wait (for a slot or for budget):
//!      memory and waiting sockets stay bounded;
//!    - at once if it is doomed: the predicted wait (the waiters served before it ×
//!      the slot hold time / `max_concurrency`) exceeds `max_queue_wait`, or that
//!      wait plus the endpoint's expected latency (`latency`) exceeds what is left of
//!      its deadline. Queued, it would only time out, after using a slot a call that
//!      could have been answered needed: under overload that is what turned every
//!      answer into an error;
//!    - when it has waited `max_queue_wait`, or when what is left of its deadline
//!      drops below the expected latency (it gives up then, not at the deadline);
//!    - at grant, if what is left of its deadline is below the expected latency (the
//!      estimate may have grown while it waited): the slot goes to the next waiter.
//!
//!    Without an estimate (cold start, an idle endpoint) nothing is predicted: calls
//!    wait up to `max_queue_wait` or their deadline;
//! 3. the budget (`rate_per_second` with `burst`), taken last so the request is sent
//!    right after its slot in the budget: taking budget first and then queueing for
//!    a concurrency slot would let sends bunch up later. Callers queue for the budget
//!    on a turnstile, so one probe runs per grant, not one per waiter; a call whose
//!    budget comes too late (same limits as step 2) is shed with the reason
//!    `BUDGET_EXHAUSTED_REASON`.
//!
//! Background work (`devicegraph_upstream::is_background`: stale-while-revalidate
//! refreshes) never waits, neither behind nor ahead of interactive calls: it takes a
//! slot only if no call is waiting for one and more than `background_reserve ×
//! max_concurrency` are free, and budget only if it is there now with
//! `background_reserve` of the burst (and of the one-second window, local or shared
//! in Redis) left over; else it is shed at once ("background refresh deferred"), the
//! stale entry keeps being served and the next request for it tries again. So a
//! flood of refreshes cannot delay an interactive call by more than what it already
//! holds, and never takes the reserve. Reserves are rounded down, so a tiny pool
//! (one slot, a burst of 1) still lets refreshes through when it is entirely idle.
//!
//! Both queues (slots and turnstile) are fair between tenants (`fair`): the caller's
//! tenant (API key or address, from the upstream crate's request scope) gets its
//! turn round-robin with the others, so one tenant's fan-out does not make another's
//! single call wait behind all of it (the doom prediction counts the waiters served
//! before the call in that order, not all of them).
//!
//! With Redis configured the budget is shared by every replica (`shared`), falling
//! back to the local one while Redis is unreachable, and so are 429 pauses
//! (`remote_pause`): a pause another replica published is adopted before step 1.

mod fair;
mod latency;
mod local;
mod remote_pause;
mod shared;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use devicegraph_upstream::{Endpoint, GatePermit, RequestGate, UpstreamError};
use futures::future::BoxFuture;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};
use tracing::{debug, warn};

use self::fair::{FairPermit, FairQueue};
use self::latency::Latencies;
use self::local::{LocalBudget, reserved};
use self::remote_pause::RemotePauses;
use self::shared::SharedBudget;
use crate::config::StoreConfig;
use crate::error::CacheError;
use crate::metrics::{
    BUDGET_EXHAUSTED, BUDGET_WAITS, UPSTREAM_PAUSES, UPSTREAM_QUEUED, UPSTREAM_SHED,
};
use crate::redis_conn::RedisConn;

/// The reason of the error (`UpstreamError::Shed`) a call gets when the budget cannot
/// be had in time.
pub const BUDGET_EXHAUSTED_REASON: &str = "upstream budget exhausted";
/// The reason of a call shed because `max_queued` calls were already waiting.
pub const QUEUE_FULL_REASON: &str = "too many calls waiting for the upstream";
/// The reason of a call shed because it waited (or would wait) `max_queue_wait`.
pub const QUEUE_WAIT_REASON: &str = "waited too long for an upstream slot";
/// The reason of a call shed because it could not be answered before its deadline.
pub const DEADLINE_REASON: &str = "the upstream could not answer before the deadline";
/// The reason of a background call shed to leave the upstream to interactive ones.
pub const BACKGROUND_REASON: &str = "background refresh deferred";

/// A `Retry-After` longer than this is treated as this: a misbehaving header must not
/// silence an endpoint for a day.
const MAX_PAUSE: Duration = Duration::from_secs(600);

/// Bounds of the retry-after a shed call is given: at least a second ("now" would
/// invite the same refusal), and no more than a minute of a guess.
const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why a call was shed, as the metric's `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shed {
    QueueFull,
    QueueWait,
    Deadline,
    Background,
}

impl Shed {
    fn label(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::QueueWait => "queue_wait",
            Self::Deadline => "deadline",
            Self::Background => "background",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Self::QueueFull => QUEUE_FULL_REASON,
            Self::QueueWait => QUEUE_WAIT_REASON,
            Self::Deadline => DEADLINE_REASON,
            Self::Background => BACKGROUND_REASON,
        }
    }
}

/// The load-shedding settings, from `StoreConfig`.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_concurrency: usize,
    max_queued: usize,
    max_queue_wait: Duration,
    background_reserve: f64,
}

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
    limits: Limits,
    /// Calls waiting for a slot or budget now (`Queued` tickets).
    queued: AtomicUsize,
    latencies: Arc<Latencies>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("shared", &self.shared.is_some())
            .field("free_slots", &self.slots.available())
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A call's place among the waiters (counted against `max_queued`); released on drop.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!(UPSTREAM_QUEUED).decrement(1.0);
    }
}

/// What the transport holds while ThingSpace works on the request: the slot, and the
/// clock that measures the endpoint's latency when it is released.
struct Held {
    _slot: FairPermit,
    endpoint: Endpoint,
    sent: Instant,
    latencies: Arc<Latencies>,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Recorded before the slot is released (fields drop after this).
        self.latencies.record(self.endpoint, self.sent.elapsed());
    }
}

/// How long one call may still wait, and what to call it when that runs out.
#[derive(Debug, Clone, Copy)]
struct WaitLimit {
    /// When the call stops waiting.
    until: Instant,
    /// The label when it does: the queue-wait limit, or the deadline less the
    /// expected latency, whichever comes first.
    why: Shed,
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
        if !(0.0..=1.0).contains(&config.background_reserve) {
            return Err(CacheError::Config {
                key: "upstream.background_reserve",
                reason: "must be between 0 and 1".to_owned(),
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
            limits: Limits {
                max_concurrency: config.max_concurrency,
                max_queued: config.max_queued,
                max_queue_wait: config.max_queue_wait,
                background_reserve: config.background_reserve,
            },
            queued: AtomicUsize::new(0),
            latencies: Arc::new(Latencies::default()),
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

    /// Calls waiting for a slot or budget now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
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
        let background = devicegraph_upstream::is_background();
        let wait_until = later(Instant::now(), self.limits.max_queue_wait).min(deadline);
        // Taken the first time the call has to wait, kept until it has its permit.
        let mut queued = None;
        loop {
            self.adopt_remote_pause(endpoint).await;
            if let Some(until) = self.paused_until(endpoint) {
                let left = until.saturating_duration_since(Instant::now());
                if background {
                    return Err(self.shed(endpoint, Shed::Background, BACKGROUND_REASON, left));
                }
                if until > wait_until {
                    exhausted("pause");
                    return Err(UpstreamError::RateLimited {
                        endpoint,
                        retry_after: Some(left),
                    });
                }
                sleep_until(until).await;
            }
            let slot = if background {
                self.background_slot(endpoint)?
            } else {
                self.slot(endpoint, deadline, wait_until, &mut queued)
                    .await?
            };
            if background {
                self.background_budget(endpoint).await?;
            } else {
                self.take_budget(endpoint, deadline, wait_until, &mut queued)
                    .await?;
            }
            // A 429 may have paused the endpoint while we queued: go round again
            // rather than send into the pause.
            if self.is_paused(endpoint) {
                drop(slot);
                continue;
            }
            drop(queued);
            return Ok(GatePermit::holding(Held {
                _slot: slot,
                endpoint,
                sent: Instant::now(),
                latencies: Arc::clone(&self.latencies),
            }));
        }
    }

    /// A place among the waiters, or `Shed` (queue_full) when `max_queued` wait.
    fn enqueue<'a>(
        &'a self,
        endpoint: Endpoint,
        queued: &mut Option<Queued<'a>>,
    ) -> Result<(), UpstreamError> {
        if queued.is_some() {
            return Ok(());
        }
        let max = self.limits.max_queued;
        match self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            }) {
            Ok(_) => {
                metrics::gauge!(UPSTREAM_QUEUED).increment(1.0);
                *queued = Some(Queued(&self.queued));
                Ok(())
            }
            Err(waiting) => {
                // Until the queue drains: its calls' share of the slots' turnover.
                let retry_after = self
                    .slot_wait(waiting)
                    .unwrap_or(self.limits.max_queue_wait);
                Err(self.shed(endpoint, Shed::QueueFull, QUEUE_FULL_REASON, retry_after))
            }
        }
    }

    /// The predicted wait for a slot behind `ahead` waiters, if the hold time is known.
    fn slot_wait(&self, ahead: usize) -> Option<Duration> {
        let turnover = self.latencies.turnover()?;
        #[allow(clippy::cast_precision_loss)]
        let share = (ahead + 1) as f64 / self.limits.max_concurrency as f64;
        Some(Duration::try_from_secs_f64(turnover.as_secs_f64() * share).unwrap_or(Duration::MAX))
    }

    /// Until when a call to `endpoint` may still wait: the queue-wait limit, or the
    /// latest it can be sent and still be answered before `deadline`.
    fn wait_limit(&self, endpoint: Endpoint, deadline: Instant, wait_until: Instant) -> WaitLimit {
        let last_send = match self.latencies.expected(endpoint) {
            Some(latency) => deadline.checked_sub(latency).unwrap_or_else(Instant::now),
            None => deadline,
        };
        if wait_until < last_send {
            WaitLimit {
                until: wait_until,
                why: Shed::QueueWait,
            }
        } else {
            WaitLimit {
                until: last_send,
                why: Shed::Deadline,
            }
        }
    }

    async fn slot<'a>(
        &'a self,
        endpoint: Endpoint,
        deadline: Instant,
        wait_until: Instant,
        queued: &mut Option<Queued<'a>>,
    ) -> Result<FairPermit, UpstreamError> {
        // A free slot is never refused on a prediction (see the module docs).
        if let Some(slot) = self.slots.try_acquire() {
            return Ok(slot);
        }
        self.enqueue(endpoint, queued)?;
        let tenant = tenant();
        let predicted = self.slot_wait(self.slots.position(&tenant));
        if let (Some(wait), Some(latency)) = (predicted, self.latencies.expected(endpoint)) {
            let now = Instant::now();
            if later(now, wait) > wait_until && wait_until < deadline {
                return Err(self.shed(endpoint, Shed::QueueWait, QUEUE_WAIT_REASON, wait));
            }
            if later(later(now, wait), latency) > deadline {
                return Err(self.shed(endpoint, Shed::Deadline, DEADLINE_REASON, wait));
            }
        }
        metrics::counter!(BUDGET_WAITS, "limit" => "concurrency").increment(1);
        let limit = self.wait_limit(endpoint, deadline, wait_until);
        let Ok(slot) = timeout_at(limit.until, self.slots.acquire(tenant)).await else {
            exhausted("concurrency");
            let retry_after = predicted.unwrap_or(self.limits.max_queue_wait);
            return Err(self.shed(endpoint, limit.why, limit.why.reason(), retry_after));
        };
        // The estimate may have grown while the call waited.
        if let Some(latency) = self.latencies.expected(endpoint)
            && later(Instant::now(), latency) > deadline
        {
            drop(slot);
            return Err(self.shed(endpoint, Shed::Deadline, DEADLINE_REASON, latency));
        }
        Ok(slot)
    }

    /// A slot for background work, only from above the interactive reserve.
    fn background_slot(&self, endpoint: Endpoint) -> Result<FairPermit, UpstreamError> {
        let keep = reserved(self.limits.max_concurrency, self.limits.background_reserve);
        self.slots.try_acquire_above(keep).ok_or_else(|| {
            let retry_after = self.slot_wait(0).unwrap_or(MIN_RETRY_AFTER);
            self.shed(endpoint, Shed::Background, BACKGROUND_REASON, retry_after)
        })
    }

    /// Budget for background work: now, leaving the reserve, or not at all.
    async fn background_budget(&self, endpoint: Endpoint) -> Result<(), UpstreamError> {
        let Some(_turn) = self.turnstile.try_acquire() else {
            return Err(self.shed(
                endpoint,
                Shed::Background,
                BACKGROUND_REASON,
                MIN_RETRY_AFTER,
            ));
        };
        self.try_take(self.limits.background_reserve)
            .await
            .map_err(|wait| self.shed(endpoint, Shed::Background, BACKGROUND_REASON, wait))
    }

    async fn take_budget<'a>(
        &'a self,
        endpoint: Endpoint,
        deadline: Instant,
        wait_until: Instant,
        queued: &mut Option<Queued<'a>>,
    ) -> Result<(), UpstreamError> {
        let limit = self.wait_limit(endpoint, deadline, wait_until);
        let fail = |retry_after: Duration| {
            exhausted("rate");
            self.shed(endpoint, limit.why, BUDGET_EXHAUSTED_REASON, retry_after)
        };
        let mut waited = false;
        let _turn = match self.turnstile.try_acquire() {
            Some(turn) => turn,
            None => {
                self.enqueue(endpoint, queued)?;
                waited = true;
                timeout_at(limit.until, self.turnstile.acquire(tenant()))
                    .await
                    .map_err(|_| fail(MIN_RETRY_AFTER))?
            }
        };
        loop {
            let wait = match self.try_take(0.0).await {
                Ok(()) => break,
                Err(wait) => wait,
            };
            if later(Instant::now(), wait) > limit.until {
                return Err(fail(wait));
            }
            self.enqueue(endpoint, queued)?;
            waited = true;
            sleep(wait).await;
        }
        if waited {
            metrics::counter!(BUDGET_WAITS, "limit" => "rate").increment(1);
        }
        Ok(())
    }

    /// Takes one request's budget, leaving `reserve` of it (see `LocalBudget`).
    async fn try_take(&self, reserve: f64) -> Result<(), Duration> {
        let Some(shared) = &self.shared else {
            return self.local.try_take(true, reserve);
        };
        // Per-replica smoothing first; the shared window is the cap.
        self.local.try_take(false, reserve)?;
        match shared.try_take(reserve).await {
            Some(taken) => taken,
            None => self.local.try_take(true, reserve),
        }
    }

    fn shed(
        &self,
        endpoint: Endpoint,
        why: Shed,
        reason: &str,
        retry_after: Duration,
    ) -> UpstreamError {
        metrics::counter!(UPSTREAM_SHED, "reason" => why.label()).increment(1);
        debug!(
            endpoint = endpoint.name(),
            reason = why.label(),
            queued = self.queued(),
            "upstream call shed"
        );
        UpstreamError::Shed {
            endpoint,
            reason: reason.to_owned(),
            retry_after: retry_after.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER),
        }
    }
}

/// `at + wait`, saturating far in the future instead of overflowing.
fn later(at: Instant, wait: Duration) -> Instant {
    at.checked_add(wait)
        .unwrap_or_else(|| at + Duration::from_secs(86_400 * 365))
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
