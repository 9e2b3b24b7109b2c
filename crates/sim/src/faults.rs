//! Fault injection: the settings (`/_sim/faults`, CLI flags) and the per-request
//! decision.
//!
//! Rate faults (latency, 503, 429, drop, stall, broken pagination) hit the data
//! endpoints, or exactly the endpoints named in `endpoints`; the token and login
//! endpoints only when named, so a test of retries is not silently a test of logins.
//! Each rate is an independent draw, checked in the order drop, stall, 503, 429.

use std::time::Duration;

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::endpoint::Endpoint;

/// The current fault settings (`GET /_sim/faults`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// Added to every affected request before anything else.
    pub latency_ms: u64,
    /// Uniform extra latency in `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Share of requests answered HTTP 503.
    pub error_rate: f64,
    /// Share of requests answered HTTP 429 with `Retry-After: retry_after_secs`.
    pub rate_limit_rate: f64,
    pub retry_after_secs: u64,
    /// Share of requests whose connection is closed without any answer.
    pub drop_rate: f64,
    /// Share of requests never answered (until the client gives up or the
    /// simulator shuts down).
    pub stall_rate: f64,
    /// Paged endpoints repeat their cursor / claim more data with nothing new.
    pub broken_pagination: bool,
    /// Endpoints the faults apply to; empty means the six data endpoints.
    pub endpoints: Vec<Endpoint>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            jitter_ms: 0,
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: 1,
            drop_rate: 0.0,
            stall_rate: 0.0,
            broken_pagination: false,
            endpoints: Vec::new(),
        }
    }
}

/// A change to the faults (`POST /_sim/faults`): omitted fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultsPatch {
    /// Reset every fault to its default first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clear: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_rate: Option<f64>,
    /// One shot: invalidate every OAuth and session token issued so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_tokens: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_pagination: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<Endpoint>>,
}

/// A fault setting that cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultsError {
    #[error("{field} must be between 0.0 and 1.0, got {value}")]
    Rate { field: &'static str, value: f64 },
}

impl Faults {
    /// Applies `patch` (all or nothing). `expireTokens` is not a setting and is
    /// handled by the caller.
    pub fn apply(&mut self, patch: &FaultsPatch) -> Result<(), FaultsError> {
        let rates = [
            ("errorRate", patch.error_rate),
            ("rateLimitRate", patch.rate_limit_rate),
            ("dropRate", patch.drop_rate),
            ("stallRate", patch.stall_rate),
        ];
        for (field, value) in rates {
            if let Some(value) = value.filter(|v| !(0.0..=1.0).contains(v)) {
                return Err(FaultsError::Rate { field, value });
            }
        }
        if patch.clear == Some(true) {
            *self = Self::default();
        }
        let FaultsPatch {
            clear: _,
            latency_ms,
            jitter_ms,
            error_rate,
            rate_limit_rate,
            retry_after_secs,
            drop_rate,
            stall_rate,
            expire_tokens: _,
            broken_pagination,
            endpoints,
        } = patch.clone();
        set(&mut self.latency_ms, latency_ms);
        set(&mut self.jitter_ms, jitter_ms);
        set(&mut self.error_rate, error_rate);
        set(&mut self.rate_limit_rate, rate_limit_rate);
        set(&mut self.retry_after_secs, retry_after_secs);
        set(&mut self.drop_rate, drop_rate);
        set(&mut self.stall_rate, stall_rate);
        set(&mut self.broken_pagination, broken_pagination);
        set(&mut self.endpoints, endpoints);
        Ok(())
    }

    /// Whether the rate faults apply to `endpoint`.
    pub fn applies_to(&self, endpoint: Endpoint) -> bool {
        if self.endpoints.is_empty() {
            endpoint.is_data()
        } else {
            self.endpoints.contains(&endpoint)
        }
    }

    /// Latency to add to one request of `endpoint`.
    pub(crate) fn latency(&self, endpoint: Endpoint) -> Duration {
        if !self.applies_to(endpoint) || (self.latency_ms == 0 && self.jitter_ms == 0) {
            return Duration::ZERO;
        }
        let jitter = if self.jitter_ms > 0 {
            rand::rng().random_range(0..=self.jitter_ms)
        } else {
            0
        };
        Duration::from_millis(self.latency_ms.saturating_add(jitter))
    }

    /// The failure to inject into one request of `endpoint`, if any.
    pub(crate) fn decide(&self, endpoint: Endpoint) -> Option<Injected> {
        if !self.applies_to(endpoint) {
            return None;
        }
        let mut rng = rand::rng();
        let mut hit = |rate: f64| rate > 0.0 && rng.random::<f64>() < rate;
        if hit(self.drop_rate) {
            Some(Injected::Drop)
        } else if hit(self.stall_rate) {
            Some(Injected::Stall)
        } else if hit(self.error_rate) {
            Some(Injected::ServiceUnavailable)
        } else if hit(self.rate_limit_rate) {
            Some(Injected::RateLimited {
                retry_after_secs: self.retry_after_secs,
            })
        } else {
            None
        }
    }

    /// Whether `endpoint`'s pages should be broken.
    pub(crate) fn breaks_pagination(&self, endpoint: Endpoint) -> bool {
        self.broken_pagination && self.applies_to(endpoint)
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// An injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Injected {
    Drop,
    Stall,
    ServiceUnavailable,
    RateLimited { retry_after_secs: u64 },
}

impl Injected {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Stall => "stall",
            Self::ServiceUnavailable => "error",
            Self::RateLimited { .. } => "rate_limit",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn patch_applies_only_given_fields_and_validates() {
        let mut f = Faults::default();
        f.apply(&FaultsPatch {
            latency_ms: Some(5),
            ..Default::default()
        })
        .unwrap();
        f.apply(&FaultsPatch {
            error_rate: Some(0.5),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((f.latency_ms, f.error_rate), (5, 0.5));
        let err = f.apply(&FaultsPatch {
            drop_rate: Some(1.5),
            latency_ms: Some(9),
            ..Default::default()
        });
        assert!(matches!(
            err,
            Err(FaultsError::Rate {
                field: "dropRate",
                ..
            })
        ));
        assert_eq!(f.latency_ms, 5, "a refused patch changes nothing");
        f.apply(&FaultsPatch {
            clear: Some(true),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(f, Faults::default());
    }

    #[test]
    fn endpoints_filter_defaults_to_data_endpoints() {
        let mut f = Faults {
            error_rate: 1.0,
            ..Default::default()
        };
        assert_eq!(
            f.decide(Endpoint::DeviceDetails),
            Some(Injected::ServiceUnavailable)
        );
        assert_eq!(f.decide(Endpoint::OauthToken), None);
        f.endpoints = vec![Endpoint::SessionLogin];
        assert_eq!(f.decide(Endpoint::DeviceDetails), None);
        assert_eq!(
            f.decide(Endpoint::SessionLogin),
            Some(Injected::ServiceUnavailable)
        );
    }

    #[test]
    fn patch_json_uses_the_documented_names() {
        let p: FaultsPatch = serde_json::from_str(
            r#"{"latencyMs":1,"jitterMs":2,"errorRate":0.1,"rateLimitRate":0.2,"retryAfterSecs":3,
                "dropRate":0.3,"stallRate":0.4,"expireTokens":true,"brokenPagination":true,
                "endpoints":["device_details","oauth_token"],"clear":false}"#,
        )
        .unwrap();
        assert_eq!(
            p.endpoints,
            Some(vec![Endpoint::DeviceDetails, Endpoint::OauthToken])
        );
        assert!(serde_json::from_str::<FaultsPatch>(r#"{"latency":1}"#).is_err());
    }
}
