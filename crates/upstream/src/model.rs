//! The normalised, public shapes of everything the ThingSpace data endpoints return.
//!
//! These are what the rest of devicegraph sees: one UTC instant type, `None` for
//! absent/`"N/A"`, both field-name variants folded into one field, and unknown
//! status/code values kept (never rejected).
//!
//! This module only re-exports: each endpoint's models are defined with its parser
//! and request in `endpoints/<endpoint>.rs` (device details, upgrade history,
//! check-ins, campaign devices, provisioning, account devices), [`Timestamp`] in [`crate::time`], and
//! the token and error bodies in the private `decode` module. The parsers are
//! re-exported by [`crate::wire`].

pub use crate::decode::bodies::{OAuthToken, SessionToken, UpstreamErrorBody};
pub use crate::endpoints::account_devices::AccountDevicesPage;
pub use crate::endpoints::campaign_devices::{CampaignDevice, CampaignPage};
pub use crate::endpoints::check_ins::{CheckIn, CheckInResult, ClientType, FailureType};
pub use crate::endpoints::device_details::{
    DetailsChunk, DeviceDetails, DeviceDetailsPage, Software,
};
pub use crate::endpoints::provisioning::{KeyValue, ProvisioningEvent, ProvisioningPage};
pub use crate::endpoints::upgrade_history::FirmwareUpgrade;
pub use crate::time::Timestamp;
