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

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::Method;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets in seconds: from a warm cache hit to a slow upstream page walk.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's Prometheus handle, installing the global recorder on first use.
pub(crate) fn prometheus() -> PrometheusHandle {
    RECORDER
        .get_or_init(|| {
            let builder = || {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
            };
            match builder().and_then(PrometheusBuilder::install_recorder) {
                Ok(handle) => handle,
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
    use super::*;

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
