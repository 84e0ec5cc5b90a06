//! The UPDATE builder: many prefixes in few UPDATEs, none over 4096 octets, nothing lost.

use std::collections::BTreeSet;

use super::*;

fn attributes() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([65001])),
        next_hop: Some(v4("10.0.0.1")),
        communities: vec![Community::new(65000, 1), Community::new(65000, 2)],
        large_communities: vec![LargeCommunity {
            global_admin: 65001,
            local_data1: 7,
            local_data2: 8,
        }],
        ..PathAttributes::default()
    }
}

fn builder() -> UpdateBuilder {
    UpdateBuilder::new(&ctx4())
        .attributes(attributes())
        .ipv6_next_hop(MpNextHop {
            global: ip("2001:db8::1"),
            link_local: Some(v6("fe80::1")),
        })
}

fn host_routes() -> Vec<IpNet> {
    let v4 = (0..10_000u32).map(|i| IpNet::from(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))));
    let v6 = (0..10_000u128)
        .map(|i| IpNet::from(IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | i))));
    v4.chain(v6).collect()
}

/// Encodes each UPDATE, checks its size, and decodes it back.
fn wire_round_trip(updates: &[Update]) -> Vec<Update> {
    updates
        .iter()
        .map(|u| {
            let bytes = encode(&Message::Update(u.clone()), &ctx4());
            assert!(bytes.len() <= MAX_MESSAGE_LEN, "{} octets", bytes.len());
            match decode(&bytes, &ctx4()) {
                Message::Update(back) => back,
                other => panic!("not an UPDATE: {other:?}"),
            }
        })
        .collect()
}

#[test]
fn ten_thousand_ipv4_and_ten_thousand_ipv6_host_routes_pack_into_full_updates() {
    let routes = host_routes();
    let updates = builder().announce(routes.iter().copied()).expect("packs");
    let decoded = wire_round_trip(&updates);

    let announced: Vec<IpNet> = decoded
        .iter()
        .flat_map(|u| u.announced().copied())
        .collect();
    assert_eq!(announced.len(), 20_000, "no prefix twice");
    let expected: BTreeSet<IpNet> = routes.into_iter().collect();
    assert_eq!(announced.into_iter().collect::<BTreeSet<_>>(), expected);
    for u in &decoded {
        assert_eq!(u.errors, vec![]);
        let mut attrs = u.attributes.clone();
        if attrs.mp_reach.take().is_some() {
            attrs.next_hop = Some(v4("10.0.0.1"));
        }
        assert_eq!(
            attrs,
            attributes(),
            "every UPDATE carries the shared attributes"
        );
    }
    // /32s take 5 octets, /128s 17: about 800 and 235 per UPDATE.
    let (v4, v6): (Vec<_>, Vec<_>) = updates.iter().partition(|u| !u.nlri.is_empty());
    assert_eq!((v4.len(), v6.len()), (13, 43));
    let sizes: Vec<usize> = updates
        .iter()
        .map(|u| encode(&Message::Update(u.clone()), &ctx4()).len())
        .collect();
    let last_v4 = v4.len() - 1;
    for (i, size) in sizes.iter().enumerate() {
        if i != last_v4 && i != sizes.len() - 1 {
            assert!(
                *size > MAX_MESSAGE_LEN - 17,
                "UPDATE {i} is only {size} octets"
            );
        }
    }
}

#[test]
fn ten_thousand_ipv4_and_ten_thousand_ipv6_withdrawals_pack_into_full_updates() {
    let routes = host_routes();
    let updates = builder().withdraw(routes.iter().copied());
    let decoded = wire_round_trip(&updates);
    let withdrawn: Vec<IpNet> = decoded
        .iter()
        .flat_map(|u| u.withdrawals().copied())
        .collect();
    assert_eq!(withdrawn.len(), 20_000);
    assert_eq!(
        withdrawn.into_iter().collect::<BTreeSet<_>>(),
        routes.into_iter().collect::<BTreeSet<_>>()
    );
    assert!(decoded.iter().all(|u| u.announced().count() == 0));
    // 4073 octets of /32s at 5 each; 4066 of /128s at 17 each.
    assert_eq!(
        updates.len(),
        10_000usize.div_ceil(814) + 10_000usize.div_ceil(239)
    );
}

#[test]
fn a_few_prefixes_fit_in_one_update_per_family() {
    let updates = builder()
        .announce([
            net("192.0.2.1/32"),
            net("2001:db8::1/128"),
            net("192.0.2.2/32"),
        ])
        .expect("packs");
    assert_eq!(updates.len(), 2);
    assert_eq!(
        updates[0].nlri,
        vec![net("192.0.2.1/32"), net("192.0.2.2/32")]
    );
    assert_eq!(
        updates[1].attributes.next_hop, None,
        "no NEXT_HOP beside MP_REACH_NLRI"
    );
    assert_eq!(builder().announce([]).expect("nothing"), vec![]);
    assert_eq!(builder().withdraw([]), vec![]);
}

#[test]
fn announcing_without_a_next_hop_for_the_family_is_an_error() {
    let no_v6 = UpdateBuilder::new(&ctx4()).attributes(attributes());
    assert_eq!(
        no_v6.announce([net("2001:db8::/32")]),
        Err(EncodeError::MissingNextHop {
            family: Family::Ipv6Unicast
        })
    );
    let no_v4 = UpdateBuilder::new(&ctx4()).attributes(PathAttributes::default());
    assert_eq!(
        no_v4.announce([net("10.0.0.0/8")]),
        Err(EncodeError::MissingNextHop {
            family: Family::Ipv4Unicast
        })
    );
}

#[test]
fn attributes_too_large_to_leave_room_for_a_prefix_are_an_error() {
    let mut attrs = attributes();
    attrs.communities = (0..1020).map(Community).collect();
    let result = UpdateBuilder::new(&ctx4())
        .attributes(attrs)
        .announce([net("10.0.0.0/8")]);
    assert!(matches!(result, Err(EncodeError::MessageTooLong { .. })));
}

/// A builder sending IPv4 routes with an IPv6 next hop (RFC 8950), without NEXT_HOP.
fn ipv4_over_ipv6_builder(next_hop: MpNextHop) -> UpdateBuilder {
    UpdateBuilder::new(&ctx4())
        .attributes(PathAttributes {
            next_hop: None,
            ..attributes()
        })
        .ipv4_next_hop_ipv6(next_hop)
}

fn ipv6_next_hops() -> [MpNextHop; 2] {
    let global = ip("2001:db8::1");
    [
        MpNextHop {
            global,
            link_local: None,
        },
        MpNextHop {
            global,
            link_local: Some(v6("fe80::1")),
        },
    ]
}

#[test]
fn two_thousand_ipv4_host_routes_with_an_ipv6_next_hop_pack_into_mp_reach_without_next_hop() {
    let routes: Vec<IpNet> = (0..2_000u32)
        .map(|i| IpNet::from(IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i))))
        .collect();
    for next_hop in ipv6_next_hops() {
        let updates = ipv4_over_ipv6_builder(next_hop)
            .announce(routes.iter().copied())
            .expect("packs");
        let decoded = wire_round_trip(&updates);
        let announced: Vec<IpNet> = decoded
            .iter()
            .flat_map(|u| u.announced().copied())
            .collect();
        assert_eq!(announced, routes, "every prefix once, in order");
        for u in &decoded {
            assert_eq!(u.errors, vec![]);
            assert_eq!(u.nlri, vec![], "nothing in the NLRI field");
            assert_eq!(u.attributes.next_hop, None, "no NEXT_HOP");
            let reach = u.attributes.mp_reach.as_ref().expect("MP_REACH_NLRI");
            assert_eq!(
                (reach.family, reach.next_hop),
                (Family::Ipv4Unicast, next_hop)
            );
        }
        // /32s take 5 octets: every UPDATE but the last is full to within one prefix.
        let sizes: Vec<usize> = updates
            .iter()
            .map(|u| encode(&Message::Update(u.clone()), &ctx4()).len())
            .collect();
        let (last, full) = sizes.split_last().expect("some UPDATEs");
        assert!(full.iter().all(|s| *s > MAX_MESSAGE_LEN - 5), "{sizes:?}");
        assert!(*last <= MAX_MESSAGE_LEN);
    }
}

#[test]
fn ipv4_and_ipv6_routes_each_take_their_own_ipv6_next_hop_in_mp_reach() {
    let [v4_hop, v6_hop] = ipv6_next_hops();
    let updates = ipv4_over_ipv6_builder(v4_hop)
        .ipv6_next_hop(v6_hop)
        .announce([net("192.0.2.1/32"), net("2001:db8::1/128")])
        .expect("packs");
    let reach: Vec<(Family, MpNextHop)> = wire_round_trip(&updates)
        .iter()
        .map(|u| {
            let r = u.attributes.mp_reach.as_ref().expect("MP_REACH_NLRI");
            (r.family, r.next_hop)
        })
        .collect();
    assert_eq!(
        reach,
        vec![(Family::Ipv4Unicast, v4_hop), (Family::Ipv6Unicast, v6_hop)]
    );
}

#[test]
fn ipv4_routes_announced_with_an_ipv6_next_hop_are_withdrawn_in_withdrawn_routes() {
    let [next_hop, _] = ipv6_next_hops();
    let updates = ipv4_over_ipv6_builder(next_hop).withdraw([net("192.0.2.1/32")]);
    assert_eq!(
        updates,
        vec![Update {
            withdrawn: vec![net("192.0.2.1/32")],
            ..Update::default()
        }]
    );
}
