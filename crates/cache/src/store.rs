//! The typed read-through API (`Store`): one method per upstream read, each building
//! its cache keys and handing them to the engine with that resource's fetch function.
//!
//! Construction: `Store::connect` builds everything a server needs (the pacer, the
//! client behind it, the optional Redis L2 and shared budget); `Store::new` wraps a
//! client made elsewhere (its gate is the caller's business).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use devicegraph_upstream::model::{
    CampaignPage, CheckIn, DeviceDetails, FirmwareUpgrade, ProvisioningEvent,
};
use devicegraph_upstream::{
    AccountName, CampaignId, Client, ClientConfig, DeviceIdentifier, Endpoint, Imei, RequestGate,
};
use tracing::warn;

use crate::clock::{Clock, TokioClock};
use crate::config::{InvalidateScope, StoreConfig};
use crate::engine::{Engine, FetchFn};
use crate::error::CacheError;
use crate::fanout::Fanout;
use crate::fetch;
use crate::fetched::{Fetched, KeyResult};
use crate::freshness::Windows;
use crate::key::{CacheKey, Resource};
use crate::l2::L2;
use crate::pacer::Pacer;
use crate::redis_conn::RedisConn;
use crate::value::CachedValue;

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
    details: FetchFn,
    upgrades: FetchFn,
    check_ins: FetchFn,
    campaign: FetchFn,
    provisioning: FetchFn,
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
        let engine = Arc::new(Engine::new(
            config.max_bytes,
            windows,
            clock,
            l2,
            pacer.clone(),
        ));
        engine.start_upkeep(UPKEEP_EVERY);
        let fanout = redis
            .as_ref()
            .map(|conn| Fanout::start(Arc::clone(conn), &config.redis_key_prefix, &engine));
        let ttl = &config.ttl;
        let inner = Inner {
            details: fetch::device_details(client.clone(), ttl),
            upgrades: fetch::upgrade_history(client.clone(), ttl),
            check_ins: fetch::check_ins(client.clone(), ttl),
            campaign: fetch::campaign_page(client.clone(), ttl),
            provisioning: fetch::provisioning(client.clone(), ttl),
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

    /// Details for each IMEI (`None` = the account has no such device), each with its
    /// own freshness and its own error, so one failed batch does not fail cached IMEIs.
    pub async fn device_details(
        &self,
        account: &AccountName,
        imeis: &[Imei],
    ) -> HashMap<Imei, Result<Fetched<Option<Arc<DeviceDetails>>>, CacheError>> {
        if imeis.is_empty() {
            return HashMap::new();
        }
        let keys = imeis
            .iter()
            .map(|imei| CacheKey::DeviceDetails {
                account: account.clone(),
                imei: imei.clone(),
            })
            .collect();
        let answers = self
            .read(Resource::DeviceDetails, keys, &self.inner.details)
            .await;
        answers
            .into_iter()
            .filter_map(|(key, result)| {
                let CacheKey::DeviceDetails { imei, .. } = key else {
                    return None;
                };
                let typed = expect(result, Endpoint::DeviceDetails, |v| match v {
                    CachedValue::Device(d) => Some(d),
                    _ => None,
                });
                Some((imei, typed))
            })
            .collect()
    }

    pub async fn upgrade_history(
        &self,
        account: &AccountName,
        imei: &Imei,
    ) -> Result<Fetched<Arc<Vec<FirmwareUpgrade>>>, CacheError> {
        let key = CacheKey::UpgradeHistory {
            account: account.clone(),
            imei: imei.clone(),
        };
        let result = self
            .read_one(Resource::UpgradeHistory, key, &self.inner.upgrades)
            .await;
        expect(result, Endpoint::UpgradeHistory, |v| match v {
            CachedValue::Upgrades(list) => Some(list),
            _ => None,
        })
    }

    pub async fn check_ins(
        &self,
        account: &AccountName,
        imei: &Imei,
    ) -> Result<Fetched<Arc<Vec<CheckIn>>>, CacheError> {
        let key = CacheKey::CheckIns {
            account: account.clone(),
            imei: imei.clone(),
        };
        let result = self
            .read_one(Resource::CheckIns, key, &self.inner.check_ins)
            .await;
        expect(result, Endpoint::CheckInHistory, |v| match v {
            CachedValue::CheckIns(list) => Some(list),
            _ => None,
        })
    }

    /// One upstream page of a campaign report, keyed by the upstream cursor
    /// (`None` = first page).
    pub async fn campaign_page(
        &self,
        account: &AccountName,
        campaign: &CampaignId,
        last_seen: Option<&str>,
    ) -> Result<Fetched<Arc<CampaignPage>>, CacheError> {
        // "0" is how the upstream spells "from the start": one key for both.
        let cursor = last_seen
            .filter(|c| !c.is_empty() && *c != "0")
            .map(str::to_owned);
        let key = CacheKey::CampaignPage {
            account: account.clone(),
            campaign: campaign.clone(),
            cursor,
        };
        let result = self
            .read_one(Resource::CampaignDevices, key, &self.inner.campaign)
            .await;
        expect(result, Endpoint::CampaignDevices, |v| match v {
            CachedValue::CampaignPage(page) => Some(page),
            _ => None,
        })
    }

    /// All provisioning events in the window, oldest first. Cached per device and
    /// exact window: callers that want hits should round `latest` (to the minute, say).
    pub async fn provisioning_history(
        &self,
        device: &DeviceIdentifier,
        earliest: DateTime<Utc>,
        latest: DateTime<Utc>,
    ) -> Result<Fetched<Arc<Vec<ProvisioningEvent>>>, CacheError> {
        let key = CacheKey::Provisioning {
            device: device.clone(),
            earliest,
            latest,
        };
        let result = self
            .read_one(Resource::Provisioning, key, &self.inner.provisioning)
            .await;
        expect(result, Endpoint::ProvisioningHistory, |v| match v {
            CachedValue::Provisioning(list) => Some(list),
            _ => None,
        })
    }

    /// Whether reading `probe` now would be answered from this replica's memory,
    /// without a blocking upstream call. A Redis L2 copy is not looked at (that would
    /// be a network round trip per key), so the answer errs towards "not cached".
    pub fn is_cached(&self, probe: Probe<'_>) -> bool {
        self.inner.engine.servable(&probe.key()).is_some()
    }

    /// The campaign page `is_cached` would find, to follow a cached page chain.
    pub fn cached_campaign_page(
        &self,
        account: &AccountName,
        campaign: &CampaignId,
        last_seen: Option<&str>,
    ) -> Option<Arc<CampaignPage>> {
        let key = Probe::CampaignPage(account, campaign, last_seen).key();
        match &self.inner.engine.servable(&key)?.value {
            CachedValue::CampaignPage(page) => Some(Arc::clone(page)),
            _ => None,
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

    async fn read(
        &self,
        resource: Resource,
        keys: Vec<CacheKey>,
        fetch: &FetchFn,
    ) -> HashMap<CacheKey, KeyResult> {
        self.inner
            .engine
            .read(resource, keys, Arc::clone(fetch))
            .await
    }

    async fn read_one(&self, resource: Resource, key: CacheKey, fetch: &FetchFn) -> KeyResult {
        let mut answers = self.read(resource, vec![key.clone()], fetch).await;
        answers.remove(&key).unwrap_or(Err(CacheError::Internal {
            reason: "no answer for the key asked",
        }))
    }
}

/// Narrows a cached value to the type the caller expects; a remembered "not found"
/// becomes the upstream's error again.
fn expect<T>(
    result: KeyResult,
    endpoint: Endpoint,
    narrow: impl FnOnce(CachedValue) -> Option<T>,
) -> Result<Fetched<T>, CacheError> {
    let fetched = result?;
    let freshness = fetched.freshness;
    match fetched.value {
        CachedValue::Absent(nf) => Err(CacheError::Upstream(nf.to_error(endpoint))),
        other => match narrow(other) {
            Some(value) => Ok(Fetched { value, freshness }),
            None => Err(CacheError::Internal {
                reason: "cached value of the wrong kind",
            }),
        },
    }
}

/// One cache entry, named by what it holds (see [`Store::is_cached`]).
#[derive(Debug, Clone, Copy)]
pub enum Probe<'a> {
    Details(&'a AccountName, &'a Imei),
    UpgradeHistory(&'a AccountName, &'a Imei),
    CheckIns(&'a AccountName, &'a Imei),
    /// A campaign report page by upstream cursor (`None` = the first page).
    CampaignPage(&'a AccountName, &'a CampaignId, Option<&'a str>),
    Provisioning(&'a DeviceIdentifier, DateTime<Utc>, DateTime<Utc>),
}

impl Probe<'_> {
    fn key(self) -> CacheKey {
        match self {
            Self::Details(account, imei) => CacheKey::DeviceDetails {
                account: account.clone(),
                imei: imei.clone(),
            },
            Self::UpgradeHistory(account, imei) => CacheKey::UpgradeHistory {
                account: account.clone(),
                imei: imei.clone(),
            },
            Self::CheckIns(account, imei) => CacheKey::CheckIns {
                account: account.clone(),
                imei: imei.clone(),
            },
            // As `Store::campaign_page` spells the first page.
            Self::CampaignPage(account, campaign, cursor) => CacheKey::CampaignPage {
                account: account.clone(),
                campaign: campaign.clone(),
                cursor: cursor
                    .filter(|c| !c.is_empty() && *c != "0")
                    .map(str::to_owned),
            },
            Self::Provisioning(device, earliest, latest) => CacheKey::Provisioning {
                device: device.clone(),
                earliest,
                latest,
            },
        }
    }
}
