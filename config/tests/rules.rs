//! Every configuration rule, table-driven: a snapshot as YAML (what a user applies), and the
//! problems it must produce — kind, object, field and reason — while the good objects stay usable.

use ferrolb_config::{ObjectKind, Outcome, Severity, Snapshot, parse};

const NS: &str = "ferrolb-system";

fn outcome(yaml: &str) -> Outcome {
    parse(&Snapshot::from_yaml(NS, yaml).expect("test YAML parses"))
}

fn pool(name: &str, addresses: &[&str]) -> String {
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "---\napiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {{addresses: [{}]}}\n",
        list.join(", ")
    )
}

fn object(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: ferrolb.io/v1beta1\nkind: {kind}\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {spec}\n"
    )
}

/// (what the case shows, snapshot, expected problems as (kind, name, field, reason fragment, severity)).
type Case = (
    &'static str,
    String,
    Vec<(
        ObjectKind,
        &'static str,
        &'static str,
        &'static str,
        Severity,
    )>,
);

fn check(cases: Vec<Case>) {
    for (what, yaml, expected) in cases {
        let out = outcome(&yaml);
        let got: Vec<String> = out.errors.iter().map(ToString::to_string).collect();
        assert_eq!(out.errors.len(), expected.len(), "{what}: got {got:#?}");
        for (kind, name, field, reason, severity) in expected {
            assert!(
                out.errors.iter().any(|e| e.kind == kind
                    && e.name == name
                    && e.field == field
                    && e.reason.contains(reason)
                    && e.severity == severity),
                "{what}: expected {kind} {name:?} {field}: …{reason}… ({severity:?}); got {got:#?}"
            );
        }
    }
}

use ObjectKind::*;
use Severity::{Error as E, Transient as T, Warning as W};

#[test]
fn pool_address_rules() {
    check(vec![
        (
            "reversed range",
            pool("p", &["10.0.0.5-10.0.0.1"]),
            vec![(
                IPAddressPool,
                "p",
                "spec.addresses[0]",
                "start 10.0.0.5 is after its end 10.0.0.1",
                E,
            )],
        ),
        (
            "prefix too long",
            pool("p", &["1.2.3.4/33"]),
            vec![(
                IPAddressPool,
                "p",
                "spec.addresses[0]",
                "prefix length 33 is longer than 32",
                E,
            )],
        ),
        (
            "link-local v6 mixed with v4 ranges",
            pool("p", &["192.0.2.10-192.0.2.20", "fe80::/10"]),
            vec![(IPAddressPool, "p", "spec.addresses[1]", "link-local", E)],
        ),
        (
            "spaces around the dash are fine",
            pool("p", &["192.0.2.10 - 192.0.2.20"]),
            vec![],
        ),
        (
            "empty address list",
            pool("p", &[]),
            vec![(IPAddressPool, "p", "spec.addresses", "no addresses", E)],
        ),
        (
            "not an address",
            pool("p", &["lan"]),
            vec![(IPAddressPool, "p", "spec.addresses[0]", "neither a CIDR", E)],
        ),
        (
            "mixed-family range",
            pool("p", &["192.0.2.1-2001:db8::1"]),
            vec![(
                IPAddressPool,
                "p",
                "spec.addresses[0]",
                "mixes IPv4 and IPv6",
                E,
            )],
        ),
        (
            "entries of one pool overlap",
            pool("p", &["192.0.2.0/24", "192.0.2.100-192.0.2.110"]),
            vec![(
                IPAddressPool,
                "p",
                "spec.addresses[1]",
                "overlaps 192.0.2.0/24, an earlier entry",
                E,
            )],
        ),
        (
            "two pools overlap: the older keeps working",
            format!(
                "{}{}",
                pool("a-first", &["192.0.2.0/25"]),
                pool("b-second", &["192.0.2.100-192.0.2.200"])
            ),
            vec![(
                IPAddressPool,
                "b-second",
                "spec.addresses[0]",
                "overlaps 192.0.2.0/25 of IPAddressPool \"a-first\"",
                E,
            )],
        ),
        (
            "dual stack pool",
            pool(
                "p",
                &["192.0.2.0/28", "2001:db8:0:1::200-2001:db8:0:1::2ff"],
            ),
            vec![],
        ),
        (
            "duplicate pool names (two sources)",
            format!(
                "{}{}",
                pool("p", &["192.0.2.0/28"]),
                pool("p", &["198.51.100.0/28"])
            ),
            vec![(
                IPAddressPool,
                "p",
                "metadata.name",
                "duplicate IPAddressPool name",
                E,
            )],
        ),
    ]);
}

#[test]
fn the_older_pool_wins_an_overlap_by_creation_time_not_by_name() {
    let yaml = "
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: a-newer, namespace: ferrolb-system, creationTimestamp: '2026-02-01T00:00:00Z'}
spec: {addresses: [192.0.2.0/24]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: z-older, namespace: ferrolb-system, creationTimestamp: '2026-01-01T00:00:00Z'}
spec: {addresses: [192.0.2.128/25]}
";
    let out = outcome(yaml);
    assert!(out.is_usable(IPAddressPool, "z-older"));
    assert!(!out.is_usable(IPAddressPool, "a-newer"));
    assert_eq!(
        out.config
            .pools
            .keys()
            .map(|p| p.as_str())
            .collect::<Vec<_>>(),
        ["z-older"]
    );
}

#[test]
fn pool_service_allocation_rules() {
    check(vec![
        (
            "repeated namespace and bad selector operator",
            object(
                "IPAddressPool",
                "p",
                "{addresses: [192.0.2.0/28], serviceAllocation: {namespaces: [a, a], serviceSelectors: [{matchExpressions: [{key: app, operator: Equals, values: [x]}]}]}}",
            ),
            vec![
                (
                    IPAddressPool,
                    "p",
                    "spec.serviceAllocation.namespaces[1]",
                    "duplicate namespace",
                    E,
                ),
                (
                    IPAddressPool,
                    "p",
                    "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].operator",
                    "unknown operator",
                    E,
                ),
            ],
        ),
        (
            "duplicate selectors",
            object(
                "IPAddressPool",
                "p",
                "{addresses: [192.0.2.0/28], serviceAllocation: {namespaceSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]}}",
            ),
            vec![(
                IPAddressPool,
                "p",
                "spec.serviceAllocation.namespaceSelectors[1]",
                "duplicate selector",
                E,
            )],
        ),
    ]);
}

#[test]
fn namespace_selectors_resolve_against_namespace_labels() {
    let yaml = format!(
        "{}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: web, labels: {{tier: web}}}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: db}}\n",
        object(
            "IPAddressPool",
            "p",
            "{addresses: [192.0.2.0/28], serviceAllocation: {priority: 5, namespaces: [extra], namespaceSelectors: [{matchLabels: {tier: web}}]}}"
        )
    );
    let out = outcome(&yaml);
    let pool = &out.config.pools["p"];
    let none = Default::default();
    assert!(pool.allows("web", &none) && pool.allows("extra", &none));
    assert!(!pool.allows("db", &none));
    assert_eq!(pool.allocation.as_ref().map(|a| a.priority), Some(5));
}

#[test]
fn advertisement_rules() {
    let pools = format!(
        "{}{}",
        pool("v4", &["198.51.100.0/24"]),
        pool("range", &["192.0.2.200-192.0.2.239"])
    );
    check(vec![
        (
            "aggregation shorter than the pool prefix",
            format!(
                "{pools}{}",
                object(
                    "BGPAdvertisement",
                    "agg",
                    "{ipAddressPools: [v4], aggregationLength: 16}"
                )
            ),
            vec![(
                BGPAdvertisement,
                "agg",
                "spec.aggregationLength",
                "/16 is shorter than 198.51.100.0/24",
                E,
            )],
        ),
        (
            "aggregation of a range uses its shortest summarised prefix",
            format!(
                "{pools}{}",
                object(
                    "BGPAdvertisement",
                    "agg",
                    "{ipAddressPools: [range], aggregationLength: 27}"
                )
            ),
            vec![(
                BGPAdvertisement,
                "agg",
                "spec.aggregationLength",
                "/27 is shorter than 192.0.2.200/29",
                E,
            )],
        ),
        (
            "aggregation equal to the pool prefix is fine",
            format!(
                "{pools}{}",
                object(
                    "BGPAdvertisement",
                    "agg",
                    "{ipAddressPools: [v4], aggregationLength: 24}"
                )
            ),
            vec![],
        ),
        (
            "serviceSelectors with aggregation",
            format!(
                "{pools}{}",
                object(
                    "BGPAdvertisement",
                    "s",
                    "{ipAddressPools: [v4], aggregationLength: 28, serviceSelectors: [{matchLabels: {a: b}}]}"
                )
            ),
            vec![(
                BGPAdvertisement,
                "s",
                "spec.serviceSelectors",
                "mutually exclusive",
                E,
            )],
        ),
        (
            "unknown community alias waits; bad numbers do not",
            format!(
                "{pools}{}",
                object(
                    "BGPAdvertisement",
                    "c",
                    "{communities: [no-such-alias, '65536:1', 'large:1:2:4294967296', '1:2', '1:2']}"
                )
            ),
            vec![
                (
                    BGPAdvertisement,
                    "c",
                    "spec.communities[0]",
                    "no Community defines the alias \"no-such-alias\"",
                    T,
                ),
                (
                    BGPAdvertisement,
                    "c",
                    "spec.communities[1]",
                    "65536 does not fit in 16 bits",
                    E,
                ),
                (
                    BGPAdvertisement,
                    "c",
                    "spec.communities[2]",
                    "4294967296 does not fit in 32 bits",
                    E,
                ),
                (
                    BGPAdvertisement,
                    "c",
                    "spec.communities[4]",
                    "duplicate community 1:2",
                    E,
                ),
            ],
        ),
        (
            "localPref conflict between two ads of one pool",
            format!(
                "{pools}{}{}",
                object(
                    "BGPAdvertisement",
                    "a",
                    "{ipAddressPools: [v4], localPref: 100}"
                ),
                object(
                    "BGPAdvertisement",
                    "b",
                    "{ipAddressPools: [v4], localPref: 200}"
                )
            ),
            vec![(
                BGPAdvertisement,
                "b",
                "spec.localPref",
                "conflicts with localPref 100 of BGPAdvertisement \"a\"",
                E,
            )],
        ),
        (
            "different localPref is fine toward disjoint peers",
            format!(
                "{pools}{}{}{}{}",
                object(
                    "BGPPeer",
                    "r1",
                    "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1}"
                ),
                object(
                    "BGPPeer",
                    "r2",
                    "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.2}"
                ),
                object(
                    "BGPAdvertisement",
                    "a",
                    "{ipAddressPools: [v4], localPref: 100, peers: [r1]}"
                ),
                object(
                    "BGPAdvertisement",
                    "b",
                    "{ipAddressPools: [v4], localPref: 200, peers: [r2]}"
                )
            ),
            vec![],
        ),
        (
            "a pool name that does not exist is a warning, the ad still works",
            format!(
                "{pools}{}",
                object("L2Advertisement", "l2", "{ipAddressPools: [v4, nope]}")
            ),
            vec![(
                L2Advertisement,
                "l2",
                "spec.ipAddressPools[1]",
                "no IPAddressPool named \"nope\"",
                W,
            )],
        ),
        (
            "L2 bad selector and interface",
            format!(
                "{pools}{}",
                object(
                    "L2Advertisement",
                    "l2",
                    "{interfaces: ['eth/0'], nodeSelectors: [{matchExpressions: [{key: zone, operator: In}]}], preferredNodeSelectors: [{weight: 101, preference: {}}]}"
                )
            ),
            vec![
                (
                    L2Advertisement,
                    "l2",
                    "spec.interfaces[0]",
                    "not a valid interface name",
                    E,
                ),
                (
                    L2Advertisement,
                    "l2",
                    "spec.nodeSelectors[0].matchExpressions[0].values",
                    "needs values",
                    E,
                ),
                (
                    L2Advertisement,
                    "l2",
                    "spec.preferredNodeSelectors[0].weight",
                    "1-100",
                    E,
                ),
            ],
        ),
        (
            "identical advertisements",
            format!(
                "{pools}{}{}",
                object("BGPAdvertisement", "a", "{ipAddressPools: [v4]}"),
                object("BGPAdvertisement", "b", "{ipAddressPools: [v4]}")
            ),
            vec![(BGPAdvertisement, "b", "spec", "duplicate definition", E)],
        ),
    ]);
}

#[test]
fn community_rules() {
    check(vec![
        (
            "an alias defined twice, across objects: the older keeps it",
            format!(
                "{}{}",
                object(
                    "Community",
                    "a",
                    "{communities: [{name: gold, value: '64512:1'}]}"
                ),
                object(
                    "Community",
                    "b",
                    "{communities: [{name: gold, value: '64512:2'}]}"
                )
            ),
            vec![(
                Community,
                "b",
                "spec.communities[0].name",
                "already defined by Community \"a\"",
                E,
            )],
        ),
        (
            "bad values and alias names",
            object(
                "Community",
                "c",
                "{communities: [{name: x, value: '70000:1'}, {name: '1:2', value: '1:2'}, {name: silver, value: gold}]}",
            ),
            vec![
                (
                    Community,
                    "c",
                    "spec.communities[0].value",
                    "70000 does not fit in 16 bits",
                    E,
                ),
                (
                    Community,
                    "c",
                    "spec.communities[1].name",
                    "cannot look like a community",
                    E,
                ),
                (
                    Community,
                    "c",
                    "spec.communities[2].value",
                    "is not a community",
                    E,
                ),
            ],
        ),
    ]);
}

#[test]
fn community_aliases_resolve_in_advertisements() {
    let yaml = format!(
        "{}{}{}",
        pool("v4", &["198.51.100.0/24"]),
        object(
            "Community",
            "c",
            "{communities: [{name: gold, value: 'large:64512:1:2'}]}"
        ),
        object(
            "BGPAdvertisement",
            "a",
            "{communities: [gold, '65535:65281']}"
        )
    );
    let out = outcome(&yaml);
    assert!(out.is_valid(), "{:?}", out.errors);
    let ad = &out.config.bgp_advertisements["a"];
    let shown: Vec<String> = ad.communities.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["65535:65281", "large:64512:1:2"]);
}

#[test]
fn peer_rules() {
    let secret = |name: &str, type_: &str, data: &str| {
        format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {NS}}}\ntype: {type_}\n{data}\n"
        )
    };
    check(vec![
        (
            "missing profile and secret are transient",
            object(
                "BGPPeer",
                "p",
                "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, bfdProfile: fast, passwordSecret: {name: md5}}",
            ),
            vec![
                (
                    BGPPeer,
                    "p",
                    "spec.bfdProfile",
                    "BFDProfile \"fast\" not found",
                    T,
                ),
                (
                    BGPPeer,
                    "p",
                    "spec.passwordSecret.name",
                    "Secret \"md5\" not found",
                    T,
                ),
            ],
        ),
        (
            "a secret of the wrong type, or without the key",
            format!(
                "{}{}{}{}",
                secret("opaque", "Opaque", "stringData: {password: x}"),
                secret(
                    "nokey",
                    "kubernetes.io/basic-auth",
                    "stringData: {username: x}"
                ),
                object(
                    "BGPPeer",
                    "p1",
                    "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, passwordSecret: {name: opaque}}"
                ),
                object(
                    "BGPPeer",
                    "p2",
                    "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.2, passwordSecret: {name: nokey}}"
                )
            ),
            vec![
                (
                    BGPPeer,
                    "p1",
                    "spec.passwordSecret.name",
                    "must be kubernetes.io/basic-auth",
                    E,
                ),
                (
                    BGPPeer,
                    "p2",
                    "spec.passwordSecret.name",
                    "has no password key",
                    E,
                ),
            ],
        ),
        (
            "everything checkable on one peer at once",
            object(
                "BGPPeer",
                "p",
                "{myASN: 0, peerASN: 64512, dynamicASN: external, holdTime: 2s, keepaliveTime: 5s, connectTime: 1500ms, routerID: '2001:db8::1', password: x, passwordSecret: {name: s}}",
            ),
            vec![
                (BGPPeer, "p", "spec.myASN", "missing local ASN", E),
                (
                    BGPPeer,
                    "p",
                    "spec",
                    "exactly one of peerASN and dynamicASN",
                    E,
                ),
                (
                    BGPPeer,
                    "p",
                    "spec",
                    "exactly one of peerAddress and interface",
                    E,
                ),
                (BGPPeer, "p", "spec.holdTime", "must be 0 or at least 3s", E),
                (
                    BGPPeer,
                    "p",
                    "spec.keepaliveTime",
                    "must not exceed holdTime",
                    E,
                ),
                (
                    BGPPeer,
                    "p",
                    "spec.connectTime",
                    "whole number of seconds",
                    E,
                ),
                (BGPPeer, "p", "spec.routerID", "not an IPv4 address", E),
                (
                    BGPPeer,
                    "p",
                    "spec",
                    "password and passwordSecret are mutually exclusive",
                    E,
                ),
            ],
        ),
        (
            "ebgp multihop on an iBGP peer; family mismatch",
            object(
                "BGPPeer",
                "p",
                "{myASN: 64512, peerASN: 64512, peerAddress: 192.0.2.1, sourceAddress: '2001:db8::1', ebgpMultiHop: true}",
            ),
            vec![
                (BGPPeer, "p", "spec.ebgpMultiHop", "ibgp peer", E),
                (BGPPeer, "p", "spec.sourceAddress", "same address family", E),
            ],
        ),
        (
            "keepalive alone implies hold = 3x keepalive",
            object(
                "BGPPeer",
                "p",
                "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, keepaliveTime: 500ms}",
            ),
            vec![(
                BGPPeer,
                "p",
                "spec.keepaliveTime",
                "hold time 1s must be 0 or at least 3s",
                E,
            )],
        ),
        (
            "two peers for the same router from the same nodes",
            format!(
                "{}{}",
                object(
                    "BGPPeer",
                    "a",
                    "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1}"
                ),
                object(
                    "BGPPeer",
                    "b",
                    "{myASN: 64514, peerASN: 64512, peerAddress: 192.0.2.1}"
                )
            ),
            vec![(
                BGPPeer,
                "b",
                "spec.peerAddress",
                "already peers with the same router",
                E,
            )],
        ),
        (
            "BFD ranges",
            object(
                "BFDProfile",
                "f",
                "{receiveInterval: 5, detectMultiplier: 300}",
            ),
            vec![
                (
                    BFDProfile,
                    "f",
                    "spec.receiveInterval",
                    "5 is outside 10-60000",
                    E,
                ),
                (
                    BFDProfile,
                    "f",
                    "spec.detectMultiplier",
                    "300 is outside 2-255",
                    E,
                ),
            ],
        ),
    ]);
}

#[test]
fn peer_defaults_and_resolved_references() {
    let yaml = format!(
        "{}{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: md5, namespace: {NS}}}\ntype: kubernetes.io/basic-auth\ndata: {{password: c2VjcmV0}}\n",
        object("BFDProfile", "fast", "{transmitInterval: 100}"),
        object(
            "BGPPeer",
            "r",
            "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, holdTime: 9s, bfdProfile: fast, passwordSecret: {name: md5}}"
        )
    );
    let out = outcome(&yaml);
    assert!(out.is_valid(), "{:?}", out.errors);
    let peer = &out.config.peers["r"];
    assert_eq!(peer.hold_time.as_secs(), 9);
    assert_eq!(peer.keepalive_time.as_secs(), 3);
    assert_eq!(peer.port, 179);
    assert_eq!(peer.password.as_deref(), Some("secret"));
    let bfd = &out.config.bfd_profiles["fast"];
    assert_eq!(
        (
            bfd.transmit_interval.as_millis(),
            bfd.receive_interval.as_millis(),
            bfd.detect_multiplier
        ),
        (100, 300, 3)
    );
}

#[test]
fn a_broken_snapshot_reports_every_error_at_once_and_keeps_the_good_objects() {
    let yaml = format!(
        "{}{}{}{}{}{}",
        pool("good", &["192.0.2.200-192.0.2.239"]),
        pool("bad-range", &["10.0.0.5-10.0.0.1", "1.2.3.4/33"]),
        pool("overlapping", &["192.0.2.210/32"]),
        object(
            "L2Advertisement",
            "l2",
            "{ipAddressPools: [good, bad-range]}"
        ),
        object(
            "BGPPeer",
            "peer",
            "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, bfdProfile: missing}"
        ),
        object("BGPAdvertisement", "adv", "{communities: [nope]}")
    );
    let out = outcome(&yaml);
    let fields: Vec<(String, &str)> = out
        .errors
        .iter()
        .map(|e| (format!("{} {}", e.kind, e.name), e.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("IPAddressPool bad-range".to_string(), "spec.addresses[0]"),
            ("IPAddressPool bad-range".to_string(), "spec.addresses[1]"),
            ("IPAddressPool overlapping".to_string(), "spec.addresses[0]"),
            ("L2Advertisement l2".to_string(), "spec.ipAddressPools[1]"),
            ("BGPAdvertisement adv".to_string(), "spec.communities[0]"),
            ("BGPPeer peer".to_string(), "spec.bfdProfile"),
        ]
    );
    assert!(!out.is_valid());
    assert!(out.is_usable(IPAddressPool, "good"));
    assert!(
        out.is_usable(L2Advertisement, "l2"),
        "a warning does not disable the advertisement"
    );
    assert_eq!(out.config.pools.len(), 1);
    let l2 = &out.config.l2_advertisements["l2"];
    assert_eq!(
        l2.pools.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        ["good"]
    );
    assert!(out.config.peers.is_empty() && out.config.bgp_advertisements.is_empty());
}

#[test]
fn objects_outside_ferrolbs_namespace_are_ignored() {
    let yaml = "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: elsewhere, namespace: default}\nspec: {addresses: ['10.0.0.5-10.0.0.1']}\n";
    let out = outcome(yaml);
    assert!(out.is_valid() && out.config.pools.is_empty());
}

#[test]
fn the_committed_samples_are_a_valid_configuration() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples");
    let mut yaml = String::new();
    for entry in std::fs::read_dir(&dir).expect("samples dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            yaml.push_str("\n---\n");
            yaml.push_str(&std::fs::read_to_string(&path).expect("readable"));
        }
    }
    let out = outcome(&yaml);
    assert!(out.is_valid(), "{:#?}", out.errors);
    assert!(out.errors.is_empty(), "{:#?}", out.errors);
    assert!(out.config.pools.len() >= 3 && !out.config.peers.is_empty());
}

#[test]
fn an_edit_that_overlaps_a_pool_in_use_is_refused_on_the_edited_pool() {
    // "a-edited" sorts first and is as old as "b-serving", but b is in use with these very
    // addresses while a's addresses changed: a is the one refused.
    let yaml = format!(
        "{}{}",
        pool("a-edited", &["192.0.2.0/28", "192.0.2.64/28"]),
        pool("b-serving", &["192.0.2.64/27"])
    );
    let mut snapshot = Snapshot::from_yaml(NS, &yaml).expect("parses");
    let range = |s: &str| ferrolb_config::IpRange::parse_entry(s).expect("valid");
    snapshot.pools_in_use = [
        ("a-edited".into(), vec![range("192.0.2.0/28")]),
        ("b-serving".into(), vec![range("192.0.2.64/27")]),
    ]
    .into();
    let out = parse(&snapshot);
    assert!(out.is_usable(IPAddressPool, "b-serving"));
    assert!(!out.is_usable(IPAddressPool, "a-edited"));
    // Without that history, the name decides.
    let out = outcome(&yaml);
    assert!(out.is_usable(IPAddressPool, "a-edited") && !out.is_usable(IPAddressPool, "b-serving"));
}
