//! Request tracing: one `request` span per request carrying the method, the path
//! (never the query string: GraphQL GETs put whole queries and variables there) and
//! the request id (and, once auth has run, the API key's name as `client`), so every log line written while serving it can be tied together.
//! The response line is written at INFO with status and latency by tower-http.

use axum::extract::Request;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnResponse, MakeSpan, TraceLayer};
use tracing::{Level, Span};

use super::request_id::RequestId;

/// Builds the request span.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.0.as_str())
            .unwrap_or("");
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            request_id = %request_id,
            client = tracing::field::Empty,
        )
    }
}

/// The layer, as the stack uses it.
pub(crate) fn layer()
-> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan, (), DefaultOnResponse> {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_request(())
        .on_response(DefaultOnResponse::new().level(Level::INFO))
}
