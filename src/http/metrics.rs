//! HTTP metrics and the Prometheus recorder.
//!
//! The middleware records `devicegraph_http_requests_total{route,method,status}` and
//! `devicegraph_http_request_duration_seconds{route}`. It runs as a route layer, after
//! routing, so `route` is the matched template (`/v1/accounts/{account}/devices/{imei}`),
//! never a raw path: label values must not grow with the IMEIs clients send. For the
//! same reason `method` is one of the standard methods or `other`: the API group's 405
//! answers (any method a client makes up) and CORS preflights are recorded too.
//!
//! The recorder is process-global (the `metrics` facade has one slot), so it is built
//! once per process behind a `OnceLock`; several servers in one test process share it.
//! When it is installed, every metric of the workspace gets its HELP text
//! ([`all_metrics`]: each crate's list; a test holds the lists to the names the code
//! records) and `devicegraph_build_info` is set. The `process_*` families are added
//! at each scrape by [`render`] (`process_metrics`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use devicegraph_upstream::metric_help::MetricHelp;
use http::Method;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::process_metrics;

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets in seconds: from a warm cache hit to a slow upstream page walk.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The commit the binary was built from, when the build said so
/// (`DEVICEGRAPH_GIT_SHA=$(git rev-parse HEAD) cargo build --release`).
const GIT_SHA: &str = match option_env!("DEVICEGRAPH_GIT_SHA") {
    Some(sha) => sha,
    None => "unknown",
};

const BUILD_INFO: &str = "devicegraph_build_info";

/// Every metric this crate records, with its HELP text.
pub(crate) const METRICS: &[MetricHelp] = &[
    MetricHelp::counter(
        "devicegraph_http_requests_total",
        "HTTP requests answered, by route template, method and status.",
    ),
    MetricHelp::histogram(
        "devicegraph_http_request_duration_seconds",
        "Time to answer an HTTP request, by route template.",
    ),
    MetricHelp::counter(
        "devicegraph_rate_limit_rejections_total",
        "Requests refused 429 by the per-client inbound rate limit.",
    ),
    MetricHelp::gauge(
        "devicegraph_rate_limit_tracked_clients",
        "Clients the inbound rate limiter holds state for.",
    ),
    MetricHelp::counter(
        "devicegraph_response_cache_hits_total",
        "Requests answered from a stored response (or 304) without executing.",
    ),
    MetricHelp::counter(
        "devicegraph_response_cache_misses_total",
        "Cacheable requests with no current stored response.",
    ),
    MetricHelp::counter(
        "devicegraph_response_cache_invalidated_total",
        "Stored responses dropped because an entry they were built from changed or expired.",
    ),
    MetricHelp::counter(
        "devicegraph_response_cache_evictions_total",
        "Stored responses evicted to stay within cache.response_cache_max_bytes.",
    ),
    MetricHelp::gauge(
        "devicegraph_response_cache_bytes",
        "Bytes held by the response cache.",
    ),
    MetricHelp::gauge(
        "devicegraph_trusted_documents",
        "Operations in the trusted-documents manifest.",
    ),
    MetricHelp::counter(
        "devicegraph_trusted_documents_reloads_total",
        "Reloads of the trusted-documents manifest (SIGHUP), by result (ok, error).",
    ),
    MetricHelp::counter(
        "devicegraph_trusted_documents_refused_total",
        "GraphQL requests refused by persisted queries or the allow-list, by reason.",
    ),
    MetricHelp::gauge(
        BUILD_INFO,
        "Always 1; the labels say which build is running (version, git_sha).",
    ),
];

/// Every metric of the workspace: the upstream client's, the cache's and this
/// crate's (the `process_*` families describe themselves).
pub(crate) fn all_metrics() -> impl Iterator<Item = &'static MetricHelp> {
    devicegraph_upstream::metric_help::METRICS
        .iter()
        .chain(devicegraph_cache::METRICS)
        .chain(METRICS)
}

/// The exposition for `/metrics`: the recorder's families, then the process's.
pub(crate) fn render(handle: &PrometheusHandle) -> String {
    let mut out = handle.render();
    process_metrics::render(&mut out);
    out
}

/// The HELP texts and the build info, given to a recorder just installed.
fn describe_installed() {
    for metric in all_metrics() {
        metric.describe();
    }
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "git_sha" => GIT_SHA)
        .set(1.0);
}

/// The process's Prometheus handle, installing the global recorder on first use.
pub(crate) fn prometheus() -> PrometheusHandle {
    RECORDER
        .get_or_init(|| {
            let builder = || {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
            };
            match builder().and_then(PrometheusBuilder::install_recorder) {
                Ok(handle) => {
                    describe_installed();
                    handle
                }
                Err(e) => {
                    // Another recorder owns the global slot (an embedding program):
                    // serve an empty exposition rather than fail to start.
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// Drains histogram buffers now and then so their memory stays bounded; ends with the
/// runtime or when aborted.
pub(crate) fn spawn_upkeep(
    handle: PrometheusHandle,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

/// A method as a metric label, from a fixed set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The middleware.
pub(crate) async fn record(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let started = Instant::now();
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    if RECORDER.get().is_some() {
        HANDLES.with_borrow_mut(|handles| {
            let per_route = match handles.get_mut(route) {
                Some(per_route) => per_route,
                None => handles
                    .entry(route.to_owned())
                    .or_insert_with(|| RouteHandles {
                        duration: duration_histogram(route),
                        counts: HashMap::new(),
                    }),
            };
            per_route.duration.record(elapsed);
            per_route
                .counts
                .entry((method, status))
                .or_insert_with(|| request_counter(route, method, status))
                .increment(1);
        });
    } else {
        // No recorder yet (a handle taken now would stay a no-op): the macros.
        request_counter(route, method, status).increment(1);
        duration_histogram(route).record(elapsed);
    }
    response
}

fn request_counter(route: &str, method: &'static str, status: u16) -> metrics::Counter {
    metrics::counter!("devicegraph_http_requests_total", "route" => route.to_owned(),
        "method" => method, "status" => status.to_string())
}

fn duration_histogram(route: &str) -> metrics::Histogram {
    metrics::histogram!("devicegraph_http_request_duration_seconds", "route" => route.to_owned())
}

/// One route's metric handles, by method and status.
struct RouteHandles {
    duration: metrics::Histogram,
    counts: HashMap<(&'static str, u16), metrics::Counter>,
}

thread_local! {
    /// Each worker thread's handles, by route template: recording is an increment,
    /// not a label set built, hashed and looked up in the registry per request.
    /// Bounded: templates, the fixed method labels and HTTP statuses are finite.
    static HANDLES: RefCell<HashMap<String, RouteHandles>> = RefCell::new(HashMap::new());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use devicegraph_upstream::metric_help::MetricKind;

    use super::*;

    /// Every `.rs` file under `dir`, with its text.
    fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.display().to_string(), text));
            }
        }
    }

    /// The metric names the workspace's code records: the first argument of every
    /// `counter!`, `gauge!` and `histogram!`, a literal or a `const` of a literal.
    fn recorded_names() -> BTreeMap<String, String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        sources(&root.join("src"), &mut files);
        for entry in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
            if entry.path().join("src").is_dir() {
                sources(&entry.path().join("src"), &mut files);
            }
        }
        let ident = |text: &str| -> String {
            text.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        let mut consts = BTreeMap::new();
        for (_, text) in &files {
            for (at, _) in text.match_indices("const ") {
                let rest = &text[at + 6..];
                let name = ident(rest);
                if let Some(literal) = rest[name.len()..]
                    .trim_start()
                    .strip_prefix(": &str = \"")
                    .and_then(|r| r.split('"').next())
                {
                    consts.insert(name, literal.to_owned());
                }
            }
        }
        let mut recorded = BTreeMap::new();
        for (path, text) in &files {
            for macro_name in ["counter!(", "gauge!(", "histogram!("] {
                for (at, _) in text.match_indices(macro_name) {
                    // Descriptions, and this scan's own strings, are not recordings.
                    if text[..at].ends_with("describe_") || text[..at].ends_with('"') {
                        continue;
                    }
                    let arg = text[at + macro_name.len()..].trim_start();
                    let name = match arg.strip_prefix('"') {
                        Some(literal) => literal.split('"').next().unwrap().to_owned(),
                        None => {
                            let name = ident(arg);
                            consts.get(&name).cloned().unwrap_or_else(|| {
                                panic!(
                                    "{path}: the metric name `{name}` is not a literal or a const"
                                )
                            })
                        }
                    };
                    recorded.insert(name, path.clone());
                }
            }
        }
        recorded
    }

    /// Every metric the code records has a HELP text in its crate's list (so
    /// `/metrics` has a `# HELP` line for it), and every listed metric is recorded.
    #[test]
    fn every_recorded_metric_is_described() {
        let recorded = recorded_names();
        let listed: BTreeSet<&str> = all_metrics().map(|m| m.name).collect();
        assert_eq!(listed.len(), all_metrics().count(), "a metric listed twice");
        for (name, path) in &recorded {
            assert!(
                listed.contains(name.as_str()),
                "{name} (recorded in {path}) has no HELP text: add it to its crate's METRICS"
            );
        }
        for name in &listed {
            assert!(
                recorded.contains_key(*name),
                "{name} is listed but never recorded"
            );
        }
        assert!(recorded.len() >= 25, "the scan found only {recorded:?}");
    }

    #[test]
    fn names_and_help_follow_prometheus_conventions() {
        for metric in all_metrics() {
            let name = metric.name;
            assert!(name.starts_with("devicegraph_"), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert_eq!(
                metric.kind == MetricKind::Counter,
                name.ends_with("_total"),
                "{name}: counters, and only counters, end in _total"
            );
            assert!(
                !metric.help.is_empty() && !metric.help.contains('\n'),
                "{name}"
            );
        }
    }

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        for made_up in ["AAAA1", "AAAA2", "PROPFIND"] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other");
        }
    }
}
