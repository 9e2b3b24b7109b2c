//! `devicegraph-graphql`: the public GraphQL schema over the cache's [`Store`].
//!
//! - [`build_schema`] builds the schema of the contract (`Query`, `Device`,
//!   `Campaign`, ...); [`sdl`] prints it.
//! - [`execute`] runs one operation with its per-request state: the caller's account
//!   scope, one details DataLoader for the whole operation, the bound on concurrent
//!   history fetches, and the record of stale and upstream-fetched answers, which it
//!   reports as `extensions.stale` and `extensions.cacheStatus`, and per part of an
//!   answer as `freshness` (`freshness.rs`: built from the reads the operation makes
//!   anyway, never a read of its own).
//! - [`Code`] is the one table of `extensions.code` values (with their HTTP status
//!   and problem title); every error a resolver raises is built by the one mapping
//!   in `error.rs`.
//!
//! The HTTP server runs both `/graphql` and its REST routes through [`execute`], so
//! both answer with the same data. Resolvers never call the upstream directly: only
//! through the store, which caches, coalesces and paces.

mod account;
mod campaign;
mod cost;
mod cursor;
mod deps;
mod device;
mod documents;
mod error;
mod filter;
mod freshness;
mod global_id;
mod guard;
mod history;
mod limits;
mod loader;
mod node;
mod nulls;
mod plan;
mod query;
mod scalars;
mod state;
mod validated;
mod wants;

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{
    EmptyMutation, EmptySubscription, Response, ServerError, ValidationMode, Value,
};
use devicegraph_cache::Store;
use devicegraph_upstream::AccountName;

pub use cost::Estimate;
pub use deps::Dependencies;
pub use error::{Code, UnknownCode, code_of};
pub use guard::DocumentLimits;
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
    /// Highest complexity an operation may have: one per field in the answer, list
    /// fields (`devices`, `Campaign.devices`) counting their selection once per item
    /// asked, so it bounds the size of an answer, not only of a query.
    pub max_complexity: usize,
    /// Largest `first` of `Campaign.devices`.
    pub max_page_size: usize,
    /// Per-device history fetches (upgrade history, check-ins, provisioning) one
    /// operation may have in flight at once; 0 = no per-operation bound (the shared
    /// budget, `max_concurrency` and per-tenant queues pace them, the cost estimate
    /// bounds their number).
    pub history_concurrency: usize,
    /// Whether an exact repeat of an operation that passed full validation (same
    /// text, name and variables) runs with only the cheap checks (`validated.rs`).
    pub reuse_validation: bool,
    /// Whether `__schema`/`__type` introspection is served (and, with it, "did
    /// you mean" suggestions in validation errors).
    pub introspection: bool,
    /// Limits on the document and on what it may ask for.
    pub documents: DocumentLimits,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 20_000,
            max_page_size: 1000,
            history_concurrency: 0,
            reuse_validation: true,
            introspection: true,
            documents: DocumentLimits::default(),
        }
    }
}

/// What the schema keeps for every request.
struct Shared {
    store: Store,
    config: GraphqlConfig,
    /// Guarded, cached parsing (`documents.rs`).
    documents: documents::DocumentCache,
}

/// Builds the schema over `store`.
pub fn build_schema(store: Store, config: GraphqlConfig) -> DeviceSchema {
    let documents = documents::DocumentCache::new(config.documents);
    let shared = Arc::new(Shared {
        store,
        config,
        documents,
    });
    let full = schema_with(&shared, ValidationMode::Strict);
    if !shared.config.reuse_validation {
        return full.finish();
    }
    let fast = FastPath::new(schema_with(&shared, ValidationMode::Fast).finish());
    full.data(Arc::new(fast)).finish()
}

/// The schema's builder with everything but the fast path: the full schema and its
/// twin of `validated.rs` differ only in `mode`.
fn schema_with(
    shared: &Arc<Shared>,
    mode: ValidationMode,
) -> async_graphql::SchemaBuilder<Query, EmptyMutation, EmptySubscription> {
    let limits = limits::Limits {
        max_depth: shared.config.max_depth,
        max_complexity: shared.config.max_complexity,
    };
    let mut builder = async_graphql::Schema::build(Query, EmptyMutation, EmptySubscription)
        .extension(limits)
        .extension(nulls::Nulls)
        .validation_mode(mode)
        // Parsing happens in `execute` (guarded, cached); async-graphql's own
        // directive check then walks a document the guard has already bounded.
        .limit_directives(shared.config.documents.max_directives_per_field)
        .data(Arc::clone(shared));
    if !shared.config.introspection {
        // "Did you mean ...?" would list the schema's names that introspection hides.
        builder = builder.disable_introspection().disable_suggestions();
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
#[derive(Clone)]
pub struct RequestContext {
    pub scope: AccountScope,
    /// The caller's budget of upstream calls, charged with an operation's estimate
    /// before it runs (`None` = unlimited).
    pub budget: Option<Arc<dyn UpstreamBudget>>,
    /// Whether to add `extensions.cost` (estimate and actual upstream calls) to a
    /// successful answer; refusals for cost always carry it.
    pub report_cost: bool,
    /// Who the upstream calls are made for (API key name or client address): the
    /// pacer queues them fairly between tenants.
    pub tenant: Option<Arc<str>>,
    /// Past this the caller has no use for an answer: reads waiting for the upstream
    /// stop then and answer a stale copy if there is one (`devicegraph_cache`'s
    /// `with_deadline`). Set it a little before the HTTP request's own timeout.
    pub deadline: Option<tokio::time::Instant>,
}

impl RequestContext {
    /// A caller with `scope`, no budget and no cost report.
    ///
    /// The request id is not part of the context: it is the task-local the HTTP
    /// request-id middleware establishes for the whole request
    /// (`devicegraph_upstream::with_request_id`), which every upstream call made while
    /// executing reads, and which spawned work carries with
    /// `devicegraph_upstream::in_current_scope`.
    pub fn new(scope: AccountScope) -> Self {
        Self {
            scope,
            budget: None,
            report_cost: false,
            tenant: None,
            deadline: None,
        }
    }
}

impl std::fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("scope", &self.scope)
            .field("budget", &self.budget.is_some())
            .field("report_cost", &self.report_cost)
            .field("tenant", &self.tenant)
            .finish()
    }
}

/// A per-caller allowance of upstream calls (implemented by the HTTP layer, keyed by
/// API key or client address).
pub trait UpstreamBudget: Send + Sync {
    /// Takes `calls` from the allowance, or says how long until they would fit.
    fn charge(&self, calls: u64) -> Result<(), std::time::Duration>;
}

/// Where a whole response came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheStatus {
    /// Everything from cache within its TTL (or nothing needed the upstream), with no
    /// error: an answer with errors is never a hit (it is never stored either).
    Hit,
    /// Something was fetched from the upstream for this request, or a part of the
    /// answer is an error.
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
    /// The cache entries the answer was built from, when it may be stored as it is
    /// (no error, nothing stale, no per-request report, no `ageSeconds`): see
    /// [`Dependencies`].
    pub dependencies: Option<Dependencies>,
    /// Whether this exact operation (text, name and variables) had passed full
    /// validation before, so only the cheap checks ran (see `validated.rs`).
    pub validation_reused: bool,
}

impl Executed {
    /// A request error (GraphQL over HTTP): the operation did not start (syntax,
    /// validation, limits, budget, an operation type this API does not have), so
    /// there is no `data`, and no `extensions.cacheStatus` (nothing was read).
    pub fn is_request_error(&self) -> bool {
        is_request_error(&self.response)
    }
}

fn is_request_error(response: &Response) -> bool {
    response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// Longest error message sent; longer ones are cut (they quote the query).
const MAX_ERROR_MESSAGE: usize = 512;
/// Most errors in one response; more are summarised in one last error.
const MAX_ERRORS: usize = 50;

/// An operation refused before it ran: no data, one error, and the cost when known.
/// No `cacheStatus`: nothing was read, from the cache or elsewhere.
fn refused(mut err: ServerError, cost: Option<Value>) -> Executed {
    if let Some(cost) = cost {
        err.extensions
            .get_or_insert_with(Default::default)
            .set("cost", cost);
    }
    Executed {
        response: Response::from_errors(vec![err]),
        cache_status: CacheStatus::Miss,
        dependencies: None,
        validation_reused: false,
    }
}

/// A `BAD_USER_INPUT` request error for an operation type this API does not have:
/// it only reads. (Left to async-graphql, a mutation answered the same error twice,
/// in words about the implementation: "Schema is not configured for mutations.")
fn unsupported_operation(doc: &ExecutableDocument, name: Option<&str>) -> Option<ServerError> {
    let operation = cost::select_operation(doc, name)?;
    let message = match operation.ty {
        OperationType::Query => return None,
        OperationType::Mutation => "this API has no mutations: it only reads; send a query",
        OperationType::Subscription => {
            "this API has no subscriptions; send a query (and repeat it to poll)"
        }
    };
    let mut err = ServerError::new(message, None);
    error::set_code(&mut err, Code::BadUserInput);
    Some(err)
}

/// `extensions.cost`: the estimate, the calls actually made (once run) and the limit.
fn cost_value(estimate: Estimate, actual: Option<u64>, max: u64) -> Value {
    let mut members = vec![("estimate", estimate.to_value())];
    if let Some(actual) = actual {
        members.push(("upstreamCalls", Value::Number(actual.into())));
    }
    members.push(("maxUpstreamCalls", Value::Number(max.into())));
    error::object(members)
}

/// Runs one operation for a caller.
///
/// Adds `extensions.cacheStatus` (unless the operation did not start: see
/// [`Executed::is_request_error`]) and `extensions.stale` (the response paths served
/// stale) when any. Every error carries `extensions.code`.
pub async fn execute(
    schema: &DeviceSchema,
    request: async_graphql::Request,
    ctx: RequestContext,
) -> Executed {
    let Some(shared) = schema.data::<Arc<Shared>>() else {
        // Only a schema not made by `build_schema` lacks it: a programming error.
        tracing::error!("execute called with a schema not built by build_schema");
        let mut err = ServerError::new("internal error", None);
        error::set_code(&mut err, Code::Internal);
        return refused(err, None);
    };
    let mut request = request;
    let doc = match shared.documents.get_or_parse(&request.query) {
        Ok(doc) => doc,
        Err(err) => return refused(err, None),
    };
    if let Some(err) = unsupported_operation(&doc, request.operation_name.as_deref()) {
        return refused(err, None);
    }
    if !shared.config.introspection && guard::selects_introspection(&doc) {
        let mut err = ServerError::new("introspection is disabled on this server", None);
        error::set_code(&mut err, Code::BadUserInput);
        return refused(err, None);
    }
    let estimate = cost::Estimator::new(
        &doc,
        &request.variables,
        &shared.store,
        &ctx.scope,
        shared.config.documents.max_list_length,
    )
    .run(request.operation_name.as_deref());
    let estimate = match estimate {
        Ok(estimate) => estimate,
        Err(too_long) => {
            let mut err = ServerError::new(too_long.to_string(), None);
            error::set_code(&mut err, Code::BadUserInput);
            return refused(err, None);
        }
    };
    let max = shared.config.documents.max_upstream_calls;
    if max > 0 && estimate.total() > max {
        let mut err = ServerError::new(
            format!(
                "this operation would make about {} upstream calls; the limit is {max} \
                 (ask for fewer devices or smaller pages, or repeat once they are cached)",
                estimate.total()
            ),
            None,
        );
        error::set_code(&mut err, Code::QueryTooComplex);
        return refused(err, Some(cost_value(estimate, None, max)));
    }
    if estimate.total() > 0
        && let Some(budget) = &ctx.budget
        && let Err(wait) = budget.charge(estimate.total())
    {
        let secs = wait.as_secs().max(1);
        let mut err = ServerError::new(
            format!(
                "this client's upstream call budget is spent; this operation needs about {} \
                 upstream calls; retry after {secs} s",
                estimate.total()
            ),
            None,
        );
        error::set_code(&mut err, Code::RateLimited);
        err.extensions
            .get_or_insert_with(Default::default)
            .set("retryAfter", secs);
        return refused(err, Some(cost_value(estimate, None, max)));
    }
    request.set_parsed_query(doc.as_ref().clone());

    let meter = devicegraph_upstream::CallMeter::default();
    let state = Arc::new(RequestState::new(
        shared.store.clone(),
        ctx.scope,
        shared.config.max_page_size,
        shared.config.history_concurrency,
    ));
    let fast = schema.data::<Arc<FastPath>>();
    let key = fast.and_then(|_| FastPath::key(&request));
    let twin = fast.and_then(|fast| fast.schema_for(key.as_ref()));
    // Boxed: the execution future is large, and the scopes below each hold it; by
    // value, debug builds overflowed a test thread's stack moving it between them.
    let run = Box::pin(devicegraph_upstream::with_call_meter(
        meter.clone(),
        twin.unwrap_or(schema)
            .execute(request.data(Arc::clone(&state))),
    ));
    let run = async move {
        match ctx.tenant {
            Some(tenant) => devicegraph_upstream::with_tenant(tenant, run).await,
            None => run.await,
        }
    };
    let run = async move {
        match ctx.deadline {
            Some(deadline) => devicegraph_cache::with_deadline(deadline, run).await,
            None => run.await,
        }
    };
    // The request id is already in scope (set by the caller, for the whole request).
    let mut response = run.await;
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
            error::set_code(err, Code::BadUserInput);
        }
        // Validation messages quote names from the query: keep them short.
        if err.message.len() > MAX_ERROR_MESSAGE {
            err.message = error::bounded(&err.message, MAX_ERROR_MESSAGE);
        }
    }
    if response.errors.len() > MAX_ERRORS {
        let more = response.errors.len() - MAX_ERRORS;
        response.errors.truncate(MAX_ERRORS);
        let mut err = ServerError::new(format!("... and {more} more errors"), None);
        error::set_code(&mut err, Code::BadUserInput);
        response.errors.push(err);
    }
    if ctx.report_cost {
        response.extensions.insert(
            "cost".to_owned(),
            cost_value(estimate, Some(meter.calls()), max),
        );
    }

    let (mut cache_status, stale) = state.summary();
    if cache_status == CacheStatus::Hit && !response.errors.is_empty() {
        cache_status = CacheStatus::Miss;
    }
    if !stale.is_empty() {
        response.extensions.insert(
            "stale".to_owned(),
            Value::List(stale.into_iter().map(Value::String).collect()),
        );
    }
    // A request error (validation failed) read nothing: no cache status to report.
    if !is_request_error(&response) {
        response.extensions.insert(
            "cacheStatus".to_owned(),
            Value::String(cache_status.as_str().to_owned()),
        );
    }
    let dependencies = state
        .dependencies()
        .filter(|deps| !deps.is_empty() && response.errors.is_empty() && !ctx.report_cost);
    Executed {
        response,
        cache_status,
        dependencies,
        validation_reused: twin.is_some(),
    }
}
