//! The protocol on a simulated network: joins, deaths, leaves, refutations, keys, traffic,
//! restarts, partitions, duplicate names and replays.

use std::collections::BTreeMap;
use std::time::Duration;

use super::sim::{Event, FIRST_INCARNATION, KEY, Sim, addr, name};
use crate::membership::auth::Key;
use crate::membership::wire::{DecodeError, Message, Packet, State};
use crate::membership::{DownReason, DropReason, MembershipSettings};

fn defaults() -> MembershipSettings {
    MembershipSettings::new("defaults")
}

fn all(n: usize) -> Vec<usize> {
    (0..n).collect()
}

fn except(n: usize, gone: usize) -> Vec<usize> {
    (0..n).filter(|&i| i != gone).collect()
}

fn no_down_events(sim: &Sim) -> bool {
    sim.nodes
        .iter()
        .all(|n| !n.events.iter().any(|(_, e)| matches!(e, Event::Down(..))))
}

#[test]
fn every_member_sees_every_other_one_network_delay_after_a_joint_start() {
    for n in [3, 10, 50] {
        let mut sim = Sim::new(n, 1);
        sim.start_all();
        let took = sim
            .run_until(Duration::from_secs(1), |s| s.all_see(&all(n), &all(n)))
            .expect("the cluster converges");
        assert!(took <= sim.latency, "{n} nodes converged in {took:?}");
    }
}

#[test]
fn a_node_that_knows_only_one_seed_learns_the_cluster_and_the_cluster_learns_it() {
    let n = 10;
    let mut sim = Sim::new(n, 23);
    let cluster = except(n, 9);
    for &i in &cluster {
        let seeds = cluster
            .iter()
            .filter(|&&j| j != i)
            .map(|&j| (name(j), addr(j)))
            .collect();
        sim.start_with(i, FIRST_INCARNATION + i as u64, seeds);
    }
    sim.run_until(Duration::from_secs(1), |s| s.all_see(&cluster, &cluster))
        .expect("the first nine converge");
    sim.run_for(Duration::from_secs(2));

    sim.start_with(
        9,
        FIRST_INCARNATION + 9,
        BTreeMap::from([(name(0), addr(0))]),
    );
    let took = sim
        .run_until(Duration::from_secs(3), |s| s.all_see(&all(n), &all(n)))
        .expect("the newcomer and the cluster learn each other");
    assert!(took <= Duration::from_secs(1), "took {took:?}");
}

/// Kills a random member of a converged cluster at a random time, `trials` times; returns how
/// long every other member took to drop it, sorted.
fn detection_times(n: usize, trials: u64) -> Vec<Duration> {
    let period = defaults().probe_period;
    let mut times: Vec<Duration> = (0..trials)
        .map(|trial| {
            let mut sim = Sim::converged(n, trial);
            let warmup = Duration::from_secs(1) + sim.random_duration(period * 2);
            sim.run_for(warmup);
            let victim = sim.random_index(n);
            sim.kill(victim);
            let took = sim
                .run_until(Duration::from_secs(10), |s| s.nobody_sees(victim))
                .expect("the killed member is dropped");
            let rest = except(n, victim);
            assert!(
                sim.all_see(&rest, &rest),
                "only the killed member is dropped"
            );
            for &i in &rest {
                let dead = Event::Down(name(victim), DownReason::Dead);
                assert!(sim.nodes[i].saw(&dead), "{} saw {victim} die", name(i));
            }
            took
        })
        .collect();
    times.sort();
    times
}

#[test]
fn a_killed_member_is_declared_dead_by_every_member_within_the_bound() {
    let limit = defaults().detection_bound() + Sim::new(0, 0).latency;
    for (n, trials) in [(3, 60), (10, 60), (50, 20)] {
        let times = detection_times(n, trials);
        let (median, worst) = (times[times.len() / 2], times[times.len() - 1]);
        eprintln!("{n} nodes, {trials} kills: median {median:?}, worst {worst:?}, bound {limit:?}");
        assert!(worst <= limit, "{n} nodes: worst {worst:?} > {limit:?}");
    }
}

#[test]
fn a_leaving_member_is_dropped_by_every_member_one_network_delay_later() {
    for n in [3, 10, 50] {
        let mut sim = Sim::converged(n, 7);
        sim.run_for(Duration::from_millis(333));
        let leaver = n / 2;
        sim.act(leaver, |swim, now| swim.leave(now));
        let took = sim
            .run_until(Duration::from_secs(1), |s| s.nobody_sees(leaver))
            .expect("the leaver is dropped");
        assert!(took <= sim.latency, "{n} nodes: took {took:?}");
        for i in except(n, leaver) {
            assert!(sim.nodes[i].saw(&Event::Down(name(leaver), DownReason::Left)));
        }
        assert!(sim.nodes[leaver].swim().live().is_empty());
        sim.run_for(Duration::from_secs(2));
        assert!(
            sim.all_see(&except(n, leaver), &except(n, leaver)),
            "nobody else is lost"
        );
    }
}

#[test]
fn a_suspected_member_that_is_alive_refutes_and_is_never_declared_dead() {
    let n = 10;
    let x = 4;
    let mut sim = Sim::converged(n, 3);
    sim.run_for(Duration::from_secs(1));
    let before = sim.nodes[x].swim().incarnation();

    // Long enough for its predecessor's probe to fail, shorter than the suspicion timeout.
    sim.isolate(x);
    sim.run_for(defaults().probe_period * 3);
    sim.blocked.clear();
    sim.run_for(Duration::from_secs(3));

    let suspect = Event::Suspect(name(x));
    assert!(
        sim.nodes.iter().any(|node| node.saw(&suspect)),
        "it was suspected"
    );
    assert!(sim.nodes[x].swim().incarnation() > before, "it refuted");
    assert!(no_down_events(&sim), "nobody was declared dead");
    assert!(sim.all_see(&all(n), &all(n)));
}

#[test]
fn datagrams_sealed_with_another_key_are_dropped_and_counted() {
    let mut sim = Sim::new(4, 5);
    sim.nodes[3].key = b"another key".to_vec();
    sim.start_all();
    sim.run_for(Duration::from_secs(2));
    let honest = [0, 1, 2];
    assert!(
        sim.all_see(&honest, &honest),
        "the outsider is never admitted"
    );
    assert!(sim.all_see(&[3], &[3]), "nor does it admit anyone");
    for i in honest {
        let unknown_key = DropReason::Decode(DecodeError::UnknownKey);
        assert!(sim.nodes[i].dropped(unknown_key) > 0);
    }
}

#[test]
fn a_tampered_datagram_is_dropped_as_a_bad_tag() {
    let mut sim = Sim::converged(3, 5);
    sim.capture = Some(Vec::new());
    sim.run_for(Duration::from_millis(300));
    let captured = sim.capture.take().expect("capturing");
    let (from, _, bytes) = captured
        .into_iter()
        .find(|(_, to, _)| *to == 0)
        .expect("node 0 got datagrams");
    let mut tampered = bytes;
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    sim.inject(0, addr(from), &tampered);
    assert_eq!(
        sim.nodes[0].dropped(DropReason::Decode(DecodeError::BadTag)),
        1
    );
}

#[test]
fn rotating_the_key_one_node_at_a_time_loses_no_member() {
    let n = 5;
    let window = Duration::from_secs(3);
    let mut sim = Sim::with_settings(n, 9, |s| s.key_rotation_window = window);
    sim.start_all();
    sim.run_until(Duration::from_secs(1), |s| s.all_see(&all(n), &all(n)))
        .expect("converges");
    for i in 0..n {
        sim.act(i, |swim, now| {
            swim.set_key(b"the new key", now);
            Vec::new()
        });
        sim.nodes[i].key = b"the new key".to_vec();
        sim.run_for(Duration::from_millis(400));
    }
    sim.run_for(window * 2);
    assert!(no_down_events(&sim));
    assert!(sim.all_see(&all(n), &all(n)));

    // Two windows later only the new key opens: a datagram sealed with the old one is refused.
    let old = Packet {
        sender: name(1),
        incarnation: FIRST_INCARNATION + 1,
        seq: u64::MAX,
        message: Message::Gossip,
        gossip: Vec::new(),
    }
    .seal(&Key::new(KEY));
    sim.inject(0, addr(1), &old);
    let unknown_key = DropReason::Decode(DecodeError::UnknownKey);
    assert_eq!(sim.nodes[0].dropped(unknown_key), 1);
}

#[test]
fn datagrams_per_member_per_period_stay_constant_as_the_cluster_grows() {
    let periods = 100;
    let mut averages = Vec::new();
    for n in [5, 20, 50] {
        let mut sim = Sim::converged(n, 11);
        sim.run_for(Duration::from_secs(2));
        let before: Vec<u64> = sim.nodes.iter().map(|node| node.total_sent()).collect();
        sim.run_for(defaults().probe_period * periods);
        let sent: Vec<u64> = sim
            .nodes
            .iter()
            .zip(&before)
            .map(|(node, before)| node.total_sent() - before)
            .collect();
        let average = sent.iter().sum::<u64>() as f64 / (n as f64 * f64::from(periods));
        let busiest = *sent.iter().max().expect("nodes") as f64 / f64::from(periods);
        eprintln!("{n} nodes: {average:.2} datagrams per member per period, busiest {busiest:.2}");
        assert!(average <= 2.2, "{n} nodes: {average} per member per period");
        assert!(
            busiest <= 3.0,
            "{n} nodes: busiest member sent {busiest} per period"
        );
        averages.push(average);
    }
    assert!(
        averages[2] <= averages[0] + 0.1,
        "grows with the cluster: {averages:?}"
    );
}

#[test]
fn a_restarted_member_rejoins_as_soon_as_it_starts() {
    let n = 10;
    let mut sim = Sim::converged(n, 13);
    sim.kill(6);
    sim.run_until(Duration::from_secs(3), |s| s.nobody_sees(6))
        .expect("declared dead");
    sim.run_for(Duration::from_secs(1));
    let seeds = sim.seeds_of(6);
    sim.start_with(6, FIRST_INCARNATION + 1_000_000, seeds);
    let took = sim
        .run_until(Duration::from_secs(1), |s| s.all_see(&all(n), &all(n)))
        .expect("it rejoins");
    assert!(took <= sim.latency * 2, "took {took:?}");
}

#[test]
fn a_restarted_member_whose_clock_went_back_still_rejoins() {
    let n = 10;
    let mut sim = Sim::converged(n, 29);
    let old = sim.nodes[6].swim().incarnation();
    sim.kill(6);
    sim.run_until(Duration::from_secs(3), |s| s.nobody_sees(6))
        .expect("declared dead");
    let seeds = sim.seeds_of(6);
    sim.start_with(6, old - 1000, seeds);
    let took = sim
        .run_until(Duration::from_secs(2), |s| s.all_see(&all(n), &all(n)))
        .expect("it rejoins");
    assert!(took <= defaults().probe_period, "took {took:?}");
    assert!(sim.nodes[6].swim().incarnation() > old);
}

#[test]
fn both_sides_of_a_healed_partition_see_each_other_again() {
    let n = 10;
    let (a, b): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| i < 5);
    let mut sim = Sim::converged(n, 31);
    sim.partition(&a, &b);
    sim.run_until(Duration::from_secs(5), |s| {
        s.all_see(&a, &a) && s.all_see(&b, &b)
    })
    .expect("each side drops the other");
    sim.blocked.clear();
    let took = sim
        .run_until(Duration::from_secs(10), |s| s.all_see(&all(n), &all(n)))
        .expect("the partition heals");
    eprintln!("partition of 5+5 healed in {took:?}");
    assert!(took <= Duration::from_secs(3), "took {took:?}");
    sim.run_for(Duration::from_secs(3));
    assert!(sim.all_see(&all(n), &all(n)), "and stays healed");
}

#[test]
fn of_two_nodes_with_one_name_the_newest_incarnation_wins() {
    let mut sim = Sim::new(4, 17);
    // Node 3 claims node 2's name from another address, later and with a newer incarnation.
    sim.nodes[3].name = name(2);
    sim.nodes[3].settings.node_name = name(2);
    let seeds_of = |i: usize| -> BTreeMap<String, _> {
        (0..3)
            .filter(|&j| j != i)
            .map(|j| (name(j), addr(j)))
            .collect()
    };
    for i in 0..3 {
        sim.start_with(i, FIRST_INCARNATION + i as u64, seeds_of(i));
    }
    sim.run_for(Duration::from_secs(1));
    let newer = FIRST_INCARNATION + 1000;
    sim.start_with(3, newer, seeds_of(2));
    sim.run_for(Duration::from_secs(3));
    for i in [0, 1] {
        let entry = sim.nodes[i].swim().member(&name(2)).expect("known");
        assert_eq!((entry.addr, entry.state), (addr(3), State::Alive));
        assert!(entry.incarnation >= newer);
        let down = Event::Down(name(2), DownReason::Dead);
        assert!(!sim.nodes[i].saw(&down), "the name never flapped");
    }
}

#[test]
fn replayed_datagrams_of_a_dead_member_do_not_bring_it_back() {
    let n = 5;
    let mut sim = Sim::converged(n, 19);
    sim.capture = Some(Vec::new());
    sim.run_for(Duration::from_secs(1));
    let captured: Vec<(usize, Vec<u8>)> = sim
        .capture
        .take()
        .expect("capturing")
        .into_iter()
        .filter(|(from, _, _)| *from == 4)
        .map(|(_, to, bytes)| (to, bytes))
        .collect();
    assert!(!captured.is_empty());
    sim.kill(4);
    sim.run_until(Duration::from_secs(3), |s| s.nobody_sees(4))
        .expect("declared dead");
    for (to, bytes) in &captured {
        sim.inject(*to, addr(4), bytes);
    }
    let revived = sim.run_until(Duration::from_secs(2), |s| !s.nobody_sees(4));
    assert_eq!(revived, None, "a replay brought the dead member back");
    let replayed: usize = (0..4)
        .map(|i| sim.nodes[i].dropped(DropReason::Replayed))
        .sum();
    assert!(replayed >= captured.len(), "every replay is dropped");
}

#[test]
fn a_replayed_ping_is_not_answered() {
    let mut sim = Sim::converged(3, 37);
    sim.capture = Some(Vec::new());
    sim.run_for(Duration::from_millis(500));
    let (from, to, bytes) = sim
        .capture
        .take()
        .expect("capturing")
        .into_iter()
        .find(|(_, _, bytes)| {
            let keys = crate::membership::auth::Keyring::new(KEY);
            Packet::open(bytes, &keys, sim.now)
                .is_ok_and(|p| matches!(p.message, Message::Ping { .. }))
        })
        .expect("a ping was sent");
    let sent_before = sim.nodes[to].total_sent();
    sim.inject(to, addr(from), &bytes);
    assert_eq!(sim.nodes[to].dropped(DropReason::Replayed), 1);
    assert_eq!(sim.nodes[to].total_sent(), sent_before, "no ack");
}

#[test]
fn with_five_percent_loss_suspicions_are_refuted_and_a_killed_member_is_still_found_in_time() {
    let n = 10;
    let mut sim = Sim::converged(n, 41);
    sim.loss = 0.05;
    sim.run_for(Duration::from_secs(60));
    let suspicions: usize = sim
        .nodes
        .iter()
        .map(|node| {
            let suspect = |e: &&(_, Event)| matches!(e.1, Event::Suspect(_));
            node.events.iter().filter(suspect).count()
        })
        .sum();
    eprintln!("5% loss, {n} nodes, 60 s: {suspicions} suspicions, all refuted");
    assert!(suspicions > 0, "the loss caused suspicions");
    assert!(no_down_events(&sim), "a live member was declared dead");
    assert!(sim.all_see(&all(n), &all(n)));
    for victim in [2, 5, 8] {
        sim.kill(victim);
        let took = sim
            .run_until(Duration::from_secs(5), |s| s.nobody_sees(victim))
            .expect("the killed member is found");
        assert!(took <= Duration::from_secs(1), "took {took:?}");
    }
}

#[test]
fn beyond_the_urgent_fanout_gossip_spreads_a_death_in_well_under_a_second() {
    let (n, fanout) = (80, 8);
    let mut worst = Duration::ZERO;
    for trial in 0..4 {
        let mut sim = Sim::with_settings(n, trial, |s| s.urgent_fanout = fanout);
        sim.start_all();
        sim.run_until(Duration::from_secs(1), |s| s.all_see(&all(n), &all(n)))
            .expect("converges");
        let warmup = Duration::from_secs(1) + sim.random_duration(defaults().probe_period * 2);
        sim.run_for(warmup);
        let victim = sim.random_index(n);
        sim.kill(victim);
        let took = sim
            .run_until(Duration::from_secs(10), |s| s.nobody_sees(victim))
            .expect("the killed member is dropped");
        worst = worst.max(took);
    }
    eprintln!("{n} nodes, urgent fanout {fanout}: worst {worst:?}");
    assert!(worst <= Duration::from_secs(1), "worst {worst:?}");
}
