//! Unnumbered peering (`BGPPeer.interface`): finding the router at the other end of a link
//! that has no address but its IPv6 link-local one, and letting it find us.
//!
//! There is no address to configure, so each side learns the other's link-local address from
//! the link, as FRR's `neighbor eth0 interface` does:
//!
//! - **We advertise ourselves**: a Router Advertisement (RFC 4861 §4.2) with a router lifetime
//!   of 0 (so no host takes us for its default router) and our MAC in the source link-layer
//!   option, to all nodes, three times a second apart and then every [`RA_INTERVAL`] (FRR's
//!   interval for BGP unnumbered), and at once to a Router Solicitation. FRR learns its
//!   interface neighbour from these.
//! - **We listen and ask**: a Router Advertisement from the other end names its sender; an
//!   Echo Request to all nodes (ff02::1) is answered by every IPv6 host on the link (GoBGP and
//!   BIRD send no advertisements), and the answer names it too. Both are sent and read on a raw
//!   ICMPv6 socket bound to the interface; router discovery arriving with a hop limit below
//!   255 did not come from the link and is ignored.
//!
//! Unnumbered peering is for point-to-point links. [`Candidates`] keeps the neighbour it has
//! (a running session is never moved to another address while its own is still heard), prefers
//! a router that advertises over a host that only answers, and names none when two are equally
//! likely: which one the BGPPeer meant cannot be told.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::sys::Icmpv6Socket;

mod packet;
#[cfg(test)]
mod tests;

pub use packet::{Icmpv6, parse};

/// How often we advertise ourselves and ask the link once started (FRR's RA interval for BGP
/// unnumbered).
pub const RA_INTERVAL: Duration = Duration::from_secs(10);
/// The first advertisements and questions, after the one at start: quick, so a session starts
/// within seconds of the link coming up (RFC 4861 §6.2.4 allows three initial ones).
const FIRST_ROUNDS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(1),
    Duration::from_secs(2),
];
/// A neighbour not heard for this long may be replaced by another one that is.
pub const STALE: Duration = Duration::from_secs(3 * RA_INTERVAL.as_secs());
/// A neighbour not heard for this long is forgotten (unless it is the one we have).
const FORGET: Duration = Duration::from_secs(6 * RA_INTERVAL.as_secs());
/// How soon after one advertisement a solicitation may get another.
const SOLICITED_GAP: Duration = Duration::from_secs(1);
/// How long to wait before trying again when the interface cannot be used.
const RETRY: Duration = Duration::from_secs(5);
/// How long a new link may take to show its neighbour before the wait is worth reporting
/// (our first echo is usually answered within milliseconds).
pub const GRACE: Duration = Duration::from_secs(10);

/// What the link has shown of its other end so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Nothing heard yet.
    Nothing,
    /// The neighbour: its link-local address, with the interface as scope.
    Peer(SocketAddrV6),
    /// More than one neighbour, none more likely than the others.
    Ambiguous(Vec<Ipv6Addr>),
    /// The interface cannot be used (absent, no MAC, the socket refused).
    Unusable(String),
}

impl Found {
    /// Why no session can start yet, for the BGPPeer.
    pub fn waiting_reason(&self, interface: &str) -> Option<String> {
        match self {
            Found::Peer(_) => None,
            Found::Nothing => Some(format!(
                "unnumbered: no neighbour heard on {interface:?} yet (waiting for a router advertisement or an answer to our all-nodes echo)"
            )),
            Found::Ambiguous(many) => Some(format!(
                "unnumbered: more than one neighbour on {interface:?} ({}); unnumbered peering needs a point-to-point link",
                many.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Found::Unusable(why) => Some(format!("unnumbered: interface {interface:?}: {why}")),
        }
    }
}

/// One neighbour heard.
#[derive(Debug, Clone, Copy)]
struct Heard {
    last: Instant,
    /// It sent a router advertisement (not only an echo answer).
    router: bool,
}

/// The neighbours heard on one link and the one chosen.
#[derive(Debug, Default)]
pub struct Candidates {
    current: Option<Ipv6Addr>,
    heard: BTreeMap<Ipv6Addr, Heard>,
}

impl Candidates {
    /// `from` was heard at `now`; `router`: in a router advertisement.
    pub fn hear(&mut self, from: Ipv6Addr, router: bool, now: Instant) {
        let entry = self
            .heard
            .entry(from)
            .or_insert(Heard { last: now, router });
        entry.last = now;
        entry.router |= router;
    }

    /// The neighbour to peer with at `now`: the current one while it is heard, or while no
    /// other single neighbour is; else the only fresh router, else the only fresh host.
    pub fn choose(&mut self, now: Instant) -> Result<Option<Ipv6Addr>, Vec<Ipv6Addr>> {
        let current = self.current;
        self.heard
            .retain(|a, h| Some(*a) == current || now.duration_since(h.last) < FORGET);
        let fresh = |h: &Heard| now.duration_since(h.last) < STALE;
        if let Some(c) = current
            && self.heard.get(&c).is_some_and(fresh)
        {
            return Ok(Some(c));
        }
        let others: Vec<(Ipv6Addr, Heard)> = self
            .heard
            .iter()
            .filter(|(a, h)| Some(**a) != current && fresh(h))
            .map(|(a, h)| (*a, *h))
            .collect();
        let routers: Vec<Ipv6Addr> = others
            .iter()
            .filter(|(_, h)| h.router)
            .map(|p| p.0)
            .collect();
        let pool: Vec<Ipv6Addr> = if routers.is_empty() {
            others.iter().map(|p| p.0).collect()
        } else {
            routers
        };
        match pool.as_slice() {
            [only] => {
                self.current = Some(*only);
                Ok(Some(*only))
            }
            [] => Ok(current),
            _ if current.is_some() => Ok(current),
            many => Err(many.to_vec()),
        }
    }
}

/// Finds the neighbour on one interface until dropped.
#[derive(Debug)]
pub struct Link {
    found: watch::Receiver<Found>,
    started: Instant,
    task: tokio::task::JoinHandle<()>,
    grace: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Starts advertising on and listening to `interface`; `changed` is notified each time
    /// something new is found, and once when [`GRACE`] ends.
    pub fn start(interface: String, changed: Arc<Notify>) -> Self {
        let (tx, found) = watch::channel(Found::Nothing);
        let task = tokio::spawn(run(interface, tx, Arc::clone(&changed)));
        let grace = tokio::spawn(async move {
            tokio::time::sleep(GRACE).await;
            changed.notify_one();
        });
        Self {
            found,
            started: Instant::now(),
            task,
            grace,
        }
    }

    /// What has been found so far.
    pub fn found(&self) -> Found {
        self.found.borrow().clone()
    }

    /// Nothing found yet, and the link started less than [`GRACE`] ago: not worth reporting.
    pub fn starting(&self) -> bool {
        self.started.elapsed() < GRACE && *self.found.borrow() == Found::Nothing
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
        self.grace.abort();
    }
}

async fn run(interface: String, found: watch::Sender<Found>, changed: Arc<Notify>) {
    loop {
        let why = match serve(&interface, &found, &changed).await {
            Ok(never) => match never {},
            Err(e) => e.to_string(),
        };
        let unusable = Found::Unusable(why.clone());
        if *found.borrow() != unusable {
            tracing::warn!(%interface, error = %why, "unnumbered BGP: cannot use the interface; trying again");
        }
        // A session already running on this link keeps its address; only say why otherwise.
        let new = found.send_if_modified(|f| match f {
            Found::Peer(_) => false,
            other => {
                let new = *other != unusable;
                *other = unusable.clone();
                new
            }
        });
        if new {
            changed.notify_one();
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The interface's index, MAC and own addresses.
struct Interface {
    index: u32,
    mac: [u8; 6],
    own: Vec<Ipv6Addr>,
}

fn interface(name: &str) -> io::Result<Interface> {
    let index = crate::sys::ifindex(name)
        .map_err(|e| io::Error::new(e.kind(), format!("no interface {name:?} on this node")))?;
    let mut mac = None;
    let mut own = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs()?.filter(|i| i.interface_name == name) {
        let Some(addr) = ifa.address else { continue };
        if let Some(link) = addr.as_link_addr().and_then(|l| l.addr()) {
            mac = Some(link);
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            own.push(v6.ip());
        }
    }
    let mac = mac.ok_or_else(|| io::Error::other("the interface has no MAC address"))?;
    Ok(Interface { index, mac, own })
}

async fn serve(
    name: &str,
    found: &watch::Sender<Found>,
    changed: &Notify,
) -> io::Result<std::convert::Infallible> {
    let link = interface(name)?;
    let socket = Icmpv6Socket::bind(name, link.index, &packet::TYPES_HEARD)?;
    let echo_id = rand::random::<u16>();
    let advertisement = packet::router_advertisement(link.mac);
    socket
        .send_to(&packet::router_solicitation(link.mac), packet::ALL_ROUTERS)
        .await?;
    let mut candidates = Candidates::default();
    let mut rounds = FIRST_ROUNDS.iter().copied();
    let mut next_round = Instant::now();
    let mut last_advertised: Option<Instant> = None;
    let mut seq: u16 = 0;
    let mut buf = [0u8; 1500];
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next_round) => {
                socket.send_to(&advertisement, packet::ALL_NODES).await?;
                last_advertised = Some(Instant::now());
                seq = seq.wrapping_add(1);
                socket.send_to(&packet::echo_request(echo_id, seq), packet::ALL_NODES).await?;
                next_round = Instant::now() + rounds.next().unwrap_or(RA_INTERVAL);
            }
            got = socket.recv(&mut buf) => {
                let got = got?;
                if link.own.contains(&got.from) || !got.from.is_unicast_link_local() {
                    continue;
                }
                let now = Instant::now();
                match parse(&buf[..got.len]) {
                    Some(Icmpv6::RouterAdvertisement) if got.hop_limit == Some(255) => {
                        candidates.hear(got.from, true, now);
                    }
                    Some(Icmpv6::RouterSolicitation) if got.hop_limit == Some(255) => {
                        if last_advertised.is_none_or(|t| now.duration_since(t) >= SOLICITED_GAP) {
                            socket.send_to(&advertisement, packet::ALL_NODES).await?;
                            last_advertised = Some(now);
                        }
                        continue;
                    }
                    Some(Icmpv6::EchoReply { id }) if id == echo_id => {
                        candidates.hear(got.from, false, now);
                    }
                    _ => continue,
                }
            }
        }
        let next = match candidates.choose(Instant::now()) {
            Ok(Some(peer)) => Found::Peer(SocketAddrV6::new(peer, 0, 0, link.index)),
            Ok(None) => Found::Nothing,
            Err(many) => Found::Ambiguous(many),
        };
        let new = found.send_if_modified(|f| {
            if *f == next {
                return false;
            }
            tracing::info!(interface = %name, found = ?next, "unnumbered BGP: neighbour");
            *f = next;
            true
        });
        if new {
            changed.notify_one();
        }
    }
}
