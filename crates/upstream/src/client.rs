//! The ThingSpace client: one pooled HTTP client, both tokens, retries inside one
//! deadline per call, and the plumbing every data read goes through (`Client::call`,
//! `get`, `post`, `json_body`, `decode`). The reads themselves (one request,
//! one page, a stream, a batch) are `Client` methods defined beside their endpoint in
//! `endpoints/`, so this module depends on no endpoint and they depend on it.
//!
//! INTERFACE FROZEN: other crates code against these signatures.
//!
//! Each logical call (one request, or one page of a stream) gets one deadline,
//! `ClientConfig::timeout`, covering token renewal, every attempt and every backoff.
//! The pieces live beside this file: `transport` (one request and its retries),
//! `auth` (credentials, tokens, single-flight renewal, lockout protection), `paging`
//! (the cursor walk and its checks), `retry` (backoff and `Retry-After`), `decode`
//! (the lenient JSON toolkit).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;

use crate::auth::{Auth, gateway_fault, rejection};
use crate::breaker::{BreakerConfig, Breakers, CircuitState};
use crate::decode::DecodeError;
use crate::error::{Endpoint, UpstreamError};
use crate::gate::{OpenGate, RequestGate};
use crate::ids::AccountName;
use crate::retry::{Backoff, later};
use crate::retry_budget::{RetryBudget, RetryBudgetConfig};
use crate::transport::{
    Authorization, JSON, RawResponse, RequestSpec, Resilience, Transport, call_span, decode_error,
    record_latency, status_error,
};

pub use crate::auth::Credentials;

/// How the client talks to the upstream.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// e.g. `https://thingspace.verizon.com/api` or `http://127.0.0.1:9090/api`;
    /// every path is relative to it.
    pub base_url: Url,
    pub credentials: Credentials,
    /// Deadline for one logical call, retries and backoff included.
    pub timeout: Duration,
    /// Attempts per request on connect errors, 5xx and 429 (1 = no retry).
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, with full jitter, capped at `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Renew the OAuth token this long before `expires_in` runs out.
    pub token_refresh_margin: Duration,
    /// After a failed login, wait this long before the one allowed second try.
    pub login_backoff: Duration,
    /// One circuit breaker per endpoint (`breaker`).
    pub breaker: BreakerConfig,
    /// Retries across all callers, as a share of first attempts (`retry_budget`).
    pub retry_budget: RetryBudgetConfig,
    /// How long past a call's deadline its attempt may keep its concurrency slot,
    /// waiting for ThingSpace's answer, before the connection is dropped.
    pub abandon_after: Duration,
}

impl ClientConfig {
    /// Default deadline of one logical call.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default attempts per request.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
    /// Default time past a call's deadline an abandoned attempt keeps its slot.
    pub const DEFAULT_ABANDON_AFTER: Duration = Duration::from_secs(30);

    /// Defaults: 10 s deadline, 4 attempts, 100 ms..2 s backoff, 60 s refresh margin,
    /// 1 s login backoff, the breaker's and retry budget's defaults, 30 s to abandon.
    pub fn new(base_url: Url, credentials: Credentials) -> Self {
        Self {
            base_url,
            credentials,
            timeout: Self::DEFAULT_TIMEOUT,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            token_refresh_margin: Duration::from_secs(60),
            login_backoff: Duration::from_secs(1),
            breaker: BreakerConfig::default(),
            retry_budget: RetryBudgetConfig::default(),
            abandon_after: Self::DEFAULT_ABANDON_AFTER,
        }
    }
}

/// A cheap-to-clone handle; all clones share the connection pool and the tokens.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    /// Owns the pooled HTTP client and the `RequestGate` every request passes.
    transport: Transport,
    auth: Auth,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.config.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self, UpstreamError> {
        Self::with_gate(config, Arc::new(OpenGate))
    }

    /// A client whose every HTTP request first passes `gate`.
    pub fn with_gate(
        config: ClientConfig,
        gate: Arc<dyn RequestGate>,
    ) -> Result<Self, UpstreamError> {
        let transport = Transport::new(
            config.base_url.clone(),
            gate,
            Resilience {
                max_attempts: config.max_attempts,
                backoff: Backoff {
                    base: config.backoff_base,
                    max: config.backoff_max,
                },
                breakers: Breakers::new(config.breaker),
                retry_budget: RetryBudget::new(config.retry_budget),
                abandon_after: config.abandon_after,
            },
        )?;
        let auth = Auth::new(
            config.credentials.clone(),
            config.token_refresh_margin,
            config.login_backoff,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                transport,
                auth,
            }),
        })
    }

    pub fn base_url(&self) -> &Url {
        &self.inner.config.base_url
    }

    /// Every endpoint's circuit breaker state, now (for readiness detail).
    pub fn circuits(&self) -> Vec<(Endpoint, CircuitState)> {
        self.inner.transport.circuits()
    }

    /// Obtains (or confirms cached) both tokens; used by readiness checks.
    pub async fn ensure_authenticated(&self) -> Result<(), UpstreamError> {
        let deadline = later(Instant::now(), self.inner.config.timeout);
        let result = self
            .inner
            .auth
            .tokens(&self.inner.transport, Endpoint::SessionLogin, deadline)
            .await
            .map(drop);
        if let Err(e) = &result {
            count_error(Endpoint::SessionLogin, e);
        }
        result
    }

    /// `base_url` with `segments` appended, each percent-encoded as one path segment.
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        self.inner.transport.url(segments)
    }

    /// One logical data call inside its span: tokens, the request with its retries,
    /// one renewal and retry if the tokens were refused. Returns a 2xx answer.
    /// One `GET` of `segments` (relative to the base URL) for `account`, decoded by
    /// `parse`.
    pub(crate) async fn get_json<T>(
        &self,
        endpoint: Endpoint,
        account: &AccountName,
        segments: &[&str],
        parse: fn(&[u8]) -> Result<T, crate::decode::DecodeError>,
    ) -> Result<T, UpstreamError> {
        let response = self
            .call(endpoint, Some(account), get(self.url(segments)))
            .await?;
        decode(endpoint, &response, parse)
    }

    pub(crate) async fn call(
        &self,
        endpoint: Endpoint,
        account: Option<&AccountName>,
        spec: RequestSpec,
    ) -> Result<RawResponse, UpstreamError> {
        let span = call_span(endpoint, account.map(AccountName::as_str));
        let started = Instant::now();
        let result = self
            .call_with_renewal(endpoint, &spec)
            .instrument(span.clone())
            .await;
        record_latency(&span, started);
        if let Err(e) = &result {
            count_error(endpoint, e);
            span.in_scope(|| tracing::debug!(kind = e.kind(), "upstream call failed"));
        }
        result
    }

    async fn call_with_renewal(
        &self,
        endpoint: Endpoint,
        spec: &RequestSpec,
    ) -> Result<RawResponse, UpstreamError> {
        let inner = &self.inner;
        let deadline = later(Instant::now(), inner.config.timeout);
        let mut renewed = false;
        loop {
            let tokens = inner
                .auth
                .tokens(&inner.transport, endpoint, deadline)
                .await?;
            let auth = Authorization::Data {
                bearer: &tokens.bearer,
                session: &tokens.session,
            };
            let response = inner.transport.send(endpoint, spec, auth, deadline).await?;
            let Some(refused) = rejection(response.status, &response.body) else {
                return if response.status.is_success() {
                    Ok(response)
                } else {
                    Err(status_error(endpoint, &response))
                };
            };
            if renewed {
                let code = match (
                    gateway_fault(&response.body),
                    status_error(endpoint, &response),
                ) {
                    (Some(fault), _) => format!("gateway fault {fault}"),
                    (None, UpstreamError::Api { error_code, .. }) => error_code,
                    (None, _) => String::new(),
                };
                return Err(UpstreamError::Auth {
                    endpoint,
                    reason: format!(
                        "tokens refused again after renewal (HTTP {}, {code})",
                        response.status.as_u16()
                    ),
                });
            }
            renewed = true;
            inner
                .auth
                .rejected(refused, &tokens, endpoint, deadline)
                .await?;
        }
    }
}

/// A GET of `url`.
pub(crate) fn get(url: Url) -> RequestSpec {
    RequestSpec {
        method: Method::GET,
        url,
        body: None,
    }
}

/// A POST of the JSON `body` to `url`.
pub(crate) fn post(url: Url, body: Bytes) -> RequestSpec {
    RequestSpec {
        method: Method::POST,
        url,
        body: Some((JSON, body)),
    }
}

/// `value` encoded as a request body.
pub(crate) fn json_body(
    endpoint: Endpoint,
    value: &serde_json::Value,
) -> Result<Bytes, UpstreamError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|_| UpstreamError::InvalidRequest {
            endpoint,
            reason: "could not encode the request body".into(),
        })
}

/// The answer's body through `parse`; a failure becomes [`UpstreamError::Decode`]
/// with a bounded excerpt of the body (redacted for token endpoints).
pub(crate) fn decode<T>(
    endpoint: Endpoint,
    response: &RawResponse,
    parse: impl FnOnce(&[u8]) -> Result<T, DecodeError>,
) -> Result<T, UpstreamError> {
    parse(&response.body).map_err(|e| decode_error(endpoint, e, &response.body))
}

fn count_error(endpoint: Endpoint, error: &UpstreamError) {
    metrics::counter!(
        "devicegraph_upstream_errors_total",
        "endpoint" => endpoint.name(),
        "kind" => error.kind()
    )
    .increment(1);
}
