//! Operational routes: `/healthz` (liveness), `/readyz` (readiness) and `/metrics`
//! (the families and their HELP texts: `crate::http::metrics`).
//!
//! Readiness asks the upstream client for its tokens (`ensure_authenticated`) and, when
//! Redis is configured, pings it. The answer is cached for a few seconds so a load
//! balancer probing every second costs the upstream nothing extra; the mutex also
//! makes concurrent probes share one check.
//!
//! **ThingSpace being down does not make a replica unready.** Every replica talks to
//! the same ThingSpace: failing readiness on all of them at once would take the
//! cached and stale answers they can still give out of rotation, turning a degraded
//! service into an outage. So an unreachable upstream (no connection, 5xx, timeouts,
//! an open circuit) answers 200 with `"upstream": "unreachable: ..."` and the circuit
//! states, for operators and alerts. What does make a replica unready is what is
//! wrong with *this* replica and no waiting will mend: ThingSpace refusing its
//! credentials (a bad secret in a rollout must not take traffic), or its configured
//! Redis unreachable.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde_json::json;
use tokio::time::Instant;

use devicegraph_upstream::{CircuitState, UpstreamError};

use crate::state::{AppState, ReadinessAnswer};

/// How long a readiness answer is reused.
const READINESS_TTL: Duration = Duration::from_secs(5);

/// The readiness answer, from `state.readiness` when recent enough, else probed
/// (and kept there); concurrent probes wait for one check.
async fn check(state: &AppState) -> ReadinessAnswer {
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

async fn probe(state: &AppState) -> ReadinessAnswer {
    let upstream = match state.store.client().ensure_authenticated().await {
        Ok(()) => None,
        // Refused credentials: this replica's fault, and it will not mend itself.
        Err(e @ (UpstreamError::Auth { .. } | UpstreamError::BadCredentials { .. })) => {
            tracing::warn!(error = %e, "readiness: upstream tokens not obtainable");
            return Err(format!("upstream: cannot obtain tokens ({})", e.kind()));
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness: upstream unreachable; serving cached answers");
            Some(format!("unreachable: {}", e.kind()))
        }
    };
    if state.store.redis_reachable().await == Some(false) {
        tracing::warn!("readiness: redis unreachable");
        return Err("redis: unreachable".to_owned());
    }
    Ok(upstream)
}

/// `GET /healthz`: the process is up and serving.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when requests can be answered (stale answers included), else
/// 503 with the reason; both with the upstream's state and each endpoint's circuit.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let answer = check(&state).await;
    let states = state.store.client().circuits();
    let any_open = states.iter().any(|(_, c)| *c != CircuitState::Closed);
    let circuits: serde_json::Map<String, serde_json::Value> = states
        .into_iter()
        .map(|(endpoint, circuit)| (endpoint.name().to_owned(), circuit.as_str().into()))
        .collect();
    match answer {
        Ok(note) => {
            let upstream = match note {
                Some(note) => note,
                None if any_open => "degraded: circuit open".to_owned(),
                None => "reachable".to_owned(),
            };
            Json(json!({ "status": "ready", "upstream": upstream, "circuits": circuits }))
                .into_response()
        }
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "reason": reason, "circuits": circuits })),
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
