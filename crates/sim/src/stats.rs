//! Request accounting for `/_sim/stats`: calls per endpoint, in-flight and peak
//! concurrency, and the peak number of requests seen in any one-second window (so
//! tests can prove a client paces itself).
//!
//! Times come from `tokio::time::Instant`, so a test on a paused clock sees rates in
//! its own simulated time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::endpoint::Endpoint;

const ENDPOINTS: usize = Endpoint::ALL.len();
const WINDOW: Duration = Duration::from_secs(1);
const FAULT_KINDS: [&str; 7] = [
    "drop",
    "stall",
    "drop_mid_body",
    "stall_mid_body",
    "error",
    "rate_limit",
    "broken_pagination",
];

/// A snapshot of the counters (`GET /_sim/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Requests per endpoint, every endpoint listed, faulted and refused ones included.
    pub calls: BTreeMap<String, u64>,
    pub total_calls: u64,
    /// Requests in progress now: from arrival until the simulator has finished
    /// with them (injected latency included), even when their client has gone away
    /// meanwhile, as a real server keeps working on a request whose client left. A
    /// stalled request ends when its client goes away; a mid-body fault's request
    /// ends when its body ends (dropped, or its client gone).
    pub in_flight: u64,
    /// Most requests in progress at once since the last reset.
    pub peak_concurrency: u64,
    /// Per endpoint, the most requests that arrived within any one second.
    pub peak_rate_per_second: BTreeMap<String, u64>,
    /// The same over all endpoints together.
    pub peak_total_rate_per_second: u64,
    /// Injected faults by kind (`drop`, `stall`, `drop_mid_body`, `stall_mid_body`,
    /// `error`, `rate_limit`, `broken_pagination`).
    pub faults_injected: BTreeMap<String, u64>,
    /// Login attempts refused (wrong password or locked).
    pub failed_logins: u64,
    /// Accounts locked by five failed logins in a row (0 or 1: the configured user).
    pub locked_accounts: u64,
    pub tokens_issued: u64,
    pub sessions_issued: u64,
}

impl Stats {
    /// Calls to one endpoint.
    pub fn calls_to(&self, endpoint: Endpoint) -> u64 {
        self.calls.get(endpoint.name()).copied().unwrap_or(0)
    }

    /// Calls to the six data endpoints together.
    pub fn data_calls(&self) -> u64 {
        Endpoint::ALL
            .iter()
            .filter(|e| e.is_data())
            .map(|e| self.calls_to(*e))
            .sum()
    }
}

/// Sliding one-second windows: the arrival times inside the last second.
#[derive(Default)]
struct Windows {
    per_endpoint: [VecDeque<Instant>; ENDPOINTS],
    total: VecDeque<Instant>,
}

fn push(window: &mut VecDeque<Instant>, now: Instant) -> u64 {
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= WINDOW)
    {
        window.pop_front();
    }
    window.push_back(now);
    window.len() as u64
}

/// The live counters.
#[derive(Default)]
pub(crate) struct Counters {
    calls: [AtomicU64; ENDPOINTS],
    in_flight: AtomicU64,
    peak: AtomicU64,
    peak_rate: [AtomicU64; ENDPOINTS],
    peak_total_rate: AtomicU64,
    faults: [AtomicU64; FAULT_KINDS.len()],
    failed_logins: AtomicU64,
    tokens_issued: AtomicU64,
    sessions_issued: AtomicU64,
    // A std mutex: held for a few pushes and pops, never across an await.
    windows: Mutex<Windows>,
}

/// Marks one request in flight until dropped. Owned (not borrowed), so it can move
/// into a response body that outlives the handler.
pub(crate) struct InFlight {
    counters: Arc<Counters>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counters.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Counters {
    /// Records the arrival of a request to `endpoint`.
    pub(crate) fn enter(self: &Arc<Self>, endpoint: Endpoint) -> InFlight {
        let i = endpoint.ordinal();
        self.calls[i].fetch_add(1, Ordering::Relaxed);
        let guard = self.hold();
        let now = Instant::now();
        if let Ok(mut w) = self.windows.lock() {
            let n = push(&mut w.per_endpoint[i], now);
            self.peak_rate[i].fetch_max(n, Ordering::Relaxed);
            let total = push(&mut w.total, now);
            self.peak_total_rate.fetch_max(total, Ordering::Relaxed);
        }
        guard
    }

    /// One more request in flight (no call counted): [`Counters::enter`]'s guard,
    /// or a second guard for a request whose body goes on after its handler.
    pub(crate) fn hold(self: &Arc<Self>) -> InFlight {
        let now_in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now_in_flight, Ordering::SeqCst);
        InFlight {
            counters: Arc::clone(self),
        }
    }

    pub(crate) fn fault(&self, kind: &str) {
        if let Some(i) = FAULT_KINDS.iter().position(|k| *k == kind) {
            self.faults[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn failed_login(&self) {
        self.failed_logins.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn token_issued(&self) {
        self.tokens_issued.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn session_issued(&self) {
        self.sessions_issued.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, locked_accounts: u64) -> Stats {
        let mut calls = BTreeMap::new();
        let mut peak_rate = BTreeMap::new();
        for e in Endpoint::ALL {
            calls.insert(
                e.name().to_string(),
                self.calls[e.ordinal()].load(Ordering::Relaxed),
            );
            peak_rate.insert(
                e.name().to_string(),
                self.peak_rate[e.ordinal()].load(Ordering::Relaxed),
            );
        }
        let faults_injected = FAULT_KINDS
            .iter()
            .zip(&self.faults)
            .map(|(k, v)| (k.to_string(), v.load(Ordering::Relaxed)))
            .collect();
        Stats {
            total_calls: calls.values().sum(),
            calls,
            in_flight: self.in_flight.load(Ordering::SeqCst),
            peak_concurrency: self.peak.load(Ordering::SeqCst),
            peak_rate_per_second: peak_rate,
            peak_total_rate_per_second: self.peak_total_rate.load(Ordering::Relaxed),
            faults_injected,
            failed_logins: self.failed_logins.load(Ordering::Relaxed),
            locked_accounts,
            tokens_issued: self.tokens_issued.load(Ordering::Relaxed),
            sessions_issued: self.sessions_issued.load(Ordering::Relaxed),
        }
    }

    /// Zeroes everything except the requests still in flight (their guards will
    /// decrement later); the peak restarts from the current in-flight count.
    pub(crate) fn reset(&self) {
        let zero = |a: &AtomicU64| a.store(0, Ordering::SeqCst);
        self.calls.iter().for_each(zero);
        self.peak_rate.iter().for_each(zero);
        self.faults.iter().for_each(zero);
        zero(&self.peak_total_rate);
        zero(&self.failed_logins);
        zero(&self.tokens_issued);
        zero(&self.sessions_issued);
        self.peak
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
        if let Ok(mut w) = self.windows.lock() {
            *w = Windows::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_calls_concurrency_and_rate() {
        let c = Arc::new(Counters::default());
        {
            let _a = c.enter(Endpoint::DeviceDetails);
            let _b = c.enter(Endpoint::DeviceDetails);
            let _d = c.enter(Endpoint::CheckInHistory);
        }
        tokio::time::advance(Duration::from_millis(1500)).await;
        let _e = c.enter(Endpoint::DeviceDetails);
        let s = c.snapshot(0);
        assert_eq!(s.calls_to(Endpoint::DeviceDetails), 3);
        assert_eq!(s.total_calls, 4);
        assert_eq!(s.data_calls(), 4);
        assert_eq!(s.peak_concurrency, 3);
        assert_eq!(s.in_flight, 1);
        assert_eq!(s.peak_rate_per_second["device_details"], 2);
        assert_eq!(s.peak_total_rate_per_second, 3);
        c.reset();
        let s = c.snapshot(0);
        assert_eq!((s.total_calls, s.peak_concurrency, s.in_flight), (0, 1, 1));
    }
}
