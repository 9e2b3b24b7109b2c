//! The fault suite (issue 11, `RESILIENCE.md`): the gateway over real HTTP in front
//! of the simulator, one test per scenario, each short enough for CI (under about
//! 20 s). Every test prints its figures as `figure: <scenario> <name> = <value>`
//! lines (run with `-- --nocapture --test-threads 1` to see them; `benches/resilience/run.sh`
//! greps them) and asserts the behaviour, counting upstream calls at the simulator.
//!
//! Speed is printed, never asserted; the only time bounds are behavioural and
//! generous ("a cold read with the circuit open fails well inside the upstream
//! timeout", "every waiter is answered within the request deadline").
//!
//! The tests take one lock, so they run one at a time even in parallel test
//! threads: their figures would otherwise measure each other.

#![allow(clippy::unwrap_used)]

mod common;

use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{
    ACCOUNT, TestApp, account_imeis, spawn_app_configured, spawn_app_overridden, spawn_app_with,
};
use devicegraph::Config;
use devicegraph_sim::{Endpoint, FaultsPatch, RetryAfterFormat, SimConfig};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// One scenario at a time (see the module docs).
static SERIAL: Mutex<()> = Mutex::const_new(());

const DEVICE_QUERY: &str = "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { \
    imei firmware freshness { details { stale staleReason } } } }";

const HISTORY_QUERY: &str = "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { \
    imei firmware upgradeHistory { status } checkIns(last: 2) { result } } }";

/// 100,000 devices (60,000 in `ACCOUNT`): enough distinct cold keys for the load
/// scenarios.
fn big_fleet() -> SimConfig {
    SimConfig {
        devices: 100_000,
        ..SimConfig::default()
    }
}

/// The per-client upstream budget (`limits.upstream_calls_per_minute`) off: one
/// test is one client, and that limit would answer the load with its own 429s.
fn unmetered(c: &mut Config) {
    c.limits.upstream_calls_per_minute = 1_000_000;
}

fn figure(scenario: &str, name: &str, value: impl Display) {
    println!("figure: {scenario} {name} = {value}");
}

/// One answer of the gateway, as a client saw it.
#[derive(Debug, Clone)]
struct Answer {
    /// 0 when there was no HTTP answer (transport error or client timeout).
    status: u16,
    /// `X-Cache` on REST, `extensions.cacheStatus` on GraphQL.
    cache: Option<String>,
    retry_after: Option<String>,
    /// The problem's `code` on REST, the first error's `extensions.code` on GraphQL.
    code: Option<String>,
    took: Duration,
    body: Value,
}

impl Answer {
    fn ok(&self) -> bool {
        self.status == 200 && self.code.is_none()
    }
}

/// A client for load: its own connection pool, a timeout well past any deadline
/// the tests set, so a hang shows as a long `took`, not as a client error.
fn load_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

async fn answer_of(started: Instant, sent: reqwest::Result<reqwest::Response>) -> Answer {
    let response = match sent {
        Ok(response) => response,
        Err(_) => {
            return Answer {
                status: 0,
                cache: None,
                retry_after: None,
                code: None,
                took: started.elapsed(),
                body: Value::Null,
            };
        }
    };
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut cache = header("x-cache");
    let retry_after = header("retry-after");
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let took = started.elapsed();
    let code = body["code"]
        .as_str()
        .or_else(|| body["errors"][0]["extensions"]["code"].as_str())
        .map(str::to_owned);
    if let Some(status) = body["extensions"]["cacheStatus"].as_str() {
        cache = Some(status.to_owned());
    }
    Answer {
        status,
        cache,
        retry_after,
        code,
        took,
        body,
    }
}

/// `GET /v1/accounts/ACCOUNT/devices/{imei}`.
async fn rest_device(client: &reqwest::Client, base: &str, imei: &str) -> Answer {
    let started = Instant::now();
    let sent = client
        .get(format!("{base}/v1/accounts/{ACCOUNT}/devices/{imei}"))
        .send()
        .await;
    answer_of(started, sent).await
}

/// `POST /graphql` of `query` for one device.
async fn graphql_device(client: &reqwest::Client, base: &str, query: &str, imei: &str) -> Answer {
    let started = Instant::now();
    let sent = client
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query, "variables": { "a": ACCOUNT, "i": imei } }))
        .send()
        .await;
    answer_of(started, sent).await
}

/// The `p`-th percentile (0..=100) of `values`, `ZERO` when empty.
fn percentile(values: &[Duration], p: usize) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n => sorted[((n - 1) * p.min(100)) / 100],
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn share(part: usize, whole: usize) -> String {
    if whole == 0 {
        "n/a".to_owned()
    } else {
        format!("{:.3}", part as f64 / whole as f64)
    }
}

fn data_calls(app: &TestApp) -> u64 {
    app.sim.stats().data_calls()
}

fn details_calls(app: &TestApp) -> u64 {
    app.sim.stats().calls_to(Endpoint::DeviceDetails)
}

fn faults(patch: Value) -> FaultsPatch {
    serde_json::from_value(patch).unwrap()
}

/// Tokens first, then the counters zeroed (faults too): later counts are data calls
/// of the scenario only, and the peak concurrency starts from nothing.
async fn ready_and_reset(app: &TestApp) {
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.sim.reset();
}

/// `n` workers reading `keys` once each (shared, in order) through the REST route.
async fn read_each_once(app: &TestApp, keys: &[String], workers: usize) -> Vec<Answer> {
    let keys = Arc::new(keys.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let tasks = (0..workers).map(|_| {
        let (keys, next, base) = (Arc::clone(&keys), Arc::clone(&next), app.base.clone());
        tokio::spawn(async move {
            let client = load_client();
            let mut answers = Vec::new();
            while let Some(imei) = keys.get(next.fetch_add(1, Ordering::Relaxed)) {
                answers.push(rest_device(&client, &base, imei).await);
            }
            answers
        })
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect()
}

/// `VmHWM` (peak resident set) of this process in KiB: the gateway runs in the test
/// process, so this is the gateway's peak plus the test's own clients.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Open file descriptors of this process (gateway, simulator and clients together).
fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// Scenario 1: ThingSpace down after warm-up, steady traffic. Warm keys are served
/// stale with their markers at once, cold keys fail fast with
/// `UPSTREAM_UNAVAILABLE` and `Retry-After`, and ThingSpace sees a handful of
/// half-open probes, not one call (or four) per request; it recovers when the
/// upstream does. Needs the circuit breaker (`[upstream.circuit_breaker]`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_upstream_down_serves_warm_stale_fails_cold_fast_and_only_probes() {
    let _serial = SERIAL.lock().await;
    const S: &str = "s1";
    const DOWN_FOR: Duration = Duration::from_secs(10);
    let app = spawn_app_overridden(
        SimConfig::default(),
        &[
            ("upstream.circuit_breaker.enabled", "true"),
            // Short, so the test sees probes and recovery within its time.
            ("upstream.circuit_breaker.open_for", "1s"),
            ("upstream.circuit_breaker.max_open_for", "2s"),
        ],
        |c| {
            unmetered(c);
            // Warm keys go stale at once; no background refresh hides the outage.
            c.cache.ttl.set("device_details", Duration::from_secs(1));
            c.cache.stale_while_revalidate = Duration::ZERO;
        },
    )
    .await;
    let imeis = account_imeis(&app.sim, ACCOUNT, 40).await;
    let (warm, cold) = imeis.split_at(20);
    let client = load_client();
    for imei in warm {
        assert!(rest_device(&client, &app.base, imei).await.ok());
    }

    app.sim
        .set_faults(faults(json!({ "errorRate": 1.0 })))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let calls_before = data_calls(&app);
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let workers = (0..4).map(|w| {
        let (stop, base) = (Arc::clone(&stop), app.base.clone());
        let (warm, cold) = (warm.to_vec(), cold.to_vec());
        tokio::spawn(async move {
            let client = load_client();
            let mut answers = Vec::new();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let is_warm = i % 2 == 0;
                let keys = if is_warm { &warm } else { &cold };
                let answer = rest_device(&client, &base, &keys[(i / 2) % keys.len()]).await;
                answers.push((is_warm, started.elapsed(), answer));
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        })
    });
    let workers: Vec<_> = workers.collect();
    tokio::time::sleep(DOWN_FOR).await;

    // While down: readiness stays up (stale answers can be served), and says which
    // circuits are open.
    let ready = app.get("/readyz").await;
    let ready_status = ready.status().as_u16();
    let ready_body = ready.text().await.unwrap_or_default();
    let metrics = app.get("/metrics").await.text().await.unwrap_or_default();
    let circuit = metrics
        .lines()
        .find(|l| {
            l.starts_with("devicegraph_upstream_circuit_state") && l.contains("\"device_details\"")
        })
        .map(str::to_owned);
    // GraphQL: warm stale with its markers; cold a 503 with Retry-After.
    let warm_gql = graphql_device(&client, &app.base, DEVICE_QUERY, &warm[0]).await;
    let cold_gql = graphql_device(&client, &app.base, DEVICE_QUERY, &cold[0]).await;

    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for w in workers {
        answers.extend(w.await.unwrap());
    }
    let calls_while_down = data_calls(&app) - calls_before;

    // Recovery.
    app.sim
        .set_faults(faults(json!({ "clear": true })))
        .unwrap();
    let recovering = Instant::now();
    let mut recovered = None;
    while recovering.elapsed() < Duration::from_secs(8) {
        if rest_device(&client, &app.base, &cold[1]).await.ok() {
            recovered = Some(recovering.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let warm_after = rest_device(&client, &app.base, &warm[1]).await;

    let requests = answers.len();
    let (warm_answers, cold_answers): (Vec<_>, Vec<_>) =
        answers.iter().partition(|(is_warm, _, _)| *is_warm);
    let warm_stale = warm_answers
        .iter()
        .filter(|(_, _, a)| a.status == 200 && a.cache.as_deref() == Some("STALE"))
        .count();
    let cold_unavailable = cold_answers
        .iter()
        .filter(|(_, _, a)| a.status == 503 && a.code.as_deref() == Some("UPSTREAM_UNAVAILABLE"))
        .count();
    // Past the first two seconds the circuit has had every chance to open.
    let late_cold: Vec<_> = cold_answers
        .iter()
        .filter(|(_, at, _)| *at > Duration::from_secs(2))
        .collect();
    let late_with_retry_after = late_cold
        .iter()
        .filter(|(_, _, a)| a.retry_after.is_some())
        .count();
    let warm_took: Vec<_> = warm_answers.iter().map(|(_, _, a)| a.took).collect();
    let cold_took: Vec<_> = cold_answers.iter().map(|(_, _, a)| a.took).collect();

    figure(S, "outage_seconds", DOWN_FOR.as_secs());
    figure(S, "requests_while_down", requests);
    figure(S, "upstream_calls_while_down", calls_while_down);
    figure(
        S,
        "upstream_calls_per_request",
        share(calls_while_down as usize, requests),
    );
    figure(
        S,
        "warm_answered_stale",
        format!("{warm_stale}/{}", warm_answers.len()),
    );
    figure(S, "warm_p50", ms(percentile(&warm_took, 50)));
    figure(S, "warm_p99", ms(percentile(&warm_took, 99)));
    figure(
        S,
        "cold_answered_unavailable",
        format!("{cold_unavailable}/{}", cold_answers.len()),
    );
    figure(S, "cold_p50", ms(percentile(&cold_took, 50)));
    figure(S, "cold_p99", ms(percentile(&cold_took, 99)));
    figure(
        S,
        "cold_after_2s_with_retry_after",
        format!("{late_with_retry_after}/{}", late_cold.len()),
    );
    figure(S, "readyz_while_down", ready_status);
    figure(
        S,
        "circuit_metric_while_down",
        circuit.as_deref().unwrap_or("absent"),
    );
    figure(
        S,
        "recovered_after",
        recovered.map_or("not within 8 s".to_owned(), ms),
    );

    assert_eq!(
        warm_stale,
        warm_answers.len(),
        "every warm read served stale"
    );
    assert_eq!(
        cold_unavailable,
        cold_answers.len(),
        "every cold read UPSTREAM_UNAVAILABLE"
    );
    assert!(
        calls_while_down * 5 < requests as u64,
        "a handful of probes, not one per request: {calls_while_down} calls for {requests} requests"
    );
    assert!(
        percentile(&cold_took, 50) < Duration::from_secs(1),
        "cold reads fail fast (upstream timeout 10 s): p50 {:?}",
        percentile(&cold_took, 50)
    );
    assert!(
        late_with_retry_after * 10 >= late_cold.len() * 8,
        "503s while open carry Retry-After: {late_with_retry_after}/{}",
        late_cold.len()
    );
    assert_eq!(ready_status, 200, "readiness stays up: {ready_body}");
    assert!(ready_body.contains("circuits"), "{ready_body}");
    assert_eq!(
        circuit.as_deref().and_then(|l| l.split_whitespace().last()),
        Some("2"),
        "device_details open in /metrics"
    );

    assert_eq!(warm_gql.status, 200, "{:?}", warm_gql.body);
    assert_eq!(
        warm_gql.cache.as_deref(),
        Some("STALE"),
        "{:?}",
        warm_gql.body
    );
    let details = &warm_gql.body["data"]["device"]["freshness"]["details"];
    assert_eq!(details["stale"], true, "{:?}", warm_gql.body);
    assert!(details["staleReason"].is_string(), "{:?}", warm_gql.body);
    assert_eq!(
        cold_gql.status, 503,
        "every root field null: {:?}",
        cold_gql.body
    );
    assert!(cold_gql.retry_after.is_some(), "{:?}", cold_gql.body);
    assert_eq!(cold_gql.code.as_deref(), Some("UPSTREAM_UNAVAILABLE"));
    assert!(
        cold_gql.body["errors"][0]["extensions"]["retryAfter"].is_u64(),
        "{:?}",
        cold_gql.body
    );

    assert!(
        recovered.is_some(),
        "cold reads succeed again once ThingSpace is back"
    );
    assert!(warm_after.ok(), "{warm_after:?}");
    assert_ne!(warm_after.cache.as_deref(), Some("STALE"), "fresh again");
}

/// Scenario 2: half of ThingSpace's answers are 503. The retry budget keeps the
/// calls near what a healthy upstream needs for the same traffic (measured here
/// first, on other keys of the same size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_half_failing_upstream_costs_at_most_1_3_times_the_healthy_calls() {
    let _serial = SERIAL.lock().await;
    const S: &str = "s2";
    const N: usize = 600;
    let app = spawn_app_configured(unmetered).await;
    let imeis = account_imeis(&app.sim, ACCOUNT, 2 * N).await;
    let (healthy_keys, faulty_keys) = imeis.split_at(N);
    ready_and_reset(&app).await;

    // The failing phase first: the retry budget is earned by the first attempts of
    // the last 10 s, so a healthy phase just before would lend it its own.
    app.sim
        .set_faults(faults(json!({ "errorRate": 0.5 })))
        .unwrap();
    let faulty = read_each_once(&app, faulty_keys, 8).await;
    let faulty_calls = details_calls(&app);
    let injected = app.sim.stats().faults_injected["error"];

    app.sim.reset();
    let healthy = read_each_once(&app, healthy_keys, 8).await;
    let healthy_calls = details_calls(&app);
    assert!(healthy.iter().all(Answer::ok));
    let succeeded = faulty.iter().filter(|a| a.ok()).count();
    let ratio = faulty_calls as f64 / healthy_calls.max(1) as f64;

    figure(S, "requests", N);
    figure(S, "upstream_calls_healthy", healthy_calls);
    figure(S, "upstream_calls_half_failing", faulty_calls);
    figure(S, "calls_ratio", format!("{ratio:.3}"));
    figure(S, "client_success_rate", share(succeeded, faulty.len()));
    figure(S, "injected_errors", injected);

    assert!(healthy_calls > 0);
    assert!(
        ratio <= 1.3,
        "retries bounded by the budget: ratio {ratio:.3}"
    );
    for a in faulty.iter().filter(|a| !a.ok()) {
        assert_eq!(a.status, 503, "{a:?}");
        assert_eq!(a.code.as_deref(), Some("UPSTREAM_UNAVAILABLE"), "{a:?}");
    }
}

/// Scenario 3: ThingSpace answers 429 with `Retry-After` in seconds, then as an
/// HTTP date, under load. The gateway stops calling that endpoint for the pause
/// (the simulator's call rate drops to about nothing), resumes after it, and never
/// caches the 429: a key refused during a pause is read again, and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_retry_after_in_seconds_and_as_a_date_pauses_the_endpoint_and_is_never_cached() {
    let _serial = SERIAL.lock().await;
    const S: &str = "s3";
    const PAUSE_SECS: u64 = 3;
    const WORKERS: usize = 8;
    let app = spawn_app_with(big_fleet(), |c| {
        unmetered(c);
        c.upstream.timeout = Duration::from_secs(2);
    })
    .await;
    let imeis = account_imeis(&app.sim, ACCOUNT, 5_000).await;
    ready_and_reset(&app).await;
    let client = load_client();

    // A 429 never cached: a key refused while ThingSpace answers 429 (for longer
    // than the upstream deadline) is asked again afterwards, and succeeds.
    let refused_key = &imeis[0];
    app.sim
        .set_faults(faults(json!({ "rateLimitRate": 1.0, "retryAfterSecs": 1 })))
        .unwrap();
    let refused = rest_device(&client, &app.base, refused_key).await;
    app.sim
        .set_faults(faults(json!({ "clear": true })))
        .unwrap();
    figure(S, "refused_status", refused.status);
    figure(S, "refused_code", refused.code.as_deref().unwrap_or("-"));
    assert!(!refused.ok(), "{refused:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = details_calls(&app);
    let again = rest_device(&client, &app.base, refused_key).await;
    assert!(again.ok(), "{again:?}");
    assert_eq!(
        details_calls(&app),
        before + 1,
        "read from ThingSpace again"
    );

    let next = Arc::new(AtomicUsize::new(1));
    for format in [RetryAfterFormat::Seconds, RetryAfterFormat::Date] {
        let label = format!("{format:?}").to_lowercase();
        // Counters from zero: the wait below is for this round's first 429.
        app.sim.reset();
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (stop, next, base) = (Arc::clone(&stop), Arc::clone(&next), app.base.clone());
                let imeis = imeis.clone();
                tokio::spawn(async move {
                    let client = load_client();
                    let mut answers = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let Some(imei) = imeis.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            break;
                        };
                        answers.push((imei.clone(), rest_device(&client, &base, imei).await));
                        tokio::time::sleep(Duration::from_millis(40)).await;
                    }
                    answers
                })
            })
            .collect();
        // Load before the 429: the normal call rate.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let c_start = details_calls(&app);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rate_before = details_calls(&app) - c_start;

        // One burst of 429s: on until the first is answered, then off again, so
        // any call made in the pause would succeed (and be counted).
        app.sim
            .set_faults(faults(json!({
                "rateLimitRate": 1.0,
                "retryAfterSecs": PAUSE_SECS,
                "retryAfterFormat": format,
                "endpoints": ["device_details"],
            })))
            .unwrap();
        let waiting = Instant::now();
        while app.sim.stats().faults_injected["rate_limit"] == 0
            && waiting.elapsed() < Duration::from_secs(3)
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        app.sim
            .set_faults(faults(json!({ "clear": true })))
            .unwrap();
        let paused_at = Instant::now();
        let c0 = details_calls(&app);
        let refused_429s = app.sim.stats().faults_injected["rate_limit"];
        tokio::time::sleep(Duration::from_millis(PAUSE_SECS * 1000 - 800)).await;
        let in_pause = details_calls(&app) - c0;
        tokio::time::sleep(Duration::from_secs(PAUSE_SECS + 2).saturating_sub(paused_at.elapsed()))
            .await;
        let c2 = details_calls(&app);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rate_after = details_calls(&app) - c2;
        stop.store(true, Ordering::Relaxed);
        let mut answers = Vec::new();
        for w in workers {
            answers.extend(w.await.unwrap());
        }
        let failed: Vec<_> = answers.iter().filter(|(_, a)| !a.ok()).collect();

        figure(S, &format!("{label}.calls_per_second_before"), rate_before);
        figure(
            S,
            &format!("{label}.calls_in_pause_first_{}ms", PAUSE_SECS * 1000 - 800),
            in_pause,
        );
        figure(S, &format!("{label}.calls_per_second_after"), rate_after);
        figure(S, &format!("{label}.answered_429_upstream"), refused_429s);
        figure(S, &format!("{label}.client_requests"), answers.len());
        figure(S, &format!("{label}.client_errors"), failed.len());
        figure(
            S,
            &format!("{label}.client_errors_with_retry_after"),
            failed
                .iter()
                .filter(|(_, a)| a.retry_after.is_some())
                .count(),
        );

        assert!(rate_before > 10, "load before the 429: {rate_before}/s");
        // Calls already on their way when the 429 came back may still arrive.
        assert!(
            in_pause <= WORKERS as u64,
            "{label}: {in_pause} calls during the pause ({rate_before}/s before)"
        );
        assert!(rate_after > 0, "{label}: calls resume after the pause");
        // Nothing refused in the pause stays refused.
        if let Some((imei, answer)) = failed.first() {
            assert_ne!(answer.status, 0, "{answer:?}");
            let before = details_calls(&app);
            let again = rest_device(&client, &app.base, imei).await;
            assert!(again.ok(), "{label}: {again:?}");
            assert_eq!(details_calls(&app), before + 1, "{label}: read again");
        }
    }
}

/// Scenario 4: bearer and session tokens invalidated at random moments under load.
/// The gateway logs in again and replays; no client sees an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_token_expiry_under_load_costs_logins_not_errors() {
    let _serial = SERIAL.lock().await;
    const S: &str = "s4";
    const LOAD_FOR: Duration = Duration::from_secs(8);
    let app = spawn_app_with(big_fleet(), unmetered).await;
    let imeis = account_imeis(&app.sim, ACCOUNT, 5_000).await;
    ready_and_reset(&app).await;

    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (stop, next, base) = (Arc::clone(&stop), Arc::clone(&next), app.base.clone());
            let imeis = imeis.clone();
            tokio::spawn(async move {
                let client = load_client();
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let Some(imei) = imeis.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    // Half REST (details), half GraphQL with both histories, so
                    // every data endpoint sees the expired tokens.
                    let answer = if w % 2 == 0 {
                        rest_device(&client, &base, imei).await
                    } else {
                        graphql_device(&client, &base, HISTORY_QUERY, imei).await
                    };
                    answers.push(answer);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                answers
            })
        })
        .collect();
    // Expiries 150..=750 ms apart, from a fixed xorshift: random, reproducible.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut expiries = 0;
    let started = Instant::now();
    while started.elapsed() < LOAD_FOR {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(150 + seed % 601)).await;
        app.sim.expire_tokens();
        expiries += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for w in workers {
        answers.extend(w.await.unwrap());
    }
    let errors: Vec<_> = answers.iter().filter(|a| !a.ok()).collect();
    let stats = app.sim.stats();

    figure(S, "requests", answers.len());
    figure(S, "expiries", expiries);
    figure(S, "client_errors", errors.len());
    figure(S, "oauth_token_calls", stats.calls_to(Endpoint::OauthToken));
    figure(
        S,
        "session_login_calls",
        stats.calls_to(Endpoint::SessionLogin),
    );
    figure(S, "tokens_issued", stats.tokens_issued);
    figure(S, "sessions_issued", stats.sessions_issued);
    figure(S, "data_calls", stats.data_calls());

    assert!(answers.len() > 100, "load ran: {}", answers.len());
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert!(stats.sessions_issued >= 2, "logged in again after expiries");
    assert_eq!(stats.failed_logins, 0);
}

/// Scenario 5: a slow upstream (2 s per call) under 100 concurrent clients for
/// 10 s. The upstream never sees more than `max_concurrency` at once; what cannot
/// be served in time is shed at once with 503 and `Retry-After` instead of queued
/// without bound; goodput stays near capacity. Prints peak memory and sockets.
/// Needs load shedding (`upstream.max_queued`, `upstream.max_queue_wait`).
///
/// The gateway runs in the test process, so memory and sockets are the test
/// process's (`VmHWM` in `/proc/self/status`, `/proc/self/fd`): gateway, simulator
/// and the 100 clients together. `benches/resilience/run.sh` measures the gateway
/// alone, as its own process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_slow_upstream_under_many_clients_sheds_with_retry_after() {
    let _serial = SERIAL.lock().await;
    const S: &str = "s5";
    const CLIENTS: usize = 100;
    const LOAD_FOR: Duration = Duration::from_secs(10);
    const MAX_CONCURRENCY: usize = 16;
    const LATENCY_MS: u64 = 2_000;
    let app = spawn_app_overridden(
        big_fleet(),
        &[
            ("upstream.max_queued", "32"),
            ("upstream.max_queue_wait", "1s"),
        ],
        |c| {
            unmetered(c);
            c.upstream.max_concurrency = MAX_CONCURRENCY;
        },
    )
    .await;
    let imeis = account_imeis(&app.sim, ACCOUNT, 10_000).await;
    ready_and_reset(&app).await;
    app.sim
        .set_faults(faults(json!({ "latencyMs": LATENCY_MS })))
        .unwrap();
    let fds_before = open_fds();

    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut max_fds = 0;
            while !stop.load(Ordering::Relaxed) {
                max_fds = max_fds.max(open_fds().unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            max_fds
        })
    };
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, next, base) = (Arc::clone(&stop), Arc::clone(&next), app.base.clone());
            let imeis = imeis.clone();
            tokio::spawn(async move {
                // One connection per client, as 100 separate clients would have.
                let client = load_client();
                let mut answers = Vec::new();
                while started.elapsed() < LOAD_FOR && !stop.load(Ordering::Relaxed) {
                    let Some(imei) = imeis.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let answer = rest_device(&client, &base, imei).await;
                    if answer.status == 503 {
                        // A polite client: wait a little before trying again.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    answers.push(answer);
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for c in clients {
        answers.extend(c.await.unwrap());
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let max_fds = sampler.await.unwrap();
    let stats = app.sim.stats();

    let ok: Vec<_> = answers.iter().filter(|a| a.ok()).collect();
    let shed: Vec<_> = answers.iter().filter(|a| a.status == 503).collect();
    let other = answers.len() - ok.len() - shed.len();
    let shed_took: Vec<_> = shed.iter().map(|a| a.took).collect();
    let ok_took: Vec<_> = ok.iter().map(|a| a.took).collect();
    let capacity = MAX_CONCURRENCY as u64 * LOAD_FOR.as_millis() as u64 / LATENCY_MS;

    figure(S, "clients", CLIENTS);
    figure(S, "seconds", format!("{:.1}", elapsed.as_secs_f64()));
    figure(S, "requests", answers.len());
    figure(S, "answered_200", ok.len());
    figure(S, "answered_503", shed.len());
    figure(S, "answered_other", other);
    figure(S, "share_503", share(shed.len(), answers.len()));
    figure(S, "latency_503_p50", ms(percentile(&shed_took, 50)));
    figure(S, "latency_503_p99", ms(percentile(&shed_took, 99)));
    figure(S, "latency_200_p50", ms(percentile(&ok_took, 50)));
    figure(S, "latency_200_p99", ms(percentile(&ok_took, 99)));
    figure(S, "goodput_vs_capacity", format!("{}/{capacity}", ok.len()));
    figure(S, "upstream_peak_concurrency", stats.peak_concurrency);
    figure(S, "upstream_max_concurrency", MAX_CONCURRENCY);
    figure(
        S,
        "test_process_vmhwm_kib",
        peak_rss_kib().map_or("n/a".to_owned(), |k| k.to_string()),
    );
    figure(
        S,
        "test_process_open_fds_before",
        fds_before.map_or("n/a".to_owned(), |n| n.to_string()),
    );
    figure(S, "test_process_open_fds_max", max_fds);

    assert!(
        stats.peak_concurrency <= MAX_CONCURRENCY as u64,
        "the upstream saw {} at once",
        stats.peak_concurrency
    );
    assert!(
        !shed.is_empty(),
        "overload is shed, not queued without bound"
    );
    for a in &shed {
        assert!(a.retry_after.is_some(), "503 without Retry-After: {a:?}");
    }
    assert!(
        percentile(&shed_took, 50) < Duration::from_millis(LATENCY_MS),
        "shedding answers sooner than the upstream would"
    );
    assert!(
        ok.len() as u64 * 2 >= capacity,
        "goodput near capacity: {} of {capacity}",
        ok.len()
    );
}

/// Scenario 5b: calls the gateway gives up on (upstream slower than
/// `upstream.timeout`) keep their concurrency slot until ThingSpace answers, so
/// the upstream never sees more than `max_concurrency` at once. The simulator
/// counts a request until it has finished with it, even after its client left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5b_abandoned_calls_keep_their_slot_until_the_upstream_answers() {
    let _serial = SERIAL.lock().await;
    const S: &str = "s5b";
    const MAX_CONCURRENCY: usize = 8;
    let app = spawn_app_configured(|c| {
        unmetered(c);
        c.upstream.max_concurrency = MAX_CONCURRENCY;
        c.upstream.timeout = Duration::from_millis(500);
    })
    .await;
    let imeis = account_imeis(&app.sim, ACCOUNT, 2_000).await;
    ready_and_reset(&app).await;
    app.sim
        .set_faults(faults(json!({ "latencyMs": 1500 })))
        .unwrap();
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..40)
        .map(|_| {
            let (next, base) = (Arc::clone(&next), app.base.clone());
            let imeis = imeis.clone();
            tokio::spawn(async move {
                let client = load_client();
                let mut answers = Vec::new();
                while started.elapsed() < Duration::from_secs(4) {
                    let Some(imei) = imeis.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    answers.push(rest_device(&client, &base, imei).await);
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for c in clients {
        answers.extend(c.await.unwrap());
    }
    // Let the simulator finish what it was still working on.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let stats = app.sim.stats();
    figure(S, "requests", answers.len());
    figure(S, "upstream_calls", stats.data_calls());
    figure(S, "upstream_peak_concurrency", stats.peak_concurrency);
    figure(S, "upstream_max_concurrency", MAX_CONCURRENCY);
    assert!(stats.data_calls() > 0);
    assert!(
        stats.peak_concurrency <= MAX_CONCURRENCY as u64,
        "abandoned calls kept their slots: the upstream saw {} at once",
        stats.peak_concurrency
    );
    assert_eq!(stats.in_flight, 0);
}

/// Scenario 6: the one upstream call many waiters share fails, hangs, or loses the
/// client that started it. Every waiter is answered within the request deadline,
/// nothing wrong is cached, and the next request tries again and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_leader_failure_answers_every_waiter_and_caches_nothing_wrong() {
    let _serial = SERIAL.lock().await;
    const S: &str = "s6";
    const WAITERS: usize = 20;
    const DEADLINE: Duration = Duration::from_secs(3);
    // Slack on the deadline for a loaded CI machine; a hang would take 30 s.
    const SLACK: Duration = Duration::from_secs(2);
    let app = spawn_app_configured(|c| {
        unmetered(c);
        c.server.request_timeout = DEADLINE;
        c.upstream.timeout = Duration::from_secs(2);
    })
    .await;
    let imeis = account_imeis(&app.sim, ACCOUNT, 3).await;
    ready_and_reset(&app).await;
    let client = load_client();

    let together = |imei: String| {
        let base = app.base.clone();
        futures::future::join_all((0..WAITERS).map(move |_| {
            let (base, imei) = (base.clone(), imei.clone());
            async move { rest_device(&load_client(), &base, &imei).await }
        }))
    };

    for (case, fault, imei) in [
        ("hang", json!({ "stallRate": 1.0 }), &imeis[0]),
        ("error", json!({ "errorRate": 1.0 }), &imeis[1]),
    ] {
        app.sim.reset();
        app.sim.set_faults(faults(fault)).unwrap();
        let answers = together(imei.clone()).await;
        let calls = details_calls(&app);
        app.sim
            .set_faults(faults(json!({ "clear": true })))
            .unwrap();
        let slowest = answers.iter().map(|a| a.took).max().unwrap_or_default();
        figure(S, &format!("{case}.waiters"), WAITERS);
        figure(S, &format!("{case}.upstream_calls"), calls);
        figure(S, &format!("{case}.slowest_answer"), ms(slowest));
        figure(
            S,
            &format!("{case}.statuses"),
            format!("{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>()),
        );
        for a in &answers {
            assert!(a.status == 503 || a.status == 504, "{case}: {a:?}");
            assert!(
                a.took <= DEADLINE + SLACK,
                "{case}: answered after {:?}",
                a.took
            );
        }
        let again = rest_device(&client, &app.base, imei).await;
        assert!(again.ok(), "{case}: the next request succeeds: {again:?}");
        assert_eq!(again.body["imei"], imei.as_str());
        assert!(
            details_calls(&app) > calls,
            "{case}: it asked ThingSpace again"
        );
    }

    // The client that started the shared call goes away: the call goes on for the
    // others, who get the device.
    app.sim.reset();
    app.sim
        .set_faults(faults(json!({ "latencyMs": 1500 })))
        .unwrap();
    let imei = imeis[2].clone();
    let leader = tokio::spawn({
        let (base, imei) = (app.base.clone(), imei.clone());
        async move { rest_device(&load_client(), &base, &imei).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiters = tokio::spawn(together(imei.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    leader.abort();
    let answers = waiters.await.unwrap();
    let calls = details_calls(&app);
    app.sim
        .set_faults(faults(json!({ "clear": true })))
        .unwrap();
    let slowest = answers.iter().map(|a| a.took).max().unwrap_or_default();
    figure(S, "disconnect.waiters", WAITERS);
    figure(S, "disconnect.upstream_calls", calls);
    figure(S, "disconnect.slowest_answer", ms(slowest));
    figure(
        S,
        "disconnect.answered_200",
        answers.iter().filter(|a| a.ok()).count(),
    );
    for a in &answers {
        assert!(a.ok(), "the leader's disconnect fails no waiter: {a:?}");
        assert_eq!(a.body["imei"], imei.as_str());
        assert!(a.took <= DEADLINE + SLACK, "answered after {:?}", a.took);
    }
    assert!(calls <= 2, "{calls} upstream calls for one key");
    let again = rest_device(&client, &app.base, &imei).await;
    assert!(again.ok(), "{again:?}");
    assert_eq!(
        again.body, answers[0].body,
        "the cached device is the right one"
    );
}

/// Scenario 7: ThingSpace closes the connection, or stops sending, after the head
/// and part of the body. Answers are errors (cold) or stale (warm), never a hang
/// past the deadline, never a half-read value cached; the next clean request
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_mid_body_drops_and_stalls_give_errors_or_stale_never_half_values() {
    let _serial = SERIAL.lock().await;
    const S: &str = "s7";
    const DEADLINE: Duration = Duration::from_secs(5);
    const SLACK: Duration = Duration::from_secs(2);
    let app = spawn_app_configured(|c| {
        unmetered(c);
        c.server.request_timeout = DEADLINE;
        c.upstream.timeout = Duration::from_secs(1);
        c.cache.ttl.set("device_details", Duration::from_secs(1));
        c.cache.stale_while_revalidate = Duration::ZERO;
    })
    .await;
    let imeis = account_imeis(&app.sim, ACCOUNT, 3).await;
    let (warm, cold) = (&imeis[0], &imeis[1..]);
    let client = load_client();
    let fresh = rest_device(&client, &app.base, warm).await;
    assert!(fresh.ok());

    for ((case, fault), imei) in [
        ("drop_mid_body", json!({ "dropMidBodyRate": 1.0 })),
        ("stall_mid_body", json!({ "stallMidBodyRate": 1.0 })),
    ]
    .into_iter()
    .zip(cold)
    {
        app.sim.reset();
        app.sim.set_faults(faults(fault)).unwrap();
        // Past the warm key's TTL.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let cold_answer = rest_device(&client, &app.base, imei).await;
        let cold_gql = graphql_device(&client, &app.base, DEVICE_QUERY, imei).await;
        let warm_answer = rest_device(&client, &app.base, warm).await;
        let injected = app.sim.stats().faults_injected[case];
        app.sim
            .set_faults(faults(json!({ "clear": true })))
            .unwrap();
        figure(S, &format!("{case}.injected"), injected);
        figure(
            S,
            &format!("{case}.cold"),
            format!(
                "{} {} in {}",
                cold_answer.status,
                cold_answer.code.as_deref().unwrap_or("-"),
                ms(cold_answer.took)
            ),
        );
        figure(
            S,
            &format!("{case}.cold_graphql"),
            format!(
                "{} in {}",
                cold_gql.code.as_deref().unwrap_or("-"),
                ms(cold_gql.took)
            ),
        );
        figure(
            S,
            &format!("{case}.warm"),
            format!(
                "{} {} in {}",
                warm_answer.status,
                warm_answer.cache.as_deref().unwrap_or("-"),
                ms(warm_answer.took)
            ),
        );

        assert!(injected > 0, "{case}: the fault was hit");
        for a in [&cold_answer, &cold_gql] {
            assert!(!a.ok(), "{case}: a cut body is no answer: {a:?}");
            assert_ne!(a.status, 0, "{case}: answered: {a:?}");
            assert!(
                matches!(
                    a.code.as_deref(),
                    Some("UPSTREAM_UNAVAILABLE" | "UPSTREAM_TIMEOUT")
                ),
                "{case}: {a:?}"
            );
            assert!(
                a.took <= DEADLINE + SLACK,
                "{case}: answered after {:?}",
                a.took
            );
        }
        assert_eq!(warm_answer.status, 200, "{case}: {warm_answer:?}");
        assert_eq!(warm_answer.cache.as_deref(), Some("STALE"), "{case}");
        assert_eq!(
            warm_answer.body, fresh.body,
            "{case}: the stale copy is whole"
        );
        assert!(
            warm_answer.took <= DEADLINE + SLACK,
            "{case}: {:?}",
            warm_answer.took
        );

        let before = details_calls(&app);
        let clean = rest_device(&client, &app.base, imei).await;
        assert!(clean.ok(), "{case}: {clean:?}");
        assert_eq!(clean.body["imei"], imei.as_str());
        assert!(
            clean.body["firmware"].is_string(),
            "{case}: {:?}",
            clean.body
        );
        assert_eq!(
            details_calls(&app),
            before + 1,
            "{case}: nothing was cached"
        );
        let warm_clean = rest_device(&client, &app.base, warm).await;
        assert!(warm_clean.ok());
        assert_ne!(warm_clean.cache.as_deref(), Some("STALE"), "{case}");
        assert_eq!(warm_clean.body, fresh.body);
    }
}
