//! The binary and the server's life: `check-config` exit codes and messages,
//! `devicegraph schema`, the embedded simulator mode, graceful shutdown.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{ACCOUNT, spawn_app_configured};
use devicegraph::Config;
use serde_json::{Value, json};

/// Runs the built binary with `args`, without any `DEVICEGRAPH_*` variable of the
/// test process, plus `env`.
fn devicegraph(args: &[&str], env: &[(&str, &str)]) -> Output {
    devicegraph_in(env!("CARGO_MANIFEST_DIR"), args, env)
}

fn devicegraph_in(dir: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_devicegraph"));
    command.args(args).current_dir(dir);
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("DEVICEGRAPH_")) {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().unwrap()
}

fn temp_config(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_accepts_the_shipped_configs() {
    let out = devicegraph(&["check-config", "--config", "config/default.toml"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("config OK"));

    let secrets = [
        ("DEVICEGRAPH_UPSTREAM__CLIENT_ID", "id"),
        ("DEVICEGRAPH_UPSTREAM__CLIENT_SECRET", "secret"),
        ("DEVICEGRAPH_UPSTREAM__USERNAME", "user"),
        ("DEVICEGRAPH_UPSTREAM__PASSWORD", "password"),
    ];
    let out = devicegraph(
        &["check-config", "--config", "config/production.example.toml"],
        &secrets,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_names_every_problem_and_exits_1() {
    let path = temp_config(
        "broken",
        "[server]\nlisten = \"nowhere\"\n[upstream]\nmode = \"thingspace\"\n[cache]\n[cache.tll]\ncheck_ins = \"1m\"\n",
    );
    let out = devicegraph(
        &["check-config", "--config", path.to_str().unwrap()],
        &[("DEVICEGRAPH_CACHE__TTL__CHECK_INS", "fast")],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "server.listen: invalid address \"nowhere\"",
        "cache.tll: unknown key",
        "cache.ttl.check_ins: invalid duration \"fast\"",
        "upstream.client_secret: required in thingspace mode (set DEVICEGRAPH_UPSTREAM__CLIENT_SECRET)",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(!stderr.contains("panicked"));

    // The config path may also come from DEVICEGRAPH_CONFIG.
    let out = devicegraph(
        &["check-config"],
        &[("DEVICEGRAPH_CONFIG", path.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1));
    let out = devicegraph(&["check-config", "--config", "/no/such/file.toml"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.toml"));
}

#[test]
fn schema_command_prints_the_sdl() {
    let out = devicegraph(&["schema"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let printed = String::from_utf8(out.stdout).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let expected = runtime.block_on(async { devicegraph::schema_sdl().unwrap() });
    assert_eq!(printed, expected);
    assert!(printed.contains("type Device"));
}

/// `cargo run` in miniature: the default config (embedded simulator) on port 0.
#[tokio::test]
async fn simulator_mode_serves_a_working_gateway() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
        .unwrap();
    let mut config = Config::from_toml_str(&text, "default.toml", Vec::new()).unwrap();
    config.simulator.devices = 2_000;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(devicegraph::run(listener, config, async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..50 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the embedded gateway never became ready");
    // The simulator is deterministic: a twin with the same seed and size names the
    // embedded one's devices.
    let twin = devicegraph_sim::spawn_on(
        devicegraph_sim::SimConfig {
            devices: 2_000,
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let imei = twin.catalog().sample_imeis[ACCOUNT][0].clone();
    let body: Value = client
        .post(format!("{base}/graphql"))
        .json(&json!({
            "query": "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { imei firmware lastCheckIn { result } } }",
            "variables": { "a": ACCOUNT, "i": imei },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["device"]["imei"], imei.as_str(), "{body}");
    assert!(body["data"]["device"]["firmware"].is_string(), "{body}");
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_request_finish() {
    let mut app = spawn_app_configured(|c| c.server.shutdown_grace = Duration::from_secs(20)).await;
    let imei = app.sample_imei(ACCOUNT, 0);
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.sim_faults(json!({ "latencyMs": 1500 })).await;

    let client = app.client.clone();
    let url = app.url(&format!("/v1/accounts/{ACCOUNT}/devices/{imei}"));
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    // Wait until the request is at the upstream, then signal shutdown.
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.sim_stats().await["inFlight"].as_u64() == Some(0) {
        assert!(
            Instant::now() < deadline,
            "the request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server = app.begin_shutdown();

    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "the in-flight request completed");
    let device: Value = response.json().await.unwrap();
    assert_eq!(device["imei"], imei.as_str());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        app.client.get(app.url("/healthz")).send().await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn shutdown_grace_bounds_the_wait_for_stuck_requests() {
    let mut app = spawn_app_configured(|c| {
        c.server.shutdown_grace = Duration::from_millis(300);
        c.upstream.timeout = Duration::from_secs(60);
        c.server.request_timeout = Duration::from_secs(60);
    })
    .await;
    let imei = app.sample_imei(ACCOUNT, 0);
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.sim_faults(json!({ "stallRate": 1.0 })).await;
    let client = app.client.clone();
    let url = app.url(&format!("/v1/accounts/{ACCOUNT}/devices/{imei}"));
    let stuck = tokio::spawn(async move { client.get(url).send().await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.sim_stats().await["inFlight"].as_u64() == Some(0) {
        assert!(
            Instant::now() < deadline,
            "the request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let server = app.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "run returned after the grace"
    );
    stuck.abort();
}
