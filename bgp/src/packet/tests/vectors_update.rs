//! `(bytes, value)` vectors for UPDATE: IPv4 and IPv6 announcements, withdrawals, End-of-RIB,
//! RFC 6793 on 2-octet sessions, unknown and extended-length attributes, RFC 7606
//! treat-as-withdraw.

use super::*;

const ORIGIN_IGP: &[u8] = &[0x40, 1, 1, 0];
const NEXT_HOP_10_0_0_1: &[u8] = &[0x40, 3, 4, 10, 0, 0, 1];

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// What ferrolb sends to an eBGP peer for two IPv4 prefixes.
#[test]
fn ipv4_announcement_with_communities_and_large_communities_round_trips() {
    let attrs = concat(&[
        ORIGIN_IGP,
        &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9], // AS_PATH: sequence [65001]
        NEXT_HOP_10_0_0_1,
        &[0x40, 5, 4, 0, 0, 0, 100],       // LOCAL_PREF 100
        &[0xc0, 8, 4, 0xfd, 0xe8, 0, 100], // COMMUNITIES 65000:100
        &[0xc0, 32, 12, 0xfa, 0x56, 0xea, 0x01, 0, 0, 0, 1, 0, 0, 0, 2], // 4200000001:1:2
    ]);
    let nlri = [32, 192, 0, 2, 10, 24, 198, 51, 100];
    let update = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([65001])),
            next_hop: Some(v4("10.0.0.1")),
            local_pref: Some(100),
            communities: vec![Community::new(65000, 100)],
            large_communities: vec![LargeCommunity {
                global_admin: 4_200_000_001,
                local_data1: 1,
                local_data2: 2,
            }],
            ..PathAttributes::default()
        },
        nlri: vec![net("192.0.2.10/32"), net("198.51.100.0/24")],
        ..Update::default()
    };
    both_ways(
        &update_bytes(&[], &attrs, &nlri),
        &Message::Update(update.clone()),
        &ctx4(),
    );
    assert_eq!(update.attributes.communities[0].to_string(), "65000:100");
    assert_eq!(
        update.attributes.large_communities[0].to_string(),
        "4200000001:1:2"
    );
}

/// An iBGP IPv6 announcement: MP_REACH_NLRI first, global and link-local next hops.
#[test]
fn ipv6_announcement_in_mp_reach_with_link_local_next_hop_round_trips() {
    let mut reach = vec![0x80, 14, 54, 0, 2, 1, 32];
    reach.extend_from_slice(&v6("2001:db8::1").octets());
    reach.extend_from_slice(&v6("fe80::1").octets());
    reach.push(0);
    reach.push(128);
    reach.extend_from_slice(&v6("2001:db8:ffff::10").octets());
    let attrs = concat(&[
        &reach,
        ORIGIN_IGP,
        &[0x40, 2, 0],               // empty AS_PATH
        &[0x80, 4, 4, 0, 0, 0, 0],   // MED 0
        &[0x40, 5, 4, 0, 0, 0, 200], // LOCAL_PREF 200
    ]);
    let update = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            med: Some(0),
            local_pref: Some(200),
            mp_reach: Some(MpReach {
                family: Family::Ipv6Unicast,
                next_hop: MpNextHop {
                    global: ip("2001:db8::1"),
                    link_local: Some(v6("fe80::1")),
                },
                nlri: vec![net("2001:db8:ffff::10/128")],
            }),
            ..PathAttributes::default()
        },
        ..Update::default()
    };
    both_ways(
        &update_bytes(&[], &attrs, &[]),
        &Message::Update(update.clone()),
        &ctx4(),
    );
    assert_eq!(
        update.announced().collect::<Vec<_>>(),
        [&net("2001:db8:ffff::10/128")]
    );
}

#[test]
fn ipv4_withdrawal_uses_the_withdrawn_routes_field() {
    let update = Update {
        withdrawn: vec![net("192.0.2.10/32"), net("10.0.0.0/8")],
        ..Update::default()
    };
    let bytes = update_bytes(&[32, 192, 0, 2, 10, 8, 10], &[], &[]);
    both_ways(&bytes, &Message::Update(update.clone()), &ctx4());
    assert_eq!(update.end_of_rib_family(), None);
}

#[test]
fn ipv6_withdrawal_uses_mp_unreach() {
    let attrs = [
        0x80, 15, 15, 0, 2, 1, 32, 0x20, 0x01, 0x0d, 0xb8, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 1,
    ];
    let mut update = Update::default();
    update.attributes.mp_unreach = Some(MpUnreach {
        family: Family::Ipv6Unicast,
        withdrawn: vec![net("2001:db8::/32"), net("2001:db8:1::/48")],
    });
    both_ways(
        &update_bytes(&[], &attrs, &[]),
        &Message::Update(update.clone()),
        &ctx4(),
    );
    assert_eq!(update.withdrawals().count(), 2);
}

#[test]
fn end_of_rib_is_an_empty_update_for_ipv4_and_an_empty_mp_unreach_for_ipv6() {
    let v4_eor = update_bytes(&[], &[], &[]);
    assert_eq!(v4_eor.len(), 23);
    both_ways(
        &v4_eor,
        &Message::Update(Update::end_of_rib(Family::Ipv4Unicast)),
        &ctx4(),
    );
    let v6_eor = update_bytes(&[], &[0x80, 15, 3, 0, 2, 1], &[]);
    both_ways(
        &v6_eor,
        &Message::Update(Update::end_of_rib(Family::Ipv6Unicast)),
        &ctx4(),
    );
    for family in Family::ALL {
        assert_eq!(Update::end_of_rib(family).end_of_rib_family(), Some(family));
    }
}

/// RFC 6793 §4.2.2: towards a 2-octet speaker, 4-octet ASNs become AS_TRANS and the real
/// path travels in AS4_PATH (and AS4_AGGREGATOR).
#[test]
fn four_octet_asns_on_a_two_octet_session_go_in_as4_path_and_as4_aggregator() {
    let value = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([4_200_000_001, 65001])),
            next_hop: Some(v4("10.0.0.1")),
            aggregator: Some(Aggregator {
                asn: 4_200_000_001,
                address: v4("10.0.0.1"),
            }),
            ..PathAttributes::default()
        },
        nlri: vec![net("192.0.2.0/24")],
        ..Update::default()
    };
    let attrs = concat(&[
        ORIGIN_IGP,
        &[0x40, 2, 6, 2, 2, 0x5b, 0xa0, 0xfd, 0xe9],
        NEXT_HOP_10_0_0_1,
        &[0xc0, 7, 6, 0x5b, 0xa0, 10, 0, 0, 1],
        &[0xc0, 17, 10, 2, 2, 0xfa, 0x56, 0xea, 0x01, 0, 0, 0xfd, 0xe9],
        &[0xc0, 18, 8, 0xfa, 0x56, 0xea, 0x01, 10, 0, 0, 1],
    ]);
    let bytes = update_bytes(&[], &attrs, &[24, 192, 0, 2]);
    assert_eq!(encode(&Message::Update(value.clone()), &ctx2()), bytes);

    let mut decoded = value;
    decoded.attributes.as_path = Some(AsPath::sequence([u32::from(AS_TRANS), 65001]));
    decoded.attributes.as4_path = Some(AsPath::sequence([4_200_000_001, 65001]));
    decoded.attributes.aggregator = Some(Aggregator {
        asn: u32::from(AS_TRANS),
        address: v4("10.0.0.1"),
    });
    decoded.attributes.as4_aggregator = Some(Aggregator {
        asn: 4_200_000_001,
        address: v4("10.0.0.1"),
    });
    both_ways(&bytes, &Message::Update(decoded.clone()), &ctx2());
    assert!(
        decoded.attributes.contains_as(4_200_000_001),
        "loop check reads AS4_PATH"
    );

    // Between two 4-octet speakers AS4_PATH is ignored (RFC 6793 §4.1).
    let attrs = concat(&[
        ORIGIN_IGP,
        &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9],
        NEXT_HOP_10_0_0_1,
        &[0xc0, 17, 6, 2, 1, 0, 0, 0xfd, 0xea],
    ]);
    let Message::Update(on_four) = decode(&update_bytes(&[], &attrs, &[8, 10]), &ctx4()) else {
        panic!("not an UPDATE");
    };
    assert_eq!(on_four.attributes.as_path, Some(AsPath::sequence([65001])));
    assert_eq!(on_four.attributes.as4_path, None);
    assert_eq!(on_four.errors, vec![]);
}

#[test]
fn as_sets_and_confederation_segments_round_trip_and_print_like_a_router() {
    let attrs = concat(&[
        ORIGIN_IGP,
        &[0x40, 2, 26],
        &[2, 2, 0, 0, 0xfd, 0xe9, 0, 0, 0xfd, 0xea],
        &[1, 2, 0, 0, 0xfd, 0xeb, 0, 0, 0xfd, 0xec],
        &[3, 1, 0, 0, 0xfd, 0xed],
        NEXT_HOP_10_0_0_1,
        &[0x40, 6, 0],
        &[0xc0, 7, 8, 0, 0, 0xfd, 0xe9, 10, 0, 0, 9],
    ]);
    let path = AsPath {
        segments: vec![
            AsSegment {
                kind: SegmentKind::Sequence,
                asns: vec![65001, 65002],
            },
            AsSegment {
                kind: SegmentKind::Set,
                asns: vec![65003, 65004],
            },
            AsSegment {
                kind: SegmentKind::ConfedSequence,
                asns: vec![65005],
            },
        ],
    };
    assert_eq!(path.to_string(), "65001 65002 {65003,65004} (65005)");
    let update = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(path),
            next_hop: Some(v4("10.0.0.1")),
            atomic_aggregate: true,
            aggregator: Some(Aggregator {
                asn: 65001,
                address: v4("10.0.0.9"),
            }),
            ..PathAttributes::default()
        },
        nlri: vec![net("0.0.0.0/0")],
        ..Update::default()
    };
    both_ways(
        &update_bytes(&[], &attrs, &[0]),
        &Message::Update(update),
        &ctx4(),
    );
}

#[test]
fn unknown_optional_transitive_attributes_are_kept_and_resent_with_the_partial_bit() {
    let ext_comm = [0, 2, 0xfd, 0xe9, 0, 0, 0, 100];
    let attrs = |flags: u8| {
        concat(&[
            ORIGIN_IGP,
            &[0x40, 2, 0],
            NEXT_HOP_10_0_0_1,
            &[flags, 16, 8],
            &ext_comm,
            &[0x80, 99, 2, 0xaa, 0xbb], // unknown optional non-transitive: dropped
        ])
    };
    let value = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            next_hop: Some(v4("10.0.0.1")),
            unknown: vec![UnknownAttribute {
                type_code: 16,
                value: ext_comm.to_vec(),
            }],
            ..PathAttributes::default()
        },
        nlri: vec![net("10.1.0.0/16")],
        ..Update::default()
    };
    let received = update_bytes(&[], &attrs(0xc0), &[16, 10, 1]);
    assert_eq!(decode(&received, &ctx4()), Message::Update(value.clone()));
    let mut resent = attrs(0xe0);
    resent.truncate(resent.len() - 5);
    both_ways(
        &update_bytes(&[], &resent, &[16, 10, 1]),
        &Message::Update(value),
        &ctx4(),
    );
}

/// Found by the `decode_message` fuzz target: unknown attributes in descending type order
/// decoded in that order, were sent back sorted, and so decoded the second time as a different
/// value.
#[test]
fn unknown_attributes_received_out_of_type_order_are_kept_in_type_order() {
    let attrs = [0xe0, 255, 0, 0xe0, 0, 0];
    let value = Update {
        attributes: PathAttributes {
            unknown: vec![
                UnknownAttribute {
                    type_code: 0,
                    value: vec![],
                },
                UnknownAttribute {
                    type_code: 255,
                    value: vec![],
                },
            ],
            ..PathAttributes::default()
        },
        withdrawn: vec![net("0.0.0.0/0")],
        ..Update::default()
    };
    let received = update_bytes(&[0], &attrs, &[]);
    assert_eq!(decode(&received, &ctx2()), Message::Update(value.clone()));
    both_ways(
        &update_bytes(&[0], &[0xe0, 0, 0, 0xe0, 255, 0], &[]),
        &Message::Update(value),
        &ctx2(),
    );
}

#[test]
fn extended_length_attributes_decode_like_short_ones_and_are_used_past_255_octets() {
    let short = update_bytes(
        &[],
        &concat(&[ORIGIN_IGP, &[0x40, 2, 0], NEXT_HOP_10_0_0_1]),
        &[8, 10],
    );
    let long = update_bytes(
        &[],
        &concat(&[&[0x50, 1, 0, 1, 0], &[0x50, 2, 0, 0], NEXT_HOP_10_0_0_1]),
        &[8, 10],
    );
    assert_eq!(decode(&short, &ctx4()), decode(&long, &ctx4()));

    let communities: Vec<Community> = (0..100).map(|i| Community::new(65000, i)).collect();
    let mut attrs = concat(&[
        ORIGIN_IGP,
        &[0x40, 2, 0],
        NEXT_HOP_10_0_0_1,
        &[0xd0, 8, 1, 0x90],
    ]);
    for c in &communities {
        attrs.extend_from_slice(&c.0.to_be_bytes());
    }
    let update = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            next_hop: Some(v4("10.0.0.1")),
            communities,
            ..PathAttributes::default()
        },
        nlri: vec![net("10.0.0.0/8")],
        ..Update::default()
    };
    both_ways(
        &update_bytes(&[], &attrs, &[8, 10]),
        &Message::Update(update),
        &ctx4(),
    );
}

#[test]
fn ipv4_routes_in_mp_reach_take_an_ipv4_or_an_ipv6_next_hop() {
    let with_v4 = concat(&[
        &[0x80, 14, 13, 0, 1, 1, 4, 10, 0, 0, 1, 0, 24, 192, 0, 2],
        ORIGIN_IGP,
        &[0x40, 2, 0],
    ]);
    let Message::Update(u) = decode(&update_bytes(&[], &with_v4, &[]), &ctx4()) else {
        panic!("not an UPDATE");
    };
    let reach = u.attributes.mp_reach.as_ref().expect("MP_REACH_NLRI");
    assert_eq!(
        (reach.family, reach.next_hop.global),
        (Family::Ipv4Unicast, ip("10.0.0.1"))
    );
    assert_eq!(
        encode(&Message::Update(u.clone()), &ctx4()),
        update_bytes(&[], &with_v4, &[])
    );

    let mut with_v6 = vec![0x80, 14, 25, 0, 1, 1, 16];
    with_v6.extend_from_slice(&v6("2001:db8::1").octets());
    with_v6.extend_from_slice(&[0, 24, 192, 0, 2]);
    with_v6.extend_from_slice(&concat(&[ORIGIN_IGP, &[0x40, 2, 0]]));
    let Message::Update(u) = decode(&update_bytes(&[], &with_v6, &[]), &ctx4()) else {
        panic!("not an UPDATE");
    };
    let reach = u.attributes.mp_reach.expect("MP_REACH_NLRI");
    assert_eq!(reach.next_hop.global, ip("2001:db8::1"), "RFC 8950");
}

#[test]
fn mp_attributes_of_families_the_session_does_not_decode_are_dropped() {
    // EVPN (25/70) is not ours; IPv6 is not negotiated on an IPv4-only session.
    let evpn = update_bytes(&[], &[0x80, 15, 3, 0, 25, 70], &[]);
    let Message::Update(u) = decode(&evpn, &ctx4()) else {
        panic!("not an UPDATE");
    };
    assert_eq!(u, Update::default());
    let v4_only = SessionContext {
        four_octet_as: true,
        families: Families::IPV4,
    };
    let v6_eor = update_bytes(&[], &[0x80, 15, 3, 0, 2, 1], &[]);
    assert_eq!(
        decode(&v6_eor, &v4_only),
        Message::Update(Update::default())
    );
}

/// RFC 7606: a bad ORIGIN keeps the session; the UPDATE's routes, IPv4 and IPv6, are taken as
/// withdrawn.
#[test]
fn invalid_origin_turns_the_update_into_a_withdrawal() {
    let mut reach = vec![0x80, 14, 24, 0, 2, 1, 16];
    reach.extend_from_slice(&v6("2001:db8::1").octets());
    reach.extend_from_slice(&[0, 16, 0x20, 0x01]);
    let attrs = concat(&[&reach, &[0x40, 1, 1, 5], &[0x40, 2, 0], NEXT_HOP_10_0_0_1]);
    let bytes = update_bytes(&[8, 11], &attrs, &[24, 192, 0, 2]);
    let Message::Update(u) = decode(&bytes, &ctx4()) else {
        panic!("not an UPDATE");
    };
    assert!(u.treated_as_withdraw());
    assert_eq!(
        u.errors,
        vec![AttributeError::InvalidOrigin {
            attribute: vec![0x40, 1, 1, 5]
        }]
    );
    assert_eq!(u.withdrawn, vec![net("11.0.0.0/8"), net("192.0.2.0/24")]);
    assert_eq!(u.nlri, vec![]);
    assert_eq!(u.announced().count(), 0);
    let expected = PathAttributes {
        mp_unreach: Some(MpUnreach {
            family: Family::Ipv6Unicast,
            withdrawn: vec![net("2001::/16")],
        }),
        ..PathAttributes::default()
    };
    assert_eq!(u.attributes, expected);
}

#[test]
fn prefix_host_bits_are_cleared_when_decoding() {
    // 10.1.2.3/8 sent with its host octets: RFC 4271 says trailing bits are irrelevant.
    let bytes = update_bytes(&[9, 10, 0x81], &[], &[]);
    let Message::Update(u) = decode(&bytes, &ctx4()) else {
        panic!("not an UPDATE");
    };
    assert_eq!(u.withdrawn, vec![net("10.128.0.0/9")]);
}

#[test]
fn encoding_rejects_prefixes_and_next_hops_of_the_wrong_family() {
    let v6_in_v4 = Update {
        nlri: vec![net("2001:db8::/32")],
        ..Update::default()
    };
    assert!(matches!(
        Message::Update(v6_in_v4).encode(&ctx4()),
        Err(EncodeError::PrefixFamily { .. })
    ));
    let mut bad_hop = Update::default();
    bad_hop.attributes.mp_reach = Some(MpReach {
        family: Family::Ipv6Unicast,
        next_hop: MpNextHop {
            global: ip("10.0.0.1"),
            link_local: None,
        },
        nlri: vec![net("2001:db8::/32")],
    });
    assert!(matches!(
        Message::Update(bad_hop).encode(&ctx4()),
        Err(EncodeError::NextHopFamily { .. })
    ));
}
