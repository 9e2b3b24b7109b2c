//! The client's resilience against the simulator over real HTTP: the circuit breaker,
//! the retry budget, and attempts holding their concurrency slot until ThingSpace
//! answers. Each test prints its figures (`figure:` lines).

#![allow(clippy::unwrap_used)]

mod client_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use client_support::*;
use devicegraph_upstream::{
    AccountName, BreakerConfig, CircuitState, Client, Endpoint, GatePermit, Imei, RequestGate,
    RetryBudgetConfig, UpstreamError,
};
use futures::future::BoxFuture;
use serde_json::json;
use tokio::time::Instant;

fn account() -> AccountName {
    ACCOUNT.parse().unwrap()
}

fn imeis(sim: &devicegraph_sim::RunningSim) -> Vec<Imei> {
    sim.catalog().sample_imeis[ACCOUNT]
        .iter()
        .map(|i| i.parse().unwrap())
        .collect()
}

fn circuit(client: &Client, endpoint: Endpoint) -> CircuitState {
    client
        .circuits()
        .into_iter()
        .find(|(e, _)| *e == endpoint)
        .unwrap()
        .1
}

#[tokio::test]
async fn a_down_endpoint_gets_a_handful_of_probes_not_every_call() {
    let sim = sim().await;
    let mut config = config(&sim);
    config.breaker = BreakerConfig {
        min_calls: 10,
        open_for: Duration::from_millis(300),
        max_open_for: Duration::from_millis(600),
        ..BreakerConfig::default()
    };
    let client = Client::new(config).unwrap();
    client.ensure_authenticated().await.unwrap();
    let imei = imeis(&sim)[0].clone();
    set_faults(&sim, json!({"errorRate": 1.0})).await;

    let before = sim.stats();
    let started = Instant::now();
    let (mut refused_at_once, mut calls) = (0u32, 0u32);
    let mut slowest_refusal = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        match client.check_in_history(&account(), &imei).await {
            Err(UpstreamError::Shed { retry_after, .. }) => {
                refused_at_once += 1;
                slowest_refusal = slowest_refusal.max(t.elapsed());
                assert!(retry_after > Duration::ZERO);
            }
            Err(UpstreamError::Unavailable { .. }) => {}
            other => panic!("{other:?}"),
        }
        calls += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let upstream = delta(&before, &sim.stats(), "check_in_history");
    println!(
        "figure: down endpoint: {calls} calls in 3 s, {upstream} reached ThingSpace, \
         {refused_at_once} refused at once (slowest refusal {slowest_refusal:?})"
    );
    assert_eq!(
        circuit(&client, Endpoint::CheckInHistory),
        CircuitState::Open
    );
    assert!(refused_at_once > calls / 2, "{refused_at_once} of {calls}");
    // Up to min_calls attempts to open it, then about one probe per open period
    // (300-600 ms over 3 s), each probe with its allowed retries.
    assert!(
        upstream < 40,
        "{upstream} upstream calls for {calls} client calls"
    );
    assert!(
        slowest_refusal < Duration::from_millis(50),
        "{slowest_refusal:?}"
    );
    // Other endpoints are not affected by this one's circuit.
    assert_eq!(
        circuit(&client, Endpoint::UpgradeHistory),
        CircuitState::Closed
    );

    // Back up: the next probe closes it and calls go through again.
    set_faults(&sim, json!({"clear": true})).await;
    tokio::time::sleep(Duration::from_millis(650)).await;
    client.check_in_history(&account(), &imei).await.unwrap();
    assert_eq!(
        circuit(&client, Endpoint::CheckInHistory),
        CircuitState::Closed
    );
    client.check_in_history(&account(), &imei).await.unwrap();
}

#[tokio::test]
async fn half_the_calls_failing_cost_at_most_the_retry_budget() {
    let sim = sim().await;
    let mut config = config(&sim);
    config.max_attempts = 10;
    config.backoff_base = Duration::from_millis(1);
    config.backoff_max = Duration::from_millis(5);
    config.retry_budget = RetryBudgetConfig {
        ratio: 0.2,
        min_per_second: 1,
    };
    let client = Client::new(config).unwrap();
    client.ensure_authenticated().await.unwrap();
    let imeis = imeis(&sim);
    set_faults(&sim, json!({"errorRate": 0.5})).await;

    let before = sim.stats();
    let requests = 400usize;
    let mut ok = 0usize;
    for i in 0..requests {
        let imei = &imeis[i % imeis.len()];
        if client.upgrade_history(&account(), imei).await.is_ok() {
            ok += 1;
        }
    }
    let upstream = delta(&before, &sim.stats(), "upgrade_history");
    #[allow(clippy::cast_precision_loss)]
    let ratio = upstream as f64 / requests as f64;
    println!(
        "figure: 50% failing: {upstream} upstream calls for {requests} calls \
         ({ratio:.2}x a healthy upstream), {ok} succeeded"
    );
    // 20% of first attempts plus the floor (1/s over the 10 s window): never the 10
    // attempts per call max_attempts allows (about 2x at 50% failing).
    assert!(ratio <= 1.2 + 10.0 / 400.0 + 0.01, "{ratio}");
    assert!(ok >= requests / 2, "retries still help: {ok}");
}

/// A gate with `slots` concurrency slots that records how many are held.
struct SlotGate {
    slots: Arc<tokio::sync::Semaphore>,
    peak_held: AtomicU64,
    capacity: u32,
}

impl SlotGate {
    fn held(&self) -> u64 {
        u64::from(self.capacity) - self.slots.available_permits() as u64
    }
}

impl RequestGate for SlotGate {
    fn acquire(
        &self,
        endpoint: Endpoint,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<GatePermit, UpstreamError>> {
        Box::pin(async move {
            let permit = tokio::time::timeout_at(deadline, Arc::clone(&self.slots).acquire_owned())
                .await
                .map_err(|_| UpstreamError::Timeout { endpoint })?
                .unwrap();
            self.peak_held.fetch_max(self.held(), Ordering::SeqCst);
            Ok(GatePermit::holding(permit))
        })
    }

    fn rate_limited(&self, _endpoint: Endpoint, _retry_after: Duration) {}
}

#[tokio::test]
async fn a_timed_out_call_keeps_its_slot_until_thingspace_answers() {
    let sim = sim().await;
    let mut config = config(&sim);
    config.timeout = Duration::from_millis(300);
    config.max_attempts = 1;
    config.abandon_after = Duration::from_secs(5);
    let gate = Arc::new(SlotGate {
        slots: Arc::new(tokio::sync::Semaphore::new(2)),
        peak_held: AtomicU64::new(0),
        capacity: 2,
    });
    let client = Client::with_gate(config, gate.clone()).unwrap();
    client.ensure_authenticated().await.unwrap();
    let imeis = imeis(&sim);
    set_faults(&sim, json!({"latencyMs": 1200})).await;

    let started = Instant::now();
    let calls = imeis.iter().take(6).map(|imei| {
        let client = client.clone();
        let imei = imei.clone();
        async move { client.upgrade_history(&account(), &imei).await }
    });
    let results = futures::future::join_all(calls).await;
    let gave_up_after = started.elapsed();
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(UpstreamError::Timeout { .. }))),
        "{results:?}"
    );
    assert!(gave_up_after < Duration::from_secs(1), "{gave_up_after:?}");
    // Two calls were sent and ThingSpace is still working on them: their slots are
    // still held, so no third call could have been sent meanwhile.
    assert_eq!(gate.held(), 2, "slots freed while ThingSpace still works");
    let sent = sim
        .stats()
        .calls
        .get("upgrade_history")
        .copied()
        .unwrap_or(0);
    assert_eq!(sent, 2, "only as many calls as slots reached ThingSpace");
    // Once ThingSpace has answered, the slots come free.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(gate.held(), 0);
    println!(
        "figure: abandoned calls: callers gave up after {gave_up_after:?}; slots held \
         until ThingSpace answered at ~1.2 s; peak slots {}",
        gate.peak_held.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn an_abandoned_call_is_cut_off_after_abandon_after() {
    let sim = sim().await;
    let mut config = config(&sim);
    config.timeout = Duration::from_millis(200);
    config.max_attempts = 1;
    config.abandon_after = Duration::from_millis(300);
    let gate = Arc::new(SlotGate {
        slots: Arc::new(tokio::sync::Semaphore::new(1)),
        peak_held: AtomicU64::new(0),
        capacity: 1,
    });
    let client = Client::with_gate(config, gate.clone()).unwrap();
    client.ensure_authenticated().await.unwrap();
    set_faults(&sim, json!({"stallRate": 1.0})).await;
    let imei = imeis(&sim)[0].clone();
    let result = client.upgrade_history(&account(), &imei).await;
    assert!(
        matches!(result, Err(UpstreamError::Timeout { .. })),
        "{result:?}"
    );
    assert_eq!(gate.held(), 1);
    // 200 ms deadline + 300 ms: the connection is dropped and the slot freed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        gate.held(),
        0,
        "a stalled upstream cannot keep a slot forever"
    );
}
