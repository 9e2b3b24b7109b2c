//! The crate's error type. `Clone` because one coalesced upstream failure is handed to
//! every request that waited on it.

use devicegraph_upstream::UpstreamError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The shared fetch this request waited on ended without an answer (its task
    /// panicked or the runtime is shutting down).
    #[error("the coalesced upstream fetch for {resource} ended without an answer")]
    FetchAborted { resource: &'static str },
    /// A cached value of the wrong kind for its key (a corrupt L2 record, say).
    #[error("internal cache error: {reason}")]
    Internal { reason: &'static str },
    /// A configuration value the store cannot work with.
    #[error("invalid cache configuration `{key}`: {reason}")]
    Config { key: &'static str, reason: String },
}
