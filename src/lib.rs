//! `devicegraph`: the gateway's library half: configuration, startup and the HTTP
//! server. `main.rs` only parses the command line and calls in here; tests drive
//! [`run`] (a real server on a port-0 listener) or [`app`] (the router alone).
//!
//! Its modules, each depending only on those listed before it
//! (`scripts/module_cycles.py src` checks there is no cycle):
//!
//! - [`config`]: the TOML + environment configuration, validated with every problem
//!   named; [`telemetry`]: logging.
//! - `http`: the middleware (one layer per file), the rescue point for errors and the
//!   accept loop. It knows neither the routes nor the state.
//! - `trusted`: persisted queries and trusted documents; `graphiql`: the GraphiQL page
//!   and its embedded assets.
//! - [`error`]: what can stop startup.
//! - [`state`]: what handlers share, and how `Config` maps to the library crates.
//! - `routes`: `/graphql`, the `/v1` JSON API, `/openapi.json`, health, metrics, admin.
//! - `router`: the routes inside the middleware stack, in its documented order.
//! - `startup`: the embedded simulator, serving and graceful shutdown.

pub mod config;
pub mod error;
mod graphiql;
mod http;
pub mod response_cache;
mod router;
mod routes;
mod startup;
pub mod state;
pub mod telemetry;
mod trusted;

use std::future::Future;

pub use config::Config;
pub use error::StartupError;
pub use state::AppState;

/// Serves `config` on `listener` until `shutdown` completes, then lets in-flight
/// requests finish (at most `server.shutdown_grace`). In simulator mode it starts the
/// embedded simulator first and stops it last.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    startup::run(listener, config, shutdown).await?;
    Ok(())
}

/// The router with the whole middleware stack (see the `router` module for the order).
pub fn app(state: AppState) -> axum::Router {
    router::router(state)
}

/// The GraphQL SDL of the schema (`devicegraph schema`). Builds a schema over a
/// client that is never called.
pub fn schema_sdl() -> Result<String, StartupError> {
    let config = Config::default();
    let target = state::UpstreamTarget::from_config(&config);
    let client = devicegraph_upstream::Client::new(state::client_config(&config, target))?;
    let store = devicegraph_cache::Store::new(client, state::store_config(&config));
    let schema = devicegraph_graphql::build_schema(store, state::graphql_config(&config));
    Ok(devicegraph_graphql::sdl(&schema))
}
