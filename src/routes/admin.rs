//! `POST /admin/cache/invalidate`: drops cached entries of an account, a device or a
//! campaign, answering `{"dropped": N}`. Only served when `auth.admin_key_sha256` is
//! set (otherwise the route does not exist: 404), and only to the admin key.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use devicegraph_cache::InvalidateScope;
use devicegraph_upstream::{AccountName, CampaignId, Imei};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use crate::http::body_limit::body_rejection;
use crate::http::problem::{ApiError, ErrorContext};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InvalidateBody {
    account: String,
    imei: Option<String>,
    campaign_id: Option<String>,
}

/// The handler.
pub(crate) async fn invalidate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let errors = ErrorContext::rest();
    if !state.keys.is_admin(&headers) {
        return ApiError::unauthenticated("the admin key is required").respond(&errors);
    }
    let scope = match body
        .map_err(|r| body_rejection(&r, state.config.limits.max_body_bytes))
        .and_then(|body| parse(&body))
    {
        Ok(scope) => scope,
        Err(e) => return e.respond(&errors),
    };
    let dropped = state.store.invalidate(&scope).await;
    tracing::info!(
        account = %scope.account,
        imei = scope.imei.as_ref().map(Imei::as_str),
        campaign = scope.campaign.as_ref().map(CampaignId::as_str),
        dropped,
        "cache invalidated"
    );
    axum::Json(json!({ "dropped": dropped })).into_response()
}

fn parse(body: &[u8]) -> Result<InvalidateScope, ApiError> {
    let body: InvalidateBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_input(format!(
            "body must be {{\"account\": ..., \"imei\"?: ..., \"campaignId\"?: ...}}: {e}"
        ))
    })?;
    let account = AccountName::from_str(&body.account)
        .map_err(|e| ApiError::bad_input(format!("account: {e}")))?;
    let imei = body
        .imei
        .map(|i| Imei::from_str(&i))
        .transpose()
        .map_err(|e| ApiError::bad_input(format!("imei: {e}")))?;
    let campaign = body
        .campaign_id
        .map(|c| CampaignId::from_str(&c))
        .transpose()
        .map_err(|e| ApiError::bad_input(format!("campaignId: {e}")))?;
    Ok(InvalidateScope {
        account,
        imei,
        campaign,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_validated() {
        let scope = parse(br#"{"account":"0000123456-00001","imei":"490154203237518"}"#);
        assert!(scope.is_ok_and(|s| s.imei.is_some() && s.campaign.is_none()));
        assert!(parse(br#"{"account":"bad account"}"#).is_err());
        assert!(parse(br#"{"account":"a","imei":"123"}"#).is_err());
        assert!(parse(br#"{"account":"a","extra":1}"#).is_err());
    }
}
