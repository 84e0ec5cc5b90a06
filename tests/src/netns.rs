//! Network namespaces for tests and the lab: a LAN of hosts on one bridge, built with `ip`.
//!
//! [`Lan::builder`] creates uniquely named namespaces — `flb<pid>-<n>-<name>`, so parallel tests
//! never collide and leftovers of dead test processes are recognisable — one holding the bridge
//! `br0` (the LAN segment) and one per host, each host with one or more veth interfaces into the
//! bridge named `eth0`, `eth1`, … (never `veth*`, which MetalLB-style exclude lists skip). Host
//! `k` (counting from 1 in the order added) gets `192.0.2.k/24` and `2001:db8:0:1::k/64` on
//! `eth0` (DESIGN.md's LAN) and MAC `02:fb:00:00:kk:ii` on `eth<i>`; duplicate address
//! detection is off so IPv6 works at once, and `arp_ignore=1`/`arp_announce=2` (kube-proxy's
//! strictARP) keep a host's other interfaces from answering for `eth0`'s address. Dropping the [`Lan`] (also while a test panics)
//! deletes every namespace it created; [`sweep_stale`] (run by every build) deletes those of test
//! processes that are gone.
//!
//! [`Netns`] runs commands inside a namespace ([`Netns::ip`], [`Netns::exec`],
//! [`Netns::output`], [`Netns::command`] for long-running processes) and runs Rust code there:
//! [`Netns::spawn`] starts an OS thread that has `setns`'d into the namespace, so sockets,
//! netlink connections and a tokio runtime created on that thread live in it.
//!
//! Needs root (`CAP_SYS_ADMIN` and `CAP_NET_ADMIN`) and `ip` from iproute2.

use std::fmt;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, anyhow, bail};
use nix::sched::CloneFlags;

/// Every namespace this module creates starts with this, then the creating process's pid.
pub const PREFIX: &str = "flb";
/// Where `ip netns` keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";
/// The bridge in the LAN's bridge namespace.
pub const BRIDGE: &str = "br0";
/// Prefix length of the LAN's IPv4 addresses (192.0.2.0/24).
pub const LAN_PREFIX_V4: u8 = 24;
/// Prefix length of the LAN's IPv6 addresses (2001:db8:0:1::/64).
pub const LAN_PREFIX_V6: u8 = 64;
/// Hosts per LAN: host addresses stay below the layer-2 pool (192.0.2.200–250).
pub const MAX_HOSTS: usize = 199;

static SEQUENCE: AtomicUsize = AtomicUsize::new(0);

/// Whether this process may create network namespaces (its effective uid is 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// A named network namespace (a handle; the [`Lan`] owns and deletes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A neighbour-table entry (`ip neigh`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// The link-layer address, lowercase (`02:fb:00:00:01:00`), if resolved or being probed.
    pub lladdr: Option<String>,
    /// NUD states, e.g. `["REACHABLE"]`, `["FAILED"]`, `["INCOMPLETE"]`.
    pub state: Vec<String>,
}

impl Neighbour {
    /// Whether the entry is in `state` (e.g. `"FAILED"`).
    pub fn is(&self, state: &str) -> bool {
        self.state.iter().any(|s| s == state)
    }
}

/// A thread running inside a network namespace; see [`Netns::spawn`].
#[derive(Debug)]
pub struct NsThread<T> {
    handle: JoinHandle<Option<T>>,
    netns: String,
}

impl<T> NsThread<T> {
    /// Waits for the thread; an error if it panicked.
    pub fn join(self) -> anyhow::Result<T> {
        match self.handle.join() {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(anyhow!("the thread never entered {}", self.netns)),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(not a string)");
                Err(anyhow!("the thread in {} panicked: {message}", self.netns))
            }
        }
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

impl Netns {
    /// A handle to the existing namespace `name`.
    pub fn existing(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's file (for `setns`).
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Runs `ip -n <ns> <args>`; its stdout, or an error with its stderr.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = Command::new("ip");
        command.arg("-n").arg(&self.name).args(args);
        run(command)
    }

    /// A command running `program` inside the namespace (`ip netns exec <ns> <program>`), for
    /// the caller to add arguments and spawn (long-running daemons).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs `cmd` inside the namespace; an error if it fails.
    pub fn exec(&self, cmd: &[&str]) -> anyhow::Result<()> {
        self.output(cmd).map(drop)
    }

    /// Runs `cmd` inside the namespace; its stdout, or an error with its stderr.
    pub fn output(&self, cmd: &[&str]) -> anyhow::Result<String> {
        let (program, args) = cmd.split_first().context("an empty command")?;
        let mut command = self.command(program);
        command.args(args);
        run(command)
    }

    /// Runs `f` on a new OS thread that has entered the namespace. Returns once the thread is
    /// inside (or failed to enter).
    pub fn spawn<F, T>(&self, thread_name: &str, f: F) -> anyhow::Result<NsThread<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let file = File::open(self.path()).with_context(|| format!("opening {}", self.name))?;
        let (entered_tx, entered_rx) = std::sync::mpsc::sync_channel(1);
        let handle = std::thread::Builder::new()
            .name(thread_name.to_owned())
            .spawn(move || {
                let entered = nix::sched::setns(&file, CloneFlags::CLONE_NEWNET);
                drop(file);
                let ok = entered.is_ok();
                let _ = entered_tx.send(entered);
                ok.then(f)
            })
            .context("spawning a thread")?;
        match entered_rx.recv() {
            Ok(Ok(())) => Ok(NsThread {
                handle,
                netns: self.name.clone(),
            }),
            Ok(Err(e)) => Err(anyhow!("setns into {}: {e}", self.name)),
            Err(_) => Err(anyhow!("the thread for {} ended early", self.name)),
        }
    }

    /// Runs `f` inside the namespace (on a thread of its own) and returns its result.
    pub fn run<F, T>(&self, f: F) -> anyhow::Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn("netns-run", f)?.join()
    }

    /// Sets a sysctl of the namespace (`net.ipv6.conf.all.accept_dad`, …).
    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        let value = value.to_owned();
        let shown = path.display().to_string();
        self.run(move || std::fs::write(&path, value))?
            .with_context(|| format!("writing {shown} in {}", self.name))
    }

    /// Sets interface `ifname` up.
    pub fn link_up(&self, ifname: &str) -> anyhow::Result<()> {
        self.ip(&["link", "set", ifname, "up"]).map(drop)
    }

    /// Sets interface `ifname` down.
    pub fn link_down(&self, ifname: &str) -> anyhow::Result<()> {
        self.ip(&["link", "set", ifname, "down"]).map(drop)
    }

    /// The neighbour-table entry for `ip` on `ifname`, if any.
    pub fn neighbour(&self, ip: IpAddr, ifname: &str) -> anyhow::Result<Option<Neighbour>> {
        let json = self.ip(&["-j", "neigh", "show", "to", &ip.to_string(), "dev", ifname])?;
        let entries: Vec<serde_json::Value> = if json.trim().is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&json).with_context(|| format!("parsing {json:?}"))?
        };
        Ok(entries.first().map(|e| Neighbour {
            lladdr: e["lladdr"].as_str().map(str::to_lowercase),
            state: e["state"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }))
    }

    /// Removes the neighbour-table entry for `ip` on `ifname` (if any).
    pub fn forget_neighbour(&self, ip: IpAddr, ifname: &str) -> anyhow::Result<()> {
        self.ip(&["neigh", "flush", "to", &ip.to_string(), "dev", ifname])
            .map(drop)
    }
}

fn run(mut command: Command) -> anyhow::Result<String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .with_context(|| format!("running {shown}"))?;
    if !output.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("{shown} printed non-UTF-8"))
}

/// One interface of a host, plugged into the LAN's bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInterface {
    /// Its name in the host (`eth0`, `eth1`, …).
    pub name: String,
    /// Its MAC, lowercase.
    pub mac: String,
    /// The bridge port it is plugged into (in the bridge namespace).
    pub bridge_port: String,
}

/// A host on the LAN.
#[derive(Clone, Debug)]
pub struct Host {
    /// Its name in the test (`node-a`, `client`).
    pub name: String,
    /// Its namespace.
    pub ns: Netns,
    /// Its interfaces into the LAN, `eth0` first.
    pub interfaces: Vec<HostInterface>,
    /// Its IPv4 address on `eth0`.
    pub ipv4: Ipv4Addr,
    /// Its IPv6 address on `eth0`.
    pub ipv6: Ipv6Addr,
}

impl Host {
    /// Its interface named `name`.
    pub fn interface(&self, name: &str) -> &HostInterface {
        self.interfaces
            .iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("{} has no interface {name}", self.name))
    }

    /// The MAC of its interface `name`.
    pub fn mac(&self, name: &str) -> &str {
        &self.interface(name).mac
    }
}

/// What to build; see [`Lan::builder`].
#[derive(Clone, Debug)]
pub struct LanBuilder {
    hosts: Vec<(String, usize)>,
}

impl LanBuilder {
    /// Adds a host with one interface (`eth0`).
    pub fn host(self, name: &str) -> Self {
        self.host_with_interfaces(name, 1)
    }

    /// Adds a host with `interfaces` interfaces into the bridge (`eth0` …); only `eth0` gets
    /// addresses.
    pub fn host_with_interfaces(mut self, name: &str, interfaces: usize) -> Self {
        self.hosts.push((name.to_owned(), interfaces.max(1)));
        self
    }

    /// Creates the namespaces, the bridge, the links and the addresses.
    pub fn build(self) -> anyhow::Result<Lan> {
        if self.hosts.len() > MAX_HOSTS {
            bail!("at most {MAX_HOSTS} hosts per LAN");
        }
        if let Some((name, n)) = self.hosts.iter().find(|(_, n)| *n > 256) {
            bail!("{name}: at most 256 interfaces, not {n}");
        }
        sweep_stale();
        let id = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let mut owned = Owned(Vec::new());
        let bridge = owned.create(&format!("{id}-lan"))?;
        bridge.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
        bridge.ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        bridge.link_up(BRIDGE)?;

        let mut hosts = Vec::new();
        for (k, (name, count)) in self.hosts.into_iter().enumerate() {
            let k = k + 1;
            let ns = owned.create(&format!("{id}-{name}"))?;
            ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
            // Only the interface holding an address answers ARP for it (no "ARP flux" between
            // a host's interfaces on one segment), as on nodes with kube-proxy's strictARP.
            ns.sysctl("net.ipv4.conf.all.arp_ignore", "1")?;
            ns.sysctl("net.ipv4.conf.all.arp_announce", "2")?;
            ns.link_up("lo")?;
            let mut interfaces = Vec::new();
            for i in 0..count {
                let iface = HostInterface {
                    name: format!("eth{i}"),
                    mac: format!("02:fb:00:00:{k:02x}:{i:02x}"),
                    bridge_port: format!("h{k}i{i}"),
                };
                bridge.ip(&[
                    "link",
                    "add",
                    &iface.bridge_port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &iface.name,
                    "address",
                    &iface.mac,
                    "netns",
                    ns.name(),
                ])?;
                bridge.ip(&["link", "set", &iface.bridge_port, "master", BRIDGE, "up"])?;
                ns.link_up(&iface.name)?;
                interfaces.push(iface);
            }
            let ipv4 = Ipv4Addr::new(192, 0, 2, k as u8);
            let ipv6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, k as u16);
            ns.ip(&[
                "addr",
                "add",
                &format!("{ipv4}/{LAN_PREFIX_V4}"),
                "dev",
                "eth0",
            ])?;
            ns.ip(&[
                "addr",
                "add",
                &format!("{ipv6}/{LAN_PREFIX_V6}"),
                "dev",
                "eth0",
                "nodad",
            ])?;
            hosts.push(Host {
                name,
                ns,
                interfaces,
                ipv4,
                ipv6,
            });
        }
        Ok(Lan {
            bridge,
            hosts,
            owned,
        })
    }
}

/// A standalone namespace named `flb<pid>-<n>-<name>` (so a crashed owner's is swept), deleted
/// on drop — for pods and other hosts that hang off a node rather than the LAN.
#[derive(Debug)]
pub struct OwnedNetns {
    ns: Netns,
    _owned: Owned,
}

impl OwnedNetns {
    /// Creates it, with loopback up.
    pub fn create(name: &str) -> anyhow::Result<Self> {
        let id = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let mut owned = Owned(Vec::new());
        let ns = owned.create(&format!("{id}-{name}"))?;
        ns.link_up("lo")?;
        Ok(Self { ns, _owned: owned })
    }

    /// The namespace.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }
}

/// Namespaces to delete on drop.
#[derive(Debug)]
struct Owned(Vec<String>);

impl Owned {
    fn create(&mut self, name: &str) -> anyhow::Result<Netns> {
        let mut command = Command::new("ip");
        command.args(["netns", "add", name]);
        run(command)?;
        self.0.push(name.to_owned());
        Ok(Netns::existing(name))
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // Hosts first, the bridge (created first) last.
        for name in self.0.iter().rev() {
            delete(name);
        }
    }
}

fn delete(name: &str) {
    let deleted = Command::new("ip").args(["netns", "del", name]).output();
    if !matches!(&deleted, Ok(o) if o.status.success()) && Path::new(NETNS_DIR).join(name).exists()
    {
        eprintln!("could not delete network namespace {name}: {deleted:?}");
    }
}

/// A LAN segment: a bridge namespace and hosts plugged into it. Deleted on drop.
#[derive(Debug)]
pub struct Lan {
    bridge: Netns,
    hosts: Vec<Host>,
    owned: Owned,
}

impl Lan {
    /// A LAN to build: add hosts, then [`LanBuilder::build`].
    pub fn builder() -> LanBuilder {
        LanBuilder { hosts: Vec::new() }
    }

    /// The host named `name` (panics if there is none: a test bug).
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name} on this LAN"))
    }

    /// All hosts, in the order added.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The namespace holding the bridge.
    pub fn bridge(&self) -> &Netns {
        &self.bridge
    }

    /// The names of every namespace of this LAN.
    pub fn namespaces(&self) -> &[String] {
        &self.owned.0
    }
}

/// Deletes the namespaces left by test processes that no longer run (this module's names carry
/// the creator's pid). Returns how many were deleted.
pub fn sweep_stale() -> usize {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return 0;
    };
    let mut deleted = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            delete(&name);
            deleted += 1;
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lan_is_built_reachable_and_removed_on_drop() -> anyhow::Result<()> {
        if !is_root() {
            eprintln!("skipped: needs root for network namespaces");
            return Ok(());
        }
        let lan = Lan::builder()
            .host("a")
            .host_with_interfaces("b", 2)
            .build()?;
        let names = lan.namespaces().to_vec();
        assert_eq!(names.len(), 3);
        let b = lan.host("b");
        assert_eq!(b.ipv4, Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(b.mac("eth1"), "02:fb:00:00:02:01");
        let shown = b.ns.ip(&["-br", "link", "show", "eth1"])?;
        assert!(shown.contains("02:fb:00:00:02:01"), "{shown}");

        // Code on a thread inside `a` sees a's interfaces and reaches b over the bridge.
        let b_addr = b.ipv4;
        let (index, sent) = lan.host("a").ns.run(move || {
            let index = nix::net::if_::if_nametoindex("eth0").map_err(|e| e.to_string());
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string());
            let sent = socket.and_then(|s| s.send_to(b"x", (b_addr, 9)).map_err(|e| e.to_string()));
            (index, sent)
        })?;
        assert!(index.is_ok() && sent.is_ok(), "{index:?} {sent:?}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let entry = lan.host("a").ns.neighbour(IpAddr::V4(b_addr), "eth0")?;
            if entry.as_ref().and_then(|e| e.lladdr.as_deref()) == Some("02:fb:00:00:02:00") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "a never resolved b: {entry:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }

        drop(lan);
        for name in names {
            assert!(
                !Path::new(NETNS_DIR).join(&name).exists(),
                "{name} left behind"
            );
        }
        Ok(())
    }

    #[test]
    fn namespaces_of_dead_processes_are_swept_and_ours_are_kept() -> anyhow::Result<()> {
        if !is_root() {
            eprintln!("skipped: needs root for network namespaces");
            return Ok(());
        }
        // A pid above the kernel's maximum (4194304) never runs.
        let stale = format!("{PREFIX}4194399-0-left");
        let mine = format!("{PREFIX}{}-999999-mine", std::process::id());
        let mut owned = Owned(Vec::new());
        owned.create(&stale)?;
        owned.create(&mine)?;
        assert!(sweep_stale() >= 1);
        assert!(!Path::new(NETNS_DIR).join(&stale).exists());
        assert!(Path::new(NETNS_DIR).join(&mine).exists());
        Ok(())
    }
}
