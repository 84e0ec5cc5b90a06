//! A simulated network for [`Swim`] nodes: virtual time, a fixed one-way delay, and controllable
//! loss, jitter, partitions, deaths and pauses (a node starved of CPU or SIGSTOPped). Discrete events: every step delivers the next datagram or runs
//! the timers of the node whose deadline comes first.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::membership::swim::{Output, Swim};
use crate::membership::wire::MessageKind;
use crate::membership::{DownReason, DropReason, MembershipSettings};

/// The key every simulated node shares unless a test says otherwise.
pub const KEY: &[u8] = b"a shared membership key";
/// Incarnations of first runs start here (a wall clock in ms would be ~1.7e12).
pub const FIRST_INCARNATION: u64 = 1_000_000;

/// One simulated node.
pub struct SimNode {
    pub name: String,
    pub addr: SocketAddr,
    pub settings: MembershipSettings,
    pub key: Vec<u8>,
    /// `None` while dead (killed, or not started).
    pub swim: Option<Swim>,
    /// Its next deadline, cached after each call.
    deadline: Option<Instant>,
    /// When its timers run next, as held in [`Sim::timers`].
    timer: Option<Instant>,
    /// Frozen until then: datagrams to it wait in its socket, its timers wait, and on waking it
    /// reads what waited before it runs its timers (as the speaker's driver does).
    pub paused_until: Option<Instant>,
    /// Datagrams it sent, by kind.
    pub sent: BTreeMap<&'static str, u64>,
    /// What it reported, with the time.
    pub events: Vec<(Instant, Event)>,
}

/// What a node reported (datagram sends and receipts are counted, not kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Up(String),
    Suspect(String),
    Down(String, DownReason),
    Dropped(DropReason),
}

impl SimNode {
    pub fn swim(&self) -> &Swim {
        self.swim.as_ref().expect("node is running")
    }

    pub fn total_sent(&self) -> u64 {
        self.sent.values().sum()
    }

    pub fn dropped(&self, reason: DropReason) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| *e == Event::Dropped(reason))
            .count()
    }

    pub fn saw(&self, wanted: &Event) -> bool {
        self.events.iter().any(|(_, e)| e == wanted)
    }
}

struct InFlight {
    from: SocketAddr,
    to: usize,
    bytes: Vec<u8>,
}

pub struct Sim {
    pub now: Instant,
    pub latency: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    pub nodes: Vec<SimNode>,
    /// Directed (from, to) pairs that cannot talk.
    pub blocked: BTreeSet<(usize, usize)>,
    /// Datagrams from or to these nodes are delayed by a further uniform 0..jitter.
    pub jitter: BTreeMap<usize, Duration>,
    /// Every datagram sent, if set: (from node, to node, bytes).
    pub capture: Option<Vec<(usize, usize, Vec<u8>)>>,
    /// Bytes of every datagram sent (lost or not).
    pub bytes_sent: u64,
    rng: StdRng,
    by_addr: BTreeMap<SocketAddr, usize>,
    /// Every running node's next timer (so the next one is found without looking at all).
    timers: BTreeSet<(Instant, usize)>,
    in_flight: BTreeMap<(Instant, u64), InFlight>,
    next_flight: u64,
}

pub fn name(i: usize) -> String {
    format!("node-{i:03}")
}

pub fn addr(i: usize) -> SocketAddr {
    let i = u32::try_from(i).expect("small");
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i)), 7946)
}

impl Sim {
    /// `n` nodes with default settings, not started.
    pub fn new(n: usize, seed: u64) -> Self {
        Self::with_settings(n, seed, |_| {})
    }

    /// `n` nodes whose settings `tune` adjusts, not started.
    pub fn with_settings(n: usize, seed: u64, tune: impl Fn(&mut MembershipSettings)) -> Self {
        let nodes: Vec<SimNode> = (0..n)
            .map(|i| {
                let mut settings = MembershipSettings::new(name(i));
                tune(&mut settings);
                SimNode {
                    name: name(i),
                    addr: addr(i),
                    settings,
                    key: KEY.to_vec(),
                    swim: None,
                    deadline: None,
                    timer: None,
                    paused_until: None,
                    sent: BTreeMap::new(),
                    events: Vec::new(),
                }
            })
            .collect();
        let by_addr = nodes.iter().enumerate().map(|(i, n)| (n.addr, i)).collect();
        Self {
            now: Instant::now(),
            latency: Duration::from_micros(200),
            loss: 0.0,
            nodes,
            blocked: BTreeSet::new(),
            jitter: BTreeMap::new(),
            capture: None,
            bytes_sent: 0,
            rng: StdRng::seed_from_u64(seed),
            by_addr,
            timers: BTreeSet::new(),
            in_flight: BTreeMap::new(),
            next_flight: 0,
        }
    }

    /// Every other node, as seeds of node `i`.
    pub fn seeds_of(&self, i: usize) -> BTreeMap<String, SocketAddr> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| (n.name.clone(), n.addr))
            .collect()
    }

    /// Starts node `i` at `incarnation` with every other node as seed.
    pub fn start_with(&mut self, i: usize, incarnation: u64, seeds: BTreeMap<String, SocketAddr>) {
        let seed = self.rng.random();
        let node = &mut self.nodes[i];
        let mut swim = Swim::new(
            node.settings.clone(),
            node.addr,
            &node.key,
            incarnation,
            seed,
            self.now,
        );
        let out = swim.join(seeds, self.now);
        node.swim = Some(swim);
        self.process(i, out);
    }

    pub fn start(&mut self, i: usize) {
        let seeds = self.seeds_of(i);
        self.start_with(i, FIRST_INCARNATION + i as u64, seeds);
    }

    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// Starts every node and runs until all see all; panics if that takes over a second.
    pub fn converged(n: usize, seed: u64) -> Self {
        let mut sim = Self::new(n, seed);
        sim.start_all();
        let all: Vec<usize> = (0..n).collect();
        sim.run_until(Duration::from_secs(1), |s| s.all_see(&all, &all))
            .expect("the cluster converges");
        sim
    }

    /// Kills node `i` hard: it stops answering, and its queued datagrams are lost.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].swim = None;
        self.nodes[i].deadline = None;
        self.reindex(i);
    }

    /// Freezes node `i` for `duration` from now (a SIGSTOP, or a CPU quota spent).
    pub fn pause(&mut self, i: usize, duration: Duration) {
        let until = self.now + duration;
        let node = &mut self.nodes[i];
        node.paused_until = Some(node.paused_until.map_or(until, |u| u.max(until)));
        self.reindex(i);
    }

    /// Cuts node `i` off from everyone, both ways.
    pub fn isolate(&mut self, i: usize) {
        for j in 0..self.nodes.len() {
            if j != i {
                self.blocked.insert((i, j));
                self.blocked.insert((j, i));
            }
        }
    }

    /// Cuts `a` off from `b`, both ways.
    pub fn partition(&mut self, a: &[usize], b: &[usize]) {
        for &i in a {
            for &j in b {
                self.blocked.insert((i, j));
                self.blocked.insert((j, i));
            }
        }
    }

    /// Delivers a raw datagram to node `to` now.
    pub fn inject(&mut self, to: usize, from: SocketAddr, bytes: &[u8]) {
        let now = self.now;
        if let Some(swim) = self.nodes[to].swim.as_mut() {
            let out = swim.handle_packet(from, bytes, now);
            self.process(to, out);
        }
    }

    /// Lets node `i` act on a call of its own, e.g. `|s, now| s.leave(now)`.
    pub fn act(&mut self, i: usize, f: impl FnOnce(&mut Swim, Instant) -> Vec<Output>) {
        let now = self.now;
        if let Some(swim) = self.nodes[i].swim.as_mut() {
            let out = f(swim, now);
            self.process(i, out);
        }
    }

    fn process(&mut self, i: usize, outputs: Vec<Output>) {
        let node = &mut self.nodes[i];
        node.deadline = node.swim.as_ref().map(Swim::next_deadline);
        self.reindex(i);
        for output in outputs {
            let event = match output {
                Output::Send { to, bytes, kind } => {
                    *self.nodes[i].sent.entry(kind_label(kind)).or_default() += 1;
                    self.transmit(i, to, bytes);
                    continue;
                }
                Output::Received(_) => continue,
                Output::Up { name, .. } => Event::Up(name),
                Output::Suspect { name } => Event::Suspect(name),
                Output::Down { name, reason } => Event::Down(name, reason),
                Output::Dropped(reason) => Event::Dropped(reason),
            };
            self.nodes[i].events.push((self.now, event));
        }
    }

    fn transmit(&mut self, from: usize, to: SocketAddr, bytes: Vec<u8>) {
        let Some(&j) = self.by_addr.get(&to) else {
            return;
        };
        self.bytes_sent += bytes.len() as u64;
        if let Some(capture) = self.capture.as_mut() {
            capture.push((from, j, bytes.clone()));
        }
        if self.blocked.contains(&(from, j)) || (self.loss > 0.0 && self.rng.random_bool(self.loss))
        {
            return;
        }
        let mut delay = self.latency;
        for node in [from, j] {
            if let Some(&jitter) = self.jitter.get(&node) {
                delay += jitter.mul_f64(self.rng.random::<f64>());
            }
        }
        let flight = InFlight {
            from: self.nodes[from].addr,
            to: j,
            bytes,
        };
        self.queue(self.now + delay, flight);
    }

    fn queue(&mut self, at: Instant, flight: InFlight) {
        self.next_flight += 1;
        self.in_flight.insert((at, self.next_flight), flight);
    }

    /// When node `i`'s timers run next: its deadline, or when it wakes if that is later.
    fn timer_of(node: &SimNode) -> Option<Instant> {
        let deadline = node.deadline?;
        Some(node.paused_until.map_or(deadline, |u| deadline.max(u)))
    }

    /// Brings node `i`'s entry in [`Sim::timers`] up to date.
    fn reindex(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let timer = Self::timer_of(node);
        if timer == node.timer {
            return;
        }
        if let Some(old) = std::mem::replace(&mut node.timer, timer) {
            self.timers.remove(&(old, i));
        }
        if let Some(new) = timer {
            self.timers.insert((new, i));
        }
    }

    fn next_timer(&self) -> Option<(Instant, usize)> {
        self.timers.first().copied()
    }

    /// Runs one event; returns false if nothing is left to run before `end`.
    fn step(&mut self, end: Instant) -> bool {
        let flight = self.in_flight.first_key_value().map(|(k, _)| k.0);
        let timer = self.next_timer();
        let deliver = match (flight, timer) {
            (Some(f), Some((t, _))) => f <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return false,
        };
        if deliver {
            let Some(((at, _), flight)) = self.in_flight.pop_first() else {
                return false;
            };
            if at > end {
                self.in_flight.insert((at, 0), flight);
                return false;
            }
            self.now = self.now.max(at);
            let now = self.now;
            // A frozen node reads it when it wakes, before its timers (which wait as long).
            if let Some(until) = self.nodes[flight.to].paused_until {
                if until > now {
                    self.queue(until, flight);
                    return true;
                }
                self.nodes[flight.to].paused_until = None;
                self.reindex(flight.to);
            }
            if let Some(swim) = self.nodes[flight.to].swim.as_mut() {
                let out = swim.handle_packet(flight.from, &flight.bytes, now);
                self.process(flight.to, out);
            }
        } else if let Some((at, i)) = timer {
            if at > end {
                return false;
            }
            self.now = self.now.max(at);
            let now = self.now;
            if self.nodes[i].paused_until.is_some_and(|u| u <= now) {
                self.nodes[i].paused_until = None;
                self.reindex(i);
            }
            if let Some(swim) = self.nodes[i].swim.as_mut() {
                let out = swim.handle_tick(now);
                self.process(i, out);
            }
        }
        true
    }

    /// Runs until `done` holds (returning how long that took) or `limit` passes (`None`).
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        let end = start + limit;
        loop {
            if done(self) {
                return Some(self.now - start);
            }
            if !self.step(end) {
                self.now = end;
                return done(self).then(|| self.now - start);
            }
        }
    }

    pub fn run_for(&mut self, duration: Duration) {
        let _ = self.run_until(duration, |_| false);
    }

    /// Whether every running node of `observers` sees exactly `members` as live.
    pub fn all_see(&self, observers: &[usize], members: &[usize]) -> bool {
        observers.iter().all(|&o| {
            let Some(swim) = self.nodes[o].swim.as_ref() else {
                return true;
            };
            (0..self.nodes.len()).all(|m| swim.is_live(&self.nodes[m].name) == members.contains(&m))
        })
    }

    /// Whether no running node other than `i` sees `i` as live.
    pub fn nobody_sees(&self, i: usize) -> bool {
        self.others_running(i)
            .all(|s| !s.is_live(&self.nodes[i].name))
    }

    /// Whether every running node other than `i` sees `i` as live.
    pub fn everyone_sees(&self, i: usize) -> bool {
        self.others_running(i)
            .all(|s| s.is_live(&self.nodes[i].name))
    }

    /// The running members other than node `i`.
    fn others_running(&self, i: usize) -> impl Iterator<Item = &Swim> {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(j, _)| *j != i)
            .filter_map(|(_, n)| n.swim.as_ref())
    }

    pub fn random_index(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }

    pub fn random_duration(&mut self, max: Duration) -> Duration {
        max.mul_f64(self.rng.random::<f64>())
    }
}

pub fn kind_label(kind: MessageKind) -> &'static str {
    kind.label()
}
