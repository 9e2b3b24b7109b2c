//! Lenient parsing of the upstream's JSON into the public models.
//!
//! ThingSpace's documentation, its own SDK and its examples disagree on field
//! names and value formats (see UPSTREAM.md), so every parser accepts all of them:
//! both field-name variants, numbers as strings, booleans as strings, four
//! timestamp shapes, `"N/A"`/`""` as absent, `null` lists as empty, unknown
//! fields ignored and unknown status or code values kept.
//!
//! How: the body is parsed once into a `serde_json::Value`, then walked by small
//! typed accessors ([`walk`]) that carry the path to the value they read. That
//! gives errors an exact path (`deviceList[3].createTime`) and a message of our
//! own, keeps every leniency rule in one place instead of a custom deserializer
//! per field, and needs no extra dependency. serde derive with aliases would
//! reject a body on the first surprise with a positional message; the extra
//! `Value` allocation is small next to the network round trip.
//!
//! What is an error (a [`DecodeError`] naming the field path):
//! - a body that is not JSON or whose top level has the wrong shape (`field` empty);
//! - a required field missing: `deviceId` in device details and campaign reports,
//!   `status` in upgrade history and campaign reports, `occurredAt` and
//!   `eventType` in provisioning events, the token of a token response;
//! - a value of the wrong JSON type that no leniency rule covers (an object where
//!   a string is expected, `"12a"` for a count);
//! - an optional timestamp that is present but unparseable. Absent, `null`, `""`
//!   and `"N/A"` are `None`, but an unknown format fails the response rather than
//!   silently dropping data and hiding an upstream change.
//!
//! Errors never contain a token: messages describe JSON types, not values
//! (timestamps excepted, and token bodies contain none).

mod codes;
mod fota;
mod m2m;
mod walk;

#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::model::{
    CampaignPage, CheckIn, DeviceDetailsPage, FirmwareUpgrade, OAuthToken, ProvisioningPage,
    SessionToken, UpstreamErrorBody,
};
use walk::{Field, kind};

/// A body that does not have the documented shape: `field` is a path such as
/// `deviceList[3].createTime` (empty for the top level).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct DecodeError {
    pub field: String,
    pub message: String,
}

impl DecodeError {
    fn top_level(message: impl Into<String>) -> Self {
        Self {
            field: String::new(),
            message: message.into(),
        }
    }
}

/// The body as JSON. serde_json's syntax errors give a position, never content.
fn json(body: &[u8]) -> Result<Value, DecodeError> {
    // Tolerate a UTF-8 byte-order mark; some gateways prepend one.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match body.trim_ascii_start().first() {
        None => return Err(DecodeError::top_level("empty body, expected JSON")),
        Some(b'<') => {
            return Err(DecodeError::top_level(
                "body is not JSON (it looks like HTML or XML)",
            ));
        }
        Some(_) => {}
    }
    serde_json::from_slice(body)
        .map_err(|e| DecodeError::top_level(format!("body is not valid JSON: {e}")))
}

/// The top level must be a JSON object (named by `what` in the message).
fn object_body(value: &Value, what: &str) -> Result<(), DecodeError> {
    match value {
        Value::Object(_) => Ok(()),
        other => Err(DecodeError::top_level(format!(
            "expected {what} (a JSON object), found {}",
            kind(other)
        ))),
    }
}

/// The top level must be a JSON list; `null` is accepted as an empty one.
fn list_body(value: &Value, what: &str) -> Result<(), DecodeError> {
    match value {
        Value::Array(_) | Value::Null => Ok(()),
        other => Err(DecodeError::top_level(format!(
            "expected {what} (a JSON list), found {}",
            kind(other)
        ))),
    }
}

/// `POST /fota/v3/devices/{acc}`. A device's `accountName` falls back to the page's.
pub fn parse_device_details_page(body: &[u8]) -> Result<DeviceDetailsPage, DecodeError> {
    let v = json(body)?;
    object_body(&v, "a device details page")?;
    fota::device_details_page(Field::root(&v))
}

/// `GET /fota/v3/reports/{acc}/devices/{imei}`: a JSON list.
pub fn parse_upgrade_history(body: &[u8]) -> Result<Vec<FirmwareUpgrade>, DecodeError> {
    let v = json(body)?;
    list_body(&v, "an upgrade history")?;
    fota::upgrade_history(Field::root(&v))
}

/// `GET /fota/v2/logging/{acc}/devices/{imei}/checkInHistory`: a JSON list.
pub fn parse_check_in_history(body: &[u8]) -> Result<Vec<CheckIn>, DecodeError> {
    let v = json(body)?;
    list_body(&v, "a check-in history")?;
    fota::check_in_history(Field::root(&v))
}

/// `GET /fota/v3/reports/{acc}/campaigns/{id}/devices`.
pub fn parse_campaign_page(body: &[u8]) -> Result<CampaignPage, DecodeError> {
    let v = json(body)?;
    object_body(&v, "a campaign report page")?;
    fota::campaign_page(Field::root(&v))
}

/// `POST /m2m/v1/devices/history/actions/list` (status 200 or 202; missing
/// `hasMoreData` is `false`).
pub fn parse_provisioning_page(body: &[u8]) -> Result<ProvisioningPage, DecodeError> {
    let v = json(body)?;
    object_body(&v, "a provisioning history page")?;
    m2m::provisioning_page(Field::root(&v))
}

/// `POST /ts/v1/oauth2/token`. Errors never contain the token.
pub fn parse_oauth_token(body: &[u8]) -> Result<OAuthToken, DecodeError> {
    let v = json(body)?;
    object_body(&v, "an OAuth token response")?;
    m2m::oauth_token(Field::root(&v))
}

/// `POST /m2m/v1/session/login`. Errors never contain the token.
pub fn parse_session_token(body: &[u8]) -> Result<SessionToken, DecodeError> {
    let v = json(body)?;
    object_body(&v, "a session login response")?;
    m2m::session_token(Field::root(&v))
}

/// The documented `{"errorCode","errorMessage"}` body, if that is what `body` is.
/// Also recognises the API gateway's `{"fault":{"code":900901,"message":...}}`
/// (code as a string) and OAuth 2.0's `{"error","error_description"}`.
pub fn parse_error_body(body: &[u8]) -> Option<UpstreamErrorBody> {
    let v = json(body).ok()?;
    m2m::error_body(Field::root(&v))
}
