//! The Services of ours that want IPs and have none, each with why (an [`AllocError`]'s
//! reason), and how many wait for each reason: what `ferrolb_controller_services_pending`
//! exports, kept as Services come and go rather than counted again.
//!
//! [`AllocError`]: crate::allocator::AllocError

use std::collections::BTreeMap;

use crate::allocator::{AllocError, ServiceKey};

#[derive(Debug)]
pub(crate) struct Pending {
    reasons: BTreeMap<ServiceKey, &'static str>,
    /// Per reason, every known one from the start (at 0: a gauge series exists before the
    /// first Service waits for that reason, and goes back to 0 after the last).
    counts: BTreeMap<&'static str, i64>,
    /// Whether the counts changed since [`Pending::take_counts`] last gave them.
    changed: bool,
}

impl Default for Pending {
    fn default() -> Self {
        Self {
            reasons: BTreeMap::new(),
            counts: AllocError::REASONS.iter().map(|r| (*r, 0)).collect(),
            changed: true,
        }
    }
}

impl Pending {
    /// `key` waits, for `reason`.
    pub fn insert(&mut self, key: ServiceKey, reason: &'static str) {
        let before = self.reasons.insert(key, reason);
        if before == Some(reason) {
            return;
        }
        if let Some(before) = before {
            *self.counts.entry(before).or_default() -= 1;
        }
        *self.counts.entry(reason).or_default() += 1;
        self.changed = true;
    }

    /// `key` waits no more (it got IPs, or is gone).
    pub fn remove(&mut self, key: &ServiceKey) {
        if let Some(before) = self.reasons.remove(key) {
            *self.counts.entry(before).or_default() -= 1;
            self.changed = true;
        }
    }

    /// Keeps only the keys `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&ServiceKey) -> bool) {
        let (counts, changed) = (&mut self.counts, &mut self.changed);
        self.reasons.retain(|key, reason| {
            let kept = keep(key);
            if !kept {
                *counts.entry(*reason).or_default() -= 1;
                *changed = true;
            }
            kept
        });
    }

    /// The waiting Services.
    pub fn keys(&self) -> impl Iterator<Item = &ServiceKey> {
        self.reasons.keys()
    }

    /// How many wait for each reason (every known one).
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, i64)> + '_ {
        self.counts.iter().map(|(reason, n)| (*reason, *n))
    }

    /// The counts if they changed since last taken (a reconcile that moved nothing exports
    /// nothing).
    pub fn take_counts(&mut self) -> Option<impl Iterator<Item = (&'static str, i64)> + '_> {
        std::mem::take(&mut self.changed).then(|| self.counts())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ServiceKey {
        ServiceKey::new("default", name)
    }

    /// The counts that are not 0.
    fn counts(p: &Pending) -> Vec<(&'static str, i64)> {
        p.counts().filter(|(_, n)| *n != 0).collect()
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
        assert_eq!(counts(&p), [("UnknownPool", 1)]);
        let all: Vec<(&str, i64)> = p.counts().collect();
        assert_eq!(
            all.len(),
            AllocError::REASONS.len(),
            "every reason, at 0 or not"
        );
        assert_eq!(p.keys().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["a"]);
    }
}

#[cfg(test)]
mod reasons {
    use std::net::IpAddr;

    use crate::allocator::{AllocError, ServiceKey, SharingConflict};

    #[test]
    fn every_error_has_a_reason_among_the_known_ones() {
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let pool = || ferrolb_config::PoolName::from("p");
        let errors = [
            AllocError::NoPools,
            AllocError::NoClusterIp,
            AllocError::NotEnoughClusterIps(1),
            AllocError::UnknownPool(pool()),
            AllocError::PoolDeleted(pool()),
            AllocError::PoolNotAllowed {
                pool: pool(),
                namespace: "n".into(),
            },
            AllocError::NotInAnyPool(ip),
            AllocError::DifferentPools(ip, ip),
            AllocError::NotInRequestedPool { ip, pool: pool() },
            AllocError::FamilyMismatch {
                ips: vec![ip],
                families: vec![],
            },
            AllocError::BuggyIp { ip, pool: pool() },
            AllocError::Conflict {
                ip,
                other: ServiceKey::new("n", "s"),
                why: SharingConflict::Key,
            },
            AllocError::Exhausted { tried: vec![] },
        ];
        let mut seen: Vec<&str> = errors.iter().map(AllocError::reason).collect();
        seen.push("NotAssigned");
        seen.sort_unstable();
        let mut known = AllocError::REASONS.to_vec();
        known.sort_unstable();
        assert_eq!(seen, known, "one reason per kind of error, all listed");
    }
}
