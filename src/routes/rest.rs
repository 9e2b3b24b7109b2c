//! The `/v1` JSON API. Each route checks its path and query parameters, runs one
//! GraphQL operation through the same `execute` as `/graphql`, and answers with that
//! operation's data: the same fields and formats as GraphQL, by construction.
//! Errors are problem+json (via the rescue point), and `X-Cache` reports freshness.

use std::str::FromStr;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use devicegraph_graphql::{CacheStatus, RequestContext};
use devicegraph_upstream::{AccountName, CampaignId, Imei};
use http::HeaderValue;
use serde::Deserialize;
use serde_json::{Value, json};

use super::documents::{self, Include};
use super::graphql::scope_of;
use crate::http::body_limit::body_rejection;
use crate::http::identity::Principal;
use crate::http::problem::{ApiError, ErrorContext};
use crate::http::rate_limit::ClientKey;
use crate::http::request_id::RequestId;
use crate::state::AppState;

/// Most IMEIs one batch request may name.
pub(crate) const MAX_BATCH: usize = 1000;

/// Default page size of the campaign devices route.
const DEFAULT_LIMIT: usize = 100;

/// What every handler needs to run an operation and to render an error.
struct Caller {
    principal: Option<Extension<Principal>>,
    client: Option<Extension<ClientKey>>,
    request_id: Option<String>,
}

impl Caller {
    fn new(
        principal: Option<Extension<Principal>>,
        client: Option<Extension<ClientKey>>,
        request_id: Option<Extension<RequestId>>,
    ) -> Self {
        Self {
            principal,
            client,
            request_id: request_id.map(|Extension(id)| id.0),
        }
    }

    fn errors(&self) -> ErrorContext {
        ErrorContext {
            graphql: None,
            request_id: self.request_id.clone(),
        }
    }

    /// Runs `query` and returns its `data`, or the first error as a problem.
    async fn run(
        self,
        state: &AppState,
        query: String,
        variables: Value,
    ) -> Result<(Value, CacheStatus), ApiError> {
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(variables));
        let mut ctx = RequestContext::new(scope_of(self.principal));
        if let Some(Extension(client)) = self.client {
            ctx.tenant = Some(std::sync::Arc::from(client.as_str()));
            ctx.budget = state.budgets.for_client(client);
        }
        let executed = devicegraph_graphql::execute(&state.schema, request, ctx).await;
        if let Some(error) = executed.response.errors.first() {
            return Err(ApiError::from_graphql(error));
        }
        let data =
            serde_json::to_value(&executed.response.data).map_err(|e| ApiError::internal(&e))?;
        Ok((data, executed.cache_status))
    }
}

fn json_response(body: Value, cache: CacheStatus) -> Response {
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert("x-cache", HeaderValue::from_static(cache.as_str()));
    response
}

fn account(raw: &str) -> Result<AccountName, ApiError> {
    AccountName::from_str(raw)
        .map_err(|e| ApiError::bad_input(format!("path parameter `account`: {e}")))
}

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn include_of(pairs: &[(String, String)]) -> Result<Include, ApiError> {
    let list: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "include")
        .map(|(_, v)| v.as_str())
        .collect();
    Include::parse(&list.join(","))
        .map_err(|e| ApiError::bad_input(format!("query parameter `include`: {e}")))
}

fn path_error(rejection: &PathRejection) -> ApiError {
    ApiError::bad_input(format!("invalid path: {}", rejection.body_text()))
}

/// `GET /v1/accounts/{account}/devices/{imei}?include=upgradeHistory,checkIns`
pub(crate) async fn device(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    client: Option<Extension<ClientKey>>,
    request_id: Option<Extension<RequestId>>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let caller = Caller::new(principal, client, request_id);
    let errors = caller.errors();
    let answer = async {
        let Path((account_raw, imei_raw)) = path.map_err(|r| path_error(&r))?;
        let account = account(&account_raw)?;
        let imei = Imei::from_str(&imei_raw)
            .map_err(|e| ApiError::bad_input(format!("path parameter `imei`: {e}")))?;
        let include = include_of(&query_pairs(query.as_deref()))?;
        let variables = json!({ "account": account.as_str(), "imei": imei.as_str() });
        let (data, cache) = caller
            .run(&state, documents::device(include), variables)
            .await?;
        match data.get("device") {
            Some(device) if !device.is_null() => Ok(json_response(device.clone(), cache)),
            _ => Err(ApiError::not_found(format!(
                "account {account} has no device {imei}"
            ))),
        }
    };
    answer
        .await
        .unwrap_or_else(|e: ApiError| e.respond(&errors))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    imeis: Vec<String>,
}

/// `POST /v1/accounts/{account}/devices:batch` with `{"imeis": [...]}`
pub(crate) async fn devices_batch(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    client: Option<Extension<ClientKey>>,
    request_id: Option<Extension<RequestId>>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let caller = Caller::new(principal, client, request_id);
    let errors = caller.errors();
    let max_body = state.config.limits.max_body_bytes;
    let answer = async {
        let Path(account_raw) = path.map_err(|r| path_error(&r))?;
        let account = account(&account_raw)?;
        let include = include_of(&query_pairs(query.as_deref()))?;
        let body = body.map_err(|r| body_rejection(&r, max_body))?;
        // The body is parsed as JSON whatever its Content-Type: curl's default form
        // type with a JSON body is a common slip that costs nothing to accept.
        let batch: BatchBody = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_input(format!(
                "body must be {{\"imeis\": [\"<IMEI>\", ...]}}: {e}"
            ))
        })?;
        if batch.imeis.len() > MAX_BATCH {
            return Err(ApiError::bad_input(format!(
                "at most {MAX_BATCH} IMEIs per batch, got {}",
                batch.imeis.len()
            )));
        }
        let mut imeis = Vec::with_capacity(batch.imeis.len());
        for (i, raw) in batch.imeis.iter().enumerate() {
            let imei =
                Imei::from_str(raw).map_err(|e| ApiError::bad_input(format!("imeis[{i}]: {e}")))?;
            imeis.push(imei);
        }
        let variables = json!({
            "account": account.as_str(),
            "imeis": imeis.iter().map(Imei::as_str).collect::<Vec<_>>(),
        });
        let (data, cache) = caller
            .run(&state, documents::devices(include), variables)
            .await?;
        let listed = data
            .get("devices")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut devices = Vec::new();
        let mut not_found = Vec::new();
        for (imei, device) in imeis
            .iter()
            .zip(listed.into_iter().chain(std::iter::repeat(Value::Null)))
        {
            if device.is_null() {
                not_found.push(imei.as_str().to_owned());
            } else {
                devices.push(device);
            }
        }
        Ok(json_response(
            json!({ "devices": devices, "notFound": not_found }),
            cache,
        ))
    };
    answer
        .await
        .unwrap_or_else(|e: ApiError| e.respond(&errors))
}

/// `GET /v1/accounts/{account}/campaigns/{id}/devices?limit=&cursor=&status=`
pub(crate) async fn campaign_devices(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    client: Option<Extension<ClientKey>>,
    request_id: Option<Extension<RequestId>>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let caller = Caller::new(principal, client, request_id);
    let errors = caller.errors();
    let max_page = state.config.graphql.max_page_size;
    let answer = async {
        let Path((account_raw, id_raw)) = path.map_err(|r| path_error(&r))?;
        let account = account(&account_raw)?;
        let campaign = CampaignId::from_str(&id_raw)
            .map_err(|e| ApiError::bad_input(format!("path parameter `id`: {e}")))?;
        let mut limit = DEFAULT_LIMIT.min(max_page);
        let mut cursor = None;
        let mut status = None;
        for (key, value) in query_pairs(query.as_deref()) {
            match key.as_str() {
                "limit" => {
                    limit = value.parse::<usize>().ok().filter(|n| (1..=max_page).contains(n)).ok_or_else(|| {
                        ApiError::bad_input(format!(
                            "query parameter `limit`: expected a whole number from 1 to {max_page}, got {value:?}"
                        ))
                    })?;
                }
                "cursor" if !value.is_empty() => cursor = Some(value),
                "status" if !value.is_empty() => status = Some(value),
                "cursor" | "status" => {}
                other => {
                    return Err(ApiError::bad_input(format!(
                        "unknown query parameter `{other}` (expected limit, cursor, status)"
                    )));
                }
            }
        }
        let variables = json!({
            "account": account.as_str(),
            "id": campaign.as_str(),
            "first": limit,
            "after": cursor,
            "status": status,
        });
        let (data, cache) = caller
            .run(&state, documents::CAMPAIGN_DEVICES.to_owned(), variables)
            .await?;
        let connection = &data["campaign"]["devices"];
        let items: Vec<Value> = connection["edges"]
            .as_array()
            .map(|edges| edges.iter().map(|edge| edge["node"].clone()).collect())
            .unwrap_or_default();
        let next_cursor = if connection["pageInfo"]["hasNextPage"].as_bool() == Some(true) {
            connection["pageInfo"]["endCursor"].clone()
        } else {
            Value::Null
        };
        let body = json!({
            "items": items,
            "nextCursor": next_cursor,
            "totalCount": connection["totalCount"].clone(),
        });
        Ok(json_response(body, cache))
    };
    answer
        .await
        .unwrap_or_else(|e: ApiError| e.respond(&errors))
}
