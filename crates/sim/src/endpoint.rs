//! The simulator's names for the eight upstream operations.
//!
//! Deliberately a copy of `devicegraph_upstream::Endpoint::name()` rather than a
//! dependency: the simulator is an independent implementation of the wire format.

use serde::{Deserialize, Serialize};

/// One of the eight ThingSpace operations the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    OauthToken,
    SessionLogin,
    CheckInHistory,
    UpgradeHistory,
    CampaignDevices,
    DeviceDetails,
    ProvisioningHistory,
    AccountDevices,
}

impl Endpoint {
    pub const ALL: [Endpoint; 8] = [
        Self::OauthToken,
        Self::SessionLogin,
        Self::CheckInHistory,
        Self::UpgradeHistory,
        Self::CampaignDevices,
        Self::DeviceDetails,
        Self::ProvisioningHistory,
        Self::AccountDevices,
    ];

    /// The stats / faults key (`oauth_token`, `device_details`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::OauthToken => "oauth_token",
            Self::SessionLogin => "session_login",
            Self::CheckInHistory => "check_in_history",
            Self::UpgradeHistory => "upgrade_history",
            Self::CampaignDevices => "campaign_devices",
            Self::DeviceDetails => "device_details",
            Self::ProvisioningHistory => "provisioning_history",
            Self::AccountDevices => "account_devices",
        }
    }

    /// The six data endpoints (everything but the two token endpoints).
    pub fn is_data(self) -> bool {
        !matches!(self, Self::OauthToken | Self::SessionLogin)
    }

    pub(crate) fn ordinal(self) -> usize {
        self as usize
    }

    /// Parses a stats / faults key.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
