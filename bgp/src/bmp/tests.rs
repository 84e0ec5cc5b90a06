//! The BMP encoder: layouts checked byte by byte against RFC 7854's figures, every message
//! read back by our decoder, and netgauze-bmp-pkt (an independent implementation) reading what
//! a session's life sends as we meant it.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use netgauze_bgp_pkt::BgpMessage;
use netgauze_bmp_pkt::wire::deserializer::BmpParsingContext;
use netgauze_bmp_pkt::{BmpMessage, BmpPeerType, v3};
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;
use proptest::prelude::*;

use super::*;
use crate::packet::{
    self, AfiSafi, AsPath, Capability, Family, Notification, Open, Origin, PathAttributes,
    SessionContext, Update, UpdateBuilder,
};

fn header(address: IpAddr) -> PeerHeader {
    PeerHeader {
        peer_type: peer_type::GLOBAL,
        flags: flag::POST_POLICY | flag::ADJ_RIB_OUT,
        distinguisher: 0,
        address,
        asn: 64513,
        bgp_id: Ipv4Addr::new(10, 0, 0, 2),
        seconds: 1_700_000_000,
        microseconds: 250_000,
    }
}

fn bgp(message: &packet::Message, ctx: &SessionContext) -> Vec<u8> {
    message.encode(ctx).expect("encodes")
}

#[test]
fn an_initiation_is_the_common_header_and_its_tlvs() {
    let bytes = Message::Initiation(vec![
        Tlv::text(info::SYS_DESCR, "d"),
        Tlv::text(info::SYS_NAME, "n"),
    ])
    .encode()
    .expect("encodes");
    assert_eq!(
        bytes,
        [3, 0, 0, 0, 16, 4, 0, 1, 0, 1, b'd', 0, 2, 0, 1, b'n'],
        "version 3, length 16, type 4; sysDescr then sysName"
    );
}

#[test]
fn the_per_peer_header_is_laid_out_as_rfc_7854_section_4_2_draws_it() {
    let eor = bgp(
        &packet::Message::Update(Update::end_of_rib(Family::Ipv4Unicast)),
        &SessionContext::default(),
    );
    let bytes = Message::RouteMonitoring {
        peer: header("192.0.2.1".parse().expect("ip")),
        update: eor.clone(),
    }
    .encode()
    .expect("encodes");
    let mut want = vec![3, 0, 0, 0, 6 + 42 + 23, 0];
    want.extend([0, 0x50]); // global instance; L and O
    want.extend([0; 8]); // distinguisher
    want.extend([0; 12]);
    want.extend([192, 0, 2, 1]); // IPv4 in the last 4 octets, V clear
    want.extend(64513u32.to_be_bytes());
    want.extend([10, 0, 0, 2]);
    want.extend(1_700_000_000u32.to_be_bytes());
    want.extend(250_000u32.to_be_bytes());
    want.extend(&eor);
    assert_eq!(bytes, want);

    let v6 = Message::PeerDown {
        peer: header("2001:db8::1".parse().expect("ip")),
        reason: PeerDownReason::RemoteNoData,
    }
    .encode()
    .expect("encodes");
    assert_eq!(v6[7], 0xd0, "V set for an IPv6 peer");
    assert_eq!(
        &v6[16..32],
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .expect("ip")
            .octets()
    );
    assert_eq!(v6.last(), Some(&4), "reason 4, nothing after");
}

#[test]
fn frames_are_cut_at_their_length_and_bogus_ones_refused() {
    let bytes = Message::Termination(vec![Tlv {
        kind: termination::REASON,
        value: termination::ADMINISTRATIVELY_CLOSED.to_be_bytes().to_vec(),
    }])
    .encode()
    .expect("encodes");
    assert_eq!(frame_length(&bytes[..5]), Ok(None));
    assert_eq!(frame_length(&bytes), Ok(Some(bytes.len())));
    assert_eq!(frame_length(&[4, 0, 0, 0, 6, 4]), Err(BmpError::Version(4)));
    assert_eq!(frame_length(&[3, 0, 0, 0, 5, 4]), Err(BmpError::Length(5)));
    assert_eq!(
        frame_length(&[3, 0xff, 0xff, 0xff, 0xff, 0]),
        Err(BmpError::Length(u32::MAX as usize))
    );
}

fn open(asn: u32, id: [u8; 4]) -> Open {
    Open::new(
        asn,
        90,
        Ipv4Addr::from(id),
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::FourOctetAs(asn),
        ],
    )
}

fn oracle(bytes: &[u8], ctx: &mut BmpParsingContext) -> v3::BmpMessageValue {
    let mut reader = SliceReader::new(bytes);
    let parsed = BmpMessage::parse(&mut reader, ctx)
        .unwrap_or_else(|e| panic!("netgauze rejects {bytes:02x?}: {e:?}"));
    assert_eq!(reader.remaining(), 0, "netgauze left bytes unread");
    match parsed {
        BmpMessage::V3(value) => value,
        other => panic!("not BMP v3: {other:?}"),
    }
}

#[test]
fn netgauze_reads_a_sessions_life_as_we_meant_it() {
    let ctx = SessionContext {
        four_octet_as: true,
        families: packet::Families::BOTH,
    };
    let peer = header("192.0.2.1".parse().expect("ip"));
    let mut theirs = BmpParsingContext::default();

    let init = Message::Initiation(vec![
        Tlv::text(info::SYS_DESCR, "ferrolb speaker"),
        Tlv::text(info::SYS_NAME, "node-a"),
    ]);
    match oracle(&init.encode().expect("encodes"), &mut theirs) {
        v3::BmpMessageValue::Initiation(m) => assert_eq!(
            m.information(),
            [
                v3::InitiationInformation::SystemDescription("ferrolb speaker".into()),
                v3::InitiationInformation::SystemName("node-a".into()),
            ]
        ),
        other => panic!("{other:?}"),
    }

    let up = Message::PeerUp {
        peer: PeerHeader {
            flags: 0,
            ..peer.clone()
        },
        local_address: "192.0.2.11".parse().expect("ip"),
        local_port: 40_000,
        remote_port: 179,
        sent_open: bgp(&packet::Message::Open(open(64512, [10, 0, 0, 1])), &ctx),
        received_open: bgp(&packet::Message::Open(open(64513, [10, 0, 0, 2])), &ctx),
        info: vec![],
    };
    match oracle(&up.encode().expect("encodes"), &mut theirs) {
        v3::BmpMessageValue::PeerUpNotification(m) => {
            let h = m.peer_header();
            assert_eq!(h.address(), Some("192.0.2.1".parse().expect("ip")));
            assert_eq!(
                (h.peer_as(), h.bgp_id()),
                (64513, Ipv4Addr::new(10, 0, 0, 2))
            );
            assert_eq!(m.local_address(), Some("192.0.2.11".parse().expect("ip")));
            assert_eq!((m.local_port(), m.remote_port()), (Some(40_000), Some(179)));
            assert!(matches!(m.sent_message(), BgpMessage::Open(o) if o.my_asn4() == 64512));
            assert!(matches!(m.received_message(), BgpMessage::Open(o) if o.my_asn4() == 64513));
        }
        other => panic!("{other:?}"),
    }

    let prefixes: Vec<IpNet> = vec![
        "198.51.100.7/32".parse().expect("net"),
        "2001:db8:5::7/128".parse().expect("net"),
    ];
    let updates = UpdateBuilder::new(&ctx)
        .attributes(PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([64512])),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 11)),
            ..PathAttributes::default()
        })
        .ipv6_next_hop(packet::MpNextHop {
            global: "2001:db8::11".parse().expect("ip"),
            link_local: None,
        })
        .announce(prefixes.clone())
        .expect("builds");
    let mut seen: Vec<String> = Vec::new();
    for update in updates {
        let bytes = Message::RouteMonitoring {
            peer: peer.clone(),
            update: bgp(&packet::Message::Update(update), &ctx),
        }
        .encode()
        .expect("encodes");
        match oracle(&bytes, &mut theirs) {
            v3::BmpMessageValue::RouteMonitoring(m) => {
                assert_eq!(
                    m.peer_header().peer_type(),
                    BmpPeerType::GlobalInstancePeer {
                        ipv6: false,
                        post_policy: true,
                        asn2: false,
                        adj_rib_out: true,
                    }
                );
                let BgpMessage::Update(u) = m.update_message() else {
                    panic!("not an UPDATE");
                };
                seen.push(format!("{u:?}"));
            }
            other => panic!("{other:?}"),
        }
    }
    let seen = seen.join("\n");
    assert!(seen.contains("198.51.100.7"), "{seen}");
    assert!(seen.contains("2001:db8:5::7"), "{seen}");

    let cease = bgp(
        &packet::Message::Notification(Notification::cease(
            packet::cease_subcode::ADMINISTRATIVE_SHUTDOWN,
        )),
        &ctx,
    );
    let down = Message::PeerDown {
        peer: PeerHeader { flags: 0, ..peer },
        reason: PeerDownReason::LocalNotification(cease),
    };
    match oracle(&down.encode().expect("encodes"), &mut theirs) {
        v3::BmpMessageValue::PeerDownNotification(m) => assert!(
            matches!(
                m.reason(),
                v3::PeerDownNotificationReason::LocalSystemClosedNotificationPduFollows(
                    BgpMessage::Notification(_)
                )
            ),
            "{:?}",
            m.reason()
        ),
        other => panic!("{other:?}"),
    }

    let end = Message::Termination(vec![Tlv {
        kind: termination::REASON,
        value: termination::ADMINISTRATIVELY_CLOSED.to_be_bytes().to_vec(),
    }]);
    assert!(matches!(
        oracle(&end.encode().expect("encodes"), &mut theirs),
        v3::BmpMessageValue::Termination(_)
    ));
}

fn arb_pdu() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40).prop_map(|body| {
        let mut pdu = vec![0xff; 16];
        pdu.extend(((19 + body.len()) as u16).to_be_bytes());
        pdu.push(2);
        pdu.extend(body);
        pdu
    })
}

fn arb_header() -> impl Strategy<Value = PeerHeader> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u64>(),
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ],
        any::<u32>(),
        any::<[u8; 4]>(),
        any::<(u32, u32)>(),
    )
        .prop_map(
            |(peer_type, flags, distinguisher, address, asn, id, (s, us))| PeerHeader {
                peer_type,
                flags: flags & !flag::IPV6,
                distinguisher,
                address,
                asn,
                bgp_id: Ipv4Addr::from(id),
                seconds: s,
                microseconds: us,
            },
        )
}

fn arb_tlvs() -> impl Strategy<Value = Vec<Tlv>> {
    proptest::collection::vec(
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(kind, value)| Tlv { kind, value }),
        0..4,
    )
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        arb_tlvs().prop_map(Message::Initiation),
        arb_tlvs().prop_map(Message::Termination),
        (arb_header(), arb_pdu())
            .prop_map(|(peer, update)| Message::RouteMonitoring { peer, update }),
        (
            arb_header(),
            proptest::collection::vec(
                prop_oneof![
                    any::<(u16, u32)>().prop_map(|(k, v)| Stat::Counter(k, v)),
                    any::<(u16, u64)>().prop_map(|(k, v)| Stat::Gauge(k, v)),
                ],
                0..4
            )
        )
            .prop_map(|(peer, stats)| Message::StatisticsReport { peer, stats }),
        (
            arb_header(),
            prop_oneof![
                arb_pdu().prop_map(PeerDownReason::LocalNotification),
                any::<u16>().prop_map(PeerDownReason::LocalNoNotification),
                arb_pdu().prop_map(PeerDownReason::RemoteNotification),
                Just(PeerDownReason::RemoteNoData),
                Just(PeerDownReason::Deconfigured),
            ]
        )
            .prop_map(|(peer, reason)| Message::PeerDown { peer, reason }),
        (
            arb_header(),
            any::<[u8; 16]>(),
            any::<(u16, u16)>(),
            arb_pdu(),
            arb_pdu(),
            arb_tlvs()
        )
            .prop_map(|(peer, local, (lp, rp), sent, received, info)| {
                let local_address = if peer.address.is_ipv6() {
                    IpAddr::from(local)
                } else {
                    IpAddr::from([local[12], local[13], local[14], local[15]])
                };
                Message::PeerUp {
                    peer,
                    local_address,
                    local_port: lp,
                    remote_port: rp,
                    sent_open: sent,
                    received_open: received,
                    info,
                }
            }),
    ]
}

proptest! {
    #[test]
    fn every_message_reads_back_as_written(message in arb_message()) {
        let bytes = message.encode().expect("encodes");
        prop_assert_eq!(frame_length(&bytes), Ok(Some(bytes.len())));
        prop_assert_eq!(Message::decode(&bytes), Ok(message));
    }

    #[test]
    fn a_damaged_message_decodes_or_fails_without_panicking(
        message in arb_message(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        // One octet changed and the message cut short at some point: most such inputs still
        // carry a valid common header, so the decoder's inner checks are what is exercised.
        let mut bytes = message.encode().expect("encodes");
        let i = at.index(bytes.len());
        bytes[i] = byte;
        bytes.truncate(COMMON_HEADER_LEN.max(cut.index(bytes.len() + 1)));
        if let Ok(decoded) = Message::decode(&bytes) {
            let again = decoded.encode().expect("encodes");
            prop_assert_eq!(Message::decode(&again), Ok(decoded));
        }
    }
}
