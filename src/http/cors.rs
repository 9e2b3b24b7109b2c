//! CORS for the API group (`/graphql`, `/v1/...`) from `server.cors_origins`, so a
//! dashboard served from another origin can call the gateway from the browser.
//! Off by default: with an empty list there is no layer and no CORS header at all,
//! so only same-origin pages can read answers.
//!
//! Decisions:
//! - The layer sits right inside metrics, outside the body limit, identity, the
//!   rate limit and auth: browsers send preflights (`OPTIONS`) without credentials,
//!   so a preflight is answered here, without a key and without spending any
//!   client's request budget, and every real answer (401 and 429 included) carries
//!   `Access-Control-Allow-Origin`, so the page can read why it was refused. (tower-http
//!   answers every `OPTIONS` this way; the API has no `OPTIONS` handler of its own.)
//! - Credentials mode is never allowed (`Access-Control-Allow-Credentials` is not
//!   sent): clients authenticate with an API key header, not cookies, so a page on
//!   an allowed origin cannot act with a user's ambient credentials, and `["*"]` is
//!   safe to offer (it answers `Access-Control-Allow-Origin: *`).
//! - Origins are compared in their ASCII serialization, as browsers send `Origin`
//!   (`https://dash.example.com`: host lowercased, default port dropped), so a config
//!   entry written `https://Dash.Example.com:443` still matches.
//! - Allowed request headers are those a dashboard sends ([`ALLOW_HEADERS`]); exposed
//!   response headers are those it may want to read ([`EXPOSE_HEADERS`]); preflights
//!   are cached by the browser for [`MAX_AGE`].

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};
use url::Url;

/// Request headers a cross-origin page may send.
pub(crate) const ALLOW_HEADERS: [&str; 7] = [
    "content-type",
    "authorization",
    "x-api-key",
    "x-request-id",
    "if-none-match",
    "apollo-require-preflight",
    "x-devicegraph-cost",
];

/// Response headers a cross-origin page may read (besides the CORS-safelisted ones).
pub(crate) const EXPOSE_HEADERS: [&str; 6] = [
    "x-request-id",
    "x-cache",
    "etag",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
];

/// How long a browser may reuse a preflight answer.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(600);

/// The layer for `origins` (`server.cors_origins`); `None` when the list is empty.
pub(crate) fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| origin_value(o)))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(ALLOW_HEADERS.map(HeaderName::from_static))
            .expose_headers(EXPOSE_HEADERS.map(HeaderName::from_static))
            .max_age(MAX_AGE),
    )
}

/// An origin as browsers write it in `Origin`; `None` (logged) for an entry that is
/// not one (config validation refuses those; a hand-built `Config` might not).
fn origin_value(origin: &str) -> Option<HeaderValue> {
    let serialized = Url::parse(origin.trim())
        .ok()
        .map(|url| url.origin().ascii_serialization())
        .filter(|s| s != "null");
    match serialized.and_then(|s| HeaderValue::from_str(&s).ok()) {
        Some(value) => Some(value),
        None => {
            tracing::warn!(origin, "server.cors_origins: not an origin; ignored");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode, header};
    use tower::ServiceExt;

    use super::*;

    /// A route whose handler answers 418, so a preflight answered by the layer is
    /// told apart from one that reached the handler.
    fn app(origins: &[&str]) -> Router {
        let origins: Vec<String> = origins.iter().map(|s| (*s).to_owned()).collect();
        let router = Router::new().route(
            "/graphql",
            get(|| async { StatusCode::IM_A_TEAPOT }).options(|| async { StatusCode::IM_A_TEAPOT }),
        );
        match layer(&origins) {
            Some(cors) => router.route_layer(cors),
            None => router,
        }
    }

    async fn send(app: Router, method: Method, origin: &str) -> http::Response<Body> {
        let request = Request::builder()
            .method(method)
            .uri("/graphql")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "x-api-key,content-type",
            )
            .body(Body::empty())
            .unwrap();
        app.oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn a_listed_origin_is_echoed_and_others_are_not() {
        let app = app(&["https://Dash.Example.com:443", "http://localhost:3000"]);
        let response = send(app.clone(), Method::GET, "https://dash.example.com").await;
        assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
        let headers = response.headers();
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://dash.example.com"
        );
        let exposed = headers[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .unwrap()
            .to_owned();
        for name in EXPOSE_HEADERS {
            assert!(exposed.contains(name), "{name} not in {exposed}");
        }
        assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));

        let response = send(app.clone(), Method::GET, "http://localhost:3000").await;
        assert_eq!(
            response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "http://localhost:3000"
        );
        let response = send(app, Method::GET, "https://evil.example").await;
        assert!(
            !response
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
    }

    #[tokio::test]
    async fn preflights_are_answered_by_the_layer() {
        let response = send(
            app(&["https://dash.example.com"]),
            Method::OPTIONS,
            "https://dash.example.com",
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "reached the handler");
        let headers = response.headers();
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://dash.example.com"
        );
        let allowed = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .to_owned();
        for name in ALLOW_HEADERS {
            assert!(allowed.contains(name), "{name} not in {allowed}");
        }
        let methods = headers[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap();
        assert!(
            methods.contains("GET") && methods.contains("POST"),
            "{methods}"
        );
        assert_eq!(headers[header::ACCESS_CONTROL_MAX_AGE], "600");
    }

    #[tokio::test]
    async fn star_allows_any_origin_and_empty_means_no_cors() {
        let response = send(app(&["*"]), Method::GET, "https://anyone.example").await;
        assert_eq!(response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");

        assert!(layer(&[]).is_none());
        let response = send(app(&[]), Method::OPTIONS, "https://dash.example.com").await;
        assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
        assert!(
            !response
                .headers()
                .keys()
                .any(|name| name.as_str().starts_with("access-control-"))
        );
    }

    #[test]
    fn origins_are_serialized_as_browsers_send_them() {
        assert_eq!(
            origin_value("https://Dash.Example.com:443").unwrap(),
            "https://dash.example.com"
        );
        assert_eq!(
            origin_value("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(origin_value("not an origin").is_none());
    }
}
