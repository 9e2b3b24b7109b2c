//! The one rescue point that turns failures into GraphQL errors with the contract's
//! `extensions.code`.
//!
//! Every error a resolver raises is built here, so the codes stay consistent and no
//! internal text (a decode excerpt, a connection error, a token problem) ever reaches a
//! client. Upstream failures are logged here, once, with their details.

use async_graphql::{Error, ErrorExtensions, ServerError, Value};
use devicegraph_cache::CacheError;
use devicegraph_upstream::{AccountName, UpstreamError};

/// The values of `extensions.code` (the contract's error codes).
pub mod codes {
    /// The request itself is wrong: syntax, validation, an argument's format.
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    /// No or an unknown API key (set by the HTTP layer).
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// The caller's key may not read the account asked for.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// The caller is over its request rate (set by the HTTP layer).
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// The operation is nested deeper or is more complex than the configured limits.
    pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
    /// ThingSpace answered with an error (`extensions.upstream` carries it) or with
    /// an answer that could not be used.
    pub const UPSTREAM_ERROR: &str = "UPSTREAM_ERROR";
    /// ThingSpace could not be reached, refused our credentials or is rate limiting us.
    pub const UPSTREAM_UNAVAILABLE: &str = "UPSTREAM_UNAVAILABLE";
    /// ThingSpace did not answer within the deadline.
    pub const UPSTREAM_TIMEOUT: &str = "UPSTREAM_TIMEOUT";
    /// A bug on our side; details are in the server log only.
    pub const INTERNAL: &str = "INTERNAL";
}

/// An error with `extensions.code` set.
pub(crate) fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", code))
}

/// `BAD_USER_INPUT`: the message must name the offending value.
pub(crate) fn bad_input(message: impl Into<String>) -> Error {
    coded(codes::BAD_USER_INPUT, message)
}

/// `FORBIDDEN` for an account outside the caller's scope.
pub(crate) fn forbidden_account(account: &AccountName) -> Error {
    coded(
        codes::FORBIDDEN,
        format!("not allowed to read account {account}"),
    )
}

/// `INTERNAL`: logs `what` and answers a generic message.
pub(crate) fn internal(what: &str) -> Error {
    tracing::error!(what, "internal error while resolving a GraphQL request");
    coded(codes::INTERNAL, "internal error")
}

/// Maps a store failure to the contract's codes (the only place that does).
pub(crate) fn from_cache(err: &CacheError) -> Error {
    match err {
        CacheError::Upstream(e) => from_upstream(e),
        // Variants the cache may grow (its own internal failures) are ours, not the
        // upstream's.
        #[allow(unreachable_patterns)]
        other => {
            tracing::error!(error = %other, "cache failure");
            coded(codes::INTERNAL, "internal error")
        }
    }
}

/// Maps an upstream failure to the contract's codes.
pub(crate) fn from_upstream(err: &UpstreamError) -> Error {
    let endpoint = err.endpoint().map(|e| e.name()).unwrap_or("auth");
    match err {
        UpstreamError::Api {
            error_code,
            error_message,
            status,
            ..
        } => {
            tracing::debug!(endpoint, status, error_code = %error_code, "upstream error answer");
            let code = error_code.clone();
            let message = error_message.clone();
            Error::new(format!("the upstream answered with error {error_code}")).extend_with(
                move |_, e| {
                    e.set("code", codes::UPSTREAM_ERROR);
                    let mut upstream = async_graphql::indexmap::IndexMap::new();
                    upstream.insert(
                        async_graphql::Name::new("errorCode"),
                        Value::String(code.clone()),
                    );
                    upstream.insert(
                        async_graphql::Name::new("errorMessage"),
                        Value::String(message.clone()),
                    );
                    e.set("upstream", Value::Object(upstream));
                },
            )
        }
        UpstreamError::Timeout { .. } => {
            tracing::warn!(endpoint, "upstream timed out");
            coded(
                codes::UPSTREAM_TIMEOUT,
                "the upstream did not answer in time",
            )
        }
        UpstreamError::RateLimited { .. }
        | UpstreamError::Unavailable { .. }
        | UpstreamError::Auth { .. }
        | UpstreamError::BadCredentials { .. } => {
            tracing::warn!(endpoint, kind = err.kind(), error = %err, "upstream unavailable");
            coded(
                codes::UPSTREAM_UNAVAILABLE,
                "the upstream is unavailable, try again later",
            )
        }
        UpstreamError::Decode { .. } | UpstreamError::Pagination { .. } => {
            tracing::error!(endpoint, kind = err.kind(), error = %err, "unusable upstream answer");
            coded(
                codes::UPSTREAM_ERROR,
                "the upstream sent an answer that could not be used",
            )
        }
        UpstreamError::InvalidRequest { .. } => {
            tracing::error!(endpoint, error = %err, "invalid upstream request built");
            coded(codes::INTERNAL, "internal error")
        }
    }
}

/// The code of a finished error, if it has one.
pub(crate) fn code_of(err: &ServerError) -> Option<&str> {
    match err.extensions.as_ref()?.get("code")? {
        Value::String(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Sets `extensions.code` on an already-built error.
/// `text` cut to at most `max` bytes on a character boundary, marked with "…".
pub(crate) fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

pub(crate) fn set_code(err: &mut ServerError, code: &'static str) {
    err.extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
}

#[cfg(test)]
mod tests {
    use super::*;
    use devicegraph_upstream::Endpoint;

    fn code(e: &Error) -> String {
        let v = e
            .extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .cloned()
            .unwrap_or(Value::Null);
        match v {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }

    #[test]
    fn api_errors_carry_the_upstream_body() {
        let e = from_upstream(&UpstreamError::Api {
            endpoint: Endpoint::UpgradeHistory,
            status: 400,
            error_code: "FOTA.DEVICE.NotFound".into(),
            error_message: "no such device".into(),
        });
        assert_eq!(code(&e), codes::UPSTREAM_ERROR);
        let up = e
            .extensions
            .as_ref()
            .and_then(|x| x.get("upstream"))
            .cloned();
        let Some(Value::Object(up)) = up else {
            panic!("no upstream extension");
        };
        assert_eq!(
            up.get("errorCode"),
            Some(&Value::String("FOTA.DEVICE.NotFound".into()))
        );
        assert_eq!(
            up.get("errorMessage"),
            Some(&Value::String("no such device".into()))
        );
    }

    #[test]
    fn availability_failures_hide_internals() {
        let cases = [
            (
                UpstreamError::Timeout {
                    endpoint: Endpoint::DeviceDetails,
                },
                codes::UPSTREAM_TIMEOUT,
            ),
            (
                UpstreamError::RateLimited {
                    endpoint: Endpoint::DeviceDetails,
                    retry_after: None,
                },
                codes::UPSTREAM_UNAVAILABLE,
            ),
            (
                UpstreamError::Unavailable {
                    endpoint: Endpoint::DeviceDetails,
                    reason: "connect 10.0.0.1 refused".into(),
                },
                codes::UPSTREAM_UNAVAILABLE,
            ),
            (
                UpstreamError::BadCredentials {
                    reason: "secret-ish".into(),
                },
                codes::UPSTREAM_UNAVAILABLE,
            ),
            (
                UpstreamError::Decode {
                    endpoint: Endpoint::DeviceDetails,
                    field: "deviceList".into(),
                    message: "bad".into(),
                    excerpt: "{\"excerpt-xyz\":1}".into(),
                },
                codes::UPSTREAM_ERROR,
            ),
            (
                UpstreamError::InvalidRequest {
                    endpoint: Endpoint::DeviceDetails,
                    reason: "bug".into(),
                },
                codes::INTERNAL,
            ),
        ];
        for (err, want) in cases {
            let e = from_cache(&CacheError::Upstream(err.clone()));
            assert_eq!(code(&e), want, "{err:?}");
            for secret in ["10.0.0.1", "secret-ish", "excerpt-xyz", "bug"] {
                assert!(!e.message.contains(secret), "{} leaks {secret}", e.message);
            }
        }
    }
}
