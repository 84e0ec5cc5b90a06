//! Property tests of the allocator: for random sequences of pool changes, requests and
//! releases, no IP is held by two incompatible Services, every IP lies in a pool that allows its
//! Service, the usage counters equal the allocations, and rebuilding from the current
//! assignments reproduces them exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_config::{Family, IpRange, Labels, Pool, PoolName, ServiceAllocation};
use ferrolb_controller::allocator::{
    Allocator, FamilyPolicy, PoolUsage, Port, Protocol, ServiceKey, ServiceRequest,
};
use proptest::prelude::*;

/// Small pools over a few addresses, so that sharing, exhaustion and overlaps between
/// successive pool sets happen often.
fn pool_strategy(index: usize) -> impl Strategy<Value = Pool> {
    let v4 = (0u8..4, 0u8..3)
        .prop_map(|(start, len)| format!("192.0.2.{}-192.0.2.{}", start * 4, start * 4 + len));
    let v6 = proptest::option::of(
        (0u8..3).prop_map(|s| format!("2001:db8::{:x}-2001:db8::{:x}", s * 4, s * 4 + 2)),
    );
    (
        v4,
        v6,
        any::<bool>(),
        any::<bool>(),
        proptest::option::of((0u32..3, 0u8..3)),
    )
        .prop_map(
            move |(v4, v6, auto_assign, avoid_buggy_ips, allocation)| Pool {
                name: PoolName::from(format!("pool{index}")),
                ranges: std::iter::once(v4)
                    .chain(v6)
                    .map(|e| IpRange::parse_entry(&e).expect("valid by construction"))
                    .collect(),
                auto_assign,
                avoid_buggy_ips,
                allocation: allocation.map(|(priority, fence)| ServiceAllocation {
                    priority,
                    // Any namespace, only `default`, or fenced to both namespaces.
                    namespaces: match fence {
                        0 => None,
                        1 => Some(BTreeSet::from(["default".to_string()])),
                        _ => Some(BTreeSet::from(["default".to_string(), "prod".to_string()])),
                    },
                    service_selectors: Vec::new(),
                }),
                labels: Labels::new(),
            },
        )
}

/// Up to three pools whose ranges do not overlap (later overlapping ones are dropped, as the
/// config crate would refuse them).
fn pools_strategy() -> impl Strategy<Value = Vec<Pool>> {
    (
        pool_strategy(0),
        pool_strategy(1),
        pool_strategy(2),
        1usize..=3,
    )
        .prop_map(|(a, b, c, n)| {
            let mut kept: Vec<Pool> = Vec::new();
            for p in [a, b, c].into_iter().take(n) {
                let clashes = kept.iter().any(|k| {
                    k.ranges
                        .iter()
                        .any(|r| p.ranges.iter().any(|q| q.overlaps(r)))
                });
                if !clashes {
                    kept.push(p);
                }
            }
            kept
        })
}

fn request_strategy() -> impl Strategy<Value = ServiceRequest> {
    (
        0usize..6,
        prop_oneof![Just("default"), Just("prod")],
        prop_oneof![Just(""), Just("k1"), Just("k2")],
        prop_oneof![Just(""), Just("app=a")],
        proptest::collection::btree_set(
            (
                prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)],
                80u16..83,
            ),
            0..3,
        ),
        prop_oneof![
            Just((vec![Family::V4], FamilyPolicy::SingleStack)),
            Just((vec![Family::V6], FamilyPolicy::SingleStack)),
            Just((vec![Family::V4, Family::V6], FamilyPolicy::PreferDualStack)),
            Just((vec![Family::V6, Family::V4], FamilyPolicy::RequireDualStack)),
        ],
        proptest::option::of(0usize..3),
    )
        .prop_map(
            |(id, ns, sharing_key, backend_key, ports, (families, policy), pool)| ServiceRequest {
                key: ServiceKey::new(ns, format!("svc{id}")),
                labels: Labels::new(),
                families,
                policy,
                requested_ips: Vec::new(),
                pool: pool.map(|p| PoolName::from(format!("pool{p}"))),
                sharing_key: sharing_key.to_string(),
                backend_key: backend_key.to_string(),
                ports: ports
                    .into_iter()
                    .map(|(protocol, port)| Port { protocol, port })
                    .collect(),
            },
        )
}

#[derive(Clone, Debug)]
enum Op {
    SetPools(Vec<Pool>),
    Converge(ServiceRequest),
    Request(ServiceRequest, u8),
    Release(usize, bool),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => pools_strategy().prop_map(Op::SetPools),
        6 => request_strategy().prop_map(Op::Converge),
        2 => (request_strategy(), 0u8..16).prop_map(|(r, last)| Op::Request(r, last)),
        2 => (0usize..6, any::<bool>()).prop_map(|(i, prod)| Op::Release(i, prod)),
    ]
}

fn check_invariants(a: &Allocator) -> Result<(), TestCaseError> {
    let pools: BTreeMap<&PoolName, &Pool> = a.pools().map(|p| (&p.name, p)).collect();
    let mut per_pool: BTreeMap<PoolName, [BTreeSet<IpAddr>; 2]> = BTreeMap::new();
    for (key, assignment) in a.assignments() {
        let request = a.request_of(key).expect("every holder has a request");
        let pool = pools
            .get(&assignment.pool)
            .ok_or_else(|| TestCaseError::fail(format!("{key} holds IPs of a missing pool")))?;
        let families: BTreeSet<Family> = assignment.ips.iter().map(Family::of).collect();
        prop_assert_eq!(
            families.len(),
            assignment.ips.len(),
            "{} holds two IPs of one family",
            key
        );
        for ip in &assignment.ips {
            prop_assert!(
                pool.contains(*ip),
                "{} holds {} outside pool {}",
                key,
                ip,
                pool.name
            );
            prop_assert!(
                !(pool.avoid_buggy_ips
                    && ip.is_ipv4()
                    && matches!(ip.to_string().rsplit('.').next(), Some("0" | "255"))),
                "{} holds avoided {}",
                key,
                ip
            );
            prop_assert!(
                pool.allows(&key.namespace, &request.labels),
                "{} holds {} from pool {} that does not allow it",
                key,
                ip,
                pool.name
            );
            let slot = usize::from(ip.is_ipv6());
            per_pool.entry(assignment.pool.clone()).or_default()[slot].insert(*ip);
            // Everyone on this IP may share it with everyone else.
            let users: Vec<&ServiceKey> = a.users_of(*ip).collect();
            for other in users.iter().filter(|u| **u != key) {
                let o = a.request_of(other).expect("holder");
                prop_assert!(
                    !request.sharing_key.is_empty() && request.sharing_key == o.sharing_key,
                    "{} and {} share {} without a common key",
                    key,
                    other,
                    ip
                );
                let fenced_to_both = pool
                    .allocation
                    .as_ref()
                    .and_then(|a| a.namespaces.as_ref())
                    .is_some_and(|ns| ns.contains(&key.namespace) && ns.contains(&other.namespace));
                prop_assert!(
                    key.namespace == other.namespace || fenced_to_both,
                    "{} and {} share {} across namespaces in pool {}",
                    key,
                    other,
                    ip,
                    pool.name
                );
                prop_assert_eq!(&request.backend_key, &o.backend_key);
                prop_assert!(
                    request.ports.is_disjoint(&o.ports),
                    "{} and {} share {} and a port",
                    key,
                    other,
                    ip
                );
            }
        }
    }
    for pool in pools.values() {
        let usage = a.usage(&pool.name).expect("known pool");
        let [v4, v6] = per_pool.remove(&pool.name).unwrap_or_default();
        prop_assert_eq!(
            usage.assigned_v4,
            v4.len() as u128,
            "pool {} v4 counter",
            pool.name
        );
        prop_assert_eq!(
            usage.assigned_v6,
            v6.len() as u128,
            "pool {} v6 counter",
            pool.name
        );
        prop_assert_eq!(
            usage.available_v4 + usage.assigned_v4 <= pool.size(Family::V4),
            true
        );
    }
    // Rebuilding from the current assignments (as after a restart) reproduces them.
    let mut rebuilt = Allocator::new(a.pools().cloned());
    let mut holders: Vec<(&ServiceKey, _)> = a.assignments().collect();
    holders.sort_by_key(|(k, _)| (*k).clone());
    for (key, assignment) in &holders {
        let request = a.request_of(key).expect("holder");
        prop_assert_eq!(
            rebuilt.assign(request, &assignment.ips),
            Ok(()),
            "rebuilding {}",
            key
        );
    }
    let before: Vec<_> = a
        .assignments()
        .map(|(k, x)| (k.clone(), x.clone()))
        .collect();
    let after: Vec<_> = rebuilt
        .assignments()
        .map(|(k, x)| (k.clone(), x.clone()))
        .collect();
    prop_assert_eq!(before, after);
    // The counts match; where the next search starts is not rebuilt from the assignments (a
    // new term resumes it from the pool's status instead).
    let counts = |u: Option<PoolUsage>| {
        u.map(|u| (u.assigned_v4, u.assigned_v6, u.available_v4, u.available_v6))
    };
    for pool in pools.keys() {
        prop_assert_eq!(counts(a.usage(pool)), counts(rebuilt.usage(pool)));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_never_break_the_allocation_invariants(
        initial in pools_strategy(),
        ops in proptest::collection::vec(op_strategy(), 1..40),
    ) {
        let mut a = Allocator::new(initial);
        for op in ops {
            match op {
                Op::SetPools(pools) => { a.set_pools(pools); }
                Op::Converge(r) => {
                    let current = a.assignment(&r.key).map(|x| x.ips.clone()).unwrap_or_default();
                    a.converge(&r, &current);
                }
                Op::Request(mut r, last) => {
                    r.requested_ips = vec![format!("192.0.2.{last}").parse().expect("valid")];
                    r.families = vec![Family::V4];
                    r.policy = FamilyPolicy::SingleStack;
                    let current = a.assignment(&r.key).map(|x| x.ips.clone()).unwrap_or_default();
                    a.converge(&r, &current);
                }
                Op::Release(i, prod) => {
                    a.release(&ServiceKey::new(if prod { "prod" } else { "default" }, format!("svc{i}")));
                }
            }
            check_invariants(&a)?;
        }
    }
}
