//! `Community`: names for BGP community values, usable in BGPAdvertisements.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::schema::CommunityValue;
use crate::status::ConfigStatus;

/// A Community defines names (aliases) for BGP community values, so BGPAdvertisements can say
/// `no-export-lab` instead of `65535:65281`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "Community",
    doc = "Names for BGP community values.",
    namespaced,
    status = "ConfigStatus",
    category = "ferrolb",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct CommunitySpec {
    /// The aliases. Names must be unique across every Community object.
    #[serde(default)]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub communities: Vec<CommunityAlias>,
}

/// One named community value.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CommunityAlias {
    /// The alias, used in BGPAdvertisement.spec.communities.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
    )]
    pub name: String,
    /// The community: AS:VALUE (legacy) or large:A:B:C (large).
    pub value: CommunityValue,
}
