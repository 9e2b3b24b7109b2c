//! The inbound per-client rate limit (layer 12 of the stack in `router.rs`): a tower
//! layer over a keyed governor limiter.
//!
//! Each request counts against the [`ClientKey`] found in its extensions; the identity
//! layer puts the API key's name there when auth is on and the client address otherwise
//! (a request without one counts against a shared `anonymous` bucket, so forgetting the
//! key fails safe rather than unlimited). The per-client upstream budgets
//! (`upstream_budget`) count against the same key. Allowed responses get the IETF draft
//! headers `RateLimit-Policy` and `RateLimit`; a refused request becomes the error
//! [`RateLimited`] rather than a response, because how a refusal looks (problem+json or
//! a GraphQL error body) is the rescue point's business: `problem::handle_error`
//! downcasts the error and calls [`RateLimited::apply_headers`] for `Retry-After` and
//! the rest.
//!
//! Memory stays bounded: the limiter keeps one small state per key it has seen, and
//! [`InboundLimiter::spawn_housekeeping`] (started by `startup`) periodically drops the
//! keys whose bucket is full again (`retain_recent`), which is indistinguishable from
//! never having seen them.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http::{HeaderMap, HeaderName, HeaderValue};
use tower::{BoxError, Layer, Service};

/// Who a request counts against: an API key name or a client address, set by the
/// identity layer. The upstream budgets (`upstream_budget`) are kept per key too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey(Arc<str>);

impl ClientKey {
    pub(crate) fn new(key: impl Into<Arc<str>>) -> Self {
        Self(key.into())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The bucket of requests that carry no key.
    fn anonymous() -> Self {
        Self::new("anonymous")
    }
}

/// `[limits]` as the limiter sees them. Zeroes are raised to 1: a zero rate would
/// refuse everything forever, which no configuration means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InboundConfig {
    /// Steady requests per second per client.
    pub(crate) per_second: u32,
    /// Requests a client may send at once.
    pub(crate) burst: u32,
}

/// Where a client stands after an allowed request (values for the `RateLimit` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimitStatus {
    pub(crate) per_second: u32,
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    /// Whole seconds until the bucket is full again.
    pub(crate) reset_secs: u64,
}

impl RateLimitStatus {
    /// Sets `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
    pub(crate) fn apply_headers(&self, headers: &mut HeaderMap) {
        let policy = format!("{};w=1;burst={}", self.per_second, self.limit);
        let state = format!(
            "limit={}, remaining={}, reset={}",
            self.limit, self.remaining, self.reset_secs
        );
        for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
    }
}

/// A request refused by the inbound limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client rate limit exceeded; retry after {}s", self.retry_after_secs())]
pub(crate) struct RateLimited {
    /// How long until one more request would be allowed.
    pub(crate) retry_after: Duration,
    pub(crate) status: RateLimitStatus,
}

impl RateLimited {
    /// `Retry-After` in whole seconds, rounded up (never 0: "retry now" would be a lie).
    pub(crate) fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.retry_after).max(1)
    }

    /// Sets `Retry-After`, `RateLimit-Policy` and `RateLimit` on a 429 response.
    pub(crate) fn apply_headers(&self, headers: &mut HeaderMap) {
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_secs()),
        );
        self.status.apply_headers(headers);
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

type Keyed<C> =
    RateLimiter<ClientKey, DefaultKeyedStateStore<ClientKey>, C, StateInformationMiddleware>;

/// The shared per-client limiter. Cheap to clone; clones share the buckets.
pub(crate) struct InboundLimiter<C: Clock = DefaultClock> {
    limiter: Arc<Keyed<C>>,
    config: InboundConfig,
}

impl<C: Clock> Clone for InboundLimiter<C> {
    fn clone(&self) -> Self {
        Self {
            limiter: Arc::clone(&self.limiter),
            config: self.config,
        }
    }
}

impl<C: Clock> std::fmt::Debug for InboundLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundLimiter")
            .field("config", &self.config)
            .field("tracked_clients", &self.limiter.len())
            .finish()
    }
}

impl InboundLimiter<DefaultClock> {
    pub(crate) fn new(config: InboundConfig) -> Self {
        Self::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock> InboundLimiter<C> {
    /// A limiter reading time from `clock` (tests pass governor's `FakeRelativeClock`).
    pub(crate) fn with_clock(config: InboundConfig, clock: C) -> Self {
        let per_second = NonZeroU32::new(config.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(per_second).allow_burst(burst);
        let limiter: Keyed<C> = RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock);
        let config = InboundConfig {
            per_second: per_second.get(),
            burst: burst.get(),
        };
        Self {
            limiter: Arc::new(limiter),
            config,
        }
    }

    /// The effective limits, zeroes raised (tests check them; the server reads `[limits]`).
    #[cfg(test)]
    pub(crate) fn config(&self) -> InboundConfig {
        self.config
    }

    /// Counts one request against `key`.
    pub(crate) fn check(&self, key: &ClientKey) -> Result<RateLimitStatus, RateLimited> {
        match self.limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity().min(self.config.burst);
                // Refilling one request takes 1/rate seconds.
                let missing = u64::from(self.config.burst - remaining);
                let reset_nanos = missing * 1_000_000_000 / u64::from(self.config.per_second);
                Ok(self.status(remaining, ceil_secs(Duration::from_nanos(reset_nanos))))
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(self.limiter.clock().now());
                ::metrics::counter!("devicegraph_rate_limit_rejections_total", "direction" => "inbound")
                    .increment(1);
                let status = self.status(0, ceil_secs(retry_after).max(1));
                Err(RateLimited {
                    retry_after,
                    status,
                })
            }
        }
    }

    fn status(&self, remaining: u32, reset_secs: u64) -> RateLimitStatus {
        RateLimitStatus {
            per_second: self.config.per_second,
            limit: self.config.burst,
            remaining,
            reset_secs,
        }
    }

    /// Forgets clients whose bucket is full again, and frees the memory. The server
    /// does this through [`InboundLimiter::spawn_housekeeping`]; tests call it directly.
    #[cfg(test)]
    pub(crate) fn retain_recent(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// How many clients the limiter currently holds state for.
    pub(crate) fn tracked_clients(&self) -> usize {
        self.limiter.len()
    }

    /// The tower layer enforcing this limiter.
    pub(crate) fn layer(&self) -> InboundRateLimitLayer<C> {
        InboundRateLimitLayer {
            limiter: self.clone(),
        }
    }
}

impl<C: Clock + Send + Sync + 'static> InboundLimiter<C>
where
    C::Instant: Send + Sync,
{
    /// Every `every`, forgets clients whose bucket is full again (governor's
    /// `retain_recent`), frees the memory and sets the tracked-clients gauge, until the
    /// last clone of this limiter is dropped. Needs a tokio runtime.
    pub(crate) fn spawn_housekeeping(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Keyed<C>> = Arc::downgrade(&self.limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else { break };
                limiter.retain_recent();
                limiter.shrink_to_fit();
                ::metrics::gauge!("devicegraph_rate_limit_tracked_clients")
                    .set(limiter.len() as f64);
            }
        })
    }
}

/// Tower layer: see the module docs.
pub(crate) struct InboundRateLimitLayer<C: Clock = DefaultClock> {
    limiter: InboundLimiter<C>,
}

impl<C: Clock> Clone for InboundRateLimitLayer<C> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
        }
    }
}

impl<S, C: Clock> Layer<S> for InboundRateLimitLayer<C> {
    type Service = InboundRateLimit<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        InboundRateLimit {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

/// The service [`InboundRateLimitLayer`] builds.
pub(crate) struct InboundRateLimit<S, C: Clock = DefaultClock> {
    inner: S,
    limiter: InboundLimiter<C>,
}

impl<S: Clone, C: Clock> Clone for InboundRateLimit<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
        }
    }
}

impl<S, C, B, RB> Service<http::Request<B>> for InboundRateLimit<S, C>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    RB: Send + 'static,
    C: Clock,
{
    type Response = http::Response<RB>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let key = request
            .extensions()
            .get::<ClientKey>()
            .cloned()
            .unwrap_or_else(ClientKey::anonymous);
        match self.limiter.check(&key) {
            Err(refused) => {
                tracing::debug!(client = %key.as_str(), retry_after_secs = refused.retry_after_secs(), "inbound rate limit");
                Box::pin(std::future::ready(Err(BoxError::from(refused))))
            }
            Ok(status) => {
                let response = self.inner.call(request);
                Box::pin(async move {
                    let mut response = response.await.map_err(Into::into)?;
                    status.apply_headers(response.headers_mut());
                    Ok(response)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::convert::Infallible;

    use governor::clock::FakeRelativeClock;
    use tower::{ServiceExt, service_fn};

    use super::*;

    fn limiter(
        per_second: u32,
        burst: u32,
    ) -> (InboundLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (
            InboundLimiter::with_clock(InboundConfig { per_second, burst }, clock.clone()),
            clock,
        )
    }

    #[test]
    fn burst_then_refusal_then_refill() {
        let (limiter, clock) = limiter(2, 3);
        let key = ClientKey::new("a");
        let remaining: Vec<u32> = (0..3)
            .map(|_| limiter.check(&key).unwrap().remaining)
            .collect();
        assert_eq!(remaining, vec![2, 1, 0]);
        let refused = limiter.check(&key).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_millis(500));
        assert_eq!(refused.retry_after_secs(), 1, "rounded up");
        clock.advance(Duration::from_millis(500));
        assert!(limiter.check(&key).is_ok());
        assert!(limiter.check(&key).is_err());
    }

    #[test]
    fn clients_do_not_share_buckets() {
        let (limiter, _) = limiter(1, 1);
        assert!(limiter.check(&ClientKey::new("a")).is_ok());
        assert!(limiter.check(&ClientKey::new("a")).is_err());
        assert!(limiter.check(&ClientKey::new("b")).is_ok());
    }

    #[test]
    fn zero_config_is_raised_to_one() {
        let (limiter, _) = limiter(0, 0);
        assert_eq!(
            limiter.config(),
            InboundConfig {
                per_second: 1,
                burst: 1
            }
        );
        assert!(limiter.check(&ClientKey::new("a")).is_ok());
    }

    #[test]
    fn headers_follow_the_draft() {
        let (limiter, _) = limiter(10, 10);
        let key = ClientKey::new("a");
        let status = limiter.check(&key).unwrap();
        let mut headers = HeaderMap::new();
        status.apply_headers(&mut headers);
        assert_eq!(headers["ratelimit-policy"], "10;w=1;burst=10");
        assert_eq!(headers["ratelimit"], "limit=10, remaining=9, reset=1");
        for _ in 0..9 {
            limiter.check(&key).unwrap();
        }
        let refused = limiter.check(&key).unwrap_err();
        let mut headers = HeaderMap::new();
        refused.apply_headers(&mut headers);
        assert_eq!(headers["retry-after"], "1");
        assert_eq!(headers["ratelimit"], "limit=10, remaining=0, reset=1");
    }

    #[test]
    fn retain_recent_forgets_idle_clients() {
        let (limiter, clock) = limiter(100, 100);
        for i in 0..1000 {
            limiter
                .check(&ClientKey::new(format!("client-{i}")))
                .unwrap();
        }
        assert_eq!(limiter.tracked_clients(), 1000);
        clock.advance(Duration::from_secs(2));
        limiter.retain_recent();
        assert_eq!(limiter.tracked_clients(), 0);
    }

    #[tokio::test]
    async fn layer_adds_headers_and_refuses_with_a_typed_error() {
        let (limiter, _) = limiter(1, 2);
        let inner = service_fn(|_req: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new("ok"))
        });
        let service = limiter.layer().layer(inner);
        let request = || {
            let mut r = http::Request::new(());
            r.extensions_mut().insert(ClientKey::new("k"));
            r
        };
        let ok = service.clone().oneshot(request()).await.unwrap();
        assert_eq!(ok.headers()["ratelimit"], "limit=2, remaining=1, reset=1");
        service.clone().oneshot(request()).await.unwrap();
        let err = service.clone().oneshot(request()).await.unwrap_err();
        let refused = err.downcast_ref::<RateLimited>().unwrap();
        assert_eq!(refused.retry_after_secs(), 1);
        // A request without a key counts against the shared anonymous bucket.
        service
            .clone()
            .oneshot(http::Request::new(()))
            .await
            .unwrap();
    }
}
