//! What a `Device` selection reads besides the device's details: which per-device
//! histories, found by looking ahead at the selection. The resolver that builds a
//! `Device` reads them alongside the details (`device::prefetch_histories`), and
//! records them for the operation, so that `Device.freshness` knows which parts the
//! operation loads for the device without loading anything itself.

use async_graphql::{Lookahead, Result};

use crate::error::bad_input;

/// The per-device histories a `Device` selection reads, so that they can be read
/// alongside the device's details rather than after them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wants {
    upgrades: bool,
    check_ins: bool,
}

impl Wants {
    /// What the selection `device` (a `Device` field's look-ahead) reads. A field
    /// whose arguments it will refuse reads nothing: reading ahead must never make a
    /// call the operation would not make.
    pub(crate) fn of(device: Lookahead<'_>) -> Self {
        let check_ins = device.field("checkIns");
        let check_ins_valid = check_ins.selection_fields().iter().all(|field| {
            let last = field.arguments().ok().and_then(|args| {
                args.into_iter()
                    .find(|(name, _)| name.as_str() == "last")
                    .map(|(_, value)| value)
            });
            match last {
                None | Some(async_graphql::Value::Null) => true,
                Some(async_graphql::Value::Number(n)) => n
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .is_some_and(|n| keep_last(Some(n)).is_ok()),
                Some(_) => false,
            }
        });
        Self {
            upgrades: device.field("upgradeHistory").exists(),
            check_ins: (check_ins.exists() && check_ins_valid)
                || device.field("lastCheckIn").exists(),
        }
    }

    /// Whether the selection reads the firmware upgrade history.
    pub(crate) fn upgrades(self) -> bool {
        self.upgrades
    }

    /// Whether the selection reads the check-ins (`checkIns` or `lastCheckIn`).
    pub(crate) fn check_ins(self) -> bool {
        self.check_ins
    }

    /// Whether the selection reads no history at all.
    pub(crate) fn is_empty(self) -> bool {
        !self.upgrades && !self.check_ins
    }

    /// What either selection reads (one device selected twice in an operation).
    pub(crate) fn union(self, other: Self) -> Self {
        Self {
            upgrades: self.upgrades || other.upgrades,
            check_ins: self.check_ins || other.check_ins,
        }
    }
}

/// `checkIns(last:)`: how many of the newest to keep (`None` = all).
pub(crate) fn keep_last(last: Option<i32>) -> Result<Option<usize>> {
    match last {
        None => Ok(None),
        Some(n) => usize::try_from(n)
            .map(Some)
            .map_err(|_| bad_input(format!("last must be 0 or more, got {n}"))),
    }
}
