//! A real Kubernetes cluster on one machine, for end-to-end tests of ferrolb as its users run
//! it: pods are containers, Deployments, DaemonSets and EndpointSlices are Kubernetes' own.
//!
//! ```text
//!   etcd, kube-apiserver (Node,RBAC), kube-controller-manager, kube-scheduler: this process's
//!   namespace; the apiserver is reached on the LAN at cp's address through a forwarder
//!                 ┌──────────── LAN bridge (192.0.2.0/24) ────────────────────────┐
//!   node-1 192.0.2.1      node-2 192.0.2.2  …        cp 192.0.2.<n+1>     client 192.0.2.<n+2>
//!   containerd, runc,     …                           (apiserver's
//!   kubelet, kube-proxy                                advertised address)
//!   cni0 198.18.1.1/24 and 2001:db8:18:1::1/64 (CNI bridge + host-local), pods are
//!   dual-stack containers; every host also has 2001:db8:0:1::<k>/64 on the LAN
//! ```
//!
//! Each node is a network namespace of [`Lan`] in which `node.sh` runs containerd and the
//! kubelet as process 1 of a pid namespace with a private mount namespace (its own `/var/lib`,
//! `/run`, `/var/log`, `/etc/machine-id`, cgroup root `ferrolb-<pid>-<n>-<node>`), plus
//! kube-proxy (nftables). The images of `tests/setup/images.sh` (pause, echo, ferrolb) are
//! imported into every node's containerd. Nodes route each other's pod CIDRs over the LAN.
//! Dropping the [`Cluster`] (also while a test panics) kills every node's pid namespace, and with
//! it every container, then the control plane, and removes namespaces, cgroups and directories.

pub mod ferrolb;
pub mod metallb;
mod node;
pub mod previous;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::ListParams;

pub use node::{ClusterNode, sweep_stale_cgroups};

use crate::ControlPlane;
use crate::apiserver::{KubectlOutput, Process, run_setup_script};
use crate::forward::Forwarder;
use crate::netns::{Host, Lan};

/// The control plane's host on the LAN.
pub const CP: &str = "cp";
/// The client host on the LAN.
pub const CLIENT: &str = "client";
/// Names the directory of the image archives (`tests/setup/images.sh` builds them otherwise).
pub const IMAGES_ENV: &str = "FERROLB_IMAGES";
/// Binaries a cluster needs beyond the control plane's.
const NODE_BINARIES: [&str; 4] = [
    "kubelet",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
];
/// Programs a node needs from Debian (tests/setup/packages.sh).
const NODE_PROGRAMS: [&str; 5] = ["containerd", "runc", "ctr", "unshare", "nft"];
/// The image archives every node imports.
pub const IMAGE_FILES: [&str; 3] = ["pause.tar", "echo.tar", "ferrolb-0.1.0.tar"];

static SEQUENCE: AtomicUsize = AtomicUsize::new(0);

/// What to build; see [`Cluster::builder`].
#[derive(Clone, Debug)]
pub struct ClusterBuilder {
    nodes: usize,
    extra_hosts: Vec<String>,
    extra_images: Vec<PathBuf>,
    ready_timeout: Duration,
}

/// A running cluster; see the module docs.
#[derive(Debug)]
pub struct Cluster {
    // Field order is drop order: nodes (and their containers), controllers, network, apiserver.
    nodes: Vec<ClusterNode>,
    controllers: Vec<Process>,
    _forwarder: Forwarder,
    lan: Lan,
    dir: tempfile::TempDir,
    cp: ControlPlane,
    startup: Duration,
}

impl ClusterBuilder {
    /// Adds LAN hosts after the client (a router, more clients).
    #[must_use]
    pub fn extra_host(mut self, name: &str) -> Self {
        self.extra_hosts.push(name.to_owned());
        self
    }

    /// Imports the image archive `archive` into every node's containerd too.
    #[must_use]
    pub fn image(mut self, archive: &Path) -> Self {
        self.extra_images.push(archive.to_owned());
        self
    }

    /// How long to wait for every Node to be Ready (default 120 s).
    #[must_use]
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts the cluster and waits until every node is Ready.
    pub async fn start(self) -> anyhow::Result<Cluster> {
        let started = Instant::now();
        prerequisites()?;
        let images = images_dir()?;
        let mut images: Vec<PathBuf> = IMAGE_FILES.iter().map(|f| images.join(f)).collect();
        images.extend(self.extra_images.iter().cloned());
        let names: Vec<String> = (1..=self.nodes).map(|i| format!("node-{i}")).collect();
        let mut lan = Lan::builder();
        for name in &names {
            lan = lan.host(name);
        }
        lan = lan.host(CP).host(CLIENT);
        for extra in &self.extra_hosts {
            lan = lan.host(extra);
        }
        let lan = lan.build()?;
        let cp_ip = lan.host(CP).ipv4;

        let cp = ControlPlane::builder()
            .for_kubelets()
            .advertise_address(IpAddr::V4(cp_ip))
            .start()
            .await?;
        let forwarder = Forwarder::start_on(
            lan.host(CP).ns.name(),
            SocketAddr::new(IpAddr::V4(cp_ip), cp.address().port()),
            cp.address(),
        )?;
        let server = format!("https://{cp_ip}:{}", cp.address().port());
        let keep = std::env::var(crate::apiserver::KEEP_DIRS_ENV).is_ok_and(|v| v == "1");
        let dir = tempfile::Builder::new()
            .prefix("ferrolb-cluster-")
            .disable_cleanup(keep)
            .tempdir()
            .context("creating the cluster directory")?;
        if !keep {
            crate::apiserver::claim_workdir(dir.path())?;
        }
        let id = format!(
            "ferrolb-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );

        let mut cluster = Cluster {
            nodes: Vec::new(),
            controllers: Vec::new(),
            _forwarder: forwarder,
            lan,
            dir,
            cp,
            startup: Duration::ZERO,
        };
        cluster.add_routes(&names)?;
        cluster.start_controllers()?;
        let proxy_kubeconfig =
            cluster.kubeconfig_on_lan(&["system:kube-proxy"], "kube-proxy", &server)?;
        for (i, name) in names.iter().enumerate() {
            let host = cluster.lan.host(name);
            let kubelet_kubeconfig = cluster.kubeconfig_on_lan(
                &[&format!("system:node:{name}"), "system:nodes"],
                &format!("kubelet-{name}"),
                &server,
            )?;
            let node = ClusterNode::start(&node::NodeSpec {
                name,
                index: i + 1,
                ip: host.ipv4,
                ipv6: host.ipv6,
                ns: &host.ns,
                cgroup_root: format!("{id}-{name}"),
                dir: cluster.dir.path().join(name),
                binaries: cluster.cp.binaries(),
                images: &images,
                kubelet_kubeconfig,
                proxy_kubeconfig: proxy_kubeconfig.clone(),
                ca: cluster.cp.ca_path(),
            })?;
            cluster.nodes.push(node);
        }
        cluster.wait_nodes_ready(self.ready_timeout).await?;
        cluster.startup = started.elapsed();
        tracing::info!(startup = ?cluster.startup, nodes = self.nodes, "cluster ready");
        Ok(cluster)
    }
}

impl Cluster {
    /// A cluster of `nodes` nodes (`node-1` …).
    pub fn builder(nodes: usize) -> ClusterBuilder {
        ClusterBuilder {
            nodes,
            extra_hosts: Vec::new(),
            extra_images: Vec::new(),
            ready_timeout: Duration::from_secs(120),
        }
    }

    /// The control plane.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.cp
    }

    /// An admin client.
    pub fn client(&self) -> kube::Client {
        self.cp.client()
    }

    /// The LAN (nodes, cp, client and the extra hosts).
    pub fn lan(&self) -> &Lan {
        &self.lan
    }

    /// The LAN host `name`.
    pub fn host(&self, name: &str) -> &Host {
        self.lan.host(name)
    }

    /// The nodes.
    pub fn nodes(&self) -> &[ClusterNode] {
        &self.nodes
    }

    /// The cluster's directory (per-node directories with their logs, kubeconfigs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// From the start of [`ClusterBuilder::start`] to every node Ready.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Runs kubectl as the admin.
    pub async fn kubectl(&self, args: &[&str]) -> anyhow::Result<KubectlOutput> {
        self.cp.kubectl(args).await
    }

    /// Fails naming the process and its log if any node's or controller's process exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            node.check_running()?;
        }
        for p in &mut self.controllers {
            if let Some(status) = p.exited()? {
                bail!("{} exited ({status})\n{}", p.name(), p.describe(20));
            }
        }
        Ok(())
    }

    /// Every node routes the other nodes' pod CIDRs over the LAN; so does cp (pods reach the
    /// apiserver there through the `kubernetes` Service, without NAT). Every node also has a
    /// route for the Service CIDR, as a real node has its default route: a connection that the
    /// node itself opens to a ClusterIP (a host-network pod such as the speaker, reaching the
    /// apiserver through `kubernetes.default`) needs one before kube-proxy's DNAT rewrites it.
    /// Both families: pods and Services are dual-stack.
    fn add_routes(&self, names: &[String]) -> anyhow::Result<()> {
        let cp = self.lan.host(CP);
        let (cp_v4, cp_v6) = (cp.ipv4.to_string(), cp.ipv6.to_string());
        let mut services = crate::apiserver::DEFAULT_SERVICE_CIDRS.split(',');
        let (Some(service_v4), Some(service_v6)) = (services.next(), services.next()) else {
            bail!("the Service CIDRs are not dual-stack");
        };
        let mut hosts: Vec<&Host> = names.iter().map(|n| self.lan.host(n)).collect();
        hosts.push(cp);
        for host in hosts {
            for (j, other) in names.iter().enumerate() {
                if *other != host.name {
                    let other = self.lan.host(other);
                    let (v4, v6) = (other.ipv4.to_string(), other.ipv6.to_string());
                    let cidr = format!("198.18.{}.0/24", j + 1);
                    host.ns.ip(&["route", "add", &cidr, "via", &v4])?;
                    let cidr = format!("2001:db8:18:{:x}::/64", j + 1);
                    host.ns.ip(&["-6", "route", "add", &cidr, "via", &v6])?;
                }
            }
            if host.name != CP {
                host.ns.ip(&["route", "add", service_v4, "via", &cp_v4])?;
                host.ns
                    .ip(&["-6", "route", "add", service_v6, "via", &cp_v6])?;
            }
        }
        Ok(())
    }

    /// A kubeconfig for the user `groups[0]` (in the other groups) that reaches the apiserver
    /// at `server` on the LAN.
    fn kubeconfig_on_lan(
        &self,
        identity: &[&str],
        stem: &str,
        server: &str,
    ) -> anyhow::Result<PathBuf> {
        let (user, groups) = identity.split_first().context("an identity needs a user")?;
        let path = self.cp.kubeconfig_for_user(user, groups)?;
        let text = std::fs::read_to_string(&path)?.replace(self.cp.server_url(), server);
        let out = self.dir.path().join(format!("{stem}.kubeconfig"));
        std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
        Ok(out)
    }

    /// kube-controller-manager (every default controller, one ServiceAccount each) and
    /// kube-scheduler, in this process's namespace on the apiserver's loopback address.
    fn start_controllers(&mut self) -> anyhow::Result<()> {
        let cp = &self.cp;
        let dir = self.dir.path();
        let bin = cp.binaries();
        let kcm_config = cp.kubeconfig_for_user("system:kube-controller-manager", &[])?;
        let flex = dir.join("flex-volume");
        std::fs::create_dir_all(&flex)?;
        let mut cmd = std::process::Command::new(bin.path("kube-controller-manager"));
        cmd.arg(format!("--kubeconfig={}", kcm_config.display()))
            .arg(format!(
                "--authentication-kubeconfig={}",
                kcm_config.display()
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                kcm_config.display()
            ))
            .arg("--leader-elect=false")
            .arg("--use-service-account-credentials=true")
            .arg(format!("--root-ca-file={}", cp.ca_path().display()))
            .arg(format!(
                "--service-account-private-key-file={}",
                cp.dir().join("sa.key").display()
            ))
            .arg(format!("--flex-volume-plugin-dir={}", flex.display()))
            .arg("--allocate-node-cidrs=false")
            .arg("--secure-port=0")
            .arg("--v=1");
        let kcm = Process::spawn(
            "kube-controller-manager",
            cmd,
            &dir.join("kube-controller-manager.log"),
        )?;
        self.controllers.push(kcm);

        let sched_config = cp.kubeconfig_for_user("system:kube-scheduler", &[])?;
        let mut cmd = std::process::Command::new(bin.path("kube-scheduler"));
        cmd.arg(format!("--kubeconfig={}", sched_config.display()))
            .arg(format!(
                "--authentication-kubeconfig={}",
                sched_config.display()
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                sched_config.display()
            ))
            .arg("--leader-elect=false")
            .arg("--secure-port=0")
            .arg("--v=1");
        let scheduler = Process::spawn("kube-scheduler", cmd, &dir.join("kube-scheduler.log"))?;
        self.controllers.push(scheduler);
        Ok(())
    }

    /// Waits until every node's Node object is Ready.
    async fn wait_nodes_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let nodes: Api<Node> = Api::all(self.client());
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            let ready: Vec<String> = nodes
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items
                        .iter()
                        .filter(|n| is_ready(n))
                        .filter_map(|n| n.metadata.name.clone())
                        .collect()
                })
                .unwrap_or_default();
            if self
                .nodes
                .iter()
                .all(|n| ready.iter().any(|r| r == n.name()))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "nodes not Ready within {timeout:?} (Ready: {}); logs in {}",
                    if ready.is_empty() {
                        "none".to_owned()
                    } else {
                        ready.join(", ")
                    },
                    self.dir().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Whether a Node's Ready condition is True.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// What a cluster needs on this machine, or what is missing and how to get it.
pub fn prerequisites() -> anyhow::Result<()> {
    let bin = crate::apiserver::binaries();
    let missing: Vec<&str> = NODE_BINARIES
        .iter()
        .copied()
        .filter(|b| !bin.path(b).is_file())
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} lacks {}: run `bash tests/setup/control-plane.sh`",
            bin.dir().display(),
            missing.join(", ")
        );
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = NODE_PROGRAMS
        .iter()
        .copied()
        .filter(|p| !std::env::split_paths(&path).any(|d| d.join(p).is_file()))
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} not installed: run `bash tests/setup/packages.sh`",
            missing.join(", ")
        );
    }
    if !Path::new("/usr/lib/cni/bridge").is_file() {
        bail!("the CNI plugins are not installed: run `bash tests/setup/packages.sh`");
    }
    Ok(())
}

/// Where the image archives are without building them: `FERROLB_IMAGES`, else where
/// `tests/setup/images.sh` writes them (`$FERROLB_CACHE/images`, default
/// `~/.cache/ferrolb/images`).
pub fn built_images_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(IMAGES_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("FERROLB_CACHE").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/ferrolb")
        },
        PathBuf::from,
    );
    cache.join("images")
}

/// The directory of the image archives: `FERROLB_IMAGES`, or what `tests/setup/images.sh`
/// builds (once per process).
pub fn images_dir() -> anyhow::Result<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = match std::env::var_os(IMAGES_ENV) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => run_setup_script("images").map_err(|e| format!("{e:#}"))?,
        };
        match IMAGE_FILES.iter().find(|f| !dir.join(f).is_file()) {
            Some(f) => Err(format!(
                "{} lacks {f}: run `bash tests/setup/images.sh`",
                dir.display()
            )),
            None => Ok(dir),
        }
    });
    dir.clone().map_err(|e| anyhow::anyhow!(e))
}
