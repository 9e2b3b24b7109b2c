//! The bijection between device index and IMEI.
//!
//! The fleet is a sequence of *blocks*. Each block is a run of consecutive device
//! indices sharing one 8-digit TAC (type allocation code, so one make/model) and a
//! run of consecutive 6-digit serial numbers. TACs strictly increase from block to
//! block, so IMEI order equals index order: looking up an IMEI is a binary search over
//! a few dozen blocks and walking devices in ascending IMEI order is counting indices.
//! Nothing is stored per device, which is what lets a million-device fleet fit in a
//! few MiB.

use super::rng::{Rng, domain};

/// Digits 1..=14 of an IMEI have 10^6 serial numbers per TAC.
const SERIALS_PER_TAC: u64 = 1_000_000;

/// Luhn check digit for a number written in decimal (the check digit is appended).
pub(crate) fn luhn_digit(body: u64) -> u64 {
    let mut sum = 0;
    let mut n = body;
    // Rightmost body digit is doubled because the check digit will sit to its right.
    let mut double = true;
    while n > 0 {
        let mut d = n % 10;
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
        n /= 10;
    }
    (10 - sum % 10) % 10
}

/// True when the last digit of `number` is its Luhn check digit.
pub(crate) fn luhn_valid(number: u64) -> bool {
    luhn_digit(number / 10) == number % 10
}

/// Parses a 15-digit IMEI string into its number (Luhn checked).
pub(crate) fn parse_imei(s: &str) -> Option<u64> {
    if s.len() != 15 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = s.parse().ok()?;
    luhn_valid(n).then_some(n)
}

/// One run of devices with the same TAC and model.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    /// First device index in the block.
    pub(crate) start: u64,
    pub(crate) len: u64,
    pub(crate) tac: u64,
    pub(crate) serial_base: u64,
    /// Index into [`super::fleet::MODELS`].
    pub(crate) model: usize,
}

/// All blocks of a fleet, ordered by index and by TAC alike.
#[derive(Debug, Clone)]
pub(crate) struct Blocks {
    blocks: Vec<Block>,
    devices: u64,
}

impl Blocks {
    /// Lays out `devices` devices in roughly forty blocks, models picked by
    /// `model_weights`.
    pub(crate) fn generate(seed: u64, devices: u64, model_weights: &[u64]) -> Self {
        let mut rng = Rng::new(seed, domain::BLOCKS, 0, 0);
        let target = (devices / 40).clamp(16, SERIALS_PER_TAC / 2);
        let mut blocks = Vec::new();
        // Real TACs of IoT modules start with 35 or 86; 35 keeps all IMEIs 15 digits.
        let mut tac = 35_000_000 + rng.range(0, 2_000_000);
        let mut start = 0;
        while start < devices {
            let len = rng
                .range(target / 2, target * 3 / 2)
                .clamp(1, devices - start);
            let serial_base = rng.range(0, SERIALS_PER_TAC - len);
            let model = rng.weighted(model_weights);
            blocks.push(Block {
                start,
                len,
                tac,
                serial_base,
                model,
            });
            start += len;
            tac += rng.range(1, 5_000);
        }
        Self { blocks, devices }
    }

    pub(crate) fn devices(&self) -> u64 {
        self.devices
    }

    fn block_of(&self, index: u64) -> Option<&Block> {
        let i = self.blocks.partition_point(|b| b.start + b.len <= index);
        self.blocks.get(i).filter(|b| index >= b.start)
    }

    /// The model index of a device.
    pub(crate) fn model_of(&self, index: u64) -> usize {
        self.block_of(index).map_or(0, |b| b.model)
    }

    /// The IMEI (as a number) of device `index`; `None` past the fleet's end.
    pub(crate) fn imei_of(&self, index: u64) -> Option<u64> {
        let b = self.block_of(index)?;
        let body = b.tac * SERIALS_PER_TAC + b.serial_base + (index - b.start);
        Some(body * 10 + luhn_digit(body))
    }

    /// The device index of an IMEI, if the fleet has it.
    pub(crate) fn index_of(&self, imei: u64) -> Option<u64> {
        if !luhn_valid(imei) {
            return None;
        }
        let body = imei / 10;
        let tac = body / SERIALS_PER_TAC;
        let serial = body % SERIALS_PER_TAC;
        let i = self.blocks.partition_point(|b| b.tac < tac);
        let b = self.blocks.get(i).filter(|b| b.tac == tac)?;
        (serial >= b.serial_base && serial < b.serial_base + b.len)
            .then(|| b.start + serial - b.serial_base)
    }

    /// The first index in `lo..hi` whose IMEI is strictly greater than `imei`
    /// (`hi` when none): where a `lastSeenDeviceId` page starts.
    pub(crate) fn first_after(&self, imei: u64, lo: u64, hi: u64) -> u64 {
        let (mut lo, mut hi) = (lo, hi.min(self.devices));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.imei_of(mid).is_some_and(|m| m <= imei) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Valid (Luhn-correct) IMEIs that belong to no device, for not-found tests.
    pub(crate) fn unknown_imeis(&self, count: usize) -> Vec<u64> {
        let mut out = Vec::new();
        let Some(first) = self.blocks.first() else {
            let body = 35_000_000 * SERIALS_PER_TAC + 1;
            return vec![body * 10 + luhn_digit(body)];
        };
        // TACs below the first block and between blocks are unused.
        let mut tac = first.tac - 1;
        let mut serial = 123_456;
        while out.len() < count {
            let body = tac * SERIALS_PER_TAC + serial;
            let imei = body * 10 + luhn_digit(body);
            if self.index_of(imei).is_none() {
                out.push(imei);
            }
            serial += 111_111;
            if serial >= SERIALS_PER_TAC {
                serial %= SERIALS_PER_TAC;
                tac -= 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn luhn_matches_known_imei() {
        // 490154203237518 is the classic example IMEI from the IMEI standard docs.
        assert!(luhn_valid(490_154_203_237_518));
        assert!(!luhn_valid(490_154_203_237_519));
        assert_eq!(parse_imei("490154203237518"), Some(490_154_203_237_518));
        assert_eq!(parse_imei("49015420323751"), None);
        assert_eq!(parse_imei("4901542032375x8"), None);
    }

    proptest! {
        #[test]
        fn index_imei_round_trips(seed in any::<u64>(), devices in 1u64..3_000_000, pick in any::<u64>()) {
            let blocks = Blocks::generate(seed, devices, &[5, 3, 2]);
            let index = pick % devices;
            let imei = blocks.imei_of(index).unwrap();
            prop_assert_eq!(imei.to_string().len(), 15);
            prop_assert!(luhn_valid(imei));
            prop_assert_eq!(blocks.index_of(imei), Some(index));
            if index + 1 < devices {
                prop_assert!(blocks.imei_of(index + 1).unwrap() > imei);
            }
            prop_assert_eq!(blocks.first_after(imei, 0, devices), index + 1);
            prop_assert!(blocks.imei_of(devices).is_none());
        }

        #[test]
        fn unknown_imeis_are_valid_and_unknown(seed in any::<u64>(), devices in 1u64..100_000) {
            let blocks = Blocks::generate(seed, devices, &[1]);
            for imei in blocks.unknown_imeis(5) {
                prop_assert!(luhn_valid(imei));
                prop_assert_eq!(imei.to_string().len(), 15);
                prop_assert!(blocks.index_of(imei).is_none());
            }
        }
    }

    #[test]
    fn every_imei_of_a_small_fleet_is_valid_and_ascending() {
        let blocks = Blocks::generate(7, 20_000, &[5, 3, 2]);
        let mut prev = 0;
        for i in 0..20_000 {
            let imei = blocks.imei_of(i).unwrap();
            assert!(luhn_valid(imei) && imei > prev);
            assert_eq!(blocks.index_of(imei), Some(i));
            prev = imei;
        }
        assert_eq!(blocks.first_after(0, 0, 20_000), 0);
        assert_eq!(blocks.first_after(u64::MAX, 0, 20_000), 20_000);
    }
}
