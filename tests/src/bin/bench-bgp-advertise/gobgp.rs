//! The receiving and sending GoBGPs' side of the benchmark, through the `gobgp` CLI: waiting
//! for the API, reading the RIB and a neighbor's counters, following a session's state as it
//! changes, and the MRT dump that loads the sender's routes.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use ferrolb_tests::netns::Netns;
use ferrolb_tests::routers::Router;
use ipnet::{IpNet, Ipv4Net};

/// GoBGP's `session_state` for Established.
const ESTABLISHED: i64 = 6;

/// Waits until the router's API answers.
pub(crate) fn wait_api(router: &Router) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match router.gobgp(&["global"]) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context(format!("gobgpd's API\n{}", router.describe())));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Every prefix in the router's IPv4 global RIB.
pub(crate) fn global_rib(router: &Router) -> anyhow::Result<BTreeSet<IpNet>> {
    let json = router.gobgp(&["global", "rib", "-a", "ipv4", "-j"])?;
    let v: serde_json::Value = serde_json::from_str(&json).context("gobgp global rib -j")?;
    let Some(prefixes) = v.as_object() else {
        return Ok(Default::default());
    };
    prefixes
        .keys()
        .map(|k| k.parse().with_context(|| format!("prefix {k}")))
        .collect()
}

/// Polls `gobgp neighbor <peer> -j` back to back until `n` IPv4 prefixes are accepted from
/// `peer`, for at most `timeout`. Returns when that poll was made and every poll period.
pub(crate) fn wait_accepted(
    receiver: &Router,
    peer: IpAddr,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<(Instant, Vec<Duration>)> {
    let peer = peer.to_string();
    let start = Instant::now();
    let mut polls = Vec::new();
    let mut last = Instant::now();
    loop {
        // The time of a poll is when it was asked: the answer is at least that fresh.
        let asked = Instant::now();
        let json = receiver.gobgp(&["neighbor", &peer, "-j"])?;
        polls.push(asked - last);
        last = asked;
        let v: serde_json::Value = serde_json::from_str(&json).context("gobgp neighbor -j")?;
        if accepted_ipv4(&v) >= n as u64 {
            polls.remove(0);
            return Ok((asked, polls));
        }
        if start.elapsed() > timeout {
            bail!(
                "{peer}: {} of {n} prefixes after {timeout:?}\n{}",
                accepted_ipv4(&v),
                receiver.describe()
            );
        }
    }
}

fn accepted_ipv4(neighbor: &serde_json::Value) -> u64 {
    neighbor["afi_safis"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["state"]["family"]["afi"].as_u64() == Some(1))
        .filter_map(|f| f["state"]["accepted"].as_u64())
        .sum()
}

/// The UPDATE messages the receiver counted from `peer`, once nothing more arrives (an
/// End-of-RIB may follow the last route).
pub(crate) fn settled_updates(receiver: &Router, peer: IpAddr) -> anyhow::Result<u64> {
    let peer = peer.to_string();
    let count = || -> anyhow::Result<u64> {
        let json = receiver.gobgp(&["neighbor", &peer, "-j"])?;
        let v: serde_json::Value = serde_json::from_str(&json).context("gobgp neighbor -j")?;
        Ok(v["state"]["messages"]["received"]["update"]
            .as_u64()
            .unwrap_or(0))
    };
    let mut last = count()?;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = count()?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
}

/// `gobgp monitor neighbor <peer> -j` on the receiver: each state change of the session, with
/// the instant its line arrived.
pub(crate) struct Monitor {
    child: Child,
    events: mpsc::Receiver<(i64, Instant)>,
}

impl Monitor {
    pub(crate) fn start(ns: &Netns, peer: IpAddr) -> anyhow::Result<Self> {
        let peer = peer.to_string();
        let mut cmd = ns.command("gobgp");
        cmd.args([
            "-u",
            "127.0.0.1",
            "-p",
            "50051",
            "monitor",
            "neighbor",
            &peer,
            "-j",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        let mut child = cmd.spawn().context("gobgp monitor neighbor")?;
        let stdout = child.stdout.take().context("monitor stdout")?;
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let at = Instant::now();
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let state = &v["state"]["session_state"];
                let state = state
                    .as_i64()
                    .or_else(|| (state.as_str() == Some("established")).then_some(ESTABLISHED))
                    .unwrap_or(0);
                if tx.send((state, at)).is_err() {
                    break;
                }
            }
        });
        // The stream reports changes only: give it time to subscribe before the peer moves.
        // `established` checks that it saw the states before Established.
        std::thread::sleep(Duration::from_millis(500));
        Ok(Self { child, events })
    }

    /// When the receiver reported Established, having reported an earlier state first (else
    /// the subscription came too late to trust the time).
    pub(crate) fn established(&self) -> anyhow::Result<Instant> {
        let mut before = false;
        while let Ok((state, at)) = self.events.recv_timeout(Duration::from_secs(5)) {
            if state == ESTABLISHED {
                if !before {
                    bail!("the monitor saw Established first: subscribed too late");
                }
                return Ok(at);
            }
            before = true;
        }
        Err(anyhow!("the monitor never reported Established"))
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An MRT TABLE_DUMP_V2 dump (RFC 6396 §4.3) holding one path per prefix from `peer`: ORIGIN
/// IGP, an empty AS_PATH and NEXT_HOP `peer` — what `gobgp mrt inject global` loads.
///
/// ```text
/// record:           Timestamp (4) | Type 13 (2) | Subtype (2) | Length (4) | Message
/// PEER_INDEX_TABLE: Collector ID (4) | View Name Length (2) = 0 | Peer Count (2) = 1 |
///                   Peer Type (1) = 2 (4-octet AS, IPv4) | Peer BGP ID (4) | Peer IP (4) | AS (4)
/// RIB_IPV4_UNICAST: Sequence (4) | Prefix Length (1) | Prefix (var) | Entry Count (2) = 1 |
///                   Peer Index (2) | Originated Time (4) | Attribute Length (2) | Attributes
/// ```
pub(crate) fn mrt_dump(peer: Ipv4Addr, asn: u32, prefixes: &[Ipv4Net]) -> Vec<u8> {
    const TABLE_DUMP_V2: u16 = 13;
    const PEER_INDEX_TABLE: u16 = 1;
    const RIB_IPV4_UNICAST: u16 = 2;
    fn record(out: &mut Vec<u8>, subtype: u16, message: &[u8]) {
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&TABLE_DUMP_V2.to_be_bytes());
        out.extend_from_slice(&subtype.to_be_bytes());
        let len = u32::try_from(message.len()).expect("a short MRT message");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(message);
    }
    let mut out = Vec::new();
    let mut index = Vec::new();
    index.extend_from_slice(&peer.octets());
    index.extend_from_slice(&0u16.to_be_bytes());
    index.extend_from_slice(&1u16.to_be_bytes());
    index.push(2);
    index.extend_from_slice(&peer.octets());
    index.extend_from_slice(&peer.octets());
    index.extend_from_slice(&asn.to_be_bytes());
    record(&mut out, PEER_INDEX_TABLE, &index);
    let [a, b, c, d] = peer.octets();
    let attributes = [
        0x40, 1, 1, 0, // ORIGIN IGP
        0x40, 2, 0, // AS_PATH, empty
        0x40, 3, 4, a, b, c, d, // NEXT_HOP
    ];
    for (sequence, prefix) in prefixes.iter().enumerate() {
        let mut rib = Vec::new();
        rib.extend_from_slice(&(sequence as u32).to_be_bytes());
        let len = prefix.prefix_len();
        rib.push(len);
        rib.extend_from_slice(&prefix.network().octets()[..usize::from(len).div_ceil(8)]);
        rib.extend_from_slice(&1u16.to_be_bytes());
        rib.extend_from_slice(&0u16.to_be_bytes());
        rib.extend_from_slice(&0u32.to_be_bytes());
        rib.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
        rib.extend_from_slice(&attributes);
        record(&mut out, RIB_IPV4_UNICAST, &rib);
    }
    out
}
