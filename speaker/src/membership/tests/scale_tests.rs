//! The membership at scale (issue #14): 1,000 and 5,000 members on the simulated network, with
//! the default settings. Each run starts every member (a millisecond apart, each with every
//! other as seed, as speakers do from the Node list), waits until all see all, runs a steady
//! minute at 1 % datagram loss — counting messages per member per second and live members
//! declared dead — and then kills members one at a time under the same loss, measuring from
//! each kill until the first member declares the victim dead and until the last one has dropped
//! it. Virtual time: the figures do not depend on the machine, only the run time does.
//!
//! The 1,000-member run is a test (its p99 detection must stay within a second); both sizes are
//! printed by `tests/bench/membership-scale.sh` into docs/scale.md. In debug builds they take
//! minutes, so they are `#[ignore]`d there and run by that script in release.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::sim::{Event, FIRST_INCARNATION, Sim};
use crate::membership::DownReason;

/// What one run measured.
struct Scale {
    members: usize,
    converged_after: Duration,
    steady: Duration,
    loss: f64,
    /// Datagrams sent per member per second in the steady run.
    sent_per_member_second: f64,
    /// Bytes sent per member per second in the steady run.
    bytes_per_member_second: f64,
    /// Live members declared dead in the steady run (each counted once).
    false_deaths: usize,
    suspicions: usize,
    /// Per kill: until the first member declared the victim dead.
    first: Vec<Duration>,
    /// Per kill: until no member saw the victim live any more.
    last: Vec<Duration>,
}

fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut v = values.to_vec();
    v.sort();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// Starts `n` members and runs until each sees all `n` (checked every 100 ms of virtual time).
fn start(n: usize, seed: u64) -> (Sim, Duration) {
    let mut sim = Sim::new(n, seed);
    let started = sim.now;
    for i in 0..n {
        sim.start(i);
        sim.run_for(Duration::from_millis(1));
    }
    let limit = started + Duration::from_secs(120);
    loop {
        if sim.nodes.iter().all(|node| node.swim().live().len() == n) {
            let took = sim.now - started;
            return (sim, took);
        }
        assert!(sim.now < limit, "{n} members did not converge in 120 s");
        sim.run_for(Duration::from_millis(100));
    }
}

/// Deaths of members in `alive` (never killed), as (name, time), each counted once however
/// many members saw it.
fn false_deaths(sim: &Sim, since: Instant, alive: &BTreeSet<String>) -> usize {
    let mut deaths: Vec<(String, Instant)> = sim
        .nodes
        .iter()
        .flat_map(|n| &n.events)
        .filter(|(at, _)| *at >= since)
        .filter_map(|(at, e)| match e {
            Event::Down(name, DownReason::Dead) if alive.contains(name) => {
                Some((name.clone(), *at))
            }
            _ => None,
        })
        .collect();
    deaths.sort();
    deaths.dedup_by(|b, a| a.0 == b.0 && b.1 - a.1 < Duration::from_secs(5));
    deaths.len()
}

fn measure(n: usize, seed: u64, loss: f64, steady: Duration, kills: usize) -> Scale {
    let (mut sim, converged_after) = start(n, seed);
    sim.loss = loss;
    // Let the joins' gossip die down before counting.
    sim.run_for(Duration::from_secs(5));
    let sent_before: u64 = sim.nodes.iter().map(|n| n.total_sent()).sum();
    let bytes_before = sim.bytes_sent;
    let steady_from = sim.now;
    sim.run_for(steady);
    let sent: u64 = sim.nodes.iter().map(|n| n.total_sent()).sum::<u64>() - sent_before;
    let bytes = sim.bytes_sent - bytes_before;
    let per = (n as f64) * steady.as_secs_f64();
    let everyone: BTreeSet<String> = sim.nodes.iter().map(|n| n.name.clone()).collect();
    let false_deaths = false_deaths(&sim, steady_from, &everyone);
    let suspicions = sim
        .nodes
        .iter()
        .flat_map(|n| &n.events)
        .filter(|(at, e)| *at >= steady_from && matches!(e, Event::Suspect(_)))
        .count();

    let mut first = Vec::new();
    let mut last = Vec::new();
    for _ in 0..kills {
        let settle = Duration::from_secs(1) + sim.random_duration(Duration::from_millis(500));
        sim.run_for(settle);
        let victim = sim.random_index(n);
        let name = sim.nodes[victim].name.clone();
        let killed_at = sim.now;
        sim.kill(victim);
        // Checked every 10 ms of virtual time: the figures are rounded up to that.
        let mut gone = None;
        while sim.now - killed_at < Duration::from_secs(10) {
            sim.run_for(Duration::from_millis(10));
            if sim.nobody_sees(victim) {
                gone = Some(sim.now - killed_at);
                break;
            }
        }
        let gone =
            gone.unwrap_or_else(|| panic!("{name} was still seen live 10 s after its death"));
        let declared = sim
            .nodes
            .iter()
            .flat_map(|n| &n.events)
            .filter(|(at, e)| *at >= killed_at && *e == Event::Down(name.clone(), DownReason::Dead))
            .map(|(at, _)| *at - killed_at)
            .min()
            .expect("someone declared it dead");
        first.push(declared);
        last.push(gone);
        // Back, as a restarted speaker, before the next kill: with an incarnation above its
        // earlier run's, as the driver takes one from the clock. (Restarted at the same one,
        // its join pings were dropped as replays and it learned the others one seed retry at
        // a time, so a kill of its successor soon after went unprobed by the ring.)
        let incarnation = FIRST_INCARNATION + (n * (first.len() + 1) + victim) as u64;
        let seeds = sim.seeds_of(victim);
        sim.start_with(victim, incarnation, seeds);
        let back_by = sim.now + Duration::from_secs(10);
        while !sim.everyone_sees(victim) {
            assert!(sim.now < back_by, "{name} did not come back within 10 s");
            sim.run_for(Duration::from_millis(50));
        }
    }
    Scale {
        members: n,
        converged_after,
        steady,
        loss,
        sent_per_member_second: sent as f64 / per,
        bytes_per_member_second: bytes as f64 / per,
        false_deaths,
        suspicions,
        first,
        last,
    }
}

fn report(s: &Scale) {
    // One line the bench script picks up.
    eprintln!(
        "membership-scale: members={} converged_s={:.1} loss={} steady_s={} msgs_per_member_s={:.1} bytes_per_member_s={:.0} false_deaths={} suspicions={} kills={} first_p50_ms={} first_p99_ms={} last_p50_ms={} last_p99_ms={} last_max_ms={}",
        s.members,
        s.converged_after.as_secs_f64(),
        s.loss,
        s.steady.as_secs(),
        s.sent_per_member_second,
        s.bytes_per_member_second,
        s.false_deaths,
        s.suspicions,
        s.first.len(),
        percentile(&s.first, 0.5).as_millis(),
        percentile(&s.first, 0.99).as_millis(),
        percentile(&s.last, 0.5).as_millis(),
        percentile(&s.last, 0.99).as_millis(),
        percentile(&s.last, 1.0).as_millis(),
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "minutes in a debug build: tests/bench/membership-scale.sh runs it in release"
)]
fn a_thousand_members_at_one_percent_loss_find_a_death_within_a_second() {
    let s = measure(1000, 23, 0.01, Duration::from_secs(60), 50);
    report(&s);
    assert_eq!(s.false_deaths, 0, "live members declared dead");
    assert!(
        percentile(&s.last, 0.99) <= Duration::from_secs(1),
        "p99 until every member dropped the dead one: {:?}",
        percentile(&s.last, 0.99)
    );
}

#[test]
#[ignore = "5,000 members: tens of minutes; tests/bench/membership-scale.sh runs it in release"]
fn five_thousand_members_at_one_percent_loss() {
    let s = measure(5000, 29, 0.01, Duration::from_secs(30), 20);
    report(&s);
    assert_eq!(s.false_deaths, 0, "live members declared dead");
}

#[test]
#[ignore = "run by tests/bench/membership-scale.sh for its chart, with FERROLB_MEMBERSHIP_MEMBERS"]
fn members_at_the_size_the_bench_asks_for() {
    let n: usize = std::env::var("FERROLB_MEMBERSHIP_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let s = measure(n, 31, 0.01, Duration::from_secs(30), 20);
    report(&s);
    assert_eq!(s.false_deaths, 0, "live members declared dead");
}
