//! Speaker flaps benchmark (issue #13, item 7): does an IP move away from a node that is alive?
//!
//! Three node namespaces run the real speaker, as in `bench-failover`; every node answers UDP on
//! the VIP and a client on the LAN sends a request every 10 ms. Under each fault, for
//! `--seconds`:
//!
//! - **loss**: every node's kernel drops that share of the membership datagrams it receives
//!   (an nftables rule with a random number per packet, in the node's namespace);
//! - **starved**: the announcing node's speaker is frozen (SIGSTOP) for 300 ms at random
//!   intervals of 0.5–1.5 s, as a CPU-starved node or a stop-the-world pause would be.
//!
//! A **false failover** is a change of the answering node while no node was killed; the speakers'
//! own count of members they saw declared dead is reported too. Then, under the same fault, the
//! announcing node dies `--kills` times (its speaker SIGKILLed and its data path gone at once;
//! when starving, a third node is the starved one) and the gap between the last answer from the
//! old node and the first from the new one is measured.
//!
//! The kernel of the benchmark machine may lack `sch_netem` (it does here), so jitter is covered
//! by the membership's simulation (`speaker/src/membership/tests/flap_tests.rs`), not here.
//!
//! Prints a Markdown section on stdout. Needs root. Usage:
//! `bench-flaps [--seconds 600] [--kills 20]` (tests/bench/flaps.sh runs it and updates the docs).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use ferrolb_tests::l2cluster::{L2Cluster, Probe, TestService, failover_gap, http_get};
use ferrolb_tests::stats::{ms, percentile};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const INTERVAL: Duration = Duration::from_millis(10);
const SETTLE: Duration = Duration::from_secs(30);
const MEMBERSHIP_PORT: u16 = 7947;
const VIP: &str = "192.0.2.210";

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Percent of membership datagrams dropped on receipt, on every node.
    Loss(u8),
    /// One node's speaker frozen for 300 ms at random intervals of 0.5–1.5 s.
    Starved,
}

impl Fault {
    fn label(self) -> String {
        match self {
            Self::Loss(p) => format!("{p}% membership datagram loss on every node"),
            Self::Starved => "announcing node's speaker frozen 300 ms every 0.5–1.5 s".to_owned(),
        }
    }
}

struct Args {
    seconds: u64,
    kills: usize,
}

struct Row {
    fault: Fault,
    seconds: u64,
    sent: usize,
    lost: usize,
    false_failovers: usize,
    deaths_seen: u64,
    suspicions: u64,
    gaps: Vec<Duration>,
    failed_kills: usize,
}

fn main() -> anyhow::Result<()> {
    let mut parsed = Args {
        seconds: 600,
        kills: 20,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => parsed.seconds = value()?.parse().context("--seconds: a number")?,
            "--kills" => parsed.kills = value()?.parse().context("--kills: a number")?,
            other => bail!("unknown argument {other}"),
        }
    }
    if !ferrolb_tests::netns::is_root() {
        bail!("needs root (network namespaces)");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(&parsed))
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for fault in [Fault::Loss(5), Fault::Loss(20), Fault::Starved] {
        eprintln!("== {}", fault.label());
        let row = measure(fault, args).await.with_context(|| fault.label())?;
        rows.push(row);
    }
    print!("{}", table(&rows));
    Ok(())
}

async fn measure(fault: Fault, args: &Args) -> anyhow::Result<Row> {
    let mut cluster = L2Cluster::start(3, &[]).await?;
    cluster.wait_speakers_ready(SETTLE).await?;
    let vip: IpAddr = VIP.parse()?;
    cluster
        .create_service(&TestService::new("flaps", &[VIP], "node-1"))
        .await?;
    cluster.start_echo(vip)?;
    cluster.settle_owner(vip, SETTLE).await?;
    if let Fault::Loss(percent) = fault {
        for node in cluster.nodes().to_vec() {
            drop_membership_datagrams(&cluster, &node, percent)?;
        }
    }
    let owner = cluster.owner_now(vip, SETTLE).await?;
    let (deaths_before, suspicions_before) = membership_counts(&cluster)?;

    // The steady part: nobody dies, so any move of the IP is a false failover.
    let prober = cluster.start_prober(vip, INTERVAL)?;
    let starver = match fault {
        Fault::Starved => Some(Starver::start(speaker_pid(&mut cluster, &owner)?)),
        Fault::Loss(_) => None,
    };
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    if let Some(starver) = starver {
        starver.stop()?;
    }
    let probes = prober.finish()?;
    let (deaths_after, suspicions_after) = membership_counts(&cluster)?;
    let false_failovers = moves(&probes);
    eprintln!(
        "{} s: {} requests, {} lost, {} moves of the IP, {} deaths seen",
        args.seconds,
        probes.len(),
        probes.iter().filter(|p| p.answer.is_none()).count(),
        false_failovers,
        deaths_after - deaths_before
    );

    let mut gaps = Vec::new();
    let mut failed_kills = 0;
    for k in 0..args.kills {
        match kill_owner(&mut cluster, vip, fault).await? {
            Some(gap) => {
                eprintln!("kill {k}: gap {}", ms(gap));
                gaps.push(gap);
            }
            None => {
                eprintln!("kill {k}: the IP did not move in time");
                failed_kills += 1;
            }
        }
    }
    Ok(Row {
        fault,
        seconds: args.seconds,
        sent: probes.len(),
        lost: probes.iter().filter(|p| p.answer.is_none()).count(),
        false_failovers,
        deaths_seen: deaths_after - deaths_before,
        suspicions: suspicions_after - suspicions_before,
        gaps,
        failed_kills,
    })
}

/// How often the answering node changed, in the order the requests were sent.
fn moves(probes: &[Probe]) -> usize {
    let answers: Vec<&str> = probes
        .iter()
        .filter_map(|p| p.answer.as_ref().map(|(n, _)| n.as_str()))
        .collect();
    answers.windows(2).filter(|w| w[0] != w[1]).count()
}

/// Drops `percent` % of the membership datagrams `node` receives.
fn drop_membership_datagrams(cluster: &L2Cluster, node: &str, percent: u8) -> anyhow::Result<()> {
    let rules = format!(
        "table inet ferrolb_flaps {{\n  chain input {{\n    type filter hook input priority 0;\n    \
         udp dport {MEMBERSHIP_PORT} numgen random mod 100 < {percent} drop\n  }}\n}}\n"
    );
    let file = cluster.dir().join(format!("flaps-{node}.nft"));
    std::fs::write(&file, rules)?;
    let path = file.to_str().context("a UTF-8 path")?;
    cluster.host(node).ns.exec(&["nft", "-f", path])
}

fn speaker_pid(cluster: &mut L2Cluster, node: &str) -> anyhow::Result<u32> {
    Ok(cluster
        .speaker(node)
        .with_context(|| format!("the speaker of {node}"))?
        .pid())
}

/// Every speaker's count of members seen declared dead, and of suspicions raised, summed.
fn membership_counts(cluster: &L2Cluster) -> anyhow::Result<(u64, u64)> {
    let (mut deaths, mut suspicions) = (0, 0);
    for node in cluster.nodes() {
        let (addr, _) = cluster
            .speaker_ready_endpoint(node)
            .with_context(|| format!("no speaker on {node}"))?;
        let text = cluster
            .host(node)
            .ns
            .run(move || http_get(&addr, "/metrics"))??;
        deaths += counter(&text, "ferrolb_speaker_membership_deaths_total")?;
        suspicions += counter(&text, "ferrolb_speaker_membership_suspicions_total")?;
    }
    Ok((deaths, suspicions))
}

fn counter(text: &str, name: &str) -> anyhow::Result<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .ok_or_else(|| anyhow!("{name} not in the metrics"))
}

/// Freezes a process for 300 ms at random intervals of 0.5–1.5 s, on its own thread, until
/// stopped (and leaves it running).
struct Starver {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<usize>>,
}

impl Starver {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let pid = Pid::from_raw(i32::try_from(pid)?);
            let mut state = u64::from(pid.as_raw().unsigned_abs()) | 1;
            let mut bursts = 0;
            while !stopping.load(Ordering::SeqCst) {
                // xorshift: a gap of 500–1500 ms.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                std::thread::sleep(Duration::from_millis(500 + state % 1000));
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                kill(pid, Signal::SIGSTOP)?;
                std::thread::sleep(Duration::from_millis(300));
                kill(pid, Signal::SIGCONT)?;
                bursts += 1;
            }
            Ok(bursts)
        });
        Self { stop, thread }
    }

    fn stop(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        let bursts = self
            .thread
            .join()
            .map_err(|_| anyhow!("the starving thread panicked"))??;
        eprintln!("{bursts} freezes of 300 ms");
        Ok(())
    }
}

/// Kills the announcing node (speaker and data path at once) under `fault` and returns the gap,
/// or `None` if the IP did not move within 10 s. Restores the node afterwards.
async fn kill_owner(
    cluster: &mut L2Cluster,
    vip: IpAddr,
    fault: Fault,
) -> anyhow::Result<Option<Duration>> {
    let (old, next) = cluster.owner_and_successor(vip, SETTLE).await?;
    let live: Vec<String> = cluster
        .nodes()
        .iter()
        .filter(|n| **n != old)
        .cloned()
        .collect();
    let starver = match fault {
        Fault::Starved => {
            let third = live
                .iter()
                .find(|n| **n != next)
                .context("a third node")?
                .clone();
            Some(Starver::start(speaker_pid(cluster, &third)?))
        }
        Fault::Loss(_) => None,
    };
    let prober = cluster.start_prober(vip, INTERVAL)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.set_node_answers(&old, vip, false)?;
    cluster.speaker(&old).context("owner's speaker")?.kill();
    let moved = cluster
        .wait_neighbour_mac(vip, &cluster.mac(&next), Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let probes = prober.finish()?;
    if let Some(starver) = starver {
        starver.stop()?;
    }
    cluster.set_node_answers(&old, vip, true)?;
    cluster.start_speaker(&old)?;
    Ok(match moved {
        Ok(()) => failover_gap(&probes, &old).map(|(_, gap)| gap),
        Err(_) => None,
    })
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| fault | steady run | requests (lost) | false failovers | deaths seen by speakers | \
         suspicions | node deaths | gap p50 | gap p99 | gap max |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let mut gaps = r.gaps.clone();
        gaps.sort();
        let cell = |p: f64| {
            if gaps.is_empty() {
                "–".to_owned()
            } else {
                ms(percentile(&gaps, p))
            }
        };
        let failed = if r.failed_kills > 0 {
            format!(" ({} did not move in 10 s)", r.failed_kills)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "| {} | {} s | {} ({}) | **{}** | {} | {} | {}{} | {} | {} | {} |\n",
            r.fault.label(),
            r.seconds,
            r.sent,
            r.lost,
            r.false_failovers,
            r.deaths_seen,
            r.suspicions,
            r.gaps.len() + r.failed_kills,
            failed,
            cell(0.5),
            cell(0.99),
            cell(1.0),
        ));
    }
    out
}
