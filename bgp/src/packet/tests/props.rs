//! Property tests: generated messages survive encode → decode unchanged, and no input,
//! random or corrupted, makes the decoder panic.

use ipnet::{Ipv4Net, Ipv6Net};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

use super::super::attributes::expected_flags;
use super::*;

fn ipv4_net() -> impl Strategy<Value = IpNet> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| {
        IpNet::V4(
            Ipv4Net::new(Ipv4Addr::from(a), l)
                .expect("length <= 32")
                .trunc(),
        )
    })
}

fn ipv6_net() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, l)| {
        IpNet::V6(
            Ipv6Net::new(Ipv6Addr::from(a), l)
                .expect("length <= 128")
                .trunc(),
        )
    })
}

fn segment(kinds: Vec<SegmentKind>, asn: BoxedStrategy<u32>) -> impl Strategy<Value = AsSegment> {
    (proptest::sample::select(kinds), vec(asn, 1..8))
        .prop_map(|(kind, asns)| AsSegment { kind, asns })
}

fn as_path(four: bool) -> impl Strategy<Value = AsPath> {
    use SegmentKind::*;
    let asn = if four {
        any::<u32>().boxed()
    } else {
        (0u32..=65535).boxed()
    };
    vec(
        segment(vec![Set, Sequence, ConfedSequence, ConfedSet], asn),
        0..4,
    )
    .prop_map(|segments| AsPath { segments })
}

fn as4_path() -> impl Strategy<Value = AsPath> {
    vec(
        segment(
            vec![SegmentKind::Set, SegmentKind::Sequence],
            any::<u32>().boxed(),
        ),
        0..4,
    )
    .prop_map(|segments| AsPath { segments })
}

fn unicast_v4() -> impl Strategy<Value = Ipv4Addr> {
    (1u8..=223, any::<[u8; 3]>())
        .prop_filter("not loopback", |(a, _)| *a != 127)
        .prop_map(|(a, [b, c, d])| Ipv4Addr::new(a, b, c, d))
}

fn aggregator(max_asn: u32) -> impl Strategy<Value = Aggregator> {
    (0..=max_asn, any::<u32>()).prop_map(|(asn, a)| Aggregator {
        asn,
        address: Ipv4Addr::from(a),
    })
}

fn unknown() -> impl Strategy<Value = Vec<UnknownAttribute>> {
    let code = any::<u8>().prop_filter("unknown", |c| expected_flags(*c).is_none());
    btree_map(code, vec(any::<u8>(), 0..40), 0..3).prop_map(|m| {
        m.into_iter()
            .map(|(type_code, value)| UnknownAttribute { type_code, value })
            .collect()
    })
}

/// IPv6 routes, or IPv4 routes with an IPv6 next hop (RFC 8950), with or without a
/// link-local next hop.
fn mp_reach() -> impl Strategy<Value = MpReach> {
    let nlri = prop_oneof![
        vec(ipv6_net(), 0..20).prop_map(|n| (Family::Ipv6Unicast, n)),
        vec(ipv4_net(), 0..20).prop_map(|n| (Family::Ipv4Unicast, n)),
    ];
    (any::<u128>(), proptest::option::of(any::<u128>()), nlri).prop_map(
        |(g, ll, (family, nlri))| MpReach {
            family,
            next_hop: MpNextHop {
                global: IpAddr::V6(Ipv6Addr::from(g)),
                link_local: ll.map(Ipv6Addr::from),
            },
            nlri,
        },
    )
}

fn mp_unreach() -> impl Strategy<Value = MpUnreach> {
    vec(ipv6_net(), 0..20).prop_map(|withdrawn| MpUnreach {
        family: Family::Ipv6Unicast,
        withdrawn,
    })
}

/// A well-formed UPDATE for a session with or without 4-octet ASNs.
pub(super) fn update_strategy(four: bool) -> impl Strategy<Value = Update> {
    let max_asn = if four { u32::MAX } else { 65535 };
    let prefixes = (vec(ipv4_net(), 0..20), vec(ipv4_net(), 0..20));
    let basics = (
        proptest::sample::select(vec![Origin::Igp, Origin::Egp, Origin::Incomplete]),
        as_path(four),
        unicast_v4(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        any::<bool>(),
        proptest::option::of(aggregator(max_asn)),
    );
    let lists = (
        vec(any::<u32>().prop_map(Community), 0..10),
        vec(any::<(u32, u32, u32)>(), 0..5),
        unknown(),
        proptest::option::of(mp_reach()),
        proptest::option::of(mp_unreach()),
        proptest::option::of(as4_path()),
        proptest::option::of(aggregator(u32::MAX)),
    );
    (prefixes, basics, lists).prop_map(move |((withdrawn, nlri), b, l)| {
        let (origin, as_path, next_hop, med, local_pref, atomic_aggregate, aggregator) = b;
        let (communities, large, unknown, mp_reach, mp_unreach, as4_path, as4_aggregator) = l;
        let announces = !nlri.is_empty() || mp_reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
        Update {
            withdrawn,
            attributes: PathAttributes {
                origin: announces.then_some(origin),
                as_path: announces.then_some(as_path),
                next_hop: (!nlri.is_empty()).then_some(next_hop),
                med,
                local_pref,
                atomic_aggregate,
                aggregator,
                communities,
                mp_reach,
                mp_unreach,
                as4_path: as4_path.filter(|_| !four),
                as4_aggregator: as4_aggregator.filter(|_| !four),
                large_communities: large
                    .into_iter()
                    .map(|(global_admin, local_data1, local_data2)| LargeCommunity {
                        global_admin,
                        local_data1,
                        local_data2,
                    })
                    .collect(),
                unknown,
            },
            nlri,
            errors: vec![],
        }
    })
}

fn capability() -> impl Strategy<Value = Capability> {
    let family = any::<(u16, u8)>().prop_map(|(afi, safi)| AfiSafi { afi, safi });
    let gr_family = (family.clone(), any::<bool>()).prop_map(|(afi_safi, forwarding_preserved)| {
        GracefulRestartFamily {
            afi_safi,
            forwarding_preserved,
        }
    });
    prop_oneof![
        family.prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        vec(any::<(u16, u16, u16)>(), 1..8).prop_map(|entries| {
            Capability::ExtendedNextHop(
                entries
                    .into_iter()
                    .map(|(nlri_afi, nlri_safi, next_hop_afi)| ExtendedNextHop {
                        nlri_afi,
                        nlri_safi,
                        next_hop_afi,
                    })
                    .collect(),
            )
        }),
        any::<u32>().prop_map(Capability::FourOctetAs),
        (
            any::<bool>(),
            any::<bool>(),
            0u16..4096,
            vec(gr_family, 0..4)
        )
            .prop_map(|(restart_state, notification, restart_time, families)| {
                Capability::GracefulRestart(GracefulRestart {
                    restart_state,
                    notification,
                    restart_time,
                    families,
                })
            }),
        (
            any::<u8>().prop_filter("unknown", |c| ![1, 2, 5, 64, 65].contains(c)),
            vec(any::<u8>(), 0..20)
        )
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        prop_oneof![Just(0u16), 3u16..],
        1u32..,
        vec(capability(), 0..40),
    )
        .prop_map(|(my_as, hold_time, id, capabilities)| Open {
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            capabilities,
        })
}

fn any_message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..600),
        (0u8..=6, vec(any::<u8>(), 0..600)).prop_map(|(kind, body)| message(kind, &body)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_updates_round_trip_on_four_octet_sessions(u in update_strategy(true)) {
        let m = Message::Update(u);
        let bytes = encode(&m, &ctx4());
        prop_assert!(bytes.len() <= MAX_MESSAGE_LEN);
        prop_assert_eq!(decode(&bytes, &ctx4()), m);
    }

    #[test]
    fn generated_updates_round_trip_on_two_octet_sessions(u in update_strategy(false)) {
        let m = Message::Update(u);
        let bytes = encode(&m, &ctx2());
        prop_assert_eq!(decode(&bytes, &ctx2()), m);
    }

    #[test]
    fn generated_opens_round_trip(o in open()) {
        let m = Message::Open(o);
        prop_assert_eq!(decode(&encode(&m, &ctx4()), &ctx4()), m);
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in any_message()) {
        for ctx in [ctx2(), ctx4(), SessionContext::default()] {
            if let Err(e) = Message::decode(&bytes, &ctx) {
                let _ = e.notification().to_string();
            }
        }
        let _ = frame_length(&bytes);
    }

    #[test]
    fn corrupted_updates_never_panic_the_decoder(
        u in update_strategy(true),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = encode(&Message::Update(u), &ctx4());
        // Keep the header valid so the corruption reaches the UPDATE decoder.
        let body_len = bytes.len() - HEADER_LEN;
        for (at, value) in flips {
            let i = HEADER_LEN + at.index(body_len);
            bytes[i] = value;
        }
        for ctx in [ctx2(), ctx4()] {
            match Message::decode(&bytes, &ctx) {
                Ok(Message::Update(u)) => {
                    // Whatever survives decoding encodes again (errors or not).
                    let _ = Message::Update(u).encode(&ctx);
                }
                Ok(other) => prop_assert!(false, "an UPDATE decoded as {:?}", other),
                Err(e) => { let _ = e.notification(); }
            }
        }
    }
}
