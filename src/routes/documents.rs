//! The GraphQL documents behind the `/v1` routes. REST answers are exactly the
//! `data` of these operations, so both APIs return the same fields, names, ordering
//! and formats, and every rule (scope, batching, caching) lives once, in the schema.

/// The device fields every REST device answer has.
const DEVICE_FIELDS: &str = "imei account mdn make model firmware fotaEligible licenseAssigned \
status protocol createTime upgradeTime statusTime refreshTime lastConnectionTime \
software { name version upgradeTime } files";

const UPGRADE_HISTORY: &str = "upgradeHistory { campaignId firmwareName firmwareFrom firmwareTo \
startDate reportUpdatedTime status reason }";
const CHECK_INS: &str = "checkIns { clientType result failureType timeCompleted }";
const LAST_CHECK_IN: &str = "lastCheckIn { clientType result failureType timeCompleted }";

/// Optional parts of a device (`?include=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Include {
    pub(crate) upgrade_history: bool,
    pub(crate) check_ins: bool,
    pub(crate) last_check_in: bool,
}

/// The values `?include=` accepts.
pub(crate) const INCLUDE_VALUES: &[&str] = &["upgradeHistory", "checkIns", "lastCheckIn"];

impl Include {
    /// Parses `upgradeHistory,checkIns`; an unknown name is refused, naming it, and
    /// so is an empty one (`include=`, `checkIns,`): the OpenAPI document declares
    /// `include` as a non-empty list of these names, and on the wire an empty list
    /// cannot be told from a list of one empty name. No `include` at all is
    /// [`Include::default`].
    pub(crate) fn parse(list: &str) -> Result<Self, String> {
        let mut include = Self::default();
        for name in list.split(',').map(str::trim) {
            match name {
                "" => {
                    return Err(format!(
                        "empty name; omit `include` for none, or list some of {}",
                        INCLUDE_VALUES.join(", ")
                    ));
                }
                "upgradeHistory" => include.upgrade_history = true,
                "checkIns" => include.check_ins = true,
                "lastCheckIn" => include.last_check_in = true,
                other => {
                    return Err(format!(
                        "unknown include {other:?}; expected a comma-separated list of {}",
                        INCLUDE_VALUES.join(", ")
                    ));
                }
            }
        }
        Ok(include)
    }

    /// What one device of this selection adds to an operation's complexity
    /// (`limits.max_complexity`): async-graphql counts each field once plus its
    /// sub-selection, so for these flat selections, the number of field names.
    pub(crate) fn complexity_per_device(self) -> usize {
        self.selection()
            .split_whitespace()
            .filter(|word| !matches!(*word, "{" | "}"))
            .count()
    }

    /// Upstream calls one uncached device of this selection costs beyond its
    /// details (`limits.max_upstream_calls`): one per history read (`checkIns` and
    /// `lastCheckIn` read the same one).
    pub(crate) fn histories_per_device(self) -> usize {
        usize::from(self.upgrade_history) + usize::from(self.check_ins || self.last_check_in)
    }

    fn selection(self) -> String {
        let mut fields = DEVICE_FIELDS.to_owned();
        for (wanted, part) in [
            (self.upgrade_history, UPGRADE_HISTORY),
            (self.check_ins, CHECK_INS),
            (self.last_check_in, LAST_CHECK_IN),
        ] {
            if wanted {
                fields.push(' ');
                fields.push_str(part);
            }
        }
        fields
    }
}

/// `device(account, imei)`.
pub(crate) fn device(include: Include) -> String {
    format!(
        "query RestDevice($account: String!, $imei: IMEI!) {{ device(account: $account, imei: $imei) {{ {} }} }}",
        include.selection()
    )
}

/// `devices(account, imeis)`.
pub(crate) fn devices(include: Include) -> String {
    format!(
        "query RestDevices($account: String!, $imeis: [IMEI!]!) {{ devices(account: $account, imeis: $imeis) {{ {} }} }}",
        include.selection()
    )
}

/// One page of `campaign(account, id).devices`.
pub(crate) const CAMPAIGN_DEVICES: &str = "query RestCampaignDevices($account: String!, $id: ID!, \
$first: Int!, $after: String, $status: String) { campaign(account: $account, id: $id) { \
devices(first: $first, after: $after, status: $status) { totalCount \
pageInfo { hasNextPage endCursor } \
edges { node { imei status resultReason updatedTime recentAttemptTime nextAttemptTime } } } } }";

/// One page of `account(name).devices`, every filter a variable (null = none).
pub(crate) fn account_devices() -> String {
    format!(
        "query RestAccountDevices($account: String!, $first: Int!, $after: String, \
$protocol: String, $status: String, $make: String, $model: String, $firmware: String, \
$fotaEligible: Boolean) {{ account(name: $account) {{ devices(first: $first, after: $after, \
protocol: $protocol, status: $status, make: $make, model: $model, firmware: $firmware, \
fotaEligible: $fotaEligible) {{ totalCount pageInfo {{ hasNextPage endCursor }} \
edges {{ node {{ {DEVICE_FIELDS} }} }} }} }} }}"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn include_parses_known_names_only() {
        assert!(Include::parse("").is_err(), "an empty include");
        assert!(Include::parse("checkIns,").is_err(), "an empty name");
        assert_eq!(
            Include::parse("upgradeHistory, checkIns"),
            Ok(Include {
                upgrade_history: true,
                check_ins: true,
                last_check_in: false
            })
        );
        let err = Include::parse("checkIns,history").unwrap_err();
        assert!(err.contains("\"history\""), "{err}");
    }

    #[test]
    fn complexity_and_calls_per_device() {
        let all = Include {
            upgrade_history: true,
            check_ins: true,
            last_check_in: true,
        };
        assert_eq!(Include::default().complexity_per_device(), 20);
        assert_eq!(all.complexity_per_device(), 20 + 9 + 5 + 5);
        assert_eq!(Include::default().histories_per_device(), 0);
        assert_eq!(all.histories_per_device(), 2);
    }

    #[test]
    fn documents_select_what_was_included() {
        let plain = device(Include::default());
        assert!(!plain.contains("upgradeHistory") && !plain.contains("checkIns"));
        let full = device(Include {
            upgrade_history: true,
            check_ins: true,
            last_check_in: false,
        });
        assert!(full.contains("upgradeHistory {") && full.contains("checkIns {"));
    }
}
