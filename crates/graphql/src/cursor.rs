//! Relay cursors of the device connections (a campaign's, an account's).
//!
//! A cursor names a position in the list's ascending IMEI order, so it stays valid
//! whatever page size the client or the upstream uses (and whatever filter: it is a
//! position, not a page). It also remembers the upstream page the device came from
//! (that page's `lastSeenDeviceId` request parameter), so the next client page starts
//! from an upstream page that is already cached instead of a new, uncacheable
//! upstream cursor. Encoded as base64url of `v2:<owner>:<anchor>:<imei>`: opaque to
//! clients, versioned so the payload can change. `<owner>` is a hash of the list the
//! cursor was issued for (account and campaign, or the account's device list), so a
//! cursor passed to another list is refused instead of silently positioning a
//! foreign one; it is a binding, not a secret (authorization is still checked on the
//! account). v1 cursors (unbound) are refused with a message to start again from the
//! first page. Decoding is bounded: a cursor longer than any this API issues is
//! refused before it is decoded.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const VERSION: &str = "v2";

use devicegraph_upstream::{AccountName, CampaignId};

/// The list a cursor belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner<'a> {
    /// A campaign's devices.
    Campaign {
        account: &'a AccountName,
        campaign: &'a CampaignId,
    },
    /// Every device of an account.
    Account { account: &'a AccountName },
}

/// The longest cursor this API issues is about 120 characters (a 16-digit tag and
/// two device ids of at most 32 digits, in base64): anything longer is refused
/// before decoding.
const MAX_CURSOR_LEN: usize = 160;

impl Owner<'_> {
    /// FNV-1a (64 bit) of `account \0 campaign` (a campaign's list) or `account \0 \0`
    /// (the account's, which no campaign id can spell), in hex: stable across replicas
    /// and releases, unlike std's hasher.
    fn tag(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let (account, list) = match *self {
            Self::Campaign { account, campaign } => (account, campaign.as_str()),
            Self::Account { account } => (account, "\0"),
        };
        let bytes = account.as_str().bytes().chain([0]).chain(list.bytes());
        for b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }
}

/// A decoded campaign cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The last IMEI returned before this position.
    pub(crate) imei: String,
    /// The upstream `lastSeenDeviceId` that fetched the page holding `imei`
    /// (`None` = the first page).
    pub(crate) anchor: Option<String>,
}

/// Why a cursor was refused; the message never echoes the decoded payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor {cursor:?}: {reason}")]
pub(crate) struct CursorError {
    cursor: String,
    reason: &'static str,
}

fn is_device_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Ascending device order: numeric for digit strings of different lengths, which for
/// the upstream's 15-digit IMEIs is plain string order.
pub(crate) fn id_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Cursor {
    pub(crate) fn encode(&self, owner: Owner<'_>) -> String {
        let anchor = self.anchor.as_deref().unwrap_or("");
        URL_SAFE_NO_PAD.encode(format!("{VERSION}:{}:{anchor}:{}", owner.tag(), self.imei))
    }

    pub(crate) fn decode(cursor: &str, owner: Owner<'_>) -> Result<Self, CursorError> {
        let err = |reason| CursorError {
            cursor: cursor.chars().take(100).collect(),
            reason,
        };
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(err("not a cursor returned by this API"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| err("not a cursor returned by this API"))?;
        let text =
            String::from_utf8(bytes).map_err(|_| err("not a cursor returned by this API"))?;
        let mut parts = text.split(':');
        if parts.next() != Some(VERSION) {
            return Err(err(
                "unsupported cursor version (issued by an older release); start from the first page",
            ));
        }
        let (Some(tag), Some(anchor), Some(imei), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err("not a cursor returned by this API"));
        };
        if tag != owner.tag() {
            return Err(err(
                "this cursor belongs to another list (another campaign or account)",
            ));
        }
        if !is_device_id(imei) || !(anchor.is_empty() || is_device_id(anchor)) {
            return Err(err("not a cursor returned by this API"));
        }
        // A page fetched after `anchor` only holds devices above it; anything else
        // was not produced here and would skip devices.
        if !anchor.is_empty() && id_cmp(anchor, imei) != std::cmp::Ordering::Less {
            return Err(err("not a cursor returned by this API"));
        }
        Ok(Self {
            imei: imei.to_owned(),
            anchor: (!anchor.is_empty()).then(|| anchor.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(account: &str, campaign: &str) -> (AccountName, CampaignId) {
        (
            account.parse().unwrap_or_else(|e| panic!("{e}")),
            campaign.parse().unwrap_or_else(|e| panic!("{e}")),
        )
    }

    const CAMPAIGN: &str = "f841e14a-7c9f-11ec-b56c-76bbdf26f3b9";

    #[test]
    fn a_cursor_only_works_for_its_own_campaign_and_account() {
        let (a, c) = ids("0000123456-00001", CAMPAIGN);
        let (b, d) = ids("0000123456-00002", "a841e14a-7c9f-11ec-b56c-76bbdf26f3b9");
        let cursor = Cursor {
            imei: "490154203237518".into(),
            anchor: None,
        };
        let mine = Owner::Campaign {
            account: &a,
            campaign: &c,
        };
        let s = cursor.encode(mine);
        assert_eq!(Cursor::decode(&s, mine), Ok(cursor.clone()));
        for foreign in [
            Owner::Campaign {
                account: &b,
                campaign: &c,
            },
            Owner::Campaign {
                account: &a,
                campaign: &d,
            },
            Owner::Account { account: &a },
        ] {
            let e = Cursor::decode(&s, foreign).err().map(|e| e.to_string());
            assert!(
                e.as_deref()
                    .is_some_and(|e| e.contains("another campaign or account")),
                "{e:?}"
            );
        }
        // An unbound v1 cursor from an older release.
        let old = URL_SAFE_NO_PAD.encode("v1::490154203237518");
        assert!(Cursor::decode(&old, mine).is_err());

        // An account's cursor works for that account's list only.
        let list = Owner::Account { account: &a };
        let s = cursor.encode(list);
        assert_eq!(Cursor::decode(&s, list), Ok(cursor.clone()));
        for foreign in [Owner::Account { account: &b }, mine] {
            assert!(Cursor::decode(&s, foreign).is_err());
        }
    }

    #[test]
    fn the_longest_cursor_issued_decodes_and_longer_ones_are_refused_unread() {
        let (a, _) = ids("0000123456-00001", CAMPAIGN);
        let owner = Owner::Account { account: &a };
        let longest = Cursor {
            imei: "9".repeat(32),
            anchor: Some("1".repeat(32)),
        };
        let s = longest.encode(owner);
        assert!(s.len() <= MAX_CURSOR_LEN, "{}", s.len());
        assert_eq!(Cursor::decode(&s, owner), Ok(longest));
        let huge = "A".repeat(1 << 20);
        let e = Cursor::decode(&huge, owner).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.len() < 300));
    }

    #[test]
    fn round_trip() {
        let (a, c) = ids("0000123456-00001", CAMPAIGN);
        let owner = Owner::Campaign {
            account: &a,
            campaign: &c,
        };
        for c in [
            Cursor {
                imei: "490154203237518".into(),
                anchor: None,
            },
            Cursor {
                imei: "490154203237518".into(),
                anchor: Some("490154203237000".into()),
            },
        ] {
            let s = c.encode(owner);
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(Cursor::decode(&s, owner), Ok(c));
        }
    }

    #[test]
    fn refuses_garbage() {
        let (a, c) = ids("0000123456-00001", CAMPAIGN);
        let owner = Owner::Campaign {
            account: &a,
            campaign: &c,
        };
        let tag = owner.tag();
        for bad in [
            "",
            "!!!",
            "abc",
            &URL_SAFE_NO_PAD.encode("v3::490154203237518"),
            &URL_SAFE_NO_PAD.encode(format!("v2:{tag}::99001390783557x")),
            &URL_SAFE_NO_PAD.encode(format!("v2:{tag}:990013907835574:490154203237518")),
            &URL_SAFE_NO_PAD.encode(format!("v2:{tag}::1:2")),
            &URL_SAFE_NO_PAD.encode("v2:0000000000000000::490154203237518"),
        ] {
            assert!(Cursor::decode(bad, owner).is_err(), "{bad}");
        }
    }
}
