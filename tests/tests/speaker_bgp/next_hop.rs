//! The IPv6 next hop a speaker advertises over an IPv4 session is an address of the session's
//! interface that will stay: not a deprecated one (its preferred lifetime over, on its way out)
//! or a temporary (privacy) one (issue #13).

use super::*;

/// node-1's interface gets a second global IPv6 address, deprecated (preferred lifetime 0),
/// numerically below its own. The router must learn node-1's IPv6 paths through its stable
/// address, not through the deprecated one.
async fn a_deprecated_ipv6_address_is_not_the_next_hop(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let mut bed = Bed::start(kind).await;
    let (n1, n2) = ("node-1", "node-2");
    let app = TestService::new("app", &["198.51.100.16", "2001:db8:100::16"], n1);
    bed.cluster.create_service(&app).await.expect("app");
    let both_v6 = [bed.node_ip(n1, true), bed.node_ip(n2, true)];
    bed.wait_paths("2001:db8:100::16/128", &both_v6).await;

    // Below 2001:db8:0:1::/64, so the lowest global address of the interface.
    bed.cluster
        .host(n1)
        .ns
        .ip(&[
            "-6",
            "addr",
            "add",
            "2001:db8:0:0::99/64",
            "dev",
            "eth0",
            "nodad",
            "preferred_lft",
            "0",
        ])
        .expect("a deprecated address on node-1");
    // The next hop is chosen when a session is established: make them start again.
    bed.router.restart().expect("the router restarts");
    bed.wait_paths("2001:db8:100::16/128", &both_v6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bird_is_not_given_a_deprecated_ipv6_next_hop() {
    a_deprecated_ipv6_address_is_not_the_next_hop(RouterKind::Bird).await;
}
