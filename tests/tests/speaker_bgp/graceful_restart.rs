//! RFC 4724 against each real router: a killed speaker's paths kept as stale until it is back.

use super::*;

/// Graceful restart (RFC 4724): a speaker killed outright loses its session, but the router
/// keeps its paths (stale) instead of dropping them; the restarted speaker takes them over.
async fn graceful_restart_keeps_a_killed_speakers_paths(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let mut bed = Bed::start_with(
        kind,
        Options {
            graceful_restart: true,
            ..Options::default()
        },
    )
    .await;
    let both = [bed.node_ip("node-1", false), bed.node_ip("node-2", false)];
    let app = TestService::new("app", &["198.51.100.14"], "node-2");
    bed.cluster.create_service(&app).await.expect("app");
    bed.wait_paths("198.51.100.14/32", &both).await;

    bed.cluster
        .speaker("node-1")
        .expect("node-1's speaker")
        .kill();
    let n1 = bed.node_ip("node-1", false);
    wait_for(
        "the router sees node-1's session end",
        Duration::from_secs(30),
        || async { Ok((!bed.router.established(n1)?).then_some(())) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.describe()));
    // Without graceful restart the path would go now (the test above waits for exactly that);
    // with it, the path stays for longer than the 3 s hold time.
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    while std::time::Instant::now() < deadline {
        let hops: BTreeSet<IpAddr> = bed
            .router
            .routes()
            .expect("routes")
            .into_iter()
            .filter(|r| r.prefix.to_string() == "198.51.100.14/32")
            .map(|r| r.next_hop)
            .collect();
        assert!(
            hops.contains(&n1),
            "the killed speaker's path went although graceful restart is on: {hops:?}\n{}",
            bed.describe()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bed.cluster.start_speaker("node-1").expect("node-1 again");
    wait_for(
        "node-1's session is back",
        Duration::from_secs(30),
        || async { Ok(bed.router.established(n1)?.then_some(())) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.describe()));
    bed.wait_paths("198.51.100.14/32", &both).await;
}

#[tokio::test]
async fn gobgp_keeps_stale_paths_with_graceful_restart() {
    graceful_restart_keeps_a_killed_speakers_paths(RouterKind::Gobgp).await;
}

#[tokio::test]
async fn bird_keeps_stale_paths_with_graceful_restart() {
    graceful_restart_keeps_a_killed_speakers_paths(RouterKind::Bird).await;
}

#[tokio::test]
async fn frr_keeps_stale_paths_with_graceful_restart() {
    graceful_restart_keeps_a_killed_speakers_paths(RouterKind::Frr).await;
}
