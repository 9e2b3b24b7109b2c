//! The M2M side and the auth/error bodies: provisioning history pages, the OAuth
//! and session tokens, and the error bodies of both ThingSpace and its API gateway.
//!
//! Token bodies go through the same accessors as data, whose messages name JSON
//! types and never values, so a token cannot leak into a `DecodeError`.

use serde_json::Value;

use super::DecodeError;
use super::walk::Field;
use crate::model::{
    KeyValue, OAuthToken, ProvisioningEvent, ProvisioningPage, SessionToken, UpstreamErrorBody,
};

/// Longest `errorCode` kept (`REQUEST_FAILED.SessionToken.Expired` is 35).
const MAX_CODE_CHARS: usize = 200;

/// One 200/202 body; the status code itself is the client's business.
pub(crate) fn provisioning_page(root: Field<'_, '_>) -> Result<ProvisioningPage, DecodeError> {
    let page = root.object()?;
    Ok(ProvisioningPage {
        events: page
            .field(&["provisioningHistory"])
            .list(provisioning_event)?,
        has_more_data: page.field(&["hasMoreData"]).flag()?,
    })
}

fn provisioning_event(item: Field<'_, '_>) -> Result<ProvisioningEvent, DecodeError> {
    let e = item.object()?;
    Ok(ProvisioningEvent {
        // Required: pagination moves `earliest` to it and deduplicates on it.
        occurred_at: e.field(&["occurredAt"]).req_timestamp()?,
        event_type: e.field(&["eventType"]).req_string()?,
        status: e.field(&["status"]).opt_string()?,
        event_by: e.field(&["eventBy"]).opt_string()?,
        mdn: e.field(&["mdn"]).opt_string()?,
        msisdn: e.field(&["msisdn"]).opt_string()?,
        service_plan: e.field(&["servicePlan"]).opt_string()?,
        extended_attributes: extended_attributes(e.field(&["extendedAttributes"]))?,
    })
}

/// Documented as a list of `{key, value}`; `null` is empty, and a plain JSON
/// object `{"k": "v"}` is accepted as the same pairs. Values are kept exactly as
/// sent (an attribute whose value is `"N/A"` says so on purpose).
fn extended_attributes(field: Field<'_, '_>) -> Result<Vec<KeyValue>, DecodeError> {
    if let Some(Value::Object(_)) = field.value() {
        return field.object()?.entries(|key, value| {
            Ok(KeyValue {
                key: key.to_owned(),
                value: value.opt_raw_string()?,
            })
        });
    }
    field.list(|item| {
        let kv = item.object()?;
        Ok(KeyValue {
            key: kv.field(&["key"]).req_string()?,
            value: kv.field(&["value"]).opt_raw_string()?,
        })
    })
}

pub(crate) fn oauth_token(root: Field<'_, '_>) -> Result<OAuthToken, DecodeError> {
    let t = root.object()?;
    Ok(OAuthToken {
        access_token: t.field(&["access_token"]).req_nonempty_string()?,
        token_type: t.field(&["token_type"]).opt_string()?,
        expires_in: t.field(&["expires_in"]).opt_u64()?,
        scope: t.field(&["scope"]).opt_string()?,
    })
}

pub(crate) fn session_token(root: Field<'_, '_>) -> Result<SessionToken, DecodeError> {
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
pub(crate) fn error_body(root: Field<'_, '_>) -> Option<UpstreamErrorBody> {
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
