//! Last-known-good: the configuration a component serves from one snapshot to the next.
//!
//! An object that is still there but has turned invalid — an edit that makes a pool overlap
//! another, a BGPPeer whose `passwordSecret` or `bfdProfile` is briefly missing — keeps being
//! served in its last valid version until it is fixed or deleted, so a mistake in one object
//! never withdraws what was working. The controller and every speaker keep it the same way
//! (this module is the one place that decides it), so they agree on which pools and peers are
//! in use, and on which of two overlapping pools wins: the one already in use.
//!
//! A last valid version is dropped when the object is deleted, or when it would collide with
//! an object that is valid now (an address of a valid pool, a session of a valid peer).

use std::collections::{BTreeMap, BTreeSet};

use crate::{Config, ObjectKind, Outcome, Peer, Pool, Snapshot, name_of};

/// The configuration in service, kept between snapshots.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Serving {
    config: Config,
    held_back: BTreeSet<(ObjectKind, String)>,
}

impl Serving {
    /// Parses `snapshot` against what is served now and makes the result the served
    /// configuration. The snapshot's `pools_in_use` is replaced by the pools served now.
    ///
    /// The returned [`Outcome`] lists every problem (held-back objects' included, so they are
    /// reported); its `config` is the served configuration, last valid versions included.
    pub fn update(&mut self, snapshot: &Snapshot) -> Outcome {
        let mut snapshot = snapshot.clone();
        snapshot.pools_in_use = self
            .config
            .pools
            .iter()
            .map(|(name, pool)| (name.clone(), pool.ranges.clone()))
            .collect();
        let mut held_back = BTreeSet::new();
        let outcome = crate::parse_keeping(&snapshot, &self.config, &mut held_back);
        self.config = outcome.config.clone();
        self.held_back = held_back;
        outcome
    }

    /// The configuration in service.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The objects served in their last valid version, as (kind, name).
    pub fn held_back(&self) -> &BTreeSet<(ObjectKind, String)> {
        &self.held_back
    }

    /// Whether the named object is served in its last valid version.
    pub fn is_held_back(&self, kind: ObjectKind, name: &str) -> bool {
        self.held_back.contains(&(kind, name.to_owned()))
    }
}

/// The names of the objects of one kind in the snapshot.
fn present<T>(objects: &[T], meta: impl Fn(&T) -> &ferrolb_api::ObjectMeta) -> BTreeSet<&str> {
    objects.iter().map(|o| name_of(meta(o))).collect()
}

/// Adds the last valid version of each BFDProfile that is still there but invalid now.
pub(crate) fn keep_bfd_profiles(
    snapshot: &Snapshot,
    last: &Config,
    config: &mut Config,
    held_back: &mut BTreeSet<(ObjectKind, String)>,
) {
    let present = present(&snapshot.bfd_profiles, |o| &o.metadata);
    for (name, old) in &last.bfd_profiles {
        if config.bfd_profiles.contains_key(name) || !present.contains(name.as_str()) {
            continue;
        }
        held_back.insert((ObjectKind::BFDProfile, name.clone()));
        config.bfd_profiles.insert(name.clone(), old.clone());
    }
}

/// Adds the last valid version of each pool that is still there but invalid now, unless it
/// overlaps a pool that is valid now.
pub(crate) fn keep_pools(
    snapshot: &Snapshot,
    last: &Config,
    config: &mut Config,
    held_back: &mut BTreeSet<(ObjectKind, String)>,
) {
    let present = present(&snapshot.pools, |o| &o.metadata);
    let mut kept: Vec<&Pool> = Vec::new();
    for (name, old) in &last.pools {
        if config.pools.contains_key(name) || !present.contains(name.as_str()) {
            continue;
        }
        let collides = config.pools.values().any(|p| {
            p.ranges
                .iter()
                .any(|r| old.ranges.iter().any(|q| q.overlaps(r)))
        });
        if !collides {
            kept.push(old);
        }
    }
    for old in kept {
        held_back.insert((ObjectKind::IPAddressPool, old.name.to_string()));
        config.pools.insert(old.name.clone(), old.clone());
    }
}

/// Adds the last valid version of each BGPPeer that is still there but invalid now (with the
/// last version of its BFDProfile if that is gone), unless a peer valid now already peers with
/// the same router from the same nodes.
pub(crate) fn keep_peers(
    snapshot: &Snapshot,
    last: &Config,
    config: &mut Config,
    held_back: &mut BTreeSet<(ObjectKind, String)>,
) {
    let present = present(&snapshot.peers, |o| &o.metadata);
    let mut kept: BTreeMap<_, &Peer> = BTreeMap::new();
    for (name, old) in &last.peers {
        if config.peers.contains_key(name) || !present.contains(name.as_str()) {
            continue;
        }
        if !config.peers.values().any(|p| same_session(p, old)) {
            kept.insert(name.clone(), old);
        }
    }
    for (name, old) in kept {
        if let Some(profile) = &old.bfd_profile
            && !config.bfd_profiles.contains_key(profile)
            && let Some(last_profile) = last.bfd_profiles.get(profile)
        {
            config
                .bfd_profiles
                .insert(profile.clone(), last_profile.clone());
        }
        held_back.insert((ObjectKind::BGPPeer, name.to_string()));
        config.peers.insert(name, old.clone());
    }
}

/// Whether two peers would fight for one TCP session (the rule `parse_peers` applies).
fn same_session(a: &Peer, b: &Peer) -> bool {
    a.target == b.target
        && a.port == b.port
        && a.vrf == b.vrf
        && (a.nodes.is_empty() || b.nodes.is_empty() || !a.nodes.is_disjoint(&b.nodes))
}
