//! A session that stays safe when its peer misbehaves: a peer that resets every session at
//! once is retried less and less often, `keepaliveTime` is what the session sends at, and a
//! session without a hold time still has a liveness check (TCP keepalive).

use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Establishes at once whenever the FSM connects, and has the peer reset the session as soon as
/// it is up, for `run`; returns how many times the session came up.
fn flaps_against_a_resetting_peer(p: &mut Peer, run: Duration) -> usize {
    let mut ups = 0;
    let mut out = p.feed(Input::ManualStart);
    while p.elapsed() < run {
        if out.contains(&Output::Connect) {
            p.feed(Input::TcpConnectionConfirmed);
            p.receive(Message::Open(peer_open(PEER_AS, 90)));
            let up = p.receive(Message::Keepalive);
            assert!(established(&up).is_some());
            ups += 1;
            // The peer closes the session right away (a reset, or a NOTIFICATION).
            let gone = p.feed(Input::TcpConnectionFails);
            assert!(armed(&gone, Timer::IdleHold).is_some(), "{gone:#?}");
        }
        out = p.expire(Timer::IdleHold);
    }
    ups
}

#[test]
fn a_peer_that_resets_every_session_at_once_is_retried_ever_more_slowly() {
    let mut p = Peer::new(config());
    let ups = flaps_against_a_resetting_peer(&mut p, secs(600));
    // Without damping the session comes back every second: ~600 full re-advertisements in ten
    // minutes. With the delay growing to its one-minute cap it is at most a few per minute.
    assert!(ups <= 20, "{ups} sessions in 10 minutes");
    // And it keeps trying: at the cap, once a minute.
    assert!(ups >= 10, "{ups} sessions in 10 minutes");
}

#[test]
fn a_session_that_stays_up_for_the_stable_period_starts_over_at_the_initial_delay() {
    let mut p = Peer::new(config());
    flaps_against_a_resetting_peer(&mut p, secs(300));
    // Now the peer behaves: the session stays up past the stable period, then fails once.
    assert_eq!(p.state(), State::Connect);
    p.feed(Input::TcpConnectionConfirmed);
    p.receive(Message::Open(peer_open(PEER_AS, 90)));
    p.receive(Message::Keepalive);
    let stable = p.fsm.config().reset_backoff_after;
    for _ in 0..stable.as_secs() / 20 + 1 {
        p.advance(secs(20));
        p.receive(Message::Keepalive);
    }
    let out = p.feed(Input::TcpConnectionFails);
    assert_eq!(armed(&out, Timer::IdleHold), Some(p.now + secs(1)));
}

#[test]
fn keepalives_go_at_the_configured_keepalive_time_within_a_third_of_the_hold_time() {
    let mut c = config();
    c.keepalive_time = Some(secs(10));
    let mut p = Peer::new(c.clone());
    let out = p.establish_with(peer_open(PEER_AS, 90));
    assert_eq!(established(&out).and_then(|n| n.keepalive), Some(secs(10)));
    assert_eq!(armed(&out, Timer::Keepalive), Some(p.now + secs(10)));
    let out = p.expire(Timer::Keepalive);
    assert!(sends(&out, &Message::Keepalive));
    assert_eq!(armed(&out, Timer::Keepalive), Some(p.now + secs(10)));

    // A peer offering a 9 s hold time: 10 s would let its hold timer expire; a third it is.
    let mut p = Peer::new(c);
    let out = p.establish_with(peer_open(PEER_AS, 9));
    assert_eq!(armed(&out, Timer::Keepalive), Some(p.now + secs(3)));
}

#[test]
fn a_session_without_hold_time_asks_for_tcp_keepalives() {
    let mut p = Peer::new(config());
    let out = p.establish_with(peer_open(PEER_AS, 0));
    let negotiated = established(&out).expect("established");
    assert_eq!(negotiated.keepalive, None);
    let tcp = negotiated
        .tcp_keepalive
        .expect("TCP keepalive on a hold-time-0 session");
    // A router that rebooted answers the first probe with a reset; one that is gone is
    // declared so after the probes go unanswered: within a minute and a half either way.
    assert!(tcp.idle + tcp.interval * tcp.probes <= secs(90), "{tcp:?}");

    // keepaliveTime sets how long the connection may idle before the first probe.
    let mut c = config();
    c.keepalive_time = Some(secs(5));
    let mut p = Peer::new(c);
    let out = p.establish_with(peer_open(PEER_AS, 0));
    let tcp = established(&out)
        .and_then(|n| n.tcp_keepalive)
        .expect("set");
    assert_eq!(tcp.idle, secs(5));

    // With a hold time, BGP's own keepalives do the job.
    let mut p = Peer::new(config());
    let out = p.establish();
    assert_eq!(established(&out).and_then(|n| n.tcp_keepalive), None);
}
