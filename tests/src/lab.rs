//! The lab: a small Kubernetes network on one Linux machine, built from real parts in network
//! namespaces, with ferrolb running in it.
//!
//! ```text
//!                                                        external 203.0.113.10
//!                                                              │ 203.0.113.0/24
//!                                                   router 192.0.2.5 / 203.0.113.1
//!                                                   BGP (BIRD, FRR or GoBGP), ECMP
//!                 ┌──────────── LAN bridge (192.0.2.0/24, 2001:db8:0:1::/64) ──┴──────────┐
//!                 │                         │                          │                 │
//!   node-1 192.0.2.1          node-2 192.0.2.2           node-3 192.0.2.3      client 192.0.2.4
//!   speaker, kube-proxy       speaker, kube-proxy        speaker, kube-proxy
//!   cni0 198.18.1.1/24        cni0 198.18.2.1/24         cni0 198.18.3.1/24
//!    └ pod-1 198.18.1.10       └ pod-2 198.18.2.10        └ pod-3 198.18.3.10
//!
//!   kube-apiserver + etcd (this process's host loopback, reached from each node through a
//!   forwarder on the node's loopback), ferrolb-controller (in this process)
//! ```
//!
//! Every node routes the other nodes' pod CIDRs over the LAN, so pods reach each other without
//! NAT; each runs the real kube-proxy (nftables mode, `--hostname-override`), which programs the
//! Services' ClusterIPs and LoadBalancer IPs; pods are processes in their own namespaces (a tiny
//! HTTP server answering with its pod and node name and the client address it saw). Node
//! objects and EndpointSlices are written through the API as a kubelet and the endpoint
//! controller would.
//!
//! Two ways in: the `lan` pool (192.0.2.200–239) is announced over ARP/NDP to the client on the
//! LAN; the `bgp` pool (198.51.100.10–250, not auto-assigned) is advertised by every node to the
//! router, which installs one path per node and spreads the external client's connections
//! over them (ECMP with layer-4 hashing). The nodes reach the external network through the
//! router, as through a default gateway.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use serde::{Deserialize, Serialize};

use crate::ControlPlane;
use crate::apiserver::Process;
use crate::controller::{RunningController, test_settings};
use crate::forward::Forwarder;
use crate::l2cluster::{L2Cluster, NAMESPACE, Speakers};
use crate::netns::{Netns, OwnedNetns};
use crate::routers::{Neighbor, Router, RouterConfig, RouterKind};

mod health;

pub use health::{
    Check, HealthError, Missing, missing_prerequisites, missing_prerequisites_on, state_health,
};

/// The pods' HTTP port.
pub const POD_PORT: u16 = 8080;

/// The router's host name on the LAN.
pub const ROUTER: &str = "router";
/// The router's AS.
pub const ROUTER_AS: u32 = 64500;
/// The nodes' AS.
pub const NODE_AS: u32 = 64512;
/// The router's address on the external network.
pub const ROUTER_EXTERNAL_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The external client's address.
pub const EXTERNAL_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The hold time the nodes propose to the router: without BFD (GoBGP), a dead node's paths go
/// within it; with BIRD and FRR, BFD (300 ms × 3) is faster.
pub const BGP_HOLD_TIME: &str = "9s";

/// The BGP pool, advertisement and peer every lab starts with (`{router}` is the router's LAN
/// address).
const BGP_CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: bgp, namespace: ferrolb-system}
spec:
  addresses: ["198.51.100.10-198.51.100.250", "2001:db8:100::10-2001:db8:100::ff"]
  autoAssign: false
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp, namespace: ferrolb-system}
spec:
  ipAddressPools: [bgp]
  communities: ["64512:100"]
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {name: router, namespace: ferrolb-system}
spec:
  myASN: 64512
  peerASN: 64500
  peerAddress: {router}
  holdTime: {hold}{bfd}
---
apiVersion: ferrolb.io/v1beta1
kind: BFDProfile
metadata: {name: fast, namespace: ferrolb-system}
spec: {receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3}
"#;

/// The pod server: answers every GET with who it is and whom it saw.
const POD_SERVER: &str = r#"
import http.server, os, sys
POD, NODE = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{POD} on {NODE}, client {self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"#;

/// A pod: its namespace, IP and node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PodInfo {
    /// Name.
    pub name: String,
    /// Node.
    pub node: String,
    /// IP.
    pub ip: Ipv4Addr,
}

/// A node as the lab's users see it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Name.
    pub name: String,
    /// Its namespace.
    pub netns: String,
    /// LAN address.
    pub ipv4: Ipv4Addr,
    /// LAN MAC.
    pub mac: String,
    /// Pod CIDR.
    pub pod_cidr: String,
    /// The pid of its kube-proxy (0 until started).
    #[serde(default)]
    pub kube_proxy_pid: u32,
    /// Where its speaker answers once ready: address inside the namespace, path.
    #[serde(default)]
    pub speaker_ready: (String, String),
}

/// The router as the lab's users see it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RouterInfo {
    /// `gobgp`, `bird` or `frr`.
    pub kind: String,
    /// Its namespace.
    pub netns: String,
    /// LAN address.
    pub ipv4: Ipv4Addr,
    /// The command that shows its routes.
    pub show_routes: String,
    /// Its daemons (`bird`; `zebra`, `bgpd`, `bfdd`; `gobgpd`) and their pids.
    #[serde(default)]
    pub daemons: Vec<(String, u32)>,
}

/// What `ferrolb-lab status`/`demo` need to find a running lab.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabState {
    /// The supervising process.
    pub pid: u32,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The client's namespace.
    pub client_netns: String,
    /// The client's address.
    pub client_ip: Ipv4Addr,
    /// Nodes.
    pub nodes: Vec<NodeInfo>,
    /// Pods.
    pub pods: Vec<PodInfo>,
    /// The BGP router.
    pub router: RouterInfo,
    /// The external client's namespace (behind the router).
    pub external_netns: String,
    /// The external client's address.
    pub external_ip: Ipv4Addr,
}

/// A running lab; dropping it tears everything down.
#[derive(Debug)]
pub struct Lab {
    // Drop order: workloads first, then the router, then the cluster (speakers, network,
    // apiserver).
    pods: Vec<(Process, OwnedNetns)>,
    proxies: Vec<(Process, Forwarder)>,
    controller: Option<RunningController>,
    // GoBGP's routes into the router's kernel (GoBGP has no FIB of its own).
    _fib: Option<crate::routers::FibSync>,
    router: Router,
    // Owns the external client's namespace (removed on drop).
    _external: OwnedNetns,
    cluster: L2Cluster,
    state: LabState,
}

impl Lab {
    /// Builds the lab with `nodes` nodes and `router` as the BGP router.
    ///
    /// Fails at once, naming each, when a program or binary it runs is missing.
    pub async fn start(nodes: usize, router: RouterKind) -> anyhow::Result<Self> {
        let missing = missing_prerequisites(router);
        if !missing.is_empty() {
            return Err(HealthError::Missing(missing).into());
        }
        let cluster = L2Cluster::start_on(
            ControlPlane::builder(),
            nodes,
            Speakers::Ferrolb(Vec::new()),
            &[ROUTER],
        )
        .await?;
        let external = OwnedNetns::create("external")?;
        let (rtr, router_info) = start_router(&cluster, &external, router)?;
        cluster
            .apply(
                &BGP_CONFIG
                    .replace("{router}", &cluster.host(ROUTER).ipv4.to_string())
                    .replace("{hold}", BGP_HOLD_TIME)
                    // GoBGP has no BFD; with BIRD and FRR a dead node's paths go in < 1 s.
                    .replace(
                        "{bfd}",
                        if router == RouterKind::Gobgp {
                            ""
                        } else {
                            "\n  bfdProfile: fast"
                        },
                    )
                    .replace("ferrolb-system", NAMESPACE),
            )
            .await?;
        let controller = RunningController::start(cluster.control_plane(), test_settings("lab"))?;
        let names = cluster.nodes().to_vec();
        let mut lab = Self {
            pods: Vec::new(),
            proxies: Vec::new(),
            controller: Some(controller),
            _fib: (router == RouterKind::Gobgp)
                .then(|| crate::routers::FibSync::start(&cluster.host(ROUTER).ns)),
            router: rtr,
            state: LabState {
                pid: std::process::id(),
                kubeconfig: cluster.control_plane().kubeconfig_path().to_path_buf(),
                client_netns: cluster.host(crate::l2cluster::CLIENT).ns.name().to_owned(),
                client_ip: cluster.host(crate::l2cluster::CLIENT).ipv4,
                nodes: Vec::new(),
                pods: Vec::new(),
                router: router_info,
                external_netns: external.ns().name().to_owned(),
                external_ip: EXTERNAL_IP,
            },
            _external: external,
            cluster,
        };
        for (i, name) in names.iter().enumerate() {
            lab.wire_node(i + 1, name, &names)?;
        }
        for (i, name) in names.iter().enumerate() {
            lab.start_kube_proxy(name)?;
            lab.start_pod(i + 1, name)?;
        }
        Ok(lab)
    }

    /// The state to publish for the other subcommands.
    pub fn state(&self) -> &LabState {
        &self.state
    }

    /// The cluster underneath.
    pub fn cluster(&self) -> &L2Cluster {
        &self.cluster
    }

    /// The control plane.
    pub fn control_plane(&self) -> &ControlPlane {
        self.cluster.control_plane()
    }

    /// The BGP router.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Pod bridge, pod CIDR, forwarding and routes to the other nodes' pods.
    fn wire_node(&mut self, index: usize, name: &str, all: &[String]) -> anyhow::Result<()> {
        let host = self.cluster.host(name);
        let ns = &host.ns;
        ns.sysctl("net.ipv4.ip_forward", "1")?;
        ns.ip(&["link", "add", "cni0", "type", "bridge"])?;
        ns.ip(&[
            "addr",
            "add",
            &format!("198.18.{index}.1/24"),
            "dev",
            "cni0",
        ])?;
        ns.link_up("cni0")?;
        // The router is the way out, as a default gateway would be.
        let router = self.cluster.host(ROUTER);
        ns.ip(&[
            "route",
            "add",
            "203.0.113.0/24",
            "via",
            &router.ipv4.to_string(),
        ])?;
        ns.ip(&[
            "-6",
            "route",
            "add",
            "2001:db8:203::/64",
            "via",
            &router.ipv6.to_string(),
        ])?;
        for (j, other) in all.iter().enumerate() {
            if other != name {
                let via = self.cluster.host(other).ipv4;
                ns.ip(&[
                    "route",
                    "add",
                    &format!("198.18.{}.0/24", j + 1),
                    "via",
                    &via.to_string(),
                ])?;
            }
        }
        self.state.nodes.push(NodeInfo {
            name: name.to_owned(),
            netns: ns.name().to_owned(),
            ipv4: host.ipv4,
            mac: host.mac("eth0").to_owned(),
            pod_cidr: format!("198.18.{index}.0/24"),
            kube_proxy_pid: 0,
            speaker_ready: self
                .cluster
                .speaker_ready_endpoint(name)
                .unwrap_or_default(),
        });
        Ok(())
    }

    /// kube-proxy in the node's namespace, nftables mode, talking to the apiserver through a
    /// forwarder on the node's loopback.
    fn start_kube_proxy(&mut self, node: &str) -> anyhow::Result<()> {
        let cp = self.cluster.control_plane();
        let ns = self.cluster.host(node).ns.clone();
        let forwarder = Forwarder::start(ns.name(), cp.address())?;
        let dir = self.cluster.dir().to_path_buf();
        let kubeconfig = dir.join(format!("kube-proxy-{node}.kubeconfig"));
        let text = std::fs::read_to_string(cp.kubeconfig_path())?
            .replace(cp.server_url(), &forwarder.https_url());
        std::fs::write(&kubeconfig, text)?;
        let config = dir.join(format!("kube-proxy-{node}.yaml"));
        std::fs::write(
            &config,
            format!(
                "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n\
                 clientConnection: {{kubeconfig: {}}}\nhostnameOverride: {node}\nmode: nftables\n\
                 clusterCIDR: 198.18.0.0/16\n\
                 conntrack: {{maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}}\n\
                 metricsBindAddress: 127.0.0.1:10249\nhealthzBindAddress: 127.0.0.1:10256\n",
                kubeconfig.display()
            ),
        )?;
        let mut cmd = ns.command(&cp.binaries().kube_proxy().to_string_lossy());
        cmd.args(["--config", &config.to_string_lossy(), "--v=1"]);
        let log = dir.join(format!("kube-proxy-{node}.log"));
        let process = Process::spawn("kube-proxy", cmd, &log)?;
        if let Some(info) = self.state.nodes.iter_mut().find(|n| n.name == node) {
            info.kube_proxy_pid = process.id();
        }
        self.proxies.push((process, forwarder));
        Ok(())
    }

    /// One pod on `node`, at 198.18.<index>.10, serving HTTP on 8080.
    fn start_pod(&mut self, index: usize, node: &str) -> anyhow::Result<()> {
        let name = format!("pod-{index}");
        let pod = OwnedNetns::create(&name)?;
        let node_ns = self.cluster.host(node).ns.clone();
        let ip = Ipv4Addr::new(198, 18, index as u8, 10);
        node_ns.ip(&[
            "link",
            "add",
            &format!("p{index}"),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            pod.ns().name(),
        ])?;
        node_ns.ip(&["link", "set", &format!("p{index}"), "master", "cni0", "up"])?;
        pod.ns()
            .ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        pod.ns().link_up("eth0")?;
        pod.ns().ip(&[
            "route",
            "add",
            "default",
            "via",
            &format!("198.18.{index}.1"),
        ])?;
        let script = self.cluster.dir().join("pod-server.py");
        std::fs::write(&script, POD_SERVER)?;
        let mut cmd = pod.ns().command("python3");
        cmd.arg(&script).args([&name, node]);
        let log = self.cluster.dir().join(format!("{name}.log"));
        let process = Process::spawn("pod", cmd, &log)?;
        self.pods.push((process, pod));
        self.state.pods.push(PodInfo {
            name,
            node: node.to_owned(),
            ip,
        });
        Ok(())
    }

    /// Stops the in-process controller (the rest goes with the drop).
    pub fn stop_controller(&mut self) -> anyhow::Result<()> {
        match self.controller.take() {
            Some(c) => c.stop(),
            None => Ok(()),
        }
    }
}

/// Wires the router between the LAN and the external network and starts `kind` on it, peered
/// with every node.
fn start_router(
    cluster: &L2Cluster,
    external: &OwnedNetns,
    kind: RouterKind,
) -> anyhow::Result<(Router, RouterInfo)> {
    let host = cluster.host(ROUTER);
    let ns = &host.ns;
    ns.sysctl("net.ipv4.ip_forward", "1")?;
    ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
    // Spread connections, not just client addresses, over the equal-cost paths.
    ns.sysctl("net.ipv4.fib_multipath_hash_policy", "1")?;
    ns.sysctl("net.ipv6.fib_multipath_hash_policy", "1")?;
    let ext = external.ns();
    ns.ip(&[
        "link",
        "add",
        "ext0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        ext.name(),
    ])?;
    ns.ip(&[
        "addr",
        "add",
        &format!("{ROUTER_EXTERNAL_IP}/24"),
        "dev",
        "ext0",
    ])?;
    ns.ip(&["addr", "add", "2001:db8:203::1/64", "dev", "ext0", "nodad"])?;
    ns.link_up("ext0")?;
    ext.ip(&["addr", "add", &format!("{EXTERNAL_IP}/24"), "dev", "eth0"])?;
    ext.ip(&["addr", "add", "2001:db8:203::10/64", "dev", "eth0", "nodad"])?;
    ext.link_up("eth0")?;
    ext.ip(&[
        "route",
        "add",
        "default",
        "via",
        &ROUTER_EXTERNAL_IP.to_string(),
    ])?;
    ext.ip(&["-6", "route", "add", "default", "via", "2001:db8:203::1"])?;
    let neighbors = cluster
        .nodes()
        .iter()
        .map(|n| {
            let mut neighbor = Neighbor::passive(IpAddr::V4(cluster.host(n).ipv4), NODE_AS);
            neighbor.bfd = kind != RouterKind::Gobgp;
            neighbor.bfd_timers = neighbor.bfd.then_some(crate::routers::BfdTimers {
                receive_interval: Duration::from_millis(300),
                transmit_interval: Duration::from_millis(300),
                detect_multiplier: 3,
            });
            neighbor
        })
        .collect();
    let router = Router::start(
        kind,
        ns,
        &RouterConfig {
            asn: ROUTER_AS,
            router_id: host.ipv4,
            neighbors,
            multipath: true,
        },
    )?;
    let info = RouterInfo {
        kind: kind.to_string(),
        netns: ns.name().to_owned(),
        ipv4: host.ipv4,
        show_routes: router.show_routes_command(),
        daemons: router
            .daemons()
            .into_iter()
            .map(|(name, pid)| (name.to_owned(), pid))
            .collect(),
    };
    Ok((router, info))
}

/// Where a running lab publishes its state: `$FERROLB_LAB_STATE`, else `/run/ferrolb-lab`.
pub fn state_dir() -> PathBuf {
    std::env::var_os("FERROLB_LAB_STATE")
        .map_or_else(|| PathBuf::from("/run/ferrolb-lab"), PathBuf::from)
}

/// The state of the running lab, if one runs.
pub fn running_state() -> Option<LabState> {
    let text = std::fs::read_to_string(state_dir().join("state.json")).ok()?;
    let state: LabState = serde_json::from_str(&text).ok()?;
    Path::new("/proc")
        .join(state.pid.to_string())
        .exists()
        .then_some(state)
}

/// Runs `f` in the client's namespace.
pub fn in_client<T: Send + 'static>(
    state: &LabState,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    Netns::existing(state.client_netns.clone()).run(f)
}

/// One HTTP GET of `http://ip:port/` from the client on the LAN, with a timeout; the body, or
/// why not.
pub fn client_get(state: &LabState, ip: IpAddr, port: u16) -> anyhow::Result<String> {
    http_get_from(&state.client_netns, ip, port)
}

/// [`client_get`] from the external client, behind the router.
pub fn external_get(state: &LabState, ip: IpAddr, port: u16) -> anyhow::Result<String> {
    http_get_from(&state.external_netns, ip, port)
}

/// One HTTP GET of `http://ip:port/` from namespace `netns`.
fn http_get_from(netns: &str, ip: IpAddr, port: u16) -> anyhow::Result<String> {
    Netns::existing(netns.to_owned()).run(move || -> anyhow::Result<String> {
        use std::io::{Read, Write};
        let addr = std::net::SocketAddr::new(ip, port);
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .with_context(|| format!("connect {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(
            stream,
            "GET / HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        response
            .split("\r\n\r\n")
            .nth(1)
            .map(|b| b.trim().to_owned())
            .ok_or_else(|| anyhow!("no HTTP body from {addr}"))
    })?
}

/// Pods grouped by node, for EndpointSlices.
pub fn pods_by_node(state: &LabState) -> BTreeMap<String, Vec<&PodInfo>> {
    let mut out: BTreeMap<String, Vec<&PodInfo>> = BTreeMap::new();
    for p in &state.pods {
        out.entry(p.node.clone()).or_default().push(p);
    }
    out
}

/// Creates (or updates) a selector-less LoadBalancer Service `namespace/name` on port 80 with an
/// EndpointSlice holding `pods` (port [`POD_PORT`]), as the endpoint controller would write it.
pub async fn apply_service(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    local: bool,
    pods: &[&PodInfo],
) -> anyhow::Result<()> {
    apply_service_in_pool(client, namespace, name, local, None, pods).await
}

/// [`apply_service`] asking for an IP from `pool` (`ferrolb.io/address-pool`).
pub async fn apply_service_in_pool(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    local: bool,
    pool: Option<&str>,
    pods: &[&PodInfo],
) -> anyhow::Result<()> {
    use kube::api::{Patch, PatchParams};
    let apply = PatchParams::apply("ferrolb-lab").force();
    let annotations: BTreeMap<&str, &str> = pool
        .map(|p| (ferrolb_api::annotations::ADDRESS_POOL, p))
        .into_iter()
        .collect();
    let svc = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "allocateLoadBalancerNodePorts": false,
            "externalTrafficPolicy": if local { "Local" } else { "Cluster" },
            "ports": [{"name": "http", "port": 80, "targetPort": POD_PORT, "protocol": "TCP"}],
        },
    });
    kube::Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), namespace)
        .patch(name, &apply, &Patch::Apply(&svc))
        .await?;
    let endpoints: Vec<_> = pods
        .iter()
        .map(|p| {
            serde_json::json!({
                "addresses": [p.ip.to_string()], "nodeName": p.node,
                "conditions": {"ready": true, "serving": true, "terminating": false},
            })
        })
        .collect();
    let slice = serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-lab"), "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": name,
                                "endpointslice.kubernetes.io/managed-by": "ferrolb-lab"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": POD_PORT, "protocol": "TCP"}],
    });
    kube::Api::<k8s_openapi::api::discovery::v1::EndpointSlice>::namespaced(
        client.clone(),
        namespace,
    )
    .patch(&format!("{name}-lab"), &apply, &Patch::Apply(&slice))
    .await?;
    Ok(())
}
