//! One BGP session on tokio: a task per peer that drives one [`Fsm`] over a real TCP
//! connection and keeps the peer's Adj-RIB-In equal to a desired [`RouteSet`].
//!
//! The task owns the socket and the FSM; everything the FSM decides comes out as
//! [`Output`]s that the task carries out in order. Timers are the FSM's own deadlines: the task
//! sleeps until [`Fsm::next_deadline`] and reports the expiry, so `ArmTimer`/`CancelTimer` need
//! no bookkeeping here. Time is read from `tokio::time` (pausable in tests) and handed to the
//! FSM as a `std::time::Instant`.
//!
//! - Connecting out: a [`TcpSocket`] with the optional source address, TCP MD5 set before
//!   `connect` when a password is given ([`sys::set_tcp_md5sig`]), and TTL 1 for single-hop
//!   eBGP.
//! - The stream is cut into messages with [`frame_length`] and each is decoded with the
//!   context the FSM holds *at that message* (the peer's OPEN changes it).
//! - On Established the whole route set is sent, grouped by identical attributes, then an
//!   End-of-RIB per family; afterwards only differences: new or changed routes announced,
//!   removed ones withdrawn. A ROUTE-REFRESH resends the family.
//! - IPv4 routes carry NEXT_HOP = the session's local IPv4 address; IPv6 routes go in
//!   MP_REACH_NLRI with the local IPv6 address as next hop. On an IPv4 session that address is
//!   [`SessionConfig::ipv6_next_hop`], or else the first global IPv6 address of the interface
//!   holding the local IPv4 address; with neither, IPv6 routes are skipped (and logged).
//! - With a BFD profile ([`SessionConfig::bfd`]), a BFD session runs with the peer from the
//!   local address of the first established connection, and its path failures take the BGP
//!   session down at once (Cease/BFD Down); `session/bfd.rs` says when it does and does not.
//!
//! Inbound UPDATEs are ignored: a LoadBalancer speaker only originates.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ipnet::IpNet;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, trace, warn};

use super::fsm::{self, ConfigError, Down, Fsm, Input, Negotiated, Output, State};
use super::packet::{
    Community, Family, LargeCommunity, Message, Update, UpdateBuilder, frame_length,
};
use crate::bfd::BfdStatus;

mod adj_rib_out;
mod bfd;
mod config;
mod counters;
mod inbound;
mod monitor;
mod socket;
mod waits;

use adj_rib_out::{Established, sendable};
pub use config::SessionConfig;
pub use counters::Counters;
use socket::{connect, interface_addresses};
use waits::{maybe, read_some, sleep_until};

/// The well-known BGP port.
pub const BGP_PORT: u16 = 179;

/// How long a write may block before the connection counts as failed, when no hold time
/// bounds it.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// LOCAL_PREF sent on iBGP sessions for routes that set none (the common default).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// The attributes of one advertised prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteAttrs {
    /// LOCAL_PREF, sent on iBGP sessions only ([`DEFAULT_LOCAL_PREF`] when unset).
    pub local_pref: Option<u32>,
    /// Communities (RFC 1997).
    pub communities: BTreeSet<Community>,
    /// Large communities (RFC 8092).
    pub large_communities: BTreeSet<LargeCommunity>,
    /// Extra copies of our AS in front of the AS path, on eBGP sessions only.
    pub as_path_prepend: u8,
}

/// The desired Adj-RIB-Out of a session: every prefix to advertise, with its attributes.
pub type RouteSet = BTreeMap<IpNet, RouteAttrs>;

/// What a session reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// The FSM state.
    pub state: State,
    /// How the last session or attempt ended, if one did.
    pub last_down: Option<Down>,
    /// What was negotiated, while Established.
    pub negotiated: Option<Negotiated>,
    /// The local end of the connection, while connected.
    pub local_address: Option<SocketAddr>,
    /// Prefixes the peer currently holds from us.
    pub advertised: usize,
    /// The BFD session watching the path, if one runs.
    pub bfd: Option<BfdStatus>,
}

impl SessionState {
    /// Whether the session is Established.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }
}

/// A running session.
#[derive(Debug)]
pub struct SessionHandle {
    /// The session's state, updated on every change.
    pub state: watch::Receiver<SessionState>,
    /// Its counters.
    pub counters: Arc<Counters>,
    /// Where connections the peer opens are handed to the session ([`super::listener`]).
    pub inbound: mpsc::Sender<TcpStream>,
    stop: oneshot::Sender<String>,
    task: JoinHandle<()>,
}

impl SessionHandle {
    /// Stops the session: an established peer gets Cease/Administrative Shutdown with
    /// `message` (RFC 9003), then the connection closes. Returns once the task has ended.
    pub async fn shutdown(self, message: &str) {
        // The task may have ended already; then there is nothing to stop.
        let _ = self.stop.send(message.to_owned());
        if let Err(e) = self.task.await {
            warn!(error = %e, "BGP session task ended abnormally");
        }
    }
}

/// The tokio side of one BGP session.
#[derive(Debug)]
pub struct Session;

impl Session {
    /// Starts a session on the current tokio runtime. Its sockets are created in the network
    /// namespace of the runtime's thread.
    pub fn spawn(
        config: SessionConfig,
        routes: watch::Receiver<RouteSet>,
    ) -> Result<SessionHandle, ConfigError> {
        Self::spawn_monitored(config, routes, None)
    }

    /// [`Session::spawn`], reporting to BMP collectors through `monitor`.
    pub fn spawn_monitored(
        config: SessionConfig,
        routes: watch::Receiver<RouteSet>,
        monitor: Option<&Arc<super::bmp::Monitor>>,
    ) -> Result<SessionHandle, ConfigError> {
        let bmp = monitor.map(|m| m.tap(config.peer.ip(), config.vrf.as_deref()));
        let fsm = Fsm::new(config.fsm.clone())?;
        let (state_tx, state_rx) = watch::channel(SessionState {
            state: State::Idle,
            last_down: None,
            negotiated: None,
            local_address: None,
            advertised: 0,
            bfd: None,
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let (inbound_tx, inbound) = mpsc::channel(4);
        let counters = Arc::new(Counters::default());
        let driver = Driver {
            config,
            fsm,
            routes,
            routes_closed: false,
            conn: None,
            connecting: None,
            inbound,
            pending: None,
            established: None,
            advertised: RouteSet::new(),
            last_down: None,
            state_tx,
            counters: Arc::clone(&counters),
            failed: false,
            bfd: bfd::Guard::default(),
            bmp,
        };
        let span = tracing::info_span!("bgp_session", peer = %driver.config.peer.ip());
        let task = tokio::spawn(tracing::Instrument::instrument(driver.run(stop_rx), span));
        Ok(SessionHandle {
            state: state_rx,
            counters,
            inbound: inbound_tx,
            stop: stop_tx,
            task,
        })
    }
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

#[derive(Debug)]
struct Connection {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    local: SocketAddr,
    buf: Vec<u8>,
    /// The peer opened it (from the listener), rather than our connect.
    from_peer: bool,
}

impl Connection {
    fn new(stream: TcpStream, from_peer: bool) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        let (read, write) = stream.into_split();
        Ok(Self {
            read,
            write,
            local,
            buf: Vec::with_capacity(4096),
            from_peer,
        })
    }
}

enum Event {
    Stop(String),
    Connected(io::Result<TcpStream>),
    Inbound(TcpStream),
    Read(io::Result<usize>),
    PendingRead(io::Result<usize>),
    Timer(fsm::Timer),
    RoutesChanged(bool),
    BfdChanged,
}

struct Driver {
    config: SessionConfig,
    fsm: Fsm,
    routes: watch::Receiver<RouteSet>,
    routes_closed: bool,
    conn: Option<Connection>,
    connecting: Option<Connecting>,
    /// Connections the peer opened, from the listener.
    inbound: mpsc::Receiver<TcpStream>,
    /// The peer's connection while ours is in OpenSent: held until its OPEN says who wins.
    pending: Option<Connection>,
    established: Option<Established>,
    /// What the peer holds from us (Established only).
    advertised: RouteSet,
    last_down: Option<Down>,
    state_tx: watch::Sender<SessionState>,
    counters: Arc<Counters>,
    /// A write failed during the current batch of outputs.
    failed: bool,
    bfd: bfd::Guard,
    bmp: Option<super::bmp::Tap>,
}

impl Driver {
    async fn run(mut self, mut stop: oneshot::Receiver<String>) {
        self.apply(Input::ManualStart).await;
        loop {
            let deadline = self.fsm.next_deadline();
            let event = tokio::select! {
                message = &mut stop => Event::Stop(
                    message.unwrap_or_else(|_| "session handle dropped".to_owned()),
                ),
                result = maybe(self.connecting.as_mut()) => Event::Connected(result),
                result = read_some(self.conn.as_mut()) => Event::Read(result),
                Some(stream) = self.inbound.recv() => Event::Inbound(stream),
                result = read_some(self.pending.as_mut()) => Event::PendingRead(result),
                timer = sleep_until(deadline) => Event::Timer(timer),
                changed = self.routes.changed(), if !self.routes_closed => {
                    Event::RoutesChanged(changed.is_ok())
                }
                () = self.bfd.changed() => Event::BfdChanged,
            };
            match event {
                Event::Stop(message) => {
                    self.apply(Input::ManualStop { message }).await;
                    self.conn = None;
                    self.connecting = None;
                    self.bfd.shutdown().await;
                    return;
                }
                Event::Connected(result) => {
                    self.connecting = None;
                    match result.and_then(|stream| self.attach(stream)) {
                        Ok(()) => self.apply(Input::TcpConnectionConfirmed).await,
                        Err(e) => {
                            debug!(error = %e, "connect failed");
                            self.apply(Input::TcpConnectionFails).await;
                        }
                    }
                }
                Event::Read(Ok(0)) => {
                    debug!("peer closed the connection");
                    self.conn = None;
                    self.apply(Input::TcpConnectionFails).await;
                }
                Event::Inbound(stream) => self.inbound(stream).await,
                Event::PendingRead(result) => self.pending_read(result).await,
                Event::Read(Ok(_)) => self.process_frames().await,
                Event::Read(Err(e)) => {
                    debug!(error = %e, "read failed");
                    self.conn = None;
                    self.apply(Input::TcpConnectionFails).await;
                }
                Event::Timer(timer) => self.apply(Input::TimerExpired(timer)).await,
                Event::BfdChanged => {
                    if self.bfd.take_failure() {
                        self.counters.bfd_downs.fetch_add(1, Ordering::Relaxed);
                        self.apply(Input::BfdDown).await;
                    }
                    self.publish();
                }
                Event::RoutesChanged(open) => {
                    self.routes_closed = !open;
                    if open && self.established.is_some() {
                        self.sync().await;
                        self.after_writes().await;
                    }
                }
            }
            self.settle_pending().await;
        }
    }

    /// Feeds `input` to the FSM and carries out what it says, then any failure it causes.
    async fn apply(&mut self, input: Input) {
        let mut next = Some(input);
        while let Some(input) = next.take() {
            let now = tokio::time::Instant::now().into_std();
            for output in self.fsm.handle(input, now) {
                self.execute(output).await;
            }
            if std::mem::take(&mut self.failed) && self.fsm.state() != State::Idle {
                next = Some(Input::TcpConnectionFails);
            }
            self.publish();
        }
    }

    /// Feeds a write failure found outside [`Driver::apply`].
    async fn after_writes(&mut self) {
        if std::mem::take(&mut self.failed) {
            self.apply(Input::TcpConnectionFails).await;
        }
        self.publish();
    }

    async fn execute(&mut self, output: Output) {
        match output {
            Output::Connect => self.connecting = Some(Box::pin(connect(self.config.clone()))),
            Output::Send(message) => self.send(&message).await,
            Output::Close => {
                self.conn = None;
                self.connecting = None;
                self.established = None;
                self.forget_advertised();
            }
            // The FSM keeps its own deadlines; `run` sleeps until the next one.
            Output::ArmTimer { .. } | Output::CancelTimer(_) => {}
            Output::Established(negotiated) => {
                self.counters.established.fetch_add(1, Ordering::Relaxed);
                let local = self.conn.as_ref().map(|c| c.local);
                // The BGPPeer-named line at info is the speaker's (decide_bgp).
                debug!(
                    peer_asn = negotiated.peer_asn,
                    peer_router_id = %negotiated.peer_router_id,
                    hold_time = ?negotiated.hold_time,
                    families = ?negotiated.families,
                    local = ?local,
                    "BGP session established"
                );
                if let (Some(tcp), Some(conn)) = (negotiated.tcp_keepalive, &self.conn)
                    && let Err(e) = socket::set_tcp_keepalive(conn.write.as_ref(), tcp)
                {
                    warn!(error = %e, "cannot set TCP keepalive on a session without hold time; a silently rebooted router will go unnoticed");
                }
                if let (Some(profile), Some(local)) = (&self.config.bfd, local) {
                    let multihop = self.config.bfd_multihop();
                    let interface = self.config.interface.as_deref();
                    self.bfd.attach(
                        profile,
                        self.config.peer.ip(),
                        local.ip(),
                        multihop,
                        interface,
                    );
                }
                let (ipv4_next_hop, ipv6_next_hop) = self.next_hops(local.map(|l| l.ip()));
                let link_local = match local.map(|l| l.ip()) {
                    Some(IpAddr::V6(a)) if a.is_unicast_link_local() => Some(a),
                    _ => None,
                };
                self.established = Some(Established {
                    negotiated,
                    ipv4_next_hop,
                    ipv6_next_hop,
                    link_local,
                });
                self.forget_advertised();
                self.monitor_established();
                self.sync().await;
                if let Some(est) = &self.established {
                    let families: Vec<Family> = est.negotiated.families.iter().collect();
                    for family in families {
                        self.send(&Message::Update(Update::end_of_rib(family)))
                            .await;
                    }
                    self.monitor_commit(false, true);
                }
            }
            Output::Down(down) => {
                if down.was_established() {
                    debug!(reason = %down.reason, "BGP session down");
                } else {
                    debug!(from = %down.from, reason = %down.reason, "BGP attempt failed");
                }
                self.established = None;
                self.forget_advertised();
                self.monitor_down(&down);
                self.last_down = Some(down);
            }
            Output::UpdateReceived { update, looped } => {
                trace!(
                    announced = update.announced().count(),
                    withdrawn = update.withdrawals().count(),
                    looped,
                    "ignoring inbound UPDATE"
                );
            }
            Output::RouteRefreshRequested(family) => {
                debug!(%family, "route refresh requested");
                let resend: RouteSet = self
                    .advertised
                    .iter()
                    .filter(|(p, _)| Family::of(p) == family)
                    .map(|(p, a)| (*p, a.clone()))
                    .collect();
                for update in self.announcements(&resend) {
                    self.send(&Message::Update(update)).await;
                }
                self.monitor_commit(false, false);
            }
        }
    }

    fn attach(&mut self, stream: TcpStream) -> io::Result<()> {
        self.conn = Some(Connection::new(stream, false)?);
        Ok(())
    }

    /// Cuts whole messages off the read buffer and feeds them to the FSM one at a time: the
    /// OPEN changes how the messages after it decode.
    async fn process_frames(&mut self) {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return;
            };
            let frame = match frame_length(&conn.buf) {
                Ok(Some(len)) if conn.buf.len() >= len => {
                    conn.buf.drain(..len).collect::<Vec<u8>>()
                }
                Ok(_) => return,
                Err(e) => {
                    conn.buf.clear();
                    self.apply(Input::DecodeError(e)).await;
                    return;
                }
            };
            let input = match Message::decode(&frame, &self.fsm.session_context()) {
                Ok(message) => {
                    self.counters.received[Counters::index(message.kind())]
                        .fetch_add(1, Ordering::Relaxed);
                    trace!(kind = message.kind().label(), "received");
                    self.monitor_received(&message, &frame);
                    Input::Received(message)
                }
                Err(e) => {
                    debug!(error = %e, "undecodable message");
                    Input::DecodeError(e)
                }
            };
            self.apply(input).await;
        }
    }

    /// Writes one message; a failure drops the connection and is reported to the FSM once the
    /// current outputs are done.
    async fn send(&mut self, message: &Message) {
        let ctx = self
            .established
            .as_ref()
            .map(|e| e.negotiated.context())
            .unwrap_or_else(|| self.fsm.session_context());
        let bytes = match message.encode(&ctx) {
            Ok(bytes) => bytes,
            Err(e) => {
                warn!(error = %e, kind = message.kind().label(), "cannot encode message");
                return;
            }
        };
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        // A peer that stops reading must not stall this task (and with it the timers and
        // the route updates): a write that cannot finish within the negotiated hold time (or
        // WRITE_TIMEOUT without one) fails the connection.
        let limit = self
            .established
            .as_ref()
            .map(|e| e.negotiated.hold_time)
            .filter(|h| !h.is_zero())
            .unwrap_or(WRITE_TIMEOUT);
        match tokio::time::timeout(limit, conn.write.write_all(&bytes)).await {
            Ok(Ok(())) => {
                self.counters.sent[Counters::index(message.kind())].fetch_add(1, Ordering::Relaxed);
                trace!(kind = message.kind().label(), "sent");
                self.monitor_sent(message, &bytes);
            }
            Ok(Err(e)) => {
                debug!(error = %e, "write failed");
                self.conn = None;
                self.failed = true;
            }
            Err(_) => {
                warn!(limit = ?limit, "the peer stopped reading; dropping the connection");
                self.conn = None;
                self.failed = true;
            }
        }
    }

    /// Brings the peer from what it holds to the desired set: withdraws what went away,
    /// announces what is new or changed.
    async fn sync(&mut self) {
        let Some(est) = self.established.clone() else {
            return;
        };
        let desired = self.routes.borrow_and_update().clone();
        let mut skipped = Vec::new();
        let desired: RouteSet = desired
            .into_iter()
            .filter(|(prefix, _)| {
                let ok = sendable(&est, prefix);
                if !ok {
                    skipped.push(*prefix);
                }
                ok
            })
            .collect();
        if !skipped.is_empty() {
            warn!(
                count = skipped.len(),
                first = %skipped[0],
                "not advertising these prefixes: the peer did not negotiate their address family, or this node has no address of that family for the next hop (set dualStackAddressFamily on the BGPPeer, or give the node such an address)"
            );
        }
        let withdrawn: Vec<IpNet> = self
            .advertised
            .keys()
            .filter(|p| !desired.contains_key(p))
            .copied()
            .collect();
        let changed: RouteSet = desired
            .iter()
            .filter(|(p, a)| self.advertised.get(p) != Some(a))
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        if withdrawn.is_empty() && changed.is_empty() {
            return;
        }
        debug!(
            announce = changed.len(),
            withdraw = withdrawn.len(),
            "updating peer"
        );
        let ctx = est.negotiated.context();
        let mut updates = UpdateBuilder::new(&ctx).withdraw(withdrawn);
        updates.extend(self.announcements(&changed));
        for update in updates {
            self.send(&Message::Update(update)).await;
            if self.conn.is_none() {
                return;
            }
        }
        self.advertised = desired;
        self.monitor_commit(true, false);
        self.counters
            .prefixes_advertised
            .store(self.advertised.len() as u64, Ordering::Relaxed);
    }

    /// The peer holds nothing from us (the session is gone, or starts over).
    fn forget_advertised(&mut self) {
        self.advertised.clear();
        self.counters
            .prefixes_advertised
            .store(0, Ordering::Relaxed);
    }

    /// UPDATEs announcing `routes` on the established session.
    fn announcements(&self, routes: &RouteSet) -> Vec<Update> {
        match &self.established {
            Some(est) => adj_rib_out::announcements(est, self.config.fsm.local_asn, routes),
            None => Vec::new(),
        }
    }

    /// The next hops for each family: the local address for its own family, configured or
    /// found on the same interface for the other. An unnumbered session takes no IPv4 next
    /// hop from its interface: the router has no route to it; IPv4 goes with IPv6 next hops.
    fn next_hops(&self, local: Option<IpAddr>) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
        let (mut v4, mut v6) = match local {
            Some(IpAddr::V4(a)) => (Some(a), None),
            Some(IpAddr::V6(a)) if !a.is_unicast_link_local() => (None, Some(a)),
            _ => (None, None),
        };
        if self.config.ipv4_next_hop.is_some() {
            v4 = self.config.ipv4_next_hop;
        }
        if self.config.ipv6_next_hop.is_some() {
            v6 = self.config.ipv6_next_hop;
        }
        if let (Some(local), true) = (local, v4.is_none() || v6.is_none()) {
            let (if_v4, if_v6) = interface_addresses(local);
            if self.config.interface.is_none() {
                v4 = v4.or(if_v4);
            }
            v6 = v6.or(if_v6);
        }
        (v4, v6)
    }

    fn publish(&self) {
        let next = SessionState {
            state: self.fsm.state(),
            last_down: self.last_down.clone(),
            negotiated: self.established.as_ref().map(|e| e.negotiated.clone()),
            local_address: self.conn.as_ref().map(|c| c.local),
            advertised: self.advertised.len(),
            bfd: self.bfd.status(),
        };
        self.state_tx.send_if_modified(|current| {
            if *current == next {
                false
            } else {
                *current = next;
                true
            }
        });
    }
}

#[cfg(test)]
mod tests;
