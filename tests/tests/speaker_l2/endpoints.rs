//! Endpoints that change under an IP: a new one settles before it draws traffic, and
//! Services without usable ones are announced only when they opt in.

use super::*;

/// An endpoint that becomes ready on the node the hash prefers moves an `externalTrafficPolicy:
/// Local` IP there — but that node's kube-proxy programs the endpoint only at its next sync
/// (up to its minSyncPeriod, 1 s by default, later under load). Claiming the IP at once sent
/// requests to a node that dropped them (seen twice in 32 rolling-upgrade trials on the real
/// cluster); the IP must stay with the node that serves it until the new one can.
#[tokio::test]
async fn a_local_ip_waits_for_a_fresh_endpoint_to_be_programmed_before_it_moves() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let vip = ip("192.0.2.209");
    // The hash's first choice among all nodes, and its second.
    cluster
        .create_service(&TestService::new("fresh", &["192.0.2.209"], "node-1"))
        .await
        .expect("created");
    let preferred = owner(&cluster, vip, &all(&cluster)).await;
    let rest: Vec<String> = all(&cluster)
        .into_iter()
        .filter(|n| *n != preferred)
        .collect();
    let serving = owner(&cluster, vip, &rest).await;
    let mac = cluster.resolve(vip, SETTLE).await.expect("resolved");
    assert_eq!(cluster.mac(&preferred), mac);
    // Local, served only on `serving`.
    let patch = serde_json::json!({"spec": {"externalTrafficPolicy": "Local"}});
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(cluster.client(), APP_NAMESPACE)
        .patch(
            "fresh",
            &Default::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("patched");
    cluster
        .set_endpoints("fresh", std::slice::from_ref(&serving))
        .await
        .expect("endpoints set");
    cluster
        .wait_neighbour_mac(vip, &cluster.mac(&serving), SETTLE)
        .await
        .expect("the serving node announces the IP");
    cluster.start_echo(vip).expect("echo responders");
    // `preferred` has no rule for the IP yet: what it receives, it drops.
    cluster
        .set_node_answers(&preferred, vip, false)
        .expect("preferred drops");

    let prober = cluster
        .start_prober(vip, Duration::from_millis(10))
        .expect("prober");
    tokio::time::sleep(Duration::from_millis(300)).await; // requests flowing before the change
    cluster
        .set_endpoints("fresh", &[serving.clone(), preferred.clone()])
        .await
        .expect("an endpoint becomes ready on the preferred node");
    // Its kube-proxy programs the endpoint 800 ms later (within its 1 s minSyncPeriod).
    tokio::time::sleep(Duration::from_millis(800)).await;
    cluster
        .set_node_answers(&preferred, vip, true)
        .expect("preferred serves");
    cluster
        .wait_neighbour_mac(vip, &cluster.mac(&preferred), MOVE)
        .await
        .expect("the IP moves to the preferred node once its endpoint has settled");
    tokio::time::sleep(Duration::from_millis(300)).await; // requests flowing after the move
    let probes = finish_without_loss(prober);
    let (new, _) = failover_gap(&probes, &serving).expect("answers from both nodes");
    assert_eq!(new, preferred);
}

/// Gateway API implementations and Services backed outside the cluster create LoadBalancer
/// Services whose endpoints are absent, external or not ready. MetalLB's rule (and ours by
/// default) announces none of them; `ferrolb.io/announce-without-endpoints: "true"` announces
/// each from the node the election picks.
#[tokio::test]
async fn services_without_usable_endpoints_are_announced_only_when_they_opt_in() {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let Some(cluster) = cluster().await else {
        return;
    };
    let slices = Api::<EndpointSlice>::namespaced(cluster.client(), APP_NAMESPACE);
    let services =
        Api::<k8s_openapi::api::core::v1::Service>::namespaced(cluster.client(), APP_NAMESPACE);
    let slice = |name: &str, endpoint: serde_json::Value| -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{name}-test"), "namespace": APP_NAMESPACE,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "endpoints": [endpoint],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }))
        .expect("a valid slice")
    };
    let apply = kube::api::PatchParams::apply("ferrolb-tests").force();

    // No EndpointSlice at all.
    let none = TestService {
        endpoints_on: Vec::new(),
        ..TestService::new("no-slice", &["192.0.2.212"], "node-1")
    };
    cluster.create_service(&none).await.expect("created");
    slices
        .delete("no-slice-test", &Default::default())
        .await
        .expect("slice deleted");
    // Only an endpoint outside the cluster (no node), with externalTrafficPolicy Local.
    let external = TestService {
        local: true,
        endpoints_on: Vec::new(),
        ..TestService::new("external", &["192.0.2.213"], "node-1")
    };
    cluster.create_service(&external).await.expect("created");
    slices
        .patch(
            "external-test",
            &apply,
            &kube::api::Patch::Apply(&slice(
                "external",
                serde_json::json!({"addresses": ["203.0.113.80"], "conditions": {"ready": true}}),
            )),
        )
        .await
        .expect("external endpoint");
    // Endpoints that are all not ready.
    let unready = TestService {
        endpoints_on: Vec::new(),
        ..TestService::new("unready", &["192.0.2.214"], "node-1")
    };
    cluster.create_service(&unready).await.expect("created");
    slices
        .patch(
            "unready-test",
            &apply,
            &kube::api::Patch::Apply(&slice(
                "unready",
                serde_json::json!({"addresses": ["198.18.1.10"], "nodeName": "node-1",
                                   "conditions": {"ready": false, "serving": false}}),
            )),
        )
        .await
        .expect("unready endpoint");

    let cases = [
        ("no-slice", "192.0.2.212"),
        ("external", "192.0.2.213"),
        ("unready", "192.0.2.214"),
    ];
    for (name, vip) in cases {
        let vip = ip(vip);
        assert!(
            cluster.resolve(vip, Duration::from_secs(2)).await.is_err(),
            "{name}: announced without usable endpoints and without the opt-in"
        );
        let patch = serde_json::json!({"metadata": {"annotations": {
            ferrolb_api::annotations::ANNOUNCE_WITHOUT_ENDPOINTS: "true"}}});
        services
            .patch(name, &Default::default(), &kube::api::Patch::Merge(&patch))
            .await
            .expect("opted in");
        let elected = owner(&cluster, vip, &all(&cluster)).await;
        let mac = cluster
            .resolve(vip, SETTLE)
            .await
            .unwrap_or_else(|e| panic!("{name}: not announced after opting in: {e:#}"));
        assert_eq!(mac, cluster.mac(&elected), "{name}");
    }
}
