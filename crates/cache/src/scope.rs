//! The scope of an invalidation.

use devicegraph_upstream::{AccountName, CampaignId, Imei};

/// What an invalidation drops: every entry of `account`, or, when `imei` and/or
/// `campaign` are given, only that device's entries and/or that campaign's pages.
#[derive(Debug, Clone)]
pub struct InvalidateScope {
    pub account: AccountName,
    pub imei: Option<Imei>,
    pub campaign: Option<CampaignId>,
}
