//! The speaker's metrics. One registry, made in `main` and passed down; labels are bounded
//! (interface, message type, direction), never per IP or per Service. The endpoints serving
//! them are `ferrolb_runtime::ops`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::layer2::announcer::L2Metrics;
use crate::membership::MembershipMetrics;

/// Labels of ownership changes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabels {
    /// `gained` or `lost`.
    pub change: String,
}

/// Every metric the speaker exports.
#[derive(Debug)]
pub struct Metrics {
    /// The ARP/NDP responders.
    pub l2: Arc<L2Metrics>,
    /// The membership among speakers.
    pub membership: MembershipMetrics,
    /// IPs this node answers for over layer 2.
    pub announced_ips: Gauge,
    /// IPs this node started or stopped announcing.
    pub ownership_changes: Family<ChangeLabels, Counter>,
    /// From a membership change (a death or a leave seen) to this node answering for an IP it
    /// took over because of it: the speaker's own share of a failover.
    pub takeover_seconds: Histogram,
}

impl Metrics {
    /// Creates the metrics and registers them under `ferrolb_speaker`.
    pub fn new(registry: &mut Registry) -> Self {
        let membership = MembershipMetrics::default();
        membership.register(registry);
        let l2 = L2Metrics::register(registry);
        let registry = registry.sub_registry_with_prefix("ferrolb_speaker");
        let metrics = Self {
            l2,
            membership,
            announced_ips: Gauge::default(),
            ownership_changes: Family::default(),
            takeover_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
        };
        registry.register(
            "layer2_announced_ips",
            "IPs this node answers ARP/NDP for",
            metrics.announced_ips.clone(),
        );
        registry.register(
            "layer2_ownership_changes",
            "IPs this node started (gained) or stopped (lost) announcing",
            metrics.ownership_changes.clone(),
        );
        registry.register(
            "layer2_takeover_seconds",
            "From a membership change to this node answering for an IP it took over",
            metrics.takeover_seconds.clone(),
        );
        metrics
    }

    /// Counts IPs gained and lost by a new plan.
    pub fn ownership_changes(&self, gained: usize, lost: usize) {
        for (change, n) in [("gained", gained), ("lost", lost)] {
            self.ownership_changes
                .get_or_create(&ChangeLabels {
                    change: change.into(),
                })
                .inc_by(n as u64);
        }
    }

    /// Sets the number of IPs answered for.
    pub fn set_announced(&self, n: usize) {
        self.announced_ips.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

pub use ferrolb_runtime::ops::{Health, serve};
