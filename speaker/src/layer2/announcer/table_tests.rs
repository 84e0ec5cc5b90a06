use super::*;
use crate::layer2::ndp::Solicitation;

const US: Mac = Mac([0x02, 0, 0, 0, 0, 0x10]);
const OUR_OTHER: Mac = Mac([0x02, 0, 0, 0, 0, 0x11]);
const LOWER: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);
const HIGHER: Mac = Mac([0x02, 0, 0, 0, 0, 0x20]);
const CLIENT: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn timing() -> Timing {
    Timing::new(
        vec![ms(0), ms(300), ms(100), ms(1000)],
        Duration::from_secs(10),
        Duration::from_secs(2),
        Duration::from_secs(30),
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("ip")
}

fn set(ips: &[&str]) -> BTreeSet<IpAddr> {
    ips.iter().map(|s| ip(s)).collect()
}

fn macs() -> BTreeSet<Mac> {
    [US, OUR_OTHER].into()
}

/// A table owning `ips` since `t0`, with the first burst round drained.
fn owning(ips: &[&str], t0: Instant) -> Table {
    let mut table = Table::new(US, timing());
    table.set_desired(&set(ips), &macs(), false, t0);
    table
}

fn request(target: &str) -> ArpFrame {
    let IpAddr::V4(target) = ip(target) else {
        unreachable!()
    };
    ArpFrame {
        eth_destination: Mac::BROADCAST,
        eth_source: CLIENT,
        operation: Operation::Request,
        sender_mac: CLIENT,
        sender_ip: "192.0.2.10".parse().expect("ip"),
        target_mac: Mac::ZERO,
        target_ip: target,
    }
}

fn garp(claimed: &str, mac: Mac) -> ArpFrame {
    let IpAddr::V4(v4) = ip(claimed) else {
        unreachable!()
    };
    ArpFrame::gratuitous(v4, mac)[0]
}

fn solicitation(target: &str, source: &str, source_mac: Option<Mac>) -> NdpFrame {
    let target = v6(target);
    let group = solicited_node(target);
    NdpFrame {
        eth_destination: crate::layer2::ndp::multicast_mac(group),
        eth_source: CLIENT,
        source: v6(source),
        destination: group,
        message: NdpMessage::Solicitation(Solicitation { target, source_mac }),
    }
}

fn gratuitous_sent(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Arp {
                    kind: Sent::Gratuitous,
                    ..
                } | Action::Ndp {
                    kind: Sent::Gratuitous,
                    ..
                }
            )
        })
        .count()
}

fn replies(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Arp {
                    kind: Sent::Reply,
                    ..
                } | Action::Ndp {
                    kind: Sent::Reply,
                    ..
                }
            )
        })
        .cloned()
        .collect()
}

fn conflicts(actions: &[Action]) -> Vec<(Mac, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Conflict {
                theirs, we_lose, ..
            } => Some((*theirs, *we_lose)),
            _ => None,
        })
        .collect()
}

#[test]
fn taking_an_ip_announces_it_at_every_burst_offset_then_every_refresh() {
    let t0 = Instant::now();
    let mut table = Table::new(US, timing());
    let actions = table.set_desired(&set(&["192.0.2.200"]), &macs(), false, t0);
    assert!(actions.contains(&Action::Change(ip("192.0.2.200"), Change::Took)));
    let [request, reply] = ArpFrame::gratuitous("192.0.2.200".parse().expect("ip"), US);
    assert_eq!(
        gratuitous_sent(&actions),
        2,
        "request and reply at offset 0"
    );
    assert!(actions.contains(&Action::Arp {
        frame: request,
        kind: Sent::Gratuitous
    }));
    assert!(actions.contains(&Action::Arp {
        frame: reply,
        kind: Sent::Gratuitous
    }));
    for offset in [100, 300, 1000] {
        assert_eq!(table.next_deadline(), Some(t0 + ms(offset)));
        assert_eq!(
            gratuitous_sent(&table.tick(t0 + ms(offset) - ms(1))),
            0,
            "not early"
        );
        assert_eq!(gratuitous_sent(&table.tick(t0 + ms(offset))), 2);
    }
    let refresh = t0 + ms(1000) + Duration::from_secs(10);
    assert_eq!(table.next_deadline(), Some(refresh));
    assert_eq!(gratuitous_sent(&table.tick(refresh)), 2);
    assert_eq!(
        table.next_deadline(),
        Some(refresh + Duration::from_secs(10))
    );
}

#[test]
fn an_ipv6_ip_is_announced_from_itself_to_all_nodes_and_its_group_joined() {
    let t0 = Instant::now();
    let mut table = Table::new(US, timing());
    let actions = table.set_desired(&set(&["2001:db8:0:1::200"]), &macs(), false, t0);
    assert!(actions.contains(&Action::Join(v6("ff02::1:ff00:200"))));
    let na = NdpFrame::unsolicited(v6("2001:db8:0:1::200"), US);
    assert!(actions.contains(&Action::Ndp {
        frame: na,
        kind: Sent::Gratuitous
    }));
    assert_eq!(na.source, v6("2001:db8:0:1::200"));
    assert_eq!(na.destination, v6("ff02::1"));
}

#[test]
fn requests_for_owned_ips_are_answered_with_our_mac_and_nothing_else_is() {
    let t0 = Instant::now();
    let mut table = owning(&["192.0.2.200"], t0);
    let actions = table.on_arp(&request("192.0.2.200"), t0);
    let want = request("192.0.2.200").reply_from(US).expect("a request");
    assert_eq!(
        actions,
        vec![
            Action::Request(Protocol::Arp),
            Action::Arp {
                frame: want,
                kind: Sent::Reply
            }
        ]
    );
    let to_us = ArpFrame {
        eth_destination: US,
        ..request("192.0.2.200")
    };
    assert_eq!(replies(&table.on_arp(&to_us, t0)).len(), 1, "unicast to us");

    assert!(table.on_arp(&request("192.0.2.201"), t0).is_empty());
    let flooded = ArpFrame {
        eth_destination: HIGHER,
        ..request("192.0.2.200")
    };
    assert!(table.on_arp(&flooded, t0).is_empty(), "not for us");
    let reply = ArpFrame {
        operation: Operation::Reply,
        ..request("192.0.2.200")
    };
    assert!(table.on_arp(&reply, t0).is_empty(), "replies are not asked");
}

#[test]
fn solicitations_are_answered_with_or_without_a_source_option_and_for_dad() {
    let t0 = Instant::now();
    let target = "2001:db8:0:1::200";
    let mut table = owning(&[target], t0);

    let with = table.on_ndp(&solicitation(target, "2001:db8:0:1::10", Some(CLIENT)), t0);
    let [Action::Ndp { frame, .. }] = &replies(&with)[..] else {
        panic!("one answer: {with:?}")
    };
    assert_eq!((frame.eth_destination, frame.eth_source), (CLIENT, US));
    assert_eq!(
        (frame.source, frame.destination),
        (v6(target), v6("2001:db8:0:1::10"))
    );
    let NdpMessage::Advertisement(na) = frame.message else {
        panic!("an advertisement")
    };
    assert_eq!(
        (na.target, na.mac, na.solicited, na.override_flag),
        (v6(target), US, true, true)
    );

    let mut without = solicitation(target, "fe80::a", None);
    without.eth_source = LOWER;
    let answer = replies(&table.on_ndp(&without, t0));
    let [Action::Ndp { frame, .. }] = &answer[..] else {
        panic!("one answer")
    };
    assert_eq!(frame.eth_destination, LOWER, "to the frame's source");
    assert_eq!(frame.destination, v6("fe80::a"));

    let dad = replies(&table.on_ndp(&solicitation(target, "::", None), t0));
    let [Action::Ndp { frame, .. }] = &dad[..] else {
        panic!("one answer")
    };
    assert_eq!(frame.destination, v6("ff02::1"));
    let NdpMessage::Advertisement(na) = frame.message else {
        panic!("an advertisement")
    };
    assert!(!na.solicited && na.override_flag);

    let other = solicitation("2001:db8:0:1::201", "2001:db8:0:1::10", Some(CLIENT));
    assert!(table.on_ndp(&other, t0).is_empty());
}

#[test]
fn a_released_ip_lingers_silently_until_the_linger_passes() {
    let t0 = Instant::now();
    let mut table = owning(&["192.0.2.200"], t0);
    let t1 = t0 + ms(500);
    let actions = table.set_desired(&BTreeSet::new(), &macs(), false, t1);
    assert_eq!(
        actions,
        vec![Action::Change(ip("192.0.2.200"), Change::Lingering)]
    );
    assert_eq!(table.answering(), set(&["192.0.2.200"]));
    assert_eq!(replies(&table.on_arp(&request("192.0.2.200"), t1)).len(), 1);
    assert_eq!(table.next_deadline(), Some(t1 + Duration::from_secs(2)));
    assert_eq!(
        gratuitous_sent(&table.tick(t1 + ms(1000))),
        0,
        "no more bursts"
    );
    let end = table.tick(t1 + Duration::from_secs(2));
    assert_eq!(
        end,
        vec![Action::Change(ip("192.0.2.200"), Change::LingerExpired)]
    );
    assert!(table.is_empty());
    assert!(table.on_arp(&request("192.0.2.200"), t1).is_empty());
}

#[test]
fn a_successor_claiming_a_lingering_ip_ends_the_linger_without_a_conflict() {
    let t0 = Instant::now();
    let mut table = owning(&["192.0.2.200", "2001:db8:0:1::200"], t0);
    table.set_desired(&BTreeSet::new(), &macs(), false, t0);
    let actions = table.on_arp(&garp("192.0.2.200", HIGHER), t0);
    assert_eq!(
        actions,
        vec![Action::Change(
            ip("192.0.2.200"),
            Change::HandedOver(HIGHER)
        )]
    );
    let na = NdpFrame::unsolicited(v6("2001:db8:0:1::200"), LOWER);
    let actions = table.on_ndp(&na, t0);
    assert_eq!(
        actions,
        vec![
            Action::Leave(v6("ff02::1:ff00:200")),
            Action::Change(ip("2001:db8:0:1::200"), Change::HandedOver(LOWER)),
        ]
    );
    assert!(table.is_empty());
}

fn probes(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Arp {
                    kind: Sent::Probe,
                    ..
                } | Action::Ndp {
                    kind: Sent::Probe,
                    ..
                }
            )
        })
        .cloned()
        .collect()
}

#[test]
fn a_lower_mac_claiming_an_owned_ip_silences_us_while_it_answers_our_probes() {
    let t0 = Instant::now();
    let hold_down = Duration::from_secs(30);
    let mut table = owning(&["192.0.2.200"], t0);
    let actions = table.on_arp(&garp("192.0.2.200", LOWER), t0);
    assert_eq!(conflicts(&actions), vec![(LOWER, true)]);
    assert!(actions.contains(&Action::Change(ip("192.0.2.200"), Change::HeldDown(LOWER))));
    assert!(table.answering().is_empty());
    let asked = table.on_arp(&request("192.0.2.200"), t0);
    assert_eq!(
        asked,
        vec![Action::Request(Protocol::Arp)],
        "counted, not answered"
    );
    assert_eq!(gratuitous_sent(&table.tick(t0 + ms(100))), 0);
    assert!(
        conflicts(&table.on_arp(&garp("192.0.2.200", LOWER), t0 + ms(500))).is_empty(),
        "the winner's announcements are expected, not new conflicts"
    );

    // After the hold-down: an ARP probe, which the winner answers.
    let t1 = t0 + hold_down;
    let sent = table.tick(t1);
    let [Action::Arp { frame: probe, .. }] = &probes(&sent)[..] else {
        panic!("one probe: {sent:?}")
    };
    assert_eq!(
        (
            probe.sender_ip,
            probe.target_ip,
            probe.sender_mac,
            probe.eth_destination
        ),
        (
            "0.0.0.0".parse().expect("ip"),
            "192.0.2.200".parse().expect("ip"),
            US,
            Mac::BROADCAST
        )
    );
    let answer = ArpFrame {
        eth_destination: US,
        ..probe.reply_from(LOWER).expect("a request")
    };
    assert!(table.on_arp(&answer, t1 + ms(5)).is_empty());
    assert!(
        table.tick(t1 + PROBE_WAIT).is_empty(),
        "answered: still silent"
    );

    // The next probe goes unanswered: announced again.
    let t2 = t1 + ms(5) + hold_down;
    assert_eq!(probes(&table.tick(t2)).len(), 1);
    let resumed = table.tick(t2 + PROBE_WAIT);
    assert!(resumed.contains(&Action::Change(ip("192.0.2.200"), Change::Resumed)));
    assert_eq!(gratuitous_sent(&resumed), 2, "a new burst");
    assert_eq!(table.answering(), set(&["192.0.2.200"]));
}

#[test]
fn an_ipv6_loser_probes_with_a_dad_solicitation() {
    let t0 = Instant::now();
    let target = "2001:db8:0:1::200";
    let mut table = owning(&[target], t0);
    table.on_ndp(&NdpFrame::unsolicited(v6(target), LOWER), t0);
    let sent = table.tick(t0 + Duration::from_secs(30));
    let [Action::Ndp { frame, .. }] = &probes(&sent)[..] else {
        panic!("one probe: {sent:?}")
    };
    assert_eq!(frame.source, Ipv6Addr::UNSPECIFIED);
    assert_eq!(frame.destination, v6("ff02::1:ff00:200"));
    assert_eq!(
        frame.message,
        NdpMessage::Solicitation(Solicitation {
            target: v6(target),
            source_mac: None
        })
    );
}

#[test]
fn an_owner_defends_against_probes_and_a_lingering_one_does_not() {
    let t0 = Instant::now();
    let mut table = owning(&["192.0.2.200", "2001:db8:0:1::200"], t0);
    let arp_probe = ArpFrame {
        sender_ip: "0.0.0.0".parse().expect("ip"),
        ..request("192.0.2.200")
    };
    let dad = solicitation("2001:db8:0:1::200", "::", None);
    assert_eq!(replies(&table.on_arp(&arp_probe, t0)).len(), 1);
    assert_eq!(replies(&table.on_ndp(&dad, t0)).len(), 1);
    table.set_desired(&BTreeSet::new(), &macs(), false, t0);
    assert!(replies(&table.on_arp(&arp_probe, t0)).is_empty());
    assert!(replies(&table.on_ndp(&dad, t0)).is_empty());
    assert_eq!(
        replies(&table.on_arp(&request("192.0.2.200"), t0)).len(),
        1,
        "real requests are still answered"
    );
}

#[test]
fn a_higher_mac_claiming_an_owned_ip_gets_a_new_burst_reported_once_per_burst() {
    let t0 = Instant::now();
    let mut table = owning(&["192.0.2.200"], t0);
    table.tick(t0 + ms(1000));
    let t1 = t0 + Duration::from_secs(5);
    let actions = table.on_arp(&garp("192.0.2.200", HIGHER), t1);
    assert_eq!(conflicts(&actions), vec![(HIGHER, false)]);
    let again = table.on_arp(&garp("192.0.2.200", HIGHER), t1 + ms(1));
    assert!(
        conflicts(&again).is_empty(),
        "same claimant, defence pending"
    );
    let t2 = t1 + DEFEND_AFTER;
    assert_eq!(
        gratuitous_sent(&table.tick(t2)),
        2,
        "re-announced after the grace"
    );
    assert_eq!(table.next_deadline(), Some(t2 + ms(100)));
    let again = table.on_arp(&garp("192.0.2.200", HIGHER), t2 + ms(1));
    assert!(conflicts(&again).is_empty(), "same claimant, burst running");
    for offset in [100, 300, 1000] {
        table.tick(t2 + ms(offset));
    }
    let later = table.on_arp(&garp("192.0.2.200", HIGHER), t2 + ms(2000));
    assert_eq!(conflicts(&later), vec![(HIGHER, false)], "still at it");
    assert_eq!(table.answering(), set(&["192.0.2.200"]));
}

#[test]
fn an_advertisement_or_solicitation_from_another_mac_claims_an_ipv6_ip() {
    let t0 = Instant::now();
    let target = "2001:db8:0:1::200";
    let mut table = owning(&[target], t0);
    let na = NdpFrame::unsolicited(v6(target), HIGHER);
    assert_eq!(conflicts(&table.on_ndp(&na, t0)), vec![(HIGHER, false)]);

    let mut from_it = solicitation("2001:db8:0:1::10", target, Some(LOWER));
    from_it.eth_source = LOWER;
    let actions = table.on_ndp(&from_it, t0);
    assert_eq!(conflicts(&actions), vec![(LOWER, true)]);
    assert!(table.answering().is_empty());
}

#[test]
fn frames_from_this_nodes_own_macs_are_never_claims() {
    let t0 = Instant::now();
    let mut table = owning(&["192.0.2.200", "2001:db8:0:1::200"], t0);
    assert!(conflicts(&table.on_arp(&garp("192.0.2.200", OUR_OTHER), t0)).is_empty());
    assert!(conflicts(&table.on_arp(&garp("192.0.2.200", US), t0)).is_empty());
    let na = NdpFrame::unsolicited(v6("2001:db8:0:1::200"), OUR_OTHER);
    assert!(conflicts(&table.on_ndp(&na, t0)).is_empty());
    assert_eq!(table.answering().len(), 2);
}

#[test]
fn draining_announces_nothing_and_empties_when_everything_is_handed_over_or_expired() {
    let t0 = Instant::now();
    let mut table = owning(&["192.0.2.200", "192.0.2.201"], t0);
    let actions = table.set_desired(&set(&["192.0.2.200", "192.0.2.201"]), &macs(), true, t0);
    assert_eq!(gratuitous_sent(&actions), 0);
    assert_eq!(table.answering().len(), 2, "both still answered");
    table.on_arp(&garp("192.0.2.200", HIGHER), t0 + ms(100));
    assert_eq!(table.answering(), set(&["192.0.2.201"]));
    assert_eq!(gratuitous_sent(&table.tick(t0 + ms(1000))), 0);
    table.tick(t0 + Duration::from_secs(2));
    assert!(table.is_empty());
    let more = table.set_desired(&set(&["192.0.2.202"]), &macs(), false, t0);
    assert!(more.is_empty(), "a drained table takes nothing new");
}

#[test]
fn a_lingering_ip_desired_again_is_announced_again() {
    let t0 = Instant::now();
    let mut table = owning(&["192.0.2.200"], t0);
    table.set_desired(&BTreeSet::new(), &macs(), false, t0 + ms(10));
    let actions = table.set_desired(&set(&["192.0.2.200"]), &macs(), false, t0 + ms(20));
    assert!(actions.contains(&Action::Change(ip("192.0.2.200"), Change::Reclaimed)));
    assert_eq!(gratuitous_sent(&actions), 2);
}

#[test]
fn solicited_node_groups_are_shared_by_ips_with_the_same_low_bits() {
    let t0 = Instant::now();
    let mut table = Table::new(
        US,
        Timing::new(vec![], Duration::ZERO, Duration::ZERO, Duration::ZERO),
    );
    let both = set(&["2001:db8:0:1::200", "2001:db8:0:2::200"]);
    let joined = table.set_desired(&both, &macs(), false, t0);
    assert_eq!(
        joined
            .iter()
            .filter(|a| matches!(a, Action::Join(_)))
            .count(),
        1
    );
    assert_eq!(gratuitous_sent(&joined), 0, "no burst, no refresh");
    assert_eq!(table.next_deadline(), None);
    let one = table.set_desired(&set(&["2001:db8:0:2::200"]), &macs(), false, t0);
    assert!(!one.iter().any(|a| matches!(a, Action::Leave(_))));
    assert!(
        one.contains(&Action::Change(ip("2001:db8:0:1::200"), Change::Dropped)),
        "linger zero: dropped at once"
    );
    let none = table.set_desired(&BTreeSet::new(), &macs(), false, t0);
    assert!(none.contains(&Action::Leave(v6("ff02::1:ff00:200"))));
}

#[test]
fn burst_offsets_are_sorted() {
    let t = Timing::new(vec![ms(300), ms(0)], Duration::ZERO, Duration::ZERO, ms(1));
    assert_eq!(t.burst, vec![ms(0), ms(300)]);
}

/// A drain or a failover seen by the successor before the owner: the successor announces first.
/// The owner (with the lower MAC) must not silence it with a counter-announcement if its own
/// release follows shortly, else nobody answers between the owner's linger and the successor's
/// hold-down.
#[test]
fn an_owner_released_just_after_a_successors_claim_hands_over_without_a_fight() {
    let t0 = Instant::now();
    let mut table = owning(&["192.0.2.200"], t0);
    table.tick(t0 + ms(1000));
    let t1 = t0 + Duration::from_secs(5);
    let claimed = table.on_arp(&garp("192.0.2.200", HIGHER), t1);
    assert_eq!(conflicts(&claimed), vec![(HIGHER, false)]);
    assert_eq!(gratuitous_sent(&claimed), 0, "no counter-announcement yet");
    assert_eq!(
        gratuitous_sent(&table.tick(t1 + DEFEND_AFTER - ms(1))),
        0,
        "still waiting to see whether the claim is a hand-over"
    );
    let released = table.set_desired(&BTreeSet::new(), &macs(), false, t1 + ms(200));
    assert_eq!(
        released,
        vec![Action::Change(
            ip("192.0.2.200"),
            Change::HandedOver(HIGHER)
        )]
    );
    assert!(table.is_empty());
}

#[test]
fn an_owner_still_desired_after_a_claim_defends_once_the_grace_passes() {
    let t0 = Instant::now();
    let mut table = owning(&["192.0.2.200"], t0);
    table.tick(t0 + ms(1000));
    let t1 = t0 + Duration::from_secs(5);
    table.on_arp(&garp("192.0.2.200", HIGHER), t1);
    assert_eq!(table.next_deadline(), Some(t1 + DEFEND_AFTER));
    let defended = table.tick(t1 + DEFEND_AFTER);
    assert_eq!(gratuitous_sent(&defended), 2, "a new burst");
    assert_eq!(table.answering(), set(&["192.0.2.200"]));
}
