//! `devicegraph-graphql`: the public GraphQL schema over the cache's [`Store`].
//!
//! - [`build_schema`] builds the schema of the contract (`Query`, `Device`,
//!   `Campaign`, ...); [`sdl`] prints it.
//! - [`execute`] runs one operation with its per-request state: the caller's account
//!   scope, one details DataLoader for the whole operation, the bound on concurrent
//!   history fetches, and the record of stale and upstream-fetched answers, which it
//!   reports as `extensions.stale` and `extensions.cacheStatus`.
//! - [`codes`] are the contract's `extensions.code` values; every error a resolver
//!   raises is built by the one mapping in `error.rs`.
//!
//! The HTTP server runs both `/graphql` and its REST routes through [`execute`], so
//! both answer with the same data. Resolvers never call the upstream directly: only
//! through the store, which caches, coalesces and paces.

mod campaign;
mod cursor;
mod device;
mod documents;
mod error;
mod history;
mod limits;
mod loader;
mod nulls;
mod plan;
mod query;
mod scalars;
mod state;
mod validated;

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::{
    EmptyMutation, EmptySubscription, Response, ServerError, ValidationMode, Value,
};
use devicegraph_cache::Store;
use devicegraph_upstream::AccountName;

pub use error::codes;
pub use query::Query;

use state::RequestState;
use validated::FastPath;

/// The devicegraph schema.
pub type DeviceSchema = async_graphql::Schema<Query, EmptyMutation, EmptySubscription>;

/// Limits and switches of the schema (`[limits]` and `[graphql]` of the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphqlConfig {
    /// Deepest field nesting an operation may have (introspection-only operations
    /// are exempt).
    pub max_depth: usize,
    /// Highest complexity (one per selected field) an operation may have.
    pub max_complexity: usize,
    /// Largest `first` of `Campaign.devices`.
    pub max_page_size: usize,
    /// Per-device history fetches (upgrade history, check-ins, provisioning) one
    /// operation may have in flight at once.
    pub history_concurrency: usize,
    /// Whether an exact repeat of an operation that passed full validation (same
    /// text, name and variables) runs with only the cheap checks (`validated.rs`).
    pub reuse_validation: bool,
    /// Whether `__schema`/`__type` introspection is served.
    pub introspection: bool,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 5000,
            max_page_size: 1000,
            history_concurrency: 16,
            reuse_validation: true,
            introspection: true,
        }
    }
}

/// What the schema keeps for every request.
struct Shared {
    store: Store,
    config: GraphqlConfig,
}

/// Builds the schema over `store`.
pub fn build_schema(store: Store, config: GraphqlConfig) -> DeviceSchema {
    let shared = Arc::new(Shared { store, config });
    let documents = documents::DocumentCache::new();
    let full = schema_with(&shared, &documents, ValidationMode::Strict);
    if !shared.config.reuse_validation {
        return full.finish();
    }
    let fast = FastPath::new(schema_with(&shared, &documents, ValidationMode::Fast).finish());
    full.data(Arc::new(fast)).finish()
}

/// The schema's builder with everything but the fast path: the full schema and its
/// twin of `validated.rs` differ only in `mode`.
fn schema_with(
    shared: &Arc<Shared>,
    documents: &documents::DocumentCache,
    mode: ValidationMode,
) -> async_graphql::SchemaBuilder<Query, EmptyMutation, EmptySubscription> {
    let limits = limits::Limits {
        max_depth: shared.config.max_depth,
        max_complexity: shared.config.max_complexity,
    };
    let mut builder = async_graphql::Schema::build(Query, EmptyMutation, EmptySubscription)
        .extension(limits)
        .extension(plan::Plan)
        .extension(nulls::Nulls)
        // Innermost parse hook: replaces only the parser, after the hooks above.
        .extension(documents.clone())
        .validation_mode(mode)
        .data(Arc::clone(shared));
    if !shared.config.introspection {
        builder = builder.disable_introspection();
    }
    builder
}

/// The schema in SDL, with descriptions (`devicegraph schema`).
pub fn sdl(schema: &DeviceSchema) -> String {
    schema.sdl()
}

/// Which accounts a caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountScope {
    /// Every account (auth off, or a key with `accounts = ["*"]`). Required for
    /// the top-level `provisioningHistory`, which is not tied to an account.
    All,
    /// Only these accounts; others answer FORBIDDEN.
    Only(HashSet<AccountName>),
}

/// Who is asking, set by the HTTP layer for each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub scope: AccountScope,
    /// The inbound request id, propagated to the upstream as `X-Request-ID`.
    pub request_id: Option<String>,
}

/// Where a whole response came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheStatus {
    /// Everything from cache within its TTL (or nothing needed the upstream).
    Hit,
    /// Something was fetched from the upstream for this request.
    Miss,
    /// Something was served past its TTL because the upstream failed.
    Stale,
}

impl CacheStatus {
    /// `HIT`, `MISS` or `STALE`, as in `X-Cache` and `extensions.cacheStatus`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
        }
    }
}

/// The answer to one operation.
#[derive(Debug)]
pub struct Executed {
    pub response: Response,
    pub cache_status: CacheStatus,
    /// Whether this exact operation (text, name and variables) had passed full
    /// validation before, so only the cheap checks ran (see `validated.rs`).
    pub validation_reused: bool,
}

/// Runs one operation for a caller.
///
/// Adds `extensions.cacheStatus` always and `extensions.stale` (the response paths
/// served stale) when any. Every error carries `extensions.code`.
pub async fn execute(
    schema: &DeviceSchema,
    request: async_graphql::Request,
    ctx: RequestContext,
) -> Executed {
    let Some(shared) = schema.data::<Arc<Shared>>() else {
        // Only a schema not made by `build_schema` lacks it: a programming error.
        tracing::error!("execute called with a schema not built by build_schema");
        let mut err = ServerError::new("internal error", None);
        error::set_code(&mut err, codes::INTERNAL);
        return Executed {
            response: Response::from_errors(vec![err]),
            cache_status: CacheStatus::Hit,
            validation_reused: false,
        };
    };
    let state = Arc::new(RequestState::new(
        shared.store.clone(),
        ctx.scope,
        shared.config.max_page_size,
        shared.config.history_concurrency,
        ctx.request_id.clone(),
    ));
    let fast = schema.data::<Arc<FastPath>>();
    let key = fast.and_then(|_| FastPath::key(&request));
    let twin = fast.and_then(|fast| fast.schema_for(key.as_ref()));
    let run = twin
        .unwrap_or(schema)
        .execute(request.data(Arc::clone(&state)));
    let mut response = match ctx.request_id {
        Some(id) => devicegraph_upstream::with_request_id(id, run).await,
        None => run.await,
    };
    if twin.is_none()
        && let Some(fast) = fast
    {
        fast.remember(key, &response);
    }

    // Our own errors always carry a code; one without comes from async-graphql's
    // checks of the request itself (argument coercion of built-in scalars, an
    // unknown operation name), so it is the caller's input.
    for err in &mut response.errors {
        if error::code_of(err).is_none() {
            error::set_code(err, codes::BAD_USER_INPUT);
        }
    }

    let (cache_status, stale) = state.summary();
    if !stale.is_empty() {
        response.extensions.insert(
            "stale".to_owned(),
            Value::List(stale.into_iter().map(Value::String).collect()),
        );
    }
    response.extensions.insert(
        "cacheStatus".to_owned(),
        Value::String(cache_status.as_str().to_owned()),
    );
    Executed {
        response,
        cache_status,
        validation_reused: twin.is_some(),
    }
}
