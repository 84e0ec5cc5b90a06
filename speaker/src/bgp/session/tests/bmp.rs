//! BMP export of a session: what a collector connected from the start sees, what one that
//! connects later is given, and the goodbye.

use std::sync::Arc;

use ferrolb_bgp::bmp::{self as wire, PeerDownReason};

use super::*;
use crate::bgp::bmp::{Monitor, export};

/// A collector's end: every BMP message the speaker sends it.
struct Collector {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Collector {
    async fn accept(listener: &TcpListener) -> Self {
        let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("the speaker dials the collector")
            .expect("accept");
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    async fn recv(&mut self) -> Option<wire::Message> {
        loop {
            if let Some(len) = wire::frame_length(&self.buf).expect("a BMP frame")
                && self.buf.len() >= len
            {
                let frame: Vec<u8> = self.buf.drain(..len).collect();
                return Some(wire::Message::decode(&frame).expect("decodes"));
            }
            let n =
                tokio::time::timeout(Duration::from_secs(10), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("a message within 10 s")
                    .expect("read");
            if n == 0 {
                return None;
            }
        }
    }

    /// Route Monitoring messages up to and including both End-of-RIBs: the prefixes
    /// announced and withdrawn, each from an Adj-RIB-Out post-policy header.
    async fn table(&mut self, ctx: &SessionContext) -> (BTreeSet<IpNet>, BTreeSet<IpNet>) {
        let (mut announced, mut withdrawn) = (BTreeSet::new(), BTreeSet::new());
        let mut ends = 0;
        while ends < 2 {
            let update = self.route_monitoring(ctx).await;
            if update.end_of_rib_family().is_some() {
                ends += 1;
            }
            announced.extend(update.announced().copied());
            withdrawn.extend(update.withdrawals().copied());
        }
        (announced, withdrawn)
    }

    async fn route_monitoring(&mut self, ctx: &SessionContext) -> Update {
        match self.recv().await {
            Some(wire::Message::RouteMonitoring { peer, update }) => {
                assert_eq!(peer.address, IpAddr::V4(Ipv4Addr::LOCALHOST));
                assert_eq!(
                    peer.flags,
                    wire::flag::POST_POLICY | wire::flag::ADJ_RIB_OUT,
                    "post-policy Adj-RIB-Out, 4-octet AS_PATH"
                );
                match Message::decode(&update, ctx).expect("an UPDATE") {
                    Message::Update(u) => u,
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("expected Route Monitoring, got {other:?}"),
        }
    }

    async fn initiation_and_peer_up(&mut self) {
        match self.recv().await {
            Some(wire::Message::Initiation(tlvs)) => {
                assert!(tlvs.contains(&wire::Tlv::text(wire::info::SYS_NAME, "node-a")));
                assert!(tlvs.iter().any(|t| t.kind == wire::info::SYS_DESCR));
            }
            other => panic!("expected Initiation, got {other:?}"),
        }
        match self.recv().await {
            Some(wire::Message::PeerUp {
                peer,
                local_address,
                remote_port,
                sent_open,
                received_open,
                ..
            }) => {
                assert_eq!(peer.address, IpAddr::V4(Ipv4Addr::LOCALHOST));
                assert_eq!(
                    (peer.asn, peer.bgp_id),
                    (PEER_AS, Ipv4Addr::new(10, 0, 0, 2))
                );
                assert_eq!(local_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
                assert_ne!(remote_port, 0);
                let ctx = SessionContext::default();
                assert!(matches!(
                    Message::decode(&sent_open, &ctx),
                    Ok(Message::Open(o)) if u32::from(o.my_as) == OUR_AS
                ));
                assert!(matches!(
                    Message::decode(&received_open, &ctx),
                    Ok(Message::Open(o)) if u32::from(o.my_as) == PEER_AS
                ));
            }
            other => panic!("expected Peer Up, got {other:?}"),
        }
    }
}

fn prefixes(routes: &RouteSet) -> BTreeSet<IpNet> {
    routes.keys().copied().collect()
}

#[tokio::test]
async fn collectors_get_the_sessions_their_routes_and_each_change() {
    let monitor = Monitor::new("node-a");
    let collectors = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = collectors.local_addr().expect("addr").to_string();
    let exporting = tokio::spawn(export(Arc::clone(&monitor), target.clone()));
    let mut first = Collector::accept(&collectors).await;

    let (handle, mut peer, routes_tx) = established_monitored(routes(), Some(&monitor)).await;
    let ctx = peer.ctx;
    first.initiation_and_peer_up().await;
    let (announced, withdrawn) = first.table(&ctx).await;
    assert_eq!(announced, prefixes(&routes()), "the initial table, as sent");
    assert!(withdrawn.is_empty());
    assert_eq!(
        initial_table(&mut peer).await.len(),
        3,
        "the peer got it too"
    );

    // A change: the withdrawal goes to the collector as the UPDATE the peer got.
    let mut fewer = routes();
    fewer.remove(&net("198.51.100.3/32"));
    routes_tx.send_replace(fewer.clone());
    let update = first.route_monitoring(&ctx).await;
    assert_eq!(
        update.withdrawals().copied().collect::<Vec<_>>(),
        [net("198.51.100.3/32")]
    );

    // A collector that connects now gets the session and what the peer holds now.
    let second_exporting = tokio::spawn(export(Arc::clone(&monitor), target));
    let mut second = Collector::accept(&collectors).await;
    second.initiation_and_peer_up().await;
    let (announced, withdrawn) = second.table(&ctx).await;
    assert_eq!(announced, prefixes(&fewer));
    assert!(withdrawn.is_empty());

    // The session ends: both hear why, with the NOTIFICATION the peer got.
    handle.shutdown("maintenance").await;
    for collector in [&mut first, &mut second] {
        match collector.recv().await {
            Some(wire::Message::PeerDown {
                peer,
                reason: PeerDownReason::LocalNotification(pdu),
            }) => {
                assert_eq!(peer.address, IpAddr::V4(Ipv4Addr::LOCALHOST));
                assert!(matches!(
                    Message::decode(&pdu, &ctx),
                    Ok(Message::Notification(n)) if (n.code, n.subcode) == (6, cease_subcode::ADMINISTRATIVE_SHUTDOWN)
                ));
            }
            other => panic!("expected Peer Down, got {other:?}"),
        }
    }

    // The speaker stops: Termination, then the connection closes and the export ends.
    monitor.close();
    for collector in [&mut first, &mut second] {
        assert!(matches!(
            collector.recv().await,
            Some(wire::Message::Termination(_))
        ));
        assert!(collector.recv().await.is_none(), "closed after Termination");
    }
    for task in [exporting, second_exporting] {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the export ends")
            .expect("without panicking");
    }
}

#[tokio::test]
async fn a_collector_that_comes_back_gets_the_table_again() {
    let monitor = Monitor::new("node-a");
    let collectors = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = collectors.local_addr().expect("addr").to_string();
    let (handle, mut peer, _routes_tx) = established_monitored(routes(), Some(&monitor)).await;
    let ctx = peer.ctx;
    assert_eq!(initial_table(&mut peer).await.len(), 3);
    let exporting = tokio::spawn(export(Arc::clone(&monitor), target));

    let mut gone = Collector::accept(&collectors).await;
    gone.initiation_and_peer_up().await;
    assert_eq!(gone.table(&ctx).await.0, prefixes(&routes()));
    drop(gone);

    // The speaker notices, waits a second and dials again.
    let mut back = Collector::accept(&collectors).await;
    back.initiation_and_peer_up().await;
    assert_eq!(back.table(&ctx).await.0, prefixes(&routes()));
    exporting.abort();
    handle.shutdown("test over").await;
}
