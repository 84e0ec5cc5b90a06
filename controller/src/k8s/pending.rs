//! The Services of ours that want IPs and have none, each with why (an [`AllocError`]'s
//! reason), and how many wait for each reason: what `ferrolb_controller_services_pending`
//! exports, kept as Services come and go rather than counted again.
//!
//! [`AllocError`]: crate::allocator::AllocError

use std::collections::BTreeMap;

use crate::allocator::ServiceKey;

#[derive(Debug, Default)]
pub(crate) struct Pending {
    reasons: BTreeMap<ServiceKey, &'static str>,
    /// Per reason ever seen (kept at 0, so that the gauge goes back to 0).
    counts: BTreeMap<&'static str, i64>,
}

impl Pending {
    /// `key` waits, for `reason`.
    pub fn insert(&mut self, key: ServiceKey, reason: &'static str) {
        if let Some(before) = self.reasons.insert(key, reason) {
            *self.counts.entry(before).or_default() -= 1;
        }
        *self.counts.entry(reason).or_default() += 1;
    }

    /// `key` waits no more (it got IPs, or is gone).
    pub fn remove(&mut self, key: &ServiceKey) {
        if let Some(before) = self.reasons.remove(key) {
            *self.counts.entry(before).or_default() -= 1;
        }
    }

    /// Keeps only the keys `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&ServiceKey) -> bool) {
        let counts = &mut self.counts;
        self.reasons.retain(|key, reason| {
            let kept = keep(key);
            if !kept {
                *counts.entry(*reason).or_default() -= 1;
            }
            kept
        });
    }

    /// The waiting Services.
    pub fn keys(&self) -> impl Iterator<Item = &ServiceKey> {
        self.reasons.keys()
    }

    /// How many wait for each reason seen so far (0 for those that no longer hold any).
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, i64)> + '_ {
        self.counts.iter().map(|(reason, n)| (*reason, *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ServiceKey {
        ServiceKey::new("default", name)
    }

    fn counts(p: &Pending) -> Vec<(&'static str, i64)> {
        p.counts().collect()
    }

    #[test]
    fn counts_follow_each_service_from_reason_to_reason_and_out() {
        let mut p = Pending::default();
        p.insert(key("a"), "PoolExhausted");
        p.insert(key("b"), "PoolExhausted");
        p.insert(key("c"), "UnknownPool");
        assert_eq!(counts(&p), [("PoolExhausted", 2), ("UnknownPool", 1)]);
        // The same Service again, for another reason: moved, not counted twice.
        p.insert(key("a"), "UnknownPool");
        p.insert(key("a"), "UnknownPool");
        assert_eq!(counts(&p), [("PoolExhausted", 1), ("UnknownPool", 2)]);
        p.remove(&key("b"));
        p.remove(&key("nobody"));
        p.retain(|k| k.name != "c");
        assert_eq!(counts(&p), [("PoolExhausted", 0), ("UnknownPool", 1)]);
        assert_eq!(p.keys().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["a"]);
    }
}
