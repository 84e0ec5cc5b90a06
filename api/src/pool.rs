//! `IPAddressPool`: the addresses the controller may hand to LoadBalancer Services.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::schema::AddressEntry;

/// An IPAddressPool is a set of addresses the controller assigns to LoadBalancer Services.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    doc = "A pool of IP addresses the ferrolb controller assigns to LoadBalancer Services.",
    namespaced,
    status = "IPAddressPoolStatus",
    shortname = "ipp",
    category = "ferrolb",
    derive = "PartialEq",
    printcolumn(
        name = "Auto Assign",
        type_ = "boolean",
        json_path = ".spec.autoAssign"
    ),
    printcolumn(
        name = "Avoid Buggy IPs",
        type_ = "boolean",
        json_path = ".spec.avoidBuggyIPs"
    ),
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses"),
    printcolumn(
        name = "Assigned IPv4",
        type_ = "integer",
        json_path = ".status.assignedIPv4",
        priority = "1"
    ),
    printcolumn(
        name = "Assigned IPv6",
        type_ = "integer",
        json_path = ".status.assignedIPv6",
        priority = "1"
    ),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Valid\")].status"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// The addresses of the pool: CIDRs (192.0.2.0/24, 2001:db8::/64) and inclusive ranges
    /// (192.0.2.10-192.0.2.20). A pool may hold both IPv4 and IPv6 entries (dual stack). No two
    /// entries of any pools may overlap.
    #[schemars(length(min = 1, max = 256))]
    pub addresses: Vec<AddressEntry>,

    /// Whether the controller may pick addresses from this pool on its own. When false, the pool
    /// serves only Services that request it by name (ferrolb.io/address-pool) or request one of
    /// its IPs (ferrolb.io/loadBalancerIPs).
    #[serde(default = "default_true")]
    pub auto_assign: bool,

    /// Skip IPv4 addresses ending in .0 and .255, which some old or buggy network equipment
    /// drops.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,

    /// Restricts the pool to some Services and orders it against other pools. Without it, the
    /// pool serves every Service (as a fallback after pools that select the Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

fn default_true() -> bool {
    true
}

/// Which Services a pool serves, and with which priority.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Priority of this pool among the pools that select a Service: a lower number is tried
    /// first; 0 (or unset) is tried after every pool with a priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub priority: Option<i32>,

    /// Namespaces whose Services may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub namespaces: Vec<String>,

    /// Namespaces, selected by their labels, whose Services may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub namespace_selectors: Vec<LabelSelector>,

    /// Services, selected by their labels, that may use the pool (any selector matching is
    /// enough).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub service_selectors: Vec<LabelSelector>,
}

/// What the controller reports about a pool.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolStatus {
    /// Number of IPv4 addresses assigned to Services.
    #[serde(default, rename = "assignedIPv4")]
    pub assigned_ipv4: i64,
    /// Number of IPv6 addresses assigned to Services.
    #[serde(default, rename = "assignedIPv6")]
    pub assigned_ipv6: i64,
    /// Number of IPv4 addresses still free (saturates at the largest int64).
    #[serde(default, rename = "availableIPv4")]
    pub available_ipv4: i64,
    /// Number of IPv6 addresses still free (saturates at the largest int64).
    #[serde(default, rename = "availableIPv6")]
    pub available_ipv6: i64,
    /// Where the next IPv4 allocation starts looking: after the last address handed out, so a
    /// just-released address comes last. A restarted controller resumes from it.
    #[serde(default, rename = "nextIPv4", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15))]
    pub next_ipv4: Option<String>,
    /// Where the next IPv6 allocation starts looking (see nextIPv4).
    #[serde(default, rename = "nextIPv6", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 39))]
    pub next_ipv6: Option<String>,
    /// Whether the pool is in use (type Valid), and if not, why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
