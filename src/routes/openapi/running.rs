//! What `/openapi.json` says that depends on the running configuration: the
//! security the server really requires (and the 401/403 that come with it), the
//! bounds of `limit` and of a batch, and the server the document describes. The
//! static document ([`super::ApiDoc`]) is the same for every gateway; this is what
//! makes it true of this one, so a client generated from it (or a fuzzer such as
//! schemathesis) sends only what this server accepts.

use serde_json::{Value, json};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::server::ServerBuilder;
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::{Modify, OpenApi as _};

use super::{ApiDoc, CommonErrors, v1_operations};
use crate::config::{AuthMode, Config};
use crate::routes::rest;

/// The document for a gateway running `config`, as JSON.
pub(crate) fn document(config: &Config) -> Value {
    let mut doc = serde_json::to_value(openapi(config)).unwrap_or_default();
    add_next_page_link(&mut doc);
    doc
}

/// The document for a gateway running `config`, but for its links
/// ([`add_next_page_link`]).
fn openapi(config: &Config) -> OpenApi {
    let mut doc = ApiDoc::openapi();
    let auth_required = config.auth.mode == AuthMode::ApiKey;
    CommonErrors { auth_required }.modify(&mut doc);
    Security { auth_required }.modify(&mut doc);
    Bounds {
        limits: [
            (
                rest::ROUTES[2],
                rest::max_limit(config),
                rest::default_limit(config),
            ),
            (
                rest::ROUTES[3],
                rest::max_account_limit(config),
                rest::default_account_limit(config),
            ),
        ],
        max_batch: rest::max_batch(config),
    }
    .modify(&mut doc);
    // Relative: the origin that served this document, whatever name or proxy the
    // client reached it through (a listen address says nothing of that).
    doc.servers = Some(vec![
        ServerBuilder::new()
            .url("/")
            .description(Some("This gateway (the origin serving this document)"))
            .build(),
    ]);
    doc
}

/// Per operation: with `auth.mode = "api_key"` one of the two key schemes is
/// required; with auth off a key may be sent and is ignored, which OpenAPI says
/// with an empty requirement among the alternatives.
struct Security {
    auth_required: bool,
}

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApi) {
        let mut alternatives = Vec::with_capacity(3);
        if !self.auth_required {
            alternatives.push(SecurityRequirement::default());
        }
        alternatives.push(SecurityRequirement::new("bearer", Vec::<String>::new()));
        alternatives.push(SecurityRequirement::new("apiKey", Vec::<String>::new()));
        for operation in v1_operations(openapi) {
            operation.security = Some(alternatives.clone());
        }
        let note = if self.auth_required {
            " This gateway requires an API key (auth.mode = \"api_key\"): `Authorization: Bearer <key>` or `X-API-Key: <key>`."
        } else {
            " This gateway runs with auth.mode = \"none\": no key is needed, and one sent is ignored."
        };
        if let Some(description) = openapi.info.description.as_mut() {
            description.push_str(note);
        }
    }
}

/// The running limits as schema bounds: `limit` of each paged route (each its own:
/// route, maximum, default), and the number of IMEIs in a batch.
struct Bounds {
    limits: [(&'static str, usize, usize); 2],
    max_batch: usize,
}

impl Modify for Bounds {
    fn modify(&self, openapi: &mut OpenApi) {
        for (route, max_limit, default_limit) in self.limits {
            let Some(operation) = openapi
                .paths
                .paths
                .get_mut(route)
                .and_then(|item| item.get.as_mut())
            else {
                continue;
            };
            for parameter in operation.parameters.iter_mut().flatten() {
                if parameter.name == "limit" {
                    parameter.schema = Some(
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                            .minimum(Some(1))
                            .maximum(Some(max_limit))
                            .default(Some(json!(default_limit)))
                            .into(),
                    );
                }
            }
        }
        let schemas = &mut openapi
            .components
            .get_or_insert_with(Default::default)
            .schemas;
        if let Some(RefOr::T(Schema::Object(batch))) = schemas.get_mut("BatchRequest")
            && let Some(RefOr::T(Schema::Array(imeis))) = batch.properties.get_mut("imeis")
        {
            imeis.max_items = Some(self.max_batch);
        }
    }
}

/// A link from a page of a paged route to the next one (`nextCursor` as `cursor`,
/// with the same list's path parameters: a cursor is bound to its list), so a client
/// or a stateful fuzzer can walk the pages with real cursors. Added to the JSON:
/// utoipa 5.5's `Link` serializes `operation_id` in snake case, which is not
/// OpenAPI's `operationId`.
fn add_next_page_link(doc: &mut Value) {
    let paged: [(&str, &[&str]); 2] = [
        (rest::ROUTES[2], &["account", "id"]),
        (rest::ROUTES[3], &["account"]),
    ];
    for (route, path_parameters) in paged {
        let Some(operation) = doc
            .pointer_mut(&format!("/paths/{}/get", route.replace('/', "~1")))
            .filter(|operation| operation["operationId"].is_string())
        else {
            continue;
        };
        let mut parameters = serde_json::Map::new();
        for name in path_parameters {
            parameters.insert((*name).to_owned(), json!(format!("$request.path.{name}")));
        }
        parameters.insert("cursor".to_owned(), json!("$response.body#/nextCursor"));
        let link = json!({
            "operationId": operation["operationId"].clone(),
            "parameters": parameters,
            "description": "The next page of the same list (while `nextCursor` is not null)",
        });
        if let Some(ok) = operation["responses"]["200"].as_object_mut() {
            ok.insert("links".to_owned(), json!({ "nextPage": link }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc_of(configure: impl FnOnce(&mut Config)) -> Value {
        let mut config = Config::default();
        configure(&mut config);
        document(&config)
    }

    fn operations(doc: &Value) -> Vec<(String, Value)> {
        let mut found = Vec::new();
        for path in rest::ROUTES {
            for (method, operation) in doc["paths"][path].as_object().cloned().unwrap_or_default() {
                found.push((format!("{method} {path}"), operation));
            }
        }
        found
    }

    #[test]
    fn security_is_what_the_config_requires() {
        let open = doc_of(|_| {});
        let keyed = doc_of(|c| c.auth.mode = AuthMode::ApiKey);
        for (name, operation) in operations(&open) {
            assert_eq!(
                operation["security"],
                json!([{}, { "bearer": [] }, { "apiKey": [] }]),
                "{name}: optional with auth off"
            );
            let responses = &operation["responses"];
            assert!(
                responses.get("401").is_none(),
                "{name}: no 401 with auth off"
            );
            assert!(
                responses.get("403").is_none(),
                "{name}: no 403 with auth off"
            );
        }
        for (name, operation) in operations(&keyed) {
            assert_eq!(
                operation["security"],
                json!([{ "bearer": [] }, { "apiKey": [] }]),
                "{name}: required"
            );
            let responses = &operation["responses"];
            assert_eq!(
                responses["401"]["$ref"],
                "#/components/responses/Unauthenticated"
            );
            assert_eq!(responses["403"]["$ref"], "#/components/responses/Forbidden");
        }
        assert_eq!(operations(&open).len(), rest::ROUTES.len());
        assert!(
            open["info"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("no key is needed"))
        );
    }

    #[test]
    fn limit_and_batch_bounds_follow_the_config() {
        let doc = doc_of(|c| {
            c.graphql.max_page_size = 700;
            c.limits.documents.max_list_length = 500;
        });
        let params = doc["paths"][rest::ROUTES[2]]["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let limit = params.iter().find(|p| p["name"] == "limit").cloned();
        let schema = limit.map(|p| p["schema"].clone()).unwrap_or_default();
        assert_eq!(schema["minimum"], 1);
        assert_eq!(schema["maximum"], 500, "max_list_length bounds any `first`");
        assert_eq!(schema["default"], 100);
        let imeis = &doc["components"]["schemas"]["BatchRequest"]["properties"]["imeis"];
        assert_eq!(imeis["maxItems"], 500);
        assert_eq!(imeis["items"]["$ref"], "#/components/schemas/Imei");

        let account = doc["paths"][rest::ROUTES[3]]["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let limit = account.iter().find(|p| p["name"] == "limit").cloned();
        let schema = limit.map(|p| p["schema"].clone()).unwrap_or_default();
        assert_eq!(
            (schema["minimum"].clone(), schema["maximum"].clone()),
            (json!(1), json!(rest::MAX_ACCOUNT_LIMIT)),
            "the account route keeps its own bound"
        );
        let defaults = doc_of(|_| {});
        let imeis = &defaults["components"]["schemas"]["BatchRequest"]["properties"]["imeis"];
        assert_eq!(imeis["maxItems"], rest::MAX_BATCH);
        let small = doc_of(|c| c.graphql.max_page_size = 20);
        let params = small["paths"][rest::ROUTES[2]]["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let limit = params.iter().find(|p| p["name"] == "limit").cloned();
        let schema = limit.map(|p| p["schema"].clone()).unwrap_or_default();
        assert_eq!(
            (schema["maximum"].clone(), schema["default"].clone()),
            (json!(20), json!(20))
        );
    }

    #[test]
    fn names_the_server_and_links_pages() {
        let doc = doc_of(|_| {});
        assert_eq!(doc["servers"][0]["url"], "/");
        let link = &doc["paths"][rest::ROUTES[2]]["get"]["responses"]["200"]["links"]["nextPage"];
        assert_eq!(link["operationId"], "getCampaignDevices");
        assert_eq!(link["parameters"]["cursor"], "$response.body#/nextCursor");
        assert_eq!(link["parameters"]["id"], "$request.path.id");
        let link = &doc["paths"][rest::ROUTES[3]]["get"]["responses"]["200"]["links"]["nextPage"];
        assert_eq!(link["operationId"], "getAccountDevices");
        assert_eq!(link["parameters"]["account"], "$request.path.account");
    }
}
