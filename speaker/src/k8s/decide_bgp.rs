//! The decision loop's BGP half: the plan for this node handed to the sessions, and what the
//! sessions report turned into BGPSessionState (and ServiceBGPStatus with
//! `--service-bgp-status`), Events and logs.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrolb_api::{BGPPeer, BGPSessionStateStatus};
use ferrolb_config::{NodeName, PeerName};
use kube::runtime::events::EventType;
use tokio::time::Instant;

use super::{Speaker, bgp, status, view};
use crate::bgp::advertise;
use crate::election::{EXCLUDE_LABEL, NodeInfo};
use crate::plan;

/// When this speaker saw the exclude label appear on its own node: the routes it had drain
/// away from that moment ([`advertise::Node::exclude_label_age`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum ExcludeLabel {
    /// Nothing decided yet.
    #[default]
    Unknown,
    /// The node does not carry it.
    Absent,
    /// It was there when the speaker started: there is nothing left to drain.
    AtStart,
    /// It appeared at this moment.
    Since(Instant),
}

impl ExcludeLabel {
    /// Records whether the node carries the label at `now`; true when it just appeared.
    pub(super) fn observe(&mut self, labelled: bool, now: Instant) -> bool {
        let before = *self;
        *self = match (before, labelled) {
            (_, false) => Self::Absent,
            (Self::Unknown, true) => Self::AtStart,
            (Self::Absent, true) => Self::Since(now),
            (seen, true) => seen,
        };
        matches!((before, *self), (Self::Absent, Self::Since(_)))
    }

    /// How long ago it appeared, when this speaker saw it appear.
    pub(super) fn age(self, now: Instant) -> Option<Duration> {
        match self {
            Self::Since(at) => Some(now.saturating_duration_since(at)),
            Self::Unknown | Self::Absent | Self::AtStart => None,
        }
    }
}

impl Speaker {
    /// BGP needs no election: every eligible node advertises, and the routers spread the
    /// traffic. Nor does it wait for the membership: a dead node's sessions die with it.
    ///
    /// Returns when to decide again: when a peer's drain time after the exclude label
    /// appeared on this node runs out.
    pub(super) fn decide_bgp(
        &mut self,
        nodes: &BTreeMap<NodeName, NodeInfo>,
        services: &[plan::LbService],
        now: Instant,
    ) -> Option<Instant> {
        let me = self.settings.node.clone();
        let unknown = NodeInfo::default();
        let info = nodes.get(&me).unwrap_or(&unknown);
        if self
            .exclude_label
            .observe(info.labels.contains_key(EXCLUDE_LABEL), now)
            && !self.settings.ignore_exclude_label
        {
            tracing::info!(
                label = EXCLUDE_LABEL,
                "this node was labelled to be excluded: its routes stay, marked GRACEFUL_SHUTDOWN (65535:0), for each peer's drain time, then are withdrawn"
            );
        }
        let node = advertise::Node {
            name: &me,
            info,
            ignore_exclude_label: self.settings.ignore_exclude_label,
            exclude_label_age: self.exclude_label.age(now),
        };
        let plan = advertise::plan(self.serving.config(), &node, services);
        let next_step = node
            .next_exclusion_step(self.serving.config())
            .map(|d| now + d);
        let node_ips = self
            .stores
            .nodes
            .get(&kube::runtime::reflector::ObjectRef::new(me.as_str()))
            .map(|n| view::internal_ips(&n))
            .unwrap_or_default();
        let reconciled = self
            .sessions
            .reconcile(self.serving.config(), &plan.routes, &node_ips);
        for (peer, why) in reconciled.refused {
            tracing::warn!(peer = %peer, reason = %why, "BGP peer not used on this node");
            if let Some(object) = self.peer_object(&peer) {
                self.events.emit(
                    &object,
                    EventType::Warning,
                    "PeerUnsupported",
                    format!("node \"{me}\": {why}"),
                );
            }
        }
        // One BGPSessionState per peer of this node; a peer that cannot run says why.
        self.sessions_tx.edit(|states| {
            states.retain(|peer| plan.routes.contains_key(&PeerName::from(peer.to_owned())));
            for (peer, why) in self.sessions.refused() {
                states.insert(
                    peer.to_string(),
                    BGPSessionStateStatus {
                        bgp_status: Some("NotRunning".into()),
                        last_down: Some(why.clone()),
                        ..BGPSessionStateStatus::default()
                    },
                );
            }
        });
        if plan != self.bgp_plan {
            let routes: usize = plan.routes.values().map(BTreeMap::len).sum();
            tracing::info!(
                peers = plan.routes.len(),
                routes,
                services = plan.services.len(),
                unadvertised = plan.not_advertised.len(),
                "BGP advertisements of this node changed"
            );
            for (ip, why) in &plan.not_advertised {
                if self.bgp_plan.not_advertised.get(ip) != Some(why) {
                    tracing::debug!(%ip, reason = %why, "not advertised over BGP from this node");
                }
            }
        }
        let announced: status::Announced = plan
            .services
            .iter()
            .map(|(svc, peers)| (svc.clone(), peers.iter().map(|p| p.to_string()).collect()))
            .collect();
        self.bgp_announced_tx.edit(|current| {
            for service in announced.keys().filter(|s| !current.contains_key(s)) {
                self.tell_bgp_advertisers(service, nodes, services);
            }
            current.replace(announced);
        });
        self.bgp_plan = plan;
        next_step
    }

    /// One Event per Service newly advertised, not one per node: every node that starts
    /// advertising it works out which nodes do (each judged by its own plan), and only the
    /// first of them tells, naming them all. (MetalLB's reason and wording otherwise.)
    fn tell_bgp_advertisers(
        &self,
        service: &str,
        nodes: &BTreeMap<NodeName, NodeInfo>,
        services: &[plan::LbService],
    ) {
        let Some(lb) = services.iter().find(|s| s.info.key == service) else {
            return;
        };
        let candidates = self.live_nodes(nodes);
        let advertisers = advertise::advertisers(
            self.serving.config(),
            candidates,
            self.settings.ignore_exclude_label,
            lb,
        );
        if advertisers.first().copied() != Some(&self.settings.node) {
            return;
        }
        let Some(svc) = self.service(service) else {
            return;
        };
        let names: Vec<String> = advertisers.iter().map(|n| format!("\"{n}\"")).collect();
        let (noun, list) = match names.as_slice() {
            [one] => ("node", one.clone()),
            many => ("nodes", many.join(", ")),
        };
        self.events.emit(
            &svc,
            EventType::Normal,
            "nodeAssigned",
            format!("announcing from {noun} {list} with protocol \"bgp\""),
        );
    }

    /// Logs a session change, raises an Event on the BGPPeer, and keeps the metrics.
    pub(super) fn report_session(&mut self, event: &bgp::PeerEvent) {
        let Some(before) = self.sessions.observe(event) else {
            return;
        };
        let now = &event.state;
        let summary = BGPSessionStateStatus {
            peer_address: self.sessions.address(&event.peer).map(|a| a.to_string()),
            bgp_status: Some(now.state.to_string()),
            bfd_status: now.bfd.as_ref().map(|b| b.state().to_string()),
            last_down: now.last_down.as_ref().map(|d| d.reason.to_string()),
            prefixes_advertised: Some(now.advertised as u64),
            ..BGPSessionStateStatus::default()
        };
        self.sessions_tx
            .edit(|states| states.insert(event.peer.to_string(), summary));
        let was_up = before
            .as_ref()
            .is_some_and(crate::bgp::SessionState::is_established);
        let node = &self.settings.node;
        let address = self
            .sessions
            .address(&event.peer)
            .map_or_else(String::new, |a| a.ip().to_string());
        if now.is_established() && !was_up {
            let detail = now.negotiated.as_ref().map_or_else(String::new, |n| {
                format!(
                    " (AS {}, router ID {}, hold time {}s)",
                    n.peer_asn,
                    n.peer_router_id,
                    n.hold_time.as_secs()
                )
            });
            tracing::info!(peer = %event.peer, %address, "BGP session established{detail}");
            if let Some(object) = self.peer_object(&event.peer) {
                self.events.emit(
                    &object,
                    EventType::Normal,
                    "SessionEstablished",
                    format!("node \"{node}\": session with {address} established{detail}"),
                );
            }
        } else if was_up && !now.is_established() {
            let why = now
                .last_down
                .as_ref()
                .map_or_else(|| "closed".to_owned(), |d| d.reason.to_string());
            tracing::warn!(peer = %event.peer, %address, reason = %why, "BGP session down");
            if let Some(object) = self.peer_object(&event.peer) {
                self.events.emit(
                    &object,
                    EventType::Warning,
                    "SessionDown",
                    format!("node \"{node}\": session with {address} went down: {why}"),
                );
            }
        } else if before.as_ref().map(|b| &b.last_down) != Some(&now.last_down)
            && let Some(down) = &now.last_down
        {
            // Attempts that never came up are logged, not raised: a router that is away would
            // otherwise flood the Events.
            tracing::info!(peer = %event.peer, %address, reason = %down.reason, "BGP session attempt failed");
        }
    }

    fn peer_object(&self, peer: &PeerName) -> Option<BGPPeer> {
        self.stores
            .peers
            .get(
                &kube::runtime::reflector::ObjectRef::new(peer.as_str())
                    .within(&self.settings.namespace),
            )
            .map(|p| (*p).clone())
    }
}
