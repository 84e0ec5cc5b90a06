//! The layer-2 speakers never drop a valid announcement for someone else's mistake, and never
//! run their membership unauthenticated: real `ferrolb-speaker` processes in three node
//! namespaces, a real apiserver, and a client on the LAN that re-resolves each IP (flushing its
//! neighbour entry first) to see who answers.
//!
//! Needs root (network namespaces, raw sockets); skipped with a message otherwise.

use std::net::IpAddr;
use std::time::Duration;

use ferrolb_config::NodeName;
use ferrolb_speaker::election::rendezvous_hash;
use ferrolb_tests::l2cluster::{L2Cluster, NAMESPACE, TestService, http_get, wait_for};
use ferrolb_tests::netns::is_root;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

/// The membership Secret every test cluster starts with.
const MEMBERLIST_SECRET: &str = "ferrolb-memberlist";
const SETTLE: Duration = Duration::from_secs(20);
/// How long an IP is watched after a change that must not withdraw it.
const WATCH: Duration = Duration::from_secs(2);

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

/// The node the speakers elect for `ip` with every speaker live.
async fn owner(cluster: &L2Cluster, ip: IpAddr) -> String {
    cluster
        .expected_owner(ip, cluster.nodes())
        .await
        .expect("election inputs readable")
        .expect("some node is elected")
}

/// For `window`, the client keeps forgetting `ip` and resolving it again; every time the
/// answer must come from `mac` within a second.
async fn keeps_answering(cluster: &L2Cluster, ip: IpAddr, mac: &str, window: Duration) {
    let client = &cluster.lan().host("client").ns;
    let end = tokio::time::Instant::now() + window;
    let mut rounds = 0;
    while rounds == 0 || tokio::time::Instant::now() < end {
        client.forget_neighbour(ip, "eth0").expect("flushed");
        let got = cluster
            .resolve(ip, Duration::from_secs(1))
            .await
            .unwrap_or_else(|e| panic!("{ip} was withdrawn (round {rounds}): {e:#}"));
        assert_eq!(got, mac, "{ip} answered by another MAC");
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the speaker of `node` has logged that it serves the last valid version of the
/// named object: the edit was seen, so the IPs watched around it were watched after it.
async fn held_back_on(cluster: &mut L2Cluster, node: &str, name: &str) {
    let field = format!("name={name}");
    let speaker = cluster.speaker(node).expect("speaker runs");
    wait_for(
        &format!("the speaker on {node} keeps the last valid version of {name}"),
        SETTLE,
        || async {
            Ok(speaker
                .own_log()
                .lines()
                .map(without_colours)
                .any(|l| l.contains("still serving its last valid version") && l.contains(&field))
                .then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", speaker.own_log()));
}

/// A log line without its ANSI colour codes (`name=spare` is written with codes around `=`).
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the end of the escape sequence (`ESC [ … m`).
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn pool(name: &str, addresses: &str) -> String {
    format!(
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, namespace: {NAMESPACE}}}\nspec: {{addresses: [\"{addresses}\"]}}\n"
    )
}

#[tokio::test]
async fn an_edit_that_makes_pools_overlap_withdraws_no_ip() {
    let Some(mut cluster) = cluster().await else {
        return;
    };
    cluster
        .apply(&format!(
            "{}---\napiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: spare, namespace: {NAMESPACE}}}\nspec: {{ipAddressPools: [spare]}}\n",
            pool("spare", "192.0.2.240-192.0.2.249")
        ))
        .await
        .expect("spare pool applied");
    let in_lan = TestService::new("in-lan", &["192.0.2.205"], "node-1");
    let in_spare = TestService::new("in-spare", &["192.0.2.241"], "node-1");
    let mut watched = Vec::new();
    for svc in [&in_lan, &in_spare] {
        cluster.create_service(svc).await.expect("service created");
        let vip = svc.ips[0];
        let node = owner(&cluster, vip).await;
        let mac = cluster.resolve(vip, SETTLE).await.expect("resolved");
        assert_eq!(
            mac,
            cluster.mac(&node),
            "{vip} answered by its elected node"
        );
        watched.push((vip, node, mac));
    }

    // The newer pool is edited to overlap the older one: it is refused, and served as it was.
    cluster
        .apply(&pool("spare", "192.0.2.230-192.0.2.249"))
        .await
        .expect("edit applied");
    for (vip, _, mac) in &watched {
        keeps_answering(&cluster, *vip, mac, WATCH).await;
    }
    for node in cluster.nodes().to_vec() {
        held_back_on(&mut cluster, &node, "spare").await;
    }
    for (vip, _, mac) in &watched {
        keeps_answering(&cluster, *vip, mac, Duration::ZERO).await;
    }

    // Put right, then the older pool is edited to overlap the one in use: by age alone "lan"
    // would win and "spare" would go; the pool in use with unchanged addresses wins, as in the
    // controller.
    cluster
        .apply(&pool("spare", "192.0.2.240-192.0.2.249"))
        .await
        .expect("fixed");
    cluster
        .apply(&pool("lan", "192.0.2.200-192.0.2.245"))
        .await
        .expect("edit applied");
    for (vip, _, mac) in &watched {
        keeps_answering(&cluster, *vip, mac, WATCH).await;
    }
    for node in cluster.nodes().to_vec() {
        held_back_on(&mut cluster, &node, "lan").await;
    }
    for (vip, _, mac) in &watched {
        keeps_answering(&cluster, *vip, mac, Duration::ZERO).await;
    }
}

#[tokio::test]
async fn a_sharer_without_endpoints_does_not_take_the_shared_ip_down() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let mut serving = TestService::new("serving", &["192.0.2.206"], "node-1");
    serving.sharing_key = Some("k".into());
    cluster
        .create_service(&serving)
        .await
        .expect("service created");
    let vip = serving.ips[0];
    let node = owner(&cluster, vip).await;
    let mac = cluster.resolve(vip, SETTLE).await.expect("resolved");
    assert_eq!(mac, cluster.mac(&node));

    // A second Service on the IP, externalTrafficPolicy Local, whose pods are all gone.
    let mut empty = TestService::new("empty", &["192.0.2.206"], "node-1");
    empty.sharing_key = Some("k".into());
    empty.local = true;
    empty.endpoints_on.clear();
    cluster.create_service(&empty).await.expect("created");
    // A Service created next, on an IP the same node wins: once that node answers for it, its
    // speaker has seen "empty" too.
    let marker_ip = (207..=239)
        .map(|i| format!("192.0.2.{i}"))
        .find(|ip| same_owner(&cluster, ip, &node))
        .expect("some IP of the pool elects the same node");
    let marker = TestService::new("marker", &[marker_ip.as_str()], "node-1");
    cluster.create_service(&marker).await.expect("created");
    assert_eq!(owner(&cluster, marker.ips[0]).await, node);
    assert_eq!(
        cluster
            .resolve(marker.ips[0], SETTLE)
            .await
            .expect("marker resolved"),
        mac
    );
    keeps_answering(&cluster, vip, &mac, WATCH).await;
}

/// Whether `ip` elects `node` by the rendezvous hash alone (no preferences, every node live).
fn same_owner(cluster: &L2Cluster, ip: &str, node: &str) -> bool {
    let ip: IpAddr = ip.parse().expect("ip");
    cluster
        .nodes()
        .iter()
        .min_by_key(|n| rendezvous_hash(&NodeName::from((*n).clone()), ip))
        .is_some_and(|n| n == node)
}

/// Whether the speaker of `node` answers 200 on its readiness endpoint.
fn is_ready(cluster: &mut L2Cluster, node: &str) -> bool {
    let ns = cluster.lan().host(node).ns.clone();
    let speaker = cluster.speaker(node).expect("speaker runs");
    let (addr, path) = speaker.ready_endpoint();
    let (addr, path) = (addr.to_owned(), path.to_owned());
    ns.run(move || http_get(&addr, &path))
        .expect("ran in the namespace")
        .is_ok_and(|r| r.starts_with("HTTP/1.1 200"))
}

#[tokio::test]
async fn without_its_key_a_speaker_waits_unready_and_the_others_keep_theirs() {
    let Some(mut cluster) = cluster().await else {
        return;
    };
    let node = cluster.nodes()[0].clone();
    cluster
        .speaker(&node)
        .expect("runs")
        .terminate(Duration::from_secs(10))
        .expect("stopped");
    let secrets = Api::<Secret>::namespaced(cluster.client(), NAMESPACE);
    secrets
        .delete(MEMBERLIST_SECRET, &Default::default())
        .await
        .expect("Secret deleted");
    cluster.start_speaker(&node).expect("restarted");

    let log_says = |cluster: &mut L2Cluster, node: &str, text: &str| {
        cluster
            .speaker(node)
            .is_some_and(|s| s.own_log().contains(text))
    };
    let deadline = tokio::time::Instant::now() + SETTLE;
    while !log_says(&mut cluster, &node, "waiting for the membership key") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no word of the missing key\n{}",
            cluster.describe()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!is_ready(&mut cluster, &node), "ready without a membership");
    // The running speakers keep the key they use (their membership stays authenticated).
    let others: Vec<String> = cluster.nodes().iter().skip(1).cloned().collect();
    for other in others {
        let speaker = cluster.speaker(&other).expect("runs");
        wait_for("the other speakers keep their key", SETTLE, || async {
            Ok(speaker
                .own_log()
                .contains("keeping the key in use")
                .then_some(()))
        })
        .await
        .expect("said so");
    }

    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": MEMBERLIST_SECRET, "namespace": NAMESPACE},
        "stringData": {"secretkey": "a-test-key-for-the-speakers-membership"},
    }))
    .expect("valid Secret");
    secrets
        .create(&Default::default(), &secret)
        .await
        .expect("Secret created");
    cluster
        .wait_speakers_ready(SETTLE)
        .await
        .expect("the speaker starts once the key exists");
    assert!(log_says(&mut cluster, &node, "membership started"));
}
