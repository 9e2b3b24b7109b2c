//! `GET /fota/v2/logging/{acc}/devices/{imei}/checkInHistory`: the check-ins of one
//! device.
//!
//! One request, no paging. The answer is a JSON list (`null` is empty), kept in the
//! order sent (the client does not reorder). Quirks: `clientType`, `result` and
//! `failureType` arrive as codes, names or `code - name` pairs and go through the
//! code tables of [`codes`]; a value in none of them is kept in `Other`.

mod codes;

use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::decode::walk::Field;
use crate::decode::{DecodeError, body_with, list_body};
use crate::error::{Endpoint, UpstreamError};
use crate::ids::{AccountName, Imei};
use crate::time::Timestamp;

/// Check-in client type (code table of the check-in history page).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClientType {
    Unknown,
    Device,
    RovaContainer,
    WifiClient,
    RovaClient,
    RovaClientAppStore,
    /// A code or name not in the documented table, kept as sent.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CheckInResult {
    Failed,
    Succeeded,
    Busy,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureType {
    None,
    UnspecifiedError,
    AuthenticationFailure,
    EnrollmentPolicyFailure,
    DecryptionFailure,
    NoAssignedSetting,
    EncryptionFailure,
    ConfigurationErrors,
    Other(String),
}

/// One entry of `GET /fota/v2/logging/{acc}/devices/{imei}/checkInHistory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckIn {
    pub device_id: Option<String>,
    pub client_type: ClientType,
    pub result: CheckInResult,
    pub failure_type: FailureType,
    pub time_completed: Option<Timestamp>,
}

impl Client {
    /// `GET /fota/v2/logging/{acc}/devices/{imei}/checkInHistory`, as sent (the
    /// client does not reorder).
    pub async fn check_in_history(
        &self,
        account: &AccountName,
        imei: &Imei,
    ) -> Result<Vec<CheckIn>, UpstreamError> {
        let path = [
            "fota",
            "v2",
            "logging",
            account.as_str(),
            "devices",
            imei.as_str(),
            "checkInHistory",
        ];
        self.get_json(
            Endpoint::CheckInHistory,
            account,
            &path,
            parse_check_in_history,
        )
        .await
    }
}

/// `GET /fota/v2/logging/{acc}/devices/{imei}/checkInHistory`: a JSON list.
pub fn parse_check_in_history(body: &[u8]) -> Result<Vec<CheckIn>, DecodeError> {
    body_with(body, list_body, "a check-in history", check_in_history)
}

fn check_in_history(root: Field<'_, '_>) -> Result<Vec<CheckIn>, DecodeError> {
    root.list(|item| {
        let c = item.object()?;
        Ok(CheckIn {
            device_id: c.field(&["deviceId"]).opt_string()?,
            client_type: codes::client_type(c.field(&["clientType"]).opt_code()?),
            result: codes::result(c.field(&["result"]).opt_code()?),
            failure_type: codes::failure_type(c.field(&["failureType"]).opt_code()?),
            time_completed: c.field(&["timeCompleted"]).opt_timestamp()?,
        })
    })
}
