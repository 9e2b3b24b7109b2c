//! The typed read-through API: `Store::get::<R>` / `get_many::<R>` for any
//! [`Resource`] `R`, answering `R::Value` with its freshness, through the engine.
//!
//! Construction: `Store::connect` builds everything a server needs (the pacer, the
//! client behind it, the optional Redis L2 and shared budget); `Store::new` wraps a
//! client made elsewhere (its gate is the caller's business).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use devicegraph_upstream::{Client, ClientConfig, RequestGate, UpstreamError};
use futures::future::BoxFuture;
use tracing::warn;

use crate::clock::{Clock, TokioClock};
use crate::config::StoreConfig;
use crate::engine::{Engine, FetchAnswers};
use crate::error::CacheError;
use crate::fanout::Fanout;
use crate::fetched::Fetched;
use crate::freshness::Windows;
use crate::l2::L2;
use crate::pacer::Pacer;
use crate::redis_conn::RedisConn;
use crate::resource::Ttls;
use crate::resource::{Cached, NotFound, Resource};
use crate::scope::InvalidateScope;
use crate::value::Answer;

/// How often moka's housekeeping runs (evictions by size and time) and the bytes
/// gauge is refreshed, besides after every write.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// The typed read-through store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    engine: Arc<Engine>,
    pacer: Option<Arc<Pacer>>,
    redis: Option<Arc<RedisConn>>,
    /// Publishes invalidations to, and applies those of, the other replicas; its
    /// subscriber task stops when the last clone of the store is dropped.
    fanout: Option<Fanout>,
    config: StoreConfig,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("client", &self.inner.client)
            .field("max_bytes", &self.inner.config.max_bytes)
            .field("redis", &self.inner.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store over `client` as given (no pacing added). With `redis_url` set, values
    /// are also kept in Redis; an unusable URL is logged and ignored here (use
    /// [`Store::connect`] to have it refused).
    pub fn new(client: Client, config: StoreConfig) -> Self {
        Self::with_clock(client, config, Arc::new(TokioClock))
    }

    /// [`Store::new`] judging freshness by `clock`.
    pub fn with_clock(client: Client, config: StoreConfig, clock: Arc<dyn Clock>) -> Self {
        let redis = match config.redis_url().map(RedisConn::open).transpose() {
            Ok(redis) => redis.map(Arc::new),
            Err(e) => {
                warn!(error = %e, "redis disabled");
                None
            }
        };
        Self::build(client, config, clock, None, redis)
    }

    /// Everything a server needs: the pacer (budget, concurrency ceiling, 429 pauses;
    /// shared through Redis when `redis_url` is set), the upstream client behind it,
    /// and the store. Connects to nothing yet: Redis is reached on first use and is
    /// optional at run time (unreachable = local cache and budget, with a warning).
    pub fn connect(config: StoreConfig, client_config: ClientConfig) -> Result<Self, CacheError> {
        Self::connect_with_clock(config, client_config, Arc::new(TokioClock))
    }

    /// [`Store::connect`] judging freshness by `clock`.
    pub fn connect_with_clock(
        config: StoreConfig,
        client_config: ClientConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CacheError> {
        let redis = config
            .redis_url()
            .map(RedisConn::open)
            .transpose()?
            .map(Arc::new);
        let base = client_config
            .base_url
            .as_str()
            .trim_end_matches('/')
            .to_owned();
        let pacer = Arc::new(Pacer::with_redis(&config, &base, redis.clone())?);
        let gate: Arc<dyn RequestGate> = pacer.clone();
        let client = Client::with_gate(client_config, gate)?;
        Ok(Self::build(client, config, clock, Some(pacer), redis))
    }

    fn build(
        client: Client,
        config: StoreConfig,
        clock: Arc<dyn Clock>,
        pacer: Option<Arc<Pacer>>,
        redis: Option<Arc<RedisConn>>,
    ) -> Self {
        let windows = Windows {
            stale_while_revalidate: config.stale_while_revalidate,
            stale_if_error: config.stale_if_error,
        };
        let l2 = redis
            .as_ref()
            .map(|conn| L2::new(Arc::clone(conn), config.redis_key_prefix.clone()));
        let engine = Arc::new(
            Engine::new(config.max_bytes, windows, clock, l2, pacer.clone())
                .with_fetch_timeout(config.fetch_timeout),
        );
        engine.start_upkeep(UPKEEP_EVERY);
        let fanout = redis
            .as_ref()
            .map(|conn| Fanout::start(Arc::clone(conn), &config.redis_key_prefix, &engine));
        let inner = Inner {
            client,
            engine,
            pacer,
            redis,
            fanout,
            config,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The pacer, when the store built its own client ([`Store::connect`]).
    pub fn pacer(&self) -> Option<&Arc<Pacer>> {
        self.inner.pacer.as_ref()
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// `None` without Redis; else whether Redis answers now (for readiness).
    pub async fn redis_reachable(&self) -> Option<bool> {
        match &self.inner.redis {
            Some(conn) => Some(conn.ping().await),
            None => None,
        }
    }

    /// One resource's value for `key`, with its freshness. A remembered "not found"
    /// answer is the upstream's error again.
    pub async fn get<R: Resource>(&self, key: R::Key) -> Result<Fetched<R::Value>, CacheError> {
        let mut answers = self.get_many::<R>(vec![key.clone()]).await;
        answers.remove(&key).unwrap_or(Err(CacheError::Internal {
            reason: "no answer for the key asked",
        }))
    }

    /// Values for many keys of one resource, each with its own freshness and its own
    /// error, so one failed upstream batch does not fail keys that were cached.
    /// Resources the upstream answers in batches (device details) are fetched as one
    /// batch per account.
    pub async fn get_many<R: Resource>(
        &self,
        keys: Vec<R::Key>,
    ) -> HashMap<R::Key, Result<Fetched<R::Value>, CacheError>> {
        if keys.is_empty() {
            return HashMap::new();
        }
        self.get_many_known::<R>(keys, HashMap::new(), || false)
            .await
    }

    /// [`Store::get_many`] for keys whose values the caller already holds from an
    /// upstream answer read just now that carries them too (a page of an account's
    /// device list carries every device's details). A key cached fresh is answered
    /// from the cache as ever; a key that would be fetched is answered with its
    /// `known` value instead, stored like a fetched one (TTL from now, L2 copy, new
    /// version), provided `still_current()` holds when that fetch starts. It should
    /// say whether the answer the values came from is still the current cache entry:
    /// if an invalidation dropped it in the meantime, its values are stale too. Keys
    /// `known` lacks, and every key when `still_current()` fails, are fetched from
    /// the upstream as usual; an invalidation after the check keeps the flight from
    /// storing, as for any fetch.
    pub async fn get_many_known<R: Resource>(
        &self,
        keys: Vec<R::Key>,
        known: HashMap<R::Key, R::Value>,
        still_current: impl FnOnce() -> bool + Send + 'static,
    ) -> HashMap<R::Key, Result<Fetched<R::Value>, CacheError>> {
        if keys.is_empty() {
            return HashMap::new();
        }
        let inner = Arc::clone(&self.inner);
        let fetch = move |keys: Vec<R::Key>| -> BoxFuture<'static, FetchAnswers<R>> {
            Box::pin(async move {
                let ttls = &inner.config.ttl;
                // Checked here, inside the flight (after its epoch began), so an
                // invalidation either dropped the source before this check or is
                // seen by the flight's store and keeps it from storing.
                let mut known = if known.is_empty() || !still_current() {
                    HashMap::new()
                } else {
                    known
                };
                let mut answers = FetchAnswers::<R>::with_capacity(keys.len());
                let mut missing = Vec::new();
                for key in keys {
                    match known.remove(&key) {
                        Some(value) => {
                            answers.insert(key, settle::<R>(Ok(value), ttls));
                        }
                        None => missing.push(key),
                    }
                }
                if !missing.is_empty() {
                    for (key, result) in R::fetch(&inner.client, missing).await {
                        answers.insert(key, settle::<R>(result, ttls));
                    }
                }
                answers
            })
        };
        self.inner.engine.read::<R, _>(keys, fetch).await
    }

    /// Whether reading `key` now would be answered from this replica's memory,
    /// without a blocking upstream call. A Redis L2 copy is not looked at (that would
    /// be a network round trip per key), so the answer errs towards "not cached".
    pub fn is_cached<R: Resource>(&self, key: &R::Key) -> bool {
        self.inner.engine.servable::<R>(key).is_some()
    }

    /// The version of `key`'s entry in this replica's memory and how long it stays
    /// fresh, when it is fresh now. Whatever was built from a read of `key` (a stored
    /// response) is still current while this answers the version that read saw: an
    /// invalidation drops the entry, and a refresh or refetch stores a new version.
    pub fn current<R: Resource>(&self, key: &R::Key) -> Option<(u64, Duration)> {
        self.inner.engine.current::<R>(key)
    }

    /// A counter that moves whenever an entry is stored or invalidated in this
    /// replica's memory. While it has not moved since a check of [`Store::current`],
    /// every entry checked is still the version it was (only its freshness can have
    /// run out, which the caller bounds by the time it was told).
    pub fn generation(&self) -> u64 {
        self.inner.engine.generation()
    }

    /// The value `is_cached` would find (`None` also for a remembered "not found"),
    /// e.g. to follow a cached chain of campaign pages.
    pub fn peek<R: Resource>(&self, key: &R::Key) -> Option<R::Value> {
        match &self.inner.engine.servable::<R>(key)?.value {
            Cached::Found(value) => Some(value.clone()),
            Cached::Absent(_) => None,
        }
    }

    /// Drops every entry in scope (L1 and, when configured, Redis); returns how many
    /// distinct entries were dropped here (this store's L1 and the shared Redis).
    ///
    /// With Redis configured, the scope is then published to the other stores sharing
    /// the key prefix, which drop it from their own L1 shortly after (asynchronously,
    /// best effort: a publish failure is only logged). Their drops are not counted.
    pub async fn invalidate(&self, scope: &InvalidateScope) -> u64 {
        let dropped = self.inner.engine.invalidate(scope).await;
        // After the L2 delete: a replica that re-reads on the message must not find
        // the old value there.
        if let Some(fanout) = &self.inner.fanout {
            fanout.publish(scope).await;
        }
        dropped
    }

    /// Approximate bytes held in the cache.
    pub fn weighted_size(&self) -> u64 {
        self.inner.engine.weighted_size()
    }

    /// Entries held in the cache.
    pub fn entry_count(&self) -> u64 {
        self.inner.engine.entry_count()
    }
}

/// A fetched value with its TTL, or a remembered "not found", or the error.
fn settle<R: Resource>(
    result: Result<R::Value, UpstreamError>,
    ttls: &Ttls,
) -> Result<Answer<R::Value>, UpstreamError> {
    match result {
        Ok(value) => Ok(Answer {
            ttl: R::ttl(&value, ttls),
            value: Cached::Found(value),
        }),
        Err(e) => match NotFound::from_error(&e) {
            Some(nf) => Ok(Answer {
                value: Cached::Absent(Arc::new(nf)),
                ttl: ttls.not_found,
            }),
            None => Err(e),
        },
    }
}
