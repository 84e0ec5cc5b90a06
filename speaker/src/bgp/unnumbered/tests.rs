use std::net::Ipv6Addr;
use std::time::Duration;

use tokio::time::Instant;

use super::packet::{echo_request, router_advertisement, router_solicitation};
use super::*;

const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

fn ll(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last)
}

#[test]
fn our_advertisement_is_a_router_advertisement_that_routes_for_no_one() {
    let ra = router_advertisement(MAC);
    assert_eq!(
        ra,
        [
            134, 0, 0, 0, // type, code, checksum (the kernel's)
            0, 0, 0, 0, // hop limit, flags, router lifetime 0
            0, 0, 0, 0, // reachable time
            0, 0, 0, 0, // retrans timer
            1, 1, 0x02, 0, 0, 0, 0, 0x0a, // source link-layer address
        ]
    );
    assert_eq!(parse(&ra), Some(Icmpv6::RouterAdvertisement));
    let rs = router_solicitation(MAC);
    assert_eq!(rs, [133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0x02, 0, 0, 0, 0, 0x0a]);
    assert_eq!(parse(&rs), Some(Icmpv6::RouterSolicitation));
    assert_eq!(echo_request(0x1234, 7), [128, 0, 0, 0, 0x12, 0x34, 0, 7]);
}

#[test]
fn only_well_formed_messages_of_the_types_we_act_on_are_read() {
    assert_eq!(
        parse(&[129, 0, 0, 0, 0xbe, 0xef, 0, 1]),
        Some(Icmpv6::EchoReply { id: 0xbeef })
    );
    // Our own echo request, a wrong code, cut short, empty.
    assert_eq!(parse(&echo_request(1, 1)), None);
    assert_eq!(
        parse(&[134, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        None
    );
    assert_eq!(parse(&router_advertisement(MAC)[..15]), None);
    assert_eq!(parse(&[129, 0, 0]), None);
    assert_eq!(parse(&[]), None);
}

#[test]
fn the_only_neighbour_heard_is_the_peer() {
    let t0 = Instant::now();
    let mut c = Candidates::default();
    assert_eq!(c.choose(t0), Ok(None));
    c.hear(ll(1), false, t0);
    assert_eq!(c.choose(t0), Ok(Some(ll(1))));
}

#[test]
fn a_router_that_advertises_is_preferred_over_hosts_that_only_answer() {
    let t0 = Instant::now();
    let mut c = Candidates::default();
    c.hear(ll(1), false, t0);
    c.hear(ll(2), true, t0);
    c.hear(ll(3), false, t0);
    assert_eq!(c.choose(t0), Ok(Some(ll(2))));
}

#[test]
fn two_equally_likely_neighbours_are_named_and_none_is_chosen() {
    let t0 = Instant::now();
    let mut c = Candidates::default();
    c.hear(ll(1), false, t0);
    c.hear(ll(2), false, t0);
    assert_eq!(c.choose(t0), Err(vec![ll(1), ll(2)]));
    c.hear(ll(3), true, t0);
    c.hear(ll(4), true, t0);
    assert_eq!(c.choose(t0), Err(vec![ll(3), ll(4)]));
}

#[test]
fn the_peer_is_kept_while_it_is_heard_whoever_else_appears() {
    let t0 = Instant::now();
    let mut c = Candidates::default();
    c.hear(ll(1), false, t0);
    assert_eq!(c.choose(t0), Ok(Some(ll(1))));
    // A router appears; ours still answers.
    let t1 = t0 + Duration::from_secs(5);
    c.hear(ll(9), true, t1);
    c.hear(ll(1), false, t1);
    assert_eq!(c.choose(t1), Ok(Some(ll(1))));
}

#[test]
fn a_silent_peer_is_replaced_only_by_a_single_neighbour_heard_since() {
    let t0 = Instant::now();
    let mut c = Candidates::default();
    c.hear(ll(1), true, t0);
    assert_eq!(c.choose(t0), Ok(Some(ll(1))));
    // Silent past STALE, nobody else: kept (a router rebooting keeps its address).
    let later = t0 + STALE + Duration::from_secs(1);
    assert_eq!(c.choose(later), Ok(Some(ll(1))));
    // Two others, neither more likely: still kept.
    c.hear(ll(2), false, later);
    c.hear(ll(3), false, later);
    assert_eq!(c.choose(later), Ok(Some(ll(1))));
    // Long after, only one of them still answers: it takes over.
    let much_later = later + STALE + Duration::from_secs(1);
    c.hear(ll(3), false, much_later);
    assert_eq!(c.choose(much_later), Ok(Some(ll(3))));
    // And the old peer, heard again, does not take it back while ll(3) is heard.
    c.hear(ll(1), true, much_later);
    assert_eq!(c.choose(much_later), Ok(Some(ll(3))));
}

#[test]
fn the_reason_a_session_waits_names_the_interface_and_what_was_heard() {
    let nothing = Found::Nothing.waiting_reason("eth1").expect("waits");
    assert!(
        nothing.contains("\"eth1\"") && nothing.contains("no neighbour"),
        "{nothing}"
    );
    let many = Found::Ambiguous(vec![ll(1), ll(2)])
        .waiting_reason("eth1")
        .expect("waits");
    assert!(
        many.contains("fe80::1, fe80::2") && many.contains("point-to-point"),
        "{many}"
    );
    let peer = Found::Peer(std::net::SocketAddrV6::new(ll(1), 0, 0, 3));
    assert_eq!(peer.waiting_reason("eth1"), None);
}
