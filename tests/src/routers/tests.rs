use super::*;

#[test]
fn gobgp_json_routes_are_read_with_their_attributes() {
    // Captured from gobgp 3.10 (`gobgp global rib -a ipv4 -j`).
    let json = r#"{"198.51.100.10/32":[{"nlri":{"prefix":"198.51.100.10/32"},"age":1795374236,"best":true,"attrs":[{"type":1,"value":2},{"type":2,"as_paths":[{"segment_type":2,"num":1,"asns":[4200000001]}]},{"type":8,"communities":[4259840001]},{"type":32,"value":[{"ASN":4200000001,"LocalData1":1,"LocalData2":2}]},{"type":3,"nexthop":"192.0.2.1"}],"stale":false}]}"#;
    let routes = parse_gobgp_rib(json).expect("parses");
    assert_eq!(routes.len(), 1);
    let r = &routes[0];
    assert_eq!(r.next_hop.to_string(), "192.0.2.1");
    assert_eq!(r.as_path, vec![4_200_000_001]);
    assert!(r.best);
    assert_eq!(r.communities, BTreeSet::from(["65000:1".to_owned()]));
    assert_eq!(
        r.large_communities,
        BTreeSet::from(["4200000001:1:2".to_owned()])
    );
}

#[test]
fn bird_text_routes_are_read_with_their_attributes() {
    // The layout of `birdc show route all` in BIRD 2.0.12: attribute lines start with a
    // tab, further paths of the same prefix with spaces.
    let text = [
        "BIRD 2.0.12 ready.",
        "Table master4:",
        "198.51.100.10/32     unicast [n0 12:00:00.000] * (100) [AS4200000001i]",
        "\tvia 192.0.2.1 on eth0",
        "\tType: BGP univ",
        "\tBGP.origin: IGP",
        "\tBGP.as_path: 4200000001",
        "\tBGP.next_hop: 192.0.2.1",
        "\tBGP.local_pref: 100",
        "\tBGP.community: (65000,100) (65000,200)",
        "\tBGP.large_community: (4200000001, 1, 2)",
        "                     unicast [n1 12:00:00.000] (100) [AS4200000002i]",
        "\tvia 192.0.2.2 on eth0",
        "\tBGP.as_path: 4200000002",
    ]
    .join("\n");
    let text = text.as_str();
    let routes = parse_bird_routes(text).expect("parses");
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0].prefix.to_string(), "198.51.100.10/32");
    assert_eq!(routes[0].next_hop.to_string(), "192.0.2.1");
    assert_eq!(routes[0].local_pref, Some(100));
    assert_eq!(routes[0].as_path, vec![4_200_000_001]);
    assert!(routes[0].communities.contains("65000:200"));
    assert!(routes[0].large_communities.contains("4200000001:1:2"));
    assert_eq!(routes[1].next_hop.to_string(), "192.0.2.2");
    assert_eq!(routes[1].prefix, routes[0].prefix);
    assert!(routes[0].best, "the primary path");
    assert!(!routes[1].best);
}

#[test]
fn frr_json_paths_are_read_with_well_known_communities_by_number_and_ecmp_as_used() {
    // The shape of `show bgp ipv4 unicast <prefix> json` in FRR 8.4 (fields trimmed).
    let json = r#"{"prefix":"198.51.100.20/32","paths":[
        {"aspath":{"string":"64512 64512 64512 64512"},"community":{"string":"65000:100 graceful-shutdown"},
         "locPrf":0,"nexthops":[{"ip":"192.0.2.1"}]},
        {"aspath":{"string":"64512"},"community":{"string":"65000:100 no-export"},"multipath":true,
         "nexthops":[{"ip":"192.0.2.2"}]},
        {"aspath":{"string":"64512"},"bestpath":{"overall":true},"nexthops":[{"ip":"192.0.2.3"}]}]}"#;
    let routes = parse_frr_prefix("198.51.100.20/32", json).expect("parses");
    assert_eq!(routes.len(), 3);
    assert_eq!(
        routes[0].communities,
        BTreeSet::from(["65000:100".to_owned(), "65535:0".to_owned()])
    );
    assert_eq!(routes[0].as_path, vec![64512; 4]);
    assert_eq!(routes[0].local_pref, Some(0));
    assert!(!routes[0].best);
    assert!(routes[1].communities.contains("65535:65281"));
    assert!(routes[1].best, "an ECMP member is used");
    assert!(routes[2].best, "the best path is used");
}
