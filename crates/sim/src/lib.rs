//! `devicegraph-sim`: a deterministic, fault-injecting simulator of the Verizon
//! ThingSpace APIs the gateway reads.
//!
//! It serves the OAuth token, M2M session login and the six data endpoints under
//! `/api` with ThingSpace's wire format and quirks (see `UPSTREAM.md` in the docs),
//! plus a control API under `/_sim` (catalog, stats, reset, faults). The fleet is
//! derived from `(seed, devices)` on demand, so a million devices cost a few MiB.
//!
//! This crate deliberately does not depend on `devicegraph-upstream`: it is an
//! independent implementation of the wire format, so a client bug cannot hide behind
//! shared code.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = devicegraph_sim::spawn_on(devicegraph_sim::SimConfig::default(), "127.0.0.1:0").await?;
//! println!("ThingSpace at {}", sim.base_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod auth;
mod catalog;
mod data;
mod endpoint;
mod faults;
mod server;
mod stats;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use auth::LOCKOUT_THRESHOLD;
pub use catalog::{Catalog, CatalogCampaign, DeviceIdentifiers, PageSizes, Window};
pub use data::MAX_DEVICES;
pub use data::fleet::SEED_ACCOUNT;
pub use endpoint::Endpoint;
pub use faults::{Faults, FaultsError, FaultsPatch, RetryAfterFormat};
pub use stats::Stats;

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub devices: u64,
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    pub password: String,
    /// Faults active from the start (`/_sim/reset` clears them).
    pub faults: Faults,
    /// Devices per campaign-report page (ThingSpace: 1,000).
    pub campaign_page_size: usize,
    /// Devices per device-details page (ThingSpace: 1,000). A smaller value lets a
    /// test exercise details paging with fewer than 1,000 IMEIs.
    pub details_page_size: usize,
    /// Records per provisioning-history response (ThingSpace: 500).
    pub provisioning_page_size: usize,
    /// Devices per page of an account's device list (`GET /fota/v3/devices/{acc}`;
    /// its `maxPageSize`, 1,000 like the campaign report's).
    pub account_page_size: usize,
    /// OAuth token life from first issue (ThingSpace: one hour).
    pub token_lifetime: Duration,
    /// Session expiry after this much inactivity (ThingSpace: 20 minutes).
    pub session_idle_timeout: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            devices: 10_000,
            client_id: "sim-client".into(),
            client_secret: "sim-secret".into(),
            username: "sim-user".into(),
            password: "sim-password".into(),
            faults: Faults::default(),
            campaign_page_size: 1_000,
            details_page_size: 1_000,
            provisioning_page_size: data::provisioning::PAGE_SIZE,
            account_page_size: 1_000,
            token_lifetime: Duration::from_secs(3_600),
            session_idle_timeout: Duration::from_secs(20 * 60),
        }
    }
}

/// A configuration the simulator cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimConfigError {
    #[error("devices must be at most {MAX_DEVICES}, got {0}")]
    TooManyDevices(u64),
    #[error("{0} must be at least 1")]
    ZeroPageSize(&'static str),
}

impl SimConfig {
    pub fn validate(&self) -> Result<(), SimConfigError> {
        if self.devices > MAX_DEVICES {
            return Err(SimConfigError::TooManyDevices(self.devices));
        }
        for (name, size) in [
            ("campaign_page_size", self.campaign_page_size),
            ("details_page_size", self.details_page_size),
            ("provisioning_page_size", self.provisioning_page_size),
            ("account_page_size", self.account_page_size),
        ] {
            if size == 0 {
                return Err(SimConfigError::ZeroPageSize(name));
            }
        }
        Ok(())
    }
}

/// A simulator serving on a socket; dropping it (or `shutdown`) stops it.
pub struct RunningSim {
    pub addr: SocketAddr,
    state: Arc<server::AppState>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Builds the simulator's state from a config (the fleet, the catalog, the tokens).
fn build_state(config: &SimConfig, shutdown: watch::Receiver<bool>) -> server::AppState {
    let world = data::World::new(config.seed, config.devices);
    let pages = server::Pages {
        campaign: config.campaign_page_size,
        details: config.details_page_size,
        provisioning: config.provisioning_page_size,
        account: config.account_page_size,
    };
    let catalog = catalog::build(
        &world,
        PageSizes {
            campaign_devices: pages.campaign,
            device_details: pages.details,
            provisioning_history: pages.provisioning,
            account_devices: pages.account,
        },
    );
    server::AppState {
        world,
        pages,
        auth: auth::Auth::new(auth::AuthConfig {
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            username: config.username.clone(),
            password: config.password.clone(),
            token_lifetime: config.token_lifetime,
            session_idle: config.session_idle_timeout,
        }),
        faults: RwLock::new(config.faults.clone()),
        counters: Arc::new(stats::Counters::default()),
        catalog,
        shutdown,
    }
}

/// Starts the simulator on `listener` (bind `127.0.0.1:0` in tests). Must be called
/// inside a tokio runtime.
pub async fn spawn(config: SimConfig, listener: TcpListener) -> std::io::Result<RunningSim> {
    config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let addr = listener.local_addr()?;
    let (stop, shutdown) = watch::channel(false);
    let state = Arc::new(build_state(&config, shutdown.clone()));
    let app = server::router(Arc::clone(&state));
    let task = tokio::spawn(server::serve(listener, app, shutdown));
    tracing::info!(%addr, seed = config.seed, devices = config.devices, "ThingSpace simulator listening");
    Ok(RunningSim {
        addr,
        state,
        stop,
        task: Some(task),
    })
}

/// Binds `addr` (e.g. `"127.0.0.1:0"`) and starts the simulator there.
pub async fn spawn_on(config: SimConfig, addr: &str) -> std::io::Result<RunningSim> {
    let listener = TcpListener::bind(addr).await?;
    spawn(config, listener).await
}

impl RunningSim {
    /// `http://{addr}/api`, the base URL a client should use.
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// `http://{addr}`, where the `/_sim` control API lives.
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Accounts, campaigns and sample identifiers.
    pub fn catalog(&self) -> Catalog {
        self.state.catalog.clone()
    }

    /// A snapshot of the request counters.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// The current faults.
    pub fn faults(&self) -> Faults {
        self.state.faults()
    }

    /// Changes the faults as `POST /_sim/faults` would.
    pub fn set_faults(&self, patch: FaultsPatch) -> Result<Faults, FaultsError> {
        server::apply_faults(&self.state, &patch)?;
        Ok(self.state.faults())
    }

    /// Invalidates every OAuth and session token issued so far.
    pub fn expire_tokens(&self) {
        self.state.auth_expire_all();
    }

    /// Clears stats, faults and lockouts (`POST /_sim/reset`).
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Stops accepting, lets in-flight requests finish (stalled ones are cut), and
    /// waits for the server to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            // Aborting the accept loop drops its JoinSet, which aborts every connection.
            task.abort();
        }
    }
}

/// Runs a simulator until `shutdown` resolves; for the binary and embedders that
/// want one future. Returns once the server has stopped.
pub async fn run_until(
    config: SimConfig,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let sim = spawn(config, listener).await?;
    shutdown.await;
    sim.shutdown().await;
    Ok(())
}

/// Reads this process's resident memory in bytes from `/proc/self/status` (Linux).
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
