//! BMP from the speaker binary: with `--bmp-collector`, every node exports its session to the
//! router and the routes it advertises on it to pmacct's pmbmpd, a real collector on a host of
//! its own. The wiring (flag, the node's sessions, the export task) is what this shows; the
//! messages themselves are checked field by field in `tests/tests/bmp_collector.rs`.

use super::*;

#[tokio::test]
async fn every_node_exports_its_session_and_routes_to_a_bmp_collector() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start_with(
        RouterKind::Frr,
        Options {
            bmp: true,
            ..Options::default()
        },
    )
    .await;
    let prefix = "198.51.100.25/32";
    let app = TestService::new("app", &["198.51.100.25"], "node-1");
    bed.cluster.create_service(&app).await.expect("app");
    let nodes = [bed.node_ip("node-1", false), bed.node_ip("node-2", false)];
    bed.wait_paths(prefix, &nodes).await;

    let collector = bed.collector.as_ref().expect("the bed runs a collector");
    let router = bed.cluster.host(ROUTER_HOST).ipv4.to_string();
    let want_nodes: BTreeSet<String> = nodes.iter().map(ToString::to_string).collect();
    wait_for(
        "pmbmpd logs each node's session and the Service's route",
        Duration::from_secs(30),
        || async {
            let messages = collector.messages();
            let from = |pred: &dyn Fn(&serde_json::Value) -> bool| -> BTreeSet<String> {
                messages
                    .iter()
                    .filter(|m| pred(m))
                    .filter_map(|m| m["bmp_router"].as_str().map(str::to_owned))
                    .collect()
            };
            let named: BTreeSet<String> = messages
                .iter()
                .filter(|m| m["bmp_msg_type"] == "init")
                .filter_map(|m| m["bmp_init_info_sysname"].as_str().map(str::to_owned))
                .collect();
            let up = from(&|m| m["bmp_msg_type"] == "peer_up" && m["peer_ip"] == router.as_str());
            let routed = from(&|m| {
                m["bmp_msg_type"] == "route_monitor"
                    && m["ip_prefix"] == prefix
                    && m["log_type"] == "update"
                    && m["is_out"] == 1
                    && m["peer_ip"] == router.as_str()
            });
            Ok(
                (named == set(&["node-1", "node-2"]) && up == want_nodes && routed == want_nodes)
                    .then_some(()),
            )
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", collector.describe()));
}
