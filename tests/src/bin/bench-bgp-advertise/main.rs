//! BGP advertisement benchmark: how long after a session reaches Established a router holds
//! all of N prefixes (10,000 IPv4 host routes by default) — ferrolb's session
//! ([`ferrolb_speaker::bgp::Session`]) against a second `gobgpd` sending the same routes to
//! the same kind of receiver: the reference a mature implementation sets.
//!
//! Three namespaces on one LAN: our speaker, a sending `gobgpd` (AS 64513) that holds the N
//! routes in its global RIB before any peering exists (loaded from an MRT dump this binary
//! writes), and a receiving `gobgpd` (AS 64512), started afresh for every trial with both as
//! passive neighbors. A trial connects one sender; the clock starts when the receiver reports
//! the session Established (`gobgp monitor neighbor`, a stream read as it arrives) and stops at
//! the first poll of `gobgp neighbor <ip> -j` that shows all N prefixes accepted. Polls run
//! back to back; their median period, reported, is the resolution. Trials alternate between the
//! two senders so drift hits both alike. The UPDATE messages each needed are the receiver's own
//! count, and ours are checked against our session's counters.
//!
//! The prefixes are /32s from 198.18.0.0/15, the benchmarking range of RFC 2544. Prints a
//! Markdown section on stdout. Needs root. Usage:
//! `bench-bgp-advertise [--prefixes 10000] [--trials 10]` (tests/bench/run.sh runs it).

mod gobgp;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use ferrolb_speaker::bgp::fsm::{self, PeerAsn};
use ferrolb_speaker::bgp::packet::MessageType;
use ferrolb_speaker::bgp::session::Counters;
use ferrolb_speaker::bgp::{RouteAttrs, RouteSet, Session, SessionConfig};
use ferrolb_tests::netns::{Host, Lan, NsThread, is_root};
use ferrolb_tests::routers::{Neighbor, Router, RouterConfig, RouterKind};
use ferrolb_tests::stats::ms;
use ipnet::{IpNet, Ipv4Net};
use tokio::sync::{oneshot, watch};

use gobgp::{Monitor, global_rib, mrt_dump, settled_updates, wait_accepted, wait_api};

const SPEAKER_AS: u32 = 4_200_000_001;
const RECEIVER_AS: u32 = 64512;
const SENDER_AS: u32 = 64513;
/// 198.18.0.0/15, RFC 2544's benchmarking range: room for 131,072 host routes.
const FIRST_PREFIX: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
const MAX_PREFIXES: usize = 1 << 17;
/// How long a sender may take to deliver everything (GoBGP also waits up to ~10 s before it
/// first connects to a neighbor added at run time; that wait is outside the measurement).
const TRIAL_TIMEOUT: Duration = Duration::from_secs(180);

struct Args {
    prefixes: usize,
    trials: usize,
}

fn main() -> anyhow::Result<()> {
    let mut parsed = Args {
        prefixes: 10_000,
        trials: 10,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--prefixes" => parsed.prefixes = value()?.parse().context("--prefixes: a number")?,
            "--trials" => parsed.trials = value()?.parse().context("--trials: a number")?,
            other => bail!("unknown argument {other}"),
        }
    }
    if !(1..=MAX_PREFIXES).contains(&parsed.prefixes) || parsed.trials == 0 {
        bail!("--prefixes must be 1..={MAX_PREFIXES} and --trials at least 1");
    }
    if !is_root() {
        bail!("needs root (network namespaces)");
    }
    run(&parsed)
}

/// One trial of one sender.
struct Sample {
    /// Established to all prefixes accepted.
    elapsed: Duration,
    /// UPDATE messages the receiver counted from this sender.
    updates: u64,
    /// Back-to-back poll periods of the trial.
    polls: Vec<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sender {
    Ferrolb,
    Gobgp,
}

fn run(args: &Args) -> anyhow::Result<()> {
    let prefixes: Vec<Ipv4Net> = (0..args.prefixes)
        .map(|i| {
            let address = Ipv4Addr::from(u32::from(FIRST_PREFIX) + i as u32);
            Ipv4Net::new(address, 32).expect("a /32")
        })
        .collect();
    let routes: RouteSet = prefixes
        .iter()
        .map(|p| (IpNet::V4(*p), RouteAttrs::default()))
        .collect();
    let lan = Lan::builder()
        .host("speaker")
        .host("receiver")
        .host("gobgp")
        .build()
        .context("building the LAN")?;
    let bed = Bed {
        speaker: lan.host("speaker").clone(),
        receiver: lan.host("receiver").clone(),
        sender: lan.host("gobgp").clone(),
    };
    let work = tempfile::Builder::new()
        .prefix("ferrolb-bench-bgp-")
        .tempdir()?;
    let gobgp = bed.start_sender(&prefixes, work.path())?;
    eprintln!(
        "the sending gobgpd holds {} routes; {} trials each",
        prefixes.len(),
        args.trials
    );

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..args.trials {
        let sample = bed
            .trial_ferrolb(&routes)
            .with_context(|| format!("ferrolb trial {i}"))?;
        eprintln!(
            "ferrolb {i}: {:?}, {} UPDATEs",
            sample.elapsed, sample.updates
        );
        ours.push(sample);
        let sample = bed
            .trial_gobgp(&gobgp, prefixes.len())
            .with_context(|| format!("gobgp trial {i}"))?;
        eprintln!(
            "gobgp {i}: {:?}, {} UPDATEs",
            sample.elapsed, sample.updates
        );
        theirs.push(sample);
    }
    // "gobgpd version 3.10.0"
    let version = std::process::Command::new("gobgpd")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    print!(
        "{}",
        report(
            &[(Sender::Ferrolb, &ours), (Sender::Gobgp, &theirs)],
            args,
            &version
        )
    );
    Ok(())
}

struct Bed {
    speaker: Host,
    receiver: Host,
    sender: Host,
}

impl Bed {
    /// A fresh receiving gobgpd with both senders as passive neighbors, its API answering.
    fn start_receiver(&self) -> anyhow::Result<Router> {
        let receiver = Router::start(
            RouterKind::Gobgp,
            &self.receiver.ns,
            &RouterConfig {
                asn: RECEIVER_AS,
                router_id: self.receiver.ipv4,
                neighbors: vec![
                    Neighbor::passive(IpAddr::V4(self.speaker.ipv4), SPEAKER_AS),
                    Neighbor::passive(IpAddr::V4(self.sender.ipv4), SENDER_AS),
                ],
                multipath: false,
            },
        )?;
        wait_api(&receiver)?;
        Ok(receiver)
    }

    /// The sending gobgpd, without neighbors, holding `prefixes` in its global RIB.
    fn start_sender(&self, prefixes: &[Ipv4Net], dir: &Path) -> anyhow::Result<Router> {
        let sender = Router::start(
            RouterKind::Gobgp,
            &self.sender.ns,
            &RouterConfig {
                asn: SENDER_AS,
                router_id: self.sender.ipv4,
                neighbors: vec![],
                multipath: false,
            },
        )?;
        wait_api(&sender)?;
        let file = dir.join("routes.mrt");
        std::fs::write(&file, mrt_dump(self.sender.ipv4, SENDER_AS, prefixes))?;
        sender.gobgp(&["mrt", "inject", "global", &file.to_string_lossy()])?;
        // gobgp 3.10's `mrt inject` can drop the tail of a long stream (seen: 9,471 of
        // 10,000 kept); once the count settles, the missing routes are added one by one.
        let mut held = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = global_rib(&sender)?.len();
            if now == held || Instant::now() > deadline {
                break;
            }
            held = now;
        }
        let have = global_rib(&sender)?;
        let nexthop = self.sender.ipv4.to_string();
        let missing: Vec<&Ipv4Net> = prefixes
            .iter()
            .filter(|p| !have.contains(&IpNet::V4(**p)))
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "mrt inject kept {}; adding {} by hand",
                have.len(),
                missing.len()
            );
        }
        for p in missing {
            let p = p.to_string();
            let args = [
                "global", "rib", "add", "-a", "ipv4", &p, "nexthop", &nexthop, "origin", "igp",
            ];
            sender.gobgp(&args)?;
        }
        let held = global_rib(&sender)?.len();
        if held != prefixes.len() {
            bail!("the sender holds {held} routes, not {}", prefixes.len());
        }
        Ok(sender)
    }

    fn trial_ferrolb(&self, routes: &RouteSet) -> anyhow::Result<Sample> {
        let receiver = self.start_receiver()?;
        let peer = IpAddr::V4(self.speaker.ipv4);
        let monitor = Monitor::start(&self.receiver.ns, peer)?;
        let mut fsm = fsm::Config::new(SPEAKER_AS, PeerAsn::Exact(RECEIVER_AS), self.speaker.ipv4);
        fsm.backoff = fsm::Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(1),
        };
        let config = SessionConfig::new(fsm, IpAddr::V4(self.receiver.ipv4));
        let session = SpeakerSession::start(&self.speaker, config, routes.clone())?;
        let (done, polls) = wait_accepted(&receiver, peer, routes.len(), TRIAL_TIMEOUT)?;
        let established = monitor.established()?;
        let updates = settled_updates(&receiver, peer)?;
        let sent = session.counters.sent(MessageType::Update);
        drop(session);
        if updates != sent {
            bail!("we sent {sent} UPDATEs, the receiver counted {updates}");
        }
        Ok(Sample {
            elapsed: done.saturating_duration_since(established),
            updates,
            polls,
        })
    }

    fn trial_gobgp(&self, sender: &Router, n: usize) -> anyhow::Result<Sample> {
        let receiver = self.start_receiver()?;
        let peer = IpAddr::V4(self.sender.ipv4);
        let monitor = Monitor::start(&self.receiver.ns, peer)?;
        let address = self.receiver.ipv4.to_string();
        let asn = RECEIVER_AS.to_string();
        sender.gobgp(&["neighbor", "add", &address, "as", &asn])?;
        let measured = wait_accepted(&receiver, peer, n, TRIAL_TIMEOUT)
            .and_then(|(done, polls)| Ok((done, polls, settled_updates(&receiver, peer)?)));
        let removed = sender.gobgp(&["neighbor", "del", &address]);
        let (done, polls, updates) = measured?;
        removed?;
        let established = monitor.established()?;
        Ok(Sample {
            elapsed: done.saturating_duration_since(established),
            updates,
            polls,
        })
    }
}

/// Our session on a current-thread runtime, on a thread inside the speaker's namespace.
struct SpeakerSession {
    counters: Arc<Counters>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<NsThread<()>>,
}

impl SpeakerSession {
    fn start(host: &Host, config: SessionConfig, routes: RouteSet) -> anyhow::Result<Self> {
        let (handle_tx, handle_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = host.ns.spawn("bgp-session", move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = handle_tx.send(Err(anyhow!("a runtime: {e}")));
                    return;
                }
            };
            runtime.block_on(async move {
                // The route set stays fixed: the sender is dropped once the session has it.
                let (_routes_tx, routes_rx) = watch::channel(routes);
                match Session::spawn(config, routes_rx) {
                    Ok(handle) => {
                        let _ = handle_tx.send(Ok(Arc::clone(&handle.counters)));
                        let _ = stop_rx.await;
                        handle.shutdown("ferrolb benchmark done").await;
                    }
                    Err(e) => {
                        let _ = handle_tx.send(Err(anyhow!("session config: {e}")));
                    }
                }
            });
        })?;
        let counters = handle_rx
            .recv()
            .map_err(|_| anyhow!("the session thread ended early"))??;
        Ok(Self {
            counters,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for SpeakerSession {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The median: the middle value, or the mean of the two middle ones.
fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    match values.len() {
        0 => Duration::ZERO,
        n if !n.is_multiple_of(2) => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2,
    }
}

/// `10000` as `10,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn report(results: &[(Sender, &Vec<Sample>)], args: &Args, gobgp_version: &str) -> String {
    let mut polls: Vec<Duration> = results
        .iter()
        .flat_map(|(_, samples)| samples.iter().flat_map(|s| s.polls.iter().copied()))
        .collect();
    let poll = median(&mut polls);
    let mut out = String::from(
        "| sender | median | min | max | UPDATE messages received |\n\
         |---|---|---|---|---|\n",
    );
    let mut medians = Vec::new();
    for (sender, samples) in results {
        let mut times: Vec<Duration> = samples.iter().map(|s| s.elapsed).collect();
        let med = median(&mut times);
        medians.push(med);
        let fewest = samples.iter().map(|s| s.updates).min().unwrap_or(0);
        let most = samples.iter().map(|s| s.updates).max().unwrap_or(0);
        let updates = if fewest == most {
            fewest.to_string()
        } else {
            format!("{fewest}–{most}")
        };
        let name = match sender {
            Sender::Ferrolb => "ferrolb (`ferrolb_speaker::bgp::Session`)".to_owned(),
            Sender::Gobgp => gobgp_version.to_owned(),
        };
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {updates} |\n",
            ms(med),
            ms(times.first().copied().unwrap_or_default()),
            ms(times.last().copied().unwrap_or_default()),
        ));
    }
    let ratio = medians[0].as_secs_f64() / medians[1].as_secs_f64().max(f64::EPSILON);
    out.push_str(&format!(
        "\nferrolb / gobgpd, medians: **{ratio:.2}×**. {} trials per sender, alternating; \
         {n} IPv4 /32s; resolution: one poll every {} (median). The UPDATE counts are the \
         receiver's; ferrolb's include its End-of-RIB and equalled its session's own counter in \
         every trial. MetalLB's native BGP mode (v0.16.1, `internal/bgp/native/messages.go`, \
         `sendUpdate`) puts one prefix in each UPDATE: {n} UPDATEs here.\n",
        args.trials,
        ms(poll),
        n = thousands(args.prefixes),
    ));
    out
}
