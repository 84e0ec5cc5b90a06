//! Election tables, with the MetalLB order checked against SHA-256 computed outside Rust
//! (Python's hashlib), and a property test of minimal movement.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_config::{Config, NodeName, PoolName};
use proptest::prelude::*;

use super::*;

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

fn config(extra: &str) -> Config {
    let yaml = format!(
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: lan, namespace: ferrolb-system}}\nspec: {{addresses: ['192.0.2.200-192.0.2.250', '2001:db8:0:1::200-2001:db8:0:1::2ff']}}\n{extra}"
    );
    crate::test_support::valid_config(&yaml)
}

fn l2(spec: &str) -> String {
    format!(
        "---\napiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: l2-{}, namespace: ferrolb-system}}\nspec: {spec}\n",
        spec.len()
    )
}

fn nodes(labels: &[(&str, &[(&str, &str)])]) -> BTreeMap<NodeName, NodeInfo> {
    NODES
        .iter()
        .map(|n| {
            let l = labels
                .iter()
                .find(|(name, _)| name == n)
                .map(|(_, l)| *l)
                .unwrap_or(&[]);
            let labels = l
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (
                NodeName::from(*n),
                NodeInfo {
                    labels,
                    network_unavailable: false,
                    departing: None,
                },
            )
        })
        .collect()
}

fn svc(key: &str) -> ServiceInfo {
    ServiceInfo {
        key: key.into(),
        has_usable_endpoint: true,
        ..ServiceInfo::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn order(e: &Election) -> Vec<&str> {
    e.candidates.iter().map(|c| c.node.as_str()).collect()
}

#[test]
fn candidates_follow_metallbs_sha256_order() {
    let config = config(&l2("{}"));
    let nodes = nodes(&[]);
    let pool = PoolName::from("lan");
    // Expected orders computed with Python: sorted(sha256(f"{node}#{ip}")).
    let cases = [
        ("192.0.2.200", ["node-b", "node-a", "node-c"]),
        ("192.0.2.201", ["node-b", "node-a", "node-c"]),
        ("2001:db8:0:1::200", ["node-c", "node-b", "node-a"]),
    ];
    for (addr, want) in cases {
        let e = elect(
            World::new(&config, &nodes, None),
            ip(addr),
            &pool,
            &[svc("default/web")],
        );
        assert_eq!(order(&e), want, "{addr}");
        assert_eq!(e.winner().map(|n| n.as_str()), Some(want[0]));
        assert_eq!(
            e.interfaces[&NodeName::from("node-a")],
            BTreeSet::new(),
            "empty = all interfaces"
        );
    }
}

#[test]
fn dead_unavailable_and_excluded_nodes_are_skipped_with_the_reason() {
    let config = config(&l2("{}"));
    let mut nodes = nodes(&[("node-c", &[(EXCLUDE_LABEL, "")])]);
    nodes.get_mut("node-a").expect("node").network_unavailable = true;
    let live: BTreeSet<NodeName> = ["node-a", "node-c"].map(NodeName::from).into();
    let e = elect(
        World::new(&config, &nodes, Some(&live)),
        ip("192.0.2.200"),
        &"lan".into(),
        &[svc("default/web")],
    );
    assert_eq!(e.winner(), None);
    assert_eq!(e.unannounced, Some(Unannounced::NoEligibleNode));
    assert_eq!(
        e.excluded[&NodeName::from("node-a")],
        Exclusion::NetworkUnavailable
    );
    assert_eq!(e.excluded[&NodeName::from("node-b")], Exclusion::NotLive);
    assert_eq!(
        e.excluded[&NodeName::from("node-c")],
        Exclusion::ExcludedByLabel
    );
    let ignoring = World {
        ignore_exclude_label: true,
        ..World::new(&config, &nodes, Some(&live))
    };
    let e = elect(
        ignoring,
        ip("192.0.2.200"),
        &"lan".into(),
        &[svc("default/web")],
    );
    assert_eq!(order(&e), ["node-c"]);
}

/// Planned maintenance moves an IP before the node goes: a cordoned (or draining, or
/// scaled-down, or NoExecute-tainted) node is the last resort, not excluded — so the IP moves
/// off it while it still answers, and stays on it when no other node can take it.
#[test]
fn a_departing_node_announces_only_when_no_other_node_can() {
    let config = config(&l2("{}"));
    let mut nodes = nodes(&[]);
    // node-b wins 192.0.2.200 by hash (b, a, c); cordoned, it goes last.
    nodes.get_mut("node-b").expect("node").departing = Some(Departure::Cordoned);
    let e = elect(
        World::new(&config, &nodes, None),
        ip("192.0.2.200"),
        &"lan".into(),
        &[svc("default/web")],
    );
    assert_eq!(order(&e), ["node-a", "node-c", "node-b"]);
    // Every node departing: the usual order.
    for n in ["node-a", "node-c"] {
        nodes.get_mut(n).expect("node").departing = Some(Departure::ScaleDown);
    }
    let e = elect(
        World::new(&config, &nodes, None),
        ip("192.0.2.200"),
        &"lan".into(),
        &[svc("default/web")],
    );
    assert_eq!(order(&e), ["node-b", "node-a", "node-c"]);
    // Local: the only node with an endpoint keeps the IP, departing or not.
    let mut local = svc("default/web");
    local.local = true;
    local.endpoint_nodes = ["node-b"].map(NodeName::from).into();
    let e = elect(
        World::new(&config, &nodes, None),
        ip("192.0.2.200"),
        &"lan".into(),
        &[local],
    );
    assert_eq!(order(&e), ["node-b"]);
}

#[test]
fn local_traffic_policy_keeps_only_nodes_with_a_ready_endpoint() {
    let config = config(&l2("{}"));
    let nodes = nodes(&[]);
    let mut local = svc("default/web");
    local.local = true;
    local.endpoint_nodes = ["node-c"].map(NodeName::from).into();
    let e = elect(
        World::new(&config, &nodes, None),
        ip("192.0.2.200"),
        &"lan".into(),
        &[local.clone()],
    );
    assert_eq!(order(&e), ["node-c"]);
    assert!(matches!(
        e.excluded[&NodeName::from("node-b")],
        Exclusion::NoLocalEndpoint(_)
    ));
    local.has_usable_endpoint = false;
    local.endpoint_nodes.clear();
    let e = elect(
        World::new(&config, &nodes, None),
        ip("192.0.2.200"),
        &"lan".into(),
        &[local],
    );
    assert_eq!(e.unannounced, Some(Unannounced::NoUsableEndpoint));
}

#[test]
fn a_service_opted_in_is_announced_without_endpoints_and_local_endpoints_still_choose() {
    let lan = PoolName::from("lan");
    let vip = ip("192.0.2.200");
    let nodes = nodes(&[]);
    let plain = config(&l2("{}"));
    let mut gateway = svc("gw/envoy");
    gateway.has_usable_endpoint = false;
    // Without the opt-in, MetalLB's rule: nobody announces it.
    let e = elect(
        World::new(&plain, &nodes, None),
        vip,
        &lan,
        &[gateway.clone()],
    );
    assert_eq!(e.unannounced, Some(Unannounced::NoUsableEndpoint));
    // The annotation: every node is a candidate, as with endpoints.
    gateway.announce_without_endpoints = true;
    let e = elect(
        World::new(&plain, &nodes, None),
        vip,
        &lan,
        &[gateway.clone()],
    );
    assert_eq!(e.unannounced, None);
    assert_eq!(e.candidates.len(), 3);
    // Local with no local endpoint anywhere: every node may announce.
    gateway.local = true;
    let e = elect(
        World::new(&plain, &nodes, None),
        vip,
        &lan,
        &[gateway.clone()],
    );
    assert_eq!(e.candidates.len(), 3, "{:?}", e.excluded);
    // Local once a node has a ready endpoint: that node only.
    gateway.has_usable_endpoint = true;
    gateway.endpoint_nodes = ["node-b"].map(NodeName::from).into();
    let e = elect(
        World::new(&plain, &nodes, None),
        vip,
        &lan,
        &[gateway.clone()],
    );
    assert_eq!(order(&e), ["node-b"]);
    // The advertisement's field opts in every Service it matches; one it does not match is not.
    let opted = config(&format!(
        "{}{}",
        l2(
            "{ipAddressPools: [lan], announceWithoutEndpoints: true, serviceSelectors: [{matchLabels: {app: gw}}]}"
        ),
        l2("{ipAddressPools: [lan]}")
    ));
    let mut labelled = svc("gw/envoy");
    labelled.has_usable_endpoint = false;
    labelled.labels = [("app".to_owned(), "gw".to_owned())].into();
    let e = elect(World::new(&opted, &nodes, None), vip, &lan, &[labelled]);
    assert_eq!(e.candidates.len(), 3);
    let mut other = svc("web/app");
    other.has_usable_endpoint = false;
    let e = elect(World::new(&opted, &nodes, None), vip, &lan, &[other]);
    assert_eq!(e.unannounced, Some(Unannounced::NoUsableEndpoint));
}

#[test]
fn preferences_outweigh_the_hash_and_node_selectors_restrict() {
    let config = config(&l2(
        "{nodeSelectors: [{matchExpressions: [{key: rack, operator: Exists}]}], interfaces: [eth1], preferredNodeSelectors: [{weight: 50, preference: {matchLabels: {edge: 'true'}}}]}",
    ));
    let nodes = nodes(&[
        ("node-a", &[("rack", "1"), ("edge", "true")]),
        ("node-b", &[("rack", "2")]),
    ]);
    let e = elect(
        World::new(&config, &nodes, None),
        ip("192.0.2.200"),
        &"lan".into(),
        &[svc("default/web")],
    );
    assert_eq!(
        order(&e),
        ["node-a", "node-b"],
        "node-a preferred although node-b hashes first"
    );
    assert_eq!(e.candidates[0].score, 50);
    assert!(matches!(
        e.excluded[&NodeName::from("node-c")],
        Exclusion::NotSelected(_)
    ));
    assert_eq!(
        e.interfaces[&NodeName::from("node-a")],
        BTreeSet::from(["eth1".to_string()])
    );
}

#[test]
fn services_sharing_an_ip_land_on_one_node_that_suits_them_all() {
    let config = config(&l2("{}"));
    let nodes = nodes(&[]);
    let mut a = svc("default/a");
    a.local = true;
    a.endpoint_nodes = ["node-a", "node-c"].map(NodeName::from).into();
    a.shares_ip = true;
    let mut b = a.clone();
    b.key = "default/b".into();
    b.endpoint_nodes = ["node-c"].map(NodeName::from).into();
    let e = elect(
        World::new(&config, &nodes, None),
        ip("192.0.2.200"),
        &"lan".into(),
        &[a, b],
    );
    assert_eq!(order(&e), ["node-c"]);
}

#[test]
fn a_shared_ip_is_not_announced_by_an_advertisement_with_service_selectors() {
    let config = config(&l2("{serviceSelectors: [{matchLabels: {app: web}}]}"));
    let nodes = nodes(&[]);
    let mut web = svc("default/web");
    web.labels = [("app".to_string(), "web".to_string())].into();
    web.shares_ip = true;
    let e = elect(
        World::new(&config, &nodes, None),
        ip("192.0.2.200"),
        &"lan".into(),
        &[web.clone()],
    );
    assert_eq!(
        e.unannounced,
        Some(Unannounced::SharedIpWithServiceSelector(
            "default/web".into()
        ))
    );
    web.shares_ip = false;
    web.labels.clear();
    let e = elect(
        World::new(&config, &nodes, None),
        ip("192.0.2.200"),
        &"lan".into(),
        &[web],
    );
    assert_eq!(e.unannounced, Some(Unannounced::NoAdvertisement));
}

#[test]
fn a_sharer_without_endpoints_does_not_take_the_ip_from_the_others() {
    let config = config(&l2("{}"));
    let nodes = nodes(&[]);
    let mut serving = svc("web/serving");
    serving.shares_ip = true;
    // externalTrafficPolicy Local, and its pods are gone: no node has an endpoint of it.
    let mut empty = svc("other/empty");
    empty.shares_ip = true;
    empty.local = true;
    empty.has_usable_endpoint = false;
    let vip = ip("192.0.2.200");
    let alone = elect(
        World::new(&config, &nodes, None),
        vip,
        &"lan".into(),
        &[serving.clone()],
    );
    let shared = elect(
        World::new(&config, &nodes, None),
        vip,
        &"lan".into(),
        &[serving, empty],
    );
    assert!(alone.winner().is_some());
    assert_eq!(shared.unannounced, None);
    assert_eq!(order(&shared), order(&alone));
}

#[test]
fn a_sharer_refused_by_an_advertisement_does_not_take_the_ip_from_the_others() {
    let ads = format!(
        "{}{}",
        l2("{}"),
        l2("{serviceSelectors: [{matchLabels: {app: web}}]}")
    );
    let config = config(&ads);
    let nodes = nodes(&[]);
    // Matched by an advertisement with serviceSelectors while sharing: not announced
    // (MetalLB's rule); its sharer is matched by the plain advertisement only.
    let mut web = svc("default/web");
    web.labels = [("app".to_string(), "web".to_string())].into();
    web.shares_ip = true;
    let mut other = svc("default/other");
    other.shares_ip = true;
    let vip = ip("192.0.2.200");
    let alone = elect(
        World::new(&config, &nodes, None),
        vip,
        &"lan".into(),
        &[other.clone()],
    );
    let shared = elect(
        World::new(&config, &nodes, None),
        vip,
        &"lan".into(),
        &[web.clone(), other],
    );
    assert_eq!(shared.unannounced, None);
    assert_eq!(order(&shared), order(&alone));
    // Alone, it is still refused with the reason.
    let e = elect(
        World::new(&config, &nodes, None),
        vip,
        &"lan".into(),
        &[web],
    );
    assert_eq!(
        e.unannounced,
        Some(Unannounced::SharedIpWithServiceSelector(
            "default/web".into()
        ))
    );
}

proptest! {
    #[test]
    fn losing_a_node_moves_only_the_ips_it_announced(
        dead in 0usize..3,
        last_octets in proptest::collection::btree_set(200u8..=250, 1..30),
    ) {
        let config = config(&l2("{}"));
        let nodes = nodes(&[]);
        let all: BTreeSet<NodeName> = NODES.map(NodeName::from).into();
        let mut fewer = all.clone();
        let gone = NodeName::from(NODES[dead]);
        fewer.remove(&gone);
        for octet in last_octets {
            let addr = ip(&format!("192.0.2.{octet}"));
            let before = elect(World::new(&config, &nodes, Some(&all)), addr, &"lan".into(), &[svc("s")]);
            let after = elect(World::new(&config, &nodes, Some(&fewer)), addr, &"lan".into(), &[svc("s")]);
            if before.winner() != Some(&gone) {
                prop_assert_eq!(before.winner(), after.winner());
            } else {
                prop_assert_eq!(after.winner(), before.candidates.get(1).map(|c| &c.node));
            }
        }
    }
}
