//! `(bytes, value)` vectors for KEEPALIVE, OPEN, NOTIFICATION and ROUTE-REFRESH, hand-built
//! from the RFC layouts, plus OPENs laid out the way GoBGP, FRR and BIRD send them.

use super::*;

#[test]
fn keepalive_is_the_bare_header() {
    let bytes = message(4, &[]);
    assert_eq!(bytes.len(), 19);
    both_ways(&bytes, &Message::Keepalive, &ctx4());
}

/// The OPEN ferrolb sends for AS 65001: MP IPv4 and IPv6 unicast, route refresh and the
/// 4-octet AS capability, all in one Capabilities parameter.
fn ferrolb_open_bytes() -> Vec<u8> {
    let body = [
        4, // version
        0xfd, 0xe9, // my AS 65001
        0x00, 0x5a, // hold time 90
        10, 0, 0, 1,  // BGP identifier
        22, // optional parameters length
        2, 20, // Capabilities parameter, 20 octets
        1, 4, 0, 1, 0, 1, // MP IPv4 unicast
        1, 4, 0, 2, 0, 1, // MP IPv6 unicast
        2, 0, // route refresh
        65, 4, 0, 0, 0xfd, 0xe9, // 4-octet AS 65001
    ];
    message(1, &body)
}

#[test]
fn open_with_multiprotocol_route_refresh_and_four_octet_as_round_trips() {
    let open = Open::new(
        65001,
        90,
        v4("10.0.0.1"),
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65001),
        ],
    );
    both_ways(&ferrolb_open_bytes(), &Message::Open(open.clone()), &ctx4());
    assert_eq!(open.asn(), 65001);
    assert_eq!(open.families(), Families::BOTH);
    assert!(open.route_refresh());
}

#[test]
fn open_for_a_four_octet_asn_carries_as_trans_and_graceful_restart() {
    let body = [
        4, 0x5b, 0xa0, // AS_TRANS 23456
        0x00, 0xb4, // hold time 180
        192, 0, 2, 1, 22, 2, 20, // one Capabilities parameter
        1, 4, 0, 2, 0, 1, // MP IPv6 unicast
        65, 4, 0xfa, 0x56, 0xea, 0x01, // 4-octet AS 4200000001
        64, 6, 0x80, 0x78, 0, 2, 1, 0x80, // GR: R, 120 s, IPv6 unicast forwarding preserved
    ];
    let open = Open::new(
        4_200_000_001,
        180,
        v4("192.0.2.1"),
        vec![
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::FourOctetAs(4_200_000_001),
            Capability::GracefulRestart(GracefulRestart {
                restart_state: true,
                notification: false,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    afi_safi: AfiSafi::IPV6_UNICAST,
                    forwarding_preserved: true,
                }],
            }),
        ],
    );
    assert_eq!(open.my_as, AS_TRANS);
    both_ways(&message(1, &body), &Message::Open(open.clone()), &ctx4());
    assert_eq!(open.asn(), 4_200_000_001);
    assert_eq!(open.families(), Families::IPV6);
    assert!(!open.route_refresh());
}

#[test]
fn open_without_optional_parameters_means_ipv4_unicast_and_two_octet_asns() {
    let body = [4, 0xfd, 0xe8, 0, 0, 10, 0, 0, 2, 0];
    let open = Open::new(65000, 0, v4("10.0.0.2"), vec![]);
    both_ways(&message(1, &body), &Message::Open(open.clone()), &ctx4());
    assert_eq!(open.families(), Families::IPV4);
    assert_eq!(open.four_octet_as(), None);
}

/// GoBGP (3.x) puts every capability in one parameter: MP IPv4 unicast, route refresh,
/// extended next hop (5) for IPv4 over IPv6, 4-octet AS, and FQDN (73) with its hostname.
#[test]
fn gobgp_open_with_extended_next_hop_and_fqdn_keeps_fqdn_as_an_unknown_capability() {
    let caps: &[u8] = &[
        1, 4, 0, 1, 0, 1, // MP IPv4 unicast
        2, 0, // route refresh
        5, 6, 0, 1, 0, 1, 0, 2, // extended next hop: IPv4 unicast over IPv6
        65, 4, 0, 0, 0xfd, 0xea, // 4-octet AS 65002
        73, 7, 5, b'g', b'o', b'b', b'g', b'p', 0, // FQDN "gobgp", no domain
    ];
    let mut body = vec![4, 0xfd, 0xea, 0, 90, 10, 0, 0, 3, 33, 2, 31];
    body.extend_from_slice(caps);
    let open = Open::new(
        65002,
        90,
        v4("10.0.0.3"),
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::ExtendedNextHop(vec![ExtendedNextHop::IPV4_UNICAST_OVER_IPV6]),
            Capability::FourOctetAs(65002),
            Capability::Unknown {
                code: 73,
                value: vec![5, b'g', b'o', b'b', b'g', b'p', 0],
            },
        ],
    );
    both_ways(&message(1, &body), &Message::Open(open.clone()), &ctx4());
    assert!(open.extended_next_hop());
}

/// FRR sends each capability in its own Capabilities parameter, including the pre-standard
/// route refresh (128), enhanced route refresh (70) and a helper-only graceful restart.
#[test]
fn frr_open_with_one_parameter_per_capability_decodes_to_the_same_capabilities() {
    let params: &[&[u8]] = &[
        &[1, 4, 0, 1, 0, 1],
        &[128, 0],
        &[2, 0],
        &[70, 0],
        &[65, 4, 0, 0, 0xfd, 0xeb],
        &[64, 2, 0x40, 0x78], // GR: N bit, 120 s, no family
    ];
    let mut opt = Vec::new();
    for p in params {
        opt.push(2);
        opt.push(u8::try_from(p.len()).expect("short"));
        opt.extend_from_slice(p);
    }
    let mut body = vec![4, 0xfd, 0xeb, 0, 3, 10, 0, 0, 4];
    body.push(u8::try_from(opt.len()).expect("short"));
    body.extend_from_slice(&opt);
    let Message::Open(open) = decode(&message(1, &body), &ctx4()) else {
        panic!("not an OPEN");
    };
    assert_eq!(open.hold_time, 3);
    assert_eq!(open.asn(), 65003);
    assert_eq!(open.families(), Families::IPV4);
    assert!(open.route_refresh());
    assert_eq!(
        open.graceful_restart(),
        Some(&GracefulRestart {
            restart_state: false,
            notification: true,
            restart_time: 120,
            families: vec![],
        })
    );
    assert_eq!(open.capabilities.len(), 6);
    // Re-encoded in one parameter, it decodes to the same value.
    let again = encode(&Message::Open(open.clone()), &ctx4());
    assert_eq!(decode(&again, &ctx4()), Message::Open(open));
}

/// BIRD 2 writes one Capabilities parameter; this one has long-lived graceful restart (71),
/// which we keep as unknown.
#[test]
fn bird_open_with_long_lived_graceful_restart_round_trips() {
    let mut body = vec![4, 0xfd, 0xec, 0, 240, 10, 0, 0, 5, 22, 2, 20];
    body.extend_from_slice(&[
        1, 4, 0, 1, 0, 1, 2, 0, 64, 2, 0, 120, 65, 4, 0, 0, 0xfd, 0xec,
    ]);
    body.extend_from_slice(&[71, 0]);
    let Message::Open(open) = decode(&message(1, &body), &ctx4()) else {
        panic!("not an OPEN");
    };
    assert_eq!(open.asn(), 65004);
    assert_eq!(
        open.capabilities.last(),
        Some(&Capability::Unknown {
            code: 71,
            value: vec![]
        })
    );
    assert_eq!(encode(&Message::Open(open), &ctx4()), message(1, &body));
}

#[test]
fn extended_optional_parameters_are_decoded_and_used_when_capabilities_exceed_255_octets() {
    // RFC 9072: Opt Parm Len 255, Non-Ext OP Type 255, 2-octet lengths.
    let caps: Vec<Capability> = (0..30)
        .map(|i| Capability::Unknown {
            code: 200,
            value: vec![i; 7],
        })
        .collect();
    let open = Open::new(65001, 90, v4("10.0.0.1"), caps);
    let bytes = encode(&Message::Open(open.clone()), &ctx4());
    assert_eq!(&bytes[28..32], &[255, 255, 1, 0x11], "9 x 30 + 3 octets");
    assert_eq!(&bytes[32..35], &[2, 1, 0x0e]);
    assert_eq!(decode(&bytes, &ctx4()), Message::Open(open));

    let small = [
        4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, 255, 255, 0, 5, 2, 0, 2, 2, 0,
    ];
    let Message::Open(open) = decode(&message(1, &small), &ctx4()) else {
        panic!("not an OPEN");
    };
    assert_eq!(open.capabilities, vec![Capability::RouteRefresh]);
}

#[test]
fn administrative_shutdown_carries_a_length_prefixed_message() {
    let bytes = message(3, &[6, 2, 3, b'b', b'y', b'e']);
    let n = Notification::administrative_shutdown("bye");
    both_ways(&bytes, &Message::Notification(n.clone()), &ctx4());
    assert_eq!(n.shutdown_message(), Some("bye"));
    assert_eq!(n.to_string(), "Cease/Administrative Shutdown \"bye\"");
}

#[test]
fn administrative_shutdown_message_is_cut_to_255_octets_on_a_character_boundary() {
    let long = "é".repeat(200); // 400 octets
    let n = Notification::administrative_shutdown(&long);
    assert_eq!(n.data[0], 254);
    assert_eq!(n.data.len(), 255);
    assert_eq!(n.shutdown_message().map(str::len), Some(254));
}

#[test]
fn shutdown_message_without_its_length_prefix_is_not_read_as_one() {
    let raw = Notification::new(6, 2, b"bye".to_vec());
    assert_eq!(raw.shutdown_message(), None);
    assert_eq!(raw.to_string(), "Cease/Administrative Shutdown data 627965");
}

#[test]
fn notifications_round_trip_with_their_data() {
    let cases = [
        (vec![4, 0], Notification::hold_timer_expired()),
        (vec![2, 2], Notification::new(2, 2, vec![])),
        (
            vec![1, 2, 0x10, 0x01],
            Notification::new(1, 2, vec![0x10, 0x01]),
        ),
        (
            vec![6, 7],
            Notification::cease(cease_subcode::CONNECTION_COLLISION_RESOLUTION),
        ),
        (
            vec![42, 9, 1, 2, 3],
            Notification::new(42, 9, vec![1, 2, 3]),
        ),
    ];
    for (body, n) in cases {
        both_ways(&message(3, &body), &Message::Notification(n), &ctx4());
    }
    assert_eq!(
        Notification::new(42, 9, vec![]).to_string(),
        "Unknown Error (42/9)"
    );
    assert_eq!(
        Notification::hold_timer_expired().code_label(),
        "hold_timer_expired"
    );
}

#[test]
fn route_refresh_round_trips_with_its_family_and_subtype() {
    both_ways(
        &message(5, &[0, 2, 0, 1]),
        &Message::RouteRefresh(RouteRefresh {
            afi_safi: AfiSafi::IPV6_UNICAST,
            subtype: 0,
        }),
        &ctx4(),
    );
    both_ways(
        &message(5, &[0, 1, 2, 1]),
        &Message::RouteRefresh(RouteRefresh {
            afi_safi: AfiSafi::IPV4_UNICAST,
            subtype: 2,
        }),
        &ctx4(),
    );
}

#[test]
fn frame_length_waits_for_a_whole_header_then_reads_the_length() {
    let bytes = ferrolb_open_bytes();
    assert_eq!(frame_length(&bytes[..18]), Ok(None));
    assert_eq!(frame_length(&bytes[..19]), Ok(Some(bytes.len())));
    let mut stream = bytes.clone();
    stream.extend_from_slice(&message(4, &[]));
    assert_eq!(frame_length(&stream), Ok(Some(bytes.len())));
}
