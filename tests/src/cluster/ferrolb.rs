//! ferrolb on a [`Cluster`], as its users run it: installed from `manifests/install.yaml` or
//! the Helm chart, a pool with an L2Advertisement, the echo workload behind a LoadBalancer
//! Service, and what a client on the LAN sees of it — HTTP answers, a prober's lost requests,
//! ARP requests nobody answers. Shared by the real-cluster suites (`tests/tests/cluster_*.rs`).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::ListParams;

use super::{CLIENT, Cluster};
use crate::l2cluster::{Probe, Prober, http_get, wait_for};
use crate::netns::Neighbour;

/// ferrolb's namespace.
pub const NAMESPACE: &str = "ferrolb-system";
/// The label every object of the install bundle and the chart carries (pods excepted).
pub const PART_OF: &str = "app.kubernetes.io/part-of=ferrolb";

/// The layer-2 pool of DESIGN.md (both families) and its advertisement.
pub const POOL: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec:
  addresses: ["192.0.2.200-192.0.2.239", "2001:db8:0:1::200-2001:db8:0:1::23f"]
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec: {ipAddressPools: [lan]}
"#;

/// The echo workload in `default`: a Deployment of `replicas` pods, at most one per node
/// while nodes are free (cordoned nodes do not count), behind the LoadBalancer Service `echo`
/// with HTTP on port 80 and the prober's UDP protocol on [`crate::l2cluster::ECHO_PORT`].
/// With `local`, `externalTrafficPolicy: Local`: only nodes hosting a pod announce the IP, and
/// the node that answers a probe is the one the client's traffic reached.
pub fn echo(replicas: usize, local: bool) -> String {
    echo_in_pool(replicas, local, None)
}

/// [`echo`], its Service asking for an IP of `pool` (`ferrolb.io/address-pool`) if given.
pub fn echo_in_pool(replicas: usize, local: bool, pool: Option<&str>) -> String {
    let policy = if local { "Local" } else { "Cluster" };
    let annotations = pool.map_or_else(String::new, |p| {
        format!(", annotations: {{ferrolb.io/address-pool: {p}}}")
    });
    let udp = crate::l2cluster::ECHO_PORT;
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: DoNotSchedule
          nodeTaintsPolicy: Honor
          labelSelector: {{matchLabels: {{app: echo}}}}
      containers:
        - name: echo
          image: {echo}
          imagePullPolicy: Never
          ports: [{{containerPort: 8080}}, {{containerPort: 8080, protocol: UDP}}]
          env:
            - name: POD_NAME
              valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
            - name: NODE_NAME
              valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}
          readinessProbe:
            tcpSocket: {{port: 8080}}
            periodSeconds: 1
          # Asked to stop, it keeps serving for a while, as a workload behind a load balancer
          # should: what is lost when it goes is then the load balancer's doing.
          lifecycle:
            preStop:
              sleep: {{seconds: 2}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: default{annotations}}}
spec:
  type: LoadBalancer
  externalTrafficPolicy: {policy}
  selector: {{app: echo}}
  ports:
    - {{name: http, port: 80, targetPort: 8080, protocol: TCP}}
    - {{name: probe, port: {udp}, targetPort: 8080, protocol: UDP}}
"#,
        echo = crate::image::ECHO_IMAGE,
    )
}

/// Whether the tests can run here; without root they say so and pass.
pub fn skip_without_root() -> bool {
    if crate::netns::is_root() {
        return false;
    }
    eprintln!("skipped: the real cluster needs root (namespaces, mounts, cgroups)");
    true
}

/// Whether a pod is Running with every container ready.
pub fn running_and_ready(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .as_ref()
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The first IP of a Service's `status.loadBalancer.ingress`.
pub fn lb_ip(svc: &Service) -> Option<String> {
    lb_ips(svc).into_iter().next()
}

/// Every LoadBalancer IP in the Service's status, in its order.
pub fn lb_ips(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| i.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

/// How many of a prober's requests got no answer.
pub fn lost(probes: &[Probe]) -> usize {
    probes.iter().filter(|p| p.answer.is_none()).count()
}

/// The node that answered the last answered request.
pub fn last_answerer(probes: &[Probe]) -> Option<&str> {
    probes
        .iter()
        .rev()
        .find_map(|p| p.answer.as_ref().map(|(node, _)| node.as_str()))
}

/// The longest run of unanswered requests, as the time from the first of them being sent to the
/// next answered request being sent (zero when none was lost).
pub fn longest_outage(probes: &[Probe]) -> Duration {
    let mut longest = Duration::ZERO;
    let mut since: Option<Duration> = None;
    for p in probes {
        match (&p.answer, since) {
            (None, None) => since = Some(p.sent),
            (Some(_), Some(start)) => {
                longest = longest.max(p.sent.saturating_sub(start));
                since = None;
            }
            _ => {}
        }
    }
    if let (Some(start), Some(last)) = (since, probes.last()) {
        longest = longest.max(last.sent.saturating_sub(start));
    }
    longest
}

impl Cluster {
    /// Runs helm against the cluster as the admin (its state under the cluster's directory);
    /// its stdout, or an error with its stderr.
    pub async fn helm(&self, args: &[&str]) -> anyhow::Result<String> {
        let home = self.dir().join("helm");
        let kubeconfig = self.control_plane().kubeconfig_path();
        let output = tokio::process::Command::from(crate::helm::command(&home))
            .args(args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .kill_on_drop(true)
            .output()
            .await
            .context("running helm")?;
        crate::helm::stdout_of(args, &output)
    }

    /// docs/operator-guide.md, "With Helm": ferrolb's namespace, labelled for the speaker's
    /// PodSecurity level, made before `helm install … --set namespace.create=false`.
    pub async fn create_helm_namespace(&self) -> anyhow::Result<()> {
        self.kubectl_ok(&["create", "namespace", NAMESPACE], None)
            .await?;
        self.kubectl_ok(
            &[
                "label",
                "namespace",
                NAMESPACE,
                "pod-security.kubernetes.io/enforce=privileged",
            ],
            None,
        )
        .await
        .map(drop)
    }

    /// kubectl as the admin, feeding `stdin` if given; its stdout, or an error with its stderr.
    pub async fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let cp = self.control_plane();
        cp.kubectl_with(cp.kubeconfig_path(), args, stdin)
            .await?
            .into_stdout()
    }

    /// `kubectl apply --server-side -f manifests/install.yaml`, then waits until its CRDs are
    /// established.
    pub async fn install_ferrolb(&self) -> anyhow::Result<()> {
        self.install_ferrolb_from(&crate::fixtures::repo_path("manifests/install.yaml"))
            .await
    }

    /// [`Self::install_ferrolb`] from another install bundle (an earlier build's, see
    /// [`super::previous`]).
    pub async fn install_ferrolb_from(&self, install: &std::path::Path) -> anyhow::Result<()> {
        self.kubectl_ok(
            &["apply", "--server-side", "-f", &install.to_string_lossy()],
            None,
        )
        .await?;
        self.kubectl_ok(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd",
                "-l",
                PART_OF,
            ],
            None,
        )
        .await
        .map(drop)
    }

    /// Waits until ferrolb's pods are Running and ready: `controllers` controller replicas and
    /// one speaker on every live node, all of them running `image` if given. Returns
    /// `kubectl get pods -o wide`; the error holds it and the cluster's events.
    pub async fn wait_ferrolb_running(
        &self,
        controllers: usize,
        image: Option<&str>,
    ) -> anyhow::Result<String> {
        let pods: Api<Pod> = Api::namespaced(self.client(), NAMESPACE);
        let wanted: Vec<String> = self
            .nodes()
            .iter()
            .filter(|n| !n.is_killed())
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
                            .filter(|p| component_of(p) == Some(component))
                            .filter(|p| running_and_ready(p))
                            .filter(|p| image.is_none_or(|i| images_of(p).all(|x| x == i)))
                            .collect()
                    };
                    let speaker_nodes: Vec<String> = ready("speaker")
                        .iter()
                        .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
                        .collect();
                    // Old pods still terminating do not count as done.
                    let all_current = list.items.iter().all(|p| {
                        p.metadata.deletion_timestamp.is_none()
                            && image.is_none_or(|i| images_of(p).all(|x| x == i))
                    });
                    Ok((ready("controller").len() == controllers
                        && wanted.iter().all(|n| speaker_nodes.contains(n))
                        && all_current)
                        .then_some(()))
                }
            },
        )
        .await;
        let table = self
            .kubectl_ok(&["get", "pods", "-n", NAMESPACE, "-o", "wide"], None)
            .await?;
        if let Err(e) = waited {
            return Err(self.failure(&format!("{e:#}\n{table}")).await);
        }
        Ok(table)
    }

    /// An error saying `what`, with the cluster's events and where its logs are.
    pub async fn failure(&self, what: &str) -> anyhow::Error {
        let events = self
            .kubectl_ok(&["get", "events", "-A", "--sort-by=.lastTimestamp"], None)
            .await
            .unwrap_or_default();
        anyhow::anyhow!("{what}\n{events}\nlogs in {}", self.dir().display())
    }

    /// Waits for the first LoadBalancer IP of Service `namespace/name`.
    pub async fn wait_lb_ip(&self, namespace: &str, name: &str) -> anyhow::Result<String> {
        let services: Api<Service> = Api::namespaced(self.client(), namespace);
        wait_for(
            &format!("a LoadBalancer IP for {namespace}/{name}"),
            Duration::from_secs(60),
            || {
                let services = services.clone();
                async move { Ok(lb_ip(&services.get(name).await?)) }
            },
        )
        .await
    }

    /// GET `http://ip:80/` from the client on the LAN (either family): the whole response.
    pub async fn client_get(&self, ip: &str) -> anyhow::Result<String> {
        let ns = self.host(CLIENT).ns.clone();
        let ip: std::net::IpAddr = ip.parse().with_context(|| format!("not an IP: {ip}"))?;
        let addr = std::net::SocketAddr::new(ip, 80).to_string();
        tokio::task::spawn_blocking(move || ns.run(move || http_get(&addr, "/")))
            .await??
            .context("GET through the LoadBalancer IP")
    }

    /// Waits until a GET from the client through `ip` is answered; the answer's body.
    pub async fn wait_answering(&self, ip: &str, timeout: Duration) -> anyhow::Result<String> {
        let answer = wait_for(
            &format!("an answer through {ip} from the client"),
            timeout,
            || async { Ok(self.client_get(ip).await.ok()) },
        )
        .await;
        match answer {
            Ok(answer) => Ok(answer
                .rsplit("\r\n\r\n")
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()),
            Err(e) => Err(self.failure(&format!("{e:#}")).await),
        }
    }

    /// Starts a prober on the client: a UDP request to `ip` every `interval`, which the echo
    /// pods answer with their node's name.
    pub fn start_prober(&self, ip: IpAddr, interval: Duration) -> anyhow::Result<Prober> {
        Prober::start(&self.host(CLIENT).ns, ip, interval)
    }

    /// Checks that nobody answers the client's ARP requests for `ip`: the client forgets its
    /// entry, sends to the IP, and for `window` its entry never gets a MAC.
    pub async fn check_unanswered(&self, ip: IpAddr, window: Duration) -> anyhow::Result<()> {
        let client = &self.host(CLIENT).ns;
        client.forget_neighbour(ip, "eth0")?;
        let deadline = tokio::time::Instant::now() + window;
        while tokio::time::Instant::now() < deadline {
            let poke = client.clone();
            tokio::task::spawn_blocking(move || {
                poke.run(move || {
                    let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
                    socket.send_to(b"ferrolb", (ip, 9))
                })
            })
            .await???;
            match client.neighbour(ip, "eth0")? {
                Some(Neighbour {
                    lladdr: Some(mac),
                    state,
                }) if !state.iter().any(|s| s == "FAILED" || s == "INCOMPLETE") => {
                    bail!("{mac} answered the client's ARP request for {ip} ({state:?})")
                }
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }

    /// `kubectl drain` of `node` (DaemonSet pods stay, as kubectl leaves them; at most 120 s).
    pub async fn drain_node(&self, node: &str) -> anyhow::Result<()> {
        let args = [
            "drain",
            node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=120s",
        ];
        self.kubectl_ok(&args, None).await.map(drop)
    }

    /// Kills node `name` (see [`super::ClusterNode::kill`]).
    pub fn kill_node(&mut self, name: &str) -> anyhow::Result<()> {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.name() == name)
            .with_context(|| format!("no node {name}"))?;
        node.kill();
        Ok(())
    }

    /// The names of objects labelled [`PART_OF`] of these kinds, in every namespace.
    pub async fn ferrolb_objects(&self, kinds: &str) -> anyhow::Result<Vec<String>> {
        let out = self
            .kubectl_ok(&["get", kinds, "-A", "-l", PART_OF, "-o", "name"], None)
            .await?;
        Ok(out.lines().map(str::to_owned).collect())
    }

    /// Waits until ferrolb's namespace holds no pod; the error lists those left.
    pub async fn wait_no_ferrolb_pods(&self, timeout: Duration) -> anyhow::Result<()> {
        let pods: Api<Pod> = Api::namespaced(self.client(), NAMESPACE);
        let result = wait_for("ferrolb's pods gone", timeout, || {
            let pods = pods.clone();
            async move {
                Ok(pods
                    .list(&ListParams::default())
                    .await?
                    .items
                    .is_empty()
                    .then_some(()))
            }
        })
        .await;
        if result.is_err() {
            let left = self
                .kubectl_ok(&["get", "pods", "-n", NAMESPACE, "-o", "wide"], None)
                .await
                .unwrap_or_default();
            return Err(self
                .failure(&format!("ferrolb's pods still there:\n{left}"))
                .await);
        }
        Ok(())
    }
}

fn component_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app.kubernetes.io/component"))
        .map(String::as_str)
}

fn images_of(pod: &Pod) -> impl Iterator<Item = &str> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter_map(|c| c.image.as_deref())
}

impl Cluster {
    /// The log lines of ferrolb's `component` pods (speaker, controller) on every node, dead
    /// ones included, that contain `needle`: each line's JSON record, then its node, in time
    /// order. Read from the kubelets' files (`kubectl logs` needs the apiserver to reach the
    /// kubelets, which this cluster does not provide); the logs of a deleted pod are gone.
    pub fn ferrolb_log_lines(&self, component: &str, needle: &str) -> String {
        let prefix = format!("{NAMESPACE}_ferrolb-{component}-");
        let mut lines = Vec::new();
        for node in &self.nodes {
            let pods = node.dir().join("root/var/log/pods");
            let Ok(entries) = std::fs::read_dir(&pods) else {
                continue;
            };
            for pod in entries.flatten() {
                if !pod.file_name().to_string_lossy().starts_with(&prefix) {
                    continue;
                }
                let Ok(files) = std::fs::read_dir(pod.path().join(component)) else {
                    continue;
                };
                for file in files.flatten() {
                    let text = std::fs::read_to_string(file.path()).unwrap_or_default();
                    // CRI format: `<time> <stream> <tag> <record>`.
                    lines.extend(
                        text.lines()
                            .filter(|l| l.contains(needle))
                            .filter_map(|l| l.splitn(4, ' ').nth(3))
                            .map(|record| format!("{record} [{}]", node.name())),
                    );
                }
            }
        }
        lines.sort();
        lines.join("\n")
    }
}

/// The notes of the Events (events.k8s.io) with `reason` regarding the Service `namespace/name`.
pub async fn service_event_notes(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    reason: &str,
) -> anyhow::Result<Vec<String>> {
    use k8s_openapi::api::events::v1::Event;
    let events = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?;
    Ok(events
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Service")
        })
        .filter_map(|e| e.note)
        .collect())
}
