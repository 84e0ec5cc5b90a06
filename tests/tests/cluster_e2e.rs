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
use ferrolb_tests::cluster::{CLIENT, Cluster};
use ferrolb_tests::fixtures::repo_path;
use ferrolb_tests::l2cluster::{http_get, wait_for};
use ferrolb_tests::netns::is_root;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::ListParams;

const NODES: usize = 2;
const NS: &str = "ferrolb-system";

const POOL: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec:
  addresses: ["192.0.2.200-192.0.2.239"]
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec: {ipAddressPools: [lan]}
"#;

const ECHO: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
        - name: echo
          image: localhost/ferrolb/echo:0.1.0
          imagePullPolicy: Never
          ports: [{containerPort: 8080}]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
            - name: NODE_NAME
              valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
          readinessProbe:
            tcpSocket: {port: 8080}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
"#;

fn skip_without_root() -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipped: the real cluster needs root (namespaces, mounts, cgroups)");
    true
}

/// kubectl as the admin; fails with its stderr.
async fn kubectl(cluster: &Cluster, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let cp = cluster.control_plane();
    cp.kubectl_with(cp.kubeconfig_path(), args, stdin)
        .await?
        .into_stdout()
}

/// Whether a pod is Running with every container ready.
fn running_and_ready(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .as_ref()
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until ferrolb's pods are Running and ready: the controller's replicas and one speaker
/// on every node. Returns `kubectl get pods -o wide`.
async fn wait_ferrolb_running(cluster: &Cluster) -> anyhow::Result<String> {
    let pods: Api<Pod> = Api::namespaced(cluster.client(), NS);
    let wanted: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|n| n.name().to_owned())
        .collect();
    let waited = wait_for(
        "ferrolb's pods Running and ready",
        Duration::from_secs(180),
        || {
            let pods = pods.clone();
            let wanted = wanted.clone();
            async move {
                let list = pods.list(&ListParams::default()).await?;
                let ready = |component: &str| -> Vec<&Pod> {
                    list.items
                        .iter()
                        .filter(|p| {
                            p.metadata
                                .labels
                                .as_ref()
                                .and_then(|l| l.get("app.kubernetes.io/component"))
                                .is_some_and(|c| c == component)
                        })
                        .filter(|p| running_and_ready(p))
                        .collect()
                };
                let speaker_nodes: Vec<String> = ready("speaker")
                    .iter()
                    .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
                    .collect();
                let controllers = ready("controller").len();
                Ok(
                    (controllers == 2 && wanted.iter().all(|n| speaker_nodes.contains(n)))
                        .then_some(()),
                )
            }
        },
    )
    .await;
    let table = kubectl(cluster, &["get", "pods", "-n", NS, "-o", "wide"], None).await?;
    if let Err(e) = waited {
        let events = kubectl(
            cluster,
            &["get", "events", "-A", "--sort-by=.lastTimestamp"],
            None,
        )
        .await
        .unwrap_or_default();
        bail!(
            "{e:#}\n{table}\n{events}\nlogs in {}",
            cluster.dir().display()
        );
    }
    Ok(table)
}

/// GET http://ip:80/ from the client on the LAN.
async fn client_get(cluster: &Cluster, ip: String) -> anyhow::Result<String> {
    let ns = cluster.host(CLIENT).ns.clone();
    tokio::task::spawn_blocking(move || ns.run(move || http_get(&format!("{ip}:80"), "/")))
        .await??
        .context("GET through the LoadBalancer IP")
}

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
    let install = repo_path("manifests/install.yaml");
    kubectl(
        &cluster,
        &["apply", "--server-side", "-f", &install.to_string_lossy()],
        None,
    )
    .await?;
    kubectl(
        &cluster,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "--all",
        ],
        None,
    )
    .await?;
    kubectl(&cluster, &["apply", "--server-side", "-f", "-"], Some(POOL)).await?;
    let table = wait_ferrolb_running(&cluster).await?;
    eprintln!(
        "ferrolb Running {:.1}s after `kubectl apply`:\n{table}",
        installing.elapsed().as_secs_f64()
    );
    cluster.check_running()?;

    kubectl(&cluster, &["apply", "--server-side", "-f", "-"], Some(ECHO)).await?;
    let services: Api<Service> = Api::namespaced(cluster.client(), "default");
    let ip = wait_for(
        "the echo Service's LoadBalancer IP",
        Duration::from_secs(60),
        || {
            let services = services.clone();
            async move { Ok(lb_ip(&services.get("echo").await?)) }
        },
    )
    .await?;
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
    let answer = wait_for(
        "an answer through the LoadBalancer IP",
        Duration::from_secs(60),
        || {
            let ip = ip.clone();
            let cluster = &cluster;
            async move { Ok(client_get(cluster, ip).await.ok()) }
        },
    )
    .await?;
    let body = answer.rsplit("\r\n\r\n").next().unwrap_or_default().trim();
    eprintln!("GET http://{ip}/ from the client: {body}");
    let (pod, rest) = body
        .split_once(" on ")
        .with_context(|| format!("an answer not from the echo image: {answer}"))?;
    let node = rest.split(',').next().unwrap_or_default();
    assert_eq!(
        pod_nodes.get(pod).map(String::as_str),
        Some(node),
        "the answer names pod {pod} on {node}; the echo pods are {pod_nodes:?}"
    );

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
    kubectl(
        cluster,
        &["delete", "pod", "-n", NS, &old, "--wait=false"],
        None,
    )
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
    kubectl(
        cluster,
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
    let answer = client_get(cluster, ip.to_owned()).await?;
    assert!(
        answer.contains(" on node-"),
        "echo stopped answering: {answer}"
    );
    Ok(())
}

fn lb_ip(svc: &Service) -> Option<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|i| i.iter().find_map(|i| i.ip.clone()))
}
