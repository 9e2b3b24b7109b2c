//! The invariant of the `inputs` fuzz target, shared with its corpus replay test
//! (`crates/upstream/tests/fuzz_corpus.rs`): what clients send, identifiers and
//! timestamps. None may panic; whatever parses must print back to a form that
//! parses to the same value.

use devicegraph_upstream::time::{parse_date, parse_timestamp};
use devicegraph_upstream::{AccountName, CampaignId, DeviceIdKind, DeviceIdentifier, Imei};

/// Runs every client-input parser on `data` (when it is UTF-8); panics on a violation.
pub(crate) fn check(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(imei) = s.parse::<Imei>() {
        assert_eq!(imei.as_str().parse::<Imei>().ok(), Some(imei));
    }
    if let Ok(account) = s.parse::<AccountName>() {
        assert_eq!(account.as_str().parse::<AccountName>().ok(), Some(account));
    }
    if let Ok(campaign) = s.parse::<CampaignId>() {
        assert_eq!(campaign.as_str().parse::<CampaignId>().ok(), Some(campaign));
    }
    for kind in [
        DeviceIdKind::Imei,
        DeviceIdKind::Iccid,
        DeviceIdKind::Meid,
        DeviceIdKind::Mdn,
        DeviceIdKind::Esn,
        DeviceIdKind::Msisdn,
    ] {
        let _ = DeviceIdentifier::new(kind, s);
    }
    let _ = parse_timestamp(s);
    let _ = parse_date(s);
}
