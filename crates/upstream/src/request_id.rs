//! The inbound request id, carried to every upstream request as `X-Request-ID`.
//!
//! A tokio task-local rather than a parameter: the id belongs to whoever is serving
//! an inbound request (the HTTP server sets it once), and threading it through the
//! cache and GraphQL layers' signatures would couple them to a logging concern.
//! Work spawned onto other tasks does not inherit it; such work simply sends no id,
//! unless the spawner wraps it in [`in_current_scope`].
//!
//! The same scope carries an optional [`CallMeter`]: the number of HTTP requests sent
//! to ThingSpace on behalf of one inbound request (retries and token calls included),
//! which the GraphQL layer reports next to its pre-execution estimate.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

tokio::task_local! {
    static REQUEST_ID: String;
    static CALL_METER: CallMeter;
    static TENANT: Arc<str>;
    static BACKGROUND: ();
}

/// Runs `fut` as background work (a stale-while-revalidate refresh, a prefetch):
/// nobody waits for its upstream calls, so the pacer gives them budget and slots
/// only when interactive calls leave some. Carried into spawned work by
/// [`in_current_scope`].
pub async fn as_background<F: Future>(fut: F) -> F::Output {
    BACKGROUND.scope((), fut).await
}

/// Whether the current task runs background work ([`as_background`]).
pub fn is_background() -> bool {
    BACKGROUND.try_with(|()| ()).is_ok()
}

/// Runs `fut` on behalf of `tenant` (an API key name or client address): the
/// cache's pacer queues upstream calls fairly between tenants.
pub async fn with_tenant<F: Future>(tenant: Arc<str>, fut: F) -> F::Output {
    TENANT.scope(tenant, fut).await
}

/// The tenant the current task works for, if any.
pub fn current_tenant() -> Option<Arc<str>> {
    TENANT.try_with(Arc::clone).ok()
}

/// Counts upstream HTTP requests made inside a [`with_call_meter`] scope.
#[derive(Debug, Clone, Default)]
pub struct CallMeter(Arc<AtomicU64>);

impl CallMeter {
    /// Requests counted so far.
    pub fn calls(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs `fut` counting its upstream requests on `meter`.
pub async fn with_call_meter<F: Future>(meter: CallMeter, fut: F) -> F::Output {
    CALL_METER.scope(meter, fut).await
}

/// Counts one upstream request on the current meter, if any.
pub(crate) fn count_upstream_call() {
    let _ = CALL_METER.try_with(|m| m.0.fetch_add(1, Ordering::Relaxed));
}

/// `fut` wrapped so that it runs with the current task's request id, call meter,
/// tenant and background mark:
/// for work spawned onto another task on behalf of the current request.
pub fn in_current_scope<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let id = current_request_id();
    let meter = CALL_METER.try_with(Clone::clone).ok();
    let tenant = current_tenant();
    let background = is_background();
    let fut = async move {
        match (tenant, background) {
            (Some(tenant), true) => TENANT.scope(tenant, BACKGROUND.scope((), fut)).await,
            (Some(tenant), false) => TENANT.scope(tenant, fut).await,
            (None, true) => BACKGROUND.scope((), fut).await,
            (None, false) => fut.await,
        }
    };
    async move {
        match (id, meter) {
            (Some(id), Some(meter)) => REQUEST_ID.scope(id, CALL_METER.scope(meter, fut)).await,
            (Some(id), None) => REQUEST_ID.scope(id, fut).await,
            (None, Some(meter)) => CALL_METER.scope(meter, fut).await,
            (None, None) => fut.await,
        }
    }
}

/// Runs `fut` with `id` as the current request id.
pub async fn with_request_id<F: Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// The request id of the inbound request being served, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scoped_and_absent() {
        assert_eq!(current_request_id(), None);
        let seen = with_request_id("req-1".into(), async { current_request_id() }).await;
        assert_eq!(seen.as_deref(), Some("req-1"));
        assert_eq!(current_request_id(), None);
    }

    #[tokio::test]
    async fn meter_follows_spawned_work_in_scope() {
        let meter = CallMeter::default();
        with_call_meter(meter.clone(), async {
            count_upstream_call();
            tokio::spawn(in_current_scope(async { count_upstream_call() }))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            // Spawned without the scope: not counted.
            tokio::spawn(async { count_upstream_call() })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        })
        .await;
        assert_eq!(meter.calls(), 2);
        count_upstream_call();
        assert_eq!(meter.calls(), 2);
    }

    #[tokio::test]
    async fn background_mark_follows_spawned_work_in_scope() {
        assert!(!is_background());
        let seen = as_background(async {
            tokio::spawn(in_current_scope(async { is_background() }))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .await;
        assert!(seen, "spawned in scope: still background");
        let unscoped = as_background(async { tokio::spawn(async { is_background() }).await })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!unscoped, "spawned without the scope: interactive");
        assert!(!is_background());
    }

    #[tokio::test]
    async fn tenant_follows_spawned_work_in_scope() {
        let seen = with_tenant(Arc::from("key:a"), async {
            tokio::spawn(in_current_scope(async { current_tenant() }))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .await;
        assert_eq!(seen.as_deref(), Some("key:a"));
        assert_eq!(current_tenant(), None);
    }
}
