//! `StartupError`: what can stop the gateway from starting or serving. Request-time
//! errors have their own type and rescue point (`http::problem`).

use devicegraph_cache::CacheError;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("could not start the embedded simulator: {0}")]
    Simulator(#[source] std::io::Error),
    #[error("the embedded simulator reported an unusable base URL {url:?}: {reason}")]
    SimulatorUrl { url: String, reason: String },
    #[error("could not set up the upstream client: {0}")]
    Client(#[from] devicegraph_upstream::UpstreamError),
    #[error("could not set up the upstream client and cache: {0}")]
    Store(#[from] CacheError),
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("graphql.trusted_documents: {0}")]
    TrustedDocuments(#[from] crate::trusted::ManifestError),
}
