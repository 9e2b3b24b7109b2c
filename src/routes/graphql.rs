//! `/graphql`: GraphQL over HTTP (the GraphQL-over-HTTP spec), plus GraphiQL.
//!
//! - `POST` with `Content-Type: application/json` (`{query, operationName, variables}`),
//!   or `application/graphql` with the query as the body (handy with curl); anything
//!   else is 415.
//! - `GET` with `query`, `operationName`, `variables`, `extensions` in the query
//!   string. There are no mutations, so every GET is safe to run.
//! - Instead of `query`, a request may name a persisted query or trusted document
//!   (Apollo's `extensions.persistedQuery`, or `documentId`); `crate::trusted`
//!   resolves it, and enforces the allow-list, before anything runs.
//! - A client accepting `application/graphql-response+json` gets it, and a request
//!   error (the operation could not start: no query, syntax, validation, limits, a
//!   mutation) is 400; otherwise `application/json` and 200 (the spec's legacy
//!   behaviour). Either way a request error has no `data` member, and no cache status
//!   (`X-Cache`, `extensions.cacheStatus`): nothing was read.
//! - A browser GET (`Accept: text/html`) gets GraphiQL when `graphql.graphiql` is on
//!   (our page over embedded assets: see `crate::graphiql`).
//! - An answer with nothing in it (every root field null) because ThingSpace could not
//!   be called (an open circuit, a full queue, a pause) is 503 with `Retry-After`, in
//!   either media type: the gateway is unavailable for it, and saying so in the status
//!   lets load balancers and retry libraries back off. An answer with nothing in it
//!   because ThingSpace did not answer in time is 504, as on the REST routes. A
//!   partial answer stays 200.
//! - `X-Cache` is `HIT`, `MISS` or `STALE`, as for the REST routes; never `HIT` on an
//!   answer with errors.
//! - Every error object carries `extensions.requestId`, the request's id (the
//!   `X-Request-ID` response header), as the problems of the REST routes do.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::response::{IntoResponse, Response};
use devicegraph_graphql::{AccountScope, CacheStatus, Code, RequestContext};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::graphiql;
use crate::http::body_limit::body_rejection;
use crate::http::identity::Principal;
use crate::http::negotiate::{GraphqlMedia, wants_html};
use crate::http::problem::{ApiError, ErrorContext};
use crate::http::rate_limit::ClientKey;
use crate::response_cache;
use crate::state::AppState;
use crate::trusted::Incoming;

/// `GET /graphql`
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if state.config.graphql.graphiql && wants_html(&headers) {
        return graphiql::page::respond(&state.graphiql_page);
    }
    let errors = ErrorContext::graphql(GraphqlMedia::for_errors(&headers));
    let Some(media) = GraphqlMedia::negotiate(&headers) else {
        return not_acceptable().respond(&errors);
    };
    let query = query.unwrap_or_default();
    let raw = raw_request(
        &state,
        &caller,
        &headers,
        media,
        &[b"GET", query.as_bytes()],
    );
    if let Some(answer) = stored_by_bytes(&state, raw.as_ref(), media, &headers) {
        return answer;
    }
    let incoming = match Incoming::from_query_string(&query) {
        Ok(incoming) => incoming,
        Err(e) => {
            return ApiError::bad_input(format!("invalid GraphQL GET parameters: {e}"))
                .respond(&errors);
        }
    };
    run(&state, caller, &headers, media, incoming, raw).await
}

/// `POST /graphql`
pub(crate) async fn post(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let errors = ErrorContext::graphql(GraphqlMedia::for_errors(&headers));
    let Some(media) = GraphqlMedia::negotiate(&headers) else {
        return not_acceptable().respond(&errors);
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return body_rejection(&rejection, state.config.limits.max_body_bytes).respond(&errors);
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let raw = raw_request(
        &state,
        &caller,
        &headers,
        media,
        &[b"POST", content_type.as_bytes(), &body],
    );
    if let Some(answer) = stored_by_bytes(&state, raw.as_ref(), media, &headers) {
        return answer;
    }
    let incoming = match content_type.as_str() {
        "application/json" => match Incoming::from_json(&body) {
            Ok(incoming) => incoming,
            Err(e) => {
                return ApiError::bad_input(format!(
                    "the body is not a GraphQL request ({{\"query\": ..., \"variables\": ...}}): {e}"
                ))
                .respond(&errors);
            }
        },
        "application/graphql" => match std::str::from_utf8(&body) {
            Ok(query) => Incoming::text(query),
            Err(_) => return ApiError::bad_input("the query is not UTF-8").respond(&errors),
        },
        _ => {
            return ApiError::bad_input(
                "send the request as Content-Type: application/json (or application/graphql)",
            )
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .respond(&errors);
        }
    };
    run(&state, caller, &headers, media, incoming, raw).await
}

/// The request as bytes for the response cache's index of requests seen before:
/// who asks (the principal's name; names are unique, and each has one scope), the
/// media type answered, and `request` (method, content type, body or query string).
/// `None` when the cache is off or the caller asks for a cost report.
fn raw_request(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    media: GraphqlMedia,
    request: &[&[u8]],
) -> Option<response_cache::RawRequest> {
    if headers.contains_key(COST_HEADER) {
        return None;
    }
    let name = caller
        .principal
        .as_ref()
        .map_or(&[][..], |Extension(p)| p.name.as_bytes());
    let mut parts = Vec::with_capacity(request.len() + 2);
    parts.extend_from_slice(&[name, media.content_type().as_bytes()]);
    parts.extend_from_slice(request);
    state.responses.raw_request(&parts)
}

/// The stored answer to exactly these request bytes, when it is still current:
/// no parsing, no canonical text, no key hashed.
fn stored_by_bytes(
    state: &AppState,
    raw: Option<&response_cache::RawRequest>,
    media: GraphqlMedia,
    headers: &HeaderMap,
) -> Option<Response> {
    let key = state.responses.key_of(raw?)?;
    let hit = state.responses.get(&key, &state.store)?;
    Some(response_cache::stored_answer(
        &hit,
        media.content_type(),
        headers,
    ))
}

fn not_acceptable() -> ApiError {
    ApiError::bad_input("accept application/graphql-response+json or application/json")
        .with_status(StatusCode::NOT_ACCEPTABLE)
}

/// The scope of a caller; without a principal (which the stack always sets), nothing.
pub(crate) fn scope_of(principal: Option<Extension<Principal>>) -> AccountScope {
    principal
        .map(|Extension(p)| p.scope)
        .unwrap_or_else(|| AccountScope::Only(HashSet::new()))
}

/// Who sent a request, as the identity middleware recorded them (an extractor: a
/// request the middleware did not identify has no principal, so no account scope).
pub(crate) struct Caller {
    pub(crate) principal: Option<Extension<Principal>>,
    pub(crate) client: Option<Extension<ClientKey>>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = Option::<Extension<Principal>>::from_request_parts(parts, state).await?;
        let client = Option::<Extension<ClientKey>>::from_request_parts(parts, state).await?;
        Ok(Self { principal, client })
    }
}

impl Caller {
    /// The executor's view of this caller: scope, tenant and upstream budget. (The
    /// request id is the task-local the request-id middleware scoped for the whole
    /// request.)
    pub(crate) fn context(self, state: &AppState) -> RequestContext {
        let mut ctx = RequestContext::new(scope_of(self.principal));
        // Reads stop waiting for the upstream a little before the request's timeout,
        // so a stale copy still goes out instead of the timeout's 504.
        let timeout = state.config.server.request_timeout;
        let margin = (timeout / 10).min(std::time::Duration::from_secs(1));
        ctx.deadline = tokio::time::Instant::now().checked_add(timeout.saturating_sub(margin));
        if let Some(Extension(client)) = self.client {
            ctx.tenant = Some(Arc::from(client.as_str()));
            ctx.budget = state.budgets.for_client(client);
        }
        ctx
    }
}

/// Request header asking for `extensions.cost` (estimated and actual upstream calls).
pub(crate) const COST_HEADER: &str = "x-devicegraph-cost";

/// Resolves a trusted document or persisted query, then executes for `caller`.
async fn run(
    state: &AppState,
    caller: Caller,
    headers: &HeaderMap,
    media: GraphqlMedia,
    incoming: Incoming,
    raw: Option<response_cache::RawRequest>,
) -> Response {
    let request_headers = headers;
    let request = match state.trusted.resolve(incoming) {
        Ok(request) => request,
        Err(refusal) => return refusal.respond(media),
    };
    let mut ctx = caller.context(state);
    ctx.report_cost = headers.contains_key(COST_HEADER);
    // An answer stored for this caller's scope, operation and variables, still
    // current: served (or 304) without executing anything.
    let cache_key = (state.responses.enabled() && !ctx.report_cost)
        .then(|| response_key(&ctx.scope, media, &request));
    if let (Some(key), Some(raw)) = (cache_key, raw) {
        state.responses.remember(raw, key);
    }
    if let Some(key) = &cache_key
        && let Some(hit) = state.responses.get(key, &state.store)
    {
        return response_cache::stored_answer(&hit, media.content_type(), headers);
    }
    let mut executed = devicegraph_graphql::execute(&state.schema, request, ctx).await;
    let request_id = devicegraph_upstream::current_request_id();
    if let Some(id) = &request_id {
        for error in &mut executed.response.errors {
            let extensions = error.extensions.get_or_insert_with(Default::default);
            extensions.set("requestId", id.as_str());
        }
    }
    // A request error: nothing executed, so no `data` (in either media type) and, in
    // the new media type, 400.
    let request_error = executed.is_request_error();
    let response = &executed.response;
    // A spent upstream budget says when to come back, as HTTP does.
    let retry_after = response.errors.iter().find_map(|e| {
        if devicegraph_graphql::code_of(e) != Some(Code::RateLimited) {
            return None;
        }
        match e.extensions.as_ref()?.get("retryAfter")? {
            async_graphql::Value::Number(secs) => secs.as_u64(),
            _ => None,
        }
    });
    // Nothing answered, and an upstream we could not call said when to come back (an
    // open circuit, a full queue, a pause): the whole answer is unavailable, and HTTP
    // has a status for that which clients, proxies and retry libraries understand.
    let unavailable_for = if request_error || !nothing_answered(&response.data) {
        None
    } else {
        response.errors.iter().find_map(|e| {
            if devicegraph_graphql::code_of(e) != Some(Code::UpstreamUnavailable) {
                return None;
            }
            match e.extensions.as_ref()?.get("retryAfter")? {
                async_graphql::Value::Number(secs) => secs.as_u64(),
                _ => None,
            }
        })
    };
    let max_bytes = usize::try_from(state.config.limits.max_response_bytes).unwrap_or(usize::MAX);
    // Serialized straight from the executor's ordered maps: response keys keep the
    // selection order the GraphQL spec asks for, and the hot path serializes once.
    let serialized = if request_error {
        #[derive(serde::Serialize)]
        struct RequestError<'a> {
            errors: &'a [async_graphql::ServerError],
            #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
            extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
        }
        let status = match media {
            GraphqlMedia::GraphqlResponseJson if retry_after.is_some() => {
                StatusCode::TOO_MANY_REQUESTS
            }
            GraphqlMedia::GraphqlResponseJson => StatusCode::BAD_REQUEST,
            // The spec's legacy behaviour for `application/json`.
            GraphqlMedia::Json => StatusCode::OK,
        };
        let body = RequestError {
            errors: &response.errors,
            extensions: &response.extensions,
        };
        bounded_json(&body, max_bytes).map(|body| (status, body))
    } else {
        bounded_json(response, max_bytes).map(|body| (StatusCode::OK, body))
    };
    let (status, body) = match serialized {
        Ok(answer) => answer,
        Err(Oversize) => {
            tracing::warn!(
                max_bytes,
                "response over limits.max_response_bytes replaced by an error"
            );
            let mut extensions = serde_json::json!({ "code": Code::QueryTooComplex.as_str() });
            if let Some(id) = request_id {
                extensions["requestId"] = serde_json::Value::String(id);
            }
            let body = serde_json::json!({
                "data": null,
                "errors": [{
                    "message": format!(
                        "the response would be larger than {max_bytes} bytes \
                         (limits.max_response_bytes); ask for fewer devices or fields"
                    ),
                    "extensions": extensions,
                }],
            });
            (StatusCode::OK, body.to_string().into_bytes())
        }
    };
    // Nothing answered because ThingSpace did not answer in time (the call's, the
    // shared fetch's or the request's deadline): 504, as REST and the request timeout
    // say it.
    let timed_out = !request_error
        && nothing_answered(&response.data)
        && response
            .errors
            .iter()
            .any(|e| devicegraph_graphql::code_of(e) == Some(Code::UpstreamTimeout));
    let status = match unavailable_for {
        Some(_) if status == StatusCode::OK => StatusCode::SERVICE_UNAVAILABLE,
        None if timed_out && status == StatusCode::OK => StatusCode::GATEWAY_TIMEOUT,
        _ => status,
    };
    let body = Bytes::from(body);
    // A complete answer built only from current cache entries is stored, and says
    // how long it stays current.
    let validators = match (cache_key, executed.dependencies.take()) {
        (Some(key), Some(deps)) if status == StatusCode::OK => {
            let stored = as_stored(&body, executed.cache_status);
            state
                .responses
                .put(key, media.content_type(), stored, deps, &state.store)
        }
        _ => None,
    };
    if let Some((etag, _)) = &validators
        && response_cache::holds(request_headers, etag)
    {
        let mut answer = StatusCode::NOT_MODIFIED.into_response();
        answer.headers_mut().insert(
            response_cache::RESPONSE_CACHE_HEADER,
            HeaderValue::from_static("MISS"),
        );
        if let Some((etag, fresh_for)) = validators {
            response_cache::set_validators(answer.headers_mut(), etag, fresh_for, 0);
        }
        return answer;
    }
    let mut answer = (status, body).into_response();
    let headers = answer.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.content_type()),
    );
    // A request error read nothing: it has no cache status.
    if !request_error {
        headers.insert(
            "x-cache",
            HeaderValue::from_static(executed.cache_status.as_str()),
        );
    }
    if let Some(secs) = retry_after.or(unavailable_for) {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some((etag, fresh_for)) = validators {
        headers.insert(
            response_cache::RESPONSE_CACHE_HEADER,
            HeaderValue::from_static("MISS"),
        );
        response_cache::set_validators(headers, etag, fresh_for, 0);
    }
    answer
}

/// Whether `data` holds no answer at all: null, or every root field null.
fn nothing_answered(data: &async_graphql::Value) -> bool {
    match data {
        async_graphql::Value::Null => true,
        async_graphql::Value::Object(fields) => fields
            .values()
            .all(|v| matches!(v, async_graphql::Value::Null)),
        _ => false,
    }
}

/// The response-cache key of `request` asked by a caller with `scope`.
fn response_key(
    scope: &devicegraph_graphql::AccountScope,
    media: GraphqlMedia,
    request: &async_graphql::Request,
) -> [u8; 32] {
    let variables = serde_json::to_value(&request.variables).unwrap_or_default();
    response_cache::key(
        scope,
        &[
            b"graphql",
            media.content_type().as_bytes(),
            response_cache::canonical_query(&request.query).as_bytes(),
            request.operation_name.as_deref().unwrap_or("").as_bytes(),
            &response_cache::canonical_json(&variables),
        ],
    )
}

/// The body as later requests get it: its `extensions.cacheStatus` says `HIT`.
/// (Bodies end with the extensions object, so the last occurrence is that member;
/// a string inside `data` cannot hold the sequence unescaped.)
fn as_stored(body: &Bytes, status: CacheStatus) -> Bytes {
    let miss = format!("\"cacheStatus\":\"{}\"", status.as_str());
    let hit = format!("\"cacheStatus\":\"{}\"", CacheStatus::Hit.as_str());
    if status == CacheStatus::Hit {
        return body.clone();
    }
    match find_last(body, miss.as_bytes()) {
        Some(at) => {
            let mut out = Vec::with_capacity(body.len());
            out.extend_from_slice(&body[..at]);
            out.extend_from_slice(hit.as_bytes());
            out.extend_from_slice(&body[at + miss.len()..]);
            Bytes::from(out)
        }
        None => body.clone(),
    }
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// The serialized body would pass `limits.max_response_bytes`.
struct Oversize;

/// `value` as JSON, stopping (without building the rest) once past `max` bytes.
fn bounded_json(value: &impl serde::Serialize, max: usize) -> Result<Vec<u8>, Oversize> {
    struct Capped {
        out: Vec<u8>,
        max: usize,
    }
    impl std::io::Write for Capped {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.out.len() + buf.len() > self.max {
                return Err(std::io::Error::other("over limits.max_response_bytes"));
            }
            self.out.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut capped = Capped {
        out: Vec::with_capacity(1024),
        max,
    };
    serde_json::to_writer(&mut capped, value).map_err(|_| Oversize)?;
    Ok(capped.out)
}
