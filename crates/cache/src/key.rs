//! Cache keys: one per upstream answer, typed so a key can never mix up resources.
//!
//! The granularity follows the upstream's semantics: device details per IMEI (a batch
//! answer is split), histories per device, campaign reports per upstream page cursor,
//! provisioning history per device and window. The same key renders the Redis key of
//! the L2 copy, under a versioned prefix so a change of value format never reads old
//! entries.

use chrono::{DateTime, SecondsFormat, Utc};
use devicegraph_upstream::{
    AccountName, CampaignId, DeviceIdKind, DeviceIdentifier, Endpoint, Imei,
};

use crate::config::InvalidateScope;

/// Bump when the L2 value format changes; old entries are then simply never read.
pub(crate) const L2_FORMAT: &str = "v1";

/// The cached resources, named as in metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Resource {
    DeviceDetails,
    UpgradeHistory,
    CheckIns,
    CampaignDevices,
    Provisioning,
}

impl Resource {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::DeviceDetails => "device_details",
            Self::UpgradeHistory => "upgrade_history",
            Self::CheckIns => "check_ins",
            Self::CampaignDevices => "campaign_devices",
            Self::Provisioning => "provisioning",
        }
    }

    /// The upstream endpoint that answers this resource.
    pub(crate) fn endpoint(self) -> Endpoint {
        match self {
            Self::DeviceDetails => Endpoint::DeviceDetails,
            Self::UpgradeHistory => Endpoint::UpgradeHistory,
            Self::CheckIns => Endpoint::CheckInHistory,
            Self::CampaignDevices => Endpoint::CampaignDevices,
            Self::Provisioning => Endpoint::ProvisioningHistory,
        }
    }

    /// Short tag used inside Redis keys.
    fn tag(self) -> &'static str {
        match self {
            Self::DeviceDetails => "dd",
            Self::UpgradeHistory => "uh",
            Self::CheckIns => "ci",
            Self::CampaignDevices => "cp",
            Self::Provisioning => "pv",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum CacheKey {
    DeviceDetails {
        account: AccountName,
        imei: Imei,
    },
    UpgradeHistory {
        account: AccountName,
        imei: Imei,
    },
    CheckIns {
        account: AccountName,
        imei: Imei,
    },
    /// `cursor` is the upstream `lastSeenDeviceId` the page was asked with (`None` =
    /// first page).
    CampaignPage {
        account: AccountName,
        campaign: CampaignId,
        cursor: Option<String>,
    },
    Provisioning {
        device: DeviceIdentifier,
        earliest: DateTime<Utc>,
        latest: DateTime<Utc>,
    },
}

impl CacheKey {
    pub(crate) fn resource(&self) -> Resource {
        match self {
            Self::DeviceDetails { .. } => Resource::DeviceDetails,
            Self::UpgradeHistory { .. } => Resource::UpgradeHistory,
            Self::CheckIns { .. } => Resource::CheckIns,
            Self::CampaignPage { .. } => Resource::CampaignDevices,
            Self::Provisioning { .. } => Resource::Provisioning,
        }
    }

    fn account(&self) -> Option<&AccountName> {
        match self {
            Self::DeviceDetails { account, .. }
            | Self::UpgradeHistory { account, .. }
            | Self::CheckIns { account, .. }
            | Self::CampaignPage { account, .. } => Some(account),
            Self::Provisioning { .. } => None,
        }
    }

    /// Whether an invalidation of `scope` drops this entry. Provisioning history is
    /// keyed by device identifier, not account (the upstream call names no account),
    /// so only a device scope reaches it, through the IMEI.
    pub(crate) fn in_scope(&self, scope: &InvalidateScope) -> bool {
        if scope.imei.is_none() && scope.campaign.is_none() {
            return self.account() == Some(&scope.account);
        }
        let device_hit = scope.imei.as_ref().is_some_and(|want| match self {
            Self::DeviceDetails { account, imei }
            | Self::UpgradeHistory { account, imei }
            | Self::CheckIns { account, imei } => *account == scope.account && imei == want,
            Self::Provisioning { device, .. } => {
                device.kind() == DeviceIdKind::Imei && device.id() == want.as_str()
            }
            Self::CampaignPage { .. } => false,
        });
        let campaign_hit = scope.campaign.as_ref().is_some_and(|want| match self {
            Self::CampaignPage {
                account, campaign, ..
            } => *account == scope.account && campaign == want,
            _ => false,
        });
        device_hit || campaign_hit
    }

    /// The Redis key of this entry's L2 copy. Account-scoped keys live under
    /// `{prefix}:v1:a:{account}:` and device-scoped ones under `{prefix}:v1:d:`, so an
    /// invalidation can find them with one `SCAN MATCH` pattern each (identifiers are
    /// restricted to `[A-Za-z0-9_-]`, so they never contain glob characters).
    pub(crate) fn redis_key(&self, prefix: &str) -> String {
        let tag = self.resource().tag();
        match self {
            Self::DeviceDetails { account, imei }
            | Self::UpgradeHistory { account, imei }
            | Self::CheckIns { account, imei } => {
                format!("{prefix}:{L2_FORMAT}:a:{account}:{tag}:{imei}")
            }
            Self::CampaignPage {
                account,
                campaign,
                cursor,
            } => {
                let cursor = cursor.as_deref().unwrap_or("0");
                format!("{prefix}:{L2_FORMAT}:a:{account}:{tag}:{campaign}:{cursor}")
            }
            Self::Provisioning {
                device,
                earliest,
                latest,
            } => format!(
                "{prefix}:{L2_FORMAT}:d:{}:{}:{tag}:{}:{}",
                device.kind().wire_name(),
                device.id(),
                earliest.to_rfc3339_opts(SecondsFormat::Millis, true),
                latest.to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
        }
    }
}

/// `SCAN MATCH` patterns (and exact keys) covering `scope` in Redis.
pub(crate) fn redis_scope_patterns(prefix: &str, scope: &InvalidateScope) -> Vec<String> {
    let account = &scope.account;
    let base = format!("{prefix}:{L2_FORMAT}:a:{account}");
    if scope.imei.is_none() && scope.campaign.is_none() {
        return vec![format!("{base}:*")];
    }
    let mut patterns = Vec::new();
    if let Some(imei) = &scope.imei {
        for resource in [
            Resource::DeviceDetails,
            Resource::UpgradeHistory,
            Resource::CheckIns,
        ] {
            patterns.push(format!("{base}:{}:{imei}", resource.tag()));
        }
        patterns.push(format!("{prefix}:{L2_FORMAT}:d:imei:{imei}:*"));
    }
    if let Some(campaign) = &scope.campaign {
        patterns.push(format!(
            "{base}:{}:{campaign}:*",
            Resource::CampaignDevices.tag()
        ));
    }
    patterns
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn account(s: &str) -> AccountName {
        s.parse().unwrap()
    }

    fn valid_imei(body: &str) -> String {
        format!(
            "{body}{}",
            devicegraph_upstream::ids::luhn_check_digit(body)
        )
    }

    #[test]
    fn scope_selects_account_device_and_campaign_entries() {
        let acc = account("0000123456-00001");
        let other = account("0000999999-00001");
        let a: Imei = valid_imei("99001390783557").parse().unwrap();
        let b: Imei = valid_imei("49015420323751").parse().unwrap();
        let camp: CampaignId = "c1".parse().unwrap();
        let keys = [
            CacheKey::DeviceDetails {
                account: acc.clone(),
                imei: a.clone(),
            },
            CacheKey::CheckIns {
                account: acc.clone(),
                imei: a.clone(),
            },
            CacheKey::UpgradeHistory {
                account: acc.clone(),
                imei: b.clone(),
            },
            CacheKey::CampaignPage {
                account: acc.clone(),
                campaign: camp.clone(),
                cursor: None,
            },
            CacheKey::DeviceDetails {
                account: other.clone(),
                imei: a.clone(),
            },
            CacheKey::Provisioning {
                device: DeviceIdentifier::new(DeviceIdKind::Imei, a.as_str()).unwrap(),
                earliest: DateTime::UNIX_EPOCH,
                latest: DateTime::UNIX_EPOCH,
            },
        ];
        let count = |scope: &InvalidateScope| keys.iter().filter(|k| k.in_scope(scope)).count();
        let whole = InvalidateScope {
            account: acc.clone(),
            imei: None,
            campaign: None,
        };
        assert_eq!(count(&whole), 4);
        let device = InvalidateScope {
            account: acc.clone(),
            imei: Some(a),
            campaign: None,
        };
        assert_eq!(
            count(&device),
            3,
            "details + check-ins + provisioning of that IMEI"
        );
        let campaign = InvalidateScope {
            account: acc,
            imei: None,
            campaign: Some(camp),
        };
        assert_eq!(count(&campaign), 1);
    }

    #[test]
    fn redis_keys_fall_under_their_scope_patterns() {
        let acc = account("0000123456-00001");
        let a: Imei = valid_imei("99001390783557").parse().unwrap();
        let key = CacheKey::CheckIns {
            account: acc.clone(),
            imei: a.clone(),
        };
        assert_eq!(
            key.redis_key("p"),
            format!("p:v1:a:0000123456-00001:ci:{a}")
        );
        let scope = InvalidateScope {
            account: acc,
            imei: Some(a),
            campaign: None,
        };
        assert!(redis_scope_patterns("p", &scope).contains(&key.redis_key("p")));
    }
}
