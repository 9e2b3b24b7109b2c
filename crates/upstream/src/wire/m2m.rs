//! The M2M side: provisioning history pages.

use serde_json::Value;

use crate::decode::DecodeError;
use crate::decode::walk::Field;
use crate::model::{KeyValue, ProvisioningEvent, ProvisioningPage};

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
