use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_config::{Config, NodeName};
use tokio::time::Instant;

use super::*;
use crate::election::{NodeInfo, ServiceInfo, World, rendezvous_hash};
use crate::plan::{LbService, layer2};

const SETTLE: Duration = Duration::from_millis(1500);

/// [`EndpointAges::observe_service`] for every Service there is.
fn observe(ages: &mut EndpointAges, services: &[LbService], now: Instant) {
    let present: HashSet<&str> = services.iter().map(|s| s.info.key.as_str()).collect();
    ages.seen.retain(|key, _| present.contains(key.as_str()));
    for service in services {
        ages.observe_service(&service.info.key, Some(service), now);
    }
    ages.prime();
}

/// [`hold`] for every IP of `plans` that `previous` had a winner for.
fn hold_layer2(
    plans: &mut BTreeMap<IpAddr, IpPlan>,
    previous: &BTreeMap<IpAddr, IpPlan>,
    ages: &EndpointAges,
    now: Instant,
) -> BTreeMap<IpAddr, Hold> {
    plans
        .iter_mut()
        .filter_map(|(ip, plan)| {
            let before = previous.get(ip).and_then(|p| p.decision.winner())?;
            Some((*ip, hold(plan, before, ages, now)?))
        })
        .collect()
}

fn ip() -> IpAddr {
    "192.0.2.201".parse().expect("ip")
}

fn node(name: &str) -> NodeName {
    NodeName::from(name.to_owned())
}

/// The three nodes in the hash's order for [`ip`]: first, second, third.
fn by_preference() -> [NodeName; 3] {
    let mut nodes = [node("a"), node("b"), node("c")];
    nodes.sort_by_key(|n| rendezvous_hash(n, ip()));
    nodes
}

fn service(local: bool, endpoints: &[&NodeName]) -> LbService {
    LbService {
        info: ServiceInfo {
            key: "web/echo".into(),
            local,
            has_usable_endpoint: !endpoints.is_empty(),
            endpoint_nodes: endpoints.iter().map(|n| (*n).clone()).collect(),
            ..ServiceInfo::default()
        },
        ips: vec![ip()],
        pool: None,
    }
}

struct Cluster {
    config: Config,
    nodes: BTreeMap<NodeName, NodeInfo>,
}

impl Cluster {
    fn new() -> Self {
        Self {
            config: crate::test_support::lan_config(),
            nodes: by_preference()
                .into_iter()
                .map(|n| (n, NodeInfo::default()))
                .collect(),
        }
    }

    fn plans(&self, services: &[LbService], live: &BTreeSet<NodeName>) -> BTreeMap<IpAddr, IpPlan> {
        layer2(World::new(&self.config, &self.nodes, Some(live)), services)
    }
}

fn winner(plans: &BTreeMap<IpAddr, IpPlan>) -> Option<NodeName> {
    plans[&ip()].decision.winner().cloned()
}

fn all() -> BTreeSet<NodeName> {
    by_preference().into_iter().collect()
}

#[test]
fn a_local_ip_stays_with_its_node_until_the_preferred_nodes_new_endpoint_settles() {
    let [preferred, serving, _] = by_preference();
    let cluster = Cluster::new();
    let start = Instant::now();
    let mut ages = EndpointAges::new(SETTLE);
    let before = [service(true, &[&serving])];
    observe(&mut ages, &before, start);
    let previous = cluster.plans(&before, &all());
    assert_eq!(winner(&previous), Some(serving.clone()));

    let t0 = start + Duration::from_secs(5);
    let after = [service(true, &[&serving, &preferred])];
    observe(&mut ages, &after, t0);
    let mut plans = cluster.plans(&after, &all());
    assert_eq!(
        winner(&plans),
        Some(preferred.clone()),
        "the election moves it"
    );
    let held = hold_layer2(&mut plans, &previous, &ages, t0);
    assert_eq!(
        winner(&plans),
        Some(serving.clone()),
        "the serving node keeps it"
    );
    assert_eq!(
        held.get(&ip()),
        Some(&Hold {
            with: serving.clone(),
            instead_of: preferred.clone(),
            until: t0 + SETTLE,
        })
    );
    // Decided again inside the settle time (the previous plan is the held one): still held.
    let previous = plans;
    let mut plans = cluster.plans(&after, &all());
    assert_eq!(
        hold_layer2(&mut plans, &previous, &ages, t0 + SETTLE / 2).len(),
        1
    );
    assert_eq!(winner(&plans), Some(serving.clone()));
    // Settled: it moves.
    let previous = plans;
    let mut plans = cluster.plans(&after, &all());
    assert!(hold_layer2(&mut plans, &previous, &ages, t0 + SETTLE).is_empty());
    assert_eq!(winner(&plans), Some(preferred));
}

#[test]
fn a_failover_or_a_new_ip_moves_at_once_even_to_a_fresh_endpoint() {
    let [preferred, serving, third] = by_preference();
    let cluster = Cluster::new();
    let start = Instant::now();
    let mut ages = EndpointAges::new(SETTLE);
    let before = [service(true, &[&serving, &third])];
    observe(&mut ages, &before, start);
    let previous = cluster.plans(&before, &all());
    assert_eq!(winner(&previous), Some(serving.clone()));

    // The serving node dies as an endpoint turns ready on the preferred one.
    let t0 = start + Duration::from_secs(5);
    let after = [service(true, &[&serving, &third, &preferred])];
    observe(&mut ages, &after, t0);
    let live: BTreeSet<NodeName> = [preferred.clone(), third.clone()].into();
    let mut plans = cluster.plans(&after, &live);
    assert!(hold_layer2(&mut plans, &previous, &ages, t0).is_empty());
    assert_eq!(winner(&plans), Some(preferred.clone()));

    // The serving node loses its endpoint as the preferred one gains one.
    let after = [service(true, &[&third, &preferred])];
    let mut plans = cluster.plans(&after, &all());
    assert!(hold_layer2(&mut plans, &previous, &ages, t0).is_empty());
    assert_eq!(winner(&plans), Some(preferred.clone()));

    // An IP nobody announced before.
    let mut plans = cluster.plans(&after, &all());
    assert!(hold_layer2(&mut plans, &BTreeMap::new(), &ages, t0).is_empty());
    assert_eq!(winner(&plans), Some(preferred));
}

#[test]
fn endpoints_present_at_start_and_cluster_policy_services_are_not_held() {
    let [preferred, serving, _] = by_preference();
    let cluster = Cluster::new();
    let t0 = Instant::now();
    // A speaker starting sees both endpoints at once: their age is unknown, so settled.
    let mut ages = EndpointAges::new(SETTLE);
    let both = [service(true, &[&serving, &preferred])];
    observe(&mut ages, &both, t0);
    let previous = cluster.plans(&[service(true, &[&serving])], &all());
    let mut plans = cluster.plans(&both, &all());
    assert!(hold_layer2(&mut plans, &previous, &ages, t0).is_empty());
    assert_eq!(ages.settling_until("web/echo", &preferred, t0), None);

    // externalTrafficPolicy Cluster: every node forwards to every endpoint; nothing waits.
    let mut ages = EndpointAges::new(SETTLE);
    observe(&mut ages, &[service(false, &[&serving])], t0);
    observe(&mut ages, &[service(false, &[&serving, &preferred])], t0);
    assert_eq!(ages.settling_until("web/echo", &preferred, t0), None);
}

#[test]
fn bgp_holds_a_fresh_local_endpoint_back_only_while_another_node_serves() {
    let [fresh, serving, _] = by_preference();
    let t0 = Instant::now();
    let mut ages = EndpointAges::new(SETTLE);
    observe(&mut ages, &[service(true, &[&serving])], t0);
    let both = [service(true, &[&serving, &fresh])];
    observe(&mut ages, &both, t0);

    let (seen, next) = hold_bgp(&both, &fresh, &ages, t0);
    assert!(!seen[0].info.endpoint_nodes.contains(&fresh));
    assert_eq!(next, Some(t0 + SETTLE));
    // The settled node sees its own endpoint as it is.
    let (seen, next) = hold_bgp(&both, &serving, &ages, t0);
    assert_eq!(seen[0], both[0]);
    assert_eq!(next, None);
    // Once settled, advertised.
    let (seen, next) = hold_bgp(&both, &fresh, &ages, t0 + SETTLE);
    assert_eq!(seen[0], both[0]);
    assert_eq!(next, None);

    // The only endpoints are fresh: holding back would only delay the first route.
    let mut ages = EndpointAges::new(SETTLE);
    observe(&mut ages, &[service(true, &[])], t0);
    let only = [service(true, &[&fresh, &serving])];
    observe(&mut ages, &only, t0);
    let (seen, next) = hold_bgp(&only, &fresh, &ages, t0);
    assert_eq!(seen[0], only[0]);
    assert_eq!(next, None);
}
