//! Stable, dependency-free pseudo-randomness for the simulated fleet.
//!
//! Every generated value is a pure function of `(seed, domain, key...)`, computed with
//! SplitMix64. We deliberately do not use `rand`'s generators here: their algorithms
//! may change between releases, and the simulator promises that the same seed serves
//! the same data forever (tests and demos compare IMEIs across runs).

/// SplitMix64 finaliser: a cheap, well-mixed 64-bit hash step.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of a seed, a domain tag (one per kind of value) and up to two keys.
pub(crate) fn hash(seed: u64, domain: u64, a: u64, b: u64) -> u64 {
    mix(mix(mix(seed ^ domain.rotate_left(17)) ^ a) ^ b.rotate_left(29))
}

/// Domain tags, so that e.g. the status of device 7 and its check-in count are
/// independent values.
pub(crate) mod domain {
    pub(crate) const BLOCKS: u64 = 1;
    pub(crate) const ACCOUNTS: u64 = 2;
    pub(crate) const CAMPAIGNS: u64 = 3;
    pub(crate) const CAMPAIGN_KEEP: u64 = 4;
    pub(crate) const CAMPAIGN_STATUS: u64 = 5;
    pub(crate) const DEVICE: u64 = 6;
    pub(crate) const UPGRADES: u64 = 7;
    pub(crate) const CHECK_INS: u64 = 8;
    pub(crate) const PROVISIONING: u64 = 9;
    pub(crate) const WIRE: u64 = 10;
}

/// A sequential generator for one record family of one device.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64, domain: u64, a: u64, b: u64) -> Self {
        Self(hash(seed, domain, a, b))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `lo..=hi` (tiny modulo bias is irrelevant for simulated data).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub(crate) fn chance(&mut self, per_mille: u64) -> bool {
        self.next_u64() % 1000 < per_mille
    }

    /// Picks an element of a non-empty slice; `None` only for an empty slice.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        let i = (self.next_u64() % items.len() as u64) as usize;
        items.get(i)
    }

    /// Picks an index by integer weights.
    pub(crate) fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        if total == 0 {
            return 0;
        }
        let mut r = self.next_u64() % total;
        for (i, w) in weights.iter().enumerate() {
            if r < *w {
                return i;
            }
            r -= w;
        }
        0
    }

    /// A version-1-looking UUID (like the campaign ids in the seed pages).
    pub(crate) fn uuid_v1(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-11ec-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_outputs() {
        assert_eq!(hash(1, 2, 3, 4), hash(1, 2, 3, 4));
        assert_ne!(hash(1, 2, 3, 4), hash(1, 2, 3, 5));
        let mut a = Rng::new(9, 9, 9, 9);
        let mut b = Rng::new(9, 9, 9, 9);
        assert_eq!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn range_stays_in_bounds() {
        let mut r = Rng::new(1, 1, 1, 1);
        for _ in 0..1000 {
            let v = r.range(5, 9);
            assert!((5..=9).contains(&v));
        }
        assert_eq!(r.range(3, 3), 3);
    }
}
