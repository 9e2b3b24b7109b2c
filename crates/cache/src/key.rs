//! Cache keys as the engine holds them: [`AnyKey`], a resource's own key together
//! with the resource it belongs to, so that one L1 (one byte budget), one in-flight
//! map and one invalidation walk serve every resource, while two resources' keys can
//! never be equal (their resource types differ). The same key renders the Redis key
//! of the entry's L2 copy, under a versioned prefix so a change of value format never
//! reads old entries.

use std::any::{Any, TypeId};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use equivalent::Equivalent;

use chrono::SecondsFormat;

use crate::resource::{Owner, Resource, ResourceKey};
use crate::scope::InvalidateScope;

/// Bump when the L2 value format changes so that one release would misread the
/// other's records; old entries are then simply never read. An added optional field
/// needs no bump (see `l2`). (v2: values are stored per resource type, not as one
/// enum of all of them; v2 records gained `fetched_ms` without a bump.)
pub(crate) const L2_FORMAT: &str = "v2";

/// One entry's key: which resource, and that resource's key.
#[derive(Clone)]
pub(crate) struct AnyKey(Arc<dyn DynKey>);

impl AnyKey {
    pub(crate) fn new<R: Resource>(key: R::Key) -> Self {
        Self(Arc::new(Keyed::<R>(key)))
    }

    /// The resource's own key, when this key is one of `R`'s.
    pub(crate) fn get<R: Resource>(&self) -> Option<&R::Key> {
        self.0
            .as_any()
            .downcast_ref::<Keyed<R>>()
            .map(|keyed| &keyed.0)
    }

    pub(crate) fn in_scope(&self, scope: &InvalidateScope) -> bool {
        self.0.in_scope(scope)
    }

    /// The Redis key of this entry's L2 copy.
    pub(crate) fn redis_key(&self, prefix: &str) -> String {
        self.0.redis_key(prefix)
    }

    /// Heap bytes the key owns.
    pub(crate) fn heap(&self) -> usize {
        self.0.heap()
    }
}

impl PartialEq for AnyKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.dyn_eq(other.0.as_any())
    }
}

impl Eq for AnyKey {}

impl Hash for AnyKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.dyn_hash(state);
    }
}

impl fmt::Debug for AnyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.dyn_fmt(f)
    }
}

/// What the engine asks of a key without knowing its resource.
trait DynKey: Send + Sync + 'static {
    fn as_any(&self) -> &dyn Any;
    fn dyn_eq(&self, other: &dyn Any) -> bool;
    fn dyn_hash(&self, state: &mut dyn Hasher);
    fn dyn_fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    fn in_scope(&self, scope: &InvalidateScope) -> bool;
    fn redis_key(&self, prefix: &str) -> String;
    fn heap(&self) -> usize;
}

/// A resource's own key, as stored in an [`AnyKey`].
struct Keyed<R: Resource>(R::Key);

/// A borrowed resource key as an L1 lookup: it hashes like the `AnyKey` holding an
/// equal key and is [`Equivalent`] to it, so the L1 can be asked without building an
/// `AnyKey` (no clone, no allocation on the hit path).
pub(crate) struct KeyRef<'a, R: Resource>(pub(crate) &'a R::Key);

impl<R: Resource> Hash for KeyRef<'_, R> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The same writes as `DynKey::dyn_hash`, so the same hash.
        TypeId::of::<R>().hash(state);
        self.0.hash(state);
    }
}

impl<R: Resource> Equivalent<AnyKey> for KeyRef<'_, R> {
    fn equivalent(&self, key: &AnyKey) -> bool {
        key.get::<R>() == Some(self.0)
    }
}

impl<R: Resource> DynKey for Keyed<R> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn dyn_eq(&self, other: &dyn Any) -> bool {
        other
            .downcast_ref::<Self>()
            .is_some_and(|other| other.0 == self.0)
    }

    fn dyn_hash(&self, mut state: &mut dyn Hasher) {
        TypeId::of::<R>().hash(&mut state);
        self.0.hash(&mut state);
    }

    fn dyn_fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{:?}", R::INFO.name, self.0)
    }

    fn in_scope(&self, scope: &InvalidateScope) -> bool {
        self.0.owner().in_scope(scope)
    }

    fn redis_key(&self, prefix: &str) -> String {
        redis_key::<R>(&self.0, prefix)
    }

    fn heap(&self) -> usize {
        self.0.owner().heap() + self.0.part_heap()
    }
}

/// Account-owned entries live under `{prefix}:v2:a:{account}:` and device-named ones
/// under `{prefix}:v2:d:`, so an invalidation finds them with one `SCAN MATCH`
/// pattern each (identifiers are restricted to `[A-Za-z0-9_-]`, so they never contain
/// glob characters).
fn redis_key<R: Resource>(key: &R::Key, prefix: &str) -> String {
    let tag = R::INFO.tag;
    let mut out = match key.owner() {
        Owner::Device { account, imei } => format!("{prefix}:{L2_FORMAT}:a:{account}:{tag}:{imei}"),
        Owner::Campaign { account, campaign } => {
            format!("{prefix}:{L2_FORMAT}:a:{account}:{tag}:{campaign}")
        }
        Owner::Account { account } => format!("{prefix}:{L2_FORMAT}:a:{account}:{tag}"),
        Owner::Identifier { device } => format!(
            "{prefix}:{L2_FORMAT}:d:{}:{}:{tag}",
            device.kind().wire_name(),
            device.id()
        ),
    };
    if let Some(part) = key.part() {
        out.push(':');
        out.push_str(&part);
    }
    out
}

/// A timestamp as it appears in keys: fixed precision, UTC.
pub(crate) fn key_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
