//! The `ferrolb_tests::apiserver` harness against a real etcd and kube-apiserver.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferrolb_tests::apiserver::{ControlPlane, wait_crds_established};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

async fn start() -> anyhow::Result<ControlPlane> {
    let cp = ControlPlane::start().await?;
    eprintln!(
        "control plane {} ready in {:?}",
        cp.server_url(),
        cp.startup_time()
    );
    Ok(cp)
}

/// Whether listing ConfigMaps in `default` is allowed (Ok(false): 403 Forbidden).
async fn may_list_configmaps(client: Client) -> anyhow::Result<bool> {
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    match api.list(&ListParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.is_forbidden() => Ok(false),
        Err(e) => Err(e).context("listing configmaps"),
    }
}

/// Polls until `client` may list ConfigMaps (RBAC's authorizer learns bindings from a watch).
async fn eventually_may_list_configmaps(client: &Client, who: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !may_list_configmaps(client.clone()).await? {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{who} was still refused 15 s after the binding"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_control_plane_serves_kube_rs_and_kubectl() -> anyhow::Result<()> {
    let cp = start().await?;
    let client = cp.client();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|ns| ns.metadata.name)
        .collect();
    assert!(
        names.iter().any(|n| n == "default"),
        "namespaces: {names:?}"
    );

    let configmaps: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm = ConfigMap {
        metadata: meta("greeting"),
        data: Some([("hello".to_owned(), "world".to_owned())].into()),
        ..ConfigMap::default()
    };
    configmaps.create(&PostParams::default(), &cm).await?;
    let read = configmaps.get("greeting").await?;
    assert_eq!(read.data, cm.data);

    let ns = cp
        .kubectl(&["get", "ns", "-o", "name"])
        .await?
        .into_stdout()?;
    assert!(
        ns.lines().any(|l| l == "namespace/default"),
        "kubectl: {ns}"
    );
    let value = cp
        .kubectl(&[
            "get",
            "configmap",
            "greeting",
            "-o",
            "jsonpath={.data.hello}",
        ])
        .await?
        .into_stdout()?;
    assert_eq!(value, "world");

    // A failing kubectl run is reported, not hidden.
    let missing = cp.kubectl(&["get", "configmap", "absent"]).await?;
    assert!(!missing.success());
    assert!(
        missing.stderr.contains("NotFound"),
        "stderr: {}",
        missing.stderr
    );

    // The static admin token works too.
    let by_token = cp.client_for_token(cp.admin_token()).await?;
    assert!(may_list_configmaps(by_token).await?);
    Ok(())
}

#[tokio::test]
async fn an_unprivileged_user_is_refused_until_a_role_grants_access() -> anyhow::Result<()> {
    let cp = ControlPlane::builder()
        .token_user("bob-secret-token", "bob", &["team-b", "readers", "others"])
        .start()
        .await?;
    let admin = cp.client();
    let alice = cp.client_for_user("alice", &["team-a", "readers"]).await?;
    let bob = cp.client_for_token("bob-secret-token").await?;
    let robot = cp.client_for_service_account("default", "robot").await?;

    for (who, client) in [("alice", &alice), ("bob", &bob), ("robot", &robot)] {
        assert!(
            !may_list_configmaps(client.clone()).await?,
            "{who} may list configmaps without any role"
        );
    }
    // kubectl with alice's kubeconfig is refused as well.
    let alice_kubeconfig = cp.kubeconfig_for_user("alice", &["team-a", "readers"])?;
    let refused = cp
        .kubectl_with(&alice_kubeconfig, &["get", "configmaps"], None)
        .await?;
    assert!(!refused.success());
    assert!(
        refused.stderr.contains("forbidden"),
        "stderr: {}",
        refused.stderr
    );

    let role = ClusterRole {
        metadata: meta("configmap-reader"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".to_owned()]),
            verbs: vec!["get".to_owned(), "list".to_owned()],
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    };
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await?;
    let subject = |kind: &str, name: &str, namespace: Option<&str>| Subject {
        api_group: (kind != "ServiceAccount").then(|| "rbac.authorization.k8s.io".to_owned()),
        kind: kind.to_owned(),
        name: name.to_owned(),
        namespace: namespace.map(str::to_owned),
    };
    let binding = ClusterRoleBinding {
        metadata: meta("configmap-readers"),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: "configmap-reader".to_owned(),
        },
        // Alice through the second group of her certificate, bob through a token-file group.
        subjects: Some(vec![
            subject("Group", "readers", None),
            subject("ServiceAccount", "robot", Some("default")),
        ]),
    };
    Api::<ClusterRoleBinding>::all(admin)
        .create(&PostParams::default(), &binding)
        .await?;

    eventually_may_list_configmaps(&alice, "alice").await?;
    eventually_may_list_configmaps(&bob, "bob").await?;
    eventually_may_list_configmaps(&robot, "robot").await?;
    let allowed = cp
        .kubectl_with(
            &alice_kubeconfig,
            &["get", "configmaps", "-o", "name"],
            None,
        )
        .await?;
    assert!(allowed.success(), "stderr: {}", allowed.stderr);

    // The role grants reading only.
    let cm = ConfigMap {
        metadata: meta("nope"),
        ..ConfigMap::default()
    };
    let write = Api::<ConfigMap>::namespaced(alice, "default")
        .create(&PostParams::default(), &cm)
        .await;
    assert!(
        matches!(&write, Err(kube::Error::Api(s)) if s.is_forbidden()),
        "alice could create a configmap: {write:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_dual_stack_service_gets_an_ipv4_and_an_ipv6_cluster_ip() -> anyhow::Result<()> {
    let cp = start().await?;
    let services: Api<Service> = Api::namespaced(cp.client(), "default");
    let svc = Service {
        metadata: meta("web"),
        spec: Some(ServiceSpec {
            ip_family_policy: Some("RequireDualStack".to_owned()),
            ports: Some(vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let created = services.create(&PostParams::default(), &svc).await?;
    let spec = created.spec.context("service without spec")?;
    let ips: Vec<IpAddr> = spec
        .cluster_ips
        .unwrap_or_default()
        .iter()
        .map(|ip| ip.parse())
        .collect::<Result<_, _>>()?;
    assert_eq!(ips.len(), 2, "clusterIPs: {ips:?}");
    match (ips[0], ips[1]) {
        (IpAddr::V4(v4), IpAddr::V6(v6)) => {
            assert_eq!(v4.octets()[..2], [198, 19], "{v4}");
            assert_eq!(v6.segments()[..3], [0x2001, 0xdb8, 0x19], "{v6}");
        }
        other => panic!("expected IPv4 then IPv6, got {other:?}"),
    }
    assert_eq!(
        spec.ip_families.unwrap_or_default(),
        ["IPv4".to_owned(), "IPv6".to_owned()]
    );
    Ok(())
}

#[tokio::test]
async fn two_control_planes_run_side_by_side_without_sharing_state() -> anyhow::Result<()> {
    let (a, b) = tokio::join!(start(), start());
    let (a, b) = (a?, b?);
    assert_ne!(a.server_url(), b.server_url());
    assert_ne!(a.etcd_url(), b.etcd_url());

    let in_a: Api<ConfigMap> = Api::namespaced(a.client(), "default");
    let in_b: Api<ConfigMap> = Api::namespaced(b.client(), "default");
    in_a.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: meta("only-in-a"),
            ..ConfigMap::default()
        },
    )
    .await?;
    assert!(in_a.get_opt("only-in-a").await?.is_some());
    assert!(in_b.get_opt("only-in-a").await?.is_none());

    // Each control plane's CA is its own: b does not trust a's admin certificate.
    let mut crossed = a.admin_config();
    crossed.cluster_url = b.server_url().parse()?;
    crossed.root_cert = b.admin_config().root_cert;
    let crossed = Client::try_from(crossed)?;
    let refused = Api::<ConfigMap>::namespaced(crossed, "default")
        .list(&ListParams::default())
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 401),
        "b accepted a's admin: {refused:?}"
    );
    Ok(())
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.ferrolb.io
spec:
  group: test.ferrolb.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer}
"#;

#[tokio::test]
async fn crds_applied_from_a_directory_are_established_and_served() -> anyhow::Result<()> {
    let cp = start().await?;
    let manifests = tempfile::tempdir()?;
    std::fs::write(manifests.path().join("widgets.yaml"), WIDGET_CRD)?;
    std::fs::write(manifests.path().join("README.txt"), "not a manifest")?;
    cp.apply_yaml_dir(manifests.path()).await?;
    wait_crds_established(
        &cp.client(),
        &["widgets.test.ferrolb.io"],
        Duration::from_secs(30),
    )
    .await?;

    cp.apply_yaml(
        "apiVersion: test.ferrolb.io/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\n\
         spec: {size: 3}\n",
    )
    .await?;
    let size = cp
        .kubectl(&["get", "widget", "w1", "-o", "jsonpath={.spec.size}"])
        .await?
        .into_stdout()?;
    assert_eq!(size, "3");

    // Re-applying the same file is a no-op, not a conflict.
    cp.apply_file(manifests.path().join("widgets.yaml")).await?;
    Ok(())
}

#[tokio::test]
async fn a_control_plane_listens_on_the_address_it_is_given() -> anyhow::Result<()> {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let cp = ControlPlane::builder().bind_address(ip).start().await?;
    assert_eq!(cp.address().ip(), ip);
    assert!(cp.server_url().starts_with("https://127.0.0.2:"));
    // TLS verification against the IP SAN succeeds for both kube-rs and kubectl.
    assert!(may_list_configmaps(cp.client()).await?);
    cp.kubectl(&["get", "ns"]).await?.into_stdout()?;
    // Nothing listens on 127.0.0.1 at that port.
    let loopback = (Ipv4Addr::LOCALHOST, cp.address().port());
    assert!(tokio::net::TcpStream::connect(loopback).await.is_err());
    Ok(())
}

fn process_alive(pid: u32) -> bool {
    // A zombie is as good as gone; a reaped process has no /proc entry.
    // The state follows the parenthesised command name in /proc/<pid>/stat.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        state.is_none_or(|s| !s.starts_with('Z'))
    })
}

#[tokio::test]
async fn a_panicking_test_still_stops_the_processes_and_removes_the_directory() -> anyhow::Result<()>
{
    let (tx, rx) = tokio::sync::oneshot::channel::<((u32, u32), PathBuf)>();
    let task = tokio::spawn(async move {
        let cp = match ControlPlane::start().await {
            Ok(cp) => cp,
            Err(e) => panic!("start failed: {e:#}"),
        };
        let _ = tx.send((cp.pids(), cp.dir().to_path_buf()));
        panic!("a test failing while it holds a control plane");
    });
    let ((apiserver, etcd), dir) = rx.await.context("the control plane did not start")?;
    let joined = task.await;
    assert!(joined.is_err_and(|e| e.is_panic()));
    assert!(
        !process_alive(apiserver),
        "kube-apiserver {apiserver} survived"
    );
    assert!(!process_alive(etcd), "etcd {etcd} survived");
    if std::env::var("FERROLB_KEEP_TEST_DIRS").is_ok_and(|v| v == "1") {
        assert!(dir.exists());
    } else {
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }
    Ok(())
}

#[tokio::test]
async fn a_control_plane_that_cannot_start_reports_the_apiserver_log() -> anyhow::Result<()> {
    let started = ControlPlane::builder()
        .apiserver_arg("--no-such-flag=1")
        .start()
        .await;
    let Err(e) = started else {
        panic!("a control plane started with an unknown apiserver flag");
    };
    let message = format!("{e:#}");
    assert!(message.contains("kube-apiserver exited early"), "{message}");
    assert!(
        message.contains("unknown flag: --no-such-flag"),
        "{message}"
    );
    Ok(())
}

#[test]
fn directories_left_by_a_killed_test_process_are_swept_and_live_ones_kept() {
    // A process that has exited: its pid names no live process.
    let mut child = std::process::Command::new("true").spawn().expect("spawns");
    let dead = child.id();
    child.wait().expect("exits");
    let stale = tempfile::Builder::new()
        .prefix("ferrolb-cp-")
        .tempdir()
        .expect("tempdir")
        .keep();
    std::fs::write(stale.join("owner.pid"), dead.to_string()).expect("writes");
    let live = tempfile::Builder::new()
        .prefix("ferrolb-cp-")
        .tempdir()
        .expect("tempdir");
    std::fs::write(
        live.path().join("owner.pid"),
        std::process::id().to_string(),
    )
    .expect("writes");
    let kept = tempfile::Builder::new()
        .prefix("ferrolb-cp-")
        .tempdir()
        .expect("tempdir");

    // (Another test's first control plane may sweep concurrently, so check results, not counts.)
    ferrolb_tests::apiserver::sweep_stale_workdirs();
    assert!(!stale.exists(), "the dead process's directory is removed");
    assert!(live.path().exists(), "a live process's directory stays");
    assert!(
        kept.path().exists(),
        "a directory without owner (kept on purpose) stays"
    );
}
