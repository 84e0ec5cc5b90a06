//! The used addresses of one pool and family, as maximal runs of consecutive addresses, so
//! that "first free address at or after x" costs O(log n) in the number of runs, whatever the
//! pool's size. With `avoid_buggy`, IPv4 addresses ending in .0 and .255 are never handed out
//! and count as used for merging: runs on either side of them join, so a full pool is one run.

use std::collections::BTreeMap;

/// Merged runs `start -> end` (inclusive) of used addresses, as numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Runs {
    runs: BTreeMap<u128, u128>,
    /// IPv4 with .0/.255 skipped.
    avoid_buggy: bool,
}

impl Runs {
    pub(crate) fn new(avoid_buggy: bool) -> Self {
        Self {
            runs: BTreeMap::new(),
            avoid_buggy,
        }
    }

    /// Whether `n` is never handed out.
    pub(crate) fn is_buggy(&self, n: u128) -> bool {
        self.avoid_buggy && matches!(n % 256, 0 | 255)
    }

    /// The run holding `n`, if any.
    fn run_of(&self, n: u128) -> Option<(u128, u128)> {
        self.runs
            .range(..=n)
            .next_back()
            .filter(|&(_, &end)| end >= n)
            .map(|(&s, &e)| (s, e))
    }

    /// Whether `b` directly follows `a` (only buggy addresses in between).
    fn adjacent(&self, a: u128, b: u128) -> bool {
        b > a && b - a <= 3 && (a + 1..b).all(|n| self.is_buggy(n))
    }

    /// Marks `n` used.
    pub(crate) fn insert(&mut self, n: u128) {
        if self.run_of(n).is_some() {
            return;
        }
        let (mut start, mut end) = (n, n);
        if let Some((&s, &e)) = self.runs.range(..n).next_back()
            && self.adjacent(e, n)
        {
            start = s;
            self.runs.remove(&s);
        }
        if let Some((&s, &e)) = self.runs.range(n + 1..).next()
            && self.adjacent(n, s)
        {
            end = e;
            self.runs.remove(&s);
        }
        self.runs.insert(start, end);
    }

    /// Marks `n` free.
    pub(crate) fn remove(&mut self, n: u128) {
        let Some((start, end)) = self.run_of(n) else {
            return;
        };
        self.runs.remove(&start);
        // Trim buggy addresses off the new edges: runs start and end on real addresses.
        if n > start {
            let mut left_end = n - 1;
            while left_end > start && self.is_buggy(left_end) {
                left_end -= 1;
            }
            self.runs.insert(start, left_end);
        }
        if n < end {
            let mut right_start = n + 1;
            while right_start < end && self.is_buggy(right_start) {
                right_start += 1;
            }
            self.runs.insert(right_start, end);
        }
    }

    /// Whether `n` is used.
    #[cfg(test)]
    pub(crate) fn contains(&self, n: u128) -> bool {
        self.run_of(n).is_some()
    }

    /// The first address in `lo..=hi` that is neither used nor buggy.
    pub(crate) fn first_free(&self, lo: u128, hi: u128) -> Option<u128> {
        let mut n = lo;
        loop {
            while self.is_buggy(n) && n <= hi {
                n += 1;
            }
            if n > hi {
                return None;
            }
            match self.run_of(n) {
                Some((_, end)) if end >= hi => return None,
                Some((_, end)) => n = end + 1,
                None => return Some(n),
            }
        }
    }

    /// Number of runs (for tests of the merge rule).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.runs.len()
    }
}

/// How many addresses in `lo..=hi` end in .0 or .255 (IPv4 numbering).
pub(crate) fn buggy_count(lo: u128, hi: u128) -> u128 {
    // Count n with n % 256 == r in [lo, hi], for r in {0, 255}.
    let count = |r: u128| {
        let upto = |x: u128| if x < r { 0 } else { (x - r) / 256 + 1 };
        upto(hi) - if lo == 0 { 0 } else { upto(lo - 1) }
    };
    count(0) + count(255)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_addresses_merge_into_one_run_and_split_on_release() {
        let mut r = Runs::new(false);
        for n in [10, 12, 11, 13] {
            r.insert(n);
        }
        assert_eq!(r.len(), 1);
        assert_eq!(r.first_free(10, 100), Some(14));
        r.remove(11);
        assert_eq!(r.len(), 2);
        assert_eq!(r.first_free(10, 100), Some(11));
        assert!(r.contains(10) && !r.contains(11) && r.contains(12));
    }

    #[test]
    fn a_full_range_has_no_free_address() {
        let mut r = Runs::new(false);
        for n in 0..4 {
            r.insert(n);
        }
        assert_eq!(r.first_free(0, 3), None);
        assert_eq!(r.first_free(0, 4), Some(4));
    }

    #[test]
    fn buggy_addresses_are_skipped_and_bridge_runs() {
        let mut r = Runs::new(true);
        // 255 and 256 are .255 and .0
        assert_eq!(r.first_free(254, 600), Some(254));
        r.insert(254);
        assert_eq!(r.first_free(254, 600), Some(257));
        r.insert(257);
        assert_eq!(r.len(), 1, "254 and 257 are adjacent across .255/.0");
        r.remove(254);
        assert_eq!(r.first_free(250, 600), Some(250));
        assert_eq!(r.first_free(254, 600), Some(254));
        assert_eq!(r.first_free(255, 600), Some(258));
        assert_eq!(r.first_free(255, 256), None);
    }

    #[test]
    fn buggy_addresses_are_counted_arithmetically() {
        assert_eq!(buggy_count(0, 255), 2);
        assert_eq!(buggy_count(1, 254), 0);
        assert_eq!(buggy_count(255, 256), 2);
        assert_eq!(buggy_count(0, 65535), 512);
        let brute = (300..=1000u128)
            .filter(|n| matches!(n % 256, 0 | 255))
            .count() as u128;
        assert_eq!(buggy_count(300, 1000), brute);
    }
}
