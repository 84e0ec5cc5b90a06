//! The layer-2 announcer against the real kernel: nodes and a client on one bridged LAN
//! (network namespaces), an [`Announcer`] running in-process inside each node namespace (a
//! thread with its own tokio runtime), plans given directly. Every outcome is read from the
//! client's own kernel neighbour table (`ip neigh`), the announcer's `announcing` map, its
//! conflict reports and its metrics. Needs root; skipped with a message otherwise.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use ferrolb_speaker::layer2::announcer::{
    Announcer, AnnouncerHandle, AnnouncerSettings, Announcing, Conflict, InterfaceChoice,
    L2Metrics, Plan, Protocol, checksum, ipv6_frame,
};
use ferrolb_speaker::layer2::arp::{ArpFrame, Mac};
use ferrolb_speaker::layer2::ndp::{Solicitation, multicast_mac, solicited_node};
use ferrolb_speaker::netlink::watch_interfaces;
use ferrolb_speaker::sys::{PacketSocket, ifindex};
use ferrolb_tests::netns::{Host, Lan, Netns, NsThread, is_root};
use tokio::sync::{mpsc, watch};

const VIP4: &str = "192.0.2.200";
const VIP6: &str = "2001:db8:0:1::200";
const UNPLANNED4: &str = "192.0.2.201";
const UNPLANNED6: &str = "2001:db8:0:1::201";
/// Longest wait for anything that should happen within a burst (the last send is at 1 s).
const BURST_DEADLINE: Duration = Duration::from_secs(3);
/// Longest wait for anything else.
const DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a valid IP literal")
}

fn mac(s: &str) -> Mac {
    let mut octets = [0u8; 6];
    for (o, part) in octets.iter_mut().zip(s.split(':')) {
        *o = u8::from_str_radix(part, 16).expect("a valid MAC literal");
    }
    Mac(octets)
}

fn root() -> bool {
    if !is_root() {
        eprintln!(
            "skipped: the layer-2 announcer tests need root (network namespaces, raw sockets)"
        );
    }
    is_root()
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "ferrolb_speaker=info".into()),
        )
        .try_init();
}

/// Polls `condition` until it holds or `deadline` passes.
fn wait_until(
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
fn lan(nodes: &[&str]) -> anyhow::Result<Lan> {
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

fn settings() -> AnnouncerSettings {
    AnnouncerSettings::default()
}

/// An announcer running in a node's namespace on a thread of its own.
struct Node {
    name: String,
    host: Host,
    plan: watch::Sender<Plan>,
    announcing: watch::Receiver<Announcing>,
    conflicts: mpsc::Receiver<Conflict>,
    /// Every conflict reported so far.
    seen: Vec<Conflict>,
    metrics: Arc<L2Metrics>,
    commands: Option<mpsc::UnboundedSender<()>>,
    drained: std::sync::mpsc::Receiver<Instant>,
    thread: Option<NsThread<anyhow::Result<()>>>,
}

type Started = (watch::Receiver<Announcing>, mpsc::Receiver<Conflict>);

impl Node {
    fn start(host: &Host, settings: AnnouncerSettings) -> anyhow::Result<Self> {
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

    fn mac(&self, interface: &str) -> Mac {
        mac(self.host.mac(interface))
    }

    fn ns(&self) -> &Netns {
        &self.host.ns
    }

    fn set_plan(&self, ips: &[(&str, InterfaceChoice)]) {
        let plan = Plan {
            ips: ips.iter().map(|(s, c)| (ip(s), c.clone())).collect(),
        };
        self.plan.send_replace(plan);
    }

    fn announcing(&self) -> Announcing {
        self.announcing.borrow().clone()
    }

    fn wait_announcing(&self, want: &[(&str, &[&str])], deadline: Duration) -> anyhow::Result<()> {
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
    fn wait_conflict(
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

    fn counter(&self, which: fn(&L2Metrics) -> &CounterFamily, iface: &str, p: Protocol) -> u64 {
        L2Metrics::value(which(&self.metrics), iface, p)
    }

    fn drain(&self) -> anyhow::Result<()> {
        self.commands
            .as_ref()
            .context("stopped")?
            .send(())
            .map_err(|_| anyhow!("{} has stopped", self.name))
    }
}

type CounterFamily = prometheus_client::metrics::family::Family<
    ferrolb_speaker::layer2::announcer::L2Labels,
    prometheus_client::metrics::counter::Counter,
>;

fn requests(m: &L2Metrics) -> &CounterFamily {
    &m.requests
}
fn replies(m: &L2Metrics) -> &CounterFamily {
    &m.replies
}
fn gratuitous(m: &L2Metrics) -> &CounterFamily {
    &m.gratuitous
}
fn malformed(m: &L2Metrics) -> &CounterFamily {
    &m.malformed
}
fn conflicts(m: &L2Metrics) -> &CounterFamily {
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
fn poke(client: &Host, target: IpAddr) -> anyhow::Result<()> {
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
fn client_entry(client: &Host, target: IpAddr) -> anyhow::Result<Option<Mac>> {
    let entry = client.ns.neighbour(target, "eth0")?;
    Ok(entry
        .filter(|e| !e.is("FAILED") && !e.is("INCOMPLETE"))
        .and_then(|e| e.lladdr)
        .map(|m| mac(&m)))
}

/// Forgets the client's entry for `ip`, makes it resolve again and returns the MAC it got.
fn resolve(client: &Host, target: &str) -> anyhow::Result<Mac> {
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
fn assert_unresolved(client: &Host, target: &str) -> anyhow::Result<()> {
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
fn wait_client_entry(
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
fn send_from_client(client: &Host, ipv6: bool, frames: Vec<Vec<u8>>) -> anyhow::Result<()> {
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

fn all(ips: &[&'static str]) -> Vec<(&'static str, InterfaceChoice)> {
    ips.iter().map(|s| (*s, InterfaceChoice::All)).collect()
}

fn named(names: &[&str]) -> InterfaceChoice {
    InterfaceChoice::Named(
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>(),
    )
}

#[test]
fn the_owner_answers_arp_and_ndp_and_nobody_answers_for_an_unplanned_ip() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a", "node-b"])?;
    let client = lan.host("client");
    let a = Node::start(lan.host("node-a"), settings())?;
    let b = Node::start(lan.host("node-b"), settings())?;
    a.set_plan(&all(&[VIP4, VIP6]));
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;
    assert!(b.announcing().is_empty());

    assert_eq!(resolve(client, VIP4)?, a.mac("eth0"), "ARP answered by A");
    assert_eq!(resolve(client, VIP6)?, a.mac("eth0"), "NDP answered by A");
    assert_unresolved(client, UNPLANNED4)?;
    assert_unresolved(client, UNPLANNED6)?;

    for p in [Protocol::Arp, Protocol::Ndp] {
        assert!(
            a.counter(requests, "eth0", p) >= 1,
            "{p:?} requests counted"
        );
        assert!(a.counter(replies, "eth0", p) >= 1, "{p:?} replies counted");
        assert!(a.counter(gratuitous, "eth0", p) >= 1, "{p:?} burst counted");
        assert_eq!(b.counter(replies, "eth0", p), 0, "B answers nothing");
        assert_eq!(a.counter(malformed, "eth0", p), 0);
    }
    Ok(())
}

#[test]
fn moving_an_ip_updates_the_clients_entry_by_the_new_owners_announcement() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a", "node-b"])?;
    let client = lan.host("client");
    let lingering = AnnouncerSettings {
        linger: Duration::from_secs(30),
        ..settings()
    };
    let a = Node::start(lan.host("node-a"), lingering.clone())?;
    let b = Node::start(lan.host("node-b"), lingering)?;
    a.set_plan(&all(&[VIP4, VIP6]));
    assert_eq!(resolve(client, VIP4)?, a.mac("eth0"));
    assert_eq!(resolve(client, VIP6)?, a.mac("eth0"));

    // The election moves the IPs: A releases them, B takes them. The client sends nothing. (If
    // B's burst reaches A before A has released, A — the lower MAC — wins that race; B then
    // probes after its 1 s hold-down, A no longer defends the lingering IPs, and B takes over:
    // still within the deadline, and A answers meanwhile.)
    a.set_plan(&[]);
    b.set_plan(&all(&[VIP4, VIP6]));
    wait_client_entry(client, VIP4, b.mac("eth0"), BURST_DEADLINE)?;
    wait_client_entry(client, VIP6, b.mac("eth0"), BURST_DEADLINE)?;
    for p in [Protocol::Arp, Protocol::Ndp] {
        assert_eq!(
            b.counter(requests, "eth0", p),
            0,
            "the client never asked B ({p:?})"
        );
    }

    // B's announcement also ended A's make-before-break linger long before its 30 s.
    a.wait_announcing(&[], BURST_DEADLINE)?;
    b.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;
    Ok(())
}

#[test]
fn a_link_down_on_the_owner_stops_its_answering_and_link_up_announces_again() -> anyhow::Result<()>
{
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a"])?;
    let client = lan.host("client");
    let a = Node::start(lan.host("node-a"), settings())?;
    a.set_plan(&all(&[VIP4, VIP6]));
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;

    a.ns().link_down("eth0")?;
    a.wait_announcing(&[], BURST_DEADLINE)?;
    assert_unresolved(client, VIP4)?;

    let before = a.counter(gratuitous, "eth0", Protocol::Arp);
    a.ns().link_up("eth0")?;
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;
    wait_until("A announces again after link-up", DEADLINE, || {
        Ok(a.counter(gratuitous, "eth0", Protocol::Arp) > before)
    })?;
    assert_eq!(resolve(client, VIP4)?, a.mac("eth0"));
    assert_eq!(resolve(client, VIP6)?, a.mac("eth0"));
    Ok(())
}

#[test]
fn an_ip_planned_on_a_named_interface_is_answered_only_there() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-c"])?;
    let client = lan.host("client");
    let c = Node::start(lan.host("node-c"), settings())?;
    c.set_plan(&[
        (VIP4, named(&["eth1"])),
        (VIP6, named(&["eth1", "eth7"])),
        (UNPLANNED4, InterfaceChoice::All),
    ]);
    c.wait_announcing(
        &[
            (VIP4, &["eth1"]),
            (VIP6, &["eth1"]),
            (UNPLANNED4, &["eth0", "eth1"]),
        ],
        DEADLINE,
    )?;
    // Both of C's interfaces hear the client's broadcast and multicast; only eth1 answers.
    assert_eq!(resolve(client, VIP4)?, c.mac("eth1"));
    assert_eq!(resolve(client, VIP6)?, c.mac("eth1"));
    for p in [Protocol::Arp, Protocol::Ndp] {
        assert_eq!(c.counter(replies, "eth0", p), 0, "eth0 answered ({p:?})");
        assert!(c.counter(replies, "eth1", p) >= 1);
    }
    // eth0 hears eth1's announcements of the IP they share: the node's own MACs never conflict.
    assert_eq!(c.counter(conflicts, "eth0", Protocol::Arp), 0);
    assert_eq!(c.counter(conflicts, "eth1", Protocol::Arp), 0);
    Ok(())
}

/// Refresh often and hold down briefly, so split-brain tests run in seconds.
fn split_brain_settings() -> AnnouncerSettings {
    AnnouncerSettings {
        refresh: Duration::from_millis(300),
        hold_down: Duration::from_secs(1),
        linger: Duration::from_secs(5),
        ..settings()
    }
}

#[test]
fn in_a_split_brain_the_higher_mac_goes_silent_until_the_winner_is_gone() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a", "node-b"])?;
    let client = lan.host("client");
    let mut a = Node::start(lan.host("node-a"), split_brain_settings())?;
    let mut b = Node::start(lan.host("node-b"), split_brain_settings())?;
    assert!(a.mac("eth0") < b.mac("eth0"), "A wins by MAC order");
    a.set_plan(&all(&[VIP4, VIP6]));
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;

    // Both believe they own the IPs.
    b.set_plan(&all(&[VIP4, VIP6]));
    for vip in [VIP4, VIP6] {
        let lost = b.wait_conflict(&format!("B loses {vip}"), |c| c.ip == ip(vip))?;
        assert_eq!(
            (
                lost.we_lose,
                lost.theirs,
                lost.ours,
                lost.interface.as_str()
            ),
            (true, a.mac("eth0"), b.mac("eth0"), "eth0")
        );
        let won = a.wait_conflict(&format!("A wins {vip}"), |c| c.ip == ip(vip))?;
        assert_eq!((won.we_lose, won.theirs), (false, b.mac("eth0")));
    }
    b.wait_announcing(&[], BURST_DEADLINE)?;
    assert_eq!(resolve(client, VIP4)?, a.mac("eth0"));
    assert_eq!(resolve(client, VIP6)?, a.mac("eth0"));

    // A keeps refreshing, so B stays silent through several hold-downs.
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(3) {
        assert!(
            b.announcing().is_empty(),
            "B came back while A still announces"
        );
        assert_eq!(a.announcing().len(), 2);
        std::thread::sleep(POLL);
    }
    assert!(a.counter(conflicts, "eth0", Protocol::Arp) >= 1);
    assert!(b.counter(conflicts, "eth0", Protocol::Ndp) >= 1);

    // A stops announcing (it lingers silently): B no longer sees it and takes over.
    a.set_plan(&[]);
    b.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;
    wait_client_entry(client, VIP4, b.mac("eth0"), BURST_DEADLINE)?;
    wait_client_entry(client, VIP6, b.mac("eth0"), BURST_DEADLINE)?;
    a.wait_announcing(&[], BURST_DEADLINE)?;
    Ok(())
}

#[test]
fn a_rogue_claim_from_the_client_is_a_conflict_decided_by_mac_order() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a"])?;
    let client = lan.host("client");
    let mut a = Node::start(lan.host("node-a"), split_brain_settings())?;
    a.set_plan(&all(&[VIP4, VIP6]));
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;
    let IpAddr::V4(vip4) = ip(VIP4) else {
        unreachable!()
    };
    let IpAddr::V6(vip6) = ip(VIP6) else {
        unreachable!()
    };

    // A higher MAC claims VIP4: A wins, keeps answering and re-announces.
    let higher = Mac([0xee, 0, 0, 0, 0, 0x01]);
    let before = a.counter(gratuitous, "eth0", Protocol::Arp);
    let garp = ArpFrame::gratuitous(vip4, higher).map(|f| f.encode().to_vec());
    send_from_client(client, false, garp.to_vec())?;
    let won = a.wait_conflict("a higher MAC claims VIP4", |c| c.theirs == higher)?;
    assert!(!won.we_lose);
    wait_until("A re-announces", BURST_DEADLINE, || {
        Ok(a.counter(gratuitous, "eth0", Protocol::Arp) >= before + 2)
    })?;
    assert_eq!(a.announcing().len(), 2);

    // A lower MAC claims VIP6 by an advertisement: A goes silent for VIP6 only...
    let lower = Mac([0x02, 0, 0, 0, 0, 0x01]);
    let na = ferrolb_speaker::layer2::announcer::NdpFrame::unsolicited(vip6, lower);
    send_from_client(client, true, vec![na.encode()])?;
    let lost = a.wait_conflict("a lower MAC claims VIP6", |c| c.theirs == lower)?;
    assert!(lost.we_lose);
    a.wait_announcing(&[(VIP4, &["eth0"])], BURST_DEADLINE)?;
    // ... until the hold-down passes without the rogue, then announces it again.
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;
    assert_eq!(resolve(client, VIP6)?, a.mac("eth0"));
    Ok(())
}

#[test]
fn a_draining_node_answers_until_its_successor_claims_the_ip() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a", "node-b"])?;
    let client = lan.host("client");
    let lingering = AnnouncerSettings {
        linger: Duration::from_secs(30),
        ..settings()
    };
    let a = Node::start(lan.host("node-a"), lingering.clone())?;
    let b = Node::start(lan.host("node-b"), lingering)?;
    a.set_plan(&all(&[VIP4, VIP6]));
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;

    a.drain()?;
    let grat = a.counter(gratuitous, "eth0", Protocol::Arp);
    // Still answered while draining (and no new announcement is sent).
    assert_eq!(resolve(client, VIP4)?, a.mac("eth0"));
    assert_eq!(resolve(client, VIP6)?, a.mac("eth0"));
    assert!(
        a.drained.try_recv().is_err(),
        "drain must wait for a successor"
    );
    assert_eq!(a.counter(gratuitous, "eth0", Protocol::Arp), grat);

    let takeover = Instant::now();
    b.set_plan(&all(&[VIP4, VIP6]));
    let drained = a
        .drained
        .recv_timeout(DEADLINE)
        .context("drain ended after the successor claimed both IPs")?;
    assert!(drained.duration_since(takeover) < BURST_DEADLINE);
    assert!(a.announcing().is_empty());
    wait_client_entry(client, VIP4, b.mac("eth0"), BURST_DEADLINE)?;
    Ok(())
}

#[test]
fn a_drain_without_successor_ends_when_the_linger_passes() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a"])?;
    let linger = Duration::from_millis(800);
    let a = Node::start(
        lan.host("node-a"),
        AnnouncerSettings {
            linger,
            ..settings()
        },
    )?;
    a.set_plan(&all(&[VIP4]));
    a.wait_announcing(&[(VIP4, &["eth0"])], DEADLINE)?;
    let start = Instant::now();
    a.drain()?;
    let drained = a.drained.recv_timeout(DEADLINE).context("drain ended")?;
    let took = drained.duration_since(start);
    assert!(
        took >= linger && took < linger + Duration::from_secs(2),
        "{took:?}"
    );
    assert!(a.announcing().is_empty());
    Ok(())
}

#[test]
fn malformed_frames_are_counted_and_the_responder_keeps_answering() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a"])?;
    let client = lan.host("client");
    let a = Node::start(lan.host("node-a"), settings())?;
    a.set_plan(&all(&[VIP4, VIP6]));
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;
    let me = mac(client.mac("eth0"));
    let IpAddr::V6(vip6) = ip(VIP6) else {
        unreachable!()
    };

    // ARP: cut short, an unknown operation, IPv6-sized protocol addresses.
    let IpAddr::V4(vip4) = ip(VIP4) else {
        unreachable!()
    };
    let request = ArpFrame {
        eth_destination: Mac::BROADCAST,
        eth_source: me,
        operation: ferrolb_speaker::layer2::arp::Operation::Request,
        sender_mac: me,
        sender_ip: client.ipv4,
        target_mac: Mac::ZERO,
        target_ip: vip4,
    }
    .encode();
    let mut rarp = request;
    rarp[20..22].copy_from_slice(&[0, 3]);
    let mut wide = request;
    wide[19] = 16;
    send_from_client(
        client,
        false,
        vec![request[..30].to_vec(), rarp.to_vec(), wide.to_vec()],
    )?;

    // NDP: routed (hop limit 64), a bad checksum, a zero-length option with a good checksum.
    let group = solicited_node(vip6);
    let ns = Solicitation {
        target: vip6,
        source_mac: Some(me),
    }
    .encode(client.ipv6, group);
    let frame = |hop_limit: u8, icmp: &[u8]| {
        ipv6_frame(
            multicast_mac(group),
            me,
            client.ipv6,
            group,
            hop_limit,
            icmp,
        )
    };
    let mut bad_sum = ns.clone();
    bad_sum[2] ^= 0xff;
    let mut bad_option = ns.clone();
    bad_option[25] = 0;
    bad_option[2..4].copy_from_slice(&[0, 0]);
    let sum = checksum(client.ipv6, group, &bad_option);
    bad_option[2..4].copy_from_slice(&sum.to_be_bytes());
    send_from_client(
        client,
        true,
        vec![
            frame(64, &ns),
            frame(255, &bad_sum),
            frame(255, &bad_option),
        ],
    )?;

    wait_until("A counts every malformed frame", DEADLINE, || {
        Ok(a.counter(malformed, "eth0", Protocol::Arp) == 3
            && a.counter(malformed, "eth0", Protocol::Ndp) == 3)
    })?;
    assert_eq!(
        a.counter(replies, "eth0", Protocol::Ndp),
        0,
        "none was answered"
    );
    assert_eq!(resolve(client, VIP4)?, a.mac("eth0"));
    assert_eq!(resolve(client, VIP6)?, a.mac("eth0"));
    Ok(())
}
