//! The HTTP server's middleware, and [`router`], the one place the stack is assembled.
//!
//! # Layer order (outermost first)
//!
//! For every request (`Router::layer`):
//! 1. **request id**: read or make `x-request-id`; echo it; scope it for upstream calls.
//! 2. **trace**: one span per request, with the request id.
//! 3. **catch panic**: a panicking handler becomes a 500 `INTERNAL` problem.
//! 4. **compression**: gzip when the client accepts it.
//!
//! Then per route group, after routing (`Router::route_layer`, so the matched route
//! template is known):
//! 5. **metrics**: request count and latency by route template.
//! 6. **body-size limit**: `Content-Length` over `limits.max_body_bytes` is 413; the
//!    body extractors enforce the same bound for chunked bodies.
//! 7. **identity**: resolve the API key to a principal and a rate-limit key (never refuses).
//! 8. **error rescue**: turns the errors of the next two layers into responses
//!    (`problem::handle_error`, by type).
//! 9. **request timeout**: `server.request_timeout`, then 504 `UPSTREAM_TIMEOUT`.
//! 10. **inbound rate limit**: per client, 429 `RATE_LIMITED` with `Retry-After`.
//! 11. **auth**: refuses requests without a known key when `auth.mode = "api_key"`.
//!
//! Groups: the API (`/graphql`, `/v1/...`) has 5-11; the admin route has 5-10 (it
//! checks the admin key itself); operational routes (`/healthz`, `/readyz`,
//! `/metrics`, `/openapi.json`) and GraphiQL's static assets (`/graphql/assets/...`)
//! have only 5, so probes are never rate limited or refused for want of a key, and a
//! GraphiQL page load spends no client's request budget.

pub(crate) mod auth;
pub(crate) mod body_limit;
pub(crate) mod identity;
pub(crate) mod metrics;
pub(crate) mod negotiate;
pub(crate) mod problem;
pub(crate) mod request_id;
pub(crate) mod trace;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower::timeout::TimeoutLayer;
use tower_http::CompressionLevel;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};

use crate::routes::{admin, graphiql, graphql, openapi, ops, rest};
use crate::state::AppState;
use body_limit::MaxBody;
use problem::ApiError;

/// Smallest response body worth compressing.
const MIN_COMPRESS_BYTES: u16 = 4096;

/// The `/v1` route templates (the OpenAPI test checks each is documented).
pub(crate) const V1_ROUTES: [&str; 3] = [
    "/v1/accounts/{account}/devices/{imei}",
    "/v1/accounts/{account}/devices:batch",
    "/v1/accounts/{account}/campaigns/{id}/devices",
];

/// The whole HTTP surface: routes and middleware, in the order documented above.
pub(crate) fn router(state: AppState) -> Router {
    let max_body = state.config.limits.max_body_bytes;
    let body_cap = usize::try_from(max_body).unwrap_or(usize::MAX);

    // Layers 5-10, shared by the API and admin groups.
    let guarded = || {
        ServiceBuilder::new()
            // 5. metrics: outermost of the route layers, so refusals are counted too.
            .layer(from_fn(metrics::record))
            // 6. body-size limit: refuse announced oversize bodies before any work...
            .layer(from_fn_with_state(MaxBody(max_body), body_limit::limit))
            // ...and bound what extractors buffer when no length was announced.
            .layer(DefaultBodyLimit::max(body_cap))
            // 7. identity: who is calling (principal, rate-limit key); never refuses.
            .layer(from_fn_with_state(state.clone(), identity::identify))
            // 8. error rescue for the two fallible layers below.
            .layer(HandleErrorLayer::new(problem::handle_error))
            // 9. request timeout: the whole request, upstream work included.
            .layer(TimeoutLayer::new(state.config.server.request_timeout))
            // 10. inbound rate limit, per client, before any real work.
            .layer(state.limiter.layer())
    };

    let api = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route(V1_ROUTES[0], get(rest::device))
        .route(V1_ROUTES[1], post(rest::devices_batch))
        .route(V1_ROUTES[2], get(rest::campaign_devices))
        // 11. auth: innermost, so a refused key still counted against the limiter.
        .route_layer(from_fn_with_state(state.clone(), auth::require_key))
        .route_layer(guarded());

    let mut app = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route(graphiql::assets::ROUTE, get(graphiql::assets::serve))
        // 5. metrics only: probes are never limited or refused.
        .route_layer(from_fn(metrics::record))
        .merge(api);

    if state.keys.admin_enabled() {
        let admin = Router::new()
            .route("/admin/cache/invalidate", post(admin::invalidate))
            .route_layer(guarded());
        app = app.merge(admin);
    }

    app.fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::bad_input("method not allowed on this route")
                .with_status(http::StatusCode::METHOD_NOT_ALLOWED)
        })
        .with_state(state)
        // 4. compression (gzip), for clients that accept it, only for bodies of at least
        //    4 KiB and at the fastest level: each gzip stream allocates and zeroes a few
        //    hundred KiB of tables, which cost a merged single device (1-3 KiB) more CPU
        //    than the rest of its request; dashboards and campaign pages still compress.
        .layer(
            CompressionLayer::new()
                .quality(CompressionLevel::Fastest)
                .compress_when(DefaultPredicate::new().and(SizeAbove::new(MIN_COMPRESS_BYTES))),
        )
        // 3. catch panic: a bug answers 500 INTERNAL instead of dropping the connection.
        .layer(CatchPanicLayer::custom(problem::panic_response))
        // 2. trace: one span per request, carrying the request id set just outside.
        .layer(trace::layer())
        // 1. request id: outermost, so every layer and log line sees it.
        .layer(from_fn(request_id::request_id))
}
