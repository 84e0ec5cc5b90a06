//! The node's unnumbered links: one [`Link`] per interface its BGPPeers name, finding the
//! router on it while some peer needs it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::bgp::unnumbered::{Found, Link};

pub(super) struct Links {
    open: BTreeMap<String, Link>,
    /// Woken when a link finds something new.
    changed: Arc<Notify>,
}

impl Links {
    pub(super) fn new() -> Self {
        Self {
            open: BTreeMap::new(),
            changed: Arc::new(Notify::new()),
        }
    }

    /// Starts finding the neighbour on each of `interfaces` not followed yet and stops on the
    /// others.
    pub(super) fn reconcile(&mut self, interfaces: BTreeSet<String>) {
        self.open.retain(|name, _| interfaces.contains(name));
        for name in interfaces {
            self.open
                .entry(name.clone())
                .or_insert_with(|| Link::start(name, Arc::clone(&self.changed)));
        }
    }

    /// What the link `interface` has found.
    pub(super) fn found(&self, interface: &str) -> Found {
        self.open.get(interface).map_or(Found::Nothing, Link::found)
    }

    /// Whether `interface`'s link started moments ago and has found nothing yet.
    pub(super) fn starting(&self, interface: &str) -> bool {
        self.open.get(interface).is_some_and(Link::starting)
    }

    /// Resolves when a link has found something new since the last call.
    pub(super) async fn changed(&self) {
        self.changed.notified().await;
    }
}
