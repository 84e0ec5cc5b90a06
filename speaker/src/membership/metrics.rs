//! The membership's metrics, under `ferrolb_speaker_membership_`. Labels are bounded: the message
//! type and the drop reason, never a node or an address.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::swim::{DownReason, DropReason, Output};
use super::wire::MessageKind;

/// Labels of the datagram counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// ping, ack, ping_req, indirect_ack, gossip, leave
    pub kind: String,
}

/// Labels of the drop counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// bad_tag, unknown_key, malformed, version, replayed, own_name, misdirected
    pub reason: String,
}

/// Every metric the membership exports. Clones share the same series.
#[derive(Clone, Debug, Default)]
pub struct MembershipMetrics {
    /// Speakers alive in this node's view, itself included.
    pub members_alive: Gauge,
    /// Datagrams sent, by message type.
    pub packets_sent: Family<KindLabels, Counter>,
    /// Authentic datagrams received, by message type.
    pub packets_received: Family<KindLabels, Counter>,
    /// Datagrams dropped, by reason (bad_tag and unknown_key are failed authentication).
    pub packets_dropped: Family<ReasonLabels, Counter>,
    /// Suspicions this node raised.
    pub suspicions: Counter,
    /// Members this node saw declared dead.
    pub deaths: Counter,
    /// Members this node saw leave.
    pub leaves: Counter,
}

impl MembershipMetrics {
    /// Registers the metrics under `ferrolb_speaker_membership_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("ferrolb_speaker_membership");
        r.register(
            "members_alive",
            "Speakers alive in this node's view, itself included",
            self.members_alive.clone(),
        );
        r.register(
            "packets_sent",
            "Membership datagrams sent, by message type",
            self.packets_sent.clone(),
        );
        r.register(
            "packets_received",
            "Authentic membership datagrams received, by message type",
            self.packets_received.clone(),
        );
        r.register(
            "packets_dropped",
            "Membership datagrams dropped, by reason",
            self.packets_dropped.clone(),
        );
        r.register(
            "suspicions",
            "Suspicions this node raised",
            self.suspicions.clone(),
        );
        r.register(
            "deaths",
            "Members this node saw declared dead",
            self.deaths.clone(),
        );
        r.register("leaves", "Members this node saw leave", self.leaves.clone());
    }

    /// Counts what one output reports.
    pub fn record(&self, output: &Output) {
        match output {
            Output::Send { kind, .. } => {
                self.packets_sent.get_or_create(&kind_labels(*kind)).inc();
            }
            Output::Received(kind) => {
                self.packets_received
                    .get_or_create(&kind_labels(*kind))
                    .inc();
            }
            Output::Dropped(reason) => {
                self.packets_dropped
                    .get_or_create(&reason_labels(*reason))
                    .inc();
            }
            Output::Suspect { .. } => {
                self.suspicions.inc();
            }
            Output::Down { reason, .. } => {
                match reason {
                    DownReason::Dead => self.deaths.inc(),
                    DownReason::Left => self.leaves.inc(),
                };
            }
            Output::Up { .. } => {}
        }
    }
}

fn kind_labels(kind: MessageKind) -> KindLabels {
    KindLabels {
        kind: kind.label().to_owned(),
    }
}

fn reason_labels(reason: DropReason) -> ReasonLabels {
    ReasonLabels {
        reason: reason.label().to_owned(),
    }
}
