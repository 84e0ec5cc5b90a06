//! Reflectors on what the speaker reads. The caches outlive the apiserver: when it goes away the
//! watches retry in the background while the speaker keeps deciding from the last known view.

use std::fmt::Debug;

use ferrolb_api::{
    BFDProfile, BGPAdvertisement, BGPPeer, BGPSessionState, Community, IPAddressPool,
    L2Advertisement, ServiceBGPStatus, ServiceL2Status,
};
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::runtime::reflector::Store;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::slim::{SlimService, SlimSlice};
use super::status::{StatusKind, Stored, Tap};
use super::touched::Touched;
use super::trim::Trim;

/// What changed, as far as the decision loop cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Changed {
    /// Services or EndpointSlices.
    Workloads,
    /// Nodes (labels, conditions, addresses: the election and the membership's seeds).
    Nodes,
    /// Pools, advertisements, peers, BFD profiles or communities (the configuration is parsed
    /// again).
    Config,
    /// A Secret of ferrolb's namespace (the membership key, BGP passwords).
    Secret,
}

/// Where the reflectors of the status objects tell their writers what changed.
pub(crate) struct Taps {
    pub l2: Tap,
    pub bgp: Tap,
    pub sessions: Tap,
}

/// Read-only caches.
#[derive(Clone)]
pub(crate) struct Stores {
    /// What the speaker reads of every Service ([`SlimService`]).
    pub services: Store<SlimService>,
    pub nodes: Store<Node>,
    pub pools: Store<IPAddressPool>,
    pub l2_advertisements: Store<L2Advertisement>,
    pub bgp_advertisements: Store<BGPAdvertisement>,
    pub peers: Store<BGPPeer>,
    pub bfd_profiles: Store<BFDProfile>,
    pub communities: Store<Community>,
    /// The membership key's Secret, watched by name (RBAC may grant just that one).
    pub membership_secret: Store<Secret>,
    /// Every Secret of the namespace, for BGPPeers' passwordSecrets — when the speaker may
    /// read them (`None` otherwise: a peer with a password then reports its Secret missing).
    pub secrets: Option<Store<Secret>>,
    /// Every node's: a node announcing a layer-2 Service removes the previous announcer's
    /// object, and a gone node's are removed by one speaker. One per layer-2 Service, so
    /// O(Services), like the Services themselves.
    pub l2_statuses: Store<Stored<ServiceL2Status>>,
    /// This node's own, with `--service-bgp-status` only (`None` otherwise).
    pub bgp_statuses: Option<Store<Stored<ServiceBGPStatus>>>,
    pub bgp_sessions: Store<Stored<BGPSessionState>>,
}

impl Stores {
    /// Starts the watches. Config kinds, Secrets (the membership key `membership_secret` by
    /// name, and the BGP passwords if `passwords`) and the status objects come from
    /// `namespace` only; ServiceBGPStatus only when `bgp_statuses_of` names this node, and
    /// only that node's. Services are read as a speaker of class `lb_class` sees them, and
    /// each Service changed, or whose EndpointSlices changed, is told to `touched`; each
    /// status object changed to its writer's tap (`taps`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        client: &Client,
        touched: &Touched,
        taps: Taps,
        lb_class: Option<String>,
        namespace: &str,
        membership_secret: &str,
        passwords: bool,
        bgp_statuses_of: Option<&str>,
        tx: &mpsc::UnboundedSender<Changed>,
    ) -> Self {
        let all = watcher::Config::default();
        let (for_services, for_slices) = (touched.clone(), touched.clone());
        // The slices are kept by `touched`, filed by Service, not in a cache of their own.
        let slices_tx = tx.clone();
        ferrolb_runtime::reflect::watch_projected(
            Api::all(client.clone()),
            all.clone(),
            SlimSlice::of,
            move |event| {
                for_slices.slice(event);
                match event {
                    Event::Init | Event::InitApply(_) => true,
                    _ => slices_tx.send(Changed::Workloads).is_ok(),
                }
            },
        );
        Self {
            services: reflect_slim(
                Api::all(client.clone()),
                all.clone(),
                move |svc| SlimService::of(svc, lb_class.as_deref()),
                move |event| for_services.service(event),
                tx,
                Changed::Workloads,
            ),
            nodes: reflect(Api::all(client.clone()), all.clone(), tx, Changed::Nodes),
            pools: reflect(
                Api::namespaced(client.clone(), namespace),
                all.clone(),
                tx,
                Changed::Config,
            ),
            l2_advertisements: reflect(
                Api::namespaced(client.clone(), namespace),
                all.clone(),
                tx,
                Changed::Config,
            ),
            bgp_advertisements: reflect(
                Api::namespaced(client.clone(), namespace),
                all.clone(),
                tx,
                Changed::Config,
            ),
            peers: reflect(
                Api::namespaced(client.clone(), namespace),
                all.clone(),
                tx,
                Changed::Config,
            ),
            bfd_profiles: reflect(
                Api::namespaced(client.clone(), namespace),
                all.clone(),
                tx,
                Changed::Config,
            ),
            communities: reflect(
                Api::namespaced(client.clone(), namespace),
                all.clone(),
                tx,
                Changed::Config,
            ),
            membership_secret: reflect(
                Api::namespaced(client.clone(), namespace),
                watcher::Config::default().fields(&format!("metadata.name={membership_secret}")),
                tx,
                Changed::Secret,
            ),
            secrets: passwords.then(|| {
                reflect(
                    Api::namespaced(client.clone(), namespace),
                    all.clone(),
                    tx,
                    Changed::Secret,
                )
            }),
            l2_statuses: reflect_statuses(
                Api::namespaced(client.clone(), namespace),
                all.clone(),
                taps.l2,
            ),
            bgp_statuses: bgp_statuses_of.map(|node| {
                reflect_statuses(
                    Api::namespaced(client.clone(), namespace),
                    watcher::Config::default()
                        .labels(&format!("{}={node}", super::status::NODE_LABEL)),
                    taps.bgp,
                )
            }),
            bgp_sessions: reflect_statuses(
                Api::namespaced(client.clone(), namespace),
                all,
                taps.sessions,
            ),
        }
    }

    /// Waits until every cache, and `touched`'s slices, have their first full list.
    pub(crate) async fn wait_ready(&self, touched: &Touched) {
        // A store only errors if its writer is dropped, which happens on shutdown.
        let _ = tokio::join!(
            self.services.wait_until_ready(),
            touched.slices_listed(),
            self.nodes.wait_until_ready(),
            self.pools.wait_until_ready(),
            self.l2_advertisements.wait_until_ready(),
            self.bgp_advertisements.wait_until_ready(),
            self.peers.wait_until_ready(),
            self.bfd_profiles.wait_until_ready(),
            self.communities.wait_until_ready(),
            self.membership_secret.wait_until_ready(),
            async {
                if let Some(secrets) = &self.secrets {
                    let _ = secrets.wait_until_ready().await;
                }
                Ok::<(), kube::runtime::reflector::store::WriterDropped>(())
            },
            self.l2_statuses.wait_until_ready(),
            async {
                if let Some(statuses) = &self.bgp_statuses {
                    let _ = statuses.wait_until_ready().await;
                }
                Ok::<(), kube::runtime::reflector::store::WriterDropped>(())
            },
            self.bgp_sessions.wait_until_ready(),
        );
    }
}

/// Runs a reflector for `api` in the background, sending `changed` on every change; the cache
/// keeps what [`Trim`] leaves of each object.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    tx: &mpsc::UnboundedSender<Changed>,
    changed: Changed,
) -> Store<K>
where
    K: Resource
        + kube::ResourceExt
        + Trim
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
    <K as Resource>::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let tx = tx.clone();
    ferrolb_runtime::reflect::spawn_trimmed(api, config, K::trim, move |ev| match ev {
        Event::Init | Event::InitApply(_) => true,
        _ => tx.send(changed).is_ok(),
    })
}

/// Runs a reflector for `api` in the background, handing every event to `seen` and sending
/// `changed` on every change; the cache keeps the `project`ion of each object.
fn reflect_slim<K, P>(
    api: Api<K>,
    config: watcher::Config,
    project: impl Fn(&K) -> P + Send + 'static,
    seen: impl Fn(&Event<P>) + Send + 'static,
    tx: &mpsc::UnboundedSender<Changed>,
    changed: Changed,
) -> Store<P>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    <K as Resource>::DynamicType: Default,
    P: kube::runtime::reflector::Lookup<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let tx = tx.clone();
    ferrolb_runtime::reflect::spawn_projected(api, config, project, move |ev| {
        seen(ev);
        match ev {
            Event::Init | Event::InitApply(_) => true,
            _ => tx.send(changed).is_ok(),
        }
    })
}

/// Runs a reflector of status objects of kind `K` in the background, telling `tap` of every
/// change; the cache keeps what the writer reads of each ([`Stored`]).
fn reflect_statuses<K: StatusKind>(
    api: Api<K>,
    config: watcher::Config,
    tap: Tap,
) -> Store<Stored<K>> {
    ferrolb_runtime::reflect::spawn_projected(api, config, Stored::of, move |ev| {
        tap.seen(ev);
        true
    })
}

/// Whether this speaker may list the Secrets of `namespace` (for BGPPeers' passwordSecrets).
/// The install bundle grants it in a Role of its own, which clusters without BGP passwords
/// may leave out: then the speaker reads only its membership key, by name. If the question
/// itself fails, the answer is yes, and a missing permission shows in the watch's errors.
pub(crate) async fn may_list_secrets(client: &Client, namespace: &str) -> bool {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_owned()),
                resource: Some("secrets".to_owned()),
                verb: Some("list".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: kube::Api<SelfSubjectAccessReview> = kube::Api::all(client.clone());
    match api.create(&Default::default(), &review).await {
        Ok(answer) if answer.status.as_ref().is_some_and(|s| !s.allowed) => {
            tracing::info!(
                %namespace,
                "this speaker may not read the namespace's Secrets: BGPPeers with a passwordSecret cannot be served (grant the Role ferrolb-speaker-bgp-passwords to use them)"
            );
            false
        }
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot ask whether this speaker may read Secrets; assuming it may");
            true
        }
    }
}
