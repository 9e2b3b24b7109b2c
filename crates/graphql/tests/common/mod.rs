//! Shared test helpers: an offline schema (an upstream nobody listens on, behind a gate
//! that counts every attempted request) and a schema over a real simulator on port 0.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use devicegraph_cache::{Store, StoreConfig};
use devicegraph_graphql::{
    AccountScope, CacheStatus, DeviceSchema, GraphqlConfig, RequestContext, build_schema, execute,
};
use devicegraph_sim::{RunningSim, SimConfig};
use devicegraph_upstream::{
    Client, ClientConfig, Credentials, Endpoint, GatePermit, RequestGate, UpstreamError,
};
use futures::future::BoxFuture;
use serde_json::Value;

/// Counts every upstream request the client tries to send, and records the request
/// id (task-local) each was sent under.
#[derive(Default)]
pub struct CountingGate(
    pub AtomicUsize,
    pub std::sync::Mutex<Vec<(Endpoint, Option<String>)>>,
);

impl RequestGate for CountingGate {
    fn acquire(
        &self,
        _endpoint: Endpoint,
        _deadline: tokio::time::Instant,
    ) -> BoxFuture<'_, Result<GatePermit, UpstreamError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        self.1
            .lock()
            .unwrap()
            .push((_endpoint, devicegraph_upstream::current_request_id()));
        Box::pin(async { Ok(GatePermit::none()) })
    }

    fn rate_limited(&self, _endpoint: Endpoint, _retry_after: Duration) {}
}

pub fn credentials() -> Credentials {
    Credentials {
        client_id: "sim-client".into(),
        client_secret: "sim-secret".to_owned().into(),
        username: "sim-user".into(),
        password: "sim-password".to_owned().into(),
    }
}

fn store_on(base: &str, gate: Arc<dyn RequestGate>, timeout: Duration) -> Store {
    let mut config = ClientConfig::new(base.parse().unwrap(), credentials());
    config.timeout = timeout;
    config.max_attempts = 1;
    let client = Client::with_gate(config, gate).unwrap();
    Store::new(client, StoreConfig::default())
}

/// A schema whose upstream is unroutable, and the count of upstream attempts.
pub fn offline(config: GraphqlConfig) -> (DeviceSchema, Arc<CountingGate>) {
    let gate = Arc::new(CountingGate::default());
    let store = store_on(
        "http://127.0.0.1:9/api",
        Arc::clone(&gate) as Arc<dyn RequestGate>,
        Duration::from_millis(200),
    );
    (build_schema(store, config), gate)
}

/// Runs `query` (with `variables`) and returns the response as JSON.
pub async fn run_as(
    schema: &DeviceSchema,
    query: &str,
    variables: Value,
    scope: AccountScope,
) -> Value {
    let request = async_graphql::Request::new(query)
        .variables(async_graphql::Variables::from_json(variables));
    // The request id is a task-local, set for the whole request (as the HTTP
    // middleware does).
    let executed = devicegraph_upstream::with_request_id(
        "test-request".into(),
        execute(schema, request, RequestContext::new(scope)),
    )
    .await;
    let json = serde_json::to_value(&executed.response).unwrap();
    if executed.is_request_error() {
        assert_eq!(json["data"], Value::Null, "{json:#}");
        assert!(
            json["extensions"].get("cacheStatus").is_none(),
            "a request error read nothing, so has no cache status: {json:#}"
        );
    } else {
        assert_eq!(
            json["extensions"]["cacheStatus"],
            executed.cache_status.as_str(),
            "extensions.cacheStatus matches Executed.cache_status"
        );
    }
    if json.get("errors").is_some() {
        assert_ne!(
            executed.cache_status,
            CacheStatus::Hit,
            "an answer with errors is no cache hit: {json:#}"
        );
    }
    json
}

pub async fn run(schema: &DeviceSchema, query: &str, variables: Value) -> Value {
    run_as(schema, query, variables, AccountScope::All).await
}

/// The `extensions.code` of every error, in order.
pub fn codes(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A simulator, a schema over it, and its control API.
pub struct SimEnv {
    pub sim: RunningSim,
    pub schema: DeviceSchema,
    pub http: reqwest::Client,
    pub gate: Arc<CountingGate>,
}

pub const ACCOUNT: &str = "0000123456-00001";

impl SimEnv {
    pub async fn start(sim: SimConfig, config: GraphqlConfig, timeout: Duration) -> Self {
        Self::start_with_clock(
            sim,
            config,
            timeout,
            Arc::new(devicegraph_cache::TokioClock),
        )
        .await
    }

    /// [`SimEnv::start`] with the store judging freshness by `clock`.
    pub async fn start_with_clock(
        sim: SimConfig,
        config: GraphqlConfig,
        timeout: Duration,
        clock: Arc<dyn devicegraph_cache::Clock>,
    ) -> Self {
        let sim = devicegraph_sim::spawn_on(sim, "127.0.0.1:0").await.unwrap();
        let gate = Arc::new(CountingGate::default());
        let mut client_config = ClientConfig::new(sim.base_url().parse().unwrap(), credentials());
        client_config.timeout = timeout;
        client_config.max_attempts = 1;
        let client =
            Client::with_gate(client_config, Arc::clone(&gate) as Arc<dyn RequestGate>).unwrap();
        let store = Store::with_clock(client, StoreConfig::default(), clock);
        Self {
            schema: build_schema(store, config),
            sim,
            http: reqwest::Client::new(),
            gate,
        }
    }

    pub async fn default() -> Self {
        Self::start(
            SimConfig::default(),
            GraphqlConfig::default(),
            Duration::from_secs(10),
        )
        .await
    }

    pub async fn run(&self, query: &str, variables: Value) -> Value {
        run(&self.schema, query, variables).await
    }

    /// `GET /_sim/stats` over HTTP.
    pub async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/_sim/stats", self.sim.root_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Calls to one upstream endpoint since the last reset.
    pub async fn calls(&self, endpoint: &str) -> u64 {
        self.stats().await["calls"][endpoint].as_u64().unwrap_or(0)
    }

    /// `POST /_sim/reset` over HTTP.
    pub async fn reset(&self) {
        let status = self
            .http
            .post(format!("{}/_sim/reset", self.sim.root_url()))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success());
    }

    /// `POST /_sim/faults` over HTTP.
    pub async fn faults(&self, body: Value) {
        let status = self
            .http
            .post(format!("{}/_sim/faults", self.sim.root_url()))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "faults refused: {status}");
    }

    pub fn sample_imeis(&self, account: &str) -> Vec<String> {
        self.sim.catalog().sample_imeis[account].clone()
    }

    /// The smallest campaign of `account` with more than `min` devices: (id, devices).
    pub fn campaign_over(&self, account: &str, min: u64) -> (String, u64) {
        self.sim
            .catalog()
            .campaigns
            .iter()
            .filter(|c| c.account == account && c.devices > min)
            .min_by_key(|c| c.devices)
            .map(|c| (c.id.clone(), c.devices))
            .unwrap()
    }
}
