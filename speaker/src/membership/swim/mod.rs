//! SWIM (Das, Gupta, Motivala, 2002) with suspicion and incarnation numbers, sans-IO: datagrams
//! and the time go in, datagrams to send and membership changes come out. No socket, no clock,
//! no task: the driver (or a test's simulated network) does the I/O.
//!
//! Each probe period this node pings one member: every other period its *successor* (the next
//! live member by name, so that every member is pinged by its predecessor at least every two
//! periods, which bounds the detection time), otherwise the next member of a shuffled
//! round-robin (SWIM's own order, which also covers members the views disagree on). Without an
//! ack within the probe timeout it asks a few others to ping the member for it; without any ack
//! by the end of the period the member becomes *suspect*, and *dead* if it does not refute within
//! the suspicion timeout. A member refutes by raising its incarnation.
//!
//! News is piggybacked on every datagram, each item a bounded number of times. News this node
//! originates and that failover waits for (a suspicion, a death, a refutation) is also sent
//! straight to up to `urgent_fanout` members, so that the member that must take over an IP —
//! a particular one, not the prober — learns it one network delay after it is decided.
//!
//! Whenever a datagram shows that its sender believes something older than this node does
//! (about itself or about another member), this node tells it what it knows, at most once per
//! probe period per address. That is how a suspected member learns it must refute, how a
//! restarted member learns the incarnation it must beat, and how the two sides of a healed
//! partition learn of each other.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;
use tracing::{info, trace};

use super::auth::Keyring;
use super::members::{GossipQueue, Member, Replay};
use super::settings::MembershipSettings;
use super::wire::{DecodeError, Entry, Message, MessageKind, Packet, State};

mod news;
mod probe;

/// Why a member stopped being live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// It did not refute a suspicion in time.
    Dead,
    /// It said it was leaving.
    Left,
}

/// Why a datagram (or the request in it) was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Not an authentic, well-formed datagram of this version.
    Decode(DecodeError),
    /// Already received, or from an incarnation the sender has since left behind.
    Replayed,
    /// Carries this node's own name: a node with a duplicate name, or this node's datagram sent
    /// back.
    OwnName,
    /// A ping meant for another node (the sender has an outdated address).
    Misdirected,
    /// A Leave from an address other than the one its sender is known at: only a member
    /// itself may say it leaves.
    ForgedLeave,
}

impl DropReason {
    /// A bounded metric label.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Decode(error) => error.label(),
            DropReason::Replayed => "replayed",
            DropReason::OwnName => "own_name",
            DropReason::Misdirected => "misdirected",
            DropReason::ForgedLeave => "forged_leave",
        }
    }
}

/// What the protocol asks of its driver, and what it reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `bytes` to `to`.
    Send {
        /// Destination.
        to: SocketAddr,
        /// The sealed datagram.
        bytes: Vec<u8>,
        /// What it carries, for metrics.
        kind: MessageKind,
    },
    /// A member became live (joined, came back, or was heard of).
    Up {
        /// Its node name.
        name: String,
        /// Where it listens.
        addr: SocketAddr,
    },
    /// This node suspects a member that did not answer its probes.
    Suspect {
        /// Its node name.
        name: String,
    },
    /// A member stopped being live.
    Down {
        /// Its node name.
        name: String,
        /// Dead or left.
        reason: DownReason,
    },
    /// An authentic datagram arrived.
    Received(MessageKind),
    /// A datagram was dropped.
    Dropped(DropReason),
}

/// The probe of the current period.
#[derive(Clone, Debug)]
struct Probe {
    id: u32,
    target: String,
    sent_at: Instant,
    indirect: bool,
    acked: bool,
}

/// A ping sent on behalf of another member's indirect probe.
#[derive(Clone, Debug)]
struct Relay {
    id: u32,
    origin: SocketAddr,
    origin_probe: u32,
    target: String,
    expires: Instant,
}

/// One node's side of the protocol.
#[derive(Debug)]
pub struct Swim {
    settings: MembershipSettings,
    addr: SocketAddr,
    incarnation: u64,
    seq: u64,
    keys: Keyring,
    members: BTreeMap<String, Member>,
    gossip: GossipQueue,
    seeds: BTreeMap<String, SocketAddr>,
    rng: StdRng,
    now: Instant,
    period: u64,
    next_probe_at: Instant,
    probe: Option<Probe>,
    round: Vec<String>,
    next_id: u32,
    relays: Vec<Relay>,
    next_seed_at: Instant,
    seed_cursor: Option<String>,
    /// Members whose news each address is behind on.
    corrections: BTreeMap<SocketAddr, BTreeSet<String>>,
    /// When each address was last sent a correction on its own.
    corrected_at: BTreeMap<SocketAddr, Instant>,
    /// The last duplicate of this node's name warned about.
    duplicate: Option<(SocketAddr, u64)>,
    left: bool,
    out: Vec<Output>,
}

impl Swim {
    /// A node named `settings.node_name` that listens on `addr` (where peers reach it; a
    /// specific address, not a wildcard), seals with `key`, starts at `incarnation` (make it
    /// larger than any earlier run's: the driver uses the wall clock in milliseconds) and draws
    /// its random choices from `rng_seed`.
    pub fn new(
        settings: MembershipSettings,
        addr: SocketAddr,
        key: &[u8],
        incarnation: u64,
        rng_seed: u64,
        now: Instant,
    ) -> Self {
        Self {
            next_probe_at: now + settings.probe_period,
            next_seed_at: now + settings.seed_retry_interval,
            settings,
            addr,
            incarnation,
            seq: 0,
            keys: Keyring::new(key),
            members: BTreeMap::new(),
            gossip: GossipQueue::default(),
            seeds: BTreeMap::new(),
            rng: StdRng::seed_from_u64(rng_seed),
            now,
            period: 0,
            probe: None,
            round: Vec::new(),
            next_id: 0,
            relays: Vec::new(),
            seed_cursor: None,
            corrections: BTreeMap::new(),
            corrected_at: BTreeMap::new(),
            duplicate: None,
            left: false,
            out: Vec::new(),
        }
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.settings.node_name
    }

    /// This node's current incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Whether `name` is live in this node's view (this node is, until it leaves).
    pub fn is_live(&self, name: &str) -> bool {
        if self.left {
            return false;
        }
        if name == self.settings.node_name {
            return true;
        }
        self.members.get(name).is_some_and(|m| m.state.is_live())
    }

    /// The names of the live members, this node included; empty once it left.
    pub fn live(&self) -> BTreeSet<String> {
        if self.left {
            return BTreeSet::new();
        }
        let mut live: BTreeSet<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.state.is_live())
            .map(|(name, _)| name.clone())
            .collect();
        live.insert(self.settings.node_name.clone());
        live
    }

    /// What this node believes of `name` (another member).
    pub fn member(&self, name: &str) -> Option<Entry> {
        self.members.get(name).map(|m| m.entry(name))
    }

    /// When [`Swim::handle_tick`] must next be called, at the latest.
    pub fn next_deadline(&self) -> Instant {
        if self.left {
            return self.now + Duration::from_secs(3600);
        }
        let mut deadline = self.next_probe_at.min(self.next_seed_at);
        if let Some(p) = &self.probe
            && !p.acked
            && !p.indirect
        {
            deadline = deadline.min(p.sent_at + self.settings.probe_timeout);
        }
        for m in self.members.values() {
            if m.state == State::Suspect {
                deadline = deadline.min(m.since + self.settings.suspicion_timeout);
            }
        }
        deadline
    }

    /// Announces this node to every seed (the other nodes' addresses, by node name).
    pub fn join(&mut self, seeds: BTreeMap<String, SocketAddr>, now: Instant) -> Vec<Output> {
        self.now = now;
        let me = self.settings.node_name.clone();
        self.gossip.push(&me);
        self.seeds = seeds;
        self.seeds.remove(&me);
        let seeds: Vec<(String, SocketAddr)> =
            self.seeds.iter().map(|(n, a)| (n.clone(), *a)).collect();
        for (name, addr) in seeds {
            self.ping_seed(name, addr);
        }
        self.take_output()
    }

    /// Replaces the seeds; new ones that are not live members are pinged at once.
    pub fn set_seeds(&mut self, seeds: BTreeMap<String, SocketAddr>, now: Instant) -> Vec<Output> {
        self.now = now;
        let mut seeds = seeds;
        seeds.remove(&self.settings.node_name);
        let new: Vec<(String, SocketAddr)> = seeds
            .iter()
            .filter(|(name, addr)| self.seeds.get(*name) != Some(*addr) && !self.is_live(name))
            .map(|(n, a)| (n.clone(), *a))
            .collect();
        self.seeds = seeds;
        if !self.left {
            for (name, addr) in new {
                self.ping_seed(name, addr);
            }
        }
        self.take_output()
    }

    /// Replaces the shared key (see [`Keyring::rotate`]).
    pub fn set_key(&mut self, key: &[u8], now: Instant) {
        self.now = now;
        self.keys
            .rotate(key, now, self.settings.key_rotation_window);
    }

    /// Leaves: tells every live member at once, then stays silent.
    pub fn leave(&mut self, now: Instant) -> Vec<Output> {
        self.now = now;
        if self.left {
            return self.take_output();
        }
        let targets: Vec<SocketAddr> = self
            .members
            .values()
            .filter(|m| m.state.is_live())
            .map(|m| m.addr)
            .collect();
        for to in targets {
            self.send(to, Message::Leave, Vec::new());
        }
        self.left = true;
        info!(incarnation = self.incarnation, "left the membership");
        self.take_output()
    }

    /// Handles a datagram from `from`.
    pub fn handle_packet(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) -> Vec<Output> {
        self.now = now;
        if self.left {
            return self.take_output();
        }
        let packet = match Packet::open(bytes, &self.keys, now) {
            Ok(packet) => packet,
            Err(error) => {
                trace!(%from, %error, "membership datagram dropped");
                self.out.push(Output::Dropped(DropReason::Decode(error)));
                return self.take_output();
            }
        };
        if packet.sender == self.settings.node_name {
            self.out.push(Output::Dropped(DropReason::OwnName));
            return self.take_output();
        }
        let sender = packet.sender.clone();
        let verdict = self
            .members
            .get_mut(&sender)
            .map(|m| m.replay.check(packet.incarnation, packet.seq));
        match verdict {
            Some(Replay::Seen) => {
                self.out.push(Output::Dropped(DropReason::Replayed));
                return self.take_output();
            }
            Some(Replay::Stale) => {
                // A replay, or a sender that does not know it was superseded: tell it.
                self.out.push(Output::Dropped(DropReason::Replayed));
                self.correct(from, &sender);
                self.flush_corrections();
                return self.take_output();
            }
            Some(Replay::Fresh) | None => {}
        }
        if packet.message == Message::Leave && !self.may_say_it_left(&sender, &sender, from) {
            trace!(%from, member = %sender, "leave from another address than the member's dropped");
            self.out.push(Output::Dropped(DropReason::ForgedLeave));
            return self.take_output();
        }
        self.out.push(Output::Received(packet.message.kind()));

        if packet.message == Message::Leave {
            let left = Entry {
                name: sender.clone(),
                addr: from,
                incarnation: packet.incarnation,
                state: State::Left,
            };
            self.apply(left, from);
        } else {
            self.observe_sender(&sender, packet.incarnation, packet.seq, from);
        }
        for mut entry in packet.gossip {
            // That a member left is taken only from the member itself; anyone else's word for
            // it is a suspicion, which the member refutes if it is alive.
            if entry.state == State::Left && !self.may_say_it_left(&sender, &entry.name, from) {
                entry.state = State::Suspect;
            }
            self.apply(entry, from);
        }
        match packet.message {
            Message::Ping { probe, target } => {
                if target == self.settings.node_name {
                    self.send(from, Message::Ack { probe }, Vec::new());
                } else {
                    self.out.push(Output::Dropped(DropReason::Misdirected));
                    if self.members.contains_key(&target) {
                        self.correct(from, &target);
                    }
                }
            }
            Message::Ack { probe } => self.acked(&sender, probe),
            Message::PingReq {
                probe,
                target,
                target_addr,
            } => {
                if target != self.settings.node_name && target != sender {
                    let id = self.next_probe_id();
                    let ping = Message::Ping {
                        probe: id,
                        target: target.clone(),
                    };
                    self.send(target_addr, ping, Vec::new());
                    self.relays.push(Relay {
                        id,
                        origin: from,
                        origin_probe: probe,
                        target,
                        expires: now + self.settings.probe_period,
                    });
                }
            }
            Message::IndirectAck { probe, target } => {
                if let Some(p) = &mut self.probe
                    && p.id == probe
                    && p.target == target
                {
                    p.acked = true;
                }
            }
            Message::Gossip | Message::Leave => {}
        }
        self.flush_corrections();
        self.take_output()
    }

    /// Whether `sender`, heard from `from`, may say that `subject` left: only of itself, and
    /// only from the address it is known at (as a member, else as a seed).
    fn may_say_it_left(&self, sender: &str, subject: &str, from: SocketAddr) -> bool {
        let known = self
            .members
            .get(subject)
            .map(|m| m.addr)
            .or_else(|| self.seeds.get(subject).copied());
        sender == subject && known.is_none_or(|addr| addr == from)
    }

    /// Runs the timers that are due at `now`.
    pub fn handle_tick(&mut self, now: Instant) -> Vec<Output> {
        self.now = now;
        if self.left {
            return self.take_output();
        }
        if let Some(p) = &self.probe
            && !p.acked
            && !p.indirect
            && now >= p.sent_at + self.settings.probe_timeout
        {
            self.send_ping_reqs();
        }
        self.expire_suspicions();
        if now >= self.next_probe_at {
            if let Some(p) = self.probe.take()
                && !p.acked
            {
                self.suspect_unanswered(&p.target);
            }
            self.next_probe_at += self.settings.probe_period;
            if self.next_probe_at <= now {
                self.next_probe_at = now + self.settings.probe_period;
            }
            self.purge();
            self.remind_suspects();
            self.start_probe();
        }
        if now >= self.next_seed_at {
            self.next_seed_at = now + self.settings.seed_retry_interval;
            self.retry_seed();
        }
        self.take_output()
    }

    fn take_output(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    fn next_probe_id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }
}
