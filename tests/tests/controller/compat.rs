//! The oldest Kubernetes ferrolb supports, and what happens below it.

use crate::support::*;

/// On Kubernetes 1.28 ferrolb's CRDs do not install (their validation uses CEL's IP library,
/// from 1.30) and Service status has no `ipMode` (1.29). A controller started there stops at
/// once with an error that names the version and the minimum, instead of watching kinds that
/// do not exist.
#[tokio::test]
async fn on_kubernetes_1_28_the_controller_stops_saying_the_version_is_too_old()
-> anyhow::Result<()> {
    init_logs();
    let old = ferrolb_tests::apiserver::old_apiserver();
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
        text.contains("Kubernetes 1.28 is too old") && text.contains("needs 1.30 or newer"),
        "{text}"
    );
    Ok(())
}
