//! Per-client budgets of upstream calls: `limits.upstream_calls_per_minute` for each
//! API key (or client address when auth is off).
//!
//! The inbound rate limit counts requests, but one cheap request can cost hundreds of
//! ThingSpace calls, and the upstream budget (`upstream.rate_per_second`) is shared by
//! every tenant. Each operation's estimate (see `devicegraph_graphql::Estimate`) is
//! charged here before it runs, so one tenant can spend at most its share per minute
//! and the others keep theirs. A GCRA bucket per client (governor): the whole minute's
//! allowance may be spent at once, then it refills steadily. Per replica: with N
//! replicas a client may spend up to N times the figure (it is a fairness bound; the
//! shared upstream budget itself is enforced across replicas by the store's pacer).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use devicegraph_graphql::UpstreamBudget;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::rate_limit::ClientKey;

/// Charges between two sweeps of idle clients' buckets.
const SWEEP_EVERY: u64 = 4096;

/// Every client's budget (cheap to clone).
#[derive(Clone)]
pub(crate) struct UpstreamBudgets {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    limiter: DefaultKeyedRateLimiter<ClientKey>,
    clock: DefaultClock,
    charges: AtomicU64,
}

impl UpstreamBudgets {
    /// `per_minute = 0` turns budgets off.
    pub(crate) fn new(per_minute: u64) -> Self {
        let inner = NonZeroU32::new(u32::try_from(per_minute).unwrap_or(u32::MAX)).map(|n| {
            // `per_minute` calls a minute, all of them available at once.
            let quota = Quota::with_period(Duration::from_secs(60) / n.get())
                .unwrap_or_else(|| Quota::per_second(n))
                .allow_burst(n);
            Arc::new(Inner {
                limiter: RateLimiter::keyed(quota),
                clock: DefaultClock::default(),
                charges: AtomicU64::new(0),
            })
        });
        Self { inner }
    }

    /// The budget of `client`, or `None` when budgets are off.
    pub(crate) fn for_client(&self, client: ClientKey) -> Option<Arc<dyn UpstreamBudget>> {
        let inner = Arc::clone(self.inner.as_ref()?);
        Some(Arc::new(ClientBudget { inner, client }))
    }
}

struct ClientBudget {
    inner: Arc<Inner>,
    client: ClientKey,
}

impl UpstreamBudget for ClientBudget {
    fn charge(&self, calls: u64) -> Result<(), Duration> {
        let Some(n) = NonZeroU32::new(u32::try_from(calls).unwrap_or(u32::MAX)) else {
            return Ok(());
        };
        let inner = &self.inner;
        if inner.charges.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            inner.limiter.retain_recent();
        }
        match inner.limiter.check_key_n(&self.client, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(inner.clock.now())),
            // More than a whole minute's allowance: it will never fit in one go.
            Err(_) => Err(Duration::from_secs(60)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_spends_its_minute_then_waits_and_others_are_untouched() {
        let budgets = UpstreamBudgets::new(100);
        let a = budgets.for_client(ClientKey::new("key:a"));
        let b = budgets.for_client(ClientKey::new("key:b"));
        let (Some(a), Some(b)) = (a, b) else {
            panic!("budgets are on");
        };
        assert_eq!(a.charge(60), Ok(()));
        assert_eq!(a.charge(40), Ok(()));
        let wait = a.charge(10).err().unwrap_or_default();
        // 10 calls refill in about 6 s at 100 a minute.
        assert!(
            wait > Duration::from_secs(4) && wait <= Duration::from_secs(7),
            "{wait:?}"
        );
        assert_eq!(b.charge(100), Ok(()));
        assert_eq!(a.charge(0), Ok(()));
        assert!(a.charge(101).is_err());
    }

    #[test]
    fn zero_turns_budgets_off() {
        assert!(
            UpstreamBudgets::new(0)
                .for_client(ClientKey::new("x"))
                .is_none()
        );
    }
}
