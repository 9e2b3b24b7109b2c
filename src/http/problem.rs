//! The one rescue point: every error the server answers with is an [`ApiError`],
//! turned into a response here, and logged here with the request id: REST problems,
//! and on `/graphql` the refusals before execution (authentication, limits, bodies,
//! persisted queries and trusted documents) in GraphQL shape. The errors the executor
//! returns are already coded by the GraphQL crate's mapping and are sent as it wrote
//! them (`routes::graphql`); REST re-reads them here ([`ApiError::from_graphql`]).
//!
//! - Codes, their statuses and titles are one table, [`Code`] (the GraphQL crate's
//!   mapping from failures to codes uses the same enum).
//! - REST answers are RFC 9457 `application/problem+json` with `type`, `title`,
//!   `status`, `detail`, `code` (and `upstream`, ThingSpace's `errorCode` and
//!   `errorMessage`, for `UPSTREAM_ERROR` and an upstream `NOT_FOUND`); requests to
//!   `/graphql` get the same error in GraphQL shape (`errors[].extensions.code`).
//! - Tower errors (the request timeout, the inbound rate limit) are classified by
//!   type with downcasts in [`handle_error`], never by message.
//! - Internal causes are logged, never sent: the client sees a fixed text and the
//!   request id to quote.
//! - Every error answer rendered while a request is served carries its request id
//!   (`requestId` in a problem, `extensions.requestId` in a GraphQL error): it is the
//!   task-local the request-id middleware scopes around the whole stack
//!   (`devicegraph_upstream::current_request_id`), so routes and middleware alike
//!   have it without passing it along.
//! - A `detail` (so also a GraphQL error message rendered here, and an upstream
//!   `errorMessage`) is cut to [`MAX_DETAIL_BYTES`]: details quote client input (a
//!   bad value, a parser's complaint about it), and an error answer must not grow
//!   with what the client sent (a 300 KB bogus string must not come back whole).

use std::any::Any;
use std::fmt::Display;

use axum::response::{IntoResponse, Response};
use devicegraph_graphql::{Code, code_of};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use serde_json::{Value, json};
use tower::BoxError;

use super::negotiate::{GraphqlMedia, is_graphql};
use super::rate_limit::RateLimited;

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

/// The HTTP status of `code` ([`Code::http_status`], always a valid status).
fn status_of(code: Code) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An error on its way to the client. `detail` must be safe to show. Boxed: errors
/// travel through `Result`s on every handler's path, and the happy path should not
/// pay for their size.
#[derive(Debug, Clone)]
pub(crate) struct ApiError(Box<Details>);

#[derive(Debug, Clone)]
struct Details {
    code: Code,
    status: StatusCode,
    detail: String,
    /// `{errorCode, errorMessage}` of an `UPSTREAM_ERROR` or an upstream `NOT_FOUND`.
    upstream: Option<Value>,
    rate_limited: Option<RateLimited>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub(crate) fn new(code: Code, detail: impl Into<String>) -> Self {
        Self(Box::new(Details {
            code,
            status: status_of(code),
            detail: bounded(detail.into()),
            upstream: None,
            rate_limited: None,
            headers: Vec::new(),
        }))
    }

    pub(crate) fn bad_input(detail: impl Into<String>) -> Self {
        Self::new(Code::BadUserInput, detail)
    }

    pub(crate) fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, detail)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(Code::NotFound, detail)
    }

    /// A fault of ours: `cause` is logged here and replaced by a fixed text.
    pub(crate) fn internal(cause: &dyn Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Self::new(
            Code::Internal,
            "internal error; quote the request id when reporting it",
        )
    }

    pub(crate) fn rate_limited(refused: RateLimited) -> Self {
        let detail = format!(
            "too many requests from this client; retry after {} s",
            refused.retry_after_secs()
        );
        let mut err = Self::new(Code::RateLimited, detail);
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
        let code = code_of(error).unwrap_or(Code::Internal);
        let extensions = error.extensions.as_ref();
        let mut err = Self::new(code, error.message.clone());
        if matches!(code, Code::UpstreamError | Code::NotFound) {
            err.0.upstream = extensions
                .and_then(|e| e.get("upstream"))
                .and_then(|v| v.clone().into_json().ok())
                .filter(|v| !v.is_null())
                .map(bounded_upstream);
        }
        // A spent upstream-call budget says when it refills.
        if let Some(async_graphql::Value::Number(secs)) =
            extensions.and_then(|e| e.get("retryAfter"))
            && let Some(secs) = secs.as_u64()
        {
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
        let request_id = devicegraph_upstream::current_request_id();
        let id = request_id.as_deref();
        if self.status.is_server_error() {
            tracing::warn!(code = self.code.as_str(), status = self.status.as_u16(), detail = %self.detail, request_id = id.unwrap_or(""), "request failed");
        } else {
            tracing::debug!(code = self.code.as_str(), status = self.status.as_u16(), detail = %self.detail, request_id = id.unwrap_or(""), "request refused");
        }
        let (content_type, body) = match ctx.graphql {
            Some(media) => (media.content_type(), self.graphql_body(id)),
            None => ("application/problem+json", self.problem_body(id)),
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
            "type": format!("urn:devicegraph:problem:{}", self.code.as_str().to_ascii_lowercase().replace('_', "-")),
            "title": self.code.title(),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code.as_str(),
        });
        if let Some(upstream) = &self.upstream {
            body["upstream"] = upstream.clone();
        }
        if let Some(id) = request_id {
            body["requestId"] = Value::String(id.to_owned());
        }
        body
    }

    fn graphql_body(&self, request_id: Option<&str>) -> Value {
        let mut extensions = json!({ "code": self.code.as_str() });
        if let Some(upstream) = &self.upstream {
            extensions["upstream"] = upstream.clone();
        }
        if let Some(id) = request_id {
            extensions["requestId"] = Value::String(id.to_owned());
        }
        json!({ "errors": [{ "message": self.detail, "extensions": extensions }] })
    }
}

impl IntoResponse for ApiError {
    /// REST shape; code that knows the request uses [`ApiError::respond`].
    fn into_response(self) -> Response {
        self.respond(&ErrorContext::rest())
    }
}

/// What the rendering of an error depends on (the request id is the task-local).
#[derive(Debug, Clone)]
pub(crate) struct ErrorContext {
    /// `Some` for `/graphql`: answer in GraphQL shape with this media type.
    pub(crate) graphql: Option<GraphqlMedia>,
}

impl ErrorContext {
    /// A problem (`application/problem+json`).
    pub(crate) fn rest() -> Self {
        Self { graphql: None }
    }

    /// A GraphQL error answer in `media`.
    pub(crate) fn graphql(media: GraphqlMedia) -> Self {
        Self {
            graphql: Some(media),
        }
    }

    /// The shape the request to `uri` gets: GraphQL on `/graphql`, else a problem.
    pub(crate) fn of(uri: &Uri, headers: &HeaderMap) -> Self {
        Self {
            graphql: is_graphql(uri).then(|| GraphqlMedia::for_errors(headers)),
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
                Code::UpstreamTimeout,
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
        let response = devicegraph_upstream::with_request_id("req-1".into(), async {
            ApiError::bad_input("bad IMEI").respond(&ErrorContext::rest())
        })
        .await;
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

        // Outside a request (no id scoped), no member rather than a made-up one.
        let body = body_json(ApiError::bad_input("bad IMEI").into_response()).await;
        assert!(body.get("requestId").is_none(), "{body}");
    }

    #[tokio::test]
    async fn graphql_requests_get_graphql_errors() {
        let ctx = ErrorContext::graphql(GraphqlMedia::GraphqlResponseJson);
        let response = devicegraph_upstream::with_request_id("req-2".into(), async {
            ApiError::unauthenticated("missing API key").respond(&ctx)
        })
        .await;
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
        assert_eq!(body["errors"][0]["extensions"]["requestId"], "req-2");
        assert_eq!(body["errors"][0]["message"], "missing API key");
    }

    #[test]
    fn every_contract_code_has_its_status() {
        let expected = [
            ("BAD_USER_INPUT", 400),
            ("UNAUTHENTICATED", 401),
            ("FORBIDDEN", 403),
            ("NOT_FOUND", 404),
            ("RATE_LIMITED", 429),
            ("QUERY_TOO_COMPLEX", 400),
            ("UPSTREAM_ERROR", 502),
            ("UPSTREAM_UNAVAILABLE", 503),
            ("UPSTREAM_TIMEOUT", 504),
            ("INTERNAL", 500),
            // An unknown code read back from a GraphQL error is INTERNAL.
            ("SOMETHING_NEW", 500),
        ];
        for (code, status) in expected {
            let code = Code::parse(code).unwrap_or(Code::Internal);
            assert_eq!(status_of(code).as_u16(), status, "{code}");
        }
        for code in Code::ALL {
            assert!(StatusCode::from_u16(code.http_status()).is_ok(), "{code}");
            assert_eq!(Code::parse(code.as_str()), Some(code));
            assert_eq!(code.as_str().parse::<Code>(), Ok(code));
        }
    }

    /// `from_graphql` reads the code and the `upstream`/`retryAfter` extensions.
    #[test]
    fn graphql_errors_keep_their_code_and_extensions() {
        let mut error = async_graphql::ServerError::new("the upstream answered", None);
        let extensions = error.extensions.get_or_insert_with(Default::default);
        extensions.set("code", "UPSTREAM_ERROR");
        extensions.set(
            "upstream",
            async_graphql::Value::from_json(json!({ "errorCode": "E1", "errorMessage": "no" }))
                .unwrap(),
        );
        extensions.set("retryAfter", 7);
        let err = ApiError::from_graphql(&error);
        assert_eq!(err.0.code, Code::UpstreamError);
        assert_eq!(err.0.status, 502);
        assert_eq!(
            err.0.upstream,
            Some(json!({ "errorCode": "E1", "errorMessage": "no" }))
        );
        assert!(
            err.0
                .headers
                .iter()
                .any(|(name, value)| name == header::RETRY_AFTER && value == "7")
        );

        let mut unknown = async_graphql::ServerError::new("x", None);
        unknown
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", "SOMETHING_NEW");
        assert_eq!(ApiError::from_graphql(&unknown).0.code, Code::Internal);
        let bare = async_graphql::ServerError::new("x", None);
        assert_eq!(ApiError::from_graphql(&bare).0.code, Code::Internal);
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
        let ctx = ErrorContext::rest();
        let body = body_json(ApiError::bad_input(echoed.clone()).respond(&ctx)).await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.len() <= MAX_DETAIL_BYTES, "{} bytes", detail.len());
        assert!(detail.len() > MAX_DETAIL_BYTES - 8, "cut too short");
        assert!(detail.starts_with("invalid value \"éé") && detail.ends_with('…'));

        let ctx = ErrorContext::graphql(GraphqlMedia::GraphqlResponseJson);
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
        let response = devicegraph_upstream::with_request_id("req-3".into(), async {
            panic_response(Box::new("boom: secret"))
        })
        .await;
        assert_eq!(response.status(), 500);
        let body = body_json(response).await;
        assert_eq!(body["code"], "INTERNAL");
        assert_eq!(
            body["requestId"], "req-3",
            "the id to quote when reporting it"
        );
        assert!(!body.to_string().contains("secret"));
    }
}
