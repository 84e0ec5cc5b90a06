//! Failure detection: choosing whom to probe, indirect probes, suspicion and its expiry, and
//! the seed retries that find speakers that are not (or no longer) members.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Bound::{Excluded, Unbounded};

use rand::seq::SliceRandom;
use tracing::debug;

use super::{Output, Probe, Swim};
use crate::membership::wire::{Entry, Message, State};

impl Swim {
    /// An ack for this node's probe, or for a ping it relays (which it forwards to the asker).
    pub(super) fn acked(&mut self, sender: &str, probe: u32) {
        if let Some(p) = &mut self.probe
            && p.id == probe
            && p.target == sender
        {
            p.acked = true;
            return;
        }
        if let Some(i) = self
            .relays
            .iter()
            .position(|r| r.id == probe && r.target == sender)
        {
            let relay = self.relays.swap_remove(i);
            let ack = Message::IndirectAck {
                probe: relay.origin_probe,
                target: relay.target,
            };
            self.send(relay.origin, ack, Vec::new());
        }
    }

    /// The next live member after this node by name, wrapping around.
    pub(super) fn successor(&self) -> Option<String> {
        let me = self.settings.node_name.as_str();
        self.members
            .range::<str, _>((Excluded(me), Unbounded))
            .chain(self.members.range::<str, _>((Unbounded, Excluded(me))))
            .find(|(_, m)| m.state.is_live())
            .map(|(name, _)| name.clone())
    }

    /// The next member of the shuffled round-robin, reshuffled after each round.
    pub(super) fn next_in_round(&mut self) -> Option<String> {
        loop {
            if self.round.is_empty() {
                self.round = self
                    .members
                    .iter()
                    .filter(|(_, m)| m.state.is_live())
                    .map(|(name, _)| name.clone())
                    .collect();
                self.round.shuffle(&mut self.rng);
            }
            let name = self.round.pop()?;
            if self.is_live(&name) {
                return Some(name);
            }
        }
    }

    /// Pings this period's member: the successor every other period, else the round-robin's.
    pub(super) fn start_probe(&mut self) {
        self.period += 1;
        let target = if self.period.is_multiple_of(2) {
            self.successor()
        } else {
            self.next_in_round()
        };
        let Some((target, m)) = target.and_then(|t| self.members.get(&t).map(|m| (t, m))) else {
            return;
        };
        let addr = m.addr;
        // A suspect is told why it is pinged, so that it refutes.
        let entries = if m.state == State::Suspect {
            vec![m.entry(&target)]
        } else {
            Vec::new()
        };
        let id = self.next_probe_id();
        let ping = Message::Ping {
            probe: id,
            target: target.clone(),
        };
        self.send(addr, ping, entries);
        self.probe = Some(Probe {
            id,
            target,
            sent_at: self.now,
            indirect: false,
            acked: false,
        });
    }

    /// The direct ping went unanswered: asks `indirect_probes` alive members to ping the target.
    pub(super) fn send_ping_reqs(&mut self) {
        let Some(p) = &mut self.probe else {
            return;
        };
        p.indirect = true;
        let (id, target) = (p.id, p.target.clone());
        let Some(target_addr) = self.members.get(&target).map(|m| m.addr) else {
            return;
        };
        let mut helpers: Vec<SocketAddr> = self
            .members
            .iter()
            .filter(|(name, m)| m.state == State::Alive && **name != target)
            .map(|(_, m)| m.addr)
            .collect();
        helpers.shuffle(&mut self.rng);
        helpers.truncate(self.settings.indirect_probes);
        for helper in helpers {
            let req = Message::PingReq {
                probe: id,
                target: target.clone(),
                target_addr,
            };
            self.send(helper, req, Vec::new());
        }
    }

    /// The probe of `name` got no ack, direct or indirect, by the end of its period.
    pub(super) fn suspect_unanswered(&mut self, name: &str) {
        let now = self.now;
        let Some(m) = self.members.get_mut(name) else {
            return;
        };
        match m.state {
            State::Alive => {}
            // Suspected by a peer and confirmed here: this node spreads the verdict too, in case
            // the peer is gone.
            State::Suspect => {
                m.suspected_here = true;
                return;
            }
            State::Dead | State::Left => return,
        }
        m.state = State::Suspect;
        m.since = now;
        m.suspected_here = true;
        debug!(member = %name, incarnation = m.incarnation, "member suspected: no answer to direct or indirect probes");
        self.out.push(Output::Suspect {
            name: name.to_owned(),
        });
        self.gossip.push(name);
        self.fan_out(name);
    }

    /// Tells the members this node suspects, every period, so a lost message cannot keep them
    /// from refuting.
    pub(super) fn remind_suspects(&mut self) {
        let reminders: Vec<(SocketAddr, Entry)> = self
            .members
            .iter()
            .filter(|(_, m)| m.state == State::Suspect && m.suspected_here)
            .map(|(name, m)| (m.addr, m.entry(name)))
            .collect();
        for (to, entry) in reminders {
            self.send(to, Message::Gossip, vec![entry]);
        }
    }

    pub(super) fn expire_suspicions(&mut self) {
        let now = self.now;
        let timeout = self.settings.suspicion_timeout;
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.state == State::Suspect && m.since + timeout <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            let Some(m) = self.members.get_mut(&name) else {
                continue;
            };
            m.state = State::Dead;
            m.since = now;
            let raised_here = std::mem::take(&mut m.suspected_here);
            let incarnation = m.incarnation;
            self.went_down(&name, State::Dead, incarnation);
            if raised_here {
                self.fan_out(&name);
            }
        }
    }

    /// Pings the next seed (or dead member) that is not live: partitions heal, and speakers that
    /// start later, or whose join was lost, are found. One per interval, whatever the cluster's
    /// size.
    pub(super) fn retry_seed(&mut self) {
        let mut candidates: BTreeMap<&str, SocketAddr> = self
            .members
            .iter()
            .filter(|(_, m)| m.state == State::Dead)
            .map(|(name, m)| (name.as_str(), m.addr))
            .collect();
        for (name, addr) in &self.seeds {
            match self.members.get(name) {
                Some(m) if m.state != State::Dead => {}
                _ => {
                    candidates.insert(name, *addr);
                }
            }
        }
        let cursor = self.seed_cursor.as_deref().unwrap_or("");
        let next = candidates
            .range::<str, _>((Excluded(cursor), Unbounded))
            .next()
            .or_else(|| candidates.iter().next())
            .map(|(name, addr)| ((*name).to_owned(), *addr));
        let Some((name, addr)) = next else {
            return;
        };
        self.seed_cursor = Some(name.clone());
        self.ping_seed(name, addr);
    }

    pub(super) fn ping_seed(&mut self, name: String, addr: SocketAddr) {
        // One that is dead in this node's view is told so, and refutes if it is alive.
        let entries = match self.members.get(&name) {
            Some(m) if !m.state.is_live() => vec![m.entry(&name)],
            _ => Vec::new(),
        };
        let id = self.next_probe_id();
        let ping = Message::Ping {
            probe: id,
            target: name,
        };
        self.send(addr, ping, entries);
    }

    /// Forgets tombstones past their time (never those of seeds), expired relays and old
    /// correction times.
    pub(super) fn purge(&mut self) {
        let now = self.now;
        let ttl = self.settings.tombstone_ttl;
        let seeds = &self.seeds;
        self.members
            .retain(|name, m| m.state.is_live() || seeds.contains_key(name) || m.since + ttl > now);
        self.relays.retain(|r| r.expires > now);
        let period = self.settings.probe_period;
        self.corrected_at.retain(|_, at| *at + period > now);
    }
}
