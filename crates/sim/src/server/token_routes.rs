//! `POST /ts/v1/oauth2/token` (client credentials) and `POST /m2m/v1/session/login`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use super::AppState;
use super::gate::{Needs, enter_or_answer};
use super::respond::{self, codes};
use crate::auth::LoginError;
use crate::endpoint::Endpoint;

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// Client id and secret from HTTP Basic auth, or else from the form (RFC 6749 allows both).
fn client_credentials(headers: &HeaderMap, form: &[(String, String)]) -> Option<(String, String)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(id, secret)| (id.to_string(), secret.to_string()))
        });
    basic.or_else(|| {
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        Some((field("client_id")?, field("client_secret")?))
    })
}

pub(crate) async fn oauth_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _guard = enter_or_answer!(state, Endpoint::OauthToken, headers, Needs::Nothing);
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let grant = form
        .iter()
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.as_str());
    if grant != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let Some((id, secret)) = client_credentials(&headers, &form) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client credentials are missing",
        );
    };
    match state.auth.issue_token(&id, &secret) {
        Some((token, expires_in, new)) => {
            if new {
                state.counters.token_issued();
            }
            Json(json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": expires_in,
                "scope": "am_application_scope default",
            }))
            .into_response()
        }
        None => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client Authentication failed.",
        ),
    }
}

pub(crate) async fn session_login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _guard = enter_or_answer!(state, Endpoint::SessionLogin, headers, Needs::Bearer);
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&body);
    let field = |v: &serde_json::Value, name: &str| {
        v.get(name).and_then(|f| f.as_str()).map(str::to_string)
    };
    let (username, password) = match parsed {
        Ok(v) => match (field(&v, "username"), field(&v, "password")) {
            (Some(u), Some(p)) => (u, p),
            _ => {
                return respond::bad_request(
                    codes::INVALID_PARAMETER,
                    "username and password are required",
                );
            }
        },
        Err(_) => {
            return respond::bad_request(
                codes::INVALID_PARAMETER,
                "The request body is not valid JSON",
            );
        }
    };
    match state.auth.login(&username, &password) {
        Ok(session) => {
            state.counters.session_issued();
            Json(json!({ "sessionToken": session })).into_response()
        }
        Err(LoginError::BadCredentials) => {
            state.counters.failed_login();
            tracing::info!(username, "refused login: bad credentials");
            respond::bad_request(codes::LOGIN_FAILED, "Invalid username or password")
        }
        Err(LoginError::Locked) => {
            state.counters.failed_login();
            tracing::warn!(username, "refused login: account locked");
            respond::bad_request(
                codes::ACCOUNT_LOCKED,
                "The account is locked after too many failed login attempts. Contact support to unlock it.",
            )
        }
    }
}
