//! The one rescue point: every error the server answers with is an [`ApiError`],
//! turned into a response here, and logged here.
//!
//! - Codes map to statuses in exactly one place ([`status_for`]).
//! - REST answers are RFC 9457 `application/problem+json` with `type`, `title`,
//!   `status`, `detail`, `code` (and `upstream` for `UPSTREAM_ERROR`); requests to
//!   `/graphql` get the same error in GraphQL shape (`errors[].extensions.code`).
//! - Tower errors (the request timeout, the inbound rate limit) are classified by
//!   type with downcasts in [`handle_error`], never by message.
//! - Internal causes are logged, never sent: the client sees a fixed text and the
//!   request id to quote.
//! - A `detail` (so also a GraphQL error message rendered here, and an upstream
//!   `errorMessage`) is cut to [`MAX_DETAIL_BYTES`]: details quote client input (a
//!   bad value, a parser's complaint about it), and an error answer must not grow
//!   with what the client sent (a 300 KB bogus string must not come back whole).

use std::any::Any;
use std::fmt::Display;

use axum::response::{IntoResponse, Response};
use devicegraph_graphql::codes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use serde_json::{Value, json};
use tower::BoxError;

use super::negotiate::{GraphqlMedia, is_graphql};
use super::rate_limit::RateLimited;
use super::request_id::REQUEST_ID_HEADER;

/// Longest `detail` sent, in bytes, "…" included; cut on a character boundary.
pub(crate) const MAX_DETAIL_BYTES: usize = 512;

/// `text` cut to [`MAX_DETAIL_BYTES`], ending with "…" when cut.
fn bounded(mut text: String) -> String {
    if text.len() <= MAX_DETAIL_BYTES {
        return text;
    }
    let mut cut = MAX_DETAIL_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push('…');
    text
}

/// An upstream `{errorCode, errorMessage}` with each string member bounded.
fn bounded_upstream(mut value: Value) -> Value {
    if let Value::Object(members) = &mut value {
        for member in members.values_mut() {
            if let Value::String(text) = member {
                *text = bounded(std::mem::take(text));
            }
        }
    }
    value
}

/// REST-only code for a resource that does not exist (unknown route, device or
/// campaign); added to the contract's list, which the contract allows.
pub(crate) const NOT_FOUND: &str = "NOT_FOUND";

/// The HTTP status of each code. Unknown codes are server faults.
pub(crate) fn status_for(code: &str) -> StatusCode {
    match code {
        codes::BAD_USER_INPUT | codes::QUERY_TOO_COMPLEX => StatusCode::BAD_REQUEST,
        codes::UNAUTHENTICATED => StatusCode::UNAUTHORIZED,
        codes::FORBIDDEN => StatusCode::FORBIDDEN,
        NOT_FOUND => StatusCode::NOT_FOUND,
        codes::RATE_LIMITED => StatusCode::TOO_MANY_REQUESTS,
        codes::UPSTREAM_ERROR => StatusCode::BAD_GATEWAY,
        codes::UPSTREAM_UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
        codes::UPSTREAM_TIMEOUT => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The code as a `'static` constant (codes arriving as text from a GraphQL error
/// are matched against the known set; anything else is `INTERNAL`).
fn known_code(code: &str) -> &'static str {
    [
        codes::BAD_USER_INPUT,
        codes::UNAUTHENTICATED,
        codes::FORBIDDEN,
        codes::RATE_LIMITED,
        codes::QUERY_TOO_COMPLEX,
        codes::UPSTREAM_ERROR,
        codes::UPSTREAM_UNAVAILABLE,
        codes::UPSTREAM_TIMEOUT,
        codes::INTERNAL,
        NOT_FOUND,
    ]
    .into_iter()
    .find(|known| *known == code)
    .unwrap_or(codes::INTERNAL)
}

fn title_for(code: &str) -> &'static str {
    match code {
        codes::BAD_USER_INPUT => "Bad user input",
        codes::UNAUTHENTICATED => "Unauthenticated",
        codes::FORBIDDEN => "Forbidden",
        codes::RATE_LIMITED => "Rate limited",
        codes::QUERY_TOO_COMPLEX => "Query too complex",
        codes::UPSTREAM_ERROR => "Upstream error",
        codes::UPSTREAM_UNAVAILABLE => "Upstream unavailable",
        codes::UPSTREAM_TIMEOUT => "Upstream timeout",
        NOT_FOUND => "Not found",
        _ => "Internal error",
    }
}

/// An error on its way to the client. `detail` must be safe to show. Boxed: errors
/// travel through `Result`s on every handler's path, and the happy path should not
/// pay for their size.
#[derive(Debug, Clone)]
pub(crate) struct ApiError(Box<Details>);

#[derive(Debug, Clone)]
struct Details {
    code: &'static str,
    status: StatusCode,
    detail: String,
    /// `{errorCode, errorMessage}` of an `UPSTREAM_ERROR`.
    upstream: Option<Value>,
    rate_limited: Option<RateLimited>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub(crate) fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Self(Box::new(Details {
            code,
            status: status_for(code),
            detail: bounded(detail.into()),
            upstream: None,
            rate_limited: None,
            headers: Vec::new(),
        }))
    }

    pub(crate) fn bad_input(detail: impl Into<String>) -> Self {
        Self::new(codes::BAD_USER_INPUT, detail)
    }

    pub(crate) fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(codes::UNAUTHENTICATED, detail)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(NOT_FOUND, detail)
    }

    /// A fault of ours: `cause` is logged here and replaced by a fixed text.
    pub(crate) fn internal(cause: &dyn Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Self::new(
            codes::INTERNAL,
            "internal error; quote the request id when reporting it",
        )
    }

    pub(crate) fn rate_limited(refused: RateLimited) -> Self {
        let detail = format!(
            "too many requests from this client; retry after {} s",
            refused.retry_after_secs()
        );
        let mut err = Self::new(codes::RATE_LIMITED, detail);
        err.0.rate_limited = Some(refused);
        err
    }

    /// Keeps the code but answers with another status (413, 415, 406, 405: input
    /// problems that HTTP names more precisely than 400).
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.0.status = status;
        self
    }

    pub(crate) fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    /// The REST form of one GraphQL error (already client-safe: the schema's own
    /// error mapping wrote its message and code).
    pub(crate) fn from_graphql(error: &async_graphql::ServerError) -> Self {
        let json = serde_json::to_value(error).unwrap_or(Value::Null);
        let code = known_code(
            json["extensions"]["code"]
                .as_str()
                .unwrap_or(codes::INTERNAL),
        );
        let mut err = Self::new(code, error.message.clone());
        if code == codes::UPSTREAM_ERROR {
            err.0.upstream = Some(bounded_upstream(json["extensions"]["upstream"].clone()))
                .filter(|v| !v.is_null());
        }
        // A spent upstream-call budget says when it refills.
        if let Some(secs) = json["extensions"]["retryAfter"].as_u64() {
            err = err.with_header(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        err
    }

    /// Renders for the request described by `ctx`, and logs.
    pub(crate) fn respond(self, ctx: &ErrorContext) -> Response {
        self.0.respond(ctx)
    }
}

impl Details {
    fn respond(self, ctx: &ErrorContext) -> Response {
        let request_id = ctx.request_id.as_deref().unwrap_or("");
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, status = self.status.as_u16(), detail = %self.detail, request_id, "request failed");
        } else {
            tracing::debug!(code = self.code, status = self.status.as_u16(), detail = %self.detail, request_id, "request refused");
        }
        let (content_type, body) = match ctx.graphql {
            Some(media) => (media.content_type(), self.graphql_body()),
            None => (
                "application/problem+json",
                self.problem_body(ctx.request_id.as_deref()),
            ),
        };
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(refused) = &self.rate_limited {
            refused.apply_headers(headers);
        }
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }

    fn problem_body(&self, request_id: Option<&str>) -> Value {
        let mut body = json!({
            "type": format!("urn:devicegraph:problem:{}", self.code.to_ascii_lowercase().replace('_', "-")),
            "title": title_for(self.code),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let Some(upstream) = &self.upstream {
            body["upstream"] = upstream.clone();
        }
        if let Some(id) = request_id {
            body["requestId"] = Value::String(id.to_owned());
        }
        body
    }

    fn graphql_body(&self) -> Value {
        let mut extensions = json!({ "code": self.code });
        if let Some(upstream) = &self.upstream {
            extensions["upstream"] = upstream.clone();
        }
        json!({ "errors": [{ "message": self.detail, "extensions": extensions }] })
    }
}

impl IntoResponse for ApiError {
    /// REST shape; code that knows the request uses [`ApiError::respond`].
    fn into_response(self) -> Response {
        self.respond(&ErrorContext::default())
    }
}

/// What the rendering of an error depends on.
#[derive(Debug, Clone, Default)]
pub(crate) struct ErrorContext {
    /// `Some` for `/graphql`: answer in GraphQL shape with this media type.
    pub(crate) graphql: Option<GraphqlMedia>,
    pub(crate) request_id: Option<String>,
}

impl ErrorContext {
    pub(crate) fn of(uri: &Uri, headers: &HeaderMap) -> Self {
        Self {
            graphql: is_graphql(uri).then(|| GraphqlMedia::for_errors(headers)),
            request_id: headers
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }

    pub(crate) fn of_request<B>(request: &http::Request<B>) -> Self {
        Self::of(request.uri(), request.headers())
    }
}

/// `HandleErrorLayer` target: the errors of the tower layers, by type.
pub(crate) async fn handle_error(uri: Uri, headers: HeaderMap, error: BoxError) -> Response {
    classify(error.as_ref()).respond(&ErrorContext::of(&uri, &headers))
}

fn classify(error: &(dyn std::error::Error + 'static)) -> ApiError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(refused) = e.downcast_ref::<RateLimited>() {
            return ApiError::rate_limited(refused.clone());
        }
        if e.is::<tower::timeout::error::Elapsed>() {
            return ApiError::new(
                codes::UPSTREAM_TIMEOUT,
                "the request did not complete within the server's time limit",
            );
        }
        cause = e.source();
    }
    ApiError::internal(&error)
}

/// `CatchPanicLayer` target: a panic is a bug; log it, answer 500.
pub(crate) fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    ApiError::internal(&format!("handler panicked: {message}")).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::http::rate_limit::{ClientKey, InboundConfig, InboundLimiter};

    async fn body_json(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn problem_json_has_the_rfc_9457_members() {
        let ctx = ErrorContext {
            graphql: None,
            request_id: Some("req-1".into()),
        };
        let response = ApiError::bad_input("bad IMEI").respond(&ctx);
        assert_eq!(response.status(), 400);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = body_json(response).await;
        assert_eq!(body["type"], "urn:devicegraph:problem:bad-user-input");
        assert_eq!(body["title"], "Bad user input");
        assert_eq!(body["status"], 400);
        assert_eq!(body["detail"], "bad IMEI");
        assert_eq!(body["code"], "BAD_USER_INPUT");
        assert_eq!(body["requestId"], "req-1");
    }

    #[tokio::test]
    async fn graphql_requests_get_graphql_errors() {
        let ctx = ErrorContext {
            graphql: Some(GraphqlMedia::GraphqlResponseJson),
            request_id: None,
        };
        let response = ApiError::unauthenticated("missing API key").respond(&ctx);
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert!(
            response.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/graphql-response+json")
        );
        let body = body_json(response).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
        assert_eq!(body["errors"][0]["message"], "missing API key");
    }

    #[test]
    fn every_contract_code_has_its_status() {
        let expected = [
            (codes::BAD_USER_INPUT, 400),
            (codes::UNAUTHENTICATED, 401),
            (codes::FORBIDDEN, 403),
            (codes::RATE_LIMITED, 429),
            (codes::QUERY_TOO_COMPLEX, 400),
            (codes::UPSTREAM_ERROR, 502),
            (codes::UPSTREAM_UNAVAILABLE, 503),
            (codes::UPSTREAM_TIMEOUT, 504),
            (codes::INTERNAL, 500),
            ("SOMETHING_NEW", 500),
        ];
        for (code, status) in expected {
            assert_eq!(status_for(code).as_u16(), status, "{code}");
        }
    }

    #[tokio::test]
    async fn tower_errors_are_classified_by_type() {
        let limiter = InboundLimiter::new(InboundConfig {
            per_second: 1,
            burst: 1,
        });
        let key = ClientKey::new("t");
        limiter.check(&key).unwrap();
        let refused = limiter.check(&key).unwrap_err();
        let response = handle_error(
            Uri::from_static("/v1/x"),
            HeaderMap::new(),
            Box::new(refused),
        )
        .await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert!(response.headers().contains_key("ratelimit"));

        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        let response = handle_error(Uri::from_static("/graphql"), HeaderMap::new(), elapsed).await;
        assert_eq!(response.status(), 504);
        let body = body_json(response).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "UPSTREAM_TIMEOUT");

        let other: BoxError = "secret internal detail".into();
        let response = handle_error(Uri::from_static("/v1/x"), HeaderMap::new(), other).await;
        assert_eq!(response.status(), 500);
        let body = body_json(response).await;
        assert!(!body.to_string().contains("secret internal detail"));
    }

    #[tokio::test]
    async fn details_are_bounded_whatever_the_client_sent() {
        // A multi-byte character straddles the cut.
        let echoed = format!("invalid value \"{}\"", "é".repeat(150_000));
        let ctx = ErrorContext::default();
        let body = body_json(ApiError::bad_input(echoed.clone()).respond(&ctx)).await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.len() <= MAX_DETAIL_BYTES, "{} bytes", detail.len());
        assert!(detail.len() > MAX_DETAIL_BYTES - 8, "cut too short");
        assert!(detail.starts_with("invalid value \"éé") && detail.ends_with('…'));

        let ctx = ErrorContext {
            graphql: Some(GraphqlMedia::GraphqlResponseJson),
            request_id: None,
        };
        let body = body_json(ApiError::bad_input(echoed).respond(&ctx)).await;
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.len() <= MAX_DETAIL_BYTES);

        // Short details are untouched.
        assert_eq!(bounded("bad IMEI".to_owned()), "bad IMEI");
        let exact = "a".repeat(MAX_DETAIL_BYTES);
        assert_eq!(bounded(exact.clone()), exact);

        let upstream =
            bounded_upstream(json!({ "errorCode": "E1", "errorMessage": "x".repeat(10_000) }));
        assert_eq!(upstream["errorCode"], "E1");
        assert!(upstream["errorMessage"].as_str().unwrap().len() <= MAX_DETAIL_BYTES);
    }

    #[tokio::test]
    async fn panics_become_a_500_without_the_message() {
        let response = panic_response(Box::new("boom: secret"));
        assert_eq!(response.status(), 500);
        let body = body_json(response).await;
        assert_eq!(body["code"], "INTERNAL");
        assert!(!body.to_string().contains("secret"));
    }
}
