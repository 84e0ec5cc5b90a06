//! The speaker in BGP mode, end to end: real `ferrolb-speaker` processes on two node namespaces,
//! configured through a real apiserver with BGPPeer, BGPAdvertisement, Community and Secret
//! objects, peering with a real router (GoBGP, BIRD or FRR) on the same LAN. Everything is
//! asserted from the router's own RIB: both nodes' paths (ECMP) with the advertisement's
//! communities, IPv6 over the IPv4 session, `externalTrafficPolicy: Local` following the
//! endpoints, a deleted Service withdrawn, a killed speaker's paths gone after the hold time
//! (or kept, with graceful restart, until it is back), and a restarted router getting every
//! session and route back. Graceful restart (RFC 4724),
//! graceful shutdown (RFC 8326), BMP export and the status the speakers report (the Service's
//! `ferrolb.io/BGPAdvertised` condition, ServiceBGPStatus) have files of their own.

mod bmp;
mod dead_router;
mod graceful_restart;
mod graceful_shutdown;
mod next_hop;
mod status;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context as _;
use ferrolb_tests::l2cluster::{L2Cluster, NAMESPACE, TestService, wait_for};
use ferrolb_tests::netns::is_root;
use ferrolb_tests::routers::{Neighbor, Route, Router, RouterConfig, RouterKind};
use kube::Api;

const ROUTER_AS: u32 = 64500;
const NODE_AS: u32 = 64512;
/// The peer's hold time: short, so a killed speaker's paths go quickly.
const HOLD: &str = "3s";
const PASSWORD: &str = "bgp-test-s3cret";

const ROUTER_HOST: &str = "client";

struct Bed {
    // Drop order: the router and the collector before the cluster (whose drop removes the
    // namespaces).
    router: Router,
    /// pmbmpd on the "collector" host, which every speaker exports to (`Options::bmp`).
    collector: Option<ferrolb_tests::bmp_collector::Pmbmpd>,
    cluster: L2Cluster,
}

/// The "collector" host's address: the LAN numbers hosts in order, and it comes after the two
/// nodes and the client (checked when the bed starts).
const COLLECTOR_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 4);

/// How the bed's peering is set up beyond the basics.
#[derive(Clone, Copy, Default)]
struct Options {
    /// The BGPPeer enables graceful restart and the router helps (RFC 4724).
    graceful_restart: bool,
    /// The BGPPeer names a BFDProfile (300 ms × 3) and the router runs BFD; the hold time is
    /// MetalLB's default 90 s instead of 3 s, so only BFD can be fast.
    bfd: bool,
    /// The BGPPeer's gracefulShutdown.drainTime (default: the speaker's, 10 s).
    drain_time: Option<&'static str>,
    /// The BGPPeer's holdTime (default [`HOLD`], or 90 s with `bfd`).
    hold: Option<&'static str>,
    /// The speakers run with `--bmp-collector` to pmbmpd on a host of its own.
    bmp: bool,
    /// The speakers run with `--service-bgp-status` (MetalLB's per-(Service, node) objects).
    service_bgp_status: bool,
}

impl Bed {
    async fn start(kind: RouterKind) -> Self {
        Self::start_with(kind, Options::default()).await
    }

    async fn start_with(kind: RouterKind, options: Options) -> Self {
        let collector = format!("{COLLECTOR_IP}:{}", ferrolb_tests::bmp_collector::PORT);
        let (mut args, extra): (Vec<String>, &[&str]) = if options.bmp {
            (
                vec!["--bmp-collector".to_owned(), collector],
                &["collector"],
            )
        } else {
            (Vec::new(), &[])
        };
        if options.service_bgp_status {
            args.push("--service-bgp-status".to_owned());
        }
        let cluster = L2Cluster::start_on(
            ferrolb_tests::ControlPlane::builder(),
            2,
            ferrolb_tests::l2cluster::Speakers::Ferrolb(args),
            extra,
        )
        .await
        .expect("a cluster");
        let collector = options.bmp.then(|| {
            let host = cluster.host("collector");
            assert_eq!(
                host.ipv4, COLLECTOR_IP,
                "the collector's address as the speakers were told"
            );
            ferrolb_tests::bmp_collector::Pmbmpd::start(&host.ns, IpAddr::V4(host.ipv4))
                .expect("pmbmpd starts")
        });
        let router_host = cluster.host(ROUTER_HOST).clone();
        let neighbors = cluster
            .nodes()
            .iter()
            .map(|n| {
                let mut neighbor = Neighbor::passive(IpAddr::V4(cluster.host(n).ipv4), NODE_AS);
                neighbor.password = Some(PASSWORD.to_owned());
                neighbor.graceful_restart = options.graceful_restart;
                neighbor.bfd = options.bfd;
                neighbor
            })
            .collect();
        let router = Router::start(
            kind,
            &router_host.ns,
            &RouterConfig {
                asn: ROUTER_AS,
                router_id: router_host.ipv4,
                neighbors,
                multipath: true,
            },
        )
        .expect("the router starts");
        cluster
            .apply(&format!(
                r#"
apiVersion: v1
kind: Secret
metadata: {{name: tor-password, namespace: {NAMESPACE}}}
type: kubernetes.io/basic-auth
stringData: {{password: {PASSWORD}}}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bgp, namespace: {NAMESPACE}}}
spec: {{addresses: ["198.51.100.0/26", "2001:db8:100::/120"]}}
---
apiVersion: ferrolb.io/v1beta1
kind: Community
metadata: {{name: aliases, namespace: {NAMESPACE}}}
spec:
  communities:
  - {{name: edge, value: "65000:200"}}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp, namespace: {NAMESPACE}}}
spec:
  ipAddressPools: [bgp]
  communities: ["65000:100", edge, "large:{NODE_AS}:1:2"]
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {{name: tor, namespace: {NAMESPACE}}}
spec:
  myASN: {NODE_AS}
  peerASN: {ROUTER_AS}
  peerAddress: {router}
  holdTime: {hold}
  dualStackAddressFamily: true
  enableGracefulRestart: {graceful_restart}
  passwordSecret: {{name: tor-password}}{bfd}{drain}
---
apiVersion: ferrolb.io/v1beta1
kind: BFDProfile
metadata: {{name: fast, namespace: {NAMESPACE}}}
spec: {{receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3}}
"#,
                router = router_host.ipv4,
                hold = options
                    .hold
                    .unwrap_or(if options.bfd { "90s" } else { HOLD }),
                graceful_restart = options.graceful_restart,
                bfd = if options.bfd {
                    "\n  bfdProfile: fast"
                } else {
                    ""
                },
                drain = options
                    .drain_time
                    .map(|d| format!("\n  gracefulShutdown: {{drainTime: {d}}}"))
                    .unwrap_or_default(),
            ))
            .await
            .expect("the BGP configuration applies");
        Self {
            router,
            collector,
            cluster,
        }
    }

    fn node_ip(&self, node: &str, v6: bool) -> IpAddr {
        let host = self.cluster.host(node);
        if v6 {
            IpAddr::V6(host.ipv6)
        } else {
            IpAddr::V4(host.ipv4)
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}\n--- router\n{}",
            self.cluster.describe(),
            self.router.describe()
        )
    }

    /// Waits until the router's paths for `prefix` have exactly the next hops `want`.
    async fn wait_paths(&self, prefix: &str, want: &[IpAddr]) -> Vec<Route> {
        self.wait_paths_within(prefix, want, Duration::from_secs(30))
            .await
    }

    /// [`Self::wait_paths`], for up to `timeout`.
    async fn wait_paths_within(
        &self,
        prefix: &str,
        want: &[IpAddr],
        timeout: Duration,
    ) -> Vec<Route> {
        let want: BTreeSet<IpAddr> = want.iter().copied().collect();
        let kind = self.router.kind();
        wait_for(
            &format!("{kind} holds {prefix} via {want:?}"),
            timeout,
            || async {
                // A router that is (re)starting may not answer yet: that is "not yet".
                let Ok(routes) = self.router.routes() else {
                    return Ok(None);
                };
                let paths: Vec<Route> = routes
                    .into_iter()
                    .filter(|r| r.prefix.to_string() == prefix)
                    .collect();
                let hops: BTreeSet<IpAddr> = paths.iter().map(|r| r.next_hop).collect();
                Ok((hops == want && paths.len() == want.len()).then_some(paths))
            },
        )
        .await
        .unwrap_or_else(|e| {
            let held = self.router.routes().unwrap_or_default();
            panic!("{e:#}\nheld: {held:#?}\n{}", self.describe())
        })
    }
}

/// One metric's value from a speaker's `/metrics`, found by its name and label text.
fn metric(bed: &Bed, node: &str, name: &str, labels: &str) -> Option<f64> {
    let ns = bed.cluster.host(node).ns.clone();
    let text = ns
        .run(|| ferrolb_tests::l2cluster::http_get("127.0.0.1:7472", "/metrics"))
        .ok()?
        .ok()?;
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

fn set(strings: &[&str]) -> BTreeSet<String> {
    strings.iter().map(|s| (*s).to_owned()).collect()
}

async fn advertises_from_every_eligible_node(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let mut bed = Bed::start(kind).await;
    let (n1, n2) = ("node-1", "node-2");

    // eTP Cluster: both nodes advertise, the router holds one path per node.
    let app = TestService::new("app", &["198.51.100.10", "2001:db8:100::10"], n1);
    bed.cluster.create_service(&app).await.expect("app");
    let paths = bed
        .wait_paths(
            "198.51.100.10/32",
            &[bed.node_ip(n1, false), bed.node_ip(n2, false)],
        )
        .await;
    for path in &paths {
        assert_eq!(path.as_path, vec![NODE_AS], "{path:?}");
        assert_eq!(
            path.communities,
            set(&["65000:100", "65000:200"]),
            "{path:?}"
        );
        assert_eq!(
            path.large_communities,
            set(&[&format!("{NODE_AS}:1:2")]),
            "{path:?}"
        );
    }
    bed.wait_paths(
        "2001:db8:100::10/128",
        &[bed.node_ip(n1, true), bed.node_ip(n2, true)],
    )
    .await;

    // The Service says who advertises it, to which peers (one condition, not one object per
    // node).
    wait_for(
        "app's condition names both nodes",
        Duration::from_secs(20),
        || async {
            let svc = Api::<k8s_openapi::api::core::v1::Service>::namespaced(
                bed.cluster.client(),
                ferrolb_tests::l2cluster::APP_NAMESPACE,
            )
            .get("app")
            .await?;
            let said = svc
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .into_iter()
                .any(|c| {
                    c.type_ == "ferrolb.io/BGPAdvertised"
                        && c.status == "True"
                        && c.message == "advertised by nodes \"node-1\", \"node-2\" to peer \"tor\""
                });
            Ok(said.then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.describe()));

    // eTP Local: only the node with the endpoint advertises, and the path follows it.
    let mut local = TestService::new("local", &["198.51.100.11"], n2);
    local.local = true;
    bed.cluster.create_service(&local).await.expect("local");
    bed.wait_paths("198.51.100.11/32", &[bed.node_ip(n2, false)])
        .await;
    bed.cluster
        .set_endpoints("local", &[n1.to_owned()])
        .await
        .expect("endpoints move");
    bed.wait_paths("198.51.100.11/32", &[bed.node_ip(n1, false)])
        .await;

    // `kubectl ferrolb explain` names the advertising nodes and peers (node-2 does not
    // advertise the Local Service, and says why); `status` shows each node's session.
    let snapshot = ferrolb_cli::cluster::Cluster::fetch(&bed.cluster.client(), NAMESPACE, None)
        .await
        .expect("the plugin reads the cluster");
    let explained = ferrolb_cli::explain::explain(&snapshot, "web", "local").expect("found");
    let by_node: std::collections::BTreeMap<&str, &ferrolb_cli::explain::BgpNode> =
        explained.bgp.iter().map(|b| (b.node.as_str(), b)).collect();
    assert_eq!(by_node[n1].peers, ["tor"], "{explained:#?}");
    assert!(by_node[n2].peers.is_empty(), "{explained:#?}");
    let why = by_node[n2].not_advertised.as_deref().unwrap_or_default();
    assert!(why.contains("no ready endpoint on this node"), "{why}");
    let text = ferrolb_cli::explain::render(&explained);
    assert!(text.contains("node-1: advertised to tor"), "{text}");
    let status = wait_for(
        "the plugin's status shows both sessions Established",
        Duration::from_secs(20),
        || async {
            let snapshot =
                ferrolb_cli::cluster::Cluster::fetch(&bed.cluster.client(), NAMESPACE, None)
                    .await?;
            let status = ferrolb_cli::status::status(&snapshot);
            let up = status
                .peers
                .iter()
                .flat_map(|p| &p.sessions)
                .filter(|s| s.state == "Established")
                .count();
            Ok((up == 2).then_some(status))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.describe()));
    // `simulate --node-down node-1`: app keeps node-2's path, local (only on node-1) is lost.
    let changes = ferrolb_cli::simulate::node_down(&snapshot, n1);
    let bgp: Vec<(String, String, String)> = changes
        .into_iter()
        .filter(|c| c.subject.ends_with("(BGP)"))
        .map(|c| (c.subject, c.from, c.to))
        .collect();
    assert_eq!(
        bgp,
        [
            (
                "web/app (BGP)".to_owned(),
                "node-1, node-2".to_owned(),
                "node-2".to_owned()
            ),
            (
                "web/local (BGP)".to_owned(),
                "node-1".to_owned(),
                "nobody".to_owned()
            ),
        ]
    );
    let rendered = ferrolb_cli::status::render(&status);
    assert!(rendered.contains("tor (192.0.2.3:179)"), "{rendered}");
    assert!(rendered.contains("node-1: advertises"), "{rendered}");

    // A deleted Service is withdrawn from both nodes, in both families.
    bed.cluster.delete_service("app").await.expect("delete");
    bed.wait_paths("198.51.100.10/32", &[]).await;
    bed.wait_paths("2001:db8:100::10/128", &[]).await;

    // A speaker killed outright sends nothing: the router drops its paths when the hold time
    // (3 s) runs out.
    bed.cluster.speaker(n1).expect("node-1's speaker").kill();
    bed.wait_paths("198.51.100.11/32", &[]).await;
    let n1_ip = bed.node_ip(n1, false);
    let n2_ip = bed.node_ip(n2, false);
    assert!(
        !bed.router.established(n1_ip).unwrap_or(true),
        "the router still has a session with the killed speaker"
    );
    assert!(
        bed.router.established(n2_ip).expect("router answers"),
        "node-2's session is untouched\n{}",
        bed.describe()
    );

    // The dead node is removed from the cluster: the surviving speaker removes the status
    // objects its speaker can no longer remove (ServiceBGPStatus: there are none by default).
    let statuses: Api<ferrolb_api::ServiceBGPStatus> =
        Api::namespaced(bed.cluster.client(), NAMESPACE);
    Api::<k8s_openapi::api::core::v1::Node>::all(bed.cluster.client())
        .delete(n1, &Default::default())
        .await
        .expect("node-1 deleted");
    wait_for(
        "node-1's ServiceBGPStatus and BGPSessionState objects go",
        Duration::from_secs(20),
        || async {
            let node_of = |labels: &std::collections::BTreeMap<String, String>| {
                labels.get("ferrolb.io/node").cloned()
            };
            let sessions: Api<ferrolb_api::BGPSessionState> =
                Api::namespaced(bed.cluster.client(), NAMESPACE);
            let left = statuses
                .list(&Default::default())
                .await?
                .items
                .iter()
                .filter_map(|s| node_of(s.metadata.labels.as_ref()?))
                .chain(
                    sessions
                        .list(&Default::default())
                        .await?
                        .items
                        .iter()
                        .filter_map(|s| node_of(s.metadata.labels.as_ref()?)),
                )
                .filter(|n| n == n1)
                .count();
            Ok((left == 0).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.describe()));
}

#[tokio::test]
async fn gobgp_sees_every_eligible_node_advertise() {
    advertises_from_every_eligible_node(RouterKind::Gobgp).await;
}

#[tokio::test]
async fn bird_sees_every_eligible_node_advertise() {
    advertises_from_every_eligible_node(RouterKind::Bird).await;
}

#[tokio::test]
async fn frr_sees_every_eligible_node_advertise() {
    advertises_from_every_eligible_node(RouterKind::Frr).await;
}

/// The router restarts: every session drops, comes back, and the routes with it; the
/// speakers count the flap.
async fn a_restarted_router_gets_sessions_and_routes_back(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let mut bed = Bed::start(kind).await;
    let both = [bed.node_ip("node-1", false), bed.node_ip("node-2", false)];
    let app = TestService::new("app", &["198.51.100.13"], "node-1");
    bed.cluster.create_service(&app).await.expect("app");
    bed.wait_paths("198.51.100.13/32", &both).await;
    let up = "ferrolb_speaker_bgp_session_up";
    assert_eq!(metric(&bed, "node-1", up, "peer=\"tor\""), Some(1.0));
    // Each node reports the session as Established, with the prefix the router holds.
    let sessions: Api<ferrolb_api::BGPSessionState> =
        Api::namespaced(bed.cluster.client(), NAMESPACE);
    wait_for(
        "both nodes report an Established session with one prefix",
        Duration::from_secs(20),
        || async {
            let established = sessions
                .list(&Default::default())
                .await?
                .items
                .into_iter()
                .filter_map(|s| s.status)
                .filter(|st| {
                    st.peer.as_deref() == Some("tor")
                        && st.bgp_status.as_deref() == Some("Established")
                        && st.prefixes_advertised == Some(1)
                })
                .count();
            Ok((established == 2).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.describe()));

    bed.router.restart().expect("the router restarts");
    // A new router process starts with an empty RIB: the paths are the speakers' new sessions.
    bed.wait_paths("198.51.100.13/32", &both).await;
    for node in ["node-1", "node-2"] {
        let flaps = wait_for(
            &format!("{node} counts the session flap"),
            Duration::from_secs(10),
            || async {
                Ok(metric(
                    &bed,
                    node,
                    "ferrolb_speaker_bgp_session_flaps",
                    "peer=\"tor\"",
                )
                .filter(|v| *v >= 1.0))
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.describe()));
        assert!(flaps >= 1.0);
        assert_eq!(metric(&bed, node, up, "peer=\"tor\""), Some(1.0));
    }
}

#[tokio::test]
async fn gobgp_gets_sessions_and_routes_back_after_a_restart() {
    a_restarted_router_gets_sessions_and_routes_back(RouterKind::Gobgp).await;
}

#[tokio::test]
async fn bird_gets_sessions_and_routes_back_after_a_restart() {
    a_restarted_router_gets_sessions_and_routes_back(RouterKind::Bird).await;
}

#[tokio::test]
async fn frr_gets_sessions_and_routes_back_after_a_restart() {
    a_restarted_router_gets_sessions_and_routes_back(RouterKind::Frr).await;
}

/// BFD (RFC 5880/5881) with the BGPPeer's profile: when a node's link dies, the router's BFD
/// notices within 300 ms × 3 and drops the node's paths, long before the 90 s hold time; the
/// session states report BFD Up before that.
async fn bfd_drops_a_dead_nodes_paths_long_before_the_hold_time(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start_with(
        kind,
        Options {
            bfd: true,
            ..Options::default()
        },
    )
    .await;
    let (n1, n2) = (bed.node_ip("node-1", false), bed.node_ip("node-2", false));
    let app = TestService::new("app", &["198.51.100.15"], "node-2");
    bed.cluster.create_service(&app).await.expect("app");
    bed.wait_paths("198.51.100.15/32", &[n1, n2]).await;
    wait_for(
        "the router's BFD sessions with both nodes are up",
        Duration::from_secs(20),
        || async {
            let up = [n1, n2]
                .iter()
                .filter(|ip| {
                    bed.router
                        .bfd_session(**ip)
                        .ok()
                        .flatten()
                        .is_some_and(|s| s.is_up())
                })
                .count();
            Ok((up == 2).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.describe()));
    let sessions: Api<ferrolb_api::BGPSessionState> =
        Api::namespaced(bed.cluster.client(), NAMESPACE);
    wait_for(
        "both nodes report BFD Up",
        Duration::from_secs(20),
        || async {
            let up = sessions
                .list(&Default::default())
                .await?
                .items
                .into_iter()
                .filter_map(|s| s.status)
                .filter(|st| st.bfd_status.as_deref() == Some("Up"))
                .count();
            Ok((up == 2).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.describe()));
    assert_eq!(
        metric(
            &bed,
            "node-1",
            "ferrolb_speaker_bfd_session_up",
            "peer=\"tor\""
        ),
        Some(1.0)
    );

    // node-1's link goes down: no FIN, no NOTIFICATION — only BFD can tell.
    let cut = std::time::Instant::now();
    bed.cluster
        .host("node-1")
        .ns
        .link_down("eth0")
        .expect("link down");
    bed.wait_paths("198.51.100.15/32", &[n2]).await;
    let took = cut.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the router took {took:?} to drop a dead node's paths with BFD at 300 ms × 3"
    );
    eprintln!("{kind}: dead node's path gone after {took:?}");
}

#[tokio::test]
async fn bird_drops_a_dead_nodes_paths_by_bfd() {
    bfd_drops_a_dead_nodes_paths_long_before_the_hold_time(RouterKind::Bird).await;
}

#[tokio::test]
async fn frr_drops_a_dead_nodes_paths_by_bfd() {
    bfd_drops_a_dead_nodes_paths_long_before_the_hold_time(RouterKind::Frr).await;
}

/// A BGPPeer that cannot run here (a VRF the nodes do not have) is refused with a Warning Event
/// on it that names the missing device, and the rest of the configuration keeps working.
#[tokio::test]
async fn an_unsupported_peer_is_reported_on_the_peer() -> anyhow::Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return Ok(());
    }
    let bed = Bed::start(RouterKind::Gobgp).await;
    bed.cluster
        .apply(&format!(
            r#"
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {{name: red, namespace: {NAMESPACE}}}
spec: {{myASN: {NODE_AS}, peerASN: 64501, peerAddress: 192.0.2.250, vrf: red}}
"#
        ))
        .await?;
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(bed.cluster.client(), NAMESPACE);
    let note = wait_for(
        "a PeerUnsupported Event on BGPPeer red",
        Duration::from_secs(20),
        || async {
            Ok(events
                .list(&Default::default())
                .await?
                .items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("PeerUnsupported")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("red")
                })
                .and_then(|e| e.note))
        },
    )
    .await
    .with_context(|| bed.describe())?;
    assert!(note.contains("no VRF device \"red\""), "{note}");
    // The good peer still gets routes.
    let app = TestService::new("app", &["198.51.100.12"], "node-1");
    bed.cluster.create_service(&app).await?;
    bed.wait_paths(
        "198.51.100.12/32",
        &[bed.node_ip("node-1", false), bed.node_ip("node-2", false)],
    )
    .await;
    Ok(())
}
