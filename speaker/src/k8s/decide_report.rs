//! The decision loop's part in the `ferrolb.io/BGPAdvertised` conditions: which Services this
//! speaker writes the condition of (rendezvous over the live speakers, [`crate::report`]), and
//! what each should say — handed to the writer ([`super::condition`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ferrolb_config::NodeName;
use tokio::sync::watch as chan;

use super::{Speaker, condition};
use crate::bgp::advertise;
use crate::election::NodeInfo;
use crate::plan;
use crate::report;

/// The conditions this speaker writes, and which Services are its own to write.
pub(super) struct Conditions {
    wanted: chan::Sender<condition::Wanted>,
    services_changed: chan::Sender<()>,
    /// The speakers the ring and the cache below were computed over.
    speakers: BTreeSet<String>,
    /// Who writes which Service's condition among `speakers`.
    ring: report::Ring,
    /// Per Service, whether this speaker writes its condition (kept until the live speakers
    /// change).
    mine: HashMap<String, bool>,
}

impl Conditions {
    pub(super) fn new(
        wanted: chan::Sender<condition::Wanted>,
        services_changed: chan::Sender<()>,
    ) -> Self {
        Self {
            wanted,
            services_changed,
            speakers: BTreeSet::new(),
            ring: report::Ring::default(),
            mine: HashMap::new(),
        }
    }

    /// The Services changed: the writer compares what they show again.
    pub(super) fn services_changed(&self) {
        self.services_changed.send_replace(());
    }

    fn is_mine(&mut self, key: &str, me: &str) -> bool {
        if let Some(mine) = self.mine.get(key) {
            return *mine;
        }
        let mine = self.ring.writer(key) == Some(me);
        self.mine.insert(key.to_owned(), mine);
        mine
    }
}

impl Speaker {
    /// The nodes whose speakers are live (every node without a membership), this one always:
    /// the candidates the `nodeAssigned` Event and the condition judge, so they agree.
    pub(super) fn live_nodes<'a>(
        &self,
        nodes: &'a BTreeMap<NodeName, NodeInfo>,
    ) -> Vec<(&'a NodeName, &'a NodeInfo)> {
        let live: Option<BTreeSet<String>> =
            self.membership.as_ref().map(|m| m.live.borrow().clone());
        nodes
            .iter()
            .filter(|(name, _)| {
                **name == self.settings.node
                    || live.as_ref().is_none_or(|l| l.contains(name.as_str()))
            })
            .collect()
    }

    /// Works out the conditions of the Services this speaker writes: every BGP Service among
    /// `services`, and every Service that shows the condition but should not any more. Not
    /// while this node cannot tell who is live (starting, or cut off): it would name itself
    /// alone, for every Service.
    pub(super) fn want_conditions(
        &mut self,
        nodes: &BTreeMap<NodeName, NodeInfo>,
        services: &[plan::LbService],
    ) {
        if self.cut_off || !self.converged {
            return;
        }
        let speakers: BTreeSet<String> = match &self.membership {
            Some(m) => m.live.borrow().clone(),
            None => nodes.keys().map(|n| n.to_string()).collect(),
        };
        let me = self.settings.node.to_string();
        let candidates = self.live_nodes(nodes);
        let config = self.serving.config();
        let conditions = &mut self.conditions;
        if conditions.speakers != speakers {
            conditions.ring = report::Ring::new(speakers.iter().map(String::as_str));
            conditions.speakers = speakers;
            conditions.mine.clear();
        }
        let mut want = condition::Wanted::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for lb in services {
            let key = lb.info.key.as_str();
            if !advertise::is_bgp_service(config, lb) {
                continue;
            }
            seen.insert(key);
            if conditions.is_mine(key, &me) {
                let wanted = report::bgp_advertised(
                    config,
                    candidates.iter().copied(),
                    self.settings.ignore_exclude_label,
                    lb,
                );
                want.insert(key.to_owned(), wanted);
            }
        }
        for key in &self.showing_bgp {
            if seen.contains(key.as_str()) {
                continue;
            }
            if conditions.is_mine(key, &me) {
                want.insert(key.clone(), None);
            }
        }
        conditions
            .mine
            .retain(|key, _| want.contains_key(key) || seen.contains(key.as_str()));
        conditions.wanted.send_if_modified(|current| {
            if *current == want {
                return false;
            }
            *current = want;
            true
        });
    }
}
