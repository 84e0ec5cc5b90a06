//! Table tests of allocation semantics. Property tests: `controller/tests/allocator_properties.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_config::{Family, IpRange, Labels, Pool, PoolName, Selector, ServiceAllocation};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn pool(name: &str, entries: &[&str]) -> Pool {
    Pool {
        name: PoolName::from(name),
        ranges: entries
            .iter()
            .map(|e| IpRange::parse_entry(e).expect("test range"))
            .collect(),
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
        labels: Labels::new(),
    }
}

fn pinned(mut p: Pool, priority: u32, namespaces: Option<&[&str]>) -> Pool {
    p.allocation = Some(ServiceAllocation {
        priority,
        namespaces: namespaces.map(|ns| ns.iter().map(|n| n.to_string()).collect()),
        service_selectors: Vec::new(),
    });
    p
}

fn svc(name: &str) -> ServiceRequest {
    ServiceRequest::new(ServiceKey::new("default", name))
}

fn sharing(name: &str, key: &str, port: u16) -> ServiceRequest {
    let mut r = svc(name);
    r.sharing_key = key.into();
    r.ports = [Port {
        protocol: Protocol::Tcp,
        port,
    }]
    .into();
    r
}

fn dual(name: &str, policy: FamilyPolicy) -> ServiceRequest {
    let mut r = svc(name);
    r.families = vec![Family::V4, Family::V6];
    r.policy = policy;
    r
}

fn ips(a: &Assignment) -> Vec<String> {
    a.ips.iter().map(ToString::to_string).collect()
}

#[test]
fn services_get_addresses_in_order_and_a_released_one_is_not_reused_at_once() {
    let mut a = Allocator::new([pool("p", &["192.0.2.200-192.0.2.203"])]);
    let first = a.allocate(&svc("a")).expect("free");
    let second = a.allocate(&svc("b")).expect("free");
    assert_eq!(
        (ips(&first), ips(&second)),
        (
            vec!["192.0.2.200".to_string()],
            vec!["192.0.2.201".to_string()]
        )
    );
    a.release(&svc("a").key);
    assert_eq!(ips(&a.allocate(&svc("c")).expect("free")), ["192.0.2.202"]);
    assert_eq!(ips(&a.allocate(&svc("d")).expect("free")), ["192.0.2.203"]);
    assert_eq!(
        ips(&a.allocate(&svc("e")).expect("wraps around")),
        ["192.0.2.200"]
    );
    let err = a.allocate(&svc("f")).expect_err("full");
    assert_eq!(
        err.to_string(),
        "no available IPs in pools p: add addresses to one of them, or free some"
    );
}

#[test]
fn a_pool_edit_or_a_resumed_search_keeps_a_just_released_address_last() {
    // An edit of the pools re-registers the holders in key order ("a" last here): that must
    // not move the next search back to the address "b" just released.
    let mut a = Allocator::new([pool("p", &["192.0.2.200-192.0.2.210"])]);
    a.allocate(&svc("z")).expect("free");
    a.allocate(&svc("b")).expect("free");
    a.allocate(&svc("a")).expect("free");
    a.release(&svc("b").key);
    assert!(
        a.set_pools([pool("p", &["192.0.2.200-192.0.2.220"])])
            .is_empty()
    );
    assert_eq!(ips(&a.allocate(&svc("c")).expect("free")), ["192.0.2.203"]);
    assert_eq!(
        a.usage(&PoolName::from("p")).and_then(|u| u.next_v4),
        Some(ip("192.0.2.204"))
    );
    // A restarted controller registers the holders, then resumes where the status says.
    let mut restarted = Allocator::new([pool("p", &["192.0.2.200-192.0.2.220"])]);
    restarted.keep(&svc("z"), &[ip("192.0.2.200")]);
    restarted.resume_at(&PoolName::from("p"), ip("192.0.2.204"));
    assert_eq!(
        ips(&restarted.allocate(&svc("d")).expect("free")),
        ["192.0.2.204"]
    );
}

#[test]
fn requested_ips_come_from_any_pool_even_without_auto_assign() {
    let mut manual = pool("manual", &["198.51.100.0/24"]);
    manual.auto_assign = false;
    let mut a = Allocator::new([manual, pool("auto", &["192.0.2.200/29"])]);
    a.assign(&svc("a"), &[ip("198.51.100.7")])
        .expect("requested IP");
    assert_eq!(
        a.assignment(&svc("a").key).map(|x| x.pool.as_str()),
        Some("manual")
    );
    assert_eq!(ips(&a.allocate(&svc("b")).expect("auto")), ["192.0.2.200"]);
    assert_eq!(
        a.assign(&svc("c"), &[ip("203.0.113.1")]),
        Err(AllocError::NotInAnyPool(ip("203.0.113.1")))
    );
    assert!(matches!(
        a.assign(&svc("c"), &[ip("198.51.100.7")]),
        Err(AllocError::Conflict {
            why: SharingConflict::Key,
            ..
        })
    ));
}

#[test]
fn automatic_pool_order_is_priority_then_zero_then_fallback_by_name() {
    let mut a = Allocator::new([
        pool("a-fallback", &["192.0.2.1/32"]),
        pool("b-fallback", &["192.0.2.2/32"]),
        pinned(pool("c-prio-0", &["192.0.2.3/32"]), 0, None),
        pinned(pool("d-prio-20", &["192.0.2.4/32"]), 20, None),
        pinned(pool("e-prio-10", &["192.0.2.5/32"]), 10, None),
        pinned(
            pool("f-other-ns", &["192.0.2.6/32"]),
            1,
            Some(&["kube-system"]),
        ),
    ]);
    let order: Vec<String> = (0..5)
        .map(|i| {
            a.allocate(&svc(&format!("s{i}")))
                .expect("free")
                .pool
                .to_string()
        })
        .collect();
    assert_eq!(
        order,
        [
            "e-prio-10",
            "d-prio-20",
            "c-prio-0",
            "a-fallback",
            "b-fallback"
        ]
    );
    let err = a
        .allocate(&svc("s5"))
        .expect_err("only the other namespace's pool is left");
    assert!(matches!(err, AllocError::Exhausted { .. }));
}

#[test]
fn a_named_pool_is_used_even_without_auto_assign_but_respects_its_namespaces() {
    let mut manual = pinned(pool("manual", &["198.51.100.0/30"]), 0, Some(&["default"]));
    manual.auto_assign = false;
    let mut a = Allocator::new([manual, pool("auto", &["192.0.2.0/30"])]);
    let mut r = svc("a");
    r.pool = Some(PoolName::from("manual"));
    assert_eq!(a.allocate(&r).expect("named").pool.as_str(), "manual");
    let mut other_ns = r.clone();
    other_ns.key = ServiceKey::new("prod", "a");
    assert!(matches!(
        a.allocate(&other_ns),
        Err(AllocError::PoolNotAllowed { .. })
    ));
    r.pool = Some(PoolName::from("nope"));
    assert_eq!(
        a.allocate(&r),
        Err(AllocError::UnknownPool(PoolName::from("nope")))
    );
}

#[test]
fn service_selectors_pin_pools_to_labelled_services() {
    let mut web = pool("web", &["192.0.2.10/32"]);
    web.allocation = Some(ServiceAllocation {
        priority: 0,
        namespaces: None,
        service_selectors: vec![Selector::from_labels([("app", "web")])],
    });
    let mut a = Allocator::new([web, pool("rest", &["192.0.2.20/32"])]);
    let mut labelled = svc("w");
    labelled.labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
    assert_eq!(a.allocate(&labelled).expect("free").pool.as_str(), "web");
    assert_eq!(
        a.allocate(&svc("other")).expect("free").pool.as_str(),
        "rest"
    );
}

#[test]
fn services_with_one_sharing_key_pack_onto_one_ip_unless_ports_clash() {
    let mut a = Allocator::new([pool("p", &["192.0.2.0/29"])]);
    let dns_tcp = a.allocate(&sharing("tcp", "dns", 53)).expect("free");
    let mut udp = sharing("udp", "dns", 53);
    udp.ports = [Port {
        protocol: Protocol::Udp,
        port: 53,
    }]
    .into();
    assert_eq!(
        a.allocate(&udp).expect("shares").ips,
        dns_tcp.ips,
        "TCP/53 and UDP/53 coexist"
    );
    let clash = a
        .allocate(&sharing("clash", "dns", 53))
        .expect("gets another IP");
    assert_ne!(clash.ips, dns_tcp.ips);
    let explicit = a.assign(&sharing("explicit", "dns", 53), &dns_tcp.ips);
    assert!(matches!(
        explicit,
        Err(AllocError::Conflict {
            why: SharingConflict::Port(_),
            ..
        })
    ));
    let other_key = a.assign(&sharing("k", "other", 80), &dns_tcp.ips);
    assert!(matches!(
        other_key,
        Err(AllocError::Conflict {
            why: SharingConflict::Key,
            ..
        })
    ));
    let mut local = sharing("local", "dns", 8053);
    local.backend_key = "app=dns".into();
    let backend = a.assign(&local, &dns_tcp.ips);
    assert!(matches!(
        backend,
        Err(AllocError::Conflict {
            why: SharingConflict::Backend,
            ..
        })
    ));
    assert_eq!(a.usage(&PoolName::from("p")).expect("pool").assigned_v4, 2);
}

#[test]
fn require_dual_stack_takes_both_families_from_one_pool_or_nothing() {
    let mut a = Allocator::new([
        pool("v4", &["192.0.2.0/30"]),
        pool("v6", &["2001:db8::/126"]),
    ]);
    let err = a
        .allocate(&dual("r", FamilyPolicy::RequireDualStack))
        .expect_err("no pool has both");
    assert!(matches!(err, AllocError::Exhausted { .. }));
    a.set_pools([
        pool("v4", &["192.0.2.0/30"]),
        pool("dual", &["198.51.100.0/30", "2001:db8::/126"]),
    ]);
    let got = a
        .allocate(&dual("r", FamilyPolicy::RequireDualStack))
        .expect("dual pool");
    assert_eq!(
        (got.pool.as_str(), ips(&got)),
        (
            "dual",
            vec!["198.51.100.0".to_string(), "2001:db8::".to_string()]
        )
    );
}

#[test]
fn prefer_dual_stack_falls_back_to_the_primary_family_and_adds_the_other_later() {
    let mut a = Allocator::new([pool("p", &["192.0.2.0/30"])]);
    let r = dual("p", FamilyPolicy::PreferDualStack);
    let first = a.converge(&r, &[]);
    let held = first.assignment.expect("primary family");
    assert_eq!(ips(&held), ["192.0.2.0"]);
    assert_eq!(
        a.set_pools([pool("p", &["192.0.2.0/30", "2001:db8::/126"])]),
        Vec::<ServiceKey>::new()
    );
    let again = a.converge(&r, &held.ips);
    assert_eq!(
        ips(&again.assignment.expect("both now")),
        ["192.0.2.0", "2001:db8::"]
    );
    assert!(matches!(
        again.notes.as_slice(),
        [Note::Allocated {
            additional: true,
            ..
        }]
    ));
}

#[test]
fn a_dual_stack_service_that_requests_one_family_keeps_just_that_ip_and_settles() {
    // The chaos suite saw the other family added and removed again, a write each time.
    let mut a = Allocator::new([pool("p", &["192.0.2.0/30", "2001:db8::/126"])]);
    let mut r = dual("p", FamilyPolicy::PreferDualStack);
    r.requested_ips = vec![ip("192.0.2.1")];
    let mut current = Vec::new();
    for round in 0..3 {
        let out = a.converge(&r, &current);
        let held = out.assignment.expect("the requested IP");
        assert_eq!(ips(&held), ["192.0.2.1"], "round {round}");
        if round > 0 {
            assert!(out.notes.is_empty(), "round {round}: {:?}", out.notes);
        }
        current = held.ips;
    }
}

#[test]
fn pool_changes_move_allocations_with_their_ips_and_release_the_rest() {
    let mut a = Allocator::new([pool("old", &["192.0.2.0/29"])]);
    let x = a.allocate(&svc("x")).expect("free");
    let y = a.allocate(&svc("y")).expect("free");
    assert_eq!(ips(&x), ["192.0.2.0"]);
    // Renamed and shrunk: x's IP is still inside, y's is not.
    let released = a.set_pools([pool("renamed", &["192.0.2.0/32"])]);
    assert_eq!(released, [svc("y").key]);
    assert_eq!(
        a.assignment(&svc("x").key).map(|s| s.pool.as_str()),
        Some("renamed")
    );
    assert!(a.assignment(&svc("y").key).is_none());
    assert_ne!(y.ips, x.ips);
}

#[test]
fn buggy_addresses_are_avoided_and_turning_it_on_releases_holders() {
    let mut p = pool("p", &["192.0.2.0/24"]);
    let mut a = Allocator::new([p.clone()]);
    a.assign(&svc("zero"), &[ip("192.0.2.0")])
        .expect("allowed while not avoided");
    p.avoid_buggy_ips = true;
    assert_eq!(a.set_pools([p.clone()]), [svc("zero").key]);
    assert_eq!(
        ips(&a.allocate(&svc("first")).expect("free")),
        ["192.0.2.1"]
    );
    assert!(matches!(
        a.assign(&svc("b"), &[ip("192.0.2.255")]),
        Err(AllocError::BuggyIp { .. })
    ));
    let usage = a.usage(&p.name).expect("pool");
    assert_eq!((usage.assigned_v4, usage.available_v4), (1, 253));
}

#[test]
fn a_huge_ipv6_pool_is_never_enumerated() {
    let mut a = Allocator::new([pool("v6", &["2001:db8:100::/56"])]);
    let mut r = svc("s");
    r.families = vec![Family::V6];
    for i in 0..1000 {
        r.key = ServiceKey::new("default", format!("s{i}"));
        a.allocate(&r).expect("plenty of room");
    }
    let usage = a.usage(&PoolName::from("v6")).expect("pool");
    assert_eq!(usage.assigned_v6, 1000);
    assert_eq!(usage.available_v6, (1u128 << 72) - 1000);
}

#[test]
fn converge_keeps_current_ips_and_clears_them_when_the_request_changes() {
    let mut a = Allocator::new([pool("p", &["192.0.2.0/29"])]);
    let r = svc("s");
    let first = a.converge(&r, &[]).assignment.expect("allocated");
    let again = a.converge(&r, &first.ips);
    assert_eq!(again.assignment, Some(first.clone()));
    assert!(again.notes.is_empty(), "a second pass changes nothing");
    let mut asks = r.clone();
    asks.requested_ips = vec![ip("192.0.2.5")];
    let moved = a.converge(&asks, &first.ips);
    assert_eq!(ips(&moved.assignment.expect("requested")), ["192.0.2.5"]);
    assert!(moved.released);
    assert!(matches!(
        moved.notes.as_slice(),
        [Note::ClearAssignment { .. }, Note::Allocated { .. }]
    ));
}

#[test]
fn converge_after_a_restart_reclaims_the_ips_in_status() {
    let mut a = Allocator::new([pool("p", &["192.0.2.0/29"])]);
    let kept = a.converge(&svc("s"), &[ip("192.0.2.6")]);
    assert_eq!(
        kept.assignment.map(|x| ips(&x)),
        Some(vec!["192.0.2.6".to_string()])
    );
    assert!(kept.notes.is_empty());
}

#[test]
fn a_tenant_cannot_take_a_fenced_pools_ip_by_naming_the_pool_and_the_ip() {
    let fenced = || {
        pinned(
            pool("prod-only", &["192.0.2.200-192.0.2.203"]),
            0,
            Some(&["prod"]),
        )
    };
    let mut a = Allocator::new([fenced(), pool("open", &["198.51.100.0/30"])]);
    let mut evil = ServiceRequest::new(ServiceKey::new("evil", "grab"));
    evil.pool = Some(PoolName::from("prod-only"));
    evil.requested_ips = vec![ip("192.0.2.201")];
    let converged = a.converge(&evil, &[]);
    assert_eq!(converged.assignment, None, "{:?}", converged.notes);
    assert!(matches!(
        a.assign(&evil, &[ip("192.0.2.201")]),
        Err(AllocError::PoolNotAllowed { .. })
    ));
    // Status IPs it claims to hold (after a restart) are not kept either.
    assert_eq!(a.converge(&evil, &[ip("192.0.2.202")]).assignment, None);
    assert!(a.assignment(&evil.key).is_none());
    assert_eq!(
        a.usage(&PoolName::from("prod-only")).map(|u| u.assigned_v4),
        Some(0)
    );
    // The tenant the pool is fenced to gets the same request.
    let mut prod = evil.clone();
    prod.key = ServiceKey::new("prod", "grab");
    assert_eq!(
        a.converge(&prod, &[]).assignment.map(|x| ips(&x)),
        Some(vec!["192.0.2.201".to_string()])
    );
}

#[test]
fn a_sharing_key_does_not_cross_namespaces_unless_the_pool_is_fenced_to_both() {
    let mut a = Allocator::new([pool("open", &["192.0.2.200-192.0.2.203"])]);
    let victim = a.allocate(&sharing("dns", "k", 53)).expect("free");
    let mut intruder = sharing("dns", "k", 54);
    intruder.key = ServiceKey::new("evil", "dns");
    // Asking for the victim's IP with the victim's key is refused...
    assert!(matches!(
        a.assign(&intruder, &victim.ips),
        Err(AllocError::Conflict {
            why: SharingConflict::Namespace,
            ..
        })
    ));
    // ...and automatic allocation does not pack it onto that IP either.
    let own = a.allocate(&intruder).expect("another IP");
    assert_ne!(own.ips, victim.ips);
    assert_eq!(a.users_of(victim.ips[0]).count(), 1);
    // Same namespace still shares.
    let mut neighbour = sharing("dns-udp", "k", 55);
    neighbour.key = ServiceKey::new("default", "dns-udp");
    assert_eq!(a.allocate(&neighbour).expect("shares").ips, victim.ips);

    // A pool fenced to both namespaces is their owner's say-so: they may share.
    let both = pinned(
        pool("both", &["192.0.2.200-192.0.2.203"]),
        0,
        Some(&["default", "evil"]),
    );
    let mut b = Allocator::new([both]);
    let first = b.allocate(&sharing("dns", "k", 53)).expect("free");
    let mut partner = sharing("dns", "k", 54);
    partner.key = ServiceKey::new("evil", "dns");
    assert_eq!(b.assign(&partner, &first.ips), Ok(()));
}

#[test]
fn a_deleted_pool_keeps_its_holders_and_gives_nothing_to_anyone_else() {
    let mut a = Allocator::new([
        pool("a", &["192.0.2.200-192.0.2.203"]),
        pool("spare", &["198.51.100.0/30"]),
    ]);
    let held = a.allocate(&svc("web")).expect("free");
    assert_eq!(held.pool.as_str(), "a");
    a.set_closed([PoolName::from("a")].into());
    // The holder keeps its IPs, as after a restart of the decision.
    let kept = a.converge(&svc("web"), &held.ips);
    assert_eq!(kept.assignment, Some(held.clone()));
    assert!(kept.notes.is_empty(), "{:?}", kept.notes);
    // Nobody else gets any of the pool's: not by asking for an IP, the pool, or automatically.
    let mut by_ip = svc("by-ip");
    by_ip.requested_ips = vec![ip("192.0.2.201")];
    assert_eq!(
        a.assign(&by_ip, &by_ip.requested_ips),
        Err(AllocError::PoolDeleted(PoolName::from("a")))
    );
    let mut by_name = svc("by-name");
    by_name.pool = Some(PoolName::from("a"));
    assert_eq!(
        a.allocate(&by_name),
        Err(AllocError::PoolDeleted(PoolName::from("a")))
    );
    assert_eq!(
        a.allocate(&svc("auto")).expect("spare").pool.as_str(),
        "spare"
    );
    // Back: everything as before.
    a.set_closed(BTreeSet::new());
    assert_eq!(a.allocate(&svc("next")).expect("free").pool.as_str(), "a");
}

/// Rust debug forms a user must never read: a type name with parentheses, an enum variant.
pub(crate) fn debug_forms(text: &str) -> Vec<&'static str> {
    ["PoolName(", "ServiceKey", "Some(", "V4", "V6", "[", "\\\""]
        .into_iter()
        .filter(|form| text.contains(form))
        .collect()
}

#[test]
fn every_allocation_error_and_note_reads_without_rust_debug_forms() {
    let lan = PoolName::from("lan");
    let errors = [
        AllocError::NoPools,
        AllocError::NoClusterIp,
        AllocError::NotEnoughClusterIps(1),
        AllocError::UnknownPool(PoolName::from("nope")),
        AllocError::PoolNotAllowed {
            pool: lan.clone(),
            namespace: "evil".into(),
        },
        AllocError::NotInAnyPool(ip("203.0.113.1")),
        AllocError::DifferentPools(ip("192.0.2.1"), ip("198.51.100.1")),
        AllocError::NotInRequestedPool {
            ip: ip("192.0.2.1"),
            pool: lan.clone(),
        },
        AllocError::FamilyMismatch {
            ips: vec![ip("2001:db8::1"), ip("2001:db8::2")],
            families: vec![Family::V4],
        },
        AllocError::BuggyIp {
            ip: ip("192.0.2.0"),
            pool: lan.clone(),
        },
        AllocError::Conflict {
            ip: ip("192.0.2.1"),
            other: ServiceKey::new("default", "web"),
            why: SharingConflict::Namespace,
        },
        AllocError::Exhausted {
            tried: vec![lan.clone(), PoolName::from("spare")],
        },
    ];
    for e in &errors {
        let text = e.to_string();
        assert_eq!(debug_forms(&text), Vec::<&str>::new(), "{text}");
    }
    assert_eq!(
        errors[3].to_string(),
        "unknown pool nope: fix the address-pool annotation or create the pool"
    );
    assert_eq!(
        errors[11].to_string(),
        "no available IPs in pools lan, spare: add addresses to one of them, or free some"
    );

    // The reasons converge gives when it takes IPs back.
    let mut a = Allocator::new([pool("lan", &["192.0.2.0/29"])]);
    let mut r = svc("s");
    r.requested_ips = vec![ip("192.0.2.5")];
    let notes = a.converge(&r, &[ip("192.0.2.1")]).notes;
    let mut outside = svc("t");
    outside.families = vec![Family::V4];
    let more = a.converge(&outside, &[ip("203.0.113.7")]).notes;
    let reasons: Vec<&String> = notes
        .iter()
        .chain(&more)
        .filter_map(|n| match n {
            Note::ClearAssignment { reason } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{notes:?} {more:?}");
    for reason in reasons {
        assert_eq!(debug_forms(reason), Vec::<&str>::new(), "{reason}");
    }
}
