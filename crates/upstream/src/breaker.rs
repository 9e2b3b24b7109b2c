//! One circuit breaker per upstream endpoint.
//!
//! Why: retries and stale answers each help one call, but against an endpoint that is
//! down every caller still pays for its attempts (and the endpoint still receives
//! them). Once an endpoint fails most of its calls, the breaker *opens*: calls fail at
//! once with [`UpstreamError::Shed`] (a stale cache entry covers them; a caller
//! without one learns when to come back), and only a bounded trickle of *probes*
//! reaches the upstream until one succeeds.
//!
//! - **Closed**: calls go through; outcomes are counted in a sliding window of ten
//!   buckets. When the window holds at least `min_calls` outcomes and the share of
//!   failures reaches `failure_ratio`, the circuit opens. A ratio over a window with a
//!   minimum volume, rather than "N failures in a row", so a flaky endpoint (half of
//!   its calls failing, where retries still win) keeps working, while a dead one opens
//!   within `min_calls` attempts.
//! - **Open** for `open_for`, doubling on each failed probe up to `max_open_for`.
//! - **Half-open**: at most `half_open_probes` calls at once are let through; a
//!   success closes the circuit, a failure reopens it for twice as long.
//!
//! Failures are what says the endpoint is unwell: no connection, a dropped
//! connection, a 5xx, a timeout. Any other answer (a 4xx, a not-found) is a success:
//! the endpoint is alive. A 429 is neither: the pacer pauses for it.
//!
//! Per replica, like Envoy's: each replica learns from its own calls, and sharing the
//! state would add a Redis round trip to every call for little gain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Endpoint, UpstreamError};
use crate::retry::later;

/// Metric: 0 closed, 1 half-open, 2 open.
pub const CIRCUIT_STATE: &str = "devicegraph_upstream_circuit_state";
/// Metric: transitions, by endpoint and the state entered.
pub const CIRCUIT_TRANSITIONS: &str = "devicegraph_upstream_circuit_transitions_total";
/// Metric: calls refused by an open (or probing) circuit.
pub const CIRCUIT_REFUSED: &str = "devicegraph_upstream_circuit_refused_total";

/// Buckets of the sliding window.
const BUCKETS: usize = 10;

/// `[upstream.circuit_breaker]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    pub enabled: bool,
    /// How far back outcomes count.
    pub window: Duration,
    /// Outcomes the window must hold before the ratio can open the circuit.
    pub min_calls: u32,
    /// Share of failures in the window that opens the circuit (0 < ratio <= 1).
    pub failure_ratio: f64,
    /// How long the circuit stays open before the first probe.
    pub open_for: Duration,
    /// The longest it stays open (it doubles on each failed probe).
    pub max_open_for: Duration,
    /// Probes let through at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: Duration::from_secs(10),
            min_calls: 20,
            failure_ratio: 0.8,
            open_for: Duration::from_secs(5),
            max_open_for: Duration::from_secs(60),
            half_open_probes: 1,
        }
    }
}

/// A circuit's state, as `/readyz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    HalfOpen,
    Open,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }

    fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

/// How one attempt ended, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The endpoint answered (anything but a 5xx or a 429).
    Success,
    /// No connection, a dropped connection, a 5xx or a timeout.
    Failure,
    /// Says nothing of the endpoint's health (a 429, a request never sent).
    Neutral,
}

/// The breakers of every endpoint of one upstream.
pub(crate) struct Breakers {
    config: BreakerConfig,
    circuits: Mutex<HashMap<Endpoint, Circuit>>,
}

/// A call the breaker let through; report its outcome with [`Admission::record`].
/// Dropped without a report (the call was cancelled), it counts as neutral, so a
/// cancelled probe does not hold the half-open circuit's only probe slot forever.
pub(crate) struct Admission {
    breakers: Option<Arc<Breakers>>,
    endpoint: Endpoint,
    probe: bool,
}

impl Admission {
    pub(crate) fn record(mut self, outcome: Outcome) {
        if let Some(breakers) = self.breakers.take() {
            breakers.record(self.endpoint, self.probe, outcome, Instant::now());
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(breakers) = self.breakers.take() {
            breakers.record(self.endpoint, self.probe, Outcome::Neutral, Instant::now());
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed,
    Open {
        until: Instant,
        opened_for: Duration,
    },
    HalfOpen {
        probes: u32,
        opened_for: Duration,
    },
}

impl State {
    fn public(self) -> CircuitState {
        match self {
            Self::Closed => CircuitState::Closed,
            Self::Open { .. } => CircuitState::Open,
            Self::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }
}

struct Circuit {
    state: State,
    /// `(bucket number, calls, failures)`; a bucket number is `elapsed / bucket`.
    buckets: [(u64, u32, u32); BUCKETS],
    origin: Instant,
}

impl Circuit {
    fn new(now: Instant) -> Self {
        Self {
            state: State::Closed,
            buckets: [(0, 0, 0); BUCKETS],
            origin: now,
        }
    }

    fn bucket_of(&self, now: Instant, bucket: Duration) -> u64 {
        let nanos = bucket.as_nanos().max(1);
        u64::try_from(now.saturating_duration_since(self.origin).as_nanos() / nanos)
            .unwrap_or(u64::MAX)
    }

    /// Counts one outcome; returns the window's `(calls, failures)`.
    fn count(&mut self, failed: bool, now: Instant, window: Duration) -> (u32, u32) {
        let bucket_len = window / u32::try_from(BUCKETS).unwrap_or(10);
        let current = self.bucket_of(now, bucket_len);
        let index = usize::try_from(current % BUCKETS as u64).unwrap_or(0);
        let slot = &mut self.buckets[index];
        if slot.0 != current {
            *slot = (current, 0, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        slot.2 = slot.2.saturating_add(u32::from(failed));
        let oldest = current.saturating_sub(BUCKETS as u64 - 1);
        self.buckets
            .iter()
            .filter(|(n, _, _)| *n >= oldest && *n <= current)
            .fold((0u32, 0u32), |(c, f), (_, calls, fails)| {
                (c.saturating_add(*calls), f.saturating_add(*fails))
            })
    }

    fn reset_window(&mut self) {
        self.buckets = [(0, 0, 0); BUCKETS];
        self.origin = Instant::now();
        // Bucket 0 of the new origin must not match stale zeros: they are zeros anyway.
    }
}

impl Breakers {
    pub(crate) fn new(config: BreakerConfig) -> Arc<Self> {
        let now = Instant::now();
        let circuits = Endpoint::ALL
            .iter()
            .map(|e| (*e, Circuit::new(now)))
            .collect();
        for endpoint in Endpoint::ALL {
            set_gauge(endpoint, CircuitState::Closed);
        }
        Arc::new(Self {
            config,
            circuits: Mutex::new(circuits),
        })
    }

    /// Lets a call to `endpoint` through, or refuses it with when to come back.
    pub(crate) fn admit(self: &Arc<Self>, endpoint: Endpoint) -> Result<Admission, UpstreamError> {
        if !self.config.enabled {
            return Ok(Admission {
                breakers: None,
                endpoint,
                probe: false,
            });
        }
        let now = Instant::now();
        let mut circuits = self.lock();
        let circuit = circuits
            .entry(endpoint)
            .or_insert_with(|| Circuit::new(now));
        let probe = match circuit.state {
            State::Closed => false,
            State::Open { until, opened_for } if now >= until => {
                transition(
                    endpoint,
                    &mut circuit.state,
                    State::HalfOpen {
                        probes: 1,
                        opened_for,
                    },
                );
                true
            }
            State::Open { until, .. } => {
                drop(circuits);
                return Err(refused(endpoint, until.saturating_duration_since(now)));
            }
            State::HalfOpen { probes, opened_for } if probes < self.config.half_open_probes => {
                circuit.state = State::HalfOpen {
                    probes: probes + 1,
                    opened_for,
                };
                true
            }
            State::HalfOpen { .. } => {
                drop(circuits);
                // A probe is out; its answer decides within one call's time.
                return Err(refused(endpoint, Duration::from_secs(1)));
            }
        };
        Ok(Admission {
            breakers: Some(Arc::clone(self)),
            endpoint,
            probe,
        })
    }

    /// Every endpoint's state now (an open circuit whose wait is over reads as
    /// half-open: its next call is a probe).
    pub(crate) fn states(&self) -> Vec<(Endpoint, CircuitState)> {
        let now = Instant::now();
        let circuits = self.lock();
        Endpoint::ALL
            .iter()
            .map(|e| {
                let state = match circuits.get(e).map(|c| c.state) {
                    Some(State::Open { until, .. }) if now >= until => CircuitState::HalfOpen,
                    Some(state) => state.public(),
                    None => CircuitState::Closed,
                };
                (*e, state)
            })
            .collect()
    }

    fn record(&self, endpoint: Endpoint, probe: bool, outcome: Outcome, now: Instant) {
        let config = &self.config;
        let mut circuits = self.lock();
        let circuit = circuits
            .entry(endpoint)
            .or_insert_with(|| Circuit::new(now));
        if probe {
            let State::HalfOpen { probes, opened_for } = circuit.state else {
                // Another probe already decided.
                return;
            };
            match outcome {
                Outcome::Success => {
                    circuit.reset_window();
                    transition(endpoint, &mut circuit.state, State::Closed);
                }
                Outcome::Failure => {
                    let opened_for = opened_for
                        .saturating_mul(2)
                        .min(config.max_open_for)
                        .max(config.open_for);
                    transition(
                        endpoint,
                        &mut circuit.state,
                        State::Open {
                            until: later(now, opened_for),
                            opened_for,
                        },
                    );
                }
                Outcome::Neutral => {
                    circuit.state = State::HalfOpen {
                        probes: probes.saturating_sub(1),
                        opened_for,
                    };
                }
            }
            return;
        }
        if outcome == Outcome::Neutral {
            return;
        }
        let (calls, failures) = circuit.count(outcome == Outcome::Failure, now, config.window);
        if matches!(circuit.state, State::Closed)
            && calls >= config.min_calls.max(1)
            && f64::from(failures) >= config.failure_ratio * f64::from(calls)
        {
            tracing::warn!(
                endpoint = endpoint.name(),
                calls,
                failures,
                open_ms = u64::try_from(config.open_for.as_millis()).unwrap_or(u64::MAX),
                "upstream endpoint failing; circuit opened"
            );
            transition(
                endpoint,
                &mut circuit.state,
                State::Open {
                    until: later(now, config.open_for),
                    opened_for: config.open_for,
                },
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Endpoint, Circuit>> {
        self.circuits.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn transition(endpoint: Endpoint, state: &mut State, to: State) {
    let public = to.public();
    if state.public() != public {
        metrics::counter!(
            CIRCUIT_TRANSITIONS,
            "endpoint" => endpoint.name(),
            "to" => public.as_str()
        )
        .increment(1);
        set_gauge(endpoint, public);
        if public == CircuitState::Closed {
            tracing::info!(
                endpoint = endpoint.name(),
                "upstream endpoint answering; circuit closed"
            );
        }
    }
    *state = to;
}

fn set_gauge(endpoint: Endpoint, state: CircuitState) {
    metrics::gauge!(CIRCUIT_STATE, "endpoint" => endpoint.name()).set(state.gauge());
}

fn refused(endpoint: Endpoint, retry_after: Duration) -> UpstreamError {
    metrics::counter!(CIRCUIT_REFUSED, "endpoint" => endpoint.name()).increment(1);
    UpstreamError::Shed {
        endpoint,
        reason: format!("circuit open: {endpoint} is failing"),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            min_calls: 10,
            failure_ratio: 0.8,
            open_for: Duration::from_secs(5),
            max_open_for: Duration::from_secs(20),
            ..BreakerConfig::default()
        }
    }

    fn run(b: &Arc<Breakers>, e: Endpoint, outcome: Outcome) -> bool {
        match b.admit(e) {
            Ok(a) => {
                a.record(outcome);
                true
            }
            Err(_) => false,
        }
    }

    fn state(b: &Breakers, e: Endpoint) -> CircuitState {
        b.states().into_iter().find(|(x, _)| *x == e).unwrap().1
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_endpoint_opens_probes_and_closes_when_it_answers() {
        let b = Breakers::new(config());
        let e = Endpoint::DeviceDetails;
        for _ in 0..10 {
            assert!(run(&b, e, Outcome::Failure));
        }
        assert_eq!(state(&b, e), CircuitState::Open);
        // Other endpoints are not affected.
        assert_eq!(state(&b, Endpoint::CheckInHistory), CircuitState::Closed);
        match b.admit(e) {
            Err(UpstreamError::Shed { retry_after, .. }) => {
                assert!(retry_after <= Duration::from_secs(5) && retry_after > Duration::ZERO);
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        // One probe at a time.
        let probe = b.admit(e).unwrap();
        assert!(b.admit(e).is_err(), "a second probe while one is out");
        probe.record(Outcome::Failure);
        assert_eq!(state(&b, e), CircuitState::Open);
        // Reopened for twice as long.
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(b.admit(e).is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(run(&b, e, Outcome::Success));
        assert_eq!(state(&b, e), CircuitState::Closed);
        // Closed with a fresh window: one failure does not reopen it.
        assert!(run(&b, e, Outcome::Failure));
        assert_eq!(state(&b, e), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_of_calls_failing_keeps_the_circuit_closed() {
        let b = Breakers::new(config());
        let e = Endpoint::DeviceDetails;
        for i in 0..1_000 {
            let outcome = if i % 2 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            assert!(run(&b, e, outcome), "call {i} refused");
            if i % 50 == 0 {
                tokio::time::advance(Duration::from_millis(700)).await;
            }
        }
        assert_eq!(state(&b, e), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn too_few_calls_do_not_open_and_old_failures_expire() {
        let b = Breakers::new(config());
        let e = Endpoint::UpgradeHistory;
        for _ in 0..9 {
            run(&b, e, Outcome::Failure);
        }
        assert_eq!(state(&b, e), CircuitState::Closed, "under min_calls");
        tokio::time::advance(Duration::from_secs(11)).await;
        run(&b, e, Outcome::Failure);
        assert_eq!(
            state(&b, e),
            CircuitState::Closed,
            "the nine earlier failures left the window"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_frees_its_place_and_neutral_outcomes_do_not_count() {
        let b = Breakers::new(config());
        let e = Endpoint::CampaignDevices;
        for _ in 0..50 {
            run(&b, e, Outcome::Neutral);
        }
        assert_eq!(state(&b, e), CircuitState::Closed, "429s are not failures");
        for _ in 0..10 {
            run(&b, e, Outcome::Failure);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(b.admit(e).unwrap());
        assert!(b.admit(e).is_ok(), "the dropped probe gave its place back");
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_never_refuses() {
        let b = Breakers::new(BreakerConfig {
            enabled: false,
            ..config()
        });
        for _ in 0..100 {
            assert!(run(&b, Endpoint::DeviceDetails, Outcome::Failure));
        }
    }
}
