//! RFC 8326 against each real router: a leaving node's routes marked GRACEFUL_SHUTDOWN, not
//! preferred while they still exist, withdrawn only after the drain time.

use super::*;

/// The router's paths for `prefix`, once `check` accepts them (30 s at most).
async fn wait_routes(
    bed: &Bed,
    prefix: &str,
    what: &str,
    check: impl Fn(&[Route]) -> bool,
) -> Vec<Route> {
    wait_for(what, Duration::from_secs(30), || async {
        let Ok(routes) = bed.router.routes() else {
            return Ok(None);
        };
        let paths: Vec<Route> = routes
            .into_iter()
            .filter(|r| r.prefix.to_string() == prefix)
            .collect();
        Ok(check(&paths).then_some(paths))
    })
    .await
    .unwrap_or_else(|e| {
        let held = bed.router.routes().unwrap_or_default();
        panic!("{e:#}\nheld: {held:#?}\n{}", bed.describe())
    })
}

/// RFC 8326 on a real router: a node on its way out — cordoned, marked for scale-down, tainted
/// NoExecute, labelled exclude-from-external-load-balancers, or its speaker stopping —
/// advertises its routes again with GRACEFUL_SHUTDOWN (65535:0) and a longer AS path, so the
/// router prefers the other node's path while the leaving node's still exists (traffic moves
/// first); an uncordoned node gets its plain routes back; a labelled node and a stopping
/// speaker withdraw only after the BGPPeer's drain time (and the speaker then exits).
async fn graceful_shutdown_moves_traffic_before_the_routes_go(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    const GSHUT: &str = "65535:0";
    const DRAIN: Duration = Duration::from_secs(4);
    let mut bed = Bed::start_with(
        kind,
        Options {
            drain_time: Some("4s"),
            ..Options::default()
        },
    )
    .await;
    let prefix = "198.51.100.20/32";
    let app = TestService::new("app", &["198.51.100.20"], "node-1");
    bed.cluster.create_service(&app).await.expect("app");
    let paths = bed
        .wait_paths(
            prefix,
            &[bed.node_ip("node-1", false), bed.node_ip("node-2", false)],
        )
        .await;
    // The node whose path the router uses (both, for FRR's ECMP) leaves; the other stays.
    let used = paths
        .iter()
        .find(|p| p.best)
        .unwrap_or_else(|| panic!("the router uses a path: {paths:#?}"));
    let (leaving, staying) = if used.next_hop == bed.node_ip("node-1", false) {
        ("node-1", "node-2")
    } else {
        ("node-2", "node-1")
    };
    let (leaving_ip, staying_ip) = (bed.node_ip(leaving, false), bed.node_ip(staying, false));
    let path_of = |paths: &[Route], hop: IpAddr| paths.iter().find(|p| p.next_hop == hop).cloned();
    let moved_off = |paths: &[Route]| {
        let (Some(gone), Some(kept)) = (path_of(paths, leaving_ip), path_of(paths, staying_ip))
        else {
            return false;
        };
        gone.communities.contains(GSHUT)
            && gone.as_path == vec![NODE_AS; 4]
            && !gone.best
            && kept.best
            && !kept.communities.contains(GSHUT)
    };

    // Cordoned, marked for scale-down by the cluster autoscaler, or tainted NoExecute: marked,
    // still there, not preferred; the trigger taken back, the plain route again.
    for trigger in ["cordon", "ToBeDeletedByClusterAutoscaler", "NoExecute"] {
        let set = |on: bool| {
            let cluster = &bed.cluster;
            async move {
                match trigger {
                    "cordon" => cluster.cordon_node(leaving, on).await,
                    "NoExecute" => {
                        cluster
                            .taint_node(leaving, "ferrolb.io/maintenance", "NoExecute", on)
                            .await
                    }
                    taint => cluster.taint_node(leaving, taint, "NoSchedule", on).await,
                }
            }
        };
        set(true).await.expect("the trigger set");
        wait_routes(
            &bed,
            prefix,
            &format!(
                "{kind} prefers {staying} while {leaving} ({trigger}) still advertises, marked"
            ),
            moved_off,
        )
        .await;
        set(false).await.expect("the trigger taken back");
        wait_routes(
            &bed,
            prefix,
            &format!("{kind} holds {leaving}'s plain route again after {trigger}"),
            |paths| {
                path_of(paths, leaving_ip)
                    .is_some_and(|p| !p.communities.contains(GSHUT) && p.as_path == vec![NODE_AS])
            },
        )
        .await;
    }

    // Labelled exclude-from-external-load-balancers: marked at once, still there, not
    // preferred; withdrawn only after the drain time; unlabelled, the plain route again.
    const EXCLUDE: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
    let labelled_at = std::time::Instant::now();
    bed.cluster
        .label_node(leaving, EXCLUDE, Some(""))
        .await
        .expect("label");
    wait_routes(
        &bed,
        prefix,
        &format!("{kind} prefers {staying} while {leaving} (excluded) still advertises, marked"),
        moved_off,
    )
    .await;
    let marked_after = labelled_at.elapsed();
    bed.wait_paths(prefix, &[staying_ip]).await;
    let withdrawn_after = labelled_at.elapsed();
    assert!(
        marked_after < DRAIN && withdrawn_after >= DRAIN - Duration::from_millis(500),
        "excluded: marked after {marked_after:?}, withdrawn after {withdrawn_after:?}: the route must stay, marked, for the {DRAIN:?} drain"
    );
    bed.cluster
        .label_node(leaving, EXCLUDE, None)
        .await
        .expect("unlabel");
    wait_routes(
        &bed,
        prefix,
        &format!("{kind} holds {leaving}'s plain route again after the exclude label"),
        |paths| {
            path_of(paths, leaving_ip)
                .is_some_and(|p| !p.communities.contains(GSHUT) && p.as_path == vec![NODE_AS])
        },
    )
    .await;

    // SIGTERM: marked first, withdrawn after the drain time, then the speaker exits.
    let stopped_at = std::time::Instant::now();
    bed.cluster
        .speaker(leaving)
        .expect("the leaving node's speaker")
        .ask_to_stop()
        .expect("SIGTERM");
    wait_routes(
        &bed,
        prefix,
        &format!("{kind} prefers {staying} while stopping {leaving} still advertises, marked"),
        moved_off,
    )
    .await;
    let marked_after = stopped_at.elapsed();
    bed.wait_paths(prefix, &[staying_ip]).await;
    let withdrawn_after = stopped_at.elapsed();
    assert!(
        marked_after < DRAIN && withdrawn_after >= DRAIN - Duration::from_millis(500),
        "marked after {marked_after:?}, withdrawn after {withdrawn_after:?}: the route must stay, marked, for the {DRAIN:?} drain"
    );
    let status = bed
        .cluster
        .speaker(leaving)
        .expect("still tracked")
        .wait_stopped(Duration::from_secs(15))
        .expect("the speaker exits after the drain");
    assert!(status.success(), "speaker exited with {status}");
}

#[tokio::test]
async fn gobgp_prefers_other_paths_when_a_node_shuts_down_gracefully() {
    graceful_shutdown_moves_traffic_before_the_routes_go(RouterKind::Gobgp).await;
}

#[tokio::test]
async fn bird_prefers_other_paths_when_a_node_shuts_down_gracefully() {
    graceful_shutdown_moves_traffic_before_the_routes_go(RouterKind::Bird).await;
}

#[tokio::test]
async fn frr_prefers_other_paths_when_a_node_shuts_down_gracefully() {
    graceful_shutdown_moves_traffic_before_the_routes_go(RouterKind::Frr).await;
}

/// eTP Local over BGP (issue #15): a node whose only local endpoint is terminating (its pod in
/// its grace period, still serving) withdraws its path while another node has a ready one, so
/// new traffic goes there first; while no endpoint anywhere is ready, terminating ones count
/// again (kube-proxy's rule), so the IP stays reachable until the last pod is gone.
#[tokio::test]
async fn a_local_services_path_leaves_a_node_whose_endpoint_is_terminating() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start(RouterKind::Bird).await;
    let (n1, n2) = ("node-1", "node-2");
    let prefix = "198.51.100.30/32";
    let mut local = TestService::new("local", &["198.51.100.30"], n1);
    local.local = true;
    bed.cluster.create_service(&local).await.expect("local");
    let both = [bed.node_ip(n1, false), bed.node_ip(n2, false)];
    bed.cluster
        .set_endpoint_states("local", &[(n1, true), (n2, true)])
        .await
        .expect("endpoints");
    bed.wait_paths(prefix, &both).await;

    // node-1's pod is terminating, node-2's is ready: only node-2 attracts traffic.
    bed.cluster
        .set_endpoint_states("local", &[(n1, false), (n2, true)])
        .await
        .expect("endpoints");
    bed.wait_paths(prefix, &[bed.node_ip(n2, false)]).await;

    // Both terminating, none ready: both serve again until they are gone.
    bed.cluster
        .set_endpoint_states("local", &[(n1, false), (n2, false)])
        .await
        .expect("endpoints");
    bed.wait_paths(prefix, &both).await;

    // Gone: no path.
    bed.cluster
        .set_endpoint_states("local", &[])
        .await
        .expect("endpoints");
    bed.wait_paths(prefix, &[]).await;
}
