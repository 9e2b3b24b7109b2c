//! The inbound request id, carried to every upstream request as `X-Request-ID`.
//!
//! A tokio task-local rather than a parameter: the id belongs to whoever is serving
//! an inbound request (the HTTP server sets it once), and threading it through the
//! cache and GraphQL layers' signatures would couple them to a logging concern.
//! Work spawned onto other tasks does not inherit it; such work simply sends no id.

use std::future::Future;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `fut` with `id` as the current request id.
pub async fn with_request_id<F: Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// The request id of the inbound request being served, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scoped_and_absent() {
        assert_eq!(current_request_id(), None);
        let seen = with_request_id("req-1".into(), async { current_request_id() }).await;
        assert_eq!(seen.as_deref(), Some("req-1"));
        assert_eq!(current_request_id(), None);
    }
}
