//! Shared helpers for the client's integration tests: a simulator on port 0, a client
//! configured for fast tests, a gate that records what passed it, and stats deltas.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devicegraph_sim::{RunningSim, SimConfig, Stats};
use devicegraph_upstream::{
    Client, ClientConfig, Credentials, Endpoint, GatePermit, RequestGate, UpstreamError,
};
use futures::future::BoxFuture;
use secrecy::SecretString;
use tokio::time::Instant;

pub const ACCOUNT: &str = "0000123456-00001";

pub async fn sim() -> RunningSim {
    sim_with(SimConfig::default()).await
}

pub async fn sim_with(config: SimConfig) -> RunningSim {
    devicegraph_sim::spawn_on(config, "127.0.0.1:0")
        .await
        .unwrap()
}

pub fn credentials(secret: &str, password: &str) -> Credentials {
    Credentials {
        client_id: "sim-client".into(),
        client_secret: SecretString::from(secret.to_owned()),
        username: "sim-user".into(),
        password: SecretString::from(password.to_owned()),
    }
}

/// Short deadlines and backoffs so fault tests stay fast.
pub fn config(sim: &RunningSim) -> ClientConfig {
    let mut c = ClientConfig::new(
        sim.base_url().parse().unwrap(),
        credentials("sim-secret", "sim-password"),
    );
    c.timeout = Duration::from_secs(5);
    c.max_attempts = 4;
    c.backoff_base = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.login_backoff = Duration::from_millis(200);
    c
}

pub fn client(sim: &RunningSim) -> Client {
    Client::new(config(sim)).unwrap()
}

/// Calls per endpoint since `before`.
pub fn delta(before: &Stats, after: &Stats, endpoint: &str) -> u64 {
    let get = |s: &Stats| s.calls.get(endpoint).copied().unwrap_or(0);
    get(after) - get(before)
}

/// Calls `clear` once the simulator has seen `calls` requests to `endpoint`: lets a
/// test fail the first attempts deterministically and then let one through.
pub fn clear_faults_after(
    sim: &RunningSim,
    endpoint: &'static str,
    calls: u64,
) -> tokio::task::JoinHandle<()> {
    let root = sim.root_url();
    let before = sim.stats().calls.get(endpoint).copied().unwrap_or(0);
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let stats: Stats = http
                .get(format!("{root}/_sim/stats"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if stats.calls.get(endpoint).copied().unwrap_or(0) >= before + calls {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        http.post(format!("{root}/_sim/faults"))
            .json(&serde_json::json!({ "clear": true }))
            .send()
            .await
            .unwrap();
    })
}

/// Sets faults through the documented control API.
pub async fn set_faults(sim: &RunningSim, faults: serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/_sim/faults", sim.root_url()))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "faults refused: {}", r.status());
}

/// A gate that lets everything through and records acquisitions and 429 reports.
#[derive(Default)]
pub struct RecordingGate {
    pub acquired: Mutex<BTreeMap<&'static str, u64>>,
    pub rate_limited: Mutex<Vec<(Endpoint, Duration)>>,
}

impl RequestGate for RecordingGate {
    fn acquire(
        &self,
        endpoint: Endpoint,
        _deadline: Instant,
    ) -> BoxFuture<'_, Result<GatePermit, UpstreamError>> {
        *self
            .acquired
            .lock()
            .unwrap()
            .entry(endpoint.name())
            .or_default() += 1;
        Box::pin(async { Ok(GatePermit::none()) })
    }

    fn rate_limited(&self, endpoint: Endpoint, retry_after: Duration) {
        self.rate_limited
            .lock()
            .unwrap()
            .push((endpoint, retry_after));
    }
}

pub fn recording_client(sim: &RunningSim) -> (Client, Arc<RecordingGate>) {
    let gate = Arc::new(RecordingGate::default());
    let client = Client::with_gate(config(sim), gate.clone()).unwrap();
    (client, gate)
}
