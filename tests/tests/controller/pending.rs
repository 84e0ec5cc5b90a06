//! Services waiting for an IP: told once why, not once per release elsewhere.

use crate::support::*;

/// How many times Events with `reason` were recorded about Service `name` (an Event repeated
/// by the publisher counts every occurrence of its series).
async fn occurrences(c: &Cluster, name: &str, reason: &str) -> anyhow::Result<i32> {
    Ok(c.events(name)
        .await?
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| e.series.as_ref().map_or(1, |s| s.count.max(1)))
        .sum())
}

#[tokio::test]
async fn a_pending_service_is_warned_once_however_many_ips_are_released_elsewhere()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("tiny", &["192.0.2.200/32"]).await?;
    c.apply_pool("side", &["192.0.2.210-192.0.2.215"], false)
        .await?;
    let _controller = c.controller("ctl")?;
    c.create(lb("holder", &[80])).await?;
    c.wait_ips("holder", 1).await?;
    for name in ["wait-1", "wait-2"] {
        c.create(lb(name, &[80])).await?;
        c.wait_condition(name, "False", "AllocationFailed").await?;
        c.wait_event(name, "AllocationFailed").await?;
    }

    // Five Services come and go in another pool: five releases, none of which can help.
    for i in 0..5 {
        let name = format!("side-{i}");
        c.create(lb(&name, &[80]).annotate("ferrolb.io/address-pool", "side"))
            .await?;
        c.wait_ips(&name, 1).await?;
        c.services().delete(&name, &DeleteParams::default()).await?;
    }
    // The last release has been handled, and its Events published, once a later Service has
    // its IP and its Event (one publisher, in order).
    c.create(lb("last", &[80]).annotate("ferrolb.io/address-pool", "side"))
        .await?;
    c.wait_ips("last", 1).await?;
    c.wait_event("last", "IPAllocated").await?;
    for name in ["wait-1", "wait-2"] {
        let warned = occurrences(&c, name, "AllocationFailed").await?;
        assert_eq!(warned, 1, "{name} was warned {warned} times");
        c.wait_condition(name, "False", "AllocationFailed").await?;
    }

    // A change of state is still told: the holder goes, wait-1 gets the IP.
    c.services()
        .delete("holder", &DeleteParams::default())
        .await?;
    c.wait_condition("wait-1", "True", "Allocated").await?;
    c.wait_event("wait-1", "IPAllocated").await?;
    Ok(())
}

/// The value of `ferrolb_controller_services_pending{reason="…"}` in `/metrics`' text, if the
/// series is there.
fn pending_gauge(metrics: &str, reason: &str) -> Option<i64> {
    let series = format!("ferrolb_controller_services_pending{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn the_pending_gauge_counts_the_services_waiting_for_each_reason() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("tiny", &["192.0.2.200/32"]).await?;
    let controller = c.controller("ctl")?;
    c.create(lb("holder", &[80])).await?;
    c.wait_ips("holder", 1).await?;
    for name in ["wait-1", "wait-2"] {
        c.create(lb(name, &[80])).await?;
        c.wait_condition(name, "False", "AllocationFailed").await?;
    }
    c.create(lb("lost", &[80]).annotate("ferrolb.io/address-pool", "nope"))
        .await?;
    c.wait_condition("lost", "False", "AllocationFailed")
        .await?;
    let gauges = |text: &str| {
        (
            pending_gauge(text, "PoolExhausted"),
            pending_gauge(text, "UnknownPool"),
        )
    };
    eventually("2 exhausted and 1 unknown pool", WAIT, || async {
        let text = controller.metrics_text()?;
        anyhow::ensure!(gauges(&text) == (Some(2), Some(1)), "{:?}", gauges(&text));
        Ok(())
    })
    .await?;

    // The holder goes: wait-1 gets its IP; the Service of the unknown pool goes too.
    c.services()
        .delete("holder", &DeleteParams::default())
        .await?;
    c.services()
        .delete("lost", &DeleteParams::default())
        .await?;
    c.wait_condition("wait-1", "True", "Allocated").await?;
    eventually("1 exhausted and none for an unknown pool", WAIT, || async {
        let text = controller.metrics_text()?;
        anyhow::ensure!(gauges(&text) == (Some(1), Some(0)), "{:?}", gauges(&text));
        Ok(())
    })
    .await?;
    Ok(())
}
