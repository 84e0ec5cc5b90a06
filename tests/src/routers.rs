//! Real BGP routers for interop tests and the lab: GoBGP (`gobgpd`), BIRD 2 and FRR from
//! Debian's packages, each started inside a network namespace with a generated configuration,
//! and read back through its own CLI — JSON where the router offers it (GoBGP, FRR), BIRD's text
//! otherwise — into one [`Route`] shape, so a test asserts the same thing against all three.
//!
//! Daemons run as child processes of the test (killed with it) with their state in a temporary
//! directory; nothing is installed as a service. `tests/setup/packages.sh` installs them.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, anyhow, bail};
use ipnet::IpNet;

use crate::apiserver::Process;
use crate::netns::Netns;

mod bfd;
mod daemons;
mod fib;
mod operations;
mod parse;
mod peering_lan;

pub use bfd::{
    BfdCounters, BfdSession, BfdTimers, parse_bird_bfd_sessions, parse_frr_bfd_counters,
    parse_frr_bfd_peers,
};
pub use fib::FibSync;
pub use operations::OriginatedRoute;
pub use parse::{parse_bird_routes, parse_frr_prefix, parse_gobgp_rib};
pub use peering_lan::PeeringLan;

/// Which router.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouterKind {
    /// GoBGP 3 (`gobgpd`, queried with `gobgp … -j`).
    Gobgp,
    /// BIRD 2 (`bird`, queried with `birdc`).
    Bird,
    /// FRR 8 (`zebra` + `bgpd`, queried with `vtysh … json`).
    Frr,
}

impl RouterKind {
    /// All three.
    pub const ALL: [Self; 3] = [Self::Gobgp, Self::Bird, Self::Frr];
}

impl std::str::FromStr for RouterKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gobgp" => Ok(Self::Gobgp),
            "bird" => Ok(Self::Bird),
            "frr" => Ok(Self::Frr),
            other => Err(format!("unknown router {other:?}: use bird, frr or gobgp")),
        }
    }
}

impl fmt::Display for RouterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gobgp => "gobgp",
            Self::Bird => "bird",
            Self::Frr => "frr",
        })
    }
}

/// A BGP neighbor of the router.
#[derive(Clone, Debug)]
pub struct Neighbor {
    /// Its address.
    pub address: IpAddr,
    /// Its AS.
    pub asn: u32,
    /// TCP MD5 password.
    pub password: Option<String>,
    /// The router waits for the neighbor to connect (never connects itself).
    pub passive: bool,
    /// Run BFD with it (FRR and BIRD only).
    pub bfd: bool,
    /// The BFD timers to use with it; `None`: the router's defaults. BIRD sets timers per
    /// interface, so it applies the first neighbor's to all.
    pub bfd_timers: Option<BfdTimers>,
    /// Act as a graceful-restart helper for it (RFC 4724): keep its routes as stale while it
    /// restarts. BIRD and FRR do this by default; GoBGP needs it configured.
    pub graceful_restart: bool,
    /// GTSM (RFC 5082) for a directly connected neighbor: send with TTL 255, accept only 255.
    pub ttl_security: bool,
    /// eBGP multihop (TTL 255; FRR and BIRD then run multihop BFD, RFC 5883, with it).
    pub multihop: bool,
    /// Unnumbered: the neighbour is at the other end of this interface, found there by FRR
    /// (`neighbor <if> interface`, from its router advertisements) and GoBGP
    /// (`neighbor-interface`, from the one link-local entry in the kernel's neighbour table
    /// when it starts); BIRD cannot find it and is told `address` (its link-local) on the
    /// interface. IPv4 routes then carry IPv6 next hops (RFC 8950).
    pub interface: Option<String>,
}

impl Neighbor {
    /// A neighbor the router waits for (the usual set-up: the speaker connects).
    pub fn passive(address: IpAddr, asn: u32) -> Self {
        Self {
            address,
            asn,
            password: None,
            passive: true,
            bfd: false,
            bfd_timers: None,
            graceful_restart: false,
            ttl_security: false,
            multihop: false,
            interface: None,
        }
    }
}

/// How to configure the router.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// Its AS.
    pub asn: u32,
    /// Its router ID (also its IPv4 source address).
    pub router_id: Ipv4Addr,
    /// Its neighbors.
    pub neighbors: Vec<Neighbor>,
    /// Install multiple paths (ECMP) into the kernel where the router supports it.
    pub multipath: bool,
}

/// A route as a router holds it, normalised across the three.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The prefix.
    pub prefix: IpNet,
    /// The next hop of this path.
    pub next_hop: IpAddr,
    /// LOCAL_PREF, if carried.
    pub local_pref: Option<u32>,
    /// Standard communities as `high:low`.
    pub communities: BTreeSet<String>,
    /// Large communities as `global:local1:local2`.
    pub large_communities: BTreeSet<String>,
    /// The AS path, flattened.
    pub as_path: Vec<u32>,
    /// The router uses this path: its best (GoBGP `best`, BIRD's primary `*`), or for FRR
    /// its best or one of its multipaths (ECMP).
    pub best: bool,
}

/// A running router.
#[derive(Debug)]
pub struct Router {
    kind: RouterKind,
    ns: Netns,
    dir: tempfile::TempDir,
    config: RouterConfig,
    processes: Vec<Process>,
    /// Routes the router originates itself ([`Router::originate`]), put back after a restart.
    originated: Vec<OriginatedRoute>,
}

const GOBGP_API: &str = "127.0.0.1:50051";

impl Router {
    /// Starts `kind` in `ns` with `config`.
    pub fn start(kind: RouterKind, ns: &Netns, config: &RouterConfig) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ferrolb-router-")
            .tempdir()?;
        crate::apiserver::claim_workdir(dir.path())?;
        let mut router = Self {
            kind,
            ns: ns.clone(),
            dir,
            config: config.clone(),
            processes: Vec::new(),
            originated: Vec::new(),
        };
        router.start_daemons()?;
        Ok(router)
    }

    fn start_daemons(&mut self) -> anyhow::Result<()> {
        let config = self.config.clone();
        match self.kind {
            RouterKind::Gobgp => self.start_gobgp(&config)?,
            RouterKind::Bird => self.start_bird(&config)?,
            RouterKind::Frr => self.start_frr(&config)?,
        }
        self.restore_originated()
    }

    /// Stops the daemons (SIGTERM); [`Self::restart`] starts them again.
    pub fn stop(&mut self) {
        self.processes.clear();
    }

    /// Stops the daemons (SIGTERM, as an operator's restart would) and starts them again with
    /// the same configuration: every session drops and must come back.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.processes.clear();
        self.start_daemons()
    }

    /// Which router this is.
    pub fn kind(&self) -> RouterKind {
        self.kind
    }

    /// A shell command that shows the router's routes, for people looking at a running lab.
    pub fn show_routes_command(&self) -> String {
        let ns = self.ns.name();
        match self.kind {
            RouterKind::Gobgp => {
                format!("ip netns exec {ns} gobgp -u 127.0.0.1 -p 50051 global rib")
            }
            RouterKind::Bird => format!(
                "ip netns exec {ns} birdc -s {} show route all",
                self.path("bird.ctl").display()
            ),
            RouterKind::Frr => format!(
                "ip netns exec {ns} vtysh --vty_socket {} -c 'show bgp ipv4 unicast'",
                self.path("frr").display()
            ),
        }
    }

    /// The daemons it runs (`bird`; `zebra`, `bgpd`, `bfdd`; `gobgpd`) and their pids.
    pub fn daemons(&self) -> Vec<(&'static str, u32)> {
        self.processes.iter().map(|p| (p.name(), p.id())).collect()
    }

    /// The tail of each daemon's log, for failure messages.
    pub fn describe(&self) -> String {
        self.processes
            .iter()
            .map(|p| p.describe(30))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self, name: &'static str, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let mut cmd = self.ns.command(program);
        cmd.args(args);
        let log = self.path(&format!("{name}.log"));
        self.processes.push(Process::spawn(name, cmd, &log)?);
        Ok(())
    }

    fn vtysh(&self, command: &str) -> anyhow::Result<String> {
        let socket = self.path("frr").to_string_lossy().into_owned();
        self.ns
            .output(&["vtysh", "--vty_socket", &socket, "-c", command])
    }

    /// Runs `gobgp <args>` against this GoBGP's API, inside its namespace (GoBGP only).
    pub fn gobgp(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = vec!["gobgp", "-u", "127.0.0.1", "-p", "50051"];
        cmd.extend_from_slice(args);
        self.ns.output(&cmd)
    }

    fn birdc(&self, args: &[&str]) -> anyhow::Result<String> {
        let ctl = self.path("bird.ctl").to_string_lossy().into_owned();
        let mut cmd = vec!["birdc", "-s", &ctl];
        cmd.extend_from_slice(args);
        self.ns.output(&cmd)
    }

    /// Whether the session with `neighbor` is Established. Errors when the router cannot be
    /// asked (not up yet counts as not established).
    pub fn established(&self, neighbor: IpAddr) -> anyhow::Result<bool> {
        match self.kind {
            RouterKind::Gobgp => {
                let Ok(json) = self.gobgp(&["neighbor", &neighbor.to_string(), "-j"]) else {
                    return Ok(false);
                };
                let v: serde_json::Value = serde_json::from_str(&json)?;
                Ok(v["state"]["session_state"].as_i64() == Some(6)
                    || v["state"]["session_state"].as_str() == Some("established"))
            }
            RouterKind::Bird => {
                let Ok(text) = self.birdc(&["show", "protocols"]) else {
                    return Ok(false);
                };
                let name = self.bird_protocol(neighbor)?;
                Ok(text
                    .lines()
                    .any(|l| l.starts_with(&format!("{name} ")) && l.contains("Established")))
            }
            RouterKind::Frr => {
                let Ok(json) = self.vtysh("show bgp neighbors json") else {
                    return Ok(false);
                };
                let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
                Ok(v[neighbor.to_string()]["bgpState"].as_str() == Some("Established"))
            }
        }
    }

    /// Whether the session with the unnumbered neighbour on `interface` is Established.
    pub fn established_on(&self, interface: &str) -> anyhow::Result<bool> {
        match self.kind {
            RouterKind::Gobgp => {
                let Ok(json) = self.gobgp(&["neighbor", "-j"]) else {
                    return Ok(false);
                };
                let v: serde_json::Value = serde_json::from_str(&json)?;
                Ok(v.as_array().into_iter().flatten().any(|n| {
                    n["state"]["session_state"].as_i64() == Some(6)
                        || n["state"]["session_state"].as_str() == Some("established")
                }))
            }
            RouterKind::Bird => {
                let Ok(text) = self.birdc(&["show", "protocols"]) else {
                    return Ok(false);
                };
                Ok(text
                    .lines()
                    .any(|l| l.starts_with("n0 ") && l.contains("Established")))
            }
            RouterKind::Frr => {
                let Ok(json) = self.vtysh("show bgp neighbors json") else {
                    return Ok(false);
                };
                let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
                Ok(v[interface]["bgpState"].as_str() == Some("Established"))
            }
        }
    }

    /// What the router says about its session with `neighbor`, for assertions on why it ended:
    /// GoBGP's log, BIRD's `show protocols all`, FRR's `show bgp neighbors <ip> json`.
    pub fn session_report(&self, neighbor: IpAddr) -> anyhow::Result<String> {
        match self.kind {
            RouterKind::Gobgp => Ok(std::fs::read_to_string(self.path("gobgpd.log"))?),
            RouterKind::Bird => {
                let name = self.bird_protocol(neighbor)?;
                self.birdc(&["show", "protocols", "all", &name])
            }
            RouterKind::Frr => self.vtysh(&format!("show bgp neighbors {neighbor} json")),
        }
    }

    fn bird_protocol(&self, neighbor: IpAddr) -> anyhow::Result<String> {
        let conf = std::fs::read_to_string(self.path("bird.conf"))?;
        let mut current = None;
        for line in conf.lines() {
            if let Some(rest) = line.strip_prefix("protocol bgp ") {
                current = rest.split_whitespace().next().map(str::to_owned);
            }
            if line
                .trim_start()
                .starts_with(&format!("neighbor {neighbor} "))
            {
                return current.ok_or_else(|| anyhow!("malformed bird.conf"));
            }
        }
        Err(anyhow!("{neighbor} is not a neighbor"))
    }

    /// The paths the router holds for `prefix` (for GoBGP one query, for benchmarks).
    pub fn routes_for(&self, prefix: IpNet) -> anyhow::Result<Vec<Route>> {
        match self.kind {
            RouterKind::Gobgp => {
                let family = if prefix.addr().is_ipv4() {
                    "ipv4"
                } else {
                    "ipv6"
                };
                let json =
                    self.gobgp(&["global", "rib", "-a", family, &prefix.to_string(), "-j"])?;
                Ok(parse_gobgp_rib(&json)?
                    .into_iter()
                    .filter(|r| r.prefix == prefix)
                    .collect())
            }
            _ => Ok(self
                .routes()?
                .into_iter()
                .filter(|r| r.prefix == prefix)
                .collect()),
        }
    }

    /// Every path the router holds for unicast IPv4 and IPv6 prefixes.
    pub fn routes(&self) -> anyhow::Result<Vec<Route>> {
        match self.kind {
            RouterKind::Gobgp => {
                let mut routes = Vec::new();
                for family in ["ipv4", "ipv6"] {
                    let json = self.gobgp(&["global", "rib", "-a", family, "-j"])?;
                    routes.extend(parse_gobgp_rib(&json)?);
                }
                Ok(routes)
            }
            RouterKind::Bird => {
                let text = self.birdc(&["show", "route", "all"])?;
                parse_bird_routes(&text)
            }
            RouterKind::Frr => {
                let mut routes = Vec::new();
                for family in ["ipv4", "ipv6"] {
                    let json = self.vtysh(&format!("show bgp {family} unicast json"))?;
                    let v: serde_json::Value =
                        serde_json::from_str(&json).with_context(|| format!("parsing {json}"))?;
                    let Some(prefixes) = v["routes"].as_object() else {
                        continue;
                    };
                    for prefix in prefixes.keys() {
                        let detail =
                            self.vtysh(&format!("show bgp {family} unicast {prefix} json"))?;
                        routes.extend(parse_frr_prefix(prefix, &detail)?);
                    }
                }
                Ok(routes)
            }
        }
    }
}

fn wait_file(path: &Path) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !path.exists() {
        if std::time::Instant::now() > deadline {
            bail!("{} did not appear", path.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
