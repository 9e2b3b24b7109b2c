//! The caller's deadline: the instant past which the request a read serves has no
//! use for an answer.
//!
//! A read that has to wait for a shared fetch (its own or one it joined) waits at
//! most until then, and answers a stale copy if it has one, else a timeout. Without
//! it a request that joined a slow fetch late would wait for that fetch's own bound,
//! which was set for whoever started it, and an outer request timeout would turn a
//! servable stale copy into an error.
//!
//! A tokio task-local, like the request id in `devicegraph_upstream`: the deadline
//! belongs to whoever serves the inbound request, and threading it through every
//! `Store` method would change their signatures for a concern most callers leave to
//! the default. Spawned work does not inherit it; the fetch a read starts must not
//! (it serves every request that joins it, see `engine`).

use std::future::Future;

use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `fut` with reads inside it waiting for the upstream at most until
/// `deadline` (or an earlier deadline already in force). Set it a little before the
/// request's own timeout, so that a stale answer still has time to be sent.
pub async fn with_deadline<F: Future>(deadline: Instant, fut: F) -> F::Output {
    let deadline = current_deadline().map_or(deadline, |outer| outer.min(deadline));
    DEADLINE.scope(deadline, fut).await
}

/// The deadline in force for the current task, if any (to carry it into spawned
/// work with [`with_deadline`]).
pub fn current_deadline() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}
