//! The install bundle against the real apiserver: `manifests/install.yaml` is what the kustomize
//! base renders, it applies server-side, and the controller does its whole job with the
//! credentials of its own ServiceAccount — RBAC enforced — while anything outside its roles is
//! refused (so the roles are not `*`).

use std::time::Duration;

use anyhow::Context as _;
use ferrolb_api::IPAddressPool;
use ferrolb_tests::ControlPlane;
use ferrolb_tests::audit::{Audit, granted};
use ferrolb_tests::controller::{RunningController, eventually, test_settings};
use ferrolb_tests::fixtures::repo_path;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};

const NS: &str = "ferrolb-system";

async fn kustomize(cp: &ControlPlane) -> anyhow::Result<String> {
    let base = repo_path("manifests/base");
    cp.kubectl(&["kustomize", &base.to_string_lossy()])
        .await?
        .into_stdout()
}

#[tokio::test]
async fn the_install_bundle_is_the_rendered_kustomize_base() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let rendered = kustomize(&cp).await?;
    let committed = std::fs::read_to_string(repo_path("manifests/install.yaml"))?;
    let body: String = committed
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        body == rendered,
        "manifests/install.yaml is stale: regenerate it with `kubectl kustomize manifests/base` (see its header)"
    );
    Ok(())
}

/// `kubectl apply --server-side --force-conflicts -f manifests/install.yaml` (over what the
/// harness created).
async fn apply_install_bundle(cp: &ControlPlane) -> anyhow::Result<()> {
    let install = repo_path("manifests/install.yaml");
    cp.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &install.to_string_lossy(),
    ])
    .await?
    .into_stdout()
    .context("install.yaml applies server-side")?;
    Ok(())
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(e)) if e.code == 403)
}

#[tokio::test]
async fn the_controller_does_its_job_with_only_its_service_account() -> anyhow::Result<()> {
    let audit = Audit::for_users(&[CONTROLLER_USER])?;
    let cp = audit.configure(ControlPlane::builder()).start().await?;
    let install = repo_path("manifests/install.yaml");
    cp.kubectl(&["apply", "--server-side", "-f", &install.to_string_lossy()])
        .await?
        .into_stdout()
        .context("install.yaml applies server-side")?;
    cp.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=60s",
    ])
    .await?
    .into_stdout()?;
    cp.kubectl(&["create", "namespace", "web"])
        .await?
        .into_stdout()?;

    let token = cp.service_account_token(NS, "ferrolb-controller").await?;
    let kubeconfig = cp.kubeconfig_for_token(&token)?;
    let controller =
        RunningController::start_with_kubeconfig(&kubeconfig, test_settings("replica-1"))?;
    controller.wait_leading(Duration::from_secs(30)).await?;
    // The install runs two replicas: the standby reads the Lease the leader holds.
    let standby =
        RunningController::start_with_kubeconfig(&kubeconfig, test_settings("replica-2"))?;
    standby.wait_ready(Duration::from_secs(30)).await?;

    // Its whole job: a pool is validated, a Service gets an IP, the membership key exists.
    let sample = std::fs::read_to_string(repo_path("manifests/samples/l2-pool.yaml"))?;
    cp.apply_yaml(&sample).await?;
    // The BGP objects too: the controller writes their Valid conditions.
    let bgp = std::fs::read_to_string(repo_path("manifests/samples/bgp-frr.yaml"))?;
    cp.apply_yaml(&bgp).await?;
    let pools: Api<IPAddressPool> = Api::namespaced(cp.client(), NS);
    eventually("pool lan is Valid", Duration::from_secs(30), || async {
        let pool = pools.get("lan").await?;
        let valid = pool
            .status
            .iter()
            .flat_map(|s| &s.conditions)
            .any(|c| c.type_ == ferrolb_api::CONDITION_VALID && c.status == "True");
        anyhow::ensure!(valid, "not Valid yet");
        Ok(())
    })
    .await?;
    let admin = cp.client();
    let services: Api<Service> = Api::namespaced(admin.clone(), "web");
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "app", "annotations": {"ferrolb.io/address-pool": "lan"}},
        "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                 "ports": [{"port": 80}]},
    }))?;
    services.create(&PostParams::default(), &svc).await?;
    let ip = eventually(
        "the Service gets an IP",
        Duration::from_secs(30),
        || async {
            let svc = services.get("app").await?;
            ferrolb_api::service::ingress_ips(&svc)
                .first()
                .copied()
                .context("no IP yet")
        },
    )
    .await?;
    assert!(ip.to_string().starts_with("192.0.2."), "{ip}");
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NS);
    eventually(
        "the membership key is created",
        Duration::from_secs(30),
        || async {
            secrets
                .get("ferrolb-memberlist")
                .await
                .map(drop)
                .map_err(Into::into)
        },
    )
    .await?;
    Api::<ferrolb_api::ConfigurationState>::namespaced(admin.clone(), NS)
        .get("controller")
        .await
        .context("the controller wrote its ConfigurationState")?;
    Api::<Lease>::namespaced(admin.clone(), NS)
        .list(&Default::default())
        .await?
        .items
        .first()
        .context("the leader lease exists")?;

    // Anything else is refused.
    let sa = ferrolb_tests::apiserver::client_from_kubeconfig(&kubeconfig).await?;
    let sa_services: Api<Service> = Api::namespaced(sa.clone(), "web");
    // It watches Services and never reads one by name.
    assert!(forbidden(sa_services.get("app").await));
    assert!(forbidden(
        sa_services.delete("app", &DeleteParams::default()).await
    ));
    assert!(forbidden(
        sa_services
            .patch(
                "app",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"labels": {"x": "y"}}})),
            )
            .await
    ));
    assert!(forbidden(
        Api::<Secret>::namespaced(sa.clone(), "kube-system")
            .list(&Default::default())
            .await
    ));
    assert!(forbidden(
        Api::<Secret>::namespaced(sa.clone(), NS)
            .get("ferrolb-memberlist")
            .await
    ));
    assert!(forbidden(
        Api::<IPAddressPool>::namespaced(sa.clone(), NS)
            .delete("lan", &DeleteParams::default())
            .await
    ));
    // Every configuration object has its Valid condition (each kind's status was written).
    eventually("every configuration object has a condition", Duration::from_secs(30), || async {
        let out = cp
            .kubectl(&[
                "get",
                "ipaddresspools,l2advertisements,bgpadvertisements,bgppeers,bfdprofiles,communities",
                "-n",
                NS,
                "-o",
                "json",
            ])
            .await?
            .into_stdout()?;
        let list: serde_json::Value = serde_json::from_str(&out)?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        anyhow::ensure!(items.len() >= 6, "only {} objects", items.len());
        let waiting: Vec<String> = items
            .iter()
            .filter(|o| o["status"]["conditions"].as_array().is_none_or(Vec::is_empty))
            .map(|o| format!("{} {}", o["kind"], o["metadata"]["name"]))
            .collect();
        anyhow::ensure!(waiting.is_empty(), "no condition yet on {waiting:?}");
        Ok(())
    })
    .await?;
    standby.stop()?;
    controller.stop()?;

    // And every verb its roles grant was used (the roles are not larger than the code).
    assert_roles_are_used(
        &audit,
        CONTROLLER_USER,
        "manifests/base/rbac-controller.yaml",
        // The Event publisher patches an Event only when the same Event repeats (a series).
        &[("events.k8s.io", "events", "patch")],
    )?;
    Ok(())
}

const CONTROLLER_USER: &str = "system:serviceaccount:ferrolb-system:ferrolb-controller";
const SPEAKER_USER: &str = "system:serviceaccount:ferrolb-system:ferrolb-speaker";

/// Every permission the roles in `rbac` grant was used by `user`, except `unexercised` (each a
/// verb the binary uses only in situations the test does not create).
fn assert_roles_are_used(
    audit: &Audit,
    user: &str,
    rbac: &str,
    unexercised: &[(&str, &str, &str)],
) -> anyhow::Result<()> {
    let granted = granted(&repo_path(rbac))?;
    let used = audit.used_by(user)?;
    let unused: Vec<_> = granted
        .iter()
        .filter(|p| !used.contains(*p))
        .filter(|(g, r, v)| !unexercised.contains(&(g.as_str(), r.as_str(), v.as_str())))
        .collect();
    assert!(
        unused.is_empty(),
        "{rbac} grants {user} permissions it never used: {unused:?}\nused: {used:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_speaker_announces_with_only_its_service_account() -> anyhow::Result<()> {
    use ferrolb_tests::l2cluster::{L2Cluster, TestService, wait_for};
    if !ferrolb_tests::netns::is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return Ok(());
    }
    let audit = Audit::for_users(&[SPEAKER_USER])?;
    // With --service-bgp-status, so that every permission the Role grants is exercised (the
    // ServiceBGPStatus writes are opt-in).
    let mut cluster = L2Cluster::start_on(
        audit.configure(ControlPlane::builder()),
        2,
        ferrolb_tests::l2cluster::Speakers::Ferrolb(vec!["--service-bgp-status".to_owned()]),
        &[],
    )
    .await?;
    let cp = cluster.control_plane();
    apply_install_bundle(cp).await?;
    let token = cp.service_account_token(NS, "ferrolb-speaker").await?;
    let kubeconfig = cp.kubeconfig_for_token(&token)?;
    cluster.restart_speakers_with(Some(kubeconfig.clone()))?;
    cluster.wait_speakers_ready(Duration::from_secs(30)).await?;

    // Its whole job: the elected node answers for the IP and records it.
    let svc = TestService::new("app", &["192.0.2.205"], "node-1");
    cluster.create_service(&svc).await?;
    let vip = svc.ips[0];
    let expected = cluster
        .expected_owner(vip, cluster.nodes())
        .await?
        .context("someone is elected")?;
    let mac = cluster.resolve(vip, Duration::from_secs(20)).await?;
    assert_eq!(cluster.node_with_mac(&mac), Some(expected.clone()));
    let statuses: Api<ferrolb_api::ServiceL2Status> = Api::namespaced(cluster.client(), NS);
    wait_for(
        "the speaker records what it announces",
        Duration::from_secs(20),
        || async {
            let list = statuses.list(&Default::default()).await?;
            Ok(list
                .items
                .iter()
                .any(|s| {
                    s.status.as_ref().and_then(|st| st.node.as_deref()) == Some(expected.as_str())
                })
                .then_some(()))
        },
    )
    .await
    .with_context(|| cluster.describe())?;

    // Anything else is refused.
    let sa = ferrolb_tests::apiserver::client_from_kubeconfig(&kubeconfig).await?;
    let services: Api<Service> = Api::namespaced(sa.clone(), "web");
    // It patches a Service's status (its ferrolb.io/BGPAdvertised condition), never the
    // Service itself.
    assert!(forbidden(
        services
            .patch(
                "app",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"labels": {"owned": "no"}}})),
            )
            .await
    ));
    assert!(forbidden(
        services.delete("app", &DeleteParams::default()).await
    ));
    assert!(forbidden(
        Api::<Secret>::namespaced(sa.clone(), "kube-system")
            .list(&Default::default())
            .await
    ));
    assert!(forbidden(
        Api::<IPAddressPool>::namespaced(sa.clone(), NS)
            .patch(
                "lan",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"autoAssign": false}})),
            )
            .await
    ));

    // BGP mode: the peer's password comes from a Secret, and each node records the peers a
    // Service is advertised to, whether or not the session is up (no router runs here).
    cluster
        .apply(&format!(
            r#"
apiVersion: v1
kind: Secret
metadata: {{name: tor-password, namespace: {NS}}}
type: kubernetes.io/basic-auth
stringData: {{password: s3cret}}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bgp, namespace: {NS}}}
spec: {{addresses: ["198.51.100.0/26"]}}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp, namespace: {NS}}}
spec: {{ipAddressPools: [bgp]}}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {{name: tor, namespace: {NS}}}
spec:
  myASN: 64512
  peerASN: 64500
  peerAddress: {router}
  passwordSecret: {{name: tor-password}}
"#,
            router = cluster.host("client").ipv4
        ))
        .await?;
    cluster
        .create_service(&TestService::new("app-bgp", &["198.51.100.10"], "node-1"))
        .await?;
    let bgp_statuses: Api<ferrolb_api::ServiceBGPStatus> = Api::namespaced(cluster.client(), NS);
    wait_for(
        "each node records the peers it advertises app-bgp to",
        Duration::from_secs(20),
        || async {
            let list = bgp_statuses.list(&Default::default()).await?;
            let nodes: std::collections::BTreeSet<String> = list
                .items
                .iter()
                .filter_map(|s| s.status.as_ref())
                .filter(|st| st.peers == ["tor"])
                .filter_map(|st| st.node.clone())
                .collect();
            Ok((nodes.len() == 2).then_some(()))
        },
    )
    .await
    .with_context(|| cluster.describe())?;
    // And the Service says so itself (services/status).
    wait_for(
        "app-bgp carries the ferrolb.io/BGPAdvertised condition",
        Duration::from_secs(20),
        || async {
            let svc = Api::<k8s_openapi::api::core::v1::Service>::namespaced(
                cluster.client(),
                ferrolb_tests::l2cluster::APP_NAMESPACE,
            )
            .get("app-bgp")
            .await?;
            let said = svc
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "ferrolb.io/BGPAdvertised");
            Ok(said.then_some(()))
        },
    )
    .await
    .with_context(|| cluster.describe())?;

    // Each node reports its session with the peer (not up: no router runs here).
    let sessions: Api<ferrolb_api::BGPSessionState> = Api::namespaced(cluster.client(), NS);
    wait_for(
        "each node reports its session with tor",
        Duration::from_secs(20),
        || async {
            let list = sessions.list(&Default::default()).await?;
            let nodes: std::collections::BTreeSet<String> = list
                .items
                .iter()
                .filter_map(|s| s.status.as_ref())
                .filter(|st| st.peer.as_deref() == Some("tor") && st.bgp_status.is_some())
                .filter_map(|st| st.node.clone())
                .collect();
            Ok((nodes.len() == 2).then_some(()))
        },
    )
    .await
    .with_context(|| cluster.describe())?;

    // The Services and the peer go: the speakers stop announcing and remove their status
    // objects.
    cluster
        .control_plane()
        .kubectl(&["delete", "-n", NS, "bgppeer", "tor"])
        .await?
        .into_stdout()
        .context("the BGPPeer deletes")?;
    cluster.delete_service("app").await?;
    cluster.delete_service("app-bgp").await?;
    wait_for(
        "the speakers remove their ServiceL2Status, ServiceBGPStatus and BGPSessionState objects",
        Duration::from_secs(20),
        || async {
            let l2 = statuses.list(&Default::default()).await?.items;
            let bgp = bgp_statuses.list(&Default::default()).await?.items;
            let sessions = sessions.list(&Default::default()).await?.items;
            Ok((l2.is_empty() && bgp.is_empty() && sessions.is_empty()).then_some(()))
        },
    )
    .await?;
    assert_roles_are_used(
        &audit,
        SPEAKER_USER,
        "manifests/base/rbac-speaker.yaml",
        // A repeated Event (a series) is patched; the test raises none twice.
        &[("events.k8s.io", "events", "patch")],
    )?;
    Ok(())
}

#[tokio::test]
async fn without_the_bgp_passwords_role_the_speaker_reads_only_its_membership_key()
-> anyhow::Result<()> {
    use ferrolb_tests::l2cluster::{L2Cluster, Speakers, TestService};
    if !ferrolb_tests::netns::is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return Ok(());
    }
    let mut cluster = L2Cluster::start_on(
        ControlPlane::builder(),
        2,
        Speakers::Ferrolb(Vec::new()),
        &[],
    )
    .await?;
    let cp = cluster.control_plane();
    apply_install_bundle(cp).await?;
    // A cluster without BGP passwords drops the Role that reads every Secret.
    cp.kubectl(&[
        "delete",
        "-n",
        NS,
        "rolebinding",
        "ferrolb-speaker-bgp-passwords",
    ])
    .await?
    .into_stdout()?;
    let token = cp.service_account_token(NS, "ferrolb-speaker").await?;
    let kubeconfig = cp.kubeconfig_for_token(&token)?;
    let sa = ferrolb_tests::apiserver::client_from_kubeconfig(&kubeconfig).await?;
    let secrets: Api<Secret> = Api::namespaced(sa, NS);
    assert!(
        forbidden(secrets.list(&Default::default()).await),
        "the speaker reads every Secret of {NS}"
    );
    secrets
        .list(&kube::api::ListParams::default().fields("metadata.name=ferrolb-memberlist"))
        .await
        .context("the speaker may read its membership key by name")?;

    // It still joins the membership (with the key) and announces.
    cluster.restart_speakers_with(Some(kubeconfig))?;
    cluster.wait_speakers_ready(Duration::from_secs(30)).await?;
    let svc = TestService::new("app", &["192.0.2.205"], "node-1");
    cluster.create_service(&svc).await?;
    let mac = cluster.resolve(svc.ips[0], Duration::from_secs(20)).await?;
    assert!(cluster.node_with_mac(&mac).is_some(), "{mac} is no node's");
    let described = cluster.describe();
    assert!(
        described.contains("may not read the namespace's Secrets"),
        "the speaker does not say why BGP passwords cannot be served:\n{described}"
    );
    Ok(())
}
