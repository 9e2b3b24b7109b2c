//! A GraphQL-over-HTTP request as it arrives, before its document is resolved: the
//! usual `query`, `operationName`, `variables`, `extensions`, plus the
//! GraphQL-over-HTTP persisted-documents `documentId`, which `async_graphql::Request`
//! has no field for (its deserializer would drop it silently).
//!
//! GET parameters are read here rather than by `async_graphql::http::parse_query_string`,
//! which keeps `extensions` but knows no `documentId` and reads the operation name
//! from `operation_name` instead of the spec's `operationName`. A repeated parameter
//! is refused: a cache in front of us and this server could otherwise disagree about
//! which of two `query` values ran.

use async_graphql::{Extensions, Variables};
use serde::Deserialize;

/// A request whose document may still be a hash or an id.
#[derive(Debug)]
pub(crate) struct Incoming {
    /// `query` may be empty (a hash-only or `documentId` request);
    /// `extensions.persistedQuery` is still in `extensions`.
    pub(crate) request: async_graphql::Request,
    pub(crate) document_id: Option<String>,
}

/// The JSON body of a POST.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    /// Absent or `null` in hash-only and `documentId` requests.
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Variables,
    #[serde(default)]
    extensions: Extensions,
    #[serde(default)]
    document_id: Option<String>,
}

impl Incoming {
    /// A request with only a query text (`application/graphql` bodies).
    pub(crate) fn text(query: &str) -> Self {
        Self {
            request: async_graphql::Request::new(query),
            document_id: None,
        }
    }

    /// A POST body in `application/json`.
    pub(crate) fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        let body: Body = serde_json::from_slice(body)?;
        Ok(Self::build(
            body.query,
            body.operation_name,
            body.variables,
            body.extensions,
            body.document_id,
        ))
    }

    /// The query string of a GET (`application/x-www-form-urlencoded`).
    pub(crate) fn from_query_string(query: &str) -> Result<Self, String> {
        let mut params: [(&str, Option<String>); 5] = [
            ("query", None),
            ("operationName", None),
            ("variables", None),
            ("extensions", None),
            ("documentId", None),
        ];
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if let Some((_, slot)) = params.iter_mut().find(|(known, _)| *known == name) {
                if slot.is_some() {
                    return Err(format!("the parameter `{name}` appears more than once"));
                }
                *slot = Some(value.into_owned());
            }
        }
        let [query, operation_name, variables, extensions, document_id] = params.map(|(_, v)| v);
        let variables = match variables {
            Some(json) => {
                serde_json::from_str(&json).map_err(|e| format!("invalid variables: {e}"))?
            }
            None => Variables::default(),
        };
        let extensions = match extensions {
            Some(json) => {
                serde_json::from_str(&json).map_err(|e| format!("invalid extensions: {e}"))?
            }
            None => Extensions::default(),
        };
        Ok(Self::build(
            query,
            operation_name,
            variables,
            extensions,
            document_id,
        ))
    }

    fn build(
        query: Option<String>,
        operation_name: Option<String>,
        variables: Variables,
        extensions: Extensions,
        document_id: Option<String>,
    ) -> Self {
        let mut request = async_graphql::Request::new(query.unwrap_or_default());
        // The spec: an empty operationName is the same as none.
        request.operation_name = operation_name.filter(|name| !name.is_empty());
        request.variables = variables;
        request.extensions = extensions;
        Self {
            request,
            document_id,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use async_graphql::Value;

    use super::*;

    #[test]
    fn reads_every_json_member() {
        let incoming = Incoming::from_json(
            br#"{"query":null,"operationName":"A","variables":{"x":1},
                 "extensions":{"persistedQuery":{"version":1,"sha256Hash":"ab"}},
                 "documentId":"sha256:ab","other":true}"#,
        )
        .unwrap();
        assert_eq!(incoming.request.query, "");
        assert_eq!(incoming.request.operation_name.as_deref(), Some("A"));
        assert_eq!(incoming.request.variables.get("x"), Some(&Value::from(1)));
        assert!(incoming.request.extensions.contains_key("persistedQuery"));
        assert_eq!(incoming.document_id.as_deref(), Some("sha256:ab"));
        assert!(Incoming::from_json(br#"[{"query":"{a}"}]"#).is_err());
    }

    #[test]
    fn reads_get_parameters_by_their_spec_names() {
        let incoming = Incoming::from_query_string(
            "query=%7B+a+%7D&operationName=A&variables=%7B%22x%22%3A1%7D\
             &extensions=%7B%22persistedQuery%22%3A%7B%22version%22%3A1%7D%7D&documentId=x&other=1",
        )
        .unwrap();
        assert_eq!(incoming.request.query, "{ a }");
        assert_eq!(incoming.request.operation_name.as_deref(), Some("A"));
        assert_eq!(incoming.request.variables.get("x"), Some(&Value::from(1)));
        assert!(incoming.request.extensions.contains_key("persistedQuery"));
        assert_eq!(incoming.document_id.as_deref(), Some("x"));

        let empty = Incoming::from_query_string("operationName=").unwrap();
        assert_eq!(empty.request.query, "");
        assert_eq!(empty.request.operation_name, None);
    }

    #[test]
    fn refuses_repeated_or_malformed_get_parameters() {
        let err = Incoming::from_query_string("query=%7Ba%7D&query=%7Bb%7D").unwrap_err();
        assert!(err.contains("`query` appears more than once"), "{err}");
        let err = Incoming::from_query_string("variables=%7B").unwrap_err();
        assert!(err.starts_with("invalid variables"), "{err}");
        let err = Incoming::from_query_string("extensions=1").unwrap_err();
        assert!(err.starts_with("invalid extensions"), "{err}");
    }
}
