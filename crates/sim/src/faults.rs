//! Fault injection: the settings (`/_sim/faults`, CLI flags) and the per-request
//! decision.
//!
//! Rate faults (latency, 503, 429, drop, stall, their mid-body variants, broken
//! pagination) hit the data endpoints, or exactly the endpoints named in `endpoints`;
//! the token and login endpoints only when named, so a test of retries is not
//! silently a test of logins. Each rate is an independent draw, checked in the order
//! drop, stall, drop mid-body, stall mid-body, 503, 429.
//!
//! There is no separate "down" switch: `errorRate: 1.0` is ThingSpace down (every
//! affected request answers 503).

use std::time::{Duration, SystemTime};

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
    /// Share of requests answered HTTP 429 with a `Retry-After` of `retry_after_secs`.
    pub rate_limit_rate: f64,
    pub retry_after_secs: u64,
    /// How the 429's `Retry-After` is written: delay-seconds or an HTTP-date.
    pub retry_after_format: RetryAfterFormat,
    /// Share of requests whose connection is closed without any answer.
    pub drop_rate: f64,
    /// Share of requests never answered (until the client gives up or the
    /// simulator shuts down).
    pub stall_rate: f64,
    /// Share of requests whose status line, headers (with the full
    /// `Content-Length`) and first part of the body are sent, then the connection
    /// is closed.
    pub drop_mid_body_rate: f64,
    /// Share of requests whose status line, headers and first part of the body are
    /// sent, then nothing more (until the client gives up or the simulator shuts
    /// down).
    pub stall_mid_body_rate: f64,
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
            retry_after_format: RetryAfterFormat::Seconds,
            drop_rate: 0.0,
            stall_rate: 0.0,
            drop_mid_body_rate: 0.0,
            stall_mid_body_rate: 0.0,
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
    pub retry_after_format: Option<RetryAfterFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_mid_body_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_mid_body_rate: Option<f64>,
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
            ("dropMidBodyRate", patch.drop_mid_body_rate),
            ("stallMidBodyRate", patch.stall_mid_body_rate),
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
            retry_after_format,
            drop_rate,
            stall_rate,
            drop_mid_body_rate,
            stall_mid_body_rate,
            expire_tokens: _,
            broken_pagination,
            endpoints,
        } = patch.clone();
        set(&mut self.latency_ms, latency_ms);
        set(&mut self.jitter_ms, jitter_ms);
        set(&mut self.error_rate, error_rate);
        set(&mut self.rate_limit_rate, rate_limit_rate);
        set(&mut self.retry_after_secs, retry_after_secs);
        set(&mut self.retry_after_format, retry_after_format);
        set(&mut self.drop_rate, drop_rate);
        set(&mut self.stall_rate, stall_rate);
        set(&mut self.drop_mid_body_rate, drop_mid_body_rate);
        set(&mut self.stall_mid_body_rate, stall_mid_body_rate);
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
        } else if hit(self.drop_mid_body_rate) {
            Some(Injected::DropMidBody)
        } else if hit(self.stall_mid_body_rate) {
            Some(Injected::StallMidBody)
        } else if hit(self.error_rate) {
            Some(Injected::ServiceUnavailable)
        } else if hit(self.rate_limit_rate) {
            Some(Injected::RateLimited(RetryAfter {
                secs: self.retry_after_secs,
                format: self.retry_after_format,
            }))
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

/// How an injected 429 writes its `Retry-After` (RFC 9110 allows both).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryAfterFormat {
    /// `Retry-After: 7`
    #[default]
    Seconds,
    /// `Retry-After: Wed, 02 Dec 2026 16:40:07 GMT`, `retryAfterSecs` from now
    /// (rounded up to the next whole second, the format's resolution, so the wait
    /// it asks for is never shorter than `retryAfterSecs`).
    Date,
}

/// The `Retry-After` of one injected 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryAfter {
    pub(crate) secs: u64,
    pub(crate) format: RetryAfterFormat,
}

impl RetryAfter {
    /// The header value, as of `now`.
    pub(crate) fn header_value(self, now: SystemTime) -> String {
        match self.format {
            RetryAfterFormat::Seconds => self.secs.to_string(),
            RetryAfterFormat::Date => {
                let at = now + Duration::from_secs(self.secs);
                let sub_second = at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                let at = if sub_second > 0 {
                    at + (Duration::from_secs(1) - Duration::from_nanos(u64::from(sub_second)))
                } else {
                    at
                };
                httpdate::fmt_http_date(at)
            }
        }
    }
}

/// An injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Injected {
    Drop,
    Stall,
    DropMidBody,
    StallMidBody,
    ServiceUnavailable,
    RateLimited(RetryAfter),
}

impl Injected {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Stall => "stall",
            Self::DropMidBody => "drop_mid_body",
            Self::StallMidBody => "stall_mid_body",
            Self::ServiceUnavailable => "error",
            Self::RateLimited(_) => "rate_limit",
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
                "dropRate":0.3,"stallRate":0.4,"dropMidBodyRate":0.5,"stallMidBodyRate":0.6,
                "retryAfterFormat":"date","expireTokens":true,"brokenPagination":true,
                "endpoints":["device_details","oauth_token"],"clear":false}"#,
        )
        .unwrap();
        assert_eq!(
            p.endpoints,
            Some(vec![Endpoint::DeviceDetails, Endpoint::OauthToken])
        );
        assert_eq!(p.retry_after_format, Some(RetryAfterFormat::Date));
        assert_eq!(
            (p.drop_mid_body_rate, p.stall_mid_body_rate),
            (Some(0.5), Some(0.6))
        );
        assert!(serde_json::from_str::<FaultsPatch>(r#"{"latency":1}"#).is_err());
        assert!(serde_json::from_str::<FaultsPatch>(r#"{"retryAfterFormat":"minutes"}"#).is_err());
    }

    #[test]
    fn retry_after_as_seconds_or_a_date_never_sooner() {
        let at = |secs, format| RetryAfter { secs, format };
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_575_200_400);
        assert_eq!(at(7, RetryAfterFormat::Seconds).header_value(now), "7");
        let date = at(7, RetryAfterFormat::Date).header_value(now);
        let parsed = httpdate::parse_http_date(&date).unwrap();
        let wait = parsed.duration_since(now).unwrap();
        assert!(
            wait >= Duration::from_secs(7) && wait < Duration::from_secs(8),
            "{date}: {wait:?}"
        );
        assert!(date.ends_with(" GMT"), "{date}");
    }

    #[test]
    fn mid_body_faults_are_drawn_and_validated() {
        let mut f = Faults::default();
        f.apply(&FaultsPatch {
            drop_mid_body_rate: Some(1.0),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            f.decide(Endpoint::DeviceDetails),
            Some(Injected::DropMidBody)
        );
        f.apply(&FaultsPatch {
            drop_mid_body_rate: Some(0.0),
            stall_mid_body_rate: Some(1.0),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            f.decide(Endpoint::CheckInHistory),
            Some(Injected::StallMidBody)
        );
        assert!(matches!(
            f.apply(&FaultsPatch {
                stall_mid_body_rate: Some(-0.1),
                ..Default::default()
            }),
            Err(FaultsError::Rate {
                field: "stallMidBodyRate",
                ..
            })
        ));
    }
}
