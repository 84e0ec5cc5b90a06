//! The layer-2 plan: from the Services that hold IPs and the cluster as this speaker sees it, the
//! election of every IP and the IPs this node must answer for. Pure, so the speaker, the tests
//! and `kubectl ferrolb explain`/`simulate` compute the same thing.
//!
//! IPs are decided one by one: Services that share an IP are elected together, so they always
//! land on one node. An IP's pool is the one the controller recorded on the Service
//! (`ip-allocated-from-pool`) when that pool still holds the IP, otherwise the pool whose ranges
//! contain it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_config::{Config, NodeName, PoolName};

use crate::election::{Election, ServiceInfo, World, elect};

mod decisions;
pub use decisions::{Decisions, Redecided};

/// A LoadBalancer Service with IPs, as the layer-2 plan needs it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct LbService {
    /// What the election reads (key, labels, traffic policy, endpoints).
    pub info: ServiceInfo,
    /// The IPs in its status.
    pub ips: Vec<IpAddr>,
    /// The pool the controller recorded, if any.
    pub pool: Option<String>,
}

/// What was decided for one IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The IP's pool is known and the election ran.
    Elected {
        /// The pool.
        pool: PoolName,
        /// The election (winner, order, exclusions).
        election: Election,
    },
    /// No pool of the current configuration holds the IP: nobody announces it.
    NoPool,
}

impl Decision {
    /// The announcing node, if any.
    pub fn winner(&self) -> Option<&NodeName> {
        match self {
            Self::Elected { election, .. } => election.winner(),
            Self::NoPool => None,
        }
    }
}

/// The outcome for one IP and the Services that use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpPlan {
    /// `namespace/name` of every Service holding the IP.
    pub services: Vec<String>,
    /// The decision.
    pub decision: Decision,
}

/// Decides every IP held by `services`.
pub fn layer2(world: World<'_>, services: &[LbService]) -> BTreeMap<IpAddr, IpPlan> {
    let mut by_ip: BTreeMap<IpAddr, Vec<&LbService>> = BTreeMap::new();
    for service in services {
        for ip in &service.ips {
            by_ip.entry(*ip).or_default().push(service);
        }
    }
    by_ip
        .into_iter()
        .map(|(ip, users)| (ip, decide_ip(world, ip, &users)))
        .collect()
}

/// Decides one IP held by `users` (one Service, or several that share it).
pub fn decide_ip(world: World<'_>, ip: IpAddr, users: &[&LbService]) -> IpPlan {
    let decision = match pool_of(world.config, ip, users) {
        Some(pool) => {
            let infos: Vec<ServiceInfo> = users.iter().map(|s| s.info.clone()).collect();
            Decision::Elected {
                election: elect(world, ip, &pool, &infos),
                pool,
            }
        }
        None => Decision::NoPool,
    };
    let services = users.iter().map(|s| s.info.key.clone()).collect();
    IpPlan { services, decision }
}

/// The pool of `ip`: the recorded one if it still holds the IP, else the one containing it.
pub fn pool_of(config: &Config, ip: IpAddr, users: &[&LbService]) -> Option<PoolName> {
    let recorded = users.iter().filter_map(|s| s.pool.as_deref()).find(|name| {
        config
            .pools
            .get(&PoolName::from(name.to_string()))
            .is_some_and(|p| p.contains(ip))
    });
    if let Some(name) = recorded {
        return Some(PoolName::from(name.to_string()));
    }
    config
        .pools
        .iter()
        .find(|(_, pool)| pool.contains(ip))
        .map(|(name, _)| name.clone())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::test_support::lan_config;

    /// The IPs `node` must answer for, each with the interfaces to use (empty: every suitable one).
    fn announced_by(
        node: &NodeName,
        plans: &BTreeMap<IpAddr, IpPlan>,
    ) -> BTreeMap<IpAddr, BTreeSet<String>> {
        plans
            .iter()
            .filter_map(|(ip, plan)| match &plan.decision {
                Decision::Elected { election, .. } if election.winner() == Some(node) => Some((
                    *ip,
                    election.interfaces.get(node).cloned().unwrap_or_default(),
                )),
                _ => None,
            })
            .collect()
    }

    fn nodes(names: &[&str]) -> BTreeMap<NodeName, crate::election::NodeInfo> {
        names
            .iter()
            .map(|n| (NodeName::from(n.to_string()), Default::default()))
            .collect()
    }

    fn service(key: &str, ips: &[&str]) -> LbService {
        LbService {
            info: ServiceInfo {
                key: key.into(),
                has_usable_endpoint: true,
                ..Default::default()
            },
            ips: ips.iter().map(|ip| ip.parse().expect("ip")).collect(),
            pool: None,
        }
    }

    #[test]
    fn services_sharing_an_ip_are_decided_once_and_land_on_one_node() {
        let config = lan_config();
        let nodes = nodes(&["a", "b", "c"]);
        let world = World::new(&config, &nodes, None);
        let services = [
            service("web/http", &["192.0.2.201"]),
            service("web/https", &["192.0.2.201"]),
        ];
        let plans = layer2(world, &services);
        assert_eq!(plans.len(), 1);
        let plan = &plans[&"192.0.2.201".parse::<IpAddr>().expect("ip")];
        assert_eq!(plan.services, vec!["web/http", "web/https"]);
        let winner = plan.decision.winner().expect("someone announces").clone();
        let mine = announced_by(&winner, &plans);
        assert_eq!(mine.len(), 1);
        for other in nodes.keys().filter(|n| **n != winner) {
            assert!(announced_by(other, &plans).is_empty());
        }
    }

    #[test]
    fn an_ip_in_no_pool_is_announced_by_nobody() {
        let config = lan_config();
        let nodes = nodes(&["a"]);
        let world = World::new(&config, &nodes, None);
        let plans = layer2(world, &[service("web/x", &["198.51.100.7"])]);
        let plan = plans.values().next().expect("one ip");
        assert_eq!(plan.decision, Decision::NoPool);
        assert!(announced_by(&NodeName::from("a".to_string()), &plans).is_empty());
    }

    #[test]
    fn a_pool_without_l2_advertisement_is_not_announced() {
        let config = lan_config();
        let nodes = nodes(&["a"]);
        let world = World::new(&config, &nodes, None);
        let plans = layer2(world, &[service("web/x", &["192.0.2.241"])]);
        let plan = plans.values().next().expect("one ip");
        match &plan.decision {
            Decision::Elected { pool, election } => {
                assert_eq!(pool.as_str(), "other");
                assert!(election.winner().is_none());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_recorded_pool_is_used_only_while_it_holds_the_ip() {
        let config = lan_config();
        let users = service("web/x", &["192.0.2.201"]);
        let mut recorded = users.clone();
        recorded.pool = Some("other".into());
        // "other" does not hold .201, so the containing pool is used instead.
        assert_eq!(
            pool_of(&config, users.ips[0], &[&recorded]).map(|p| p.as_str().to_owned()),
            Some("lan".to_owned())
        );
        recorded.pool = Some("lan".into());
        assert_eq!(
            pool_of(&config, users.ips[0], &[&recorded]).map(|p| p.as_str().to_owned()),
            Some("lan".to_owned())
        );
    }

    #[test]
    fn dual_stack_ips_are_each_elected_and_losing_a_node_moves_only_its_ips() {
        let config = lan_config();
        let all = nodes(&["a", "b", "c", "d"]);
        let services: Vec<LbService> = (0..20)
            .map(|i| {
                service(
                    &format!("ns/s{i}"),
                    &[
                        &format!("192.0.2.{}", 200 + i),
                        &format!("2001:db8:0:1::2{i:02x}"),
                    ],
                )
            })
            .collect();
        let before = layer2(World::new(&config, &all, None), &services);
        assert_eq!(before.len(), 40);
        let live: BTreeSet<NodeName> = ["a", "b", "c"]
            .iter()
            .map(|n| NodeName::from(n.to_string()))
            .collect();
        let after = layer2(World::new(&config, &all, Some(&live)), &services);
        for (ip, plan) in &before {
            let old = plan.decision.winner().expect("announced");
            let new = after[ip].decision.winner().expect("still announced");
            if old.as_str() != "d" {
                assert_eq!(old, new, "{ip} moved although its node stayed");
            } else {
                assert_ne!(new.as_str(), "d");
            }
        }
    }
}
