//! ferrolb installed with Helm on a real cluster (`ferrolb_tests::cluster`), the operator guide's way
//! ("Install with Helm"): a namespace labelled for the speaker's PodSecurity level, then
//! `helm install ferrolb manifests/chart --set namespace.create=false`, the image being the one
//! `tests/setup/images.sh` built and imported into every node (`image.pullPolicy=Never`: no
//! registry is asked). The controller and a speaker per node run and are ready, and a client on
//! the LAN reaches a container through the LoadBalancer IP. Then `helm uninstall`: every object
//! of the release goes, and nobody answers ARP for the IP any more. The CRDs stay, as Helm
//! keeps every chart's `crds/`; deleting them and the namespace as docs/operator-guide.md's "Uninstall"
//! says leaves nothing of ferrolb.
//!
//! Needs root (namespaces, mounts, cgroups); without it the test says so and passes.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferrolb_tests::cluster::Cluster;
use ferrolb_tests::cluster::ferrolb::{NAMESPACE, PART_OF, POOL, echo, skip_without_root};
use ferrolb_tests::fixtures::repo_path;

const NODES: usize = 2;
const RELEASE: &str = "ferrolb";
/// Every kind the chart renders but CRDs and the namespace (webhooks: the chart has none, and
/// none may appear).
const RELEASE_KINDS: &str = "deployments,daemonsets,services,serviceaccounts,roles,rolebindings,\
clusterroles,clusterrolebindings,validatingwebhookconfigurations,mutatingwebhookconfigurations";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_serves_the_lan_and_helm_uninstall_leaves_no_release_object_and_no_announcement()
-> anyhow::Result<()> {
    if skip_without_root() {
        return Ok(());
    }
    let mut cluster = Cluster::builder(NODES).start().await?;

    // docs/operator-guide.md, "With Helm".
    let installing = Instant::now();
    cluster.create_helm_namespace().await?;
    let chart = repo_path("manifests/chart");
    let installed = cluster
        .helm(&[
            "install",
            RELEASE,
            &chart.to_string_lossy(),
            "--namespace",
            NAMESPACE,
            "--set",
            "namespace.create=false",
            "--set",
            "image.pullPolicy=Never",
        ])
        .await
        .context("step helm install")?;
    assert!(
        installed.contains("STATUS: deployed"),
        "helm install: {installed}"
    );
    let table = cluster
        .wait_ferrolb_running(2, None)
        .await
        .context("step helm install: controller and speakers Running and ready")?;
    eprintln!(
        "ferrolb Running {:.1}s after `helm install`:\n{table}",
        installing.elapsed().as_secs_f64()
    );

    cluster
        .kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(POOL))
        .await?;
    cluster
        .kubectl_ok(
            &["apply", "--server-side", "-f", "-"],
            Some(&echo(NODES, false)),
        )
        .await?;
    let ip = cluster
        .wait_lb_ip("default", "echo")
        .await
        .context("step helm install: an IP for the echo Service")?;
    let body = cluster
        .wait_answering(&ip, Duration::from_secs(90))
        .await
        .context("step helm install: the client reaches echo")?;
    eprintln!("GET http://{ip}/ from the client: {body}");
    assert!(body.contains(" on node-"), "not echo's answer: {body}");
    cluster.check_running()?;

    // The check below sees an announcement when there is one.
    let ip: IpAddr = ip.parse()?;
    assert!(
        cluster
            .check_unanswered(ip, Duration::from_secs(1))
            .await
            .is_err(),
        "step helm install: the client's ARP for {ip} goes unanswered"
    );

    // helm uninstall: the release's objects go, pods included, and the IP falls silent.
    let uninstalling = Instant::now();
    cluster
        .helm(&["uninstall", RELEASE, "--namespace", NAMESPACE, "--wait"])
        .await
        .context("step helm uninstall")?;
    cluster
        .wait_no_ferrolb_pods(Duration::from_secs(60))
        .await
        .context("step helm uninstall: pods gone")?;
    let left = cluster.ferrolb_objects(RELEASE_KINDS).await?;
    assert!(
        left.is_empty(),
        "step helm uninstall left ferrolb objects: {left:?}"
    );
    eprintln!(
        "helm uninstall: no release object or pod left after {:.1}s",
        uninstalling.elapsed().as_secs_f64()
    );
    cluster
        .check_unanswered(ip, Duration::from_secs(4))
        .await
        .context("step helm uninstall: the IP is still announced")?;
    assert!(
        cluster.client_get(&ip.to_string()).await.is_err(),
        "step helm uninstall: {ip} still answers HTTP"
    );

    // What Helm keeps by design: the CRDs (and the namespace the user made).
    let crds = cluster.ferrolb_objects("customresourcedefinitions").await?;
    assert_eq!(
        crds.len(),
        10,
        "Helm keeps the chart's CRDs on uninstall: {crds:?}"
    );

    // docs/operator-guide.md, "Uninstall": what Helm keeps goes by hand.
    cluster
        .kubectl_ok(&["delete", "crd", "-l", PART_OF, "--wait=true"], None)
        .await
        .context("step delete the CRDs")?;
    cluster
        .kubectl_ok(
            &[
                "delete",
                "namespace",
                NAMESPACE,
                "--wait=true",
                "--timeout=120s",
            ],
            None,
        )
        .await
        .context("step delete the namespace")?;
    let left = cluster
        .ferrolb_objects("customresourcedefinitions,namespaces")
        .await?;
    assert!(left.is_empty(), "ferrolb objects left: {left:?}");
    cluster.check_running()?;
    Ok(())
}
