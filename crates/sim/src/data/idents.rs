//! Secondary device identifiers (MDN, MSISDN, ICCID, MEID), each a bijection with the
//! device index so the provisioning endpoint can find a device by any of them without
//! a lookup table.

use super::imei::{Blocks, luhn_digit};
use super::rng::mix;

/// MDNs are `2_000_000_000 + (index * MDN_MUL + offset) mod MDN_SPAN`: ten digits, not
/// starting with 0 or 1 (like North American numbers), scattered rather than
/// sequential. `MDN_MUL` is coprime with `MDN_SPAN` (= 2^12 * 5^9), so it is invertible.
const MDN_BASE: u64 = 2_000_000_000;
const MDN_SPAN: u64 = 8_000_000_000;
const MDN_MUL: u64 = 2_654_435_761;

/// The ICCID prefix: 89 (telecom) 1 (North America) 480 (Verizon's issuer id).
const ICCID_PREFIX: u64 = 8_914_800;

/// Maps indices to MDNs and back for one seed.
#[derive(Debug, Clone)]
pub(crate) struct Mdns {
    offset: u64,
    inverse: u64,
}

impl Mdns {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            offset: mix(seed ^ 0x4d44_4e00) % MDN_SPAN,
            inverse: mod_inverse(MDN_MUL, MDN_SPAN),
        }
    }

    pub(crate) fn mdn_of(&self, index: u64) -> u64 {
        let scrambled = (u128::from(index) * u128::from(MDN_MUL) + u128::from(self.offset))
            % u128::from(MDN_SPAN);
        MDN_BASE + scrambled as u64
    }

    pub(crate) fn index_of(&self, mdn: u64, devices: u64) -> Option<u64> {
        let scrambled = mdn.checked_sub(MDN_BASE).filter(|s| *s < MDN_SPAN)?;
        let shifted = (u128::from(scrambled) + u128::from(MDN_SPAN) - u128::from(self.offset))
            % u128::from(MDN_SPAN);
        let index = (shifted * u128::from(self.inverse) % u128::from(MDN_SPAN)) as u64;
        (index < devices).then_some(index)
    }
}

/// Modular inverse by the extended Euclidean algorithm (`a` coprime with `m`).
fn mod_inverse(a: u64, m: u64) -> u64 {
    let (mut old_r, mut r) = (i128::from(a), i128::from(m));
    let (mut old_s, mut s) = (1i128, 0i128);
    while r != 0 {
        let q = old_r / r;
        (old_r, r) = (r, old_r - q * r);
        (old_s, s) = (s, old_s - q * s);
    }
    old_s.rem_euclid(i128::from(m)) as u64
}

/// The 20-digit ICCID of a device: prefix, 12-digit index, Luhn digit.
pub(crate) fn iccid_of(index: u64) -> String {
    let body = u128::from(ICCID_PREFIX) * 1_000_000_000_000 + u128::from(index);
    // The body has 19 digits; Luhn over it fits in u64 arithmetic digit by digit.
    let digits = body.to_string();
    let check = luhn_digit_str(&digits);
    format!("{digits}{check}")
}

pub(crate) fn index_of_iccid(iccid: &str, devices: u64) -> Option<u64> {
    // All-digit checked here too, not only by the caller: `split_at` below panics on
    // a byte offset inside a multi-byte character.
    if iccid.len() != 20 || !iccid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (body, check) = iccid.split_at(19);
    if luhn_digit_str(body).to_string() != check {
        return None;
    }
    let n: u128 = body.parse().ok()?;
    let prefix = n / 1_000_000_000_000;
    let index = (n % 1_000_000_000_000) as u64;
    (prefix == u128::from(ICCID_PREFIX) && index < devices).then_some(index)
}

fn luhn_digit_str(digits: &str) -> u64 {
    // Split to stay inside u64: Luhn only depends on digit parity from the right.
    let (hi, lo) = digits.split_at(digits.len().saturating_sub(18));
    let lo_n: u64 = lo.parse().unwrap_or(0);
    let hi_n: u64 = hi.parse().unwrap_or(0);
    // Re-join by computing the sums separately: the low part has an even number of
    // digits (18), so parity for the high part is unchanged.
    let sum = luhn_sum(lo_n, lo.len()) + luhn_sum(hi_n, hi.len());
    (10 - sum % 10) % 10
}

/// Luhn weighted sum of `n` (written with `width` digits), doubling from the right.
fn luhn_sum(mut n: u64, width: usize) -> u64 {
    let mut sum = 0;
    for pos in 0..width {
        let mut d = n % 10;
        if pos % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        n /= 10;
    }
    sum
}

/// A 3GPP device's MEID is its IMEI without the check digit (14 digits, valid hex).
pub(crate) fn index_of_meid(blocks: &Blocks, meid: &str) -> Option<u64> {
    if meid.len() != 14 || !meid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let body: u64 = meid.parse().ok()?;
    blocks.index_of(body * 10 + luhn_digit(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdn_round_trips() {
        let mdns = Mdns::new(42);
        for index in [0, 1, 2, 999_999, 1_000_000, 7_999_999_999] {
            let mdn = mdns.mdn_of(index);
            assert_eq!(mdn.to_string().len(), 10);
            assert_eq!(mdns.index_of(mdn, 8_000_000_000), Some(index));
        }
        assert_eq!(mdns.index_of(mdns.mdn_of(50), 10), None);
        assert_eq!(mdns.index_of(123, 10), None);
    }

    #[test]
    fn iccid_round_trips_and_is_luhn_valid() {
        let iccid = iccid_of(12_345);
        assert_eq!(iccid.len(), 20);
        assert!(iccid.starts_with("8914800"));
        assert_eq!(index_of_iccid(&iccid, 100_000), Some(12_345));
        assert_eq!(index_of_iccid(&iccid, 100), None);
        // Luhn check over all 20 digits.
        let sum: u32 = iccid
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let d = u32::from(b - b'0');
                if i % 2 == 1 {
                    if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
                } else {
                    d
                }
            })
            .sum();
        assert_eq!(sum % 10, 0);
        assert_eq!(index_of_iccid("89141390780800784259", 100_000), None);
        // 20 bytes whose 19th is inside a character.
        assert_eq!(index_of_iccid("891480000000001234é", 100_000), None);
    }
}
