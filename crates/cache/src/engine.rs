//! The read-through engine every `Store` read goes through, generic over the
//! [`Resource`]: it gets keys and a fetch function and answers each key with a value
//! and its freshness.
//!
//! Longer than 500 lines on purpose: `read`, `fly` and the invalidation functions
//! share one in-flight map, one epoch guard and one ordering argument (store, then
//! publish, then unregister; register the invalidation before removing), which is
//! easier to check in one file read top to bottom than spread over several.
//!
//! Per key: L1 (moka, bounded by estimated heap bytes) -> freshness decision ->
//! coalescing (join the flight already fetching the key, or claim it) -> in the
//! claiming flight: L2 (Redis, optional) -> the fetch function (the upstream).
//!
//! - Stale-while-revalidate: an entry past its TTL but inside the window is served at
//!   once; the key is claimed for a background flight only if nobody is fetching it
//!   already, so a burst of requests triggers one refresh, not one per request.
//! - Stale-if-error: a request whose fetch fails transiently serves the expired entry
//!   it found (or the flight's expired L2 copy) as `Freshness::Stale`. While the
//!   endpoint is paused after a 429, such entries are served without trying at all.
//! - moka keeps every entry for TTL + max(windows) of real time; freshness itself is
//!   judged by our own timestamps on the injectable clock.
//! - Invalidation detaches the keys in scope from their flights (later requests start
//!   a new one) and, through `epoch`, keeps flights that started before it from
//!   storing what they fetched.
//! - A flight is shared, so how it ends must not depend on who started it. It runs on
//!   its own task: the first caller going away (its client disconnected, its request
//!   timed out) neither cancels it nor makes it store twice. Its fetch is abandoned
//!   at the flight's deadline (`fetch_timeout` from its start), so a hung upstream
//!   holds its keys that long at most. A failure (error, deadline, panic, runtime
//!   shutdown) reaches every waiter at once, each falling back on its own stale copy
//!   where the error allows; errors are never stored (a "not found" is an answer, kept
//!   for its own TTL), and the next request starts a new flight.
//! - Each waiter also stops at its own deadline (`deadline`), answering stale or a
//!   timeout, while the flight goes on for the others and for the cache.
//! - A flight of nothing but stale-while-revalidate refreshes runs as background
//!   work (`devicegraph_upstream::as_background`): the pacer serves calls somebody
//!   waits for first. One with any claimed key is somebody's wait, so it stays
//!   interactive.
//! - Upkeep: moka evicts (by size or time) only while doing its housekeeping, so a
//!   periodic task runs it and reports the bytes held; otherwise an idle cache would
//!   keep expired entries and the `devicegraph_cache_bytes` gauge would never drop.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use devicegraph_upstream::UpstreamError;
use futures::future::BoxFuture;
use moka::Expiry;
use tokio::time::{Instant, timeout_at};
use tracing::{debug, warn};

use crate::clock::Clock;
use crate::coalesce::{Flight, FlightGuard, Inflight, KeyOutcome, Published};
use crate::epoch::{Epochs, FlightEpoch};
use crate::error::CacheError;
use crate::fetched::{Fetched, Freshness, KeyResult, StaleReason, Stamp};
use crate::freshness::{State, Windows, state_of};
use crate::key::{AnyKey, KeyRef};
use crate::l2::L2;
use crate::metrics::{self, Tally};
use crate::pacer::Pacer;
use crate::resource::{Cached, Resource};
use crate::scope::InvalidateScope;
use crate::value::{Answer, Entry, Slot};

/// What a fetch of resource `R` answered, per key.
pub(crate) type FetchAnswers<R> =
    HashMap<<R as Resource>::Key, Result<Answer<<R as Resource>::Value>, UpstreamError>>;

/// Keeps each entry in moka for its TTL plus the longer of the two windows.
struct Retention(Duration);

impl Expiry<AnyKey, Slot> for Retention {
    fn expire_after_create(
        &self,
        _key: &AnyKey,
        value: &Slot,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl.saturating_add(self.0))
    }

    fn expire_after_update(
        &self,
        _key: &AnyKey,
        value: &Slot,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl.saturating_add(self.0))
    }
}

pub(crate) struct Engine {
    l1: moka::sync::Cache<AnyKey, Slot>,
    inflight: Arc<Inflight>,
    clock: Arc<dyn Clock>,
    windows: Windows,
    l2: Option<L2>,
    /// When set, expired entries are served at once while their endpoint is paused.
    pacer: Option<Arc<Pacer>>,
    epochs: Arc<Epochs>,
    /// The bytes last reported on the gauge.
    reported_bytes: AtomicU64,
    /// Bumped by every L1 write and every invalidation: while it has not moved, no
    /// entry has a new version and none was invalidated (see `Store::generation`).
    generation: AtomicU64,
    /// How long a flight's fetch may run before it is abandoned (see `fly`).
    fetch_timeout: Duration,
}

/// [`Engine::fetch_timeout`] unless configured (`StoreConfig::fetch_timeout`).
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// What a read answers per key: the value and its freshness, or why there is none
/// (a remembered "not found" is the upstream's error again).
pub(crate) type Answers<R> =
    HashMap<<R as Resource>::Key, Result<Fetched<<R as Resource>::Value>, CacheError>>;

/// A read's answers as they are made, counted for the metrics.
struct Out<R: Resource> {
    answers: Answers<R>,
    tally: Tally,
}

impl<R: Resource> Out<R> {
    fn with_capacity(n: usize) -> Self {
        Self {
            answers: HashMap::with_capacity(n),
            tally: Tally::default(),
        }
    }

    fn put(&mut self, key: R::Key, result: KeyResult<R::Value>) {
        self.tally.count(&result);
        self.answers.insert(key, found::<R>(result));
    }
}

/// The value, or the upstream's "not found" error it remembers.
fn found<R: Resource>(result: KeyResult<R::Value>) -> Result<Fetched<R::Value>, CacheError> {
    let fetched = result?;
    match fetched.value {
        Cached::Found(value) => Ok(Fetched {
            value,
            freshness: fetched.freshness,
            version: fetched.version,
            stamp: fetched.stamp,
        }),
        Cached::Absent(nf) => Err(CacheError::Upstream(nf.to_error(R::INFO.endpoint))),
    }
}

/// A key the L1 could not answer fresh, with the expired entry it may fall back on.
struct Need<R: Resource> {
    key: R::Key,
    any: AnyKey,
    stale: Option<Arc<Entry<R::Value>>>,
}

impl Engine {
    pub(crate) fn new(
        max_bytes: u64,
        windows: Windows,
        clock: Arc<dyn Clock>,
        l2: Option<L2>,
        pacer: Option<Arc<Pacer>>,
    ) -> Self {
        let l1 = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &AnyKey, slot: &Slot| slot.weight)
            .expire_after(Retention(windows.retention()))
            .build();
        Self {
            l1,
            inflight: Arc::default(),
            clock,
            windows,
            l2,
            pacer,
            epochs: Arc::default(),
            reported_bytes: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            fetch_timeout: FETCH_TIMEOUT,
        }
    }

    /// Flights abandon their fetch after `fetch_timeout` (see `fly`).
    pub(crate) fn with_fetch_timeout(mut self, fetch_timeout: Duration) -> Self {
        // Capped so that `now + fetch_timeout` cannot overflow: a year is "never".
        self.fetch_timeout = fetch_timeout.min(Duration::from_secs(365 * 24 * 3600));
        self
    }

    /// Runs moka's housekeeping (applies size and time evictions) and reports the
    /// bytes held every `every`, until the engine is dropped. Needs a tokio runtime;
    /// without one the gauge is only updated on writes and invalidations.
    pub(crate) fn start_upkeep(self: &Arc<Self>, every: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            debug!("no tokio runtime: cache upkeep not started");
            return;
        };
        let engine = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(engine) = engine.upgrade() else {
                    break;
                };
                engine.l1.run_pending_tasks();
                engine.report_bytes();
            }
        });
    }

    /// Sets the bytes gauge from moka's current figure (cheap; may lag pending
    /// housekeeping, which the upkeep catches up with).
    fn report_bytes(&self) -> u64 {
        let bytes = self.l1.weighted_size();
        self.reported_bytes.store(bytes, Ordering::Relaxed);
        metrics::bytes(bytes);
        bytes
    }

    /// The L1 entry of `key`, typed.
    fn get<R: Resource>(&self, key: &AnyKey) -> Option<Arc<Entry<R::Value>>> {
        self.l1.get(key)?.entry::<R>()
    }

    /// [`Engine::get`] by the resource's own key, without building an `AnyKey`.
    fn lookup<R: Resource>(&self, key: &R::Key) -> Option<Arc<Entry<R::Value>>> {
        self.l1.get(&KeyRef::<R>(key))?.entry::<R>()
    }

    fn put<R: Resource>(&self, key: &AnyKey, entry: &Arc<Entry<R::Value>>) {
        let slot = Slot::new::<R>(key, Arc::clone(entry));
        self.l1.insert(key.clone(), slot);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Answers every key (duplicates are answered once), a remembered "not found" as
    /// the upstream's error. `fetch` is called, on the flight's own task, only if
    /// some key must come from the upstream.
    pub(crate) async fn read<R, F>(self: &Arc<Self>, keys: Vec<R::Key>, fetch: F) -> Answers<R>
    where
        R: Resource,
        F: FnOnce(Vec<R::Key>) -> BoxFuture<'static, FetchAnswers<R>> + Send + 'static,
    {
        let now = self.clock.now();
        let mut out = Out::<R>::with_capacity(keys.len());
        let mut need: Vec<Need<R>> = Vec::new();
        let mut revalidate: Vec<(R::Key, AnyKey)> = Vec::new();
        // Asked only when an entry could be served stale (keeps the pause lock off the
        // hit path).
        let mut paused_cache: Option<bool> = None;
        let mut paused = || {
            *paused_cache.get_or_insert_with(|| {
                self.pacer
                    .as_ref()
                    .is_some_and(|p| p.is_paused(R::INFO.endpoint))
            })
        };

        // Owned and deduplicated; a hit clones no key (looked up as `Keyed`), a miss
        // clones it once, into the `AnyKey` its flight is registered under.
        let unique: HashSet<R::Key> = keys.into_iter().collect();
        for key in unique {
            let entry = self.lookup::<R>(&key);
            match entry.as_ref().map(|e| state_of(e, now, self.windows)) {
                Some(State::Fresh) => out.put(key, hit(entry, now, None)),
                Some(State::Revalidate) => {
                    revalidate.push((key.clone(), AnyKey::new::<R>(key.clone())));
                    out.put(key, hit(entry, now, None));
                }
                // The upstream asked us to back off: trying would only wait or fail.
                Some(State::StaleIfError) if paused() => {
                    out.put(key, hit(entry, now, Some(StaleReason::RateLimited)));
                }
                Some(State::StaleIfError) => need.push(Need {
                    any: AnyKey::new::<R>(key.clone()),
                    key,
                    stale: entry,
                }),
                Some(State::Expired) | None => need.push(Need {
                    any: AnyKey::new::<R>(key.clone()),
                    key,
                    stale: None,
                }),
            }
        }

        let mut waits: HashMap<u64, (Flight, Vec<Need<R>>)> = HashMap::new();
        if !need.is_empty() || !revalidate.is_empty() {
            let (flight, sender) = self.inflight.new_flight();
            let mut claimed: Vec<Need<R>> = Vec::new();
            let mut background: Vec<(R::Key, AnyKey)> = Vec::new();
            let mut coalesced = 0u64;
            {
                let mut map = self.inflight.lock();
                for n in need {
                    if let Some(other) = map.get(&n.any) {
                        coalesced += 1;
                        let slot = waits
                            .entry(other.id())
                            .or_insert_with(|| (other.clone(), Vec::new()));
                        slot.1.push(n);
                        continue;
                    }
                    // The flight that fetched this key may have finished between our
                    // lookup and taking the lock: it stores before it unregisters.
                    if let Some(e) = self.get::<R>(&n.any)
                        && matches!(
                            state_of(&e, now, self.windows),
                            State::Fresh | State::Revalidate
                        )
                    {
                        out.put(n.key, hit(Some(e), now, None));
                        continue;
                    }
                    map.insert(n.any.clone(), flight.clone());
                    claimed.push(n);
                }
                for (key, any) in revalidate {
                    if !map.contains_key(&any) {
                        map.insert(any.clone(), flight.clone());
                        background.push((key, any));
                    }
                }
            }
            if coalesced > 0 {
                metrics::coalesced(R::INFO.name, coalesced);
            }
            if !background.is_empty() {
                metrics::refresh(R::INFO.name);
            }
            if !claimed.is_empty() || !background.is_empty() {
                let mut flight_keys: Vec<(R::Key, AnyKey)> = claimed
                    .iter()
                    .map(|n| (n.key.clone(), n.any.clone()))
                    .collect();
                flight_keys.extend(background);
                let guard = FlightGuard {
                    inflight: Arc::clone(&self.inflight),
                    id: flight.id(),
                    keys: flight_keys.iter().map(|(_, any)| any.clone()).collect(),
                    sender,
                };
                // Before the flight reads anything (see `epoch`).
                let epoch = self.epochs.begin_flight();
                // The flight runs on its own task so a cancelled first caller cannot strand
                // the waiters; carry the caller's request id (and call meter) into it so
                // the upstream call is still tagged with `X-Request-ID` and counted.
                let flight_task = Arc::clone(self).fly::<R, F>(guard, flight_keys, epoch, fetch);
                if claimed.is_empty() {
                    // Only refreshes: nobody waits for this one, so the pacer may put it
                    // behind calls somebody waits for. A flight with a claimed key stays
                    // interactive even if it refreshes others on the way.
                    let flight_task = devicegraph_upstream::as_background(flight_task);
                    tokio::spawn(devicegraph_upstream::in_current_scope(flight_task));
                } else {
                    tokio::spawn(devicegraph_upstream::in_current_scope(flight_task));
                }
                if !claimed.is_empty() {
                    waits.insert(flight.id(), (flight, claimed));
                }
            }
        }

        // Each wait is bounded by its flight's deadline (`fly`) and, when the caller
        // set one, by the caller's own: a request that joined a flight started by
        // someone with more time left must not wait for it past its own deadline.
        let deadline = crate::deadline::current_deadline();
        let published =
            futures::future::join_all(waits.into_values().map(|(flight, needs)| async move {
                let waited = match deadline {
                    Some(deadline) => timeout_at(deadline, flight.wait::<R>())
                        .await
                        .map_or(Waited::Late, Waited::from),
                    None => Waited::from(flight.wait::<R>().await),
                };
                (waited, needs)
            }))
            .await;
        let now = self.clock.now();
        for (waited, needs) in published {
            for n in needs {
                let answer = resolve::<R>(&n, &waited, now);
                out.put(n.key, answer);
            }
        }

        out.tally.record(R::INFO.name);
        out.answers
    }

    /// One flight: L2 first, then the upstream for what the L2 did not have fresh;
    /// stores (unless an invalidation superseded the flight), publishes, unregisters
    /// (the guard), in that order.
    async fn fly<R, F>(
        self: Arc<Self>,
        guard: FlightGuard,
        keys: Vec<(R::Key, AnyKey)>,
        epoch: FlightEpoch,
        fetch: F,
    ) where
        R: Resource,
        F: FnOnce(Vec<R::Key>) -> BoxFuture<'static, FetchAnswers<R>> + Send + 'static,
    {
        // The flight's deadline, from its start (the L2 read counts).
        let deadline = Instant::now() + self.fetch_timeout;
        let mut out: Published<R> = HashMap::with_capacity(keys.len());
        let mut remaining = keys;
        let mut l2_stale: HashMap<R::Key, Arc<Entry<R::Value>>> = HashMap::new();

        if let Some(l2) = &self.l2 {
            let now = self.clock.now();
            let found = l2
                .get_many::<R>(remaining.iter().map(|(_, any)| any), now, self.clock.wall())
                .await;
            let mut fresh: Vec<(AnyKey, Arc<Entry<R::Value>>)> = Vec::new();
            let mut left = Vec::with_capacity(remaining.len());
            for ((key, any), entry) in remaining.into_iter().zip(found) {
                let Some(entry) = entry else {
                    left.push((key, any));
                    continue;
                };
                match state_of(&entry, now, self.windows) {
                    State::Fresh => {
                        fresh.push((any, Arc::clone(&entry)));
                        out.insert(
                            key,
                            KeyOutcome::Value {
                                entry,
                                from_l2: true,
                            },
                        );
                    }
                    State::Revalidate | State::StaleIfError => {
                        l2_stale.insert(key.clone(), entry);
                        left.push((key, any));
                    }
                    State::Expired => left.push((key, any)),
                }
            }
            self.epochs
                .store_current(&epoch, fresh, |any, entry| self.put::<R>(any, entry));
            remaining = left;
        }

        if !remaining.is_empty() {
            let asked = remaining.iter().map(|(key, _)| key.clone()).collect();
            // A fetch past its deadline is dropped (cancelling its upstream calls) and
            // fails every key with a timeout: nothing is stored, waiters fall back on
            // their stale copies, the keys are released for the next request.
            let mut answers = match timeout_at(deadline, fetch(asked)).await {
                Ok(answers) => answers,
                Err(_) => {
                    warn!(
                        resource = R::INFO.name,
                        timeout_ms =
                            u64::try_from(self.fetch_timeout.as_millis()).unwrap_or(u64::MAX),
                        "upstream fetch abandoned at its deadline"
                    );
                    let timeout = UpstreamError::Timeout {
                        endpoint: R::INFO.endpoint,
                    };
                    remaining
                        .iter()
                        .map(|(key, _)| (key.clone(), Err(timeout.clone())))
                        .collect()
                }
            };
            let stored_at = self.clock.now();
            let fetched_at = self.clock.wall();
            let mut fetched: Vec<(AnyKey, Arc<Entry<R::Value>>)> = Vec::new();
            for (key, any) in remaining {
                let outcome = match answers.remove(&key) {
                    Some(Ok(answer)) => {
                        let entry = Arc::new(Entry::new(answer, stored_at, fetched_at));
                        fetched.push((any, Arc::clone(&entry)));
                        KeyOutcome::Value {
                            entry,
                            from_l2: false,
                        }
                    }
                    Some(Err(error)) => {
                        debug!(
                            resource = R::INFO.name,
                            kind = error.kind(),
                            "upstream fetch failed"
                        );
                        KeyOutcome::Failed {
                            error,
                            stale: l2_stale.remove(&key),
                        }
                    }
                    None => KeyOutcome::Failed {
                        error: UpstreamError::Unavailable {
                            endpoint: R::INFO.endpoint,
                            reason: "the upstream answer did not cover this key".to_owned(),
                            status: None,
                        },
                        stale: l2_stale.remove(&key),
                    },
                };
                out.insert(key, outcome);
            }
            let stored = self
                .epochs
                .store_current(&epoch, fetched, |any, entry| self.put::<R>(any, entry));
            if let Some(l2) = &self.l2 {
                // Written before publishing so another replica asking right after this
                // request was answered finds it.
                l2.put_many::<R>(&stored, self.windows.retention()).await;
                // An invalidation that began while the write was under way may have
                // deleted before it landed: delete again what it covers.
                let late = self
                    .epochs
                    .superseded(&epoch, stored.iter().map(|(k, _)| k));
                l2.delete_many(&late).await;
            }
        }

        self.report_bytes();
        guard.publish::<R>(out);
        drop(guard);
        drop(epoch);
    }

    /// Drops every entry in scope from L1 and L2; answers how many distinct entries
    /// were dropped from either.
    /// See the `generation` field.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) async fn invalidate(&self, scope: &InvalidateScope) -> u64 {
        // First, so that no flight stores anything in scope from here on (`epoch`),
        // and requests from here on do not join a flight that started before.
        let _running = self.epochs.begin_invalidation(scope.clone());
        let mut dropped = self.drop_l1(scope);
        if let Some(l2) = &self.l2 {
            dropped.extend(l2.invalidate(scope).await);
        }
        self.finish_invalidation(&dropped)
    }

    /// [`Engine::invalidate`] for this replica's L1 only (another replica already
    /// cleared the shared L2 and told us, see `fanout`); same epoch guard.
    /// The L1 entry for `key` when reading it now would make no blocking upstream
    /// call (fresh, or within stale-while-revalidate). Used to estimate what an
    /// operation will cost upstream before running it (the read it precedes would
    /// count towards the entry's popularity anyway).
    /// The version of `key`'s L1 entry and how long it stays fresh, when it is fresh
    /// now (not merely servable within stale-while-revalidate).
    pub(crate) fn current<R: Resource>(&self, key: &R::Key) -> Option<(u64, Duration)> {
        let entry = self.lookup::<R>(key)?;
        let age = self.clock.now().saturating_duration_since(entry.stored_at);
        let left = entry.ttl.checked_sub(age).filter(|left| !left.is_zero())?;
        Some((entry.version, left))
    }

    pub(crate) fn servable<R: Resource>(&self, key: &R::Key) -> Option<Arc<Entry<R::Value>>> {
        let entry = self.lookup::<R>(key)?;
        matches!(
            state_of(&entry, self.clock.now(), self.windows),
            State::Fresh | State::Revalidate
        )
        .then_some(entry)
    }

    pub(crate) fn invalidate_l1(&self, scope: &InvalidateScope) -> u64 {
        let _running = self.epochs.begin_invalidation(scope.clone());
        let dropped = self.drop_l1(scope);
        self.finish_invalidation(&dropped)
    }

    /// Drops this replica's whole L1 (not the shared L2): for a replica that may have
    /// missed other replicas' invalidations. Answers how many entries it held.
    ///
    /// Unlike a scoped invalidation it sets no epoch guard and leaves flights alone:
    /// what is suspect is the entries already held, not the fetches running now,
    /// which read the L2 or the upstream after the other replicas' invalidations
    /// cleared them; refusing their answers would also keep them out of the shared
    /// L2, where nothing is wrong.
    pub(crate) fn clear_l1(&self) -> u64 {
        self.l1.run_pending_tasks();
        let held = self.l1.entry_count();
        self.generation.fetch_add(1, Ordering::Release);
        self.l1.invalidate_all();
        self.l1.run_pending_tasks();
        self.report_bytes();
        held
    }

    /// Detaches the keys in scope from their flights and removes them from L1;
    /// answers the Redis keys of the entries removed (to count them with L2's).
    fn drop_l1(&self, scope: &InvalidateScope) -> HashSet<String> {
        self.generation.fetch_add(1, Ordering::Release);
        self.inflight.lock().retain(|key, _| !key.in_scope(scope));
        let victims: Vec<Arc<AnyKey>> = self
            .l1
            .iter()
            .filter(|(k, _)| k.in_scope(scope))
            .map(|(k, _)| k)
            .collect();
        let prefix = self.l2.as_ref().map_or("", |l2| l2.prefix());
        victims
            .into_iter()
            .filter(|key| self.l1.remove(&**key).is_some())
            .map(|key| key.redis_key(prefix))
            .collect()
    }

    fn finish_invalidation(&self, dropped: &HashSet<String>) -> u64 {
        self.l1.run_pending_tasks();
        self.report_bytes();
        u64::try_from(dropped.len()).unwrap_or(u64::MAX)
    }

    /// Estimated bytes held in L1, after moka applied pending evictions (also
    /// reported on the gauge).
    pub(crate) fn weighted_size(&self) -> u64 {
        self.l1.run_pending_tasks();
        self.report_bytes()
    }

    pub(crate) fn entry_count(&self) -> u64 {
        self.l1.run_pending_tasks();
        self.l1.entry_count()
    }

    #[cfg(test)]
    pub(crate) fn inflight(&self) -> &Inflight {
        &self.inflight
    }

    #[cfg(test)]
    pub(crate) fn reported_bytes(&self) -> u64 {
        self.reported_bytes.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn epochs(&self) -> &Epochs {
        &self.epochs
    }

    /// Stores an entry directly, as a flight would (tests).
    #[cfg(test)]
    pub(crate) fn insert<R: Resource>(&self, key: R::Key, answer: Answer<R::Value>) {
        let entry = Arc::new(Entry::new(answer, self.clock.now(), self.clock.wall()));
        self.put::<R>(&AnyKey::new::<R>(key), &entry);
    }
}

/// `entry` as a read at `now` answers it: a hit, or served stale for `stale`.
fn served<V: Clone>(
    entry: &Entry<V>,
    freshness: Freshness,
    now: Instant,
    stale: Option<StaleReason>,
) -> Fetched<Cached<V>> {
    Fetched {
        value: entry.value.clone(),
        freshness,
        version: entry.version,
        stamp: Stamp {
            fetched_at: Some(entry.fetched_at),
            age: now.saturating_duration_since(entry.stored_at),
            stale_reason: stale,
        },
    }
}

/// An entry found in L1, served as a hit, or stale for `stale`.
fn hit<V: Clone>(
    entry: Option<Arc<Entry<V>>>,
    now: Instant,
    stale: Option<StaleReason>,
) -> KeyResult<V> {
    let freshness = if stale.is_some() {
        Freshness::Stale
    } else {
        Freshness::Hit
    };
    match entry {
        Some(e) => Ok(served(&e, freshness, now, stale)),
        // Callers only pass entries they found; keep the type honest anyway.
        None => Err(CacheError::Internal {
            reason: "hit without an entry",
        }),
    }
}

/// How a read's wait on one flight ended.
enum Waited<R: Resource> {
    Published(Arc<Published<R>>),
    /// The flight ended without publishing (see `coalesce`).
    Aborted,
    /// The caller's deadline passed first.
    Late,
}

impl<R: Resource> From<Option<Arc<Published<R>>>> for Waited<R> {
    fn from(published: Option<Arc<Published<R>>>) -> Self {
        published.map_or(Self::Aborted, Self::Published)
    }
}

/// One key's answer from the flight it waited on, read at `now`. Too late for the
/// caller reads like a timeout of the fetch: the stale copy if there is one.
fn resolve<R: Resource>(need: &Need<R>, waited: &Waited<R>, now: Instant) -> KeyResult<R::Value> {
    let late;
    let outcome = match waited {
        Waited::Published(published) => published.get(&need.key),
        Waited::Aborted => None,
        Waited::Late => {
            late = KeyOutcome::Failed {
                error: UpstreamError::Timeout {
                    endpoint: R::INFO.endpoint,
                },
                stale: None,
            };
            Some(&late)
        }
    };
    match outcome {
        Some(KeyOutcome::Value { entry, from_l2 }) => {
            let freshness = if *from_l2 {
                Freshness::Hit
            } else {
                Freshness::Miss
            };
            Ok(served(entry, freshness, now, None))
        }
        Some(KeyOutcome::Failed { error, stale }) => {
            if error.is_transient()
                && let Some(entry) = need.stale.as_ref().or(stale.as_ref())
            {
                let reason = StaleReason::of(error);
                return Ok(served(entry, Freshness::Stale, now, Some(reason)));
            }
            Err(CacheError::Upstream(error.clone()))
        }
        None => Err(CacheError::FetchAborted {
            resource: R::INFO.name,
        }),
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
