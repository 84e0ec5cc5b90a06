//! A pool that is deleted and comes back (GitOps `Replace=true`, `kubectl replace --force`, a
//! Helm reinstall) renumbers nothing; one that stays away past the grace period lets its
//! Services move.

use crate::support::*;

/// The `PoolsPresent` condition of the `controller` ConfigurationState, if any.
async fn pools_present(c: &Cluster) -> anyhow::Result<Option<Condition>> {
    let states: Api<ConfigurationState> = Api::namespaced(c.client.clone(), NAMESPACE);
    Ok(states
        .get_opt("controller")
        .await?
        .and_then(|s| s.status)
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "PoolsPresent")))
}

#[tokio::test]
async fn a_pool_deleted_and_recreated_within_the_grace_period_moves_no_service()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let history = IpHistory::start(c.client.clone());
    c.pool("a", &["192.0.2.200-192.0.2.209"]).await?;
    c.pool("spare", &["192.0.2.220-192.0.2.229"]).await?;
    let _controller = c.controller("ctl")?;
    c.create(lb("web", &[80])).await?;
    let held = c.wait_ips("web", 1).await?;
    assert!(in_range(held[0], "192.0.2.200", "192.0.2.209"), "{held:?}");
    c.wait_pool_counts("a", 1, 0).await?;

    c.pools().delete("a", &DeleteParams::default()).await?;
    // While it is away, the Service says so and keeps its IP; so does the ConfigurationState.
    let waiting = c.wait_condition("web", "True", "PoolMissing").await?;
    assert!(
        waiting.message.contains("pool a") && waiting.message.contains(&held[0].to_string()),
        "{}",
        waiting.message
    );
    let absent = eventually(
        "the ConfigurationState names the missing pool",
        WAIT,
        || async {
            let condition = pools_present(&c)
                .await?
                .context("no PoolsPresent condition")?;
            ensure!(condition.status == "False", "{condition:?}");
            Ok(condition)
        },
    )
    .await?;
    assert!(absent.message.contains("pool a"), "{}", absent.message);
    assert_eq!(ingress(&c.get("web").await?), held);

    c.pool("a", &["192.0.2.200-192.0.2.209"]).await?;
    c.wait_condition("web", "True", "Allocated").await?;
    c.wait_pool_counts("a", 1, 0).await?;
    let back = eventually("the ConfigurationState sees every pool", WAIT, || async {
        let condition = pools_present(&c)
            .await?
            .context("no PoolsPresent condition")?;
        ensure!(condition.status == "True", "{condition:?}");
        Ok(condition)
    })
    .await?;
    assert_eq!(back.reason, "AllPresent");
    let svc = c.get("web").await?;
    assert_eq!(ingress(&svc), held, "{}", describe(&svc));
    assert_eq!(pool_annotation(&svc), Some("a"));
    let (history, clashes) = history.snapshot();
    assert!(clashes.is_empty(), "{clashes:?}");
    assert_eq!(history["web"], [held], "web moved");
    Ok(())
}

#[tokio::test]
async fn a_pool_that_stays_deleted_past_the_grace_period_lets_its_services_move()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("a", &["192.0.2.200-192.0.2.209"]).await?;
    c.pool("spare", &["192.0.2.220-192.0.2.229"]).await?;
    let grace = Duration::from_secs(4);
    let _controller = RunningController::start(
        &c.cp,
        ferrolb_controller::k8s::Settings {
            pool_grace: grace,
            ..test_settings("ctl")
        },
    )?;
    c.create(lb("web", &[80])).await?;
    let held = c.wait_ips("web", 1).await?;
    assert!(in_range(held[0], "192.0.2.200", "192.0.2.209"), "{held:?}");

    c.pools().delete("a", &DeleteParams::default()).await?;
    let deleted = Instant::now();
    c.wait_condition("web", "True", "PoolMissing").await?;
    // Nobody else gets the deleted pool's IPs meanwhile.
    c.create(lb("newcomer", &[80])).await?;
    let newcomer = c.wait_ips("newcomer", 1).await?;
    assert!(
        in_range(newcomer[0], "192.0.2.220", "192.0.2.229"),
        "{newcomer:?}"
    );

    let moved = eventually("web moved to the spare pool", WAIT, || async {
        let svc = c.get("web").await?;
        ensure!(pool_annotation(&svc) == Some("spare"), "{}", describe(&svc));
        Ok(ingress(&svc))
    })
    .await?;
    assert!(
        deleted.elapsed() >= grace,
        "moved after {:?}",
        deleted.elapsed()
    );
    assert!(
        in_range(moved[0], "192.0.2.220", "192.0.2.229"),
        "{moved:?}"
    );
    assert_ne!(moved, newcomer);
    c.wait_condition("web", "True", "Allocated").await?;
    eventually(
        "the ConfigurationState no longer waits for pool a",
        WAIT,
        || async {
            let condition = pools_present(&c)
                .await?
                .context("no PoolsPresent condition")?;
            ensure!(condition.status == "True", "{condition:?}");
            Ok(())
        },
    )
    .await
}
