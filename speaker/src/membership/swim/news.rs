//! Dissemination: sealing datagrams with piggybacked gossip, sending urgent news straight to
//! members, correcting peers that are behind, and merging what peers say into the table.

use std::net::SocketAddr;
use std::ops::Bound::{Excluded, Unbounded};

use rand::seq::SliceRandom;
use tracing::{debug, info, trace, warn};

use super::{DownReason, Output, Swim};
use crate::membership::members::Member;
use crate::membership::wire::{Entry, MAX_ENTRIES, Message, Packet, State, entry_len};

/// How many live members a newcomer is told of in the reply to its first datagram.
const NEWCOMER_HINT: usize = 32;

/// News that did not fit, in a row, after which a datagram is taken as full.
const MISFITS_BEFORE_FULL: usize = 8;

/// A datagram being filled with entries up to its size and count limits.
struct Fill {
    packet: Packet,
    len: usize,
    max: usize,
    /// Entries that did not fit, in a row.
    misfits: usize,
}

impl Fill {
    fn new(packet: Packet, max: usize) -> Self {
        let len = packet.sealed_len();
        Self {
            packet,
            len,
            max,
            misfits: 0,
        }
    }

    /// No entry goes in any more: the count limit, or a few misfits in a row.
    fn full(&self) -> bool {
        self.packet.gossip.len() >= MAX_ENTRIES || self.misfits >= MISFITS_BEFORE_FULL
    }

    /// Whether one of the first `first` entries is news of `name`.
    fn holds(&self, name: &str, first: usize) -> bool {
        self.packet.gossip[..first].iter().any(|e| e.name == name)
    }

    /// Puts `entry` in if it fits; says whether it did.
    fn offer(&mut self, entry: Entry) -> bool {
        let entry_len = entry_len(&entry);
        if self.packet.gossip.len() >= MAX_ENTRIES || self.len + entry_len > self.max {
            self.misfits += 1;
            return false;
        }
        self.misfits = 0;
        self.len += entry_len;
        self.packet.gossip.push(entry);
        true
    }
}

impl Swim {
    /// What this node says of itself.
    pub(super) fn self_entry(&self) -> Entry {
        Entry {
            name: self.settings.node_name.clone(),
            addr: self.addr,
            incarnation: self.incarnation,
            state: if self.left { State::Left } else { State::Alive },
        }
    }

    /// What this node says of `name`, itself included.
    pub(super) fn entry_of(&self, name: &str) -> Option<Entry> {
        if name == self.settings.node_name {
            Some(self.self_entry())
        } else {
            self.member(name)
        }
    }

    /// How many times a piece of news is piggybacked: `mult × ⌈log10(n + 1)⌉`.
    pub(super) fn retransmit_limit(&self) -> u32 {
        let n = self.members.values().filter(|m| m.state.is_live()).count() + 1;
        let mut log = 0;
        let mut power = 1usize;
        while power < n + 1 {
            power = power.saturating_mul(10);
            log += 1;
        }
        self.settings.retransmit_mult.saturating_mul(log.max(1))
    }

    /// Seals and queues a datagram: `entries` first, then corrections owed to `to`, then as much
    /// queued gossip as fits.
    pub(super) fn send(&mut self, to: SocketAddr, message: Message, entries: Vec<Entry>) {
        let mut fill = Fill::new(
            Packet {
                sender: self.settings.node_name.clone(),
                incarnation: self.incarnation,
                seq: self.seq,
                message,
                gossip: Vec::new(),
            },
            self.settings.max_packet_size,
        );
        for entry in entries {
            fill.offer(entry);
        }
        for subject in self.corrections.remove(&to).into_iter().flatten() {
            if fill.full() {
                break;
            }
            if !fill.holds(&subject, fill.packet.gossip.len())
                && let Some(entry) = self.entry_of(&subject)
            {
                fill.offer(entry);
            }
        }
        // Queued news, least sent first, while it fits. The queue's names are distinct: only
        // those put in before it can repeat.
        let before = fill.packet.gossip.len();
        let mut taken = Vec::new();
        let mut unknown = Vec::new();
        for name in self.gossip.by_least_sent() {
            if fill.full() {
                break;
            }
            if fill.holds(name, before) {
                continue;
            }
            match self.entry_of(name) {
                Some(entry) => {
                    if fill.offer(entry) {
                        taken.push(name.to_owned());
                    }
                }
                None => unknown.push(name.to_owned()),
            }
        }
        for name in unknown {
            self.gossip.remove(&name);
        }
        if !taken.is_empty() {
            let limit = self.retransmit_limit();
            for name in taken {
                self.gossip.sent(&name, limit);
            }
        }
        let packet = fill.packet;
        self.seq += 1;
        let kind = packet.message.kind();
        let bytes = packet.seal(self.keys.sealing(self.now));
        trace!(%to, kind = kind.label(), entries = packet.gossip.len(), "membership datagram");
        self.out.push(Output::Send { to, bytes, kind });
    }

    /// Sends news of `subject` straight to up to `urgent_fanout` live members, and to the
    /// subject itself if it is another member (so that a wrongly suspected one refutes at once).
    pub(super) fn fan_out(&mut self, subject: &str) {
        let Some(entry) = self.entry_of(subject) else {
            return;
        };
        let mut targets: Vec<SocketAddr> = self
            .members
            .iter()
            .filter(|(name, m)| m.state.is_live() && name.as_str() != subject)
            .map(|(_, m)| m.addr)
            .collect();
        targets.shuffle(&mut self.rng);
        targets.truncate(self.settings.urgent_fanout);
        if let Some(m) = self.members.get(subject) {
            targets.push(m.addr);
        }
        for to in targets {
            self.send(to, Message::Gossip, vec![entry.clone()]);
        }
    }

    /// Notes that `to` is behind on `subject`: the next datagram to it carries this node's news
    /// of `subject`.
    pub(super) fn correct(&mut self, to: SocketAddr, subject: &str) {
        self.corrections
            .entry(to)
            .or_default()
            .insert(subject.to_owned());
    }

    /// Sends the corrections no reply carried, at most one datagram per address and period.
    pub(super) fn flush_corrections(&mut self) {
        for (to, subjects) in std::mem::take(&mut self.corrections) {
            if self
                .corrected_at
                .get(&to)
                .is_some_and(|at| *at + self.settings.probe_period > self.now)
            {
                continue;
            }
            self.corrected_at.insert(to, self.now);
            let entries = subjects.iter().filter_map(|s| self.entry_of(s)).collect();
            self.send(to, Message::Gossip, entries);
        }
    }

    pub(super) fn came_up(&mut self, name: &str, addr: SocketAddr, incarnation: u64) {
        info!(member = %name, %addr, incarnation, "member up");
        self.gossip.push(name);
        self.out.push(Output::Up {
            name: name.to_owned(),
            addr,
        });
    }

    pub(super) fn went_down(&mut self, name: &str, state: State, incarnation: u64) {
        let reason = if state == State::Left {
            info!(member = %name, incarnation, "member left");
            DownReason::Left
        } else {
            info!(member = %name, incarnation, "member dead");
            DownReason::Dead
        };
        self.gossip.push(name);
        self.out.push(Output::Down {
            name: name.to_owned(),
            reason,
        });
    }

    /// A datagram from `name` at `incarnation` proves it alive at that incarnation.
    pub(super) fn observe_sender(
        &mut self,
        name: &str,
        incarnation: u64,
        seq: u64,
        from: SocketAddr,
    ) {
        let now = self.now;
        match self.members.get_mut(name) {
            None => {
                let mut m = Member::new(from, incarnation, State::Alive, now);
                m.replay.check(incarnation, seq);
                self.members.insert(name.to_owned(), m);
                self.came_up(name, from, incarnation);
                // A newcomer is told of a few live members (those after it in name order), in
                // case its seeds were incomplete; gossip and its own probes bring it the rest.
                let after = self.members.range::<str, _>((Excluded(name), Unbounded));
                let told: Vec<String> = after
                    .chain(self.members.range::<str, _>((Unbounded, Excluded(name))))
                    .filter(|(_, m)| m.state.is_live())
                    .take(NEWCOMER_HINT)
                    .map(|(other, _)| other.clone())
                    .collect();
                for other in told {
                    self.correct(from, &other);
                }
            }
            Some(m) if incarnation > m.incarnation => {
                let was = m.state;
                m.addr = from;
                m.incarnation = incarnation;
                m.state = State::Alive;
                m.since = now;
                m.suspected_here = false;
                if !was.is_live() {
                    self.came_up(name, from, incarnation);
                } else {
                    if was == State::Suspect {
                        debug!(member = %name, incarnation, "suspicion refuted");
                    }
                    self.gossip.push(name);
                }
            }
            Some(m) if incarnation == m.incarnation && m.state == State::Alive => {
                if m.addr != from {
                    debug!(member = %name, %from, known = %m.addr, "same incarnation from another address; keeping the known one");
                }
            }
            // Suspected or dead at its incarnation, or known at a newer one: tell it.
            Some(_) => self.correct(from, name),
        }
    }

    /// Merges one piece of gossip heard from `from`.
    pub(super) fn apply(&mut self, entry: Entry, from: SocketAddr) {
        if entry.name == self.settings.node_name {
            self.apply_about_self(entry, from);
            return;
        }
        let now = self.now;
        let name = entry.name.as_str();
        let inc = entry.incarnation;
        let Some(m) = self.members.get_mut(name) else {
            match entry.state {
                State::Alive => {
                    let m = Member::new(entry.addr, inc, State::Alive, now);
                    self.members.insert(entry.name.clone(), m);
                    self.came_up(name, entry.addr, inc);
                }
                // A tombstone, so that older news of it cannot bring it back.
                State::Dead | State::Left => {
                    let m = Member::new(entry.addr, inc, entry.state, now);
                    self.members.insert(entry.name.clone(), m);
                }
                // Members are not learned from suspicions.
                State::Suspect => {}
            }
            return;
        };
        let rank = |s: State| match s {
            State::Alive => 0,
            State::Suspect => 1,
            State::Dead | State::Left => 2,
        };
        if m.incarnation > inc || (m.incarnation == inc && rank(m.state) > rank(entry.state)) {
            self.correct(from, name);
            return;
        }
        match entry.state {
            State::Alive if inc > m.incarnation => {
                let was = m.state;
                m.addr = entry.addr;
                m.incarnation = inc;
                m.state = State::Alive;
                m.since = now;
                m.suspected_here = false;
                if was.is_live() {
                    self.gossip.push(name);
                } else {
                    self.came_up(name, entry.addr, inc);
                }
            }
            State::Suspect
                if m.state == State::Alive
                    || (m.state == State::Suspect && inc > m.incarnation) =>
            {
                if m.state == State::Alive {
                    m.since = now;
                    m.suspected_here = false;
                    debug!(member = %name, incarnation = inc, "member suspected by a peer");
                }
                m.incarnation = inc;
                m.state = State::Suspect;
                self.gossip.push(name);
            }
            State::Dead | State::Left if m.state.is_live() => {
                m.incarnation = inc;
                m.state = entry.state;
                m.since = now;
                m.suspected_here = false;
                self.went_down(name, entry.state, inc);
            }
            State::Dead | State::Left if inc > m.incarnation => m.incarnation = inc,
            _ => {}
        }
    }

    pub(super) fn apply_about_self(&mut self, entry: Entry, from: SocketAddr) {
        let inc = entry.incarnation;
        match entry.state {
            State::Alive if inc > self.incarnation => {
                if entry.addr == self.addr {
                    self.refute(inc, "an earlier run of this node is still known");
                } else if self.duplicate != Some((entry.addr, inc)) {
                    self.duplicate = Some((entry.addr, inc));
                    warn!(other = %entry.addr, incarnation = inc, "another speaker uses this node's name and takes it over: every speaker's node name (FERROLB_NODE_NAME) must be its own Node's");
                }
            }
            State::Alive => {
                if inc < self.incarnation {
                    self.correct(from, &entry.name);
                }
            }
            State::Suspect | State::Dead | State::Left => {
                if inc >= self.incarnation {
                    self.refute(inc, "suspected or declared dead");
                } else {
                    self.correct(from, &entry.name);
                }
            }
        }
    }

    /// Beats `over` with a new incarnation and tells everyone at once.
    pub(super) fn refute(&mut self, over: u64, why: &'static str) {
        self.incarnation = over.saturating_add(1);
        info!(
            incarnation = self.incarnation,
            reason = why,
            "telling the other speakers this node is alive"
        );
        let me = self.settings.node_name.clone();
        self.gossip.push(&me);
        self.fan_out(&me);
    }
}
