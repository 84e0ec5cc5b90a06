//! What the speaker's typed caches keep of a Node. Every node holds every Node of the cluster
//! and reads a few fields of each (see [`super::view`]): the rest — its image list, node info,
//! capacity — is dropped as the object arrives, before the cache keeps it. The tests check that
//! every view the speaker takes of a Node is the same before and after. (Services and
//! EndpointSlices are kept slimmer still, as [`super::slim`] projections.)

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Drops what the speaker does not read from an object of a kind it caches.
pub(crate) trait Trim {
    /// Keeps only what the speaker reads (nothing dropped by default).
    fn trim(&mut self) {}
}

/// What events and cache keys need of any object: name, namespace, UID and resource version
/// (an Event's involved object), and labels (selectors).
fn trim_meta(meta: &mut ObjectMeta) {
    let ObjectMeta {
        name,
        namespace,
        uid,
        resource_version,
        labels,
        deletion_timestamp,
        ..
    } = std::mem::take(meta);
    *meta = ObjectMeta {
        name,
        namespace,
        uid,
        resource_version,
        labels,
        deletion_timestamp,
        ..ObjectMeta::default()
    };
}

impl Trim for Node {
    /// Keeps labels, cordon and taints, conditions and addresses.
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
        if let Some(spec) = self.spec.take() {
            self.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
                unschedulable: spec.unschedulable,
                taints: spec.taints,
                ..Default::default()
            });
        }
        if let Some(status) = self.status.take() {
            self.status = Some(k8s_openapi::api::core::v1::NodeStatus {
                conditions: status.conditions,
                addresses: status.addresses,
                ..Default::default()
            });
        }
    }
}

impl Trim for k8s_openapi::api::core::v1::Secret {}
impl Trim for ferrolb_api::IPAddressPool {}
impl Trim for ferrolb_api::L2Advertisement {}
impl Trim for ferrolb_api::BGPAdvertisement {}
impl Trim for ferrolb_api::BGPPeer {}
impl Trim for ferrolb_api::BFDProfile {}
impl Trim for ferrolb_api::Community {}

#[cfg(test)]
mod tests;
