//! Fresh endpoints settle before they draw traffic. A node serves an `externalTrafficPolicy:
//! Local` Service only once its kube-proxy has programmed the local endpoint, at its next sync:
//! up to its minSyncPeriod (1 s by default) after the endpoint turned ready, later under load.
//! Moving an IP to a node the moment its endpoint turns ready sends it requests that it drops
//! (seen on the real cluster when a rolling update put a pod on the node the hash prefers). So,
//! while a node's endpoint of a Local Service is younger than the settle time:
//!
//! - layer 2: an IP the election moves to that node stays with the node that announced it,
//!   as long as that node is still a candidate. A failover, or an IP nobody announced, moves at
//!   once: no other node serves it.
//! - BGP: the node does not advertise the IP while another node has a settled endpoint; when
//!   none has, holding back would only delay the first route.
//!
//! Endpoints present when the speaker starts count as settled: their age is unknown, and the
//! speaker restarting says nothing about kube-proxy. Pure; time is passed in.

use std::collections::HashMap;
use std::time::Duration;

use ferrolb_config::NodeName;
use tokio::time::Instant;

use crate::plan::{Decision, IpPlan, LbService};

/// The default settle time: kube-proxy's default minSyncPeriod (1 s) and a sync.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(1500);

/// When each node's endpoint of each Service was first seen usable.
#[derive(Debug)]
pub struct EndpointAges {
    settle: Duration,
    /// Per Local Service, per node (sorted): when first seen, `None` when seen at start-up
    /// (settled). A vector, where a map would take a whole B-tree node per Service.
    seen: HashMap<String, Vec<(NodeName, Option<Instant>)>>,
    primed: bool,
}

/// An IP kept on the node that announced it while its new winner's endpoint settles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// The node that keeps announcing it.
    pub with: NodeName,
    /// The node the election prefers now.
    pub instead_of: NodeName,
    /// When the preferred node's endpoint will have settled.
    pub until: Instant,
}

impl EndpointAges {
    /// Nothing seen yet; endpoints settle after `settle`.
    pub fn new(settle: Duration) -> Self {
        Self {
            settle,
            seen: HashMap::new(),
            primed: false,
        }
    }

    /// Records the usable endpoints of the Service `key` as seen at `now` (`None`: it is gone
    /// or holds no IP). Until [`Self::prime`], what is seen counts as there at start-up.
    pub fn observe_service(&mut self, key: &str, service: Option<&LbService>, now: Instant) {
        let before = self.seen.remove(key).unwrap_or_default();
        // Only a Local Service's endpoints settle: the others need no ages. One that turns
        // Local starts with fresh ones (kube-proxy programs its local endpoints anew).
        let Some(service) = service.filter(|s| s.info.local) else {
            return;
        };
        let first = !self.primed;
        // `endpoint_nodes` is sorted, so `seen` is too.
        let seen: Vec<(NodeName, Option<Instant>)> = service
            .info
            .endpoint_nodes
            .iter()
            .map(|node| {
                let earlier = before
                    .binary_search_by(|(n, _)| n.cmp(node))
                    .ok()
                    .map(|at| before[at].1);
                let since = match earlier {
                    Some(since) => since,
                    None if first => None,
                    None => Some(now),
                };
                (node.clone(), since)
            })
            .collect();
        if !seen.is_empty() {
            self.seen.insert(key.to_owned(), seen);
        }
    }

    /// Everything present at start-up has been seen: what appears from now on is fresh.
    pub fn prime(&mut self) {
        self.primed = true;
    }

    /// When `node`'s endpoint of the Service `service` will have settled, if it is Local and
    /// the endpoint still settles at `now`.
    pub fn settling_until(&self, service: &str, node: &NodeName, now: Instant) -> Option<Instant> {
        let seen = self.seen.get(service)?;
        let at = seen.binary_search_by(|(n, _)| n.cmp(node)).ok()?;
        let since = seen[at].1?;
        let until = since + self.settle;
        (until > now).then_some(until)
    }

    /// Whether `node` has a settled endpoint of `service`.
    fn settled(&self, service: &str, node: &NodeName, now: Instant) -> bool {
        self.seen
            .get(service)
            .is_some_and(|s| s.binary_search_by(|(n, _)| n.cmp(node)).is_ok())
            && self.settling_until(service, node, now).is_none()
    }

    /// When the last of `services`' endpoints on `node` will have settled, if any still settles.
    fn settling_on(&self, services: &[String], node: &NodeName, now: Instant) -> Option<Instant> {
        services
            .iter()
            .filter_map(|s| self.settling_until(s, node, now))
            .max()
    }
}

/// Keeps an IP that the election moved, from `before`, the node that announced it, to a node
/// whose endpoint still settles, on `before`, while `before` is still a candidate: `before`
/// goes first in the IP's order. Returns the hold, if the IP is held.
pub fn hold(
    plan: &mut IpPlan,
    before: &NodeName,
    ages: &EndpointAges,
    now: Instant,
) -> Option<Hold> {
    let services = &plan.services;
    let Decision::Elected { election, .. } = &mut plan.decision else {
        return None;
    };
    let winner = election.winner()?.clone();
    if winner == *before {
        return None;
    }
    let until = ages.settling_on(services, &winner, now)?;
    // Gone: nobody else serves the IP.
    let at = election.candidates.iter().position(|c| c.node == *before)?;
    let kept = election.candidates.remove(at);
    election.candidates.insert(0, kept);
    Some(Hold {
        with: before.clone(),
        instead_of: winner,
        until,
    })
}

/// The Services as this node's BGP advertisements should see them: `node`'s endpoint of a
/// Local Service does not count while it settles and another node has a settled one. Returns
/// them with when the earliest such endpoint settles.
pub fn hold_bgp(
    services: &[LbService],
    node: &NodeName,
    ages: &EndpointAges,
    now: Instant,
) -> (Vec<LbService>, Option<Instant>) {
    let mut next = None::<Instant>;
    let services = services
        .iter()
        .map(|service| {
            let key = &service.info.key;
            let Some(until) = ages.settling_until(key, node, now) else {
                return service.clone();
            };
            let served_elsewhere = service
                .info
                .endpoint_nodes
                .iter()
                .any(|other| other != node && ages.settled(key, other, now));
            if !served_elsewhere {
                return service.clone();
            }
            next = Some(next.map_or(until, |n| n.min(until)));
            let mut held = service.clone();
            held.info.endpoint_nodes.remove(node);
            held
        })
        .collect();
    (services, next)
}

#[cfg(test)]
mod tests;
