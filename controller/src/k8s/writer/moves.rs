//! Which IP each Service shows or may show while writes are on their way, so that an IP that
//! moves from one Service to another is never shown on both.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use super::StatusWrite;
use crate::allocator::ServiceKey;

/// Which IPs each Service is being given or is letting go of by writes that have not landed.
#[derive(Default)]
pub(super) struct Moves {
    /// IPs a write not landed yet takes from the Service.
    releasing: Holdings,
    /// IPs the Service shows or may show: those its last landed write gave it, those writes
    /// not landed yet give it, and (before any write) those it was seen showing.
    claimed: Holdings,
}

impl Moves {
    /// A new desired status for a Service: what it showed, and what earlier writes may still
    /// give it, is let go of unless this write keeps it.
    pub(super) fn received(&mut self, w: &StatusWrite) {
        let letting_go: Vec<IpAddr> = w
            .observed
            .iter()
            .chain(self.claimed.of(&w.key))
            .filter(|ip| !w.ips.contains(ip))
            .copied()
            .collect();
        self.claimed.add(&w.key, w.ips.iter().copied());
        self.releasing.add(&w.key, letting_go);
    }

    /// `ips` landed on the Service: whatever else it showed is gone.
    pub(super) fn landed(&mut self, key: &ServiceKey, ips: &[IpAddr], newer: Option<&StatusWrite>) {
        self.releasing.retain_ips(key, |ip| ips.contains(ip));
        let mut claimed: BTreeSet<IpAddr> = ips.iter().copied().collect();
        claimed.extend(newer.iter().flat_map(|w| w.ips.iter().copied()));
        self.claimed.set(key, claimed);
    }

    /// A new term of leadership: what every Service shows is `shown`, read afresh. What was
    /// known from before is dropped, except for Services with writes still queued or in flight.
    pub(super) fn new_term(
        &mut self,
        shown: Vec<(ServiceKey, Vec<IpAddr>)>,
        busy: impl Fn(&ServiceKey) -> bool,
    ) {
        self.claimed.retain_services(&busy);
        self.releasing.retain_services(&busy);
        for (key, ips) in shown {
            self.claimed.add(&key, ips);
        }
    }

    pub(super) fn forget(&mut self, key: &ServiceKey) {
        self.releasing.remove(key);
        self.claimed.remove(key);
    }

    /// Whether `w` gives an IP that another Service (not one sharing it) shows, may show, or
    /// is still letting go of. It costs what `w` gives, not how many Services there are.
    pub(super) fn must_wait(&self, w: &StatusWrite) -> bool {
        let held_elsewhere = |holdings: &Holdings| {
            w.ips.iter().any(|ip| {
                holdings
                    .holders(ip)
                    .any(|other| *other != w.key && !w.sharers.contains(other))
            })
        };
        held_elsewhere(&self.releasing) || held_elsewhere(&self.claimed)
    }
}

/// IPs per Service, indexed both ways: "who else holds this IP" is asked for every write sent,
/// and scanning every Service for it made the writer quadratic in the Services it writes.
#[derive(Default)]
struct Holdings {
    by_service: HashMap<ServiceKey, BTreeSet<IpAddr>>,
    by_ip: HashMap<IpAddr, HashSet<ServiceKey>>,
}

impl Holdings {
    fn of(&self, key: &ServiceKey) -> impl Iterator<Item = &IpAddr> {
        self.by_service.get(key).into_iter().flatten()
    }

    fn holders(&self, ip: &IpAddr) -> impl Iterator<Item = &ServiceKey> {
        self.by_ip.get(ip).into_iter().flatten()
    }

    fn add(&mut self, key: &ServiceKey, ips: impl IntoIterator<Item = IpAddr>) {
        let mut ips = ips.into_iter().peekable();
        if ips.peek().is_none() {
            return;
        }
        let held = self.by_service.entry(key.clone()).or_default();
        for ip in ips {
            if held.insert(ip) {
                self.by_ip.entry(ip).or_default().insert(key.clone());
            }
        }
    }

    fn set(&mut self, key: &ServiceKey, ips: BTreeSet<IpAddr>) {
        self.remove(key);
        self.add(key, ips);
    }

    fn retain_ips(&mut self, key: &ServiceKey, keep: impl Fn(&IpAddr) -> bool) {
        let Some(held) = self.by_service.get_mut(key) else {
            return;
        };
        let dropped: Vec<IpAddr> = held.iter().filter(|ip| !keep(ip)).copied().collect();
        for ip in &dropped {
            held.remove(ip);
            unindex(&mut self.by_ip, ip, key);
        }
        if held.is_empty() {
            self.by_service.remove(key);
        }
    }

    fn remove(&mut self, key: &ServiceKey) {
        for ip in self.by_service.remove(key).into_iter().flatten() {
            unindex(&mut self.by_ip, &ip, key);
        }
    }

    fn retain_services(&mut self, keep: impl Fn(&ServiceKey) -> bool) {
        let dropped: Vec<ServiceKey> = self
            .by_service
            .keys()
            .filter(|k| !keep(k))
            .cloned()
            .collect();
        for key in &dropped {
            self.remove(key);
        }
    }
}

fn unindex(by_ip: &mut HashMap<IpAddr, HashSet<ServiceKey>>, ip: &IpAddr, key: &ServiceKey) {
    if let Some(holders) = by_ip.get_mut(ip) {
        holders.remove(key);
        if holders.is_empty() {
            by_ip.remove(ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn write(name: &str, observed: &[&str], ips: &[&str]) -> StatusWrite {
        let parse = |list: &[&str]| list.iter().map(|s| s.parse().expect("ip")).collect();
        StatusWrite::new(
            ServiceKey::new("default", name),
            json!({}),
            parse(ips),
            parse(observed),
        )
    }

    #[test]
    fn an_ip_is_given_only_after_the_service_letting_go_of_it_has_landed() {
        let mut moves = Moves::default();
        let clear = write("old", &["192.0.2.1"], &[]);
        let take = write("new", &[], &["192.0.2.1"]);
        moves.received(&clear);
        moves.received(&take);
        assert!(moves.must_wait(&take));
        assert!(!moves.must_wait(&clear));
        moves.landed(&clear.key, &clear.ips, None);
        assert!(!moves.must_wait(&take));
    }

    #[test]
    fn an_ip_given_by_a_write_not_landed_yet_is_let_go_of_by_the_next() {
        let mut moves = Moves::default();
        // "old" is being given .1 (in flight); then it is to have nothing, and "new" gets .1.
        let grant = write("old", &[], &["192.0.2.1"]);
        moves.received(&grant);
        let clear = write("old", &[], &[]);
        moves.received(&clear);
        let take = write("new", &[], &["192.0.2.1"]);
        moves.received(&take);
        assert!(moves.must_wait(&take));
        moves.landed(&grant.key, &grant.ips, Some(&clear));
        assert!(
            moves.must_wait(&take),
            "the grant landed, the clear has not"
        );
        moves.landed(&clear.key, &clear.ips, None);
        assert!(!moves.must_wait(&take));
    }

    #[test]
    fn an_ip_a_service_showed_when_the_term_began_is_given_only_after_a_write_took_it_away() {
        // A new leader rebuilt: "tenant" shows .203 but may not keep it; "mover" was given .203
        // before the tenant's write was even queued.
        let mut moves = Moves::default();
        let tenant = ServiceKey::new("default", "tenant");
        moves.new_term(vec![(tenant.clone(), vec![ip("192.0.2.203")])], |_| false);
        let take = write("mover", &["192.0.2.200"], &["192.0.2.203"]);
        moves.received(&take);
        assert!(moves.must_wait(&take), "the tenant still shows .203");
        let clear = write("tenant", &["192.0.2.203"], &[]);
        moves.received(&clear);
        assert!(moves.must_wait(&take));
        moves.landed(&tenant, &[], None);
        assert!(!moves.must_wait(&take));
    }

    #[test]
    fn a_deleted_service_and_what_a_past_term_knew_hold_no_ip() {
        let mut moves = Moves::default();
        let gone = ServiceKey::new("default", "gone");
        moves.new_term(vec![(gone.clone(), vec![ip("192.0.2.1")])], |_| false);
        moves.forget(&gone);
        let take = write("new", &[], &["192.0.2.1"]);
        assert!(!moves.must_wait(&take), "deleted");

        // A past term landed .2 on "old"; the next term reads that "old" shows nothing now.
        let old = write("old", &[], &["192.0.2.2"]);
        moves.received(&old);
        moves.landed(&old.key, &old.ips, None);
        moves.new_term(Vec::new(), |_| false);
        assert!(!moves.must_wait(&write("new", &[], &["192.0.2.2"])));
    }

    #[test]
    fn services_sharing_an_ip_do_not_wait_for_each_other() {
        let mut moves = Moves::default();
        let first = write("first", &[], &["192.0.2.1"]);
        moves.received(&first);
        moves.landed(&first.key, &first.ips, None);
        let second = write("second", &[], &["192.0.2.1"]);
        assert!(moves.must_wait(&second), "not known to share");
        let second = second.with_sharers([first.key.clone()].into());
        moves.received(&second);
        assert!(!moves.must_wait(&second));
    }

    #[test]
    fn two_services_that_swap_ips_each_let_go_first_and_neither_waits_forever() {
        let mut moves = Moves::default();
        let a = write("a", &["192.0.2.1"], &["192.0.2.2"]);
        let b = write("b", &["192.0.2.2"], &["192.0.2.1"]);
        moves.received(&a);
        moves.received(&b);
        assert!(moves.must_wait(&a) && moves.must_wait(&b));
        // a's first part (only the IPs it keeps: none) lands; b may go.
        moves.landed(&a.key, &[], Some(&a));
        assert!(!moves.must_wait(&b));
        moves.landed(&b.key, &b.ips, None);
        assert!(!moves.must_wait(&a));
    }

    /// The rule as first written: every Service scanned for every write. The index must
    /// answer as it does.
    #[derive(Default)]
    struct Scan {
        releasing: HashMap<ServiceKey, BTreeSet<IpAddr>>,
        claimed: HashMap<ServiceKey, BTreeSet<IpAddr>>,
    }

    impl Scan {
        fn received(&mut self, w: &StatusWrite) {
            let claimed = self.claimed.entry(w.key.clone()).or_default();
            let letting_go: Vec<IpAddr> = (w.observed.iter().chain(claimed.iter()))
                .filter(|ip| !w.ips.contains(ip))
                .copied()
                .collect();
            claimed.extend(w.ips.iter().copied());
            self.releasing
                .entry(w.key.clone())
                .or_default()
                .extend(letting_go);
        }

        fn landed(&mut self, key: &ServiceKey, ips: &[IpAddr], newer: Option<&StatusWrite>) {
            if let Some(r) = self.releasing.get_mut(key) {
                r.retain(|ip| ips.contains(ip));
            }
            let mut claimed: BTreeSet<IpAddr> = ips.iter().copied().collect();
            claimed.extend(newer.iter().flat_map(|w| w.ips.iter().copied()));
            self.claimed.insert(key.clone(), claimed);
        }

        fn must_wait(&self, w: &StatusWrite) -> bool {
            let held = |map: &HashMap<ServiceKey, BTreeSet<IpAddr>>| {
                map.iter().any(|(other, ips)| {
                    *other != w.key
                        && !w.sharers.contains(other)
                        && w.ips.iter().any(|ip| ips.contains(ip))
                })
            };
            held(&self.releasing) || held(&self.claimed)
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Received(usize, Vec<u8>, Vec<u8>, Vec<usize>),
        Landed(usize, Vec<u8>, bool),
        NewTerm(Vec<(usize, Vec<u8>)>, Vec<usize>),
        Forget(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let ips = || proptest::collection::vec(0u8..6, 0..3);
        let svc = || 0usize..5;
        prop_oneof![
            4 => (svc(), ips(), ips(), proptest::collection::vec(svc(), 0..2))
                .prop_map(|(s, o, i, sh)| Op::Received(s, o, i, sh)),
            3 => (svc(), ips(), any::<bool>()).prop_map(|(s, i, n)| Op::Landed(s, i, n)),
            1 => (proptest::collection::vec((svc(), ips()), 0..4), proptest::collection::vec(svc(), 0..3))
                .prop_map(|(shown, busy)| Op::NewTerm(shown, busy)),
            1 => svc().prop_map(Op::Forget),
        ]
    }

    proptest::proptest! {
        #[test]
        fn the_index_answers_as_a_scan_of_every_service_would(
            ops in proptest::collection::vec(op(), 1..40),
            probes in proptest::collection::vec((0usize..5, proptest::collection::vec(0u8..6, 1..3), proptest::collection::vec(0usize..5, 0..2)), 1..6),
        ) {
            let key = |i: usize| ServiceKey::new("default", format!("s{i}"));
            let addr = |b: u8| IpAddr::from([192, 0, 2, b]);
            let make = |s: usize, observed: &[u8], ips: &[u8], sharers: &[usize]| {
                StatusWrite::new(
                    key(s),
                    json!({}),
                    ips.iter().map(|b| addr(*b)).collect(),
                    observed.iter().map(|b| addr(*b)).collect(),
                )
                .with_sharers(sharers.iter().map(|i| key(*i)).collect())
            };
            let (mut moves, mut scan) = (Moves::default(), Scan::default());
            let mut last: HashMap<usize, StatusWrite> = HashMap::new();
            for op in ops {
                match op {
                    Op::Received(s, observed, ips, sharers) => {
                        let w = make(s, &observed, &ips, &sharers);
                        moves.received(&w);
                        scan.received(&w);
                        last.insert(s, w);
                    }
                    Op::Landed(s, ips, with_newer) => {
                        let ips: Vec<IpAddr> = ips.iter().map(|b| addr(*b)).collect();
                        let newer = last.get(&s).filter(|_| with_newer);
                        moves.landed(&key(s), &ips, newer);
                        scan.landed(&key(s), &ips, newer);
                    }
                    Op::NewTerm(shown, busy) => {
                        let shown: Vec<(ServiceKey, Vec<IpAddr>)> = shown
                            .iter()
                            .map(|(s, ips)| (key(*s), ips.iter().map(|b| addr(*b)).collect()))
                            .collect();
                        let busy: BTreeSet<ServiceKey> = busy.iter().map(|s| key(*s)).collect();
                        scan.claimed.retain(|k, _| busy.contains(k));
                        scan.releasing.retain(|k, _| busy.contains(k));
                        for (k, ips) in shown.clone() {
                            scan.claimed.entry(k).or_default().extend(ips);
                        }
                        moves.new_term(shown, |k| busy.contains(k));
                    }
                    Op::Forget(s) => {
                        moves.forget(&key(s));
                        scan.releasing.remove(&key(s));
                        scan.claimed.remove(&key(s));
                    }
                }
                for (s, ips, sharers) in &probes {
                    let w = make(*s, &[], ips, sharers);
                    proptest::prop_assert_eq!(moves.must_wait(&w), scan.must_wait(&w));
                }
            }
        }
    }
}
