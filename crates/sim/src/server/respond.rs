//! The response bodies ThingSpace uses for failures, in one place.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::faults::RetryAfter;

/// Marks a response as "close the connection instead of answering"; the accept loop
/// turns it into a service error, which makes hyper drop the connection unanswered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

pub(crate) fn drop_connection() -> Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(DropConnection);
    response
}

/// The documented error body: `{"errorCode","errorMessage"}`.
pub(crate) fn api_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "errorCode": code, "errorMessage": message.into() })),
    )
        .into_response()
}

/// HTTP 400 with the documented error body.
pub(crate) fn bad_request(code: &str, message: impl Into<String>) -> Response {
    api_error(StatusCode::BAD_REQUEST, code, message)
}

/// The API gateway's 401 for a missing (900902) or bad/expired (900901) bearer token.
pub(crate) fn gateway_fault(missing: bool) -> Response {
    let (code, message, description) = if missing {
        (
            900_902,
            "Missing Credentials",
            "Invalid Credentials. Make sure your API invocation call has a header: 'Authorization: Bearer ACCESS_TOKEN'",
        )
    } else {
        (
            900_901,
            "Invalid Credentials",
            "Access failure for API: Invalid Credentials. Make sure you have given the correct access token",
        )
    };
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "fault": { "code": code, "message": message, "description": description } })),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"thingspace\""),
    );
    response
}

pub(crate) fn service_unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "errorCode": "SERVICE_UNAVAILABLE", "errorMessage": "The service is temporarily unavailable" })),
    )
        .into_response()
}

pub(crate) fn rate_limited(retry_after: RetryAfter) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({ "errorCode": "REQUEST_FAILED.RateLimited", "errorMessage": "Too many requests" })),
    )
        .into_response();
    let value = retry_after.header_value(std::time::SystemTime::now());
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Error codes used by the simulator.
pub(crate) mod codes {
    pub(crate) const ACCOUNT_NOT_FOUND: &str = "REQUEST_FAILED.Account.NotFound";
    pub(crate) const DEVICE_NOT_FOUND: &str = "FOTA.DEVICE.NotFound";
    pub(crate) const CAMPAIGN_NOT_FOUND: &str = "FOTA.CAMPAIGN.NotFound";
    pub(crate) const INVALID_PARAMETER: &str = "REQUEST_FAILED.InvalidParameter";
    pub(crate) const SESSION_EXPIRED: &str = "REQUEST_FAILED.SessionToken.Expired";
    pub(crate) const SESSION_MISSING: &str = "REQUEST_FAILED.SessionToken.Missing";
    pub(crate) const LOGIN_FAILED: &str = "REQUEST_FAILED.UnexpectedError";
    pub(crate) const ACCOUNT_LOCKED: &str = "REQUEST_FAILED.Account.Locked";
}
