//! A hook the client calls around every HTTP request it sends (including retries,
//! logins and every page of a paginated read). The client knows nothing of caching
//! or budgets; the `devicegraph-cache` crate implements this to pace all upstream
//! traffic through one shared budget and concurrency ceiling.

use std::any::Any;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::error::{Endpoint, UpstreamError};

/// Held for the duration of one HTTP request; dropping it releases whatever the gate
/// reserved (a concurrency slot, say).
pub struct GatePermit(#[allow(dead_code)] Option<Box<dyn Any + Send>>);

impl GatePermit {
    /// A permit holding nothing.
    pub fn none() -> Self {
        Self(None)
    }

    /// A permit that keeps `guard` alive until the request ends.
    pub fn holding(guard: impl Any + Send) -> Self {
        Self(Some(Box::new(guard)))
    }
}

/// Paces outbound requests.
pub trait RequestGate: Send + Sync + 'static {
    /// Wait until `endpoint` may send one request, but never past `deadline`; then fail
    /// (`UpstreamError::Unavailable` naming the exhausted budget, or `RateLimited`).
    fn acquire(
        &self,
        endpoint: Endpoint,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<GatePermit, UpstreamError>>;

    /// The upstream answered 429 for `endpoint`: pause it for `retry_after`.
    fn rate_limited(&self, endpoint: Endpoint, retry_after: Duration);
}

/// The default gate: lets everything through at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenGate;

impl RequestGate for OpenGate {
    fn acquire(
        &self,
        _endpoint: Endpoint,
        _deadline: Instant,
    ) -> BoxFuture<'_, Result<GatePermit, UpstreamError>> {
        Box::pin(async { Ok(GatePermit::none()) })
    }

    fn rate_limited(&self, _endpoint: Endpoint, _retry_after: Duration) {}
}
