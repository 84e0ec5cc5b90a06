//! End to end on the lab of `./lab`: a real cluster (kubelets, containerd, kube-proxy in every
//! node namespace, Kubernetes' own EndpointSlices), ferrolb installed from install.yaml — and a
//! client on the LAN and one behind the router that only speak HTTP to LoadBalancer IPs. What it asserts is what a user would check with
//! curl: the request reaches a pod, through the right nodes, and keeps working when a node
//! dies; a deleted Service stops answering; a pool change moves the IP and traffic follows.
//!
//! Needs root; skipped otherwise.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context as _;
use ferrolb_tests::cluster::CLIENT;
use ferrolb_tests::cluster::ferrolb::{echo_in_pool, longest_outage, lost, service_event_notes};
use ferrolb_tests::cluster::previous::PreviousBuild;
use ferrolb_tests::fixtures::repo_path;
use ferrolb_tests::image::FERROLB_IMAGE;
use ferrolb_tests::l2cluster::{Prober, wait_for};
use ferrolb_tests::lab::{self, ClusterLab, LabState};
use ferrolb_tests::netns::{Netns, is_root};
use ferrolb_tests::routers::{Router, RouterKind};
use k8s_openapi::api::core::v1::Service;
use kube::Api;

const SETTLE: Duration = Duration::from_secs(30);
/// The prober's interval.
const INTERVAL: Duration = Duration::from_millis(10);

/// The lab of `./lab` (3 nodes, BIRD), healthy; `None` without root.
async fn lab() -> Option<ClusterLab> {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return None;
    }
    let lab = ClusterLab::start(3, RouterKind::Bird, Duration::from_secs(120))
        .await
        .expect("the lab starts");
    lab.wait_healthy(SETTLE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Some(lab)
}

async fn ip_of(client: &kube::Client, name: &str) -> anyhow::Result<IpAddr> {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    wait_for(&format!("{name} gets an IP"), SETTLE, || async {
        let svc = api.get(name).await?;
        Ok(ferrolb_api::service::ingress_ips(&svc)
            .into_iter()
            .find(IpAddr::is_ipv4))
    })
    .await
}

/// Answers seen over `n` requests, waiting for the first to succeed.
async fn answers(state: &LabState, ip: IpAddr, n: usize) -> anyhow::Result<Vec<String>> {
    let s = state.clone();
    wait_for(&format!("{ip} answers"), SETTLE, || {
        let s = s.clone();
        async move { Ok(lab::client_get(&s, ip, 80).ok()) }
    })
    .await?;
    Ok((0..n)
        .filter_map(|_| lab::client_get(state, ip, 80).ok())
        .collect())
}

/// The node whose MAC the LAN client holds for `ip` (after it reached `ip`).
fn announcer(lab: &ClusterLab, ip: IpAddr) -> anyhow::Result<Option<String>> {
    let entry = lab.cluster().host(CLIENT).ns.neighbour(ip, "eth0")?;
    Ok(entry.and_then(|e| e.lladdr).and_then(|mac| {
        lab.state()
            .nodes
            .iter()
            .find(|n| n.mac == mac)
            .map(|n| n.name.clone())
    }))
}

/// A LoadBalancer Service `name` in default selecting pods labelled `app`.
async fn apply_service(
    client: &kube::Client,
    name: &'static str,
    app: &'static str,
) -> anyhow::Result<()> {
    let spec = lab::DemoService {
        name,
        local: false,
        pool: None,
        app,
        external: false,
    };
    Api::<Service>::namespaced(client.clone(), "default")
        .patch(
            name,
            &kube::api::PatchParams::apply("lab-e2e").force(),
            &kube::api::Patch::Apply(lab::demo_service(&spec)),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn layer2_ips_carry_traffic_to_pods_and_survive_a_node_death() {
    let Some(lab) = lab().await else { return };
    let state = lab.state().clone();
    let client = lab.cluster().client();
    apply_service(&client, "web", "echo").await.expect("web");
    let ip = ip_of(&client, "web").await.expect("an IP");

    // Cluster: requests reach pods on several nodes (kube-proxy spreads them).
    let seen = answers(&state, ip, 30).await.expect("answers");
    let pods: BTreeSet<String> = seen
        .iter()
        .filter_map(|a| a.split(' ').next().map(str::to_owned))
        .collect();
    assert!(pods.len() >= 2, "all 30 answers from one pod: {seen:?}");

    // Kill the announcing node: its links go down; another node takes the IP (the client's
    // entry moves to its MAC without being asked again), traffic recovers.
    let owner = announcer(&lab, ip)
        .expect("the client's neighbour table")
        .expect("the client reached the IP through a node");
    let owner_ns = lab.cluster().host(&owner).ns.clone();
    owner_ns.link_down("eth0").expect("node down");
    owner_ns.link_down("cni0").expect("pods gone");
    let next = wait_for(
        "the client's entry moves to another node",
        Duration::from_secs(10),
        || async { Ok(announcer(&lab, ip)?.filter(|n| *n != owner)) },
    )
    .await
    .expect("another node announces the IP");
    let after = answers(&state, ip, 10).await.expect("traffic recovers");
    assert!(
        after.iter().all(|a| !a.contains(&format!("on {owner}"))),
        "answered by the dead node: {after:?}"
    );
    eprintln!("{owner} died; {next} answers for {ip}");
}

#[tokio::test]
async fn a_deleted_service_stops_answering_and_a_pool_change_moves_the_ip() {
    let Some(lab) = lab().await else { return };
    let state = lab.state().clone();
    let client = lab.cluster().client();
    apply_service(&client, "moving", "echo")
        .await
        .expect("moving");
    apply_service(&client, "doomed", "echo")
        .await
        .expect("doomed");
    let doomed = ip_of(&client, "doomed").await.expect("an IP");
    answers(&state, doomed, 1).await.expect("answers first");
    Api::<Service>::namespaced(client.clone(), "default")
        .delete("doomed", &Default::default())
        .await
        .expect("deleted");
    let s = state.clone();
    wait_for("the deleted Service's IP stops answering", SETTLE, || {
        let s = s.clone();
        async move { Ok(lab::client_get(&s, doomed, 80).is_err().then_some(())) }
    })
    .await
    .expect("stops answering");

    // The pool changes to another range: the controller moves the IP, the speakers and
    // kube-proxy follow, and the new IP answers.
    let old = ip_of(&client, "moving").await.expect("an IP");
    lab.cluster()
        .control_plane()
        .apply_yaml(
            "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan, namespace: ferrolb-system}\n\
             spec: {addresses: [\"192.0.2.240-192.0.2.249\"]}\n",
        )
        .await
        .expect("pool changed");
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let new = wait_for("the IP moves into the new range", SETTLE, || async {
        let svc = api.get("moving").await?;
        Ok(ferrolb_api::service::ingress_ips(&svc)
            .into_iter()
            .find(|ip| ip.to_string().starts_with("192.0.2.24")))
    })
    .await
    .context("moved")
    .expect("the IP moves");
    assert_ne!(new, old);
    answers(&state, new, 3)
        .await
        .expect("traffic follows the new IP");
}

fn lab_command(state_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ferrolb-lab"))
        .args(args)
        .env("FERROLB_LAB_STATE", state_dir)
        .output()
        .expect("ferrolb-lab runs")
}

/// Working directories (control plane, cluster, router) in the temporary directory that
/// process `pid` owns.
fn workdirs_of(pid: u32) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    std::fs::read_to_string(p.join("owner.pid"))
                        .is_ok_and(|owner| owner.trim() == pid.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The nodes' cgroup roots of process `pid`'s clusters (memory hierarchy).
fn cgroups_of(pid: u32) -> Vec<String> {
    std::fs::read_dir("/sys/fs/cgroup/memory")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("ferrolb-{pid}-")))
                .collect()
        })
        .unwrap_or_default()
}

fn namespaces_of(pid: u32) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("flb{pid}-")))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn down_removes_everything_even_after_the_lab_crashed() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let dir = tempfile::tempdir().expect("state dir");
    let up = lab_command(dir.path(), &["up", "--nodes", "2"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    // Idempotent: a second `up` finds it running.
    let again = lab_command(dir.path(), &["up"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("the lab is up"));
    let state: LabState = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("state.json")).expect("state written"),
    )
    .expect("state parses");
    assert!(!namespaces_of(state.pid).is_empty());
    assert!(
        workdirs_of(state.pid).len() >= 3,
        "control plane, cluster and router directories: {:?}",
        workdirs_of(state.pid)
    );
    assert!(!cgroups_of(state.pid).is_empty(), "the nodes' cgroups");
    let children: Vec<String> = std::process::Command::new("pgrep")
        .args(["-P", &state.pid.to_string()])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !children.is_empty(),
        "the supervisor runs the lab's processes"
    );

    // Crash: the supervisor dies without cleaning up.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(state.pid).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("killed");
    let down = lab_command(dir.path(), &["down"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(
        namespaces_of(state.pid).is_empty(),
        "namespaces left: {:?}",
        namespaces_of(state.pid)
    );
    assert_eq!(
        workdirs_of(state.pid),
        Vec::<std::path::PathBuf>::new(),
        "directories left"
    );
    assert_eq!(cgroups_of(state.pid), Vec::<String>::new(), "cgroups left");
    let alive = || {
        children
            .iter()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|stat| !stat.contains(") Z "))
            })
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        alive(),
        0,
        "processes of the lab are still running: {children:?}"
    );
}

/// Next hops `router` holds for `ip`/32.
fn next_hops(router: &Router, ip: IpAddr) -> anyhow::Result<BTreeSet<IpAddr>> {
    let prefix = ipnet::IpNet::from(ip);
    Ok(router
        .routes()?
        .into_iter()
        .filter(|r| r.prefix == prefix)
        .map(|r| r.next_hop)
        .collect())
}

/// The node a connection entered by, from the client address the pod saw: the node's LAN
/// address (192.0.2.k) or, when the pod is on that node, its pod bridge (198.18.k.1).
fn entry_node(answer: &str) -> Option<String> {
    let seen: std::net::Ipv4Addr = answer.rsplit(' ').next()?.parse().ok()?;
    match seen.octets() {
        [192, 0, 2, k] | [198, 18, k, 1] => Some(format!("node-{k}")),
        _ => None,
    }
}

#[tokio::test]
async fn bgp_ips_reach_pods_from_behind_bird_over_every_node() {
    bgp_ips_reach_pods_from_behind_the_router(RouterKind::Bird).await;
}

#[tokio::test]
async fn bgp_ips_reach_pods_from_behind_frr_over_every_node() {
    bgp_ips_reach_pods_from_behind_the_router(RouterKind::Frr).await;
}

#[tokio::test]
async fn bgp_ips_reach_pods_from_behind_gobgp_over_every_node() {
    bgp_ips_reach_pods_from_behind_the_router(RouterKind::Gobgp).await;
}

/// On the real cluster of `./lab demo` (kubelets, containers, ferrolb from install.yaml, the
/// endpoint controller's EndpointSlices): the demo's Services answer on the LAN and from
/// behind `router`, over every node; eTP Local keeps the client's address; a dead node's path
/// goes and a deleted Service's route is withdrawn.
async fn bgp_ips_reach_pods_from_behind_the_router(router: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let lab = ClusterLab::start(3, router, Duration::from_secs(120))
        .await
        .expect("the lab starts");
    lab.wait_healthy(SETTLE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.router().describe()));
    let state = lab.state().clone();
    let client = lab.cluster().client();
    lab::apply_demo(&client, "node-3").await.expect("the demo");

    // Layer 2, Cluster: the LAN client reaches pods on several nodes.
    let web = ip_of(&client, "web").await.expect("an IP");
    let seen = answers(&state, web, 20).await.expect("web answers");
    let pods: BTreeSet<&str> = seen.iter().filter_map(|a| a.split(' ').next()).collect();
    assert!(pods.len() >= 2, "20 answers all from one pod: {seen:?}");

    // Layer 2, Local: only the pod on node-3 answers, and sees the client's own address.
    let local = ip_of(&client, "web-local").await.expect("an IP");
    let seen = answers(&state, local, 5).await.expect("web-local answers");
    for a in &seen {
        assert!(
            a.starts_with("web-local-")
                && a.ends_with(&format!(" on node-3, client {}", state.client_ip)),
            "{a}"
        );
    }

    assert_eq!(
        announcer(&lab, local).expect("neighbour table").as_deref(),
        Some("node-3"),
        "Local announces from the endpoint's node"
    );

    // BGP: one path per node at the router, connections from outside spread over them.
    let ip = ip_of(&client, "web-bgp").await.expect("an IP");
    assert!(
        ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(198, 51, 100, 0), 24)
            .expect("net")
            .contains(&match ip {
                IpAddr::V4(v4) => v4,
                IpAddr::V6(_) => panic!("{ip} is not IPv4"),
            }),
        "{ip} is not from the bgp pool"
    );
    let node_ips: BTreeSet<IpAddr> = state.nodes.iter().map(|n| IpAddr::V4(n.ipv4)).collect();
    wait_for("the router holds a path per node", SETTLE, || async {
        Ok((next_hops(lab.router(), ip)? == node_ips).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.router().describe()));
    let get = |s: &LabState| lab::external_get(s, ip, 80);
    wait_for("the BGP IP answers from outside", SETTLE, || async {
        Ok(get(&state).ok())
    })
    .await
    .expect("answers");
    let seen: Vec<String> = (0..30).filter_map(|_| get(&state).ok()).collect();
    let entries: BTreeSet<String> = seen.iter().filter_map(|a| entry_node(a)).collect();
    assert!(
        entries.len() >= 2,
        "30 connections all entered by one node: {seen:?}"
    );
    // One Event tells the Service who advertises it, not one per node (issue #14).
    let told = service_event_notes(&client, "default", "web-bgp", "nodeAssigned")
        .await
        .expect("events");
    assert_eq!(
        told,
        [r#"announcing from nodes "node-1", "node-2", "node-3" with protocol "bgp""#],
        "nodeAssigned Events of web-bgp"
    );

    // With layer-2 and BGP traffic served and BFD up (BIRD and FRR run it), every query of the
    // Grafana dashboard finds its metrics and labels in what the speakers and controllers
    // export (issue #17: no dead panels).
    if router != RouterKind::Gobgp {
        ferrolb_tests::dashboard::check_lab(&lab)
            .await
            .expect("the dashboard's queries");
    }

    // eTP Local over BGP: only the node with the pod advertises, and the client's address is
    // kept all the way to the pod.
    let bgp_local = lab::DemoService {
        name: "bgp-local",
        local: true,
        pool: Some("bgp"),
        app: "web-local",
        external: true,
    };
    Api::<Service>::namespaced(client.clone(), "default")
        .patch(
            bgp_local.name,
            &kube::api::PatchParams::apply("lab-e2e").force(),
            &kube::api::Patch::Apply(lab::demo_service(&bgp_local)),
        )
        .await
        .expect("bgp-local");
    let local_ip = ip_of(&client, "bgp-local").await.expect("an IP");
    let node_3 = IpAddr::V4(lab.cluster().host("node-3").ipv4);
    wait_for("only node-3 advertises bgp-local", SETTLE, || async {
        Ok((next_hops(lab.router(), local_ip)? == BTreeSet::from([node_3])).then_some(()))
    })
    .await
    .expect("one path");
    let local_seen = wait_for("bgp-local answers", SETTLE, || async {
        Ok(lab::external_get(&state, local_ip, 80).ok())
    })
    .await
    .expect("answers");
    assert!(
        local_seen.starts_with("web-local-")
            && local_seen.ends_with(&format!(" on node-3, client {}", state.external_ip)),
        "{local_seen}"
    );

    // A node dies (its links go down): the router drops its path when BFD or the hold time
    // says so. Its echo pod is deleted, as the pod garbage collector would once the node is
    // gone, so the endpoint controller takes it out of the EndpointSlice.
    let dead = "node-1";
    let dead_ns = lab.cluster().host(dead).ns.clone();
    dead_ns.link_down("eth0").expect("node down");
    dead_ns.link_down("cni0").expect("pods gone");
    let dead_ip = IpAddr::V4(lab.cluster().host(dead).ipv4);
    wait_for(
        "the router drops the dead node's path",
        Duration::from_secs(30),
        || async { Ok((!next_hops(lab.router(), ip)?.contains(&dead_ip)).then_some(())) },
    )
    .await
    .expect("path withdrawn");
    let dead_pod = state
        .pods
        .iter()
        .find(|p| p.node == dead)
        .expect("an echo pod on the dead node");
    lab.cluster()
        .kubectl(&[
            "delete",
            "pod",
            &dead_pod.name,
            "--force",
            "--grace-period=0",
        ])
        .await
        .and_then(|o| o.into_stdout())
        .expect("pod deleted");
    wait_for(
        "the live nodes' kube-proxy drops the dead pod",
        SETTLE,
        || async {
            let ok = (0..10).all(|_| get(&state).is_ok_and(|b| !b.contains(&format!("on {dead}"))));
            Ok(ok.then_some(()))
        },
    )
    .await
    .expect("ten connections in a row served by live nodes");
    let after: Vec<anyhow::Result<String>> = (0..10).map(|_| get(&state)).collect();
    for a in &after {
        let body = a
            .as_ref()
            .expect("every connection is served by a live node");
        assert_ne!(entry_node(body).as_deref(), Some(dead), "{body}");
        assert!(!body.contains(&format!("on {dead}")), "{body}");
    }

    // The Service goes: the route is withdrawn and the IP stops answering.
    Api::<Service>::namespaced(client.clone(), "default")
        .delete("web-bgp", &Default::default())
        .await
        .expect("delete");
    wait_for("the router withdraws the route", SETTLE, || async {
        Ok(next_hops(lab.router(), ip)?.is_empty().then_some(()))
    })
    .await
    .expect("withdrawn");
    // The router's kernel route (for GoBGP, copied from its RIB every 200 ms) and kube-proxy's
    // rules follow.
    wait_for("the deleted Service stops answering", SETTLE, || async {
        Ok(get(&state).is_err().then_some(()))
    })
    .await
    .expect("the IP goes quiet");
}

/// A rollback of ferrolb to an earlier build and the upgrade back to this checkout's
/// (speakers and controllers: a new pod on every node in turn, each by `kubectl apply
/// --server-side` of that build's `install.yaml`) while the client behind the router sends a UDP
/// request every 10 ms through a BGP IP: not one is lost either way. Each departing speaker first
/// re-advertises its path with GRACEFUL_SHUTDOWN (65535:0) and AS-path prepends, so BIRD stops
/// using it while it still forwards, and withdraws it only after the drain time (issue #15); the
/// router keeps the flow on the other nodes' paths meanwhile (issue #12, the BGP prober).
#[tokio::test]
async fn a_rollback_and_an_upgrade_lose_no_request_through_a_bgp_ip() {
    let Some(lab) = lab().await else { return };
    let state = lab.state().clone();
    let cluster = lab.cluster();
    let client = cluster.client();
    cluster
        .kubectl_ok(
            &["apply", "-f", "-"],
            Some(&echo_in_pool(3, false, Some("bgp"))),
        )
        .await
        .expect("the echo workload");
    let ip = ip_of(&client, "echo").await.expect("an IP");
    let node_ips: BTreeSet<IpAddr> = state.nodes.iter().map(|n| IpAddr::V4(n.ipv4)).collect();
    let every_path = || async {
        wait_for("the router holds a path per node", SETTLE, || async {
            Ok((next_hops(lab.router(), ip)? == node_ips).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.router().describe()));
    };
    every_path().await;
    let external = Netns::existing(state.external_netns.clone());
    wait_for("the BGP IP answers the prober", SETTLE, || async {
        let prober = Prober::start(&external, ip, INTERVAL)?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(prober
            .finish()?
            .iter()
            .any(|p| p.answer.is_some())
            .then_some(()))
    })
    .await
    .expect("the echo pods answer");

    let previous = PreviousBuild::build().expect("the earlier build to roll back to");
    cluster
        .import_image(&previous.archive)
        .expect("the earlier build's image imported");
    let current = repo_path("manifests/install.yaml");
    for (event, install, image) in [
        (
            "rollback",
            previous.install.as_path(),
            previous.image.as_str(),
        ),
        ("upgrade", current.as_path(), FERROLB_IMAGE),
    ] {
        let before = cluster
            .ferrolb_image_ids()
            .await
            .expect("the running build");
        let prober = Prober::start(&external, ip, INTERVAL).expect("the prober");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = std::time::Instant::now();
        // Meanwhile, which nodes' paths the router had out of use at some point (withdrawn, or
        // marked 65535:0 while draining): each node must have been, or the rollout moved no
        // flow.
        let done = std::sync::atomic::AtomicBool::new(false);
        let rollout = async {
            let result = cluster.roll_ferrolb_to(install, image).await;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            result
        };
        let watch_paths = async {
            let mut out_of_use = BTreeSet::new();
            let prefix = ipnet::IpNet::from(ip);
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(routes) = lab.router().routes() {
                    let in_use: BTreeSet<IpAddr> = routes
                        .iter()
                        .filter(|r| r.prefix == prefix && !r.communities.contains("65535:0"))
                        .map(|r| r.next_hop)
                        .collect();
                    out_of_use.extend(node_ips.difference(&in_use).copied());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            out_of_use
        };
        let (rolled_out, out_of_use) = tokio::join!(rollout, watch_paths);
        rolled_out.unwrap_or_else(|e| panic!("the {event}: {e:#}"));
        let rolled = started.elapsed();
        let after = cluster
            .ferrolb_image_ids()
            .await
            .expect("the running build");
        assert!(
            !before.is_empty() && before.is_disjoint(&after),
            "the {event} ran no other build: before {before:?}, after {after:?}"
        );
        assert_eq!(
            out_of_use, node_ips,
            "not every node's path was drained during the {event}"
        );
        every_path().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let probes = prober.finish().expect("the prober's record");
        let lost = lost(&probes);
        eprintln!(
            "lab-bgp: {event} sent={} lost={lost} outage_ms={} rollout_s={:.1}",
            probes.len(),
            longest_outage(&probes).as_millis(),
            rolled.as_secs_f64()
        );
        let answered_by: BTreeSet<&str> = probes
            .iter()
            .filter_map(|p| p.answer.as_ref().map(|(pod, _)| pod.as_str()))
            .collect();
        assert!(
            probes.len() > 1000,
            "the prober ran only {} requests",
            probes.len()
        );
        assert_eq!(
            lost,
            0,
            "{lost} of {} requests lost during the {event} (answered by {answered_by:?})\n{}",
            probes.len(),
            lab.router().describe()
        );
    }
}
