//! What the engine needs to know about one kind of upstream answer: the [`Resource`]
//! trait (and [`ResourceKey`], what its keys say about who owns them), implemented once per ThingSpace read in `resources/` (one small file each).
//!
//! Everything else (L1, freshness, coalescing, the L2 copy, invalidation across
//! replicas, metrics) is written once, in the engine, generic over `R: Resource`, so
//! a read's value type is known at compile time: `Store::get::<Details>` answers
//! `Option<Arc<DeviceDetails>>`, and asking for a resource with another resource's key does
//! not compile.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use devicegraph_upstream::{
    AccountName, CampaignId, Client, DeviceIdKind, DeviceIdentifier, Endpoint, Imei, UpstreamError,
};
use futures::future::{BoxFuture, join_all};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::scope::InvalidateScope;
use crate::weigh::HeapSize;

/// One upstream answer per key, as fetched (before "not found" handling and TTLs).
pub type Fetches<R> = Vec<(
    <R as Resource>::Key,
    Result<<R as Resource>::Value, UpstreamError>,
)>;

/// One kind of cached upstream answer.
pub trait Resource: Send + Sync + 'static {
    /// What names one answer (an account's device, a campaign page, a window).
    type Key: ResourceKey;
    /// The answer, cheap to clone (shared behind `Arc`), serialisable for the L2,
    /// weighed for the byte-bounded L1.
    type Value: Clone + Debug + Send + Sync + Serialize + DeserializeOwned + HeapSize + 'static;

    /// Its names, endpoint and default TTL.
    const INFO: Info;

    /// How long a fetched value stays fresh: the configured TTL of the resource.
    fn ttl(_value: &Self::Value, ttls: &Ttls) -> Duration {
        ttls.of::<Self>()
    }

    /// Asks the upstream for `keys` (all of this resource, possibly of several
    /// accounts). Should answer every key; one it leaves out is reported unavailable.
    fn fetch(client: &Client, keys: Vec<Self::Key>) -> BoxFuture<'static, Fetches<Self>>;
}

/// Time-to-live per resource (`[cache.ttl]`, one key per resource's name), and how
/// long a "not found" answer is remembered. A resource not configured keeps its
/// `Info::default_ttl`; the by-name API (`get`, `set`, `names`) lives with the list
/// of resources (`resources`).
#[derive(Debug, Clone)]
pub struct Ttls {
    configured: BTreeMap<&'static str, Duration>,
    /// How long "no such device" (or any answer whose code ends in `NotFound`: an
    /// unknown account or campaign) is remembered.
    pub not_found: Duration,
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            configured: BTreeMap::new(),
            not_found: Duration::from_secs(30),
        }
    }
}

impl Ttls {
    /// The TTL of resource `R`.
    pub fn of<R: Resource + ?Sized>(&self) -> Duration {
        self.configured(R::INFO.name).unwrap_or(R::INFO.default_ttl)
    }

    pub(crate) fn configured(&self, name: &str) -> Option<Duration> {
        self.configured.get(name).copied()
    }

    pub(crate) fn configure(&mut self, name: &'static str, ttl: Duration) {
        self.configured.insert(name, ttl);
    }
}

/// What the engine, the configuration and metrics know of a resource by name.
#[derive(Debug, Clone, Copy)]
pub struct Info {
    /// Metrics and logs label, e.g. `device_details`; also its `[cache.ttl]` key.
    pub name: &'static str,
    /// Two characters, unique among resources: the entry's tag in Redis keys.
    pub tag: &'static str,
    /// The upstream endpoint that answers it (for pauses and error messages).
    pub endpoint: Endpoint,
    /// Its TTL unless `[cache.ttl]` sets one.
    pub default_ttl: Duration,
}

impl Info {
    pub const fn new(
        name: &'static str,
        tag: &'static str,
        endpoint: Endpoint,
        ttl_secs: u64,
    ) -> Self {
        Self {
            name,
            tag,
            endpoint,
            default_ttl: Duration::from_secs(ttl_secs),
        }
    }
}

/// A resource's key: who owns the entry (what invalidation scopes reach it, where
/// its L2 copy lives) and what tells the entries of one owner apart.
pub trait ResourceKey: Clone + Eq + Hash + Debug + Send + Sync + 'static {
    /// The kind of [`Owner`] these keys have (to list Redis keys for a scope).
    const OWNED_BY: OwnedBy;

    fn owner(&self) -> Owner<'_>;

    /// What tells entries of one owner apart (a page cursor, a window), as it appears
    /// at the end of the Redis key; `None` when the owner is enough.
    fn part(&self) -> Option<Cow<'_, str>> {
        None
    }

    /// Heap bytes the key owns beyond its owner's identifiers (the part).
    fn part_heap(&self) -> usize {
        0
    }
}

/// The key of per-device resources: an account's device.
impl ResourceKey for (AccountName, Imei) {
    const OWNED_BY: OwnedBy = OwnedBy::Device;

    fn owner(&self) -> Owner<'_> {
        Owner::Device {
            account: &self.0,
            imei: &self.1,
        }
    }
}

/// Who an entry belongs to: what invalidation scopes reach it, and where in Redis
/// its L2 copy lives (`a:{account}:{tag}[:{imei | campaign}][:{part}]` or
/// `d:{kind}:{id}:{tag}[:{part}]`, see `key`).
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// One device of an account (details, histories).
    Device {
        account: &'a AccountName,
        imei: &'a Imei,
    },
    /// One campaign of an account (report pages).
    Campaign {
        account: &'a AccountName,
        campaign: &'a CampaignId,
    },
    /// A device named without an account (provisioning history).
    Identifier { device: &'a DeviceIdentifier },
    /// A whole account (the pages of its device list).
    Account { account: &'a AccountName },
}

/// The kinds of [`Owner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnedBy {
    Device,
    Campaign,
    Identifier,
    Account,
}

impl Owner<'_> {
    /// Whether an invalidation of `scope` drops the entry. A whole-account scope
    /// reaches every account-owned entry; a device scope reaches that device's
    /// entries, including those named by its IMEI without an account; a campaign
    /// scope, that campaign's pages. An account's own entries (its device list) only
    /// the whole-account scope: a device's details are read from that device's
    /// entries, which its scope reaches, not from the list.
    pub(crate) fn in_scope(self, scope: &InvalidateScope) -> bool {
        let whole = scope.imei.is_none() && scope.campaign.is_none();
        match self {
            Self::Device { account, imei } => {
                *account == scope.account && (whole || scope.imei.as_ref() == Some(imei))
            }
            Self::Campaign { account, campaign } => {
                *account == scope.account && (whole || scope.campaign.as_ref() == Some(campaign))
            }
            Self::Identifier { device } => scope.imei.as_ref().is_some_and(|want| {
                device.kind() == DeviceIdKind::Imei && device.id() == want.as_str()
            }),
            Self::Account { account } => *account == scope.account && whole,
        }
    }

    /// Heap bytes of the owner's identifiers (newtypes keep exactly their text).
    pub(crate) fn heap(self) -> usize {
        use crate::weigh::alloc;
        match self {
            Self::Device { account, imei } => {
                alloc(account.as_str().len()) + alloc(imei.as_str().len())
            }
            Self::Campaign { account, campaign } => {
                alloc(account.as_str().len()) + alloc(campaign.as_str().len())
            }
            Self::Identifier { device } => alloc(device.id().len()),
            Self::Account { account } => alloc(account.as_str().len()),
        }
    }
}

/// What the cache keeps for a key: the value, or a remembered "not found".
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) enum Cached<V> {
    Found(V),
    /// A documented "not found" error answer (a code ending in `NotFound`), remembered for
    /// `ttl.not_found` so a typo is not asked upstream again on every request.
    Absent(Arc<NotFound>),
}

/// The parts of an upstream "not found" error worth replaying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub(crate) struct NotFound {
    pub(crate) status: u16,
    pub(crate) error_code: String,
    pub(crate) error_message: String,
}

impl NotFound {
    /// `Some` for errors that say the thing does not exist
    /// ([`UpstreamError::is_not_found`]: a code ending in `NotFound`).
    pub(crate) fn from_error(error: &UpstreamError) -> Option<Self> {
        match error {
            UpstreamError::Api {
                status,
                error_code,
                error_message,
                ..
            } if error.is_not_found() => Some(Self {
                status: *status,
                error_code: error_code.clone(),
                error_message: error_message.clone(),
            }),
            _ => None,
        }
    }

    pub(crate) fn to_error(&self, endpoint: Endpoint) -> UpstreamError {
        UpstreamError::Api {
            endpoint,
            status: self.status,
            error_code: self.error_code.clone(),
            error_message: self.error_message.clone(),
        }
    }
}

/// Runs `call` for each key at once (the pacer spaces the requests): for resources
/// the upstream answers one key per request.
pub(crate) fn per_key<R, F, Fut>(
    client: &Client,
    keys: Vec<R::Key>,
    call: F,
) -> BoxFuture<'static, Fetches<R>>
where
    R: Resource,
    F: Fn(Client, R::Key) -> Fut,
    Fut: Future<Output = Result<R::Value, UpstreamError>> + Send + 'static,
{
    let calls: Vec<_> = keys
        .into_iter()
        .map(|key| {
            let fut = call(client.clone(), key.clone());
            async move { (key, fut.await) }
        })
        .collect();
    Box::pin(join_all(calls))
}
