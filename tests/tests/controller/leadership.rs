//! Leadership: what a standby holds, and what a leader that lost its lease may still do.

use crate::support::*;

#[tokio::test]
async fn a_standby_replica_holds_no_backlog_of_changes() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("lan", &[LAN]).await?;
    let a = c.controller("replica-a")?;
    a.wait_leading(WAIT).await?;
    let b = c.controller("replica-b")?;
    b.wait_ready(WAIT).await?;
    assert!(!b.is_leader(), "two leaders");

    // Every Service seen, assigned and written is a change the standby watches too.
    let names: Vec<String> = (0..40).map(|i| format!("svc-{i}")).collect();
    for name in &names {
        c.create(lb(name, &[80])).await?;
    }
    for name in &names {
        c.wait_ips(name, 1).await?;
    }
    eventually(
        "the standby took every change off its queue",
        WAIT,
        || async {
            let queued = b.metrics().queued_triggers.get();
            ensure!(queued == 0, "{queued} changes queued on the standby");
            Ok(())
        },
    )
    .await?;
    assert!(!b.is_leader(), "the standby took over");
    Ok(())
}
