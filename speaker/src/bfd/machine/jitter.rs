//! The transmit jitter of RFC 5880 §6.8.7, from a seed.

use std::time::Duration;

/// SplitMix64: small, seedable, and good enough to spread transmissions.
#[derive(Debug, Clone)]
pub(super) struct Jitter(pub(super) u64);

impl Jitter {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `interval` less a random 0–25 % (10–25 % when `detect_mult` is 1), §6.8.7.
    pub(super) fn apply(&mut self, interval: Duration, detect_mult: u8) -> Duration {
        let (lowest, highest) = if detect_mult == 1 {
            (750, 900)
        } else {
            (750, 1000)
        };
        let per_mille = lowest + self.next() % (highest - lowest + 1);
        let nanos = interval.as_nanos() * u128::from(per_mille) / 1000;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}
