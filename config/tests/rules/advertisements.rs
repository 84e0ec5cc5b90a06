//! Rules of L2 and BGP advertisements and of communities.

use super::*;

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
