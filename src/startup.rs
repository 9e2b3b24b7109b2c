//! Startup and shutdown: the embedded simulator (simulator mode), the state, the
//! background chores, the banner, and serving until the shutdown signal plus at most
//! `server.shutdown_grace` for in-flight requests.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use devicegraph_sim::{RunningSim, SimConfig, spawn_on};
use devicegraph_upstream::Credentials;
use futures::FutureExt;
use secrecy::SecretString;
use tokio::net::TcpListener;
use url::Url;

use crate::config::{Config, SimulatorConfig, UpstreamMode};
use crate::error::StartupError;
use crate::http::metrics::spawn_upkeep;
use crate::routes::graphiql::Sample;
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
    let grace = config.server.shutdown_grace;
    let graphiql = config.graphql.graphiql;
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
    tracing::info!(%addr, upstream = %state.store.client().base_url(), "devicegraph listening");
    if sim.is_some() {
        println!("{}", banner(addr, sample.as_ref(), graphiql));
    }

    let result = serve(listener, crate::app(state), shutdown, grace).await;
    housekeeping.abort();
    upkeep.abort();
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    result
}

async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), StartupError> {
    // Shared so both the server (stop accepting, drain) and the grace timer see it.
    let signal = shutdown.boxed().shared();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal.clone())
    .into_future();
    let deadline = async move {
        signal.await;
        tracing::info!(
            grace_secs = grace.as_secs_f64(),
            "shutting down; letting in-flight requests finish"
        );
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = server => served.map_err(StartupError::Serve),
        () = deadline => {
            tracing::warn!("shutdown grace expired; dropping the requests still in flight");
            Ok(())
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
