//! Warm-path benchmark: what a dashboard costs once devicegraph's cache is warm.
//!
//! Starts the simulator and the real gateway (thingspace mode, pointed at the
//! simulator over loopback HTTP), warms the cache, then drives a fixed number of
//! concurrent clients for a fixed time against:
//!
//! 1. the gateway, `POST /graphql` with a merged `device` query served from cache;
//! 2. the same with `graphql.reuse_validation = false` (a second gateway over the
//!    same simulator), so the validation fast path is measured against its absence
//!    in the same run;
//! 3. a bare axum handler on the same machine returning the same response bytes —
//!    the floor any HTTP service on this stack can reach;
//! 4. the gateway with a 500-device `devices` dashboard query.
//!
//! It prints requests/s and p50/p99 latency for each, the gateway/bare ratio, and the
//! upstream calls each warm phase made (counted at the simulator; the target is 0).
//! Both servers and the load generator share the machine, so absolute figures depend
//! on it; the ratio is the figure to compare.
//!
//! `cargo bench --bench warm_path` (env `BENCH_SECS`, default 5; `BENCH_CONCURRENCY`,
//! default 32; `BENCH_SLICES`, default 4: phases 1 and 2 alternate in that many
//! slices each, summed, so that the machine's drifting load weighs on both alike).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use devicegraph::Config;
use devicegraph_sim::{SimConfig, spawn_on};
use tokio::net::TcpListener;

#[derive(Default)]
struct Figures {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    /// Every answer's latency, sorted.
    latencies: Vec<Duration>,
}

impl Figures {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn from_latencies(mut latencies: Vec<Duration>, errors: usize, elapsed: Duration) -> Self {
        latencies.sort_unstable();
        let pct = |p: f64| {
            if latencies.is_empty() {
                Duration::ZERO
            } else {
                latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)]
            }
        };
        Self {
            requests: latencies.len(),
            errors,
            elapsed,
            p50: pct(0.50),
            p99: pct(0.99),
            latencies,
        }
    }

    /// Two measurements of the same thing as one.
    fn merge(self, other: Figures) -> Figures {
        let mut latencies = self.latencies;
        latencies.extend(other.latencies);
        Figures::from_latencies(
            latencies,
            self.errors + other.errors,
            self.elapsed + other.elapsed,
        )
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `concurrency` workers post `body` to `url` for `secs`; latencies of every answer.
async fn load(url: &str, body: Bytes, concurrency: usize, secs: u64) -> Figures {
    load_ms(url, body, concurrency, secs * 1000).await
}

/// [`load`] for `ms` milliseconds.
async fn load_ms(url: &str, body: Bytes, concurrency: usize, ms: u64) -> Figures {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let stop = Instant::now() + Duration::from_millis(ms);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.to_owned();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(50_000);
            let mut errors = 0usize;
            while Instant::now() < stop {
                let t = Instant::now();
                let res = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    Figures::from_latencies(all, errors, started.elapsed())
}

/// [`load`] on two URLs in alternating slices (A B, B A, A B, ...), `secs` in all for
/// each; the figures of each summed.
async fn interleaved(
    urls: [&str; 2],
    body: &Bytes,
    concurrency: usize,
    secs: u64,
    slices: u64,
) -> (Figures, Figures) {
    let slice_ms = secs * 1000 / slices;
    let mut figures = [Figures::default(), Figures::default()];
    for i in 0..slices {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let got = load_ms(urls[which], body.clone(), concurrency, slice_ms).await;
            let so_far = std::mem::take(&mut figures[which]);
            figures[which] = so_far.merge(got);
        }
    }
    let [a, b] = figures;
    (a, b)
}

/// Starts a gateway from `toml`: its `/graphql` URL, its stop switch and its task.
async fn gateway(
    toml: &str,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let config = Config::from_toml_str(toml, "bench", std::iter::empty()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(devicegraph::run(listener, config, async {
        let _ = stop_rx.await;
    }));
    (url, stop_tx, server)
}

/// Sends `body` once (filling the cache); the answer, which must hold no error.
async fn warm_up(url: &str, body: &Bytes) -> Bytes {
    let warm = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert!(
        warm.status().is_success(),
        "warm-up failed: {}",
        warm.status()
    );
    let answer = warm.bytes().await.unwrap();
    assert!(
        !answer.windows(9).any(|w| w == b"\"errors\":"),
        "warm-up answered errors"
    );
    answer
}

async fn upstream_calls(sim_root: &str) -> u64 {
    let stats: serde_json::Value = reqwest::get(format!("{sim_root}/_sim/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["totalCalls"].as_u64().unwrap_or(u64::MAX)
}

async fn reset(sim_root: &str) {
    reqwest::Client::new()
        .post(format!("{sim_root}/_sim/reset"))
        .send()
        .await
        .unwrap();
}

fn print(name: &str, f: &Figures) {
    println!(
        "{name:<34} {:>9.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} requests, {} errors)",
        f.rps(),
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3,
        f.requests,
        f.errors
    );
}

#[tokio::main]
async fn main() {
    let secs = env_or("BENCH_SECS", 5);
    let concurrency = env_or("BENCH_CONCURRENCY", 32) as usize;

    let sim = spawn_on(
        SimConfig {
            devices: 20_000,
            ..SimConfig::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let sim_root = sim.root_url();
    let catalog = sim.catalog();
    let account = catalog.accounts[0].clone();
    let imei = catalog.sample_imeis[&account][1].clone();

    let toml = format!(
        r#"
[upstream]
mode = "thingspace"
base_url = "{base}"
client_id = "sim-client"
client_secret = "sim-secret"
username = "sim-user"
password = "sim-password"
[limits]
per_client_rps = 10000000
per_client_burst = 10000000
max_complexity = 100000
[log]
level = "error"
"#,
        base = sim.base_url()
    );
    let (gw, stop_tx, server) = gateway(&toml).await;
    let (gw_full, stop_full, server_full) =
        gateway(&format!("{toml}[graphql]\nreuse_validation = false\n")).await;

    // 1. One merged device, warm.
    let query = format!(
        r#"{{ device(account: "{account}", imei: "{imei}") {{ imei account make model firmware status lastConnectionTime upgradeHistory {{ campaignId status startDate }} checkIns(last: 5) {{ result timeCompleted }} }} }}"#
    );
    let body = Bytes::from(serde_json::json!({ "query": query }).to_string());
    let answer = warm_up(&gw, &body).await;
    assert_eq!(
        warm_up(&gw_full, &body).await,
        answer,
        "both gateways agree"
    );

    // The two gateways in alternating slices (on, off, off, on, ...), so that the
    // shared machine's drifting load weighs on both alike.
    reset(&sim_root).await;
    let slices = env_or("BENCH_SLICES", 4).max(1);
    let (gateway_fast, gateway_full) =
        interleaved([&gw, &gw_full], &body, concurrency, secs, slices).await;
    let gateway_calls = upstream_calls(&sim_root).await;

    // 2. The floor: a bare axum handler returning the same bytes.
    let bare_answer = answer.clone();
    let bare = Router::new().route(
        "/graphql",
        post(move || {
            let b = bare_answer.clone();
            async move { ([("content-type", "application/json")], b) }
        }),
    );
    let bare_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare_url = format!("http://{}/graphql", bare_listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(bare_listener, bare).await });
    let baseline = load(&bare_url, body, concurrency, secs).await;

    // 3. A dashboard: 500 devices of one account, warm.
    let imeis: Vec<String> = {
        let page: serde_json::Value = reqwest::Client::new()
            .post(&gw)
            .json(&serde_json::json!({ "query": format!(
                r#"{{ campaign(account: "{}", id: "{}") {{ devices(first: 500) {{ edges {{ node {{ imei }} }} }} }} }}"#,
                catalog.campaigns[0].account, catalog.campaigns[0].id) }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["data"]["campaign"]["devices"]["edges"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|n| n["node"]["imei"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let dash_account = catalog.campaigns[0].account.clone();
    let dash_query = format!(
        r#"query($imeis: [IMEI!]!) {{ devices(account: "{dash_account}", imeis: $imeis) {{ imei make model firmware status lastConnectionTime }} }}"#
    );
    let dash_body = Bytes::from(
        serde_json::json!({ "query": dash_query, "variables": { "imeis": imeis } }).to_string(),
    );
    reset(&sim_root).await;
    let cold = Instant::now();
    let r = reqwest::Client::new()
        .post(&gw)
        .header("content-type", "application/json")
        .body(dash_body.clone())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let _ = r.bytes().await;
    let cold_elapsed = cold.elapsed();
    let cold_calls = upstream_calls(&sim_root).await;
    reset(&sim_root).await;
    let _ = warm_up(&gw_full, &dash_body).await;
    reset(&sim_root).await;
    let (dashboard, dashboard_full) = interleaved(
        [&gw, &gw_full],
        &dash_body,
        concurrency.min(8),
        secs,
        slices,
    )
    .await;
    let dashboard_calls = upstream_calls(&sim_root).await;
    let _ = stop_full.send(());
    let _ = server_full.await;

    println!();
    println!(
        "warm path, {concurrency} concurrent clients, {secs} s per phase, same process and machine"
    );
    print("gateway: device query (cached)", &gateway_fast);
    print("  same, reuse_validation = false", &gateway_full);
    print("bare axum: same bytes", &baseline);
    println!(
        "ratio gateway/bare: {:.2} of the throughput, p50 x{:.2}, p99 x{:.2}",
        gateway_fast.rps() / baseline.rps(),
        gateway_fast.p50.as_secs_f64() / baseline.p50.as_secs_f64(),
        gateway_fast.p99.as_secs_f64() / baseline.p99.as_secs_f64()
    );
    println!(
        "ratio without validation reuse: {:.2} of bare; reuse on/off: x{:.2} throughput",
        gateway_full.rps() / baseline.rps(),
        gateway_fast.rps() / gateway_full.rps()
    );
    println!("upstream calls during the warm device phase: {gateway_calls}");
    println!();
    println!(
        "dashboard: {} devices, cold {:.1} ms with {cold_calls} upstream calls (tokens already held)",
        imeis.len(),
        cold_elapsed.as_secs_f64() * 1e3
    );
    print("gateway: 500-device dashboard (warm)", &dashboard);
    print("  same, reuse_validation = false", &dashboard_full);
    println!(
        "dashboard reuse on/off: x{:.2} throughput",
        dashboard.rps() / dashboard_full.rps()
    );
    println!("upstream calls during the warm dashboard phase: {dashboard_calls}");

    let _ = stop_tx.send(());
    let _ = server.await;
    sim.shutdown().await;
}
