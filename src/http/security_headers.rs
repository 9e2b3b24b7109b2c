//! Security headers on every answer, whatever produced it (a handler, a fallback,
//! the rescue point, a caught panic, a CORS preflight):
//!
//! - `X-Content-Type-Options: nosniff`: a browser never reinterprets a JSON or
//!   problem body (which may quote client input) as HTML or script. Always set:
//!   there is no other sane value.
//! - `Referrer-Policy: no-referrer`: URLs carry account names and IMEIs.
//! - `X-Frame-Options: DENY` and CSP `frame-ancestors 'none'`: nothing here is meant
//!   to be framed (clickjacking of GraphiQL).
//! - `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`: an API
//!   answer needs no scripts, styles or images, so a body that somehow renders loads
//!   nothing.
//!
//! All but `nosniff` are only added when the response has none of its own: the
//! GraphiQL page sets the CSP it needs (scripts and styles from its own assets,
//! `graphiql::page`), and the default must not replace it.

use axum::response::Response;
use http::{HeaderValue, header};

/// The CSP of every answer that does not set its own.
pub(crate) const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The middleware (`axum::middleware::map_response`).
pub(crate) async fn apply(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    headers
        .entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(DEFAULT_CSP));
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::Router;
    use axum::body::Body;
    use axum::middleware::map_response;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    const PAGE_CSP: &str = "default-src 'self'";

    fn app() -> Router {
        Router::new()
            .route("/json", get(|| async { "{}" }))
            .route(
                "/page",
                get(|| async {
                    (
                        [
                            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
                            (header::X_CONTENT_TYPE_OPTIONS, "something-else"),
                        ],
                        "<html></html>",
                    )
                        .into_response()
                }),
            )
            .fallback(|| async { StatusCode::NOT_FOUND })
            .layer(map_response(apply))
    }

    async fn headers_of(path: &str) -> http::HeaderMap {
        let request = Request::get(path).body(Body::empty()).unwrap();
        app().oneshot(request).await.unwrap().headers().clone()
    }

    #[tokio::test]
    async fn every_answer_gets_the_headers() {
        for path in ["/json", "/no/such/route"] {
            let headers = headers_of(path).await;
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
            assert_eq!(headers[header::REFERRER_POLICY], "no-referrer", "{path}");
            assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                DEFAULT_CSP,
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn a_page_keeps_its_own_csp_but_not_a_weaker_nosniff() {
        let headers = headers_of("/page").await;
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], PAGE_CSP);
        assert_eq!(
            headers
                .get_all(header::CONTENT_SECURITY_POLICY)
                .iter()
                .count(),
            1
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
}
