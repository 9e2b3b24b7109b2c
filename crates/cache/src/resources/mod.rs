//! The cached resources, one file each: key, value, TTL choice, weight and fetch of
//! one ThingSpace read (the request itself lives in `devicegraph_upstream::endpoints`).
//!
//! Adding a resource: a file here implementing [`Resource`], a line in [`ALL`], a
//! TTL in `Ttls`.

mod campaign_pages;
mod check_ins;
mod details;
mod provisioning;
mod upgrade_history;

pub use campaign_pages::{CampaignPageKey, CampaignPages};
pub use check_ins::CheckIns;
pub use details::Details;
pub use provisioning::{Provisioning, ProvisioningKey};
pub use upgrade_history::UpgradeHistory;

use crate::resource::{OwnedBy, Resource};

/// What invalidation needs to know of every resource without its type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Info {
    pub(crate) tag: &'static str,
    pub(crate) owned_by: OwnedBy,
}

const fn info<R: Resource>() -> Info {
    Info {
        tag: R::TAG,
        owned_by: R::OWNED_BY,
    }
}

/// Every resource (to list the Redis keys an invalidation scope covers).
pub(crate) const ALL: &[Info] = &[
    info::<Details>(),
    info::<UpgradeHistory>(),
    info::<CheckIns>(),
    info::<CampaignPages>(),
    info::<Provisioning>(),
];

#[cfg(test)]
mod tests;
