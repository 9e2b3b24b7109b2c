//! Relay global ids (`Node.id`): what they encode and how a client's id is read back.
//!
//! An id is base64url (no padding) of a versioned, typed text:
//!
//! - `v1:Device:<account>:<imei>`
//! - `v1:CampaignDevice:<account>:<campaign id>:<device id>`
//!
//! It is a pure function of what identifies the object (no key, no process state), so
//! every replica and every release that keeps `v1` gives the same id, which is what a
//! client's normalized cache (Apollo's `InMemoryCache` keys objects by `__typename`
//! and `id`) and a persisted cache need. The account is part of every id: the same
//! IMEI in two accounts is two objects, and resolving an id checks that account
//! against the caller's scope like any other read (`node.rs`).
//!
//! Ids are opaque to clients but not secret: a forged id is no more than asking
//! `device(account:, imei:)` directly, and is authorized the same way. Reading is
//! strict and bounded: at most [`MAX_ID_LEN`] characters, the exact version and type
//! names, every part parsed into its identifier newtype, nothing left over. Anything
//! else is refused with a message that never echoes the decoded text.
//!
//! `Campaign` is not a `Node`: the contract keeps ThingSpace's campaign id (a UUID) as
//! `Campaign.id`, and clients' caches key campaigns by it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use devicegraph_upstream::{AccountName, CampaignId, Imei};

const VERSION: &str = "v1";
const DEVICE: &str = "Device";
const CAMPAIGN_DEVICE: &str = "CampaignDevice";

/// Longest id read. The longest id issued (a 64-character account and campaign id and
/// a 32-digit device id) is 232 characters; anything longer was not issued here, and
/// is refused before it is decoded.
pub(crate) const MAX_ID_LEN: usize = 256;

/// The object a global id names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum GlobalId {
    /// A device of an account (`Device`).
    Device { account: AccountName, imei: Imei },
    /// A device's row in a campaign report (`CampaignDevice`). The device id is the
    /// upstream's, as the campaign lists it (ascending digit strings).
    CampaignDevice {
        account: AccountName,
        campaign: CampaignId,
        device_id: String,
    },
}

/// Why an id was refused; the message quotes at most the id's first 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id {shown:?}: {reason}")]
pub(crate) struct IdError {
    shown: String,
    reason: &'static str,
}

/// What a campaign lists as a device id: 1 to 32 decimal digits (the campaign
/// cursor's rule, `cursor.rs`).
fn is_device_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit())
}

impl GlobalId {
    /// The id of `account`'s device `imei`.
    pub(crate) fn device(account: &AccountName, imei: &Imei) -> String {
        URL_SAFE_NO_PAD.encode(format!("{VERSION}:{DEVICE}:{account}:{imei}"))
    }

    /// The id of device `device_id`'s row in `account`'s campaign `campaign`.
    pub(crate) fn campaign_device(
        account: &AccountName,
        campaign: &CampaignId,
        device_id: &str,
    ) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{VERSION}:{CAMPAIGN_DEVICE}:{account}:{campaign}:{device_id}"
        ))
    }

    /// The id as issued.
    #[cfg(test)]
    pub(crate) fn encode(&self) -> String {
        match self {
            Self::Device { account, imei } => Self::device(account, imei),
            Self::CampaignDevice {
                account,
                campaign,
                device_id,
            } => Self::campaign_device(account, campaign, device_id),
        }
    }

    /// The account the object belongs to (what the caller's scope is checked
    /// against).
    pub(crate) fn account(&self) -> &AccountName {
        match self {
            Self::Device { account, .. } | Self::CampaignDevice { account, .. } => account,
        }
    }

    /// Reads an id a client sent.
    pub(crate) fn decode(id: &str) -> Result<Self, IdError> {
        let err = |reason| IdError {
            shown: id.chars().take(64).collect(),
            reason,
        };
        const FOREIGN: &str = "not an id issued by this API";
        if id.len() > MAX_ID_LEN {
            return Err(err("longer than any id issued by this API"));
        }
        let text = URL_SAFE_NO_PAD
            .decode(id)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| err(FOREIGN))?;
        let mut parts = text.split(':');
        match parts.next() {
            Some(VERSION) => {}
            Some(v)
                if v.strip_prefix('v')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
            {
                return Err(err("unsupported id version (issued by another release)"));
            }
            _ => return Err(err(FOREIGN)),
        }
        let kind = parts.next();
        let rest: Vec<&str> = parts.collect();
        match (kind, rest.as_slice()) {
            (Some(DEVICE), [account, imei]) => Ok(Self::Device {
                account: account.parse().map_err(|_| err(FOREIGN))?,
                imei: imei.parse().map_err(|_| err(FOREIGN))?,
            }),
            (Some(CAMPAIGN_DEVICE), [account, campaign, device_id]) if is_device_id(device_id) => {
                Ok(Self::CampaignDevice {
                    account: account.parse().map_err(|_| err(FOREIGN))?,
                    campaign: campaign.parse().map_err(|_| err(FOREIGN))?,
                    device_id: (*device_id).to_owned(),
                })
            }
            _ => Err(err(FOREIGN)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(s: &str) -> AccountName {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    const IMEI: &str = "361004961400806";
    const CAMPAIGN: &str = "f841e14a-7c9f-11ec-b56c-76bbdf26f3b9";

    fn samples() -> Vec<GlobalId> {
        vec![
            GlobalId::Device {
                account: account("0000123456-00001"),
                imei: IMEI.parse().unwrap_or_else(|e| panic!("{e}")),
            },
            GlobalId::CampaignDevice {
                account: account("0000123456-00001"),
                campaign: CAMPAIGN.parse().unwrap_or_else(|e| panic!("{e}")),
                device_id: IMEI.into(),
            },
        ]
    }

    #[test]
    fn round_trip_and_url_safe() {
        for id in samples() {
            let s = id.encode();
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{s}"
            );
            assert_eq!(GlobalId::decode(&s), Ok(id));
        }
    }

    /// Ids live in clients' persisted caches: the encoding is fixed for `v1`.
    #[test]
    fn the_encoding_is_stable() {
        let [device, row] = samples().try_into().unwrap_or_else(|_| panic!("two"));
        assert_eq!(
            device.encode(),
            "djE6RGV2aWNlOjAwMDAxMjM0NTYtMDAwMDE6MzYxMDA0OTYxNDAwODA2"
        );
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(row.encode())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .ok(),
            Some(format!(
                "v1:CampaignDevice:0000123456-00001:{CAMPAIGN}:{IMEI}"
            ))
        );
    }

    #[test]
    fn the_longest_issued_id_fits() {
        // The longest account name and campaign id the identifier rules accept.
        let long_account = format!("{}-{}", "9".repeat(20), "9".repeat(10));
        let id = GlobalId::CampaignDevice {
            account: account(&long_account),
            campaign: "F841E14A-7C9F-11EC-B56C-76BBDF26F3B9"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            device_id: "9".repeat(32),
        };
        let s = id.encode();
        assert!(s.len() <= MAX_ID_LEN, "{}", s.len());
        assert_eq!(GlobalId::decode(&s), Ok(id));
    }

    #[test]
    fn says_when_only_the_version_is_wrong() {
        let newer = URL_SAFE_NO_PAD.encode("v2:Device:0000123456-00001:361004961400806");
        let e = GlobalId::decode(&newer).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("version")));
        let garbage = URL_SAFE_NO_PAD.encode("nope");
        let e = GlobalId::decode(&garbage).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("not an id issued by this API")));
    }

    #[test]
    fn refuses_forged_and_malformed_ids() {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let too_long = "A".repeat(MAX_ID_LEN + 1);
        for bad in [
            String::new(),
            "!!!".into(),
            "Device:1".into(),
            // Padding, standard alphabet: not how ids are issued.
            format!("{}=", b64("v1:Device:0000123456-00001:36100496140080")),
            too_long,
            b64("v2:Device:0000123456-00001:361004961400806"),
            b64("v1:Campaign:0000123456-00001:f841e14a"),
            b64("v1:device:0000123456-00001:361004961400806"),
            b64("v1:Device:0000123456-00001:361004961400807"), // Luhn
            b64("v1:Device:0000123456-00001:361004961400806:x"),
            b64("v1:Device:0000 123456:361004961400806"),
            b64("v1:Device::361004961400806"),
            b64("v1:CampaignDevice:0000123456-00001:c:36100496140080x"),
            b64("v1:CampaignDevice:0000123456-00001:c:"),
            b64("v1:CampaignDevice:0000123456-00001:c/../d:361004961400806"),
            URL_SAFE_NO_PAD.encode([0xff, 0xfe, b':']),
        ] {
            let e = GlobalId::decode(&bad);
            assert!(e.is_err(), "{bad}: {e:?}");
            let message = e.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.len() < 150, "{message}");
            assert!(!message.contains("0000 123456"), "{message}");
        }
    }

    proptest::proptest! {
        /// Whatever a client sends, reading it ends in an id or a short refusal.
        #[test]
        fn any_text_is_read_or_refused(id in "\\PC{0,300}") {
            if let Err(e) = GlobalId::decode(&id) {
                proptest::prop_assert!(e.to_string().len() < 400);
            }
        }

        /// Base64 of anything near the format: never a panic; what decodes
        /// re-encodes to the same id.
        #[test]
        fn near_misses_round_trip_or_are_refused(
            text in "v[0-9]:(Device|CampaignDevice|[A-Za-z]{0,5}):[0-9A-Za-z_-]{0,70}(:[0-9a-f-]{0,40})?:[0-9]{0,40}"
        ) {
            let id = URL_SAFE_NO_PAD.encode(&text);
            if let Ok(decoded) = GlobalId::decode(&id) {
                proptest::prop_assert_eq!(decoded.encode(), id);
            }
        }

        #[test]
        fn every_device_id_round_trips(
            account in "[0-9]{1,20}-[0-9]{1,10}",
            body in "[0-9]{14}",
        ) {
            let digit = (0..10u8)
                .map(|d| format!("{body}{d}"))
                .find(|s| s.parse::<Imei>().is_ok())
                .unwrap_or_default();
            let id = GlobalId::Device {
                account: account.parse().unwrap_or_else(|e| panic!("{e}")),
                imei: digit.parse().unwrap_or_else(|e| panic!("{e}")),
            };
            proptest::prop_assert_eq!(GlobalId::decode(&id.encode()), Ok(id));
        }
    }
}
