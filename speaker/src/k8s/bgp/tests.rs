//! Sessions kept in line with the configuration: what each BGPPeer becomes, and what is refused.

use super::*;

fn peer(yaml_spec: &str) -> Peer {
    let text = format!(
        "apiVersion: ferrolb.io/v1beta1\nkind: BGPPeer\nmetadata: {{name: p, namespace: ferrolb-system}}\nspec: {yaml_spec}\n"
    );
    crate::test_support::valid_config(&text)
        .peers
        .into_values()
        .next()
        .expect("one peer")
}

/// No unnumbered link found anything.
fn no_link(_: &str) -> Found {
    Found::Nothing
}

fn node() -> NodeName {
    NodeName::from("node-1".to_owned())
}

#[test]
fn a_plain_peer_becomes_a_single_family_active_session() {
    let cfg = session_config(
        &peer("{myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.1, peerPort: 1179}"),
        &BTreeMap::new(),
        &node(),
        &[
            "2001:db8::11".parse().expect("ip"),
            "192.0.2.11".parse().expect("ip"),
        ],
        &no_link,
    )
    .expect("usable");
    assert_eq!(cfg.peer, "192.0.2.1:1179".parse().expect("addr"));
    assert_eq!(cfg.fsm.local_asn, 64512);
    assert_eq!(cfg.fsm.peer_asn, fsm::PeerAsn::Exact(64513));
    assert_eq!(cfg.fsm.router_id, Ipv4Addr::new(192, 0, 2, 11));
    assert_eq!(cfg.fsm.hold_time, 90);
    assert_eq!(cfg.fsm.families, Families::IPV4);
    assert!(cfg.fsm.graceful_restart.is_none());
    assert!(!cfg.ebgp_multihop && cfg.password.is_none());
}

#[test]
fn every_session_setting_is_carried_over() {
    let cfg = session_config(
        &peer(
            "{myASN: 4200000001, peerASN: 64513, localASN: 64999, peerAddress: '2001:db8::1', \
             routerID: 10.0.0.1, sourceAddress: '2001:db8::11', holdTime: 9s, connectTime: 5s, \
             password: s3cret, ebgpMultiHop: true, enableGracefulRestart: true, \
             dualStackAddressFamily: true, passive: true}",
        ),
        &BTreeMap::new(),
        &node(),
        &[],
        &no_link,
    )
    .expect("usable");
    assert_eq!(cfg.fsm.local_asn, 64999);
    assert_eq!(cfg.fsm.router_id, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(cfg.fsm.hold_time, 9);
    assert_eq!(cfg.fsm.families, Families::BOTH);
    assert_eq!(cfg.fsm.backoff.initial, Duration::from_secs(5));
    assert_eq!(
        cfg.fsm.graceful_restart.map(|g| g.restart_time),
        Some(RESTART_TIME)
    );
    assert_eq!(cfg.password.as_deref(), Some("s3cret"));
    assert_eq!(
        cfg.source_address,
        Some("2001:db8::11".parse().expect("ip"))
    );
    assert!(cfg.ebgp_multihop);
    assert!(cfg.fsm.passive);
}

/// A passive peer ("waits") and an active one ("dials"), with a route set each.
fn two_peers() -> (Config, BTreeMap<PeerName, RouteSet>) {
    let text = "apiVersion: ferrolb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: waits, namespace: ferrolb-system}\nspec: {myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.1, passive: true}\n---\napiVersion: ferrolb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: dials, namespace: ferrolb-system}\nspec: {myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.2, peerPort: 9}\n";
    let config = crate::test_support::valid_config(text);
    let routes = config
        .peers
        .keys()
        .map(|name| (name.clone(), RouteSet::new()))
        .collect();
    (config, routes)
}

/// This node's sessions, listening on `port` (0: never).
fn sessions_on(port: u16) -> Sessions {
    let (events, _rx) = mpsc::unbounded_channel();
    Sessions::new(node(), events, SharedStats::default(), port)
}

const NODE_IPS: [IpAddr; 1] = [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11))];

/// The one peer `out` reports refused, with the reason.
fn the_refusal(out: &Reconciled) -> (&str, &str) {
    assert_eq!(out.refused.len(), 1, "{:?}", out.refused);
    let (name, why) = &out.refused[0];
    (name.as_str(), why.as_str())
}

#[tokio::test]
async fn a_passive_peer_is_refused_with_the_reason_when_the_port_cannot_be_opened() {
    // Someone else holds the port on every address.
    let holder = std::net::TcpListener::bind("0.0.0.0:0").expect("binds");
    let port = holder.local_addr().expect("bound").port();
    let (config, routes) = two_peers();
    let mut sessions = sessions_on(port);
    let out = sessions.reconcile(&config, &routes, &NODE_IPS);
    let (name, why) = the_refusal(&out);
    assert_eq!(name, "waits");
    assert!(
        why.contains(&format!("cannot listen for BGP on port {port}")),
        "{why}"
    );
    assert!(
        sessions.address(&PeerName::from("dials")).is_some(),
        "the active peer runs"
    );
    drop(holder);
    sessions.stop("test over").await;
}

#[tokio::test]
async fn a_refusal_is_reported_once_while_its_reason_stands() {
    let holder = std::net::TcpListener::bind("0.0.0.0:0").expect("binds");
    let port = holder.local_addr().expect("bound").port();
    let (config, routes) = two_peers();
    let mut sessions = sessions_on(port);
    the_refusal(&sessions.reconcile(&config, &routes, &NODE_IPS));
    for _ in 0..3 {
        let again = sessions.reconcile(&config, &routes, &NODE_IPS);
        assert!(
            again.refused.is_empty(),
            "reported again: {:?}",
            again.refused
        );
    }
    assert_eq!(
        sessions.refused().count(),
        1,
        "still refused, for the status"
    );
    drop(holder);
    sessions.stop("test over").await;
}

#[tokio::test]
async fn a_passive_peer_is_refused_when_the_speaker_does_not_listen() {
    let (config, routes) = two_peers();
    let mut sessions = sessions_on(0);
    let out = sessions.reconcile(&config, &routes, &NODE_IPS);
    let (name, why) = the_refusal(&out);
    assert_eq!(name, "waits");
    assert!(why.contains("--bgp-listen-port 0"), "{why}");
    assert!(
        sessions.address(&PeerName::from("waits")).is_none(),
        "never started"
    );
    assert!(
        sessions.address(&PeerName::from("dials")).is_some(),
        "the active peer runs"
    );
    sessions.stop("test over").await;
}

#[test]
fn dynamic_asns_and_the_router_id_fallback() {
    let cfg = session_config(
        &peer("{myASN: 64512, dynamicASN: external, peerAddress: '2001:db8::1'}"),
        &BTreeMap::new(),
        &node(),
        &["2001:db8::11".parse().expect("ip")],
        &no_link,
    )
    .expect("usable");
    assert_eq!(cfg.fsm.peer_asn, fsm::PeerAsn::External);
    assert_eq!(cfg.fsm.families, Families::IPV6);
    assert_eq!(cfg.fsm.router_id, router_id_from_name(&node()));
    assert!(!cfg.fsm.router_id.is_unspecified());
}

#[test]
fn the_peers_bfd_profile_is_carried_over() {
    let text = "apiVersion: ferrolb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: fast, namespace: ferrolb-system}\n\
                spec: {receiveInterval: 100, transmitInterval: 200, detectMultiplier: 5}\n---\n\
                apiVersion: ferrolb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: p, namespace: ferrolb-system}\n\
                spec: {myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.1, bfdProfile: fast}\n";
    let config = crate::test_support::valid_config(text);
    let peer = config.peers.values().next().expect("a peer");
    let cfg = session_config(peer, &config.bfd_profiles, &node(), &[], &no_link).expect("usable");
    let bfd = cfg.bfd.expect("BFD on");
    assert_eq!(bfd.transmit_interval, Duration::from_millis(200));
    assert_eq!(bfd.receive_interval, Duration::from_millis(100));
    assert_eq!(bfd.detect_multiplier, 5);
}

#[test]
fn unusable_peers_are_refused_with_a_reason() {
    let refused = |spec: &str| {
        session_config(&peer(spec), &BTreeMap::new(), &node(), &[], &no_link).expect_err("refused")
    };
    let err = refused("{myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.1, vrf: no-such-vrf}");
    assert!(err.contains("no VRF device \"no-such-vrf\""), "{err}");
    let err = refused("{myASN: 64512, peerASN: 64513, interface: eth0}");
    assert!(err.contains("no neighbour heard on \"eth0\""), "{err}");
}

#[test]
fn an_unnumbered_peer_is_reached_at_the_link_local_address_found_on_its_link() {
    let at = std::net::SocketAddrV6::new("fe80::1".parse().expect("ip"), 0, 0, 7);
    let cfg = session_config(
        &peer("{myASN: 64512, peerASN: 64513, interface: eth1}"),
        &BTreeMap::new(),
        &node(),
        &[],
        &|name: &str| {
            assert_eq!(name, "eth1");
            Found::Peer(at)
        },
    )
    .expect("usable");
    assert_eq!(
        cfg.peer,
        SocketAddr::V6(std::net::SocketAddrV6::new(*at.ip(), 179, 0, 7))
    );
    assert_eq!(cfg.interface.as_deref(), Some("eth1"));
    assert_eq!(
        cfg.fsm.families,
        Families::BOTH,
        "IPv4 rides on IPv6 next hops"
    );
    assert!(cfg.fsm.extended_next_hop, "RFC 8950 offered");
}

#[test]
fn a_vrf_peer_is_bound_to_its_device() {
    // Every namespace has "lo"; the device's kind is not checked.
    let cfg = session_config(
        &peer("{myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.1, vrf: lo}"),
        &BTreeMap::new(),
        &node(),
        &[],
        &no_link,
    )
    .expect("usable");
    assert_eq!(cfg.vrf.as_deref(), Some("lo"));
}

#[tokio::test]
async fn an_unnumbered_peer_on_a_missing_interface_is_reported_once_its_link_has_looked() {
    let text = "apiVersion: ferrolb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: spine, namespace: ferrolb-system}\nspec: {myASN: 64512, peerASN: 64600, interface: flb-none0}\n";
    let config = crate::test_support::valid_config(text);
    let routes: BTreeMap<PeerName, RouteSet> = config
        .peers
        .keys()
        .map(|name| (name.clone(), RouteSet::new()))
        .collect();
    let mut sessions = sessions_on(0);
    // The link has only just started looking: nothing to report yet.
    let first = sessions.reconcile(&config, &routes, &NODE_IPS);
    assert!(first.refused.is_empty(), "{:?}", first.refused);
    // It finds the interface missing and says so; the next pass reports it.
    tokio::time::timeout(Duration::from_secs(5), sessions.links_changed())
        .await
        .expect("the link reports within 5 s");
    let out = sessions.reconcile(&config, &routes, &NODE_IPS);
    let (name, why) = the_refusal(&out);
    assert_eq!(name, "spine");
    assert!(
        why.contains("interface \"flb-none0\"") && why.contains("no interface"),
        "{why}"
    );
    assert!(sessions.address(&PeerName::from("spine")).is_none());
    sessions.stop("test over").await;
}
