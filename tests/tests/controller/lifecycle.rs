//! Restarts, leader changes, other classes and Services that stop being load balancers.

use crate::support::*;

#[tokio::test]
async fn a_restarted_or_crashed_controller_keeps_every_ip_where_it_was() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let history = IpHistory::start(c.client.clone());
    c.pool("lan", &[LAN]).await?;

    let first = c.controller("first")?;
    let names: Vec<String> = (0..5).map(|i| format!("svc-{i}")).collect();
    for name in &names {
        c.create(lb(name, &[80])).await?;
    }
    for name in &names {
        c.wait_condition(name, "True", "Allocated").await?;
    }
    let before = c.all_ips().await?;
    assert_eq!(before.len(), 5, "{before:?}");

    // A graceful stop gives the lease up at once.
    first.stop()?;
    assert_eq!(c.lease_holder().await?, None);
    // While no controller runs, one Service goes and one comes.
    c.services()
        .delete("svc-4", &DeleteParams::default())
        .await?;
    c.create(lb("while-stopped", &[80])).await?;

    let second = c.controller("second")?;
    second.wait_leading(WAIT).await?;
    let new_ip = c.wait_ips("while-stopped", 1).await?[0];
    let after = c.all_ips().await?;
    for (name, ips) in &before {
        if name != "svc-4" {
            assert_eq!(after.get(name), Some(ips), "{name} moved: {after:?}");
        }
    }
    assert!(
        !before
            .iter()
            .any(|(n, ips)| n != "svc-4" && ips.contains(&new_ip)),
        "{new_ip} was handed out twice: {after:?}"
    );
    // Rebuilding wrote nothing: the only write is the new Service's.
    c.wait_condition("while-stopped", "True", "Allocated")
        .await?;
    assert_status_writes(&second, 1).await?;

    // A crash keeps the lease until it expires, and moves nothing either.
    c.create(lb("before-crash", &[80])).await?;
    c.wait_ips("before-crash", 1).await?;
    let before_crash = c.all_ips().await?;
    second.kill()?;
    assert_eq!(c.lease_holder().await?.as_deref(), Some("second"));

    let third = c.controller("third")?;
    third.wait_leading(WAIT).await?;
    c.create(lb("after-crash", &[80])).await?;
    let newest = c.wait_ips("after-crash", 1).await?[0];
    let after_crash = c.all_ips().await?;
    for (name, ips) in &before_crash {
        assert_eq!(
            after_crash.get(name),
            Some(ips),
            "{name} moved: {after_crash:?}"
        );
        assert!(!ips.contains(&newest), "{newest} handed out twice");
    }
    assert_eq!(c.lease_holder().await?.as_deref(), Some("third"));
    c.wait_condition("after-crash", "True", "Allocated").await?;
    assert_status_writes(&third, 1).await?;

    let (held, clashes) = history.snapshot();
    assert!(clashes.is_empty(), "{clashes:?}");
    for (name, ips) in &held {
        assert_eq!(ips.len(), 1, "{name} held several IP sets: {ips:?}");
    }
    third.stop()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// i. Leader election.

#[tokio::test]
async fn a_standby_replica_takes_over_from_a_killed_leader_without_handing_out_an_ip_twice()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let history = IpHistory::start(c.client.clone());
    c.pool("lan", &[LAN]).await?;

    let a = c.controller("replica-a")?;
    let b = c.controller("replica-b")?;
    // While both run, both must never lead at once (sampled every few milliseconds).
    let both_led = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (a, b, both_led) = (a.metrics(), b.metrics(), both_led.clone());
        tokio::spawn(async move {
            loop {
                if a.leader.get() == 1 && b.leader.get() == 1 {
                    both_led.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let leading = eventually("exactly one replica leads", WAIT, || async {
        let holder = c.lease_holder().await?.context("the lease has no holder")?;
        ensure!(
            a.is_leader() != b.is_leader(),
            "a leads: {}, b leads: {}",
            a.is_leader(),
            b.is_leader()
        );
        let leading = if a.is_leader() {
            a.identity()
        } else {
            b.identity()
        };
        ensure!(holder == leading, "lease held by {holder}, {leading} leads");
        Ok(leading.to_owned())
    })
    .await?;
    let (leader, standby) = if leading == a.identity() {
        (a, b)
    } else {
        (b, a)
    };
    standby.wait_ready(WAIT).await?;
    assert!(!standby.is_leader());

    let first: Vec<String> = (0..4).map(|i| format!("first-{i}")).collect();
    for name in &first {
        c.create(lb(name, &[80])).await?;
    }
    for name in &first {
        c.wait_condition(name, "True", "Allocated").await?;
    }
    let before = c.all_ips().await?;
    // The standby wrote nothing.
    assert_eq!(status_writes(&standby), 0);
    sampler.abort();
    assert!(
        !both_led.load(Ordering::Relaxed),
        "both replicas led at the same time"
    );

    leader.kill()?;
    let killed = Instant::now();
    // Created while nobody leads: served by the next leader.
    c.create(lb("orphan", &[80])).await?;
    standby.wait_leading(WAIT).await?;
    let takeover = killed.elapsed();
    eprintln!("takeover after {takeover:?} (lease 3 s)");
    assert!(
        takeover < Duration::from_secs(10),
        "the standby took {takeover:?} to take over a 3 s lease"
    );
    assert_eq!(c.lease_holder().await?.as_deref(), Some(standby.identity()));

    let later: Vec<String> = (0..4).map(|i| format!("later-{i}")).collect();
    for name in &later {
        c.create(lb(name, &[80])).await?;
    }
    for name in later.iter().chain([&"orphan".to_owned()]) {
        c.wait_condition(name, "True", "Allocated").await?;
    }
    let after = c.all_ips().await?;
    assert_eq!(after.len(), 9, "{after:?}");
    for (name, ips) in &before {
        assert_eq!(after.get(name), Some(ips), "{name} moved");
    }
    let all: Vec<IpAddr> = after.values().flatten().copied().collect();
    let distinct: BTreeSet<IpAddr> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "an IP is held twice: {after:?}");
    // The new leader wrote only for the Services it assigned.
    assert_status_writes(&standby, 5).await?;

    let (held, clashes) = history.snapshot();
    assert!(clashes.is_empty(), "{clashes:?}");
    for (name, ips) in &held {
        assert_eq!(ips.len(), 1, "{name} held several IP sets: {ips:?}");
    }
    standby.stop()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// j. Load-balancer classes.

#[tokio::test]
async fn services_of_another_load_balancer_class_are_left_alone() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let history = IpHistory::start(c.client.clone());
    c.pool("lan", &["192.0.2.200-192.0.2.229"]).await?;

    // Without a class setting: class-less Services only.
    let classless = c.controller("classless")?;
    // Leading first, so that every Service below is one change for it (status writes counted).
    classless.wait_leading(WAIT).await?;
    c.create(lb("other", &[80]).class("other.io/lb")).await?;
    c.create(lb("ours-early", &[80]).class("ferrolb.io/lb"))
        .await?;
    c.create(lb("plain", &[80])).await?;
    let plain = c.wait_ips("plain", 1).await?;
    assert_eq!(pool_annotation(&c.get("plain").await?), Some("lan"));
    // "plain" came last, so the others were looked at before it.
    for name in ["other", "ours-early"] {
        let svc = c.get(name).await?;
        assert!(ingress(&svc).is_empty(), "{}", describe(&svc));
        assert_eq!(pool_annotation(&svc), None);
        assert!(our_condition(&svc).is_none(), "{}", describe(&svc));
        assert_eq!(c.events(name).await?.len(), 0);
    }

    // A second instance, for class ferrolb.io/lb only, with a configuration namespace (pools,
    // lease) of its own, runs next to the first.
    let classy_ns = "ferrolb-classy";
    create_namespace(&c.cp, classy_ns).await?;
    c.apply_pool_in(classy_ns, "classy", &["192.0.2.230-192.0.2.239"], true)
        .await?;
    let mut settings = test_settings("classy");
    settings.namespace = classy_ns.to_owned();
    settings.lb_class = Some("ferrolb.io/lb".to_owned());
    let classy = RunningController::start(&c.cp, settings)?;
    classy.wait_leading(WAIT).await?;

    let ours_early = c.wait_ips("ours-early", 1).await?;
    c.create(lb("plain-2", &[80])).await?;
    c.create(lb("ours", &[80]).class("ferrolb.io/lb")).await?;
    let ours = c.wait_ips("ours", 1).await?;
    let plain_2 = c.wait_ips("plain-2", 1).await?;
    for (name, ips) in [("ours-early", &ours_early), ("ours", &ours)] {
        assert!(
            in_range(ips[0], "192.0.2.230", "192.0.2.239"),
            "{name}: {ips:?}"
        );
        assert_eq!(pool_annotation(&c.get(name).await?), Some("classy"));
        c.wait_condition(name, "True", "Allocated").await?;
    }
    assert!(
        in_range(plain_2[0], "192.0.2.200", "192.0.2.229"),
        "{plain_2:?}"
    );
    assert_eq!(pool_annotation(&c.get("plain-2").await?), Some("lan"));
    c.wait_condition("plain-2", "True", "Allocated").await?;

    // Each instance wrote only its own Services: the class-less ones keep what the first wrote.
    let svc = c.get("plain").await?;
    assert_eq!(ingress(&svc), plain, "{}", describe(&svc));
    assert_eq!(pool_annotation(&svc), Some("lan"));
    assert!(our_condition(&svc).is_some_and(|c| c.status == "True"));
    let reasons = c.event_reasons("plain").await?;
    assert!(
        !reasons.contains(&"ClearAssignment".to_owned()),
        "{reasons:?}"
    );
    let svc = c.get("other").await?;
    assert!(
        ingress(&svc).is_empty() && our_condition(&svc).is_none(),
        "{}",
        describe(&svc)
    );
    assert_eq!(c.events("other").await?.len(), 0);
    // plain and plain-2; ours-early and ours.
    assert_status_writes(&classless, 2).await?;
    assert_status_writes(&classy, 2).await?;
    assert_eq!(c.lease_holder().await?.as_deref(), Some("classless"));
    assert_eq!(
        c.lease_holder_in(classy_ns).await?.as_deref(),
        Some("classy")
    );

    let (held, clashes) = history.snapshot();
    assert!(clashes.is_empty(), "{clashes:?}");
    for (name, ips) in &held {
        assert_eq!(ips.len(), 1, "{name} held several IP sets: {ips:?}");
    }
    classy.stop()?;
    classless.stop()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// k. Type changes.

#[tokio::test]
async fn a_service_that_stops_being_a_load_balancer_loses_its_ip_to_a_pending_one()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("single", &["192.0.2.200/32"]).await?;
    let _controller = c.controller("ctl")?;

    c.create(lb("first", &[80])).await?;
    c.wait_exact_ips("first", &[ip("192.0.2.200")]).await?;
    c.create(lb("waiting", &[80])).await?;
    c.wait_condition("waiting", "False", "AllocationFailed")
        .await?;

    c.services()
        .patch(
            "first",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await?;
    eventually("first is cleared", WAIT, || async {
        let svc = c.get("first").await?;
        ensure!(
            ingress(&svc).is_empty()
                && pool_annotation(&svc).is_none()
                && our_condition(&svc).is_none(),
            "{}",
            describe(&svc)
        );
        Ok(())
    })
    .await?;
    c.wait_event("first", "ClearAssignment").await?;
    c.wait_exact_ips("waiting", &[ip("192.0.2.200")]).await?;
    c.wait_condition("waiting", "True", "Allocated").await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// l. Invalid configuration.

/// The next allocation starts after the last IP handed out, so an IP just released (still in
/// clients' caches, DNS, firewall rules) is not the next one given. That order must survive a
/// restart or a leader change: the new leader resumes where the pool's status says.
#[tokio::test]
async fn a_just_released_ip_is_not_handed_out_first_after_a_restart() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("lan", &[LAN]).await?;
    let first = c.controller("first")?;
    c.create(lb("a", &[80])).await?;
    let a = c.wait_ips("a", 1).await?[0];
    c.create(lb("b", &[80])).await?;
    let b = c.wait_ips("b", 1).await?[0];
    assert!(b > a, "{a} then {b}");
    c.services().delete("b", &DeleteParams::default()).await?;
    // The release is reported on the pool before the controller stops.
    eventually("the pool counts one IPv4 in use", WAIT, || async {
        let pool = c.pools().get("lan").await?;
        let status = pool.status.unwrap_or_default();
        ensure!(status.assigned_ipv4 == 1, "{status:?}");
        Ok(())
    })
    .await?;
    first.stop()?;

    let second = c.controller("second")?;
    second.wait_leading(WAIT).await?;
    c.create(lb("c", &[80])).await?;
    let got = c.wait_ips("c", 1).await?[0];
    assert!(
        got > b,
        "after a restart the next Service got {got}: {b} was released just before and should come last (a has {a})"
    );
    second.stop()?;
    Ok(())
}
