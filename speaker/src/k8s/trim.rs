//! What the speaker's caches keep of the cluster's large kinds. Every node holds every Service,
//! EndpointSlice and Node of the cluster, and reads a few fields of each (see [`super::view`]):
//! the rest — a Node's image list, an EndpointSlice's target references, a Service's
//! last-applied annotation, ports and cluster IPs — is dropped as the object arrives, before
//! the cache keeps it. The tests check that every view the speaker takes of an object is the
//! same before and after.

use ferrolb_api::annotations::PREFIXES;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::view::SERVICE_NAME_LABEL;

/// Drops what the speaker does not read from an object of a kind it caches.
pub(crate) trait Trim {
    /// Keeps only what the speaker reads (nothing dropped by default).
    fn trim(&mut self) {}
}

/// What events and cache keys need of any object: name, namespace, UID and resource version
/// (an Event's involved object), labels (selectors) and, by `keep_annotation`, some annotations.
fn trim_meta(meta: &mut ObjectMeta, keep_annotation: impl Fn(&str) -> bool) {
    let ObjectMeta {
        name,
        namespace,
        uid,
        resource_version,
        labels,
        annotations,
        deletion_timestamp,
        ..
    } = std::mem::take(meta);
    let annotations = annotations
        .map(|a| {
            a.into_iter()
                .filter(|(k, _)| keep_annotation(k))
                .collect::<std::collections::BTreeMap<_, _>>()
        })
        .filter(|a| !a.is_empty());
    *meta = ObjectMeta {
        name,
        namespace,
        uid,
        resource_version,
        labels,
        annotations,
        deletion_timestamp,
        ..ObjectMeta::default()
    };
}

impl Trim for Service {
    /// Keeps type, class and traffic policy, the ingress IPs, the speakers' `BGPAdvertised`
    /// condition, and ferrolb's (and MetalLB's) annotations.
    fn trim(&mut self) {
        trim_meta(&mut self.metadata, |k| {
            PREFIXES.iter().any(|p| k.starts_with(p))
        });
        if let Some(spec) = self.spec.take() {
            self.spec = Some(k8s_openapi::api::core::v1::ServiceSpec {
                type_: spec.type_,
                load_balancer_class: spec.load_balancer_class,
                external_traffic_policy: spec.external_traffic_policy,
                ..Default::default()
            });
        }
        if let Some(status) = self.status.as_mut() {
            // The speakers' own condition stays: its writer compares against it.
            if let Some(conditions) = status.conditions.as_mut() {
                conditions.retain(|c| c.type_ == crate::report::BGP_ADVERTISED);
            }
            if status.conditions.as_ref().is_some_and(Vec::is_empty) {
                status.conditions = None;
            }
            for ingress in status
                .load_balancer
                .iter_mut()
                .flat_map(|lb| lb.ingress.iter_mut().flatten())
            {
                ingress.ports = None;
                ingress.hostname = None;
            }
        }
    }
}

impl Trim for EndpointSlice {
    /// Keeps the Service's name label and, per endpoint, its node, its conditions and whether
    /// it has an address.
    fn trim(&mut self) {
        trim_meta(&mut self.metadata, |_| false);
        if let Some(labels) = self.metadata.labels.as_mut() {
            labels.retain(|k, _| k == SERVICE_NAME_LABEL);
        }
        self.ports = None;
        for endpoint in &mut self.endpoints {
            endpoint.addresses.truncate(1);
            endpoint.target_ref = None;
            endpoint.hints = None;
            endpoint.hostname = None;
            endpoint.zone = None;
            endpoint.deprecated_topology = None;
        }
    }
}

impl Trim for Node {
    /// Keeps labels, cordon and taints, conditions and addresses.
    fn trim(&mut self) {
        trim_meta(&mut self.metadata, |_| false);
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
impl Trim for ferrolb_api::ServiceL2Status {}
impl Trim for ferrolb_api::ServiceBGPStatus {}
impl Trim for ferrolb_api::BGPSessionState {}

#[cfg(test)]
mod tests;
