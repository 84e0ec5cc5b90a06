//! Which IP each Service shows or may show while writes are on their way, so that an IP that
//! moves from one Service to another is never shown on both.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::StatusWrite;
use crate::allocator::ServiceKey;

/// Which IPs each Service is being given or is letting go of by writes that have not landed.
#[derive(Default)]
pub(super) struct Moves {
    /// IPs a write not landed yet takes from the Service.
    releasing: HashMap<ServiceKey, BTreeSet<IpAddr>>,
    /// IPs the Service shows or may show: those its last landed write gave it, those writes
    /// not landed yet give it, and (before any write) those it was seen showing.
    claimed: HashMap<ServiceKey, BTreeSet<IpAddr>>,
}

impl Moves {
    /// A new desired status for a Service: what it showed, and what earlier writes may still
    /// give it, is let go of unless this write keeps it.
    pub(super) fn received(&mut self, w: &StatusWrite) {
        let claimed = self.claimed.entry(w.key.clone()).or_default();
        let letting_go: Vec<IpAddr> = w
            .observed
            .iter()
            .chain(claimed.iter())
            .filter(|ip| !w.ips.contains(ip))
            .copied()
            .collect();
        claimed.extend(w.ips.iter().copied());
        self.releasing
            .entry(w.key.clone())
            .or_default()
            .extend(letting_go);
    }

    /// `ips` landed on the Service: whatever else it showed is gone.
    pub(super) fn landed(&mut self, key: &ServiceKey, ips: &[IpAddr], newer: Option<&StatusWrite>) {
        if let Some(r) = self.releasing.get_mut(key) {
            r.retain(|ip| ips.contains(ip));
        }
        let mut claimed: BTreeSet<IpAddr> = ips.iter().copied().collect();
        claimed.extend(newer.iter().flat_map(|w| w.ips.iter().copied()));
        self.claimed.insert(key.clone(), claimed);
    }

    /// A new term of leadership: what every Service shows is `shown`, read afresh. What was
    /// known from before is dropped, except for Services with writes still queued or in flight.
    pub(super) fn new_term(
        &mut self,
        shown: Vec<(ServiceKey, Vec<IpAddr>)>,
        busy: impl Fn(&ServiceKey) -> bool,
    ) {
        self.claimed.retain(|k, _| busy(k));
        self.releasing.retain(|k, _| busy(k));
        for (key, ips) in shown {
            self.claimed.entry(key).or_default().extend(ips);
        }
    }

    pub(super) fn forget(&mut self, key: &ServiceKey) {
        self.releasing.remove(key);
        self.claimed.remove(key);
    }

    /// Whether `w` gives an IP that another Service (not one sharing it) shows, may show, or
    /// is still letting go of.
    pub(super) fn must_wait(&self, w: &StatusWrite) -> bool {
        let held_elsewhere = |map: &HashMap<ServiceKey, BTreeSet<IpAddr>>| {
            map.iter().any(|(other, ips)| {
                *other != w.key
                    && !w.sharers.contains(other)
                    && w.ips.iter().any(|ip| ips.contains(ip))
            })
        };
        held_elsewhere(&self.releasing) || held_elsewhere(&self.claimed)
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
}
