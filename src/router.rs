//! [`router`]: the one place the routes (`crate::routes`) and the middleware stack
//! (`crate::http`) are assembled over the shared state (`crate::state`).
//!
//! # Layer order (outermost first)
//!
//! Before any of it, the accept loop (`http::serve`) enforces the connection limits of
//! `[server]`: connection count, header read and idle timeouts, header block size
//! and count, HTTP/2 streams.
//!
//! For every request (`Router::layer`):
//! 1. **request id**: read or make `x-request-id`; echo it; scope it for upstream calls.
//! 2. **security headers**: `nosniff`, `no-referrer`, `DENY` framing and a default
//!    CSP on every answer, errors and preflights included (`security_headers`).
//! 3. **trace**: one span per request, with the request id.
//! 4. **catch panic**: a panicking handler becomes a 500 `INTERNAL` problem.
//! 5. **compression**: gzip when the client accepts it.
//!
//! Then per route group, after routing (`Router::route_layer`, so the matched route
//! template is known):
//! 6. **metrics**: request count and latency by route template.
//! 7. **CORS** (only when `server.cors_origins` is set): answers preflights itself and
//!    adds `Access-Control-*` to every answer, refusals included (`cors`).
//! 8. **body-size limit**: `Content-Length` over `limits.max_body_bytes` is 413; the
//!    body extractors enforce the same bound for chunked bodies.
//! 9. **identity**: resolve the API key to a principal and a rate-limit key (never
//!    refuses; conflicting keys are noted for auth to refuse).
//! 10. **error rescue**: turns the errors of the next two layers into responses
//!    (`problem::handle_error`, by type).
//! 11. **request timeout**: `server.request_timeout`, then 504 `UPSTREAM_TIMEOUT`.
//! 12. **inbound rate limit**: per client, 429 `RATE_LIMITED` with `Retry-After`
//!     (`rate_limit`).
//! 13. **auth**: refuses requests without a known key (or with two different keys)
//!    when `auth.mode = "api_key"`.
//!
//! Groups: the API (`/graphql`, `/v1/...`) has 6-13; the admin route has 6 and 8-12
//! (it checks the admin key itself); operational routes (`/healthz`, `/readyz`,
//! `/metrics`, `/openapi.json`) and GraphiQL's static assets (`/graphql/assets/...`)
//! have only 6, so probes are never rate limited or refused for want of a key, and a
//! GraphiQL page load spends no client's request budget. A CORS preflight to the API
//! meets only 6 and 7: no key needed, no request budget spent.

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state, map_response};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower::timeout::TimeoutLayer;
use tower_http::CompressionLevel;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};

use crate::graphiql;
use crate::http::auth::{self, AuthGate};
use crate::http::body_limit::{self, MaxBody};
use crate::http::problem::{self, ApiError};
use crate::http::{cors, identity, metrics, request_id, security_headers, trace};
use crate::routes::{admin, graphql, openapi, ops, rest};
use crate::state::AppState;

/// Smallest response body worth compressing.
const MIN_COMPRESS_BYTES: u16 = 4096;

/// The whole HTTP surface: routes and middleware, in the order documented above.
pub(crate) fn router(state: AppState) -> Router {
    let max_body = state.config.limits.max_body_bytes;
    let body_cap = usize::try_from(max_body).unwrap_or(usize::MAX);

    // Layers 8-12, shared by the API and admin groups (each adds metrics, 6, itself,
    // outside CORS, 7, which only the API has).
    let guarded = || {
        ServiceBuilder::new()
            // 8. body-size limit: refuse announced oversize bodies before any work...
            .layer(from_fn_with_state(MaxBody(max_body), body_limit::limit))
            // ...and bound what extractors buffer when no length was announced.
            .layer(DefaultBodyLimit::max(body_cap))
            // 9. identity: who is calling (principal, rate-limit key); never refuses.
            .layer(from_fn_with_state(state.keys.clone(), identity::identify))
            // 10. error rescue for the two fallible layers below.
            .layer(HandleErrorLayer::new(problem::handle_error))
            // 11. request timeout: the whole request, upstream work included.
            .layer(TimeoutLayer::new(state.config.server.request_timeout))
            // 12. inbound rate limit, per client, before any real work.
            .layer(state.limiter.layer())
    };

    let mut api = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route(rest::ROUTES[0], get(rest::device))
        .route(rest::ROUTES[1], post(rest::devices_batch))
        .route(rest::ROUTES[2], get(rest::campaign_devices))
        .route(rest::ROUTES[3], get(rest::account_devices))
        // 13. auth: innermost, so a refused key still counted against the limiter.
        .route_layer(from_fn_with_state(
            AuthGate {
                graphiql_page: state.config.graphql.graphiql,
            },
            auth::require_key,
        ))
        .route_layer(guarded())
        // The API's own 405, set before CORS and metrics wrap the group: axum's
        // `method_not_allowed_fallback` swaps a route's default 405 for a bare
        // handler, dropping the route layers around it, and a preflight (`OPTIONS`)
        // is exactly such a request, which CORS must see. (So the API's 405s are
        // counted too; `metrics` labels methods from a fixed set.)
        .method_not_allowed_fallback(method_not_allowed);
    if let Some(cors) = cors::layer(&state.config.server.cors_origins) {
        // 7. CORS: preflights answered here, before the body limit, identity, rate
        //    limit and auth; Access-Control-* on every answer of the group.
        api = api.route_layer(cors);
    }
    // 6. metrics: outermost of the route layers, so refusals are counted too.
    let api = api.route_layer(from_fn(metrics::record));

    let mut app = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route(graphiql::assets::ROUTE, get(graphiql::assets::serve))
        // 6. metrics only: probes are never limited or refused.
        .route_layer(from_fn(metrics::record))
        .merge(api);

    if state.keys.admin_enabled() {
        let admin = Router::new()
            .route("/admin/cache/invalidate", post(admin::invalidate))
            .route_layer(guarded())
            // 6. metrics.
            .route_layer(from_fn(metrics::record));
        app = app.merge(admin);
    }

    app.fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        // 5. compression (gzip), for clients that accept it, only for bodies of at least
        //    4 KiB and at the fastest level: each gzip stream allocates and zeroes a few
        //    hundred KiB of tables, which cost a merged single device (1-3 KiB) more CPU
        //    than the rest of its request; dashboards and campaign pages still compress.
        .layer(
            CompressionLayer::new()
                .quality(CompressionLevel::Fastest)
                .compress_when(DefaultPredicate::new().and(SizeAbove::new(MIN_COMPRESS_BYTES))),
        )
        // 4. catch panic: a bug answers 500 INTERNAL instead of dropping the connection.
        .layer(CatchPanicLayer::custom(problem::panic_response))
        // 3. trace: one span per request, carrying the request id set just outside.
        .layer(trace::layer())
        // 2. security headers: outside everything that can answer, so every answer
        //    (errors, panics, preflights) has them.
        .layer(map_response(security_headers::apply))
        // 1. request id: outermost, so every layer and log line sees it.
        .layer(from_fn(request_id::request_id))
}

async fn method_not_allowed() -> ApiError {
    ApiError::bad_input("method not allowed on this route")
        .with_status(http::StatusCode::METHOD_NOT_ALLOWED)
}
