//! Draws the Grafana dashboard's panels from a real Prometheus scraping the lab, for
//! `docs/dashboard.md` (Grafana itself is not installable here: no Debian package, and its Go
//! module carries no built web UI).
//!
//! Starts the lab (3 nodes, BIRD, ferrolb from install.yaml, the demo Services), runs
//! Prometheus (built by `tests/setup/prometheus.sh`) in node-1's namespace scraping every
//! speaker and controller every 2 s, and plays a timeline of events operators care about: more
//! Services, the BGP router stopped and restarted, a node cut off and back, a pool filled with
//! a Service left waiting. Then every panel's queries (the dashboard's own, `$instance` = all)
//! are asked of Prometheus over the whole run (`query_range`, 5 s steps) and drawn as lines,
//! one SVG per panel in `docs/dashboard/`, and `docs/dashboard.md` lists them.
//!
//! Needs root. Usage: `bench-dashboard-images PROMETHEUS_DIR` (tests/bench/dashboard-images.sh).

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use ferrolb_tests::lab::{self, ClusterLab};
use ferrolb_tests::netns::{Netns, is_root};
use ferrolb_tests::plot::Lines;
use ferrolb_tests::routers::RouterKind;
use ferrolb_tests::scrape::{CONTROLLER_METRICS_PORT, SPEAKER_METRICS_PORT};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::Value;

const PROMETHEUS_PORT: u16 = 9090;
const STEP_SECONDS: u64 = 5;

/// Prometheus as a child process; killed (by its pid) when dropped.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` from Prometheus inside `ns` (HTTP/1.0, so the body is never chunked).
fn get(ns: &Netns, path: &str) -> anyhow::Result<String> {
    let path = path.to_owned();
    ns.run(move || -> anyhow::Result<String> {
        let addr = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), PROMETHEUS_PORT);
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .context("no HTTP body from Prometheus")?;
        if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
            bail!("{}: {body}", head.lines().next().unwrap_or_default());
        }
        Ok(body.to_owned())
    })?
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A legend from Grafana's `{{label}}` format and a series' labels.
fn legend(format: &str, labels: &serde_json::Map<String, Value>) -> String {
    let mut out = format.to_owned();
    for (k, v) in labels {
        out = out.replace(&format!("{{{{{k}}}}}"), v.as_str().unwrap_or_default());
    }
    if out.is_empty() {
        out = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(",");
    }
    out
}

fn slug(title: &str) -> String {
    let s: String = title
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Events played while Prometheus scrapes, with their offset from the start.
struct Timeline {
    start: Instant,
    /// Offset, what happened, and its short label on the charts.
    events: Vec<(u64, String, &'static str)>,
}

impl Timeline {
    async fn at(&mut self, second: u64, what: &str, short: &'static str) {
        let target = self.start + Duration::from_secs(second);
        tokio::time::sleep_until(target.into()).await;
        eprintln!("t+{second}s: {what}");
        self.events.push((second, what.to_owned(), short));
    }
}

async fn play(lab: &mut ClusterLab, timeline: &mut Timeline) -> anyhow::Result<()> {
    let client = lab.cluster().client();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let apply = PatchParams::apply("dashboard-images").force();
    let service = |name: &'static str, pool: Option<&'static str>| {
        lab::demo_service(&lab::DemoService {
            name,
            local: false,
            pool,
            app: "echo",
            external: false,
        })
    };
    timeline
        .at(30, "10 more layer-2 Services", "+10 Services")
        .await;
    const MORE: [&str; 10] = [
        "more-1", "more-2", "more-3", "more-4", "more-5", "more-6", "more-7", "more-8", "more-9",
        "more-10",
    ];
    for name in MORE {
        services
            .patch(name, &apply, &Patch::Apply(service(name, None)))
            .await?;
    }
    timeline
        .at(75, "the BGP router (BIRD) stops", "router stops")
        .await;
    lab.router_mut().stop();
    timeline
        .at(105, "the BGP router starts again", "router back")
        .await;
    lab.router_mut().restart()?;
    timeline
        .at(140, "node-3 cut off (its LAN link down)", "node-3 cut off")
        .await;
    let node3 = lab.cluster().host("node-3").ns.clone();
    node3.link_down("eth0")?;
    timeline.at(185, "node-3 back", "node-3 back").await;
    node3.link_up("eth0")?;
    timeline
        .at(
            220,
            "a 2-address pool and 3 Services asking it",
            "pool of 2, 3 Services",
        )
        .await;
    lab.cluster()
        .control_plane()
        .apply_yaml(
            "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\n\
             metadata: {name: tiny, namespace: ferrolb-system}\n\
             spec: {addresses: [\"192.0.2.240-192.0.2.241\"], autoAssign: false}\n",
        )
        .await?;
    for name in ["tiny-1", "tiny-2", "tiny-3"] {
        services
            .patch(name, &apply, &Patch::Apply(service(name, Some("tiny"))))
            .await?;
    }
    timeline.at(270, "end", "").await;
    Ok(())
}

async fn run(prometheus_dir: &Path) -> anyhow::Result<()> {
    let mut lab = ClusterLab::start(3, RouterKind::Bird, Duration::from_secs(120)).await?;
    lab.wait_healthy(Duration::from_secs(60))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = lab.cluster().client();
    lab::apply_demo(&client, "node-1").await?;

    let speakers: Vec<String> = lab
        .state()
        .nodes
        .iter()
        .map(|n| format!("\"{}:{SPEAKER_METRICS_PORT}\"", n.ipv4))
        .collect();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ferrolb_tests::fixtures::NAMESPACE);
    let controllers: Vec<String> = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=controller"))
        .await?
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .map(|ip| format!("\"{ip}:{CONTROLLER_METRICS_PORT}\""))
        .collect();
    let work = tempfile::tempdir()?;
    let config = work.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 2s, evaluation_interval: 2s}}\n\
             scrape_configs:\n\
             \x20 - job_name: speaker\n    static_configs: [{{targets: [{}]}}]\n\
             \x20 - job_name: controller\n    static_configs: [{{targets: [{}]}}]\n",
            speakers.join(", "),
            controllers.join(", ")
        ),
    )?;
    let node1 = Netns::existing(lab.state().nodes[0].netns.clone());
    let log = std::fs::File::create(work.path().join("prometheus.log"))?;
    let child = node1
        .command(
            prometheus_dir
                .join("prometheus")
                .to_str()
                .context("a UTF-8 path")?,
        )
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            work.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting prometheus")?;
    let _prometheus = Prometheus(child);
    let ready = Instant::now();
    while get(&node1, "/-/ready").is_err() {
        if ready.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(work.path().join("prometheus.log"))?;
            bail!("Prometheus not ready after 60 s:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let start = now();
    let mut timeline = Timeline {
        start: Instant::now(),
        events: Vec::new(),
    };
    play(&mut lab, &mut timeline).await?;
    let end = now();

    let board = ferrolb_tests::dashboard::load()?;
    let out_dir = ferrolb_tests::fixtures::repo_path("docs/dashboard");
    std::fs::create_dir_all(&out_dir)?;
    for old in std::fs::read_dir(&out_dir)? {
        let old = old?.path();
        if old.extension().is_some_and(|e| e == "svg") {
            std::fs::remove_file(old)?;
        }
    }
    let mut doc = String::new();
    let mut drawn = 0;
    for panel in board["panels"].as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or("?");
        if panel["type"] == "row" {
            doc.push_str(&format!("\n## {title}\n\n"));
            continue;
        }
        let unit = panel["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or("");
        let mut series = Vec::new();
        let mut queries = Vec::new();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            queries.push(expr.to_owned());
            let expr = expr.replace("$instance", ".*");
            let body = get(
                &node1,
                &format!(
                    "/api/v1/query_range?query={}&start={start}&end={end}&step={STEP_SECONDS}",
                    percent_encode(&expr)
                ),
            )
            .with_context(|| format!("panel {title:?}: {expr}"))?;
            let answer: Value = serde_json::from_str(&body)?;
            let format = target["legendFormat"].as_str().unwrap_or_default();
            for result in answer["data"]["result"].as_array().into_iter().flatten() {
                let labels = result["metric"].as_object().cloned().unwrap_or_default();
                let points: Vec<(f64, f64)> = result["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|pair| {
                        let t = pair[0].as_f64()?;
                        let v: f64 = pair[1].as_str()?.parse().ok()?;
                        Some((t - start as f64, v))
                    })
                    .collect();
                series.push((legend(format, &labels), points));
            }
        }
        let file = format!("{:02}-{}.svg", drawn + 1, slug(title));
        let chart = Lines {
            title: title.to_owned(),
            x_axis: "seconds since the start of the run".into(),
            y_axis: if unit.is_empty() {
                String::new()
            } else {
                format!("unit: {unit}")
            },
            log_x: false,
            log_y: false,
            series,
            break_gaps: true,
            marks: timeline
                .events
                .iter()
                .filter(|(_, _, short)| !short.is_empty())
                .map(|(at, _, short)| (*at as f64, (*short).to_owned()))
                .collect(),
        };
        std::fs::write(out_dir.join(&file), chart.svg())?;
        drawn += 1;
        doc.push_str(&format!(
            "### {title}\n\n![{title}](dashboard/{file})\n\n```promql\n{}\n```\n\n",
            queries.join("\n")
        ));
    }
    let events: Vec<String> = timeline
        .events
        .iter()
        .map(|(s, what, _)| format!("| {s} s | {what} |"))
        .collect();
    let header = format!(
        "# The Grafana dashboard's panels, drawn from the lab\n\n\
         Every panel of `manifests/chart/dashboards/ferrolb.json` (the chart's \
         `grafanaDashboard`), drawn by `tests/bench/dashboard-images.sh` from what a real \
         Prometheus ({}) scraped every 2 s from the lab's 3 speakers and 2 controllers while \
         these events were played (Grafana itself cannot be installed on this machine: no \
         Debian package, and its Go module carries no built web UI). Each panel's own queries \
         were asked over the run, `$instance` = all, in {STEP_SECONDS} s steps, and drawn as \
         lines whatever the panel type (stat, gauge and table panels show the same series over \
         time; dashed lines mark the events).\n\n| at | event |\n|---|---|\n{}\n",
        prometheus_version(prometheus_dir),
        events.join("\n")
    );
    std::fs::write(
        ferrolb_tests::fixtures::repo_path("docs/dashboard.md"),
        format!("{header}{doc}"),
    )?;
    eprintln!("drew {drawn} panels into {}", out_dir.display());
    Ok(())
}

/// `github.com/prometheus/prometheus vX` from the setup script's directory name.
fn prometheus_version(dir: &Path) -> String {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    match name.as_deref().and_then(|n| n.strip_prefix("prometheus-")) {
        Some(version) => {
            format!("built from its Go module, github.com/prometheus/prometheus v{version}")
        }
        None => format!("from {}", dir.display()),
    }
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .context("usage: bench-dashboard-images PROMETHEUS_DIR")?;
    if !is_root() {
        bail!("needs root (network namespaces)");
    }
    tokio::runtime::Runtime::new()?.block_on(run(Path::new(&dir)))
}
