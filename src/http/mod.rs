//! The HTTP server's middleware, one layer per file, and what they share: the rescue
//! point for errors (`problem`), content negotiation, the accept loop (`serve`).
//! None of it knows the routes or the application state; `crate::router` assembles
//! the stack around the routes, in the order it documents.

pub(crate) mod auth;
pub(crate) mod body_limit;
pub(crate) mod conn_clock;
pub(crate) mod cors;
pub(crate) mod identity;
pub(crate) mod metrics;
pub(crate) mod negotiate;
pub(crate) mod problem;
pub(crate) mod process_metrics;
pub(crate) mod rate_limit;
pub(crate) mod request_id;
pub(crate) mod security_headers;
pub(crate) mod serve;
pub(crate) mod trace;
pub(crate) mod upstream_budget;
