//! Issue #14's speaker probe at scale: one real apiserver, one node running the real
//! `ferrolb-speaker` (the binary next to this one: run the release build) in a network
//! namespace, `--services` layer-2 Services each with one ready endpoint on that node (on the
//! lan pool's 40 IPv4 addresses, shared under one key with distinct ports, so the count is
//! not bounded by the address plan), then `--more` Services on IPv6 addresses of their own.
//!
//! Measures the time until the speaker has reported every Service (one `ServiceL2Status`
//! each), its RSS then, and for the later Services the time from their creation until the
//! speaker answers for all of them (its `ferrolb_speaker_layer2_announced_ips` gauge) and until it has
//! reported them. Prints `speaker-scale:` lines for `tests/bench/speaker-scale.sh`.
//!
//! Usage: bench-speaker-scale [--services N] [--more N]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferrolb_api::ServiceL2Status;
use ferrolb_tests::l2cluster::{L2Cluster, TestService};
use futures::{StreamExt, TryStreamExt, stream};
use kube::Api;
use kube::api::ListParams;

/// Requests in flight while creating Services.
const CREATE_CONCURRENCY: usize = 32;
/// How often progress is read.
const POLL: Duration = Duration::from_millis(100);
/// How long after the later Services are reported their CPU time is still counted.
const SETTLE_AFTER: Duration = Duration::from_secs(2);
/// How long anything may take before the run gives up.
const PATIENCE: Duration = Duration::from_secs(1800);

struct Args {
    services: usize,
    more: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut out = Args {
        services: 10_000,
        more: 30,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--services" => out.services = value()?.parse()?,
            "--more" => out.more = value()?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    anyhow::ensure!(
        out.more <= 256,
        "--more is at most 256 (the pool's IPv6 addresses)"
    );
    Ok(out)
}

/// The `i`th of the first Services: one of the lan pool's 40 IPv4 addresses, shared.
fn shared_service(i: usize) -> TestService {
    let ip = format!("192.0.2.{}", 200 + i % 40);
    TestService {
        sharing_key: Some("scale".into()),
        port: Some(u16::try_from(1000 + i / 40).unwrap_or(u16::MAX)),
        ..TestService::new(&format!("svc-{i}"), &[&ip], "node-1")
    }
}

/// The `i`th of the later Services: an IPv6 address of its own.
fn own_service(i: usize) -> TestService {
    let ip = format!("2001:db8:0:1::{:x}", 0x200 + i);
    TestService::new(&format!("more-{i}"), &[&ip], "node-1")
}

async fn create_all(cluster: &L2Cluster, services: Vec<TestService>) -> anyhow::Result<()> {
    stream::iter(services)
        .map(|s| async move { cluster.create_service(&s).await })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// How many ServiceL2Status objects exist for Services whose name `names` accepts.
async fn reported(
    api: &Api<ServiceL2Status>,
    names: &dyn Fn(&str) -> bool,
) -> anyhow::Result<usize> {
    let list = api.list_metadata(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter_map(|o| o.metadata.labels.as_ref()?.get("ferrolb.io/service-name"))
        .filter(|n| names(n))
        .count())
}

/// Watches the ServiceL2Status objects and returns when `count` of the later Services'
/// (`more-…`) show a status; `listed` is told once the watch has listed what exists, so that
/// what comes after is seen as it lands.
async fn watch_reported(
    api: Api<ServiceL2Status>,
    count: usize,
    listed: tokio::sync::oneshot::Sender<()>,
) -> anyhow::Result<Instant> {
    use kube::ResourceExt;
    use kube::runtime::watcher::{self, Event};
    let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
    let mut listed = Some(listed);
    let mut seen = std::collections::HashSet::new();
    while let Some(event) = events.try_next().await? {
        match event {
            Event::InitDone => {
                if let Some(listed) = listed.take() {
                    let _ = listed.send(());
                }
            }
            Event::Apply(status) if status.status.is_some() => {
                let service = status.labels().get("ferrolb.io/service-name");
                if let Some(service) = service.filter(|n| n.starts_with("more-")) {
                    seen.insert(service.clone());
                    if seen.len() >= count {
                        return Ok(Instant::now());
                    }
                }
            }
            _ => {}
        }
    }
    anyhow::bail!("the watch of ServiceL2Status ended")
}

/// The speaker's `ferrolb_speaker_layer2_announced_ips` (`None` while it does not answer).
fn announced_ips(cluster: &L2Cluster) -> Option<f64> {
    let ns = cluster.host("node-1").ns.clone();
    let text = ns.run(metrics_text).ok()?.ok()?;
    text.lines()
        .find(|l| l.starts_with("ferrolb_speaker_layer2_announced_ips "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The speaker's `ferrolb_speaker_decide_seconds` sum and count (`None` from a speaker
/// without it).
fn decide_stats(cluster: &L2Cluster) -> Option<(f64, f64)> {
    let ns = cluster.host("node-1").ns.clone();
    let text = ns.run(metrics_text).ok()?.ok()?;
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    Some((
        value("ferrolb_speaker_decide_seconds_sum")?,
        value("ferrolb_speaker_decide_seconds_count")?,
    ))
}

/// `GET /metrics` from the speaker, with time for a busy speaker's long answer.
fn metrics_text() -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect("127.0.0.1:7472")?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// The CPU time the speaker has used (user and system, every thread), in seconds.
fn cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from the state on: utime and
    // stime are the 12th and 13th, in clock ticks.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    let ticks = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()?;
    let ticks: f64 = String::from_utf8_lossy(&ticks.stdout).trim().parse().ok()?;
    (ticks > 0.0).then(|| (utime + stime) / ticks)
}

/// The speaker's resident memory, in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

async fn until<F, Fut>(what: &str, mut done: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let started = Instant::now();
    loop {
        if done().await? {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < PATIENCE,
            "{what}: not within {PATIENCE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn main_inner() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut cluster = L2Cluster::start(1, &[]).await?;
    let pid = cluster.speaker("node-1").context("the speaker")?.pid();
    let api: Api<ServiceL2Status> =
        Api::namespaced(cluster.client(), ferrolb_api::DEFAULT_NAMESPACE);

    let started = Instant::now();
    create_all(&cluster, (0..args.services).map(shared_service).collect()).await?;
    let created = started.elapsed();
    eprintln!(
        "created {} Services in {:.1} s",
        args.services,
        created.as_secs_f64()
    );
    let first = |n: &str| n.starts_with("svc-");
    until("every Service reported", || async {
        Ok(reported(&api, &first).await? >= args.services)
    })
    .await?;
    let all_reported = started.elapsed();
    let rss = rss_mib(pid).unwrap_or(f64::NAN);
    let mut base_ips = None;
    until("the speaker's metrics", || {
        base_ips = announced_ips(&cluster);
        std::future::ready(Ok(base_ips.is_some()))
    })
    .await?;
    let base_ips = base_ips.unwrap_or_default();
    eprintln!(
        "reported {} Services {:.1} s after the first was created; RSS {rss:.0} MiB; {base_ips} IPs",
        args.services,
        all_reported.as_secs_f64()
    );

    let decides_before = decide_stats(&cluster);
    // The later Services' statuses are seen by a watch, when each lands, not by lists of
    // every status (which load the apiserver the speaker writes to, and wait between polls).
    let (listed_tx, listed) = tokio::sync::oneshot::channel();
    let watching = tokio::spawn(watch_reported(api.clone(), args.more, listed_tx));
    listed.await.context("the watch of ServiceL2Status")?;
    let cpu_before = cpu_s(pid);
    let started = Instant::now();
    create_all(&cluster, (0..args.more).map(own_service).collect()).await?;
    let more_created = started.elapsed();
    let want = base_ips + args.more as f64;
    until("the later Services announced", || async {
        Ok(announced_ips(&cluster).is_some_and(|n| n >= want))
    })
    .await?;
    let announced = started.elapsed();
    let reported_at = tokio::time::timeout(PATIENCE, watching)
        .await
        .context("the later Services reported: not in time")???;
    let more_reported = reported_at.saturating_duration_since(started);
    // The speaker's CPU for the later Services: until reported, and a settling time after
    // (its writers' own echoes, the passes they wake).
    tokio::time::sleep(SETTLE_AFTER).await;
    let more_cpu = match (cpu_before, cpu_s(pid)) {
        (Some(before), Some(after)) => after - before,
        _ => f64::NAN,
    };
    let rss_end = rss_mib(pid).unwrap_or(f64::NAN);
    // The decision passes the later Services caused, and their mean length.
    let (passes, pass_ms) = match (decides_before, decide_stats(&cluster)) {
        (Some((sum0, n0)), Some((sum1, n1))) if n1 > n0 => {
            (n1 - n0, (sum1 - sum0) / (n1 - n0) * 1000.0)
        }
        _ => (f64::NAN, f64::NAN),
    };
    println!(
        "speaker-scale: services={} created_s={:.1} reported_s={:.1} rss_mib={rss:.0} \
         more={} more_created_s={:.2} more_announced_s={:.2} more_reported_s={:.2} rss_end_mib={rss_end:.0} \
         more_passes={passes} pass_ms_mean={pass_ms:.1} more_cpu_s={more_cpu:.2}",
        args.services,
        created.as_secs_f64(),
        all_reported.as_secs_f64(),
        args.more,
        more_created.as_secs_f64(),
        announced.as_secs_f64(),
        more_reported.as_secs_f64(),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match main_inner().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-speaker-scale: {e:#}");
            ExitCode::FAILURE
        }
    }
}
