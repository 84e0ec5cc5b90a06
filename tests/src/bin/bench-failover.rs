//! Layer-2 failover benchmark: how long a LoadBalancer IP stops answering when the node that
//! announces it dies (its speaker SIGKILLed and its data path gone at the same instant), loses
//! its link, or has its speaker stopped gracefully (SIGTERM, the node still up).
//!
//! Three node namespaces run the real speaker; every node answers UDP on the VIP (the stand-in
//! for kube-proxy plus a pod; the VIP sits on `lo` with `arp_ignore=1`, so only the speaker
//! answers ARP). A client on the LAN sends a request every 10 ms. For each trial the gap is the
//! time between the last answer from the old node and the first answer from the new one; lost
//! requests are counted too. After each trial the node is restored and the IP settles back.
//!
//! Prints a Markdown section on stdout. Needs root. Usage:
//! `bench-failover [--trials 20]` (tests/bench/failover.sh runs it and updates the docs).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use ferrolb_tests::l2cluster::{L2Cluster, TestService, failover_gap};

const INTERVAL: Duration = Duration::from_millis(10);
const SETTLE: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Kill,
    LinkDown,
    Term,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Self::Kill => "node death (speaker SIGKILL, node stops answering)",
            Self::LinkDown => "link down on the owner",
            Self::Term => "speaker SIGTERM (graceful)",
        }
    }
}

struct Trial {
    gap: Option<Duration>,
    lost: usize,
    sent: usize,
}

fn main() -> anyhow::Result<()> {
    let mut trials = 20usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--trials" => {
                trials = args
                    .next()
                    .context("--trials needs a number")?
                    .parse()
                    .context("--trials needs a number")?;
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if !ferrolb_tests::netns::is_root() {
        bail!("needs root (network namespaces)");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(trials))
}

async fn run(trials: usize) -> anyhow::Result<()> {
    let mut cluster = L2Cluster::start(3, &[]).await?;
    cluster.wait_speakers_ready(SETTLE).await?;
    let vip: IpAddr = "192.0.2.210".parse()?;
    cluster
        .create_service(&TestService::new("bench", &["192.0.2.210"], "node-1"))
        .await?;
    cluster.start_echo(vip)?;
    cluster.resolve(vip, SETTLE).await?;
    let mut results: Vec<(Mode, Vec<Trial>)> = Vec::new();
    for mode in [Mode::Kill, Mode::LinkDown, Mode::Term] {
        let mut done = Vec::new();
        for i in 0..trials {
            let trial = trial(&mut cluster, vip, mode)
                .await
                .with_context(|| format!("{mode:?} trial {i}"))?;
            eprintln!(
                "{mode:?} {i}: gap {:?}, lost {}/{}",
                trial.gap, trial.lost, trial.sent
            );
            done.push(trial);
        }
        results.push((mode, done));
    }
    print!("{}", report(&results, trials));
    Ok(())
}

/// The owner now, from the client's point of view (the MAC its neighbour entry holds).
async fn current_owner(cluster: &L2Cluster, vip: IpAddr) -> anyhow::Result<String> {
    let mac = cluster.resolve(vip, SETTLE).await?;
    cluster
        .node_with_mac(&mac)
        .ok_or_else(|| anyhow!("{vip} resolves to {mac}, no node's MAC"))
}

async fn trial(cluster: &mut L2Cluster, vip: IpAddr, mode: Mode) -> anyhow::Result<Trial> {
    let all = cluster.nodes().to_vec();
    // Settled: the client's entry names the node the election picks with everyone live.
    let expected = cluster
        .expected_owner(vip, &all)
        .await?
        .context("nobody elected")?;
    cluster
        .wait_neighbour_mac(vip, &cluster.mac(&expected), SETTLE)
        .await?;
    let old = current_owner(cluster, vip).await?;
    let live: Vec<String> = all.iter().filter(|n| **n != old).cloned().collect();
    let next = cluster
        .expected_owner(vip, &live)
        .await?
        .context("nobody elected after the loss")?;

    let prober = cluster.start_prober(vip, INTERVAL)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    match mode {
        Mode::Kill => {
            // The node dies: its speaker and its data path at once.
            cluster.set_node_answers(&old, vip, false)?;
            cluster.speaker(&old).context("owner's speaker")?.kill();
        }
        Mode::Term => {
            let speaker = cluster.speaker(&old).context("owner's speaker")?;
            speaker.terminate(Duration::from_secs(10))?;
        }
        Mode::LinkDown => cluster.host(&old).ns.link_down("eth0")?,
    }
    let moved = cluster
        .wait_neighbour_mac(vip, &cluster.mac(&next), Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let probes = prober.finish()?;
    // Restore before judging, so a failed trial leaves the cluster usable.
    match mode {
        Mode::Kill => {
            cluster.set_node_answers(&old, vip, true)?;
            cluster.start_speaker(&old)?;
        }
        Mode::Term => cluster.start_speaker(&old)?,
        Mode::LinkDown => cluster.host(&old).ns.link_up("eth0")?,
    }
    moved?;
    let gap = failover_gap(&probes, &old).map(|(_, gap)| gap);
    // Requests sent while the link was down to an unreachable owner count as lost too.
    let lost = probes.iter().filter(|p| p.answer.is_none()).count();
    Ok(Trial {
        gap,
        lost,
        sent: probes.len(),
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn report(results: &[(Mode, Vec<Trial>)], trials: usize) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Three nodes on one LAN bridge, each running `ferrolb-speaker` (membership probe period \
         100 ms, suspicion 400 ms); the client sends a UDP request to the VIP every \
         {} ms. Gap = last answer from the old node → first answer from the new one. {trials} \
         trials per row.\n\n",
        INTERVAL.as_millis()
    ));
    out.push_str(
        "| event | p50 gap | p99 gap | max gap | requests lost (median / max per trial) |\n",
    );
    out.push_str("|---|---|---|---|---|\n");
    for (mode, trials) in results {
        let mut gaps: Vec<Duration> = trials.iter().filter_map(|t| t.gap).collect();
        gaps.sort();
        let mut lost: Vec<usize> = trials.iter().map(|t| t.lost).collect();
        lost.sort_unstable();
        let median_lost = lost.get(lost.len() / 2).copied().unwrap_or(0);
        let max_lost = lost.last().copied().unwrap_or(0);
        let sent: usize = trials.iter().map(|t| t.sent).sum::<usize>() / trials.len().max(1);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {median_lost} / {max_lost} (of ~{sent}) |\n",
            mode.label(),
            ms(percentile(&gaps, 50.0)),
            ms(percentile(&gaps, 99.0)),
            ms(gaps.last().copied().unwrap_or_default()),
        ));
    }
    out
}
