//! The layer-2 announcer's counters, labelled by interface and protocol (never by IP).

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// ARP (IPv4) or NDP (IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// ARP, for IPv4.
    Arp,
    /// Neighbor discovery, for IPv6.
    Ndp,
}

impl Protocol {
    /// `arp` or `ndp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Arp => "arp",
            Self::Ndp => "ndp",
        }
    }
}

impl EncodeLabelValue for Protocol {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// Labels of every layer-2 counter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct L2Labels {
    /// Interface name.
    pub interface: String,
    /// `arp` or `ndp`.
    pub protocol: Protocol,
}

impl L2Labels {
    /// Labels for `interface` and `protocol`.
    pub fn new(interface: &str, protocol: Protocol) -> Self {
        Self {
            interface: interface.to_owned(),
            protocol,
        }
    }
}

/// Every metric of the layer-2 announcer.
#[derive(Debug, Default)]
pub struct L2Metrics {
    /// ARP requests and neighbor solicitations received for IPs this node holds.
    pub requests: Family<L2Labels, Counter>,
    /// ARP replies and neighbor advertisements sent in answer.
    pub replies: Family<L2Labels, Counter>,
    /// Gratuitous ARP frames and unsolicited advertisements sent.
    pub gratuitous: Family<L2Labels, Counter>,
    /// Probes sent by a split-brain loser checking whether the winner still answers.
    pub probes: Family<L2Labels, Counter>,
    /// Received frames dropped as malformed.
    pub malformed: Family<L2Labels, Counter>,
    /// Other MACs seen claiming an IP this node owns.
    pub conflicts: Family<L2Labels, Counter>,
}

impl L2Metrics {
    /// Creates the metrics and registers them under `ferrolb_speaker_layer2_`.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("ferrolb_speaker_layer2");
        r.register(
            "requests_received",
            "ARP requests and neighbor solicitations received for IPs this node holds",
            m.requests.clone(),
        );
        r.register(
            "replies_sent",
            "ARP replies and neighbor advertisements sent in answer",
            m.replies.clone(),
        );
        r.register(
            "gratuitous_sent",
            "Gratuitous ARP frames and unsolicited neighbor advertisements sent",
            m.gratuitous.clone(),
        );
        r.register(
            "probes_sent",
            "ARP probes and duplicate-address solicitations sent by a silenced split-brain loser",
            m.probes.clone(),
        );
        r.register(
            "malformed_dropped",
            "Received ARP/NDP frames dropped as malformed",
            m.malformed.clone(),
        );
        r.register(
            "conflicts",
            "Another MAC seen claiming an IP this node announces",
            m.conflicts.clone(),
        );
        Arc::new(m)
    }

    /// Creates every counter of `interface`, for both protocols, at 0: a series that appears
    /// only with its first event cannot be rated or alerted on before it (a split brain's first
    /// conflict would be the one a `rate()` misses).
    pub fn init_interface(&self, interface: &str) {
        for protocol in [Protocol::Arp, Protocol::Ndp] {
            let labels = L2Labels::new(interface, protocol);
            for family in [
                &self.requests,
                &self.replies,
                &self.gratuitous,
                &self.probes,
                &self.malformed,
                &self.conflicts,
            ] {
                let _ = family.get_or_create(&labels);
            }
        }
    }

    /// The current value of `family` for `interface` and `protocol` (for tests and tools).
    pub fn value(family: &Family<L2Labels, Counter>, interface: &str, protocol: Protocol) -> u64 {
        family
            .get_or_create(&L2Labels::new(interface, protocol))
            .get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_exported_with_interface_and_protocol_labels_only() {
        let mut registry = Registry::default();
        let metrics = L2Metrics::register(&mut registry);
        metrics
            .replies
            .get_or_create(&L2Labels::new("eth0", Protocol::Ndp))
            .inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(
            text.contains(
                "ferrolb_speaker_layer2_replies_sent_total{interface=\"eth0\",protocol=\"ndp\"} 1"
            ),
            "{text}"
        );
        assert_eq!(L2Metrics::value(&metrics.replies, "eth0", Protocol::Ndp), 1);
    }

    #[test]
    fn an_interface_has_every_counter_at_zero_before_its_first_event() {
        let mut registry = Registry::default();
        let metrics = L2Metrics::register(&mut registry);
        metrics.init_interface("eth1");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        for name in [
            "requests_received",
            "replies_sent",
            "gratuitous_sent",
            "probes_sent",
            "malformed_dropped",
            "conflicts",
        ] {
            for protocol in ["arp", "ndp"] {
                let series = format!(
                    "ferrolb_speaker_layer2_{name}_total{{interface=\"eth1\",protocol=\"{protocol}\"}} 0"
                );
                assert!(text.contains(&series), "no {series} in:\n{text}");
            }
        }
    }
}
