//! The `/v1` JSON API. Each route checks its path and query parameters, runs one
//! GraphQL operation through the same `execute` as `/graphql`, and answers with that
//! operation's data: the same fields and formats as GraphQL, by construction.
//! Errors are problem+json (via the rescue point), and `X-Cache` reports freshness.
//!
//! The operation's `data` is read into a typed struct per route ([`DeviceData`],
//! [`DevicesData`], [`CampaignData`], [`AccountData`]) straight from the executor's
//! value; the
//! objects the client gets (devices, campaign devices) stay opaque, passed through
//! with GraphQL's field order. A `data` of another shape is a bug of ours (the
//! documents and these structs disagree): an `INTERNAL` problem, logged.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use devicegraph_graphql::{CacheStatus, Dependencies, RequestContext};
use devicegraph_upstream::{AccountName, CampaignId, Imei};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::documents::{self, Include};
use super::graphql::Caller;
use crate::config::Config;
use crate::http::body_limit::body_rejection;
use crate::http::problem::ApiError;
use crate::response_cache;
use crate::state::AppState;

/// The route templates, in the order of the handlers below (`crate::router` routes
/// them; the OpenAPI test checks each is documented).
pub(crate) const ROUTES: [&str; 4] = [
    "/v1/accounts/{account}/devices/{imei}",
    "/v1/accounts/{account}/devices:batch",
    "/v1/accounts/{account}/campaigns/{id}/devices",
    "/v1/accounts/{account}/devices",
];

/// Most IMEIs one batch request may name (also bounded by `limits.max_list_length`:
/// [`max_batch`]).
pub(crate) const MAX_BATCH: usize = 1000;

/// Default page size of the campaign and account devices routes (at most [`max_limit`]).
const DEFAULT_LIMIT: usize = 100;

/// The largest batch `config` lets through: the executor refuses a longer list
/// argument (`limits.max_list_length`) as the route's own check would.
pub(crate) fn max_batch(config: &Config) -> usize {
    MAX_BATCH.min(config.limits.documents.max_list_length)
}

/// The largest `limit` of the campaign route under `config`: the connection's page
/// bound, and the executor's bound on any `first`.
pub(crate) fn max_limit(config: &Config) -> usize {
    config
        .graphql
        .max_page_size
        .min(config.limits.documents.max_list_length)
}

/// The `limit` of the campaign route when none is given.
pub(crate) fn default_limit(config: &Config) -> usize {
    DEFAULT_LIMIT.min(max_limit(config))
}

/// The largest `limit` of the account devices route under `config`: its own bound
/// ([`MAX_ACCOUNT_LIMIT`]) within the campaign route's.
pub(crate) fn max_account_limit(config: &Config) -> usize {
    MAX_ACCOUNT_LIMIT.min(max_limit(config))
}

/// The `limit` of the account devices route when none is given.
pub(crate) fn default_account_limit(config: &Config) -> usize {
    DEFAULT_LIMIT.min(max_account_limit(config))
}

/// A device (or a campaign device) as the operation selected it: passed through.
type Node = serde_json::Map<String, Value>;

/// `data` of [`documents::device`].
#[derive(Debug, Deserialize)]
struct DeviceData {
    device: Option<Node>,
}

/// `data` of [`documents::devices`]: one entry per IMEI asked, `null` when unknown.
#[derive(Debug, Deserialize)]
struct DevicesData {
    devices: Vec<Option<Node>>,
}

/// `data` of [`documents::CAMPAIGN_DEVICES`]; `campaign` is null only with an error
/// (NOT_FOUND for an unknown campaign), which `run` answers first.
#[derive(Debug, Deserialize)]
struct CampaignData {
    campaign: Option<Campaign>,
}

#[derive(Debug, Deserialize)]
struct Campaign {
    devices: Connection,
}

/// `data` of [`documents::account_devices`]; `account` is null only with an error,
/// which `run` answers first.
#[derive(Debug, Deserialize)]
struct AccountData {
    account: Option<Account>,
}

#[derive(Debug, Deserialize)]
struct Account {
    devices: Connection,
}

/// A device connection page (of a campaign or an account).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Connection {
    total_count: Option<i64>,
    page_info: PageInfo,
    edges: Vec<Edge>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Edge {
    node: Node,
}

/// The answer of the batch route.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchAnswer {
    devices: Vec<Node>,
    not_found: Vec<String>,
}

impl BatchAnswer {
    /// The answer for `imeis` (in the order asked, repeats included) from the
    /// devices `found` by IMEI; the others are not found.
    fn new(imeis: &[Imei], found: &HashMap<String, Node>) -> Self {
        let mut answer = Self {
            devices: Vec::with_capacity(found.len()),
            not_found: Vec::new(),
        };
        for imei in imeis {
            match found.get(imei.as_str()) {
                Some(device) => answer.devices.push(device.clone()),
                None => answer.not_found.push(imei.as_str().to_owned()),
            }
        }
        answer
    }
}

/// The answer of the campaign and account devices routes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemsPage {
    items: Vec<Node>,
    /// `endCursor` when another page follows, else `null`.
    next_cursor: Option<String>,
    total_count: Option<i64>,
}

impl From<Connection> for ItemsPage {
    fn from(connection: Connection) -> Self {
        let Connection {
            total_count,
            page_info,
            edges,
        } = connection;
        Self {
            items: edges.into_iter().map(|edge| edge.node).collect(),
            next_cursor: page_info.end_cursor.filter(|_| page_info.has_next_page),
            total_count,
        }
    }
}

/// Runs `query` for `caller` and returns its `data` read as `T` (with what the
/// answer was built from, when it may be stored), or the first error as a problem.
async fn run<T: DeserializeOwned>(
    state: &AppState,
    ctx: RequestContext,
    query: String,
    variables: Value,
) -> Result<(T, CacheStatus, Option<Dependencies>), ApiError> {
    let request = async_graphql::Request::new(query)
        .variables(async_graphql::Variables::from_json(variables));
    let executed = devicegraph_graphql::execute(&state.schema, request, ctx).await;
    let response = executed.response;
    if let Some(error) = response.errors.first() {
        return Err(ApiError::from_graphql(error));
    }
    let data = async_graphql::from_value::<T>(response.data).map_err(|e| {
        ApiError::internal(&format_args!(
            "the data of a /v1 operation is not {}: {e}",
            std::any::type_name::<T>()
        ))
    })?;
    Ok((data, executed.cache_status, executed.dependencies))
}

/// A `GET` route's answer through the response cache: a stored, still current
/// answer for this caller's scope, route, operation and variables (or `304` for a
/// current tag), else the operation run and its `data` shaped by `shape`, stored
/// when it may be.
async fn cached_get<T: DeserializeOwned, B: Serialize>(
    state: &AppState,
    caller: Caller,
    request_headers: &HeaderMap,
    route: &'static str,
    (query, variables): (String, Value),
    shape: impl FnOnce(T) -> Result<B, ApiError>,
) -> Result<Response, ApiError> {
    let ctx = caller.context(state);
    let key = state.responses.enabled().then(|| {
        response_cache::key(
            &ctx.scope,
            &[
                b"v1",
                route.as_bytes(),
                query.as_bytes(),
                &response_cache::canonical_json(&variables),
            ],
        )
    });
    if let Some(key) = &key
        && let Some(hit) = state.responses.get(key, &state.store)
    {
        return Ok(response_cache::stored_answer(&hit, JSON, request_headers));
    }
    let (data, cache, deps) = run::<T>(state, ctx, query, variables).await?;
    let body = Bytes::from(serde_json::to_vec(&shape(data)?).map_err(|e| ApiError::internal(&e))?);
    let validators = match (key, deps) {
        (Some(key), Some(deps)) => state
            .responses
            .put(key, JSON, body.clone(), deps, &state.store),
        _ => None,
    };
    if let Some((etag, fresh_for)) = &validators
        && response_cache::holds(request_headers, etag)
    {
        let mut answer = StatusCode::NOT_MODIFIED.into_response();
        answer.headers_mut().insert(
            response_cache::RESPONSE_CACHE_HEADER,
            HeaderValue::from_static("MISS"),
        );
        response_cache::set_validators(answer.headers_mut(), etag.clone(), *fresh_for, 0);
        return Ok(answer);
    }
    let mut answer = (StatusCode::OK, body).into_response();
    let headers = answer.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    headers.insert("x-cache", HeaderValue::from_static(cache.as_str()));
    if let Some((etag, fresh_for)) = validators {
        headers.insert(
            response_cache::RESPONSE_CACHE_HEADER,
            HeaderValue::from_static("MISS"),
        );
        response_cache::set_validators(headers, etag, fresh_for, 0);
    }
    Ok(answer)
}

const JSON: &str = "application/json";

fn json_response(body: impl Serialize, cache: CacheStatus) -> Response {
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
    if list.is_empty() {
        return Ok(Include::default());
    }
    Include::parse(&list.join(","))
        .map_err(|e| ApiError::bad_input(format!("query parameter `include`: {e}")))
}

fn path_error(rejection: &PathRejection) -> ApiError {
    ApiError::bad_input(format!("invalid path: {}", rejection.body_text()))
}

/// `GET /v1/accounts/{account}/devices/{imei}?include=...` (histories to embed)
pub(crate) async fn device(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Path((account_raw, imei_raw)) = path.map_err(|r| path_error(&r))?;
    let account = account(&account_raw)?;
    let imei = Imei::from_str(&imei_raw)
        .map_err(|e| ApiError::bad_input(format!("path parameter `imei`: {e}")))?;
    let include = include_of(&query_pairs(query.as_deref()))?;
    let variables = json!({ "account": account.as_str(), "imei": imei.as_str() });
    let operation = (documents::device(include), variables);
    cached_get(
        &state,
        caller,
        &headers,
        ROUTES[0],
        operation,
        |data: DeviceData| {
            data.device.ok_or_else(|| {
                ApiError::not_found(format!("account {account} has no device {imei}"))
            })
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    imeis: Vec<String>,
}

/// `POST /v1/accounts/{account}/devices:batch` with `{"imeis": [...]}`
pub(crate) async fn devices_batch(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let max_body = state.config.limits.max_body_bytes;
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
    let max_batch = max_batch(&state.config);
    if batch.imeis.len() > max_batch {
        return Err(ApiError::bad_input(format!(
            "at most {max_batch} IMEIs per batch, got {}",
            batch.imeis.len()
        )));
    }
    let mut imeis = Vec::with_capacity(batch.imeis.len());
    for (i, raw) in batch.imeis.iter().enumerate() {
        let imei =
            Imei::from_str(raw).map_err(|e| ApiError::bad_input(format!("imeis[{i}]: {e}")))?;
        imeis.push(imei);
    }
    let mut unique: Vec<&Imei> = Vec::with_capacity(imeis.len());
    let mut seen = HashSet::with_capacity(imeis.len());
    unique.extend(imeis.iter().filter(|imei| seen.insert(*imei)));
    let ctx = caller.context(&state);
    let mut found: HashMap<String, Node> = HashMap::with_capacity(unique.len());
    let mut cache = CacheStatus::Hit;
    let mut chunks: Vec<&[&Imei]> = unique.chunks(batch_chunk(&state.config, include)).collect();
    if chunks.is_empty() {
        // An empty batch still runs once: the account is checked (scope, existence).
        chunks.push(&[]);
    }
    for chunk in chunks {
        let variables = json!({
            "account": account.as_str(),
            "imeis": chunk.iter().map(|imei| imei.as_str()).collect::<Vec<_>>(),
        });
        let (data, status, _): (DevicesData, _, _) =
            run(&state, ctx.clone(), documents::devices(include), variables).await?;
        cache = worse(cache, status);
        for (imei, device) in chunk.iter().zip(data.devices) {
            if let Some(device) = device {
                found.insert(imei.as_str().to_owned(), device);
            }
        }
    }
    Ok(json_response(BatchAnswer::new(&imeis, &found), cache))
}

/// How many distinct IMEIs one operation of the batch route reads with `include`:
/// as many as `limits.max_complexity` and `limits.max_upstream_calls` let one
/// operation have, so a batch the route accepts (up to [`max_batch`]) is never
/// refused as too complex; a larger batch runs as several operations, one after
/// another, each charged to the caller's upstream budget like any other
/// (`limits.upstream_calls_per_minute`: a cold batch over it is 429 with
/// `Retry-After`, and its retry finds the first operations' devices cached).
fn batch_chunk(config: &Config, include: Include) -> usize {
    let by_complexity = config.limits.max_complexity / include.complexity_per_device().max(1);
    let max_calls =
        usize::try_from(config.limits.documents.max_upstream_calls).unwrap_or(usize::MAX);
    // One details call per operation (a chunk is at most MAX_BATCH, the upstream's
    // batch size), plus the histories of each uncached device.
    let by_calls = match include.histories_per_device() {
        0 => usize::MAX,
        _ if max_calls == 0 => usize::MAX,
        per_device => max_calls.saturating_sub(1) / per_device,
    };
    max_batch(config).min(by_complexity).min(by_calls).max(1)
}

/// The least fresh of two answers' statuses.
fn worse(a: CacheStatus, b: CacheStatus) -> CacheStatus {
    match (a, b) {
        (CacheStatus::Stale, _) | (_, CacheStatus::Stale) => CacheStatus::Stale,
        (CacheStatus::Miss, _) | (_, CacheStatus::Miss) => CacheStatus::Miss,
        _ => CacheStatus::Hit,
    }
}

/// `GET /v1/accounts/{account}/campaigns/{id}/devices?limit=&cursor=&status=`
pub(crate) async fn campaign_devices(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let max_page = max_limit(&state.config);
    let Path((account_raw, id_raw)) = path.map_err(|r| path_error(&r))?;
    let account = account(&account_raw)?;
    let campaign = CampaignId::from_str(&id_raw)
        .map_err(|e| ApiError::bad_input(format!("path parameter `id`: {e}")))?;
    let mut limit = default_limit(&state.config);
    let mut cursor = None;
    let mut status = None;
    for (key, value) in query_pairs(query.as_deref()) {
        match key.as_str() {
            "limit" => limit = limit_of(&value, max_page)?,
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
    let operation = (documents::CAMPAIGN_DEVICES.to_owned(), variables);
    cached_get(
        &state,
        caller,
        &headers,
        ROUTES[2],
        operation,
        |data: CampaignData| {
            data.campaign
                .map(|c| ItemsPage::from(c.devices))
                .ok_or_else(|| {
                    ApiError::not_found(format!("account {account} has no campaign {campaign}"))
                })
        },
    )
    .await
}

/// `limit=`: 1 to `max_page`.
fn limit_of(value: &str, max_page: usize) -> Result<usize, ApiError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=max_page).contains(n))
        .ok_or_else(|| {
            ApiError::bad_input(format!(
                "query parameter `limit`: expected a whole number from 1 to {max_page}, \
                 got {value:?}"
            ))
        })
}

/// Largest `limit` of the account devices route. Its items are whole devices (about
/// 20 fields each), so a page counts some 26 complexity points a device: 500 keep
/// the default `limits.max_complexity` (20,000) with room to spare, where 1,000
/// would be refused as too complex.
pub(crate) const MAX_ACCOUNT_LIMIT: usize = 500;

/// The query parameters of the account devices route, each as `Account.devices`
/// takes it (empty values are absent).
const ACCOUNT_PARAMETERS: [&str; 8] = [
    "limit",
    "cursor",
    "protocol",
    "status",
    "make",
    "model",
    "firmware",
    "fotaEligible",
];

/// `GET /v1/accounts/{account}/devices?limit=&cursor=&protocol=&status=&make=&model=&firmware=&fotaEligible=`
pub(crate) async fn account_devices(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let max_page = max_account_limit(&state.config);
    let Path(account_raw) = path.map_err(|r| path_error(&r))?;
    let account = account(&account_raw)?;
    let mut variables = serde_json::Map::new();
    variables.insert("account".into(), json!(account.as_str()));
    variables.insert("first".into(), json!(default_account_limit(&state.config)));
    for (key, value) in query_pairs(query.as_deref()) {
        let name = match key.as_str() {
            "limit" => "first",
            "cursor" => "after",
            other if ACCOUNT_PARAMETERS.contains(&other) => other,
            other => {
                return Err(ApiError::bad_input(format!(
                    "unknown query parameter `{other}` (expected {})",
                    ACCOUNT_PARAMETERS.join(", ")
                )));
            }
        };
        let value = match name {
            _ if value.is_empty() => continue,
            "first" => json!(limit_of(&value, max_page)?),
            "fotaEligible" => match value.as_str() {
                "true" => json!(true),
                "false" => json!(false),
                _ => {
                    return Err(ApiError::bad_input(format!(
                        "query parameter `fotaEligible`: expected true or false, got {:?}",
                        value.chars().take(40).collect::<String>()
                    )));
                }
            },
            _ => json!(value),
        };
        variables.insert(name.to_owned(), value);
    }
    let operation = (documents::account_devices(), Value::Object(variables));
    cached_get(
        &state,
        caller,
        &headers,
        ROUTES[3],
        operation,
        |data: AccountData| {
            data.account
                .map(|a| ItemsPage::from(a.devices))
                .ok_or_else(|| ApiError::internal(&"account devices without an account"))
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// What the executor hands back: an `async_graphql::Value`.
    fn data<T: DeserializeOwned>(json: Value) -> Result<T, async_graphql::DeserializerError> {
        async_graphql::from_value(async_graphql::Value::from_json(json).unwrap())
    }

    #[test]
    fn device_data_passes_the_device_through_in_selection_order() {
        let device: DeviceData = data(json!({ "device": {
            "imei": "1", "status": "ok", "account": "a", "files": [], "software": null, "n": 1.5,
        } }))
        .unwrap();
        let device = Value::Object(device.device.unwrap());
        assert_eq!(
            device.to_string(),
            r#"{"imei":"1","status":"ok","account":"a","files":[],"software":null,"n":1.5}"#
        );
        let missing: DeviceData = data(json!({ "device": null })).unwrap();
        assert!(missing.device.is_none());
    }

    #[test]
    fn batch_keeps_the_order_asked_and_lists_the_rest_as_not_found() {
        let imeis: Vec<Imei> = [
            "490154203237518",
            "356938035643809",
            "490154203237518",
            "353918058380284",
        ]
        .iter()
        .map(|i| Imei::from_str(i).unwrap())
        .collect();
        let mut device = Node::new();
        device.insert("imei".to_owned(), json!("490154203237518"));
        let found = HashMap::from([("490154203237518".to_owned(), device)]);
        let answer = serde_json::to_value(BatchAnswer::new(&imeis, &found)).unwrap();
        assert_eq!(
            answer,
            json!({
                "devices": [{ "imei": "490154203237518" }, { "imei": "490154203237518" }],
                "notFound": ["356938035643809", "353918058380284"],
            })
        );
    }

    #[test]
    fn a_batch_runs_in_operations_within_the_limits() {
        let all = Include {
            upgrade_history: true,
            check_ins: true,
            last_check_in: false,
        };
        let config = Config::default();
        // 20 fields a device: 1,000 fit the default complexity of 20,000.
        assert_eq!(batch_chunk(&config, Include::default()), 1000);
        // With both histories, 2 calls a device within 500 calls an operation.
        assert_eq!(batch_chunk(&config, all), 249);
        let mut config = Config::default();
        config.limits.documents.max_upstream_calls = 0;
        assert_eq!(batch_chunk(&config, all), 20_000 / 34);
        config.limits.max_complexity = 10;
        assert_eq!(batch_chunk(&config, all), 1, "never empty");
    }

    #[test]
    fn campaign_page_has_a_next_cursor_only_when_a_page_follows() {
        let page = |has_next_page: bool| {
            let data: CampaignData = data(json!({ "campaign": { "devices": {
                "totalCount": 7,
                "pageInfo": { "hasNextPage": has_next_page, "endCursor": "c2" },
                "edges": [{ "node": { "imei": "1" } }, { "node": { "imei": "2" } }],
            } } }))
            .unwrap();
            serde_json::to_value(ItemsPage::from(data.campaign.unwrap().devices)).unwrap()
        };
        assert_eq!(
            page(true),
            json!({ "items": [{ "imei": "1" }, { "imei": "2" }], "nextCursor": "c2", "totalCount": 7 })
        );
        assert_eq!(page(false)["nextCursor"], Value::Null);
    }

    #[test]
    fn account_page_reads_the_same_connection() {
        let data: AccountData = data(json!({ "account": { "devices": {
            "totalCount": null,
            "pageInfo": { "hasNextPage": true, "endCursor": "c9" },
            "edges": [{ "node": { "imei": "1", "firmware": "f" } }],
        } } }))
        .unwrap();
        let page = ItemsPage::from(data.account.unwrap().devices);
        assert_eq!(
            serde_json::to_value(page).unwrap(),
            json!({ "items": [{ "imei": "1", "firmware": "f" }], "nextCursor": "c9", "totalCount": null })
        );
    }

    #[test]
    fn another_shape_is_refused() {
        assert!(data::<DevicesData>(json!({ "devices": { "imei": "1" } })).is_err());
        assert!(data::<CampaignData>(json!({ "campaign": { "devices": {} } })).is_err());
        assert!(data::<DeviceData>(json!(null)).is_err());
    }
}
