//! `/graphql`: GraphQL over HTTP (the GraphQL-over-HTTP spec), plus GraphiQL.
//!
//! - `POST` with `Content-Type: application/json` (`{query, operationName, variables}`),
//!   or `application/graphql` with the query as the body (handy with curl); anything
//!   else is 415.
//! - `GET` with `query`, `operationName`, `variables` in the query string. There are no
//!   mutations, so every GET is safe to run.
//! - A client accepting `application/graphql-response+json` gets it, and a request
//!   error (the operation could not start: syntax, validation, limits) is 400 with no
//!   `data`; otherwise `application/json` and 200 (the spec's legacy behaviour).
//! - A browser GET (`Accept: text/html`) gets GraphiQL when `graphql.graphiql` is on
//!   (our page over embedded assets: see `super::graphiql`).
//! - `X-Cache` is `HIT`, `MISS` or `STALE`, as for the REST routes.

use std::collections::HashSet;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use devicegraph_graphql::{AccountScope, RequestContext};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::graphiql;
use crate::http::body_limit::body_rejection;
use crate::http::identity::Principal;
use crate::http::negotiate::{GraphqlMedia, wants_html};
use crate::http::problem::{ApiError, ErrorContext};
use crate::http::request_id::RequestId;
use crate::state::AppState;

/// `GET /graphql`
pub(crate) async fn get(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if state.config.graphql.graphiql && wants_html(&headers) {
        return graphiql::page::respond(&state.graphiql_page);
    }
    let errors = error_context(&headers, request_id.as_ref());
    let Some(media) = GraphqlMedia::negotiate(&headers) else {
        return not_acceptable().respond(&errors);
    };
    let query = query.unwrap_or_default();
    let request = match async_graphql::http::parse_query_string(&query) {
        Ok(request) => request,
        Err(e) => {
            return ApiError::bad_input(format!("invalid GraphQL GET parameters: {e}"))
                .respond(&errors);
        }
    };
    run(&state, principal, request_id, media, request).await
}

/// `POST /graphql`
pub(crate) async fn post(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let errors = error_context(&headers, request_id.as_ref());
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
    let request = match content_type.as_str() {
        "application/json" => match serde_json::from_slice::<async_graphql::Request>(&body) {
            Ok(request) => request,
            Err(e) => {
                return ApiError::bad_input(format!(
                    "the body is not a GraphQL request ({{\"query\": ..., \"variables\": ...}}): {e}"
                ))
                .respond(&errors);
            }
        },
        "application/graphql" => match std::str::from_utf8(&body) {
            Ok(query) => async_graphql::Request::new(query),
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
    run(&state, principal, request_id, media, request).await
}

fn error_context(headers: &HeaderMap, request_id: Option<&Extension<RequestId>>) -> ErrorContext {
    ErrorContext {
        graphql: Some(GraphqlMedia::for_errors(headers)),
        request_id: request_id.map(|Extension(id)| id.0.clone()),
    }
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

async fn run(
    state: &AppState,
    principal: Option<Extension<Principal>>,
    request_id: Option<Extension<RequestId>>,
    media: GraphqlMedia,
    request: async_graphql::Request,
) -> Response {
    let ctx = RequestContext {
        scope: scope_of(principal),
        request_id: request_id.map(|Extension(id)| id.0),
    };
    let executed = devicegraph_graphql::execute(&state.schema, request, ctx).await;
    let response = &executed.response;
    // A request error: nothing executed, so no `data` and (in the new media type) 400.
    let request_error = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    // Serialized straight from the executor's ordered maps: response keys keep the
    // selection order the GraphQL spec asks for, and the hot path serializes once.
    let (status, body) = if request_error && media == GraphqlMedia::GraphqlResponseJson {
        let mut object = serde_json::Map::new();
        match serde_json::to_value(&response.errors) {
            Ok(errors) => object.insert("errors".to_owned(), errors),
            Err(e) => return ApiError::internal(&e).respond(&ErrorContext::default()),
        };
        if !response.extensions.is_empty() {
            match serde_json::to_value(&response.extensions) {
                Ok(ext) => object.insert("extensions".to_owned(), ext),
                Err(e) => return ApiError::internal(&e).respond(&ErrorContext::default()),
            };
        }
        (
            StatusCode::BAD_REQUEST,
            serde_json::Value::Object(object).to_string().into_bytes(),
        )
    } else {
        match serde_json::to_vec(response) {
            Ok(body) => (StatusCode::OK, body),
            Err(e) => return ApiError::internal(&e).respond(&ErrorContext::default()),
        }
    };
    let mut answer = (status, body).into_response();
    let headers = answer.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.content_type()),
    );
    headers.insert(
        "x-cache",
        HeaderValue::from_static(executed.cache_status.as_str()),
    );
    answer
}
