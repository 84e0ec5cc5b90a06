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
//! With `--metallb <bin dir> --metallb-crds <dir>` (`tests/setup/metallb.sh`'s two lines), the
//! same events and trials then run on a fresh cluster whose nodes run MetalLB's own speaker
//! (v0.16, memberlist defaults), measured the same way; the report gets a table per speaker and
//! the ratio of the medians. A trial whose IP does not move in time is reported as failed.
//!
//! Prints a Markdown section on stdout. Needs root. Usage:
//! `bench-failover [--trials 20] [--metallb DIR --metallb-crds DIR] [--no-ferrolb] [--plot SVG]`
//! (tests/bench/failover.sh runs it and updates the docs).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use ferrolb_tests::l2cluster::metallb::MetallbSpeakers;
use ferrolb_tests::l2cluster::{L2Cluster, TestService, failover_gap};
use ferrolb_tests::plot;
use ferrolb_tests::stats::ms;

const INTERVAL: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Kill,
    LinkDown,
    Term,
}

const MODES: [Mode; 3] = [Mode::Kill, Mode::LinkDown, Mode::Term];

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Self::Kill => "node death (speaker SIGKILL, node stops answering)",
            Self::LinkDown => "link down on the owner",
            Self::Term => "speaker SIGTERM (graceful)",
        }
    }
}

/// One speaker implementation under test, and how long to wait for it.
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// How long the IP may take to move before the trial counts as failed.
    move_timeout: Duration,
    /// How long the cluster may take to come back to its steady state between trials.
    settle: Duration,
}

const FERROLB: Timing = Timing {
    move_timeout: Duration::from_secs(10),
    settle: Duration::from_secs(30),
};

/// MetalLB's memberlist (defaults) needs ~4–6 s to declare a node dead, and a healed partition
/// can take a push-pull period (30 s) or a rejoin tick (60 s) to merge again.
const METALLB: Timing = Timing {
    move_timeout: Duration::from_secs(30),
    settle: Duration::from_secs(120),
};

struct Trial {
    /// The gap, if the IP moved.
    gap: Option<Duration>,
    lost: usize,
    sent: usize,
    /// Why the trial failed (the IP did not move in time, or no other node answered).
    failure: Option<String>,
}

struct Args {
    trials: usize,
    metallb: Option<PathBuf>,
    metallb_crds: Option<PathBuf>,
    ferrolb: bool,
    /// Where to write the chart of every trial's gap.
    plot: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let mut parsed = Args {
        trials: 20,
        metallb: None,
        metallb_crds: None,
        ferrolb: true,
        plot: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--trials" => {
                parsed.trials = value()?.parse().context("--trials needs a number")?;
            }
            "--metallb" => parsed.metallb = Some(value()?.into()),
            "--metallb-crds" => parsed.metallb_crds = Some(value()?.into()),
            "--no-ferrolb" => parsed.ferrolb = false,
            "--plot" => parsed.plot = Some(value()?.into()),
            other => bail!("unknown argument {other}"),
        }
    }
    let metallb = match (&parsed.metallb, &parsed.metallb_crds) {
        (Some(bin), Some(crds)) => Some(MetallbSpeakers::new(bin, crds)?),
        (None, None) => None,
        _ => bail!("--metallb and --metallb-crds go together"),
    };
    if !ferrolb_tests::netns::is_root() {
        bail!("needs root (network namespaces)");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(parsed, metallb))
}

/// What one speaker implementation measured: per event, its trials; and why it stopped early,
/// if it did.
struct Outcome {
    results: Vec<(Mode, Vec<Trial>)>,
    stopped: Option<String>,
}

async fn run(args: Args, metallb: Option<MetallbSpeakers>) -> anyhow::Result<()> {
    let mut report = String::new();
    let mut ferrolb = None;
    let mut theirs = None;
    if args.ferrolb {
        eprintln!("== ferrolb-speaker");
        let outcome = measure(|| L2Cluster::start(3, &[]), FERROLB, args.trials).await;
        if let Some(why) = &outcome.stopped {
            // Our own speaker must not fail: no report.
            bail!("ferrolb run stopped: {why}");
        }
        report.push_str(&ferrolb_section(&outcome.results, args.trials));
        ferrolb = Some(outcome);
    }
    if let Some(metallb) = metallb {
        eprintln!("== MetalLB speaker");
        let outcome = measure(
            || L2Cluster::start_metallb(3, metallb.clone()),
            METALLB,
            args.trials,
        )
        .await;
        if let Some(why) = &outcome.stopped {
            eprintln!("MetalLB run stopped: {why}");
        }
        report.push_str(&metallb_section(&outcome, args.trials));
        if let Some(ferrolb) = &ferrolb {
            report.push_str(&ratios(&ferrolb.results, &outcome.results));
        }
        theirs = Some(outcome);
    }
    if let Some(path) = &args.plot {
        let svg = chart(ferrolb.as_ref(), theirs.as_ref(), args.trials).svg();
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    print!("{report}");
    Ok(())
}

/// Every trial's gap per event, ferrolb's row above MetalLB's (failed trials have no dot; the
/// tables count them).
fn chart(ours: Option<&Outcome>, theirs: Option<&Outcome>, trials: usize) -> plot::Strip {
    let gaps = |outcome: Option<&Outcome>, mode: Mode| -> Vec<f64> {
        outcome
            .and_then(|o| o.results.iter().find(|(m, _)| *m == mode))
            .map(|(_, t)| {
                t.iter()
                    .filter_map(|t| t.gap)
                    .map(|g| g.as_secs_f64() * 1e3)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut series = vec!["ferrolb".to_owned()];
    if theirs.is_some() {
        series.push("MetalLB v0.16".to_owned());
    }
    plot::Strip {
        title: format!("Layer-2 failover: the gap of each of {trials} trials per event"),
        axis: "gap between the old node's last answer and the new node's first (ms, log scale)"
            .into(),
        log: true,
        series,
        groups: MODES
            .iter()
            .map(|&mode| {
                let mut rows = vec![gaps(ours, mode)];
                if theirs.is_some() {
                    rows.push(gaps(theirs, mode));
                }
                (mode.label().to_owned(), rows)
            })
            .collect(),
    }
}

/// Starts a cluster and runs every event `trials` times on it. Never fails: a cluster that does
/// not start, or does not settle between trials, ends the run with the reason kept.
async fn measure<F, Fut>(start: F, timing: Timing, trials: usize) -> Outcome
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<L2Cluster>>,
{
    let mut outcome = Outcome {
        results: Vec::new(),
        stopped: None,
    };
    if let Err(e) = measure_into(start, timing, trials, &mut outcome.results).await {
        outcome.stopped = Some(format!("{e:#}"));
    }
    outcome
}

async fn measure_into<F, Fut>(
    start: F,
    timing: Timing,
    trials: usize,
    results: &mut Vec<(Mode, Vec<Trial>)>,
) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<L2Cluster>>,
{
    let mut cluster = start().await.context("starting the cluster")?;
    cluster.wait_speakers_ready(timing.settle).await?;
    let vip: IpAddr = "192.0.2.210".parse()?;
    cluster
        .create_service(&TestService::new("bench", &["192.0.2.210"], "node-1"))
        .await?;
    cluster.start_echo(vip)?;
    cluster.resolve(vip, timing.settle).await?;
    for mode in MODES {
        results.push((mode, Vec::new()));
        for i in 0..trials {
            let trial = trial(&mut cluster, vip, mode, timing)
                .await
                .with_context(|| format!("{mode:?} trial {i}"))?;
            eprintln!(
                "{mode:?} {i}: gap {:?}, lost {}/{}{}",
                trial.gap,
                trial.lost,
                trial.sent,
                trial
                    .failure
                    .as_deref()
                    .map(|f| format!(" FAILED: {f}"))
                    .unwrap_or_default()
            );
            if let Some((_, done)) = results.last_mut() {
                done.push(trial);
            }
        }
    }
    Ok(())
}

async fn trial(
    cluster: &mut L2Cluster,
    vip: IpAddr,
    mode: Mode,
    timing: Timing,
) -> anyhow::Result<Trial> {
    let (old, next) = cluster.owner_and_successor(vip, timing.settle).await?;

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
        .wait_neighbour_mac(vip, &cluster.mac(&next), timing.move_timeout)
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
    // Requests sent while the link was down to an unreachable owner count as lost too.
    let lost = probes.iter().filter(|p| p.answer.is_none()).count();
    let sent = probes.len();
    let (gap, failure) = match moved {
        Err(e) => {
            let why = format!("{:#}", e);
            let first = why.lines().next().unwrap_or_default().to_owned();
            (None, Some(first))
        }
        Ok(()) => match failover_gap(&probes, &old) {
            Some((_, gap)) => (Some(gap), None),
            None => (
                None,
                Some(format!("no answer from a node other than {old} after it")),
            ),
        },
    };
    Ok(Trial {
        gap,
        lost,
        sent,
        failure,
    })
}

/// Nearest-rank percentile of the gaps, failed trials ranking last (`None`).
fn percentile(sorted: &[Option<Duration>], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A gap cell: the time, or "failed" (> the move timeout) when the rank falls on a failed trial.
fn cell(gap: Option<Duration>, timing: Timing) -> String {
    gap.map_or_else(
        || format!("failed (> {} s)", timing.move_timeout.as_secs()),
        ms,
    )
}

/// The gaps of `trials` sorted, failed trials (`None`) last.
fn sorted_gaps(trials: &[Trial]) -> Vec<Option<Duration>> {
    let mut gaps: Vec<Option<Duration>> = trials.iter().map(|t| t.gap).collect();
    gaps.sort_by_key(|g| g.map_or((1, Duration::ZERO), |d| (0, d)));
    gaps
}

fn table(results: &[(Mode, Vec<Trial>)], timing: Timing) -> String {
    let mut out = String::new();
    out.push_str(
        "| event | trials | p50 gap | p99 gap | max gap | requests lost (median / max per trial) | failed trials |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    for (mode, trials) in results {
        if trials.is_empty() {
            continue;
        }
        let gaps = sorted_gaps(trials);
        let mut lost: Vec<usize> = trials.iter().map(|t| t.lost).collect();
        lost.sort_unstable();
        let median_lost = lost.get(lost.len() / 2).copied().unwrap_or(0);
        let max_lost = lost.last().copied().unwrap_or(0);
        let sent: usize = trials.iter().map(|t| t.sent).sum::<usize>() / trials.len().max(1);
        let failures: Vec<&str> = trials.iter().filter_map(|t| t.failure.as_deref()).collect();
        let failed = if failures.is_empty() {
            "0".to_owned()
        } else {
            format!("{} ({})", failures.len(), failures[0])
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {median_lost} / {max_lost} (of ~{sent}) | {failed} |\n",
            mode.label(),
            trials.len(),
            cell(percentile(&gaps, 50.0), timing),
            cell(percentile(&gaps, 99.0), timing),
            cell(gaps.last().copied().flatten(), timing),
        ));
    }
    out
}

fn ferrolb_section(results: &[(Mode, Vec<Trial>)], trials: usize) -> String {
    format!(
        "### ferrolb-speaker\n\nThree nodes on one LAN bridge, each running `ferrolb-speaker` \
         (membership probe period 100 ms, suspicion 400 ms); the client sends a UDP request to \
         the VIP every {} ms. Gap = last answer from the old node → first answer from the new \
         one. {trials} trials per row.\n\n{}\n",
        INTERVAL.as_millis(),
        table(results, FERROLB)
    )
}

fn metallb_section(outcome: &Outcome, trials: usize) -> String {
    let mut out = format!(
        "### MetalLB speaker (v0.16.1, built from its Go module)\n\nThe same three events and \
         {trials} trials per row on a fresh cluster whose nodes run MetalLB's own `speaker` \
         binary instead (layer 2, memberlist on the nodes' LAN addresses with its default LAN \
         settings: probe interval 1 s, suspicion multiplier 4), measured the same way in the \
         same run. A trial fails when the IP has not moved after {} s.\n\n",
        METALLB.move_timeout.as_secs()
    );
    if outcome.results.iter().any(|(_, t)| !t.is_empty()) {
        out.push_str(&table(&outcome.results, METALLB));
        out.push('\n');
    }
    if let Some(why) = &outcome.stopped {
        let first = why.lines().take(3).collect::<Vec<_>>().join(" / ");
        out.push_str(&format!(
            "**The MetalLB run stopped early** (rows above are the trials it completed): {first}\n\n"
        ));
    }
    out
}

fn ratios(ferrolb: &[(Mode, Vec<Trial>)], metallb: &[(Mode, Vec<Trial>)]) -> String {
    let mut out = String::from(
        "### MetalLB vs ferrolb\n\n| event | ferrolb p50 gap | MetalLB p50 gap | MetalLB p50 / ferrolb p50 |\n|---|---|---|---|\n",
    );
    for (mode, ours) in ferrolb {
        let Some((_, theirs)) = metallb.iter().find(|(m, t)| m == mode && !t.is_empty()) else {
            out.push_str(&format!("| {} | | not measured | |\n", mode.label()));
            continue;
        };
        let a = percentile(&sorted_gaps(ours), 50.0);
        let b = percentile(&sorted_gaps(theirs), 50.0);
        let ratio = match (a, b) {
            (Some(a), Some(b)) if a > Duration::ZERO => {
                format!("{:.1}×", b.as_secs_f64() / a.as_secs_f64())
            }
            (Some(_), Some(_)) => "n/a (ferrolb p50 is 0 ms)".to_owned(),
            (Some(a), None) if a > Duration::ZERO => format!(
                "> {:.0}× (MetalLB's median trial failed)",
                METALLB.move_timeout.as_secs_f64() / a.as_secs_f64()
            ),
            _ => "n/a".to_owned(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {ratio} |\n",
            mode.label(),
            cell(a, FERROLB),
            cell(b, METALLB)
        ));
    }
    out.push('\n');
    out
}
