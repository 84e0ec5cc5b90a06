//! The oldest Kubernetes ferrolb supports, and what happens below it.

use crate::support::*;

/// On Kubernetes 1.28 ferrolb's CRDs do not install (their validation uses CEL's IP library,
/// which a new CRD may use from 1.31) and Service status has no `ipMode` (1.29). A controller started there stops at
/// once with an error that names the version and the minimum, instead of watching kinds that
/// do not exist.
#[tokio::test]
async fn on_kubernetes_1_28_the_controller_stops_saying_the_version_is_too_old()
-> anyhow::Result<()> {
    init_logs();
    let old = ferrolb_tests::apiserver::old_apiserver("1.28");
    let cp = ControlPlane::builder()
        .apiserver_binary(old)
        .start()
        .await?;
    let version = cp.client().apiserver_version().await?;
    assert_eq!(
        (version.major.as_str(), version.minor.trim_end_matches('+')),
        ("1", "28"),
        "this test needs a Kubernetes 1.28 apiserver: {version:?}"
    );
    // What a user on 1.28 sees first: the CRDs are refused, naming CEL's IP functions.
    let refused = ferrolb_tests::fixtures::install_crds(&cp)
        .await
        .expect_err("the CRDs do not install on 1.28");
    assert!(
        format!("{refused:#}").contains("isIP"),
        "refused for another reason: {refused:#}"
    );
    create_namespace(&cp, NAMESPACE).await?;

    let controller = RunningController::start(&cp, test_settings("old"))?;
    eventually("the controller stops", WAIT, || async {
        ensure!(!controller.is_running(), "still running");
        Ok(())
    })
    .await?;
    let stopped = controller.stop().expect_err("the controller refuses 1.28");
    let text = format!("{stopped:#}");
    assert!(
        text.contains("Kubernetes 1.28 is too old") && text.contains("needs 1.31 or newer"),
        "{text}"
    );
    Ok(())
}

/// On Kubernetes 1.31, the oldest ferrolb supports, with the `LoadBalancerIPMode` gate off
/// (the last release that allows it), Service
/// status has no `ipMode`: the apiserver drops the field the controller writes. The Services
/// still get their IPs and condition, and nothing is written twice (the controller does not
/// chase the missing field).
#[tokio::test]
async fn on_kubernetes_1_31_without_ip_mode_services_get_their_ips_and_each_is_written_once()
-> anyhow::Result<()> {
    let oldest = ferrolb_tests::apiserver::old_apiserver("1.31");
    let c = Cluster::start_from(
        ControlPlane::builder()
            .apiserver_binary(oldest)
            .apiserver_arg("--feature-gates=LoadBalancerIPMode=false"),
    )
    .await?;
    let version = c.client.apiserver_version().await?;
    assert_eq!(
        (version.major.as_str(), version.minor.trim_end_matches('+')),
        ("1", "31"),
        "this test needs a Kubernetes 1.31 apiserver: {version:?}"
    );
    c.pool("lan", &["192.0.2.200-192.0.2.201"]).await?;
    let controller = c.controller("ctl")?;

    c.create(lb("web", &[80])).await?;
    c.wait_exact_ips("web", &[ip("192.0.2.200")]).await?;
    c.wait_condition("web", "True", "Allocated").await?;
    let svc = c.get("web").await?;
    let modes: Vec<Option<String>> = svc
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip_mode)
        .collect();
    assert_eq!(
        modes,
        [None],
        "the apiserver kept ipMode although its gate is off"
    );

    // Something later, handled: only then is "written once" a fact.
    c.create(lb("db", &[5432])).await?;
    c.wait_exact_ips("db", &[ip("192.0.2.201")]).await?;
    c.wait_condition("db", "True", "Allocated").await?;
    assert_status_writes(&controller, 2).await?;
    Ok(())
}
