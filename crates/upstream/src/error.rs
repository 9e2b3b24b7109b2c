//! The client's error type: one enum a caller can act on without reading messages.
//!
//! It is `Clone` so a coalesced upstream call can hand the same failure to every
//! waiter. No variant ever carries a token, a password or a full response body.

use std::fmt;
use std::time::Duration;

/// The upstream operations, named as they appear in logs, metrics and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    OAuthToken,
    SessionLogin,
    CheckInHistory,
    UpgradeHistory,
    CampaignDevices,
    DeviceDetails,
    ProvisioningHistory,
    AccountDevices,
}

impl Endpoint {
    pub const ALL: [Endpoint; 8] = [
        Self::OAuthToken,
        Self::SessionLogin,
        Self::CheckInHistory,
        Self::UpgradeHistory,
        Self::CampaignDevices,
        Self::DeviceDetails,
        Self::ProvisioningHistory,
        Self::AccountDevices,
    ];

    /// Stable snake_case name for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::OAuthToken => "oauth_token",
            Self::SessionLogin => "session_login",
            Self::CheckInHistory => "check_in_history",
            Self::UpgradeHistory => "upgrade_history",
            Self::CampaignDevices => "campaign_devices",
            Self::DeviceDetails => "device_details",
            Self::ProvisioningHistory => "provisioning_history",
            Self::AccountDevices => "account_devices",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong talking to ThingSpace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// ThingSpace answered with its documented error body (usually HTTP 400).
    /// Act on `error_code` (stable), never on `error_message` (dynamic).
    #[error("{endpoint}: upstream error {error_code} (HTTP {status})")]
    Api {
        endpoint: Endpoint,
        status: u16,
        error_code: String,
        error_message: String,
    },
    /// HTTP 429 that outlived the retry budget; `retry_after` as the upstream asked.
    #[error("{endpoint}: rate limited by the upstream")]
    RateLimited {
        endpoint: Endpoint,
        retry_after: Option<Duration>,
    },
    /// The call's deadline passed.
    #[error("{endpoint}: timed out")]
    Timeout { endpoint: Endpoint },
    /// Connect failure, dropped connection or 5xx, after retries; or our own
    /// outbound budget ran out before the call could be sent.
    #[error("{endpoint}: upstream unavailable: {reason}")]
    Unavailable {
        endpoint: Endpoint,
        reason: String,
        /// The HTTP status when the upstream answered (a 5xx); `None` when it gave
        /// no answer (connect failure, dropped connection, oversized body) or the
        /// call was never sent (budget, concurrency).
        status: Option<u16>,
    },
    /// The call was not sent: the endpoint's circuit is open, or too many calls are
    /// already waiting for the upstream (load shedding). Failing at once is the point:
    /// a stale copy covers it, and a caller without one learns when to come back.
    #[error("{endpoint}: not sent: {reason}")]
    Shed {
        endpoint: Endpoint,
        reason: String,
        /// When trying again can help (the circuit's next probe, a queue's turnover).
        retry_after: Duration,
    },
    /// A token could not be obtained or was refused after one renewal.
    #[error("{endpoint}: authentication failed: {reason}")]
    Auth { endpoint: Endpoint, reason: String },
    /// Two logins in a row failed; the client stopped trying so the account is never
    /// locked (five failures lock it). Reconfigure credentials to clear this.
    #[error(
        "upstream credentials refused twice in a row; not retrying until reconfigured: {reason}"
    )]
    BadCredentials { reason: String },
    /// The response did not have the documented shape.
    #[error("{endpoint}: could not decode field `{field}`: {message} (body starts: {excerpt})")]
    Decode {
        endpoint: Endpoint,
        field: String,
        message: String,
        /// At most 200 characters of the body, never from a token endpoint.
        excerpt: String,
    },
    /// A page that did not advance, or `hasMoreData` with an empty page.
    #[error("{endpoint}: broken pagination: {reason}")]
    Pagination { endpoint: Endpoint, reason: String },
    /// The request could not be built (a caller bug, not an upstream fault).
    #[error("{endpoint}: invalid request: {reason}")]
    InvalidRequest { endpoint: Endpoint, reason: String },
}

impl UpstreamError {
    pub fn endpoint(&self) -> Option<Endpoint> {
        match self {
            Self::Api { endpoint, .. }
            | Self::RateLimited { endpoint, .. }
            | Self::Timeout { endpoint }
            | Self::Unavailable { endpoint, .. }
            | Self::Shed { endpoint, .. }
            | Self::Auth { endpoint, .. }
            | Self::Decode { endpoint, .. }
            | Self::Pagination { endpoint, .. }
            | Self::InvalidRequest { endpoint, .. } => Some(*endpoint),
            Self::BadCredentials { .. } => None,
        }
    }

    /// Failures of availability rather than of the request: the ones a stale cache
    /// entry may cover (timeout, 5xx, 429, connect).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Timeout { .. }
                | Self::Unavailable { .. }
                | Self::Shed { .. }
        )
    }

    /// ThingSpace says the account, campaign or device asked for does not exist: an
    /// error answer whose code ends in `NotFound` (`REQUEST_FAILED.Account.NotFound`,
    /// `FOTA.DEVICE.NotFound`, `AccountNotFound`, `CampaignNotFound`). Codes are
    /// stable; messages are not, so only the code is read.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { error_code, .. } if is_not_found_code(error_code))
    }

    /// Stable snake_case kind for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Api { .. } => "api",
            Self::RateLimited { .. } => "rate_limited",
            Self::Timeout { .. } => "timeout",
            Self::Unavailable { .. } => "unavailable",
            Self::Shed { .. } => "shed",
            Self::Auth { .. } => "auth",
            Self::BadCredentials { .. } => "bad_credentials",
            Self::Decode { .. } => "decode",
            Self::Pagination { .. } => "pagination",
            Self::InvalidRequest { .. } => "invalid_request",
        }
    }
}

/// Whether an upstream `errorCode` says "no such thing" (see
/// [`UpstreamError::is_not_found`]).
pub fn is_not_found_code(code: &str) -> bool {
    code.ends_with("NotFound")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_is_read_from_the_code_alone() {
        let api = |code: &str| UpstreamError::Api {
            endpoint: Endpoint::CampaignDevices,
            status: 400,
            error_code: code.into(),
            error_message: "NotFound".into(),
        };
        for code in [
            "REQUEST_FAILED.Account.NotFound",
            "FOTA.DEVICE.NotFound",
            "FOTA.CAMPAIGN.NotFound",
            "AccountNotFound",
            "CampaignNotFound",
        ] {
            assert!(api(code).is_not_found(), "{code}");
        }
        for code in [
            "REQUEST_FAILED.InvalidParameter",
            "NotFoundYet",
            "FOTA.NotFound.Later",
        ] {
            assert!(!api(code).is_not_found(), "{code}");
        }
        let timeout = UpstreamError::Timeout {
            endpoint: Endpoint::CampaignDevices,
        };
        assert!(!timeout.is_not_found());
    }
}
