//! Parsing, guarded and cached: every document is bounded by the guard (`guard.rs`)
//! before and right after parsing, and successful parses are remembered by text.
//!
//! Dashboards send the same few query strings over and over, and parsing (a pest
//! grammar) was half of the executor's CPU on the warm path. [`crate::execute`]
//! parses here, estimates the operation's upstream cost on the parsed document, then
//! hands the document to async-graphql (`Request::set_parsed_query`), so no document
//! reaches async-graphql's own checks, whose fragment walks are exponential, without
//! having passed the guard. Only documents that passed are kept; a text over
//! [`MAX_CACHED_QUERY_BYTES`] is parsed every time so one client cannot fill the cache
//! with huge documents.

use std::sync::Arc;

use async_graphql::ServerError;
use async_graphql::parser::types::ExecutableDocument;

use crate::error::{Code, set_code};
use crate::guard::{self, DocumentLimits, GuardError};

/// Largest query text that is cached.
pub(crate) const MAX_CACHED_QUERY_BYTES: usize = 16 * 1024;
/// Distinct query texts kept (least recently used go first).
const CAPACITY: u64 = 1_000;
/// Longest parse error message passed on: the parser quotes the input around the
/// error, which must not echo a long query back.
const MAX_PARSE_MESSAGE: usize = 300;

/// Shared by every request of one schema.
#[derive(Clone)]
pub(crate) struct DocumentCache {
    cache: moka::sync::Cache<Arc<str>, Arc<ExecutableDocument>>,
    limits: DocumentLimits,
}

impl DocumentCache {
    pub(crate) fn new(limits: DocumentLimits) -> Self {
        Self {
            cache: moka::sync::Cache::new(CAPACITY),
            limits,
        }
    }

    /// The parsed `query`, or the error refusing it (`QUERY_TOO_COMPLEX` for a
    /// limit, `BAD_USER_INPUT` for a syntax error).
    pub(crate) fn get_or_parse(&self, query: &str) -> Result<Arc<ExecutableDocument>, ServerError> {
        if let Some(doc) = self.cache.get(query) {
            return Ok(doc);
        }
        guard::scan(query, self.limits.max_tokens).map_err(refused)?;
        let doc = async_graphql::parser::parse_query(query).map_err(|e| {
            let mut err = ServerError::new(
                crate::error::bounded(&syntax_message(&e), MAX_PARSE_MESSAGE),
                e.positions().next(),
            );
            set_code(&mut err, Code::BadUserInput);
            err
        })?;
        guard::check(&doc, self.limits).map_err(refused)?;
        let doc = Arc::new(doc);
        if query.len() <= MAX_CACHED_QUERY_BYTES {
            self.cache.insert(Arc::from(query), Arc::clone(&doc));
        }
        Ok(doc)
    }
}

/// One line for a parse error: "syntax error at line L, column C: expected name".
/// The parser's own text is a multi-line drawing of the input around the error (a
/// terminal's view, which is the `locations` of the error in JSON).
fn syntax_message(e: &async_graphql::parser::Error) -> String {
    match e {
        async_graphql::parser::Error::Syntax { message, start, .. } => {
            let what = message
                .lines()
                .rev()
                .find_map(|line| line.trim().strip_prefix("= "))
                .unwrap_or("unexpected input");
            format!(
                "syntax error at line {}, column {}: {what}",
                start.line, start.column
            )
        }
        other => other.to_string(),
    }
}

fn refused(e: GuardError) -> ServerError {
    let mut err = ServerError::new(e.to_string(), None);
    let code = match e {
        GuardError::Cycle(_) => Code::BadUserInput,
        _ => Code::QueryTooComplex,
    };
    set_code(&mut err, code);
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_are_one_line_with_their_position() {
        let cache = DocumentCache::new(DocumentLimits::default());
        for (query, want) in [
            (
                "{ device(",
                "syntax error at line 1, column 10: expected name",
            ),
            ("{ a }\n}", "syntax error at line 2, column 1: expected "),
        ] {
            let Err(err) = cache.get_or_parse(query) else {
                panic!("{query:?} parsed");
            };
            assert!(err.message.starts_with(want), "{query:?}: {}", err.message);
            assert!(!err.message.contains('\n'), "{}", err.message);
        }
    }
}
