//! What one interface answers, as a sans-IO state machine: desired IPs, received frames and the
//! clock go in, frames to send and events come out. Time is passed in, so tests need no clock.
//!
//! Each IP is in one phase:
//!
//! ```text
//!            desired                     claimed by a lower MAC
//!   (none) ──────────▶ Owned ───────────────────────────────────▶ HeldDown ◀─┐ probe answered
//!                     │  ▲  ◀──── hold-down, then probe unanswered ──┘ │  └───┘ by a lower MAC
//!   not desired       │  │ desired again                                │ not desired
//!   (linger > 0)      ▼  │                                              ▼
//!                   Lingering ── claimed by another MAC / linger passed ──▶ (none)
//! ```
//!
//! Owned and Lingering IPs are answered (ARP requests, neighbor solicitations); only Owned IPs
//! are announced (a gratuitous burst on taking them, then a refresh) and defended against probes
//! (an ARP probe from 0.0.0.0, a duplicate-address-detection solicitation from ::). Another MAC
//! claiming an Owned IP is a split brain: the side with the higher MAC goes silent, the other
//! re-announces — after [`DEFEND_AFTER`], and silent until then, because the claim is most often
//! a successor that learned of a hand-over first: released within that grace, the owner hands
//! over at once. After each hold-down the silent side probes — invisibly to clients' caches —
//! and resumes only if no lower MAC answers within [`PROBE_WAIT`]. A lingering owner does not
//! answer probes, so a successor that lost a race against a soon-releasing owner takes over one
//! hold-down later, while the owner still lingers. Claiming a Lingering IP is the successor
//! taking over.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use tokio::time::Instant;

use super::frame::{NdpFrame, NdpMessage};
use super::metrics::Protocol;
use crate::layer2::arp::{ArpFrame, Mac, Operation};
use crate::layer2::ndp::{Advertisement, Solicitation, multicast_mac, solicited_node};

/// How long a silenced split-brain loser waits for an answer to its probe before resuming.
pub(crate) const PROBE_WAIT: Duration = Duration::from_millis(300);

/// How long an owner whose IP another (higher) MAC claims waits before it counter-announces.
/// A claim is most often a successor that saw a drain or a failover a little earlier than the
/// owner did: if the owner's own release follows within this grace, it hands over at once
/// instead of silencing the successor for a hold-down.
pub(crate) const DEFEND_AFTER: Duration = Duration::from_millis(500);

/// The announcer's timers, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Timing {
    /// Offsets of the gratuitous sends after taking an IP, ascending.
    pub burst: Vec<Duration>,
    /// Period of gratuitous refreshes after the burst (zero: none).
    pub refresh: Duration,
    /// How long a released IP is still answered.
    pub linger: Duration,
    /// How long the loser of a split brain stays silent before probing for the winner.
    pub hold_down: Duration,
}

impl Timing {
    /// Sorts the burst.
    pub fn new(
        mut burst: Vec<Duration>,
        refresh: Duration,
        linger: Duration,
        hold_down: Duration,
    ) -> Self {
        burst.sort_unstable();
        Self {
            burst,
            refresh,
            linger,
            hold_down,
        }
    }
}

/// Something the interface's responder must do or report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send an ARP frame.
    Arp { frame: ArpFrame, kind: Sent },
    /// Send an NDP frame.
    Ndp { frame: NdpFrame, kind: Sent },
    /// Join a solicited-node group.
    Join(Ipv6Addr),
    /// Leave a solicited-node group.
    Leave(Ipv6Addr),
    /// A request (ARP request, solicitation) for an IP in the table arrived.
    Request(Protocol),
    /// Another MAC claims an IP we own.
    Conflict {
        ip: IpAddr,
        theirs: Mac,
        we_lose: bool,
        protocol: Protocol,
    },
    /// An IP changed phase (for logs).
    Change(IpAddr, Change),
}

/// Why a frame is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Answering a request.
    Reply,
    /// Announcing (burst or refresh).
    Gratuitous,
    /// A silenced loser checking whether the winner still answers.
    Probe,
}

/// Why an IP's phase changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Newly desired: answered and announced.
    Took,
    /// Desired again while lingering.
    Reclaimed,
    /// Nobody answered the probe after the hold-down: answered and announced again.
    Resumed,
    /// No longer desired: still answered until the linger passes or a successor claims it.
    Lingering,
    /// A successor (this MAC) claimed it while it lingered.
    HandedOver(Mac),
    /// The linger passed.
    LingerExpired,
    /// Lost a split brain to this MAC: silent for the hold-down.
    HeldDown(Mac),
    /// No longer desired and not lingering.
    Dropped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Owned,
    Lingering {
        until: Instant,
    },
    /// Silent; at `until` probe (or, if `probing`, resume: the probe went unanswered).
    HeldDown {
        until: Instant,
        probing: bool,
    },
}

/// When the next gratuitous announcement of an Owned IP is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Schedule {
    start: Instant,
    /// Index of the next burst offset; `burst.len()` once refreshing.
    step: usize,
    next: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    phase: Phase,
    schedule: Option<Schedule>,
    /// The MAC whose claim the running burst answers (one conflict report per burst).
    contested_by: Option<Mac>,
    /// Claimed by `contested_by`, a higher MAC: silent, and a counter-burst at this time if
    /// the IP is still desired then.
    defend_at: Option<Instant>,
}

/// The IPs of one interface and what is owed for them.
#[derive(Debug)]
pub(crate) struct Table {
    mac: Mac,
    timing: Timing,
    own_macs: BTreeSet<Mac>,
    draining: bool,
    entries: BTreeMap<IpAddr, Entry>,
    /// Solicited-node groups joined, with the number of IPs needing each.
    groups: BTreeMap<Ipv6Addr, usize>,
}

impl Table {
    /// An empty table for the interface whose MAC is `mac`.
    pub fn new(mac: Mac, timing: Timing) -> Self {
        Self {
            mac,
            timing,
            own_macs: [mac].into(),
            draining: false,
            entries: BTreeMap::new(),
            groups: BTreeMap::new(),
        }
    }

    /// The IPs answered now (Owned and Lingering).
    pub fn answering(&self) -> BTreeSet<IpAddr> {
        self.entries
            .iter()
            .filter(|(_, e)| answers(e, false))
            .map(|(ip, _)| *ip)
            .collect()
    }

    /// Nothing owned, lingering or held down.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The earliest time [`Table::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| match e.phase {
                Phase::Owned => e.defend_at.or(e.schedule.map(|s| s.next)),
                Phase::Lingering { until } | Phase::HeldDown { until, .. } => Some(until),
            })
            .min()
    }

    /// Applies the desired IPs and the node's MACs. Draining stops every announcement for good
    /// and releases everything (as lingering).
    pub fn set_desired(
        &mut self,
        desired: &BTreeSet<IpAddr>,
        own_macs: &BTreeSet<Mac>,
        draining: bool,
        now: Instant,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        self.own_macs.clone_from(own_macs);
        self.own_macs.insert(self.mac);
        if draining && !self.draining {
            self.draining = true;
            for entry in self.entries.values_mut() {
                entry.schedule = None;
            }
        }
        let empty = BTreeSet::new();
        let desired = if self.draining { &empty } else { desired };
        for ip in desired {
            match self.entries.get(ip).map(|e| e.phase) {
                None => {
                    self.insert(*ip, now, &mut actions);
                    actions.push(Action::Change(*ip, Change::Took));
                }
                Some(Phase::Lingering { .. }) => {
                    self.own(*ip, now);
                    actions.push(Action::Change(*ip, Change::Reclaimed));
                }
                Some(Phase::Owned | Phase::HeldDown { .. }) => {}
            }
        }
        let released: Vec<(IpAddr, Phase)> = self
            .entries
            .iter()
            .filter(|(ip, _)| !desired.contains(*ip))
            .map(|(ip, e)| (*ip, e.phase))
            .collect();
        for (ip, phase) in released {
            let claimant = self
                .entries
                .get(&ip)
                .filter(|e| e.defend_at.is_some())
                .and_then(|e| e.contested_by);
            match phase {
                // Claimed just before: that was the successor.
                Phase::Owned if let Some(theirs) = claimant => {
                    self.remove(ip, &mut actions);
                    actions.push(Action::Change(ip, Change::HandedOver(theirs)));
                }
                Phase::Owned if !self.timing.linger.is_zero() => {
                    if let Some(entry) = self.entries.get_mut(&ip) {
                        entry.phase = Phase::Lingering {
                            until: now + self.timing.linger,
                        };
                        entry.schedule = None;
                    }
                    actions.push(Action::Change(ip, Change::Lingering));
                }
                Phase::Owned | Phase::HeldDown { .. } => {
                    self.remove(ip, &mut actions);
                    actions.push(Action::Change(ip, Change::Dropped));
                }
                Phase::Lingering { .. } => {}
            }
        }
        self.due(now, &mut actions);
        actions
    }

    /// Ends lingers, probes after hold-downs, resumes after unanswered probes and sends the
    /// announcements that are due.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let over: Vec<(IpAddr, Phase)> = self
            .entries
            .iter()
            .filter(|(_, e)| match e.phase {
                Phase::Lingering { until } | Phase::HeldDown { until, .. } => until <= now,
                Phase::Owned => false,
            })
            .map(|(ip, e)| (*ip, e.phase))
            .collect();
        for (ip, phase) in over {
            match phase {
                Phase::Lingering { .. } => {
                    self.remove(ip, &mut actions);
                    actions.push(Action::Change(ip, Change::LingerExpired));
                }
                Phase::HeldDown { probing: false, .. } => {
                    if let Some(entry) = self.entries.get_mut(&ip) {
                        entry.phase = Phase::HeldDown {
                            until: now + PROBE_WAIT,
                            probing: true,
                        };
                    }
                    actions.push(probe(ip, self.mac));
                }
                Phase::HeldDown { probing: true, .. } => {
                    self.own(ip, now);
                    actions.push(Action::Change(ip, Change::Resumed));
                }
                Phase::Owned => {}
            }
        }
        self.due(now, &mut actions);
        actions
    }

    /// Handles a received ARP frame (not one this host sent).
    pub fn on_arp(&mut self, frame: &ArpFrame, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        // Unicast between other hosts reaches us only by flooding: neither a question for us
        // nor a claim we should act on.
        if frame.eth_destination != Mac::BROADCAST && frame.eth_destination != self.mac {
            return actions;
        }
        let sender = IpAddr::V4(frame.sender_ip);
        if !self.own_macs.contains(&frame.sender_mac) && self.entries.contains_key(&sender) {
            self.claimed(sender, frame.sender_mac, Protocol::Arp, now, &mut actions);
        }
        let target = IpAddr::V4(frame.target_ip);
        let question = frame.operation == Operation::Request && frame.sender_ip != frame.target_ip;
        if question && let Some(entry) = self.entries.get(&target) {
            actions.push(Action::Request(Protocol::Arp));
            let probe = frame.sender_ip.is_unspecified();
            if answers(entry, probe)
                && let Some(reply) = frame.reply_from(self.mac)
            {
                actions.push(Action::Arp {
                    frame: reply,
                    kind: Sent::Reply,
                });
            }
        }
        self.due(now, &mut actions);
        actions
    }

    /// Handles a received NDP frame (not one this host sent).
    pub fn on_ndp(&mut self, frame: &NdpFrame, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let multicast = frame.eth_destination.0[0] & 1 == 1;
        if !multicast && frame.eth_destination != self.mac {
            return actions;
        }
        match frame.message {
            NdpMessage::Advertisement(na) => {
                let ip = IpAddr::V6(na.target);
                if !self.own_macs.contains(&na.mac) && self.entries.contains_key(&ip) {
                    self.claimed(ip, na.mac, Protocol::Ndp, now, &mut actions);
                }
            }
            NdpMessage::Solicitation(ns) => {
                // A host using one of our IPs as its own source address claims it.
                let source = IpAddr::V6(frame.source);
                let theirs = ns.source_mac.unwrap_or(frame.eth_source);
                if !self.own_macs.contains(&theirs) && self.entries.contains_key(&source) {
                    self.claimed(source, theirs, Protocol::Ndp, now, &mut actions);
                }
                let target = IpAddr::V6(ns.target);
                if let Some(entry) = self.entries.get(&target) {
                    actions.push(Action::Request(Protocol::Ndp));
                    if answers(entry, frame.source.is_unspecified()) {
                        let frame = self.advertisement(frame, ns.target, ns.source_mac);
                        actions.push(Action::Ndp {
                            frame,
                            kind: Sent::Reply,
                        });
                    }
                }
            }
        }
        self.due(now, &mut actions);
        actions
    }

    /// The answer to a solicitation for `target`: to the asker (S=1, O=1), or for duplicate
    /// address detection (unspecified source) to all nodes (S=0, O=1), from the target itself.
    fn advertisement(&self, ns: &NdpFrame, target: Ipv6Addr, source_mac: Option<Mac>) -> NdpFrame {
        if ns.source.is_unspecified() {
            return NdpFrame::unsolicited(target, self.mac);
        }
        let solicitation = Solicitation { target, source_mac };
        NdpFrame {
            eth_destination: source_mac.unwrap_or(ns.eth_source),
            eth_source: self.mac,
            source: target,
            destination: ns.source,
            message: NdpMessage::Advertisement(Advertisement::answering(&solicitation, self.mac)),
        }
    }

    fn claimed(
        &mut self,
        ip: IpAddr,
        theirs: Mac,
        protocol: Protocol,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let we_lose = self.mac > theirs;
        let hold_down = self.timing.hold_down;
        let Some(entry) = self.entries.get_mut(&ip) else {
            return;
        };
        let phase = entry.phase;
        match phase {
            Phase::Owned if we_lose => {
                entry.phase = Phase::HeldDown {
                    until: now + hold_down,
                    probing: false,
                };
                entry.schedule = None;
                entry.contested_by = None;
                entry.defend_at = None;
                actions.push(Action::Conflict {
                    ip,
                    theirs,
                    we_lose,
                    protocol,
                });
                actions.push(Action::Change(ip, Change::HeldDown(theirs)));
            }
            Phase::Owned => {
                let bursting = entry
                    .schedule
                    .is_some_and(|s| s.step < self.timing.burst.len());
                if entry.contested_by == Some(theirs) && (bursting || entry.defend_at.is_some()) {
                    return;
                }
                actions.push(Action::Conflict {
                    ip,
                    theirs,
                    we_lose,
                    protocol,
                });
                // Silent for the grace: a successor is not to be talked over.
                entry.contested_by = Some(theirs);
                entry.schedule = None;
                entry.defend_at = Some(now + DEFEND_AFTER);
            }
            Phase::Lingering { .. } => {
                self.remove(ip, actions);
                actions.push(Action::Change(ip, Change::HandedOver(theirs)));
            }
            // The winner answered our probe: silent for another hold-down. Claims in between
            // (its announcements) change nothing; a higher MAC answering is beaten on resuming.
            Phase::HeldDown { probing: true, .. } if we_lose => {
                entry.phase = Phase::HeldDown {
                    until: now + hold_down,
                    probing: false,
                };
            }
            Phase::HeldDown { .. } => {}
        }
    }

    /// Sends the gratuitous announcements that are due and schedules the next ones.
    fn due(&mut self, now: Instant, actions: &mut Vec<Action>) {
        for entry in self.entries.values_mut() {
            if entry.phase == Phase::Owned && entry.defend_at.is_some_and(|at| at <= now) {
                entry.defend_at = None;
                entry.schedule = schedule(&self.timing, self.draining, now);
            }
        }
        for (ip, entry) in &mut self.entries {
            let Some(s) = entry.schedule.as_mut().filter(|s| s.next <= now) else {
                continue;
            };
            if entry.phase != Phase::Owned {
                continue;
            }
            gratuitous(*ip, self.mac, actions);
            s.step += 1;
            match self.timing.burst.get(s.step) {
                Some(offset) => s.next = s.start + *offset,
                None if !self.timing.refresh.is_zero() => {
                    s.step = self.timing.burst.len();
                    s.next = now + self.timing.refresh;
                    entry.contested_by = None;
                }
                None => {
                    entry.schedule = None;
                    entry.contested_by = None;
                }
            }
        }
    }

    fn insert(&mut self, ip: IpAddr, now: Instant, actions: &mut Vec<Action>) {
        self.entries.insert(
            ip,
            Entry {
                phase: Phase::Owned,
                schedule: schedule(&self.timing, self.draining, now),
                contested_by: None,
                defend_at: None,
            },
        );
        if let IpAddr::V6(v6) = ip {
            let count = self.groups.entry(solicited_node(v6)).or_insert(0);
            *count += 1;
            if *count == 1 {
                actions.push(Action::Join(solicited_node(v6)));
            }
        }
    }

    fn own(&mut self, ip: IpAddr, now: Instant) {
        if let Some(entry) = self.entries.get_mut(&ip) {
            entry.phase = Phase::Owned;
            entry.schedule = schedule(&self.timing, self.draining, now);
            entry.contested_by = None;
            entry.defend_at = None;
        }
    }

    fn remove(&mut self, ip: IpAddr, actions: &mut Vec<Action>) {
        if self.entries.remove(&ip).is_none() {
            return;
        }
        if let IpAddr::V6(v6) = ip {
            let group = solicited_node(v6);
            if let Some(count) = self.groups.get_mut(&group) {
                *count -= 1;
                if *count == 0 {
                    self.groups.remove(&group);
                    actions.push(Action::Leave(group));
                }
            }
        }
    }
}

/// Whether a request is answered: Owned IPs answer everything (defending them against probes),
/// Lingering IPs answer only real requests (a probe is likely the successor checking).
fn answers(entry: &Entry, probe: bool) -> bool {
    match entry.phase {
        Phase::Owned => true,
        Phase::Lingering { .. } => !probe,
        Phase::HeldDown { .. } => false,
    }
}

fn schedule(timing: &Timing, draining: bool, now: Instant) -> Option<Schedule> {
    if draining {
        return None;
    }
    if let Some(first) = timing.burst.first() {
        return Some(Schedule {
            start: now,
            step: 0,
            next: now + *first,
        });
    }
    (!timing.refresh.is_zero()).then(|| Schedule {
        start: now,
        step: 0,
        next: now + timing.refresh,
    })
}

fn gratuitous(ip: IpAddr, mac: Mac, actions: &mut Vec<Action>) {
    match ip {
        IpAddr::V4(v4) => {
            for frame in ArpFrame::gratuitous(v4, mac) {
                actions.push(Action::Arp {
                    frame,
                    kind: Sent::Gratuitous,
                });
            }
        }
        IpAddr::V6(v6) => actions.push(Action::Ndp {
            frame: NdpFrame::unsolicited(v6, mac),
            kind: Sent::Gratuitous,
        }),
    }
}

/// A question for `ip` that changes no neighbour cache: an ARP probe (RFC 5227, sender
/// 0.0.0.0) or a duplicate-address-detection solicitation (from ::, no source option). An owner
/// answers it; the answer is a claim we see.
fn probe(ip: IpAddr, mac: Mac) -> Action {
    match ip {
        IpAddr::V4(v4) => Action::Arp {
            frame: ArpFrame {
                eth_destination: Mac::BROADCAST,
                eth_source: mac,
                operation: Operation::Request,
                sender_mac: mac,
                sender_ip: std::net::Ipv4Addr::UNSPECIFIED,
                target_mac: Mac::ZERO,
                target_ip: v4,
            },
            kind: Sent::Probe,
        },
        IpAddr::V6(v6) => {
            let group = solicited_node(v6);
            Action::Ndp {
                frame: NdpFrame {
                    eth_destination: multicast_mac(group),
                    eth_source: mac,
                    source: Ipv6Addr::UNSPECIFIED,
                    destination: group,
                    message: NdpMessage::Solicitation(Solicitation {
                        target: v6,
                        source_mac: None,
                    }),
                },
                kind: Sent::Probe,
            }
        }
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
