//! The bodies that are no endpoint's data: the OAuth and session token responses
//! and the error bodies of both ThingSpace and its API gateway, with their models.
//! `auth` and `transport` read them; the public paths are `model::{OAuthToken,
//! SessionToken, UpstreamErrorBody}` and `wire::{parse_oauth_token,
//! parse_session_token, parse_error_body}`.
//!
//! Token bodies go through the same accessors as data, whose messages name JSON
//! types and never values, so a token cannot leak into a `DecodeError`.

use serde::{Deserialize, Serialize};

use super::walk::Field;
use super::{DecodeError, body_with, json, object_body};

/// Longest `errorCode` kept (`REQUEST_FAILED.SessionToken.Expired` is 35).
const MAX_CODE_CHARS: usize = 200;

/// `POST /ts/v1/oauth2/token` response.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct OAuthToken {
    pub access_token: String,
    pub token_type: Option<String>,
    /// Seconds; string or integer on the wire.
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
}

impl std::fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthToken")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// `POST /m2m/v1/session/login` response.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct SessionToken {
    pub session_token: String,
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

/// The upstream's documented error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamErrorBody {
    pub error_code: String,
    pub error_message: Option<String>,
}

/// `POST /ts/v1/oauth2/token`. Errors never contain the token.
pub fn parse_oauth_token(body: &[u8]) -> Result<OAuthToken, DecodeError> {
    body_with(body, object_body, "an OAuth token response", oauth_token)
}

/// `POST /m2m/v1/session/login`. Errors never contain the token.
pub fn parse_session_token(body: &[u8]) -> Result<SessionToken, DecodeError> {
    body_with(body, object_body, "a session login response", session_token)
}

/// The documented `{"errorCode","errorMessage"}` body, if that is what `body` is.
/// Also recognises the API gateway's `{"fault":{"code":900901,"message":...}}`
/// (code as a string) and OAuth 2.0's `{"error","error_description"}`.
pub fn parse_error_body(body: &[u8]) -> Option<UpstreamErrorBody> {
    let v = json(body).ok()?;
    error_body(Field::root(&v))
}

fn oauth_token(root: Field<'_, '_>) -> Result<OAuthToken, DecodeError> {
    let t = root.object()?;
    Ok(OAuthToken {
        access_token: t.field(&["access_token"]).req_nonempty_string()?,
        token_type: t.field(&["token_type"]).opt_string()?,
        expires_in: t.field(&["expires_in"]).opt_u64()?,
        scope: t.field(&["scope"]).opt_string()?,
    })
}

fn session_token(root: Field<'_, '_>) -> Result<SessionToken, DecodeError> {
    Ok(SessionToken {
        session_token: root
            .object()?
            .field(&["sessionToken"])
            .req_nonempty_string()?,
    })
}

/// Recognises, in order: ThingSpace's `{"errorCode","errorMessage"}`, the API
/// gateway's `{"fault":{"code","message","description"}}` and the OAuth 2.0
/// `{"error","error_description"}` of the token endpoint. `None` for anything
/// else, including a code that is missing, empty or not a scalar.
fn error_body(root: Field<'_, '_>) -> Option<UpstreamErrorBody> {
    let o = root.object().ok()?;
    // A malformed message must not hide a good code: the code is what callers act on.
    let body = |code: Field<'_, '_>, message: Field<'_, '_>| {
        Some(UpstreamErrorBody {
            // Real codes are a few dozen characters; the bound keeps a broken upstream
            // from putting megabytes into every error value and log line.
            error_code: code
                .opt_code()
                .ok()??
                .trim()
                .chars()
                .take(MAX_CODE_CHARS)
                .collect(),
            error_message: message.opt_raw_string().ok().flatten(),
        })
    };
    let code = o.field(&["errorCode"]);
    if code.value().is_some() {
        return body(code, o.field(&["errorMessage"]));
    }
    if let Ok(fault) = o.field(&["fault"]).object() {
        return body(
            fault.field(&["code"]),
            fault.field(&["message", "description"]),
        );
    }
    let code = o.field(&["error"]);
    if code.value().is_some() {
        return body(code, o.field(&["error_description"]));
    }
    None
}
