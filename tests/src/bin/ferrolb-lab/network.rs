//! `up`, `status`, `demo`, `down` and the background supervisor that owns a running lab.

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use ferrolb_api::{ServiceBGPStatus, ServiceL2Status};
use ferrolb_tests::apiserver::client_from_kubeconfig;
use ferrolb_tests::lab::{self, ClusterLab, LabState};
use ferrolb_tests::routers::RouterKind;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::ListParams;

/// How long the lab may take to come up and pass its health checks, once every binary is built.
const UP_TIMEOUT: Duration = Duration::from_secs(240);
/// How long the supervisor waits for ferrolb's pods and the echo pods, once the cluster is up.
const PODS_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the supervisor retries the health checks once the pods are ready.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
/// The supervisor's health report, next to its state.
const HEALTH_FILE: &str = "health.txt";

/// Starts the supervisor in the background unless a lab already runs; returns its state.
pub fn up(nodes: usize, router: RouterKind) -> anyhow::Result<LabState> {
    if let Some(state) = lab::running_state() {
        println!(
            "the lab is up (supervisor pid {}, {} nodes)",
            state.pid,
            state.nodes.len()
        );
        return Ok(state);
    }
    if !ferrolb_tests::netns::is_root() {
        bail!("the lab needs root (network namespaces, raw sockets)");
    }
    // Builds are waited for however long they take (`./lab` has done them already); the
    // timeout below counts from when everything is there.
    if std::env::var_os(ferrolb_tests::apiserver::BIN_DIR_ENV).is_none() {
        println!(
            "locating the Kubernetes binaries (tests/setup/control-plane.sh; a cold build takes ~6 min)..."
        );
    }
    let missing = lab::missing_prerequisites(router);
    if !missing.is_empty() {
        return Err(lab::HealthError::Missing(missing).into());
    }
    let k8s_bin = ferrolb_tests::apiserver::binaries().dir().to_path_buf();
    // Whatever a crashed lab left behind goes first.
    ferrolb_tests::netns::sweep_stale();
    let dir = lab::state_dir();
    std::fs::create_dir_all(&dir)?;
    let _ = std::fs::remove_file(dir.join("state.json"));
    let _ = std::fs::remove_file(dir.join(HEALTH_FILE));
    let log = dir.join("lab.log");
    let out = std::fs::File::create(&log)?;
    let err = out.try_clone()?;
    let exe = std::env::current_exe()?;
    println!("building the lab ({nodes} nodes, {router} router)...");
    let started = Instant::now();
    let mut child = Command::new("setsid")
        .env(ferrolb_tests::apiserver::BIN_DIR_ENV, &k8s_bin)
        .env(
            ferrolb_tests::cluster::IMAGES_ENV,
            ferrolb_tests::cluster::built_images_dir(),
        )
        .arg(&exe)
        .args([
            "supervise",
            "--nodes",
            &nodes.to_string(),
            "--router",
            &router.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .context("cannot start the lab supervisor")?;
    loop {
        if let Some(state) = lab::running_state() {
            let health = std::fs::read_to_string(dir.join(HEALTH_FILE)).unwrap_or_default();
            println!(
                "the lab is up in {:.1?}: {} nodes, client {}; log {}\n{}",
                started.elapsed(),
                state.nodes.len(),
                state.client_ip,
                log.display(),
                health.trim_end()
            );
            return Ok(state);
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the lab supervisor exited ({status}):\n{}",
                tail(&std::fs::read_to_string(&log).unwrap_or_default(), 30)
            );
        }
        if started.elapsed() > UP_TIMEOUT {
            let _ = child.kill();
            bail!(
                "the lab did not come up within {UP_TIMEOUT:?}:\n{}",
                tail(&std::fs::read_to_string(&log).unwrap_or_default(), 30)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The supervisor: builds the lab, publishes its state, and tears it down on SIGTERM.
pub async fn supervise(nodes: usize, router: RouterKind) -> anyhow::Result<()> {
    let lab = ClusterLab::start(nodes, router, PODS_TIMEOUT).await?;
    // Up means working: the checks name what is not.
    let checks = lab.wait_healthy(HEALTH_TIMEOUT).await?;
    let dir = lab::state_dir();
    let report: String = checks.iter().map(|c| format!("  {c}\n")).collect();
    std::fs::write(dir.join(HEALTH_FILE), report)?;
    let tmp = dir.join("state.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(lab.state())?)?;
    std::fs::rename(&tmp, dir.join("state.json"))?;
    println!("lab up: {}", serde_json::to_string(lab.state())?);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("tearing the lab down");
    let _ = std::fs::remove_file(dir.join("state.json"));
    drop(lab);
    Ok(())
}

/// Stops the supervisor and removes what the lab left.
pub fn down() -> anyhow::Result<()> {
    if let Some(state) = lab::running_state() {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(state.pid)?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::path::Path::new("/proc")
            .join(state.pid.to_string())
            .exists()
        {
            if Instant::now() > deadline {
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL)?;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        println!("stopped the lab (supervisor pid {})", state.pid);
    }
    // Gone supervisors' namespaces and cgroups; their processes died with them (PDEATHSIG,
    // and the nodes' pid namespaces).
    let swept = ferrolb_tests::netns::sweep_stale();
    let cgroups = ferrolb_tests::cluster::sweep_stale_cgroups();
    ferrolb_tests::apiserver::sweep_stale_workdirs();
    let _ = std::fs::remove_file(lab::state_dir().join("state.json"));
    println!(
        "removed {swept} leftover namespaces and {cgroups} cgroups; nothing of the lab remains"
    );
    Ok(())
}

/// kubectl as the lab's admin; its output, or its error.
fn kubectl(state: &LabState, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(ferrolb_tests::apiserver::binaries().kubectl())
        .arg(format!("--kubeconfig={}", state.kubeconfig.display()))
        .args(args)
        .output()
        .context("cannot run kubectl")?;
    if !out.status.success() {
        bail!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn client(state: &LabState) -> anyhow::Result<kube::Client> {
    client_from_kubeconfig(&state.kubeconfig).await
}

/// Nodes, pods, LoadBalancer Services and who announces them.
pub async fn status() -> anyhow::Result<()> {
    let state =
        lab::running_state().ok_or_else(|| anyhow!("the lab is not up (run `ferrolb-lab up`)"))?;
    println!("{:<8} {:<13} {:<19} POD CIDR", "NODE", "LAN IP", "MAC");
    for n in &state.nodes {
        println!("{:<8} {:<13} {:<19} {}", n.name, n.ipv4, n.mac, n.pod_cidr);
    }
    println!(
        "\n$ kubectl get pods -A -o wide   (KUBECONFIG={})",
        state.kubeconfig.display()
    );
    print!("{}", kubectl(&state, &["get", "pods", "-A", "-o", "wide"])?);
    println!(
        "\nrouter: {} at {} (AS {}), external client {}\n  its routes: {}",
        state.router.kind,
        state.router.ipv4,
        lab::ROUTER_AS,
        state.external_ip,
        state.router.show_routes
    );
    let client = client(&state).await?;
    print_services(&client, &state).await?;
    // BGP sessions are checked by `up`, which holds the router; the rest is checked again.
    println!("\nhealth:");
    for check in lab::state_health(&state, &client).await {
        println!("  {check}");
    }
    Ok(())
}

/// (Service, node) for every ServiceL2Status, every ServiceBGPStatus (with
/// `--service-bgp-status`) and every node a Service's `ferrolb.io/BGPAdvertised` condition names.
async fn announcers(client: &kube::Client) -> anyhow::Result<Vec<(String, String)>> {
    let ns = ferrolb_api::DEFAULT_NAMESPACE;
    let key = |namespace: Option<String>, name: Option<String>| {
        format!(
            "{}/{}",
            namespace.unwrap_or_default(),
            name.unwrap_or_default()
        )
    };
    let l2 = Api::<ServiceL2Status>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|s| {
            let st = s.status?;
            Some((key(st.service_namespace, st.service_name), st.node?))
        });
    let bgp = Api::<ServiceBGPStatus>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|s| {
            let st = s.status?;
            Some((key(st.service_namespace, st.service_name), st.node?))
        });
    // By default the speakers report BGP on the Service itself (its ferrolb.io/BGPAdvertised
    // condition), not as ServiceBGPStatus.
    let conditions: Vec<(String, String)> = Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .flat_map(|s| {
            let svc = key(s.metadata.namespace, s.metadata.name);
            s.status
                .and_then(|st| st.conditions)
                .unwrap_or_default()
                .into_iter()
                .filter(|c| {
                    c.type_ == ferrolb_speaker::report::BGP_ADVERTISED && c.status == "True"
                })
                .flat_map(|c| ferrolb_speaker::report::advertising_nodes(&c.message))
                .map(move |node| (svc.clone(), node))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut all: Vec<(String, String)> = l2.chain(bgp).chain(conditions).collect();
    all.sort();
    all.dedup();
    Ok(all)
}

async fn print_services(client: &kube::Client, state: &LabState) -> anyhow::Result<()> {
    let services: Vec<Service> = Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|s| s.spec.as_ref().and_then(|x| x.type_.as_deref()) == Some("LoadBalancer"))
        .collect();
    let announced = announcers(client).await?;
    println!(
        "\n{:<18} {:<16} {:<8} ANNOUNCED BY",
        "SERVICE", "LOADBALANCER IP", "POLICY"
    );
    for s in &services {
        let key = format!(
            "{}/{}",
            s.metadata.namespace.as_deref().unwrap_or_default(),
            s.metadata.name.as_deref().unwrap_or_default()
        );
        let ips = ferrolb_api::service::ingress_ips(s);
        let by: Vec<String> = announced
            .iter()
            .filter(|(svc, _)| *svc == key)
            .map(|(_, node)| {
                let mac = state
                    .nodes
                    .iter()
                    .find(|n| n.name == *node)
                    .map_or("", |n| n.mac.as_str());
                format!("{node} ({mac})")
            })
            .collect();
        println!(
            "{:<18} {:<16} {:<8} {}",
            key,
            ips.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            if ferrolb_api::service::traffic_policy_local(s) {
                "Local"
            } else {
                "Cluster"
            },
            if by.is_empty() {
                "-".to_owned()
            } else {
                by.join(", ")
            }
        );
    }
    Ok(())
}

/// Creates the demo Services and shows what a client on the LAN, and one behind the router,
/// get through their IPs.
pub async fn demo(nodes: usize, router: RouterKind) -> anyhow::Result<()> {
    let state = match lab::running_state() {
        Some(s) => s,
        None => up(nodes, router)?,
    };
    let client = client(&state).await?;
    let second = state
        .nodes
        .get(1)
        .or(state.nodes.first())
        .map_or("node-1", |n| n.name.as_str());
    lab::apply_demo(&client, second).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    println!(
        "created in namespace default (EndpointSlices are Kubernetes' own, from the selectors):"
    );
    println!(
        "  web       layer 2, externalTrafficPolicy Cluster, the echo DaemonSet's pods (one per node)"
    );
    println!(
        "  web-local layer 2, externalTrafficPolicy Local, Deployment web-local: one pod on {second}"
    );
    println!(
        "  web-bgp   BGP (pool bgp), externalTrafficPolicy Cluster, the echo DaemonSet's pods"
    );

    // Wait for IPs, announcements and answers.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut rows = Vec::new();
    for s in &lab::DEMO_SERVICES {
        let (ip, answers) = loop {
            let svc = services.get(s.name).await?;
            let ip = ferrolb_api::service::ingress_ips(&svc)
                .into_iter()
                .find(IpAddr::is_ipv4);
            let key = format!("default/{}", s.name);
            let recorded = announcers(&client)
                .await?
                .iter()
                .any(|(svc, _)| *svc == key);
            if let Some(ip) = ip
                && recorded
            {
                let answers = sample(&state, ip, 8, s.external);
                if !answers.is_empty() {
                    break (ip, answers);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "default/{} did not answer through its LoadBalancer IP within 90 s",
                    s.name
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        rows.push((s, ip, answers));
    }
    let announced = announcers(&client).await?;
    println!(
        "\nEight HTTP requests to each LoadBalancer IP, from the LAN client ({}) or the external\n\
         client ({}, behind the router):\n",
        state.client_ip, state.external_ip
    );
    println!(
        "{:<17} {:<7} {:<14} {:<8} {:<27} ANSWERS (pod on node, client address the pod saw)",
        "SERVICE", "POLICY", "IP", "FROM", "ANNOUNCED BY"
    );
    for (s, ip, answers) in &rows {
        let key = format!("default/{}", s.name);
        let by: Vec<String> = announced
            .iter()
            .filter(|(svc, _)| *svc == key)
            .map(|(_, n)| n.clone())
            .collect();
        let by = if s.external {
            format!("{} (BGP)", by.join(","))
        } else {
            let node = by.first().cloned().unwrap_or_else(|| "-".to_owned());
            let mac = state
                .nodes
                .iter()
                .find(|n| n.name == node)
                .map_or("", |n| n.mac.as_str());
            format!("{node} {mac}")
        };
        for (i, a) in answers.iter().enumerate() {
            if i == 0 {
                println!(
                    "{:<17} {:<7} {:<14} {:<8} {:<27} {a}",
                    key,
                    if s.local { "Local" } else { "Cluster" },
                    ip.to_string(),
                    if s.external { "external" } else { "LAN" },
                    by
                );
            } else {
                println!("{:<17} {:<7} {:<14} {:<8} {:<27} {a}", "", "", "", "", "");
            }
        }
    }
    println!(
        "\nWhat happened: for the layer-2 IPs the LAN client asked who has each IP (ARP); only the\n\
         elected node's speaker answered, with its MAC, so the request went to that node. For the\n\
         BGP IP every node's speaker advertised a route to the router, which holds one path per\n\
         node and hashes each connection onto one of them (ECMP) - the client address the pod\n\
         saw is that of the node the connection entered by (its LAN or pod-bridge address). On the node, kube-proxy's nftables rules\n\
         turned the LoadBalancer IP into a pod IP: for Cluster any node's pod, with the client's\n\
         address replaced by the node's (so the reply comes back the same way); for Local only a\n\
         pod on the announcing node, with the client's own address kept. Pod IPs are routed\n\
         between nodes without NAT. See it with:\n\
         ip netns exec {} nft list ruleset | grep -A3 <ip>     (kube-proxy's rules)\n\
         ip netns exec {} ip neigh                             (the LAN client's ARP table)\n\
         ip netns exec {} ip route                             (the router's ECMP routes)\n\
         {}   (the router's BGP view)",
        state.nodes.first().map_or("", |n| n.netns.as_str()),
        state.client_netns,
        state.router.netns,
        state.router.show_routes
    );
    Ok(())
}

/// `n` requests from the LAN client (or the external one); the distinct answers, in order of
/// first appearance.
fn sample(state: &LabState, ip: IpAddr, n: usize, external: bool) -> Vec<String> {
    let mut answers: Vec<String> = Vec::new();
    for _ in 0..n {
        let got = if external {
            lab::external_get(state, ip, 80)
        } else {
            lab::client_get(state, ip, 80)
        };
        if let Ok(body) = got
            && !answers.contains(&body)
        {
            answers.push(body);
        }
    }
    answers
}
