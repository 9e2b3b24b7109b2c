//! `devicegraph-upstream`: a correct, resilient client for the Verizon ThingSpace APIs.
//!
//! - [`ids`]: identifier newtypes (IMEI with Luhn, account, campaign, device identifiers,
//!   the device-list protocol filter).
//! - [`model`]: normalised public models of every endpoint's answer (re-exported from
//!   where each endpoint defines them).
//! - [`wire`]: the lenient wire parsing (both field variants, four timestamp shapes,
//!   `"N/A"`, strings or numbers) that produces them, re-exported the same way.
//! - [`client`]: the [`Client`]: auth (OAuth + M2M session), retries, one deadline per
//!   call; its read methods are defined per endpoint.
//! - [`gate`]: the hook through which an outer layer paces every request.
//! - [`time`]: the timestamp shapes the upstream sends, and [`time::Timestamp`].
//! - [`error`]: [`UpstreamError`] and the [`Endpoint`] names.
//! - [`metric_help`]: the HELP text of the metrics it records, and the type every
//!   crate lists its metrics with.
//!
//! Private modules: `endpoints/` holds one file per data endpoint (model, parser,
//! request, stream; `device_details` alone knows the 1,000-IMEI limit and chunks a
//! batch); `decode` the JSON toolkit and the token/error bodies; `paging` the
//! `lastSeenDeviceId` walk; `auth`, `transport` and `retry` what one call goes
//! through; `request_id` the request id, tenant and call meter of the calling request.
//!
//! It knows nothing of caching or GraphQL.

mod auth;
pub mod breaker;
pub mod client;
mod decode;
mod endpoints;
pub mod error;
pub mod gate;
pub mod ids;
pub mod metric_help;
pub mod model;
mod paging;
mod request_id;
mod retry;
mod retry_budget;
pub mod time;
mod transport;
pub mod wire;

pub use breaker::{BreakerConfig, CircuitState};
pub use client::{Client, ClientConfig, Credentials};
pub use endpoints::device_details::DetailsChunk;
pub use error::{Endpoint, UpstreamError};
pub use gate::{GatePermit, OpenGate, RequestGate};
pub use ids::{AccountName, CampaignId, DeviceIdKind, DeviceIdentifier, IdError, Imei, Protocol};
pub use request_id::{
    CallMeter, as_background, current_request_id, current_tenant, in_current_scope, is_background,
    with_call_meter, with_request_id, with_tenant,
};
pub use retry_budget::RetryBudgetConfig;
