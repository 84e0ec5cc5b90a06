//! Whether the lab is what `up` says it is. Before anything is built: every program the lab
//! runs is installed ([`missing_prerequisites`]). Once built: every node is Ready, every speaker
//! answers `/readyz`, every kube-proxy runs, answers its health check and has programmed Service
//! rules into nftables, the router's daemons run and hold an Established BGP session with every
//! node ([`super::ClusterLab::health`]). Each check ends in one line that names what is wrong.

use std::ffi::OsStr;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::ListParams;

use super::{ClusterLab, LabState, NodeInfo, RouterInfo};
use crate::l2cluster::http_get;
use crate::netns::Netns;
use crate::routers::RouterKind;

/// Where kube-proxy answers its health check inside a node's namespace.
const KUBE_PROXY_HEALTHZ: &str = "127.0.0.1:10256";

/// Where Debian installs the CNI plugins.
const CNI_PLUGINS: &str = "/usr/lib/cni";

/// What installs a missing piece.
const HOW_TO_INSTALL: &str =
    "`./lab` and `bash tests/setup/prepare.sh` install and build everything";

/// Something the lab needs that is not there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The program or binary.
    pub program: String,
    /// What the lab uses it for.
    pub used_for: &'static str,
    /// Where it comes from: a Debian package, or a build.
    pub source: String,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is missing ({}; {})",
            self.program, self.used_for, self.source
        )
    }
}

/// One thing the lab's health depends on, and what is wrong with it if anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked: `kube-proxy on node-2`, `router bird`, `BGP session node-1 - router`.
    pub subject: String,
    /// Why it is not healthy; `None` when it is.
    pub problem: Option<String>,
}

impl Check {
    fn new(subject: String, outcome: Result<(), String>) -> Self {
        Self {
            subject,
            problem: outcome.err(),
        }
    }

    /// Whether it passed.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            None => write!(f, "ok    {}", self.subject),
            Some(problem) => write!(f, "FAIL  {}: {problem}", self.subject),
        }
    }
}

/// Why the lab cannot be built, or is not healthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// Programs or binaries are missing; nothing was built.
    #[error("the lab cannot be built:\n{}\n{HOW_TO_INSTALL}", lines(.0))]
    Missing(Vec<Missing>),
    /// Built, but some checks still fail after waiting.
    #[error("the lab is not healthy after {}s:\n{}", .waited.as_secs(), lines(.failing))]
    Unhealthy {
        /// How long the checks were retried.
        waited: Duration,
        /// The checks that failed at the end.
        failing: Vec<Check>,
    },
}

fn lines<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| format!("  {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The programs the lab runs with `router`: (program, what for, Debian package).
fn programs(router: RouterKind) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut all = vec![
        ("ip", "the lab's namespaces, links and routes", "iproute2"),
        (
            "nft",
            "kube-proxy programs the Services' rules with it",
            "nftables",
        ),
        (
            "conntrack",
            "kube-proxy clears stale connections with it",
            "conntrack",
        ),
        ("containerd", "every node's container runtime", "containerd"),
        (
            "ctr",
            "importing the images into every node's containerd",
            "containerd",
        ),
        ("runc", "running the containers", "runc"),
        (
            "unshare",
            "every node's own pid and mount namespace",
            "util-linux",
        ),
    ];
    all.extend(match router {
        RouterKind::Bird => vec![
            ("bird", "the BGP router", "bird2"),
            (
                "birdc",
                "asking the router for its sessions and routes",
                "bird2",
            ),
        ],
        RouterKind::Frr => vec![
            ("/usr/lib/frr/zebra", "the router's FIB", "frr"),
            ("/usr/lib/frr/bgpd", "the BGP router", "frr"),
            ("/usr/lib/frr/bfdd", "the router's BFD", "frr"),
            (
                "vtysh",
                "asking the router for its sessions and routes",
                "frr",
            ),
        ],
        RouterKind::Gobgp => vec![
            ("gobgpd", "the BGP router", "gobgpd"),
            (
                "gobgp",
                "asking the router for its sessions and routes",
                "gobgpd",
            ),
        ],
    });
    all
}

/// The programs of [`programs`] that cannot be found in `search_path` (a `PATH` value; absolute
/// names are checked as they are).
pub fn missing_prerequisites_on(search_path: &OsStr, router: RouterKind) -> Vec<Missing> {
    programs(router)
        .into_iter()
        .filter(|(program, _, _)| find_program(program, search_path).is_none())
        .map(|(program, used_for, package)| Missing {
            program: program.to_owned(),
            used_for,
            source: format!("Debian package {package}"),
        })
        .collect()
}

/// Everything the lab with `router` needs and lacks: programs on `PATH`, the Kubernetes
/// binaries (located, and built if need be, by `tests/setup/control-plane.sh`, which can take
/// minutes when cold) and the image archives (`tests/setup/images.sh`).
pub fn missing_prerequisites(router: RouterKind) -> Vec<Missing> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut missing = missing_prerequisites_on(&path, router);
    for (plugin, used_for) in [
        ("bridge", "the pods' network (CNI bridge)"),
        ("host-local", "the pods' addresses (CNI host-local)"),
    ] {
        let program = Path::new(CNI_PLUGINS).join(plugin);
        if !is_executable(&program) {
            missing.push(Missing {
                program: program.display().to_string(),
                used_for,
                source: "Debian package containernetworking-plugins".to_owned(),
            });
        }
    }
    match crate::apiserver::located() {
        Ok(binaries) => {
            for name in [
                "etcd",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kubelet",
                "kube-proxy",
                "kubectl",
            ] {
                if !is_executable(&binaries.path(name)) {
                    missing.push(Missing {
                        program: binaries.path(name).display().to_string(),
                        used_for: "the lab's control plane and nodes",
                        source: "built by tests/setup/control-plane.sh".to_owned(),
                    });
                }
            }
        }
        Err(why) => missing.push(Missing {
            program: "the Kubernetes binaries".to_owned(),
            used_for: "the lab's control plane and nodes",
            source: why.lines().next().unwrap_or(why).to_owned(),
        }),
    }
    let images = crate::cluster::built_images_dir();
    for file in crate::cluster::IMAGE_FILES {
        let archive = images.join(file);
        if !archive.is_file() {
            missing.push(Missing {
                program: archive.display().to_string(),
                used_for: "the nodes' containers (pause, echo, ferrolb)",
                source: "built by tests/setup/images.sh".to_owned(),
            });
        }
    }
    missing
}

fn find_program(program: &str, search_path: &OsStr) -> Option<PathBuf> {
    if program.contains('/') {
        return is_executable(Path::new(program)).then(|| PathBuf::from(program));
    }
    std::env::split_paths(search_path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether process `pid` runs (exists and is not a zombie), from `/proc`.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X'))
    })
}

/// A GET of `http://addr/path` inside `ns`: Ok when it answers 200, else what it answered.
fn get_ok(ns: &Netns, addr: &str, path: &str) -> Result<(), String> {
    let (a, p) = (addr.to_owned(), path.to_owned());
    match ns.run(move || http_get(&a, &p)) {
        Err(e) => Err(format!("cannot enter namespace {}: {e:#}", ns.name())),
        Ok(Err(e)) => Err(format!("{addr}{path} does not answer ({e})")),
        Ok(Ok(response)) if response.starts_with("HTTP/1.1 200") => Ok(()),
        Ok(Ok(response)) => Err(format!(
            "{addr}{path} answers {}",
            response.lines().next().unwrap_or("nothing")
        )),
    }
}

/// The checks that need only the published state of a running lab (`ferrolb-lab status` runs
/// them from another process): Nodes Ready, speakers ready, kube-proxies running with their
/// rules, router daemons running.
pub async fn state_health(state: &LabState, client: &kube::Client) -> Vec<Check> {
    let mut checks = Vec::new();
    let nodes = node_readiness(client).await;
    for node in &state.nodes {
        checks.push(Check::new(
            format!("node {}", node.name),
            match &nodes {
                Err(e) => Err(e.clone()),
                Ok(list) => list
                    .iter()
                    .find(|(name, _)| *name == node.name)
                    .map_or_else(|| Err("no Node object".to_owned()), |(_, r)| r.clone()),
            },
        ));
        let (addr, path) = &node.speaker_ready;
        checks.push(Check::new(
            format!("speaker on {}", node.name),
            get_ok(&Netns::existing(node.netns.clone()), addr, path),
        ));
        checks.push(Check::new(
            format!("kube-proxy on {}", node.name),
            kube_proxy_healthy(node),
        ));
    }
    checks.push(router_daemons(&state.router));
    checks
}

impl ClusterLab {
    /// Every health check of the running lab, passed or not: [`state_health`] and the router's
    /// BGP session with every node.
    pub async fn health(&self) -> Vec<Check> {
        let state = self.state();
        let mut checks = state_health(state, &self.cluster().client()).await;
        for node in &state.nodes {
            checks.push(Check::new(
                format!("BGP session {} - router", node.name),
                match self.router().established(IpAddr::V4(node.ipv4)) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err("not Established".to_owned()),
                    Err(e) => Err(format!("cannot ask the router: {e:#}")),
                },
            ));
        }
        checks
    }

    /// Retries [`ClusterLab::health`] until every check passes (their list) or `timeout`
    /// passes (the failing ones, each with its reason).
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<Vec<Check>, HealthError> {
        let started = tokio::time::Instant::now();
        loop {
            let checks = self.health().await;
            if checks.iter().all(Check::ok) {
                return Ok(checks);
            }
            if started.elapsed() >= timeout {
                return Err(HealthError::Unhealthy {
                    waited: started.elapsed(),
                    failing: checks.into_iter().filter(|c| !c.ok()).collect(),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn router_daemons(router: &RouterInfo) -> Check {
    let stopped: Vec<String> = router
        .daemons
        .iter()
        .filter(|(_, pid)| !running(*pid))
        .map(|(name, pid)| format!("{name} (pid {pid}) is not running"))
        .collect();
    Check::new(
        format!("router {}", router.kind),
        if router.daemons.is_empty() {
            Err("no daemon was started".to_owned())
        } else if stopped.is_empty() {
            Ok(())
        } else {
            Err(stopped.join(", "))
        },
    )
}

/// Each Node's name and whether its Ready condition is True (else why not), or why they
/// cannot be read.
async fn node_readiness(
    client: &kube::Client,
) -> Result<Vec<(String, Result<(), String>)>, String> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("cannot list Nodes: {e}"))?;
    Ok(nodes
        .items
        .into_iter()
        .map(|n| {
            let ready = n
                .status
                .and_then(|s| s.conditions)
                .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"));
            let outcome = match ready {
                Some(c) if c.status == "True" => Ok(()),
                Some(c) => Err(format!(
                    "not Ready ({}: {})",
                    c.reason.unwrap_or_default(),
                    c.message.unwrap_or_default()
                )),
                None => Err("has no Ready condition".to_owned()),
            };
            (n.metadata.name.unwrap_or_default(), outcome)
        })
        .collect())
}

/// kube-proxy on `node` runs (its recorded pid), answers its health check, and has programmed
/// Service chains into its nftables table.
fn kube_proxy_healthy(node: &NodeInfo) -> Result<(), String> {
    if !running(node.kube_proxy_pid) {
        return Err(format!("not running (pid {})", node.kube_proxy_pid));
    }
    let ns = Netns::existing(node.netns.clone());
    get_ok(&ns, KUBE_PROXY_HEALTHZ, "/healthz")?;
    let table = ns
        .output(&["nft", "list", "table", "ip", "kube-proxy"])
        .map_err(|e| format!("`nft list table ip kube-proxy` fails: {e:#}"))?;
    if !table.contains("chain service-") {
        return Err(
            "has programmed no Service rules (`nft list table ip kube-proxy` shows no service chain)"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executable(dir: &Path, name: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[test]
    fn a_program_missing_from_the_path_is_named_with_its_package() {
        let dir = tempfile::tempdir().expect("dir");
        for name in [
            "ip",
            "conntrack",
            "containerd",
            "ctr",
            "runc",
            "unshare",
            "bird",
            "birdc",
        ] {
            executable(dir.path(), name);
        }
        // Present but not executable: still missing.
        std::fs::write(dir.path().join("nft"), "").expect("write");
        let missing = missing_prerequisites_on(dir.path().as_os_str(), RouterKind::Bird);
        assert_eq!(
            missing.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "nft is missing (kube-proxy programs the Services' rules with it; Debian package nftables)"
            ]
        );
        executable(dir.path(), "nft");
        assert_eq!(
            missing_prerequisites_on(dir.path().as_os_str(), RouterKind::Bird),
            []
        );
        // Another router needs other programs.
        let gobgp = missing_prerequisites_on(dir.path().as_os_str(), RouterKind::Gobgp);
        let names: Vec<&str> = gobgp.iter().map(|m| m.program.as_str()).collect();
        assert_eq!(names, ["gobgpd", "gobgp"]);
    }

    #[test]
    fn a_process_counts_as_running_until_it_is_reaped_or_a_zombie() {
        assert!(running(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let pid = child.id();
        // Exited but not reaped: a zombie, not running.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while running(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!running(pid), "an exited child still counts as running");
        child.wait().expect("reaped");
        assert!(!running(pid));
    }
}
