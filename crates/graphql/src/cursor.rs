//! Relay cursors of the campaign connection.
//!
//! A cursor names a position in the campaign's ascending IMEI order, so it stays valid
//! whatever page size the client or the upstream uses. It also remembers the upstream
//! page the device came from (that page's `lastSeenDeviceId` request parameter), so
//! the next client page starts from an upstream page that is already cached instead
//! of a new, uncacheable upstream cursor. Encoded as base64url of `v1:<anchor>:<imei>`:
//! opaque to clients, versioned so the payload can change.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const VERSION: &str = "v1";

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
    pub(crate) fn encode(&self) -> String {
        let anchor = self.anchor.as_deref().unwrap_or("");
        URL_SAFE_NO_PAD.encode(format!("{VERSION}:{anchor}:{}", self.imei))
    }

    pub(crate) fn decode(cursor: &str) -> Result<Self, CursorError> {
        let err = |reason| CursorError {
            cursor: cursor.chars().take(100).collect(),
            reason,
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| err("not a cursor returned by this API"))?;
        let text =
            String::from_utf8(bytes).map_err(|_| err("not a cursor returned by this API"))?;
        let mut parts = text.split(':');
        let (Some(version), Some(anchor), Some(imei), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err("not a cursor returned by this API"));
        };
        if version != VERSION {
            return Err(err("unsupported cursor version"));
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

    #[test]
    fn round_trip() {
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
            let s = c.encode();
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(Cursor::decode(&s), Ok(c));
        }
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "!!!",
            "abc",
            &URL_SAFE_NO_PAD.encode("v2::490154203237518"),
            &URL_SAFE_NO_PAD.encode("v1::99001390783557x"),
            &URL_SAFE_NO_PAD.encode("v1:990013907835574:490154203237518"),
            &URL_SAFE_NO_PAD.encode("v1::1:2"),
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}
