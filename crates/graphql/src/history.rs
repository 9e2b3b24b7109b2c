//! History entry types (firmware upgrades, check-ins, provisioning events) and the
//! check-in code enums, mapped from the upstream's normalised models. Unknown upstream
//! codes map to `UNKNOWN` rather than failing a response.

use async_graphql::{Enum, Object};
use devicegraph_upstream::model;

use crate::scalars::{GqlDate, GqlDateTime};

/// One firmware upgrade attempt of a device.
pub(crate) struct FirmwareUpgrade(pub(crate) model::FirmwareUpgrade);

/// One firmware upgrade attempt of a device, from the upstream's upgrade report.
#[Object]
impl FirmwareUpgrade {
    /// The campaign that carried the upgrade.
    async fn campaign_id(&self) -> Option<async_graphql::ID> {
        self.0.campaign_id.clone().map(async_graphql::ID)
    }

    /// Name of the firmware package.
    async fn firmware_name(&self) -> Option<&str> {
        self.0.firmware_name.as_deref()
    }

    /// Firmware version before the upgrade.
    async fn firmware_from(&self) -> Option<&str> {
        self.0.firmware_from.as_deref()
    }

    /// Firmware version the upgrade installs.
    async fn firmware_to(&self) -> Option<&str> {
        self.0.firmware_to.as_deref()
    }

    /// The day the campaign started.
    async fn start_date(&self) -> Option<GqlDate> {
        self.0.start_date.map(GqlDate)
    }

    /// When the upstream last updated this report entry.
    async fn report_updated_time(&self) -> Option<GqlDateTime> {
        self.0.report_updated_time.map(GqlDateTime)
    }

    /// Raw upstream status, e.g. UpgradeSuccess, UpgradeFailed, DeviceRejected.
    async fn status(&self) -> &str {
        &self.0.status
    }

    /// Why the upgrade ended as it did, when the upstream says.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
}

/// The software that checked in.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientType {
    /// Code 0, or a code the upstream does not document.
    Unknown,
    /// Code 1: the device itself.
    Device,
    /// Code 3: a Rova container.
    RovaContainer,
    /// Code 5: a Wi-Fi client.
    WifiClient,
    /// Code 6: a Rova client.
    RovaClient,
    /// Code 7: a Rova client from an app store.
    RovaClientAppStore,
}

impl From<&model::ClientType> for ClientType {
    fn from(v: &model::ClientType) -> Self {
        match v {
            model::ClientType::Unknown | model::ClientType::Other(_) => Self::Unknown,
            model::ClientType::Device => Self::Device,
            model::ClientType::RovaContainer => Self::RovaContainer,
            model::ClientType::WifiClient => Self::WifiClient,
            model::ClientType::RovaClient => Self::RovaClient,
            model::ClientType::RovaClientAppStore => Self::RovaClientAppStore,
        }
    }
}

/// How a check-in ended.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckInResult {
    /// Code 0.
    Failed,
    /// Code 1.
    Succeeded,
    /// Code 2: the server was busy.
    Busy,
    /// A code the upstream does not document.
    Unknown,
}

impl From<&model::CheckInResult> for CheckInResult {
    fn from(v: &model::CheckInResult) -> Self {
        match v {
            model::CheckInResult::Failed => Self::Failed,
            model::CheckInResult::Succeeded => Self::Succeeded,
            model::CheckInResult::Busy => Self::Busy,
            model::CheckInResult::Other(_) => Self::Unknown,
        }
    }
}

/// Why a check-in failed (NONE when it did not).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckInFailure {
    /// Code 0: no failure.
    None,
    /// Code 1.
    UnspecifiedError,
    /// Code 2.
    AuthenticationFailure,
    /// Code 3.
    EnrollmentPolicyFailure,
    /// Code 4.
    DecryptionFailure,
    /// Code 5.
    NoAssignedSetting,
    /// Code 6.
    EncryptionFailure,
    /// Code 7.
    ConfigurationErrors,
    /// A code the upstream does not document.
    Unknown,
}

impl From<&model::FailureType> for CheckInFailure {
    fn from(v: &model::FailureType) -> Self {
        match v {
            model::FailureType::None => Self::None,
            model::FailureType::UnspecifiedError => Self::UnspecifiedError,
            model::FailureType::AuthenticationFailure => Self::AuthenticationFailure,
            model::FailureType::EnrollmentPolicyFailure => Self::EnrollmentPolicyFailure,
            model::FailureType::DecryptionFailure => Self::DecryptionFailure,
            model::FailureType::NoAssignedSetting => Self::NoAssignedSetting,
            model::FailureType::EncryptionFailure => Self::EncryptionFailure,
            model::FailureType::ConfigurationErrors => Self::ConfigurationErrors,
            model::FailureType::Other(_) => Self::Unknown,
        }
    }
}

/// One check-in of a device.
pub(crate) struct CheckIn(pub(crate) model::CheckIn);

/// One check-in of a device with the FOTA server.
#[Object]
impl CheckIn {
    /// The software that checked in.
    async fn client_type(&self) -> ClientType {
        (&self.0.client_type).into()
    }

    /// How the check-in ended.
    async fn result(&self) -> CheckInResult {
        (&self.0.result).into()
    }

    /// Why it failed; NONE when it did not.
    async fn failure_type(&self) -> CheckInFailure {
        (&self.0.failure_type).into()
    }

    /// When the check-in completed.
    async fn time_completed(&self) -> Option<GqlDateTime> {
        self.0.time_completed.map(GqlDateTime)
    }
}

/// One provisioning event.
pub(crate) struct ProvisioningEvent(pub(crate) model::ProvisioningEvent);

/// One provisioning event (activation, plan change, ...) of a device identifier.
#[Object]
impl ProvisioningEvent {
    /// When the event happened.
    async fn occurred_at(&self) -> GqlDateTime {
        GqlDateTime(self.0.occurred_at)
    }

    /// What happened, as the upstream names it.
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }

    /// Outcome of the event.
    async fn status(&self) -> Option<&str> {
        self.0.status.as_deref()
    }

    /// Who or what caused the event.
    async fn event_by(&self) -> Option<&str> {
        self.0.event_by.as_deref()
    }

    /// Mobile directory number at the time.
    async fn mdn(&self) -> Option<&str> {
        self.0.mdn.as_deref()
    }

    /// MSISDN at the time.
    async fn msisdn(&self) -> Option<&str> {
        self.0.msisdn.as_deref()
    }

    /// Service plan at the time.
    async fn service_plan(&self) -> Option<&str> {
        self.0.service_plan.as_deref()
    }

    /// Further attributes the upstream attached; empty when it sent none.
    async fn extended_attributes(&self) -> Vec<KeyValue> {
        self.0
            .extended_attributes
            .iter()
            .cloned()
            .map(KeyValue)
            .collect()
    }
}

/// One key/value attribute.
pub(crate) struct KeyValue(model::KeyValue);

/// A key/value attribute of a provisioning event.
#[Object]
impl KeyValue {
    /// Attribute name.
    async fn key(&self) -> &str {
        &self.0.key
    }

    /// Attribute value, if any.
    async fn value(&self) -> Option<&str> {
        self.0.value.as_deref()
    }
}
