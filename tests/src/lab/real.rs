//! The lab on a real Kubernetes cluster ([`crate::cluster`]): every node namespace runs
//! containerd, runc, the kubelet and kube-proxy; Deployments, DaemonSets and EndpointSlices are
//! Kubernetes' own. ferrolb is installed as the README tells users — `kubectl apply
//! --server-side -f manifests/install.yaml`, from the image `tests/setup/images.sh` builds — and
//! the workload is a DaemonSet of the echo image (one pod per node, answering with its pod,
//! node and the client address it saw). The router and the external client behind it are
//! [`super`]'s. `ferrolb-lab` (the README's main job) runs this lab.
//!
//! ```text
//!                                                          external 203.0.113.10
//!                                                   router 192.0.2.<n+3> (BIRD, FRR or GoBGP)
//!                 ┌──────────── LAN bridge (192.0.2.0/24) ─────────────┴─────────────────┐
//!   node-1 192.0.2.1    node-2 192.0.2.2   node-3 192.0.2.3    cp 192.0.2.4   client 192.0.2.5
//!   kubelet, containerd, kube-proxy;       (apiserver)
//!   pods: ferrolb-speaker (host network), ferrolb-controller, echo (cni0 198.18.<k>.0/24)
//! ```

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use super::{
    EXTERNAL_IP, LabState, NodeInfo, PodInfo, ROUTER, RouterKind, bgp_config, route_outside,
    start_router,
};
use crate::cluster::ferrolb::running_and_ready;
use crate::cluster::metallb::Metallb;
use crate::cluster::{CLIENT, Cluster};
use crate::image::ECHO_IMAGE;
use crate::l2cluster::wait_for;
use crate::netns::OwnedNetns;
use crate::routers::{FibSync, Router};

/// Where the speaker answers `/readyz` on each node (host network, the node's address).
const SPEAKER_PORT: u16 = 7948;

/// The workload: one echo pod per node (`{ECHO_IMAGE}`: [`ECHO_IMAGE`]).
const ECHO: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: echo, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
        - name: echo
          image: {ECHO_IMAGE}
          imagePullPolicy: Never
          ports: [{containerPort: 8080}]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
            - name: NODE_NAME
              valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
          readinessProbe:
            tcpSocket: {port: 8080}
            periodSeconds: 1
"#;

/// MetalLB's configuration in the lab, the same as ferrolb's: the `lan` pool (IPv4) with an
/// L2Advertisement, and the `bgp` pool (not auto-assigned) advertised to the router
/// (`{router}`) with the same community, AS numbers and hold time. No BFD: MetalLB's native
/// speaker has none.
pub const METALLB_CONFIG: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec: {addresses: ["192.0.2.200-192.0.2.239"]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec: {ipAddressPools: [lan]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bgp, namespace: metallb-system}
spec: {addresses: ["198.51.100.10-198.51.100.250"], autoAssign: false}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp, namespace: metallb-system}
spec: {ipAddressPools: [bgp], communities: ["64512:100"]}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64500, peerAddress: {router}, holdTime: {hold}}
"#;

/// The load balancer a lab runs.
#[derive(Clone, Debug)]
pub enum LoadBalancer {
    /// ferrolb, from `manifests/install.yaml` (with BFD to BIRD and FRR).
    Ferrolb,
    /// MetalLB, from its own `metallb-native.yaml` ([`METALLB_CONFIG`]), for comparisons.
    Metallb(Metallb),
}

/// A running lab on a real cluster; dropping it tears everything down.
#[derive(Debug)]
pub struct ClusterLab {
    // Drop order: the router first, then the cluster (containers, kubelets, control plane).
    _fib: Option<FibSync>,
    router: Router,
    _external: OwnedNetns,
    cluster: Cluster,
    state: LabState,
    load_balancer: LoadBalancer,
    _images: Option<tempfile::TempDir>,
}

impl ClusterLab {
    /// Builds the cluster with `nodes` nodes and `router` as the BGP router, installs ferrolb
    /// from `install.yaml`, the pools and the echo DaemonSet, and waits until ferrolb's pods and
    /// the echo pods are Running and ready (at most `timeout` for that part).
    pub async fn start(
        nodes: usize,
        router: RouterKind,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Self::start_with(nodes, router, timeout, LoadBalancer::Ferrolb).await
    }

    /// [`Self::start`] with `load_balancer` installed instead of ferrolb.
    pub async fn start_with(
        nodes: usize,
        router: RouterKind,
        timeout: Duration,
        load_balancer: LoadBalancer,
    ) -> anyhow::Result<Self> {
        let mut builder = Cluster::builder(nodes).extra_host(ROUTER);
        let mut images = None;
        if let LoadBalancer::Metallb(metallb) = &load_balancer {
            let dir = tempfile::tempdir()?;
            for archive in metallb.images(dir.path())? {
                builder = builder.image(&archive);
            }
            images = Some(dir);
        }
        let cluster = builder.start().await?;
        let external = OwnedNetns::create("external")?;
        let router_host = cluster.host(ROUTER);
        let node_ips: Vec<Ipv4Addr> = cluster.nodes().iter().map(|n| n.ip()).collect();
        let bfd = matches!(load_balancer, LoadBalancer::Ferrolb);
        let (rtr, router_info) = start_router(router_host, &node_ips, &external, router, bfd)?;
        for node in cluster.nodes() {
            route_outside(&cluster.host(node.name()).ns, router_host)?;
        }

        // As the README says: one command, then the pools.
        let cp = cluster.control_plane();
        match &load_balancer {
            LoadBalancer::Ferrolb => {
                cluster.install_ferrolb().await?;
                cp.apply_yaml(crate::l2cluster::BASE_CONFIG).await?;
                cp.apply_yaml(&bgp_config(router_host.ipv4, router)).await?;
            }
            LoadBalancer::Metallb(metallb) => {
                cluster.install_metallb(metallb).await?;
                cp.apply_yaml(
                    &METALLB_CONFIG
                        .replace("{router}", &router_host.ipv4.to_string())
                        .replace("{hold}", super::BGP_HOLD_TIME),
                )
                .await?;
            }
        }
        cp.apply_yaml(&ECHO.replace("{ECHO_IMAGE}", ECHO_IMAGE))
            .await?;

        let state = LabState {
            pid: std::process::id(),
            kubeconfig: cp.kubeconfig_path().to_path_buf(),
            client_netns: cluster.host(CLIENT).ns.name().to_owned(),
            client_ip: cluster.host(CLIENT).ipv4,
            nodes: cluster
                .nodes()
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let host = cluster.host(n.name());
                    NodeInfo {
                        name: n.name().to_owned(),
                        netns: host.ns.name().to_owned(),
                        ipv4: host.ipv4,
                        mac: host.mac("eth0").to_owned(),
                        pod_cidr: format!("198.18.{}.0/24", i + 1),
                        kube_proxy_pid: n.kube_proxy_pid(),
                        speaker_ready: (format!("{}:{SPEAKER_PORT}", host.ipv4), "/readyz".into()),
                    }
                })
                .collect(),
            pods: Vec::new(),
            router: router_info,
            external_netns: external.ns().name().to_owned(),
            external_ip: EXTERNAL_IP,
        };
        let mut lab = Self {
            _fib: (router == RouterKind::Gobgp).then(|| FibSync::start(&router_host.ns)),
            router: rtr,
            _external: external,
            cluster,
            state,
            load_balancer,
            _images: images,
        };
        lab.state.pods = lab.wait_pods(timeout).await?;
        Ok(lab)
    }

    /// Waits until ferrolb's two controller replicas and a speaker on every node are Running
    /// and ready ([`Cluster::wait_ferrolb_running`]; MetalLB's pods if it runs instead), then
    /// an echo pod on every node (at most `timeout`); returns the echo pods.
    async fn wait_pods(&mut self, timeout: Duration) -> anyhow::Result<Vec<PodInfo>> {
        match self.load_balancer {
            LoadBalancer::Ferrolb => drop(self.cluster.wait_ferrolb_running(2, None).await?),
            LoadBalancer::Metallb(_) => drop(self.cluster.wait_metallb_running().await?),
        }
        let pods: Api<Pod> = Api::namespaced(self.cluster.client(), "default");
        let nodes = self.state.nodes.len();
        let echo = wait_for(
            "an echo pod Running and ready on every node",
            timeout,
            || {
                let pods = pods.clone();
                async move {
                    let list = pods.list(&ListParams::default().labels("app=echo")).await?;
                    let mut echo: Vec<PodInfo> = list
                        .items
                        .iter()
                        .filter(|p| running_and_ready(p))
                        .filter_map(|p| {
                            Some(PodInfo {
                                name: p.metadata.name.clone()?,
                                node: p.spec.as_ref()?.node_name.clone()?,
                                ip: p.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?,
                            })
                        })
                        .collect();
                    echo.sort_by(|a, b| a.node.cmp(&b.node));
                    echo.dedup_by(|a, b| a.node == b.node);
                    Ok((echo.len() == nodes).then_some(echo))
                }
            },
        )
        .await;
        match echo {
            Ok(echo) => Ok(echo),
            Err(e) => Err(self.cluster.failure(&format!("{e:#}")).await),
        }
    }

    /// The state to publish for the other subcommands.
    pub fn state(&self) -> &LabState {
        &self.state
    }

    /// The cluster underneath.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The BGP router.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The BGP router, to stop and restart it.
    pub fn router_mut(&mut self) -> &mut Router {
        &mut self.router
    }

    /// The cluster underneath, to kill nodes.
    pub fn cluster_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }

    /// The load balancer it runs.
    pub fn load_balancer(&self) -> &LoadBalancer {
        &self.load_balancer
    }
}

/// A demo Service: its name, traffic policy, pool, the pods it selects, and where it is tried
/// from.
#[derive(Clone, Copy, Debug)]
pub struct DemoService {
    /// Its name, in namespace default.
    pub name: &'static str,
    /// externalTrafficPolicy Local.
    pub local: bool,
    /// The pool it asks for, if any.
    pub pool: Option<&'static str>,
    /// Its selector's `app` label.
    pub app: &'static str,
    /// Tried from the external client behind the router (BGP) instead of the LAN client.
    pub external: bool,
}

/// The demo's Services: web (layer 2, Cluster, every node's echo pod), web-local (layer 2,
/// Local, the one pod of Deployment web-local) and web-bgp (BGP, Cluster, every echo pod).
pub const DEMO_SERVICES: [DemoService; 3] = [
    DemoService {
        name: "web",
        local: false,
        pool: None,
        app: "echo",
        external: false,
    },
    DemoService {
        name: "web-local",
        local: true,
        pool: None,
        app: "web-local",
        external: false,
    },
    DemoService {
        name: "web-bgp",
        local: false,
        pool: Some("bgp"),
        app: "echo",
        external: true,
    },
];

/// The pod of web-local: one echo pod, on `node` only.
fn web_local(node: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web-local", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web-local"}},
            "template": {
                "metadata": {"labels": {"app": "web-local"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "containers": [{
                        "name": "echo", "image": ECHO_IMAGE,
                        "imagePullPolicy": "Never", "ports": [{"containerPort": 8080}],
                        "env": [
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        ],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                    }],
                },
            },
        },
    })
}

/// A LoadBalancer Service selecting the pods labelled `app`.
pub fn demo_service(s: &DemoService) -> serde_json::Value {
    let annotations: std::collections::BTreeMap<&str, &str> = s
        .pool
        .map(|p| (ferrolb_api::annotations::ADDRESS_POOL, p))
        .into_iter()
        .collect();
    serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": s.name, "namespace": "default", "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": if s.local { "Local" } else { "Cluster" },
            "selector": {"app": s.app},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    })
}

/// Applies the demo: Deployment web-local (its pod on `node`) and [`DEMO_SERVICES`].
pub async fn apply_demo(client: &kube::Client, node: &str) -> anyhow::Result<()> {
    let apply = kube::api::PatchParams::apply("ferrolb-lab").force();
    Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), "default")
        .patch(
            "web-local",
            &apply,
            &kube::api::Patch::Apply(web_local(node)),
        )
        .await?;
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "default");
    for s in &DEMO_SERVICES {
        services
            .patch(s.name, &apply, &kube::api::Patch::Apply(demo_service(s)))
            .await?;
    }
    Ok(())
}
