//! Extended next hop encoding (RFC 8950): offered when configured, agreed only when both
//! sides offer IPv4 unicast over IPv6 and IPv4 unicast is a common family.

use super::*;
use crate::packet::ExtendedNextHop;

fn offering() -> Config {
    let mut c = config();
    c.extended_next_hop = true;
    c
}

/// [`peer_open`] with the extended next hop capability for IPv4 unicast over IPv6.
fn peer_open_offering() -> Open {
    let mut open = peer_open(PEER_AS, 90);
    open.capabilities.push(Capability::ExtendedNextHop(vec![
        ExtendedNextHop::IPV4_UNICAST_OVER_IPV6,
    ]));
    open
}

/// The OPEN the FSM sends once connected.
fn our_open(config: Config) -> Open {
    let mut p = Peer::new(config);
    p.feed(Input::ManualStart);
    let out = p.feed(Input::TcpConnectionConfirmed);
    out.into_iter()
        .find_map(|o| match o {
            Output::Send(Message::Open(open)) => Some(open),
            _ => None,
        })
        .expect("an OPEN is sent")
}

fn negotiated(config: Config, open: Open) -> Negotiated {
    let mut p = Peer::new(config);
    let out = p.establish_with(open);
    established(&out).expect("Established output").clone()
}

#[test]
fn our_open_offers_ipv4_over_ipv6_next_hops_only_when_configured() {
    assert!(our_open(offering()).extended_next_hop());
    assert!(
        our_open(offering())
            .capabilities
            .contains(&Capability::ExtendedNextHop(vec![
                ExtendedNextHop::IPV4_UNICAST_OVER_IPV6
            ]))
    );
    assert!(!our_open(config()).extended_next_hop());
}

#[test]
fn our_open_does_not_offer_extended_next_hop_without_ipv4_unicast() {
    let mut c = offering();
    c.families = Families::IPV6;
    let open = our_open(c);
    assert!(
        !open
            .capabilities
            .iter()
            .any(|c| matches!(c, Capability::ExtendedNextHop(_))),
        "{open:?}"
    );
}

#[test]
fn both_sides_offering_ipv4_over_ipv6_negotiate_extended_next_hop() {
    assert!(negotiated(offering(), peer_open_offering()).extended_next_hop);
}

#[test]
fn only_we_offering_extended_next_hop_is_not_enough() {
    assert!(!negotiated(offering(), peer_open(PEER_AS, 90)).extended_next_hop);
}

#[test]
fn only_the_peer_offering_extended_next_hop_is_not_enough() {
    assert!(!negotiated(config(), peer_open_offering()).extended_next_hop);
}

#[test]
fn a_peer_offering_extended_next_hop_for_another_family_is_not_enough() {
    let mut open = peer_open(PEER_AS, 90);
    open.capabilities.push(Capability::ExtendedNextHop(vec![
        // IPv4 VPN (SAFI 128) over IPv6: not what we announce.
        ExtendedNextHop {
            nlri_afi: 1,
            nlri_safi: 128,
            next_hop_afi: 2,
        },
    ]));
    assert!(!negotiated(offering(), open).extended_next_hop);
}

#[test]
fn extended_next_hop_offered_by_both_is_off_when_ipv4_is_not_a_common_family() {
    // The peer offers IPv6 unicast only, yet lists IPv4 over IPv6.
    let mut open = peer_open_offering();
    open.capabilities
        .retain(|c| *c != Capability::Multiprotocol(AfiSafi::IPV4_UNICAST));
    let n = negotiated(offering(), open);
    assert_eq!(n.families, Families::IPV6);
    assert!(!n.extended_next_hop);
}
