//! One interface's responder: the I/O shell around its [`Table`]. It reads ARP and NDP frames
//! from the interface's raw sockets, feeds them, the desired IPs and the clock to the table, and
//! carries out what the table asks (send, join, leave, report). It ends when it has nothing left
//! to answer and nothing is desired, or when the announcer drops its desired-IPs channel.

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, trace, warn};

use super::Conflict;
use super::frame::NdpFrame;
use super::metrics::{L2Labels, L2Metrics, Protocol};
use super::table::{Action, Change, Sent, Table};
use crate::layer2::arp::{ArpFrame, Mac};
use crate::sys::{GroupMembership, PacketKind, PacketSocket, Received};

/// What the announcer wants of one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Desired {
    /// IPs to own here.
    pub ips: BTreeSet<IpAddr>,
    /// The MACs of all of this node's interfaces.
    pub own_macs: BTreeSet<Mac>,
    /// Graceful stop: announce nothing more, linger, end.
    pub draining: bool,
}

/// A responder's report of what it answers now.
#[derive(Debug)]
pub(super) struct Report {
    pub generation: u64,
    pub answering: BTreeSet<IpAddr>,
}

/// Where a responder reports to.
#[derive(Debug, Clone)]
pub(super) struct Outlets {
    pub metrics: Arc<L2Metrics>,
    pub conflicts: mpsc::Sender<Conflict>,
    pub reports: mpsc::UnboundedSender<Report>,
}

/// The sockets of one interface.
#[derive(Debug)]
pub(super) struct Sockets {
    pub arp: Option<PacketSocket>,
    pub ndp: Option<PacketSocket>,
    pub groups: Option<GroupMembership>,
}

impl Sockets {
    /// Opens the sockets for the families the interface answers.
    pub fn open(ifindex: u32, arp: bool, ndp: bool) -> io::Result<Self> {
        Ok(Self {
            arp: arp.then(|| PacketSocket::arp(ifindex)).transpose()?,
            ndp: ndp.then(|| PacketSocket::ndp(ifindex)).transpose()?,
            groups: ndp.then(|| GroupMembership::new(ifindex)).transpose()?,
        })
    }
}

/// Pause after a socket error, so a persistent one does not spin.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Receive buffer: any frame of a standard MTU (NDP frames are small).
const BUFFER: usize = 2048;

#[derive(Debug)]
pub(super) struct Responder {
    pub name: String,
    pub mac: Mac,
    pub generation: u64,
    pub sockets: Sockets,
    pub table: Table,
    pub desired: watch::Receiver<Desired>,
    pub outlets: Outlets,
}

enum Event {
    Arp(io::Result<Received>),
    Ndp(io::Result<Received>),
    Desired,
    Tick,
}

async fn recv(socket: Option<&PacketSocket>, buf: &mut [u8]) -> io::Result<Received> {
    match socket {
        Some(socket) => socket.recv(buf).await,
        None => std::future::pending().await,
    }
}

impl Responder {
    pub async fn run(mut self) {
        self.outlets.metrics.init_interface(&self.name);
        let mut arp_buf = vec![0u8; BUFFER];
        let mut ndp_buf = vec![0u8; BUFFER];
        let mut published = BTreeSet::new();
        self.apply_desired().await;
        loop {
            self.publish(&mut published);
            if self.table.is_empty() && self.desired.borrow().ips.is_empty() {
                debug!(interface = %self.name, "nothing left to answer");
                return;
            }
            let deadline = self.table.next_deadline();
            let event = tokio::select! {
                r = recv(self.sockets.arp.as_ref(), &mut arp_buf) => Event::Arp(r),
                r = recv(self.sockets.ndp.as_ref(), &mut ndp_buf) => Event::Ndp(r),
                changed = self.desired.changed() => match changed {
                    Ok(()) => Event::Desired,
                    Err(_) => return,
                },
                () = ferrolb_runtime::sleep_until(deadline) => Event::Tick,
            };
            let now = Instant::now();
            match event {
                Event::Arp(received) => {
                    if let Some(len) = self.accept(received, Protocol::Arp).await {
                        self.on_arp(&arp_buf[..len], now).await;
                    }
                }
                Event::Ndp(received) => {
                    if let Some(len) = self.accept(received, Protocol::Ndp).await {
                        self.on_ndp(&ndp_buf[..len], now).await;
                    }
                }
                Event::Desired => self.apply_desired().await,
                Event::Tick => {
                    let actions = self.table.tick(now);
                    self.execute(actions).await;
                }
            }
        }
    }

    async fn apply_desired(&mut self) {
        let desired = self.desired.borrow_and_update().clone();
        let actions = self.table.set_desired(
            &desired.ips,
            &desired.own_macs,
            desired.draining,
            Instant::now(),
        );
        self.execute(actions).await;
    }

    /// The length of a received frame worth handling: addressed to this interface (its MAC,
    /// broadcast or multicast). Frames this host sent and frames for other hosts (flooded
    /// unicast, or tagged for a VLAN this host has no device for) are not.
    async fn accept(&self, received: io::Result<Received>, protocol: Protocol) -> Option<usize> {
        match received {
            Ok(Received {
                len,
                kind: PacketKind::Host | PacketKind::Broadcast | PacketKind::Multicast,
            }) => Some(len),
            Ok(_) => None,
            Err(e) => {
                warn!(interface = %self.name, protocol = protocol.as_str(), error = %e, "receive failed");
                tokio::time::sleep(ERROR_BACKOFF).await;
                None
            }
        }
    }

    async fn on_arp(&mut self, bytes: &[u8], now: Instant) {
        match ArpFrame::decode(bytes) {
            Ok(frame) => {
                trace!(interface = %self.name, ?frame, "arp in");
                let actions = self.table.on_arp(&frame, now);
                self.execute(actions).await;
            }
            Err(e) => self.malformed(Protocol::Arp, &e),
        }
    }

    async fn on_ndp(&mut self, bytes: &[u8], now: Instant) {
        match NdpFrame::decode(bytes) {
            Ok(Some(frame)) => {
                trace!(interface = %self.name, ?frame, "ndp in");
                let actions = self.table.on_ndp(&frame, now);
                self.execute(actions).await;
            }
            Ok(None) => {}
            Err(e) => self.malformed(Protocol::Ndp, &e),
        }
    }

    fn malformed(&self, protocol: Protocol, error: &dyn std::error::Error) {
        trace!(interface = %self.name, protocol = protocol.as_str(), %error, "malformed frame dropped");
        self.count(&self.outlets.metrics.malformed, protocol);
    }

    fn count(
        &self,
        family: &prometheus_client::metrics::family::Family<
            L2Labels,
            prometheus_client::metrics::counter::Counter,
        >,
        protocol: Protocol,
    ) {
        family
            .get_or_create(&L2Labels::new(&self.name, protocol))
            .inc();
    }

    async fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Arp { frame, kind } => {
                    trace!(interface = %self.name, ?frame, ?kind, "arp out");
                    let sent = send(self.sockets.arp.as_ref(), &frame.encode()).await;
                    self.sent(sent, Protocol::Arp, kind);
                }
                Action::Ndp { frame, kind } => {
                    trace!(interface = %self.name, ?frame, ?kind, "ndp out");
                    let sent = send(self.sockets.ndp.as_ref(), &frame.encode()).await;
                    self.sent(sent, Protocol::Ndp, kind);
                }
                Action::Join(group) => {
                    if let Some(Err(e)) = self.sockets.groups.as_ref().map(|g| g.join(group)) {
                        warn!(interface = %self.name, %group, error = %e, "joining the solicited-node group failed");
                    }
                }
                Action::Leave(group) => {
                    if let Some(Err(e)) = self.sockets.groups.as_ref().map(|g| g.leave(group)) {
                        debug!(interface = %self.name, %group, error = %e, "leaving the solicited-node group failed");
                    }
                }
                Action::Request(protocol) => self.count(&self.outlets.metrics.requests, protocol),
                Action::Conflict {
                    ip,
                    theirs,
                    we_lose,
                    protocol,
                } => self.conflict(ip, theirs, we_lose, protocol),
                Action::Change(ip, change) => self.log_change(ip, change),
            }
        }
    }

    fn sent(&self, sent: io::Result<()>, protocol: Protocol, kind: Sent) {
        let metrics = &self.outlets.metrics;
        match (sent, kind) {
            (Ok(()), Sent::Reply) => self.count(&metrics.replies, protocol),
            (Ok(()), Sent::Gratuitous) => self.count(&metrics.gratuitous, protocol),
            (Ok(()), Sent::Probe) => self.count(&metrics.probes, protocol),
            (Err(e), _) => {
                debug!(interface = %self.name, protocol = protocol.as_str(), error = %e, "send failed");
            }
        }
    }

    fn conflict(&self, ip: IpAddr, theirs: Mac, we_lose: bool, protocol: Protocol) {
        self.count(&self.outlets.metrics.conflicts, protocol);
        // Logged at warn, with the node and the Event, where the report is received.
        debug!(
            interface = %self.name,
            %ip,
            ours = %self.mac,
            %theirs,
            we_lose,
            "another MAC claims an IP this node announces"
        );
        let conflict = Conflict {
            ip,
            interface: self.name.clone(),
            ours: self.mac,
            theirs,
            we_lose,
        };
        if self.outlets.conflicts.try_send(conflict).is_err() {
            debug!(interface = %self.name, %ip, "conflict report dropped: channel full or closed");
        }
    }

    fn log_change(&self, ip: IpAddr, change: Change) {
        let interface = &self.name;
        match change {
            Change::Took => info!(%interface, %ip, "announcing"),
            Change::Reclaimed => info!(%interface, %ip, "announcing again (was lingering)"),
            Change::Resumed => {
                info!(%interface, %ip, "announcing again: nobody answered the probe after the hold-down");
            }
            Change::Lingering => {
                info!(%interface, %ip, "released; answering until a successor claims it or the linger ends");
            }
            Change::HandedOver(successor) => {
                info!(%interface, %ip, %successor, "stopped answering: the successor claimed it");
            }
            Change::LingerExpired => {
                info!(%interface, %ip, "stopped answering: the linger ended");
            }
            Change::HeldDown(winner) => {
                warn!(%interface, %ip, %winner, "stopped answering: another host with a lower MAC claims this IP too; probing again after the hold-down (see the SplitBrain Event on the Service)");
            }
            Change::Dropped => info!(%interface, %ip, "stopped answering"),
        }
    }

    fn publish(&self, published: &mut BTreeSet<IpAddr>) {
        let answering = self.table.answering();
        if answering != *published {
            published.clone_from(&answering);
            let report = Report {
                generation: self.generation,
                answering,
            };
            // The announcer holds the receiver as long as any responder runs.
            let _ = self.outlets.reports.send(report);
        }
    }
}

async fn send(socket: Option<&PacketSocket>, frame: &[u8]) -> io::Result<()> {
    match socket {
        Some(socket) => socket.send(frame).await,
        None => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the interface does not run this protocol",
        )),
    }
}
