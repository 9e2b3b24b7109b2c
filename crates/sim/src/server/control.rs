//! The simulator's own control API under `/_sim`: catalog, stats, reset, faults.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;
use crate::faults::FaultsPatch;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_sim/catalog", get(catalog))
        .route("/_sim/stats", get(stats))
        .route("/_sim/reset", axum::routing::post(reset))
        .route("/_sim/faults", get(get_faults).post(post_faults))
        .route("/_sim/health", get(|| async { "ok" }))
}

async fn catalog(State(state): State<Arc<AppState>>) -> Response {
    Json(&state.catalog).into_response()
}

async fn stats(State(state): State<Arc<AppState>>) -> Response {
    Json(state.stats()).into_response()
}

async fn reset(State(state): State<Arc<AppState>>) -> Response {
    state.reset();
    tracing::info!("stats, faults and lockouts reset");
    StatusCode::NO_CONTENT.into_response()
}

async fn get_faults(State(state): State<Arc<AppState>>) -> Response {
    Json(state.faults()).into_response()
}

async fn post_faults(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let patch: FaultsPatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": format!("invalid faults: {error}") })),
            )
                .into_response();
        }
    };
    match apply(&state, &patch) {
        Ok(()) => Json(state.faults()).into_response(),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": error.to_string() })),
        )
            .into_response(),
    }
}

/// Applies a patch to the live faults (and the one-shot token expiry).
pub(crate) fn apply(
    state: &AppState,
    patch: &FaultsPatch,
) -> Result<(), crate::faults::FaultsError> {
    // Read-modify-write under the write lock so concurrent patches never lose one.
    let faults = {
        let mut guard = state
            .faults
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.apply(patch)?;
        guard.clone()
    };
    if patch.expire_tokens == Some(true) {
        state.auth.expire_all();
        tracing::info!("every OAuth and session token expired");
    }
    tracing::info!(?faults, "faults updated");
    Ok(())
}
