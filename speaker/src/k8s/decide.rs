//! The decision pass, run on every change the loop sees. It costs what changed, not what
//! exists ([`plan::Decisions`]):
//!
//! - the views of the Services the reflectors touched are built again, each from its own
//!   EndpointSlices ([`Touched`]);
//! - the layer-2 election runs for their IPs, for the IPs of a speaker that left, for the IPs
//!   held while an endpoint settles, and for every IP only when the Nodes, the configuration
//!   or the speakers that joined changed;
//! - the announcer's plan and the ServiceL2Status wanted are changed for those IPs alone.
//!
//! The BGP half still runs over every BGP Service on each pass, and not at all while no
//! BGPAdvertisement exists.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use ferrolb_config::NodeName;
use kube::runtime::events::EventType;
use tokio::time::Instant;

use super::slim::SlimService;
use super::status::L2Report;
use super::touched::Touched;
use super::{Speaker, view};
use crate::election::{NodeInfo, World};
use crate::layer2::announcer::{InterfaceChoice, Plan};
use crate::plan::{self, Decision};
use crate::settle;

/// What the layer-2 election last ran against, besides the configuration: the Nodes, and
/// the live speakers (`None`: no membership).
pub(super) type LastWorld = Option<(BTreeMap<NodeName, NodeInfo>, Option<BTreeSet<NodeName>>)>;

impl Speaker {
    /// Decides what changed since the last pass, hands this node's share to the announcer,
    /// and gives each BGP session its routes.
    pub(super) fn decide(&mut self) {
        let started = Instant::now();
        let nodes: BTreeMap<NodeName, NodeInfo> = self
            .stores
            .nodes
            .state()
            .iter()
            .map(|n| {
                let mut info = view::node_info(n);
                if self.settings.announce_from_departing_nodes {
                    info.departing = None;
                }
                (
                    NodeName::from(n.metadata.name.clone().unwrap_or_default()),
                    info,
                )
            })
            .collect();
        let now = Instant::now();
        self.update_views(now);
        // The BGP half reads every Service, built from the caches on each pass.
        let services: Vec<plan::LbService> = if self.serving.config().bgp_advertisements.is_empty()
        {
            Vec::new()
        } else {
            self.stores
                .services
                .state()
                .iter()
                .filter_map(|svc| view_of(&self.touched, svc))
                .collect()
        };
        let (bgp_services, bgp_settled) =
            settle::hold_bgp(&services, &self.settings.node, &self.ages, now);
        let exclusion_step = self.decide_bgp(&nodes, &bgp_services, now);
        self.decide_layer2(&nodes, now);
        self.want_conditions(&nodes, &bgp_services);
        let reports_whole_by = self.open_reports(now);
        self.settled_at = self
            .held
            .values()
            .map(|h| h.until)
            .chain(bgp_settled)
            .chain(exclusion_step)
            .chain(reports_whole_by)
            .min();
        self.metrics
            .decide_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    /// Builds again the views of the Services changed since the last pass (all of them after
    /// a relist).
    fn update_views(&mut self, now: Instant) {
        let changes = self.touched.take();
        if changes.everything {
            let present: HashSet<String> = self
                .stores
                .services
                .state()
                .iter()
                .map(|s| s.key())
                .collect();
            for gone in self.decisions.retain_services(|key| present.contains(key)) {
                self.ages.observe_service(&gone, None, now);
            }
            self.showing_bgp.retain(|key| present.contains(key));
            for key in &present {
                self.update_view(key, now);
            }
        } else {
            for key in &changes.services {
                self.update_view(key, now);
            }
        }
        self.ages.prime();
    }

    /// Builds the view of the Service `key` from the caches again and tells the decisions.
    fn update_view(&mut self, key: &str, now: Instant) {
        let svc = SlimService::find(&self.stores.services, key);
        let view = svc.as_ref().and_then(|svc| view_of(&self.touched, svc));
        if svc.is_some_and(|s| s.bgp_advertised.is_some()) {
            self.showing_bgp.insert(key.to_owned());
        } else {
            self.showing_bgp.remove(key);
        }
        self.ages.observe_service(key, view.as_ref(), now);
        self.decisions.set_service(key, view.as_ref());
    }

    /// The layer-2 election of what changed, and this node's share of it to the announcer.
    fn decide_layer2(&mut self, nodes: &BTreeMap<NodeName, NodeInfo>, now: Instant) {
        if self.cut_off {
            self.plan_tx.send_if_modified(|current| {
                let changed = !current.ips.is_empty();
                *current = Plan::default();
                changed
            });
            self.last_world = None;
            return;
        }
        let live: Option<BTreeSet<NodeName>> = self.membership.as_ref().map(|m| {
            m.live
                .borrow()
                .iter()
                .map(|n| NodeName::from(n.clone()))
                .collect()
        });
        if !self.converged {
            let all_seen = live
                .as_ref()
                .is_none_or(|l| nodes.keys().all(|n| l.contains(n)));
            let grace = self
                .settings
                .membership
                .as_ref()
                .map_or(std::time::Duration::ZERO, |m| m.startup_grace);
            if !all_seen && self.started.elapsed() < grace {
                tracing::debug!("waiting for the membership to converge before announcing");
                return;
            }
            self.converged = true;
        }
        self.world_since(nodes, live.as_ref());
        for ip in self.held.keys() {
            self.decisions.mark(*ip);
        }
        let world = World {
            config: self.serving.config(),
            nodes,
            live: live.as_ref(),
            ignore_exclude_label: self.settings.ignore_exclude_label,
        };
        let (stores, touched, ages) = (&self.stores, &self.touched, &self.ages);
        let view = |key: &str| {
            let svc = SlimService::find(&stores.services, key)?;
            view_of(touched, &svc)
        };
        let mut held = BTreeMap::new();
        let decided = self.decisions.decide(world, view, |ip, plan, before| {
            let before = before.and_then(|p| p.decision.winner());
            if let Some(hold) = before.and_then(|b| settle::hold(plan, b, ages, now)) {
                held.insert(ip, hold);
            }
        });
        let mut was_held = BTreeSet::new();
        for (ip, _) in &decided {
            if self.held.remove(ip).is_some() {
                was_held.insert(*ip);
            }
        }
        for (ip, hold) in held.iter().filter(|(ip, _)| !was_held.contains(*ip)) {
            tracing::info!(
                %ip,
                serving_node = %hold.with,
                preferred_node = %hold.instead_of,
                wait_ms = hold.until.saturating_duration_since(now).as_millis() as u64,
                "keeping the IP where it is served until the preferred node's new endpoint settles"
            );
        }
        self.held.extend(held);
        self.hand_to_announcer(&decided);
        // The Services on an IP may change while the IP stays: report them too.
        let services: BTreeSet<String> = decided
            .iter()
            .flat_map(|(ip, before)| {
                let after = self.decisions.plans().get(ip);
                before
                    .iter()
                    .chain(after)
                    .flat_map(|p| p.services.iter().cloned())
            })
            .collect();
        self.report_services(services);
    }

    /// Marks what the Nodes and the live speakers changed since the last election: a speaker
    /// that left moves only the IPs it announced; anything else may move any IP.
    fn world_since(
        &mut self,
        nodes: &BTreeMap<NodeName, NodeInfo>,
        live: Option<&BTreeSet<NodeName>>,
    ) {
        match &self.last_world {
            Some((was_nodes, was_live)) if was_nodes == nodes => match (was_live, live) {
                (Some(was), Some(now)) if now.is_subset(was) => {
                    self.decisions.nodes_gone(was.difference(now));
                }
                (None, None) => {}
                _ => self.decisions.world_changed(),
            },
            _ => self.decisions.world_changed(),
        }
        self.last_world = Some((nodes.clone(), live.cloned()));
    }

    /// Brings the announcer's plan in line with the election of the IPs `decided`.
    fn hand_to_announcer(&mut self, decided: &[plan::Redecided]) {
        let me = &self.settings.node;
        let plans = self.decisions.plans();
        let wanted: Vec<(IpAddr, Option<InterfaceChoice>)> = decided
            .iter()
            .map(|(ip, _)| {
                let choice = plans.get(ip).and_then(|plan| match &plan.decision {
                    Decision::Elected { election, .. } if election.winner() == Some(me) => {
                        let interfaces = election.interfaces.get(me).cloned().unwrap_or_default();
                        Some(if interfaces.is_empty() {
                            InterfaceChoice::All
                        } else {
                            InterfaceChoice::Named(interfaces)
                        })
                    }
                    _ => None,
                });
                (*ip, choice)
            })
            .collect();
        self.plan_tx.send_if_modified(|current| {
            let mut gained = Vec::new();
            let mut lost = 0;
            let mut changed = false;
            for (ip, choice) in wanted {
                match choice {
                    Some(choice) => {
                        if current.ips.get(&ip) != Some(&choice) {
                            if current.ips.insert(ip, choice).is_none() {
                                gained.push(ip);
                            }
                            changed = true;
                        }
                    }
                    None => {
                        if current.ips.remove(&ip).is_some() {
                            lost += 1;
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                return false;
            }
            if let Some(at) = self.live_changed {
                self.taking_over.extend(gained.iter().map(|ip| (*ip, at)));
            }
            self.metrics.ownership_changes(gained.len(), lost);
            tracing::info!(
                announced = current.ips.len(),
                gained = gained.len(),
                lost,
                "layer-2 announcements of this node changed"
            );
            true
        });
    }

    /// The announcer answers for other IPs now: report their Services.
    pub(super) fn answering_changed(&mut self) {
        let changed = {
            let answering = self.announcer.announcing.borrow_and_update();
            let planned = self.plan_tx.borrow();
            let metrics = &self.metrics;
            self.taking_over.retain(|ip, at| {
                if answering.contains_key(ip) {
                    metrics.takeover_seconds.observe(at.elapsed().as_secs_f64());
                    false
                } else {
                    planned.ips.contains_key(ip)
                }
            });
            self.metrics.set_announced(answering.len());
            differing(self.answering.iter(), answering.keys())
        };
        for ip in &changed {
            if !self.answering.remove(ip) {
                self.answering.insert(*ip);
            }
        }
        let plans = self.decisions.plans();
        let services: BTreeSet<String> = changed
            .iter()
            .filter_map(|ip| plans.get(ip))
            .flat_map(|p| p.services.iter().cloned())
            .collect();
        self.report_services(services);
        self.open_reports(Instant::now());
    }

    /// Lets the status writers remove this node's objects that it does not report, once its
    /// report is whole: the speaker has converged, and the announcer answers every IP planned
    /// here (or [`REPORTS_WHOLE_AFTER`] has passed since it converged, for IPs it cannot
    /// answer). Returns when to look again, while not yet.
    fn open_reports(&mut self, now: Instant) -> Option<Instant> {
        if self.reports_open || !self.converged {
            return None;
        }
        let by = *self.converged_at.get_or_insert(now) + REPORTS_WHOLE_AFTER;
        let answered = self
            .plan_tx
            .borrow()
            .ips
            .keys()
            .all(|ip| self.answering.contains(ip));
        if !answered && now < by {
            return Some(by);
        }
        self.announced_tx.open();
        self.bgp_announced_tx.open();
        self.reports_open = true;
        None
    }

    /// Brings the ServiceL2Status wanted for `services` in line with what the announcer really
    /// answers for, with a `nodeAssigned` Event for each Service newly announced from here.
    fn report_services(&mut self, services: BTreeSet<String>) {
        if services.is_empty() {
            return;
        }
        let wanted: Vec<(String, Option<L2Report>)> = services
            .into_iter()
            .map(|key| {
                let report = self.answered_on(&key);
                (key, report)
            })
            .collect();
        let node = self.settings.node.to_string();
        self.announced_tx.edit(|current| {
            for (key, report) in wanted {
                match report {
                    Some(report) => {
                        if current.get(&key) == Some(&report) {
                            continue;
                        }
                        if !current.contains_key(&key)
                            && let Some(svc) = self.service(&key)
                        {
                            self.events.emit(
                                &svc,
                                EventType::Normal,
                                "nodeAssigned",
                                format!("announcing from node \"{node}\" with protocol \"layer2\""),
                            );
                        }
                        current.insert(key, report);
                    }
                    None => {
                        current.remove(&key);
                    }
                }
            }
        });
    }

    /// What this node reports of the Service `key`, if it answers for any of its IPs: the
    /// interfaces it answers on, and the nodes elected for its IPs.
    fn answered_on(&self, key: &str) -> Option<L2Report> {
        let ips = self.decisions.ips_of(key)?;
        let plans = self.decisions.plans();
        let mut answering = false;
        let mut report = L2Report::default();
        for ip in ips {
            let Some(Decision::Elected { election, .. }) = plans.get(ip).map(|p| &p.decision)
            else {
                continue;
            };
            report
                .announcers
                .extend(election.winner().map(ToString::to_string));
            if !self.answering.contains(ip) {
                continue;
            }
            answering = true;
            report.interfaces.extend(
                election
                    .interfaces
                    .get(&self.settings.node)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
        answering.then_some(report)
    }
}

/// How long after converging a speaker's report counts as whole even if the announcer does
/// not answer every IP planned here.
const REPORTS_WHOLE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// The view of `svc` from the caches: the Service and its own slices, if it is one of ours
/// with IPs.
fn view_of(touched: &Touched, svc: &SlimService) -> Option<plan::LbService> {
    // `lb_service_of` says no to these too; asked first, the slices are not looked up.
    if !svc.ours || svc.ips.is_empty() {
        return None;
    }
    let endpoints = touched.with_slices(&svc.key(), |slices| view::endpoints_of(slices));
    view::lb_service_of(svc, &endpoints)
}

/// The IPs in one of two ascending sequences and not in the other.
fn differing<'a>(
    a: impl Iterator<Item = &'a IpAddr>,
    b: impl Iterator<Item = &'a IpAddr>,
) -> Vec<IpAddr> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    let mut out = Vec::new();
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x == y => {
                a.next();
                b.next();
            }
            (Some(x), Some(y)) if x < y => out.extend(a.next()),
            (Some(_), Some(_)) | (None, Some(_)) => out.extend(b.next()),
            (Some(_), None) => out.extend(a.next()),
            (None, None) => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_finds_what_one_side_has_alone() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let a = [ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.4")];
        let b = [
            ip("192.0.2.2"),
            ip("192.0.2.3"),
            ip("192.0.2.4"),
            ip("192.0.2.5"),
        ];
        assert_eq!(
            differing(a.iter(), b.iter()),
            [ip("192.0.2.1"), ip("192.0.2.3"), ip("192.0.2.5")]
        );
        assert!(differing(a.iter(), a.iter()).is_empty());
        assert_eq!(differing([].iter(), a.iter()), a);
    }
}
