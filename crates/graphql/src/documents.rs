//! The parsed-document cache: dashboards send the same few query strings over and
//! over, and parsing (a pest grammar) was half of the executor's CPU on the warm path.
//!
//! It is the innermost `parse_query` hook, so it replaces only the parser: the outer
//! extensions (limits, plan, nulls) still see every document, and validation still
//! runs per request (it depends on the variables and the schema, not only the text).
//! Only successful parses are kept; a query text over [`MAX_CACHED_QUERY_BYTES`] is
//! parsed every time so one client cannot fill the cache with huge documents.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerResult, Variables};

/// Largest query text that is cached.
pub(crate) const MAX_CACHED_QUERY_BYTES: usize = 16 * 1024;
/// Distinct query texts kept (least recently used go first).
const CAPACITY: u64 = 1_000;

/// Shared by every request of one schema (and its fast-path twin: clones share
/// the cache).
#[derive(Clone)]
pub(crate) struct DocumentCache {
    cache: moka::sync::Cache<Arc<str>, Arc<ExecutableDocument>>,
}

impl DocumentCache {
    pub(crate) fn new() -> Self {
        Self {
            cache: moka::sync::Cache::new(CAPACITY),
        }
    }
}

impl ExtensionFactory for DocumentCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentCacheExtension {
            cache: self.cache.clone(),
        })
    }
}

struct DocumentCacheExtension {
    cache: moka::sync::Cache<Arc<str>, Arc<ExecutableDocument>>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for DocumentCacheExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if query.len() > MAX_CACHED_QUERY_BYTES {
            return next.run(ctx, query, variables).await;
        }
        if let Some(doc) = self.cache.get(query) {
            return Ok(doc.as_ref().clone());
        }
        let doc = next.run(ctx, query, variables).await?;
        self.cache.insert(Arc::from(query), Arc::new(doc.clone()));
        Ok(doc)
    }
}
