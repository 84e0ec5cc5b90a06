//! Layer-2 election: which node answers ARP/NDP for each LoadBalancer IP. Pure: values in, a
//! decision out, so every speaker computes the same answer on its own, and `kubectl ferrolb
//! explain`/`simulate` can show the same reasoning.
//!
//! For an IP, the candidates are the nodes that are live, not `NetworkUnavailable`, not labelled
//! `node.kubernetes.io/exclude-from-external-load-balancers` (unless ignored), selected by an
//! L2Advertisement of the IP's pool that matches the Service, and — for
//! `externalTrafficPolicy: Local` — hosting a usable endpoint. Services that share the IP must
//! all accept a node — all of those that can be served: a sharer without a usable endpoint or
//! without a matching advertisement is left out rather than taking the IP down for the others.
//! A Service opted in to announcing without endpoints (its annotation, or an advertisement that
//! matches it) is served even with none; with `externalTrafficPolicy: Local` its candidates are
//! then the nodes with a usable local endpoint if any node has one, else every node.
//! Candidates are ordered by preferred-node score (descending), then by SHA-256(`node#ip`)
//! (ascending), MetalLB's order, so a mixed MetalLB/ferrolb cluster agrees; the first
//! announces. Losing a node moves only the IPs it announced.
//!
//! A node on its way out — cordoned or draining, marked for scale-down, tainted `NoExecute` —
//! comes after every node that is not ([`Departure`]): its IPs move while it still answers
//! (make-before-break), come back when it is uncordoned, and stay when no other node can take
//! them. MetalLB does not do this; `--announce-from-departing-nodes` restores its order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ferrolb_config::{Config, L2Ad, Labels, NodeName, PoolName, any_matches};
use sha2::{Digest, Sha256};

/// The node label that keeps a node from announcing.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// What the election needs to know about a node.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeInfo {
    /// The node's labels.
    pub labels: Labels,
    /// The `NetworkUnavailable` condition is True.
    pub network_unavailable: bool,
    /// The node is on its way out: it announces an IP only if no other node can.
    pub departing: Option<Departure>,
}

/// Why a node is on its way out (planned maintenance, not a failure).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Departure {
    /// `spec.unschedulable`: cordoned, or being drained.
    Cordoned,
    /// Tainted `ToBeDeletedByClusterAutoscaler`: about to be scaled down.
    ScaleDown,
    /// A `NoExecute` taint (its key): its pods are being evicted.
    NoExecute(String),
}

impl fmt::Display for Departure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cordoned => f.write_str("cordoned"),
            Self::ScaleDown => f.write_str("marked for scale-down by the cluster autoscaler"),
            Self::NoExecute(key) => write!(f, "tainted {key}:NoExecute"),
        }
    }
}

/// What the election needs to know about one Service on the IP.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct ServiceInfo {
    /// `namespace/name`, for explanations.
    pub key: String,
    /// The Service's labels (advertisements select Services by them).
    pub labels: Labels,
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    /// The Service carries a sharing key (`allow-shared-ip`).
    pub shares_ip: bool,
    /// Nodes hosting a usable (ready or serving) endpoint.
    pub endpoint_nodes: BTreeSet<NodeName>,
    /// Whether any endpoint is usable at all (one without a node counts here).
    pub has_usable_endpoint: bool,
    /// Announced whether or not it has endpoints (`ferrolb.io/announce-without-endpoints`).
    pub announce_without_endpoints: bool,
}

impl ServiceInfo {
    /// Whether its `externalTrafficPolicy` lets `node` attract its traffic: Cluster, any node;
    /// Local, a node with a usable endpoint — or, for a Service announced without endpoints
    /// (`without_endpoints`) that has none on any node, every node. One rule for layer 2 and BGP.
    pub fn policy_admits(&self, node: &NodeName, without_endpoints: bool) -> bool {
        !self.local
            || self.endpoint_nodes.contains(node)
            || (without_endpoints && self.endpoint_nodes.is_empty())
    }
}

/// Why a node cannot announce an IP.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exclusion {
    /// Its speaker is not in the membership (dead, partitioned, or not running).
    NotLive,
    /// Its `NetworkUnavailable` condition is True.
    NetworkUnavailable,
    /// It carries the exclude-from-external-load-balancers label.
    ExcludedByLabel,
    /// No L2Advertisement of the pool that matches the Service selects it (which Service).
    NotSelected(String),
    /// The Service has `externalTrafficPolicy: Local` and no usable endpoint here (which).
    NoLocalEndpoint(String),
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLive => f.write_str("its speaker is not live"),
            Self::NetworkUnavailable => f.write_str("NetworkUnavailable is True"),
            Self::ExcludedByLabel => write!(f, "labelled {EXCLUDE_LABEL}"),
            Self::NotSelected(s) => write!(f, "no L2Advertisement for {s} selects it"),
            Self::NoLocalEndpoint(s) => {
                write!(
                    f,
                    "{s} has externalTrafficPolicy Local and no ready endpoint here"
                )
            }
        }
    }
}

/// Why an IP is announced by no node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unannounced {
    /// No Service on the IP has a usable endpoint.
    NoUsableEndpoint,
    /// No L2Advertisement covers the pool (and matches the Services).
    NoAdvertisement,
    /// A Service shares the IP but an advertisement uses serviceSelectors (MetalLB's rule).
    SharedIpWithServiceSelector(String),
    /// Every node is excluded.
    NoEligibleNode,
}

impl fmt::Display for Unannounced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoUsableEndpoint => f.write_str("no Service on the IP has a ready endpoint"),
            Self::NoAdvertisement => f.write_str("no L2Advertisement covers the pool and Service"),
            Self::SharedIpWithServiceSelector(s) => write!(
                f,
                "{s} shares its IP, and an L2Advertisement of its pool selects Services by label"
            ),
            Self::NoEligibleNode => f.write_str("no node may announce it"),
        }
    }
}

/// A candidate node with its sort keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The node.
    pub node: NodeName,
    /// Sum of the weights of matching preferences (higher first).
    pub score: u32,
    /// SHA-256(`node#ip`) (lower first).
    pub hash: [u8; 32],
    /// On its way out ([`NodeInfo::departing`]): after every node that is not.
    pub departing: bool,
}

/// The outcome for one IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Election {
    /// The IP.
    pub ip: IpAddr,
    /// Candidates in order; the first announces.
    pub candidates: Vec<Candidate>,
    /// Nodes that may not announce, and why.
    pub excluded: BTreeMap<NodeName, Exclusion>,
    /// Set when nobody announces.
    pub unannounced: Option<Unannounced>,
    /// Interfaces to announce on, per candidate (empty set: every suitable interface).
    pub interfaces: BTreeMap<NodeName, BTreeSet<String>>,
}

impl Election {
    /// The announcing node.
    pub fn winner(&self) -> Option<&NodeName> {
        self.candidates.first().map(|c| &c.node)
    }
}

/// The cluster as the election sees it.
#[derive(Clone, Copy, Debug)]
pub struct World<'a> {
    /// The validated configuration.
    pub config: &'a Config,
    /// Every node.
    pub nodes: &'a BTreeMap<NodeName, NodeInfo>,
    /// Nodes whose speaker is live; `None` when membership is off (every node counts as live).
    pub live: Option<&'a BTreeSet<NodeName>>,
    /// Announce from excluded-labelled nodes too.
    pub ignore_exclude_label: bool,
}

impl<'a> World<'a> {
    /// The cluster of `config` and `nodes`, with `live` speakers (`None`: membership off),
    /// the exclude label obeyed.
    pub fn new(
        config: &'a Config,
        nodes: &'a BTreeMap<NodeName, NodeInfo>,
        live: Option<&'a BTreeSet<NodeName>>,
    ) -> Self {
        Self {
            config,
            nodes,
            live,
            ignore_exclude_label: false,
        }
    }
}

/// MetalLB's tie-break: SHA-256 of `node#ip`.
pub fn rendezvous_hash(node: &NodeName, ip: IpAddr) -> [u8; 32] {
    Sha256::digest(format!("{node}#{ip}").as_bytes()).into()
}

/// Elects the node that announces `ip` of `pool`, used by `services` (one, or several that
/// share the IP).
pub fn elect(world: World<'_>, ip: IpAddr, pool: &PoolName, services: &[ServiceInfo]) -> Election {
    let mut election = Election {
        ip,
        candidates: Vec::new(),
        excluded: BTreeMap::new(),
        unannounced: None,
        interfaces: BTreeMap::new(),
    };
    // The Services that can be served: with a usable endpoint and an advertisement of the pool
    // that matches them. One that cannot be served does not keep the IP from the others (they
    // may be in another namespace); only when none can is the IP left unannounced.
    let pool_ads: Vec<&L2Ad> = world
        .config
        .l2_advertisements
        .values()
        .filter(|ad| ad.pools.contains(pool))
        .collect();
    let mut per_service: Vec<(&ServiceInfo, Vec<&L2Ad>, bool)> = Vec::new();
    let mut refused: Vec<Unannounced> = Vec::new();
    for service in services {
        let ads: Vec<&L2Ad> = pool_ads
            .iter()
            .copied()
            .filter(|ad| any_matches(&ad.service_selectors, &service.labels))
            .collect();
        let without_endpoints = service.announce_without_endpoints
            || ads.iter().any(|ad| ad.announce_without_endpoints);
        if !service.has_usable_endpoint && !without_endpoints {
            refused.push(Unannounced::NoUsableEndpoint);
            continue;
        }
        if service.shares_ip && ads.iter().any(|ad| !ad.service_selectors.is_empty()) {
            refused.push(Unannounced::SharedIpWithServiceSelector(
                service.key.clone(),
            ));
        } else if ads.is_empty() {
            refused.push(Unannounced::NoAdvertisement);
        } else {
            per_service.push((service, ads, without_endpoints));
        }
    }
    if per_service.is_empty() {
        // The reason of the first Service that has endpoints, else "no endpoints".
        election.unannounced = Some(
            refused
                .iter()
                .find(|r| **r != Unannounced::NoUsableEndpoint)
                .cloned()
                .unwrap_or(Unannounced::NoUsableEndpoint),
        );
        return election;
    }

    for (node, info) in world.nodes {
        let exclusion = if world.live.is_some_and(|live| !live.contains(node)) {
            Some(Exclusion::NotLive)
        } else if info.network_unavailable {
            Some(Exclusion::NetworkUnavailable)
        } else if !world.ignore_exclude_label && info.labels.contains_key(EXCLUDE_LABEL) {
            Some(Exclusion::ExcludedByLabel)
        } else {
            per_service
                .iter()
                .find_map(|(service, ads, without_endpoints)| {
                    if !ads
                        .iter()
                        .any(|ad| any_matches(&ad.node_selectors, &info.labels))
                    {
                        Some(Exclusion::NotSelected(service.key.clone()))
                    } else if !service.policy_admits(node, *without_endpoints) {
                        Some(Exclusion::NoLocalEndpoint(service.key.clone()))
                    } else {
                        None
                    }
                })
        };
        if let Some(why) = exclusion {
            election.excluded.insert(node.clone(), why);
            continue;
        }
        // Preferences and interfaces come from the ads that select this node.
        let mut score = 0u32;
        let mut interfaces = BTreeSet::new();
        let mut all_interfaces = false;
        for (_, ads, _) in &per_service {
            for ad in ads
                .iter()
                .filter(|ad| any_matches(&ad.node_selectors, &info.labels))
            {
                score += ad
                    .preferred_nodes
                    .iter()
                    .filter(|(_, sel)| sel.matches(&info.labels))
                    .map(|(w, _)| *w)
                    .sum::<u32>();
                if ad.interfaces.is_empty() {
                    all_interfaces = true;
                } else {
                    interfaces.extend(ad.interfaces.iter().cloned());
                }
            }
        }
        if all_interfaces {
            interfaces.clear();
        }
        election.interfaces.insert(node.clone(), interfaces);
        election.candidates.push(Candidate {
            node: node.clone(),
            score,
            hash: rendezvous_hash(node, ip),
            departing: info.departing.is_some(),
        });
    }
    election.candidates.sort_by(|a, b| {
        a.departing
            .cmp(&b.departing)
            .then_with(|| b.score.cmp(&a.score))
            .then_with(|| a.hash.cmp(&b.hash))
    });
    if election.candidates.is_empty() {
        election.unannounced = Some(Unannounced::NoEligibleNode);
    }
    election
}

#[cfg(test)]
mod tests;
