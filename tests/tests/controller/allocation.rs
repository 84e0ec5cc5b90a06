//! Which IPs Services get: pools, requests, sharing, dual stack, exhaustion, pool changes.

use crate::support::*;

#[tokio::test]
async fn a_service_gets_an_ip_from_the_pool_with_annotation_condition_event_and_pool_counters()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("lan", &[LAN]).await?;
    let _controller = c.controller("ctl")?;

    c.create(lb("web", &[80])).await?;
    let ips = c.wait_ips("web", 1).await?;
    assert!(in_range(ips[0], "192.0.2.200", "192.0.2.250"), "{ips:?}");

    let svc = c.get("web").await?;
    assert_eq!(pool_annotation(&svc), Some("lan"), "{}", describe(&svc));
    let ingress_entry = &svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default()[0];
    assert_eq!(ingress_entry.ip_mode.as_deref(), Some("VIP"));
    let condition = our_condition(&svc).context("no ferrolb.io/IPAssigned condition")?;
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("True", "Allocated")
    );
    assert!(
        condition.message.contains(&ips[0].to_string()) && condition.message.contains("lan"),
        "{}",
        condition.message
    );
    assert_eq!(condition.observed_generation, svc.metadata.generation);

    let event = c.wait_event("web", "IPAllocated").await?;
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    let note = event.note.unwrap_or_default();
    assert!(note.contains(&ips[0].to_string()), "{note}");
    assert_eq!(
        event.reporting_controller.as_deref(),
        Some("ferrolb-controller")
    );

    let status = c.wait_pool_counts("lan", 1, 0).await?;
    assert_eq!(status.available_ipv4, 50, "{status:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// b. Requested IPs.

#[tokio::test]
async fn requested_ips_come_from_either_annotation_or_the_spec_field_but_not_both()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("lan", &[LAN]).await?;
    let _controller = c.controller("ctl")?;

    c.create(lb("ours", &[80]).annotate("ferrolb.io/loadBalancerIPs", "192.0.2.210"))
        .await?;
    c.create(lb("metallb", &[80]).annotate("metallb.universe.tf/loadBalancerIPs", "192.0.2.211"))
        .await?;
    c.create(lb("spec-field", &[80]).load_balancer_ip("192.0.2.212"))
        .await?;
    c.create(
        lb("both", &[80])
            .annotate("ferrolb.io/loadBalancerIPs", "192.0.2.213")
            .load_balancer_ip("192.0.2.214"),
    )
    .await?;

    c.wait_exact_ips("ours", &[ip("192.0.2.210")]).await?;
    c.wait_exact_ips("metallb", &[ip("192.0.2.211")]).await?;
    c.wait_exact_ips("spec-field", &[ip("192.0.2.212")]).await?;

    // The deprecated key works, with a warning naming its replacement.
    let deprecated = c.wait_event("metallb", "DeprecatedAnnotation").await?;
    assert_eq!(deprecated.type_.as_deref(), Some("Warning"));
    let note = deprecated.note.unwrap_or_default();
    assert!(
        note.contains("metallb.universe.tf/loadBalancerIPs")
            && note.contains("ferrolb.io/loadBalancerIPs"),
        "{note}"
    );
    assert!(
        !c.event_reasons("ours")
            .await?
            .contains(&"DeprecatedAnnotation".to_owned())
    );

    // Both ways at once: refused, with a reason the user can act on.
    let condition = c
        .wait_condition("both", "False", "LoadBalancerFailed")
        .await?;
    assert!(
        condition.message.contains("mutually exclusive"),
        "{}",
        condition.message
    );
    let failed = c.wait_event("both", "LoadBalancerFailed").await?;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    let both = c.get("both").await?;
    assert!(ingress(&both).is_empty(), "{}", describe(&both));
    assert_eq!(pool_annotation(&both), None);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// c. Named pools.

#[tokio::test]
async fn a_pool_without_auto_assign_serves_only_services_that_name_it() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.apply_pool("reserved", &["192.0.2.240-192.0.2.245"], false)
        .await?;
    let _controller = c.controller("ctl")?;

    c.create(lb("unnamed", &[80])).await?;
    c.create(lb("named", &[80]).annotate("ferrolb.io/address-pool", "reserved"))
        .await?;
    let named = c.wait_ips("named", 1).await?;
    assert!(
        in_range(named[0], "192.0.2.240", "192.0.2.245"),
        "{named:?}"
    );
    assert_eq!(pool_annotation(&c.get("named").await?), Some("reserved"));

    // Without a name, a pool that does not auto-assign is not a candidate.
    c.wait_condition("unnamed", "False", "AllocationFailed")
        .await?;
    c.wait_event("unnamed", "AllocationFailed").await?;
    assert!(ingress(&c.get("unnamed").await?).is_empty());

    // An auto-assigning pool appears: the waiting Service gets its IP there.
    c.pool("general", &["192.0.2.200-192.0.2.209"]).await?;
    let unnamed = c.wait_ips("unnamed", 1).await?;
    assert!(
        in_range(unnamed[0], "192.0.2.200", "192.0.2.209"),
        "{unnamed:?}"
    );
    assert_eq!(pool_annotation(&c.get("unnamed").await?), Some("general"));
    c.wait_condition("unnamed", "True", "Allocated").await?;
    // The named one stayed where it was.
    assert_eq!(ingress(&c.get("named").await?), named);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// d. Sharing.

#[tokio::test]
async fn services_with_one_sharing_key_and_distinct_ports_share_an_ip_and_others_are_refused_it()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("lan", &[LAN]).await?;
    let _controller = c.controller("ctl")?;

    c.create(lb("http", &[80]).annotate("ferrolb.io/allow-shared-ip", "web"))
        .await?;
    let shared = c.wait_ips("http", 1).await?;
    c.create(lb("https", &[443]).annotate("ferrolb.io/allow-shared-ip", "web"))
        .await?;
    assert_eq!(c.wait_ips("https", 1).await?, shared);

    let wanted = shared[0].to_string();
    // Same key, but port 80 is taken on that IP.
    c.create(
        lb("clash", &[80, 8080])
            .annotate("ferrolb.io/allow-shared-ip", "web")
            .annotate("ferrolb.io/loadBalancerIPs", &wanted),
    )
    .await?;
    // A free port, but another key.
    c.create(
        lb("stranger", &[9090])
            .annotate("ferrolb.io/allow-shared-ip", "other")
            .annotate("ferrolb.io/loadBalancerIPs", &wanted),
    )
    .await?;
    for refused in ["clash", "stranger"] {
        let condition = c
            .wait_condition(refused, "False", "AllocationFailed")
            .await?;
        assert!(
            condition.message.contains(&wanted),
            "{refused}: {}",
            condition.message
        );
        let event = c.wait_event(refused, "AllocationFailed").await?;
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        let svc = c.get(refused).await?;
        assert!(ingress(&svc).is_empty(), "{}", describe(&svc));
    }
    // The sharers kept it.
    assert_eq!(ingress(&c.get("http").await?), shared);
    assert_eq!(ingress(&c.get("https").await?), shared);
    c.wait_pool_counts("lan", 1, 0).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// e. Dual stack.

#[tokio::test]
async fn a_require_dual_stack_service_gets_an_ipv4_and_an_ipv6_address_from_one_pool()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool(
        "dual",
        &[
            "192.0.2.200-192.0.2.210",
            "2001:db8:0:1::200-2001:db8:0:1::2ff",
        ],
    )
    .await?;
    let _controller = c.controller("ctl")?;

    let created = c.create(lb("dual", &[80]).require_dual_stack()).await?;
    let families = created.spec.and_then(|s| s.ip_families).unwrap_or_default();
    assert_eq!(
        families,
        ["IPv4", "IPv6"],
        "the apiserver is not dual-stack"
    );

    let ips = c.wait_ips("dual", 2).await?;
    assert!(in_range(ips[0], "192.0.2.200", "192.0.2.210"), "{ips:?}");
    assert!(
        in_range(ips[1], "2001:db8:0:1::200", "2001:db8:0:1::2ff"),
        "{ips:?}"
    );
    assert_eq!(pool_annotation(&c.get("dual").await?), Some("dual"));
    c.wait_condition("dual", "True", "Allocated").await?;
    c.wait_pool_counts("dual", 1, 1).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// f. Exhaustion.

#[tokio::test]
async fn an_exhausted_pool_refuses_a_service_until_another_releases_its_ip() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("tiny", &["192.0.2.200-192.0.2.201"]).await?;
    let _controller = c.controller("ctl")?;

    c.create(lb("one", &[80])).await?;
    let one = c.wait_ips("one", 1).await?;
    c.create(lb("two", &[80])).await?;
    let two = c.wait_ips("two", 1).await?;
    assert_ne!(one, two);

    c.create(lb("three", &[80])).await?;
    let condition = c
        .wait_condition("three", "False", "AllocationFailed")
        .await?;
    assert!(condition.message.contains("tiny"), "{}", condition.message);
    let event = c.wait_event("three", "AllocationFailed").await?;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let status = c.wait_pool_counts("tiny", 2, 0).await?;
    assert_eq!(status.available_ipv4, 0, "{status:?}");

    // Freeing an IP is enough: "three" is not touched again.
    let untouched = c.get("three").await?.metadata.generation;
    c.services().delete("one", &DeleteParams::default()).await?;
    c.wait_exact_ips("three", &one).await?;
    c.wait_condition("three", "True", "Allocated").await?;
    let three = c.get("three").await?;
    assert_eq!(three.metadata.generation, untouched);
    assert_eq!(ingress(&c.get("two").await?), two);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// g. Pool changes.

#[tokio::test]
async fn shrinking_a_pool_moves_only_the_service_whose_ip_left_it() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let history = IpHistory::start(c.client.clone());
    c.pool("lan", &["192.0.2.200-192.0.2.204"]).await?;
    let _controller = c.controller("ctl")?;

    let mut before = BTreeMap::new();
    for name in ["a", "b", "c"] {
        c.create(lb(name, &[80])).await?;
        before.insert(name, c.wait_ips(name, 1).await?[0]);
    }
    // The pool loses c's address and keeps the other four.
    let remaining: Vec<String> = (200..=204)
        .map(|n| ip(&format!("192.0.2.{n}")))
        .filter(|addr| *addr != before["c"])
        .map(|addr| format!("{addr}/32"))
        .collect();
    let remaining: Vec<&str> = remaining.iter().map(String::as_str).collect();
    c.pool("lan", &remaining).await?;

    let moved = eventually("c moves to a remaining address", WAIT, || async {
        let svc = c.get("c").await?;
        let ips = ingress(&svc);
        ensure!(
            ips.len() == 1 && ips[0] != before["c"],
            "{}",
            describe(&svc)
        );
        Ok(ips[0])
    })
    .await?;
    assert!(
        remaining.contains(&format!("{moved}/32").as_str()),
        "{moved} is not in {remaining:?}"
    );
    assert!(moved != before["a"] && moved != before["b"], "{moved}");
    let clear = c.wait_event("c", "ClearAssignment").await?;
    assert!(
        clear
            .note
            .as_deref()
            .is_some_and(|n| n.contains(&before["c"].to_string())),
        "{clear:?}"
    );
    c.wait_condition("c", "True", "Allocated").await?;

    for name in ["a", "b"] {
        assert_eq!(ingress(&c.get(name).await?), [before[name]]);
        let reasons = c.event_reasons(name).await?;
        assert!(
            !reasons.contains(&"ClearAssignment".to_owned()),
            "{name}: {reasons:?}"
        );
    }
    let (held, clashes) = history.snapshot();
    assert!(clashes.is_empty(), "{clashes:?}");
    for name in ["a", "b"] {
        assert_eq!(held[name], [vec![before[name]]], "{name} moved: {held:?}");
    }
    assert_eq!(held["c"], [vec![before["c"]], vec![moved]], "{held:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// h. Restarts.
