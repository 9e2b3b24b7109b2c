//! The simulated fleet and its records, all derived from `(seed, devices)`.
//!
//! [`World`] is the only thing the server holds: a few dozen blocks, accounts and
//! campaigns. Per-device records are recomputed on every request (a few microseconds
//! each), which keeps memory flat whatever the fleet size.

pub(crate) mod fleet;
pub(crate) mod idents;
pub(crate) mod imei;
pub(crate) mod provisioning;
pub(crate) mod records;
pub(crate) mod rng;
pub(crate) mod time;

use fleet::Fleet;
use idents::Mdns;

/// The largest fleet the identifier schemes support comfortably.
pub const MAX_DEVICES: u64 = 100_000_000;

/// Fleet plus identifier mappings.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) fleet: Fleet,
    pub(crate) mdns: Mdns,
}

/// Why a provisioning `deviceId` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DeviceIdError {
    #[error("unknown deviceId kind {0:?}; expected one of ESN, ICCID, IMEI, MDN, MEID, MSISDN")]
    Kind(String),
    #[error("deviceId {id:?} is not a valid {kind} ({rule})")]
    Format {
        kind: &'static str,
        id: String,
        rule: &'static str,
    },
}

impl World {
    pub(crate) fn new(seed: u64, devices: u64) -> Self {
        Self {
            fleet: Fleet::generate(seed, devices),
            mdns: Mdns::new(seed),
        }
    }

    pub(crate) fn devices(&self) -> u64 {
        self.fleet.blocks.devices()
    }

    /// The device index of `imei` if it belongs to `account`.
    pub(crate) fn device_in(&self, account: usize, imei: &str) -> Option<u64> {
        let index = self.fleet.blocks.index_of(imei::parse_imei(imei.trim())?)?;
        self.fleet
            .accounts
            .get(account)
            .filter(|a| a.contains(index))
            .map(|_| index)
    }

    /// Resolves a provisioning `deviceId` (`kind` case-insensitive). `Ok(None)` is a
    /// well-formed identifier of no simulated device.
    pub(crate) fn resolve(&self, kind: &str, id: &str) -> Result<Option<u64>, DeviceIdError> {
        let digits = |min: usize, max: usize| {
            id.len() >= min && id.len() <= max && id.bytes().all(|b| b.is_ascii_digit())
        };
        let bad = |kind: &'static str, rule: &'static str| DeviceIdError::Format {
            kind,
            id: id.to_string(),
            rule,
        };
        let devices = self.devices();
        match kind.to_ascii_lowercase().as_str() {
            "imei" => {
                if !digits(1, 16) {
                    return Err(bad("IMEI", "decimal, up to 16 digits"));
                }
                Ok(imei::parse_imei(id).and_then(|n| self.fleet.blocks.index_of(n)))
            }
            "meid" => {
                if id.len() != 14 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("MEID", "hexadecimal, 14 characters"));
                }
                Ok(idents::index_of_meid(&self.fleet.blocks, id))
            }
            "mdn" => {
                if !digits(10, 10) {
                    return Err(bad("MDN", "decimal, 10 digits"));
                }
                Ok(id.parse().ok().and_then(|m| self.mdns.index_of(m, devices)))
            }
            "msisdn" => {
                if !digits(11, 11) {
                    return Err(bad("MSISDN", "decimal, 11 digits"));
                }
                Ok(id
                    .strip_prefix('1')
                    .and_then(|m| m.parse().ok())
                    .and_then(|m| self.mdns.index_of(m, devices)))
            }
            "iccid" => {
                if !digits(1, 20) {
                    return Err(bad("ICCID", "decimal, up to 20 digits"));
                }
                Ok(idents::index_of_iccid(id, devices))
            }
            "esn" => {
                if !digits(11, 11) {
                    return Err(bad("ESN", "decimal, 11 digits"));
                }
                // Simulated devices are LTE modules without ESNs.
                Ok(None)
            }
            _ => Err(DeviceIdError::Kind(kind.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn resolves_every_kind() {
        let world = World::new(42, 1_000);
        let index = 123;
        let imei = world.fleet.blocks.imei_of(index).unwrap().to_string();
        assert_eq!(world.resolve("IMEI", &imei), Ok(Some(index)));
        assert_eq!(world.resolve("imei", &imei), Ok(Some(index)));
        assert_eq!(world.resolve("meid", &imei[..14]), Ok(Some(index)));
        let mdn = world.mdns.mdn_of(index).to_string();
        assert_eq!(world.resolve("mdn", &mdn), Ok(Some(index)));
        assert_eq!(world.resolve("MSISDN", &format!("1{mdn}")), Ok(Some(index)));
        assert_eq!(
            world.resolve("iccid", &idents::iccid_of(index)),
            Ok(Some(index))
        );
        assert_eq!(world.resolve("esn", "12345678901"), Ok(None));
        assert!(world.resolve("imei", "12ab").is_err());
        assert!(world.resolve("mdn", "123").is_err());
        assert!(world.resolve("meid", "zz").is_err());
        assert!(matches!(
            world.resolve("serial", "1"),
            Err(DeviceIdError::Kind(_))
        ));
        let acc0 = 0;
        assert_eq!(world.device_in(acc0, &imei), Some(index));
        let last = world.fleet.blocks.imei_of(999).unwrap().to_string();
        assert_eq!(world.device_in(acc0, &last), None);
    }
}
