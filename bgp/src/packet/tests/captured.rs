//! Messages GoBGP, BIRD and FRR really sent, captured byte for byte by `capture-bgp`
//! (`tests/src/bin/capture-bgp/`; `captured/README.md` says how to capture them again), in two
//! sessions each: one where both sides have 4-octet ASNs, as with ferrolb, and one where we do
//! not and the router's ASN needs four octets, so it sends AS_TRANS and AS4_PATH. Each message
//! is decoded with the context the two OPENs negotiate and checked field by field against what
//! the router was configured to send ([`sessions`] states the routes the capture tool made it
//! originate, and each router's defaults), then re-encoded and decoded again to the same value,
//! and read by netgauze as well.
//!
//! Byte equality with the router's encoding is asserted only where our encoder has no choice
//! to make: KEEPALIVE, NOTIFICATION, ROUTE-REFRESH, the End-of-RIB markers, and an OPEN whose
//! capabilities travel in one parameter, as ours do (GoBGP's and BIRD's; FRR sends one
//! parameter per capability, which RFC 5492 allows). An UPDATE's attribute order and
//! extended-length bits are the sender's choice, and all three choose differently from us: FRR
//! sets the bit on a 6-octet AS_PATH, BIRD on MP_REACH_NLRI, and GoBGP puts MP_REACH_NLRI in
//! type-code order where we put it first (RFC 7606 §5.1); GoBGP and FRR also put AS4_PATH after
//! LARGE_COMMUNITY.

use std::collections::BTreeSet;

use super::oracle::oracle;
use super::*;

mod sessions;

use sessions::{ROUTER_ID, SHUTDOWN_MESSAGE, frr, originated, routers, withdrawn};

#[test]
fn every_captured_message_decodes_and_decodes_the_same_after_our_encoding() {
    for router in routers() {
        let ctx = router.context();
        for m in &router.messages {
            let decoded = decode(&m.bytes, &ctx);
            let again = encode(&decoded, &ctx);
            assert_eq!(decode(&again, &ctx), decoded, "{}", m.label);
            let canonical = match &decoded {
                Message::Keepalive | Message::Notification(_) | Message::RouteRefresh(_) => true,
                Message::Update(u) => u.end_of_rib_family().is_some(),
                Message::Open(_) => router.open_in_one_parameter,
            };
            if canonical {
                assert_eq!(again, m.bytes, "{}: our encoding differs", m.label);
            }
        }
    }
}

#[test]
fn netgauze_reads_every_captured_message_completely() {
    for router in routers() {
        let asn4 = router.context().four_octet_as;
        for m in &router.messages {
            let _ = oracle(&m.bytes, asn4);
        }
    }
}

#[test]
fn opens_carry_the_routers_asn_hold_time_identifier_and_capabilities() {
    for router in routers() {
        let open = router.open();
        let name = router.file;
        let my_as = u16::try_from(router.asn).unwrap_or(AS_TRANS);
        assert_eq!(open.my_as, my_as, "{name}");
        assert_eq!(open.asn(), router.asn, "{name}");
        assert_eq!(open.hold_time, router.hold_time, "{name}");
        assert_eq!(open.bgp_id, v4(ROUTER_ID), "{name}");
        assert_eq!(open.capabilities, router.capabilities, "{name}");
        assert_eq!(open.families(), Families::BOTH, "{name}");
        assert!(open.route_refresh(), "{name}");
        // Both families; 4-octet ASNs where we offered them too.
        let ctx = if router.we_sent_four_octet_as {
            ctx4()
        } else {
            ctx2()
        };
        assert_eq!(router.context(), ctx, "{name}");
    }
}

#[test]
fn frr_sends_one_capabilities_parameter_per_capability() {
    let router = frr();
    let bytes = &router.messages[0].bytes;
    // Optional parameters start after the 10 fixed octets of the body.
    let params = &bytes[HEADER_LEN + 10..];
    let mut lengths = Vec::new();
    let mut rest = params;
    while let [2, len, tail @ ..] = rest {
        lengths.push(*len);
        rest = &tail[usize::from(*len)..];
    }
    assert!(rest.is_empty());
    assert_eq!(lengths.len(), router.capabilities.len());
    // Ours puts them all in one, so the bytes differ but the capabilities do not.
    let again = encode(&Message::Open(router.open()), &ctx4());
    assert_ne!(&again, bytes);
    assert_eq!(decode(&again, &ctx4()), Message::Open(router.open()));
}

#[test]
fn after_the_open_comes_a_keepalive() {
    for router in routers() {
        let open: Vec<_> = router.decoded("open");
        assert_eq!(open.len(), 2, "{}", router.file);
        assert_eq!(open[1].1, Message::Keepalive, "{}", open[1].0);
    }
}

#[test]
fn announced_routes_carry_the_configured_origin_med_communities_and_large_communities() {
    for router in routers() {
        let mut announced = BTreeSet::new();
        for (label, m) in router.decoded("announce") {
            let Message::Update(update) = m else {
                panic!("{label}: {m:?}");
            };
            if update.end_of_rib_family().is_none() {
                assert!(announced.insert(router.check_announcement(&label, &update)));
            }
        }
        let all: BTreeSet<IpNet> = originated().iter().map(|r| r.prefix).collect();
        assert_eq!(announced, all, "{}", router.file);
    }
}

#[test]
fn each_router_ends_its_initial_routes_with_an_end_of_rib_per_family() {
    for router in routers() {
        let updates: Vec<Update> = router
            .decoded("announce")
            .into_iter()
            .filter_map(|(_, m)| match m {
                Message::Update(u) => Some(u),
                _ => None,
            })
            .collect();
        for family in Family::ALL {
            let at = updates
                .iter()
                .position(|u| u.end_of_rib_family() == Some(family))
                .unwrap_or_else(|| panic!("{}: no End-of-RIB for {family}", router.file));
            assert_eq!(updates[at], Update::end_of_rib(family));
            // It follows every route of its family.
            let later = updates[at..]
                .iter()
                .flat_map(|u| u.announced())
                .any(|p| Family::of(p) == family);
            assert!(
                !later,
                "{}: {family} route after its End-of-RIB",
                router.file
            );
        }
    }
}

#[test]
fn a_route_refresh_is_answered_with_the_ipv4_routes_framed_as_rfc_7313_says_when_negotiated() {
    for router in routers() {
        let answer = router.decoded("re-announce");
        let (first, last) = (&answer[0], &answer[answer.len() - 1]);
        let middle = if router.enhanced_route_refresh {
            let marker = |subtype| {
                Message::RouteRefresh(RouteRefresh {
                    afi_safi: AfiSafi::IPV4_UNICAST,
                    subtype,
                })
            };
            assert_eq!(first.1, marker(1), "{}: Begin-of-RIB-Refresh", first.0);
            assert_eq!(last.1, marker(2), "{}: End-of-RIB-Refresh", last.0);
            &answer[1..answer.len() - 1]
        } else {
            // GoBGP closes a plain refresh with an End-of-RIB.
            let eor = Message::Update(Update::end_of_rib(Family::Ipv4Unicast));
            assert_eq!(last.1, eor, "{}", last.0);
            &answer[..answer.len() - 1]
        };
        let mut again = BTreeSet::new();
        for (label, m) in middle {
            let Message::Update(update) = m else {
                panic!("{label}: {m:?}");
            };
            again.insert(router.check_announcement(label, update));
        }
        let ipv4 = [net("198.51.100.0/24"), net("203.0.113.128/25")];
        assert_eq!(again, BTreeSet::from(ipv4), "{}", router.file);
    }
}

#[test]
fn bird_and_frr_ask_for_both_families_with_plain_route_refresh() {
    for router in routers() {
        let asked: Vec<Message> = router
            .decoded("refresh-request")
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        let expected: Vec<Message> = if router.sends_route_refresh {
            [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
                .map(|afi_safi| {
                    Message::RouteRefresh(RouteRefresh {
                        afi_safi,
                        subtype: 0,
                    })
                })
                .to_vec()
        } else {
            Vec::new()
        };
        assert_eq!(asked, expected, "{}", router.file);
    }
}

#[test]
fn withdrawals_use_withdrawn_routes_for_ipv4_and_mp_unreach_for_ipv6() {
    for router in routers() {
        let mut gone = Vec::new();
        for (label, m) in router.decoded("withdraw") {
            match m {
                Message::Update(update) if update.announced().next().is_some() => {
                    // BIRD re-sends what it still exports while it reloads its export filter.
                    let prefix = router.check_announcement(&label, &update);
                    assert!(!withdrawn().contains(&prefix), "{label}");
                }
                Message::Update(update) => {
                    assert!(update.errors.is_empty(), "{label}");
                    assert_eq!(update.end_of_rib_family(), None, "{label}");
                    for prefix in &update.withdrawn {
                        assert_eq!(Family::of(prefix), Family::Ipv4Unicast, "{label}");
                    }
                    if let Some(unreach) = &update.attributes.mp_unreach {
                        assert_eq!(unreach.family, Family::Ipv6Unicast, "{label}");
                    }
                    gone.extend(update.withdrawals().copied());
                }
                // BIRD frames that reload per family as an enhanced route refresh.
                Message::RouteRefresh(rr) if router.enhanced_route_refresh => {
                    assert!(matches!(rr.subtype, 1 | 2), "{label}: {rr:?}");
                }
                other => panic!("{label}: {other:?}"),
            }
        }
        assert_eq!(gone, withdrawn(), "{}", router.file);
    }
}

#[test]
fn the_session_ends_with_cease_administrative_shutdown_and_its_rfc_9003_message() {
    for router in routers() {
        let shutdown = router.decoded("shutdown");
        let (label, last) = shutdown.last().expect("a shutdown phase");
        let Message::Notification(n) = last else {
            panic!("{label}: {last:?}");
        };
        assert_eq!(n.code, error_code::CEASE, "{label}");
        assert_eq!(n.subcode, cease_subcode::ADMINISTRATIVE_SHUTDOWN, "{label}");
        assert_eq!(n.shutdown_message(), Some(SHUTDOWN_MESSAGE), "{label}");
        assert_eq!(
            n.to_string(),
            format!("Cease/Administrative Shutdown {SHUTDOWN_MESSAGE:?}")
        );
    }
}
