//! The fixture of the layer-2 announcer suite: a LAN, announcers in node namespaces, and what
//! the client sees.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use ferrolb_speaker::layer2::announcer::{
    Announcer, AnnouncerHandle, AnnouncerSettings, Announcing, Conflict, InterfaceChoice,
    L2Metrics, Plan, Protocol,
};
use ferrolb_speaker::layer2::arp::Mac;
use ferrolb_speaker::netlink::watch_interfaces;
use ferrolb_speaker::sys::{PacketSocket, ifindex};
use ferrolb_tests::netns::{Host, Lan, Netns, NsThread, is_root};
use tokio::sync::{mpsc, watch};

pub(crate) const VIP4: &str = "192.0.2.200";
pub(crate) const VIP6: &str = "2001:db8:0:1::200";
pub(crate) const UNPLANNED4: &str = "192.0.2.201";
pub(crate) const UNPLANNED6: &str = "2001:db8:0:1::201";
/// Longest wait for anything that should happen within a burst (the last send is at 1 s).
pub(crate) const BURST_DEADLINE: Duration = Duration::from_secs(3);
/// Longest wait for anything else.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);
pub(crate) const POLL: Duration = Duration::from_millis(20);

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().expect("a valid IP literal")
}

pub(crate) fn mac(s: &str) -> Mac {
    let mut octets = [0u8; 6];
    for (o, part) in octets.iter_mut().zip(s.split(':')) {
        *o = u8::from_str_radix(part, 16).expect("a valid MAC literal");
    }
    Mac(octets)
}

pub(crate) fn root() -> bool {
    if !is_root() {
        eprintln!(
            "skipped: the layer-2 announcer tests need root (network namespaces, raw sockets)"
        );
    }
    is_root()
}

pub(crate) fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "ferrolb_speaker=info".into()),
        )
        .try_init();
}

/// Polls `condition` until it holds or `deadline` passes.
pub(crate) fn wait_until(
    what: &str,
    deadline: Duration,
    mut condition: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        if condition()? {
            return Ok(start.elapsed());
        }
        if start.elapsed() > deadline {
            bail!("timed out after {deadline:?} waiting until {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// A LAN with these nodes (node-c gets two interfaces) and a client that gives up on an
/// unanswered resolution after 3 × 100 ms.
pub(crate) fn lan(nodes: &[&str]) -> anyhow::Result<Lan> {
    let mut builder = Lan::builder();
    for node in nodes {
        builder = if *node == "node-c" {
            builder.host_with_interfaces(node, 2)
        } else {
            builder.host(node)
        };
    }
    let lan = builder.host("client").build()?;
    let client = &lan.host("client").ns;
    client.sysctl("net.ipv4.neigh.eth0.retrans_time_ms", "100")?;
    client.sysctl("net.ipv6.neigh.eth0.retrans_time_ms", "100")?;
    Ok(lan)
}

pub(crate) fn settings() -> AnnouncerSettings {
    AnnouncerSettings::default()
}

/// An announcer running in a node's namespace on a thread of its own.
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) host: Host,
    pub(crate) plan: watch::Sender<Plan>,
    pub(crate) announcing: watch::Receiver<Announcing>,
    pub(crate) conflicts: mpsc::Receiver<Conflict>,
    /// Every conflict reported so far.
    pub(crate) seen: Vec<Conflict>,
    pub(crate) metrics: Arc<L2Metrics>,
    pub(crate) commands: Option<mpsc::UnboundedSender<()>>,
    pub(crate) drained: std::sync::mpsc::Receiver<Instant>,
    pub(crate) thread: Option<NsThread<anyhow::Result<()>>>,
}

pub(crate) type Started = (watch::Receiver<Announcing>, mpsc::Receiver<Conflict>);

impl Node {
    pub(crate) fn start(host: &Host, settings: AnnouncerSettings) -> anyhow::Result<Self> {
        let (plan, plan_rx) = watch::channel(Plan::default());
        let metrics = Arc::new(L2Metrics::default());
        let (started_tx, started_rx) = std::sync::mpsc::channel::<anyhow::Result<Started>>();
        let (commands, mut commands_rx) = mpsc::unbounded_channel::<()>();
        let (drained_tx, drained) = std::sync::mpsc::channel();
        let shared = metrics.clone();
        let thread = host.ns.spawn(&host.name, move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let interfaces = match watch_interfaces().await {
                    Ok(interfaces) => interfaces,
                    Err(e) => {
                        let _ = started_tx.send(Err(anyhow!("watching interfaces: {e}")));
                        return Ok(());
                    }
                };
                let AnnouncerHandle {
                    announcing,
                    conflicts,
                    control,
                } = Announcer::spawn(settings, shared, plan_rx, interfaces);
                let _ = started_tx.send(Ok((announcing, conflicts)));
                let mut control = Some(control);
                // A command drains; the sender going away stops at once.
                while commands_rx.recv().await.is_some() {
                    if let Some(control) = control.take() {
                        control.drain().await;
                        let _ = drained_tx.send(Instant::now());
                    }
                }
                Ok(())
            })
        })?;
        let (announcing, conflicts) = started_rx
            .recv_timeout(DEADLINE)
            .context("the announcer did not start")??;
        Ok(Self {
            name: host.name.clone(),
            host: host.clone(),
            plan,
            announcing,
            conflicts,
            seen: Vec::new(),
            metrics,
            commands: Some(commands),
            drained,
            thread: Some(thread),
        })
    }

    pub(crate) fn mac(&self, interface: &str) -> Mac {
        mac(self.host.mac(interface))
    }

    pub(crate) fn ns(&self) -> &Netns {
        &self.host.ns
    }

    pub(crate) fn set_plan(&self, ips: &[(&str, InterfaceChoice)]) {
        let plan = Plan {
            ips: ips.iter().map(|(s, c)| (ip(s), c.clone())).collect(),
        };
        self.plan.send_replace(plan);
    }

    pub(crate) fn announcing(&self) -> Announcing {
        self.announcing.borrow().clone()
    }

    pub(crate) fn wait_announcing(
        &self,
        want: &[(&str, &[&str])],
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let want: Announcing = want
            .iter()
            .map(|(s, names)| (ip(s), names.iter().map(|n| (*n).to_owned()).collect()))
            .collect();
        wait_until(
            &format!("{} announces {want:?}", self.name),
            deadline,
            || Ok(self.announcing() == want),
        )
        .with_context(|| format!("{} announces {:?}", self.name, self.announcing()))
        .map(drop)
    }

    /// Waits for a conflict report (received now or earlier) matching `wanted`.
    pub(crate) fn wait_conflict(
        &mut self,
        what: &str,
        wanted: impl Fn(&Conflict) -> bool,
    ) -> anyhow::Result<Conflict> {
        let start = Instant::now();
        loop {
            while let Ok(c) = self.conflicts.try_recv() {
                self.seen.push(c);
            }
            if let Some(c) = self.seen.iter().find(|c| wanted(c)) {
                return Ok(c.clone());
            }
            if start.elapsed() > DEADLINE {
                bail!(
                    "{}: no conflict where {what}; saw {:?}",
                    self.name,
                    self.seen
                );
            }
            std::thread::sleep(POLL);
        }
    }

    pub(crate) fn counter(
        &self,
        which: fn(&L2Metrics) -> &CounterFamily,
        iface: &str,
        p: Protocol,
    ) -> u64 {
        L2Metrics::value(which(&self.metrics), iface, p)
    }

    pub(crate) fn drain(&self) -> anyhow::Result<()> {
        self.commands
            .as_ref()
            .context("stopped")?
            .send(())
            .map_err(|_| anyhow!("{} has stopped", self.name))
    }
}

pub(crate) type CounterFamily = prometheus_client::metrics::family::Family<
    ferrolb_speaker::layer2::announcer::L2Labels,
    prometheus_client::metrics::counter::Counter,
>;

pub(crate) fn requests(m: &L2Metrics) -> &CounterFamily {
    &m.requests
}
pub(crate) fn replies(m: &L2Metrics) -> &CounterFamily {
    &m.replies
}
pub(crate) fn gratuitous(m: &L2Metrics) -> &CounterFamily {
    &m.gratuitous
}
pub(crate) fn malformed(m: &L2Metrics) -> &CounterFamily {
    &m.malformed
}
pub(crate) fn conflicts(m: &L2Metrics) -> &CounterFamily {
    &m.conflicts
}

impl Drop for Node {
    fn drop(&mut self) {
        self.commands.take();
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("{}: {e:#}", self.name),
                Err(e) => eprintln!("{}: {e:#}", self.name),
            }
        }
    }
}

/// Makes the client's kernel resolve `ip` (a datagram to the discard port).
pub(crate) fn poke(client: &Host, target: IpAddr) -> anyhow::Result<()> {
    client
        .ns
        .run(move || {
            let any: SocketAddr = match target {
                IpAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
                IpAddr::V6(_) => "[::]:0".parse().expect("literal"),
            };
            UdpSocket::bind(any).and_then(|s| s.send_to(b"ferrolb", (target, 9)))
        })?
        .map(drop)
        .with_context(|| format!("sending to {target} from the client"))
}

/// The MAC the client's kernel has for `ip`, if it has a usable entry.
pub(crate) fn client_entry(client: &Host, target: IpAddr) -> anyhow::Result<Option<Mac>> {
    let entry = client.ns.neighbour(target, "eth0")?;
    Ok(entry
        .filter(|e| !e.is("FAILED") && !e.is("INCOMPLETE"))
        .and_then(|e| e.lladdr)
        .map(|m| mac(&m)))
}

/// Forgets the client's entry for `ip`, makes it resolve again and returns the MAC it got.
pub(crate) fn resolve(client: &Host, target: &str) -> anyhow::Result<Mac> {
    let target = ip(target);
    client.ns.forget_neighbour(target, "eth0")?;
    let mut got = None;
    wait_until(&format!("the client resolves {target}"), DEADLINE, || {
        got = client_entry(client, target)?;
        if got.is_none() {
            poke(client, target)?;
        }
        Ok(got.is_some())
    })?;
    got.context("resolved")
}

/// Asserts that nobody answers for `ip`: the client's resolution ends FAILED.
pub(crate) fn assert_unresolved(client: &Host, target: &str) -> anyhow::Result<()> {
    let target = ip(target);
    client.ns.forget_neighbour(target, "eth0")?;
    poke(client, target)?;
    wait_until(
        &format!("the client gives up on {target}"),
        DEADLINE,
        || {
            let entry = client.ns.neighbour(target, "eth0")?;
            if let Some(lladdr) = entry.as_ref().and_then(|e| e.lladdr.clone()) {
                bail!("{target} was resolved to {lladdr}");
            }
            Ok(entry.is_some_and(|e| e.is("FAILED")))
        },
    )
    .map(drop)
}

/// Waits until the client's existing entry for `ip` says `want`, without making it resolve.
pub(crate) fn wait_client_entry(
    client: &Host,
    target: &str,
    want: Mac,
    deadline: Duration,
) -> anyhow::Result<Duration> {
    let target = ip(target);
    let mut seen = None;
    wait_until(
        &format!("the client's entry for {target} is {want}"),
        deadline,
        || {
            seen = client_entry(client, target)?;
            Ok(seen == Some(want))
        },
    )
    .with_context(|| format!("last seen: {seen:?}"))
}

/// Sends raw frames out of the client's `eth0`.
pub(crate) fn send_from_client(
    client: &Host,
    ipv6: bool,
    frames: Vec<Vec<u8>>,
) -> anyhow::Result<()> {
    client.ns.run(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let index = ifindex("eth0")?;
            let socket = if ipv6 {
                PacketSocket::ndp(index)?
            } else {
                PacketSocket::arp(index)?
            };
            for frame in frames {
                socket.send(&frame).await?;
            }
            Ok(())
        })
    })?
}

pub(crate) fn all(ips: &[&'static str]) -> Vec<(&'static str, InterfaceChoice)> {
    ips.iter().map(|s| (*s, InterfaceChoice::All)).collect()
}

pub(crate) fn named(names: &[&str]) -> InterfaceChoice {
    InterfaceChoice::Named(
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>(),
    )
}
