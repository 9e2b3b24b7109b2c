//! What every request handler shares: the config, the store, the schema, the key
//! ring, the inbound limiter, the readiness cache, the metrics handle, the
//! rendered GraphiQL page and the trusted documents, plus the mapping from `Config`
//! to the settings of the library crates.

use std::sync::Arc;

use devicegraph_cache::{Store, StoreConfig};
use devicegraph_graphql::{DeviceSchema, GraphqlConfig};
use devicegraph_upstream::{ClientConfig, Credentials};
use metrics_exporter_prometheus::PrometheusHandle;
use url::Url;

use crate::config::Config;
use crate::error::StartupError;
use crate::graphiql::{Sample, page};
use crate::http::identity::KeyRing;
use crate::http::metrics::prometheus;
use crate::http::rate_limit::{InboundConfig, InboundLimiter};
use crate::http::upstream_budget::UpstreamBudgets;
use crate::response_cache::ResponseCache;
pub use crate::trusted::{Manifest, ManifestError, TrustedDocuments};

/// Where the upstream is and how to log in to it.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub base_url: Url,
    pub credentials: Credentials,
}

impl UpstreamTarget {
    /// `upstream.base_url` and the configured credentials (thingspace mode).
    pub fn from_config(config: &Config) -> Self {
        let u = &config.upstream;
        Self {
            base_url: u.base_url.clone(),
            credentials: Credentials {
                client_id: u.client_id.clone(),
                client_secret: u.client_secret.clone(),
                username: u.username.clone(),
                password: u.password.clone(),
            },
        }
    }
}

/// The last readiness answer and when it was taken; `routes::ops` probes, and
/// reuses it for a few seconds. `Err` holds a reason fit for operators; `Ok(Some)`
/// is ready but degraded (ThingSpace unreachable: stale answers only), with why.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    pub(crate) last: tokio::sync::Mutex<Option<(tokio::time::Instant, ReadinessAnswer)>>,
}

/// See [`Readiness`].
pub(crate) type ReadinessAnswer = Result<Option<String>, String>;

/// The shared state: one `Arc`, so the clone every handler and middleware takes
/// is one reference count (the fields behind it are many: cloning them one by one
/// per request and layer was measurable on the warm path).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
#[derive(Clone)]
pub struct Shared {
    pub(crate) config: Arc<Config>,
    pub(crate) store: Store,
    pub(crate) schema: DeviceSchema,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) limiter: InboundLimiter,
    /// Per-client budgets of upstream calls (`limits.upstream_calls_per_minute`).
    pub(crate) budgets: UpstreamBudgets,
    pub(crate) readiness: Arc<Readiness>,
    pub(crate) metrics: PrometheusHandle,
    /// The GraphiQL page, rendered once (see `graphiql::page`).
    pub(crate) graphiql_page: Arc<str>,
    /// Persisted queries and the trusted-documents manifest (`trusted`).
    pub(crate) trusted: Arc<TrustedDocuments>,
    /// Serialized answers in front of execution (`response_cache`).
    pub(crate) responses: ResponseCache,
}

impl AppState {
    /// State over an existing store.
    pub fn new(config: Config, store: Store) -> Self {
        let schema = devicegraph_graphql::build_schema(store.clone(), graphql_config(&config));
        let limiter = InboundLimiter::new(InboundConfig {
            per_second: config.limits.per_client_rps,
            burst: config.limits.per_client_burst,
        });
        let keys = KeyRing::new(&config.auth);
        let config_budget = config.limits.upstream_calls_per_minute;
        let graphiql_page = Arc::from(page::render(None, keys.auth_required()));
        // No manifest yet (`connect` loads it): an allow-list refuses everything.
        let trusted = Arc::new(TrustedDocuments::new(&config, Manifest::default()));
        Self(Arc::new(Shared {
            responses: ResponseCache::new(config.cache.response_cache_max_bytes),
            trusted,
            keys: Arc::new(keys),
            graphiql_page,
            readiness: Arc::new(Readiness::default()),
            metrics: prometheus(),
            config: Arc::new(config),
            store,
            schema,
            limiter,
            budgets: UpstreamBudgets::new(config_budget),
        }))
    }

    /// State with its own paced client and store for `target`.
    /// Loads the trusted-documents manifest first: a bad one stops startup before
    /// anything connects.
    pub fn connect(config: Config, target: UpstreamTarget) -> Result<Self, StartupError> {
        let manifest = TrustedDocuments::manifest_of(&config)?;
        let store = Store::connect(store_config(&config), client_config(&config, target))?;
        let mut state = Self::new(config, store);
        // After `new`, which installs the metrics recorder the manifest's gauge needs.
        let trusted = Arc::new(TrustedDocuments::new(&state.config, manifest));
        Arc::make_mut(&mut state.0).trusted = trusted;
        Ok(state)
    }

    /// The same state with GraphiQL pre-filling `sample` (simulator mode: a device
    /// the embedded simulator really has) instead of a generic example.
    pub(crate) fn with_graphiql_sample(mut self, sample: &Sample) -> Self {
        let page = Arc::from(page::render(Some(sample), self.keys.auth_required()));
        Arc::make_mut(&mut self.0).graphiql_page = page;
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn schema(&self) -> &DeviceSchema {
        &self.schema
    }

    /// Persisted queries and trusted documents (tests reload the manifest through it).
    pub fn trusted_documents(&self) -> &TrustedDocuments {
        &self.trusted
    }
}

/// `[upstream]` as the client sees it.
pub fn client_config(config: &Config, target: UpstreamTarget) -> ClientConfig {
    let mut client = ClientConfig::new(target.base_url, target.credentials);
    client.timeout = config.upstream.timeout;
    client.max_attempts = config.upstream.max_attempts;
    client.retry_budget = config.upstream.retry_budget;
    client.breaker = config.upstream.circuit_breaker;
    client.abandon_after = config.upstream.abandon_after;
    client
}

/// `[cache]` and the outbound limits of `[upstream]` as the store sees them.
pub fn store_config(config: &Config) -> StoreConfig {
    let c = &config.cache;
    StoreConfig {
        ttl: c.ttl.clone(),
        max_bytes: c.max_bytes,
        stale_while_revalidate: c.stale_while_revalidate,
        stale_if_error: c.stale_if_error,
        redis_url: c.redis_url.clone(),
        rate_per_second: config.upstream.rate_per_second,
        burst: config.upstream.burst,
        max_concurrency: config.upstream.max_concurrency,
        // A shared fetch serves every request that joined it: bounded by the longest
        // any request may take.
        fetch_timeout: config.server.request_timeout,
        max_queued: config.upstream.max_queued,
        max_queue_wait: config.upstream.max_queue_wait,
        background_reserve: config.upstream.background_reserve,
        ..StoreConfig::default()
    }
}

/// `[limits]` and `[graphql]` as the schema sees them.
pub fn graphql_config(config: &Config) -> GraphqlConfig {
    GraphqlConfig {
        max_depth: config.limits.max_depth,
        max_complexity: config.limits.max_complexity,
        max_page_size: config.graphql.max_page_size,
        history_concurrency: config.graphql.history_concurrency,
        introspection: config.graphql.introspection,
        reuse_validation: config.graphql.reuse_validation,
        documents: config.limits.documents,
    }
}
