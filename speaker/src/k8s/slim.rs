//! What the speaker keeps of each Service and EndpointSlice of the cluster: the few facts it
//! reads, taken once as the object arrives. Every node holds all of them, so their size is the
//! speaker's memory at scale — a typed Service is 824 bytes before its first string, an
//! EndpointSlice 432 plus 352 per endpoint, and a one-entry label map a 540-byte B-tree node;
//! these hold a few strings and flags. [`super::view`] turns them into what the plan reads.

use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_api::service::{
    allocated_pool, announce_without_endpoints, ingress_ips, is_ours, shares_ip,
    traffic_policy_local,
};
use ferrolb_config::Labels;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use super::condition::{Shown, shown};
use super::view::SERVICE_NAME_LABEL;

/// A Service, as the speaker reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlimService {
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// For Events about it.
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
    /// Advertisements select Services by them.
    pub(crate) labels: Labels,
    /// A LoadBalancer of the speaker's class.
    pub(crate) ours: bool,
    /// `externalTrafficPolicy: Local`.
    pub(crate) local: bool,
    /// It carries a sharing key.
    pub(crate) shares_ip: bool,
    /// `ferrolb.io/announce-without-endpoints: "true"`.
    pub(crate) announce_without_endpoints: bool,
    /// The pool the controller recorded.
    pub(crate) pool: Option<String>,
    /// The IPs in its status.
    pub(crate) ips: Vec<IpAddr>,
    /// The speakers' `ferrolb.io/BGPAdvertised` condition, as shown (its writer compares).
    pub(crate) bgp_advertised: Option<Box<Shown>>,
}

impl SlimService {
    /// What the speaker of class `lb_class` reads of `svc`.
    pub fn of(svc: &Service, lb_class: Option<&str>) -> Self {
        let meta = &svc.metadata;
        Self {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            labels: meta.labels.clone().unwrap_or_default(),
            ours: is_ours(svc, lb_class),
            local: traffic_policy_local(svc),
            shares_ip: shares_ip(svc),
            announce_without_endpoints: announce_without_endpoints(svc).unwrap_or(false),
            pool: allocated_pool(svc).map(str::to_owned),
            ips: ingress_ips(svc),
            bgp_advertised: shown(svc).map(Box::new),
        }
    }

    /// `namespace/name`.
    pub(crate) fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The Service `key` (`namespace/name`, as [`Self::key`] gives) in `store`.
    pub(crate) fn find(store: &Store<Self>, key: &str) -> Option<Arc<Self>> {
        let (namespace, name) = key.split_once('/')?;
        store.get(&ObjectRef::new(name).within(namespace))
    }

    /// A Service with just what an Event's reference to it needs.
    pub(crate) fn reference(&self) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some(self.namespace.clone()),
                name: Some(self.name.clone()),
                uid: self.uid.clone(),
                resource_version: self.resource_version.clone(),
                ..ObjectMeta::default()
            },
            ..Service::default()
        }
    }
}

/// An EndpointSlice, as the speaker reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlimSlice {
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// Its Service's name (the `kubernetes.io/service-name` label).
    pub(crate) service: Option<String>,
    /// Its endpoints that have an address.
    pub(crate) endpoints: Vec<SlimEndpoint>,
}

/// One endpoint with an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlimEndpoint {
    pub(crate) node: Option<String>,
    /// Ready (a missing `ready` means ready, the API's rule).
    pub(crate) ready: bool,
    /// Serving (missing: as ready).
    pub(crate) serving: bool,
}

impl SlimSlice {
    /// What the speaker reads of `slice`.
    pub fn of(slice: &EndpointSlice) -> Self {
        let meta = &slice.metadata;
        Self {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            service: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .cloned(),
            endpoints: slice
                .endpoints
                .iter()
                .filter(|e| !e.addresses.is_empty())
                .map(|e| {
                    let conditions = e.conditions.as_ref();
                    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
                    SlimEndpoint {
                        node: e.node_name.clone(),
                        ready,
                        serving: conditions.and_then(|c| c.serving).unwrap_or(ready),
                    }
                })
                .collect(),
        }
    }

    /// Its Service's `namespace/name`, if it names one.
    pub(crate) fn service_key(&self) -> Option<String> {
        let service = self.service.as_ref()?;
        Some(format!("{}/{service}", self.namespace))
    }
}

/// Makes a slim projection (with `name` and `namespace` fields) a cache entry named as the
/// apiserver names the object of kind `$kind` it was taken from. The resource version and UID
/// stay out of its key (the cache compares keys without them anyway).
macro_rules! slim_lookup {
    ([$($generics:tt)*] $slim:ty, $kind:ty) => {
        impl<$($generics)*> kube::runtime::reflector::Lookup for $slim {
            type DynamicType = ();

            fn kind(dyntype: &()) -> std::borrow::Cow<'_, str> {
                <$kind as kube::Resource>::kind(dyntype)
            }

            fn group(dyntype: &()) -> std::borrow::Cow<'_, str> {
                <$kind as kube::Resource>::group(dyntype)
            }

            fn version(dyntype: &()) -> std::borrow::Cow<'_, str> {
                <$kind as kube::Resource>::version(dyntype)
            }

            fn plural(dyntype: &()) -> std::borrow::Cow<'_, str> {
                <$kind as kube::Resource>::plural(dyntype)
            }

            fn name(&self) -> Option<std::borrow::Cow<'_, str>> {
                Some(std::borrow::Cow::Borrowed(&self.name))
            }

            fn namespace(&self) -> Option<std::borrow::Cow<'_, str>> {
                Some(std::borrow::Cow::Borrowed(&self.namespace))
            }

            fn resource_version(&self) -> Option<std::borrow::Cow<'_, str>> {
                None
            }

            fn uid(&self) -> Option<std::borrow::Cow<'_, str>> {
                None
            }
        }
    };
}
pub(crate) use slim_lookup;

slim_lookup!([] SlimService, Service);

#[cfg(test)]
mod tests;
