//! The layer-2 plan kept between passes, so that a change costs what it touches: a Service
//! that changed re-decides its own IPs, a node that died re-decides the IPs it announced, and
//! only a change of the world every IP depends on (the Nodes, the configuration, a speaker
//! joining) re-decides them all. The result is the same as [`super::layer2`] over every
//! Service; the property test below holds it to that.
//!
//! Of each Service it keeps only its IPs and a digest of its view: the views of an IP's
//! Services are built again, from the caches they come from, when the IP is decided.
//!
//! A node that dies is left in the candidate order of the IPs it did not announce until they
//! are decided again: the order behind an unchanged winner does not move the IP, and the
//! speaker reads no further than the winner of an IP it did not decide again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;

use ferrolb_config::NodeName;

use super::{IpPlan, LbService, decide_ip};
use crate::election::World;

/// Every Service's IPs, every IP's plan, and what is to be decided again.
#[derive(Debug, Default)]
pub struct Decisions {
    /// Each Service holding IPs, by `namespace/name`.
    services: HashMap<String, Kept>,
    /// Each IP with the Services holding it, sorted. Usually one: a vector, where a set
    /// would take a whole B-tree node per IP.
    users: BTreeMap<IpAddr, Vec<String>>,
    /// The last plan of each IP.
    plans: BTreeMap<IpAddr, IpPlan>,
    /// The IPs each node announces.
    won: HashMap<NodeName, BTreeSet<IpAddr>>,
    /// IPs to decide at the next pass.
    dirty: BTreeSet<IpAddr>,
    /// Decide every IP at the next pass.
    everything: bool,
}

/// An IP decided in a pass, with its plan before (`None`: it was new).
pub type Redecided = (IpAddr, Option<IpPlan>);

/// What is kept of a Service's view.
#[derive(Debug, PartialEq, Eq)]
struct Kept {
    /// Its IPs.
    ips: Vec<IpAddr>,
    /// A digest of the whole view, to tell whether it changed.
    digest: u64,
}

impl Kept {
    fn of(view: &LbService) -> Self {
        let mut hasher = DefaultHasher::new();
        view.hash(&mut hasher);
        Self {
            ips: view.ips.clone(),
            digest: hasher.finish(),
        }
    }
}

impl Decisions {
    /// Nothing known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the view of the Service `key` (`None`: gone, or holding no IP). Returns whether it
    /// changed; if it did, its IPs, old and new, are decided at the next pass.
    pub fn set_service(&mut self, key: &str, view: Option<&LbService>) -> bool {
        let kept = view.map(Kept::of);
        if self.services.get(key) == kept.as_ref() {
            return false;
        }
        if let Some(old) = self.services.remove(key) {
            for ip in &old.ips {
                if let Some(users) = self.users.get_mut(ip) {
                    users.retain(|k| k != key);
                    if users.is_empty() {
                        self.users.remove(ip);
                    }
                }
                self.dirty.insert(*ip);
            }
        }
        if let Some(kept) = kept {
            for ip in &kept.ips {
                let users = self.users.entry(*ip).or_default();
                if let Err(at) = users.binary_search_by(|k| k.as_str().cmp(key)) {
                    users.insert(at, key.to_owned());
                }
                self.dirty.insert(*ip);
            }
            self.services.insert(key.to_owned(), kept);
        }
        true
    }

    /// Forgets every Service for which `keep` says no, and returns their keys.
    pub fn retain_services(&mut self, mut keep: impl FnMut(&str) -> bool) -> Vec<String> {
        let gone: Vec<String> = self.services.keys().filter(|k| !keep(k)).cloned().collect();
        for key in &gone {
            self.set_service(key, None);
        }
        gone
    }

    /// Something every IP depends on changed: decide them all at the next pass.
    pub fn world_changed(&mut self) {
        self.everything = true;
    }

    /// These nodes' speakers left: decide again the IPs they announced.
    pub fn nodes_gone<'a>(&mut self, nodes: impl IntoIterator<Item = &'a NodeName>) {
        for node in nodes {
            if let Some(ips) = self.won.get(node) {
                self.dirty.extend(ips.iter().copied());
            }
        }
    }

    /// Decide `ip` again at the next pass.
    pub fn mark(&mut self, ip: IpAddr) {
        self.dirty.insert(ip);
    }

    /// Decides the IPs marked since the last pass (or all of them), from the views `view_of`
    /// gives for their Services (`namespace/name`), handing each new plan to `adjust` with the
    /// one before (to keep an IP where it is while an endpoint settles). Returns every IP
    /// decided, with its plan before; an IP no Service holds any more has no plan after.
    pub fn decide(
        &mut self,
        world: World<'_>,
        mut view_of: impl FnMut(&str) -> Option<LbService>,
        mut adjust: impl FnMut(IpAddr, &mut IpPlan, Option<&IpPlan>),
    ) -> Vec<Redecided> {
        let ips: Vec<IpAddr> = if std::mem::take(&mut self.everything) {
            self.dirty.clear();
            let mut all: BTreeSet<IpAddr> = self.users.keys().copied().collect();
            all.extend(self.plans.keys().copied());
            all.into_iter().collect()
        } else {
            std::mem::take(&mut self.dirty).into_iter().collect()
        };
        let mut decided = Vec::with_capacity(ips.len());
        for ip in ips {
            let before = self.plans.remove(&ip);
            if let Some(winner) = before.as_ref().and_then(|p| p.decision.winner())
                && let Some(won) = self.won.get_mut(winner)
            {
                won.remove(&ip);
                if won.is_empty() {
                    self.won.remove(winner);
                }
            }
            // A view that no longer holds the IP (the caches moved on since it was set) is
            // left out here; its change is decided at the next pass.
            let views: Vec<LbService> = self
                .users
                .get(&ip)
                .into_iter()
                .flatten()
                .filter_map(|key| view_of(key))
                .filter(|view| view.ips.contains(&ip))
                .collect();
            if !views.is_empty() {
                let users: Vec<&LbService> = views.iter().collect();
                let mut plan = decide_ip(world, ip, &users);
                adjust(ip, &mut plan, before.as_ref());
                if let Some(winner) = plan.decision.winner() {
                    self.won.entry(winner.clone()).or_default().insert(ip);
                }
                self.plans.insert(ip, plan);
            }
            decided.push((ip, before));
        }
        decided
    }

    /// The plan of every IP, as of the last pass.
    pub fn plans(&self) -> &BTreeMap<IpAddr, IpPlan> {
        &self.plans
    }

    /// The IPs of the Service `key`, as last set.
    pub fn ips_of(&self, key: &str) -> Option<&[IpAddr]> {
        self.services.get(key).map(|kept| kept.ips.as_slice())
    }
}

#[cfg(test)]
mod tests;
