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
    spawn_gateway(sim, config).await
}

/// Like [`spawn_app_with`], with the config loaded the way an operator's is: the
/// settings of [`test_config`] and then `overrides` (dotted keys, e.g.
/// `("upstream.circuit_breaker.open_for", "1s")`) applied as `DEVICEGRAPH_*`
/// environment overrides over `config/default.toml`, then `configure`. Keys go
/// through the config loader as text, so it checks them (an unknown key fails the
/// test naming it) and a test can name settings that are not in `Config` yet.
pub async fn spawn_app_overridden(
    sim_config: SimConfig,
    overrides: &[(&str, &str)],
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    let sim = devicegraph_sim::spawn_on(sim_config, "127.0.0.1:0")
        .await
        .unwrap();
    let mut config = test_config_overridden(&sim, overrides);
    configure(&mut config);
    spawn_gateway(sim, config).await
}

/// The environment variable of a dotted key: `upstream.circuit_breaker.open_for` is
/// `DEVICEGRAPH_UPSTREAM__CIRCUIT_BREAKER__OPEN_FOR`.
pub fn env_var_of(key: &str) -> String {
    format!(
        "DEVICEGRAPH_{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// [`test_config`]'s settings as text, then `overrides`, over `config/default.toml`.
pub fn test_config_overridden(sim: &RunningSim, overrides: &[(&str, &str)]) -> Config {
    let defaults = SimConfig::default();
    let base_url = sim.base_url();
    let settings = [
        ("upstream.mode", "thingspace"),
        ("upstream.base_url", base_url.as_str()),
        ("upstream.client_id", defaults.client_id.as_str()),
        ("upstream.client_secret", defaults.client_secret.as_str()),
        ("upstream.username", defaults.username.as_str()),
        ("upstream.password", defaults.password.as_str()),
        ("upstream.timeout", "10s"),
        ("upstream.rate_per_second", "10000"),
        ("upstream.burst", "10000"),
        ("limits.per_client_rps", "10000"),
        ("limits.per_client_burst", "10000"),
    ];
    let env = settings
        .iter()
        .chain(overrides)
        .map(|(key, value)| (env_var_of(key), (*value).to_owned()));
    Config::from_toml_str(
        devicegraph::config::DEFAULT_TOML,
        "config/default.toml",
        env,
    )
    .unwrap_or_else(|error| panic!("test config with {overrides:?}: {error}"))
}

/// The real gateway on port 0 in front of `sim`, with `config`.
pub async fn spawn_gateway(sim: RunningSim, config: Config) -> TestApp {
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

/// The first `n` IMEIs of `account` (ascending), read straight from the simulator's
/// account device list with a token and session of their own, so the gateway's
/// cache stays cold for them. Adds a token, a login and list calls to the
/// simulator's stats: reset them before counting.
pub async fn account_imeis(sim: &RunningSim, account: &str, n: usize) -> Vec<String> {
    let defaults = SimConfig::default();
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let token: Value = http
        .post(format!("{base}/ts/v1/oauth2/token"))
        .basic_auth(&defaults.client_id, Some(&defaults.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = token["access_token"].as_str().unwrap().to_owned();
    let session: Value = http
        .post(format!("{base}/m2m/v1/session/login"))
        .bearer_auth(&bearer)
        .json(&json!({ "username": defaults.username, "password": defaults.password }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = session["sessionToken"].as_str().unwrap().to_owned();
    let mut imeis = Vec::with_capacity(n);
    let mut cursor = "0".to_owned();
    while imeis.len() < n {
        let page: Value = http
            .get(format!(
                "{base}/fota/v3/devices/{account}?lastSeenDeviceId={cursor}"
            ))
            .bearer_auth(&bearer)
            .header("VZ-M2M-Token", &session)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let devices = page["deviceList"].as_array().unwrap();
        imeis.extend(
            devices
                .iter()
                .filter_map(|d| d["deviceId"].as_str().map(str::to_owned)),
        );
        if page["hasMoreData"] != true {
            break;
        }
        cursor = page["lastSeenDeviceId"].as_str().unwrap().to_owned();
    }
    assert!(
        imeis.len() >= n,
        "{account} has {} devices, {n} wanted",
        imeis.len()
    );
    imeis.truncate(n);
    imeis
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
