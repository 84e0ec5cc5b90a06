//! A layer-2 cluster for tests and benchmarks: a real apiserver, a LAN of node namespaces each
//! running the real `ferrolb-speaker` binary (or, for side-by-side benchmarks, MetalLB's speaker:
//! [`L2Cluster::start_metallb`], [`metallb`]), and a client namespace on the same LAN.
//!
//! Services get their IPs written straight into their status (as the controller would, with the
//! pool annotation), and EndpointSlices are created by hand as the endpoint controller would, so
//! a test decides exactly which node hosts which endpoint. [`L2Cluster::expected_owner`] runs
//! the speaker's own election code on the objects in the apiserver, so tests check that the
//! network agrees with it — not with a re-implementation.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use ferrolb_api::{IPAddressPool, L2Advertisement};
use ferrolb_config::{NodeName, Snapshot};
use ferrolb_speaker::election::World;
use ferrolb_speaker::k8s::view;
use ferrolb_speaker::plan;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};

use crate::ControlPlane;
use crate::fixtures;
use crate::netns::{Host, Lan, Neighbour};
use crate::speaker::{SpeakerCommand, SpeakerProcess};

pub mod metallb;
mod nodes;
mod services;
mod traffic;

pub use services::TestService;
pub use traffic::{ECHO_PORT, Probe, Prober, failover_gap, send_gratuitous_arp};

use metallb::MetallbSpeakers;

/// ferrolb's namespace in these clusters.
pub const NAMESPACE: &str = "ferrolb-system";
/// The namespace test Services live in.
pub const APP_NAMESPACE: &str = "web";
/// The client host's name.
pub const CLIENT: &str = "client";

/// The pool and advertisement every cluster starts with: the layer-2 pool of DESIGN.md.
pub const BASE_CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec:
  addresses: ["192.0.2.200-192.0.2.239", "2001:db8:0:1::200-2001:db8:0:1::2ff"]
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec: {ipAddressPools: [lan]}
"#;

/// Which speaker runs on the nodes.
#[derive(Clone, Debug)]
pub enum Speakers {
    /// `ferrolb-speaker`, with these extra flags.
    Ferrolb(Vec<String>),
    /// MetalLB's speaker, configured like ferrolb's ([`metallb`]).
    Metallb(MetallbSpeakers),
}

/// The cluster. Dropping it stops the speakers, deletes the namespaces and stops the apiserver.
#[derive(Debug)]
pub struct L2Cluster {
    // Field order is drop order: speakers first, then the network, then the control plane.
    speakers: BTreeMap<String, SpeakerProcess>,
    lan: Lan,
    nodes: Vec<String>,
    kind: Speakers,
    speaker_kubeconfig: Option<std::path::PathBuf>,
    dir: tempfile::TempDir,
    cp: ControlPlane,
}

impl L2Cluster {
    /// Starts a control plane with ferrolb's CRDs and [`BASE_CONFIG`], a LAN with `nodes`
    /// nodes (`node-1` …) and a client, Node objects carrying the nodes' LAN addresses, and a
    /// speaker on every node with `speaker_args`.
    pub async fn start(nodes: usize, speaker_args: &[&str]) -> anyhow::Result<Self> {
        let args = speaker_args.iter().map(|s| (*s).to_owned()).collect();
        Self::start_with(nodes, Speakers::Ferrolb(args)).await
    }

    /// Like [`L2Cluster::start`], but every node runs MetalLB's speaker, with MetalLB's CRDs,
    /// the same addresses as [`BASE_CONFIG`] in a MetalLB pool and L2Advertisement, and its
    /// memberlist on the nodes' LAN addresses ([`metallb::install`]).
    pub async fn start_metallb(nodes: usize, metallb: MetallbSpeakers) -> anyhow::Result<Self> {
        Self::start_with(nodes, Speakers::Metallb(metallb)).await
    }

    /// Starts a cluster whose nodes run `kind`.
    pub async fn start_with(nodes: usize, kind: Speakers) -> anyhow::Result<Self> {
        Self::start_on(crate::ControlPlane::builder(), nodes, kind, &[]).await
    }

    /// [`L2Cluster::start_with`] on a control plane built by `builder` (e.g. with an audit
    /// log), with `extra_hosts` on the LAN after the client (a router, more clients).
    pub async fn start_on(
        builder: crate::ControlPlaneBuilder,
        nodes: usize,
        kind: Speakers,
        extra_hosts: &[&str],
    ) -> anyhow::Result<Self> {
        let cp = fixtures::control_plane_with_crds_from(builder).await?;
        fixtures::create_namespace(&cp, APP_NAMESPACE).await?;
        let names: Vec<String> = (1..=nodes).map(|i| format!("node-{i}")).collect();
        let mut builder = Lan::builder();
        for name in &names {
            builder = builder.host(name);
        }
        builder = builder.host(CLIENT);
        for extra in extra_hosts {
            builder = builder.host(extra);
        }
        let lan = builder.build()?;
        let cluster = Self {
            speakers: BTreeMap::new(),
            lan,
            nodes: names,
            kind,
            speaker_kubeconfig: None,
            dir: tempfile::tempdir()?,
            cp,
        };
        cluster.apply(BASE_CONFIG).await?;
        cluster.create_memberlist_secret().await?;
        for name in &cluster.nodes {
            cluster.create_node(cluster.lan.host(name)).await?;
        }
        if let Speakers::Metallb(metallb) = &cluster.kind {
            let hosts: Vec<&Host> = cluster.nodes.iter().map(|n| cluster.lan.host(n)).collect();
            metallb::install(&cluster.cp, metallb, cluster.dir.path(), &hosts).await?;
        }
        let mut cluster = cluster;
        for name in cluster.nodes.clone() {
            cluster.start_speaker(&name)?;
        }
        Ok(cluster)
    }

    /// The apiserver.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.cp
    }

    /// An admin client.
    pub fn client(&self) -> kube::Client {
        self.cp.client()
    }

    /// The LAN.
    pub fn lan(&self) -> &Lan {
        &self.lan
    }

    /// Which speaker the nodes run.
    pub fn speakers_kind(&self) -> &Speakers {
        &self.kind
    }

    /// Whether the nodes run MetalLB's speaker.
    pub fn is_metallb(&self) -> bool {
        matches!(self.kind, Speakers::Metallb(_))
    }

    /// The node names.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The host of `node` (or of the client).
    pub fn host(&self, name: &str) -> &Host {
        self.lan.host(name)
    }

    /// The `eth0` MAC of `node`.
    pub fn mac(&self, node: &str) -> String {
        self.lan.host(node).mac("eth0").to_owned()
    }

    /// The node whose `eth0` has `mac`.
    pub fn node_with_mac(&self, mac: &str) -> Option<String> {
        self.nodes.iter().find(|n| self.mac(n) == mac).cloned()
    }

    /// The speaker of `node`, if running.
    pub fn speaker(&mut self, node: &str) -> Option<&mut SpeakerProcess> {
        self.speakers.get_mut(node)
    }

    /// Where the speaker of `node` answers once it is ready (address inside the node's
    /// namespace, path), if it has one.
    pub fn speaker_ready_endpoint(&self, node: &str) -> Option<(String, String)> {
        let (addr, path) = self.speakers.get(node)?.ready_endpoint();
        Some((addr.to_owned(), path.to_owned()))
    }

    /// Starts (or restarts) the speaker of `node`.
    pub fn start_speaker(&mut self, node: &str) -> anyhow::Result<()> {
        self.speakers.remove(node);
        let host = self.lan.host(node);
        let command = match &self.kind {
            Speakers::Ferrolb(args) => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                SpeakerCommand::ferrolb(node, &args)?
            }
            Speakers::Metallb(m) => SpeakerCommand::metallb(
                &m.binary,
                node,
                &metallb::pod_name(node),
                IpAddr::V4(host.ipv4),
                &metallb::secret_dir(self.dir.path()),
            ),
        };
        let command = SpeakerCommand {
            kubeconfig: self.speaker_kubeconfig.clone(),
            ..command
        };
        let speaker =
            SpeakerProcess::spawn(&self.cp, host.ns.name(), node, self.dir.path(), &command)?;
        self.speakers.insert(node.to_owned(), speaker);
        Ok(())
    }

    /// Restarts every speaker with the credentials in `kubeconfig` (`None`: the admin's), e.g.
    /// a ServiceAccount token's, so RBAC applies to them.
    pub fn restart_speakers_with(
        &mut self,
        kubeconfig: Option<std::path::PathBuf>,
    ) -> anyhow::Result<()> {
        self.speaker_kubeconfig = kubeconfig;
        for node in self.nodes.clone() {
            self.start_speaker(&node)?;
        }
        Ok(())
    }

    /// Removes the speaker of `node` from the cluster's care (already killed or stopped).
    pub fn forget_speaker(&mut self, node: &str) -> Option<SpeakerProcess> {
        self.speakers.remove(node)
    }

    /// Every speaker's log tail, for failure messages.
    pub fn describe(&self) -> String {
        self.speakers
            .values()
            .map(SpeakerProcess::describe)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `kubectl apply` of `yaml`.
    pub async fn apply(&self, yaml: &str) -> anyhow::Result<()> {
        self.cp.apply_yaml(yaml).await.map(drop)
    }

    async fn create_memberlist_secret(&self) -> anyhow::Result<()> {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ferrolb-memberlist", "namespace": NAMESPACE},
            "stringData": {"secretkey": "a-test-key-for-the-speakers-membership"},
        }))?;
        Api::<Secret>::namespaced(self.client(), NAMESPACE)
            .create(&PostParams::default(), &secret)
            .await?;
        Ok(())
    }

    async fn create_node(&self, host: &Host) -> anyhow::Result<()> {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": host.name, "labels": {"kubernetes.io/hostname": host.name}},
        }))?;
        let api = Api::<Node>::all(self.client());
        api.create(&PostParams::default(), &node).await?;
        let status = serde_json::json!({
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": host.ipv4.to_string()},
                    {"type": "InternalIP", "address": host.ipv6.to_string()},
                    {"type": "Hostname", "address": host.name},
                ],
                "conditions": [{"type": "Ready", "status": "True", "reason": "Test", "message": "node namespace up"}],
            }
        });
        api.patch_status(&host.name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        Ok(())
    }

    /// The node that should announce `ip`, by the speaker's own election over the objects in
    /// the apiserver, with the nodes in `live` as the live speakers. With MetalLB's speakers,
    /// MetalLB's rule ([`metallb::elect`]; Services with `externalTrafficPolicy: Cluster` and
    /// a ready endpoint only).
    pub async fn expected_owner(
        &self,
        ip: IpAddr,
        live: &[String],
    ) -> anyhow::Result<Option<String>> {
        if self.is_metallb() {
            return Ok(metallb::elect(ip, live));
        }
        let c = self.client();
        let pools = Api::<IPAddressPool>::namespaced(c.clone(), NAMESPACE)
            .list(&ListParams::default())
            .await?
            .items;
        let l2 = Api::<L2Advertisement>::namespaced(c.clone(), NAMESPACE)
            .list(&ListParams::default())
            .await?
            .items;
        let snapshot = Snapshot {
            namespace: NAMESPACE.into(),
            pools,
            l2_advertisements: l2,
            ..Snapshot::default()
        };
        let config = ferrolb_config::parse(&snapshot).config;
        let nodes: BTreeMap<NodeName, _> = Api::<Node>::all(c.clone())
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|n| {
                (
                    NodeName::from(n.metadata.name.clone().unwrap_or_default()),
                    view::node_info(n),
                )
            })
            .collect();
        let slices = Api::<EndpointSlice>::all(c.clone())
            .list(&ListParams::default())
            .await?
            .items;
        let endpoints = view::endpoints_by_service(&slices);
        let services: Vec<plan::LbService> = Api::<Service>::all(c)
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter_map(|s| view::lb_service(s, None, &endpoints))
            .collect();
        let live: BTreeSet<NodeName> = live.iter().map(|n| NodeName::from(n.clone())).collect();
        let world = World::new(&config, &nodes, Some(&live));
        let plans = plan::layer2(world, &services);
        Ok(plans
            .get(&ip)
            .and_then(|p| p.decision.winner())
            .map(|n| n.to_string()))
    }

    /// Sends one UDP datagram from the client to `ip` (port 9, discard), which makes the
    /// client's kernel resolve `ip` on the LAN.
    pub fn poke(&self, ip: IpAddr) -> anyhow::Result<()> {
        let client = &self.lan.host(CLIENT).ns;
        client.run(move || -> std::io::Result<()> {
            let bind: SocketAddr = if ip.is_ipv4() {
                "0.0.0.0:0".parse().map_err(std::io::Error::other)?
            } else {
                "[::]:0".parse().map_err(std::io::Error::other)?
            };
            let socket = UdpSocket::bind(bind)?;
            socket.send_to(b"ferrolb", SocketAddr::new(ip, 9))?;
            Ok(())
        })??;
        Ok(())
    }

    /// The client's neighbour entry for `ip`.
    pub fn client_neighbour(&self, ip: IpAddr) -> anyhow::Result<Option<Neighbour>> {
        self.lan.host(CLIENT).ns.neighbour(ip, "eth0")
    }

    /// Waits until the client resolves `ip` (poking it as needed) and returns the MAC.
    pub async fn resolve(&self, ip: IpAddr, timeout: Duration) -> anyhow::Result<String> {
        wait_for(&format!("the client resolves {ip}"), timeout, || async {
            let entry = self.client_neighbour(ip)?;
            match entry {
                Some(Neighbour {
                    lladdr: Some(mac),
                    ref state,
                }) if !state.iter().any(|s| s == "FAILED" || s == "INCOMPLETE") => Ok(Some(mac)),
                Some(ref e) if e.is("INCOMPLETE") => Ok(None),
                _ => {
                    self.lan.host(CLIENT).ns.forget_neighbour(ip, "eth0")?;
                    self.poke(ip)?;
                    Ok(None)
                }
            }
        })
        .await
        .with_context(|| self.describe())
    }

    /// Waits until the client's entry for `ip` holds `mac` (without re-resolving: the entry
    /// must be changed by an announcement).
    pub async fn wait_neighbour_mac(
        &self,
        ip: IpAddr,
        mac: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        wait_for(
            &format!("the client's entry for {ip} becomes {mac}"),
            timeout,
            || async {
                let entry = self.client_neighbour(ip)?;
                Ok(entry
                    .filter(|e| e.lladdr.as_deref() == Some(mac))
                    .map(|_| ()))
            },
        )
        .await
        .with_context(|| {
            format!(
                "entry now: {:?}\n{}",
                self.client_neighbour(ip).ok().flatten(),
                self.describe()
            )
        })
    }

    /// The node the client's neighbour entry for `vip` names (resolving it if needed).
    pub async fn owner_now(&self, vip: IpAddr, timeout: Duration) -> anyhow::Result<String> {
        let mac = self.resolve(vip, timeout).await?;
        self.node_with_mac(&mac)
            .ok_or_else(|| anyhow::anyhow!("{vip} resolves to {mac}, no node's MAC"))
    }

    /// After [`L2Cluster::settle_owner`]: the node announcing `vip` now, and the node the
    /// election picks once it is gone — what a failover trial kills and waits for.
    pub async fn owner_and_successor(
        &self,
        vip: IpAddr,
        timeout: Duration,
    ) -> anyhow::Result<(String, String)> {
        self.settle_owner(vip, timeout).await?;
        let old = self.owner_now(vip, timeout).await?;
        let live: Vec<String> = self
            .nodes()
            .iter()
            .filter(|n| **n != old)
            .cloned()
            .collect();
        let next = self
            .expected_owner(vip, &live)
            .await?
            .context("nobody elected after the loss")?;
        Ok((old, next))
    }

    /// Waits until every speaker is ready and the client's entry for `vip` names the node the
    /// election picks with every node live; if no announcement moved the entry there, the
    /// client resolves afresh.
    pub async fn settle_owner(&self, vip: IpAddr, timeout: Duration) -> anyhow::Result<()> {
        self.wait_speakers_ready(timeout).await?;
        let all = self.nodes().to_vec();
        let expected = self
            .expected_owner(vip, &all)
            .await?
            .context("nobody elected")?;
        let mac = self.mac(&expected);
        if let Err(e) = self.wait_neighbour_mac(vip, &mac, timeout).await {
            eprintln!("(the entry did not move back by itself; resolving afresh: {e:#})");
            self.lan.host(CLIENT).ns.forget_neighbour(vip, "eth0")?;
            let now = self.owner_now(vip, timeout).await?;
            if now != expected {
                anyhow::bail!("{vip} resolves to {now}, not to the elected {expected}");
            }
        }
        Ok(())
    }

    /// Waits until every speaker reports ready (`/readyz` inside its namespace). MetalLB's
    /// speakers must also each have every running speaker in their memberlist (by their logs).
    pub async fn wait_speakers_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        for (node, speaker) in &self.speakers {
            let ns = self.lan.host(node).ns.clone();
            let (addr, path) = speaker.ready_endpoint();
            let (addr, path) = (addr.to_owned(), path.to_owned());
            wait_for(&format!("the speaker on {node} is ready"), timeout, || {
                let ns = ns.clone();
                let (addr, path) = (addr.clone(), path.clone());
                async move {
                    let response = ns.run(move || http_get(&addr, &path))?;
                    Ok(response
                        .ok()
                        .filter(|r| r.starts_with("HTTP/1.1 200"))
                        .map(|_| ()))
                }
            })
            .await
            .with_context(|| self.describe())?;
        }
        if self.is_metallb() {
            let all: BTreeSet<String> = self.speakers.keys().cloned().collect();
            for (node, speaker) in &self.speakers {
                wait_for(
                    &format!("MetalLB's speaker on {node} has every speaker in its memberlist"),
                    timeout,
                    || async { Ok((metallb::members(&speaker.own_log()) == all).then_some(())) },
                )
                .await
                .with_context(|| self.describe())?;
            }
        }
        Ok(())
    }

    /// The node names whose speakers are running.
    pub fn running(&mut self) -> Vec<String> {
        self.speakers
            .iter_mut()
            .filter_map(|(n, s)| s.is_running().then(|| n.clone()))
            .collect()
    }

    /// The directory holding logs and kubeconfigs.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// An error naming what went wrong, with every speaker's log tail.
    pub fn fail(&self, what: &str) -> anyhow::Error {
        anyhow!("{what}\n{}", self.describe())
    }
}

/// Polls `check` every 20 ms until it gives `Some` (errors end the wait) or `timeout` passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(anyhow!("{what}: still not the case after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain HTTP/1.1 GET; the whole response.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}
