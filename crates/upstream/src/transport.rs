//! One HTTP request to ThingSpace, with its retries: the layer under both the token
//! requests and the data reads.
//!
//! Every attempt first passes the endpoint's circuit breaker (`breaker`: an open
//! circuit refuses at once), then the [`RequestGate`], and is counted in metrics.
//! Connect errors, dropped connections, 5xx and 429 are retried with full-jitter
//! backoff (or the server's `Retry-After`) while attempts, deadline and the shared
//! retry budget (`retry_budget`) last; every other answer is handed back to the
//! caller, which knows what a 400 or 401 means for its endpoint.
//!
//! **In flight means in flight at ThingSpace.** An attempt runs on its own task, which
//! holds the gate's permit (the concurrency slot) until ThingSpace answers or
//! `abandon_after` past the call's deadline, when the connection is dropped. The
//! caller stops waiting at its deadline; the slot does not come free then, because
//! ThingSpace is still working on the request, and a slot freed early lets the
//! upstream see more than `max_concurrency` requests at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep, timeout_at};
use tracing::{Instrument, Span};
use url::Url;

use crate::breaker::{Breakers, CircuitState, Outcome};
use crate::decode::DecodeError;
use crate::decode::bodies::parse_error_body;
use crate::error::{Endpoint, UpstreamError};
use crate::gate::{GatePermit, RequestGate};
use crate::request_id::{count_upstream_call, current_request_id};
use crate::retry::{Backoff, later, parse_retry_after};
use crate::retry_budget::{RETRY_BUDGET_EXHAUSTED, RetryBudget};

/// Largest response body we read. The biggest legitimate page (1,000 device details)
/// is well under a megabyte; this only stops a broken upstream from exhausting memory.
const MAX_BODY_BYTES: usize = 64 << 20;

/// Metric: attempts the caller gave up on that still hold their concurrency slot,
/// waiting for ThingSpace's answer.
pub(crate) const ABANDONED_IN_FLIGHT: &str = "devicegraph_upstream_abandoned_in_flight";

/// Longest `errorMessage` kept in an error: messages are for humans and logs, and a
/// broken upstream must not make every error value huge.
const MAX_ERROR_MESSAGE_CHARS: usize = 500;

/// Longest body excerpt in a decode error.
const MAX_EXCERPT_CHARS: usize = 200;

pub(crate) const JSON: &str = "application/json";
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// Which credentials one request carries.
pub(crate) enum Authorization<'a> {
    /// The OAuth token request: HTTP Basic with the client id and secret.
    Basic {
        user: &'a str,
        password: &'a SecretString,
    },
    /// The session login: the bearer token only.
    Bearer(&'a SecretString),
    /// Data calls: bearer plus `VZ-M2M-Token`.
    Data {
        bearer: &'a SecretString,
        session: &'a SecretString,
    },
}

/// What to send; reused unchanged by every attempt.
pub(crate) struct RequestSpec {
    pub(crate) method: Method,
    pub(crate) url: Url,
    /// Content type and body.
    pub(crate) body: Option<(&'static str, Bytes)>,
}

/// A complete answer that is not to be retried (any status but 5xx and 429).
pub(crate) struct RawResponse {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

/// What `send` learnt, for the span.
#[derive(Default)]
struct Progress {
    attempts: u32,
    last_status: Option<u16>,
}

/// How one attempt ended.
enum Attempt {
    Answered {
        status: StatusCode,
        retry_after: Option<Duration>,
        body: Bytes,
    },
    /// Connect failure or connection lost: worth another attempt.
    Transport(&'static str),
    /// The call's deadline passed during the attempt.
    TimedOut,
    /// Not worth retrying (the request could not be built, a body too large).
    Fatal(UpstreamError),
}

/// The transport's resilience settings, from `ClientConfig`.
pub(crate) struct Resilience {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) breakers: Arc<Breakers>,
    pub(crate) retry_budget: RetryBudget,
    pub(crate) abandon_after: Duration,
}

pub(crate) struct Transport {
    http: reqwest::Client,
    base_url: Url,
    gate: Arc<dyn RequestGate>,
    max_attempts: u32,
    backoff: Backoff,
    breakers: Arc<Breakers>,
    retry_budget: RetryBudget,
    abandon_after: Duration,
}

impl Transport {
    pub(crate) fn new(
        base_url: Url,
        gate: Arc<dyn RequestGate>,
        resilience: Resilience,
    ) -> Result<Self, UpstreamError> {
        let Resilience {
            max_attempts,
            backoff,
            breakers,
            retry_budget,
            abandon_after,
        } = resilience;
        if base_url.cannot_be_a_base() || !matches!(base_url.scheme(), "http" | "https") {
            return Err(UpstreamError::InvalidRequest {
                endpoint: Endpoint::OAuthToken,
                reason: "the upstream base URL must be an http or https URL".into(),
            });
        }
        let http = reqwest::Client::builder()
            .gzip(true)
            // A REST API that redirects is misconfigured; following it could carry the
            // credentials somewhere unexpected.
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|_| UpstreamError::Unavailable {
                endpoint: Endpoint::OAuthToken,
                reason: "could not initialise the HTTP client".into(),
                status: None,
            })?;
        Ok(Self {
            http,
            base_url,
            gate,
            max_attempts: max_attempts.max(1),
            backoff,
            breakers,
            retry_budget,
            abandon_after,
        })
    }

    /// Every endpoint's circuit, now.
    pub(crate) fn circuits(&self) -> Vec<(Endpoint, CircuitState)> {
        self.breakers.states()
    }

    /// `base_url` followed by `segments`, each percent-encoded as one path segment.
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        // Cannot fail: `new` refused cannot-be-a-base URLs.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends `spec`, retrying transient failures inside `deadline`. Records the final
    /// `attempt` and `status` on the current span (once: some subscribers append
    /// rather than replace re-recorded fields).
    pub(crate) async fn send(
        &self,
        endpoint: Endpoint,
        spec: &RequestSpec,
        auth: Authorization<'_>,
        deadline: Instant,
    ) -> Result<RawResponse, UpstreamError> {
        let mut progress = Progress::default();
        let result = self
            .send_with_retries(endpoint, spec, &auth, deadline, &mut progress)
            .await;
        let span = Span::current();
        span.record("attempt", progress.attempts);
        if let Some(status) = progress.last_status {
            span.record("status", status);
        }
        result
    }

    /// [`Self::send`] as a call of its own, in a fresh [`call_span`] with its latency
    /// recorded: for the token requests, which are not any data call's request.
    pub(crate) async fn send_in_span(
        &self,
        endpoint: Endpoint,
        spec: &RequestSpec,
        auth: Authorization<'_>,
        deadline: Instant,
    ) -> Result<RawResponse, UpstreamError> {
        let span = call_span(endpoint, None);
        let started = Instant::now();
        let result = self
            .send(endpoint, spec, auth, deadline)
            .instrument(span.clone())
            .await;
        record_latency(&span, started);
        result
    }

    async fn send_with_retries(
        &self,
        endpoint: Endpoint,
        spec: &RequestSpec,
        auth: &Authorization<'_>,
        deadline: Instant,
        progress: &mut Progress,
    ) -> Result<RawResponse, UpstreamError> {
        loop {
            // Saturating, so a configured `max_attempts` of `u32::MAX` cannot overflow it.
            progress.attempts = progress.attempts.saturating_add(1);
            let attempt = progress.attempts;
            if Instant::now() >= deadline {
                return Err(UpstreamError::Timeout { endpoint });
            }
            let admission = self.breakers.admit(endpoint)?;
            let permit = match timeout_at(deadline, self.gate.acquire(endpoint, deadline)).await {
                Err(_) => return Err(UpstreamError::Timeout { endpoint }),
                Ok(permit) => permit?,
            };
            if attempt == 1 {
                self.retry_budget.first_attempt();
            }
            let started = Instant::now();
            let outcome = self.attempt(endpoint, spec, auth, deadline, permit).await;
            admission.record(match &outcome {
                Attempt::Answered { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => {
                    Outcome::Neutral
                }
                Attempt::Answered { status, .. } if status.is_server_error() => Outcome::Failure,
                Attempt::Answered { .. } => Outcome::Success,
                Attempt::Transport(_) | Attempt::TimedOut => Outcome::Failure,
                Attempt::Fatal(_) => Outcome::Neutral,
            });
            metrics::histogram!(
                "devicegraph_upstream_request_duration_seconds",
                "endpoint" => endpoint.name()
            )
            .record(started.elapsed().as_secs_f64());

            let (error, wait) = match outcome {
                Attempt::Answered {
                    status,
                    retry_after,
                    body,
                } => {
                    count_request(endpoint, status.as_str().to_owned());
                    progress.last_status = Some(status.as_u16());
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        let wait = retry_after.unwrap_or_else(|| self.backoff.delay(attempt));
                        self.gate.rate_limited(endpoint, wait);
                        let error = UpstreamError::RateLimited {
                            endpoint,
                            retry_after,
                        };
                        (error, wait)
                    } else if status.is_server_error() {
                        let error = UpstreamError::Unavailable {
                            endpoint,
                            reason: format!("HTTP {} after {attempt} attempt(s)", status.as_u16()),
                            status: Some(status.as_u16()),
                        };
                        (error, self.backoff.delay(attempt))
                    } else {
                        return Ok(RawResponse { status, body });
                    }
                }
                Attempt::Transport(what) => {
                    count_request(endpoint, "transport_error".to_owned());
                    progress.last_status = None;
                    let error = UpstreamError::Unavailable {
                        endpoint,
                        reason: format!("{what} after {attempt} attempt(s)"),
                        status: None,
                    };
                    (error, self.backoff.delay(attempt))
                }
                Attempt::TimedOut => {
                    count_request(endpoint, "timeout".to_owned());
                    return Err(UpstreamError::Timeout { endpoint });
                }
                Attempt::Fatal(error) => return Err(error),
            };
            if attempt >= self.max_attempts {
                return Err(error);
            }
            // Waiting past the deadline only to fail with Timeout would hide the real
            // cause and waste the caller's time: fail now with what we know.
            if later(Instant::now(), wait) >= deadline {
                return Err(error);
            }
            if !self.retry_budget.try_retry() {
                metrics::counter!(RETRY_BUDGET_EXHAUSTED, "endpoint" => endpoint.name())
                    .increment(1);
                tracing::debug!(
                    endpoint = endpoint.name(),
                    attempt,
                    "retry budget spent; not retrying"
                );
                return Err(error);
            }
            metrics::counter!("devicegraph_upstream_retries_total", "endpoint" => endpoint.name())
                .increment(1);
            tracing::debug!(
                endpoint = endpoint.name(),
                attempt,
                error = %error,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "upstream attempt failed; retrying"
            );
            sleep(wait).await;
        }
    }

    /// One HTTP exchange on its own task, which holds `permit` until ThingSpace
    /// answers or `abandon_after` past `deadline` (see the module docs); this returns
    /// at `deadline` at the latest.
    async fn attempt(
        &self,
        endpoint: Endpoint,
        spec: &RequestSpec,
        auth: &Authorization<'_>,
        deadline: Instant,
        permit: GatePermit,
    ) -> Attempt {
        let hard_deadline = later(deadline, self.abandon_after);
        let remaining = hard_deadline.saturating_duration_since(Instant::now());
        count_upstream_call();
        let mut request = self
            .http
            .request(spec.method.clone(), spec.url.clone())
            .timeout(remaining)
            .header(ACCEPT, JSON)
            .header(
                USER_AGENT,
                concat!("devicegraph/", env!("CARGO_PKG_VERSION")),
            );
        // An id that is not a valid header value is dropped, not fatal: it is a
        // correlation aid only.
        if let Some(id) = current_request_id()
            && let Ok(value) = HeaderValue::from_str(&id)
        {
            request = request.header("x-request-id", value);
        }
        request = match auth {
            Authorization::Basic { user, password } => {
                request.basic_auth(user, Some(password.expose_secret()))
            }
            Authorization::Bearer(bearer) => match bearer_header(bearer, endpoint) {
                Ok(value) => request.header(AUTHORIZATION, value),
                Err(error) => return Attempt::Fatal(error),
            },
            Authorization::Data { bearer, session } => {
                match (
                    bearer_header(bearer, endpoint),
                    secret_header(session, endpoint),
                ) {
                    (Ok(b), Ok(s)) => request.header(AUTHORIZATION, b).header("VZ-M2M-Token", s),
                    (Err(error), _) | (_, Err(error)) => return Attempt::Fatal(error),
                }
            }
        };
        if let Some((content_type, body)) = &spec.body {
            request = request
                .header(CONTENT_TYPE, *content_type)
                .body(body.clone());
        }

        let exchange = async move {
            let mut response = request.send().await.map_err(ReadError::Http)?;
            let status = response.status();
            let retry_after = if status == StatusCode::TOO_MANY_REQUESTS {
                response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()))
            } else {
                None
            };
            // The loop below enforces the cap on the decoded bytes (a compressed body's
            // length says nothing of its decoded size); this only spares reading a body
            // announced too large.
            if response
                .content_length()
                .is_some_and(|len| len > MAX_BODY_BYTES as u64)
            {
                return Err(ReadError::TooLarge);
            }
            let mut body = BytesMut::new();
            while let Some(chunk) = response.chunk().await.map_err(ReadError::Http)? {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(ReadError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, retry_after, body.freeze()))
        };
        let (tx, rx) = oneshot::channel();
        let progress = Arc::new(AtomicU8::new(RUNNING));
        let task_progress = Arc::clone(&progress);
        tokio::spawn(
            async move {
                let result = timeout_at(hard_deadline, exchange).await;
                drop(permit);
                if task_progress.swap(DONE, Ordering::AcqRel) == ABANDONED {
                    metrics::gauge!(ABANDONED_IN_FLIGHT).decrement(1.0);
                }
                // The caller may have stopped waiting: nobody to tell.
                let _ = tx.send(result);
            }
            .in_current_span(),
        );
        let result = match timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            // The task ended without a word: only a runtime shutting down does that.
            Ok(Err(_)) => return Attempt::Transport("the request was cancelled"),
            Err(_) => {
                if progress
                    .compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    metrics::gauge!(ABANDONED_IN_FLIGHT).increment(1.0);
                }
                return Attempt::TimedOut;
            }
        };
        match result {
            Err(_) => Attempt::TimedOut,
            Ok(Ok((status, retry_after, body))) => Attempt::Answered {
                status,
                retry_after,
                body,
            },
            Ok(Err(ReadError::TooLarge)) => Attempt::Fatal(UpstreamError::Unavailable {
                endpoint,
                reason: format!("response body larger than {MAX_BODY_BYTES} bytes"),
                status: None,
            }),
            Ok(Err(ReadError::Http(e))) => classify(&e, endpoint),
        }
    }
}

/// An attempt's task: running, done, or given up on by its caller while running.
const RUNNING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED: u8 = 2;

enum ReadError {
    Http(reqwest::Error),
    TooLarge,
}

/// Sorts a reqwest failure by what it means for a retry. Never keeps the error text:
/// it may name URLs and is not needed to act.
fn classify(e: &reqwest::Error, endpoint: Endpoint) -> Attempt {
    if e.is_timeout() {
        Attempt::TimedOut
    } else if e.is_connect() {
        Attempt::Transport("connect failed")
    } else if e.is_builder() {
        Attempt::Fatal(UpstreamError::InvalidRequest {
            endpoint,
            reason: "the HTTP request could not be built".into(),
        })
    } else if e.is_decode() {
        Attempt::Transport("response body could not be decompressed")
    } else {
        Attempt::Transport("connection closed before a complete response")
    }
}

fn count_request(endpoint: Endpoint, status: String) {
    metrics::counter!(
        "devicegraph_upstream_requests_total",
        "endpoint" => endpoint.name(),
        "status" => status
    )
    .increment(1);
}

fn secret_header(secret: &SecretString, endpoint: Endpoint) -> Result<HeaderValue, UpstreamError> {
    let mut value =
        HeaderValue::from_str(secret.expose_secret()).map_err(|_| invalid_token_error(endpoint))?;
    value.set_sensitive(true);
    Ok(value)
}

fn bearer_header(secret: &SecretString, endpoint: Endpoint) -> Result<HeaderValue, UpstreamError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", secret.expose_secret()))
        .map_err(|_| invalid_token_error(endpoint))?;
    value.set_sensitive(true);
    Ok(value)
}

fn invalid_token_error(endpoint: Endpoint) -> UpstreamError {
    UpstreamError::Auth {
        endpoint,
        reason: "the upstream issued a token that is not a valid HTTP header value".into(),
    }
}

/// The error for a non-success answer of a data endpoint: the documented error body
/// when there is one, else `HTTP_<status>`.
pub(crate) fn status_error(endpoint: Endpoint, response: &RawResponse) -> UpstreamError {
    let status = response.status.as_u16();
    match parse_error_body(&response.body) {
        Some(body) => UpstreamError::Api {
            endpoint,
            status,
            error_code: body.error_code,
            error_message: body
                .error_message
                .unwrap_or_default()
                .chars()
                .take(MAX_ERROR_MESSAGE_CHARS)
                .collect(),
        },
        None => UpstreamError::Api {
            endpoint,
            status,
            error_code: format!("HTTP_{status}"),
            error_message: String::new(),
        },
    }
}

/// A decode failure with a bounded excerpt, redacted for the token endpoints (their
/// bodies are the secrets).
pub(crate) fn decode_error(endpoint: Endpoint, error: DecodeError, body: &[u8]) -> UpstreamError {
    let excerpt = match endpoint {
        Endpoint::OAuthToken | Endpoint::SessionLogin => "[redacted]".to_owned(),
        // Every character is at most 4 bytes: decoding more than that many bytes would
        // only copy a large invalid body to throw it away.
        _ => String::from_utf8_lossy(body.get(..MAX_EXCERPT_CHARS * 4).unwrap_or(body))
            .chars()
            .take(MAX_EXCERPT_CHARS)
            .collect(),
    };
    UpstreamError::Decode {
        endpoint,
        field: error.field,
        message: error.message,
        excerpt,
    }
}

/// The span of one logical upstream call; `status`, `attempt` and `latency_ms` are
/// recorded as they become known.
pub(crate) fn call_span(endpoint: Endpoint, account: Option<&str>) -> Span {
    let span = tracing::info_span!(
        "upstream_call",
        endpoint = endpoint.name(),
        account = tracing::field::Empty,
        status = tracing::field::Empty,
        attempt = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    if let Some(account) = account {
        span.record("account", account);
    }
    span
}

pub(crate) fn record_latency(span: &Span, started: Instant) {
    span.record(
        "latency_ms",
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    );
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
