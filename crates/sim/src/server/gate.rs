//! What every ThingSpace request goes through before its handler's own work:
//! accounting, injected faults, then the two tokens.

use axum::http::HeaderMap;
use axum::response::Response;

use super::AppState;
use super::request_task::{self, MidBody, STALL_LIMIT};
use super::respond::{self, codes};
use crate::auth::{BearerError, SessionError};
use crate::endpoint::Endpoint;
use crate::faults::Injected;
use crate::stats::InFlight;

/// Which tokens a request must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    Nothing,
    Bearer,
    BearerAndSession,
}

/// Runs [`enter`] at the top of a handler: evaluates to the in-flight guard, or
/// returns the gate's answer (fault or refusal) from the handler.
macro_rules! enter_or_answer {
    ($state:expr, $endpoint:expr, $headers:expr, $needs:expr) => {
        match $crate::server::gate::enter(&$state, $endpoint, &$headers, $needs).await {
            Ok(guard) => guard,
            Err(response) => return response,
        }
    };
}
pub(crate) use enter_or_answer;

/// Runs the common steps; `Ok` carries the in-flight guard to hold until the answer
/// is built (none when a mid-body fault took it, to hold until the body ends),
/// `Err` is the answer (fault or refusal).
pub(crate) async fn enter(
    state: &AppState,
    endpoint: Endpoint,
    headers: &HeaderMap,
    needs: Needs,
) -> Result<Option<InFlight>, Response> {
    let guard = state.counters.enter(endpoint);
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::debug!(endpoint = endpoint.name(), request_id, "request");

    let faults = state.faults();
    let latency = faults.latency(endpoint);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut guard = Some(guard);
    if let Some(injected) = faults.decide(endpoint) {
        state.counters.fault(injected.name());
        tracing::debug!(
            endpoint = endpoint.name(),
            request_id,
            fault = injected.name(),
            "injecting fault"
        );
        let mid_body = match injected {
            Injected::DropMidBody => Some(MidBody::Drop),
            Injected::StallMidBody => Some(MidBody::Stall),
            _ => None,
        };
        match mid_body {
            // The answer is built as usual; its body is cut on the way out.
            Some(kind) => {
                if let Some(guard) = guard.take() {
                    request_task::cut_mid_body(kind, guard, state.shutdown.clone());
                }
            }
            None => return Err(answer_fault(state, injected).await),
        }
    }

    if needs != Needs::Nothing {
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match state.auth.check_bearer(bearer) {
            Ok(()) => {}
            Err(BearerError::Missing) => return Err(respond::gateway_fault(true)),
            Err(BearerError::Invalid) => return Err(respond::gateway_fault(false)),
        }
    }
    if needs == Needs::BearerAndSession {
        let session = headers.get("vz-m2m-token").and_then(|v| v.to_str().ok());
        match state.auth.check_session(session) {
            Ok(()) => {}
            Err(SessionError::Missing) => {
                return Err(respond::api_error(
                    axum::http::StatusCode::UNAUTHORIZED,
                    codes::SESSION_MISSING,
                    "The VZ-M2M-Token header is missing",
                ));
            }
            Err(SessionError::Expired) => {
                return Err(respond::api_error(
                    axum::http::StatusCode::UNAUTHORIZED,
                    codes::SESSION_EXPIRED,
                    "Session token is expired or invalid. Please log in again.",
                ));
            }
        }
    }
    Ok(guard)
}

/// The answer of a fault that replaces the whole response.
async fn answer_fault(state: &AppState, injected: Injected) -> Response {
    match injected {
        Injected::Drop => respond::drop_connection(),
        Injected::Stall => {
            // Not work: nothing to finish once the client has gone.
            let mut shutdown = state.shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(STALL_LIMIT) => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
                _ = request_task::client_gone() => {}
            }
            respond::drop_connection()
        }
        Injected::ServiceUnavailable => respond::service_unavailable(),
        Injected::RateLimited(retry_after) => respond::rate_limited(retry_after),
        // Applied to the body by the caller.
        Injected::DropMidBody | Injected::StallMidBody => respond::drop_connection(),
    }
}
