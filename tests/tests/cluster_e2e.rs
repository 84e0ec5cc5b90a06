//! ferrolb as its users run it: on a real cluster (kubelets, containerd, runc, the controller
//! manager and scheduler; `ferrolb_tests::cluster`), installed with
//! `kubectl apply --server-side -f manifests/install.yaml` from the image that
//! `tests/setup/images.sh` builds, serving a Deployment of real containers through a
//! LoadBalancer IP, with EndpointSlices written by Kubernetes' own controller.
//!
//! Needs root (namespaces, mounts, cgroups); without it the test says so and passes. The
//! cluster's prerequisites (packages, kubelet & co., images) are what `tests/run.sh` provides;
//! when they are missing as root, the test fails naming the setup script to run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ferrolb_controller::k8s::LEASE_NAME;
use ferrolb_tests::cluster::Cluster;
use ferrolb_tests::cluster::ferrolb::{NAMESPACE, POOL, echo, lb_ip, lb_ips, skip_without_root};
use ferrolb_tests::l2cluster::wait_for;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::ListParams;

const NODES: usize = 2;
const NS: &str = NAMESPACE;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_the_lan_reaches_a_container_through_the_ip_ferrolb_installed_from_install_yaml_announces()
-> anyhow::Result<()> {
    if skip_without_root() {
        return Ok(());
    }
    let mut cluster = Cluster::builder(NODES).start().await?;
    let memory: BTreeMap<&str, u64> = cluster
        .nodes()
        .iter()
        .map(|n| (n.name(), n.memory_bytes() >> 20))
        .collect();
    eprintln!(
        "cluster of {NODES} nodes Ready in {:.1}s; memory per node (MiB, before any pod): {memory:?}",
        cluster.startup_time().as_secs_f64()
    );

    // As the README says: one command, then a pool and an advertisement.
    let installing = Instant::now();
    cluster.install_ferrolb().await?;
    cluster
        .kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(POOL))
        .await?;
    let table = cluster.wait_ferrolb_running(2, None).await?;
    eprintln!(
        "ferrolb Running {:.1}s after `kubectl apply`:\n{table}",
        installing.elapsed().as_secs_f64()
    );
    cluster.check_running()?;

    cluster
        .kubectl_ok(
            &["apply", "--server-side", "-f", "-"],
            Some(&echo(NODES, false)),
        )
        .await?;
    let ip = cluster.wait_lb_ip("default", "echo").await?;
    assert!(
        ip.starts_with("192.0.2.2"),
        "the IP {ip} is not from the lan pool"
    );

    // The endpoints are the endpoint-slice controller's, not the test's.
    let slices: Api<EndpointSlice> = Api::namespaced(cluster.client(), "default");
    let ready_endpoints = wait_for(
        "EndpointSlices of echo with 2 ready endpoints",
        Duration::from_secs(120),
        || {
            let slices = slices.clone();
            async move {
                let list = slices
                    .list(&ListParams::default().labels("kubernetes.io/service-name=echo"))
                    .await?;
                let mut ready = Vec::new();
                for s in &list.items {
                    let manager = s
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("endpointslice.kubernetes.io/managed-by"));
                    if manager.map(String::as_str) != Some("endpointslice-controller.k8s.io") {
                        continue;
                    }
                    for e in &s.endpoints {
                        if e.conditions.as_ref().and_then(|c| c.ready) == Some(true) {
                            ready.push((
                                e.target_ref.as_ref().and_then(|t| t.name.clone()),
                                e.node_name.clone(),
                            ));
                        }
                    }
                }
                Ok((ready.len() == 2).then_some(ready))
            }
        },
    )
    .await?;

    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    let pod_nodes: BTreeMap<String, String> = pods
        .list(&ListParams::default().labels("app=echo"))
        .await?
        .items
        .into_iter()
        .filter_map(|p| Some((p.metadata.name?, p.spec?.node_name?)))
        .collect();
    for (pod, node) in &ready_endpoints {
        let (Some(pod), Some(node)) = (pod, node) else {
            bail!("an endpoint without its pod or node: {ready_endpoints:?}");
        };
        assert_eq!(
            pod_nodes.get(pod),
            Some(node),
            "endpoint {pod} is not on {node}"
        );
    }

    // The client on the LAN: ARP for the IP, answered by the elected speaker, then kube-proxy
    // to a container, which names itself and its node.
    let body = cluster.wait_answering(&ip, Duration::from_secs(60)).await?;
    eprintln!("GET http://{ip}/ from the client: {body}");
    answered_by_an_echo_pod_on_its_node(&body, &pod_nodes)?;

    dual_stack_service_answers_over_ipv6(&cluster, &pod_nodes).await?;

    let memory: BTreeMap<&str, u64> = cluster
        .nodes()
        .iter()
        .map(|n| (n.name(), n.memory_bytes() >> 20))
        .collect();
    eprintln!("memory per node (MiB) with ferrolb and echo running: {memory:?}");

    leader_pod_deleted_the_other_replica_takes_over_and_no_ip_changes(&cluster, &ip).await?;
    cluster.check_running()?;
    Ok(())
}

/// The holder of the controller's Lease.
/// The same pods behind a `RequireDualStack` Service: it gets an address of each family from
/// the pool, and the client on the LAN reaches a pod through the IPv6 one (the elected speaker
/// answers neighbour solicitations; kube-proxy's ip6 rules carry it to a dual-stack pod).
async fn dual_stack_service_answers_over_ipv6(
    cluster: &Cluster,
    pod_nodes: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    const DUAL: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: echo-dual, namespace: default}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv6, IPv4]
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
"#;
    cluster
        .kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(DUAL))
        .await?;
    let services: Api<Service> = Api::namespaced(cluster.client(), "default");
    let ips = wait_for(
        "an IP of each family for echo-dual",
        Duration::from_secs(60),
        || async {
            let ips = lb_ips(&services.get("echo-dual").await?);
            Ok((ips.len() == 2).then_some(ips))
        },
    )
    .await?;
    let v6 = ips
        .iter()
        .find(|ip| ip.contains(':'))
        .with_context(|| format!("no IPv6 among {ips:?}"))?;
    assert!(
        v6.starts_with("2001:db8:0:1::2") && ips.iter().any(|ip| ip.starts_with("192.0.2.2")),
        "{ips:?} are not the lan pool's"
    );
    let body = cluster.wait_answering(v6, Duration::from_secs(60)).await?;
    eprintln!("GET http://[{v6}]/ from the client: {body}");
    answered_by_an_echo_pod_on_its_node(&body, pod_nodes)?;
    Ok(())
}

/// Checks that `body` comes from the echo image and names one of the echo pods and the node
/// that pod runs on.
fn answered_by_an_echo_pod_on_its_node(
    body: &str,
    pod_nodes: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let (pod, rest) = body
        .split_once(" on ")
        .with_context(|| format!("an answer not from the echo image: {body}"))?;
    let node = rest.split(',').next().unwrap_or_default();
    assert_eq!(
        pod_nodes.get(pod).map(String::as_str),
        Some(node),
        "the answer names pod {pod} on {node}; the echo pods are {pod_nodes:?}"
    );
    Ok(())
}

async fn leader(cluster: &Cluster) -> anyhow::Result<Option<String>> {
    let leases: Api<Lease> = Api::namespaced(cluster.client(), NS);
    Ok(leases
        .get_opt(LEASE_NAME)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty()))
}

/// `kubectl delete pod <leader>`: the other replica takes the Lease, the Service keeps its IP
/// and still answers, and the new leader assigns IPs to new Services.
async fn leader_pod_deleted_the_other_replica_takes_over_and_no_ip_changes(
    cluster: &Cluster,
    ip: &str,
) -> anyhow::Result<()> {
    let old = wait_for("a leader", Duration::from_secs(30), || leader(cluster)).await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), NS);
    let controllers: Vec<String> = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=controller"))
        .await?
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert!(
        controllers.contains(&old),
        "the leader {old} is not a controller pod: {controllers:?}"
    );
    let deleting = Instant::now();
    cluster
        .kubectl_ok(&["delete", "pod", "-n", NS, &old, "--wait=false"], None)
        .await?;
    let new = wait_for("another leader", Duration::from_secs(60), || async {
        Ok(leader(cluster).await?.filter(|h| *h != old))
    })
    .await?;
    eprintln!(
        "leader {old} deleted; {new} leads after {:.1}s",
        deleting.elapsed().as_secs_f64()
    );
    let services: Api<Service> = Api::namespaced(cluster.client(), "default");
    cluster
        .kubectl_ok(
            &[
                "create",
                "service",
                "loadbalancer",
                "echo-2",
                "-n",
                "default",
                "--tcp=80:8080",
            ],
            None,
        )
        .await?;
    let ip2 = wait_for(
        "an IP for echo-2 from the new leader",
        Duration::from_secs(60),
        || {
            let services = services.clone();
            async move { Ok(lb_ip(&services.get("echo-2").await?)) }
        },
    )
    .await?;
    let now = lb_ip(&services.get("echo").await?);
    assert_eq!(
        now.as_deref(),
        Some(ip),
        "echo's IP changed with the leader"
    );
    assert_ne!(ip2, ip, "echo-2 got echo's IP");
    let answer = cluster.client_get(ip).await?;
    assert!(
        answer.contains(" on node-"),
        "echo stopped answering: {answer}"
    );
    Ok(())
}
