//! A new leader rebuilds from the IPs Services hold: every Service that may keep its IPs keeps
//! them, whatever changed while no controller ran, before anyone gets a new one.

use crate::support::*;

/// Sets annotation `key` on Service `name` (a merge patch, as `kubectl annotate` does).
pub(crate) async fn annotate(
    c: &Cluster,
    name: &str,
    key: &str,
    value: &str,
) -> anyhow::Result<()> {
    c.services()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
        )
        .await
        .with_context(|| format!("annotating Service {name}"))?;
    Ok(())
}

#[tokio::test]
async fn a_new_leader_registers_every_holder_before_it_moves_or_grants_anything()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let history = IpHistory::start(c.client.clone());
    c.pool("lan", &["192.0.2.200-192.0.2.210"]).await?;
    let first = c.controller("first")?;
    // One at a time, so each gets the next address: .200, .201, .202, .203.
    let mut held = BTreeMap::new();
    for name in ["a-shrunk", "b-holder", "c-victim", "a-tenant"] {
        c.create(lb(name, &[80])).await?;
        held.insert(name, c.wait_ips(name, 1).await?);
    }
    assert_eq!(held["a-shrunk"], [ip("192.0.2.200")], "{held:?}");
    let victim_ip = held["c-victim"][0];
    first.stop()?;

    // While no controller runs: the pool loses a-shrunk's address (it must move, and must not
    // land on an address another Service holds), and a tenant asks for the victim's address.
    c.pool("lan", &["192.0.2.201-192.0.2.210"]).await?;
    annotate(
        &c,
        "a-tenant",
        "ferrolb.io/loadBalancerIPs",
        &victim_ip.to_string(),
    )
    .await?;

    let second = c.controller("second")?;
    second.wait_leading(WAIT).await?;
    c.wait_condition("a-tenant", "False", "AllocationFailed")
        .await?;
    let moved = eventually("a-shrunk moved into the pool", WAIT, || async {
        let svc = c.get("a-shrunk").await?;
        let ips = ingress(&svc);
        ensure!(
            ips.len() == 1 && ips != held["a-shrunk"],
            "{}",
            describe(&svc)
        );
        Ok(ips)
    })
    .await?;
    let after = c.all_ips().await?;
    assert_eq!(after.get("b-holder"), Some(&held["b-holder"]), "{after:?}");
    assert_eq!(after.get("c-victim"), Some(&held["c-victim"]), "{after:?}");
    assert!(
        !after
            .iter()
            .any(|(name, ips)| *name != "a-shrunk" && ips.contains(&moved[0])),
        "a-shrunk was given a held address: {after:?}"
    );
    assert_eq!(after.get("a-tenant"), None, "{after:?}");
    let (history, clashes) = history.snapshot();
    assert!(clashes.is_empty(), "{clashes:?}");
    for name in ["b-holder", "c-victim"] {
        assert_eq!(history[name].len(), 1, "{name} moved: {history:?}");
    }
    second.stop()?;
    Ok(())
}
