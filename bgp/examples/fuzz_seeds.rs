//! Writes the seed inputs of the `decode_message` fuzz target (`bgp/fuzz`): one valid message
//! of each kind and shape the codec knows — the OPENs and UPDATEs ferrolb sends, RFC 6793
//! fields on a 2-octet session, RFC 9072 extended OPEN parameters, RFC 8950 extended next hops
//! (the capability, and IPv4 routes in MP_REACH_NLRI with IPv6 next hops), End-of-RIB markers,
//! a full 4096-octet UPDATE — plus a few of them back to back, as a TCP stream carries them, and every
//! distinct message GoBGP, BIRD and FRR sent in the captured sessions of
//! `src/packet/tests/captured/`. The first are built with the codec itself, so they stay valid
//! as it changes, and no binary file is kept in the repository.
//!
//! Usage: `cargo run -p ferrolb-bgp --example fuzz_seeds -- <directory>`

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ferrolb_bgp::packet::{
    AfiSafi, Aggregator, AsPath, AsSegment, Capability, Community, ExtendedNextHop, Families,
    GracefulRestart, GracefulRestartFamily, LargeCommunity, Message, MpNextHop, MpReach, MpUnreach,
    Notification, Open, Origin, PathAttributes, RouteRefresh, SegmentKind, SessionContext,
    UnknownAttribute, Update, UpdateBuilder,
};
use ferrolb_bgp::packet::{EncodeError, Family};
use ipnet::IpNet;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: fuzz_seeds <directory>")?
        .into();
    std::fs::create_dir_all(&dir)?;
    let built = seeds()?;
    for (name, bytes) in &built {
        std::fs::write(dir.join(name), bytes)?;
    }
    let captured = captured()?;
    for (i, bytes) in captured.iter().enumerate() {
        std::fs::write(dir.join(format!("captured-{i:03}")), bytes)?;
    }
    println!(
        "{} seeds in {}: {} built, {} captured from routers",
        built.len() + captured.len(),
        dir.display(),
        built.len(),
        captured.len()
    );
    Ok(())
}

/// The distinct messages of the routers' captured sessions: `.hex` files of comment lines and
/// one message in hex per line.
fn captured() -> Result<BTreeSet<Vec<u8>>, Box<dyn std::error::Error>> {
    let files = [
        include_str!("../src/packet/tests/captured/gobgp.hex"),
        include_str!("../src/packet/tests/captured/gobgp-two-octet.hex"),
        include_str!("../src/packet/tests/captured/bird.hex"),
        include_str!("../src/packet/tests/captured/bird-two-octet.hex"),
        include_str!("../src/packet/tests/captured/frr.hex"),
        include_str!("../src/packet/tests/captured/frr-two-octet.hex"),
    ];
    let mut out = BTreeSet::new();
    for line in files.iter().flat_map(|f| f.lines()) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bytes = (0..line.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(line.get(i..i + 2).unwrap_or("?"), 16))
            .collect::<Result<Vec<u8>, _>>()?;
        out.insert(bytes);
    }
    Ok(out)
}

fn four_octet() -> SessionContext {
    SessionContext {
        four_octet_as: true,
        families: Families::BOTH,
    }
}

fn two_octet() -> SessionContext {
    SessionContext {
        four_octet_as: false,
        families: Families::BOTH,
    }
}

fn net(s: &str) -> IpNet {
    s.parse().expect("a valid prefix")
}

fn attributes(as_path: AsPath) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(as_path),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        ..PathAttributes::default()
    }
}

fn seeds() -> Result<Vec<(&'static str, Vec<u8>)>, EncodeError> {
    let ctx4 = four_octet();
    let ctx2 = two_octet();
    let id = Ipv4Addr::new(192, 0, 2, 1);
    let v6_next_hop = MpNextHop {
        global: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1)),
        link_local: Some(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
    };

    let open = Message::Open(Open::new(
        4_200_000_001,
        90,
        id,
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(4_200_000_001),
            Capability::GracefulRestart(GracefulRestart {
                restart_state: true,
                notification: true,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    afi_safi: AfiSafi::IPV4_UNICAST,
                    forwarding_preserved: true,
                }],
            }),
            Capability::Unknown {
                code: 128,
                value: vec![],
            },
        ],
    ));
    // IPv4 unicast over IPv6 next hops, as ferrolb offers it, and IPv4 VPN over IPv6 (RFC 8950).
    let extended_next_hop_open = Message::Open(Open::new(
        65001,
        90,
        id,
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::ExtendedNextHop(vec![
                ExtendedNextHop::IPV4_UNICAST_OVER_IPV6,
                ExtendedNextHop {
                    nlri_afi: 1,
                    nlri_safi: 128,
                    next_hop_afi: 2,
                },
            ]),
            Capability::FourOctetAs(65001),
        ],
    ));
    // More than 253 octets of capabilities: RFC 9072's extended parameter length.
    let extended_open = Message::Open(Open::new(
        64512,
        0,
        id,
        (0..70)
            .map(|i| Capability::Multiprotocol(AfiSafi { afi: i, safi: 1 }))
            .collect(),
    ));

    let mut ipv4 = attributes(AsPath {
        segments: vec![
            AsSegment {
                kind: SegmentKind::ConfedSequence,
                asns: vec![65010],
            },
            AsSegment {
                kind: SegmentKind::Sequence,
                asns: vec![4_200_000_001, 64512],
            },
            AsSegment {
                kind: SegmentKind::Set,
                asns: vec![64513, 64514],
            },
        ],
    });
    ipv4.med = Some(10);
    ipv4.local_pref = Some(100);
    ipv4.atomic_aggregate = true;
    ipv4.aggregator = Some(Aggregator {
        asn: 4_200_000_001,
        address: id,
    });
    ipv4.communities = vec![Community::new(65000, 100), Community::NO_EXPORT];
    ipv4.large_communities = vec![LargeCommunity {
        global_admin: 4_200_000_001,
        local_data1: 1,
        local_data2: 2,
    }];
    ipv4.unknown = vec![UnknownAttribute {
        type_code: 16,
        value: vec![0, 2, 0xfd, 0xe9, 0, 0, 0, 100],
    }];
    let ipv4_update = Update {
        withdrawn: vec![net("198.51.100.0/24")],
        attributes: ipv4.clone(),
        nlri: vec![
            net("198.51.100.10/32"),
            net("203.0.113.0/24"),
            net("0.0.0.0/0"),
        ],
        ..Update::default()
    };

    let mut ipv6 = attributes(AsPath::sequence([4_200_000_001]));
    ipv6.next_hop = None;
    ipv6.mp_reach = Some(MpReach {
        family: Family::Ipv6Unicast,
        next_hop: v6_next_hop,
        nlri: vec![net("2001:db8:100::10/128"), net("2001:db8:100::/56")],
    });
    ipv6.mp_unreach = Some(MpUnreach {
        family: Family::Ipv6Unicast,
        withdrawn: vec![net("2001:db8:200::/64")],
    });
    let ipv6_update = Update {
        attributes: ipv6,
        ..Update::default()
    };

    // IPv4 routes in MP_REACH_NLRI with an IPv6 next hop (RFC 8950).
    let mut ipv4_over_v6 = attributes(AsPath::sequence([64512]));
    ipv4_over_v6.next_hop = None;
    ipv4_over_v6.mp_reach = Some(MpReach {
        family: Family::Ipv4Unicast,
        next_hop: v6_next_hop,
        nlri: vec![net("198.51.100.20/32")],
    });

    // On a 2-octet session a 4-octet ASN becomes AS_TRANS plus AS4_PATH / AS4_AGGREGATOR.
    let mut as4 = attributes(AsPath::sequence([4_200_000_001, 64512]));
    as4.aggregator = Some(Aggregator {
        asn: 4_200_000_002,
        address: id,
    });
    let as4_update = Update {
        attributes: as4,
        nlri: vec![net("198.51.100.30/32")],
        ..Update::default()
    };

    let hosts = (0..1000u32).map(|i| IpNet::from(IpAddr::V4(Ipv4Addr::from(0xc612_0000 + i))));
    let full = UpdateBuilder::new(&ctx4)
        .attributes(attributes(AsPath::sequence([4_200_000_001])))
        .announce(hosts)?
        .into_iter()
        .next()
        .map(Message::Update)
        .unwrap_or(Message::Keepalive);

    // The builder's RFC 8950 UPDATE: a 16-octet IPv6 next hop, no NEXT_HOP.
    let ipv4_over_v6_built = UpdateBuilder::new(&ctx4)
        .attributes(PathAttributes {
            next_hop: None,
            ..attributes(AsPath::sequence([65001]))
        })
        .ipv4_next_hop_ipv6(MpNextHop {
            link_local: None,
            ..v6_next_hop
        })
        .announce([net("198.51.100.21/32"), net("203.0.113.0/25")])?
        .into_iter()
        .next()
        .map(Message::Update)
        .unwrap_or(Message::Keepalive);

    let encode = |m: &Message, ctx: &SessionContext| m.encode(ctx);
    let mut stream = encode(&open, &ctx4)?;
    stream.extend(encode(&Message::Keepalive, &ctx4)?);
    stream.extend(encode(&Message::Update(ipv4_update.clone()), &ctx4)?);
    stream.extend(encode(
        &Message::Update(Update::end_of_rib(Family::Ipv4Unicast)),
        &ctx4,
    )?);

    Ok(vec![
        ("keepalive", encode(&Message::Keepalive, &ctx4)?),
        ("open", encode(&open, &ctx4)?),
        ("open-extended-parameters", encode(&extended_open, &ctx4)?),
        (
            "open-extended-next-hop",
            encode(&extended_next_hop_open, &ctx4)?,
        ),
        ("update-ipv4", encode(&Message::Update(ipv4_update), &ctx4)?),
        ("update-ipv6", encode(&Message::Update(ipv6_update), &ctx4)?),
        (
            "update-ipv4-in-mp-reach",
            encode(
                &Message::Update(Update {
                    attributes: ipv4_over_v6,
                    ..Update::default()
                }),
                &ctx4,
            )?,
        ),
        (
            "update-ipv4-over-ipv6-builder",
            encode(&ipv4_over_v6_built, &ctx4)?,
        ),
        (
            "update-as4-path",
            encode(&Message::Update(as4_update), &ctx2)?,
        ),
        (
            "end-of-rib-ipv6",
            encode(
                &Message::Update(Update::end_of_rib(Family::Ipv6Unicast)),
                &ctx4,
            )?,
        ),
        ("update-full", encode(&full, &ctx4)?),
        (
            "notification-shutdown",
            encode(
                &Message::Notification(Notification::administrative_shutdown("maintenance")),
                &ctx4,
            )?,
        ),
        (
            "route-refresh",
            encode(
                &Message::RouteRefresh(RouteRefresh {
                    afi_safi: AfiSafi::IPV6_UNICAST,
                    subtype: 1,
                }),
                &ctx4,
            )?,
        ),
        ("stream", stream),
    ])
}
