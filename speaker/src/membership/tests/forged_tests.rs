//! A member may say only of itself that it leaves: a Leave in another member's name, or from
//! an address other than the one the member is known at, takes nobody out of the membership.

use std::time::Duration;

use super::sim::{Event, KEY, Sim, addr, name};
use crate::membership::auth::Key;
use crate::membership::wire::{Entry, Message, Packet, State};
use crate::membership::{DownReason, DropReason};

/// Whether any member saw `victim` go down, for any reason.
fn someone_dropped(sim: &Sim, victim: usize) -> bool {
    sim.nodes.iter().any(|n| {
        n.saw(&Event::Down(name(victim), DownReason::Left))
            || n.saw(&Event::Down(name(victim), DownReason::Dead))
    })
}

#[test]
fn a_leave_in_a_members_name_from_another_address_is_dropped() {
    let n = 4;
    let mut sim = Sim::converged(n, 41);
    sim.run_for(Duration::from_millis(300));
    let victim = 2;
    let known = sim.nodes[0]
        .swim()
        .member(&name(victim))
        .expect("the victim is known");
    // Sealed with the shared key (a key holder, or anyone while no key is set), with the
    // victim's name and incarnation, sent from the address of another node.
    let forged = Packet {
        sender: name(victim),
        incarnation: known.incarnation,
        seq: u64::MAX / 2,
        message: Message::Leave,
        gossip: Vec::new(),
    }
    .seal(&Key::new(KEY));
    sim.inject(0, addr(3), &forged);
    assert_eq!(sim.nodes[0].dropped(DropReason::ForgedLeave), 1);
    sim.run_for(Duration::from_secs(2));
    assert!(
        !someone_dropped(&sim, victim),
        "a forged leave took the victim out"
    );
    assert!(sim.nodes[0].swim().is_live(&name(victim)));
}

#[test]
fn another_members_word_that_a_member_left_is_only_a_suspicion_it_refutes() {
    let n = 4;
    let mut sim = Sim::converged(n, 43);
    sim.run_for(Duration::from_millis(300));
    let (victim, liar) = (2, 3);
    let about = sim.nodes[1]
        .swim()
        .member(&name(victim))
        .expect("the victim is known");
    let forged = Packet {
        sender: name(liar),
        incarnation: sim.nodes[liar].swim().incarnation(),
        seq: u64::MAX / 2,
        message: Message::Gossip,
        gossip: vec![Entry {
            state: State::Left,
            ..about
        }],
    }
    .seal(&Key::new(KEY));
    sim.inject(1, addr(liar), &forged);
    sim.run_for(Duration::from_secs(2));
    assert!(
        !someone_dropped(&sim, victim),
        "gossip of a leave took the victim out"
    );
    for i in 0..n {
        assert!(
            sim.nodes[i].swim().is_live(&name(victim)),
            "{} sees the victim",
            name(i)
        );
    }
}

#[test]
fn a_real_leave_still_takes_the_member_out_at_once() {
    let n = 4;
    let mut sim = Sim::converged(n, 47);
    sim.run_for(Duration::from_millis(300));
    sim.act(1, |swim, now| swim.leave(now));
    let took = sim
        .run_until(Duration::from_secs(1), |s| s.nobody_sees(1))
        .expect("the leaver is dropped");
    assert!(took <= sim.latency, "took {took:?}");
    for i in [0, 2, 3] {
        assert!(sim.nodes[i].saw(&Event::Down(name(1), DownReason::Left)));
    }
}
