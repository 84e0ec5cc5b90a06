//! The writer of each Service's condition among many speakers, without hashing every Service
//! against every speaker: a consistent-hash ring. Each live speaker owns [`POINTS`] points on a
//! 64-bit circle (the first 8 octets of SHA-256 of `node#i`); a key belongs to the speaker owning
//! the first point at or after the key's own hash, going round. Built once per change of the
//! live speakers (N × [`POINTS`] hashes), it answers in one hash and a binary search, where
//! rendezvous hashing ([`super::writer`]) takes N hashes per key: at 100,000 Services and 5,000
//! speakers, 5·10⁸ hashes on every speaker for each membership change. As with rendezvous, a
//! speaker that goes hands on only its own keys, and one that comes takes only keys.

use sha2::{Digest, Sha256};

/// Points per speaker: enough that each speaker's share stays within a few tens of percent of
/// 1/N.
pub const POINTS: usize = 64;

fn hash64(text: &str) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The ring over one set of speakers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    /// (point, index into `speakers`), sorted.
    points: Vec<(u64, usize)>,
    speakers: Vec<String>,
}

impl Ring {
    /// The ring of `speakers` (duplicates count once; the order does not matter).
    pub fn new<'a>(speakers: impl IntoIterator<Item = &'a str>) -> Self {
        let mut speakers: Vec<String> = speakers.into_iter().map(str::to_owned).collect();
        speakers.sort_unstable();
        speakers.dedup();
        let mut points: Vec<(u64, usize)> = speakers
            .iter()
            .enumerate()
            .flat_map(|(i, name)| (0..POINTS).map(move |p| (hash64(&format!("{name}#{p}")), i)))
            .collect();
        // A tie between two speakers' points (1 in 2⁶⁴) goes to the first name.
        points.sort_unstable();
        Self { points, speakers }
    }

    /// The speaker that writes about `key`; `None` without speakers.
    pub fn writer(&self, key: &str) -> Option<&str> {
        let at = hash64(key);
        let i = self.points.partition_point(|(p, _)| *p < at);
        let (_, owner) = self.points.get(i).or_else(|| self.points.first())?;
        Some(self.speakers[*owner].as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn keys() -> Vec<String> {
        (0..10_000).map(|i| format!("web/svc-{i}")).collect()
    }

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("node-{i}")).collect()
    }

    fn ring(names: &[String]) -> Ring {
        Ring::new(names.iter().map(String::as_str))
    }

    #[test]
    fn the_writer_of_a_key_is_stable_and_independent_of_order() {
        let a = Ring::new(["node-1", "node-2", "node-3"]);
        let b = Ring::new(["node-3", "node-1", "node-2", "node-1"]);
        assert_eq!(a, b);
        assert!(a.writer("web/app").is_some());
        assert_eq!(Ring::new([]).writer("web/app"), None);
        assert_eq!(Ring::new(["node-7"]).writer("web/app"), Some("node-7"));
    }

    #[test]
    fn keys_spread_over_the_speakers() {
        for n in [3, 10, 50] {
            let ring = ring(&names(n));
            let mut per: BTreeMap<&str, usize> = BTreeMap::new();
            for key in keys() {
                *per.entry(ring.writer(&key).expect("a writer")).or_default() += 1;
            }
            assert_eq!(per.len(), n, "every speaker writes some");
            let fair = 10_000 / n;
            for (node, count) in per {
                assert!(
                    count > fair / 2 && count < fair * 2,
                    "{node} writes {count} of 10,000 among {n} (fair: {fair})"
                );
            }
        }
    }

    #[test]
    fn a_speaker_that_goes_hands_on_only_its_keys_and_one_that_comes_only_takes() {
        let all = names(10);
        let before = ring(&all);
        let without: Vec<String> = all.iter().filter(|n| *n != "node-4").cloned().collect();
        let after = ring(&without);
        let mut moved = 0;
        for key in keys() {
            let (was, now) = (before.writer(&key), after.writer(&key));
            if was == Some("node-4") {
                moved += 1;
                assert_ne!(now, Some("node-4"));
            } else {
                assert_eq!(now, was, "{key} moved although its writer stayed");
            }
        }
        assert!(moved > 0);
        // And back: node-4's return takes exactly what it had.
        for key in keys() {
            let (without, with) = (after.writer(&key), before.writer(&key));
            assert!(with == without || with == Some("node-4"), "{key}");
        }
    }
}
