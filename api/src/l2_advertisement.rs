//! `L2Advertisement`: which pools are announced over ARP/NDP, from which nodes and interfaces.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::status::ConfigStatus;

/// An L2Advertisement makes the speakers announce the IPs of the selected pools on the local
/// network with ARP (IPv4) and NDP (IPv6): one node per IP answers for it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    doc = "Announces the IPs of the selected pools on the local network with ARP and NDP.",
    namespaced,
    status = "ConfigStatus",
    shortname = "l2adv",
    category = "ferrolb",
    derive = "PartialEq",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(
        name = "IPAddressPool Selectors",
        type_ = "string",
        json_path = ".spec.ipAddressPoolSelectors"
    ),
    printcolumn(name = "Interfaces", type_ = "string", json_path = ".spec.interfaces"),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = "10"
    ),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Valid\")].status"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Pools to announce, by name. With neither ipAddressPools nor ipAddressPoolSelectors, every
    /// pool is announced.
    #[serde(
        default,
        rename = "ipAddressPools",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub ip_address_pools: Vec<String>,

    /// Pools to announce, selected by their labels (any selector matching is enough).
    #[serde(
        default,
        rename = "ipAddressPoolSelectors",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 32))]
    pub ip_address_pool_selectors: Vec<LabelSelector>,

    /// Nodes that may announce, selected by their labels. Empty means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub node_selectors: Vec<LabelSelector>,

    /// Interfaces to answer and announce on. Empty means every suitable interface (not
    /// loopback, not enslaved to a bond or bridge, not NOARP, not excluded by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 15), regex(pattern = r"^[^/\s:]+$"))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub interfaces: Vec<String>,

    /// Services to announce, selected by their labels (any selector matching is enough). Empty
    /// means every Service of the selected pools. Services that share an IP
    /// (ferrolb.io/allow-shared-ip) are not announced by an advertisement with serviceSelectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub service_selectors: Vec<LabelSelector>,

    /// Announce the IPs of the Services it matches even while they have no ready endpoint —
    /// for Gateway API implementations and Services backed outside the cluster. With
    /// externalTrafficPolicy Local, the nodes with a ready local endpoint announce if any
    /// node has one, otherwise any eligible node does. The per-Service annotation
    /// ferrolb.io/announce-without-endpoints does the same for one Service.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub announce_without_endpoints: bool,

    /// Soft preferences among the eligible nodes: a node's score is the sum of the weights of
    /// the preferences it matches (over every advertisement of the Service); the highest score
    /// announces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub preferred_node_selectors: Vec<PreferredNodeSelector>,
}

/// A weighted node preference.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PreferredNodeSelector {
    /// Weight added to the score of every node the preference matches (1-100).
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
    /// The nodes this preference matches.
    pub preference: LabelSelector,
}
