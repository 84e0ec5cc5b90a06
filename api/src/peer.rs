//! `BGPPeer`: a router the speakers open BGP sessions with (MetalLB's v1beta2 shape).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::status::ConfigStatus;

/// CEL: `field` is unset or a Go duration that fails the pattern (reported by the pattern), or
/// satisfies `cond` (written against `d`, the parsed duration).
macro_rules! duration_rule {
    ($field:literal, $cond:literal) => {
        concat!(
            "!has(self.",
            $field,
            ") || !self.",
            $field,
            ".matches('^([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h))+$') || ",
            "[duration(self.",
            $field,
            ")].all(d, ",
            $cond,
            ")"
        )
    };
}

/// A BGPPeer is a router that the speakers of the selected nodes open a BGP session with.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BGPPeer",
    doc = "A BGP router the speakers of the selected nodes peer with.",
    namespaced,
    status = "ConfigStatus",
    shortname = "bgpp",
    category = "ferrolb",
    derive = "PartialEq",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(name = "ASN", type_ = "string", json_path = ".spec.peerASN"),
    printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
    printcolumn(
        name = "Multi Hops",
        type_ = "string",
        json_path = ".spec.ebgpMultiHop"
    ),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Valid\")].status"
    )
)]
#[x_kube(validation = kube::core::Rule::new("has(self.peerASN) != has(self.dynamicASN)")
    .message("exactly one of peerASN and dynamicASN must be set"))]
#[x_kube(validation = kube::core::Rule::new("has(self.peerAddress) != has(self.interface)")
    .message("exactly one of peerAddress and interface must be set"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.password) || !has(self.passwordSecret)")
    .message("password and passwordSecret are mutually exclusive"))]
#[x_kube(validation = kube::core::Rule::new(duration_rule!("holdTime", "d == duration('0s') || d >= duration('3s')"))
    .message("holdTime must be 0 (no keepalives) or at least 3s").field_path(".holdTime"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.keepaliveTime) || !has(self.holdTime) || \
     !self.keepaliveTime.matches('^([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h))+$') || \
     !self.holdTime.matches('^([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h))+$') || \
     duration(self.keepaliveTime) <= duration(self.holdTime)")
    .message("keepaliveTime must not exceed holdTime").field_path(".keepaliveTime"))]
#[x_kube(validation = kube::core::Rule::new(
    concat!("has(self.holdTime) || (", duration_rule!("keepaliveTime", "d == duration('0s') || d >= duration('1s')"), ")"))
    .message("keepaliveTime without holdTime implies holdTime = 3 x keepaliveTime, which must be 0 or at least 3s")
    .field_path(".keepaliveTime"))]
#[x_kube(validation = kube::core::Rule::new(duration_rule!("connectTime",
    "d >= duration('1s') && d <= duration('65535s')"))
    .message("connectTime must be a whole number of seconds between 1s and 65535s").field_path(".connectTime"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.connectTime) || self.connectTime.matches('^(([0-9]+h)?([0-9]+m)?([0-9]+s)?|[0-9]*000ms)$')")
    .message("connectTime must be a whole number of seconds between 1s and 65535s (e.g. 10s, 2m)")
    .field_path(".connectTime"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.ebgpMultiHop) || !self.ebgpMultiHop || \
     (has(self.peerASN) ? self.peerASN != self.myASN : (!has(self.dynamicASN) || self.dynamicASN != 'internal'))")
    .message("ebgpMultiHop cannot be set for an iBGP peer (peerASN equal to myASN)")
    .field_path(".ebgpMultiHop"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.sourceAddress) || !has(self.peerAddress) || !isIP(self.sourceAddress) || \
     !isIP(self.peerAddress) || ip(self.sourceAddress).family() == ip(self.peerAddress).family()")
    .message("sourceAddress and peerAddress must be of the same address family")
    .field_path(".sourceAddress"))]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    /// The AS number the speakers use on this session (1-4294967295).
    #[serde(rename = "myASN")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub my_asn: u32,

    /// The AS number the peer is expected to use (1-4294967295). Exactly one of peerASN and
    /// dynamicASN must be set.
    #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub peer_asn: Option<u32>,

    /// Accept the peer's AS number from its OPEN: `internal` (must equal myASN) or `external`
    /// (must differ). Exactly one of peerASN and dynamicASN must be set.
    #[serde(
        default,
        rename = "dynamicASN",
        skip_serializing_if = "Option::is_none"
    )]
    pub dynamic_asn: Option<DynamicAsnMode>,

    /// The AS number to present to the peer instead of myASN (local-as).
    #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub local_asn: Option<u32>,

    /// The peer's IP address. Exactly one of peerAddress and interface must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 45))]
    #[x_kube(validation = kube::core::Rule::new("isIP(self)").message("must be an IPv4 or IPv6 address"))]
    pub peer_address: Option<String>,

    /// The interface for unnumbered BGP (the peer is found on that link). Exactly one of
    /// peerAddress and interface must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15), regex(pattern = r"^[^/\s:]+$"))]
    pub interface: Option<String>,

    /// The local address to open the session from; must exist on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 45))]
    #[x_kube(validation = kube::core::Rule::new("isIP(self)").message("must be an IPv4 or IPv6 address"))]
    pub source_address: Option<String>,

    /// The peer's TCP port (default 179).
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub peer_port: u16,

    /// The BGP hold time to propose (Go duration, e.g. 90s): 0 disables keepalives, otherwise at
    /// least 3s. Unset means 90s, or 3 x keepaliveTime when only that is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 32),
        regex(pattern = r"^([0-9]{1,6}(\.[0-9]{1,9})?(ns|us|ms|s|m|h))+$")
    )]
    pub hold_time: Option<String>,

    /// The keepalive interval (Go duration); must not exceed holdTime. Unset means holdTime/3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 32),
        regex(pattern = r"^([0-9]{1,6}(\.[0-9]{1,9})?(ns|us|ms|s|m|h))+$")
    )]
    pub keepalive_time: Option<String>,

    /// Time between connection attempts (Go duration, whole seconds, 1s-65535s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 32),
        regex(pattern = r"^([0-9]{1,6}(\.[0-9]{1,9})?(ns|us|ms|s|m|h))+$")
    )]
    pub connect_time: Option<String>,

    /// The BGP router ID (an IPv4 address). Unset means derived from the node's IPv4 address.
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15))]
    #[x_kube(validation = kube::core::Rule::new("isIP(self) && ip(self).family() == 4").message("must be an IPv4 address"))]
    pub router_id: Option<String>,

    /// Nodes that peer with this router, selected by their labels. Empty means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub node_selectors: Vec<LabelSelector>,

    /// TCP MD5 password (RFC 2385). Prefer passwordSecret. Mutually exclusive with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 80))]
    pub password: Option<String>,

    /// A Secret of type kubernetes.io/basic-auth in ferrolb's namespace whose `password` key
    /// holds the TCP MD5 password. Mutually exclusive with password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretReference>,

    /// Name of the BFDProfile to run BFD with on this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub bfd_profile: Option<String>,

    /// Keep advertised routes on the router across a speaker restart (RFC 4724). Immutable.
    #[serde(default)]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("enableGracefulRestart is immutable"))]
    pub enable_graceful_restart: bool,

    /// What the speakers do before their routes to this peer go away on purpose — the speaker
    /// stopping (pod deleted, DaemonSet updated, node shut down) or its node leaving (cordoned,
    /// drained, marked for scale-down, tainted NoExecute): re-advertise them with the
    /// GRACEFUL_SHUTDOWN community 65535:0 (RFC 8326), a lower LOCAL_PREF (iBGP) or a longer
    /// AS path (eBGP), so the router moves traffic to other nodes first. On by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_shutdown: Option<GracefulShutdown>,

    /// Allow an eBGP peer more than one hop away (TTL 255 instead of 1). Not for iBGP peers.
    #[serde(default)]
    pub ebgp_multi_hop: bool,

    /// GTSM (RFC 5082; Calico's field): the peer is at most this many hops away. The session
    /// is sent with TTL 255 and the kernel drops any of its packets that arrive with a TTL
    /// below 256 − ttlSecurity, so a spoofed packet from farther away never reaches BGP. The
    /// router must have it on too (FRR `ttl-security hops`, BIRD `ttl security on`, GoBGP
    /// `ttl-security`). 1 for a directly connected peer; unset or 0: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 254))]
    pub ttl_security: Option<u8>,

    /// Wait for the router to open the session instead of connecting to it (GoBGP's
    /// passive-mode, FRR's `neighbor X passive`). The speaker listens on the BGP port of the
    /// node (its `--bgp-listen-port`, 179 by default) and takes connections only from the
    /// addresses of the BGPPeers that select the node. Routers that dial are taken in either
    /// mode; with both ends dialling, RFC 4271 collision detection keeps one connection.
    #[serde(default)]
    pub passive: bool,

    /// The VRF (a Linux VRF device) to open the session in: its socket, and the listener for
    /// the router's connections, are bound to the device. Empty means the default VRF. A node
    /// without the device refuses the peer with that reason; BFD in a VRF is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15))]
    pub vrf: Option<String>,

    /// Deprecated, no effect: IPv4 and IPv6 are always negotiated with multiprotocol BGP.
    #[serde(default, rename = "disableMP")]
    pub disable_mp: bool,

    /// Activate the session for both IPv4 and IPv6 unicast regardless of the peer address
    /// family.
    #[serde(default)]
    pub dual_stack_address_family: bool,
}

/// Graceful shutdown of a BGPPeer's routes (RFC 8326).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GracefulShutdown {
    /// Withdraw at once instead (MetalLB's behaviour).
    #[serde(default)]
    pub disabled: bool,
    /// How long a stopping speaker keeps its re-advertised routes before it withdraws them
    /// and closes the session (Go duration, at most 5m; default 10s). The speaker's
    /// terminationGracePeriodSeconds must cover it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 32),
        regex(pattern = r"^([0-9]{1,6}(\.[0-9]{1,9})?(ns|us|ms|s|m|h))+$")
    )]
    pub drain_time: Option<String>,
    /// LOCAL_PREF of the re-advertised routes on iBGP sessions (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// How many more times the speaker's AS is put in front of the AS path of the
    /// re-advertised routes on eBGP sessions (0-10, default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 10))]
    pub as_path_prepend: Option<u8>,
}

fn default_port() -> u16 {
    179
}

// How a peer's AS number is learned when `peerASN` is not given (the field documents it).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DynamicAsnMode {
    /// The peer is in our AS (iBGP).
    Internal,
    /// The peer is in another AS (eBGP).
    External,
}

/// A reference to a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct SecretReference {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The Secret's namespace; must be ferrolb's namespace if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
}
