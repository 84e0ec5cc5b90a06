//! Traffic through a cluster's LoadBalancer IPs: echo responders on the nodes standing in for
//! kube-proxy and a pod, a client that sends a request every few milliseconds (for failover
//! gaps and lost requests), and a rogue gratuitous ARP.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{Context as _, anyhow};

use super::{CLIENT, L2Cluster};
use crate::netns::Netns;

/// The UDP port of the VIP echo responders.
pub const ECHO_PORT: u16 = 7777;

/// One request of a [`Prober`] run: when it was sent and which node answered, when.
#[derive(Clone, Debug)]
pub struct Probe {
    /// Sequence number.
    pub seq: u32,
    /// When it was sent (since the run started).
    pub sent: Duration,
    /// The answering node and when its answer arrived, if it did.
    pub answer: Option<(String, Duration)>,
}

impl L2Cluster {
    /// Makes every node accept traffic for `ip` and answer UDP on [`ECHO_PORT`] with its name —
    /// the stand-in for kube-proxy's rules plus a pod. The IP goes on `lo` (the LAN interface
    /// has `arp_ignore=1`), so only the speaker answers ARP for it. The responder threads run
    /// until the cluster (its namespaces) goes away.
    pub fn start_echo(&self, ip: IpAddr) -> anyhow::Result<()> {
        for node in &self.nodes {
            let ns = &self.lan.host(node).ns;
            let prefix = if ip.is_ipv4() { "32" } else { "128" };
            ns.ip(&["addr", "add", &format!("{ip}/{prefix}"), "dev", "lo"])?;
            let name = node.clone();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            ns.spawn(&format!("echo-{node}"), move || {
                let socket = match UdpSocket::bind(SocketAddr::new(ip, ECHO_PORT)) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut buf = [0u8; 64];
                while let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let mut reply = buf[..n.min(4)].to_vec();
                    reply.extend_from_slice(name.as_bytes());
                    let _ = socket.send_to(&reply, from);
                }
            })?;
            ready_rx
                .recv()
                .map_err(|_| anyhow!("echo responder on {node} did not start"))?
                .with_context(|| format!("echo responder on {node}"))?;
        }
        Ok(())
    }

    /// Makes `node` stop (or resume) accepting traffic for `ip`, as if its data path died with
    /// it: the address leaves (or rejoins) its `lo`.
    pub fn set_node_answers(&self, node: &str, ip: IpAddr, answers: bool) -> anyhow::Result<()> {
        let prefix = if ip.is_ipv4() { "32" } else { "128" };
        let verb = if answers { "add" } else { "del" };
        self.lan
            .host(node)
            .ns
            .ip(&["addr", verb, &format!("{ip}/{prefix}"), "dev", "lo"])
            .map(drop)
    }

    /// Starts sending a request to `ip` every `interval` from the client; stop it with
    /// [`Prober::finish`].
    pub fn start_prober(&self, ip: IpAddr, interval: Duration) -> anyhow::Result<Prober> {
        Prober::start(&self.lan.host(CLIENT).ns, ip, interval)
    }
}

/// A running request loop from the client.
#[derive(Debug)]
pub struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: crate::netns::NsThread<std::io::Result<Vec<Probe>>>,
}

impl Prober {
    /// Starts sending a request to `ip` port [`ECHO_PORT`] every `interval` from namespace `ns`.
    /// A responder answers with the request's first 4 bytes (its sequence number) followed by
    /// its name.
    pub fn start(ns: &Netns, ip: IpAddr, interval: Duration) -> anyhow::Result<Self> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = ns.spawn("prober", move || probe_loop(ip, interval, &stopping))?;
        Ok(Self { stop, thread })
    }

    /// Stops sending, waits briefly for late answers, and returns every request.
    pub fn finish(self) -> anyhow::Result<Vec<Probe>> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(self.thread.join()??)
    }
}

fn probe_loop(
    ip: IpAddr,
    interval: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> std::io::Result<Vec<Probe>> {
    use std::sync::atomic::Ordering;
    let bind: SocketAddr = if ip.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(bind)?;
    socket.connect(SocketAddr::new(ip, ECHO_PORT))?;
    socket.set_read_timeout(Some(Duration::from_millis(1)))?;
    let started = std::time::Instant::now();
    let mut probes: Vec<Probe> = Vec::new();
    let mut next = started;
    let mut stop_at: Option<std::time::Instant> = None;
    let mut buf = [0u8; 128];
    loop {
        let now = std::time::Instant::now();
        if stop_at.is_none() && stop.load(Ordering::SeqCst) {
            // Late answers still count for a little while.
            stop_at = Some(now + Duration::from_millis(200));
        }
        if stop_at.is_some_and(|t| now >= t) {
            return Ok(probes);
        }
        if stop_at.is_none() && now >= next {
            let seq = u32::try_from(probes.len()).unwrap_or(u32::MAX);
            // A send error (no neighbour yet, EHOSTUNREACH) is a lost request, not a failure.
            let _ = socket.send(&seq.to_be_bytes());
            probes.push(Probe {
                seq,
                sent: now - started,
                answer: None,
            });
            next += interval;
        }
        match socket.recv(&mut buf) {
            Ok(n) if n >= 4 => {
                let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                let node = String::from_utf8_lossy(&buf[4..n]).into_owned();
                if let Some(p) = probes.get_mut(seq as usize)
                    && p.answer.is_none()
                {
                    p.answer = Some((node, started.elapsed()));
                }
            }
            _ => {}
        }
    }
}

/// The gap between the last answer from `old` and the first answer from another node after
/// it, if both happened.
pub fn failover_gap(probes: &[Probe], old: &str) -> Option<(String, Duration)> {
    let mut answers: Vec<(&str, Duration)> = probes
        .iter()
        .filter_map(|p| p.answer.as_ref().map(|(n, t)| (n.as_str(), *t)))
        .collect();
    answers.sort_by_key(|(_, t)| *t);
    let last_old = answers.iter().rposition(|(n, _)| *n == old)?;
    let (new, at) = answers[last_old + 1..].iter().find(|(n, _)| *n != old)?;
    Some(((*new).to_owned(), at.saturating_sub(answers[last_old].1)))
}

/// Sends a gratuitous ARP claiming `ip` (IPv4) with `mac` out of `ifname` — a rogue responder.
/// Call it on a thread inside the sending host's namespace ([`crate::netns::Netns::run`]).
pub fn send_gratuitous_arp(ifname: &str, ip: IpAddr, mac: &str) -> anyhow::Result<()> {
    use ferrolb_speaker::layer2::arp::{ArpFrame, Mac};
    let IpAddr::V4(ip) = ip else {
        return Err(anyhow!("{ip} is not IPv4"));
    };
    let bytes: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad MAC {mac}"))?;
    let mac = Mac(bytes.try_into().map_err(|_| anyhow!("bad MAC length"))?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let socket =
            ferrolb_speaker::sys::PacketSocket::arp(ferrolb_speaker::sys::ifindex(ifname)?)?;
        for frame in ArpFrame::gratuitous(ip, mac) {
            socket.send(&frame.encode()).await?;
        }
        Ok::<_, std::io::Error>(())
    })?;
    Ok(())
}
