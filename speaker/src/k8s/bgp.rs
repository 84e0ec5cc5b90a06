//! The speaker's BGP sessions: one [`Session`] per BGPPeer that selects this node, kept in line
//! with the configuration, and fed the routes the plan ([`crate::bgp::advertise`]) gives it.
//!
//! - A peer whose session parameters change gets a new session (the old one closes with
//!   Cease/Administrative Reset); a route change only updates the session's desired set, and
//!   the session sends the difference.
//! - Session changes come back as [`PeerEvent`]s, which the decision loop turns into logs,
//!   Events on the BGPPeer and metrics.
//! - The router ID is the peer's `routerID`, else the session's IPv4 source address, else this
//!   node's first IPv4 InternalIP, else derived from the node's name (MetalLB hashes the name
//!   with CRC32; we take SHA-256, so the fallback differs).
//! - A peer with `vrf` gets its session (and the routers' connections) on sockets bound to the
//!   VRF device, so the VRF's routing table carries it; a node without the device, or BFD in
//!   a VRF, is reported on the BGPPeer.
//! - An unnumbered peer (`interface`) is reached at the link-local address found on the link
//!   ([`crate::bgp::unnumbered`]), with both families and IPv4 routes carried with an IPv6
//!   next hop (RFC 8950); until the link shows one neighbour, the BGPPeer says what it waits
//!   for. A new address found there restarts the session.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrolb_config::{
    BfdProfile, Config, GracefulShutdown, NodeName, Peer, PeerAsn, PeerName, PeerTarget,
};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use crate::bgp::bmp::{self, Monitor};
use crate::bgp::fsm::{self, Backoff, GracefulRestartConfig};
use crate::bgp::listener::Registration;

mod links;
mod listeners;
use crate::bgp::packet::Families;
use crate::bgp::session::Counters;
use crate::bgp::unnumbered::Found;
use crate::bgp::{RouteSet, Session, SessionConfig, SessionHandle, SessionState};
use links::Links;
use listeners::Listeners;

/// Seconds a router keeps our routes while we restart, when graceful restart is on (RFC 4724
/// §3; FRR's and MetalLB-FRR's default).
pub const RESTART_TIME: u16 = 120;

/// A change of one peer's session, from the session's task.
#[derive(Debug)]
pub(crate) struct PeerEvent {
    pub peer: PeerName,
    pub generation: u64,
    pub state: SessionState,
}

/// What the metrics read of each session.
#[derive(Debug, Default)]
pub struct PeerStats {
    /// The peer's address and port.
    pub address: String,
    /// The session's counters (reset when the session is replaced).
    pub counters: Arc<Counters>,
    /// The session is Established.
    pub up: bool,
    /// The BFD session is Up (`None`: the peer has no BFD profile, or BFD has not started).
    pub bfd_up: Option<bool>,
    /// Times the session left Established.
    pub flaps: u64,
}

/// The sessions' statistics, shared with the metrics collector.
pub type SharedStats = Arc<Mutex<BTreeMap<String, PeerStats>>>;

struct Peering {
    config: SessionConfig,
    /// What to do before the routes go away on purpose (RFC 8326), if anything.
    shutdown: Option<GracefulShutdown>,
    routes: watch::Sender<RouteSet>,
    handle: SessionHandle,
    generation: u64,
    /// The last state seen, to report transitions once.
    last: Option<SessionState>,
    /// Connections from the peer's address go to this session while it is held.
    inbound: Option<Registration>,
}

/// The sessions of this node.
pub(crate) struct Sessions {
    node: NodeName,
    peerings: BTreeMap<PeerName, Peering>,
    /// Peers that cannot run here, with the reason last reported.
    refused: BTreeMap<PeerName, String>,
    events: mpsc::UnboundedSender<PeerEvent>,
    generation: u64,
    stats: SharedStats,
    /// The first session to each peer since this process started sets the Restart State bit.
    restarted: std::collections::BTreeSet<PeerName>,
    /// Routers' connections, per VRF, while this node has peers there.
    listeners: Listeners,
    /// The unnumbered peers' links.
    links: Links,
    /// BMP export, with a task per collector, when collectors are given.
    bmp: Option<(Arc<Monitor>, Vec<tokio::task::JoinHandle<()>>)>,
}

/// What changed in the set of sessions, for the decision loop to report.
#[derive(Debug, Default)]
pub(crate) struct Reconciled {
    /// Peers that cannot run on this node, newly or with a new reason.
    pub refused: Vec<(PeerName, String)>,
}

impl Sessions {
    pub(crate) fn new(
        node: NodeName,
        events: mpsc::UnboundedSender<PeerEvent>,
        stats: SharedStats,
        listen_port: u16,
    ) -> Self {
        Self {
            listeners: Listeners::new(listen_port),
            links: Links::new(),
            node,
            peerings: BTreeMap::new(),
            refused: BTreeMap::new(),
            events,
            generation: 0,
            stats,
            restarted: Default::default(),
            bmp: None,
        }
    }

    /// Exports the sessions to each BMP collector of `collectors` (`host:port`).
    pub(crate) fn with_bmp(mut self, collectors: &[String]) -> Self {
        if collectors.is_empty() {
            return self;
        }
        let monitor = Monitor::new(self.node.as_str());
        let exports = collectors
            .iter()
            .map(|c| tokio::spawn(bmp::export(Arc::clone(&monitor), c.clone())))
            .collect();
        self.bmp = Some((monitor, exports));
        self
    }

    /// Makes the sessions match the peers of `config` that select this node
    /// (`routes` has a key for each), and hands each its routes.
    pub(crate) fn reconcile(
        &mut self,
        config: &Config,
        routes: &BTreeMap<PeerName, RouteSet>,
        node_ips: &[IpAddr],
    ) -> Reconciled {
        // Peers that cannot run, found afresh each time; only new reasons are reported.
        let mut refused: BTreeMap<PeerName, String> = BTreeMap::new();
        let mut desired: BTreeMap<&PeerName, SessionConfig> = BTreeMap::new();
        let peers = || routes.keys().filter_map(|name| config.peers.get(name));
        self.links.reconcile(
            peers()
                .filter_map(|p| match &p.target {
                    PeerTarget::Interface(name) => Some(name.clone()),
                    PeerTarget::Address(_) => None,
                })
                .collect(),
        );
        let link = |interface: &str| self.links.found(interface);
        for name in routes.keys() {
            let Some(peer) = config.peers.get(name) else {
                continue;
            };
            if let PeerTarget::Interface(interface) = &peer.target
                && self.links.starting(interface)
            {
                // Its link is still looking; the wait is reported if it lasts.
                continue;
            }
            match session_config(peer, &config.bfd_profiles, &self.node, node_ips, &link) {
                Ok(cfg) => {
                    desired.insert(name, cfg);
                }
                Err(why) => {
                    refused.insert(name.clone(), why);
                }
            }
        }

        let stale: Vec<PeerName> = self
            .peerings
            .iter()
            .filter(|(name, p)| {
                desired
                    .get(name)
                    .is_none_or(|want| !same_session(want, &p.config))
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(old) = self.peerings.remove(&name) {
                let why = if desired.contains_key(&name) {
                    "BGPPeer changed"
                } else {
                    "BGPPeer removed or no longer selects this node"
                };
                tracing::info!(peer = %name, reason = why, "closing BGP session");
                self.stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(name.as_str());
                tokio::spawn(async move { old.handle.shutdown(why).await });
            }
        }
        if self
            .listeners
            .reconcile(desired.values().map(|c| c.vrf.clone()).collect())
        {
            // Sessions started while their VRF's port could not be opened.
            for p in self.peerings.values_mut() {
                if p.inbound.is_none() {
                    p.inbound = self.listeners.register(&p.config, &p.handle).ok();
                }
            }
        }
        for (name, mut cfg) in desired {
            let want = routes.get(name).cloned().unwrap_or_default();
            let shutdown = config
                .peers
                .get(name)
                .and_then(|p| p.graceful_shutdown.clone());
            if let Some(p) = self.peerings.get_mut(name) {
                p.shutdown = shutdown;
                p.routes.send_if_modified(|current| {
                    let changed = *current != want;
                    *current = want;
                    changed
                });
                continue;
            }
            if let (true, Some(why)) = (cfg.fsm.passive, self.listeners.error(&cfg.vrf)) {
                refused.insert(name.clone(), format!("the peer is passive, but {why}"));
                continue;
            }
            // The first session to the peer since this process started sets Restart State
            // (RFC 4724 §4.1); the peer counts as served once a session is kept.
            if let Some(gr) = cfg.fsm.graceful_restart.as_mut() {
                gr.restarting = !self.restarted.contains(name);
            }
            let (routes_tx, routes_rx) = watch::channel(want);
            let monitor = self.bmp.as_ref().map(|(m, _)| m);
            match Session::spawn_monitored(cfg.clone(), routes_rx, monitor) {
                Ok(handle) => {
                    let inbound = match self.listeners.register(&cfg, &handle) {
                        Ok(registration) => Some(registration),
                        Err(why) if cfg.fsm.passive => {
                            // It would wait forever for a connection it cannot be given.
                            let why = format!("the peer is passive, but {why}");
                            tokio::spawn(async move { handle.shutdown("cannot listen").await });
                            refused.insert(name.clone(), why);
                            continue;
                        }
                        Err(_) => None,
                    };
                    self.restarted.insert(name.clone());
                    self.generation += 1;
                    tracing::info!(peer = %name, address = %cfg.peer, "starting BGP session");
                    self.stats.lock().unwrap_or_else(|e| e.into_inner()).insert(
                        name.to_string(),
                        PeerStats {
                            address: cfg.peer.to_string(),
                            counters: Arc::clone(&handle.counters),
                            ..PeerStats::default()
                        },
                    );
                    forward_states(
                        name.clone(),
                        self.generation,
                        handle.state.clone(),
                        self.events.clone(),
                    );
                    self.peerings.insert(
                        name.clone(),
                        Peering {
                            config: cfg,
                            shutdown,
                            routes: routes_tx,
                            handle,
                            generation: self.generation,
                            last: None,
                            inbound,
                        },
                    );
                }
                Err(e) => {
                    refused.insert(name.clone(), format!("the session cannot start: {e}"));
                }
            }
        }
        let out = Reconciled {
            refused: refused
                .iter()
                .filter(|(name, why)| self.refused.get(*name) != Some(*why))
                .map(|(name, why)| (name.clone(), why.clone()))
                .collect(),
        };
        self.refused = refused;
        out
    }

    /// Records a session's new state; returns the previous one when the event is current.
    pub(crate) fn observe(&mut self, event: &PeerEvent) -> Option<Option<SessionState>> {
        let peering = self.peerings.get_mut(&event.peer)?;
        if peering.generation != event.generation {
            return None;
        }
        let before = peering.last.replace(event.state.clone());
        let was_up = before.as_ref().is_some_and(SessionState::is_established);
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = stats.get_mut(event.peer.as_str()) {
            s.up = event.state.is_established();
            s.bfd_up = event.state.bfd.as_ref().map(crate::bfd::BfdStatus::is_up);
            if was_up && !s.up {
                s.flaps += 1;
            }
        }
        Some(before)
    }

    /// Resolves when an unnumbered link has found something new: reconcile again.
    pub(crate) async fn links_changed(&self) {
        self.links.changed().await;
    }

    /// Peers that cannot run on this node, and why.
    pub(crate) fn refused(&self) -> impl Iterator<Item = (&PeerName, &String)> {
        self.refused.iter()
    }

    /// The peer's address, for messages.
    pub(crate) fn address(&self, peer: &PeerName) -> Option<SocketAddr> {
        self.peerings.get(peer).map(|p| p.config.peer)
    }

    /// Ends every session. An established one whose peer has graceful shutdown on first gets
    /// its routes again with the GRACEFUL_SHUTDOWN community (RFC 8326), so the router moves
    /// their traffic to other nodes while this one still serves it; after the peer's drain time
    /// they are withdrawn, and then the session closes with Cease/Administrative Shutdown.
    pub(crate) async fn stop(self, message: &str) {
        let closing = self
            .peerings
            .into_iter()
            .map(|(name, p)| drain_and_close(name, p, message));
        futures::future::join_all(closing).await;
        if let Some((monitor, exports)) = self.bmp {
            // The sessions' Peer Downs are queued; the Termination goes after them.
            monitor.close();
            let aborts: Vec<_> = exports.iter().map(|e| e.abort_handle()).collect();
            let flushed = futures::future::join_all(exports);
            if tokio::time::timeout(BMP_FLUSH, flushed).await.is_err() {
                aborts.iter().for_each(tokio::task::AbortHandle::abort);
            }
        }
    }
}

/// How long the BMP collectors get to take the last messages when the speaker stops.
const BMP_FLUSH: Duration = Duration::from_secs(1);

/// How long a withdrawal may take to reach the peer before the session closes anyway.
const WITHDRAW_WAIT: Duration = Duration::from_secs(1);

async fn drain_and_close(name: PeerName, peering: Peering, message: &str) {
    let routes = peering.routes.borrow().clone();
    let mut state = peering.handle.state.clone();
    let up = state.borrow().is_established();
    if let Some(shutdown) = peering
        .shutdown
        .as_ref()
        .filter(|s| !s.drain_time.is_zero())
        && up
        && !routes.is_empty()
    {
        tracing::info!(
            peer = %name,
            routes = routes.len(),
            drain_secs = shutdown.drain_time.as_secs_f64(),
            "graceful shutdown: routes advertised again with GRACEFUL_SHUTDOWN (65535:0); withdrawing them after the drain time"
        );
        peering
            .routes
            .send_replace(crate::bgp::advertise::graceful_shutdown(&routes, shutdown));
        tokio::time::sleep(shutdown.drain_time).await;
        // Withdrawn explicitly: a router keeping routes across a Cease (graceful restart with
        // RFC 8538) would otherwise hold them as stale.
        peering.routes.send_replace(RouteSet::new());
        let withdrawn = tokio::time::timeout(
            WITHDRAW_WAIT,
            state.wait_for(|s| s.advertised == 0 || !s.is_established()),
        )
        .await;
        if withdrawn.is_err() {
            tracing::warn!(peer = %name, "the withdrawal was not confirmed in time; closing the session anyway");
        }
        tracing::info!(peer = %name, "graceful shutdown: routes withdrawn");
    }
    peering.handle.shutdown(message).await;
}

/// Sends every state of one session to the decision loop.
fn forward_states(
    peer: PeerName,
    generation: u64,
    mut state: watch::Receiver<SessionState>,
    events: mpsc::UnboundedSender<PeerEvent>,
) {
    tokio::spawn(async move {
        loop {
            let current = state.borrow_and_update().clone();
            let event = PeerEvent {
                peer: peer.clone(),
                generation,
                state: current,
            };
            if events.send(event).is_err() || state.changed().await.is_err() {
                return;
            }
        }
    });
}

/// Two configs that would run the same session (the Restart State bit aside).
fn same_session(a: &SessionConfig, b: &SessionConfig) -> bool {
    let strip = |c: &SessionConfig| {
        let mut c = c.clone();
        if let Some(gr) = c.fsm.graceful_restart.as_mut() {
            gr.restarting = false;
        }
        c
    };
    strip(a) == strip(b)
}

/// The session for `peer` from `node`, whose addresses are `node_ips`; the peer's BFD profile
/// comes from `profiles` (the configuration keeps only peers whose profile exists), and an
/// unnumbered peer's address from what `link` has found on its interface.
pub fn session_config(
    peer: &Peer,
    profiles: &BTreeMap<String, BfdProfile>,
    node: &NodeName,
    node_ips: &[IpAddr],
    link: &dyn Fn(&str) -> Found,
) -> Result<SessionConfig, String> {
    let (address, interface) = match &peer.target {
        PeerTarget::Address(ip) => (SocketAddr::new(*ip, peer.port), None),
        PeerTarget::Interface(name) => match link(name) {
            Found::Peer(mut at) => {
                at.set_port(peer.port);
                (SocketAddr::V6(at), Some(name.clone()))
            }
            other => {
                return Err(other
                    .waiting_reason(name)
                    .unwrap_or_else(|| format!("unnumbered: nothing found on {name:?}")));
            }
        },
    };
    if let Some(vrf) = &peer.vrf {
        if nix::net::if_::if_nametoindex(vrf.as_str()).is_err() {
            return Err(format!(
                "this node has no VRF device {vrf:?} (spec.vrf); create it, or select only nodes that have it"
            ));
        }
        if let Some(profile) = &peer.bfd_profile {
            return Err(format!(
                "BFD in a VRF (spec.vrf {vrf:?} with bfdProfile {profile:?}) is not supported yet"
            ));
        }
    }
    let router_id = peer
        .router_id
        .or(match peer.source_address {
            Some(IpAddr::V4(v4)) => Some(v4),
            _ => None,
        })
        .or_else(|| {
            node_ips.iter().find_map(|ip| match ip {
                IpAddr::V4(v4) if !v4.is_unspecified() => Some(*v4),
                _ => None,
            })
        })
        .unwrap_or_else(|| router_id_from_name(node));
    let peer_asn = match peer.peer_asn {
        PeerAsn::Fixed(asn) => fsm::PeerAsn::Exact(asn),
        PeerAsn::Internal => fsm::PeerAsn::Internal,
        PeerAsn::External => fsm::PeerAsn::External,
    };
    let mut fsm = fsm::Config::new(peer.local_asn.unwrap_or(peer.my_asn), peer_asn, router_id);
    fsm.hold_time = u16::try_from(peer.hold_time.as_secs()).unwrap_or(u16::MAX);
    fsm.keepalive_time = (!peer.keepalive_time.is_zero()).then_some(peer.keepalive_time);
    fsm.families = if peer.dual_stack_address_family || interface.is_some() {
        // An unnumbered link has no IPv4 transport: IPv4 goes with IPv6 next hops.
        Families::BOTH
    } else if address.is_ipv4() {
        Families::IPV4
    } else {
        Families::IPV6
    };
    if peer.graceful_restart {
        fsm.graceful_restart = Some(GracefulRestartConfig {
            restart_time: RESTART_TIME,
            restarting: false,
        });
    }
    if let Some(every) = peer.connect_time {
        let every = every.max(Duration::from_secs(1));
        fsm.backoff = Backoff {
            initial: every,
            max: every,
        };
    }
    // RFC 8950: the only way IPv4 routes can cross an unnumbered link.
    fsm.extended_next_hop = interface.is_some();
    let mut cfg = SessionConfig::new(fsm, address.ip());
    cfg.peer = address;
    cfg.interface = interface;
    cfg.source_address = peer.source_address;
    cfg.password = peer.password.clone();
    cfg.ebgp_multihop = peer.ebgp_multi_hop;
    cfg.ttl_security = peer.ttl_security;
    cfg.fsm.passive = peer.passive;
    cfg.vrf = peer.vrf.clone();
    cfg.bfd = peer
        .bfd_profile
        .as_ref()
        .and_then(|name| profiles.get(name))
        .cloned();
    Ok(cfg)
}

/// A non-zero router ID from the node's name.
fn router_id_from_name(node: &NodeName) -> Ipv4Addr {
    let digest = Sha256::digest(node.as_str().as_bytes());
    let id = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    Ipv4Addr::from(id.max(1))
}

#[cfg(test)]
mod tests;
