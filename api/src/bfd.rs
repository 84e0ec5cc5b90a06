//! `BFDProfile`: timers for Bidirectional Forwarding Detection on BGP sessions.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::status::ConfigStatus;

/// A BFDProfile sets the BFD timers a BGPPeer runs with (RFC 5880/5881), so that a dead link or
/// router takes the BGP session down in well under a second.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BFDProfile",
    doc = "BFD timers for BGP sessions.",
    namespaced,
    status = "ConfigStatus",
    shortname = "bfdp",
    category = "ferrolb",
    derive = "PartialEq",
    printcolumn(
        name = "Passive Mode",
        type_ = "boolean",
        json_path = ".spec.passiveMode"
    ),
    printcolumn(
        name = "Transmit Interval",
        type_ = "integer",
        json_path = ".spec.transmitInterval"
    ),
    printcolumn(
        name = "Receive Interval",
        type_ = "integer",
        json_path = ".spec.receiveInterval"
    ),
    printcolumn(
        name = "Multiplier",
        type_ = "integer",
        json_path = ".spec.detectMultiplier"
    )
)]
#[x_kube(validation = kube::core::Rule::new("!has(self.echoInterval) || (has(self.echoMode) && self.echoMode)")
    .message("echoInterval only applies with echoMode: true").field_path(".echoInterval"))]
#[serde(rename_all = "camelCase")]
pub struct BFDProfileSpec {
    /// Minimum interval, in milliseconds, between BFD control packets this system is able to
    /// receive (10-60000, default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub receive_interval: Option<u32>,

    /// Minimum interval, in milliseconds, this system wants to send BFD control packets at
    /// (10-60000, default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub transmit_interval: Option<u32>,

    /// Number of missed packets after which the session is declared down (2-255, default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 255))]
    pub detect_multiplier: Option<u32>,

    /// Minimum interval, in milliseconds, between echo packets (10-60000, default 50): how
    /// often this node sends them, and how often it offers to loop the peer's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub echo_interval: Option<u32>,

    /// Send BFD echo packets (RFC 5880 echo function) to single-hop peers: once the session is
    /// up, the node sends packets addressed to itself to the peer, whose forwarding sends them
    /// back, every echoInterval (or as often as the peer allows); when none comes back for
    /// echoInterval × detectMultiplier the session goes down (diagnostic "echo function
    /// failed"), and while echo runs the peer is asked to send control packets once a second.
    /// The node offers to loop the peer's IPv4 echo packets through its own IP forwarding (none
    /// if forwarding is off on the interface). Multihop peers (ebgpMultiHop, or ttlSecurity over
    /// one hop) run without echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_mode: Option<bool>,

    /// Wait for the peer to start sending control packets instead of starting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_mode: Option<bool>,

    /// For multi-hop sessions (BGPPeers with ebgpMultiHop, RFC 5883), the lowest TTL accepted
    /// on incoming packets (1-254; default 254, FRR's). Routers that send multihop BFD with
    /// their system's default TTL (BIRD: 64) need it at most that, less the hops between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 254))]
    pub minimum_ttl: Option<u32>,
}
