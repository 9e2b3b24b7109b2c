//! The request-validation extension: tells the resolvers what the parsed operation
//! needs (`plan`), then depth and complexity limits with the contract's
//! `QUERY_TOO_COMPLEX` code, and `BAD_USER_INPUT` on parse and validation errors.
//!
//! async-graphql's own `limit_depth`/`limit_complexity` answer with an uncoded error,
//! so the limits are checked here against the numbers validation computes anyway.
//! Operations made only of introspection fields (`__schema`, `__type`) are exempt
//! from the depth limit: GraphiQL's introspection query nests `ofType` deeper than a
//! sensible data-query limit, and whether introspection is allowed at all is its own
//! setting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerError, ServerResult, ValidationResult, Variables};

use crate::error::{Code, set_code};
use crate::state::RequestState;

/// Builds one [`LimitsExtension`] per request.
pub(crate) struct Limits {
    pub(crate) max_depth: usize,
    pub(crate) max_complexity: usize,
}

impl ExtensionFactory for Limits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LimitsExtension {
            max_depth: self.max_depth,
            max_complexity: self.max_complexity,
            introspection_only: AtomicBool::new(false),
        })
    }
}

pub(crate) struct LimitsExtension {
    max_depth: usize,
    max_complexity: usize,
    /// Set by `parse_query` for the validation step of the same request.
    introspection_only: AtomicBool,
}

fn too_complex(message: String) -> ServerError {
    let mut e = ServerError::new(message, None);
    set_code(&mut e, Code::QueryTooComplex);
    e
}

fn bad_input(mut e: ServerError) -> ServerError {
    set_code(&mut e, Code::BadUserInput);
    e
}

/// Whether every top-level selection of every operation is an introspection field.
fn is_introspection_only(doc: &ExecutableDocument) -> bool {
    crate::guard::root_field_names(doc)
        .into_iter()
        .all(|name| matches!(name, "__schema" | "__type" | "__typename"))
}

#[async_graphql::async_trait::async_trait]
impl Extension for LimitsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await.map_err(bad_input)?;
        self.introspection_only
            .store(is_introspection_only(&doc), Ordering::Relaxed);
        if let Some(state) = ctx.data_opt::<Arc<RequestState>>() {
            state.set_single_detail_field(crate::plan::detail_fields(&doc) == 1);
            state.set_tracks_freshness(crate::plan::selects(&doc, "freshness"));
        }
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next
            .run(ctx)
            .await
            .map_err(|errors| errors.into_iter().map(bad_input).collect::<Vec<_>>())?;
        let introspection = self.introspection_only.load(Ordering::Relaxed);
        if !introspection && result.depth > self.max_depth {
            return Err(vec![too_complex(format!(
                "query depth {} exceeds the limit of {}",
                result.depth, self.max_depth
            ))]);
        }
        if result.complexity > self.max_complexity {
            return Err(vec![too_complex(format!(
                "query complexity {} exceeds the limit of {}",
                result.complexity, self.max_complexity
            ))]);
        }
        Ok(result)
    }
}
