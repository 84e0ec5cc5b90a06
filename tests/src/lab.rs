//! The lab: a small Kubernetes cluster on one Linux machine, built from real parts in network
//! namespaces, with ferrolb installed in it as users install it ([`ClusterLab`], in `real`),
//! plus a BGP router and a client behind it. `./lab` (the README's main job) runs it.
//!
//! ```text
//!                                                        external 203.0.113.10
//!                                                              │ 203.0.113.0/24
//!                                              router 192.0.2.<n+3> / 203.0.113.1
//!                                                   BGP (BIRD, FRR or GoBGP), ECMP
//!                 ┌──────────── LAN bridge (192.0.2.0/24, 2001:db8:0:1::/64) ──┴──────────┐
//!   node-1 192.0.2.1    node-2 192.0.2.2    node-3 192.0.2.3    cp 192.0.2.4    client 192.0.2.5
//!   kubelet, containerd, kube-proxy; pods: ferrolb-speaker (host network), ferrolb-controller,
//!   echo (cni0 198.18.<k>.0/24)
//! ```
//!
//! Every node routes the other nodes' pod CIDRs over the LAN, so pods reach each other without
//! NAT; each runs the real kube-proxy (nftables mode), which programs the Services' ClusterIPs
//! and LoadBalancer IPs. Two ways in: the `lan` pool (192.0.2.200–239) is announced over ARP to
//! the client on the LAN; the `bgp` pool (198.51.100.10–250, not auto-assigned) is advertised
//! by every node to the router, which installs one path per node and spreads the external
//! client's connections over them (ECMP with layer-4 hashing). The nodes reach the external
//! network through the router, as through a default gateway.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use serde::{Deserialize, Serialize};

use crate::netns::{Host, Netns, OwnedNetns};
use crate::routers::{Neighbor, Router, RouterConfig, RouterKind};

mod health;
mod real;

pub use real::{
    ClusterLab, DEMO_SERVICES, DemoService, LoadBalancer, METALLB_CONFIG, apply_demo, demo_service,
};

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

/// The BGP pool, advertisement, peer (the router at `router`) and BFD profile of every lab.
fn bgp_config(router: Ipv4Addr, kind: RouterKind) -> String {
    BGP_CONFIG
        .replace("{router}", &router.to_string())
        .replace("{hold}", BGP_HOLD_TIME)
        // GoBGP has no BFD; with BIRD and FRR a dead node's paths go in < 1 s.
        .replace(
            "{bfd}",
            if kind == RouterKind::Gobgp {
                ""
            } else {
                "\n  bfdProfile: fast"
            },
        )
}

/// The router is a node's way out to the external network, as a default gateway would be.
fn route_outside(ns: &Netns, router: &Host) -> anyhow::Result<()> {
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
    Ok(())
}

/// Wires the router `host` between the LAN and the external network and starts `kind` on it,
/// peered with every node (their LAN addresses).
fn start_router(
    host: &Host,
    nodes: &[Ipv4Addr],
    external: &OwnedNetns,
    kind: RouterKind,
    bfd: bool,
) -> anyhow::Result<(Router, RouterInfo)> {
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
    let neighbors = nodes
        .iter()
        .map(|ip| {
            let mut neighbor = Neighbor::passive(IpAddr::V4(*ip), NODE_AS);
            neighbor.bfd = bfd && kind != RouterKind::Gobgp;
            neighbor.bfd_timers = neighbor.bfd.then_some(crate::routers::BfdTimers {
                receive_interval: Duration::from_millis(300),
                transmit_interval: Duration::from_millis(300),
                detect_multiplier: 3,
                echo: None,
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
    http_get_path(netns, ip, port, "/")
}

/// One HTTP GET of `http://ip:port{path}` from namespace `netns`: the body.
pub fn http_get_path(netns: &str, ip: IpAddr, port: u16, path: &str) -> anyhow::Result<String> {
    let path = path.to_owned();
    Netns::existing(netns.to_owned()).run(move || -> anyhow::Result<String> {
        use std::io::{Read, Write};
        let addr = std::net::SocketAddr::new(ip, port);
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .with_context(|| format!("connect {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n"
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
