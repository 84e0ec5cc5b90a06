//! BGP withdrawal after a hard node failure: two node namespaces peer with BIRD; a Service is
//! advertised from both. Per trial node-1's link goes down (no FIN, no NOTIFICATION: only BFD
//! or the hold timer can tell) and the clock runs until BIRD no longer holds node-1's path;
//! then the link comes back and both paths are awaited before the next trial.
//!
//! Three set-ups in one run: ferrolb with a BFDProfile of 300 ms × 3 (hold time 90 s, so only
//! BFD can be fast), ferrolb without BFD at the smallest hold time (3 s), and MetalLB's native
//! speaker at 3 s (it has no BFD; the router's hold timer is all there is). Prints a Markdown
//! section for `tests/bench/bgp.sh`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ferrolb_tests::l2cluster::metallb::{METALLB_NAMESPACE, MetallbSpeakers, POOL_ANNOTATION};
use ferrolb_tests::l2cluster::{APP_NAMESPACE, CLIENT, L2Cluster, NAMESPACE, TestService};
use ferrolb_tests::routers::{BfdTimers, Neighbor, Router, RouterConfig, RouterKind};
use ferrolb_tests::stats::{ms, percentile};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams};

const ROUTER_AS: u32 = 64500;
const NODE_AS: u32 = 64512;
const VIP: &str = "198.51.100.20";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Setup {
    FerrolbBfd,
    FerrolbHold,
    MetallbHold,
}

impl Setup {
    fn label(self) -> &'static str {
        match self {
            Self::FerrolbBfd => "ferrolb, BFD 300 ms × 3 (hold time 90 s)",
            Self::FerrolbHold => "ferrolb, no BFD, hold time 3 s",
            Self::MetallbHold => "MetalLB v0.16.1 native, hold time 3 s (no BFD)",
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut trials = 10usize;
    let (mut bin, mut crds): (Option<PathBuf>, Option<PathBuf>) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--trials" => trials = value()?.parse().context("--trials needs a number")?,
            "--metallb" => bin = Some(value()?.into()),
            "--metallb-crds" => crds = Some(value()?.into()),
            other => bail!("unknown argument {other}"),
        }
    }
    let metallb = match (bin, crds) {
        (Some(b), Some(c)) => Some(MetallbSpeakers::new(&b, &c)?),
        (None, None) => None,
        _ => bail!("--metallb and --metallb-crds go together"),
    };
    if !ferrolb_tests::netns::is_root() {
        bail!("needs root (network namespaces)");
    }
    tokio::runtime::Runtime::new()?.block_on(async {
        let mut results = Vec::new();
        for setup in [Setup::FerrolbBfd, Setup::FerrolbHold] {
            eprintln!("== {}", setup.label());
            let cluster = L2Cluster::start(2, &[]).await?;
            results.push((setup, measure(cluster, setup, trials).await?));
        }
        if let Some(m) = metallb {
            eprintln!("== {}", Setup::MetallbHold.label());
            let cluster = L2Cluster::start_metallb(2, m).await?;
            results.push((
                Setup::MetallbHold,
                measure(cluster, Setup::MetallbHold, trials).await?,
            ));
        }
        print!("{}", report(&results, trials));
        anyhow::Ok(())
    })
}

/// Per trial, from the link cut to BIRD dropping node-1's path; and the router queries' times.
struct Measured {
    gaps: Vec<Duration>,
    queries: Vec<Duration>,
}

async fn measure(cluster: L2Cluster, setup: Setup, trials: usize) -> anyhow::Result<Measured> {
    let host = cluster.host(CLIENT).clone();
    let bfd = setup == Setup::FerrolbBfd;
    let neighbors = cluster
        .nodes()
        .iter()
        .map(|n| {
            let mut neighbor = Neighbor::passive(IpAddr::V4(cluster.host(n).ipv4), NODE_AS);
            neighbor.bfd = bfd;
            neighbor.bfd_timers = bfd.then_some(BfdTimers {
                receive_interval: Duration::from_millis(300),
                transmit_interval: Duration::from_millis(300),
                detect_multiplier: 3,
                echo: None,
            });
            neighbor
        })
        .collect();
    let router = Router::start(
        RouterKind::Bird,
        &host.ns,
        &RouterConfig {
            asn: ROUTER_AS,
            router_id: host.ipv4,
            neighbors,
            multipath: true,
        },
    )?;
    let (group, ns, version) = match setup {
        Setup::MetallbHold => ("metallb.io", METALLB_NAMESPACE, "v1beta2"),
        _ => ("ferrolb.io", NAMESPACE, "v1beta1"),
    };
    let peer_extra = if bfd {
        "holdTime: 90s, bfdProfile: fast"
    } else {
        "holdTime: 3s"
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
{profile}
---
apiVersion: {group}/{version}
kind: BGPPeer
metadata: {{name: router, namespace: {ns}}}
spec: {{myASN: {NODE_AS}, peerASN: {ROUTER_AS}, peerAddress: {router}, {peer_extra}}}
"#,
            router = host.ipv4,
            // MetalLB's native mode refuses any BFDProfile, so only the BFD set-up has one.
            profile = if bfd {
                format!(
                    "---\napiVersion: {group}/v1beta1\nkind: BFDProfile\n\
                     metadata: {{name: fast, namespace: {ns}}}\n\
                     spec: {{receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3}}"
                )
            } else {
                String::new()
            },
        ))
        .await?;
    let mut svc = TestService::new("bench", &[], "node-1");
    svc.endpoints_on = cluster.nodes().to_vec();
    cluster.create_service(&svc).await?;
    let pool = match setup {
        Setup::MetallbHold => POOL_ANNOTATION,
        _ => ferrolb_api::annotations::IP_ALLOCATED_FROM_POOL,
    };
    Api::<Service>::namespaced(cluster.client(), APP_NAMESPACE)
        .patch(
            "bench",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {pool: "bgp"}}})),
        )
        .await?;
    let vip: IpAddr = VIP.parse()?;
    cluster.set_service_ips("bench", &[vip]).await?;

    let n1 = IpAddr::V4(cluster.host("node-1").ipv4);
    let n2 = IpAddr::V4(cluster.host("node-2").ipv4);
    let both = BTreeSet::from([n1, n2]);
    let mut out = Measured {
        gaps: Vec::new(),
        queries: Vec::new(),
    };
    let node1 = cluster.host("node-1").ns.clone();
    for i in 0..trials {
        wait_hops(
            &router,
            vip,
            &both,
            Duration::from_secs(60),
            &mut out.queries,
        )
        .await
        .with_context(|| format!("trial {i}: both paths before the cut"))?;
        if bfd {
            // BFD must be up again too, or the cut would be timed by the hold timer.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !router
                .bfd_session(n1)
                .ok()
                .flatten()
                .is_some_and(|s| s.is_up())
            {
                if Instant::now() > deadline {
                    bail!("trial {i}: BFD with node-1 did not come back");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let cut = Instant::now();
        node1.link_down("eth0")?;
        let gap = wait_hops(
            &router,
            vip,
            &BTreeSet::from([n2]),
            Duration::from_secs(120),
            &mut out.queries,
        )
        .await
        .map(|seen| seen - cut);
        node1.link_up("eth0")?;
        let gap = gap.with_context(|| format!("trial {i}: node-1's path never went"))?;
        eprintln!("trial {i}: {gap:?}");
        out.gaps.push(gap);
    }
    drop(router);
    drop(cluster);
    Ok(out)
}

/// Polls BIRD until `ip`/32 has exactly the next hops `want`; when it saw that.
async fn wait_hops(
    router: &Router,
    ip: IpAddr,
    want: &BTreeSet<IpAddr>,
    timeout: Duration,
    queries: &mut Vec<Duration>,
) -> anyhow::Result<Instant> {
    let prefix = ipnet::IpNet::from(ip);
    let start = Instant::now();
    loop {
        let asked = Instant::now();
        let hops: Option<BTreeSet<IpAddr>> = router
            .routes_for(prefix)
            .ok()
            .map(|routes| routes.into_iter().map(|r| r.next_hop).collect());
        let seen = Instant::now();
        queries.push(seen - asked);
        if hops.as_ref() == Some(want) {
            return Ok(seen);
        }
        if start.elapsed() > timeout {
            bail!("{prefix}: next hops {hops:?}, wanted {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn report(results: &[(Setup, Measured)], trials: usize) -> String {
    let mut s = String::new();
    let mut queries: Vec<Duration> = results
        .iter()
        .flat_map(|(_, m)| m.queries.iter().copied())
        .collect();
    queries.sort();
    s.push_str(&format!(
        "{trials} trials per set-up; BIRD 2 as the router, asked with `birdc` every 5 ms \
         (one query takes {} median, which bounds the resolution).\n\n",
        ms(percentile(&queries, 0.5))
    ));
    s.push_str("| set-up | link cut → node's path gone p50 | p99 | max |\n|---|---|---|---|\n");
    let mut medians = Vec::new();
    for (setup, m) in results {
        let mut gaps = m.gaps.clone();
        gaps.sort();
        let p50 = percentile(&gaps, 0.5);
        medians.push((*setup, p50));
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            setup.label(),
            ms(p50),
            ms(percentile(&gaps, 0.99)),
            ms(*gaps.last().unwrap_or(&Duration::ZERO))
        ));
    }
    if let Some((_, bfd)) = medians.iter().find(|(s, _)| *s == Setup::FerrolbBfd) {
        for (setup, p50) in medians.iter().filter(|(s, _)| *s != Setup::FerrolbBfd) {
            s.push_str(&format!(
                "\n{} / ferrolb with BFD, medians: {:.1}×.",
                setup.label(),
                p50.as_secs_f64() / bfd.as_secs_f64().max(1e-9)
            ));
        }
        s.push('\n');
    }
    s
}
