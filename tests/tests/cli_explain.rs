//! `kubectl ferrolb explain`, `simulate` and `status` against a real apiserver with the real
//! controller running: for each reason a Service can be pending, explain gives that reason —
//! the same one the controller recorded on the Service — and for an assigned Service it names
//! the pool and the node that announces it, with the excluded nodes and why.

use std::time::Duration;

use anyhow::Context as _;
use ferrolb_cli::cluster::Cluster;
use ferrolb_cli::{explain, simulate, status};
use ferrolb_config::NodeName;
use ferrolb_speaker::election::rendezvous_hash;
use ferrolb_tests::controller::{RunningController, eventually, test_settings};
use ferrolb_tests::fixtures::{control_plane_with_crds, create_namespace};
use k8s_openapi::api::core::v1::{Node, Service};
use kube::Api;
use kube::api::PostParams;

const CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec:
  addresses: ["192.0.2.200-192.0.2.219"]
  serviceAllocation: {namespaces: [web]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: tiny, namespace: ferrolb-system}
spec:
  addresses: ["192.0.2.240/32"]
  serviceAllocation: {namespaces: [crowded]}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec: {ipAddressPools: [lan, tiny]}
"#;

fn service(namespace: &str, name: &str, extra: serde_json::Value) -> anyhow::Result<Service> {
    let mut svc = serde_json::json!({
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    });
    merge(&mut svc, extra);
    Ok(serde_json::from_value(svc)?)
}

fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    match (base, extra) {
        (serde_json::Value::Object(b), serde_json::Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

#[tokio::test]
async fn explain_names_the_reason_for_each_pending_case_and_the_announcing_node()
-> anyhow::Result<()> {
    let cp = control_plane_with_crds().await?;
    for ns in ["web", "crowded", "other"] {
        create_namespace(&cp, ns).await?;
    }
    cp.apply_yaml(CONFIG).await?;
    let client = cp.client();
    for (i, name) in ["node-a", "node-b", "node-c"].iter().enumerate() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"addresses": [{"type": "InternalIP", "address": format!("192.0.2.{}", i + 1)}]},
        }))?;
        Api::<Node>::all(client.clone())
            .create(&PostParams::default(), &node)
            .await?;
    }
    // node-c is excluded by label.
    cp.kubectl(&[
        "label",
        "node",
        "node-c",
        "node.kubernetes.io/exclude-from-external-load-balancers=",
    ])
    .await?
    .into_stdout()?;
    let controller = RunningController::start(&cp, test_settings("explain"))?;
    controller.wait_leading(Duration::from_secs(30)).await?;

    let create = |ns: &str, svc: Service| {
        let api: Api<Service> = Api::namespaced(client.clone(), ns);
        async move { api.create(&PostParams::default(), &svc).await }
    };
    create("web", service("web", "ok", serde_json::json!({}))?).await?;
    create("other", service("other", "nopool", serde_json::json!({}))?).await?;
    create(
        "crowded",
        service("crowded", "first", serde_json::json!({}))?,
    )
    .await?;
    create(
        "crowded",
        service("crowded", "second", serde_json::json!({}))?,
    )
    .await?;
    let shared = serde_json::json!({"metadata": {"annotations": {
        "ferrolb.io/loadBalancerIPs": "192.0.2.210", "ferrolb.io/allow-shared-ip": "k"}}});
    create("web", service("web", "share-1", shared.clone())?).await?;
    create("web", service("web", "share-2", shared)?).await?;
    create(
        "web",
        service(
            "web",
            "classy",
            serde_json::json!({"spec": {"loadBalancerClass": "example.com/other"}}),
        )?,
    )
    .await?;
    // The controller has decided everything (crowded/second stays pending).
    let api: Api<Service> = Api::namespaced(client.clone(), "web");
    eventually(
        "web/ok and web/share-1 have IPs",
        Duration::from_secs(30),
        || async {
            for name in ["ok", "share-1"] {
                let svc = api.get(name).await?;
                anyhow::ensure!(
                    !ferrolb_api::service::ingress_ips(&svc).is_empty(),
                    "{name} pending"
                );
            }
            Ok(())
        },
    )
    .await?;
    // An EndpointSlice for web/ok so it is announced.
    cp.apply_yaml(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: ok-1, namespace: web, labels: {kubernetes.io/service-name: ok}}\n\
         addressType: IPv4\nendpoints: [{addresses: [198.18.1.10], nodeName: node-a, conditions: {ready: true}}]\nports: [{port: 8080}]\n",
    )
    .await?;

    let cluster = eventually(
        "every pending Service has its condition",
        Duration::from_secs(30),
        || async {
            let cluster = Cluster::fetch(&client, ferrolb_api::DEFAULT_NAMESPACE, None).await?;
            for (ns, name) in [
                ("other", "nopool"),
                ("crowded", "second"),
                ("web", "share-2"),
            ] {
                explain::explain(&cluster, ns, name)
                    .and_then(|e| e.controller_says)
                    .with_context(|| format!("{ns}/{name} has no condition yet"))?;
            }
            Ok(cluster)
        },
    )
    .await?;

    // Pending, each with its own reason — the one the controller recorded too.
    let cases = [
        (
            "other",
            "nopool",
            "no pool with autoAssign allows this Service",
        ),
        ("crowded", "second", "no available IPs in pools tiny"),
        (
            "web",
            "share-2",
            "192.0.2.210 is used by web/share-1: both use port TCP/80",
        ),
    ];
    for (ns, name, reason) in cases {
        let e = explain::explain(&cluster, ns, name).context("explained")?;
        assert_eq!(e.state, "pending", "{ns}/{name}: {e:?}");
        assert!(
            e.reason.contains(reason),
            "{ns}/{name}: {:?} lacks {reason:?}",
            e.reason
        );
        let recorded = e.controller_says.clone().unwrap_or_default();
        assert!(
            recorded.contains(reason),
            "{ns}/{name}: the controller recorded {recorded:?}, explain says {:?}",
            e.reason
        );
    }
    let classy = explain::explain(&cluster, "web", "classy").context("explained")?;
    assert_eq!(classy.state, "not-ours");
    assert!(
        classy.reason.contains("example.com/other"),
        "{}",
        classy.reason
    );

    // Assigned: the pool, why, and the announcing node with the order behind it.
    let ok = explain::explain(&cluster, "web", "ok").context("explained")?;
    assert_eq!(ok.state, "assigned");
    assert_eq!(ok.pool.as_deref(), Some("lan"));
    assert!(ok.reason.contains("first pool"), "{}", ok.reason);
    let l2 = ok.layer2.first().context("an IP")?;
    let ip = l2.ip.parse()?;
    let expected = ["node-a", "node-b"]
        .into_iter()
        .min_by_key(|n| rendezvous_hash(&NodeName::from(n.to_string()), ip))
        .context("two candidates")?;
    assert_eq!(l2.elected.as_deref(), Some(expected), "{l2:?}");
    assert_eq!(l2.candidates.len(), 2, "{l2:?}");
    assert!(
        l2.excluded.iter().any(
            |x| x.node == "node-c" && x.reason.contains("exclude-from-external-load-balancers")
        ),
        "{l2:?}"
    );
    let text = explain::render(&ok);
    assert!(
        text.contains(&format!("announced by: {expected}")),
        "{text}"
    );

    // Simulate the announcing node's death: the IP moves to the other candidate.
    let moves = simulate::node_down(&cluster, expected);
    let other = if expected == "node-a" {
        "node-b"
    } else {
        "node-a"
    };
    assert!(
        moves
            .iter()
            .any(|m| m.subject.starts_with(&l2.ip) && m.from == expected && m.to == other),
        "{moves:?}"
    );
    // Simulate a configuration that drops pool tiny: crowded/first loses its IP.
    let without_tiny: String = CONFIG
        .split("---")
        .filter(|d| !d.contains("name: tiny"))
        .collect::<Vec<_>>()
        .join("---")
        .replace("ipAddressPools: [lan, tiny]", "ipAddressPools: [lan]");
    let changes = simulate::config_change(&cluster, &without_tiny).map_err(anyhow::Error::msg)?;
    assert!(
        changes.iter().any(|c| c.subject == "crowded/first"
            && c.from.contains("tiny")
            && c.to.starts_with("no IP")),
        "{changes:?}"
    );

    // Status: the pools' usage as the controller counts it.
    let s = status::status(&cluster);
    let tiny = s
        .pools
        .iter()
        .find(|p| p.name == "tiny")
        .context("pool tiny")?;
    assert_eq!(tiny.ipv4, "1 used / 0 free");
    assert!(
        s.layer2
            .get(expected)
            .is_some_and(|ips| ips.contains(&l2.ip)),
        "{s:?}"
    );
    controller.stop()?;
    Ok(())
}
