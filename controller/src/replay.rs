//! Replaying the controller's decisions over a set of Services, without a cluster: the order it
//! rebuilds in (Services holding IPs first, most IPs first, then by key) and, per Service, the
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
    for svc in rebuild_order(services.iter().collect::<Vec<_>>()) {
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
