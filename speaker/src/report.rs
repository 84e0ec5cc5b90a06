//! Who reports what, and what a Service's `ferrolb.io/BGPAdvertised` condition says. Pure.
//!
//! Every speaker could report on everything, and at 100,000 Services on 5,000 nodes that is
//! what made per-(Service, node) status objects cost O(S × N) (issue #14). Instead, one speaker
//! writes about each key — a Service's condition, a gone node's leftover objects — chosen by
//! among the live speakers: for each Service's condition by a consistent-hash [`Ring`] (a
//! hash and a search per Service), for the rarer keys (a gone node's leftovers) by rendezvous
//! hashing, the highest SHA-256 of `key@node` ([`writer`]). Each speaker then writes about 1/N
//! of the keys, a change to one Service costs one write, and the loss of a speaker moves only
//! its own share.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_config::{Config, NodeName, PeerName};
use sha2::{Digest, Sha256};

use crate::bgp::advertise::{self, NotAdvertised};

mod ring;
use crate::election::{EXCLUDE_LABEL, NodeInfo};
use crate::plan::LbService;
pub use ring::Ring;

/// The Service condition saying who advertises it over BGP.
pub const BGP_ADVERTISED: &str = "ferrolb.io/BGPAdvertised";
/// Its reason when some node advertises the Service.
pub const ADVERTISED: &str = "Advertised";
/// Its reason when no node does.
pub const NOT_ADVERTISED: &str = "NotAdvertised";
/// Names listed in a message before "and N more".
pub const MAX_NAMES: usize = 20;

/// The rendezvous score of `node` for `key`.
fn score(key: &str, node: &str) -> [u8; 32] {
    Sha256::digest(format!("{key}@{node}").as_bytes()).into()
}

/// The speaker (of `speakers`) that writes about `key`: the highest SHA-256 of `key@node`
/// (ties, impossible in practice, to the first name). `None` when there is no speaker.
pub fn writer<'a>(key: &str, speakers: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    speakers
        .into_iter()
        .map(|node| (score(key, node), node))
        .max_by(|(a, a_node), (b, b_node)| a.cmp(b).then_with(|| b_node.cmp(a_node)))
        .map(|(_, node)| node)
}

/// What the `ferrolb.io/BGPAdvertised` condition of a Service should say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// Some node advertises the Service (status "True").
    pub advertised: bool,
    /// [`ADVERTISED`] or [`NOT_ADVERTISED`].
    pub reason: &'static str,
    /// Which nodes advertise it to which peers, or why none does.
    pub message: String,
}

impl Condition {
    /// The condition's status.
    pub fn status(&self) -> &'static str {
        if self.advertised { "True" } else { "False" }
    }
}

/// `"a", "b" and 3 more`: at most [`MAX_NAMES`] names, sorted, quoted.
pub fn quoted_list<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    let names: BTreeSet<String> = names.into_iter().map(|n| n.as_ref().to_owned()).collect();
    let shown: Vec<String> = names
        .iter()
        .take(MAX_NAMES)
        .map(|n| format!("\"{n}\""))
        .collect();
    let more = names.len().saturating_sub(MAX_NAMES);
    if more == 0 {
        shown.join(", ")
    } else {
        format!("{} and {more} more", shown.join(", "))
    }
}

/// `node "a"` or `nodes "a", "b"` (likewise for peers), capped as [`quoted_list`].
fn counted<S: AsRef<str>>(noun: &str, names: &[S]) -> String {
    let plural = if names.len() == 1 { "" } else { "s" };
    format!("{noun}{plural} {}", quoted_list(names))
}

/// The `ferrolb.io/BGPAdvertised` condition of `service`, judged over `candidates` (the live
/// nodes) with [`advertise::advertising`] — the function the `nodeAssigned` Event uses, so the
/// two agree. `None` when it is not a BGP Service (no BGPAdvertisement covers its pool): then
/// it carries no such condition.
pub fn bgp_advertised<'a>(
    config: &Config,
    candidates: impl IntoIterator<Item = (&'a NodeName, &'a NodeInfo)>,
    ignore_exclude_label: bool,
    service: &LbService,
) -> Option<Condition> {
    if !advertise::is_bgp_service(config, service) {
        return None;
    }
    let outcomes = advertise::advertising(config, candidates, ignore_exclude_label, service);
    let mut nodes: Vec<&str> = Vec::new();
    let mut peers: BTreeSet<&PeerName> = BTreeSet::new();
    let mut refused: BTreeMap<&NotAdvertised, Vec<&str>> = BTreeMap::new();
    for (node, outcome) in &outcomes {
        match outcome {
            Ok(to) => {
                nodes.push(node.as_str());
                peers.extend(to);
            }
            Err(why) => refused.entry(why).or_default().push(node.as_str()),
        }
    }
    if !nodes.is_empty() {
        let peers: Vec<&str> = peers.iter().map(|p| p.as_str()).collect();
        return Some(Condition {
            advertised: true,
            reason: ADVERTISED,
            message: format!(
                "advertised by {} to {}",
                counted("node", &nodes),
                counted("peer", &peers)
            ),
        });
    }
    let why = if refused.is_empty() {
        "no live node runs a speaker".to_owned()
    } else {
        let mut said = BTreeSet::new();
        refused
            .iter()
            .map(|(why, nodes)| explain(why, nodes))
            .filter(|phrase| said.insert(phrase.clone()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    Some(Condition {
        advertised: false,
        reason: NOT_ADVERTISED,
        message: format!("no node advertises it over BGP: {why}"),
    })
}

/// The nodes an [`ADVERTISED`] condition's message names (at most [`MAX_NAMES`]: the rest are
/// only counted), for tools that show them; empty for any other message.
pub fn advertising_nodes(message: &str) -> Vec<String> {
    let Some(rest) = message
        .strip_prefix("advertised by nodes ")
        .or_else(|| message.strip_prefix("advertised by node "))
    else {
        return Vec::new();
    };
    let nodes = rest.split(" to peer").next().unwrap_or_default();
    nodes
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Why `nodes` do not advertise a Service, for someone who reads it on the Service.
fn explain(why: &NotAdvertised, nodes: &[&str]) -> String {
    let on = counted("node", nodes);
    match why {
        NotAdvertised::NoPool => "no IPAddressPool holds its IP".to_owned(),
        NotAdvertised::NoAdvertisement(_) => {
            "no BGPAdvertisement of its pool matches the Service (serviceSelectors)".to_owned()
        }
        NotAdvertised::NodeNotSelected => {
            format!("the BGPAdvertisements of its pool do not select {on} (nodeSelectors)")
        }
        NotAdvertised::NetworkUnavailable => format!("{on}: NetworkUnavailable"),
        NotAdvertised::ExcludedByLabel => format!("{on}: labelled {EXCLUDE_LABEL}"),
        NotAdvertised::NoEndpoints(_) => "the Service has no ready endpoint".to_owned(),
        NotAdvertised::NoLocalEndpoints(_) => {
            format!("externalTrafficPolicy is Local and no ready endpoint runs on {on}")
        }
        NotAdvertised::ConflictingLocalPref(..) => why.to_string(),
        NotAdvertised::NoPeer => format!("no BGPPeer of its BGPAdvertisements peers from {on}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::election::ServiceInfo;
    use crate::test_support::valid_config;

    #[test]
    fn the_writer_of_a_key_is_stable_and_independent_of_order() {
        let a = writer("web/app", ["node-1", "node-2", "node-3"]);
        assert_eq!(a, writer("web/app", ["node-3", "node-1", "node-2"]));
        assert!(a.is_some());
        assert_eq!(writer("web/app", []), None);
        assert_eq!(writer("web/app", ["node-7"]), Some("node-7"));
    }

    #[test]
    fn keys_spread_over_the_speakers_and_a_loss_moves_only_its_share() {
        let nodes: Vec<String> = (1..=5).map(|i| format!("node-{i}")).collect();
        let keys: Vec<String> = (0..5000).map(|i| format!("web/svc-{i}")).collect();
        let before: BTreeMap<&str, &str> = keys
            .iter()
            .map(|k| {
                (
                    k.as_str(),
                    writer(k, nodes.iter().map(String::as_str)).expect("a writer"),
                )
            })
            .collect();
        let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
        for node in before.values() {
            *per_node.entry(node).or_default() += 1;
        }
        assert_eq!(per_node.len(), 5);
        for (node, count) in &per_node {
            assert!((800..1200).contains(count), "{node} writes {count} of 5000");
        }
        // node-3 goes: only its keys move, and they move to the others.
        let left: Vec<&str> = nodes
            .iter()
            .map(String::as_str)
            .filter(|n| *n != "node-3")
            .collect();
        for (key, was) in &before {
            let now = writer(key, left.iter().copied()).expect("a writer");
            if *was != "node-3" {
                assert_eq!(now, *was, "{key} moved although its writer stayed");
            }
        }
    }

    #[test]
    fn lists_are_sorted_quoted_and_capped() {
        assert_eq!(quoted_list(["b", "a"]), "\"a\", \"b\"");
        let many: Vec<String> = (10..35).map(|i| format!("n{i}")).collect();
        let text = quoted_list(&many);
        assert!(text.starts_with("\"n10\", \"n11\""), "{text}");
        assert!(text.ends_with("\"n29\" and 5 more"), "{text}");
        assert_eq!(text.matches('"').count(), 2 * MAX_NAMES);
    }

    const CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: bgp, namespace: ferrolb-system}
spec: {addresses: ["198.51.100.0/24"]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec: {addresses: ["192.0.2.200-192.0.2.250"]}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp, namespace: ferrolb-system}
spec: {ipAddressPools: [bgp]}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {name: tor, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64500, peerAddress: 192.0.2.1}
"#;

    fn service(ip: &str, local: bool, endpoints_on: &[&str]) -> LbService {
        LbService {
            info: ServiceInfo {
                key: "web/app".into(),
                local,
                has_usable_endpoint: !endpoints_on.is_empty(),
                endpoint_nodes: endpoints_on.iter().map(|n| NodeName::from(*n)).collect(),
                ..ServiceInfo::default()
            },
            ips: vec![ip.parse().expect("an IP")],
            pool: None,
        }
    }

    fn nodes(names: &[&str]) -> BTreeMap<NodeName, NodeInfo> {
        names
            .iter()
            .map(|n| (NodeName::from(*n), NodeInfo::default()))
            .collect()
    }

    #[test]
    fn a_bgp_service_names_its_advertising_nodes_and_peers() {
        let config = valid_config(CONFIG);
        let nodes = nodes(&["node-2", "node-1"]);
        let condition = bgp_advertised(
            &config,
            &nodes,
            false,
            &service("198.51.100.1", false, &["node-1"]),
        )
        .expect("a BGP Service");
        assert_eq!(condition.status(), "True");
        assert_eq!(condition.reason, ADVERTISED);
        assert_eq!(
            condition.message,
            "advertised by nodes \"node-1\", \"node-2\" to peer \"tor\""
        );
    }

    #[test]
    fn tools_read_the_nodes_back_from_the_message() {
        let config = valid_config(CONFIG);
        let nodes = nodes(&["node-2", "node-1"]);
        let both = bgp_advertised(
            &config,
            &nodes,
            false,
            &service("198.51.100.1", false, &["node-1"]),
        )
        .expect("a BGP Service");
        assert_eq!(advertising_nodes(&both.message), ["node-1", "node-2"]);
        assert_eq!(
            advertising_nodes("advertised by node \"n\" to peers \"a\", \"b\""),
            ["n"]
        );
        assert!(advertising_nodes("no node advertises it over BGP: \"x\"").is_empty());
    }

    #[test]
    fn with_local_traffic_only_the_nodes_with_endpoints_advertise_and_without_any_it_says_why() {
        let config = valid_config(CONFIG);
        let nodes = nodes(&["node-1", "node-2"]);
        let one = bgp_advertised(
            &config,
            &nodes,
            false,
            &service("198.51.100.1", true, &["node-2"]),
        )
        .expect("a BGP Service");
        assert_eq!(one.message, "advertised by node \"node-2\" to peer \"tor\"");
        let none = bgp_advertised(&config, &nodes, false, &service("198.51.100.1", true, &[]))
            .expect("a BGP Service");
        assert_eq!(none.status(), "False");
        assert_eq!(none.reason, NOT_ADVERTISED);
        assert_eq!(
            none.message,
            "no node advertises it over BGP: externalTrafficPolicy is Local and no ready endpoint runs on nodes \"node-1\", \"node-2\""
        );
    }

    #[test]
    fn a_service_outside_bgp_pools_carries_no_condition() {
        let config = valid_config(CONFIG);
        let nodes = nodes(&["node-1"]);
        let lan = service("192.0.2.201", false, &["node-1"]);
        assert_eq!(bgp_advertised(&config, &nodes, false, &lan), None);
    }

    #[test]
    fn without_live_nodes_the_condition_says_so() {
        let config = valid_config(CONFIG);
        let none = bgp_advertised(
            &config,
            &BTreeMap::new(),
            false,
            &service("198.51.100.1", false, &["node-1"]),
        )
        .expect("a BGP Service");
        assert_eq!(
            none.message,
            "no node advertises it over BGP: no live node runs a speaker"
        );
    }
}
