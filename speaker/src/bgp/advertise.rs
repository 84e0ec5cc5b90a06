//! What one node advertises to each of its BGP peers. Pure: the configuration, this node and the
//! Services with IPs go in; per peer the routes (a [`RouteSet`]), per Service the peers it goes
//! to, and per IP the reason it is not advertised come out. The speaker, the tests and
//! `kubectl ferrolb explain` compute the same thing.
//!
//! An IP is advertised from a node when one of the Services on it is served from there — a
//! sharer that is not does not withdraw it for the others. A Service is served from a node
//! when (MetalLB's rules, REFERENCE.md §5.1):
//! - some BGPAdvertisement of the IP's pool matches the Service and selects this node;
//! - the node is not `NetworkUnavailable` and not labelled exclude-from-external-load-balancers
//!   (unless that label is ignored);
//! - `externalTrafficPolicy: Cluster`: a usable endpoint exists anywhere; `Local`: one exists on
//!   this node — so with Local only the nodes with pods attract traffic. A Service opted in to
//!   announcing without endpoints (its annotation, or a matching advertisement's
//!   `announceWithoutEndpoints`) needs none; with Local, every node advertises it while no node
//!   has a local endpoint;
//! - the matching advertisements do not ask for different LOCAL_PREFs for the same prefix.
//!
//! One route is made per (IP × matching advertisement × peer): the IP masked to the
//! advertisement's aggregation length, its LOCAL_PREF and communities. Advertisements with a
//! `peers` list reach only those peers; the peer must select this node. Identical prefixes from
//! several Services or advertisements become one route with the communities unioned.
//!
//! A node on its way out (cordoned, draining, marked for scale-down, tainted `NoExecute`) keeps
//! its routes but marks them for a graceful shutdown ([`graceful_shutdown`], RFC 8326) on each
//! peer that has it on: routers move the traffic to other nodes while this one still serves.
//! A node newly labelled exclude-from-external-load-balancers goes the same way first: on each
//! peer with graceful shutdown on, its routes stay, marked, for that peer's drain time after the
//! label appeared ([`Node::exclude_label_age`]), and only then are withdrawn; on the others they
//! are withdrawn at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_config::{
    BgpAdvertisement, BgpCommunity, Config, Family, GracefulShutdown, NodeName, PeerName, PoolName,
};
use ipnet::IpNet;

use super::packet::{Community, LargeCommunity};
use super::session::{RouteAttrs, RouteSet};
use crate::election::{EXCLUDE_LABEL, NodeInfo};
use crate::plan::{LbService, pool_of};

/// Why an IP is not advertised from this node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NotAdvertised {
    /// No pool of the configuration holds the IP.
    NoPool,
    /// No BGPAdvertisement of the pool matches the Service (which Service).
    NoAdvertisement(String),
    /// The matching advertisements do not select this node.
    NodeNotSelected,
    /// This node's `NetworkUnavailable` condition is True.
    NetworkUnavailable,
    /// This node carries the exclude-from-external-load-balancers label.
    ExcludedByLabel,
    /// `externalTrafficPolicy: Cluster` and no usable endpoint anywhere (which Service).
    NoEndpoints(String),
    /// `externalTrafficPolicy: Local` and no usable endpoint on this node (which Service).
    NoLocalEndpoints(String),
    /// Two advertisements ask for different LOCAL_PREFs for this prefix.
    ConflictingLocalPref(IpNet, u32, u32),
    /// The advertisements name only peers that do not peer from this node.
    NoPeer,
}

impl fmt::Display for NotAdvertised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPool => f.write_str("no IPAddressPool holds the IP"),
            Self::NoAdvertisement(s) => {
                write!(f, "no BGPAdvertisement of the IP's pool matches {s}")
            }
            Self::NodeNotSelected => {
                f.write_str("no matching BGPAdvertisement selects this node (nodeSelectors)")
            }
            Self::NetworkUnavailable => f.write_str("the node is NetworkUnavailable"),
            Self::ExcludedByLabel => write!(f, "the node is labelled {EXCLUDE_LABEL}"),
            Self::NoEndpoints(s) => write!(f, "{s} has no ready endpoint anywhere"),
            Self::NoLocalEndpoints(s) => write!(
                f,
                "{s} has externalTrafficPolicy Local and no ready endpoint on this node"
            ),
            Self::ConflictingLocalPref(prefix, a, b) => write!(
                f,
                "BGPAdvertisements ask for LOCAL_PREF {a} and {b} for {prefix}"
            ),
            Self::NoPeer => f.write_str(
                "the matching BGPAdvertisements name only peers that do not peer from this node",
            ),
        }
    }
}

/// The node's view of itself.
#[derive(Clone, Debug)]
pub struct Node<'a> {
    /// Its name.
    pub name: &'a NodeName,
    /// Its labels and conditions.
    pub info: &'a NodeInfo,
    /// Advertise even when the node carries the exclude label.
    pub ignore_exclude_label: bool,
    /// How long ago the exclude label appeared on the node, as far as the caller saw it appear;
    /// `None` when it did not see that (the label was there when it started): as long ago.
    pub exclude_label_age: Option<Duration>,
}

impl Node<'_> {
    /// The node carries the exclude label and it is not ignored.
    fn labelled_excluded(&self) -> bool {
        !self.ignore_exclude_label && self.info.labels.contains_key(EXCLUDE_LABEL)
    }

    /// For a node that carries the exclude label: the peers whose drain time has not yet
    /// passed since the label appeared, with their graceful-shutdown settings. Empty when the
    /// node is not excluded, or every peer's drain is over.
    fn draining_peers<'c>(
        &self,
        config: &'c Config,
    ) -> BTreeMap<&'c PeerName, &'c GracefulShutdown> {
        if !self.labelled_excluded() {
            return BTreeMap::new();
        }
        let Some(age) = self.exclude_label_age else {
            return BTreeMap::new();
        };
        config
            .peers
            .values()
            .filter_map(|p| Some((&p.name, p.graceful_shutdown.as_ref()?)))
            .filter(|(_, shutdown)| age < shutdown.drain_time)
            .collect()
    }

    /// When the exclude label next withdraws routes from a peer (from now), if it will.
    pub fn next_exclusion_step(&self, config: &Config) -> Option<Duration> {
        let age = self.exclude_label_age?;
        self.draining_peers(config)
            .values()
            .map(|shutdown| shutdown.drain_time.saturating_sub(age))
            .min()
    }
}

/// What this node advertises.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BgpPlan {
    /// The routes for each peer that peers from this node (empty sets included).
    pub routes: BTreeMap<PeerName, RouteSet>,
    /// For each Service (`namespace/name`) advertised from here, the peers it goes to.
    pub services: BTreeMap<String, BTreeSet<PeerName>>,
    /// IPs not advertised from here, and why.
    pub not_advertised: BTreeMap<IpAddr, NotAdvertised>,
}

/// The peers that peer from `node`.
pub fn peers_of<'a>(config: &'a Config, node: &Node<'_>) -> BTreeSet<&'a PeerName> {
    config
        .peers
        .values()
        .filter(|p| ferrolb_config::any_matches(&p.node_selectors, &node.info.labels))
        .map(|p| &p.name)
        .collect()
}

/// Computes what `node` advertises to whom.
pub fn plan(config: &Config, node: &Node<'_>, services: &[LbService]) -> BgpPlan {
    let peers = peers_of(config, node);
    let mut out = BgpPlan {
        routes: peers
            .iter()
            .map(|p| ((*p).clone(), RouteSet::new()))
            .collect(),
        ..BgpPlan::default()
    };
    let mut by_ip: BTreeMap<IpAddr, Vec<&LbService>> = BTreeMap::new();
    for service in services {
        for ip in &service.ips {
            by_ip.entry(*ip).or_default().push(service);
        }
    }
    // Newly excluded by the label: the routes the node had, kept only towards the peers that
    // are still draining (and marked below); when none is, the label withdraws everything.
    let draining = node.draining_peers(config);
    let as_if_not_labelled = Node {
        ignore_exclude_label: true,
        ..node.clone()
    };
    let node = if draining.is_empty() {
        node
    } else {
        &as_if_not_labelled
    };
    for (ip, users) in by_ip {
        match routes_for_ip(config, node, &peers, ip, &users) {
            Ok((mut routes, served)) => {
                if !draining.is_empty() {
                    routes.retain(|(peer, _, _)| draining.contains_key(peer));
                    if routes.is_empty() {
                        out.not_advertised
                            .insert(ip, NotAdvertised::ExcludedByLabel);
                        continue;
                    }
                }
                for (peer, prefix, attrs) in routes {
                    merge(out.routes.entry(peer.clone()).or_default(), prefix, attrs);
                    for user in &served {
                        out.services
                            .entry(user.info.key.clone())
                            .or_default()
                            .insert(peer.clone());
                    }
                }
            }
            Err(why) => {
                out.not_advertised.insert(ip, why);
            }
        }
    }
    if node.info.departing.is_some() || !draining.is_empty() {
        for (peer, routes) in &mut out.routes {
            if let Some(shutdown) = config
                .peers
                .get(peer)
                .and_then(|p| p.graceful_shutdown.as_ref())
            {
                *routes = graceful_shutdown(routes, shutdown);
            }
        }
    }
    out
}

/// `routes` as they go out before they go away (RFC 8326): with the GRACEFUL_SHUTDOWN community,
/// the peer's LOCAL_PREF for them (iBGP) and our AS prepended (eBGP), so routers prefer any
/// other path while these still carry traffic.
pub fn graceful_shutdown(routes: &RouteSet, shutdown: &GracefulShutdown) -> RouteSet {
    routes
        .iter()
        .map(|(prefix, attrs)| {
            let mut attrs = attrs.clone();
            attrs.communities.insert(Community::GRACEFUL_SHUTDOWN);
            attrs.local_pref = Some(shutdown.local_pref);
            attrs.as_path_prepend = shutdown.as_path_prepend;
            (*prefix, attrs)
        })
        .collect()
}

/// One route to one peer.
type PeerRoute<'a> = (&'a PeerName, IpNet, RouteAttrs);

/// An IP's routes from this node, and the Services on it that they serve.
type IpRoutes<'a, 's> = (Vec<PeerRoute<'a>>, Vec<&'s LbService>);

fn routes_for_ip<'a, 's>(
    config: &'a Config,
    node: &Node<'_>,
    peers: &BTreeSet<&'a PeerName>,
    ip: IpAddr,
    users: &[&'s LbService],
) -> Result<IpRoutes<'a, 's>, NotAdvertised> {
    let pool = pool_of(config, ip, users).ok_or(NotAdvertised::NoPool)?;
    // Each Service on the IP is served from here or not on its own: one without endpoints or
    // without a matching advertisement does not withdraw the IP of its sharers (they may be in
    // another namespace). The IP goes out with the union of what matches the served ones
    // (MetalLB merges per IP the same way); when none is served, the first one's reason says why.
    let mut ads: BTreeMap<&str, &BgpAdvertisement> = BTreeMap::new();
    let mut served = Vec::new();
    let mut refused = None;
    for user in users {
        match ads_serving(config, node, &pool, user) {
            Ok(matching) => {
                ads.extend(matching.into_iter().map(|ad| (ad.name.as_str(), ad)));
                served.push(*user);
            }
            Err(why) => {
                refused.get_or_insert(why);
            }
        }
    }
    if let (true, Some(why)) = (served.is_empty(), refused) {
        return Err(why);
    }

    let family = Family::of(&ip);
    let mut routes = Vec::new();
    let mut local_prefs: BTreeMap<IpNet, u32> = BTreeMap::new();
    for ad in ads.values() {
        let prefix = IpNet::new(ip, ad.aggregation(family))
            .map(|n| n.trunc())
            .unwrap_or_else(|_| IpNet::from(ip));
        if let Some(pref) = ad.local_pref {
            match local_prefs.insert(prefix, pref) {
                Some(other) if other != pref => {
                    return Err(NotAdvertised::ConflictingLocalPref(
                        prefix,
                        other.min(pref),
                        other.max(pref),
                    ));
                }
                _ => {}
            }
        }
        let attrs = attrs_of(ad);
        let targets: Vec<&&PeerName> = if ad.peers.is_empty() {
            peers.iter().collect()
        } else {
            peers.iter().filter(|p| ad.peers.contains(**p)).collect()
        };
        routes.extend(targets.into_iter().map(|p| (*p, prefix, attrs.clone())));
    }
    if routes.is_empty() {
        return Err(NotAdvertised::NoPeer);
    }
    Ok((routes, served))
}

/// The advertisements that carry `user`'s IP from this node, or why none does.
fn ads_serving<'a>(
    config: &'a Config,
    node: &Node<'_>,
    pool: &PoolName,
    user: &LbService,
) -> Result<Vec<&'a BgpAdvertisement>, NotAdvertised> {
    let mut matching: Vec<&BgpAdvertisement> = config
        .bgp_advertisements
        .values()
        .filter(|ad| ad.pools.contains(pool))
        .filter(|ad| ferrolb_config::any_matches(&ad.service_selectors, &user.info.labels))
        .collect();
    if matching.is_empty() {
        return Err(NotAdvertised::NoAdvertisement(user.info.key.clone()));
    }
    matching.retain(|ad| ferrolb_config::any_matches(&ad.node_selectors, &node.info.labels));
    if matching.is_empty() {
        return Err(NotAdvertised::NodeNotSelected);
    }
    if node.info.network_unavailable {
        return Err(NotAdvertised::NetworkUnavailable);
    }
    if node.labelled_excluded() {
        return Err(NotAdvertised::ExcludedByLabel);
    }
    let without_endpoints = user.info.announce_without_endpoints
        || matching.iter().any(|ad| ad.announce_without_endpoints);
    if !user.info.policy_admits(node.name, without_endpoints) {
        return Err(NotAdvertised::NoLocalEndpoints(user.info.key.clone()));
    }
    if !user.info.local && !user.info.has_usable_endpoint && !without_endpoints {
        return Err(NotAdvertised::NoEndpoints(user.info.key.clone()));
    }
    Ok(matching)
}

fn attrs_of(ad: &BgpAdvertisement) -> RouteAttrs {
    let mut attrs = RouteAttrs {
        local_pref: ad.local_pref,
        ..RouteAttrs::default()
    };
    for community in &ad.communities {
        match *community {
            BgpCommunity::Legacy(high, low) => {
                attrs
                    .communities
                    .insert(Community((u32::from(high) << 16) | u32::from(low)));
            }
            BgpCommunity::Large(global_admin, local_data1, local_data2) => {
                attrs.large_communities.insert(LargeCommunity {
                    global_admin,
                    local_data1,
                    local_data2,
                });
            }
        }
    }
    attrs
}

/// Adds a route, unioning communities with a route already there for the prefix.
fn merge(routes: &mut RouteSet, prefix: IpNet, attrs: RouteAttrs) {
    match routes.get_mut(&prefix) {
        None => {
            routes.insert(prefix, attrs);
        }
        Some(existing) => {
            existing.communities.extend(attrs.communities);
            existing.large_communities.extend(attrs.large_communities);
            if existing.local_pref.is_none() {
                existing.local_pref = attrs.local_pref;
            }
        }
    }
}

/// The nodes (of `nodes`, in name order) that advertise `service` to some peer, each judged as
/// its own speaker would (labels, conditions, endpoints; an exclude label as long seen). So
/// that a Service's BGP announcement is told once, by the first of them, listing them all,
/// rather than once by every node. The projection of [`advertising`], so the Event and the
/// Service's `ferrolb.io/BGPAdvertised` condition always agree.
pub fn advertisers<'a>(
    config: &Config,
    nodes: impl IntoIterator<Item = (&'a NodeName, &'a NodeInfo)>,
    ignore_exclude_label: bool,
    service: &LbService,
) -> Vec<&'a NodeName> {
    advertising(config, nodes, ignore_exclude_label, service)
        .into_iter()
        .filter_map(|(name, outcome)| outcome.is_ok().then_some(name))
        .collect()
}

/// Per node of `nodes` (in name order), the peers it advertises `service` to, or why it does
/// not (the reason for the Service's first IP that is not advertised), each node judged as
/// its own speaker would.
pub fn advertising<'a>(
    config: &Config,
    nodes: impl IntoIterator<Item = (&'a NodeName, &'a NodeInfo)>,
    ignore_exclude_label: bool,
    service: &LbService,
) -> BTreeMap<&'a NodeName, Result<BTreeSet<PeerName>, NotAdvertised>> {
    nodes
        .into_iter()
        .map(|(name, info)| {
            let node = Node {
                name,
                info,
                ignore_exclude_label,
                exclude_label_age: None,
            };
            let mut plan = plan(config, &node, std::slice::from_ref(service));
            let outcome = match plan.services.remove(&service.info.key) {
                Some(peers) => Ok(peers),
                None => Err(plan
                    .not_advertised
                    .into_values()
                    .next()
                    .unwrap_or(NotAdvertised::NoPeer)),
            };
            (name, outcome)
        })
        .collect()
}

/// Whether some BGPAdvertisement covers the pool of one of `service`'s IPs: a BGP Service,
/// which either some node advertises or which says why none does.
pub fn is_bgp_service(config: &Config, service: &LbService) -> bool {
    service.ips.iter().any(|ip| {
        pool_of(config, *ip, &[service]).is_some_and(|pool| {
            config
                .bgp_advertisements
                .values()
                .any(|ad| ad.pools.contains(&pool))
        })
    })
}

#[cfg(test)]
mod tests;
