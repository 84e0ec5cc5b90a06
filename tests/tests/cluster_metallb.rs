//! Migrating from MetalLB: ferrolb and MetalLB on one real cluster (`ferrolb_tests::cluster`) at
//! the same time, as during a switch. MetalLB is installed as its users have it — its own
//! `metallb-native.yaml`, unmodified, from images built from its Go module — and serves the
//! Services without a class, as it does by default. ferrolb is installed beside it with Helm and
//! `--lb-class=ferrolb.io/ferrolb` (docs/operator-guide.md, "Migrating from MetalLB"), so each serves its own
//! Services while the user moves them. Both speakers run on the host network of every node;
//! their ports must not clash, and the client on the LAN must reach a container through either
//! implementation's IP.
//!
//! Needs root (namespaces, mounts, cgroups); without it the test says so and passes.

use std::time::Duration;

use anyhow::Context as _;
use ferrolb_tests::cluster::Cluster;
use ferrolb_tests::cluster::ferrolb::{NAMESPACE, POOL, echo, skip_without_root};
use ferrolb_tests::cluster::metallb::{self, Metallb};
use ferrolb_tests::fixtures::repo_path;

const NODES: usize = 2;
const CLASS: &str = "ferrolb.io/ferrolb";

/// A second LoadBalancer Service for the echo pods, of ferrolb's class.
const ECHO_FERROLB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: echo-ferrolb, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerClass: ferrolb.io/ferrolb
  selector: {app: echo}
  ports:
    - {name: http, port: 80, targetPort: 8080, protocol: TCP}
"#;

/// The ports a node's host network listens on (`ss -Hlntu`: protocol, local address:port).
fn listening(cluster: &Cluster, node: &str) -> anyhow::Result<Vec<(String, u16)>> {
    let out = cluster.host(node).ns.output(&["ss", "-Hlntu"])?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields.get(4)?.rsplit_once(':')?.1.parse().ok()?;
            Some(((*fields.first()?).to_owned(), port))
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metallb_and_ferrolb_run_side_by_side_and_each_serves_its_own_services()
-> anyhow::Result<()> {
    if skip_without_root() {
        return Ok(());
    }
    let metallb = Metallb::build()?;
    let images = tempfile::tempdir()?;
    let archives = metallb.images(images.path())?;
    let mut builder = Cluster::builder(NODES);
    for archive in &archives {
        builder = builder.image(archive);
    }
    let mut cluster = builder.start().await?;

    // MetalLB as it runs today: its manifest, a pool, the workload's Service without a class.
    let table = cluster.install_metallb(&metallb).await?;
    eprintln!("MetalLB v{} Running:\n{table}", metallb::VERSION);
    cluster
        .kubectl_ok(&["apply", "-f", "-"], Some(metallb::POOL))
        .await
        .context("MetalLB's pool and advertisement")?;
    cluster
        .kubectl_ok(
            &["apply", "--server-side", "-f", "-"],
            Some(&echo(NODES, false)),
        )
        .await?;
    let metallb_ip = cluster.wait_lb_ip("default", "echo").await?;
    assert!(
        metallb_ip.starts_with("192.0.2.24"),
        "echo got {metallb_ip}, not an IP of MetalLB's pool"
    );
    let body = cluster
        .wait_answering(&metallb_ip, Duration::from_secs(90))
        .await
        .context("the client reaches echo through MetalLB")?;
    eprintln!("through MetalLB, GET http://{metallb_ip}/: {body}");

    // ferrolb beside it, for Services of its class only.
    cluster.create_helm_namespace().await?;
    let class_arg = format!(r#"["--lb-class={CLASS}"]"#);
    cluster
        .helm(&[
            "install",
            "ferrolb",
            &repo_path("manifests/chart").to_string_lossy(),
            "--namespace",
            NAMESPACE,
            "--set",
            "namespace.create=false",
            "--set",
            "image.pullPolicy=Never",
            "--set-json",
            &format!("controller.extraArgs={class_arg}"),
            "--set-json",
            &format!("speaker.extraArgs={class_arg}"),
        ])
        .await
        .context("helm install ferrolb beside MetalLB")?;
    let table = cluster.wait_ferrolb_running(2, None).await?;
    eprintln!("ferrolb Running beside MetalLB:\n{table}");
    cluster
        .kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(POOL))
        .await?;
    cluster
        .kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(ECHO_FERROLB))
        .await?;
    let ferrolb_ip = cluster.wait_lb_ip("default", "echo-ferrolb").await?;
    assert!(
        ferrolb_ip.starts_with("192.0.2.2") && !ferrolb_ip.starts_with("192.0.2.24"),
        "echo-ferrolb got {ferrolb_ip}, not an IP of ferrolb's pool"
    );
    let body = cluster
        .wait_answering(&ferrolb_ip, Duration::from_secs(90))
        .await
        .context("the client reaches echo through ferrolb")?;
    eprintln!("through ferrolb, GET http://{ferrolb_ip}/: {body}");

    // Both still serve, and neither took the other's Service.
    let body = cluster
        .wait_answering(&metallb_ip, Duration::from_secs(30))
        .await
        .context("the client still reaches echo through MetalLB")?;
    assert!(body.contains(" on node-"), "not echo's answer: {body}");
    assert_eq!(cluster.wait_lb_ip("default", "echo").await?, metallb_ip);
    assert_eq!(
        cluster.wait_lb_ip("default", "echo-ferrolb").await?,
        ferrolb_ip
    );

    // Every node's host network holds both speakers' ports.
    for node in cluster
        .nodes()
        .iter()
        .map(|n| n.name().to_owned())
        .collect::<Vec<_>>()
    {
        let ports = listening(&cluster, &node)?;
        for wanted in [
            ("udp", 7946),  // MetalLB's memberlist
            ("tcp", 7946),  // MetalLB's memberlist
            ("tcp", 9120),  // MetalLB's metrics
            ("tcp", 17472), // MetalLB's health probes
            ("udp", 7947),  // ferrolb's membership
            ("tcp", 7948),  // ferrolb's metrics and probes
        ] {
            assert!(
                ports.iter().any(|(p, n)| p == wanted.0 && *n == wanted.1),
                "{node} does not listen on {}/{}: {ports:?}",
                wanted.0,
                wanted.1
            );
        }
    }
    cluster.check_running()?;
    Ok(())
}
