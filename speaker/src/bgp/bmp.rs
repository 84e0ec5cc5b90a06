//! BMP export (RFC 7854, Adj-RIB-Out per RFC 8671): each collector given with
//! `--bmp-collector` gets this node's BGP sessions (Peer Up with both OPENs, Peer Down with its
//! reason) and what each session advertises (Route Monitoring of the UPDATEs sent, flagged
//! post-policy Adj-RIB-Out).
//!
//! - The sessions report to one [`Monitor`] through a [`Tap`] each; the monitor keeps, per
//!   session that is up, its Peer Up and its Adj-RIB-Out, so a collector that connects (or
//!   reconnects) first gets Initiation, then every up session's Peer Up, its routes and (once
//!   the session sent them) an End-of-RIB per family, then the live messages.
//! - A session's UPDATEs reach the collectors when it commits them: after a batch is written,
//!   the batch is broadcast and the monitor's copy of the Adj-RIB-Out replaced under one lock,
//!   and a collector subscribes under that lock too. So a collector's snapshot holds either the
//!   table before a batch (and then gets the batch live) or after it, never half of it, and
//!   nothing is missed or sent twice. The snapshot is encoded after the lock is let go.
//! - The speaker dials the collector (RFC 7854 §3.2) and retries with a capped backoff; a
//!   collector that falls behind by [`QUEUE`] messages, or takes no data for [`WRITE_TIMEOUT`],
//!   is disconnected and, on reconnecting, gets the table again rather than a gap.
//! - A speaker without collectors has no monitor: the sessions pay nothing.
//! - Sessions in a VRF are Local Instance peers (type 2) whose distinguisher is a hash of the
//!   VRF's name, so the same address in two VRFs stays two peers.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrolb_bgp::bmp::{self, Message, PeerDownReason, PeerHeader, Tlv};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Live messages a collector may fall behind by before it is cut off and resynchronised
/// (at most 4 KiB each: 16 MiB).
pub const QUEUE: usize = 4_096;

/// How long a write to a collector may block before the connection counts as lost.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A message on the wire, shared by every collector.
type Bytes = Arc<[u8]>;

/// Encodes a session's routes as UPDATE PDUs, for a collector's snapshot.
pub(crate) type RibEncoder = Box<dyn Fn(&super::RouteSet) -> Vec<Vec<u8>> + Send + Sync>;

/// The sessions' state as the collectors see it.
pub struct Monitor {
    /// sysName and sysDescr of the Initiation message.
    node: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    sessions: BTreeMap<u64, Up>,
    collectors: Vec<mpsc::Sender<Bytes>>,
    /// The speaker is stopping: no more collectors.
    closed: bool,
}

/// A session that is up: what a collector needs to be told about it when it connects (cheap
/// to clone, so a snapshot is taken under the lock and encoded after).
#[derive(Clone)]
struct Up {
    peer_up: Bytes,
    /// The header of its Route Monitoring messages (timestamp set when sent).
    header: PeerHeader,
    /// What the peer holds from us, as of the last commit.
    rib: Arc<super::RouteSet>,
    encode: Arc<RibEncoder>,
    /// The End-of-RIB UPDATEs, one per family, once the session has sent them.
    end_of_rib: Vec<Vec<u8>>,
    end_of_rib_sent: bool,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Monitor {
    pub fn new(node: &str) -> Arc<Self> {
        Arc::new(Self {
            node: node.to_string(),
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A session's handle on the monitor.
    pub(crate) fn tap(self: &Arc<Self>, peer: IpAddr, vrf: Option<&str>) -> Tap {
        let id = {
            let mut state = self.state();
            state.next_id += 1;
            state.next_id
        };
        Tap {
            monitor: Arc::clone(self),
            id,
            peer: peer.to_canonical(),
            distinguisher: vrf.map(distinguisher),
            sent_open: None,
            received_open: None,
            notification_sent: None,
            up: None,
            pending: Vec::new(),
        }
    }

    /// The Initiation and every up session's Peer Up and routes, and a queue of what comes
    /// after them.
    fn subscribe(&self) -> Option<(Vec<Bytes>, mpsc::Receiver<Bytes>)> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let sessions: Vec<Up> = {
            let mut state = self.state();
            if state.closed {
                return None;
            }
            state.collectors.push(tx);
            state.sessions.values().cloned().collect()
        };
        let mut snapshot = vec![encode(&Message::Initiation(vec![
            Tlv::text(
                bmp::info::SYS_DESCR,
                concat!("ferrolb speaker ", env!("CARGO_PKG_VERSION")),
            ),
            Tlv::text(bmp::info::SYS_NAME, &self.node),
        ]))];
        for session in sessions {
            snapshot.push(session.peer_up);
            // RFC 8671 §4: the time a route was advertised; not kept, so 0 ("unavailable").
            let header = PeerHeader {
                seconds: 0,
                microseconds: 0,
                ..session.header
            };
            let updates = (session.encode)(&session.rib);
            let end_of_rib = if session.end_of_rib_sent {
                session.end_of_rib
            } else {
                Vec::new()
            };
            for update in updates.into_iter().chain(end_of_rib) {
                snapshot.push(encode(&Message::RouteMonitoring {
                    peer: header.clone(),
                    update,
                }));
            }
        }
        Some((snapshot, rx))
    }

    /// Sends `message` to every collector; one whose queue is full is dropped (it reconnects
    /// and starts over from a snapshot).
    fn broadcast(state: &mut State, message: Bytes) {
        state
            .collectors
            .retain(|tx| tx.try_send(Arc::clone(&message)).is_ok());
    }

    /// Says goodbye to every collector (Termination) and lets them go.
    pub fn close(&self) {
        let mut state = self.state();
        let bye = encode(&Message::Termination(vec![Tlv {
            kind: bmp::termination::REASON,
            value: bmp::termination::ADMINISTRATIVELY_CLOSED
                .to_be_bytes()
                .to_vec(),
        }]));
        Self::broadcast(&mut state, bye);
        state.collectors.clear();
        state.closed = true;
    }
}

/// One session's reports to the monitor.
pub(crate) struct Tap {
    monitor: Arc<Monitor>,
    id: u64,
    peer: IpAddr,
    distinguisher: Option<u64>,
    sent_open: Option<Vec<u8>>,
    received_open: Option<Vec<u8>>,
    notification_sent: Option<Vec<u8>>,
    /// The Route Monitoring header while the session is up.
    up: Option<PeerHeader>,
    /// UPDATEs written to the peer and not committed yet.
    pending: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap").field("peer", &self.peer).finish()
    }
}

/// What a session knows when it comes up.
pub(crate) struct SessionUp {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub peer_asn: u32,
    pub peer_bgp_id: Ipv4Addr,
    pub four_octet_as: bool,
    pub encode: RibEncoder,
    /// One End-of-RIB UPDATE per negotiated family.
    pub end_of_rib: Vec<Vec<u8>>,
}

impl Tap {
    /// The per-peer header of this session, without flags or time.
    fn header(&self, peer_asn: u32, peer_bgp_id: Ipv4Addr) -> PeerHeader {
        PeerHeader {
            peer_type: match self.distinguisher {
                Some(_) => bmp::peer_type::LOCAL,
                None => bmp::peer_type::GLOBAL,
            },
            flags: 0,
            distinguisher: self.distinguisher.unwrap_or(0),
            address: self.peer,
            asn: peer_asn,
            bgp_id: peer_bgp_id,
            seconds: 0,
            microseconds: 0,
        }
    }

    pub fn open_sent(&mut self, pdu: &[u8]) {
        self.sent_open = Some(pdu.to_vec());
        self.notification_sent = None;
    }

    pub fn open_received(&mut self, pdu: &[u8]) {
        self.received_open = Some(pdu.to_vec());
    }

    pub fn notification_sent(&mut self, pdu: &[u8]) {
        self.notification_sent = Some(pdu.to_vec());
    }

    /// The session is Established: Peer Up.
    pub fn established(&mut self, est: SessionUp) {
        let (Some(sent_open), Some(received_open)) =
            (self.sent_open.clone(), self.received_open.clone())
        else {
            debug!("BMP: established without both OPENs seen; not reported");
            return;
        };
        let legacy = if est.four_octet_as {
            0
        } else {
            bmp::flag::LEGACY_AS_PATH
        };
        let base = self.header(est.peer_asn, est.peer_bgp_id);
        let peer_up = encode(&Message::PeerUp {
            peer: stamped(&base),
            local_address: est.local.ip().to_canonical(),
            local_port: est.local.port(),
            remote_port: est.remote.port(),
            sent_open,
            received_open,
            info: vec![],
        });
        let header = PeerHeader {
            flags: bmp::flag::POST_POLICY | bmp::flag::ADJ_RIB_OUT | legacy,
            ..base
        };
        self.up = Some(header.clone());
        let mut state = self.monitor.state();
        Monitor::broadcast(&mut state, Arc::clone(&peer_up));
        state.sessions.insert(
            self.id,
            Up {
                peer_up,
                header,
                rib: Arc::default(),
                encode: Arc::new(est.encode),
                end_of_rib: est.end_of_rib,
                end_of_rib_sent: false,
            },
        );
    }

    /// An UPDATE went to the peer; collectors get it at the next [`Tap::commit`].
    pub fn update_sent(&mut self, pdu: &[u8]) {
        if self.up.is_some() {
            self.pending.push(pdu.to_vec());
        }
    }

    /// The UPDATEs written since the last commit go to the collectors, and `rib` (when given)
    /// becomes what the peer holds, in one step; `end_of_rib`: the session's End-of-RIBs were
    /// among them.
    pub fn commit(&mut self, rib: Option<Arc<super::RouteSet>>, end_of_rib: bool) {
        let Some(header) = &self.up else {
            return;
        };
        let header = stamped(header);
        let messages: Vec<Bytes> = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|update| {
                encode(&Message::RouteMonitoring {
                    peer: header.clone(),
                    update,
                })
            })
            .collect();
        let mut state = self.monitor.state();
        for message in messages {
            Monitor::broadcast(&mut state, message);
        }
        if let Some(up) = state.sessions.get_mut(&self.id) {
            if let Some(rib) = rib {
                up.rib = rib;
            }
            up.end_of_rib_sent |= end_of_rib;
        }
    }

    /// The session went down: Peer Down with the NOTIFICATION sent or received, if any.
    pub fn down(&mut self, received: Option<Vec<u8>>, stopped: bool) {
        let reason = match (self.notification_sent.take(), received) {
            (Some(sent), _) => PeerDownReason::LocalNotification(sent),
            (None, Some(received)) => PeerDownReason::RemoteNotification(received),
            // RFC 4271 §8.1.2: event 2, ManualStop.
            (None, None) if stopped => PeerDownReason::LocalNoNotification(2),
            (None, None) => PeerDownReason::RemoteNoData,
        };
        self.report_down(reason);
        self.sent_open = None;
        self.received_open = None;
        self.pending.clear();
    }

    fn report_down(&mut self, reason: PeerDownReason) {
        let Some(header) = self.up.take() else {
            return;
        };
        let message = encode(&Message::PeerDown {
            peer: stamped(&PeerHeader { flags: 0, ..header }),
            reason,
        });
        let mut state = self.monitor.state();
        state.sessions.remove(&self.id);
        Monitor::broadcast(&mut state, message);
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.report_down(PeerDownReason::Deconfigured);
    }
}

/// A header with the current time.
fn stamped(header: &PeerHeader) -> PeerHeader {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    PeerHeader {
        seconds: u32::try_from(now.as_secs()).unwrap_or(u32::MAX),
        microseconds: now.subsec_micros(),
        ..header.clone()
    }
}

fn encode(message: &Message) -> Bytes {
    match message.encode() {
        Ok(bytes) => bytes.into(),
        Err(e) => {
            // Only a TLV over 64 KiB can fail; none of ours is.
            warn!(error = %e, "BMP: cannot encode a message");
            Arc::from(Vec::new())
        }
    }
}

fn distinguisher(vrf: &str) -> u64 {
    let digest = Sha256::digest(vrf.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// How long to wait between attempts to reach a collector: doubling up to this.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// A connection that lasted this long resets the backoff; shorter ones (a collector that
/// accepts and closes) keep it growing, so it is not sent the whole table every second.
const STABLE: Duration = Duration::from_secs(30);

/// Keeps a connection to the collector at `target` (`host:port`) until the monitor closes,
/// sending it the monitor's messages.
pub async fn export(monitor: Arc<Monitor>, target: String) {
    let mut delay = Duration::from_secs(1);
    let mut failing = false;
    while !monitor.state().closed {
        match connect(&target).await {
            Ok(stream) => {
                info!(collector = %target, "BMP: connected; sending this node's sessions and routes");
                failing = false;
                let since = tokio::time::Instant::now();
                match serve(&monitor, stream).await {
                    Ended::Closed => return,
                    Ended::Lost(why) => {
                        warn!(collector = %target, reason = %why, "BMP: connection lost; reconnecting");
                    }
                }
                if since.elapsed() >= STABLE {
                    delay = Duration::from_secs(1);
                }
            }
            Err(e) => {
                if !failing {
                    warn!(collector = %target, error = %e, "BMP: cannot reach the collector; retrying");
                }
                failing = true;
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
    }
}

async fn connect(target: &str) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(target)).await??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

enum Ended {
    /// The monitor closed (the speaker stops) and the Termination went out.
    Closed,
    Lost(String),
}

async fn serve(monitor: &Monitor, stream: TcpStream) -> Ended {
    let (mut read, mut write) = stream.into_split();
    let Some((snapshot, mut live)) = monitor.subscribe() else {
        return Ended::Closed;
    };
    for message in snapshot {
        if let Err(why) = send(&mut write, &message).await {
            return Ended::Lost(why);
        }
    }
    // The collector sends nothing (RFC 7854 §3.2); reading tells when it goes away.
    let mut sink = [0u8; 512];
    loop {
        tokio::select! {
            message = live.recv() => match message {
                Some(message) => {
                    if let Err(why) = send(&mut write, &message).await {
                        return Ended::Lost(why);
                    }
                }
                None => {
                    if !monitor.state().closed {
                        return Ended::Lost(format!("fell {QUEUE} messages behind"));
                    }
                    let _ = write.shutdown().await;
                    return Ended::Closed;
                }
            },
            read = read.read(&mut sink) => match read {
                Ok(0) => return Ended::Lost("the collector closed the connection".into()),
                Ok(_) => {}
                Err(e) => return Ended::Lost(e.to_string()),
            },
        }
    }
}

/// Writes one message, within [`WRITE_TIMEOUT`].
async fn send(write: &mut tokio::net::tcp::OwnedWriteHalf, message: &[u8]) -> Result<(), String> {
    match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("the collector took nothing for {WRITE_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests;
