//! The mapping from failures to the contract's error codes, and the one table of
//! those codes ([`Code`]).
//!
//! Every error a resolver raises is built here, so the codes stay consistent and no
//! internal text (a decode excerpt, a connection error, a token problem) ever reaches a
//! client. Upstream failures are logged here, once, with their details. Rendering an
//! error for HTTP (problem+json, a GraphQL request-level error, the request id) is the
//! root crate's rescue point (`http::problem`), which reads [`Code`]'s status and title.

use std::fmt;
use std::str::FromStr;

use async_graphql::{Error, ErrorExtensions, ServerError, Value};
use devicegraph_cache::CacheError;
use devicegraph_upstream::{AccountName, UpstreamError};

/// The values of `extensions.code` (the contract's error codes, plus the
/// persisted-query codes of `/graphql`), each with its HTTP status and problem title.
/// The only table of codes: everything else reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The request itself is wrong: syntax, validation, an argument's format.
    BadUserInput,
    /// No or an unknown API key (set by the HTTP layer).
    Unauthenticated,
    /// The caller's key may not read the account asked for.
    Forbidden,
    /// ThingSpace says the account, campaign or device does not exist (an error code
    /// ending in `NotFound`; `extensions.upstream` carries it), or, on REST, an
    /// unknown route or device.
    NotFound,
    /// The caller is over its request rate or upstream-call budget.
    RateLimited,
    /// The operation is nested deeper or is more complex than the configured limits.
    QueryTooComplex,
    /// ThingSpace answered with an error (`extensions.upstream` carries it) or with
    /// an answer that could not be used.
    UpstreamError,
    /// ThingSpace could not be reached, refused our credentials or is rate limiting us.
    UpstreamUnavailable,
    /// ThingSpace did not answer within the deadline.
    UpstreamTimeout,
    /// A bug on our side; details are in the server log only.
    Internal,
    /// `/graphql` only: the persisted-query hash or document id is not known (Apollo's
    /// code; clients retry with the full text).
    PersistedQueryNotFound,
    /// `/graphql` only: this server keeps no persisted queries (Apollo's code; clients
    /// stop hashing).
    PersistedQueryNotSupported,
    /// `/graphql` only: allow-list mode refused a document that is not in the manifest.
    OperationNotAllowed,
}

impl Code {
    /// Every code, in the contract's order.
    pub const ALL: [Self; 13] = [
        Self::BadUserInput,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::RateLimited,
        Self::QueryTooComplex,
        Self::UpstreamError,
        Self::UpstreamUnavailable,
        Self::UpstreamTimeout,
        Self::Internal,
        Self::PersistedQueryNotFound,
        Self::PersistedQueryNotSupported,
        Self::OperationNotAllowed,
    ];

    /// The `extensions.code` (and problem `code`) string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::RateLimited => "RATE_LIMITED",
            Self::QueryTooComplex => "QUERY_TOO_COMPLEX",
            Self::UpstreamError => "UPSTREAM_ERROR",
            Self::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            Self::UpstreamTimeout => "UPSTREAM_TIMEOUT",
            Self::Internal => "INTERNAL",
            Self::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::PersistedQueryNotSupported => "PERSISTED_QUERY_NOT_SUPPORTED",
            Self::OperationNotAllowed => "OPERATION_NOT_ALLOWED",
        }
    }

    /// The HTTP status answered with this code (a handler may answer a more precise
    /// one: 413, 415, 406, 405 for input problems). The persisted-query codes are
    /// answered with 200 (what Apollo clients expect) and `OPERATION_NOT_ALLOWED`
    /// with 400, or 200 in the legacy `application/json` media type: the trusted
    /// documents module picks per media type.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::BadUserInput | Self::QueryTooComplex | Self::OperationNotAllowed => 400,
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::RateLimited => 429,
            Self::UpstreamError => 502,
            Self::UpstreamUnavailable => 503,
            Self::UpstreamTimeout => 504,
            Self::Internal => 500,
            Self::PersistedQueryNotFound | Self::PersistedQueryNotSupported => 200,
        }
    }

    /// The RFC 9457 problem `title`.
    pub const fn title(self) -> &'static str {
        match self {
            Self::BadUserInput => "Bad user input",
            Self::Unauthenticated => "Unauthenticated",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not found",
            Self::RateLimited => "Rate limited",
            Self::QueryTooComplex => "Query too complex",
            Self::UpstreamError => "Upstream error",
            Self::UpstreamUnavailable => "Upstream unavailable",
            Self::UpstreamTimeout => "Upstream timeout",
            Self::Internal => "Internal error",
            Self::PersistedQueryNotFound => "Persisted query not found",
            Self::PersistedQueryNotSupported => "Persisted query not supported",
            Self::OperationNotAllowed => "Operation not allowed",
        }
    }

    /// Answered only on `/graphql` (persisted queries and trusted documents), never in
    /// a REST problem.
    pub const fn graphql_only(self) -> bool {
        matches!(
            self,
            Self::PersistedQueryNotFound
                | Self::PersistedQueryNotSupported
                | Self::OperationNotAllowed
        )
    }

    /// The code whose string is `code`, if any.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|known| known.as_str() == code)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is none of the [`Code`]s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0:?}")]
pub struct UnknownCode(pub String);

impl FromStr for Code {
    type Err = UnknownCode;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Self::parse(code).ok_or_else(|| UnknownCode(code.to_owned()))
    }
}

/// An error with `extensions.code` set.
pub(crate) fn coded(code: Code, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(move |_, e| e.set("code", code.as_str()))
}

/// Whether `err` was built with `code` (our own errors always carry one).
pub(crate) fn has_code(err: &Error, code: Code) -> bool {
    matches!(
        err.extensions.as_ref().and_then(|e| e.get("code")),
        Some(Value::String(s)) if s == code.as_str()
    )
}

/// `BAD_USER_INPUT`: the message must name the offending value.
pub(crate) fn bad_input(message: impl Into<String>) -> Error {
    coded(Code::BadUserInput, message)
}

/// `FORBIDDEN` for an account outside the caller's scope.
pub(crate) fn forbidden_account(account: &AccountName) -> Error {
    coded(
        Code::Forbidden,
        format!("not allowed to read account {account}"),
    )
}

/// `INTERNAL`: logs `what` and answers a generic message.
pub(crate) fn internal(what: &str) -> Error {
    tracing::error!(what, "internal error while resolving a GraphQL request");
    coded(Code::Internal, "internal error")
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
            coded(Code::Internal, "internal error")
        }
    }
}

/// A GraphQL object value (for error extensions) from its members, in order.
pub(crate) fn object<'a>(members: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    Value::Object(
        members
            .into_iter()
            .map(|(name, value)| (async_graphql::Name::new(name), value))
            .collect(),
    )
}

/// Maps an upstream failure to the contract's codes: a "not found" answer to
/// `NOT_FOUND`, any other error answer to `UPSTREAM_ERROR`, both with ThingSpace's
/// `errorCode` and `errorMessage` in `extensions.upstream`.
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
            // Not found is an answer about the request, not a failure of ThingSpace.
            let (coded_as, text) = if err.is_not_found() {
                (Code::NotFound, "not found: the upstream answered")
            } else {
                (Code::UpstreamError, "the upstream answered with error")
            };
            let code = error_code.clone();
            let message = error_message.clone();
            Error::new(format!("{text} {error_code}")).extend_with(move |_, e| {
                e.set("code", coded_as.as_str());
                e.set(
                    "upstream",
                    object([
                        ("errorCode", Value::String(code.clone())),
                        ("errorMessage", Value::String(message.clone())),
                    ]),
                );
            })
        }
        UpstreamError::Timeout { .. } => {
            tracing::warn!(endpoint, "upstream timed out");
            coded(Code::UpstreamTimeout, "the upstream did not answer in time")
        }
        UpstreamError::Shed {
            reason,
            retry_after,
            ..
        } => {
            tracing::debug!(endpoint, reason = %reason, "upstream call not sent");
            let secs = retry_after_secs(*retry_after);
            coded(
                Code::UpstreamUnavailable,
                format!("the upstream is unavailable ({reason}); retry after {secs} s"),
            )
            .extend_with(move |_, e| e.set("retryAfter", secs))
        }
        UpstreamError::RateLimited {
            retry_after: Some(wait),
            ..
        } => {
            tracing::warn!(endpoint, kind = err.kind(), "upstream rate limited");
            let secs = retry_after_secs(*wait);
            coded(
                Code::UpstreamUnavailable,
                format!("the upstream is rate limiting us; retry after {secs} s"),
            )
            .extend_with(move |_, e| e.set("retryAfter", secs))
        }
        UpstreamError::RateLimited { .. }
        | UpstreamError::Unavailable { .. }
        | UpstreamError::Auth { .. }
        | UpstreamError::BadCredentials { .. } => {
            tracing::warn!(endpoint, kind = err.kind(), error = %err, "upstream unavailable");
            coded(
                Code::UpstreamUnavailable,
                "the upstream is unavailable, try again later",
            )
        }
        UpstreamError::Decode { .. } | UpstreamError::Pagination { .. } => {
            tracing::error!(endpoint, kind = err.kind(), error = %err, "unusable upstream answer");
            coded(
                Code::UpstreamError,
                "the upstream sent an answer that could not be used",
            )
        }
        UpstreamError::InvalidRequest { .. } => {
            tracing::error!(endpoint, error = %err, "invalid upstream request built");
            coded(Code::Internal, "internal error")
        }
    }
}

/// `Retry-After` in whole seconds, rounded up and never 0 ("retry now" would invite
/// the same refusal).
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0))
        .max(1)
}

/// The code of a finished error, if it has a known one (read from
/// `extensions.code`).
pub fn code_of(err: &ServerError) -> Option<Code> {
    match err.extensions.as_ref()?.get("code")? {
        Value::String(s) => Code::parse(s),
        _ => None,
    }
}

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

/// Sets `extensions.code` on an already-built error.
pub(crate) fn set_code(err: &mut ServerError, code: Code) {
    err.extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
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
        let cases = [
            ("FOTA.DEVICE.NotFound", Code::NotFound),
            ("REQUEST_FAILED.Account.NotFound", Code::NotFound),
            ("CampaignNotFound", Code::NotFound),
            ("REQUEST_FAILED.InvalidParameter", Code::UpstreamError),
        ];
        for (error_code, want) in cases {
            let e = from_upstream(&UpstreamError::Api {
                endpoint: Endpoint::UpgradeHistory,
                status: 400,
                error_code: error_code.into(),
                error_message: "no such thing".into(),
            });
            assert_eq!(code(&e), want.as_str(), "{error_code}");
            assert!(e.message.ends_with(error_code), "{}", e.message);
            let up = e
                .extensions
                .as_ref()
                .and_then(|x| x.get("upstream"))
                .cloned();
            let Some(Value::Object(up)) = up else {
                panic!("no upstream extension");
            };
            assert_eq!(up.get("errorCode"), Some(&Value::String(error_code.into())));
            assert_eq!(
                up.get("errorMessage"),
                Some(&Value::String("no such thing".into()))
            );
        }
    }

    #[test]
    fn a_call_not_sent_says_when_to_come_back() {
        let retry_after = |e: &Error| match e.extensions.as_ref().and_then(|x| x.get("retryAfter"))
        {
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        };
        let shed = from_upstream(&UpstreamError::Shed {
            endpoint: Endpoint::DeviceDetails,
            reason: "circuit open".into(),
            retry_after: std::time::Duration::from_millis(2_100),
        });
        assert_eq!(code(&shed), "UPSTREAM_UNAVAILABLE");
        assert_eq!(retry_after(&shed), Some(3), "rounded up");
        assert!(shed.message.contains("circuit open"), "{}", shed.message);
        let now = from_upstream(&UpstreamError::Shed {
            endpoint: Endpoint::DeviceDetails,
            reason: "queue full".into(),
            retry_after: std::time::Duration::ZERO,
        });
        assert_eq!(retry_after(&now), Some(1), "never 0");
        let paused = from_upstream(&UpstreamError::RateLimited {
            endpoint: Endpoint::CheckInHistory,
            retry_after: Some(std::time::Duration::from_secs(7)),
        });
        assert_eq!(code(&paused), "UPSTREAM_UNAVAILABLE");
        assert_eq!(retry_after(&paused), Some(7));
    }

    #[test]
    fn availability_failures_hide_internals() {
        let cases = [
            (
                UpstreamError::Timeout {
                    endpoint: Endpoint::DeviceDetails,
                },
                Code::UpstreamTimeout,
            ),
            (
                UpstreamError::RateLimited {
                    endpoint: Endpoint::DeviceDetails,
                    retry_after: None,
                },
                Code::UpstreamUnavailable,
            ),
            (
                UpstreamError::Unavailable {
                    endpoint: Endpoint::DeviceDetails,
                    reason: "connect 10.0.0.1 refused".into(),
                    status: None,
                },
                Code::UpstreamUnavailable,
            ),
            (
                UpstreamError::BadCredentials {
                    reason: "secret-ish".into(),
                },
                Code::UpstreamUnavailable,
            ),
            (
                UpstreamError::Decode {
                    endpoint: Endpoint::DeviceDetails,
                    field: "deviceList".into(),
                    message: "bad".into(),
                    excerpt: "{\"excerpt-xyz\":1}".into(),
                },
                Code::UpstreamError,
            ),
            (
                UpstreamError::InvalidRequest {
                    endpoint: Endpoint::DeviceDetails,
                    reason: "bug".into(),
                },
                Code::Internal,
            ),
        ];
        for (err, want) in cases {
            let e = from_cache(&CacheError::Upstream(err.clone()));
            assert_eq!(code(&e), want.as_str(), "{err:?}");
            for secret in ["10.0.0.1", "secret-ish", "excerpt-xyz", "bug"] {
                assert!(!e.message.contains(secret), "{} leaks {secret}", e.message);
            }
        }
    }

    #[test]
    fn codes_are_read_back_from_the_extension() {
        let mut e = ServerError::new("x", None);
        assert_eq!(code_of(&e), None);
        for want in Code::ALL {
            set_code(&mut e, want);
            assert_eq!(code_of(&e), Some(want));
            assert_eq!(want.as_str().parse::<Code>(), Ok(want));
        }
        e.extensions
            .get_or_insert_with(Default::default)
            .set("code", "SOMETHING_NEW");
        assert_eq!(code_of(&e), None);
        assert!("SOMETHING_NEW".parse::<Code>().is_err());
    }
}
