//! L2Advertisements, BGPAdvertisements and Community aliases.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ferrolb_api::{Community, LabelSelector};

use crate::error::{ConfigError, ObjectKind, Problems};
use crate::pool::Pool;
use crate::range::Family;
use crate::selector::{Labels, Selector, parse_list};
use crate::{Config, NodeName, PeerName, PoolName, Snapshot, by_age, first_of_each_name, name_of};

/// A BGP community value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BgpCommunity {
    /// RFC 1997: `AS:VALUE`, two 16-bit halves.
    Legacy(u16, u16),
    /// RFC 8092: `large:GLOBAL:LOCAL1:LOCAL2`.
    Large(u32, u32, u32),
}

impl BgpCommunity {
    /// Parses `AS:VALUE` or `large:A:B:C`. `None` when the text is not community syntax at all
    /// (it may be an alias); `Some(Err)` when it is, but a number is out of range.
    pub fn parse(text: &str) -> Option<Result<Self, String>> {
        let parts: Vec<&str> = text.split(':').collect();
        let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        match parts.as_slice() {
            [a, b] if numeric(a) && numeric(b) => {
                let half = |p: &str| {
                    p.parse::<u16>()
                        .map_err(|_| format!("{text:?}: {p} does not fit in 16 bits (0-65535)"))
                };
                Some(half(a).and_then(|a| Ok(Self::Legacy(a, half(b)?))))
            }
            ["large", a, b, c] if [a, b, c].iter().all(|p| numeric(p)) => {
                let word = |p: &str| {
                    p.parse::<u32>().map_err(|_| {
                        format!("{text:?}: {p} does not fit in 32 bits (0-4294967295)")
                    })
                };
                Some(word(a).and_then(|a| Ok(Self::Large(a, word(b)?, word(c)?))))
            }
            _ if text.contains(':') => Some(Err(format!(
                "{text:?} is not a community: use AS:VALUE or large:A:B:C"
            ))),
            _ => None,
        }
    }
}

impl fmt::Display for BgpCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Legacy(a, b) => write!(f, "{a}:{b}"),
            Self::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
        }
    }
}

/// A usable L2Advertisement.
#[derive(Clone, Debug, PartialEq)]
pub struct L2Advertisement {
    /// The object's name.
    pub name: String,
    /// The pools it announces (names and selectors resolved; all pools when neither is given).
    pub pools: BTreeSet<PoolName>,
    /// Nodes that may announce (empty list: all).
    pub node_selectors: Vec<Selector>,
    /// The snapshot's nodes that may announce.
    pub nodes: BTreeSet<NodeName>,
    /// Interfaces to announce on (empty: all suitable).
    pub interfaces: BTreeSet<String>,
    /// Services it announces (empty list: all).
    pub service_selectors: Vec<Selector>,
    /// Weighted node preferences.
    pub preferred_nodes: Vec<(u32, Selector)>,
    /// Announce the Services it matches even without a ready endpoint.
    pub announce_without_endpoints: bool,
}

/// A usable BGPAdvertisement.
#[derive(Clone, Debug, PartialEq)]
pub struct BgpAdvertisement {
    /// The object's name.
    pub name: String,
    /// The pools it advertises.
    pub pools: BTreeSet<PoolName>,
    /// IPv4 prefix length of the routes (32 = host routes).
    pub aggregation_length: u8,
    /// IPv6 prefix length of the routes (128 = host routes).
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF for iBGP peers.
    pub local_pref: Option<u32>,
    /// Communities, aliases resolved.
    pub communities: BTreeSet<BgpCommunity>,
    /// Nodes that advertise (empty list: all).
    pub node_selectors: Vec<Selector>,
    /// The snapshot's nodes that advertise.
    pub nodes: BTreeSet<NodeName>,
    /// Peers to advertise to (empty: all).
    pub peers: BTreeSet<PeerName>,
    /// Services it advertises (empty list: all).
    pub service_selectors: Vec<Selector>,
    /// Advertise the Services it matches even without a ready endpoint.
    pub announce_without_endpoints: bool,
}

impl BgpAdvertisement {
    /// The aggregation length for `family`.
    pub fn aggregation(&self, family: Family) -> u8 {
        match family {
            Family::V4 => self.aggregation_length,
            Family::V6 => self.aggregation_length_v6,
        }
    }
}

pub(crate) fn parse_communities(
    objects: &[Community],
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, BgpCommunity> {
    let kind = ObjectKind::Community;
    let ordered = by_age(objects, |c| &c.metadata);
    let unique = first_of_each_name(kind, ordered, |c| &c.metadata, errors);
    let mut aliases: BTreeMap<String, (BgpCommunity, String)> = BTreeMap::new();
    for object in unique {
        let name = name_of(&object.metadata);
        let mut problems = Problems::new(kind, name);
        let mut mine = BTreeMap::new();
        for (i, alias) in object.spec.communities.iter().enumerate() {
            let field = format!("spec.communities[{i}]");
            if BgpCommunity::parse(&alias.name).is_some() {
                problems.error(
                    format!("{field}.name"),
                    "an alias name cannot look like a community value",
                );
            }
            let value = match BgpCommunity::parse(&alias.value.0) {
                Some(Ok(v)) => v,
                Some(Err(e)) => {
                    problems.error(format!("{field}.value"), e);
                    continue;
                }
                None => {
                    problems.error(
                        format!("{field}.value"),
                        format!(
                            "{:?} is not a community: use AS:VALUE or large:A:B:C",
                            alias.value.0
                        ),
                    );
                    continue;
                }
            };
            if let Some((_, owner)) = aliases.get(&alias.name) {
                problems.error(
                    format!("{field}.name"),
                    format!(
                        "alias {:?} is already defined by Community {owner:?}",
                        alias.name
                    ),
                );
            } else if mine.insert(alias.name.clone(), value).is_some() {
                problems.error(
                    format!("{field}.name"),
                    format!("duplicate alias {:?}", alias.name),
                );
            }
        }
        if problems.usable() {
            for (alias, value) in mine {
                aliases.insert(alias, (value, name.to_owned()));
            }
        }
        errors.append(&mut problems.list);
    }
    aliases.into_iter().map(|(k, (v, _))| (k, v)).collect()
}

/// Resolves `ipAddressPools` + `ipAddressPoolSelectors`; neither means every pool. A name that
/// matches no usable pool is a warning: the advertisement still works for the others.
fn select_pools(
    names: &[String],
    selectors: &[LabelSelector],
    pools: &BTreeMap<PoolName, Pool>,
    snapshot: &Snapshot,
    problems: &mut Problems<'_>,
) -> BTreeSet<PoolName> {
    let parsed = parse_list(selectors, "spec.ipAddressPoolSelectors", problems);
    if names.is_empty() && selectors.is_empty() {
        return pools.keys().cloned().collect();
    }
    let mut out = BTreeSet::new();
    for (i, name) in names.iter().enumerate() {
        let field = format!("spec.ipAddressPools[{i}]");
        if pools.contains_key(name.as_str()) {
            if !out.insert(PoolName::from(name.as_str())) {
                problems.error(field, format!("duplicate pool {name:?}"));
            }
        } else if snapshot.pools.iter().any(|p| name_of(&p.metadata) == name) {
            problems.warning(
                field,
                format!("IPAddressPool {name:?} is invalid, so nothing of it is announced"),
            );
        } else {
            problems.warning(field, format!("no IPAddressPool named {name:?}"));
        }
    }
    out.extend(
        pools
            .values()
            .filter(|p| parsed.iter().any(|s| s.matches(&p.labels)))
            .map(|p| p.name.clone()),
    );
    out
}

fn select_nodes(selectors: &[Selector], nodes: &BTreeMap<NodeName, Labels>) -> BTreeSet<NodeName> {
    nodes
        .iter()
        .filter(|(_, labels)| crate::any_matches(selectors, labels))
        .map(|(n, _)| n.clone())
        .collect()
}

pub(crate) fn parse_l2(
    snapshot: &Snapshot,
    pools: &BTreeMap<PoolName, Pool>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, L2Advertisement> {
    let kind = ObjectKind::L2Advertisement;
    let ordered = by_age(&snapshot.l2_advertisements, |a| &a.metadata);
    let mut out = BTreeMap::new();
    for object in first_of_each_name(kind, ordered, |a| &a.metadata, errors) {
        let name = name_of(&object.metadata);
        let spec = &object.spec;
        let mut problems = Problems::new(kind, name);
        let pools = select_pools(
            &spec.ip_address_pools,
            &spec.ip_address_pool_selectors,
            pools,
            snapshot,
            &mut problems,
        );
        let node_selectors = parse_list(&spec.node_selectors, "spec.nodeSelectors", &mut problems);
        let service_selectors = parse_list(
            &spec.service_selectors,
            "spec.serviceSelectors",
            &mut problems,
        );
        let mut interfaces = BTreeSet::new();
        for (i, ifname) in spec.interfaces.iter().enumerate() {
            let field = format!("spec.interfaces[{i}]");
            if ifname.is_empty() || ifname.len() > 15 || ifname.contains(['/', ' ', ':']) {
                problems.error(field, format!("{ifname:?} is not a valid interface name"));
            } else if !interfaces.insert(ifname.clone()) {
                problems.error(field, format!("duplicate interface {ifname:?}"));
            }
        }
        let mut preferred_nodes = Vec::new();
        for (i, p) in spec.preferred_node_selectors.iter().enumerate() {
            let field = format!("spec.preferredNodeSelectors[{i}]");
            let weight = u32::try_from(p.weight)
                .ok()
                .filter(|w| (1..=100).contains(w));
            match (weight, crate::Selector::parse(&p.preference)) {
                (None, _) => problems.error(format!("{field}.weight"), "weight must be 1-100"),
                (_, Err((path, reason))) => {
                    problems.error(format!("{field}.preference.{path}"), reason)
                }
                (Some(w), Ok(sel)) => preferred_nodes.push((w, sel)),
            }
        }
        if problems.usable() {
            let nodes = select_nodes(&node_selectors, &snapshot.nodes);
            out.insert(
                name.to_owned(),
                L2Advertisement {
                    name: name.to_owned(),
                    pools,
                    node_selectors,
                    nodes,
                    interfaces,
                    service_selectors,
                    preferred_nodes,
                    announce_without_endpoints: spec.announce_without_endpoints,
                },
            );
        }
        errors.append(&mut problems.list);
    }
    out
}

pub(crate) fn parse_bgp(
    snapshot: &Snapshot,
    config: &Config,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, BgpAdvertisement> {
    let kind = ObjectKind::BGPAdvertisement;
    let ordered = by_age(&snapshot.bgp_advertisements, |a| &a.metadata);
    let mut accepted: Vec<BgpAdvertisement> = Vec::new();
    let mut specs = Vec::new();
    for object in first_of_each_name(kind, ordered, |a| &a.metadata, errors) {
        let name = name_of(&object.metadata);
        let spec = &object.spec;
        let mut problems = Problems::new(kind, name);
        let pools = select_pools(
            &spec.ip_address_pools,
            &spec.ip_address_pool_selectors,
            &config.pools,
            snapshot,
            &mut problems,
        );
        let length =
            |value: Option<i32>, field: &str, family: Family, problems: &mut Problems<'_>| {
                let max = family.max_prefix_len();
                match value.map(u8::try_from) {
                    None => max,
                    Some(Ok(v)) if (1..=max).contains(&v) => v,
                    Some(_) => {
                        problems.error(field, format!("must be 1-{max}"));
                        max
                    }
                }
            };
        let aggregation_length = length(
            spec.aggregation_length,
            "spec.aggregationLength",
            Family::V4,
            &mut problems,
        );
        let aggregation_length_v6 = length(
            spec.aggregation_length_v6,
            "spec.aggregationLengthV6",
            Family::V6,
            &mut problems,
        );
        let service_selectors = parse_list(
            &spec.service_selectors,
            "spec.serviceSelectors",
            &mut problems,
        );
        if !spec.service_selectors.is_empty()
            && (aggregation_length != 32 || aggregation_length_v6 != 128)
        {
            problems.error(
                "spec.serviceSelectors",
                "serviceSelectors and a non-default aggregationLength/aggregationLengthV6 are mutually exclusive",
            );
        }
        let mut communities = BTreeSet::new();
        for (i, c) in spec.communities.iter().enumerate() {
            let field = format!("spec.communities[{i}]");
            let value = match BgpCommunity::parse(&c.0) {
                Some(Ok(v)) => v,
                Some(Err(e)) => {
                    problems.error(field, e);
                    continue;
                }
                None => match config.communities.get(&c.0) {
                    Some(v) => *v,
                    None => {
                        problems
                            .transient(field, format!("no Community defines the alias {:?}", c.0));
                        continue;
                    }
                },
            };
            if !communities.insert(value) {
                problems.error(field, format!("duplicate community {value}"));
            }
        }
        let mut peers = BTreeSet::new();
        for (i, p) in spec.peers.iter().enumerate() {
            let field = format!("spec.peers[{i}]");
            if !peers.insert(PeerName::from(p.as_str())) {
                problems.error(field, format!("duplicate peer {p:?}"));
            } else if !config.peers.contains_key(p.as_str()) {
                problems.warning(field, format!("no usable BGPPeer named {p:?}"));
            }
        }
        let node_selectors = parse_list(&spec.node_selectors, "spec.nodeSelectors", &mut problems);

        // An aggregate shorter than a pool's own prefix would attract traffic for addresses
        // outside the pool.
        // (A range counts as the CIDRs it summarises into; one error per pool and family.)
        for pool in pools.iter().filter_map(|p| config.pools.get(p)) {
            for (family, agg, field) in [
                (Family::V4, aggregation_length, "spec.aggregationLength"),
                (
                    Family::V6,
                    aggregation_length_v6,
                    "spec.aggregationLengthV6",
                ),
            ] {
                let too_specific = pool
                    .ranges
                    .iter()
                    .filter(|r| r.family() == family)
                    .flat_map(|r| r.cidrs())
                    .find(|net| agg < net.prefix_len());
                if let Some(net) = too_specific {
                    problems.error(
                        field,
                        format!(
                            "/{agg} is shorter than {net} of IPAddressPool {:?}: the aggregate would attract traffic for addresses outside the pool",
                            pool.name.as_str()
                        ),
                    );
                }
            }
        }

        let ad = BgpAdvertisement {
            name: name.to_owned(),
            nodes: select_nodes(&node_selectors, &snapshot.nodes),
            pools,
            aggregation_length,
            aggregation_length_v6,
            local_pref: spec.local_pref,
            communities,
            node_selectors,
            peers,
            service_selectors,
            announce_without_endpoints: spec.announce_without_endpoints,
        };
        if problems.usable() {
            if let Some(twin) = specs.iter().position(|s| *s == spec) {
                problems.error(
                    "spec",
                    format!(
                        "duplicate definition: BGPAdvertisement {:?} has the same spec",
                        accepted[twin].name
                    ),
                );
            } else if let Some(other) = accepted
                .iter()
                .find(|o| local_pref_conflict(o, &ad, config))
            {
                problems.error(
                    "spec.localPref",
                    format!(
                        "localPref {} conflicts with localPref {} of BGPAdvertisement {:?}, which advertises the same pool with the same aggregation to the same peers from the same nodes",
                        ad.local_pref.unwrap_or(0),
                        other.local_pref.unwrap_or(0),
                        other.name
                    ),
                );
            }
        }
        if problems.usable() {
            specs.push(spec);
            accepted.push(ad);
        }
        errors.append(&mut problems.list);
    }
    accepted.into_iter().map(|a| (a.name.clone(), a)).collect()
}

/// Two advertisements would send one route with two LOCAL_PREFs: they share a pool, differ in
/// localPref, and do not tell the routes apart by aggregation length (for a family of the
/// shared pool), by peers (both non-empty and disjoint) or by nodes (disjoint). Advertisements
/// with service selectors are checked per Service by the speaker instead.
fn local_pref_conflict(a: &BgpAdvertisement, b: &BgpAdvertisement, config: &Config) -> bool {
    if a.local_pref == b.local_pref
        || !a.service_selectors.is_empty()
        || !b.service_selectors.is_empty()
    {
        return false;
    }
    let disjoint_peers =
        !a.peers.is_empty() && !b.peers.is_empty() && a.peers.is_disjoint(&b.peers);
    if disjoint_peers || a.nodes.is_disjoint(&b.nodes) && !a.nodes.is_empty() && !b.nodes.is_empty()
    {
        return false;
    }
    a.pools.intersection(&b.pools).any(|p| {
        config.pools.get(p).is_some_and(|pool| {
            pool.families()
                .iter()
                .any(|f| a.aggregation(*f) == b.aggregation(*f))
        })
    })
}
