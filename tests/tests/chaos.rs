//! Issue #13's chaos suite, short form: a seeded run of random user operations on a real
//! apiserver while `ferrolb-controller` replicas (real processes) are killed, frozen and cut
//! off, the apiserver restarts and watches expire; an independent checker reads the apiserver
//! after every step. The long form is `tests/bench/chaos.sh`.
//!
//! `FERROLB_CHAOS_SEED` replays a run; `FERROLB_CHAOS_OPS` changes its length.
//! Each scenario of `ferrolb_tests::chaos::Scenarios` runs here.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_tests::chaos::checker::{self, Kind};
use ferrolb_tests::chaos::world::{PoolView, ServiceView, World};
use ferrolb_tests::chaos::{Fault, Report, Scenarios, Settings, run};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn chaos(scenarios: &str, default_ops: usize, faults: Option<Vec<Fault>>) -> Report {
    let seed = env_or("FERROLB_CHAOS_SEED", 13_u64);
    let mut settings = Settings::short(seed, env_or("FERROLB_CHAOS_OPS", default_ops));
    settings.scenarios = Scenarios::parse(scenarios).expect("scenario names");
    if faults.is_some() {
        // The scenario's own faults, in most steps.
        settings.faults = faults;
        settings.fault_percent = 60;
    }
    settings.verbose = std::env::var_os("FERROLB_CHAOS_VERBOSE").is_some();
    let report = run(settings).await.expect("the chaos run itself");
    eprintln!("{}", report.summary());
    report
}

fn assert_clean(report: &Report) {
    assert!(
        report.faults.values().sum::<usize>() > 0 && report.gained > 0,
        "the run did nothing worth checking:\n{}",
        report.summary()
    );
    assert!(
        report.op_errors.is_empty(),
        "operations failed: {:?}",
        report.op_errors
    );
    assert!(
        report.unsettled.is_empty(),
        "steps did not settle:\n{}",
        report.summary()
    );
    assert!(
        report.violations.is_empty(),
        "violations (replay with FERROLB_CHAOS_SEED={}):\n{}",
        report.seed,
        report.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_short_run_puts_no_ip_on_two_services_moves_none_unasked_and_crosses_no_fence() {
    let report = chaos("", 160, None).await;
    assert_clean(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_with_tenants_naming_fenced_pools_crosses_no_fence() {
    assert_clean(&chaos("fence-bypass", 150, None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_with_pools_replaced_moves_no_ip() {
    assert_clean(&chaos("pool-replace", 150, None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_with_edits_during_failover_moves_no_ip() {
    assert_clean(&chaos("ops-during-failover", 150, Some(vec![Fault::KillLeader])).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_with_edits_while_the_leader_is_stuck_moves_no_ip() {
    assert_clean(
        &chaos(
            "ops-during-stuck-leader",
            150,
            Some(vec![Fault::FreezeLeader, Fault::StallLeader]),
        )
        .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_with_dual_stack_services_requesting_one_family_settles_and_holds_only_what_they_asked()
 {
    // PreferDualStack is where the other family gets added; no leader change (only standbys
    // die), so the rebuild bug of prefer-dual-stack stays out of it.
    assert_clean(
        &chaos(
            "partial-dual-request,prefer-dual-stack",
            150,
            Some(vec![Fault::KillStandby]),
        )
        .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_with_prefer_dual_stack_services_moves_no_ip_at_a_leader_change() {
    assert_clean(&chaos("prefer-dual-stack", 150, Some(vec![Fault::KillLeader])).await);
}

// The checker must be able to fail: each rule, on a hand-made state that breaks it.

fn pool(name: &str, lo: &str, hi: &str, namespaces: Option<&[&str]>) -> PoolView {
    PoolView {
        name: name.into(),
        ranges: vec![(lo.parse().expect("ip"), hi.parse().expect("ip"))],
        avoid_buggy: false,
        namespaces: namespaces.map(|n| n.iter().map(|s| (*s).to_owned()).collect()),
        service_selectors: vec![],
    }
}

fn svc(ns: &str, name: &str, ips: &[&str], key: &str, port: i32) -> ServiceView {
    ServiceView {
        key: format!("{ns}/{name}"),
        namespace: ns.into(),
        uid: format!("uid-{name}"),
        ours: true,
        ips: ips
            .iter()
            .map(|i| i.parse::<IpAddr>().expect("ip"))
            .collect(),
        labels: BTreeMap::new(),
        requested: Ok(vec![]),
        pool: None,
        sharing_key: key.into(),
        backend_key: String::new(),
        ports: BTreeSet::from([("TCP".to_owned(), port)]),
        resource_version: String::new(),
        families: vec![true],
        require_dual: false,
        condition: None,
    }
}

fn world(pools: Vec<PoolView>, services: Vec<ServiceView>) -> World {
    World {
        pools: pools.into_iter().map(|p| (p.name.clone(), p)).collect(),
        services: services.into_iter().map(|s| (s.key.clone(), s)).collect(),
    }
}

fn kinds(before: &World, now: &World) -> Vec<Kind> {
    let deleted = BTreeMap::new();
    let ctx = checker::Context {
        deleted_pools: &deleted,
        grace: Duration::from_secs(60),
        exempt_namespace: "chaos-barrier",
    };
    let mut k: Vec<Kind> = checker::check(before, &[], now, &ctx)
        .0
        .iter()
        .map(|v| v.kind)
        .collect();
    k.sort();
    k
}

#[test]
fn checker_flags_an_ip_on_two_services_unless_they_may_share_it() {
    let pools = || vec![pool("a", "192.0.2.200", "192.0.2.210", None)];
    let clash = world(
        pools(),
        vec![
            svc("dev", "x", &["192.0.2.200"], "k", 80),
            svc("dev", "y", &["192.0.2.200"], "", 443),
        ],
    );
    assert_eq!(kinds(&clash, &clash), [Kind::Shared]);
    let same_port = world(
        pools(),
        vec![
            svc("dev", "x", &["192.0.2.200"], "k", 80),
            svc("dev", "y", &["192.0.2.200"], "k", 80),
        ],
    );
    assert_eq!(kinds(&same_port, &same_port), [Kind::Shared]);
    let fine = world(
        pools(),
        vec![
            svc("dev", "x", &["192.0.2.200"], "k", 80),
            svc("prod", "y", &["192.0.2.200"], "k", 443),
        ],
    );
    assert!(kinds(&fine, &fine).is_empty());
}

#[test]
fn checker_flags_an_ip_of_a_pool_that_fences_the_namespace_out() {
    let w = world(
        vec![pool(
            "prod-only",
            "198.51.100.0",
            "198.51.100.11",
            Some(&["prod"]),
        )],
        vec![svc("evil", "x", &["198.51.100.3"], "", 80)],
    );
    assert_eq!(kinds(&w, &w), [Kind::Fence]);
    let mut named = svc("prod", "x", &["198.51.100.3"], "", 80);
    named.pool = Some("other".into());
    let w = world(
        vec![pool(
            "prod-only",
            "198.51.100.0",
            "198.51.100.11",
            Some(&["prod"]),
        )],
        vec![named],
    );
    assert_eq!(kinds(&w, &w), [Kind::Fence]);
}

#[test]
fn checker_flags_a_move_nothing_required_but_not_one_the_user_asked_for() {
    let pools = || {
        vec![
            pool("a", "192.0.2.200", "192.0.2.210", None),
            pool("spare", "192.0.2.212", "192.0.2.219", None),
        ]
    };
    let before = world(pools(), vec![svc("dev", "x", &["192.0.2.200"], "", 80)]);
    let renumbered = world(pools(), vec![svc("dev", "x", &["192.0.2.212"], "", 80)]);
    assert_eq!(kinds(&before, &renumbered), [Kind::Moved]);
    let mut asked = svc("dev", "x", &["192.0.2.212"], "", 80);
    asked.requested = Ok(vec!["192.0.2.212".parse().expect("ip")]);
    assert!(kinds(&before, &world(pools(), vec![asked])).is_empty());
    let pool_gone = world(
        vec![pool("spare", "192.0.2.212", "192.0.2.219", None)],
        vec![svc("dev", "x", &["192.0.2.212"], "", 80)],
    );
    assert!(kinds(&before, &pool_gone).is_empty());
}
