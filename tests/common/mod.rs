//! Shared helpers of the end-to-end tests: a simulator on port 0, the real gateway on
//! port 0 in front of it (through `devicegraph::run`, the same path as the binary),
//! and a reqwest client speaking real HTTP to both.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::time::Duration;

use devicegraph::Config;
use devicegraph::config::UpstreamMode;
use devicegraph_sim::{Catalog, RunningSim, SimConfig};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The first account of the simulator (the seed pages' example).
pub const ACCOUNT: &str = "0000123456-00001";

pub struct TestApp {
    /// `http://127.0.0.1:PORT` of the gateway.
    pub base: String,
    pub sim: RunningSim,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A config for tests: ThingSpace mode against `sim`, generous limits (tests that
/// need tight ones set them), short upstream deadline.
pub fn test_config(sim: &RunningSim) -> Config {
    let mut config = Config::default();
    let defaults = SimConfig::default();
    config.upstream.mode = UpstreamMode::Thingspace;
    config.upstream.base_url = sim.base_url().parse().unwrap();
    config.upstream.client_id = defaults.client_id;
    config.upstream.client_secret = SecretString::from(defaults.client_secret);
    config.upstream.username = defaults.username;
    config.upstream.password = SecretString::from(defaults.password);
    config.upstream.timeout = Duration::from_secs(10);
    config.upstream.rate_per_second = 10_000;
    config.upstream.burst = 10_000;
    config.limits.per_client_rps = 10_000;
    config.limits.per_client_burst = 10_000;
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(SimConfig::default(), |_| {}).await
}

pub async fn spawn_app_configured(configure: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with(SimConfig::default(), configure).await
}

pub async fn spawn_app_with(sim_config: SimConfig, configure: impl FnOnce(&mut Config)) -> TestApp {
    let sim = devicegraph_sim::spawn_on(sim_config, "127.0.0.1:0")
        .await
        .unwrap();
    let mut config = test_config(&sim);
    configure(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(devicegraph::run(listener, config, async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        sim,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn catalog(&self) -> Catalog {
        self.sim.catalog()
    }

    /// A sample IMEI of `account` (the `n`-th of the catalog's samples).
    pub fn sample_imei(&self, account: &str, n: usize) -> String {
        self.catalog().sample_imeis[account][n].clone()
    }

    /// POST /graphql with a JSON body; returns the raw response.
    pub async fn post_graphql(&self, query: &str, variables: Value) -> reqwest::Response {
        self.client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
    }

    /// POST /graphql expecting 200; returns the body.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let response = self.post_graphql(query, variables).await;
        assert_eq!(response.status(), 200, "graphql status");
        response.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// `GET /_sim/stats` of the simulator.
    pub async fn sim_stats(&self) -> Value {
        self.client
            .get(format!("{}/_sim/stats", self.sim.root_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Upstream calls of one endpoint since the last reset.
    pub async fn calls(&self, endpoint: &str) -> u64 {
        self.sim_stats().await["calls"][endpoint]
            .as_u64()
            .unwrap_or(0)
    }

    /// `POST /_sim/reset`: clears stats, faults and lockouts.
    pub async fn sim_reset(&self) {
        let status = self
            .client
            .post(format!("{}/_sim/reset", self.sim.root_url()))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success());
    }

    /// `POST /_sim/faults`.
    pub async fn sim_faults(&self, faults: Value) {
        let response = self
            .client
            .post(format!("{}/_sim/faults", self.sim.root_url()))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "faults refused: {}",
            response.text().await.unwrap()
        );
    }

    /// Sends the shutdown signal and waits for `run` to return.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(server) => server.await.unwrap(),
            None => Ok(()),
        }
    }

    /// Signals shutdown without waiting; returns the server task.
    pub fn begin_shutdown(&mut self) -> JoinHandle<anyhow::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// The error codes of a GraphQL body.
pub fn codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["extensions"]["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts an RFC 9457 problem with `code` and `status`, quoting the request id of
/// the `X-Request-ID` response header as `requestId`; returns the body.
pub async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let request_id = request_id_of(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    for member in ["type", "title", "detail"] {
        assert!(
            body[member].is_string(),
            "problem without `{member}`: {body}"
        );
    }
    assert_eq!(body["requestId"], request_id.as_str(), "{body}");
    body
}

/// The `X-Request-ID` response header (every answer has one).
pub fn request_id_of(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// Asserts a GraphQL answer whose every error has an `extensions.code` and quotes
/// the request id of the `X-Request-ID` response header as `extensions.requestId`;
/// returns the body.
pub async fn assert_graphql_errors(response: reqwest::Response) -> Value {
    let request_id = request_id_of(&response);
    let body: Value = response.json().await.unwrap();
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors: {body}"));
    assert!(!errors.is_empty(), "{body}");
    for error in errors {
        assert!(error["extensions"]["code"].is_string(), "{body}");
        assert_eq!(
            error["extensions"]["requestId"],
            request_id.as_str(),
            "{body}"
        );
    }
    body
}

/// An RFC 3339 UTC timestamp with a `Z` suffix.
pub fn is_utc_z(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        s.ends_with('Z')
            && chrono::DateTime::parse_from_rfc3339(s)
                .is_ok_and(|t| t.offset().local_minus_utc() == 0)
    })
}
