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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::packet::{Message, Notification, SessionContext, cease_subcode};
use crate::sys;

/// A peer as connections tell it: its address and, for a link-local one, the interface it is
/// on (the same link-local address may be on every link of the node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    ip: IpAddr,
    scope: u32,
}

impl From<IpAddr> for PeerKey {
    fn from(ip: IpAddr) -> Self {
        Self {
            ip: ip.to_canonical(),
            scope: 0,
        }
    }
}

impl From<SocketAddr> for PeerKey {
    fn from(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V6(v6) if v6.ip().is_unicast_link_local() => Self {
                ip: IpAddr::V6(*v6.ip()),
                scope: v6.scope_id(),
            },
            other => Self::from(other.ip()),
        }
    }
}

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.scope {
            0 => write!(f, "{}", self.ip),
            scope => write!(f, "{}%{scope}", self.ip),
        }
    }
}

/// Where connections from one peer address go.
struct Target {
    id: u64,
    inbound: mpsc::Sender<TcpStream>,
    password: Option<String>,
}

#[derive(Default)]
struct Table {
    by_peer: HashMap<PeerKey, Vec<Target>>,
    /// The TCP MD5 key set on the listeners for each address, as the kernel holds it (the
    /// kernel keys by address alone: a link-local address on two links shares one key).
    keys: HashMap<IpAddr, String>,
    next_id: u64,
    /// Sources already logged as refused (each is logged once, up to [`LOGGED_MAX`]).
    logged: BTreeSet<PeerKey>,
}

/// Refused sources remembered so as to log each once; when the set is full, one of them is
/// forgotten for each new one (and logged again if it comes back), so a scan cannot grow the
/// set without bound.
const LOGGED_MAX: usize = 1024;

impl Table {
    /// Sets the key of the newest registration of `peer`'s address on `sockets` (or removes
    /// it when that one has none), so the kernel checks the SYNs of the session that will get
    /// them.
    fn sync_key(&mut self, peer: PeerKey, sockets: &[Arc<TcpListener>]) -> io::Result<()> {
        let want = self
            .by_peer
            .iter()
            .filter(|(k, _)| k.ip == peer.ip)
            .flat_map(|(_, targets)| targets.iter())
            .max_by_key(|t| t.id)
            .and_then(|t| t.password.clone());
        let peer = peer.ip;
        if want.as_ref() == self.keys.get(&peer) {
            return Ok(());
        }
        // An empty key removes the address's key.
        let key = want.as_deref().unwrap_or("");
        for s in sockets {
            sys::set_tcp_md5sig(s.as_ref(), peer, key.as_bytes())?;
        }
        match want {
            Some(key) => self.keys.insert(peer, key),
            None => self.keys.remove(&peer),
        };
        Ok(())
    }
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
    /// network namespace, or with `vrf` of that VRF device only. IPv6 is left out when it
    /// cannot be bound (no IPv6 in the namespace); IPv4 must be.
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
        peer: impl Into<PeerKey>,
        password: Option<&str>,
        inbound: mpsc::Sender<TcpStream>,
    ) -> io::Result<Registration> {
        let peer: PeerKey = peer.into();
        let sockets: Vec<Arc<TcpListener>> = self.family_sockets(peer).cloned().collect();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.next_id += 1;
        let id = table.next_id;
        table.by_peer.entry(peer).or_default().push(Target {
            id,
            inbound,
            password: password.map(str::to_string),
        });
        if let Err(e) = table.sync_key(peer, &sockets) {
            remove_target(&mut table, peer, id, &sockets);
            return Err(e);
        }
        table.logged.remove(&peer);
        Ok(Registration {
            peer,
            id,
            table: Arc::clone(&self.table),
            sockets,
        })
    }

    fn family_sockets(&self, peer: PeerKey) -> impl Iterator<Item = &Arc<TcpListener>> {
        self.sockets.iter().filter(move |s| {
            s.local_addr()
                .is_ok_and(|a| a.is_ipv6() == peer.ip.is_ipv6())
        })
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
    peer: PeerKey,
    id: u64,
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
        remove_target(&mut table, self.peer, self.id, &self.sockets);
    }
}

/// Forgets one registration and leaves the key of the address's remaining one, if any.
fn remove_target(table: &mut Table, peer: PeerKey, id: u64, sockets: &[Arc<TcpListener>]) {
    if let Some(targets) = table.by_peer.get_mut(&peer) {
        targets.retain(|t| t.id != id);
        if targets.is_empty() {
            table.by_peer.remove(&peer);
        }
    }
    if let Err(e) = table.sync_key(peer, sockets) {
        warn!(error = %e, %peer, "cannot update the TCP MD5 key on the BGP listener");
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
        let peer = PeerKey::from(from);
        let verdict = {
            let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
            let verdict = match table.by_peer.get(&peer).map(Vec::as_slice) {
                Some([only]) => Ok(only.inbound.clone()),
                Some([]) | None => Err("no BGPPeer of this node has this address"),
                Some(_) => Err("more than one BGPPeer of this node has this address"),
            };
            if verdict.is_err() && !table.logged.contains(&peer) && table.logged.len() >= LOGGED_MAX
            {
                table.logged.pop_first();
            }
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

/// Closes a connection with Cease and `subcode`. Our side is shut after the NOTIFICATION and
/// the connection held until the peer closes (at most a second): closing a socket with unread
/// data resets it, and a reset can discard the NOTIFICATION before the peer reads it.
pub(super) async fn refuse(mut stream: TcpStream, subcode: u8) {
    let message = Message::Notification(Notification::cease(subcode));
    let Ok(bytes) = message.encode(&SessionContext::default()) else {
        return;
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
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
            .register(IpAddr::from(Ipv4Addr::LOCALHOST), None, tx)
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
            .register(IpAddr::from(Ipv4Addr::LOCALHOST), None, tx2)
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

    #[tokio::test]
    async fn the_md5_key_follows_the_registrations_that_remain() {
        let listener = Listener::bind(0, None).expect("binds on loopback");
        let to = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listener.port());
        let unsigned = || tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(to));

        let (tx_signed, _rx_signed) = mpsc::channel(1);
        let signed = listener
            .register(IpAddr::from(Ipv4Addr::LOCALHOST), Some("s3cret"), tx_signed)
            .expect("registers");
        assert!(
            unsigned().await.is_err(),
            "with a key set, the kernel drops SYNs without one"
        );

        // A second BGPPeer with the address and no password; the first goes away.
        let (tx_plain, mut rx_plain) = mpsc::channel(1);
        let _plain = listener
            .register(IpAddr::from(Ipv4Addr::LOCALHOST), None, tx_plain)
            .expect("registers");
        drop(signed);
        let _client = unsigned()
            .await
            .expect("the key went with its registration")
            .expect("connects");
        tokio::time::timeout(Duration::from_secs(5), rx_plain.recv())
            .await
            .expect("handed over within 5 s")
            .expect("a connection");
    }
}
