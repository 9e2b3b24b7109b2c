//! The trusted-documents manifest: the operations an operator has vetted, read from
//! `graphql.trusted_documents` at startup and again on SIGHUP.
//!
//! Two formats are read, told apart by the top-level `format` member:
//! - Apollo's persisted query manifest (`@apollo/generate-persisted-query-manifest`,
//!   Apollo Kotlin, Apollo iOS):
//!   `{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id","name","type","body"}]}`;
//! - GraphQL Codegen's client preset `persisted-documents.json`: `{"<id>": "<body>"}`.
//!
//! An id that is a SHA-256 (64 hex digits, bare or as `sha256:<hex>`, the
//! GraphQL-over-HTTP "SHA256 hex document identifier") must be the hash of its body:
//! a manifest whose ids lie would let one operation run under another's name, so it is
//! refused whole, naming the first bad entry. Both formats allow other ids (Apollo's
//! `createOperationId`, Codegen's `sha1` or custom hash); those are kept as opaque
//! keys, unverified. Every body must parse as a GraphQL document, so a typo shows at
//! startup rather than as an error on the dashboard.
//!
//! Documents are indexed twice: by id (a client sends the id) and by the SHA-256 of
//! their text (a client sends the full text, which allow-list mode accepts only if it
//! is byte-for-byte a manifest body).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// `format` of an Apollo persisted query manifest.
const APOLLO_FORMAT: &str = "apollo-persisted-query-manifest";
/// Prefix of a GraphQL-over-HTTP SHA256 hex document identifier.
const SHA256_PREFIX: &str = "sha256:";

/// Why a manifest was refused. The messages name the file and the first bad entry.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a trusted-documents manifest: {reason}")]
    Format { path: String, reason: String },
    #[error("{path}: {entry}: {reason}")]
    Entry {
        path: String,
        entry: String,
        reason: String,
    },
}

/// One trusted operation.
#[derive(Debug)]
pub(crate) struct Document {
    /// The id as the manifest wrote it.
    pub(crate) id: String,
    /// The operation name (Apollo's format only).
    pub(crate) name: Option<String>,
    pub(crate) body: Arc<str>,
}

/// A loaded manifest. Immutable: a reload builds a new one and swaps it in whole.
#[derive(Debug, Default)]
pub struct Manifest {
    by_id: HashMap<String, Arc<Document>>,
    by_text: HashMap<[u8; 32], Arc<Document>>,
}

impl Manifest {
    /// Reads and checks the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let bytes = std::fs::read(path).map_err(|source| ManifestError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&bytes, &path.display().to_string())
    }

    /// Parses a manifest in either format; `source` names it in errors.
    pub fn parse(bytes: &[u8], source: &str) -> Result<Self, ManifestError> {
        let format_error = |reason: String| ManifestError::Format {
            path: source.to_owned(),
            reason,
        };
        let json: Value = serde_json::from_slice(bytes)
            .map_err(|e| format_error(format!("invalid JSON: {e}")))?;
        let Value::Object(top) = json else {
            return Err(format_error(
                "expected a JSON object (Apollo's persisted query manifest, or {\"<id>\": \"<body>\"})"
                    .to_owned(),
            ));
        };
        let mut manifest = Self::default();
        let entry_error = |entry: String, reason: String| ManifestError::Entry {
            path: source.to_owned(),
            entry,
            reason,
        };
        match top.get("format") {
            Some(format) => {
                if format.as_str() != Some(APOLLO_FORMAT) {
                    return Err(format_error(format!(
                        "unknown format {format} (expected \"{APOLLO_FORMAT}\")"
                    )));
                }
                if top.get("version").and_then(Value::as_u64) != Some(1) {
                    return Err(format_error(format!(
                        "unsupported version {} of {APOLLO_FORMAT} (expected 1)",
                        top.get("version").unwrap_or(&Value::Null)
                    )));
                }
                let Some(operations) = top.get("operations").and_then(Value::as_array) else {
                    return Err(format_error("`operations` must be an array".to_owned()));
                };
                for (index, operation) in operations.iter().enumerate() {
                    let label = apollo_label(index, operation);
                    let field = |name: &str| operation.get(name).and_then(Value::as_str);
                    let (Some(id), Some(body)) = (field("id"), field("body")) else {
                        return Err(entry_error(
                            label,
                            "needs string members `id` and `body`".to_owned(),
                        ));
                    };
                    if let Some(kind) = operation.get("type")
                        && !matches!(kind.as_str(), Some("query" | "mutation" | "subscription"))
                    {
                        return Err(entry_error(
                            label,
                            format!("`type` must be query, mutation or subscription, not {kind}"),
                        ));
                    }
                    let name = field("name").map(str::to_owned);
                    manifest
                        .insert(id, name, body)
                        .map_err(|reason| entry_error(label, reason))?;
                }
            }
            None => {
                for (id, body) in &top {
                    let label = format!("entry {id:?}");
                    let Some(body) = body.as_str() else {
                        return Err(entry_error(
                            label,
                            "the body must be a string (expected {\"<id>\": \"<body>\"})"
                                .to_owned(),
                        ));
                    };
                    manifest
                        .insert(id, None, body)
                        .map_err(|reason| entry_error(label, reason))?;
                }
            }
        }
        Ok(manifest)
    }

    /// Operations in the manifest (distinct ids).
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The document with this id (any spelling [`key`] accepts).
    pub(crate) fn by_id(&self, id: &str) -> Option<&Arc<Document>> {
        self.by_id.get(key(id).as_ref())
    }

    /// The document whose body hashes to `sha256`.
    pub(crate) fn by_text(&self, sha256: &[u8; 32]) -> Option<&Arc<Document>> {
        self.by_text.get(sha256)
    }

    fn insert(&mut self, id: &str, name: Option<String>, body: &str) -> Result<(), String> {
        if id.is_empty() {
            return Err("the id is empty".to_owned());
        }
        if body.trim().is_empty() {
            return Err("the body is empty".to_owned());
        }
        let digest = sha256(body);
        let id_key = key(id);
        if let Some(hex) = id.strip_prefix(SHA256_PREFIX)
            && !is_sha256_hex(hex)
        {
            return Err(format!(
                "the id {id:?} must be `sha256:` followed by 64 hex digits"
            ));
        }
        if is_sha256_hex(&id_key) && id_key != hex::encode(digest) {
            return Err(format!(
                "the id is not the SHA-256 of the body (the body hashes to {})",
                hex::encode(digest)
            ));
        }
        if let Err(e) = async_graphql::parser::parse_query(body) {
            return Err(format!("the body is not a GraphQL document: {e}"));
        }
        let document = Arc::new(Document {
            id: id.to_owned(),
            name,
            body: Arc::from(body),
        });
        match self.by_id.entry(id_key.into_owned()) {
            Entry::Occupied(existing) if *existing.get().body != *body => {
                return Err(format!(
                    "the id also names another body (first as {:?})",
                    existing.get().id
                ));
            }
            Entry::Occupied(_) => return Ok(()),
            Entry::Vacant(slot) => {
                slot.insert(Arc::clone(&document));
            }
        }
        self.by_text.entry(digest).or_insert(document);
        Ok(())
    }
}

/// How an Apollo manifest entry is named in errors.
fn apollo_label(index: usize, operation: &Value) -> String {
    match operation.get("name").and_then(Value::as_str) {
        Some(name) => format!("operations[{index}] ({name})"),
        None => format!("operations[{index}]"),
    }
}

/// The lookup key of a document id: a SHA-256 in any accepted spelling (`<hex>`,
/// `sha256:<hex>`, either case) becomes its lower-case hex, so Apollo's
/// `sha256Hash`, a `documentId` and a manifest id of the same document meet; any
/// other id is kept as it is (an opaque key).
pub(crate) fn key(id: &str) -> std::borrow::Cow<'_, str> {
    let hex = id.strip_prefix(SHA256_PREFIX).unwrap_or(id);
    if is_sha256_hex(hex) {
        if hex.bytes().all(|b| !b.is_ascii_uppercase()) {
            std::borrow::Cow::Borrowed(hex)
        } else {
            std::borrow::Cow::Owned(hex.to_ascii_lowercase())
        }
    } else {
        std::borrow::Cow::Borrowed(id)
    }
}

/// 64 hex digits.
pub(crate) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    const BODY: &str = "query One { __typename }";
    const OTHER: &str = "query Two { __typename }";

    fn id(body: &str) -> String {
        hex::encode(sha256(body))
    }

    fn parse(value: &Value) -> Result<Manifest, ManifestError> {
        Manifest::parse(value.to_string().as_bytes(), "m.json")
    }

    #[test]
    fn reads_apollo_manifests() {
        let manifest = parse(&json!({
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": id(BODY), "name": "One", "type": "query", "body": BODY},
                {"id": "custom-two", "name": "Two", "type": "query", "body": OTHER},
            ],
        }))
        .unwrap();
        assert_eq!(manifest.len(), 2);
        let one = manifest.by_id(&id(BODY)).unwrap();
        assert_eq!(&*one.body, BODY);
        assert_eq!(one.name.as_deref(), Some("One"));
        // The same document by the GraphQL-over-HTTP spelling, upper case, and text.
        assert!(manifest.by_id(&format!("sha256:{}", id(BODY))).is_some());
        assert!(manifest.by_id(&id(BODY).to_uppercase()).is_some());
        assert!(manifest.by_text(&sha256(BODY)).is_some());
        // An opaque id is a key as it is; its text is found by hash all the same.
        assert_eq!(&*manifest.by_id("custom-two").unwrap().body, OTHER);
        assert!(manifest.by_text(&sha256(OTHER)).is_some());
        assert!(manifest.by_id(&id(OTHER)).is_none());
    }

    #[test]
    fn reads_codegen_persisted_documents() {
        let manifest = parse(&json!({
            id(BODY): BODY,
            format!("sha256:{}", id(OTHER)): OTHER,
        }))
        .unwrap();
        assert_eq!(manifest.len(), 2);
        assert!(manifest.by_id(&id(BODY)).is_some());
        assert!(manifest.by_id(&id(OTHER)).is_some());
        assert!(parse(&json!({})).unwrap().is_empty());
    }

    #[test]
    fn refuses_an_id_that_is_not_the_hash_of_its_body() {
        let err = parse(&json!({
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": id(BODY), "name": "One", "type": "query", "body": BODY},
                {"id": id(BODY), "name": "Two", "type": "query", "body": OTHER},
            ],
        }))
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("m.json: operations[1] (Two): "), "{err}");
        assert!(err.contains("not the SHA-256 of the body"), "{err}");
        assert!(err.contains(&id(OTHER)), "{err}");

        let err = parse(&json!({ id(BODY): OTHER })).unwrap_err().to_string();
        assert!(err.contains(&format!("entry {:?}", id(BODY))), "{err}");
        assert!(err.contains("not the SHA-256"), "{err}");
    }

    #[test]
    fn refuses_malformed_manifests_naming_the_problem() {
        let cases = [
            (json!([]), "expected a JSON object"),
            (json!({"format": "relay", "version": 1}), "unknown format"),
            (
                json!({"format": "apollo-persisted-query-manifest", "version": 2, "operations": []}),
                "unsupported version 2",
            ),
            (
                json!({"format": "apollo-persisted-query-manifest", "version": 1}),
                "`operations` must be an array",
            ),
            (
                json!({"format": "apollo-persisted-query-manifest", "version": 1,
                       "operations": [{"id": "x", "name": "X"}]}),
                "operations[0] (X): needs string members `id` and `body`",
            ),
            (
                json!({"format": "apollo-persisted-query-manifest", "version": 1,
                       "operations": [{"id": "x", "type": "fragment", "body": BODY}]}),
                "`type` must be",
            ),
            (json!({ "x": 1 }), "the body must be a string"),
            (json!({ "x": "query {" }), "not a GraphQL document"),
            (json!({ "x": " " }), "the body is empty"),
            (
                json!({ "sha256:abc": BODY }),
                "must be `sha256:` followed by 64 hex",
            ),
        ];
        for (value, expected) in cases {
            let err = parse(&value).unwrap_err().to_string();
            assert!(err.contains(expected), "{value}: {err}");
            assert!(err.starts_with("m.json"), "{err}");
        }
        let err = Manifest::parse(b"{not json", "m.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid JSON"), "{err}");
        let err = Manifest::load(Path::new("/no/such/manifest.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot read /no/such/manifest.json"),
            "{err}"
        );
    }

    #[test]
    fn one_id_may_repeat_only_with_the_same_body() {
        let same = parse(&json!({
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": "a", "body": BODY},
                {"id": "a", "body": BODY},
            ],
        }))
        .unwrap();
        assert_eq!(same.len(), 1);
        let err = parse(&json!({
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": "a", "body": BODY},
                {"id": "a", "body": OTHER},
            ],
        }))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("operations[1]: the id also names another body"),
            "{err}"
        );
    }

    #[test]
    fn keys_normalise_only_sha256_ids() {
        let hex = id(BODY);
        assert_eq!(key(&hex), hex.as_str());
        assert_eq!(key(&format!("sha256:{hex}")), hex.as_str());
        assert_eq!(key(&hex.to_uppercase()), hex.as_str());
        assert_eq!(key("custom-1"), "custom-1");
        assert_eq!(key("sha256:short"), "sha256:short");
    }
}
