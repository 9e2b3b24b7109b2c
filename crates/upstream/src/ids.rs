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

/// 1 to 64 letters, digits, `-` and `_`: the rule shared by account names and
/// campaign ids, which also makes them always safe as a URL path segment.
fn url_safe_token(kind: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() || s.len() > 64 {
        return Err(IdError::new(kind, "must be 1 to 64 characters"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(IdError::new(
            kind,
            format!("{} may contain only letters, digits, '-' and '_'", shown(s)),
        ));
    }
    Ok(())
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

/// A ThingSpace billing account name, e.g. `0000123456-00001`. Kept as a string so
/// leading zeros survive; restricted to the characters real account names use so it
/// is always safe as a URL path segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountName(String);

string_newtype!(AccountName);

impl FromStr for AccountName {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        url_safe_token("account", s)?;
        Ok(Self(s.to_owned()))
    }
}

/// A FOTA campaign id (a UUID in practice; any URL-safe token up to 64 characters is
/// accepted so unusual upstream ids still work).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CampaignId(String);

string_newtype!(CampaignId);

impl FromStr for CampaignId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        url_safe_token("campaign id", s)?;
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

        #[test]
        fn imei_parser_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<Imei>();
            let _ = s.parse::<AccountName>();
            let _ = s.parse::<CampaignId>();
        }
    }
}
