//! End-to-end controller benchmark on the real harness apiserver: N LoadBalancer Services exist,
//! a controller starts, and the clock runs until every Service shows an IP. Beside ferrolb it
//! runs, each on a fresh control plane with the same Services:
//! - the apiserver floor: a minimal client that patches the same N statuses with the same
//!   concurrency as ferrolb's status writer (what no controller can beat);
//! - MetalLB's controller, built from its Go module (when `--metallb BIN` is given);
//! - with `--apply-floor`, a second floor that writes what ferrolb writes the way it does: a
//!   server-side apply of the status with its condition and the pool annotation, to tell what
//!   the write itself costs from what the controller adds.
//!
//! Reports medians over `--runs` and the ratios to the floor, plus each controller process's
//! CPU time and peak RSS. Run through `tests/bench/controller-10k.sh`, which also records the
//! machine and writes `docs/benchmarks.md`.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::Semaphore;

use ferrolb_tests::ControlPlane;
use ferrolb_tests::fixtures;

const NS: &str = "bench";
const CONCURRENCY: usize = 16;
const POOL: &str = "2001:db8:100::/112";

struct Args {
    services: usize,
    runs: usize,
    ferrolb: PathBuf,
    metallb: Option<PathBuf>,
    metallb_crds: Option<PathBuf>,
    /// Further Service counts each contender is timed at once, for the chart.
    sweep: Vec<usize>,
    /// Where to write the chart of time against Services.
    plot: Option<PathBuf>,
    /// Also time the floor writing ferrolb's body by server-side apply.
    apply_floor: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        services: 10_000,
        runs: 3,
        ferrolb: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/release/ferrolb-controller"
        )),
        metallb: None,
        metallb_crds: None,
        sweep: Vec::new(),
        plot: None,
        apply_floor: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--services" => args.services = value()?.parse()?,
            "--runs" => args.runs = value()?.parse()?,
            "--ferrolb" => args.ferrolb = value()?.into(),
            "--metallb" => args.metallb = Some(value()?.into()),
            "--metallb-crds" => args.metallb_crds = Some(value()?.into()),
            "--sweep" => {
                args.sweep = value()?
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse()
                            .context("--sweep takes counts like 1000,3000")
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            "--plot" => args.plot = Some(value()?.into()),
            "--apply-floor" => args.apply_floor = true,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

/// A fresh control plane holding `n` single-stack IPv6 LoadBalancer Services in `bench`.
async fn prepared(n: usize) -> anyhow::Result<ControlPlane> {
    let cp = fixtures::control_plane_with_crds().await?;
    let client = cp.client();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let api: Api<Service> = Api::namespaced(client, NS);
    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let api = api.clone();
        let permit = gate.clone().acquire_owned().await?;
        tasks.spawn(async move {
            let svc: Service = serde_json::from_value(json!({
                "metadata": {"name": format!("svc-{i:05}")},
                "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack", "allocateLoadBalancerNodePorts": false,
                         "selector": {"app": "bench"}, "ports": [{"port": 80, "protocol": "TCP"}]},
            }))?;
            api.create(&PostParams::default(), &svc).await?;
            drop(permit);
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(cp)
}

/// Waits until `n` Services in `bench` show an ingress IP; returns when that happened.
async fn all_assigned(client: Client, n: usize, deadline: Duration) -> anyhow::Result<Instant> {
    let api: Api<Service> = Api::namespaced(client, NS);
    let mut assigned = std::collections::HashSet::new();
    let stream = watcher(api, watcher::Config::default()).touched_objects();
    let mut stream = std::pin::pin!(stream);
    let until = Instant::now() + deadline;
    loop {
        let next = tokio::time::timeout_at(until.into(), stream.try_next()).await;
        let Ok(item) = next else {
            bail!(
                "only {} of {n} Services got an IP in {deadline:?}",
                assigned.len()
            )
        };
        let Some(svc) = item? else {
            bail!("watch ended")
        };
        let has_ip = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .is_some_and(|i| !i.is_empty());
        let name = svc.metadata.name.clone().unwrap_or_default();
        if has_ip {
            assigned.insert(name);
        } else {
            assigned.remove(&name);
        }
        if assigned.len() >= n {
            return Ok(Instant::now());
        }
    }
}

/// CPU seconds (user + system) and peak RSS (MiB) of a process, from /proc.
fn usage(pid: u32) -> anyhow::Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // After the comm field: state is [0], utime [11], stime [12] (clock ticks).
    let ticks: f64 = fields.get(11).context("utime")?.parse::<f64>()?
        + fields.get(12).context("stime")?.parse::<f64>()?;
    let hz = 100.0; // USER_HZ on Linux
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmHWM")?;
    Ok((ticks / hz, hwm_kib / 1024.0))
}

struct Measured {
    seconds: f64,
    cpu: Option<f64>,
    rss_mib: Option<f64>,
}

/// The floor: a merge patch of the status alone, or (`apply`) what ferrolb's writer sends — a
/// forced server-side apply of ingress, a condition and the pool annotation.
async fn run_floor(n: usize) -> anyhow::Result<Measured> {
    run_floor_as(n, false).await
}

async fn run_floor_as(n: usize, apply: bool) -> anyhow::Result<Measured> {
    let cp = prepared(n).await?;
    let client = cp.client();
    let api: Api<Service> = Api::namespaced(client.clone(), NS);
    let watch = tokio::spawn(all_assigned(client.clone(), n, Duration::from_secs(600)));
    let start = Instant::now();
    let names: Vec<String> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    futures::stream::iter(names.into_iter().enumerate())
        .map(|(i, name)| {
            let api = api.clone();
            async move {
                let ip = format!("2001:db8:100::{:x}", i + 1);
                if apply {
                    let body = json!({
                        "apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": name, "namespace": NS,
                            "annotations": {ferrolb_api::annotations::IP_ALLOCATED_FROM_POOL: "bench"}},
                        "status": {
                            "loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]},
                            "conditions": [{"type": "ferrolb.io/IPAssigned", "status": "True",
                                "reason": "Assigned", "message": format!("{ip} from pool bench"),
                                "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}],
                        },
                    });
                    let params = PatchParams::apply("bench-floor").force();
                    api.patch_status(&name, &params, &Patch::Apply(&body)).await
                } else {
                    let body = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}});
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
                        .await
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let done = watch.await??;
    Ok(Measured {
        seconds: (done - start).as_secs_f64(),
        cpu: None,
        rss_mib: None,
    })
}

/// Starts a contender with its output in `std::env::temp_dir()/ferrolb-bench-<name>.log`.
fn spawn(mut cmd: Command, name: &str) -> anyhow::Result<Child> {
    let log =
        std::fs::File::create(std::env::temp_dir().join(format!("ferrolb-bench-{name}.log")))?;
    cmd.stdout(log.try_clone()?).stderr(log);
    cmd.spawn().with_context(|| format!("cannot start {cmd:?}"))
}

async fn measure_process(
    cp: &ControlPlane,
    child: Child,
    n: usize,
    start: Instant,
) -> anyhow::Result<Measured> {
    let mut child = child;
    let result = all_assigned(cp.client(), n, Duration::from_secs(600)).await;
    let usage = usage(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let done = result?;
    let (cpu, rss) = usage?;
    Ok(Measured {
        seconds: (done - start).as_secs_f64(),
        cpu: Some(cpu),
        rss_mib: Some(rss),
    })
}

async fn run_ferrolb(n: usize, bin: &PathBuf) -> anyhow::Result<Measured> {
    let cp = prepared(n).await?;
    cp.apply_yaml(&format!(
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: bench, namespace: ferrolb-system}}\nspec: {{addresses: ['{POOL}']}}\n"
    ))
    .await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut cmd = Command::new(bin);
    cmd.env("KUBECONFIG", cp.kubeconfig_path())
        .env("RUST_LOG", "warn")
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--write-concurrency",
            &CONCURRENCY.to_string(),
        ]);
    let start = Instant::now();
    let child = spawn(cmd, "ferrolb")?;
    measure_process(&cp, child, n, start).await
}

async fn run_metallb(n: usize, bin: &PathBuf, crds: &PathBuf) -> anyhow::Result<Measured> {
    let cp = prepared(n).await?;
    eprintln!("  installing MetalLB's CRDs");
    cp.apply_yaml_dir(crds).await?;
    let client = cp.client();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "metallb-system"}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    // MetalLB's controller reads its own Pod at start; without a kubelet it stays Pending.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "controller-bench", "namespace": "metallb-system"},
        "spec": {"containers": [{"name": "controller", "image": "metallb/controller"}]},
    }))?;
    Api::<Pod>::namespaced(client.clone(), "metallb-system")
        .create(&PostParams::default(), &pod)
        .await?;
    // It owner-references the memberlist Secret it creates to its Deployment, which must exist.
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "controller", "namespace": "metallb-system"},
        "spec": {"selector": {"matchLabels": {"app": "metallb"}},
                 "template": {"metadata": {"labels": {"app": "metallb"}},
                              "spec": {"containers": [{"name": "controller", "image": "metallb/controller"}]}}},
    }))?;
    Api::<Deployment>::namespaced(client.clone(), "metallb-system")
        .create(&PostParams::default(), &deployment)
        .await?;
    eprintln!("  waiting for MetalLB's CRDs");
    fixtures_wait_crds(&cp).await?;
    eprintln!("  creating MetalLB's pool");
    cp.apply_yaml(&format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: bench, namespace: metallb-system}}\nspec: {{addresses: ['{POOL}']}}\n"
    ))
    .await?;
    let free = || -> anyhow::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let mut cmd = Command::new(bin);
    cmd.env("KUBECONFIG", cp.kubeconfig_path()).args([
        "--namespace",
        "metallb-system",
        "--pod-name",
        "controller-bench",
        "--webhook-mode=disabled",
        "--disable-cert-rotation",
        "--log-level",
        "warn",
        "--port",
        &free()?.to_string(),
        "--health-probe-port",
        &free()?.to_string(),
        "--ml-secret-name",
        "memberlist",
        "--deployment",
        "controller",
    ]);
    eprintln!("  starting MetalLB's controller");
    let start = Instant::now();
    let child = spawn(cmd, "metallb")?;
    measure_process(&cp, child, n, start).await
}

async fn fixtures_wait_crds(cp: &ControlPlane) -> anyhow::Result<()> {
    let names: Vec<&str> = vec![
        "ipaddresspools.metallb.io",
        "l2advertisements.metallb.io",
        "bgpadvertisements.metallb.io",
    ];
    ferrolb_tests::apiserver::wait_crds_established(&cp.client(), &names, Duration::from_secs(30))
        .await
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn main_inner() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut rows: Vec<(&str, Vec<Measured>)> =
        vec![("apiserver floor", vec![]), ("ferrolb-controller", vec![])];
    if args.metallb.is_some() {
        rows.push(("MetalLB controller v0.16.1", vec![]));
    }
    if args.apply_floor {
        if args.plot.is_some() {
            bail!("--apply-floor is a row of the table only; leave out --plot");
        }
        rows.push((
            "apiserver floor, ferrolb's write (server-side apply)",
            vec![],
        ));
    }
    for run in 0..args.runs {
        // Interleave contenders so drift on a shared machine hits each alike.
        eprintln!("run {} of {}: floor", run + 1, args.runs);
        rows[0].1.push(run_floor(args.services).await?);
        eprintln!("run {} of {}: ferrolb", run + 1, args.runs);
        rows[1]
            .1
            .push(run_ferrolb(args.services, &args.ferrolb).await?);
        if let (Some(bin), Some(crds)) = (&args.metallb, &args.metallb_crds) {
            eprintln!("run {} of {}: metallb", run + 1, args.runs);
            rows[2].1.push(run_metallb(args.services, bin, crds).await?);
        }
        if args.apply_floor {
            eprintln!(
                "run {} of {}: floor with ferrolb's write",
                run + 1,
                args.runs
            );
            let last = rows.len() - 1;
            rows[last].1.push(run_floor_as(args.services, true).await?);
        }
    }
    let floor = median(rows[0].1.iter().map(|m| m.seconds).collect());
    println!(
        "| contender | time to assign {} Services (median of {}) | ratio to floor | CPU seconds | peak RSS (MiB) | all runs (s) |",
        args.services, args.runs
    );
    println!("|---|---|---|---|---|---|");
    for (name, runs) in &rows {
        let t = median(runs.iter().map(|m| m.seconds).collect());
        let cpu = runs.iter().filter_map(|m| m.cpu).collect::<Vec<_>>();
        let rss = runs.iter().filter_map(|m| m.rss_mib).collect::<Vec<_>>();
        let fmt = |v: Vec<f64>| {
            if v.is_empty() {
                "–".to_string()
            } else {
                format!("{:.1}", median(v))
            }
        };
        let all: Vec<String> = runs.iter().map(|m| format!("{:.2}", m.seconds)).collect();
        println!(
            "| {name} | {t:.2} s | {:.2}× | {} | {} | {} |",
            t / floor,
            fmt(cpu),
            fmt(rss),
            all.join(", ")
        );
    }
    if let Some(path) = &args.plot {
        // The main size's medians, and one run of each contender at every sweep size.
        let mut points: Vec<Vec<(f64, f64)>> = rows
            .iter()
            .map(|(_, runs)| {
                vec![(
                    args.services as f64,
                    median(runs.iter().map(|m| m.seconds).collect()),
                )]
            })
            .collect();
        for &n in args.sweep.iter().filter(|n| **n != args.services) {
            eprintln!("sweep {n}: floor");
            points[0].push((n as f64, run_floor(n).await?.seconds));
            eprintln!("sweep {n}: ferrolb");
            points[1].push((n as f64, run_ferrolb(n, &args.ferrolb).await?.seconds));
            if let (Some(bin), Some(crds)) = (&args.metallb, &args.metallb_crds) {
                eprintln!("sweep {n}: metallb");
                points[2].push((n as f64, run_metallb(n, bin, crds).await?.seconds));
            }
        }
        for p in &mut points {
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        let chart = ferrolb_tests::plot::Lines {
            title: "Time to give every LoadBalancer Service an IP, from the controller's start"
                .into(),
            x_axis: "Services (log scale)".into(),
            y_axis: "seconds (log scale)".into(),
            log_x: true,
            log_y: true,
            series: rows
                .iter()
                .map(|(name, _)| (*name).to_owned())
                .zip(points)
                .collect(),
            marks: Vec::new(),
            break_gaps: false,
        };
        std::fs::write(path, chart.svg()).with_context(|| format!("writing {}", path.display()))?;
        let sizes: Vec<String> = args.sweep.iter().map(usize::to_string).collect();
        println!(
            "\nThe chart's points at {} Services are single runs; at {} the medians above.",
            sizes.join(", "),
            args.services
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-controller: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(main_inner()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-controller: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
