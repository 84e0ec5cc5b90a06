//! The speaker's BGP listener: a socket per family on the BGP port that hands each connection
//! to the session of the peer it comes from, so a router that dials us (a passive BGPPeer, or
//! any router coming back from a restart) gets a session at once instead of waiting for our
//! next attempt. A connection from an address no session of this node has is refused with
//! Cease/Connection Rejected (RFC 4486) and counted; so is one from an address two BGPPeers of
//! this node share (which of them it meant cannot be told).
//!
//! Sockets: the listeners send with TTL 255, so a GTSM router (RFC 5082) accepts our side of
//! the handshake; each session then sets its own TTL and minimum on the connection it takes
//! (`socket::accepted`). TCP MD5 keys are set on the listeners per registered peer address,
//! because the kernel checks the SYN against them before any session sees it.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::packet::{Message, Notification, SessionContext, cease_subcode};
use crate::sys;

/// Where connections from one peer address go.
struct Target {
    id: u64,
    inbound: mpsc::Sender<TcpStream>,
}

#[derive(Default)]
struct Table {
    by_peer: HashMap<IpAddr, Vec<Target>>,
    next_id: u64,
    /// Sources already logged as refused (each is logged once).
    logged: BTreeSet<IpAddr>,
}

/// The listening sockets and the sessions they feed.
pub struct Listener {
    sockets: Vec<Arc<TcpListener>>,
    table: Arc<Mutex<Table>>,
    refused: Arc<AtomicU64>,
    port: u16,
    tasks: Vec<JoinHandle<()>>,
}

impl Listener {
    /// Listens on `port` (0: any free port, for tests) on every IPv4 and IPv6 address of this
    /// network namespace, or with `vrf` of that VRF device only. A family that cannot be bound
    /// (no IPv6 in the namespace) is left out; an error only when neither can.
    pub fn bind(port: u16, vrf: Option<&str>) -> io::Result<Self> {
        let table = Arc::new(Mutex::new(Table::default()));
        let refused = Arc::new(AtomicU64::new(0));
        let v4 = listen(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port), vrf)?;
        // The IPv6 socket takes the IPv4 one's port when `port` was 0.
        let port = v4.local_addr()?.port();
        let mut sockets = vec![Arc::new(v4)];
        match listen(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port), vrf) {
            Ok(v6) => sockets.push(Arc::new(v6)),
            Err(e) => debug!(error = %e, "no IPv6 BGP listener"),
        }
        let tasks = sockets
            .iter()
            .map(|s| {
                tokio::spawn(accept_loop(
                    Arc::clone(s),
                    Arc::clone(&table),
                    Arc::clone(&refused),
                ))
            })
            .collect();
        Ok(Self {
            sockets,
            table,
            refused,
            port,
            tasks,
        })
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections refused so far: from unknown or ambiguous sources.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Sends connections from `peer` to `inbound` until the registration is dropped. With a
    /// password, the listeners accept `peer`'s SYNs only when signed with it (TCP MD5).
    pub fn register(
        &self,
        peer: IpAddr,
        password: Option<&str>,
        inbound: mpsc::Sender<TcpStream>,
    ) -> io::Result<Registration> {
        let peer = peer.to_canonical();
        if let Some(password) = password {
            for s in self.family_sockets(peer) {
                sys::set_tcp_md5sig(s.as_ref(), peer, password.as_bytes())?;
            }
        }
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.next_id += 1;
        let id = table.next_id;
        table
            .by_peer
            .entry(peer)
            .or_default()
            .push(Target { id, inbound });
        table.logged.remove(&peer);
        Ok(Registration {
            peer,
            id,
            md5: password.is_some(),
            table: Arc::clone(&self.table),
            sockets: self.family_sockets(peer).cloned().collect(),
        })
    }

    fn family_sockets(&self, peer: IpAddr) -> impl Iterator<Item = &Arc<TcpListener>> {
        self.sockets
            .iter()
            .filter(move |s| s.local_addr().is_ok_and(|a| a.is_ipv6() == peer.is_ipv6()))
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A session's claim on the connections from its peer's address.
pub struct Registration {
    peer: IpAddr,
    id: u64,
    md5: bool,
    table: Arc<Mutex<Table>>,
    sockets: Vec<Arc<TcpListener>>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let left = match table.by_peer.get_mut(&self.peer) {
            Some(targets) => {
                targets.retain(|t| t.id != self.id);
                targets.len()
            }
            None => 0,
        };
        if left == 0 {
            table.by_peer.remove(&self.peer);
            if self.md5 {
                // An empty key removes the address's key.
                for s in &self.sockets {
                    if let Err(e) = sys::set_tcp_md5sig(s.as_ref(), self.peer, b"") {
                        debug!(error = %e, peer = %self.peer, "cannot remove the TCP MD5 key from the BGP listener");
                    }
                }
            }
        }
    }
}

fn listen(addr: SocketAddr, vrf: Option<&str>) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if let Some(vrf) = vrf {
        // Connections arriving on the VRF's interfaces reach only sockets bound to it.
        socket.bind_device(Some(vrf.as_bytes()))?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_unicast_hops_v6(255)?;
    } else {
        socket.set_ttl_v4(255)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(64)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(
    listener: Arc<TcpListener>,
    table: Arc<Mutex<Table>>,
    refused: Arc<AtomicU64>,
) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning.
                warn!(error = %e, "the BGP listener cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = from.ip().to_canonical();
        let verdict = {
            let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
            let verdict = match table.by_peer.get(&peer).map(Vec::as_slice) {
                Some([only]) => Ok(only.inbound.clone()),
                Some([]) | None => Err("no BGPPeer of this node has this address"),
                Some(_) => Err("more than one BGPPeer of this node has this address"),
            };
            let first = verdict.is_err() && table.logged.insert(peer);
            (verdict, first)
        };
        match verdict {
            (Ok(inbound), _) => {
                debug!(%peer, "inbound BGP connection");
                if inbound.try_send(stream).is_err() {
                    debug!(%peer, "the session is not taking connections; closed");
                }
            }
            (Err(why), first) => {
                refused.fetch_add(1, Ordering::Relaxed);
                if first {
                    info!(%peer, reason = why, "refusing inbound BGP connection (logged once per address)");
                }
                tokio::spawn(refuse(stream, cease_subcode::CONNECTION_REJECTED));
            }
        }
    }
}

/// Closes a connection with Cease and `subcode`, giving the peer a second to read it.
pub(super) async fn refuse(mut stream: TcpStream, subcode: u8) {
    let message = Message::Notification(Notification::cease(subcode));
    if let Ok(bytes) = message.encode(&SessionContext::default()) {
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&bytes)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::packet::frame_length;
    use tokio::io::AsyncReadExt;

    async fn read_message(stream: &mut TcpStream) -> Option<Message> {
        let mut buf = Vec::new();
        loop {
            if let Ok(Some(len)) = frame_length(&buf)
                && buf.len() >= len
            {
                return Message::decode(&buf[..len], &SessionContext::default()).ok();
            }
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read_buf(&mut buf))
                .await
                .expect("an answer within 5 s")
                .expect("read");
            if n == 0 {
                return None;
            }
        }
    }

    #[tokio::test]
    async fn a_connection_goes_to_the_session_of_its_source_and_others_are_rejected() {
        let listener = Listener::bind(0, None).expect("binds on loopback");
        let to = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listener.port());

        // Nobody registered 127.0.0.1: Cease/Connection Rejected.
        let mut stranger = TcpStream::connect(to).await.expect("connects");
        match read_message(&mut stranger).await {
            Some(Message::Notification(n)) => {
                assert_eq!((n.code, n.subcode), (6, cease_subcode::CONNECTION_REJECTED));
            }
            other => panic!("expected a NOTIFICATION, got {other:?}"),
        }
        assert_eq!(listener.refused(), 1);

        // Registered: the session gets the connection, from the address it expects.
        let (tx, mut rx) = mpsc::channel(1);
        let registration = listener
            .register(Ipv4Addr::LOCALHOST.into(), None, tx)
            .expect("registers");
        let _client = TcpStream::connect(to).await.expect("connects");
        let taken = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("handed over within 5 s")
            .expect("a connection");
        assert_eq!(
            taken.peer_addr().expect("peer").ip(),
            IpAddr::from(Ipv4Addr::LOCALHOST)
        );

        // Two sessions with the same address: which one is meant cannot be told.
        let (tx2, _rx2) = mpsc::channel(1);
        let second = listener
            .register(Ipv4Addr::LOCALHOST.into(), None, tx2)
            .expect("registers");
        let mut ambiguous = TcpStream::connect(to).await.expect("connects");
        assert!(matches!(
            read_message(&mut ambiguous).await,
            Some(Message::Notification(_))
        ));
        assert_eq!(listener.refused(), 2);

        // Both gone: rejected again.
        drop(second);
        drop(registration);
        let mut late = TcpStream::connect(to).await.expect("connects");
        assert!(matches!(
            read_message(&mut late).await,
            Some(Message::Notification(_))
        ));
        assert_eq!(listener.refused(), 3);
    }
}
