//! Request ids: every request gets one (the client's `x-request-id` when it sent a
//! sane one, else a new UUID), echoed on the response, visible to the tracing span,
//! and carried to every upstream call made while serving the request
//! (`devicegraph_upstream::with_request_id`, sent as `X-Request-ID`), so one id
//! follows a request from the dashboard to ThingSpace and back through the logs.
//!
//! This scope is the only way the id travels below the HTTP layer: the executor and
//! the cache take no request id parameter, they read the task-local
//! (`devicegraph_upstream::current_request_id`), and work they spawn for the request
//! (DataLoader batches, coalesced flights) carries it with
//! `devicegraph_upstream::in_current_scope`.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue};

pub(crate) const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, in request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestId(pub(crate) String);

/// A client-sent id is kept only if it is short printable ASCII: it goes into logs
/// and upstream headers, so nothing that could break either is trusted.
fn acceptable(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty() && text.len() <= 128 && text.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| text.to_owned())
}

/// The middleware (outermost of the stack, so every later layer sees the id).
pub(crate) async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(acceptable)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // A UUID or a checked client value: both are valid header values.
    let value = HeaderValue::from_str(&id).ok();
    if let Some(value) = &value {
        request
            .headers_mut()
            .insert(REQUEST_ID_HEADER, value.clone());
    }
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = devicegraph_upstream::with_request_id(id, next.run(request)).await;
    if let Some(value) = value {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route(
                "/",
                get(|| async { devicegraph_upstream::current_request_id().unwrap_or_default() }),
            )
            .layer(axum::middleware::from_fn(request_id))
    }

    async fn call(header: Option<&str>) -> (String, String) {
        let mut request = http::Request::get("/");
        if let Some(h) = header {
            request = request.header("x-request-id", h);
        }
        let response = app()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        (echoed, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn keeps_a_sane_client_id_and_scopes_it_for_the_upstream() {
        let (echoed, seen_by_handler) = call(Some("dash-42")).await;
        assert_eq!(echoed, "dash-42");
        assert_eq!(seen_by_handler, "dash-42");
    }

    #[tokio::test]
    async fn generates_one_when_absent_or_unreasonable() {
        let (echoed, seen) = call(None).await;
        assert_eq!(echoed.len(), 36, "a UUID: {echoed}");
        assert_eq!(echoed, seen);
        let (echoed, _) = call(Some(&"x".repeat(500))).await;
        assert_eq!(echoed.len(), 36);
    }
}
