//! Unnumbered BGP on the lab's real cluster: real kubelets and kube-proxy, ferrolb installed
//! from `install.yaml` and its image, and beside the lab's LAN router (FRR, numbered peering)
//! a "spine" FRR joined to each node by a link of its own that has no address but the kernel's
//! IPv6 link-locals — a leaf-spine fabric's unnumbered downlinks.
//!
//! One BGPPeer with `interface: unn0` selects every node. Shown:
//! - each node's speaker finds the spine on `unn0` and the spine's `neighbor <if> interface`
//!   sessions come up;
//! - the spine installs an IPv4 LoadBalancer IP with one path per node `via inet6` the node's
//!   link-local address, and an HTTP request from the spine's own IPv4 address, across the
//!   IPv6-only links, is answered by the Service's pods;
//! - for Services created one after another, how long from the Service's creation until the
//!   spine's kernel routes its IP (unnumbered) and until the LAN router's does (numbered), both
//!   FRR, in the same run: printed as `lab-unnumbered:` lines for `tests/bench/unnumbered.sh`.
//!
//! Needs root.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ferrolb_tests::l2cluster::wait_for;
use ferrolb_tests::lab::{self, ClusterLab};
use ferrolb_tests::netns::{Netns, OwnedNetns, is_root};
use ferrolb_tests::routers::{Neighbor, Router, RouterConfig, RouterKind};
use k8s_openapi::api::core::v1::Service;
use kube::Api;

const SETTLE: Duration = Duration::from_secs(60);
const NODE_AS: u32 = 64512;
const SPINE_AS: u32 = 64600;
/// The spine's own address, on its loopback: the HTTP client's source.
const SPINE_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 200);
/// Services created for the timing.
const TIMED: usize = 5;

const SPINE_PEER: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {name: spine, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64600, interface: unn0, holdTime: 9s}
"#;

/// The spine, linked to every node by `unn0` (node side) / `node<k>` (spine side).
struct Spine {
    // Drop order: the router before its namespace.
    router: Router,
    ns: OwnedNetns,
}

/// The link-local address of `dev` in `ns`.
fn link_local(ns: &Netns, dev: &str) -> anyhow::Result<String> {
    let out = ns.ip(&["-6", "-o", "addr", "show", "dev", dev, "scope", "link"])?;
    out.split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no link-local address on {dev}: {out}"))
}

fn start_spine(lab: &ClusterLab) -> Spine {
    let ns = OwnedNetns::create("spine").expect("a namespace");
    let spine = ns.ns();
    spine
        .sysctl("net.ipv6.conf.default.accept_dad", "0")
        .expect("sysctl");
    spine
        .ip(&["addr", "add", &format!("{SPINE_IP}/32"), "dev", "lo"])
        .expect("the spine's address");
    let mut neighbors = Vec::new();
    for (k, node) in lab.cluster().nodes().iter().enumerate() {
        let node_ns = &lab.cluster().host(node.name()).ns;
        let port = format!("node{}", k + 1);
        node_ns
            .ip(&[
                "link",
                "add",
                "unn0",
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                spine.name(),
            ])
            .expect("a link to the spine");
        node_ns
            .sysctl("net.ipv6.conf.unn0.accept_dad", "0")
            .expect("sysctl");
        node_ns.link_up("unn0").expect("up");
        spine.link_up(&port).expect("up");
        // The spine's own address is reached over the link, as the fabric's routes would.
        let spine_ll = wait_link_local(spine, &port);
        node_ns
            .ip(&[
                "route",
                "add",
                &format!("{SPINE_IP}/32"),
                "via",
                "inet6",
                &spine_ll,
                "dev",
                "unn0",
            ])
            .expect("the way back to the spine");
        let mut neighbor = Neighbor::passive(IpAddr::V4(node.ip()), NODE_AS);
        neighbor.passive = false;
        neighbor.interface = Some(port);
        neighbors.push(neighbor);
    }
    let router = Router::start(
        RouterKind::Frr,
        spine,
        &RouterConfig {
            asn: SPINE_AS,
            router_id: SPINE_IP,
            neighbors,
            multipath: true,
        },
    )
    .expect("the spine's FRR starts");
    Spine { router, ns }
}

fn wait_link_local(ns: &Netns, dev: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match link_local(ns, dev) {
            Ok(a) => return a,
            Err(e) if Instant::now() > deadline => panic!("{e:#}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

async fn apply_service(client: &kube::Client, name: &'static str) {
    let spec = lab::DemoService {
        name,
        local: false,
        pool: Some("bgp"),
        app: "echo",
        external: true,
    };
    Api::<Service>::namespaced(client.clone(), "default")
        .patch(
            name,
            &kube::api::PatchParams::apply("lab-unnumbered").force(),
            &kube::api::Patch::Apply(lab::demo_service(&spec)),
        )
        .await
        .expect("the Service applies");
}

async fn ipv4_of(client: &kube::Client, name: &str) -> IpAddr {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    wait_for(&format!("{name} gets an IP"), SETTLE, || async {
        let svc = api.get(name).await?;
        Ok(ferrolb_api::service::ingress_ips(&svc)
            .into_iter()
            .find(IpAddr::is_ipv4))
    })
    .await
    .expect("an IP")
}

/// The kernel's route for `ip` in `ns`, empty when there is none.
fn kernel_route(ns: &Netns, ip: IpAddr) -> String {
    ns.ip(&["route", "show", &format!("{ip}/32")])
        .unwrap_or_default()
}

#[tokio::test]
async fn a_loadbalancer_ip_is_reached_over_unnumbered_links_to_every_node() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let lab = ClusterLab::start(2, RouterKind::Frr, Duration::from_secs(120))
        .await
        .expect("the lab starts");
    let spine = start_spine(&lab);
    let cp = lab.cluster().control_plane();
    cp.apply_yaml(SPINE_PEER)
        .await
        .expect("the BGPPeer applies");
    let client = lab.cluster().client();
    let ports: Vec<String> = (1..=lab.cluster().nodes().len())
        .map(|k| format!("node{k}"))
        .collect();
    wait_for(
        "every node's session to the spine is Established",
        SETTLE,
        || async {
            let up = ports
                .iter()
                .all(|p| spine.router.established_on(p).unwrap_or(false));
            Ok(up.then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", spine.router.describe()));

    apply_service(&client, "web-unnumbered").await;
    let ip = ipv4_of(&client, "web-unnumbered").await;
    let route = wait_for(
        "the spine routes the IP via inet6 over every node's link",
        SETTLE,
        || async {
            let route = kernel_route(spine.ns.ns(), ip);
            let every = ports.iter().all(|p| route.contains(&format!("dev {p}")));
            Ok((route.contains("via inet6 fe80:") && every).then_some(route))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", spine.router.describe()));
    println!("spine's route for {ip}:\n{route}");
    let spine_ns = spine.ns.ns().name().to_owned();
    let answer = wait_for(
        "the Service answers the spine across the IPv6-only links",
        SETTLE,
        || {
            let ns = spine_ns.clone();
            async move { Ok(lab::http_get_path(&ns, ip, 80, "/").ok()) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", spine.router.describe()));
    // An echo pod names itself and the client address it saw (a node's, after kube-proxy's
    // masquerade for externalTrafficPolicy Cluster).
    assert!(answer.starts_with("echo-"), "an echo pod answers: {answer}");

    // The same Service IP, numbered (the LAN router) and unnumbered (the spine), both FRR.
    const NAMES: [&str; TIMED] = ["timed-1", "timed-2", "timed-3", "timed-4", "timed-5"];
    let lan_router = lab.cluster().host(lab::ROUTER).ns.clone();
    for name in NAMES {
        let created = Instant::now();
        apply_service(&client, name).await;
        let ip = ipv4_of(&client, name).await;
        let (mut numbered, mut unnumbered) = (None, None);
        while (numbered.is_none() || unnumbered.is_none()) && created.elapsed() < SETTLE {
            if numbered.is_none() && !kernel_route(&lan_router, ip).is_empty() {
                numbered = Some(created.elapsed());
            }
            if unnumbered.is_none() && kernel_route(spine.ns.ns(), ip).contains("via inet6") {
                unnumbered = Some(created.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (Some(numbered), Some(unnumbered)) = (numbered, unnumbered) else {
            panic!(
                "{name} ({ip}) not in both FIBs within {SETTLE:?}: numbered {numbered:?}, unnumbered {unnumbered:?}"
            );
        };
        println!(
            "lab-unnumbered: numbered_ms={} unnumbered_ms={}",
            numbered.as_millis(),
            unnumbered.as_millis()
        );
    }
}
