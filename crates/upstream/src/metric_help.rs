//! The HELP text of every metric this crate records, and the small type every
//! crate of the workspace lists its metrics with ([`MetricHelp`]): the root binary
//! describes them all to its Prometheus exporter, so every family on `/metrics`
//! has a `# HELP` line, and a test there holds each crate's list to the names its
//! code records.

/// A Prometheus metric type, as the `metrics` facade names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric family: its name, type and HELP text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricHelp {
    pub name: &'static str,
    pub kind: MetricKind,
    pub help: &'static str,
}

impl MetricHelp {
    pub const fn counter(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            kind: MetricKind::Counter,
            help,
        }
    }

    pub const fn gauge(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            kind: MetricKind::Gauge,
            help,
        }
    }

    pub const fn histogram(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            kind: MetricKind::Histogram,
            help,
        }
    }

    /// Gives the installed recorder this family's HELP text (a no-op without one).
    pub fn describe(&self) {
        match self.kind {
            MetricKind::Counter => metrics::describe_counter!(self.name, self.help),
            MetricKind::Gauge => metrics::describe_gauge!(self.name, self.help),
            MetricKind::Histogram => metrics::describe_histogram!(self.name, self.help),
        }
    }
}

/// Every metric the upstream client records.
pub const METRICS: &[MetricHelp] = &[
    MetricHelp::counter(
        "devicegraph_upstream_requests_total",
        "HTTP requests sent to ThingSpace, by endpoint and answer status (or transport failure).",
    ),
    MetricHelp::histogram(
        "devicegraph_upstream_request_duration_seconds",
        "Time of one HTTP attempt to ThingSpace, from sending to the whole answer, by endpoint.",
    ),
    MetricHelp::counter(
        "devicegraph_upstream_retries_total",
        "ThingSpace calls retried after a connect error, 5xx or 429, by endpoint.",
    ),
    MetricHelp::counter(
        "devicegraph_upstream_errors_total",
        "ThingSpace calls that failed after their retries, by endpoint and error kind.",
    ),
    MetricHelp::gauge(
        crate::breaker::CIRCUIT_STATE,
        "Circuit breaker state of each ThingSpace endpoint: 0 closed, 1 half-open, 2 open.",
    ),
    MetricHelp::counter(
        crate::breaker::CIRCUIT_TRANSITIONS,
        "Circuit breaker transitions, by endpoint and the state entered.",
    ),
    MetricHelp::counter(
        crate::breaker::CIRCUIT_REFUSED,
        "ThingSpace calls refused at once because the endpoint's circuit was open or probing.",
    ),
    MetricHelp::counter(
        crate::retry_budget::RETRY_BUDGET_EXHAUSTED,
        "Retries not made because the shared retry budget was spent, by endpoint.",
    ),
    MetricHelp::gauge(
        crate::transport::ABANDONED_IN_FLIGHT,
        "Attempts whose caller gave up that still hold their concurrency slot, waiting for ThingSpace.",
    ),
];
