//! The `ferrolb.io/v1beta1` API: the custom resources users `kubectl apply` (address pools,
//! layer-2 and BGP advertisements, BGP peers, BFD profiles, community aliases), the status-only
//! kinds the components write, and the Service annotations ferrolb reads and writes.
//!
//! The kinds keep MetalLB's names, field names and semantics, so a MetalLB user migrates by
//! changing the apiVersion. Everything that can be checked on a single object is a schema
//! constraint or an `x-kubernetes-validations` CEL rule here, enforced by the apiserver itself (no
//! admission webhook); what needs the whole configuration is checked by `ferrolb-config`.
//!
//! This crate holds types (and plain accessors over them, [`service`]): no logic, no I/O.

// Several `printcolumn(type_ = …)` in one `#[kube]` attribute look like duplicates to clippy.
#![allow(clippy::duplicated_attributes)]

pub mod annotations;
mod bfd;
mod bgp_advertisement;
mod community;
mod crds;
mod l2_advertisement;
mod peer;
mod pool;
mod reference;
mod schema;
pub mod service;
mod status;

pub use bfd::{BFDProfile, BFDProfileSpec};
pub use bgp_advertisement::{BGPAdvertisement, BGPAdvertisementSpec};
pub use community::{Community, CommunityAlias, CommunitySpec};
pub use crds::{all_crds, render_crd_yaml, render_kustomization};
pub use l2_advertisement::{L2Advertisement, L2AdvertisementSpec, PreferredNodeSelector};
pub use peer::{BGPPeer, BGPPeerSpec, DynamicAsnMode, GracefulShutdown, SecretReference};
pub use pool::{IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation};
pub use reference::render_reference;
pub use schema::{AddressEntry, CommunityOrAlias, CommunityValue};
pub use status::{
    BGPSessionState, BGPSessionStateSpec, BGPSessionStateStatus, ConfigStatus, ConfigurationResult,
    ConfigurationState, ConfigurationStateSpec, ConfigurationStateStatus, InterfaceName,
    ServiceBGPStatus, ServiceBGPStatusSpec, ServiceBGPStatusStatus, ServiceL2Status,
    ServiceL2StatusSpec, ServiceL2StatusStatus,
};

/// The Kubernetes types our API embeds, re-exported so that pure crates (config, allocator,
/// election) can name them without depending on k8s-openapi themselves.
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, LabelSelectorRequirement, ObjectMeta, Time,
};

/// The API group of every ferrolb kind.
pub const GROUP: &str = "ferrolb.io";
/// The one served and stored version.
pub const VERSION: &str = "v1beta1";
/// `apiVersion` as it appears in manifests.
pub const API_VERSION: &str = "ferrolb.io/v1beta1";
/// The namespace config objects are read from and components run in (overridable by flag).
pub const DEFAULT_NAMESPACE: &str = "ferrolb-system";
/// Status condition written on every configuration object: `True` when the object is in use.
pub const CONDITION_VALID: &str = "Valid";
