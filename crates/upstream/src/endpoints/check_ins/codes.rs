//! The check-in code tables (`clientType`, `result`, `failureType`).
//!
//! The seed documents them as codes `"0".."7"`, real clients see numbers and names
//! (`"Succeeded"`, `"WiFiClient"`), and the table itself is written `1 - Device`.
//! All of these map to the documented variant: names compare case-insensitively
//! ignoring punctuation and blanks (`WiFiClient` = `wifi_client`); a `code - name`
//! pair maps only when both agree. Anything else is kept verbatim in `Other`, so
//! a new upstream value never fails a response.
//!
//! A missing code has a documented meaning for two tables: client type 0 is
//! "type is unknown" and failure type 0 is "no failure". A missing `result` has
//! none, so it becomes `Other("")`.

use super::{CheckInResult, ClientType, FailureType};

pub(crate) fn client_type(raw: Option<String>) -> ClientType {
    let Some(raw) = raw else {
        return ClientType::Unknown;
    };
    let by_code = |code| match code {
        0 => Some(ClientType::Unknown),
        1 => Some(ClientType::Device),
        3 => Some(ClientType::RovaContainer),
        5 => Some(ClientType::WifiClient),
        6 => Some(ClientType::RovaClient),
        7 => Some(ClientType::RovaClientAppStore),
        _ => None,
    };
    let by_name = |name: &str| match name {
        // The seed's own table spells it "Uknown".
        "unknown" | "uknown" => Some(ClientType::Unknown),
        "device" => Some(ClientType::Device),
        "rovacontainer" => Some(ClientType::RovaContainer),
        "wificlient" => Some(ClientType::WifiClient),
        "rovaclient" => Some(ClientType::RovaClient),
        "rovaclientappstore" => Some(ClientType::RovaClientAppStore),
        _ => None,
    };
    classify(&raw, by_code, by_name).unwrap_or(ClientType::Other(raw))
}

pub(crate) fn result(raw: Option<String>) -> CheckInResult {
    let Some(raw) = raw else {
        return CheckInResult::Other(String::new());
    };
    let by_code = |code| match code {
        0 => Some(CheckInResult::Failed),
        1 => Some(CheckInResult::Succeeded),
        2 => Some(CheckInResult::Busy),
        _ => None,
    };
    let by_name = |name: &str| match name {
        "failed" | "failure" => Some(CheckInResult::Failed),
        "succeeded" | "success" => Some(CheckInResult::Succeeded),
        "busy" => Some(CheckInResult::Busy),
        _ => None,
    };
    classify(&raw, by_code, by_name).unwrap_or(CheckInResult::Other(raw))
}

pub(crate) fn failure_type(raw: Option<String>) -> FailureType {
    let Some(raw) = raw else {
        return FailureType::None;
    };
    let by_code = |code| match code {
        0 => Some(FailureType::None),
        1 => Some(FailureType::UnspecifiedError),
        2 => Some(FailureType::AuthenticationFailure),
        3 => Some(FailureType::EnrollmentPolicyFailure),
        4 => Some(FailureType::DecryptionFailure),
        5 => Some(FailureType::NoAssignedSetting),
        6 => Some(FailureType::EncryptionFailure),
        7 => Some(FailureType::ConfigurationErrors),
        _ => None,
    };
    let by_name = |name: &str| match name {
        "none" => Some(FailureType::None),
        "unspecifiederror" => Some(FailureType::UnspecifiedError),
        "authenticationfailure" => Some(FailureType::AuthenticationFailure),
        "enrollmentpolicyfailure" => Some(FailureType::EnrollmentPolicyFailure),
        "decryptionfailure" => Some(FailureType::DecryptionFailure),
        "noassignedsetting" => Some(FailureType::NoAssignedSetting),
        "encryptionfailure" => Some(FailureType::EncryptionFailure),
        "configurationerrors" => Some(FailureType::ConfigurationErrors),
        _ => None,
    };
    classify(&raw, by_code, by_name).unwrap_or(FailureType::Other(raw))
}

/// `"5"`, `"WiFiClient"` or `"5 - WiFiClient"` to a variant; `None` when unknown
/// or when code and name disagree.
fn classify<T: PartialEq>(
    raw: &str,
    by_code: impl Fn(u64) -> Option<T>,
    by_name: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    let t = raw.trim();
    let code_len = t.bytes().take_while(u8::is_ascii_digit).count();
    if code_len == 0 {
        return by_name(&normalise(t));
    }
    let from_code = by_code(t[..code_len].parse().ok()?)?;
    let rest = t[code_len..].trim_start_matches(|c: char| c.is_whitespace() || "-:.)".contains(c));
    if rest.is_empty() {
        return Some(from_code);
    }
    (by_name(&normalise(rest))? == from_code).then_some(from_code)
}

/// Lower case, ASCII letters and digits only.
fn normalise(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn codes_names_and_pairs() {
        assert_eq!(client_type(some("5")), ClientType::WifiClient);
        assert_eq!(client_type(some("WiFiClient")), ClientType::WifiClient);
        assert_eq!(client_type(some("wifi_client")), ClientType::WifiClient);
        assert_eq!(
            client_type(some("7 - RovaClientAppStore")),
            ClientType::RovaClientAppStore
        );
        assert_eq!(client_type(some("0- Uknown")), ClientType::Unknown);
        assert_eq!(client_type(None), ClientType::Unknown);
        assert_eq!(result(some("Succeeded")), CheckInResult::Succeeded);
        assert_eq!(result(some(" 0 ")), CheckInResult::Failed);
        assert_eq!(result(some("BUSY")), CheckInResult::Busy);
        assert_eq!(result(None), CheckInResult::Other(String::new()));
        assert_eq!(
            failure_type(some("UnspecifiedError")),
            FailureType::UnspecifiedError
        );
        assert_eq!(failure_type(some("7")), FailureType::ConfigurationErrors);
        assert_eq!(failure_type(None), FailureType::None);
    }

    #[test]
    fn unknown_values_are_kept_verbatim() {
        // 2 and 4 are gaps in the client-type table.
        assert_eq!(client_type(some("4")), ClientType::Other("4".into()));
        assert_eq!(
            client_type(some("string")),
            ClientType::Other("string".into())
        );
        assert_eq!(result(some("3")), CheckInResult::Other("3".into()));
        assert_eq!(
            result(some("1 - Failed")),
            CheckInResult::Other("1 - Failed".into()),
            "disagreeing pair"
        );
        assert_eq!(result(some("1.5")), CheckInResult::Other("1.5".into()));
        assert_eq!(result(some("-1")), CheckInResult::Other("-1".into()));
        assert_eq!(
            failure_type(some("99999999999999999999999")),
            FailureType::Other("99999999999999999999999".into())
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_keeps_unknowns(s in any::<String>()) {
            if let ClientType::Other(kept) = client_type(Some(s.clone())) {
                prop_assert_eq!(kept, s.clone());
            }
            let _ = result(Some(s.clone()));
            let _ = failure_type(Some(s));
        }

        #[test]
        fn code_and_padded_code_agree(code in 0u64..12, pad in "[ ]{0,2}") {
            let padded = format!("{pad}{code}{pad}");
            let plain = code.to_string();
            prop_assert_eq!(
                std::mem::discriminant(&failure_type(Some(padded))),
                std::mem::discriminant(&failure_type(Some(plain)))
            );
        }
    }
}
