//! Reflectors on everything the controller reads, and the triggers they raise.

use std::fmt::Debug;

use ferrolb_api::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use kube::runtime::reflector::Store;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::allocator::ServiceKey;

/// Why the core loop should look at something.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Trigger {
    /// A Service changed or disappeared.
    Service(ServiceKey),
    /// A status write was refused because the Service had changed: here it is as it is now
    /// (perhaps newer than the cache), to be decided again.
    Fresh(std::sync::Arc<k8s_openapi::api::core::v1::Service>),
    /// Services were listed anew: some may have vanished without a delete event.
    ServicesRelisted,
    /// A configuration object, Namespace, Node or Secret changed.
    Config,
}

/// Read-only caches of the cluster.
#[derive(Clone)]
pub(crate) struct Stores {
    pub services: Store<Service>,
    pub pools: Store<IPAddressPool>,
    pub l2_advertisements: Store<L2Advertisement>,
    pub bgp_advertisements: Store<BGPAdvertisement>,
    pub peers: Store<BGPPeer>,
    pub bfd_profiles: Store<BFDProfile>,
    pub communities: Store<Community>,
    pub secrets: Store<Secret>,
    pub namespaces: Store<Namespace>,
    pub nodes: Store<Node>,
}

impl Stores {
    /// Starts a watch per kind (config kinds and Secrets in `namespace` only) feeding `tx`.
    pub(crate) fn start(
        client: &Client,
        namespace: &str,
        tx: &mpsc::UnboundedSender<Trigger>,
    ) -> Self {
        let ns = |c: &Client| (c.clone(), namespace.to_owned());
        Self {
            services: reflect(Api::all(client.clone()), tx.clone(), |ev| match ev {
                Event::Apply(s) | Event::Delete(s) => {
                    Some(Trigger::Service(crate::service::key_of(s)))
                }
                Event::InitDone => Some(Trigger::ServicesRelisted),
                Event::Init | Event::InitApply(_) => None,
            }),
            pools: reflect(namespaced(ns(client)), tx.clone(), config_trigger),
            l2_advertisements: reflect(namespaced(ns(client)), tx.clone(), config_trigger),
            bgp_advertisements: reflect(namespaced(ns(client)), tx.clone(), config_trigger),
            peers: reflect(namespaced(ns(client)), tx.clone(), config_trigger),
            bfd_profiles: reflect(namespaced(ns(client)), tx.clone(), config_trigger),
            communities: reflect(namespaced(ns(client)), tx.clone(), config_trigger),
            secrets: reflect(namespaced(ns(client)), tx.clone(), config_trigger),
            namespaces: reflect(Api::all(client.clone()), tx.clone(), config_trigger),
            nodes: reflect(Api::all(client.clone()), tx.clone(), config_trigger),
        }
    }

    /// Waits until every cache has its first full list.
    pub(crate) async fn wait_ready(&self) {
        // A store only errors if its writer is dropped, which happens on shutdown.
        let _ = tokio::join!(
            self.services.wait_until_ready(),
            self.pools.wait_until_ready(),
            self.l2_advertisements.wait_until_ready(),
            self.bgp_advertisements.wait_until_ready(),
            self.peers.wait_until_ready(),
            self.bfd_profiles.wait_until_ready(),
            self.communities.wait_until_ready(),
            self.secrets.wait_until_ready(),
            self.namespaces.wait_until_ready(),
            self.nodes.wait_until_ready(),
        );
    }
}

fn namespaced<K>((client, ns): (Client, String)) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    Api::namespaced(client, &ns)
}

fn config_trigger<K>(ev: &Event<K>) -> Option<Trigger> {
    match ev {
        Event::Apply(_) | Event::Delete(_) | Event::InitDone => Some(Trigger::Config),
        Event::Init | Event::InitApply(_) => None,
    }
}

/// Runs a reflector for `api` in the background; `trigger` maps its events to triggers.
fn reflect<K>(
    api: Api<K>,
    tx: mpsc::UnboundedSender<Trigger>,
    trigger: fn(&Event<K>) -> Option<Trigger>,
) -> Store<K>
where
    K: Resource + kube::ResourceExt + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    <K as Resource>::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    ferrolb_runtime::reflect::spawn(api, watcher::Config::default(), move |ev| {
        trigger(ev).is_none_or(|t| tx.send(t).is_ok())
    })
}
