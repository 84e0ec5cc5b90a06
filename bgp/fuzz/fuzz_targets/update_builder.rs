//! Arbitrary prefix sets and attributes through the `UpdateBuilder`: every UPDATE it builds
//! encodes within 4096 octets and decodes without an error, the UPDATEs announce (or withdraw)
//! exactly the prefixes given, in order, and the UPDATEs of one family carry identical
//! attributes. When the attributes alone leave no room for a prefix, the builder says so
//! instead of building an oversized message. Some runs announce IPv4 routes with an IPv6 next
//! hop (RFC 8950): then every IPv4 UPDATE carries them in MP_REACH_NLRI with that next hop,
//! with no NEXT_HOP and nothing in the NLRI field.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_bgp::packet::{
    AsPath, Community, EncodeError, Families, Family, LargeCommunity, MAX_MESSAGE_LEN, Message,
    MpNextHop, MpReach, Origin, PathAttributes, SessionContext, Update, UpdateBuilder,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    four_octet_as: bool,
    ipv4: Vec<(u32, u8)>,
    ipv6: Vec<(u128, u8)>,
    as_path: Vec<u32>,
    next_hop: [u8; 3],
    link_local: Option<u128>,
    /// IPv4 routes with an IPv6 next hop: its global address (mapped into 2000::/3), its
    /// link-local interface identifier, and whether NEXT_HOP stays in the attributes (it must
    /// then be left out of every UPDATE).
    ipv4_over_ipv6: Option<(u128, Option<u64>, bool)>,
    med: Option<u32>,
    local_pref: Option<u32>,
    communities: Vec<u32>,
    large_communities: Vec<(u32, u32, u32)>,
}

fuzz_target!(|input: Input| {
    let ctx = SessionContext {
        four_octet_as: input.four_octet_as,
        families: Families::BOTH,
    };
    let v4 = input.ipv4.iter().map(|&(a, l)| {
        let net = Ipv4Net::new(Ipv4Addr::from(a), l % 33).expect("length <= 32");
        IpNet::V4(net.trunc())
    });
    let v6 = input.ipv6.iter().map(|&(a, l)| {
        let net = Ipv6Net::new(Ipv6Addr::from(a), l % 129).expect("length <= 128");
        IpNet::V6(net.trunc())
    });
    let prefixes: Vec<IpNet> = v4.chain(v6).collect();
    // A unicast host next hop (10.x.y.z): the decoder rightly refuses any other kind.
    let [b, c, d] = input.next_hop;
    let attributes = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(input.as_path.iter().copied())),
        next_hop: Some(Ipv4Addr::new(10, b, c, d)),
        med: input.med,
        local_pref: input.local_pref,
        communities: input.communities.iter().copied().map(Community).collect(),
        large_communities: input
            .large_communities
            .iter()
            .map(|&(global_admin, local_data1, local_data2)| LargeCommunity {
                global_admin,
                local_data1,
                local_data2,
            })
            .collect(),
        ..PathAttributes::default()
    };
    let ipv6_next_hop = MpNextHop {
        global: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        link_local: input.link_local.map(Ipv6Addr::from),
    };
    // A global unicast address (2000::/3: neither link-local nor multicast) and fe80::/64.
    let ipv4_next_hop = input
        .ipv4_over_ipv6
        .map(|(global, link_local, keep_next_hop)| {
            let global = (global & (u128::MAX >> 3)) | (1 << 125);
            let link_local = link_local.map(|id| Ipv6Addr::from((0xfe80 << 112) | u128::from(id)));
            let next_hop = MpNextHop {
                global: IpAddr::V6(Ipv6Addr::from(global)),
                link_local,
            };
            (next_hop, keep_next_hop)
        });
    let mut attributes = attributes;
    let mut builder = UpdateBuilder::new(&ctx).ipv6_next_hop(ipv6_next_hop);
    if let Some((next_hop, keep_next_hop)) = ipv4_next_hop {
        if !keep_next_hop {
            attributes.next_hop = None;
        }
        builder = builder.ipv4_next_hop_ipv6(next_hop);
    }
    let builder = builder.attributes(attributes.clone());

    match builder.announce(prefixes.iter().copied()) {
        Ok(updates) => {
            let decoded = wire_round_trip(&updates, &ctx);
            let announced: Vec<IpNet> = decoded
                .iter()
                .flat_map(Update::announced)
                .copied()
                .collect();
            assert_eq!(announced, in_family_order(&prefixes));
            if let Some((next_hop, _)) = ipv4_next_hop {
                for u in decoded.iter().filter(|u| {
                    u.announced()
                        .next()
                        .is_some_and(|p| Family::of(p) == Family::Ipv4Unicast)
                }) {
                    assert!(u.nlri.is_empty(), "IPv4 in the NLRI field");
                    assert_eq!(u.attributes.next_hop, None, "NEXT_HOP sent");
                    let reach = u
                        .attributes
                        .mp_reach
                        .as_ref()
                        .map(|r| (r.family, r.next_hop));
                    assert_eq!(reach, Some((Family::Ipv4Unicast, next_hop)));
                }
            }
            for family in Family::ALL {
                let mut of_family = decoded
                    .iter()
                    .filter(|u| {
                        u.announced()
                            .next()
                            .is_some_and(|p| Family::of(p) == family)
                    })
                    .map(|u| without_routes(&u.attributes));
                if let Some(first) = of_family.next() {
                    assert!(of_family.all(|a| a == first), "{family} UPDATEs differ");
                }
            }
        }
        Err(EncodeError::MessageTooLong { .. }) => {
            // Only when, for a family given, the attributes leave no room for its longest
            // prefix (17 octets, plus one for MP_REACH_NLRI's extended length).
            let in_mp_reach = |family, next_hop| PathAttributes {
                next_hop: None,
                mp_reach: Some(MpReach {
                    family,
                    next_hop,
                    nlri: Vec::new(),
                }),
                ..attributes.clone()
            };
            let v4_attributes = match ipv4_next_hop {
                Some((next_hop, _)) => in_mp_reach(Family::Ipv4Unicast, next_hop),
                None => attributes.clone(),
            };
            let v6_attributes = in_mp_reach(Family::Ipv6Unicast, ipv6_next_hop);
            let bare_len = |attributes: PathAttributes| {
                let bare = Message::Update(Update {
                    attributes,
                    ..Update::default()
                });
                bare.encode(&ctx).map_or(usize::MAX, |b| b.len())
            };
            let full = |family: Family, len: usize| {
                prefixes.iter().any(|p| Family::of(p) == family)
                    && len.saturating_add(18) > MAX_MESSAGE_LEN
            };
            assert!(
                full(Family::Ipv4Unicast, bare_len(v4_attributes))
                    || full(Family::Ipv6Unicast, bare_len(v6_attributes)),
                "refused although a prefix fits"
            );
        }
        Err(e) => panic!("announce failed: {e}"),
    }

    let withdrawals = wire_round_trip(&builder.withdraw(prefixes.iter().copied()), &ctx);
    let withdrawn: Vec<IpNet> = withdrawals
        .iter()
        .flat_map(Update::withdrawals)
        .copied()
        .collect();
    assert_eq!(withdrawn, in_family_order(&prefixes));
});

/// The builder's order: IPv4 prefixes first, then IPv6, each in the order given.
fn in_family_order(prefixes: &[IpNet]) -> Vec<IpNet> {
    let (mut v4, v6): (Vec<IpNet>, Vec<IpNet>) =
        prefixes.iter().partition(|p| matches!(p, IpNet::V4(_)));
    v4.extend(v6);
    v4
}

fn without_routes(attributes: &PathAttributes) -> PathAttributes {
    let mut a = attributes.clone();
    if let Some(reach) = &mut a.mp_reach {
        reach.nlri.clear();
    }
    a
}

/// Encodes each UPDATE (at most 4096 octets) and decodes it back without an error.
fn wire_round_trip(updates: &[Update], ctx: &SessionContext) -> Vec<Update> {
    updates
        .iter()
        .map(|u| {
            let bytes = match Message::Update(u.clone()).encode(ctx) {
                Ok(bytes) => bytes,
                Err(e) => panic!("the builder made an UPDATE that does not encode: {e}"),
            };
            assert!(bytes.len() <= MAX_MESSAGE_LEN, "{} octets", bytes.len());
            match Message::decode(&bytes, ctx) {
                Ok(Message::Update(back)) => {
                    assert!(back.errors.is_empty(), "{:?}", back.errors);
                    back
                }
                other => panic!("the builder's UPDATE decodes as {other:?}"),
            }
        })
        .collect()
}
