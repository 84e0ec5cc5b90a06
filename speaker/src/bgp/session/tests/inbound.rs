//! Connections the peer opens: a passive session, and collisions decided both ways.

use super::*;

const OUR_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

fn config(passive: bool, port: u16) -> SessionConfig {
    let mut fsm = fsm::Config::new(OUR_AS, PeerAsn::Exact(PEER_AS), OUR_ID);
    fsm.backoff.initial = Duration::from_millis(100);
    fsm.passive = passive;
    let mut config = SessionConfig::new(fsm, IpAddr::V4(Ipv4Addr::LOCALHOST));
    config.peer.set_port(port);
    config.ipv4_next_hop = Some(V4_NEXT_HOP);
    config.ipv6_next_hop = Some(V6_NEXT_HOP);
    config
}

fn peer_open(bgp_id: Ipv4Addr) -> Message {
    Message::Open(Open {
        my_as: PEER_AS as u16,
        hold_time: 9,
        bgp_id,
        capabilities: vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::FourOctetAs(PEER_AS),
        ],
    })
}

/// The peer dials "us": returns its end, and hands ours to the session as the listener would.
async fn dial(handle: &super::super::SessionHandle) -> Peer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (ours, _) = accepted.expect("accept");
    handle
        .inbound
        .send(ours)
        .await
        .expect("the session takes it");
    Peer {
        listener,
        stream: client.expect("connect"),
        buf: Vec::new(),
        ctx: SessionContext::default(),
    }
}

async fn state_becomes(handle: &super::super::SessionHandle, want: State) {
    let mut rx = handle.state.clone();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| s.state == want))
        .await
        .unwrap_or_else(|_| panic!("the session reaches {want:?}"))
        .expect("the session runs");
}

fn cease(message: Option<Message>) -> Option<(u8, u8)> {
    match message {
        Some(Message::Notification(n)) => Some((n.code, n.subcode)),
        _ => None,
    }
}

#[tokio::test]
async fn a_passive_session_never_dials_and_runs_on_the_connection_the_peer_opens() {
    // Something listens where an active session would connect: it must see nothing.
    let trap = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = trap.local_addr().expect("addr").port();
    let (_routes_tx, routes_rx) = watch::channel(routes());
    let handle = Session::spawn(config(true, port), routes_rx).expect("valid config");
    state_becomes(&handle, State::Active).await;
    let dialled = tokio::time::timeout(Duration::from_millis(500), trap.accept()).await;
    assert!(dialled.is_err(), "a passive session connected out");

    let mut peer = dial(&handle).await;
    assert!(matches!(peer.recv().await, Some(Message::Open(_))));
    peer.send(peer_open(Ipv4Addr::new(10, 0, 0, 2))).await;
    peer.send(Message::Keepalive).await;
    assert_eq!(peer.recv().await, Some(Message::Keepalive));
    state_becomes(&handle, State::Established).await;
    peer.ctx = SessionContext {
        four_octet_as: true,
        families: crate::bgp::packet::Families::BOTH,
    };
    assert_eq!(initial_table(&mut peer).await.len(), 3);
    handle.shutdown("test over").await;
}

/// Our session connects to the peer, which leaves our OPEN unanswered (OpenSent) and dials us
/// with `their_id`. Returns the session, the peer's end of our connection and of its own.
async fn collision(their_id: Ipv4Addr) -> (super::super::SessionHandle, Peer, Peer) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (_routes_tx, routes_rx) = watch::channel(routes());
    let handle = Session::spawn(config(false, port), routes_rx).expect("valid config");
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the session connects")
        .expect("accept");
    let mut ours = Peer {
        listener,
        stream,
        buf: Vec::new(),
        ctx: SessionContext::default(),
    };
    assert!(matches!(ours.recv().await, Some(Message::Open(_))));
    assert_eq!(handle.state.borrow().state, State::OpenSent);
    let mut theirs = dial(&handle).await;
    theirs.send(peer_open(their_id)).await;
    (handle, ours, theirs)
}

#[tokio::test]
async fn a_collision_with_a_higher_identifier_moves_the_session_to_the_peers_connection() {
    let (handle, mut ours, mut theirs) = collision(Ipv4Addr::new(10, 0, 0, 9)).await;
    assert_eq!(
        cease(ours.recv().await),
        Some((6, cease_subcode::CONNECTION_COLLISION_RESOLUTION)),
        "our connection is closed with Cease/Connection Collision Resolution"
    );
    assert!(matches!(theirs.recv().await, Some(Message::Open(_))));
    assert_eq!(theirs.recv().await, Some(Message::Keepalive));
    theirs.send(Message::Keepalive).await;
    state_becomes(&handle, State::Established).await;
    handle.shutdown("test over").await;
}

#[tokio::test]
async fn a_collision_with_a_lower_identifier_keeps_our_connection() {
    let (handle, mut ours, mut theirs) = collision(Ipv4Addr::new(10, 0, 0, 2)).await;
    assert_eq!(
        cease(theirs.recv().await),
        Some((6, cease_subcode::CONNECTION_COLLISION_RESOLUTION)),
        "the peer's connection is closed with Cease/Connection Collision Resolution"
    );
    ours.send(peer_open(Ipv4Addr::new(10, 0, 0, 2))).await;
    assert_eq!(ours.recv().await, Some(Message::Keepalive));
    ours.send(Message::Keepalive).await;
    state_becomes(&handle, State::Established).await;

    // Established: a further connection from the peer is closed, the session stays.
    let mut late = dial(&handle).await;
    assert_eq!(
        cease(late.recv().await),
        Some((6, cease_subcode::CONNECTION_COLLISION_RESOLUTION))
    );
    assert_eq!(handle.state.borrow().state, State::Established);
    handle.shutdown("test over").await;
}

#[tokio::test]
async fn a_second_connection_from_the_peer_replaces_its_first_whatever_the_identifiers() {
    // A passive session on the peer's first connection, in OpenConfirm. The peer (a lower
    // identifier than ours) dials again, as a router does after losing the first connection's
    // state: both connections are the peer's, so no identifier rule applies — the new one wins.
    let (_routes_tx, routes_rx) = watch::channel(routes());
    let handle = Session::spawn(config(true, 9), routes_rx).expect("valid config");
    state_becomes(&handle, State::Active).await;
    let low = Ipv4Addr::new(10, 0, 0, 2);
    let mut first = dial(&handle).await;
    assert!(matches!(first.recv().await, Some(Message::Open(_))));
    first.send(peer_open(low)).await;
    assert_eq!(first.recv().await, Some(Message::Keepalive));
    state_becomes(&handle, State::OpenConfirm).await;

    let mut second = dial(&handle).await;
    assert_eq!(
        cease(first.recv().await),
        Some((6, cease_subcode::CONNECTION_COLLISION_RESOLUTION)),
        "the first connection is closed"
    );
    assert!(matches!(second.recv().await, Some(Message::Open(_))));
    second.send(peer_open(low)).await;
    assert_eq!(second.recv().await, Some(Message::Keepalive));
    second.send(Message::Keepalive).await;
    state_becomes(&handle, State::Established).await;
    handle.shutdown("test over").await;
}
