//! The HTTP side: shared state, the router, and a hand-written accept loop.
//!
//! We run our own accept loop over hyper (rather than `axum::serve`) for two reasons:
//! the `dropRate` fault must close a connection without any HTTP answer, so the
//! client sees a transport error rather than a status. A handler marks its response
//! with [`respond::DropConnection`]; the per-connection service turns that into a
//! service error, and hyper aborts the connection on a service error. And each
//! request runs in a task of its own that outlives its client
//! ([`request_task`]), so the stats count what the simulator is busy with.

mod control;
pub(crate) use control::apply as apply_faults;
mod account_devices;
mod data_routes;
mod gate;
mod request_task;
mod respond;
mod token_routes;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::auth::Auth;
use crate::catalog::Catalog;
use crate::data::World;
use crate::faults::Faults;
use crate::stats::{Counters, Stats};

/// How long shutdown waits for in-flight requests before cutting connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Page sizes in effect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pages {
    pub(crate) campaign: usize,
    pub(crate) details: usize,
    pub(crate) provisioning: usize,
    pub(crate) account: usize,
}

/// Everything the handlers share.
pub(crate) struct AppState {
    pub(crate) world: World,
    pub(crate) pages: Pages,
    pub(crate) auth: Auth,
    // A std RwLock: read (cloned) at the start of each request, never held across an await.
    pub(crate) faults: RwLock<Faults>,
    // In an Arc so an in-flight guard can outlive the handler (a mid-body fault's
    // body stream holds one).
    pub(crate) counters: Arc<Counters>,
    pub(crate) catalog: Catalog,
    /// Flips to `true` at shutdown; stalled requests watch it so shutdown never hangs.
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl AppState {
    pub(crate) fn faults(&self) -> Faults {
        self.faults
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        *self
            .faults
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = faults;
    }

    pub(crate) fn stats(&self) -> Stats {
        self.counters.snapshot(self.auth.locked_count())
    }

    pub(crate) fn auth_expire_all(&self) {
        self.auth.expire_all();
    }

    /// Clears stats, faults and lockouts.
    pub(crate) fn reset(&self) {
        self.counters.reset();
        self.set_faults(Faults::default());
        self.auth.clear_lockouts();
    }
}

/// The simulator's routes: ThingSpace under `/api`, the control API under `/_sim`.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    use data_routes::{
        campaign_devices, check_in_history, device_details, provisioning_history, upgrade_history,
    };
    Router::new()
        .route("/api/ts/v1/oauth2/token", post(token_routes::oauth_token))
        .route(
            "/api/m2m/v1/session/login",
            post(token_routes::session_login),
        )
        .route(
            "/api/fota/v2/logging/{acc}/devices/{imei}/checkInHistory",
            get(check_in_history),
        )
        .route(
            "/api/fota/v3/reports/{acc}/devices/{imei}",
            get(upgrade_history),
        )
        .route(
            "/api/fota/v2/reports/{acc}/devices/{imei}",
            get(upgrade_history),
        )
        .route(
            "/api/fota/v3/reports/{acc}/campaigns/{campaign}/devices",
            get(campaign_devices),
        )
        .route(
            "/api/fota/v2/reports/{acc}/campaigns/{campaign}/devices",
            get(campaign_devices),
        )
        // One path, two reads: POST names the devices (details), GET lists the
        // account's devices page by page.
        .route(
            "/api/fota/v3/devices/{acc}",
            post(device_details).get(account_devices::account_devices),
        )
        .route(
            "/api/m2m/v1/devices/history/actions/list",
            post(provisioning_history),
        )
        .merge(control::routes())
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` flips (or its sender is dropped).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, router.clone(), shutdown.clone()));
                }
                Err(error) => {
                    // Usually EMFILE under load: back off briefly rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!(
            remaining = connections.len(),
            "closing connections still open after the grace period"
        );
    }
    connections.abort_all();
}

async fn serve_connection(stream: TcpStream, router: Router, mut shutdown: watch::Receiver<bool>) {
    // Small JSON answers: do not let Nagle delay them.
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        request_task::run(router.clone(), request.map(Body::new))
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    if *shutdown.borrow_and_update() {
        connection.as_mut().graceful_shutdown();
    }
    tokio::select! {
        result = connection.as_mut() => log_connection_end(result),
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            log_connection_end(connection.await);
        }
    }
}

fn log_connection_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended");
    }
}
