use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_config::NodeName;
use proptest::prelude::*;

use super::*;
use crate::election::{NodeInfo, ServiceInfo, World};
use crate::plan::layer2;
use crate::test_support::lan_config;

const NODES: [&str; 4] = ["a", "b", "c", "d"];

/// IPs of `lan`, one of `other` (no advertisement) and one in no pool.
const IPS: [&str; 5] = [
    "192.0.2.201",
    "192.0.2.202",
    "192.0.2.203",
    "192.0.2.241",
    "198.51.100.7",
];

fn name(n: &str) -> NodeName {
    NodeName::from(n.to_owned())
}

fn nodes() -> BTreeMap<NodeName, NodeInfo> {
    NODES
        .iter()
        .map(|n| (name(n), NodeInfo::default()))
        .collect()
}

fn ip(i: usize) -> IpAddr {
    IPS[i].parse().expect("ip")
}

fn service(key: &str, ips: &[usize], endpoints: &[&str], local: bool) -> LbService {
    LbService {
        info: ServiceInfo {
            key: key.to_owned(),
            local,
            endpoint_nodes: endpoints.iter().map(|n| name(n)).collect(),
            has_usable_endpoint: !endpoints.is_empty(),
            ..Default::default()
        },
        ips: ips.iter().map(|i| ip(*i)).collect(),
        pool: None,
    }
}

/// The decisions, with the views they are built from (the speaker's caches).
#[derive(Default)]
struct Kept {
    views: BTreeMap<String, LbService>,
    decisions: Decisions,
}

impl Kept {
    fn set(&mut self, key: &str, view: Option<LbService>) -> bool {
        let changed = self.decisions.set_service(key, view.as_ref());
        match view {
            Some(view) => self.views.insert(key.to_owned(), view),
            None => self.views.remove(key),
        };
        changed
    }

    fn decide(
        &mut self,
        world: World<'_>,
        adjust: impl FnMut(IpAddr, &mut IpPlan, Option<&IpPlan>),
    ) -> Vec<Redecided> {
        let views = &self.views;
        self.decisions
            .decide(world, |key| views.get(key).cloned(), adjust)
    }

    fn plans(&self) -> &BTreeMap<IpAddr, IpPlan> {
        self.decisions.plans()
    }

    /// [`layer2`] over every Service, in the order of their keys.
    fn decided_from_scratch(&self, world: World<'_>) -> BTreeMap<IpAddr, IpPlan> {
        let services: Vec<LbService> = self.views.values().cloned().collect();
        layer2(world, &services)
    }
}

fn decided_ips(decided: &[Redecided]) -> BTreeSet<IpAddr> {
    decided.iter().map(|(ip, _)| *ip).collect()
}

#[test]
fn a_changed_service_decides_only_its_own_ips_again() {
    let config = lan_config();
    let nodes = nodes();
    let world = World::new(&config, &nodes, None);
    let mut decisions = Kept::default();
    decisions.set("web/a", Some(service("web/a", &[0], &["a"], false)));
    decisions.set("web/b", Some(service("web/b", &[1], &["b"], false)));
    decisions.set("web/c", Some(service("web/c", &[2], &["c"], false)));
    assert_eq!(decided_ips(&decisions.decide(world, |_, _, _| {})).len(), 3);

    // Unchanged: nothing to decide.
    assert!(!decisions.set("web/b", Some(service("web/b", &[1], &["b"], false))));
    assert!(decisions.decide(world, |_, _, _| {}).is_empty());

    // Web/b moves to another IP: its old and new IP are decided, nothing else.
    assert!(decisions.set("web/b", Some(service("web/b", &[3], &["b"], false))));
    let decided = decisions.decide(world, |_, _, _| {});
    assert_eq!(decided_ips(&decided), BTreeSet::from([ip(1), ip(3)]));
    let (_, before) = decided.iter().find(|(i, _)| *i == ip(1)).expect("old ip");
    assert!(before.is_some(), "the old IP's plan is handed back");
    assert!(
        !decisions.plans().contains_key(&ip(1)),
        "nobody holds it now"
    );
    assert_eq!(decisions.plans(), &decisions.decided_from_scratch(world));
}

#[test]
fn a_dead_node_re_decides_only_the_ips_it_announced() {
    let config = lan_config();
    let nodes = nodes();
    let all: BTreeSet<NodeName> = NODES.iter().map(|n| name(n)).collect();
    let mut decisions = Kept::default();
    for i in 0..3 {
        let key = format!("web/s{i}");
        decisions.set(&key, Some(service(&key, &[i], &["a"], false)));
    }
    decisions.decide(World::new(&config, &nodes, Some(&all)), |_, _, _| {});
    let winner = decisions.plans()[&ip(0)]
        .decision
        .winner()
        .expect("announced")
        .clone();
    let held: BTreeSet<IpAddr> = decisions
        .plans()
        .iter()
        .filter(|(_, p)| p.decision.winner() == Some(&winner))
        .map(|(ip, _)| *ip)
        .collect();

    let mut live = all.clone();
    live.remove(&winner);
    decisions.decisions.nodes_gone([&winner]);
    let now = World::new(&config, &nodes, Some(&live));
    let decided = decisions.decide(now, |_, _, _| {});
    assert_eq!(decided_ips(&decided), held);
    let scratch = decisions.decided_from_scratch(now);
    for (ip, plan) in decisions.plans() {
        assert_eq!(
            plan.decision.winner(),
            scratch[ip].decision.winner(),
            "{ip}"
        );
        assert_ne!(plan.decision.winner(), Some(&winner));
    }
}

#[test]
fn adjust_sees_the_plan_before_and_its_change_is_what_is_kept() {
    let config = lan_config();
    let nodes = nodes();
    let world = World::new(&config, &nodes, None);
    let mut decisions = Kept::default();
    decisions.set("web/a", Some(service("web/a", &[0], &["a"], false)));
    decisions.decide(world, |_, _, before| assert!(before.is_none()));
    decisions.decisions.mark(ip(0));
    let mut seen = 0;
    decisions.decide(world, |_, plan, before| {
        seen += 1;
        assert_eq!(Some(&*plan), before);
        plan.services.push("kept/by-adjust".to_owned());
    });
    assert_eq!(seen, 1);
    assert!(
        decisions.plans()[&ip(0)]
            .services
            .contains(&"kept/by-adjust".to_owned())
    );
}

/// One step of the property test.
#[derive(Clone, Debug)]
enum Step {
    /// Service `n` with these IPs, endpoint nodes and policy (`None`: gone).
    Service(usize, Option<(Vec<usize>, Vec<usize>, bool)>),
    /// The live speakers become this subset of the nodes.
    Live(Vec<bool>),
    /// Something every IP depends on changed.
    World,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (
            0..6usize,
            proptest::option::weighted(
                0.8,
                (
                    proptest::collection::vec(0..IPS.len(), 1..3),
                    proptest::collection::vec(0..NODES.len(), 0..3),
                    any::<bool>(),
                ),
            ),
        )
            .prop_map(|(n, view)| Step::Service(n, view)),
        2 => proptest::collection::vec(any::<bool>(), NODES.len()).prop_map(Step::Live),
        1 => Just(Step::World),
    ]
}

proptest! {
    /// After any sequence of changes, each marked as the speaker marks it, every IP has the
    /// winner a pass over every Service from scratch gives, and the Services that hold it.
    #[test]
    fn decided_incrementally_is_decided_decided_from_scratch(steps in proptest::collection::vec(step(), 1..40)) {
        let config = lan_config();
        let nodes = nodes();
        let mut live: BTreeSet<NodeName> = NODES.iter().map(|n| name(n)).collect();
        let mut decisions = Kept::default();
        for step in steps {
            match step {
                Step::Service(n, view) => {
                    let key = format!("ns/s{n}");
                    let view = view.map(|(ips, endpoints, local)| {
                        let endpoints: Vec<&str> = endpoints.iter().map(|i| NODES[*i]).collect();
                        let mut ips = ips;
                        ips.dedup();
                        service(&key, &ips, &endpoints, local)
                    });
                    decisions.set(&key, view);
                }
                Step::Live(up) => {
                    let next: BTreeSet<NodeName> = NODES
                        .iter()
                        .zip(up)
                        .filter(|(_, up)| *up)
                        .map(|(n, _)| name(n))
                        .collect();
                    if next.is_subset(&live) {
                        decisions.decisions.nodes_gone(live.difference(&next));
                    } else {
                        decisions.decisions.world_changed();
                    }
                    live = next;
                }
                Step::World => decisions.decisions.world_changed(),
            }
            let world = World::new(&config, &nodes, Some(&live));
            decisions.decide(world, |_, _, _| {});
            let scratch = decisions.decided_from_scratch(world);
            let ips: Vec<&IpAddr> = decisions.plans().keys().collect();
            prop_assert_eq!(ips, scratch.keys().collect::<Vec<_>>());
            for (ip, plan) in decisions.plans() {
                prop_assert_eq!(&plan.services, &scratch[ip].services);
                prop_assert_eq!(plan.decision.winner(), scratch[ip].decision.winner(), "{}", ip);
            }
        }
    }
}
