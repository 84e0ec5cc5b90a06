//! Extended next hop encoding (RFC 8950): the capability as `(bytes, value)` vectors from the
//! §4 layout, its malformed lengths, and IPv4 routes in MP_REACH_NLRI with an IPv6 next hop.

use super::*;

const ORIGIN_IGP: &[u8] = &[0x40, 1, 1, 0];
const AS_PATH_65001: &[u8] = &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9];

/// An OPEN for AS 65001 whose only capability parameter holds `capability`.
fn open_with(capability: &[u8]) -> Vec<u8> {
    let param_len = u8::try_from(capability.len()).expect("short");
    let mut body = vec![
        4,
        0xfd,
        0xe9,
        0,
        90,
        10,
        0,
        0,
        1,
        param_len + 2,
        2,
        param_len,
    ];
    body.extend_from_slice(capability);
    message(1, &body)
}

fn open_value(capabilities: Vec<Capability>) -> Message {
    Message::Open(Open::new(65001, 90, v4("10.0.0.1"), capabilities))
}

#[test]
fn the_capability_lists_nlri_afi_nlri_safi_and_next_hop_afi_in_two_octets_each() {
    let bytes = open_with(&[
        5, 12, // extended next hop, two entries
        0, 1, 0, 1, 0, 2, // IPv4 unicast over IPv6
        0, 1, 0, 128, 0, 2, // IPv4 VPN over IPv6
    ]);
    let value = open_value(vec![Capability::ExtendedNextHop(vec![
        ExtendedNextHop::IPV4_UNICAST_OVER_IPV6,
        ExtendedNextHop {
            nlri_afi: 1,
            nlri_safi: 128,
            next_hop_afi: 2,
        },
    ])]);
    both_ways(&bytes, &value, &ctx4());
    let Message::Open(open) = value else {
        unreachable!()
    };
    assert!(open.extended_next_hop());
}

#[test]
fn an_open_offers_ipv4_over_ipv6_only_with_the_ipv4_unicast_ipv6_entry() {
    let vpn_only = open_with(&[5, 6, 0, 1, 0, 128, 0, 2]);
    let Message::Open(open) = decode(&vpn_only, &ctx4()) else {
        panic!("not an OPEN");
    };
    assert!(!open.extended_next_hop(), "IPv4 VPN is not IPv4 unicast");
    let Message::Open(open) = decode(&open_with(&[2, 0]), &ctx4()) else {
        panic!("not an OPEN");
    };
    assert!(!open.extended_next_hop(), "no capability");
}

#[test]
fn extended_next_hop_capabilities_of_5_7_or_0_octets_are_malformed() {
    let cases: [&[u8]; 3] = [
        &[5, 5, 0, 1, 0, 1, 0],
        &[5, 7, 0, 1, 0, 1, 0, 2, 0],
        &[5, 0],
    ];
    for capability in cases {
        let err =
            Message::decode(&open_with(capability), &ctx4()).expect_err("a malformed capability");
        assert_eq!(
            err,
            DecodeError::MalformedCapability {
                capability: capability.to_vec()
            }
        );
        // OPEN Message Error, unspecific, with the capability as data: as for the others.
        assert_eq!(
            err.notification(),
            Notification::new(2, 0, capability.to_vec()),
            "{capability:?}"
        );
    }
}

#[test]
fn an_empty_extended_next_hop_capability_is_refused_rather_than_sent() {
    assert_eq!(
        open_value(vec![Capability::ExtendedNextHop(vec![])]).encode(&ctx4()),
        Err(EncodeError::EmptyCapability { code: 5 })
    );
}

/// MP_REACH_NLRI for IPv4 unicast with `next_hop` (16 or 32 octets) and 192.0.2.0/24 and
/// 198.51.100.7/32, then ORIGIN and AS_PATH: no NEXT_HOP, no NLRI field.
fn ipv4_over_ipv6(next_hop: &[u8]) -> Vec<u8> {
    let nlri: &[u8] = &[24, 192, 0, 2, 32, 198, 51, 100, 7];
    let len = 3 + 1 + next_hop.len() + 1 + nlri.len();
    let mut attrs = vec![0x80, 14, u8::try_from(len).expect("short"), 0, 1, 1];
    attrs.push(u8::try_from(next_hop.len()).expect("short"));
    attrs.extend_from_slice(next_hop);
    attrs.push(0);
    attrs.extend_from_slice(nlri);
    attrs.extend_from_slice(ORIGIN_IGP);
    attrs.extend_from_slice(AS_PATH_65001);
    update_bytes(&[], &attrs, &[])
}

#[test]
fn ipv4_routes_in_mp_reach_with_an_ipv6_next_hop_need_no_next_hop_attribute() {
    let global = v6("2001:db8::1");
    let link_local = v6("fe80::1");
    let cases = [
        (global.octets().to_vec(), None),
        (
            [global.octets(), link_local.octets()].concat(),
            Some(link_local),
        ),
    ];
    for (hop, link_local) in cases {
        let value = Update {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence([65001])),
                mp_reach: Some(MpReach {
                    family: Family::Ipv4Unicast,
                    next_hop: MpNextHop {
                        global: IpAddr::V6(global),
                        link_local,
                    },
                    nlri: vec![net("192.0.2.0/24"), net("198.51.100.7/32")],
                }),
                ..PathAttributes::default()
            },
            ..Update::default()
        };
        let bytes = ipv4_over_ipv6(&hop);
        both_ways(&bytes, &Message::Update(value), &ctx4());
        let Message::Update(u) = decode(&bytes, &ctx4()) else {
            panic!("not an UPDATE");
        };
        assert_eq!(
            u.errors,
            vec![],
            "{} octets: NEXT_HOP is not demanded",
            hop.len()
        );
        assert_eq!(
            u.announced().copied().collect::<Vec<_>>(),
            vec![net("192.0.2.0/24"), net("198.51.100.7/32")]
        );
    }
}

#[test]
fn ipv4_routes_in_mp_reach_still_need_origin_and_as_path() {
    let mut attrs = vec![0x80, 14, 26, 0, 1, 1, 16];
    attrs.extend_from_slice(&v6("2001:db8::1").octets());
    attrs.extend_from_slice(&[0, 32, 198, 51, 100, 7]);
    let Message::Update(u) = decode(&update_bytes(&[], &attrs, &[]), &ctx4()) else {
        panic!("not an UPDATE");
    };
    assert_eq!(
        u.errors,
        vec![
            AttributeError::MissingWellKnown {
                type_code: type_code::ORIGIN
            },
            AttributeError::MissingWellKnown {
                type_code: type_code::AS_PATH
            },
        ]
    );
    assert!(u.treated_as_withdraw());
    assert_eq!(u.withdrawn, vec![net("198.51.100.7/32")]);
}
