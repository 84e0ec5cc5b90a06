//! One node of a [`Cluster`](super::Cluster): its configuration files, the process tree of
//! `node.sh` (containerd, kubelet and every container, in a pid namespace of their own), and
//! kube-proxy in the node's network namespace.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::apiserver::{Binaries, Process};
use crate::netns::Netns;

/// The script every node runs (see its header).
const NODE_SCRIPT: &str = include_str!("node.sh");
/// cgroup hierarchies the kubelet's cgroup root lives in (v1, and the hybrid host's v2 `unified`,
/// where runc creates it too); removed from each on drop.
const HIERARCHIES: [&str; 10] = [
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
    "unified",
];

/// What a node is started with.
pub(super) struct NodeSpec<'a> {
    pub name: &'a str,
    /// 1-based: the node's pod CIDRs are 198.18.<index>.0/24 and 2001:db8:18:<index>::/64.
    pub index: usize,
    pub ip: Ipv4Addr,
    pub ipv6: Ipv6Addr,
    pub ns: &'a Netns,
    /// Unique per cluster instance: `ferrolb-<pid>-<n>-<node>`.
    pub cgroup_root: String,
    pub dir: PathBuf,
    pub binaries: &'a Binaries,
    pub images: &'a [PathBuf],
    pub kubelet_kubeconfig: PathBuf,
    pub proxy_kubeconfig: PathBuf,
    pub ca: PathBuf,
}

/// The pod network, both families (DESIGN.md's address plan): node i gets 198.18.i.0/24 and
/// 2001:db8:18:i::/64.
pub const POD_CIDRS: &str = "198.18.0.0/16,2001:db8:18::/56";

/// A running node; dropping it kills everything it runs and removes its cgroups.
#[derive(Debug)]
pub struct ClusterNode {
    name: String,
    ip: Ipv4Addr,
    // Drop order: the runner (and with it every container) first, then kube-proxy.
    runner: Process,
    kube_proxy: Process,
    dir: PathBuf,
    cgroup_root: String,
    /// [`Self::kill`] ended it on purpose.
    killed: bool,
}

impl ClusterNode {
    pub(super) fn start(spec: &NodeSpec<'_>) -> anyhow::Result<Self> {
        let dir = &spec.dir;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write(&dir.join("node.sh"), NODE_SCRIPT)?;
        write(&dir.join("machine-id"), &machine_id(&spec.cgroup_root))?;
        let images: Vec<String> = spec
            .images
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        write(
            &dir.join("env"),
            &format!(
                "NODE={}\nNODE_IP={},{}\nCGROUP_ROOT={}\nBIN={}\nIMAGES=\"{}\"\n",
                spec.name,
                spec.ip,
                spec.ipv6,
                spec.cgroup_root,
                spec.binaries.dir().display(),
                images.join(" ")
            ),
        )?;
        let cni_dir = dir.join("cni");
        std::fs::create_dir_all(&cni_dir)?;
        write(
            &cni_dir.join("10-ferrolb-pods.conflist"),
            &cni_config(spec.index),
        )?;
        write(&dir.join("containerd.toml"), &containerd_config(&cni_dir))?;
        std::fs::create_dir_all(dir.join("volume-plugins"))?;
        write(&dir.join("kubelet.yaml"), &kubelet_config(spec))?;
        std::fs::copy(&spec.kubelet_kubeconfig, dir.join("kubelet.kubeconfig"))?;

        let ns = spec.ns;
        ns.sysctl("net.ipv4.ip_forward", "1")?;
        ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        let mut cmd = ns.command("unshare");
        cmd.args([
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--uts",
            "bash",
        ])
        .arg(dir.join("node.sh"))
        .arg(dir);
        let runner = Process::spawn("node", cmd, &dir.join("node.log"))?;

        let proxy_config = dir.join("kube-proxy.yaml");
        write(
            &proxy_config,
            &format!(
                "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n\
                 clientConnection: {{kubeconfig: {}}}\nhostnameOverride: {}\nmode: nftables\n\
                 clusterCIDR: {POD_CIDRS}\n\
                 conntrack: {{maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}}\n\
                 metricsBindAddress: 127.0.0.1:10249\nhealthzBindAddress: 127.0.0.1:10256\n",
                spec.proxy_kubeconfig.display(),
                spec.name
            ),
        )?;
        let mut cmd = ns.command(&spec.binaries.kube_proxy().to_string_lossy());
        cmd.args(["--config", &proxy_config.to_string_lossy(), "--v=1"]);
        let kube_proxy = Process::spawn("kube-proxy", cmd, &dir.join("kube-proxy.log"))?;
        Ok(Self {
            name: spec.name.to_owned(),
            ip: spec.ip,
            runner,
            kube_proxy,
            dir: dir.clone(),
            cgroup_root: spec.cgroup_root.clone(),
            killed: false,
        })
    }

    /// The node's name (`node-1`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its LAN address (the Node's InternalIP).
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The pid of its kube-proxy.
    pub fn kube_proxy_pid(&self) -> u32 {
        self.kube_proxy.id()
    }

    /// Its directory: `node.log`, `containerd.log`, `kubelet.log`, `kube-proxy.log`, configs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The socket of the node's containerd, reachable from the host (`ctr --address`).
    pub fn containerd_socket(&self) -> PathBuf {
        self.dir.join("root/run/containerd/containerd.sock")
    }

    /// Whether [`Self::kill`] ended the node.
    pub fn is_killed(&self) -> bool {
        self.killed
    }

    /// The node dies as a machine does when its power goes: SIGKILL to its pid namespace takes
    /// containerd, the kubelet and every container (the speaker among them) at once, and
    /// kube-proxy goes too. Nothing says goodbye; the network namespace stays, with nothing
    /// in it answering.
    pub fn kill(&mut self) {
        self.killed = true;
        self.runner.stop();
        self.kube_proxy.stop();
    }

    /// Whether the node's processes still run (unless it was killed on purpose); an error names
    /// the log to read.
    pub(super) fn check_running(&mut self) -> anyhow::Result<()> {
        if self.killed {
            return Ok(());
        }
        for p in [&mut self.runner, &mut self.kube_proxy] {
            if let Some(status) = p.exited()? {
                anyhow::bail!(
                    "{} of {} exited ({status}); see {}\n{}",
                    p.name(),
                    self.name,
                    self.dir.display(),
                    p.describe(20)
                );
            }
        }
        Ok(())
    }

    /// Resident memory of everything the node runs (containerd, kubelet, shims, containers and
    /// kube-proxy), in bytes.
    pub fn memory_bytes(&self) -> u64 {
        let roots = [self.runner.id(), self.kube_proxy.id()];
        descendants_rss(&roots)
    }

    /// Removes the node's cgroup root from every hierarchy, children first, once the processes
    /// in it are gone (they are killed with the node's pid namespace).
    fn remove_cgroups(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for h in HIERARCHIES {
            let root = Path::new("/sys/fs/cgroup").join(h).join(&self.cgroup_root);
            loop {
                if remove_tree(&root).is_ok() || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.runner.stop();
        self.kube_proxy.stop();
        self.remove_cgroups();
    }
}

/// Removes the cgroup roots of clusters whose process is gone (`ferrolb-<pid>-…`, left behind
/// when that process was killed before it could clean up; their processes died with their pid
/// namespaces). Returns how many were removed.
pub fn sweep_stale_cgroups() -> usize {
    let mut removed = 0;
    for h in HIERARCHIES {
        let Ok(entries) = std::fs::read_dir(Path::new("/sys/fs/cgroup").join(h)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix("ferrolb-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != std::process::id()
                && !Path::new("/proc").join(pid.to_string()).exists()
                && remove_tree(&e.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// rmdir of a cgroup directory and its sub-cgroups, deepest first (cgroup directories hold only
/// their control files, which rmdir takes away).
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&e.path())?;
                }
            }
            std::fs::remove_dir(dir)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The sum of VmRSS over `roots` and all their descendants.
fn descendants_rss(roots: &[u32]) -> u64 {
    let mut parents = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The fields after the command (which may hold spaces) start after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut members: Vec<u32> = roots.to_vec();
    let mut i = 0;
    while i < members.len() {
        let parent = members[i];
        members.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    members
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum::<u64>()
        * 1024
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// 32 hex digits, different per node and cluster.
fn machine_id(seed: &str) -> String {
    let digest = crate::image::digest(seed.as_bytes());
    format!("{}\n", &digest["sha256:".len()..][..32])
}

/// A bridge (`cni0`, the node's gateway 198.18.<i>.1 and 2001:db8:18:<i>::1) with host-local
/// addresses from the node's pod CIDRs: every pod is dual-stack.
fn cni_config(index: usize) -> String {
    format!(
        r#"{{
  "cniVersion": "0.4.0",
  "name": "ferrolb-pods",
  "plugins": [{{
    "type": "bridge",
    "bridge": "cni0",
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {{
      "type": "host-local",
      "ranges": [
        [{{"subnet": "198.18.{index}.0/24", "gateway": "198.18.{index}.1"}}],
        [{{"subnet": "2001:db8:18:{index:x}::/64", "gateway": "2001:db8:18:{index:x}::1"}}]
      ],
      "routes": [{{"dst": "0.0.0.0/0"}}, {{"dst": "::/0"}}]
    }}
  }}]
}}
"#
    )
}

/// containerd 1.6 (CRI): no negative `oom_score_adj` (this machine lacks CAP_SYS_RESOURCE),
/// network namespaces under the private state directory, cgroupfs, our CNI config and the
/// locally imported pause image.
fn containerd_config(cni_dir: &Path) -> String {
    format!(
        r#"version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
"#,
        pause = crate::image::PAUSE_IMAGE,
        cni = cni_dir.display()
    )
}

/// kubelet: cgroupfs under the node's own cgroup root, `oomScoreAdj: 0`, cgroup v1 allowed,
/// no swap check, low eviction thresholds, webhook authn/authz with the cluster CA.
fn kubelet_config(spec: &NodeSpec<'_>) -> String {
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {ip}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {ca}}}
authorization: {{mode: Webhook}}
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /{cgroup_root}
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
volumePluginDir: {plugins}
resolvConf: ""
clusterDomain: cluster.local
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {{memory.available: "1Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}}
nodeStatusUpdateFrequency: 2s
"#,
        ip = spec.ip,
        ca = spec.ca.display(),
        cgroup_root = spec.cgroup_root,
        plugins = spec.dir.join("volume-plugins").display(),
    )
}
