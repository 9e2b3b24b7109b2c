//! `devicegraph-cache`: the read-through store in front of every upstream read.
//!
//! INTERFACE FROZEN (the `Store` methods and types re-exported here): `devicegraph-graphql`
//! and the server code against them.
//!
//! How a read flows (see each module for the why):
//! - [`store`]: the typed API, `Store::get::<R>` for any [`Resource`] `R`.
//! - [`resources`]: one file per cached ThingSpace read (key, value, TTL, weight,
//!   fetch), implementing [`Resource`] (`resource`).
//! - `engine`: generic over the resource: L1 lookup (moka, bounded by heap bytes,
//!   one budget for all resources, keys typed by `key::AnyKey`), freshness
//!   (`freshness`), coalescing of concurrent misses (`coalesce`),
//!   stale-while-revalidate and stale-if-error, then the optional Redis L2 (`l2`),
//!   then the resource's fetch.
//! - `fanout`: invalidations published to, and received from, the other replicas
//!   sharing the Redis key prefix (each replica's L1 is its own).
//! - [`pacer`]: the outbound budget every upstream HTTP request passes through
//!   (rate with burst, concurrency ceiling, 429 pauses, shared across replicas via Redis).
//! - [`clock`]: the injectable clock freshness is decided with.
//! - [`with_deadline`]: how long reads inside a request may wait for the upstream.

pub mod clock;
mod coalesce;
mod config;
mod deadline;
mod engine;
mod epoch;
mod error;
mod fanout;
mod fetched;
mod freshness;
mod key;
mod l2;
mod metrics;
pub mod pacer;
mod redis_conn;
mod resource;
pub mod resources;
mod scope;
mod store;
mod value;
mod weigh;

pub use clock::{Clock, ManualClock, TokioClock};
pub use config::StoreConfig;
pub use deadline::{current_deadline, with_deadline};
pub use error::CacheError;
pub use fetched::{Fetched, Freshness, StaleReason, Stamp};
pub use metrics::METRICS;
pub use pacer::Pacer;
pub use resource::{Fetches, Info, OwnedBy, Owner, Resource, ResourceKey, Ttls};
pub use scope::InvalidateScope;
pub use store::Store;
pub use weigh::HeapSize;
