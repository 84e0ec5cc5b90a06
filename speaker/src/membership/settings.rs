//! The membership's knobs and their defaults, tuned for sub-second layer-2 failover.

use std::time::Duration;

/// How the membership probes, suspects and gossips. [`MembershipSettings::new`] gives the
/// defaults; every field can be changed.
///
/// With the defaults, a member that dies hard is declared dead by every other member within
/// [`MembershipSettings::detection_bound`] = 3 × 100 ms + 400 ms = **700 ms** plus one network
/// delay, when no datagram is lost:
///
/// - every other probe period a member probes its *successor* (the next live member by name), so
///   the dead member's predecessor sends it a ping at most 2 periods after the death;
/// - that probe fails (direct and indirect) by the end of its period: suspect after ≤ 3 periods;
/// - nobody refutes within `suspicion_timeout`: the prober declares it dead and sends "dead"
///   straight to up to `urgent_fanout` members (all of them in clusters of up to 64 nodes); the
///   others learn it one network delay later, and the rest of a larger cluster through gossip.
///
/// A graceful [`leave`](super::MembershipHandle::leave) is sent to every member at once, so peers
/// drop the node one network delay after it says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipSettings {
    /// This node's name (the Kubernetes Node name).
    pub node_name: String,
    /// How often a member is probed. Default 100 ms.
    pub probe_period: Duration,
    /// How long to wait for a direct ack before asking others to probe indirectly.
    /// Must be shorter than `probe_period`. Default 50 ms.
    pub probe_timeout: Duration,
    /// How many members are asked to probe indirectly. Default 3.
    pub indirect_probes: usize,
    /// How long a suspect has to refute before it is declared dead. Default 400 ms.
    pub suspicion_timeout: Duration,
    /// Gossip is piggybacked `retransmit_mult × ⌈log10(n + 1)⌉` times. Default 4.
    pub retransmit_mult: u32,
    /// Suspicions, deaths and refutations this node originates are also sent directly to this
    /// many members (all of them in smaller clusters). Default 64.
    pub urgent_fanout: usize,
    /// One seed (or dead member) that is not live is pinged every interval, to heal partitions
    /// and find speakers that start later. Default 500 ms.
    pub seed_retry_interval: Duration,
    /// Dead and left members that are not seeds are forgotten after this. Seeds are never
    /// forgotten, so their old datagrams can never bring them back. Default 10 minutes.
    pub tombstone_ttl: Duration,
    /// After [`set_key`](super::MembershipHandle::set_key), the old key still seals datagrams
    /// for this long and still opens them for twice as long, so nodes that get the new Secret up
    /// to this far apart never lose each other; it must outlast the Secret's propagation to every
    /// node. Default 2 minutes.
    pub key_rotation_window: Duration,
    /// Largest datagram sent. Default 1400 bytes (fits a 1500-byte MTU with IPv6 headers).
    pub max_packet_size: usize,
}

impl MembershipSettings {
    /// The defaults for `node_name`.
    pub fn new(node_name: impl Into<String>) -> Self {
        Self {
            node_name: node_name.into(),
            probe_period: Duration::from_millis(100),
            probe_timeout: Duration::from_millis(50),
            indirect_probes: 3,
            suspicion_timeout: Duration::from_millis(400),
            retransmit_mult: 4,
            urgent_fanout: 64,
            seed_retry_interval: Duration::from_millis(500),
            tombstone_ttl: Duration::from_secs(600),
            key_rotation_window: Duration::from_secs(120),
            max_packet_size: 1400,
        }
    }

    /// The longest time, without datagram loss, from a hard death to the moment every member
    /// has been told (add one network delay): `3 × probe_period + suspicion_timeout`.
    pub fn detection_bound(&self) -> Duration {
        self.probe_period * 3 + self.suspicion_timeout
    }
}
