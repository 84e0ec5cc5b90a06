//! The shared receive side: one [`ReceiveSocket`] per address family per network namespace,
//! and the table that hands each packet to its session — by Your Discriminator, or, while
//! that is 0 (the remote does not know us yet), by the source address (RFC 5880 §6.8.6,
//! RFC 5881 §3). Packets whose TTL / hop limit is below the session's least are dropped here:
//! 255 for single hop (RFC 5881 §5), `minimumTtl` for multihop (RFC 5883 §2, port 4784, a
//! receiver of its own).
//!
//! Port 3784 can be bound once per namespace, so the receivers are kept in a process-wide map
//! keyed by namespace (the inode of `/proc/thread-self/ns/net`) and family. The first session
//! of a namespace opens its receiver; it then stays open for the sessions that follow, because
//! closing it on the last session's end would race with the next session's bind. A receiver's
//! task runs on the tokio runtime of the session that opened it and closes the socket when
//! that runtime ends; the next session then opens a new one. Sessions of one namespace should
//! therefore share a runtime (as they do in the speaker, one runtime per process).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, trace, warn};

use super::packet::ControlPacket;
use super::runner::{BfdError, Counters};
use super::socket::{Family, ReceiveSocket};

/// Where one session's packets go.
#[derive(Debug)]
pub(super) struct Route {
    /// The session task's inbox.
    pub tx: mpsc::Sender<ControlPacket>,
    /// The session's counters (drops are counted here when the session is known).
    pub counters: Arc<Counters>,
    /// The least TTL its packets may arrive with.
    pub min_ttl: u8,
}

#[derive(Debug, Default)]
struct Table {
    by_discriminator: HashMap<u32, Route>,
    by_peer: HashMap<IpAddr, u32>,
}

impl Table {
    fn find(&self, your_discriminator: u32, from: IpAddr) -> Option<&Route> {
        let discriminator = match your_discriminator {
            0 => *self.by_peer.get(&from)?,
            d => d,
        };
        self.by_discriminator.get(&discriminator)
    }
}

#[derive(Debug, Default)]
struct Shared {
    table: Mutex<Table>,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent whatever panicked while holding it.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A receive socket and the task reading it.
#[derive(Debug)]
struct Receiver {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A network namespace, as the kernel identifies it.
type NetnsId = (u64, u64);

/// The receivers opened, by namespace, family and port (single-hop or multihop).
type Receivers = HashMap<(NetnsId, Family, u16), Arc<Receiver>>;

static RECEIVERS: LazyLock<Mutex<Receivers>> = LazyLock::new(Mutex::default);

fn current_netns() -> std::io::Result<NetnsId> {
    let meta = std::fs::metadata("/proc/thread-self/ns/net")?;
    Ok((meta.dev(), meta.ino()))
}

/// A session's place in its receiver's table; removed on drop, which also closes the session's
/// inbox.
#[derive(Debug)]
pub(super) struct Registration {
    receiver: Arc<Receiver>,
    discriminator: NonZeroU32,
    peer: IpAddr,
}

impl Registration {
    /// The local discriminator given to the session (unique on its receiver).
    pub fn discriminator(&self) -> NonZeroU32 {
        self.discriminator
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut table = self.receiver.shared.table();
        table.by_discriminator.remove(&self.discriminator.get());
        if table.by_peer.get(&self.peer) == Some(&self.discriminator.get()) {
            table.by_peer.remove(&self.peer);
        }
    }
}

/// Registers a session with `peer` on this namespace's receiver for the peer's family and
/// `port`, opening the receiver if it is the first, and picks the session's discriminator.
pub(super) fn register(peer: IpAddr, port: u16, route: Route) -> Result<Registration, BfdError> {
    let family = Family::of(peer);
    let key = (current_netns().map_err(BfdError::Receive)?, family, port);
    let receiver = {
        let mut receivers = RECEIVERS.lock().unwrap_or_else(PoisonError::into_inner);
        // A finished task's runtime is gone, and its socket closed with it.
        receivers.retain(|_, r| !r.task.is_finished());
        match receivers.get(&key) {
            Some(receiver) => Arc::clone(receiver),
            None => {
                let socket = ReceiveSocket::bind(family, port).map_err(BfdError::Receive)?;
                let shared = Arc::new(Shared::default());
                let task = tokio::spawn(receive(socket, Arc::clone(&shared)));
                let receiver = Arc::new(Receiver { shared, task });
                receivers.insert(key, Arc::clone(&receiver));
                receiver
            }
        }
    };
    let mut table = receiver.shared.table();
    if table.by_peer.contains_key(&peer) {
        return Err(BfdError::DuplicatePeer { peer });
    }
    let discriminator = loop {
        if let Some(d) = NonZeroU32::new(rand::random())
            && !table.by_discriminator.contains_key(&d.get())
        {
            break d;
        }
    };
    table.by_discriminator.insert(discriminator.get(), route);
    table.by_peer.insert(peer, discriminator.get());
    drop(table);
    Ok(Registration {
        receiver,
        discriminator,
        peer,
    })
}

/// Reads the socket for as long as the receiver lives and hands packets to their sessions.
async fn receive(socket: ReceiveSocket, shared: Arc<Shared>) {
    // Room for the mandatory section and the largest authentication section (SHA1, 28).
    let mut buf = [0u8; 128];
    loop {
        let datagram = match socket.recv(&mut buf).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "BFD receive failed; retrying in 100 ms");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let from = datagram.from;
        let packet = match ControlPacket::decode(&buf[..datagram.len]) {
            Ok(p) => p,
            Err(e) => {
                debug!(%from, error = %e, "dropping a malformed BFD packet");
                continue;
            }
        };
        let table = shared.table();
        let Some(route) = table.find(packet.your_discriminator, from.ip()) else {
            debug!(
                %from,
                your_discriminator = packet.your_discriminator,
                "dropping a BFD packet for no session of ours"
            );
            continue;
        };
        if datagram.ttl.is_none_or(|ttl| ttl < route.min_ttl) {
            route.counters.dropped_ttl.fetch_add(1, Ordering::Relaxed);
            debug!(%from, ttl = ?datagram.ttl, "dropping a BFD packet that crossed a router");
            continue;
        }
        trace!(%from, state = %packet.state, bytes = ?&buf[..datagram.len], "received");
        if route.tx.try_send(packet).is_err() {
            // The session is behind (or ending): a dropped packet is a missed one, which
            // the detection time allows for.
            route
                .counters
                .dropped_backlog
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}
