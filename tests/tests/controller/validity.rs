//! Invalid configuration: reported, and the valid part keeps serving.

use crate::support::*;

#[tokio::test]
async fn overlapping_pools_are_reported_invalid_while_the_valid_pool_keeps_serving()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    // "lan" is older (and sorts first should both be created in the same second).
    c.pool("lan", &["192.0.2.200-192.0.2.220"]).await?;
    c.pool("overlap", &["192.0.2.210-192.0.2.230"]).await?;
    let controller = c.controller("ctl")?;

    let message = c.wait_pool_valid("overlap", "False").await?;
    assert!(
        message.contains("\"lan\"") && message.contains("spec.addresses[0]"),
        "{message}"
    );
    c.wait_pool_counts("lan", 0, 0).await?;

    let state = eventually("ConfigurationState controller", WAIT, || async {
        let states: Api<ConfigurationState> = Api::namespaced(c.client.clone(), NAMESPACE);
        let state = states.get("controller").await?;
        state.status.context("no status yet")
    })
    .await?;
    assert_eq!(
        state.result,
        Some(ConfigurationResult::Invalid),
        "{state:?}"
    );
    let summary = state.error_summary.unwrap_or_default();
    assert!(
        summary.contains("overlap") && summary.contains("\"lan\""),
        "{summary}"
    );
    assert_eq!(controller.metrics().config_valid.get(), 0);

    c.create(lb("web", &[80])).await?;
    let ips = c.wait_ips("web", 1).await?;
    assert!(in_range(ips[0], "192.0.2.200", "192.0.2.220"), "{ips:?}");
    assert_eq!(pool_annotation(&c.get("web").await?), Some("lan"));
    // An address only the invalid pool has is not handed out.
    c.create(lb("beyond", &[80]).annotate("ferrolb.io/loadBalancerIPs", "192.0.2.225"))
        .await?;
    c.wait_condition("beyond", "False", "AllocationFailed")
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_pool_edited_into_an_invalid_state_keeps_serving_with_its_last_valid_version()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("other", &["198.51.100.0/28"]).await?;
    c.pool("lan", &["192.0.2.200-192.0.2.210"]).await?;
    let _controller = c.controller("ctl")?;
    c.create(lb("web", &[80]).annotate("ferrolb.io/address-pool", "lan"))
        .await?;
    let before = c.wait_ips("web", 1).await?;
    assert!(
        in_range(before[0], "192.0.2.200", "192.0.2.210"),
        "{before:?}"
    );

    // An edit that overlaps the older pool "other": lan is invalid, but its running Services
    // keep their IPs and it still serves from its last valid addresses.
    c.pool("lan", &["192.0.2.200-192.0.2.210", "198.51.100.8/29"])
        .await?;
    let message = c.wait_pool_valid("lan", "False").await?;
    assert!(
        message.contains("\"other\"") && message.contains("last valid version"),
        "{message}"
    );
    c.create(lb("api", &[80]).annotate("ferrolb.io/address-pool", "lan"))
        .await?;
    let api = c.wait_ips("api", 1).await?;
    assert!(in_range(api[0], "192.0.2.200", "192.0.2.210"), "{api:?}");
    assert_eq!(ingress(&c.get("web").await?), before, "web kept its IP");

    // Fixed: valid again, nothing moved.
    c.pool("lan", &["192.0.2.200-192.0.2.220"]).await?;
    c.wait_pool_valid("lan", "True").await?;
    assert_eq!(ingress(&c.get("web").await?), before);
    assert_eq!(ingress(&c.get("api").await?), api);
    Ok(())
}
