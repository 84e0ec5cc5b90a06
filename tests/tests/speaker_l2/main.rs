//! The layer-2 speaker end to end: real `ferrolb-speaker` processes in three node namespaces on
//! one LAN, a real apiserver, and a client whose kernel resolves the LoadBalancer IPs. Each test
//! checks what a user on the LAN would see: which MAC the client's neighbour table holds for an
//! IP, whether requests to it are answered, and by which node.
//!
//! Needs root (network namespaces, raw sockets); skipped with a message otherwise.
//! Services whose endpoints come, go or never were are in `endpoints.rs`.

mod endpoints;
mod restart;

use std::net::IpAddr;
use std::time::Duration;

use ferrolb_api::ServiceL2Status;
use ferrolb_tests::l2cluster::{
    APP_NAMESPACE, L2Cluster, NAMESPACE, Probe, Prober, TestService, failover_gap, http_get,
    wait_for,
};
use ferrolb_tests::netns::is_root;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

const SETTLE: Duration = Duration::from_secs(20);
const MOVE: Duration = Duration::from_secs(5);

fn ip(text: &str) -> IpAddr {
    text.parse().expect("valid test IP")
}

async fn cluster() -> Option<L2Cluster> {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return None;
    }
    let cluster = L2Cluster::start(3, &[]).await.expect("cluster starts");
    cluster
        .wait_speakers_ready(SETTLE)
        .await
        .expect("speakers become ready");
    Some(cluster)
}

fn all(cluster: &L2Cluster) -> Vec<String> {
    cluster.nodes().to_vec()
}

/// The node the speakers' own election picks for `ip`, with `live` speakers.
async fn owner(cluster: &L2Cluster, ip: IpAddr, live: &[String]) -> String {
    cluster
        .expected_owner(ip, live)
        .await
        .expect("election inputs readable")
        .expect("some node is elected")
}

/// Stops the prober and asserts that every request was answered; returns the requests.
fn finish_without_loss(prober: Prober) -> Vec<Probe> {
    let probes = prober.finish().expect("prober results");
    let lost: Vec<u32> = probes
        .iter()
        .filter(|p| p.answer.is_none())
        .map(|p| p.seq)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} requests lost: {lost:?}",
        lost.len(),
        probes.len()
    );
    probes
}

async fn statuses_of(cluster: &L2Cluster, service: &str) -> Vec<String> {
    Api::<ServiceL2Status>::namespaced(cluster.client(), NAMESPACE)
        .list(&ListParams::default().labels(&format!("ferrolb.io/service-name={service}")))
        .await
        .expect("statuses listed")
        .items
        .into_iter()
        .filter_map(|s| s.status.and_then(|st| st.node))
        .collect()
}

#[tokio::test]
async fn the_client_resolves_each_ip_to_the_elected_node_over_arp_and_ndp() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let svc = TestService::new("dual", &["192.0.2.201", "2001:db8:0:1::201"], "node-1");
    cluster.create_service(&svc).await.expect("service created");
    for vip in &svc.ips {
        let expected = owner(&cluster, *vip, &all(&cluster)).await;
        let mac = cluster.resolve(*vip, SETTLE).await.expect("resolved");
        assert_eq!(
            cluster.node_with_mac(&mac).as_deref(),
            Some(expected.as_str()),
            "{vip} resolved to {mac}\n{}",
            cluster.describe()
        );
    }
    // The elected node records what it announces; nobody else does.
    let v4_owner = owner(&cluster, svc.ips[0], &all(&cluster)).await;
    let v6_owner = owner(&cluster, svc.ips[1], &all(&cluster)).await;
    let mut want = vec![v4_owner, v6_owner];
    want.sort();
    want.dedup();
    let got = wait_for(
        "ServiceL2Status names the announcing nodes",
        SETTLE,
        || async {
            let mut got = statuses_of(&cluster, "dual").await;
            got.sort();
            Ok((got == want).then_some(got))
        },
    )
    .await
    .expect("status written");
    assert_eq!(got, want);
    // Each IP's node keeps its object: neither takes the other's for stale (they fought once,
    // each deleting the other's, over and over).
    let versions = || async {
        let mut seen: Vec<(String, String)> =
            Api::<ServiceL2Status>::namespaced(cluster.client(), NAMESPACE)
                .list(&ListParams::default().labels("ferrolb.io/service-name=dual"))
                .await
                .expect("statuses listed")
                .items
                .into_iter()
                .map(|s| (s.name_any(), s.resource_version().unwrap_or_default()))
                .collect();
        seen.sort();
        seen
    };
    let before = versions().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(versions().await, before, "the statuses were rewritten");

    // The owner says so: an Event on the Service, and its metrics.
    let events = Api::<Event>::namespaced(cluster.client(), APP_NAMESPACE);
    let v4_owner = owner(&cluster, svc.ips[0], &all(&cluster)).await;
    let note = wait_for("a nodeAssigned Event", SETTLE, || async {
        Ok(events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("nodeAssigned")
                    && e.note.as_deref().is_some_and(|n| n.contains(&v4_owner))
            })
            .and_then(|e| e.note))
    })
    .await
    .expect("nodeAssigned published");
    assert!(note.contains("layer2"), "{note}");
    let metrics = cluster
        .host(&v4_owner)
        .ns
        .run(|| http_get("127.0.0.1:7472", "/metrics"))
        .expect("in the namespace")
        .expect("metrics served");
    assert!(
        metrics.contains("ferrolb_speaker_membership_members_alive 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ferrolb_speaker_layer2_requests_received_total{"),
        "{metrics}"
    );

    // An IP no Service holds is never answered.
    let unused = ip("192.0.2.230");
    cluster.poke(unused).expect("poked");
    let entry = wait_for("the unused IP's resolution fails", SETTLE, || async {
        Ok(cluster
            .client_neighbour(unused)?
            .filter(|e| e.is("FAILED") || (e.lladdr.is_some() && !e.is("INCOMPLETE"))))
    })
    .await
    .expect("resolution ends");
    assert!(
        entry.is("FAILED"),
        "someone answered for {unused}: {entry:?}"
    );
}

#[tokio::test]
async fn a_second_service_sharing_the_ip_lands_on_the_same_node() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let mut a = TestService::new("shared-a", &["192.0.2.202"], "node-1");
    a.sharing_key = Some("k".into());
    let mut b = TestService::new("shared-b", &["192.0.2.202"], "node-2");
    b.sharing_key = Some("k".into());
    cluster.create_service(&a).await.expect("a created");
    let mac = cluster.resolve(a.ips[0], SETTLE).await.expect("resolved");
    cluster.create_service(&b).await.expect("b created");
    let node = cluster.node_with_mac(&mac).expect("a node's MAC");
    for service in ["shared-a", "shared-b"] {
        wait_for(
            &format!("{service} is recorded on {node}"),
            SETTLE,
            || async { Ok((statuses_of(&cluster, service).await == [node.clone()]).then_some(())) },
        )
        .await
        .expect("status written");
    }
    cluster
        .lan()
        .host("client")
        .ns
        .forget_neighbour(a.ips[0], "eth0")
        .expect("flushed");
    assert_eq!(
        cluster.resolve(a.ips[0], SETTLE).await.expect("resolved"),
        mac
    );
}

#[tokio::test]
async fn traffic_policy_local_moves_the_ip_to_the_node_with_the_endpoint() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let vip = ip("192.0.2.203");
    let cluster_owner = {
        let probe = TestService::new("local", &["192.0.2.203"], "node-1");
        cluster.create_service(&probe).await.expect("created");
        owner(&cluster, vip, &all(&cluster)).await
    };
    let mac = cluster.resolve(vip, SETTLE).await.expect("resolved");
    assert_eq!(cluster.mac(&cluster_owner), mac);
    // Local, with the only endpoint on a node that is not the current owner.
    let elsewhere = cluster
        .nodes()
        .iter()
        .find(|n| **n != cluster_owner)
        .expect("three nodes")
        .clone();
    let patch = serde_json::json!({"spec": {"externalTrafficPolicy": "Local"}});
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(cluster.client(), APP_NAMESPACE)
        .patch(
            "local",
            &Default::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("patched");
    cluster
        .set_endpoints("local", std::slice::from_ref(&elsewhere))
        .await
        .expect("endpoints moved");
    cluster
        .wait_neighbour_mac(vip, &cluster.mac(&elsewhere), MOVE)
        .await
        .expect("the announcement moves the client's entry to the endpoint's node");
    // The endpoint moves again; the IP follows.
    let third = cluster
        .nodes()
        .iter()
        .find(|n| **n != cluster_owner && **n != elsewhere)
        .expect("three nodes")
        .clone();
    cluster
        .set_endpoints("local", std::slice::from_ref(&third))
        .await
        .expect("endpoints moved");
    cluster
        .wait_neighbour_mac(vip, &cluster.mac(&third), MOVE)
        .await
        .expect("follows the endpoint");
}

#[tokio::test]
async fn node_selectors_and_the_exclude_label_choose_the_announcing_node() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let vip = ip("192.0.2.204");
    cluster
        .create_service(&TestService::new("sel", &["192.0.2.204"], "node-1"))
        .await
        .expect("created");
    let first = owner(&cluster, vip, &all(&cluster)).await;
    assert_eq!(
        cluster.mac(&first),
        cluster.resolve(vip, SETTLE).await.expect("resolved")
    );

    // The exclude label takes the owner out.
    cluster
        .label_node(
            &first,
            "node.kubernetes.io/exclude-from-external-load-balancers",
            Some(""),
        )
        .await
        .expect("labelled");
    let second = owner(&cluster, vip, &all(&cluster)).await;
    assert_ne!(second, first);
    cluster
        .wait_neighbour_mac(vip, &cluster.mac(&second), MOVE)
        .await
        .expect("moves off the excluded node");

    // An advertisement selecting one node by label pins the IP there.
    let target = cluster
        .nodes()
        .iter()
        .find(|n| **n != first && **n != second)
        .expect("three nodes")
        .clone();
    cluster
        .apply(&format!(
            "apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: lan, namespace: ferrolb-system}}\n\
             spec:\n  ipAddressPools: [lan]\n  nodeSelectors:\n  - matchLabels: {{kubernetes.io/hostname: {target}}}\n"
        ))
        .await
        .expect("advertisement narrowed");
    cluster
        .wait_neighbour_mac(vip, &cluster.mac(&target), MOVE)
        .await
        .expect("moves to the only selected node");

    // Interfaces: an advertisement naming an interface the node lacks announces nothing.
    cluster
        .apply(
            "apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: lan, namespace: ferrolb-system}\n\
             spec:\n  ipAddressPools: [lan]\n  interfaces: [eth7]\n",
        )
        .await
        .expect("advertisement on eth7");
    wait_for(
        "nobody records the Service once no interface fits",
        SETTLE,
        || async { Ok(statuses_of(&cluster, "sel").await.is_empty().then_some(())) },
    )
    .await
    .expect("statuses removed");
    let client = &cluster.lan().host("client").ns;
    client.forget_neighbour(vip, "eth0").expect("flushed");
    cluster.poke(vip).expect("poked");
    let entry = wait_for("resolution on eth7-only ends", SETTLE, || async {
        Ok(cluster
            .client_neighbour(vip)?
            .filter(|e| e.is("FAILED") || (e.lladdr.is_some() && !e.is("INCOMPLETE"))))
    })
    .await
    .expect("resolution ends");
    assert!(
        entry.is("FAILED"),
        "answered on eth0 although only eth7 is allowed: {entry:?}"
    );

    // Naming eth0 brings it back.
    cluster
        .apply(
            "apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: lan, namespace: ferrolb-system}\n\
             spec:\n  ipAddressPools: [lan]\n  interfaces: [eth0]\n",
        )
        .await
        .expect("advertisement on eth0");
    let mac = cluster
        .resolve(vip, SETTLE)
        .await
        .expect("resolved on eth0");
    assert_eq!(cluster.node_with_mac(&mac), Some(second));
}

#[tokio::test]
async fn a_killed_speaker_and_a_dead_link_each_move_the_ip() {
    let Some(mut cluster) = cluster().await else {
        return;
    };
    let vip = ip("192.0.2.205");
    cluster
        .create_service(&TestService::new("failover", &["192.0.2.205"], "node-1"))
        .await
        .expect("created");
    let first = owner(&cluster, vip, &all(&cluster)).await;
    assert_eq!(
        cluster.mac(&first),
        cluster.resolve(vip, SETTLE).await.expect("resolved")
    );

    // SIGKILL: no leave, no drain. The membership notices and the next node announces.
    cluster.speaker(&first).expect("running").kill();
    let live: Vec<String> = all(&cluster).into_iter().filter(|n| *n != first).collect();
    let second = owner(&cluster, vip, &live).await;
    cluster
        .wait_neighbour_mac(vip, &cluster.mac(&second), MOVE)
        .await
        .expect("the client's entry moves to the next node after a hard kill");
    // The new owner timed its share of the failover.
    let metrics = cluster
        .host(&second)
        .ns
        .run(|| http_get("127.0.0.1:7472", "/metrics"))
        .expect("in the namespace")
        .expect("metrics served");
    let takeovers = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ferrolb_speaker_layer2_takeover_seconds_count "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(takeovers >= 1, "no takeover timed:\n{metrics}");

    // The link of the new owner goes down: its speaker stops, the last node takes over.
    cluster
        .host(&second)
        .ns
        .link_down("eth0")
        .expect("link down");
    let third: Vec<String> = live.iter().filter(|n| **n != second).cloned().collect();
    let last = owner(&cluster, vip, &third).await;
    cluster
        .wait_neighbour_mac(vip, &cluster.mac(&last), MOVE)
        .await
        .expect("the client's entry moves after a link failure");

    // The killed node comes back; its speaker rejoins and the election agrees again.
    cluster.host(&second).ns.link_up("eth0").expect("link up");
    cluster.start_speaker(&first).expect("restarted");
    let back = owner(&cluster, vip, &all(&cluster)).await;
    cluster
        .wait_neighbour_mac(vip, &cluster.mac(&back), SETTLE)
        .await
        .expect("the election's owner holds the IP once everyone is back");
}

#[tokio::test]
async fn sigterm_hands_the_ip_over_without_losing_a_request() {
    let Some(mut cluster) = cluster().await else {
        return;
    };
    let vip = ip("192.0.2.206");
    cluster
        .create_service(&TestService::new("handover", &["192.0.2.206"], "node-1"))
        .await
        .expect("created");
    cluster.start_echo(vip).expect("echo responders");
    let first = owner(&cluster, vip, &all(&cluster)).await;
    assert_eq!(
        cluster.mac(&first),
        cluster.resolve(vip, SETTLE).await.expect("resolved")
    );

    let prober = cluster
        .start_prober(vip, Duration::from_millis(10))
        .expect("prober");
    tokio::time::sleep(Duration::from_millis(300)).await; // requests flowing before the stop
    let status = cluster
        .speaker(&first)
        .expect("running")
        .terminate(Duration::from_secs(10))
        .expect("stops on SIGTERM");
    assert!(status.success(), "speaker exited with {status}");
    cluster.forget_speaker(&first);
    let live: Vec<String> = all(&cluster).into_iter().filter(|n| *n != first).collect();
    let second = owner(&cluster, vip, &live).await;
    cluster
        .wait_neighbour_mac(vip, &cluster.mac(&second), MOVE)
        .await
        .expect("the successor announced itself");
    tokio::time::sleep(Duration::from_millis(300)).await; // requests flowing after the move
    let probes = finish_without_loss(prober);
    let (new, gap) = failover_gap(&probes, &first).expect("answers from both nodes");
    assert_eq!(new, second);
    assert!(
        gap < Duration::from_millis(100),
        "answers paused for {gap:?}"
    );
}

/// A planned departure of the node announcing an IP (issue #15).
#[derive(Clone, Copy, Debug)]
enum Departure {
    /// `kubectl cordon` (and so `kubectl drain`).
    Cordon,
    /// The `node.kubernetes.io/exclude-from-external-load-balancers` label.
    ExcludeLabel,
    /// The cluster autoscaler's `ToBeDeletedByClusterAutoscaler` taint.
    ScaleDown,
    /// A `NoExecute` taint.
    NoExecute,
}

impl Departure {
    async fn set(self, cluster: &L2Cluster, node: &str, on: bool) -> anyhow::Result<()> {
        match self {
            Self::Cordon => cluster.cordon_node(node, on).await,
            Self::ExcludeLabel => {
                cluster
                    .label_node(
                        node,
                        "node.kubernetes.io/exclude-from-external-load-balancers",
                        on.then_some(""),
                    )
                    .await
            }
            Self::ScaleDown => {
                cluster
                    .taint_node(node, "ToBeDeletedByClusterAutoscaler", "NoSchedule", on)
                    .await
            }
            Self::NoExecute => {
                cluster
                    .taint_node(node, "ferrolb.io/maintenance", "NoExecute", on)
                    .await
            }
        }
    }
}

/// Every planned-departure trigger hands the IP over before the node stops answering: under a
/// prober at 10 ms, the announcing node is cordoned, labelled out of load balancers, marked for
/// scale-down and tainted NoExecute in turn; each time another node claims the IP and not one
/// request is lost; the trigger is then taken back and the IP returns to the election's owner.
#[tokio::test]
async fn every_planned_departure_trigger_hands_the_ip_over_without_a_lost_request() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let vip = ip("192.0.2.207");
    cluster
        .create_service(&TestService::new("departing", &["192.0.2.207"], "node-1"))
        .await
        .expect("created");
    cluster.start_echo(vip).expect("echo responders");
    for departure in [
        Departure::Cordon,
        Departure::ExcludeLabel,
        Departure::ScaleDown,
        Departure::NoExecute,
    ] {
        cluster
            .settle_owner(vip, SETTLE)
            .await
            .expect("the election's owner announces");
        let first = cluster.owner_now(vip, SETTLE).await.expect("an owner");
        let prober = cluster
            .start_prober(vip, Duration::from_millis(10))
            .expect("prober");
        tokio::time::sleep(Duration::from_millis(300)).await; // requests flowing before
        departure
            .set(&cluster, &first, true)
            .await
            .unwrap_or_else(|e| panic!("{departure:?} on {first}: {e:#}"));
        let second = owner(&cluster, vip, &all(&cluster)).await;
        assert_ne!(second, first, "{departure:?}: the election keeps {first}");
        cluster
            .wait_neighbour_mac(vip, &cluster.mac(&second), MOVE)
            .await
            .unwrap_or_else(|e| panic!("{departure:?}: the IP stays on {first}: {e:#}"));
        tokio::time::sleep(Duration::from_millis(300)).await; // requests flowing after
        let probes = finish_without_loss(prober);
        let (new, _) = failover_gap(&probes, &first).expect("answers from both nodes");
        assert_eq!(new, second, "{departure:?}");
        departure
            .set(&cluster, &first, false)
            .await
            .unwrap_or_else(|e| panic!("{departure:?} off {first}: {e:#}"));
        cluster
            .wait_neighbour_mac(vip, &cluster.mac(&first), MOVE)
            .await
            .unwrap_or_else(|e| panic!("{departure:?}: the IP does not come back: {e:#}"));
    }
}

#[tokio::test]
async fn a_foreign_mac_claiming_an_ip_is_reported_as_split_brain() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let vip = ip("192.0.2.207");
    cluster
        .create_service(&TestService::new("contested", &["192.0.2.207"], "node-1"))
        .await
        .expect("created");
    let first = owner(&cluster, vip, &all(&cluster)).await;
    assert_eq!(
        cluster.mac(&first),
        cluster.resolve(vip, SETTLE).await.expect("resolved")
    );

    // A rogue host on the LAN (the client) sends gratuitous ARPs for the IP with its own MAC.
    let rogue = cluster.host("client").mac("eth0").to_owned();
    let client = cluster.host("client").ns.clone();
    client
        .run(move || ferrolb_tests::l2cluster::send_gratuitous_arp("eth0", vip, &rogue))
        .expect("in the client namespace")
        .expect("gratuitous ARP sent");

    let events = Api::<Event>::namespaced(cluster.client(), APP_NAMESPACE);
    let note = wait_for("a SplitBrain Event on the Service", SETTLE, || async {
        Ok(events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("SplitBrain")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("contested")
            })
            .and_then(|e| e.note))
    })
    .await
    .expect("split brain reported");
    assert!(note.contains("192.0.2.207"), "{note}");
    assert!(note.contains(&first), "{note}");
}

#[tokio::test]
async fn failover_goes_on_while_the_apiserver_is_stopped_for_a_minute() {
    let Some(mut cluster) = cluster().await else {
        return;
    };
    let vip = ip("192.0.2.208");
    cluster
        .create_service(&TestService::new("no-api", &["192.0.2.208"], "node-1"))
        .await
        .expect("created");
    let first = owner(&cluster, vip, &all(&cluster)).await;
    assert_eq!(
        cluster.mac(&first),
        cluster.resolve(vip, SETTLE).await.expect("resolved")
    );
    let live: Vec<String> = all(&cluster).into_iter().filter(|n| *n != first).collect();
    let second = owner(&cluster, vip, &live).await;
    let rest: Vec<String> = live.iter().filter(|n| **n != second).cloned().collect();
    let third = owner(&cluster, vip, &rest).await;

    let (apiserver, _) = cluster.control_plane().pids();
    let freeze = |sig| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(apiserver).expect("pid")),
            sig,
        )
    };
    freeze(nix::sys::signal::Signal::SIGSTOP).expect("apiserver stopped");
    let stopped = tokio::time::Instant::now();
    let outcome = async {
        cluster.speaker(&first).expect("running").kill();
        cluster
            .wait_neighbour_mac(vip, &cluster.mac(&second), MOVE)
            .await?;
        // A minute without the apiserver: watches have timed out and retried by now.
        tokio::time::sleep_until(stopped + Duration::from_secs(60)).await;
        cluster.speaker(&second).expect("running").kill();
        cluster
            .wait_neighbour_mac(vip, &cluster.mac(&third), MOVE)
            .await
    }
    .await;
    freeze(nix::sys::signal::Signal::SIGCONT).expect("apiserver resumed");
    outcome.expect("both failovers happen with the apiserver stopped");
}
