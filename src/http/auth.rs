//! Inbound auth: with `auth.mode = "api_key"`, a request without a known key is
//! refused with `UNAUTHENTICATED` (401; GraphQL-shaped on `/graphql`). The key's
//! accounts travel on as the [`Principal`]'s scope, which the schema enforces
//! (`FORBIDDEN` for other accounts).
//!
//! One exception: a browser's GET of the GraphiQL page, when GraphiQL is on. The page
//! holds no data; the queries it then sends carry a key from its headers editor.
//!
//! Two different keys in one request are refused as such (`identity` never looks
//! either up), with the same answer whether either is valid.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::Method;

use super::identity::{Principal, Unidentified};
use super::negotiate::{is_graphql, wants_html};
use super::problem::{ApiError, ErrorContext};

/// What the layer needs besides the request (`identity` has looked the key up).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthGate {
    /// `graphql.graphiql`: a browser's GET of the page passes without a key.
    pub(crate) graphiql_page: bool,
}

/// The middleware.
pub(crate) async fn require_key(
    State(gate): State<AuthGate>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(principal) = request.extensions().get::<Principal>() {
        tracing::Span::current().record("client", &*principal.name);
        return next.run(request).await;
    }
    let graphiql_page = gate.graphiql_page
        && request.method() == Method::GET
        && is_graphql(request.uri())
        && wants_html(request.headers());
    if graphiql_page {
        return next.run(request).await;
    }
    let detail = match request.extensions().get::<Unidentified>() {
        Some(Unidentified::Unknown) => "unknown API key",
        // Said without looking either key up: the answer is the same whichever is
        // valid.
        Some(Unidentified::Conflicting) => {
            "conflicting credentials: `Authorization` and `X-API-Key` (or a repeated one of \
             them) carry different keys; send one key"
        }
        _ => "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
    };
    ApiError::unauthenticated(detail).respond(&ErrorContext::of_request(&request))
}
