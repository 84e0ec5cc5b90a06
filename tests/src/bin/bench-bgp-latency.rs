//! BGP announcement latency: two node namespaces run a speaker (ferrolb's, then MetalLB's own
//! in native BGP mode), peered with GoBGP on the same LAN. Per trial a Service gets an IP in
//! its status (as the controller writes it); the clock runs from just before that status write
//! until GoBGP's RIB holds the /32 from both nodes. Then the IP is removed, and the clock runs
//! until both paths are withdrawn. Prints a Markdown section (p50/p99 per speaker, and the
//! ratio) for `tests/bench/bgp.sh`.
//!
//! Resolution: GoBGP's CLI takes tens of milliseconds per query, too coarse to poll. Instead
//! `gobgp monitor adj-in -j` streams every path GoBGP receives or loses, and each line is
//! timestamped as it is read; what remains is the stream's own delay, the same for both
//! speakers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ferrolb_tests::l2cluster::metallb::{METALLB_NAMESPACE, MetallbSpeakers, POOL_ANNOTATION};
use ferrolb_tests::l2cluster::{APP_NAMESPACE, CLIENT, L2Cluster, NAMESPACE, TestService};
use ferrolb_tests::routers::{Neighbor, Router, RouterConfig, RouterKind};
use ferrolb_tests::stats::{ms, percentile};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams};

const ROUTER_AS: u32 = 64500;
const NODE_AS: u32 = 64512;
const NODES: usize = 2;
const TIMEOUT: Duration = Duration::from_secs(30);

struct Args {
    trials: usize,
    metallb: Option<PathBuf>,
    metallb_crds: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let mut parsed = Args {
        trials: 20,
        metallb: None,
        metallb_crds: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--trials" => parsed.trials = value()?.parse().context("--trials needs a number")?,
            "--metallb" => parsed.metallb = Some(value()?.into()),
            "--metallb-crds" => parsed.metallb_crds = Some(value()?.into()),
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
    tokio::runtime::Runtime::new()?.block_on(run(parsed.trials, metallb))
}

/// One speaker's trials, with the apiserver floor of each: when a watch of our own saw the
/// status change.
struct Measured {
    announce: Vec<Duration>,
    withdraw: Vec<Duration>,
    floor_announce: Vec<Duration>,
    floor_withdraw: Vec<Duration>,
}

/// Every (Service name, IPs) state a watch on Services saw, and when.
type Seen = Arc<Mutex<Vec<(String, Vec<String>, Instant)>>>;

/// Watches the test Services, as a speaker would, noting when each status was seen.
fn watch_services(api: Api<Service>) -> Seen {
    use futures::StreamExt as _;
    use kube::runtime::watcher;
    let seen: Seen = Arc::default();
    let writer = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()));
        while let Some(event) = stream.next().await {
            let at = Instant::now();
            let Ok(watcher::Event::Apply(svc) | watcher::Event::InitApply(svc)) = event else {
                continue;
            };
            let ips = ferrolb_api::service::ingress_ips(&svc)
                .iter()
                .map(ToString::to_string)
                .collect();
            let name = svc.metadata.name.clone().unwrap_or_default();
            writer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((name, ips, at));
        }
    });
    seen
}

/// How long after `start` the watch saw `name` with `ips`.
async fn floor(
    seen: &Seen,
    name: &str,
    ips: Vec<String>,
    start: Instant,
) -> anyhow::Result<Duration> {
    loop {
        let found = seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(n, i, at)| n == name && *i == ips && *at >= start)
            .map(|(_, _, at)| *at);
        if let Some(at) = found {
            return Ok(at - start);
        }
        if start.elapsed() > TIMEOUT {
            bail!("the watch never saw {name} with {ips:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Next hops per prefix as GoBGP's Adj-RIB-In stream reports them, with the time of the last
/// change of each prefix.
type Rib = Arc<Mutex<BTreeMap<String, (BTreeSet<IpAddr>, Instant)>>>;

/// `gobgp monitor adj-in -a ipv4 -j` in the router's namespace, read on a thread.
struct Monitor {
    child: Child,
    rib: Rib,
}

impl Monitor {
    fn start(ns: &ferrolb_tests::netns::Netns) -> anyhow::Result<Self> {
        let mut child = ns
            .command("gobgp")
            .args(["-p", "50051", "monitor", "adj-in", "-a", "ipv4", "-j"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("gobgp monitor")?;
        let stdout = child.stdout.take().context("monitor stdout")?;
        let rib: Rib = Arc::default();
        let writer = Arc::clone(&rib);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let at = Instant::now();
                let Ok(paths) = serde_json::from_str::<Vec<serde_json::Value>>(&line) else {
                    continue;
                };
                let mut rib = writer.lock().unwrap_or_else(|e| e.into_inner());
                for path in paths {
                    let Some(prefix) = path["nlri"]["prefix"].as_str() else {
                        continue;
                    };
                    let hop = path["attrs"].as_array().and_then(|attrs| {
                        attrs
                            .iter()
                            .find_map(|a| a["nexthop"].as_str()?.parse::<IpAddr>().ok())
                    });
                    let entry = rib
                        .entry(prefix.to_owned())
                        .or_insert_with(|| (BTreeSet::new(), at));
                    if let Some(hop) = hop {
                        if path["withdrawal"].as_bool() == Some(true) {
                            entry.0.remove(&hop);
                        } else {
                            entry.0.insert(hop);
                        }
                    } else if path["withdrawal"].as_bool() == Some(true) {
                        entry.0.clear();
                    }
                    entry.1 = at;
                }
            }
        });
        Ok(Self { child, rib })
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn run(trials: usize, metallb: Option<MetallbSpeakers>) -> anyhow::Result<()> {
    eprintln!("== ferrolb-speaker");
    let cluster = L2Cluster::start_on(
        ferrolb_tests::ControlPlane::builder(),
        NODES,
        ferrolb_tests::l2cluster::Speakers::Ferrolb(Vec::new()),
        &[],
    )
    .await?;
    let ours = measure(cluster, false, trials).await?;
    let theirs = match metallb {
        Some(m) => {
            eprintln!("== MetalLB speaker (native BGP)");
            let cluster = L2Cluster::start_metallb(NODES, m).await?;
            Some(measure(cluster, true, trials).await?)
        }
        None => None,
    };
    print!("{}", report(&ours, theirs.as_ref(), trials));
    Ok(())
}

async fn measure(cluster: L2Cluster, metallb: bool, trials: usize) -> anyhow::Result<Measured> {
    let host = cluster.host(CLIENT).clone();
    let neighbors = cluster
        .nodes()
        .iter()
        .map(|n| Neighbor::passive(IpAddr::V4(cluster.host(n).ipv4), NODE_AS))
        .collect();
    let router = Router::start(
        RouterKind::Gobgp,
        &host.ns,
        &RouterConfig {
            asn: ROUTER_AS,
            router_id: host.ipv4,
            neighbors,
            multipath: true,
        },
    )?;
    let (group, ns, peer_version) = if metallb {
        ("metallb.io", METALLB_NAMESPACE, "v1beta2")
    } else {
        ("ferrolb.io", NAMESPACE, "v1beta1")
    };
    cluster
        .apply(&format!(
            r#"
apiVersion: {group}/v1beta1
kind: IPAddressPool
metadata: {{name: bgp, namespace: {ns}}}
spec: {{addresses: ["198.51.100.0/24"]}}
---
apiVersion: {group}/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp, namespace: {ns}}}
spec: {{ipAddressPools: [bgp]}}
---
apiVersion: {group}/{peer_version}
kind: BGPPeer
metadata: {{name: router, namespace: {ns}}}
spec: {{myASN: {NODE_AS}, peerASN: {ROUTER_AS}, peerAddress: {router}}}
"#,
            router = host.ipv4
        ))
        .await?;
    let node_ips: BTreeSet<IpAddr> = cluster
        .nodes()
        .iter()
        .map(|n| IpAddr::V4(cluster.host(n).ipv4))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !node_ips
        .iter()
        .all(|ip| router.established(*ip).unwrap_or(false))
    {
        if Instant::now() > deadline {
            bail!(
                "sessions did not come up\n{}\n{}",
                cluster.describe(),
                router.describe()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let services: Api<Service> = Api::namespaced(cluster.client(), APP_NAMESPACE);
    let monitor = Monitor::start(&host.ns)?;
    let seen = watch_services(services.clone());
    let mut out = Measured {
        announce: Vec::new(),
        withdraw: Vec::new(),
        floor_announce: Vec::new(),
        floor_withdraw: Vec::new(),
    };
    for i in 0..trials {
        let name = format!("bench-{i}");
        let ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10 + (i % 200) as u8));
        let mut svc = TestService::new(&name, &[], "node-1");
        svc.endpoints_on = cluster.nodes().to_vec();
        cluster.create_service(&svc).await?;
        let pool = if metallb {
            POOL_ANNOTATION
        } else {
            ferrolb_api::annotations::IP_ALLOCATED_FROM_POOL
        };
        let patch = serde_json::json!({"metadata": {"annotations": {pool: "bgp"}}});
        services
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        // Let the speakers see the Service and its endpoints before the clock starts.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let start = Instant::now();
        cluster.set_service_ips(&name, &[ip]).await?;
        out.announce
            .push(wait_hops(&monitor, ip, &node_ips, start).await?);
        out.floor_announce
            .push(floor(&seen, &name, vec![ip.to_string()], start).await?);
        let start = Instant::now();
        cluster.set_service_ips(&name, &[]).await?;
        out.withdraw
            .push(wait_hops(&monitor, ip, &BTreeSet::new(), start).await?);
        out.floor_withdraw
            .push(floor(&seen, &name, Vec::new(), start).await?);
        cluster.delete_service(&name).await?;
        eprintln!(
            "trial {i}: announce {:?}, withdraw {:?}",
            out.announce[i], out.withdraw[i]
        );
    }
    drop(monitor);
    drop(router);
    drop(cluster);
    Ok(out)
}

/// Waits until the stream shows `ip`/32 with exactly the next hops `want`; the time from
/// `start` to the line that made it so.
async fn wait_hops(
    monitor: &Monitor,
    ip: IpAddr,
    want: &BTreeSet<IpAddr>,
    start: Instant,
) -> anyhow::Result<Duration> {
    let prefix = ipnet::IpNet::from(ip).to_string();
    loop {
        {
            let rib = monitor.rib.lock().unwrap_or_else(|e| e.into_inner());
            let (hops, at) = rib
                .get(&prefix)
                .cloned()
                .unwrap_or((BTreeSet::new(), start));
            if hops == *want && at >= start {
                return Ok(at - start);
            }
            if start.elapsed() > TIMEOUT {
                bail!("{prefix}: next hops {hops:?}, wanted {want:?}");
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

fn report(ours: &Measured, theirs: Option<&Measured>, trials: usize) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "{trials} trials per speaker, {NODES} nodes peering with GoBGP, times read from GoBGP's \
         `monitor adj-in` stream.\n\n"
    ));
    s.push_str("| speaker | IP in status → both paths in GoBGP p50 | p99 | IP removed → both paths withdrawn p50 | p99 |\n");
    s.push_str("|---|---|---|---|---|\n");
    let row = |name: &str, m: &Measured| {
        let (a50, a99) = stats(m.announce.clone());
        let (w50, w99) = stats(m.withdraw.clone());
        format!(
            "| {name} | {} | {} | {} | {} |\n",
            ms(a50),
            ms(a99),
            ms(w50),
            ms(w99)
        )
    };
    let floor = Measured {
        announce: ours.floor_announce.clone(),
        withdraw: ours.floor_withdraw.clone(),
        floor_announce: Vec::new(),
        floor_withdraw: Vec::new(),
    };
    s.push_str(&row(
        "apiserver floor (a watch sees the status change)",
        &floor,
    ));
    s.push_str(&row("ferrolb-speaker", ours));
    if let Some(m) = theirs {
        s.push_str(&row("MetalLB speaker v0.16.1 (native)", m));
        let ratio = |a: Vec<Duration>, b: Vec<Duration>| {
            stats(b).0.as_secs_f64() / stats(a).0.as_secs_f64().max(1e-9)
        };
        s.push_str(&format!(
            "\nMetalLB / ferrolb, medians: announce {:.1}×, withdraw {:.1}×.\n",
            ratio(ours.announce.clone(), m.announce.clone()),
            ratio(ours.withdraw.clone(), m.withdraw.clone())
        ));
    } else {
        s.push_str("\nMetalLB was not measured on this run.\n");
    }
    s
}
