//! The alert rules the chart ships (`manifests/chart/alerts/ferrolb.rules.yaml`) against the
//! real thing: Prometheus' own `promtool` checks the file, and evaluates every rule on the
//! series the lab's speakers and controllers export just before and during each fault the
//! rules are for — a pool filled and a Service left waiting, a refused pool, a rogue host
//! claiming an announced IP, the BGP router stopped (BGP and BFD down), every controller
//! replica gone, a node cut off. Each rule must stay silent on every healthy scrape and fire,
//! with the labels and summary a person reads, on its fault only ([`alerts`]).
//!
//! The lab test needs root; skipped otherwise.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context as _;
use ferrolb_tests::alerts::{self, Expected, Phase, SHOWS_WITHIN};
use ferrolb_tests::fixtures::{NAMESPACE, repo_path};
use ferrolb_tests::l2cluster::{send_gratuitous_arp, wait_for};
use ferrolb_tests::lab::{self, ClusterLab};
use ferrolb_tests::netns::{Netns, is_root};
use ferrolb_tests::routers::RouterKind;
use ferrolb_tests::scrape::{Samples, Target, lab_targets, samples, value};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};

#[test]
fn promtool_accepts_the_rules_file() {
    let dir = alerts::prometheus_dir().expect("promtool (tests/setup/prometheus.sh)");
    let file = repo_path(alerts::RULES);
    let out = alerts::promtool(
        &dir,
        &["check", "rules", file.to_str().expect("a UTF-8 path")],
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let n = alerts::rules().expect("the rules file").len();
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{out}");
}

/// Every target's text and its samples together.
async fn scrape(lab: &ClusterLab) -> anyhow::Result<(Vec<Target>, Samples)> {
    let targets = lab_targets(lab).await?;
    let mut all = Samples::new();
    for t in &targets {
        all.extend(samples(t)?);
    }
    Ok((targets, all))
}

/// The `instance` label of a series as [`samples`] names it.
fn instance(series: &str) -> Option<String> {
    let rest = &series[series.find("instance=\"")? + 10..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// The controller replica that leads, by its `instance`.
fn leader(s: &Samples) -> Option<String> {
    s.iter()
        .filter(|(k, v)| k.starts_with("ferrolb_controller_leader{") && **v == 1.0)
        .find_map(|(k, _)| instance(k))
}

/// The speakers that answered, by their `instance` (sorted, as the samples are).
fn speakers(s: &Samples) -> Vec<String> {
    s.keys()
        .filter(|k| k.starts_with("ferrolb_speaker_membership_members_alive{"))
        .filter_map(|k| instance(k))
        .collect()
}

/// Why the lab is not in the state every phase starts from (all 3 speakers up and members of
/// one another, BGP and BFD up, a leader with a valid configuration and nothing pending).
fn unhealthy(s: &Samples) -> Option<String> {
    let Some(leader) = leader(s) else {
        return Some("no controller leads".into());
    };
    let l = [("instance", leader.as_str())];
    if value(s, "ferrolb_controller_config_valid", &l) != 1.0 {
        return Some("the configuration is not valid".into());
    }
    if value(s, "ferrolb_controller_services_pending", &l) != 0.0 {
        return Some("Services are pending".into());
    }
    let speakers = speakers(s);
    if speakers.len() != 3 {
        return Some(format!("speakers answering: {speakers:?}"));
    }
    for sp in &speakers {
        let i = [("instance", sp.as_str())];
        if value(s, "ferrolb_speaker_membership_members_alive", &i) != 3.0 {
            return Some(format!("{sp} does not see 3 members"));
        }
        for m in [
            "ferrolb_speaker_bgp_session_up",
            "ferrolb_speaker_bfd_session_up",
        ] {
            if value(s, m, &i) != 1.0 {
                return Some(format!("{m} is not 1 on {sp}"));
            }
        }
    }
    None
}

/// Scrapes until the lab is healthy; the scrape.
async fn healthy(lab: &ClusterLab) -> anyhow::Result<(Vec<Target>, Samples)> {
    let why = std::cell::RefCell::new(String::new());
    let result = wait_for("the lab is healthy", Duration::from_secs(120), || {
        let why = &why;
        async move {
            let (targets, s) = scrape(lab).await?;
            match unhealthy(&s) {
                None => Ok(Some((targets, s))),
                Some(reason) => {
                    *why.borrow_mut() = reason;
                    Ok(None)
                }
            }
        }
    })
    .await;
    result.with_context(|| format!("last: {}", why.borrow()))
}

/// Scrapes until `shows` holds of the samples; the scrape.
async fn until<F>(lab: &ClusterLab, what: &str, shows: F) -> anyhow::Result<Vec<Target>>
where
    F: Fn(&Samples) -> bool,
{
    let shows = &shows;
    wait_for(what, SHOWS_WITHIN, || async move {
        let (targets, s) = scrape(lab).await?;
        Ok(shows(&s).then_some(targets))
    })
    .await
}

async fn apply(lab: &ClusterLab, yaml: &str) {
    lab.cluster()
        .control_plane()
        .apply_yaml(yaml)
        .await
        .unwrap_or_else(|e| panic!("applying {yaml}: {e:#}"));
}

async fn kubectl(lab: &ClusterLab, args: &[&str]) {
    let out = lab.cluster().kubectl(args).await.expect("kubectl runs");
    assert!(out.success(), "kubectl {args:?}: {out:?}");
}

const TINY_POOL: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: tiny, namespace: ferrolb-system}
spec: {addresses: ["192.0.2.240-192.0.2.241"], autoAssign: false}
"#;

/// Overlaps the `lan` pool, so it is refused.
const OVERLAPPING_POOL: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: overlap, namespace: ferrolb-system}
spec: {addresses: ["192.0.2.238-192.0.2.239"], autoAssign: false}
"#;

fn tiny_service(name: &'static str) -> serde_json::Value {
    lab::demo_service(&lab::DemoService {
        name,
        local: false,
        pool: Some("tiny"),
        app: "echo",
        external: false,
    })
}

fn labels(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

#[tokio::test]
async fn each_alert_fires_on_its_fault_in_the_lab_and_none_while_it_is_healthy() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let prometheus = alerts::prometheus_dir().expect("promtool (tests/setup/prometheus.sh)");
    let mut lab = ClusterLab::start(3, RouterKind::Bird, Duration::from_secs(120))
        .await
        .expect("the lab starts");
    lab.wait_healthy(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = lab.cluster().client();
    lab::apply_demo(&client, "node-1").await.expect("the demo");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let web: IpAddr = wait_for("web gets an IP", SHOWS_WITHIN, || async {
        let svc = services.get("web").await?;
        Ok(ferrolb_api::service::ingress_ips(&svc)
            .into_iter()
            .find(IpAddr::is_ipv4))
    })
    .await
    .expect("web's IP");
    let router_ip = lab
        .cluster()
        .host(ferrolb_tests::lab::ROUTER)
        .ipv4
        .to_string();
    let mut phases = Vec::new();

    // Every rule's metrics and labels exist in what the lab exports (no rule that cannot fire).
    let (targets, _) = healthy(&lab).await.expect("healthy");
    let text: String = targets.iter().map(|t| format!("{}\n", t.text)).collect();
    let rules = alerts::rules().expect("the rules file");
    let as_board = serde_json::json!({"panels": rules.iter().map(|r| {
        serde_json::json!({"title": r.alert, "targets": [{"expr": r.expr}]})
    }).collect::<Vec<_>>()});
    let dead = ferrolb_tests::dashboard::dead_references(
        &as_board,
        &ferrolb_tests::dashboard::exposition(&text),
    );
    assert!(
        dead.is_empty(),
        "rules on series the lab lacks:\n{}",
        dead.join("\n")
    );

    // A pool filled, and one more Service asking it.
    let (before, _) = healthy(&lab).await.expect("healthy");
    apply(&lab, TINY_POOL).await;
    let apply_params = PatchParams::apply("alerts-test").force();
    for name in ["tiny-1", "tiny-2", "tiny-3"] {
        services
            .patch(name, &apply_params, &Patch::Apply(tiny_service(name)))
            .await
            .expect("a Service on the tiny pool");
    }
    let during = until(&lab, "tiny is full and one Service waits", |s| {
        leader(s).is_some_and(|l| {
            let l = l.as_str();
            let pool = [("instance", l), ("pool", "tiny"), ("family", "ipv4")];
            value(s, "ferrolb_controller_pool_assigned_addresses", &pool) == 2.0
                && value(
                    s,
                    "ferrolb_controller_services_pending",
                    &[("instance", l), ("reason", "PoolExhausted")],
                ) == 1.0
        })
    })
    .await
    .expect("the pool fills");
    phases.push(Phase {
        name: "pool full, a Service waits",
        before,
        during,
        firing: vec![
            Expected {
                alert: "FerrolbPoolNearlyExhausted",
                labels: labels(&[("pool", "tiny"), ("family", "ipv4")]),
                summary: "Pool tiny (ipv4) is 100% used".into(),
            },
            Expected {
                alert: "FerrolbServicesPending",
                labels: labels(&[("reason", "PoolExhausted")]),
                summary: "LoadBalancer Services without an IP for 10 minutes (PoolExhausted): 1"
                    .into(),
            },
        ],
    });
    for name in ["tiny-1", "tiny-2", "tiny-3"] {
        services
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    kubectl(&lab, &["-n", NAMESPACE, "delete", "ipaddresspool", "tiny"]).await;

    // A pool that overlaps another: refused, the rest served.
    let (before, before_samples) = healthy(&lab).await.expect("healthy");
    let leader_then = leader(&before_samples).expect("a leader");
    apply(&lab, OVERLAPPING_POOL).await;
    let during = until(&lab, "the leader reports the config invalid", |s| {
        leader(s).is_some_and(|l| {
            value(
                s,
                "ferrolb_controller_config_valid",
                &[("instance", l.as_str())],
            ) == 0.0
        })
    })
    .await
    .expect("the overlap is refused");
    let leader_now = {
        let mut s = Samples::new();
        for t in &during {
            s.extend(samples(t).expect("parses"));
        }
        leader(&s).expect("a leader")
    };
    assert_eq!(
        leader_now, leader_then,
        "the leader changed during the phase"
    );
    phases.push(Phase {
        name: "an overlapping pool",
        before,
        during,
        firing: vec![Expected {
            alert: "FerrolbConfigInvalid",
            labels: labels(&[("instance", &leader_now), ("job", "controller")]),
            summary: "ferrolb refuses part of its configuration".into(),
        }],
    });
    kubectl(
        &lab,
        &["-n", NAMESPACE, "delete", "ipaddresspool", "overlap"],
    )
    .await;

    // A rogue host claims web's IP (with a MAC above every node's, so the owner defends it).
    let (before, before_samples) = healthy(&lab).await.expect("healthy");
    let conflicts = |s: &Samples, sp: &str| {
        value(
            s,
            "ferrolb_speaker_layer2_conflicts_total",
            &[("instance", sp), ("interface", "eth0")],
        )
    };
    let client_ns = Netns::existing(lab.state().client_netns.clone());
    let during = wait_for("a speaker counts the conflict", SHOWS_WITHIN, || {
        let client_ns = client_ns.clone();
        let before_samples = &before_samples;
        let lab = &lab;
        async move {
            client_ns.run(move || send_gratuitous_arp("eth0", web, "fe:ff:ff:ff:ff:fe"))??;
            let (targets, s) = scrape(lab).await?;
            let moved = speakers(&s)
                .iter()
                .any(|sp| conflicts(&s, sp) > conflicts(before_samples, sp));
            Ok(moved.then_some((targets, s)))
        }
    })
    .await
    .expect("the rogue ARP is seen");
    let claimed: Vec<String> = speakers(&during.1)
        .into_iter()
        .filter(|sp| conflicts(&during.1, sp) > conflicts(&before_samples, sp))
        .collect();
    assert_eq!(
        claimed.len(),
        1,
        "only web's owner holds the IP: {claimed:?}"
    );
    phases.push(Phase {
        name: "a rogue host claims an IP",
        before,
        during: during.0,
        firing: vec![Expected {
            alert: "FerrolbSplitBrain",
            labels: labels(&[("instance", &claimed[0]), ("interface", "eth0")]),
            summary: format!(
                "Another host claims an IP that {} announces on eth0",
                claimed[0]
            ),
        }],
    });

    // The router stops: every node's BGP session and BFD go down.
    let (before, before_samples) = healthy(&lab).await.expect("healthy");
    let nodes = speakers(&before_samples);
    lab.router_mut().stop();
    let during = until(&lab, "every speaker reports BGP and BFD down", |s| {
        speakers(s).len() == 3
            && nodes.iter().all(|sp| {
                let i = [("instance", sp.as_str())];
                value(s, "ferrolb_speaker_bgp_session_up", &i) == 0.0
                    && value(s, "ferrolb_speaker_bfd_session_up", &i) == 0.0
            })
    })
    .await
    .expect("sessions go down");
    let mut firing = Vec::new();
    for sp in &nodes {
        firing.push(Expected {
            alert: "FerrolbBGPSessionDown",
            labels: labels(&[
                ("instance", sp),
                ("job", "speaker"),
                ("peer", "router"),
                ("address", &format!("{router_ip}:179")),
            ]),
            summary: format!("BGP session from {sp} to router ({router_ip}:179) is down"),
        });
        firing.push(Expected {
            alert: "FerrolbBFDSessionDown",
            labels: labels(&[("instance", sp), ("job", "speaker"), ("peer", "router")]),
            summary: format!("BFD session from {sp} to router is down"),
        });
    }
    phases.push(Phase {
        name: "the router stops",
        before,
        during,
        firing,
    });
    lab.router_mut().restart().expect("the router restarts");

    // Every controller replica gone.
    let (before, _) = healthy(&lab).await.expect("healthy");
    let deployment = ["-n", NAMESPACE, "scale", "deployment", "ferrolb-controller"];
    kubectl(&lab, &[&deployment[..], &["--replicas=0"]].concat()).await;
    let during = until(&lab, "no controller answers", |s| {
        leader(s).is_none()
            && !s
                .keys()
                .any(|k| k.starts_with("ferrolb_controller_leader{"))
    })
    .await
    .expect("the controllers go");
    phases.push(Phase {
        name: "no controller",
        before,
        during,
        firing: vec![Expected {
            alert: "FerrolbNoControllerLeader",
            labels: vec![],
            summary: "No ferrolb controller holds the leader lease".into(),
        }],
    });
    kubectl(&lab, &[&deployment[..], &["--replicas=2"]].concat()).await;

    // node-3 cut off: the others declare its speaker dead.
    let (before, before_samples) = healthy(&lab).await.expect("healthy");
    let deaths = |s: &Samples, sp: &str| {
        value(
            s,
            "ferrolb_speaker_membership_deaths_total",
            &[("instance", sp)],
        )
    };
    let node3 = &lab.state().nodes[2];
    let gone = format!(
        "{}:{}",
        node3.ipv4,
        ferrolb_tests::scrape::SPEAKER_METRICS_PORT
    );
    let survivors: Vec<String> = nodes.iter().filter(|sp| **sp != gone).cloned().collect();
    let node3_ns = lab.cluster().host(&node3.name).ns.clone();
    node3_ns.link_down("eth0").expect("node-3 cut off");
    let during = until(&lab, "node-1 and node-2 see node-3 dead", |s| {
        leader(s).is_some()
            && speakers(s) == survivors
            && survivors.iter().all(|sp| {
                let i = [("instance", sp.as_str())];
                value(s, "ferrolb_speaker_membership_members_alive", &i) == 2.0
                    && deaths(s, sp) > deaths(&before_samples, sp)
            })
    })
    .await
    .expect("node-3 declared dead");
    phases.push(Phase {
        name: "a node cut off",
        before,
        during,
        firing: survivors
            .iter()
            .map(|sp| Expected {
                alert: "FerrolbMembershipShrinking",
                labels: labels(&[("instance", sp), ("job", "speaker")]),
                summary: format!("{sp} sees 2 speakers alive, fewer than in the last hour"),
            })
            .collect(),
    });

    let work = tempfile::tempdir().expect("a temporary directory");
    let out = alerts::test_rules(&prometheus, work.path(), &phases).unwrap_or_else(|e| {
        let kept = work.keep();
        panic!("{e:#}\n(the rules and tests are in {})", kept.display())
    });
    eprintln!(
        "promtool evaluated {} rules over {} faults recorded from the lab:\n{out}",
        rules.len(),
        phases.len()
    );
}
