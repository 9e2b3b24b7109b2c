//! The validated-operation fast path: a dashboard sends the same operation with the
//! same variables every few seconds, and async-graphql's full validation (some twenty
//! rules walking the document) runs for each.
//!
//! An operation that once passed full validation and ran without an error is
//! remembered by its exact text, operation name and variables. The next identical
//! request runs on a twin schema built with [`ValidationMode::Fast`], which still
//! computes depth and complexity (so the limits extension sees the same numbers) and
//! still checks fragment cycles, but skips the rules that the identical request has
//! already passed. Validation depends only on the document, the variables and the
//! schema, and the twin is built from the same types, extensions and data, so the
//! answer cannot differ. Anything else (a new text, other variables, an operation
//! that failed) takes the full path.
//!
//! Memory: keys over [`MAX_KEY_BYTES`] are never remembered, and the set is bounded
//! by the bytes of its keys ([`MAX_BYTES`]).

use std::sync::Arc;

use async_graphql::{Request, Response};

use crate::DeviceSchema;

/// Largest remembered key (operation text + name + variables as JSON).
const MAX_KEY_BYTES: usize = 32 * 1024;
/// Bytes of keys remembered at most (least recently used go first).
const MAX_BYTES: u64 = 8 * 1024 * 1024;

/// The twin schema and the operations it may run.
pub(crate) struct FastPath {
    schema: DeviceSchema,
    validated: moka::sync::Cache<Arc<str>, ()>,
}

/// One request's identity for the fast path.
pub(crate) struct Key(Arc<str>);

impl FastPath {
    /// `schema` must be built like the full schema, with [`ValidationMode::Fast`].
    ///
    /// [`ValidationMode::Fast`]: async_graphql::ValidationMode::Fast
    pub(crate) fn new(schema: DeviceSchema) -> Self {
        Self {
            schema,
            validated: moka::sync::Cache::builder()
                .weigher(|key: &Arc<str>, ()| u32::try_from(key.len()).unwrap_or(u32::MAX))
                .max_capacity(MAX_BYTES)
                .build(),
        }
    }

    /// The request's key, or `None` when it is too large to remember.
    pub(crate) fn key(request: &Request) -> Option<Key> {
        if request.query.len() > MAX_KEY_BYTES {
            return None;
        }
        let variables = serde_json::to_string(&request.variables).ok()?;
        let name = request.operation_name.as_deref().unwrap_or("");
        let len = request.query.len() + name.len() + variables.len() + 2;
        if len > MAX_KEY_BYTES {
            return None;
        }
        let mut key = String::with_capacity(len);
        key.push_str(name);
        key.push('\0');
        key.push_str(&variables);
        key.push('\0');
        key.push_str(&request.query);
        Some(Key(Arc::from(key)))
    }

    /// The twin schema when this exact request passed full validation before.
    pub(crate) fn schema_for(&self, key: Option<&Key>) -> Option<&DeviceSchema> {
        // `get`, not `contains_key`: it counts towards the key's popularity, so the
        // bound evicts operations nobody repeats, not the dashboard's.
        key.filter(|key| self.validated.get(&key.0).is_some())
            .map(|_| &self.schema)
    }

    /// Remembers a request that ran through full validation without any error.
    pub(crate) fn remember(&self, key: Option<Key>, response: &Response) {
        if let Some(key) = key
            && response.errors.is_empty()
        {
            self.validated.insert(key.0, ());
        }
    }
}
