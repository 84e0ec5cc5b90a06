//! A router that goes away without a word, with hold time 0 (no BGP keepalives): the speaker
//! notices by TCP keepalive (issue #13, item 8) and sets the session up again when the router
//! is back, routes with it.

use super::*;

/// Drops every BGP segment into and out of the router's namespace: a cut cable, as far as the
/// speakers can tell (nothing the router's kernel says, FIN or RST, reaches them).
const SILENCE: &str = "table inet ferrolb_silence {
  chain in { type filter hook input priority 0; policy accept; tcp sport 179 drop; tcp dport 179 drop; }
  chain out { type filter hook output priority 0; policy accept; tcp sport 179 drop; tcp dport 179 drop; }
}";

/// TCP keepalive's idle time without a BGPPeer keepaliveTime (30 s), then 3 probes 10 s apart,
/// and a margin for the machine.
const KEEPALIVE_DETECTION: Duration = Duration::from_secs(80);

/// With holdTime 0 no KEEPALIVE flows, so only TCP's own timers can tell that the peer is gone.
/// The router's link is cut and its daemon dies behind the cut; then a Service only node-1
/// advertises appears, so node-1 has an UPDATE in flight that nobody acknowledges, while
/// node-2's session stays idle. Each speaker must declare its session down while the router is
/// still unreachable — node-2 by TCP keepalive, node-1 by its unacknowledged data timing out
/// (TCP_USER_TIMEOUT: without it, retransmissions go on for about 15 minutes) — and when the
/// router is back, set the session up again and advertise the paths anew.
async fn a_silently_dead_router_is_noticed_without_bgp_keepalives(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let mut bed = Bed::start_with(
        kind,
        Options {
            hold: Some("0s"),
            ..Options::default()
        },
    )
    .await;
    let both = [bed.node_ip("node-1", false), bed.node_ip("node-2", false)];
    let app = TestService::new("app", &["198.51.100.15"], "node-1");
    bed.cluster.create_service(&app).await.expect("app");
    bed.wait_paths("198.51.100.15/32", &both).await;
    let up = "ferrolb_speaker_bgp_session_up";
    for node in ["node-1", "node-2"] {
        assert_eq!(metric(&bed, node, up, "peer=\"tor\""), Some(1.0), "{node}");
    }

    let router_ns = bed.cluster.host(ROUTER_HOST).ns.clone();
    router_ns
        .exec(&["nft", SILENCE])
        .expect("the router's BGP traffic cut");
    let cut = std::time::Instant::now();
    bed.router.stop();
    let local = TestService {
        local: true,
        ..TestService::new("only-node-1", &["198.51.100.17"], "node-1")
    };
    bed.cluster
        .create_service(&local)
        .await
        .expect("a Service only node-1 advertises");
    for node in ["node-1", "node-2"] {
        wait_for(
            &format!("{node} declares the session to the silent router down"),
            KEEPALIVE_DETECTION.saturating_sub(cut.elapsed()),
            || async { Ok((metric(&bed, node, up, "peer=\"tor\"") == Some(0.0)).then_some(())) },
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.describe()));
    }
    eprintln!(
        "dead-router: {kind:?}'s silence noticed by both speakers {:.1} s after the cut",
        cut.elapsed().as_secs_f64()
    );

    bed.router.restart().expect("the router starts again");
    router_ns
        .exec(&["nft", "delete table inet ferrolb_silence"])
        .expect("the router's BGP traffic back");
    bed.wait_paths("198.51.100.15/32", &both).await;
    for node in ["node-1", "node-2"] {
        let flaps = metric(
            &bed,
            node,
            "ferrolb_speaker_bgp_session_flaps",
            "peer=\"tor\"",
        );
        assert!(
            flaps.is_some_and(|f| f >= 1.0),
            "{node} counted no flap ({flaps:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bird_silently_dead_is_noticed_without_bgp_keepalives() {
    a_silently_dead_router_is_noticed_without_bgp_keepalives(RouterKind::Bird).await;
}
