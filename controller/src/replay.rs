//! Replaying the controller's decisions over a set of Services, without a cluster: the order it
//! rebuilds in (every Service that may keep the IPs its status shows registers them first; then
//! Services holding IPs, most IPs first, then by key) and, per Service, the
//! same translation ([`crate::service::request_of`]) and allocator call
//! ([`Allocator::converge`]) the decision loop makes. `kubectl ferrolb explain` and `simulate`
//! run this to say why a Service has its IPs or has none.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_config::Pool;
use k8s_openapi::api::core::v1::Service;

use crate::allocator::{AllocError, Allocator, Assignment, Note, ServiceKey};
use crate::service::{self, BadRequest};

/// What the controller decides for one Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not a LoadBalancer of the served class: the controller leaves it alone.
    NotOurs,
    /// Its annotations or spec cannot be acted on.
    Invalid(BadRequest),
    /// It holds these IPs.
    Assigned(Assignment),
    /// It gets none, for this reason.
    Failed(AllocError),
}

/// The order the controller rebuilds in: Services that hold IPs first (most IPs first), then by
/// key, so that existing assignments are kept before pending Services may take addresses.
pub fn rebuild_order<S: std::borrow::Borrow<Service>>(mut services: Vec<S>) -> Vec<S> {
    services.sort_by_cached_key(|s| {
        let s = s.borrow();
        (
            std::cmp::Reverse(service::ingress_ips(s).len()),
            service::key_of(s),
        )
    });
    services
}

/// Replays every Service against `pools`, in [`rebuild_order`], as a freshly started
/// controller serving `lb_class` would. Returns the allocator (holding the result) and each
/// Service's outcome.
pub fn replay(
    pools: Vec<Pool>,
    services: &[Service],
    lb_class: Option<&str>,
) -> (Allocator, BTreeMap<ServiceKey, Outcome>) {
    let mut allocator = Allocator::new(pools);
    let mut outcomes = BTreeMap::new();
    let ordered = rebuild_order(services.iter().collect::<Vec<_>>());
    // Every holder that may keep its IPs first, as the controller does.
    for svc in &ordered {
        if service::is_ours(svc, lb_class)
            && let Ok((request, _)) = service::request_of(svc)
        {
            allocator.keep(&request, &service::ingress_ips(svc));
        }
    }
    for svc in ordered {
        let key = service::key_of(svc);
        if !service::is_ours(svc, lb_class) {
            outcomes.insert(key, Outcome::NotOurs);
            continue;
        }
        let request = match service::request_of(svc) {
            Ok((request, _deprecated)) => request,
            Err(bad) => {
                outcomes.insert(key, Outcome::Invalid(bad));
                continue;
            }
        };
        let current: Vec<IpAddr> = service::ingress_ips(svc);
        let converged = allocator.converge(&request, &current);
        let outcome = match converged.assignment {
            Some(assignment) => Outcome::Assigned(assignment),
            None => converged
                .notes
                .iter()
                .rev()
                .find_map(|n| match n {
                    Note::AllocationFailed(e) => Some(Outcome::Failed(e.clone())),
                    _ => None,
                })
                .unwrap_or(Outcome::Failed(AllocError::Exhausted { tried: Vec::new() })),
        };
        outcomes.insert(key, outcome);
    }
    (allocator, outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_config::{IpRange, Labels, PoolName};
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };

    fn holding(name: &str, ip: &str, requested: Option<&str>) -> Service {
        let mut svc = Service::default();
        svc.metadata.namespace = Some("default".into());
        svc.metadata.name = Some(name.into());
        if let Some(r) = requested {
            svc.metadata.annotations =
                Some([("ferrolb.io/loadBalancerIPs".to_string(), r.to_string())].into());
        }
        svc.spec = Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            cluster_ips: Some(vec!["198.19.0.10".into()]),
            ..ServiceSpec::default()
        });
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some(ip.into()),
                    ..LoadBalancerIngress::default()
                }]),
            }),
            ..ServiceStatus::default()
        });
        svc
    }

    #[test]
    fn a_rebuild_keeps_every_holder_before_anyone_moves_or_takes_an_ip() {
        let pool = Pool {
            name: PoolName::from("lan"),
            ranges: vec![IpRange::parse_entry("192.0.2.201-192.0.2.210").expect("range")],
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
            labels: Labels::new(),
        };
        let services = [
            // Its IP left the pool: it must move, and not onto b-holder's address.
            holding("a-shrunk", "192.0.2.200", None),
            // Asks for c-victim's address.
            holding("a-tenant", "192.0.2.203", Some("192.0.2.202")),
            holding("b-holder", "192.0.2.201", None),
            holding("c-victim", "192.0.2.202", None),
        ];
        let (_, outcomes) = replay(vec![pool], &services, None);
        let ip_of = |name: &str| match &outcomes[&ServiceKey::new("default", name)] {
            Outcome::Assigned(a) => a.ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(ip_of("b-holder"), ["192.0.2.201"]);
        assert_eq!(ip_of("c-victim"), ["192.0.2.202"]);
        let moved = ip_of("a-shrunk");
        assert!(
            !["192.0.2.201", "192.0.2.202"].contains(&moved[0].as_str()),
            "{moved:?}"
        );
        assert!(matches!(
            outcomes[&ServiceKey::new("default", "a-tenant")],
            Outcome::Failed(AllocError::Conflict { .. })
        ));
    }
}
