//! Identifier newtypes: parse, don't validate. Every identifier that reaches the
//! upstream from outside input goes through one of these, so the client never sends
//! a malformed path segment or body.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused. The message names the identifier kind and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct IdError {
    pub kind: &'static str,
    pub reason: String,
}

impl IdError {
    fn new(kind: &'static str, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
        }
    }
}

/// Luhn check over a string of ASCII digits (the last digit is the check digit).
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The Luhn check digit to append to `body` (ASCII digits).
pub fn luhn_check_digit(body: &str) -> u8 {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b.wrapping_sub(b'0')) % 10;
            if i % 2 == 0 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    ((10 - (sum % 10)) % 10) as u8
}

/// At most 40 characters of a refused value, quoted. The value is outside input of
/// any length, and the message ends up in logs and in answers to clients.
fn shown(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((at, _)) => format!("{:?}...", s.get(..at).unwrap_or_default()),
        None => format!("{s:?}"),
    }
}

/// The shape of a ThingSpace billing account name, as a regular expression: digits,
/// a dash, digits (`0000123456-00001`; leading zeros are part of the name). The
/// seed pages' every example and the simulator's accounts have it; the lengths leave
/// room for longer names than the examples. [`AccountName`] checks exactly this (by
/// hand; a test holds the two together), and the OpenAPI description publishes it.
pub const ACCOUNT_NAME_PATTERN: &str = "^[0-9]{1,20}-[0-9]{1,10}$";

/// The shape of a FOTA campaign id, as a regular expression: a UUID in its usual
/// 8-4-4-4-12 hexadecimal spelling, either case (every campaign id in the seed pages,
/// and the simulator's, is one). [`CampaignId`] checks exactly this.
pub const CAMPAIGN_ID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// Whether `s` is 1 to `max` bytes of `allowed`.
fn run_of(s: &[u8], max: usize, allowed: fn(&u8) -> bool) -> bool {
    (1..=max).contains(&s.len()) && s.iter().all(allowed)
}

/// [`ACCOUNT_NAME_PATTERN`], by hand.
fn is_account_name(s: &str) -> bool {
    s.split_once('-').is_some_and(|(number, suffix)| {
        run_of(number.as_bytes(), 20, u8::is_ascii_digit)
            && run_of(suffix.as_bytes(), 10, u8::is_ascii_digit)
    })
}

/// [`CAMPAIGN_ID_PATTERN`], by hand.
fn is_campaign_id(s: &str) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut groups = s.split('-');
    GROUPS.iter().all(|&len| {
        groups
            .next()
            .is_some_and(|g| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
    }) && groups.next().is_none()
}

/// The accessors and conversions every validated string newtype here shares:
/// `as_str`, `TryFrom<String>` (through `FromStr`, so serde validates too),
/// `From<Self> for String` and `Display`.
macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> Self {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A 15-digit IMEI whose last digit is a valid Luhn check digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Imei(String);

string_newtype!(Imei);

impl FromStr for Imei {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 15 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::new(
                "IMEI",
                format!("{} is not 15 decimal digits", shown(s)),
            ));
        }
        if !luhn_valid(s) {
            return Err(IdError::new(
                "IMEI",
                format!("{} has a wrong Luhn check digit", shown(s)),
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

/// A ThingSpace billing account name, e.g. `0000123456-00001`: digits, a dash,
/// digits ([`ACCOUNT_NAME_PATTERN`]). Kept as a string so leading zeros survive; only
/// digits and one dash, so it is always safe as a URL path segment, and a malformed
/// name (`0`, a typo) is refused before it costs an upstream call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountName(String);

string_newtype!(AccountName);

impl FromStr for AccountName {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !is_account_name(s) {
            return Err(IdError::new(
                "account",
                format!(
                    "{} is not an account name: expected digits, a dash and digits, \
                     e.g. 0000123456-00001",
                    shown(s)
                ),
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

/// A FOTA campaign id: a UUID ([`CAMPAIGN_ID_PATTERN`]), kept as written (ThingSpace
/// returns them in lower case; upper case is accepted and sent as given).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CampaignId(String);

string_newtype!(CampaignId);

impl FromStr for CampaignId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !is_campaign_id(s) {
            return Err(IdError::new(
                "campaign id",
                format!(
                    "{} is not a campaign id: expected a UUID, \
                     e.g. f841e14a-7c9f-11ec-b56c-76bbdf26f3b9",
                    shown(s)
                ),
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

/// A device-management protocol as the account device list filters by it
/// (`LWM2M`, `OMADM`, `HTTP`, `NONE` in Verizon's documentation): 1 to 16 letters,
/// digits or `_`, kept upper-case, so `lwm2m` and `LWM2M` are one filter (and one
/// cache entry). Unknown names are accepted: the upstream decides what they match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Protocol(String);

string_newtype!(Protocol);

impl FromStr for Protocol {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty()
            || s.len() > 16
            || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(IdError::new(
                "protocol",
                format!(
                    "{} is not 1 to 16 letters, digits or '_' (e.g. LWM2M, OMADM, HTTP)",
                    shown(s)
                ),
            ));
        }
        Ok(Self(s.to_ascii_uppercase()))
    }
}

/// The kinds of device identifier the provisioning-history endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DeviceIdKind {
    Esn,
    Iccid,
    Imei,
    Mdn,
    Meid,
    Msisdn,
}

impl DeviceIdKind {
    /// The lower-case spelling the upstream's example uses on the wire.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Esn => "esn",
            Self::Iccid => "iccid",
            Self::Imei => "imei",
            Self::Mdn => "mdn",
            Self::Meid => "meid",
            Self::Msisdn => "msisdn",
        }
    }
}

impl FromStr for DeviceIdKind {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "esn" => Self::Esn,
            "iccid" => Self::Iccid,
            "imei" => Self::Imei,
            "mdn" => Self::Mdn,
            "meid" => Self::Meid,
            "msisdn" => Self::Msisdn,
            _ => {
                return Err(IdError::new(
                    "device id kind",
                    format!(
                        "{} is not one of ESN, ICCID, IMEI, MDN, MEID, MSISDN",
                        shown(s)
                    ),
                ));
            }
        })
    }
}

/// A device identifier of any kind, checked against that kind's format:
/// ESN 11 decimal digits, ICCID up to 20 digits, IMEI up to 16 digits, MDN 10 digits,
/// MEID 14 hex characters, MSISDN 11 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct DeviceIdentifier {
    kind: DeviceIdKind,
    id: String,
}

impl DeviceIdentifier {
    pub fn new(kind: DeviceIdKind, id: impl Into<String>) -> Result<Self, IdError> {
        let id = id.into();
        let digits = |n: std::ops::RangeInclusive<usize>| {
            n.contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
        };
        let ok = match kind {
            DeviceIdKind::Esn => digits(11..=11),
            DeviceIdKind::Iccid => digits(1..=20),
            DeviceIdKind::Imei => digits(1..=16),
            DeviceIdKind::Mdn => digits(10..=10),
            DeviceIdKind::Meid => id.len() == 14 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            DeviceIdKind::Msisdn => digits(11..=11),
        };
        if !ok {
            let rule = match kind {
                DeviceIdKind::Esn => "11 decimal digits",
                DeviceIdKind::Iccid => "up to 20 decimal digits",
                DeviceIdKind::Imei => "up to 16 decimal digits",
                DeviceIdKind::Mdn => "10 decimal digits",
                DeviceIdKind::Meid => "14 hexadecimal characters",
                DeviceIdKind::Msisdn => "11 decimal digits",
            };
            return Err(IdError::new(
                "device id",
                format!("{} is not a valid {kind:?}: expected {rule}", shown(&id)),
            ));
        }
        Ok(Self { kind, id })
    }

    pub fn kind(&self) -> DeviceIdKind {
        self.kind
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn protocols_are_short_tokens_kept_upper_case() {
        assert_eq!("lwm2m".parse::<Protocol>().unwrap().as_str(), "LWM2M");
        assert_eq!("HTTP".parse::<Protocol>().unwrap().as_str(), "HTTP");
        for bad in ["", "LW M2M", "a*", "LWM2M:1", "ABCDEFGHIJKLMNOPQ"] {
            assert!(bad.parse::<Protocol>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn known_imeis() {
        // The seed page's example IMEI 990013907835573 is not Luhn-valid; 8 is its check digit.
        assert!("990013907835578".parse::<Imei>().is_ok());
        assert!("990013907835573".parse::<Imei>().is_err());
        assert!("99001390783557".parse::<Imei>().is_err());
        assert!("99001390783557a".parse::<Imei>().is_err());
    }

    #[test]
    fn account_keeps_leading_zeros() {
        let a: AccountName = "0000123456-00001".parse().unwrap();
        assert_eq!(a.as_str(), "0000123456-00001");
        assert!("00/../x".parse::<AccountName>().is_err());
        assert!("".parse::<AccountName>().is_err());
    }

    /// The examples of the seed pages and the simulator's shapes pass; what the
    /// issue calls malformed does not.
    #[test]
    fn account_names_and_campaign_ids_have_their_shape() {
        for good in [
            "0000123456-00001",
            "0000390947-00002",
            "1-1",
            "12345678901234567890-0123456789",
        ] {
            assert!(good.parse::<AccountName>().is_ok(), "{good}");
        }
        for bad in [
            "0",
            "",
            "-",
            "0000123456",
            "0000123456-",
            "-00001",
            "0000123456--00001",
            "0000123456-00001-1",
            "a000123456-00001",
            "0000123456-0000x",
            " 0000123456-00001",
            "123456789012345678901-1",
            "1-12345678901",
            "0000123456_00001",
            "０-1",
        ] {
            let e = bad.parse::<AccountName>().unwrap_err();
            assert_eq!(e.kind, "account", "{bad}");
        }
        // Every campaign id of the seed pages.
        for good in [
            "252d7ffc-7e35-11ec-931d-76f56843c393",
            "8f5e9a4a-6ce2-11ec-ace7-3ea293843397",
            "6f5890ee-61ac-11ec-ad90-4ef948cff74b",
            "172e9ffa-5c42-11ec-b4e7-9ecd0c925d89",
            "9a77091d-4bd5-11ec-9088-2ad91a9c8d05",
            "F841E14A-7C9F-11EC-B56C-76BBDF26F3B9",
        ] {
            assert_eq!(good.parse::<CampaignId>().unwrap().as_str(), good);
        }
        for bad in [
            "nope",
            "",
            "c1",
            "252d7ffc7e3511ec931d76f56843c393",
            "252d7ffc-7e35-11ec-931d-76f56843c39",
            "252d7ffc-7e35-11ec-931d-76f56843c3933",
            "252d7ffc-7e35-11ec-931d-76f56843c39g",
            "{252d7ffc-7e35-11ec-931d-76f56843c393}",
            "252d7ffc-7e35-11ec-931d-76f56843c393-",
            "252d7ffc_7e35-11ec-931d-76f56843c393",
        ] {
            let e = bad.parse::<CampaignId>().unwrap_err();
            assert_eq!(e.kind, "campaign id", "{bad}");
        }
        let e = "0".parse::<AccountName>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid account: \"0\" is not an account name: expected digits, a dash and \
             digits, e.g. 0000123456-00001"
        );
    }

    fn agree(pattern: &str, parses: bool, s: &str) -> Result<(), TestCaseError> {
        let re = regex::Regex::new(pattern).unwrap();
        prop_assert_eq!(re.is_match(s), parses, "{:?} against {}", s, pattern);
        Ok(())
    }

    #[test]
    fn refused_values_are_echoed_bounded() {
        let long = "9".repeat(1_000_000);
        let errors = [
            long.parse::<Imei>().unwrap_err(),
            format!("{long}/").parse::<AccountName>().unwrap_err(),
            format!("{long}é").parse::<CampaignId>().unwrap_err(),
            long.parse::<DeviceIdKind>().unwrap_err(),
            DeviceIdentifier::new(DeviceIdKind::Mdn, long.clone()).unwrap_err(),
        ];
        for e in errors {
            assert!(e.to_string().len() < 150, "{}", e.to_string().len());
        }
        // Short values are shown whole, quoted.
        let e = "12ab".parse::<Imei>().unwrap_err();
        assert_eq!(e.reason, "\"12ab\" is not 15 decimal digits");
    }

    #[test]
    fn identifier_formats() {
        assert!(DeviceIdentifier::new(DeviceIdKind::Iccid, "89141390780800784259").is_ok());
        assert!(DeviceIdentifier::new(DeviceIdKind::Iccid, "891413907808007842591").is_err());
        assert!(DeviceIdentifier::new(DeviceIdKind::Meid, "A10000009296F2").is_ok());
        assert!(DeviceIdentifier::new(DeviceIdKind::Meid, "A10000009296G2").is_err());
        assert!(DeviceIdentifier::new(DeviceIdKind::Mdn, "5086303371").is_ok());
        assert!(DeviceIdentifier::new(DeviceIdKind::Mdn, "15086303371").is_err());
        assert!(DeviceIdentifier::new(DeviceIdKind::Msisdn, "15086303371").is_ok());
        assert!(DeviceIdentifier::new(DeviceIdKind::Esn, "1234567890").is_err());
    }

    proptest! {
        #[test]
        fn check_digit_makes_valid_imei(body in "[0-9]{14}") {
            let d = luhn_check_digit(&body);
            let s = format!("{body}{d}");
            prop_assert!(s.parse::<Imei>().is_ok());
            // Any other last digit is refused.
            let wrong = format!("{body}{}", (d + 1) % 10);
            prop_assert!(wrong.parse::<Imei>().is_err());
        }

        /// Whatever the published pattern matches parses...
        #[test]
        fn what_the_patterns_match_parses(
            account in "[0-9]{1,20}-[0-9]{1,10}",
            campaign in "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        ) {
            agree(ACCOUNT_NAME_PATTERN, account.parse::<AccountName>().is_ok(), &account)?;
            agree(CAMPAIGN_ID_PATTERN, campaign.parse::<CampaignId>().is_ok(), &campaign)?;
        }

        /// ...and near misses (the same alphabet, any arrangement) are judged alike by
        /// the pattern and the hand check.
        #[test]
        fn near_misses_are_judged_alike(
            account in "[0-9]{18,22}-[0-9]{8,12}|[0-9a-]{0,34}|-?[0-9]{0,3}-?[0-9]{0,3}-?",
            campaign in "[0-9a-gA-G]{7,9}-[0-9a-gA-G]{3,5}-[0-9a-gA-G]{4}-[0-9a-gA-G-]{3,6}-[0-9a-gA-G]{11,13}\
                         |[0-9a-gA-G-]{30,40}",
        ) {
            agree(ACCOUNT_NAME_PATTERN, account.parse::<AccountName>().is_ok(), &account)?;
            agree(CAMPAIGN_ID_PATTERN, campaign.parse::<CampaignId>().is_ok(), &campaign)?;
        }

        #[test]
        fn imei_parser_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<Imei>();
            let _ = s.parse::<AccountName>();
            let _ = s.parse::<CampaignId>();
        }
    }
}
