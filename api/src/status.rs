//! Status written by ferrolb's components: the per-object validity of configuration objects and
//! the status-only kinds (which node announces a Service, and whether a component's
//! configuration is valid).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Status of a configuration object: whether the controller and speakers use it, and if not,
/// why (condition `Valid`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ConfigStatus {
    /// Conditions, keyed by type. `Valid` is False, with the reason and field, when the object
    /// is rejected by a rule that needs the whole configuration (an overlap, a missing
    /// reference).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// ServiceL2Status says which node announces a Service over layer 2, and on which interfaces.
/// Written by the speakers; one object per (Service, announcing node).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "ServiceL2Status",
    validation = kube::core::Rule::new(
        "!has(oldSelf.status) || ((!has(oldSelf.status.node) || (has(self.status) && has(self.status.node))) && \
         (!has(oldSelf.status.serviceName) || (has(self.status) && has(self.status.serviceName))) && \
         (!has(oldSelf.status.serviceNamespace) || (has(self.status) && has(self.status.serviceNamespace))))"
    ).message("status.node, status.serviceName and status.serviceNamespace are immutable: they cannot be removed once set").field_path(".status"),
    doc = "Which node announces a Service over layer 2 (written by the speakers).",
    namespaced,
    status = "ServiceL2StatusStatus",
    category = "ferrolb",
    derive = "PartialEq",
    printcolumn(name = "Allocated Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    )
)]
pub struct ServiceL2StatusSpec {}

/// Which node announces a Service over layer 2.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceL2StatusStatus {
    /// The node that answers ARP/NDP for the Service's IPs. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("node is immutable"))]
    pub node: Option<String>,
    /// The Service's name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("serviceName is immutable"))]
    pub service_name: Option<String>,
    /// The Service's namespace. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("serviceNamespace is immutable"))]
    pub service_namespace: Option<String>,
    /// The interfaces the node announces on; empty when it announces on all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub interfaces: Vec<InterfaceName>,
}

/// A network interface.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct InterfaceName {
    /// The interface's name.
    #[schemars(length(max = 15))]
    pub name: String,
}

/// ServiceBGPStatus says which BGP peers a node advertises a Service to. Written by the
/// speakers only with --service-bgp-status (MetalLB compatibility); one object per (Service,
/// node). The Service's ferrolb.io/BGPAdvertised condition says the same by default.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "ServiceBGPStatus",
    validation = kube::core::Rule::new(
        "!has(oldSelf.status) || ((!has(oldSelf.status.node) || (has(self.status) && has(self.status.node))) && \
         (!has(oldSelf.status.serviceName) || (has(self.status) && has(self.status.serviceName))) && \
         (!has(oldSelf.status.serviceNamespace) || (has(self.status) && has(self.status.serviceNamespace))))"
    ).message("status.node, status.serviceName and status.serviceNamespace are immutable: they cannot be removed once set").field_path(".status"),
    doc = "Which BGP peers a node advertises a Service to (written by the speakers).",
    namespaced,
    status = "ServiceBGPStatusStatus",
    category = "ferrolb",
    derive = "PartialEq",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    )
)]
pub struct ServiceBGPStatusSpec {}

/// Which peers a node advertises a Service to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBGPStatusStatus {
    /// The advertising node. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("node is immutable"))]
    pub node: Option<String>,
    /// The Service's name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("serviceName is immutable"))]
    pub service_name: Option<String>,
    /// The Service's namespace. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("serviceNamespace is immutable"))]
    pub service_namespace: Option<String>,
    /// Names of the BGPPeers the Service is configured to be advertised to from this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(max = 253)))]
    pub peers: Vec<String>,
}

/// ConfigurationState reports whether a component (the controller, or the speaker of one node)
/// accepted the current configuration. Named `controller` or `speaker-<node>`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "ConfigurationState",
    doc = "Whether a ferrolb component accepted the configuration (written by the components).",
    namespaced,
    status = "ConfigurationStateStatus",
    category = "ferrolb",
    derive = "PartialEq",
    printcolumn(name = "Result", type_ = "string", json_path = ".status.result"),
    printcolumn(
        name = "Errors",
        type_ = "string",
        json_path = ".status.errorSummary",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ConfigurationStateSpec {}

/// Whether a component's configuration is valid.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStateStatus {
    /// Valid, Invalid, or Unknown (no verdict yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ConfigurationResult>,
    /// Every configuration error, one per line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32768))]
    pub error_summary: Option<String>,
    /// Conditions, keyed by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

// A component's verdict on its configuration (the field documents it).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigurationResult {
    /// Every object was accepted.
    Valid,
    /// At least one object was rejected; the rest is in use.
    Invalid,
    /// No verdict yet.
    Unknown,
}

/// BGPSessionState reports one BGP session of one node: its state, why it last went down, and
/// how many prefixes the peer holds from the node. Written by the speakers; one object per
/// (node, BGPPeer) that peers from that node.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BGPSessionState",
    doc = "The state of one node's BGP session with one BGPPeer (written by the speakers).",
    namespaced,
    status = "BGPSessionStateStatus",
    category = "ferrolb",
    derive = "PartialEq",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(name = "Peer", type_ = "string", json_path = ".status.peer"),
    printcolumn(name = "Address", type_ = "string", json_path = ".status.peerAddress"),
    printcolumn(name = "BGP", type_ = "string", json_path = ".status.bgpStatus"),
    printcolumn(name = "BFD", type_ = "string", json_path = ".status.bfdStatus"),
    printcolumn(
        name = "Prefixes",
        type_ = "integer",
        json_path = ".status.prefixesAdvertised"
    ),
    printcolumn(
        name = "Last Down",
        type_ = "string",
        json_path = ".status.lastDown",
        priority = "1"
    )
)]
pub struct BGPSessionStateSpec {}

/// One BGP session's state.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BGPSessionStateStatus {
    /// The node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub node: Option<String>,
    /// The BGPPeer's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub peer: Option<String>,
    /// The peer's address and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub peer_address: Option<String>,
    /// The RFC 4271 state: Idle, Connect, Active, OpenSent, OpenConfirm or Established.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub bgp_status: Option<String>,
    /// The BFD session's state (Down, Init, Up), when the peer has a BFD profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub bfd_status: Option<String>,
    /// How the last session, or attempt at one, ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub last_down: Option<String>,
    /// Prefixes the peer holds from this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefixes_advertised: Option<u64>,
}
