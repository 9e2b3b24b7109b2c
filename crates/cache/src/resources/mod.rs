//! The cached resources, one file each: key, value, TTL choice, weight and fetch of
//! one ThingSpace read (the request itself lives in `devicegraph_upstream::endpoints`).
//!
//! Adding a resource: a file here implementing [`Resource`] and a line in `ALL`; its
//! TTL is then configurable as `[cache.ttl] <NAME>`.

mod account_pages;
mod campaign_pages;
mod check_ins;
mod details;
mod provisioning;
mod upgrade_history;

pub use account_pages::{AccountPageKey, AccountPages};
pub use campaign_pages::{CampaignPageKey, CampaignPages};
pub use check_ins::CheckIns;
pub use details::Details;
pub use provisioning::{Provisioning, ProvisioningKey};
pub use upgrade_history::UpgradeHistory;

use std::time::Duration;

use devicegraph_upstream::DeviceIdKind;

use crate::key::L2_FORMAT;
use crate::resource::{Info, OwnedBy, Resource, ResourceKey, Ttls};
use crate::scope::InvalidateScope;

/// What the configuration and invalidation need to know of every resource without
/// its type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listed {
    pub(crate) info: Info,
    pub(crate) owned_by: OwnedBy,
}

const fn listed<R: Resource>() -> Listed {
    Listed {
        info: R::INFO,
        owned_by: <R::Key as ResourceKey>::OWNED_BY,
    }
}

/// Every resource (to list the Redis keys an invalidation scope covers).
pub(crate) const ALL: &[Listed] = &[
    listed::<Details>(),
    listed::<UpgradeHistory>(),
    listed::<CheckIns>(),
    listed::<CampaignPages>(),
    listed::<Provisioning>(),
    listed::<AccountPages>(),
];

/// The `[cache.ttl]` keys: the resources by name.
impl Ttls {
    /// The TTL of the resource named `name` (`None`: no such resource).
    pub fn get(&self, name: &str) -> Option<Duration> {
        let listed = ALL.iter().find(|r| r.info.name == name)?;
        Some(self.configured(name).unwrap_or(listed.info.default_ttl))
    }

    /// Sets the TTL of the resource named `name`; `false` if there is no such resource.
    pub fn set(&mut self, name: &str, ttl: Duration) -> bool {
        match ALL.iter().find(|r| r.info.name == name) {
            Some(listed) => {
                self.configure(listed.info.name, ttl);
                true
            }
            None => false,
        }
    }

    /// The resource names, as `[cache.ttl]` keys.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        ALL.iter().map(|r| r.info.name)
    }
}

/// `SCAN MATCH` patterns (and exact keys) covering `scope` in Redis.
pub(crate) fn redis_scope_patterns(prefix: &str, scope: &InvalidateScope) -> Vec<String> {
    let account = &scope.account;
    let base = format!("{prefix}:{L2_FORMAT}:a:{account}");
    if scope.imei.is_none() && scope.campaign.is_none() {
        return vec![format!("{base}:*")];
    }
    let tags = |owned_by: OwnedBy| {
        ALL.iter()
            .filter(move |r| r.owned_by == owned_by)
            .map(|r| r.info.tag)
    };
    let mut patterns = Vec::new();
    if let Some(imei) = &scope.imei {
        patterns.extend(tags(OwnedBy::Device).map(|tag| format!("{base}:{tag}:{imei}")));
        if tags(OwnedBy::Identifier).next().is_some() {
            let kind = DeviceIdKind::Imei.wire_name();
            patterns.push(format!("{prefix}:{L2_FORMAT}:d:{kind}:{imei}:*"));
        }
    }
    if let Some(campaign) = &scope.campaign {
        patterns.extend(tags(OwnedBy::Campaign).map(|tag| format!("{base}:{tag}:{campaign}:*")));
    }
    patterns
}

#[cfg(test)]
mod tests;
