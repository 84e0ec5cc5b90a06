//! The layer-2 announcer of one node: answers ARP and NDP for the IPs this node owns and
//! announces them, on the interfaces allowed for each.
//!
//! Level-triggered: it watches the whole desired [`Plan`] and the interface table
//! ([`crate::netlink::watch_interfaces`]) and applies the difference. One responder task runs per
//! usable interface that has something to answer ([`crate::netlink::eligibility`]); it starts when
//! the interface comes up (with a gratuitous burst for its IPs) and is stopped at once when the
//! interface goes down, changes MAC or name, or becomes ineligible.
//!
//! Per IP and interface (see `table` for the state machine):
//! - **taking** an IP sends a gratuitous burst at [`AnnouncerSettings::burst`] offsets (ARP: a
//!   request and a reply with sender = target = the IP, broadcast; NDP: an unsolicited
//!   advertisement with Override, from the IP to ff02::1), then one every
//!   [`AnnouncerSettings::refresh`];
//! - **answering**: ARP requests (broadcast or to our MAC) and neighbor solicitations, with or
//!   without a source link-layer option; a solicitation from the unspecified address (duplicate
//!   address detection) is answered to ff02::1. Advertisements come from the IP itself
//!   (Solicited, Override) and carry the interface's MAC;
//! - **releasing** (make-before-break): an IP leaving the plan is still answered, silently, until
//!   another MAC claims it or [`AnnouncerSettings::linger`] passes; [`AnnouncerControl::drain`]
//!   releases everything this way and ends when all is handed over;
//! - **split brain**: another MAC (not one of this node's interfaces) claiming an owned IP — a
//!   gratuitous ARP, an ARP reply or request sent from the IP, an advertisement of the IP with
//!   another link-layer address, a solicitation sent from the IP — is a [`Conflict`]. The side
//!   with the numerically higher MAC loses and stops answering; the winner re-announces, but
//!   only if it still owns the IP half a second later: most claims are a successor that learned
//!   of a drain or failover before the owner did, and an owner released within that grace hands
//!   over at once rather than silencing its successor. After each
//!   [`AnnouncerSettings::hold_down`] the loser probes (an ARP probe from 0.0.0.0 or a
//!   duplicate-address-detection solicitation, which change no client's cache) and resumes only
//!   if the winner no longer answers. An owner answers (defends against) probes; a lingering
//!   one does not, so a new owner that still lost a race against a soon-releasing one takes
//!   over about one hold-down after the release, inside the old owner's linger. Hand-over races
//!   report a (transient) conflict.
//!
//! Frames that are not for us (flooded unicast between other hosts) are ignored; malformed ones
//! are counted and dropped. [`AnnouncerHandle::announcing`] shows what is really answered now.

mod frame;
mod metrics;
mod responder;
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

pub use self::frame::{
    ALL_NODES, ETHERTYPE_IPV6, FrameError, NDP_HOP_LIMIT, NdpFrame, NdpMessage, checksum,
    ipv6_frame,
};
pub use self::metrics::{L2Labels, L2Metrics, Protocol};
use self::responder::{Desired, Outlets, Report, Responder, Sockets};
use self::table::{Table, Timing};
use crate::layer2::arp::Mac;
use crate::netlink::{ExcludeList, Families, Interfaces, eligibility};

/// On which interfaces an IP is announced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum InterfaceChoice {
    /// Every usable interface.
    #[default]
    All,
    /// Only these (an L2Advertisement's `interfaces`), if usable.
    Named(BTreeSet<String>),
}

impl InterfaceChoice {
    /// Whether the interface named `name` may announce.
    pub fn admits(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Named(names) => names.contains(name),
        }
    }
}

/// The IPs this node must announce now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Each IP with the interfaces it may be announced on.
    pub ips: BTreeMap<IpAddr, InterfaceChoice>,
}

/// How the announcer behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnouncerSettings {
    /// Interfaces never used, by name.
    pub exclude: ExcludeList,
    /// Offsets of the gratuitous sends after taking an IP (default 0, 100 ms, 300 ms, 1 s).
    pub burst: Vec<Duration>,
    /// Period of gratuitous refreshes after the burst (default 10 s; zero: none).
    pub refresh: Duration,
    /// How long a released IP is still answered, unless a successor claims it (default 2 s).
    pub linger: Duration,
    /// How long the loser of a split brain stays silent before probing whether the winner
    /// still answers (default 1 s; keep it below `linger` so a hand-over race stays
    /// make-before-break). The loser stays silent as long as the winner answers.
    pub hold_down: Duration,
}

impl Default for AnnouncerSettings {
    fn default() -> Self {
        Self {
            exclude: ExcludeList::default(),
            burst: [0, 100, 300, 1000]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
            refresh: Duration::from_secs(10),
            linger: Duration::from_secs(2),
            hold_down: Duration::from_secs(1),
        }
    }
}

/// Another MAC claims an IP this node announces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The IP.
    pub ip: IpAddr,
    /// Where the claim was seen.
    pub interface: String,
    /// This interface's MAC.
    pub ours: Mac,
    /// The claimant's MAC.
    pub theirs: Mac,
    /// This node has the higher MAC, so it stopped answering the IP there.
    pub we_lose: bool,
}

/// What is answered now: per IP, the interfaces (lingering IPs included, held-down ones not).
pub type Announcing = BTreeMap<IpAddr, BTreeSet<String>>;

/// A running announcer.
#[derive(Debug)]
pub struct AnnouncerHandle {
    /// What is really being answered now, per IP the interface names.
    pub announcing: watch::Receiver<Announcing>,
    /// Split-brain reports (the most recent are dropped if nobody reads them).
    pub conflicts: mpsc::Receiver<Conflict>,
    /// Stopping it.
    pub control: AnnouncerControl,
}

impl AnnouncerHandle {
    /// Graceful stop; see [`AnnouncerControl::drain`].
    pub async fn drain(self) {
        self.control.drain().await;
    }
}

/// Stops an announcer: gracefully with [`AnnouncerControl::drain`], at once when dropped.
#[derive(Debug)]
pub struct AnnouncerControl {
    drain: Option<oneshot::Sender<()>>,
    task: AbortOnDrop,
}

impl AnnouncerControl {
    /// Graceful stop: announces nothing more, keeps answering each IP until another MAC claims
    /// it or the linger passes, then stops. Returns when everything is handed over.
    pub async fn drain(mut self) {
        if let Some(drain) = self.drain.take() {
            let _ = drain.send(());
        }
        if let Err(e) = (&mut self.task.0).await
            && e.is_panic()
        {
            error!(error = %e, "the layer-2 announcer panicked");
        }
    }
}

#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What one interface should answer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Wanted {
    name: String,
    mac: Mac,
    families: Families,
    ips: BTreeSet<IpAddr>,
}

/// Every usable interface with the IPs of `plan` it should answer (possibly none). Pure.
fn wanted(plan: &Plan, interfaces: &Interfaces, exclude: &ExcludeList) -> BTreeMap<u32, Wanted> {
    let mut wanted = BTreeMap::new();
    for iface in interfaces.by_index.values() {
        let (Ok(families), Some(mac)) = (eligibility(iface, exclude), iface.mac) else {
            continue;
        };
        let ips = plan
            .ips
            .iter()
            .filter(|(ip, choice)| {
                choice.admits(&iface.name)
                    && match ip {
                        IpAddr::V4(_) => families.arp,
                        IpAddr::V6(_) => families.ndp,
                    }
            })
            .map(|(ip, _)| *ip)
            .collect();
        wanted.insert(
            iface.index,
            Wanted {
                name: iface.name.clone(),
                mac,
                families,
                ips,
            },
        );
    }
    wanted
}

/// Where each IP of `plan` would be announced on this node: the plan resolved against the
/// interface table (without lingering and split-brain state). Pure; for explanations.
pub fn planned_interfaces(
    plan: &Plan,
    interfaces: &Interfaces,
    exclude: &ExcludeList,
) -> Announcing {
    let mut planned = Announcing::new();
    for w in wanted(plan, interfaces, exclude).into_values() {
        for ip in w.ips {
            planned.entry(ip).or_default().insert(w.name.clone());
        }
    }
    planned
}

/// How long to wait before retrying an interface whose sockets could not be opened.
const RETRY: Duration = Duration::from_secs(5);
/// Conflict reports buffered for the reader.
const CONFLICT_BUFFER: usize = 64;

/// A running responder, as the announcer tracks it.
#[derive(Debug)]
struct Running {
    generation: u64,
    name: String,
    mac: Mac,
    families: Families,
    desired: watch::Sender<Desired>,
    abort: AbortHandle,
}

/// The announcer's coordinating task: starts, updates and stops the responders.
#[derive(Debug)]
pub struct Announcer {
    settings: AnnouncerSettings,
    timing: Timing,
    plan: watch::Receiver<Plan>,
    interfaces: watch::Receiver<Interfaces>,
    outlets: Outlets,
    announcing: watch::Sender<Announcing>,
    responders: BTreeMap<u32, Running>,
    tasks: JoinSet<()>,
    answering: BTreeMap<u64, (String, BTreeSet<IpAddr>)>,
    generation: u64,
    draining: bool,
    /// Interfaces whose sockets could not be opened, with when to try again.
    failed: BTreeMap<u32, Instant>,
}

impl Announcer {
    /// Starts the announcer on the current tokio runtime (the raw sockets are opened in the
    /// calling thread's network namespace). Dropping the handle's control stops it at once.
    pub fn spawn(
        settings: AnnouncerSettings,
        metrics: Arc<L2Metrics>,
        plan: watch::Receiver<Plan>,
        interfaces: watch::Receiver<Interfaces>,
    ) -> AnnouncerHandle {
        let (conflicts_tx, conflicts) = mpsc::channel(CONFLICT_BUFFER);
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let (announcing_tx, announcing) = watch::channel(Announcing::new());
        let (drain_tx, drain_rx) = oneshot::channel();
        let timing = Timing::new(
            settings.burst.clone(),
            settings.refresh,
            settings.linger,
            settings.hold_down,
        );
        let announcer = Self {
            settings,
            timing,
            plan,
            interfaces,
            outlets: Outlets {
                metrics,
                conflicts: conflicts_tx,
                reports: reports_tx,
            },
            announcing: announcing_tx,
            responders: BTreeMap::new(),
            tasks: JoinSet::new(),
            answering: BTreeMap::new(),
            generation: 0,
            draining: false,
            failed: BTreeMap::new(),
        };
        let task = tokio::spawn(announcer.run(drain_rx, reports));
        AnnouncerHandle {
            announcing,
            conflicts,
            control: AnnouncerControl {
                drain: Some(drain_tx),
                task: AbortOnDrop(task),
            },
        }
    }

    async fn run(
        mut self,
        mut drain: oneshot::Receiver<()>,
        mut reports: mpsc::UnboundedReceiver<Report>,
    ) {
        let (mut plan_open, mut interfaces_open, mut drain_open) = (true, true, true);
        self.plan.mark_changed();
        loop {
            tokio::select! {
                changed = self.plan.changed(), if plan_open && !self.draining => {
                    plan_open = changed.is_ok();
                }
                changed = self.interfaces.changed(), if interfaces_open => {
                    interfaces_open = changed.is_ok();
                    if !interfaces_open {
                        warn!("the interface table is no longer updated");
                    }
                }
                requested = &mut drain, if drain_open => {
                    drain_open = false;
                    if requested.is_ok() {
                        info!("draining: announcing nothing more, answering until handed over");
                        self.draining = true;
                    }
                }
                Some(done) = self.tasks.join_next_with_id() => {
                    let id = match &done {
                        Ok((id, ())) => *id,
                        Err(e) => {
                            if e.is_panic() {
                                error!(error = %e, "a layer-2 responder panicked");
                            }
                            e.id()
                        }
                    };
                    self.forget(|r| r.abort.id() == id);
                }
                Some(report) = reports.recv() => {
                    if let Some((_, answering)) = self.answering.get_mut(&report.generation) {
                        *answering = report.answering;
                    }
                }
                () = ferrolb_runtime::sleep_until(self.failed.values().min().copied()) => {}
            }
            self.reconcile();
            if self.draining && self.responders.is_empty() {
                info!("drained");
                return;
            }
        }
    }

    /// Brings the responders in line with the plan and the interface table.
    fn reconcile(&mut self) {
        let interfaces = self.interfaces.borrow().clone();
        let plan = self.plan.borrow().clone();
        let mut wanted = wanted(&plan, &interfaces, &self.settings.exclude);
        let own_macs = interfaces.macs();

        let stale: Vec<u32> = self
            .responders
            .iter()
            .filter(|(index, r)| {
                wanted
                    .get(*index)
                    .is_none_or(|w| (&w.name, w.mac, w.families) != (&r.name, r.mac, r.families))
            })
            .map(|(index, _)| *index)
            .collect();
        for index in stale {
            let Some(r) = self.responders.remove(&index) else {
                continue;
            };
            r.abort.abort();
            self.answering.remove(&r.generation);
            let why = interfaces.by_index.get(&index).map_or_else(
                || "interface removed".to_owned(),
                |i| match eligibility(i, &self.settings.exclude) {
                    Err(why) => why.to_string(),
                    Ok(_) => "interface changed".to_owned(),
                },
            );
            info!(interface = %r.name, reason = %why, "stopped answering on the interface");
        }

        let now = Instant::now();
        self.failed
            .retain(|index, _| wanted.get(index).is_some_and(|w| !w.ips.is_empty()));
        for (index, w) in &mut wanted {
            let desired = Desired {
                ips: if self.draining {
                    BTreeSet::new()
                } else {
                    std::mem::take(&mut w.ips)
                },
                own_macs: own_macs.clone(),
                draining: self.draining,
            };
            if let Some(r) = self.responders.get(index) {
                r.desired.send_if_modified(|current| {
                    let changed = *current != desired;
                    *current = desired;
                    changed
                });
            } else if !desired.ips.is_empty()
                && self.failed.get(index).is_none_or(|retry| *retry <= now)
            {
                if self.start(*index, w, desired) {
                    self.failed.remove(index);
                } else {
                    self.failed.insert(*index, now + RETRY);
                }
            }
        }
        self.publish();
    }

    /// Opens the interface's sockets and spawns its responder; false if the sockets failed.
    fn start(&mut self, index: u32, w: &Wanted, desired: Desired) -> bool {
        let sockets = match Sockets::open(index, w.families.arp, w.families.ndp) {
            Ok(sockets) => sockets,
            Err(e) => {
                warn!(interface = %w.name, error = %e, "cannot open raw sockets; retrying later");
                return false;
            }
        };
        self.generation += 1;
        let (desired_tx, desired_rx) = watch::channel(desired);
        let responder = Responder {
            name: w.name.clone(),
            mac: w.mac,
            generation: self.generation,
            sockets,
            table: Table::new(w.mac, self.timing.clone()),
            desired: desired_rx,
            outlets: self.outlets.clone(),
        };
        debug!(interface = %w.name, index, "starting a responder");
        let abort = self.tasks.spawn(responder.run());
        self.answering
            .insert(self.generation, (w.name.clone(), BTreeSet::new()));
        self.responders.insert(
            index,
            Running {
                generation: self.generation,
                name: w.name.clone(),
                mac: w.mac,
                families: w.families,
                desired: desired_tx,
                abort,
            },
        );
        true
    }

    /// Forgets the responders matching `which` (ended or stopped) and what they answered.
    fn forget(&mut self, which: impl Fn(&Running) -> bool) {
        let gone: Vec<(u32, u64)> = self
            .responders
            .iter()
            .filter(|(_, r)| which(r))
            .map(|(index, r)| (*index, r.generation))
            .collect();
        for (index, generation) in gone {
            self.responders.remove(&index);
            self.answering.remove(&generation);
        }
    }

    fn publish(&self) {
        let mut announcing = Announcing::new();
        for (name, ips) in self.answering.values() {
            for ip in ips {
                announcing.entry(*ip).or_default().insert(name.clone());
            }
        }
        self.announcing.send_if_modified(|current| {
            let changed = *current != announcing;
            *current = announcing;
            changed
        });
    }
}

#[cfg(test)]
mod tests;
