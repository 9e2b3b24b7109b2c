//! Operational routes: `/healthz` (liveness), `/readyz` (readiness) and `/metrics`
//! (the families and their HELP texts: `crate::http::metrics`).
//!
//! Readiness asks the upstream client for its tokens (`ensure_authenticated`) and, when
//! Redis is configured, pings it. The answer is cached for a few seconds so a load
//! balancer probing every second costs the upstream nothing extra; the mutex also
//! makes concurrent probes share one check.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde_json::json;
use tokio::time::Instant;

use crate::state::AppState;

/// How long a readiness answer is reused.
const READINESS_TTL: Duration = Duration::from_secs(5);

/// The readiness answer, from `state.readiness` when recent enough, else probed
/// (and kept there); concurrent probes wait for one check.
async fn check(state: &AppState) -> Result<(), String> {
    let mut last = state.readiness.last.lock().await;
    if let Some((at, answer)) = last.as_ref()
        && at.elapsed() < READINESS_TTL
    {
        return answer.clone();
    }
    let answer = probe(state).await;
    *last = Some((Instant::now(), answer.clone()));
    answer
}

async fn probe(state: &AppState) -> Result<(), String> {
    if let Err(e) = state.store.client().ensure_authenticated().await {
        tracing::warn!(error = %e, "readiness: upstream tokens not obtainable");
        return Err(format!("upstream: cannot obtain tokens ({})", e.kind()));
    }
    if state.store.redis_reachable().await == Some(false) {
        tracing::warn!("readiness: redis unreachable");
        return Err("redis: unreachable".to_owned());
    }
    Ok(())
}

/// `GET /healthz`: the process is up and serving.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when requests can be answered, else 503 with the reason.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    match check(&state).await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "reason": reason })),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus text format, with the `process_*` families.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    // Brings `devicegraph_cache_bytes` up to date (the cache sets it as it goes; the
    // figure after moka's pending evictions is the one worth scraping).
    state.store.weighted_size();
    metrics::gauge!("devicegraph_rate_limit_tracked_clients")
        .set(state.limiter.tracked_clients() as f64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::http::metrics::render(&state.metrics),
    )
        .into_response()
}
