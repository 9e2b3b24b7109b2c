//! Request body size limit (`limits.max_body_bytes`).
//!
//! Two halves: this middleware refuses a request whose `Content-Length` already says
//! it is too big (413 before a byte is read), and the stack's `DefaultBodyLimit`
//! bounds what the body extractors will buffer when the length is not announced
//! (chunked uploads); the routes turn that extractor rejection into the same 413 via
//! [`body_rejection`].

use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{StatusCode, header};

use super::problem::ApiError;
use super::problem::ErrorContext;

/// The largest body accepted, in bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaxBody(pub(crate) u64);

fn too_large(max: u64) -> ApiError {
    ApiError::bad_input(format!("request body larger than the limit of {max} bytes"))
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

/// The middleware.
pub(crate) async fn limit(
    State(MaxBody(max)): State<MaxBody>,
    request: Request,
    next: Next,
) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|len| len > max) {
        return too_large(max).respond(&ErrorContext::of_request(&request));
    }
    next.run(request).await
}

/// Maps a body read failure: too large (413) or unreadable (400).
pub(crate) fn body_rejection(rejection: &BytesRejection, max: u64) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(max)
    } else {
        ApiError::bad_input("could not read the request body")
    }
}
