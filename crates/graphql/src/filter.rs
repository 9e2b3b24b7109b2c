//! The filters of `Account.devices` that devicegraph evaluates itself, over each
//! device's details (`protocol` is ThingSpace's own): shared by the resolver
//! (`account.rs`) and the cost estimate (`cost.rs`), which must agree on what a
//! cached device matches.

use devicegraph_upstream::model::DeviceDetails;

/// The filters evaluated over a device's details (`protocol` is the upstream's).
#[derive(Debug, Default)]
pub(crate) struct Filter {
    pub(crate) status: Option<String>,
    pub(crate) make: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) firmware: Option<String>,
    pub(crate) fota_eligible: Option<bool>,
}

impl Filter {
    pub(crate) fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.make.is_none()
            && self.model.is_none()
            && self.firmware.is_none()
            && self.fota_eligible.is_none()
    }

    /// Whether `d` passes every filter given: each string equals the device's value
    /// exactly (as the upstream spells it); a device without the value never matches.
    pub(crate) fn matches(&self, d: &DeviceDetails) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_deref().is_none_or(|w| have.as_deref() == Some(w))
        };
        eq(&self.status, &d.status)
            && eq(&self.make, &d.make)
            && eq(&self.model, &d.model)
            && eq(&self.firmware, &d.firmware)
            && self
                .fota_eligible
                .is_none_or(|w| d.fota_eligible == Some(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(status: &str, fota: Option<bool>) -> DeviceDetails {
        DeviceDetails {
            device_id: "990013907835578".into(),
            account_name: None,
            mdn: None,
            model: Some("GM01Q".into()),
            make: Some("SEQUANS COMMUNICATIONS".into()),
            firmware: Some("SR1.2.0.0-10512".into()),
            fota_eligible: fota,
            license_assigned: None,
            status: Some(status.into()),
            protocol: Some("LWM2M".into()),
            software: Vec::new(),
            files: Vec::new(),
            create_time: None,
            upgrade_time: None,
            status_time: None,
            refresh_time: None,
            last_connection_time: None,
        }
    }

    #[test]
    fn filters_are_exact_and_all_must_hold() {
        let d = device("Active", Some(true));
        assert!(Filter::default().is_empty());
        assert!(Filter::default().matches(&d));
        let f = |status: Option<&str>, make: Option<&str>, fota: Option<bool>| Filter {
            status: status.map(Into::into),
            make: make.map(Into::into),
            fota_eligible: fota,
            ..Filter::default()
        };
        assert!(f(Some("Active"), Some("SEQUANS COMMUNICATIONS"), Some(true)).matches(&d));
        assert!(!f(Some("active"), None, None).matches(&d), "exact spelling");
        assert!(!f(Some("Active"), Some("Generic"), None).matches(&d));
        assert!(!f(None, None, Some(false)).matches(&d));
        assert!(
            !f(None, None, Some(true)).matches(&device("Active", None)),
            "unknown eligibility matches neither"
        );
        assert!(!f(None, None, Some(false)).matches(&device("Active", None)));
        let firmware = Filter {
            firmware: Some("SR1.2.0.0-10512".into()),
            model: Some("GM01Q".into()),
            ..Filter::default()
        };
        assert!(!firmware.is_empty() && firmware.matches(&d));
    }
}
