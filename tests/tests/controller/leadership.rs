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

#[tokio::test]
async fn a_leader_cut_off_from_the_apiserver_steps_down_before_a_standby_takes_over()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("lan", &[LAN]).await?;
    let proxy = Proxy::start(c.cp.address())?;
    let settings = test_settings("replica-a");
    let lease = settings.lease_duration;
    let a = c.controller_behind(&proxy, settings)?;
    a.wait_leading(WAIT).await?;
    let b = c.controller("replica-b")?;
    b.wait_ready(WAIT).await?;
    let overlap = Overlap::watch(&a, &b);

    // Every byte between the leader and the apiserver is held from now on, as on a dead
    // connection: its lease renewal hangs instead of failing.
    proxy.set_mode(Mode::Stall);
    let cut = Instant::now();
    eventually("the cut-off leader steps down", WAIT, || async {
        ensure!(!a.is_leader(), "still leading");
        Ok(())
    })
    .await?;
    let stepped_down = cut.elapsed();
    eprintln!("stepped down {stepped_down:?} after the cut (lease {lease:?})");
    assert!(
        stepped_down < lease,
        "the cut-off leader led on for {stepped_down:?}, past its {lease:?} lease"
    );
    b.wait_leading(WAIT).await?;
    assert!(!overlap.seen(), "both replicas led at the same time");

    c.create(lb("web", &[80])).await?;
    c.wait_ips("web", 1).await?;
    assert_eq!(status_writes(&a), 0, "the cut-off replica wrote");
    drop(overlap);
    proxy.set_mode(Mode::Pass);
    b.stop()?;
    Ok(())
}

#[tokio::test]
async fn a_deposed_leader_drops_the_writes_it_was_still_retrying() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let history = IpHistory::start(c.client.clone());
    c.pool("lan", &[LAN]).await?;
    let a = c
        .controller_as("replica-a", None, test_settings("replica-a"))
        .await?;
    a.wait_leading(WAIT).await?;

    let refusal = Refusal::of_status_writes_by(&c, "replica-a").await?;
    c.create(lb("web", &[80])).await?;
    eventually("the leader's write is refused", WAIT, || async {
        ensure!(status_writes_with(&a, "error") >= 1, "not refused yet");
        Ok(())
    })
    .await?;

    // Another replica takes the lease over, as after a partition: the leader learns it at its
    // next renewal, while its write waits to be tried again.
    hand_lease_to(&c, "replica-b").await?;
    eventually("the deposed leader stands by", WAIT, || async {
        ensure!(!a.is_leader(), "still leading");
        Ok(())
    })
    .await?;
    let b = c.controller("replica-b")?;
    b.wait_leading(WAIT).await?;
    // The new leader's choice: the deposed one's write was refused, so whatever web shows is
    // b's (not necessarily .200: b resumes after the last address the pool's status reports).
    let decided = c.wait_ips("web", 1).await?;
    crate::rebuild::annotate(&c, "web", "ferrolb.io/loadBalancerIPs", "192.0.2.210").await?;
    c.wait_exact_ips("web", &[ip("192.0.2.210")]).await?;

    // The apiserver would take the deposed leader's write now.
    refusal.lift(&c).await?;
    eventually("the deposed leader let go of its write", WAIT, || async {
        let let_go = ["dropped", "conflict", "ok"]
            .iter()
            .map(|result| status_writes_with(&a, result))
            .sum::<u64>();
        ensure!(let_go >= 1, "still holding it");
        Ok(())
    })
    .await?;
    assert_eq!(status_writes(&a), 0, "the deposed leader's write landed");
    assert_eq!(status_writes_with(&a, "dropped"), 1);
    c.wait_exact_ips("web", &[ip("192.0.2.210")]).await?;
    let (held, clashes) = history.snapshot();
    assert!(clashes.is_empty(), "{clashes:?}");
    assert_eq!(
        held.get("web"),
        Some(&vec![decided, vec![ip("192.0.2.210")]]),
        "web went back to what the deposed leader decided"
    );
    b.stop()?;
    Ok(())
}

#[tokio::test]
async fn a_write_that_reaches_the_apiserver_after_its_leader_was_deposed_does_not_land()
-> anyhow::Result<()> {
    let audit = Audit::for_users(&["replica-a"])?;
    let c = Cluster::start_from(audit.configure(ControlPlane::builder())).await?;
    let history = IpHistory::start(c.client.clone());
    c.pool("lan", &[LAN]).await?;
    let (proxy, a, b) = leader_behind_proxy(&c).await?;
    c.create(lb("web", &[80])).await?;
    c.wait_exact_ips("web", &[ip("192.0.2.200")]).await?;

    // The leader's requests hang from now on while its watches still deliver: it sees the
    // next change, decides, and its write stays on the wire.
    proxy.set_mode(Mode::HoldRequests);
    crate::rebuild::annotate(&c, "web", "ferrolb.io/loadBalancerIPs", "192.0.2.210").await?;
    eventually("the leader decided on the change", WAIT, || async {
        ensure!(allocations(&a, "allocated") >= 2, "not yet");
        Ok(())
    })
    .await?;
    // Its renewals hang too: the standby takes over and serves the next changes.
    b.wait_leading(WAIT).await?;
    c.wait_exact_ips("web", &[ip("192.0.2.210")]).await?;
    crate::rebuild::annotate(&c, "web", "ferrolb.io/loadBalancerIPs", "192.0.2.220").await?;
    c.wait_exact_ips("web", &[ip("192.0.2.220")]).await?;

    // The link comes back: whatever the old leader sent reaches the apiserver, late.
    release(&proxy).await?;
    // The apiserver refused the late write: web had changed since it was decided.
    let answers = eventually(
        "the apiserver logged its answer to the late write",
        WAIT,
        || async {
            let answers = audit.answers("replica-a", "services/status")?;
            ensure!(answers.len() >= 2, "answers so far: {answers:?}");
            Ok(answers)
        },
    )
    .await?;
    // 409: the write carried the resourceVersion it was decided on, and web changed since.
    // 504: the apiserver cancelled it — most likely because the old leader had abandoned the
    // write at the end of its term (closing its side) and the apiserver noticed before it
    // checked the version (2 of 8 runs here, not analysed further). Neither lands;
    // the history below is what shows that.
    assert!(
        answers == [200, 409] || answers == [200, 504],
        "the old leader's status writes, as answered: {answers:?}"
    );
    // A change after those answers: once the history has it, it has whatever they wrote.
    c.create(lb("later", &[80])).await?;
    let later = c.wait_ips("later", 1).await?;
    eventually("the history saw the later Service", WAIT, || async {
        let (held, _) = history.snapshot();
        ensure!(held.get("later") == Some(&vec![later.clone()]), "not yet");
        Ok(())
    })
    .await?;
    let (held, clashes) = history.snapshot();
    assert!(clashes.is_empty(), "{clashes:?}");
    assert_eq!(
        held.get("web"),
        Some(&vec![
            vec![ip("192.0.2.200")],
            vec![ip("192.0.2.210")],
            vec![ip("192.0.2.220")]
        ]),
        "a write of the deposed leader landed late"
    );
    c.wait_exact_ips("web", &[ip("192.0.2.220")]).await?;
    b.stop()?;
    Ok(())
}

#[tokio::test]
async fn a_stopped_leader_lands_its_queued_writes_before_it_gives_the_lease_up()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("lan", &[LAN]).await?;
    let proxy = Proxy::start(c.cp.address())?;
    let mut settings = test_settings("replica-a");
    settings.write_concurrency = 1;
    let a = c.controller_behind(&proxy, settings)?;
    a.wait_leading(WAIT).await?;

    // Every request of the leader takes a while: its writes queue up behind one another.
    proxy.set_delay(Duration::from_millis(50));
    let names: Vec<String> = (0..20).map(|i| format!("svc-{i}")).collect();
    for name in &names {
        c.create(lb(name, &[80])).await?;
    }
    eventually("the leader decided every Service", WAIT, || async {
        let n = allocations(&a, "allocated");
        ensure!(n == 20, "{n} so far");
        Ok(())
    })
    .await?;
    let landed = status_writes(&a);
    ensure!(
        landed < 20,
        "all {landed} writes landed before the stop: nothing queued"
    );
    a.stop()?;

    let lease = Api::<Lease>::namespaced(c.client.clone(), NAMESPACE)
        .get(LEASE_NAME)
        .await?;
    let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
    assert_eq!(holder, None, "the lease was not given up");
    // resourceVersions are etcd revisions here: they order writes to different objects.
    let released = revision(&lease.metadata)?;
    for name in &names {
        let svc = c.get(name).await?;
        assert_eq!(ingress(&svc).len(), 1, "{}", describe(&svc));
        let written = revision(&svc.metadata)?;
        assert!(
            written < released,
            "{name}'s status was written after the lease was given up"
        );
    }
    Ok(())
}

/// Events are fenced by the term too: a leader whose requests hang decides on new Services and
/// queues an Event for each; once its successor has taken over and its link is back, at most
/// the one Event that was already on the wire reaches the apiserver.
#[tokio::test]
async fn a_deposed_leader_publishes_no_more_events() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("lan", &[LAN]).await?;
    let (proxy, a, b) = leader_behind_proxy(&c).await?;

    proxy.set_mode(Mode::HoldRequests);
    let names: Vec<String> = (0..3).map(|i| format!("held-{i}")).collect();
    for name in &names {
        c.create(lb(name, &[80])).await?;
    }
    eventually("the leader decided every Service", WAIT, || async {
        let n = allocations(&a, "allocated");
        ensure!(n >= 3, "{n} so far");
        Ok(())
    })
    .await?;
    b.wait_leading(WAIT).await?;
    for name in &names {
        c.wait_ips(name, 1).await?;
    }

    release(&proxy).await?;
    // The queued Events go out one after another, each right after the one before is
    // answered: within this, if at all.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut from_a = Vec::new();
    for name in &names {
        for event in c.events(name).await? {
            if event.reporting_instance.as_deref() == Some("replica-a") {
                from_a.push(format!("{name}: {}", event.reason.unwrap_or_default()));
            }
        }
    }
    assert!(
        from_a.len() <= 1,
        "the deposed leader published {} Events: {from_a:?}",
        from_a.len()
    );
    b.stop()?;
    Ok(())
}

/// The `controller` ConfigurationState's result, once written.
async fn configuration_result(c: &Cluster) -> anyhow::Result<Option<ConfigurationResult>> {
    let states: Api<ConfigurationState> = Api::namespaced(c.client.clone(), NAMESPACE);
    Ok(states
        .get_opt("controller")
        .await?
        .and_then(|s| s.status)
        .and_then(|s| s.result))
}

async fn wait_configuration_result(c: &Cluster, want: ConfigurationResult) -> anyhow::Result<()> {
    eventually(
        &format!("the ConfigurationState says {want:?}"),
        WAIT,
        || async {
            let now = configuration_result(c).await?;
            ensure!(now == Some(want), "it says {now:?}");
            Ok(())
        },
    )
    .await
}

/// The configuration report is fenced by the term as the Service writes are: a leader whose
/// requests hang reports a change, loses the lease, and when its link comes back its report
/// must not land over what the new leader reported since.
#[tokio::test]
async fn a_deposed_leader_does_not_overwrite_the_configuration_state() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("lan", &[LAN]).await?;
    let (proxy, _a, b) = leader_behind_proxy(&c).await?;
    wait_configuration_result(&c, ConfigurationResult::Valid).await?;

    // The leader's requests hang while its watches deliver: it sees a pool that overlaps
    // `lan`, reports the configuration Invalid, and that report stays on the wire. Its lease
    // renewals hang too, so the standby takes over (seconds later; the report goes out 200 ms
    // after the change) and reports the same.
    proxy.set_mode(Mode::HoldRequests);
    c.pool("clash", &[LAN]).await?;
    b.wait_leading(WAIT).await?;
    wait_configuration_result(&c, ConfigurationResult::Invalid).await?;
    // Fixed under the new leader.
    c.pools().delete("clash", &DeleteParams::default()).await?;
    wait_configuration_result(&c, ConfigurationResult::Valid).await?;

    // The old leader's link comes back.
    release(&proxy).await?;
    // Whatever the old leader does next, it does within this: the report is written in two
    // requests, the second right after the first (the held one) is answered.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let now = configuration_result(&c).await?;
        assert_eq!(
            now,
            Some(ConfigurationResult::Valid),
            "the deposed leader's report landed over the new leader's"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.stop()?;
    Ok(())
}

/// A leader (`replica-a`) whose requests go through a proxy, and a standby (`replica-b`): the
/// set-up of the tests in which the leader's link hangs.
async fn leader_behind_proxy(
    c: &Cluster,
) -> anyhow::Result<(Proxy, RunningController, RunningController)> {
    let proxy = Proxy::start(c.cp.address())?;
    let a = c
        .controller_as("replica-a", Some(&proxy), test_settings("replica-a"))
        .await?;
    a.wait_leading(WAIT).await?;
    let b = c.controller("replica-b")?;
    b.wait_ready(WAIT).await?;
    Ok((proxy, a, b))
}

/// The held link comes back: returns once the apiserver answered every request it held.
async fn release(proxy: &Proxy) -> anyhow::Result<()> {
    proxy.set_mode(Mode::Pass);
    eventually(
        "the apiserver answered every held request",
        WAIT,
        || async {
            let n = proxy.unanswered();
            ensure!(n == 0, "{n} not answered yet");
            Ok(())
        },
    )
    .await
}

fn revision(meta: &kube::api::ObjectMeta) -> anyhow::Result<u64> {
    meta.resource_version
        .as_deref()
        .context("no resourceVersion")?
        .parse()
        .context("a resourceVersion that is not an etcd revision")
}

/// Makes `identity` the holder of the leader Lease, renewed now, as a replica that took it over
/// would.
async fn hand_lease_to(c: &Cluster, identity: &str) -> anyhow::Result<()> {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    );
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), NAMESPACE);
    let transitions = leases
        .get(LEASE_NAME)
        .await?
        .spec
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0);
    leases
        .patch(
            LEASE_NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "holderIdentity": identity,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": transitions + 1,
            }})),
        )
        .await
        .context("handing the lease over")?;
    Ok(())
}

/// A ValidatingAdmissionPolicy that makes the apiserver refuse one user's Service status
/// writes, in force until lifted.
struct Refusal {
    user: String,
}

impl Refusal {
    const NAME: &str = "refuse-status-writes";

    async fn of_status_writes_by(c: &Cluster, user: &str) -> anyhow::Result<Self> {
        use k8s_openapi::api::admissionregistration::v1::{
            ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
        };
        let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
            "metadata": {"name": Self::NAME},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["UPDATE"], "resources": ["services/status"],
                }]},
                "validations": [{
                    "expression": format!("request.userInfo.username != '{user}'"),
                    "message": format!("the test refuses {user}'s status writes"),
                }],
            },
        }))?;
        Api::<ValidatingAdmissionPolicy>::all(c.client.clone())
            .create(&PostParams::default(), &policy)
            .await?;
        let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
            "metadata": {"name": Self::NAME},
            "spec": {"policyName": Self::NAME, "validationActions": ["Deny"]},
        }))?;
        Api::<ValidatingAdmissionPolicyBinding>::all(c.client.clone())
            .create(&PostParams::default(), &binding)
            .await?;
        let refusal = Self {
            user: user.to_owned(),
        };
        c.create(lb("probe", &[80]).cluster_ip()).await?;
        refusal.wait_probe(c, false).await?;
        Ok(refusal)
    }

    /// Removes the refusal and waits until the apiserver takes the user's writes again.
    async fn lift(self, c: &Cluster) -> anyhow::Result<()> {
        use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
        Api::<ValidatingAdmissionPolicyBinding>::all(c.client.clone())
            .delete(Self::NAME, &DeleteParams::default())
            .await?;
        self.wait_probe(c, true).await
    }

    /// Waits until a status write of the user to Service "probe" is `taken` (or refused).
    async fn wait_probe(&self, c: &Cluster, taken: bool) -> anyhow::Result<()> {
        let as_user =
            c.cp.client_for_user(&self.user, &["system:masters"])
                .await?;
        let probe: Api<Service> = Api::namespaced(as_user, APPS);
        let mut n = 0u32;
        eventually(
            &format!("{}'s status writes taken: {taken}", self.user),
            WAIT,
            || {
                n += 1;
                let body = json!({"status": {"conditions": [{
                    "type": "test.ferrolb.io/Probe", "status": "True", "reason": "Probe",
                    "message": format!("probe {n}"), "lastTransitionTime": "2025-01-01T00:00:00Z",
                }]}});
                let probe = probe.clone();
                async move {
                    let result = probe
                        .patch_status("probe", &PatchParams::default(), &Patch::Merge(body))
                        .await;
                    ensure!(result.is_ok() == taken, "{result:?}");
                    Ok(())
                }
            },
        )
        .await
    }
}
