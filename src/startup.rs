//! Startup and shutdown: the embedded simulator (simulator mode), the state, the
//! background chores, the banner, and serving (our accept loop, `http::serve`, with
//! the connection limits of `[server]`) until the shutdown signal plus at most
//! `server.shutdown_grace` for in-flight requests.
//!
//! An open gateway (`auth.mode = "none"`) on a non-loopback address is allowed only
//! with `auth.allow_unauthenticated_public` (config validation refuses it otherwise),
//! and then said out loud: a warning at every start.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use devicegraph_sim::{RunningSim, SimConfig, spawn_on};
use devicegraph_upstream::Credentials;
use futures::FutureExt;
use secrecy::SecretString;
use tokio::net::TcpListener;
use url::Url;

use crate::config::{AuthMode, Config, ServerConfig, SimulatorConfig, UpstreamMode, redact_url};
use crate::error::StartupError;
use crate::graphiql::Sample;
use crate::http::metrics::spawn_upkeep;
use crate::http::serve::ConnLimits;
use crate::state::{AppState, UpstreamTarget};

/// How often idle clients are dropped from the inbound limiter.
const LIMITER_HOUSEKEEPING: Duration = Duration::from_secs(60);
/// How often histogram buffers are drained.
const METRICS_UPKEEP: Duration = Duration::from_secs(10);

/// Serves `config` on `listener` until `shutdown` completes (then lets in-flight
/// requests finish, for at most `server.shutdown_grace`).
pub(crate) async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let addr = listener.local_addr().map_err(StartupError::Serve)?;
    let (sim, target) = match config.upstream.mode {
        UpstreamMode::Simulator => {
            let sim = start_simulator(&config.simulator).await?;
            let target = simulator_target(&sim)?;
            (Some(sim), target)
        }
        UpstreamMode::Thingspace => (None, UpstreamTarget::from_config(&config)),
    };
    let server = config.server.clone();
    let graphiql = config.graphql.graphiql;
    if open_to_the_network(&config, addr) {
        tracing::warn!(
            %addr,
            allow_unauthenticated_public = config.auth.allow_unauthenticated_public,
            "auth.mode = \"none\" on a non-loopback address: anyone who can reach this port \
             can query devices and spend the upstream budget"
        );
    }
    let mut state = AppState::connect(config, target)?;
    // What the banner prints and GraphiQL pre-fills: a device the simulator has.
    let sample = sim
        .as_ref()
        .and_then(|sim| Sample::from_catalog(&sim.catalog()));
    if let Some(sample) = &sample {
        state = state.with_graphiql_sample(sample);
    }
    let housekeeping = state.limiter.spawn_housekeeping(LIMITER_HOUSEKEEPING);
    let upkeep = spawn_upkeep(state.metrics.clone(), METRICS_UPKEEP);
    // Reloads graphql.trusted_documents on SIGHUP until `run` returns.
    let _sighup = state.trusted.watch_sighup();
    // A base URL may carry credentials (userinfo); logs never do.
    let upstream = redact_url(state.store.client().base_url().as_str());
    tracing::info!(%addr, %upstream, "devicegraph listening");
    if sim.is_some() {
        println!("{}", banner(addr, sample.as_ref(), graphiql));
    }

    serve(listener, crate::router::router(state), &server, shutdown).await;
    housekeeping.abort();
    upkeep.abort();
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    Ok(())
}

/// Whether `config` serves without auth on an address other machines can reach.
fn open_to_the_network(config: &Config, addr: SocketAddr) -> bool {
    config.auth.mode == AuthMode::None && !addr.ip().is_loopback()
}

async fn serve(
    listener: TcpListener,
    app: axum::Router,
    server: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    // Shared so both the server (stop accepting, drain) and the grace timer see it.
    let signal = shutdown.boxed().shared();
    let served = crate::http::serve::serve(
        listener,
        app,
        ConnLimits::from_config(server),
        signal.clone(),
    );
    let grace = server.shutdown_grace;
    let deadline = async move {
        signal.await;
        tracing::info!(
            grace_secs = grace.as_secs_f64(),
            "shutting down; letting in-flight requests finish"
        );
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        () = served => {}
        () = deadline => {
            tracing::warn!("shutdown grace expired; dropping the requests still in flight");
        }
    }
}

async fn start_simulator(config: &SimulatorConfig) -> Result<RunningSim, StartupError> {
    let sim_config = SimConfig {
        seed: config.seed,
        devices: config.devices,
        ..SimConfig::default()
    };
    spawn_on(sim_config, "127.0.0.1:0")
        .await
        .map_err(StartupError::Simulator)
}

/// The embedded simulator, through the real client with the simulator's own
/// credentials (whatever `[upstream]` says: they are ThingSpace's, not the sim's).
fn simulator_target(sim: &RunningSim) -> Result<UpstreamTarget, StartupError> {
    let url = sim.base_url();
    let base_url = Url::parse(&url).map_err(|e| StartupError::SimulatorUrl {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    let defaults = SimConfig::default();
    Ok(UpstreamTarget {
        base_url,
        credentials: Credentials {
            client_id: defaults.client_id,
            client_secret: SecretString::from(defaults.client_secret),
            username: defaults.username,
            password: SecretString::from(defaults.password),
        },
    })
}

/// What to try first, printed when the embedded simulator runs.
fn banner(addr: SocketAddr, sample: Option<&Sample>, graphiql: bool) -> String {
    // A wildcard listen address is not somewhere a browser can go.
    let host = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let base = format!("http://{host}");
    let account = sample.map_or(devicegraph_sim::SEED_ACCOUNT, |s| s.account.as_str());
    let imei = sample.map_or("", |s| s.imei.as_str());
    let campaign_id = sample
        .and_then(|s| s.campaign.as_deref())
        .unwrap_or_default();
    let query = format!(
        r#"{{ device(account: \"{account}\", imei: \"{imei}\") {{ imei make model firmware lastCheckIn {{ result timeCompleted }} upgradeHistory {{ firmwareTo status }} }} }}"#
    );
    let browser = if graphiql {
        "GraphiQL (open in a browser)"
    } else {
        "GraphQL endpoint"
    };
    format!(
        "\n\
devicegraph is running against the embedded ThingSpace simulator.\n\
\n  {browser}: {base}/graphql\
\n  OpenAPI:   {base}/openapi.json\
\n\n  sample account:  {account}\
\n  sample IMEI:     {imei}\
\n  sample campaign: {campaign_id}\
\n\nTry:\
\n  curl -s {base}/graphql -H 'content-type: application/json' -d '{{\"query\":\"{query}\"}}'\
\n  curl -s '{base}/v1/accounts/{account}/devices/{imei}?include=upgradeHistory,checkIns'\
\n  curl -s '{base}/v1/accounts/{account}/campaigns/{campaign_id}/devices?limit=5'\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_open_gateway_on_a_reachable_address_is_warned_about() {
        let mut config = Config::default();
        let public = SocketAddr::from(([0, 0, 0, 0], 8080));
        let loopback = SocketAddr::from(([127, 0, 0, 1], 8080));
        let loopback6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 8080));
        assert!(open_to_the_network(&config, public));
        assert!(open_to_the_network(
            &config,
            SocketAddr::from(([10, 1, 2, 3], 80))
        ));
        assert!(!open_to_the_network(&config, loopback));
        assert!(!open_to_the_network(&config, loopback6));
        config.auth.mode = AuthMode::ApiKey;
        assert!(!open_to_the_network(&config, public));
    }
}
