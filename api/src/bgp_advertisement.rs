//! `BGPAdvertisement`: which pools are advertised to BGP peers, with which attributes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::schema::CommunityOrAlias;
use crate::status::ConfigStatus;

/// A BGPAdvertisement makes the speakers advertise the IPs of the selected pools to BGP peers,
/// as host routes or aggregates, with optional LOCAL_PREF and communities.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    doc = "Advertises the IPs of the selected pools to BGP peers.",
    namespaced,
    status = "ConfigStatus",
    shortname = "bgpadv",
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
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
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
#[x_kube(
    validation = kube::core::Rule::new(
        "!has(self.serviceSelectors) || size(self.serviceSelectors) == 0 || \
         ((!has(self.aggregationLength) || self.aggregationLength == 32) && \
          (!has(self.aggregationLengthV6) || self.aggregationLengthV6 == 128))"
    ).message("serviceSelectors and a non-default aggregationLength/aggregationLengthV6 are mutually exclusive")
)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// Prefix length of the IPv4 routes advertised: 32 (default) advertises each IP; shorter
    /// lengths advertise one aggregate per covering prefix. Must not be shorter than any IPv4
    /// CIDR of the selected pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32))]
    pub aggregation_length: Option<i32>,

    /// Prefix length of the IPv6 routes advertised: 128 (default) advertises each IP.
    #[serde(
        default,
        rename = "aggregationLengthV6",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 128))]
    pub aggregation_length_v6: Option<i32>,

    /// LOCAL_PREF attached to the routes (iBGP peers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 4294967295u32))]
    pub local_pref: Option<u32>,

    /// BGP communities attached to the routes: AS:VALUE, large:A:B:C, or Community alias names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 63), extend("x-kubernetes-list-type" = "set"))]
    pub communities: Vec<CommunityOrAlias>,

    /// Pools to advertise, by name. With neither ipAddressPools nor ipAddressPoolSelectors, every
    /// pool is advertised.
    #[serde(
        default,
        rename = "ipAddressPools",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub ip_address_pools: Vec<String>,

    /// Pools to advertise, selected by their labels (any selector matching is enough).
    #[serde(
        default,
        rename = "ipAddressPoolSelectors",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 32))]
    pub ip_address_pool_selectors: Vec<LabelSelector>,

    /// Nodes that advertise, selected by their labels. Empty means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub node_selectors: Vec<LabelSelector>,

    /// BGPPeers (by name) to advertise to. Empty means every peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub peers: Vec<String>,

    /// Services to advertise, selected by their labels (any selector matching is enough). Empty
    /// means every Service of the selected pools.
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
}
