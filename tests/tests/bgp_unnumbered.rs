//! Unnumbered peering (BGPPeer `interface`) against GoBGP, BIRD and FRR, each in its own
//! namespace at the other end of a veth link that has no address but the kernel's IPv6
//! link-locals: no IPv4 and no global IPv6 on the link.
//!
//! The speaker's side is the speaker's own code: its link finder
//! ([`ferrolb_speaker::bgp::unnumbered::Link`]) finds the router's link-local address and
//! advertises ours, and the session runs to that address with the extended next hop
//! capability (RFC 8950), the listener taking the router's connections. Each router finds us
//! its own way:
//! - FRR (`neighbor eth0 interface`) from our router advertisement;
//! - GoBGP (`neighbor-interface`) from its kernel's neighbour table, which must hold exactly
//!   one link-local entry when gobgpd starts: our all-nodes echo puts ours there, so GoBGP is
//!   started once it is;
//! - BIRD cannot find a neighbour and is told our link-local address on the interface.
//!
//! Shown for each: the session is Established, the router holds the Service's IPv4 route with
//! our link-local address as next hop and its IPv6 route; FRR and BIRD put the IPv4 route in
//! their kernel `via inet6` our link-local address, and a ping from the router's IPv4 address to
//! the Service's IPv4 address crosses the IPv6-only link and is answered. GoBGP programs no
//! kernel (see `routers::fib`), so its case stops at its RIB. Needs root.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use ferrolb_speaker::bgp::fsm::{self, PeerAsn};
use ferrolb_speaker::bgp::packet::Families;
use ferrolb_speaker::bgp::session::BGP_PORT;
use ferrolb_speaker::bgp::{RouteAttrs, RouteSet, SessionConfig};
use ferrolb_tests::bgp_session::SpeakerSession;
use ferrolb_tests::l2cluster::wait_for;
use ferrolb_tests::netns::{OwnedNetns, is_root};
use ferrolb_tests::routers::{Neighbor, Router, RouterConfig, RouterKind};

const SPEAKER_AS: u32 = 4_200_000_001;
const ROUTER_AS: u32 = 64512;
/// The Service's addresses, on the speaker's loopback so they answer.
const SERVICE_V4: &str = "198.51.100.70/32";
const SERVICE_V6: &str = "2001:db8:70::1/128";
/// The router's own IPv4 address (loopback), the ping's source.
const ROUTER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Fixed MACs, so the link-local addresses (EUI-64) are known: fe80::ff:fe00:a and :b.
const SPEAKER_MAC: &str = "02:00:00:00:00:0a";
const ROUTER_MAC: &str = "02:00:00:00:00:0b";
const SPEAKER_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0xa);
const ROUTER_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0xb);

/// Two namespaces joined by `eth0`, link-local addresses only.
struct Link {
    speaker: OwnedNetns,
    router: OwnedNetns,
}

fn link() -> Link {
    let speaker = OwnedNetns::create("unnum-speaker").expect("a namespace");
    let router = OwnedNetns::create("unnum-router").expect("a namespace");
    for ns in [speaker.ns(), router.ns()] {
        // Addresses usable at once, without duplicate detection's second.
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0")
            .expect("sysctl");
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0")
            .expect("sysctl");
    }
    speaker
        .ns()
        .ip(&[
            "link",
            "add",
            "eth0",
            "address",
            SPEAKER_MAC,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "address",
            ROUTER_MAC,
            "netns",
            router.ns().name(),
        ])
        .expect("a veth pair");
    for (ns, addrs) in [
        (speaker.ns(), [SERVICE_V4, SERVICE_V6]),
        (router.ns(), ["192.0.2.1/32", "2001:db8:1::1/128"]),
    ] {
        for addr in addrs {
            ns.ip(&["addr", "add", addr, "dev", "lo"]).expect("address");
        }
        ns.link_up("eth0").expect("link up");
    }
    // The reply's way back to the router, as a node on an unnumbered fabric has it.
    speaker
        .ns()
        .ip(&[
            "route",
            "add",
            "192.0.2.1/32",
            "via",
            "inet6",
            &ROUTER_LL.to_string(),
            "dev",
            "eth0",
        ])
        .expect("the return route");
    Link { speaker, router }
}

fn routes() -> RouteSet {
    [SERVICE_V4, SERVICE_V6]
        .into_iter()
        .map(|p| (p.parse().expect("a prefix"), RouteAttrs::default()))
        .collect()
}

/// The session as the speaker makes it for `{interface: eth0}` (k8s::bgp::session_config).
fn session_to(at: SocketAddrV6) -> SessionConfig {
    let mut fsm = fsm::Config::new(
        SPEAKER_AS,
        PeerAsn::Exact(ROUTER_AS),
        Ipv4Addr::new(192, 0, 2, 10),
    );
    fsm.families = Families::BOTH;
    fsm.extended_next_hop = true;
    fsm.backoff = fsm::Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(2),
    };
    let mut config = SessionConfig::new(fsm, IpAddr::V6(*at.ip()));
    config.peer = SocketAddr::V6(SocketAddrV6::new(*at.ip(), BGP_PORT, 0, at.scope_id()));
    config.interface = Some("eth0".to_owned());
    config
}

fn start_router(kind: RouterKind, link: &Link) -> Router {
    start_router_with(kind, link, |_| {})
}

fn start_router_with(kind: RouterKind, link: &Link, more: impl FnOnce(&mut Neighbor)) -> Router {
    let mut neighbor = Neighbor::passive(IpAddr::V6(SPEAKER_LL), SPEAKER_AS);
    neighbor.passive = false;
    neighbor.interface = Some("eth0".to_owned());
    more(&mut neighbor);
    Router::start(
        kind,
        link.router.ns(),
        &RouterConfig {
            asn: ROUTER_AS,
            router_id: ROUTER_V4,
            neighbors: vec![neighbor],
            multipath: false,
        },
    )
    .unwrap_or_else(|e| panic!("{kind} starts: {e:#}"))
}

async fn carries_the_services_ipv4_route_over_an_ipv6_only_link(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let link = link();
    // GoBGP reads its neighbour table once, at start: ours must be its only entry by then.
    let mut rtr = (kind != RouterKind::Gobgp).then(|| start_router(kind, &link));
    let session =
        SpeakerSession::start_unnumbered(link.speaker.ns(), "eth0", session_to, routes(), BGP_PORT);
    let neighbour = session.neighbour.expect("an unnumbered session");
    assert_eq!(
        *neighbour.ip(),
        ROUTER_LL,
        "the link finder found the router"
    );
    if kind == RouterKind::Gobgp {
        wait_for(
            "our echo puts us in the router's neighbour table",
            Duration::from_secs(10),
            || async {
                let table = link
                    .router
                    .ns()
                    .ip(&["-6", "neigh", "show", "dev", "eth0"])?;
                Ok(table.contains(&SPEAKER_LL.to_string()).then_some(()))
            },
        )
        .await
        .expect("a neighbour entry");
        rtr = Some(start_router(kind, &link));
    }
    let rtr = rtr.expect("a router");
    let v4: ipnet::IpNet = SERVICE_V4.parse().expect("a prefix");
    let v6: ipnet::IpNet = SERVICE_V6.parse().expect("a prefix");
    wait_for(
        &format!("{kind} establishes over link-local addresses and holds both routes"),
        Duration::from_secs(60),
        || async {
            let up =
                rtr.established_on("eth0").unwrap_or(false) && session.state().is_established();
            let routes = if up {
                rtr.routes().unwrap_or_default()
            } else {
                Vec::new()
            };
            let has = |p: ipnet::IpNet| routes.iter().any(|r| r.prefix == p);
            Ok((has(v4) && has(v6)).then_some(routes))
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\nour state: {:?}\n{}",
            session.state(),
            rtr.describe()
        )
    })
    .into_iter()
    .filter(|r| r.prefix == v4)
    .for_each(|r| {
        assert_eq!(
            r.next_hop,
            IpAddr::V6(SPEAKER_LL),
            "{kind}: the IPv4 route's next hop is our link-local address"
        );
    });
    let negotiated = session.state().negotiated.expect("established");
    assert!(negotiated.extended_next_hop, "{kind} negotiated RFC 8950");
    if kind == RouterKind::Gobgp {
        return;
    }
    let kernel = wait_for(
        &format!("{kind} installs the IPv4 route via our link-local address"),
        Duration::from_secs(20),
        || async {
            let table = link
                .router
                .ns()
                .ip(&["route", "show", "198.51.100.70/32"])?;
            Ok(table
                .contains(&format!("via inet6 {SPEAKER_LL}"))
                .then_some(table))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", rtr.describe()));
    assert!(kernel.contains("dev eth0"), "{kernel}");
    link.router
        .ns()
        .exec(&[
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "-I",
            "192.0.2.1",
            "198.51.100.70",
        ])
        .unwrap_or_else(|e| {
            panic!("{kind}: the Service's IPv4 address answers across the IPv6-only link: {e:#}")
        });
}

#[tokio::test(flavor = "multi_thread")]
async fn frr_carries_the_services_ipv4_route_over_an_ipv6_only_link() {
    carries_the_services_ipv4_route_over_an_ipv6_only_link(RouterKind::Frr).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bird_carries_the_services_ipv4_route_over_an_ipv6_only_link() {
    carries_the_services_ipv4_route_over_an_ipv6_only_link(RouterKind::Bird).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gobgp_carries_the_services_ipv4_route_over_an_ipv6_only_link() {
    carries_the_services_ipv4_route_over_an_ipv6_only_link(RouterKind::Gobgp).await;
}

/// BFD to an unnumbered peer runs between the two link-local addresses, sent out of the link.
async fn bfd_comes_up_over_the_unnumbered_link(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let link = link();
    let timers = ferrolb_tests::routers::BfdTimers {
        receive_interval: Duration::from_millis(300),
        transmit_interval: Duration::from_millis(300),
        detect_multiplier: 3,
        echo: None,
    };
    let rtr = start_router_with(kind, &link, |n| {
        n.bfd = true;
        n.bfd_timers = Some(timers);
    });
    let with_bfd = |at| {
        let mut config = session_to(at);
        config.bfd = Some(ferrolb_config::BfdProfile {
            name: "fast".to_owned(),
            receive_interval: Duration::from_millis(300),
            transmit_interval: Duration::from_millis(300),
            detect_multiplier: 3,
            echo_interval: Duration::from_millis(50),
            echo_mode: false,
            passive_mode: false,
            minimum_ttl: None,
        });
        config
    };
    let session =
        SpeakerSession::start_unnumbered(link.speaker.ns(), "eth0", with_bfd, routes(), BGP_PORT);
    wait_for(
        &format!("{kind} and the speaker bring BFD up between the link-local addresses"),
        Duration::from_secs(60),
        || async {
            let theirs = rtr.bfd_session(IpAddr::V6(SPEAKER_LL)).unwrap_or_default();
            let ours = session.state().bfd.as_ref().is_some_and(|b| b.is_up());
            Ok((ours && theirs.is_some_and(|s| s.is_up())).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\nour state: {:?}\n{}",
            session.state(),
            rtr.describe()
        )
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn frr_brings_bfd_up_over_the_unnumbered_link() {
    bfd_comes_up_over_the_unnumbered_link(RouterKind::Frr).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bird_brings_bfd_up_over_the_unnumbered_link() {
    bfd_comes_up_over_the_unnumbered_link(RouterKind::Bird).await;
}
