//! A snapshot of everything the plugin reasons about, read once from the apiserver (or built
//! from YAML in tests), and the inputs the binaries' pure code takes, derived from it the way the
//! binaries derive them.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use ferrolb_api::{
    BFDProfile, BGPAdvertisement, BGPPeer, BGPSessionState, Community, IPAddressPool,
    L2Advertisement, ServiceBGPStatus, ServiceL2Status,
};
use ferrolb_config::{NodeName, Outcome, SecretInfo, Snapshot};
use ferrolb_speaker::bgp::advertise::{self, BgpPlan};
use ferrolb_speaker::election::NodeInfo;
use ferrolb_speaker::k8s::view;
use ferrolb_speaker::plan::LbService;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

/// The cluster as the plugin sees it.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// ferrolb's namespace.
    pub namespace: String,
    /// The load-balancer class ferrolb serves (`None`: Services without a class).
    pub lb_class: Option<String>,
    /// Every Service.
    pub services: Vec<Service>,
    /// Every Node.
    pub nodes: Vec<Node>,
    /// Every Namespace.
    pub namespaces: Vec<Namespace>,
    /// Every EndpointSlice.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// ferrolb's configuration objects and Secrets (in `namespace`).
    pub config: Snapshot,
    /// Which node announces what, as the speakers report it.
    pub l2_statuses: Vec<ServiceL2Status>,
    /// Which nodes advertise what to which peers, as the speakers report it with
    /// `--service-bgp-status` (empty otherwise: the Services' `ferrolb.io/BGPAdvertised`
    /// condition says it instead).
    pub bgp_statuses: Vec<ServiceBGPStatus>,
    /// Each node's BGP sessions, as the speakers report them.
    pub bgp_sessions: Vec<BGPSessionState>,
}

async fn list<K>(api: Api<K>) -> anyhow::Result<Vec<K>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    <K as Resource>::DynamicType: Default,
{
    let kind = K::kind(&Default::default()).into_owned();
    Ok(api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("cannot list {kind}"))?
        .items)
}

impl Cluster {
    /// Reads everything from the apiserver. Secrets are optional (a user without access to
    /// them still gets every answer that does not depend on BGP passwords).
    pub async fn fetch(
        client: &Client,
        namespace: &str,
        lb_class: Option<&str>,
    ) -> anyhow::Result<Self> {
        let ns = |c: &Client| c.clone();
        let in_ns = |c: &Client| (c.clone(), namespace.to_owned());
        let (cl, n) = in_ns(client);
        let secrets: Vec<Secret> = list(Api::namespaced(cl.clone(), &n))
            .await
            .unwrap_or_default();
        let config = Snapshot {
            namespace: namespace.to_owned(),
            pools: list::<IPAddressPool>(Api::namespaced(cl.clone(), &n)).await?,
            l2_advertisements: list::<L2Advertisement>(Api::namespaced(cl.clone(), &n)).await?,
            bgp_advertisements: list::<BGPAdvertisement>(Api::namespaced(cl.clone(), &n)).await?,
            peers: list::<BGPPeer>(Api::namespaced(cl.clone(), &n)).await?,
            bfd_profiles: list::<BFDProfile>(Api::namespaced(cl.clone(), &n)).await?,
            communities: list::<Community>(Api::namespaced(cl.clone(), &n)).await?,
            secrets: secrets
                .iter()
                .map(|s| {
                    let password = s
                        .data
                        .as_ref()
                        .and_then(|d| d.get("password"))
                        .and_then(|b| String::from_utf8(b.0.clone()).ok());
                    (
                        s.metadata.name.clone().unwrap_or_default(),
                        SecretInfo {
                            type_: s.type_.clone().unwrap_or_else(|| "Opaque".into()),
                            password,
                        },
                    )
                })
                .collect(),
            ..Snapshot::default()
        };
        let mut cluster = Self {
            namespace: namespace.to_owned(),
            lb_class: lb_class.map(str::to_owned),
            services: list(Api::all(ns(client))).await?,
            nodes: list(Api::all(ns(client))).await?,
            namespaces: list(Api::all(ns(client))).await?,
            endpoint_slices: list(Api::all(ns(client))).await?,
            config,
            l2_statuses: list(Api::namespaced(cl.clone(), &n))
                .await
                .unwrap_or_default(),
            bgp_statuses: list(Api::namespaced(cl.clone(), &n))
                .await
                .unwrap_or_default(),
            bgp_sessions: list(Api::namespaced(cl, &n)).await.unwrap_or_default(),
        };
        cluster.fill_snapshot();
        Ok(cluster)
    }

    /// Completes the config snapshot with Nodes and Namespaces (their labels).
    pub fn fill_snapshot(&mut self) {
        self.config.nodes = self
            .nodes
            .iter()
            .map(|n| {
                (
                    NodeName::from(n.metadata.name.clone().unwrap_or_default()),
                    n.metadata.labels.clone().unwrap_or_default(),
                )
            })
            .collect();
        self.config.namespaces = self
            .namespaces
            .iter()
            .map(|n| {
                (
                    n.metadata.name.clone().unwrap_or_default(),
                    n.metadata.labels.clone().unwrap_or_default(),
                )
            })
            .collect();
        // The pools Services hold addresses from win overlaps, as in the controller.
        self.config.pools_in_use = BTreeMap::new();
    }

    /// The validated configuration, as the binaries compute it.
    pub fn outcome(&self) -> Outcome {
        ferrolb_config::parse(&self.config)
    }

    /// The election's view of the nodes.
    pub fn node_infos(&self) -> BTreeMap<NodeName, NodeInfo> {
        self.nodes
            .iter()
            .map(|n| {
                (
                    NodeName::from(n.metadata.name.clone().unwrap_or_default()),
                    view::node_info(n),
                )
            })
            .collect()
    }

    /// The Services holding IPs, as the speaker sees them.
    pub fn lb_services(&self) -> Vec<LbService> {
        let endpoints = view::endpoints_by_service(&self.endpoint_slices);
        self.services
            .iter()
            .filter_map(|s| view::lb_service(s, self.lb_class.as_deref(), &endpoints))
            .collect()
    }

    /// The Service `namespace/name`.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| {
            s.metadata.namespace.as_deref() == Some(namespace)
                && s.metadata.name.as_deref() == Some(name)
        })
    }

    /// What each node advertises over BGP to whom, as its speaker computes it.
    pub fn bgp_plans(&self, config: &ferrolb_config::Config) -> BTreeMap<NodeName, BgpPlan> {
        let services = self.lb_services();
        self.node_infos()
            .iter()
            .map(|(name, info)| {
                // The label's age is unknown here: a labelled node counts as fully excluded.
                let node = advertise::Node {
                    name,
                    info,
                    ignore_exclude_label: false,
                    exclude_label_age: None,
                };
                (name.clone(), advertise::plan(config, &node, &services))
            })
            .collect()
    }

    /// The nodes the speakers report advertising `service` (`namespace/name`) over BGP, each
    /// with its peers.
    pub fn advertising_nodes(&self, service: &str) -> BTreeMap<String, Vec<String>> {
        self.bgp_statuses
            .iter()
            .filter_map(|s| s.status.as_ref())
            .filter(|s| {
                format!(
                    "{}/{}",
                    s.service_namespace.as_deref().unwrap_or_default(),
                    s.service_name.as_deref().unwrap_or_default()
                ) == service
            })
            .filter_map(|s| Some((s.node.clone()?, s.peers.clone())))
            .collect()
    }

    /// The nodes the speakers report announcing `service` (`namespace/name`).
    pub fn announcing_nodes(&self, service: &str) -> BTreeSet<String> {
        self.l2_statuses
            .iter()
            .filter_map(|s| s.status.as_ref())
            .filter(|s| {
                format!(
                    "{}/{}",
                    s.service_namespace.as_deref().unwrap_or_default(),
                    s.service_name.as_deref().unwrap_or_default()
                ) == service
            })
            .filter_map(|s| s.node.clone())
            .collect()
    }
}
