//! The session against a scripted peer on loopback: no root, no router, every byte checked.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{RouteAttrs, RouteSet, Session, SessionConfig};
use crate::bgp::fsm::{self, DownReason, PeerAsn, State};
use crate::bgp::packet::{
    AfiSafi, AsPath, Capability, Community, Family, Message, MessageType, MpNextHop, Open,
    RouteRefresh, SessionContext, Update, cease_subcode, error_code, frame_length,
};

const OUR_AS: u32 = 65000;
const PEER_AS: u32 = 65001;
/// A next hop peers accept (loopback ones are treated as withdraw, RFC 7606 §7.3).
const V4_NEXT_HOP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const V6_NEXT_HOP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// The other end of the connection, scripted by the test.
struct Peer {
    /// Where the session connects; kept to accept its reconnection.
    listener: TcpListener,
    stream: TcpStream,
    buf: Vec<u8>,
    ctx: SessionContext,
}

impl Peer {
    async fn recv(&mut self) -> Option<Message> {
        loop {
            if let Ok(Some(len)) = frame_length(&self.buf)
                && self.buf.len() >= len
            {
                let frame: Vec<u8> = self.buf.drain(..len).collect();
                return Some(Message::decode(&frame, &self.ctx).expect("a valid message"));
            }
            let read =
                tokio::time::timeout(Duration::from_secs(10), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("the session says something within 10s")
                    .expect("read");
            if read == 0 {
                return None;
            }
        }
    }

    /// The next message that is not a KEEPALIVE.
    async fn recv_non_keepalive(&mut self) -> Option<Message> {
        loop {
            match self.recv().await {
                Some(Message::Keepalive) => continue,
                other => return other,
            }
        }
    }

    async fn recv_update(&mut self) -> Update {
        match self.recv_non_keepalive().await {
            Some(Message::Update(u)) => u,
            other => panic!("expected an UPDATE, got {other:?}"),
        }
    }

    async fn send(&mut self, message: Message) {
        let bytes = message.encode(&self.ctx).expect("encodes");
        self.stream.write_all(&bytes).await.expect("write");
    }
}

fn net(s: &str) -> IpNet {
    s.parse().expect("a prefix")
}

fn routes() -> RouteSet {
    let tagged = RouteAttrs {
        communities: BTreeSet::from([Community::new(65000, 100)]),
        ..RouteAttrs::default()
    };
    RouteSet::from([
        (net("198.51.100.1/32"), tagged.clone()),
        (net("198.51.100.2/32"), tagged),
        (net("198.51.100.3/32"), RouteAttrs::default()),
        (net("2001:db8:100::1/128"), RouteAttrs::default()),
    ])
}

/// Starts a session to a listener on loopback and brings it to Established.
async fn established(routes: RouteSet) -> (super::SessionHandle, Peer, watch::Sender<RouteSet>) {
    established_monitored(routes, None).await
}

/// [`established`], reporting to BMP through `monitor`.
async fn established_monitored(
    routes: RouteSet,
    monitor: Option<&std::sync::Arc<crate::bgp::bmp::Monitor>>,
) -> (super::SessionHandle, Peer, watch::Sender<RouteSet>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut fsm = fsm::Config::new(OUR_AS, PeerAsn::Exact(PEER_AS), Ipv4Addr::new(10, 0, 0, 1));
    fsm.backoff.initial = Duration::from_millis(100);
    let mut config = SessionConfig::new(fsm, IpAddr::V4(Ipv4Addr::LOCALHOST));
    config.peer.set_port(port);
    config.ipv4_next_hop = Some(V4_NEXT_HOP);
    config.ipv6_next_hop = Some(V6_NEXT_HOP);
    let (routes_tx, routes_rx) = watch::channel(routes);
    let handle = Session::spawn_monitored(config, routes_rx, monitor).expect("valid config");
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the session connects")
        .expect("accept");
    let mut peer = Peer {
        listener,
        stream,
        buf: Vec::new(),
        ctx: SessionContext::default(),
    };
    let Some(Message::Open(open)) = peer.recv().await else {
        panic!("expected an OPEN first");
    };
    assert_eq!(u32::from(open.my_as), OUR_AS);
    peer.send(Message::Open(Open {
        my_as: PEER_AS as u16,
        hold_time: 9,
        bgp_id: Ipv4Addr::new(10, 0, 0, 2),
        capabilities: vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(PEER_AS),
        ],
    }))
    .await;
    peer.send(Message::Keepalive).await;
    assert_eq!(peer.recv().await, Some(Message::Keepalive));
    peer.ctx = SessionContext {
        four_octet_as: true,
        families: crate::bgp::packet::Families::BOTH,
    };
    (handle, peer, routes_tx)
}

/// Reads UPDATEs until both End-of-RIB markers; returns the prefixes announced with the
/// UPDATEs that carried them.
async fn initial_table(peer: &mut Peer) -> Vec<Update> {
    let mut updates = Vec::new();
    let mut eor = BTreeSet::new();
    while eor.len() < 2 {
        let update = peer.recv_update().await;
        match update.end_of_rib_family() {
            Some(family) => {
                eor.insert(family);
            }
            None => updates.push(update),
        }
    }
    updates
}

#[tokio::test]
async fn established_session_sends_the_whole_set_grouped_by_attributes_then_end_of_rib() {
    let (handle, mut peer, _routes) = established(routes()).await;
    let updates = initial_table(&mut peer).await;
    // Three attribute sets: tagged v4, plain v4, plain v6.
    assert_eq!(updates.len(), 3, "{updates:#?}");
    let tagged = updates
        .iter()
        .find(|u| u.nlri.len() == 2)
        .unwrap_or_else(|| panic!("the two tagged prefixes in one UPDATE: {updates:#?}"));
    assert_eq!(
        tagged.attributes.communities,
        vec![Community::new(65000, 100)]
    );
    assert_eq!(tagged.attributes.next_hop, Some(V4_NEXT_HOP));
    assert_eq!(tagged.attributes.as_path, Some(AsPath::sequence([OUR_AS])));
    assert_eq!(tagged.attributes.local_pref, None, "no LOCAL_PREF on eBGP");
    let v6 = updates
        .iter()
        .find_map(|u| u.attributes.mp_reach.as_ref())
        .expect("IPv6 in MP_REACH_NLRI");
    assert_eq!(v6.nlri, vec![net("2001:db8:100::1/128")]);
    assert_eq!(
        v6.next_hop,
        MpNextHop {
            global: IpAddr::V6(V6_NEXT_HOP),
            link_local: None
        }
    );
    let state = handle.state.borrow().clone();
    assert_eq!(state.state, State::Established);
    assert_eq!(state.advertised, 4);
    assert_eq!(handle.counters.prefixes_advertised(), 4);
    assert_eq!(handle.counters.sent(MessageType::Open), 1);
    assert_eq!(handle.counters.received(MessageType::Open), 1);
    handle.shutdown("test over").await;
}

#[tokio::test]
async fn graceful_shutdown_routes_go_out_again_with_the_community_and_a_longer_as_path() {
    let (handle, mut peer, routes_tx) = established(routes()).await;
    initial_table(&mut peer).await;
    let shutdown = ferrolb_config::GracefulShutdown {
        as_path_prepend: 2,
        ..ferrolb_config::GracefulShutdown::default()
    };
    routes_tx.send_replace(crate::bgp::advertise::graceful_shutdown(
        &routes(),
        &shutdown,
    ));
    let update = peer.recv_update().await;
    assert!(
        update
            .attributes
            .communities
            .contains(&Community::GRACEFUL_SHUTDOWN),
        "{update:#?}"
    );
    assert_eq!(
        update.attributes.as_path,
        Some(AsPath::sequence([OUR_AS, OUR_AS, OUR_AS])),
        "our AS and two prepends"
    );
    assert_eq!(update.attributes.local_pref, None, "no LOCAL_PREF on eBGP");
    handle.shutdown("test over").await;
}

#[tokio::test]
async fn a_changed_set_sends_only_the_difference() {
    let (handle, mut peer, routes_tx) = established(routes()).await;
    initial_table(&mut peer).await;
    let mut next = routes();
    next.remove(&net("198.51.100.3/32"));
    next.remove(&net("2001:db8:100::1/128"));
    next.insert(net("198.51.100.4/32"), RouteAttrs::default());
    routes_tx.send_replace(next);
    let mut withdrawn = BTreeSet::new();
    let mut announced = BTreeSet::new();
    while withdrawn.len() < 2 || announced.is_empty() {
        let update = peer.recv_update().await;
        withdrawn.extend(update.withdrawals().copied());
        announced.extend(update.announced().copied());
    }
    assert_eq!(
        withdrawn,
        BTreeSet::from([net("198.51.100.3/32"), net("2001:db8:100::1/128")])
    );
    assert_eq!(announced, BTreeSet::from([net("198.51.100.4/32")]));
    handle.shutdown("test over").await;
}

#[tokio::test]
async fn route_refresh_resends_the_family() {
    let (handle, mut peer, _routes) = established(routes()).await;
    initial_table(&mut peer).await;
    peer.send(Message::RouteRefresh(RouteRefresh {
        afi_safi: Family::Ipv6Unicast.afi_safi(),
        subtype: 0,
    }))
    .await;
    let update = peer.recv_update().await;
    let announced: Vec<IpNet> = update.announced().copied().collect();
    assert_eq!(announced, vec![net("2001:db8:100::1/128")]);
    handle.shutdown("test over").await;
}

#[tokio::test]
async fn shutdown_sends_cease_administrative_shutdown_and_closes() {
    let (handle, mut peer, _routes) = established(routes()).await;
    initial_table(&mut peer).await;
    let state = handle.state.clone();
    handle.shutdown("maintenance").await;
    match peer.recv_non_keepalive().await {
        Some(Message::Notification(n)) => {
            assert_eq!(n.code, error_code::CEASE);
            assert_eq!(n.subcode, cease_subcode::ADMINISTRATIVE_SHUTDOWN);
            assert_eq!(n.shutdown_message(), Some("maintenance"));
        }
        other => panic!("expected a NOTIFICATION, got {other:?}"),
    }
    assert_eq!(peer.recv().await, None, "then the connection closes");
    let state = state.borrow().clone();
    assert_eq!(state.state, State::Idle);
    assert_eq!(
        state.last_down.map(|d| d.reason),
        Some(DownReason::ManualStop)
    );
}

#[tokio::test]
async fn a_peer_that_closes_takes_the_session_down_and_it_connects_again() {
    let (handle, peer, _routes) = established(routes()).await;
    let mut state = handle.state.clone();
    let listener = peer.listener;
    drop(peer.stream);
    tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|s| s.state != State::Established),
    )
    .await
    .expect("the session notices the close")
    .expect("state");
    let down = handle.state.borrow().last_down.clone().expect("a down");
    assert!(down.was_established(), "{down:?}");
    // The peer holds nothing from us any more (the dashboard's "prefixes announced").
    assert_eq!(handle.counters.prefixes_advertised(), 0);
    tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the session connects again after its backoff")
        .expect("accept");
    assert_eq!(handle.counters.established(), 1);
    handle.shutdown("test over").await;
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_dropped_instead_of_stalling_the_session() {
    // Every route with its own attributes (one UPDATE each, ~300 bytes): several MB, more
    // than loopback's socket buffers hold, so the session's writes block once the peer stops
    // reading.
    let filler: BTreeSet<Community> = (0..60).map(|i| Community::new(64999, i)).collect();
    let many: RouteSet = (0..20_000u32)
        .map(|i| {
            let mut communities = filler.clone();
            communities.insert(Community::new(65000, (i % 65_000) as u16));
            let prefix = IpNet::from(
                ipnet::Ipv4Net::new(Ipv4Addr::from(0xC612_0000 + i), 32).expect("a /32"),
            );
            let attrs = RouteAttrs {
                communities,
                ..RouteAttrs::default()
            };
            (prefix, attrs)
        })
        .collect();
    let (handle, peer, _routes) = established(many).await;
    // From here the peer never reads, but keeps sending KEEPALIVEs, so no hold timer expires
    // on our side: only a bounded write can notice, give up on the connection and dial again.
    let Peer {
        listener,
        mut stream,
        ..
    } = peer;
    let keepalive = Message::Keepalive
        .encode(&SessionContext::default())
        .expect("encodes");
    let keepalives = tokio::spawn(async move {
        for _ in 0..60 {
            if stream.write_all(&keepalive).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        stream
    });
    let redial = tokio::time::timeout(Duration::from_secs(30), listener.accept()).await;
    keepalives.abort();
    assert!(
        matches!(redial, Ok(Ok(_))),
        "the session stayed on a connection whose peer stopped reading: {:?}",
        handle.state.borrow()
    );
    assert!(
        handle.counters.sent(MessageType::Update) < 20_000,
        "every UPDATE went out, so the writes never blocked and the test proves nothing"
    );
}

mod bmp;
mod inbound;

#[test]
fn bfd_runs_multihop_when_the_peer_may_be_more_than_one_hop_away() {
    let fsm = fsm::Config::new(OUR_AS, PeerAsn::Exact(PEER_AS), Ipv4Addr::new(10, 0, 0, 1));
    let mut config = SessionConfig::new(fsm, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert!(!config.bfd_multihop(), "directly connected by default");
    config.ttl_security = Some(1);
    assert!(
        !config.bfd_multihop(),
        "GTSM with one hop: directly connected"
    );
    config.ttl_security = Some(3);
    assert!(config.bfd_multihop(), "GTSM allowing three hops");
    config.ttl_security = None;
    config.ebgp_multihop = true;
    assert!(config.bfd_multihop(), "ebgpMultiHop");
}
