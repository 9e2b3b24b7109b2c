//! Per-request state: the caller's account scope, the details DataLoader, the bound on
//! concurrent per-device history fetches, per-request memos, and the record of where
//! answers came from (stale paths, whether anything was fetched upstream, what each
//! device's details read answered and which parts the operation loads per device,
//! for `Device.freshness`).
//!
//! One `RequestState` is created by [`crate::execute`] for every operation and put in
//! the request's data; resolvers reach the store only through it, so batching,
//! bounding and freshness accounting live in one place.

use std::any::{Any, TypeId};
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::Context;
use async_graphql::dataloader::{DataLoader, HashMapCache};
use devicegraph_cache::resources::{
    AccountPageKey, AccountPages, CampaignPageKey, CampaignPages, Details,
};
use devicegraph_cache::{CacheError, Fetched, Freshness, Resource, Stamp, Store};
use devicegraph_upstream::model::{AccountDevicesPage, CampaignPage};
use devicegraph_upstream::{AccountName, CampaignId, Imei, Protocol};
use tokio::sync::{OnceCell, Semaphore};

use crate::deps::Dependencies;
use crate::error::{forbidden_account, from_cache, internal};
use crate::loader::{DetailsLoader, DetailsResult, DeviceKey};
use crate::wants::Wants;
use crate::{AccountScope, CacheStatus};

/// One store read of resource `R`, as a memo keeps it.
type Read<R> = Result<Fetched<<R as Resource>::Value>, CacheError>;

/// Memoises one async computation per key for the life of a request, so two fields
/// (or two aliases) that need the same upstream resource share one fetch.
pub(crate) struct Memo<K, V> {
    cells: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    fn new() -> Self {
        Self {
            cells: Mutex::new(HashMap::new()),
        }
    }

    async fn get_or_init<F, Fut>(&self, key: K, init: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        // The std lock is held only to find the cell, never across an await.
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(cells.entry(key).or_default())
        };
        cell.get_or_init(init).await.clone()
    }
}

/// Everything one GraphQL operation shares.
pub(crate) struct RequestState {
    store: Store,
    scope: AccountScope,
    max_page_size: usize,
    details: DataLoader<DetailsLoader, HashMapCache>,
    /// An optional per-operation bound on per-device history fetches (upgrade
    /// history, check-ins, provisioning); `None` (the default): the shared budget,
    /// `upstream.max_concurrency` and the pacer's per-tenant queues bound them, and
    /// the cost estimate bounds how many one operation may make.
    history_permits: Option<Semaphore>,
    /// One memo per resource type read by this operation (`Memo<R::Key, Read<R>>`).
    memos: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    /// The cache entries the answer is built from (for the response cache).
    dependencies: Mutex<Dependencies>,
    /// Set by a stale or failed read, or by a field true only at the moment it is
    /// answered (`ageSeconds`): the answer is not one to store.
    uncacheable: AtomicBool,
    /// Set by the plan extension when the document selects `freshness`: only then
    /// are `details_reads` and `parts` kept (a key clone and a map insert per
    /// device, which a 500-device dashboard without freshness need not pay).
    tracks_freshness: AtomicBool,
    /// What each device's details read answered (without the details), for
    /// `Device.freshness.details`.
    details_reads: Mutex<HashMap<DeviceKey, Fetched<()>>>,
    /// Which histories the operation's selections of each device read, for
    /// `Device.freshness` (recorded by `device::prefetch_histories`).
    parts: Mutex<HashMap<DeviceKey, Wants>>,
    stale: Mutex<BTreeSet<String>>,
    fetched_upstream: AtomicBool,
    /// Set by the plan extension when the operation has exactly one field that loads
    /// device details, so that load skips the DataLoader's gathering window.
    single_detail_field: AtomicBool,
}

impl RequestState {
    pub(crate) fn new(
        store: Store,
        scope: AccountScope,
        max_page_size: usize,
        history_concurrency: usize,
    ) -> Self {
        let loader = DetailsLoader::new(store.clone());
        let details = DataLoader::with_cache(loader, spawn_in_scope, HashMapCache::default())
            // One batch per operation: the store and client split per account and into
            // upstream requests of at most 1,000 IMEIs themselves.
            .max_batch_size(usize::MAX);
        Self {
            store,
            scope,
            max_page_size,
            details,
            history_permits: (history_concurrency > 0).then(|| Semaphore::new(history_concurrency)),
            memos: Mutex::new(HashMap::new()),
            dependencies: Mutex::new(Dependencies::default()),
            uncacheable: AtomicBool::new(false),
            tracks_freshness: AtomicBool::new(false),
            details_reads: Mutex::new(HashMap::new()),
            parts: Mutex::new(HashMap::new()),
            stale: Mutex::new(BTreeSet::new()),
            fetched_upstream: AtomicBool::new(false),
            single_detail_field: AtomicBool::new(false),
        }
    }

    /// The state of the request `ctx` belongs to.
    pub(crate) fn of<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a RequestState> {
        ctx.data::<Arc<RequestState>>()
            .map(|s| s.as_ref())
            .map_err(|_| internal("request executed without devicegraph_graphql::execute"))
    }

    pub(crate) fn max_page_size(&self) -> usize {
        self.max_page_size
    }

    /// FORBIDDEN unless the caller may read `account`.
    pub(crate) fn check_account(&self, account: &AccountName) -> async_graphql::Result<()> {
        match &self.scope {
            AccountScope::All => Ok(()),
            AccountScope::Only(set) if set.contains(account) => Ok(()),
            AccountScope::Only(_) => Err(forbidden_account(account)),
        }
    }

    /// FORBIDDEN unless the caller may read every account (needed where the upstream
    /// call is not tied to one account, e.g. provisioning history by identifier).
    pub(crate) fn check_all_accounts(&self) -> async_graphql::Result<()> {
        match &self.scope {
            AccountScope::All => Ok(()),
            AccountScope::Only(_) => Err(crate::error::coded(
                crate::Code::Forbidden,
                "provisioning history by identifier needs access to all accounts",
            )),
        }
    }

    /// Records where an answer used at `path` came from.
    pub(crate) fn note_at(&self, freshness: Freshness, path: impl FnOnce() -> String) {
        match freshness {
            Freshness::Hit => {}
            Freshness::Miss => self.fetched_upstream.store(true, Ordering::Relaxed),
            Freshness::Stale => {
                self.stale
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(path());
            }
        }
    }

    /// Records freshness at the current field's response path.
    pub(crate) fn note(&self, ctx: &Context<'_>, freshness: Freshness) {
        self.note_at(freshness, || path_of(ctx));
    }

    /// The summary of the whole response and the stale paths, sorted.
    pub(crate) fn summary(&self) -> (CacheStatus, Vec<String>) {
        let stale: Vec<String> = self
            .stale
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        let status = if !stale.is_empty() {
            CacheStatus::Stale
        } else if self.fetched_upstream.load(Ordering::Relaxed) {
            CacheStatus::Miss
        } else {
            CacheStatus::Hit
        };
        (status, stale)
    }

    pub(crate) fn set_single_detail_field(&self, single: bool) {
        self.single_detail_field.store(single, Ordering::Relaxed);
    }

    /// Details of one device, batched with every other load of this operation.
    pub(crate) async fn device_details(&self, key: DeviceKey) -> DetailsResult {
        let result = if self.single_detail_field.load(Ordering::Relaxed) {
            // Nothing to batch with: ask the store now.
            self.store.get::<Details>(key.clone()).await
        } else {
            match self.details.load_one(key.clone()).await {
                Ok(Some(v)) => v,
                // The store answers for every key it is asked; a missing key can only
                // mean "no such device".
                Ok(None) => Ok(Fetched {
                    value: None,
                    freshness: Freshness::Hit,
                    version: 0,
                    stamp: Stamp::default(),
                }),
                Err(never) => match never {},
            }
        };
        self.record::<Details>(&key, &result);
        self.note_details_read(&key, &result);
        result
    }

    /// Details of many devices in one batch.
    pub(crate) async fn device_details_many(
        &self,
        keys: Vec<DeviceKey>,
    ) -> HashMap<DeviceKey, DetailsResult> {
        let found = match self.details.load_many(keys).await {
            Ok(map) => map,
            Err(never) => match never {},
        };
        for (key, result) in &found {
            self.record::<Details>(key, result);
            self.note_details_read(key, result);
        }
        found
    }

    pub(crate) fn set_tracks_freshness(&self, tracks: bool) {
        self.tracks_freshness.store(tracks, Ordering::Relaxed);
    }

    fn tracks_freshness(&self) -> bool {
        self.tracks_freshness.load(Ordering::Relaxed)
    }

    fn note_details_read(&self, key: &DeviceKey, result: &DetailsResult) {
        if !self.tracks_freshness() {
            return;
        }
        if let Ok(fetched) = result {
            self.details_reads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key.clone(), fetched.meta());
        }
    }

    /// What this operation's read of `key`'s details answered, if it read them.
    pub(crate) fn details_read(&self, key: &DeviceKey) -> Option<Fetched<()>> {
        self.details_reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Records that a selection of the devices `keys` reads the histories `wants`.
    pub(crate) fn select_parts(&self, keys: &[DeviceKey], wants: Wants) {
        if !self.tracks_freshness() {
            return;
        }
        let mut parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            let entry = parts.entry(key.clone()).or_default();
            *entry = entry.union(wants);
        }
    }

    /// What the operation's read of the history `R` of `key` answered, when some
    /// selection of the device reads it (`selects`); `None` when none does, or when
    /// the read failed. Never starts a read the operation would not make: a selected
    /// part is read by its own field (usually already, by the read-ahead), and this
    /// shares that read through the memo.
    pub(crate) async fn selected_read<R>(
        &self,
        key: &DeviceKey,
        selects: impl FnOnce(Wants) -> bool,
    ) -> Option<Fetched<()>>
    where
        R: Resource<Key = DeviceKey>,
    {
        let wants = self
            .parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()?;
        if !selects(wants) {
            return None;
        }
        self.read::<R>(key.clone())
            .await
            .ok()
            .map(|fetched| fetched.meta())
    }

    /// Keeps this answer out of the response cache: it holds something true only
    /// at the moment it is built.
    pub(crate) fn keep_out_of_response_cache(&self) {
        self.uncacheable.store(true, Ordering::Relaxed);
    }

    /// One per-device read (upgrade history, check-ins, provisioning events) for the
    /// field being resolved: shared by every field of this operation that asks for
    /// the same key (one store read per key and operation), its freshness noted at
    /// the field's path.
    pub(crate) async fn history<R: Resource>(
        &self,
        ctx: &Context<'_>,
        key: R::Key,
    ) -> async_graphql::Result<R::Value> {
        let fetched = self.read::<R>(key).await.map_err(|e| from_cache(&e))?;
        self.note(ctx, fetched.freshness);
        Ok(fetched.value)
    }

    /// Starts (and waits for) the read of `key` that a field below will ask for, so
    /// it runs alongside the read the current field needs instead of after it; the
    /// field's own [`RequestState::history`] then finds it in the memo. Its
    /// freshness is noted there, at the field's path, not here.
    pub(crate) async fn prefetch<R: Resource>(&self, key: R::Key) {
        let _ = self.read::<R>(key).await;
    }

    /// One store read of `key` per operation (the memo), within the optional
    /// per-operation bound.
    async fn read<R: Resource>(&self, key: R::Key) -> Read<R> {
        self.memo::<R>()
            .get_or_init(key.clone(), || async {
                let _permit = match &self.history_permits {
                    Some(permits) => permits.acquire().await.ok(),
                    None => None,
                };
                let result = self.store.get::<R>(key.clone()).await;
                self.record::<R>(&key, &result);
                result
            })
            .await
    }

    /// Notes that the answer uses `key`'s cache entry as `result` read it (see
    /// `deps`). A stale or failed read makes the answer one not to store.
    fn record<R: Resource>(&self, key: &R::Key, result: &Read<R>) {
        match result {
            Ok(fetched) if fetched.freshness != Freshness::Stale && fetched.version != 0 => {
                self.dependencies
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push::<R>(key.clone(), fetched.version);
            }
            _ => self.uncacheable.store(true, Ordering::Relaxed),
        }
    }

    /// What the answer was built from, unless a read was stale or failed.
    pub(crate) fn dependencies(&self) -> Option<Dependencies> {
        if self.uncacheable.load(Ordering::Relaxed) {
            return None;
        }
        let mut deps = self
            .dependencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Some(std::mem::take(&mut *deps))
    }

    /// Whether the cache already says the account has no such device (then nothing
    /// about it is worth reading ahead).
    pub(crate) fn known_absent(&self, key: &DeviceKey) -> bool {
        matches!(self.store.peek::<Details>(key), Some(None))
    }

    /// One upstream campaign page (`None` = the first), shared by the operation.
    pub(crate) async fn campaign_page(
        &self,
        account: &AccountName,
        campaign: &CampaignId,
        last_seen: Option<&str>,
    ) -> async_graphql::Result<Fetched<Arc<CampaignPage>>> {
        let key = CampaignPageKey::new(account, campaign, last_seen);
        self.memo::<CampaignPages>()
            .get_or_init(key.clone(), || async {
                let result = self.store.get::<CampaignPages>(key.clone()).await;
                self.record::<CampaignPages>(&key, &result);
                result
            })
            .await
            .map_err(|e| from_cache(&e))
    }

    /// Whether reading that campaign page now costs no upstream call (it is in this
    /// replica's memory), for walks that bound their uncached pages.
    pub(crate) fn campaign_page_cached(
        &self,
        account: &AccountName,
        campaign: &CampaignId,
        last_seen: Option<&str>,
    ) -> bool {
        self.store
            .is_cached::<CampaignPages>(&CampaignPageKey::new(account, campaign, last_seen))
    }

    /// One upstream page of an account's device list (`None` = the first), of
    /// `protocol`'s devices only when given, shared by the operation; with its key.
    pub(crate) async fn account_page(
        &self,
        account: &AccountName,
        protocol: Option<&Protocol>,
        last_seen: Option<&str>,
    ) -> async_graphql::Result<(AccountPageKey, Fetched<Arc<AccountDevicesPage>>)> {
        let key = AccountPageKey::new(account, protocol, last_seen);
        let fetched = self
            .memo::<AccountPages>()
            .get_or_init(key.clone(), || async {
                let result = self.store.get::<AccountPages>(key.clone()).await;
                self.record::<AccountPages>(&key, &result);
                result
            })
            .await
            .map_err(|e| from_cache(&e))?;
        Ok((key, fetched))
    }

    /// When `page` (of `key`) was read from the upstream for this request, hands the
    /// details it carries for each of its devices to their `Details` entries, those
    /// not cached fresh already (`Store::get_many_known`), while the page's entry
    /// is still the one read: reading those devices' details then costs no upstream
    /// call. A page from the cache hands nothing (its copies may be older than the
    /// entries they would replace). Not recorded as read: whoever reads a device's
    /// details does that through [`RequestState::device_details_many`].
    pub(crate) async fn fill_details(
        &self,
        key: &AccountPageKey,
        page: &Fetched<Arc<AccountDevicesPage>>,
    ) {
        if page.freshness != Freshness::Miss {
            return;
        }
        let known: HashMap<DeviceKey, Option<Arc<_>>> = page
            .value
            .devices
            .iter()
            .filter_map(|d| {
                let imei: Imei = d.device_id.trim().parse().ok()?;
                Some(((key.account().clone(), imei), Some(Arc::new(d.clone()))))
            })
            .collect();
        let keys = known.keys().cloned().collect();
        let (store, page_key, version) = (self.store.clone(), key.clone(), page.version);
        let current = move || {
            store
                .current::<AccountPages>(&page_key)
                .is_some_and(|(v, _)| v == version)
        };
        self.store
            .get_many_known::<Details>(keys, known, current)
            .await;
    }

    /// This operation's memo of resource `R`.
    fn memo<R: Resource>(&self) -> Arc<Memo<R::Key, Read<R>>> {
        let mut memos = self.memos.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = memos
            .entry(TypeId::of::<R>())
            .or_insert_with(|| Arc::new(Memo::<R::Key, Read<R>>::new()));
        // The slot of `TypeId::of::<R>()` only ever holds a memo of `R`.
        Arc::clone(slot)
            .downcast::<Memo<R::Key, Read<R>>>()
            .unwrap_or_else(|_| Arc::new(Memo::new()))
    }
}

/// The DataLoader's spawner. Batches run on spawned tasks, which lose the
/// task-locals; the DataLoader calls its spawner from `load_one`/`load_many`, that is,
/// on the request's own task while it executes the operation, so
/// [`devicegraph_upstream::in_current_scope`] captures the request's scope there: the
/// request id (so X-Request-ID still reaches the upstream), the call meter (so the
/// calls are counted for this request) and the tenant (so the pacer queues them in
/// this caller's turn), and the caller's deadline (so its reads stop waiting then).
fn spawn_in_scope(fut: futures::future::BoxFuture<'static, ()>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(in_request_scope(fut))
}

/// `fut` with the current request's scope: the upstream crate's (request id, call
/// meter, tenant, background mark) and the cache's deadline.
pub(crate) fn in_request_scope<F: std::future::Future>(
    fut: F,
) -> impl std::future::Future<Output = F::Output> {
    let deadline = devicegraph_cache::current_deadline();
    devicegraph_upstream::in_current_scope(async move {
        match deadline {
            Some(deadline) => devicegraph_cache::with_deadline(deadline, fut).await,
            None => fut.await,
        }
    })
}

/// The response path of the field being resolved, e.g. `devices.1` or
/// `device.upgradeHistory` (aliases, not field names).
pub(crate) fn path_of(ctx: &Context<'_>) -> String {
    ctx.path_node.map(|p| p.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use devicegraph_cache::StoreConfig;
    use devicegraph_upstream::{Client, ClientConfig, Credentials};

    fn state() -> RequestState {
        let url = "http://127.0.0.1:9/api"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let creds = Credentials {
            client_id: "c".into(),
            client_secret: "s".to_owned().into(),
            username: "u".into(),
            password: "p".to_owned().into(),
        };
        let client = Client::new(ClientConfig::new(url, creds)).unwrap_or_else(|e| panic!("{e}"));
        RequestState::new(
            Store::new(client, StoreConfig::default()),
            AccountScope::All,
            1000,
            4,
        )
    }

    /// Answers each key with the request id, tenant and meter its batch ran under.
    struct ScopeProbe;

    impl async_graphql::dataloader::Loader<u8> for ScopeProbe {
        type Value = (Option<String>, Option<Arc<str>>);
        type Error = std::convert::Infallible;

        async fn load(&self, keys: &[u8]) -> Result<HashMap<u8, Self::Value>, Self::Error> {
            let seen = (
                devicegraph_upstream::current_request_id(),
                devicegraph_upstream::current_tenant(),
            );
            Ok(keys.iter().map(|k| (*k, seen.clone())).collect())
        }
    }

    /// The DataLoader calls its spawner on the task that loads (the request's), so
    /// the batch task runs in the request's scope; a bare `tokio::spawn` loses it.
    #[tokio::test]
    async fn dataloader_batches_run_in_the_request_scope() {
        let load = |loader: DataLoader<ScopeProbe>| async move {
            devicegraph_upstream::with_request_id(
                "req-9".into(),
                devicegraph_upstream::with_tenant(Arc::from("key:a"), async move {
                    loader.load_many([1, 2]).await
                }),
            )
            .await
            .unwrap_or_else(|never| match never {})
        };
        let got = load(DataLoader::new(ScopeProbe, spawn_in_scope)).await;
        let expected = (Some("req-9".to_owned()), Some(Arc::from("key:a")));
        assert_eq!(got.get(&1), Some(&expected));
        assert_eq!(got.get(&2), Some(&expected));

        let bare = load(DataLoader::new(ScopeProbe, tokio::spawn)).await;
        assert_eq!(bare.get(&1), Some(&(None, None)), "the probe can tell");
    }

    #[tokio::test]
    async fn summary_follows_the_worst_freshness() {
        let s = state();
        assert_eq!(s.summary(), (CacheStatus::Hit, vec![]));
        s.note_at(Freshness::Hit, || "device".into());
        assert_eq!(s.summary(), (CacheStatus::Hit, vec![]));
        s.note_at(Freshness::Miss, || "device".into());
        assert_eq!(s.summary(), (CacheStatus::Miss, vec![]));
        s.note_at(Freshness::Stale, || "devices.1".into());
        s.note_at(Freshness::Stale, || "device.upgradeHistory".into());
        s.note_at(Freshness::Stale, || "devices.1".into());
        assert_eq!(
            s.summary(),
            (
                CacheStatus::Stale,
                vec!["device.upgradeHistory".to_owned(), "devices.1".to_owned()]
            )
        );
    }

    #[tokio::test]
    async fn scope_limits_accounts() {
        let mut s = state();
        let a: AccountName = "0000123456-00001".parse().unwrap_or_else(|e| panic!("{e}"));
        let b: AccountName = "0000123456-00002".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(s.check_account(&a).is_ok());
        assert!(s.check_all_accounts().is_ok());
        s.scope = AccountScope::Only([a.clone()].into_iter().collect());
        assert!(s.check_account(&a).is_ok());
        assert!(s.check_account(&b).is_err());
        assert!(s.check_all_accounts().is_err());
    }

    #[tokio::test]
    async fn memo_runs_each_key_once() {
        let memo: Memo<u8, u32> = Memo::new();
        let calls = std::sync::atomic::AtomicU32::new(0);
        let calls = &calls;
        let run = |k| {
            memo.get_or_init(k, move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                u32::from(k) * 10
            })
        };
        let (x, y, z) = tokio::join!(run(1), run(1), run(2));
        assert_eq!((x, y, z), (10, 10, 20));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
