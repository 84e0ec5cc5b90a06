//! The speaker's metrics. One registry, made in `main` and passed down; labels are bounded
//! (interface, message type, direction), never per IP or per Service. The endpoints serving
//! them are `ferrolb_runtime::ops`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::bgp::packet::MessageType;
use crate::k8s::bgp::SharedStats;
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
    /// The BGP sessions, read at scrape time.
    pub bgp_stats: SharedStats,
    /// One decision pass: every change the speaker sees (a Service, an EndpointSlice, a Node,
    /// the membership) decides every Service again, so this grows with them.
    pub decide_seconds: Histogram,
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
            bgp_stats: SharedStats::default(),
            decide_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
        };
        registry.register_collector(Box::new(BgpCollector {
            stats: metrics.bgp_stats.clone(),
        }));
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
        registry.register(
            "decide_seconds",
            "One decision pass over every Service (the election, this node's routes, the reports)",
            metrics.decide_seconds.clone(),
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

/// Exports the BGP sessions' state and counters, labelled by BGPPeer name (bounded by the
/// configuration) and message type.
#[derive(Debug)]
struct BgpCollector {
    stats: SharedStats,
}

const MESSAGE_TYPES: [(MessageType, &str); 5] = [
    (MessageType::Open, "open"),
    (MessageType::Update, "update"),
    (MessageType::Notification, "notification"),
    (MessageType::Keepalive, "keepalive"),
    (MessageType::RouteRefresh, "route_refresh"),
];

impl Collector for BgpCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut m = encoder.encode_descriptor(
                "bgp_session_up",
                "1 while the session with the peer is Established",
                None,
                MetricType::Gauge,
            )?;
            for (peer, s) in stats.iter() {
                let labels = [("peer", peer.as_str()), ("address", s.address.as_str())];
                ConstGauge::new(i64::from(s.up)).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "bgp_announced_prefixes",
                "Prefixes the peer holds from this node",
                None,
                MetricType::Gauge,
            )?;
            for (peer, s) in stats.iter() {
                let labels = [("peer", peer.as_str())];
                let n = i64::try_from(s.counters.prefixes_advertised()).unwrap_or(i64::MAX);
                ConstGauge::new(n).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "bfd_session_up",
                "1 while the BFD session with the peer is Up (peers with a BFD profile)",
                None,
                MetricType::Gauge,
            )?;
            for (peer, s) in stats.iter() {
                if let Some(up) = s.bfd_up {
                    let labels = [("peer", peer.as_str())];
                    ConstGauge::new(i64::from(up)).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "bfd_downs",
                "Times BFD declared the path to the peer down and took the session down",
                None,
                MetricType::Counter,
            )?;
            for (peer, s) in stats.iter() {
                let labels = [("peer", peer.as_str())];
                ConstCounter::new(s.counters.bfd_downs()).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "bgp_session_flaps",
                "Times the session left Established",
                None,
                MetricType::Counter,
            )?;
            for (peer, s) in stats.iter() {
                let labels = [("peer", peer.as_str())];
                ConstCounter::new(s.flaps).encode(m.encode_family(&labels)?)?;
            }
        }
        for (direction, help) in [
            ("sent", "BGP messages sent, by type"),
            ("received", "BGP messages received, by type"),
        ] {
            let name = format!("bgp_messages_{direction}");
            let mut m = encoder.encode_descriptor(&name, help, None, MetricType::Counter)?;
            for (peer, s) in stats.iter() {
                for (kind, label) in MESSAGE_TYPES {
                    let n = if direction == "sent" {
                        s.counters.sent(kind)
                    } else {
                        s.counters.received(kind)
                    };
                    let labels = [("peer", peer.as_str()), ("type", label)];
                    ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

pub use ferrolb_runtime::ops::{Health, serve};
