//! `GET /openapi.json`: the OpenAPI 3.1 description of the `/v1` routes (utoipa).
//!
//! The schemas (`schemas`) mirror the JSON the routes send (which is the GraphQL data
//! of the same fields); the path items below document the handlers in `rest.rs`. A
//! test checks that every `/v1` route of the router is described here.

mod running;
mod schemas;

use axum::Json;
use axum::extract::State;
use devicegraph_graphql::Code;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::state::AppState;

use schemas::{
    AccountDevicesPage, AccountName, BatchRequest, BatchResponse, CampaignDevice,
    CampaignDevicesPage, CampaignId, CheckIn, CheckInFailure, CheckInResult, ClientType, Device,
    FirmwareUpgrade, Imei, IncludePart, Problem, Software, UpstreamErrorInfo,
};

#[utoipa::path(
    get,
    path = "/v1/accounts/{account}/devices/{imei}",
    operation_id = "getDevice",
    tag = "devices",
    summary = "One merged device",
    params(
        ("account" = AccountName, Path, description = "Account name, e.g. 0000123456-00001"),
        ("imei" = Imei, Path, description = "15-digit IMEI; its last digit must be the Luhn check digit, which the pattern cannot express (a wrong one is a 400)"),
        ("include" = Option<Vec<IncludePart>>, Query, style = Form, explode = false, min_items = 1,
            description = "Parts to embed, comma-separated (repeated `include` parameters add up)"),
    ),
    responses(
        (status = 200, description = "The device", body = Device,
            headers(("X-Cache" = String, description = "HIT, MISS or STALE"))),
        (status = 400, description = "Invalid account, IMEI (a wrong Luhn digit included) or include", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account, or the account has no such device", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn get_device() {}

#[utoipa::path(
    post,
    path = "/v1/accounts/{account}/devices:batch",
    operation_id = "getDevices",
    tag = "devices",
    summary = "Several devices of one account",
    params(
        ("account" = AccountName, Path, description = "Account name"),
        ("include" = Option<Vec<IncludePart>>, Query, style = Form, explode = false, min_items = 1,
            description = "Parts to embed in every device, comma-separated"),
    ),
    request_body = BatchRequest,
    responses(
        (status = 200, description = "Found devices and the IMEIs not found", body = BatchResponse,
            headers(("X-Cache" = String, description = "HIT, MISS or STALE"))),
        (status = 400, description = "Invalid account, body or IMEI (a wrong Luhn digit included), too many IMEIs, or more upstream calls than `limits.max_upstream_calls` (`QUERY_TOO_COMPLEX`: with `include`, each uncached device costs one call per history)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than `limits.max_body_bytes`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn batch_devices() {}

#[utoipa::path(
    get,
    path = "/v1/accounts/{account}/campaigns/{id}/devices",
    operation_id = "getCampaignDevices",
    tag = "campaigns",
    summary = "One page of a campaign's devices, ascending IMEI",
    params(
        ("account" = AccountName, Path, description = "Account name"),
        ("id" = CampaignId, Path, description = "Campaign id"),
        ("limit" = Option<u32>, Query, minimum = 1,
            description = "Page size (the bounds are this server's `graphql.max_page_size` and `limits.max_list_length`)"),
        ("cursor" = Option<String>, Query,
            description = "`nextCursor` of the previous page, as given (opaque; a cursor of another campaign or one this server did not issue is a 400)"),
        ("status" = Option<String>, Query, description = "Keep only devices with this raw status, e.g. UpgradeFailed"),
    ),
    responses(
        (status = 200, description = "One page", body = CampaignDevicesPage,
            headers(("X-Cache" = String, description = "HIT, MISS or STALE"))),
        (status = 400, description = "Invalid parameters or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account or campaign", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn campaign_devices() {}

#[utoipa::path(
    get,
    path = "/v1/accounts/{account}/devices",
    operation_id = "getAccountDevices",
    tag = "devices",
    summary = "One page of every device of an account, ascending IMEI",
    description = "Cursors are positions (valid with any limit or filter). protocol is filtered by ThingSpace; status, make, model, firmware and fotaEligible over each device's details, exactly as ThingSpace spells the value. A filtered page scans at most 10 ThingSpace pages beyond those its limit needs: it may hold fewer than limit devices, even none, with a nextCursor to continue from.",
    params(
        ("account" = AccountName, Path, description = "Account name"),
        ("limit" = Option<u32>, Query, minimum = 1,
            description = "Page size (the bounds are 500 and this server's `graphql.max_page_size` and `limits.max_list_length`)"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"),
        ("protocol" = Option<String>, Query, pattern = "^[A-Za-z0-9_]{0,16}$",
            description = "Only this management protocol, e.g. LWM2M, OMADM, HTTP (any case; empty: every protocol)"),
        ("status" = Option<String>, Query, description = "Only devices with this raw status, e.g. Active"),
        ("make" = Option<String>, Query, description = "Only devices of this make"),
        ("model" = Option<String>, Query, description = "Only devices of this model"),
        ("firmware" = Option<String>, Query, description = "Only devices running this firmware"),
        ("fotaEligible" = Option<bool>, Query, description = "Only devices that may (true) or may not (false) take FOTA upgrades"),
    ),
    responses(
        (status = 200, description = "One page", body = AccountDevicesPage,
            headers(("X-Cache" = String, description = "HIT, MISS or STALE"))),
        (status = 400, description = "Invalid parameters or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn account_devices() {}

/// The error answers every `/v1` route can give whatever the configuration:
/// declared once under `components.responses` by [`CommonErrors`] and referenced
/// from each operation (the `responses(...)` lists above hold only each route's
/// own).
const COMMON_ERRORS: [(Code, &str); 5] = [
    (Code::RateLimited, "Rate limited; see Retry-After"),
    (Code::UpstreamError, "ThingSpace refused the request"),
    (
        Code::UpstreamUnavailable,
        "ThingSpace unavailable (see Retry-After when paused)",
    ),
    (Code::UpstreamTimeout, "ThingSpace too slow"),
    (
        Code::Internal,
        "A fault of the gateway; quote the request id when reporting it",
    ),
];

/// The error answers of the `/v1` routes when `auth.mode = "api_key"` (with auth
/// off, keys are neither needed nor looked at, so neither can happen).
const AUTH_ERRORS: [(Code, &str); 2] = [
    (Code::Unauthenticated, "Missing or unknown API key"),
    (Code::Forbidden, "The key may not read this account"),
];

/// The common error answers under a configuration that does (`true`) or does not
/// require an API key, in status order.
fn common_errors(auth_required: bool) -> Vec<(Code, &'static str)> {
    let auth = if auth_required { &AUTH_ERRORS[..] } else { &[] };
    let mut errors: Vec<_> = auth.iter().chain(&COMMON_ERRORS).copied().collect();
    errors.sort_by_key(|(code, _)| code.http_status());
    errors
}

/// The status of a common error response, as an OpenAPI response key.
fn status_key(code: Code) -> String {
    code.http_status().to_string()
}

/// The component name of a common error response: the code's variant name
/// (`UpstreamTimeout`).
fn response_name(code: Code) -> String {
    format!("{code:?}")
}

/// Whether a common error response says when to come back.
fn has_retry_after(code: Code) -> bool {
    matches!(code, Code::RateLimited | Code::UpstreamUnavailable)
}

/// The codes a problem+json body can carry: every [`Code`] but those only
/// `/graphql` answers with.
fn problem_codes() -> impl Iterator<Item = Code> {
    Code::ALL.into_iter().filter(|code| !code.graphql_only())
}

/// The operations of the `/v1` paths.
fn v1_operations(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    openapi
        .paths
        .paths
        .iter_mut()
        .filter(|(path, _)| path.starts_with("/v1/"))
        .flat_map(|(_, item)| {
            [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
        })
        .filter_map(Option::as_mut)
}

/// The [`problem_codes`] as the `Problem` schema's `code` enum.
struct ProblemCodes;

impl Modify for ProblemCodes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        if let Some(RefOr::T(Schema::Object(problem))) = components.schemas.get_mut("Problem") {
            problem.properties.insert(
                "code".to_owned(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("The error code (GraphQL's `extensions.code`)"))
                    .enum_values(Some(problem_codes().map(Code::as_str)))
                    .into(),
            );
        }
    }
}

/// Adds [`common_errors`] to the components and to every operation under `/v1`.
struct CommonErrors {
    auth_required: bool,
}

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let errors = common_errors(self.auth_required);
        let components = openapi.components.get_or_insert_with(Default::default);
        for (code, description) in &errors {
            let mut response = ResponseBuilder::new().description(*description).content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            );
            if has_retry_after(*code) {
                response = response.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::Integer))
                        .description(Some("Seconds to wait before trying again"))
                        .build(),
                );
            }
            components
                .responses
                .insert(response_name(*code), RefOr::T(response.build()));
        }
        for operation in v1_operations(openapi) {
            for (code, _) in &errors {
                operation
                    .responses
                    .responses
                    .entry(status_key(*code))
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(response_name(*code))));
            }
        }
    }
}

/// Conditional requests on every `GET /v1/...` route (the response cache answers
/// them all alike, `crate::response_cache`): the `If-None-Match` parameter, the
/// validators on 200, and the 304, declared once here rather than per route.
struct ConditionalGets;

impl Modify for ConditionalGets {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let header = |kind: Type, description: &str| {
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(kind))
                .description(Some(description))
                .build()
        };
        let validators = [
            (
                "ETag",
                Type::String,
                "Strong tag of a stored answer: send it back as If-None-Match",
            ),
            (
                "Cache-Control",
                Type::String,
                "private, max-age=<seconds the answer stays current>",
            ),
            (
                "Age",
                Type::Integer,
                "Seconds since the stored answer was built",
            ),
            (
                "X-Response-Cache",
                Type::String,
                "HIT: from the response cache; MISS: executed and stored; absent: not stored",
            ),
        ];
        for (path, item) in &mut openapi.paths.paths {
            let Some(get) = item.get.as_mut().filter(|_| path.starts_with("/v1/")) else {
                continue;
            };
            get.parameters.get_or_insert_with(Vec::new).push(
                ParameterBuilder::new()
                    .name("If-None-Match")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "The ETag of an answer already held: 304 while it is current",
                    ))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            );
            if let Some(RefOr::T(ok)) = get.responses.responses.get_mut("200") {
                for (name, kind, description) in &validators {
                    ok.headers
                        .insert((*name).to_owned(), header(kind.clone(), description));
                }
            }
            let not_modified = ResponseBuilder::new()
                .description("Not modified: the If-None-Match tag is current (no body)")
                .header("ETag", header(Type::String, "The current tag"))
                .build();
            get.responses
                .responses
                .insert("304".to_owned(), RefOr::T(not_modified));
        }
    }
}

/// The rules of the identifiers in paths and bodies, as `pattern`s of their schemas.
/// TODO(integration): point the account and campaign patterns at the server's
/// validation consts (`ACCOUNT_NAME_PATTERN`, `CAMPAIGN_ID_PATTERN`).
pub(crate) const ACCOUNT_PATTERN: &str = "^[0-9]{1,20}-[0-9]{1,10}$";
/// 15 digits; the Luhn check digit is beyond a pattern (the schema's description
/// says so).
pub(crate) const IMEI_PATTERN: &str = "^[0-9]{15}$";
pub(crate) const CAMPAIGN_ID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// The custom `format` of the IMEI schema: its pattern cannot say "Luhn", the format
/// names the rule for generators (`.ci/schemathesis_hooks.py` teaches it to
/// schemathesis).
pub(crate) const IMEI_FORMAT: &str = "imei";
/// A cursor is base64url without padding...
const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]*$";
/// ...and only the server can issue a valid one (bound to its account and
/// campaign): a custom `format` says it is opaque.
pub(crate) const CURSOR_FORMAT: &str = "devicegraph-cursor";

/// Sets [`ACCOUNT_PATTERN`], [`IMEI_PATTERN`] and [`CAMPAIGN_ID_PATTERN`] on the
/// identifier schemas every path parameter and body refers to, and the syntax of
/// the campaign route's `cursor`.
struct Identifiers;

impl Modify for Identifiers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, pattern, format) in [
            ("AccountName", ACCOUNT_PATTERN, None),
            ("Imei", IMEI_PATTERN, Some(IMEI_FORMAT)),
            ("CampaignId", CAMPAIGN_ID_PATTERN, None),
        ] {
            if let Some(RefOr::T(Schema::Object(schema))) = components.schemas.get_mut(name) {
                schema.pattern = Some(pattern.to_owned());
                if let Some(format) = format {
                    schema.format = Some(SchemaFormat::Custom(format.to_owned()));
                }
            }
        }
        for operation in v1_operations(openapi) {
            for parameter in operation.parameters.iter_mut().flatten() {
                if parameter.name == "cursor" {
                    parameter.schema = Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some(CURSOR_PATTERN))
                            .format(Some(SchemaFormat::Custom(CURSOR_FORMAT.to_owned())))
                            .into(),
                    );
                }
            }
        }
    }
}

/// Declares the two ways to present an API key.
struct KeySchemes;

impl Modify for KeySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "devicegraph JSON API",
        description = "The merged ThingSpace device graph as JSON. Field names and formats are those of the GraphQL API at /graphql; errors are RFC 9457 problem+json."
    ),
    paths(get_device, batch_devices, campaign_devices, account_devices),
    components(schemas(
        AccountName, Imei, CampaignId, IncludePart,
        Device, Software, FirmwareUpgrade, CheckIn, ClientType, CheckInResult, CheckInFailure,
        CampaignDevice, BatchRequest, BatchResponse, CampaignDevicesPage, AccountDevicesPage,
        Problem, UpstreamErrorInfo
    )),
    modifiers(&KeySchemes, &Identifiers, &ProblemCodes, &ConditionalGets),
    tags(
        (name = "devices", description = "Merged devices"),
        (name = "campaigns", description = "Firmware campaign reports"),
    )
)]
pub(crate) struct ApiDoc;

/// The handler: the document for the running configuration.
pub(crate) async fn openapi_json(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(running::document(&state.config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_every_v1_route_in_openapi_3_1() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        assert_eq!(doc["openapi"], "3.1.0");
        for path in crate::routes::rest::ROUTES {
            assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
        }
        assert!(doc["components"]["schemas"]["Device"].is_object());
        assert!(doc["components"]["schemas"]["Problem"]["properties"]["type"].is_object());
    }

    /// Every `GET /v1` route documents its conditional requests; the batch `POST`
    /// (never stored) does not.
    #[test]
    fn get_routes_document_conditional_requests() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let mut gets = 0;
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            if let Some(get) = item.get("get") {
                gets += 1;
                let names: Vec<&str> = get["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                assert!(names.contains(&"If-None-Match"), "{path}: {names:?}");
                assert!(get["responses"]["304"].is_object(), "{path}");
                assert!(
                    get["responses"]["200"]["headers"]["ETag"].is_object(),
                    "{path}"
                );
            }
            if let Some(post) = item.get("post") {
                assert!(post["responses"].get("304").is_none(), "{path}");
            }
        }
        assert_eq!(gets, 3);
    }

    /// The schemas above are written by hand to mirror the GraphQL types the routes
    /// serve; this keeps them from drifting: every enum has exactly the GraphQL
    /// values, and every property of an object is a field of its GraphQL namesake.
    #[test]
    fn schemas_match_their_graphql_namesakes() {
        use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
        use std::collections::{BTreeMap, BTreeSet};

        let sdl = crate::schema_sdl().unwrap_or_default();
        let parsed = async_graphql::parser::parse_schema(&sdl);
        assert!(parsed.is_ok(), "the served SDL parses");
        let mut graphql: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for definition in parsed.map(|doc| doc.definitions).unwrap_or_default() {
            let TypeSystemDefinition::Type(ty) = definition else {
                continue;
            };
            let names = match &ty.node.kind {
                TypeKind::Object(object) => object
                    .fields
                    .iter()
                    .map(|f| f.node.name.node.to_string())
                    .collect(),
                TypeKind::Enum(e) => e
                    .values
                    .iter()
                    .map(|v| v.node.value.node.to_string())
                    .collect(),
                _ => continue,
            };
            graphql.insert(ty.node.name.node.to_string(), names);
        }

        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let schemas = doc["components"]["schemas"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut compared = 0;
        for (name, schema) in schemas {
            let Some(fields) = graphql.get(&name) else {
                continue;
            };
            compared += 1;
            if let Some(values) = schema["enum"].as_array() {
                let values: BTreeSet<String> = values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                assert_eq!(&values, fields, "enum {name}");
            } else {
                let properties = schema["properties"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                assert!(!properties.is_empty(), "{name} has properties");
                for property in properties.keys() {
                    assert!(
                        fields.contains(property),
                        "{name}.{property} is not a GraphQL field"
                    );
                }
            }
        }
        assert!(
            compared >= 8,
            "only {compared} schemas have a GraphQL namesake"
        );
    }

    /// The document of a gateway requiring keys (all the common errors).
    fn keyed_doc() -> serde_json::Value {
        let mut config = crate::config::Config::default();
        config.auth.mode = crate::config::AuthMode::ApiKey;
        running::document(&config)
    }

    #[test]
    fn every_v1_operation_lists_the_common_errors_once() {
        let doc = keyed_doc();
        for (code, _) in common_errors(true) {
            let name = response_name(code);
            let shared = &doc["components"]["responses"][&name];
            assert_eq!(
                shared["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{name}"
            );
            assert_eq!(
                shared["headers"].get("Retry-After").is_some(),
                matches!(code.http_status(), 429 | 503),
                "{name}"
            );
        }
        for path in crate::routes::rest::ROUTES {
            let item = doc["paths"][path].as_object().cloned().unwrap_or_default();
            assert!(!item.is_empty(), "{path}");
            for (method, operation) in item {
                let responses = &operation["responses"];
                assert!(responses["200"].is_object(), "{method} {path}: 200");
                for own in ["400", "404"] {
                    assert_eq!(
                        responses[own]["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path}: its own {own} stays"
                    );
                }
                for (code, _) in common_errors(true) {
                    let status = status_key(code);
                    let name = response_name(code);
                    assert_eq!(
                        responses[&status]["$ref"],
                        format!("#/components/responses/{name}"),
                        "{method} {path}: {status}"
                    );
                }
            }
        }
    }

    /// The common responses keep their names and statuses, and `Problem.code` lists
    /// exactly the codes a problem can carry, from the one table.
    #[test]
    fn error_responses_and_codes_come_from_the_code_table() {
        let named = |auth: bool| -> Vec<(String, String)> {
            common_errors(auth)
                .iter()
                .map(|(code, _)| (status_key(*code), response_name(*code)))
                .collect()
        };
        let expected = [
            ("401", "Unauthenticated"),
            ("403", "Forbidden"),
            ("429", "RateLimited"),
            ("500", "Internal"),
            ("502", "UpstreamError"),
            ("503", "UpstreamUnavailable"),
            ("504", "UpstreamTimeout"),
        ]
        .map(|(s, n)| (s.to_owned(), n.to_owned()));
        assert_eq!(named(true), expected);
        assert_eq!(named(false), expected[2..]);

        let doc = keyed_doc();
        let listed: Vec<String> =
            doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
        assert_eq!(
            listed,
            [
                "BAD_USER_INPUT",
                "UNAUTHENTICATED",
                "FORBIDDEN",
                "NOT_FOUND",
                "RATE_LIMITED",
                "QUERY_TOO_COMPLEX",
                "UPSTREAM_ERROR",
                "UPSTREAM_UNAVAILABLE",
                "UPSTREAM_TIMEOUT",
                "INTERNAL",
            ]
        );
    }

    /// Path parameters and bodies name their identifiers through the three pattern
    /// schemas, and `include` is a list of exactly the values the route parses.
    #[test]
    fn identifiers_have_patterns_and_include_is_an_enum_list() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["AccountName"]["pattern"], ACCOUNT_PATTERN);
        assert_eq!(schemas["Imei"]["pattern"], IMEI_PATTERN);
        assert_eq!(schemas["CampaignId"]["pattern"], CAMPAIGN_ID_PATTERN);
        assert_eq!(schemas["Imei"]["format"], IMEI_FORMAT);
        assert!(
            schemas["Imei"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("Luhn")),
            "the IMEI schema says what its pattern cannot"
        );
        let params = |path: &str, method: &str| -> Vec<serde_json::Value> {
            doc["paths"][path][method]["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        let schema_of = |params: &[serde_json::Value], name: &str| {
            params
                .iter()
                .find(|p| p["name"] == name)
                .map(|p| p["schema"].clone())
                .unwrap_or_default()
        };
        let routes = crate::routes::rest::ROUTES;
        let device = params(routes[0], "get");
        let batch = params(routes[1], "post");
        let campaign = params(routes[2], "get");
        let account = params(routes[3], "get");
        for params in [&device, &batch, &campaign, &account] {
            assert_eq!(
                schema_of(params, "account")["$ref"],
                "#/components/schemas/AccountName"
            );
        }
        assert_eq!(
            schema_of(&device, "imei")["$ref"],
            "#/components/schemas/Imei"
        );
        assert_eq!(
            schema_of(&campaign, "id")["$ref"],
            "#/components/schemas/CampaignId"
        );
        for params in [&device, &batch] {
            let include = params.iter().find(|p| p["name"] == "include").cloned();
            let include = include.unwrap_or_default();
            assert_eq!(include["style"], "form");
            assert_eq!(include["explode"], false);
            assert_eq!(include["schema"]["minItems"], 1, "`include=` is refused");
            assert_eq!(
                include["schema"]["items"]["$ref"],
                "#/components/schemas/IncludePart"
            );
        }
        let values: Vec<&str> = schemas["IncludePart"]["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(values, crate::routes::documents::INCLUDE_VALUES);
        assert_eq!(schemas["BatchRequest"]["additionalProperties"], false);
        let cursor = schema_of(&campaign, "cursor");
        assert_eq!(
            (cursor["pattern"].as_str(), cursor["format"].as_str()),
            (Some(CURSOR_PATTERN), Some(CURSOR_FORMAT))
        );
    }
}
