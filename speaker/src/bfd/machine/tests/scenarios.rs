//! Scenarios a user (or the remote) would notice, one per test.

use super::*;

#[test]
fn an_active_session_sends_at_once_then_about_every_second_while_down() {
    let mut s = Session::started(Config::default());
    assert_eq!(s.machine.deadline(Timer::Transmit), Some(s.now));
    let first = s.next_packet();
    assert_eq!(first.state, State::Down);
    assert_eq!(first.your_discriminator, 0);
    assert_eq!(first.my_discriminator, OUR_DISCR);
    assert_eq!(first.desired_min_tx, Interval(1_000_000), "slow start");
    assert_eq!(first.required_min_rx, Interval(300_000));
    assert_eq!(first.required_min_echo_rx, Interval::ZERO, "no echo");
    assert_eq!(first.detect_mult, 3);
    assert!(!first.poll && !first.final_ && !first.demand);
    for _ in 0..10 {
        let before = s.elapsed();
        s.next_packet();
        let gap = s.elapsed() - before;
        assert!(gap >= ms(750) && gap <= ms(1000), "{gap:?}");
    }
}

#[test]
fn a_slow_profile_is_not_sped_up_to_one_second() {
    let mut s = Session::started(Config {
        desired_min_tx: ms(2000),
        ..Config::default()
    });
    assert_eq!(s.next_packet().desired_min_tx, Interval(2_000_000));
}

#[test]
fn a_passive_session_stays_silent_until_the_remote_speaks() {
    let mut s = Session::started(Config {
        passive: true,
        ..Config::default()
    });
    assert_eq!(s.machine.deadline(Timer::Transmit), None);
    s.advance(ms(5000));
    let out = s.receive(remote(State::Down));
    assert_eq!(s.state(), State::Init);
    assert_eq!(armed(&out, Timer::Transmit), Some(s.now), "answers at once");
    let reply = s.next_packet();
    assert_eq!(reply.state, State::Init);
    assert_eq!(reply.your_discriminator, THEIR_DISCR);
}

#[test]
fn a_passive_session_falls_silent_again_when_the_remote_goes_away() {
    let mut s = Session::started(Config {
        passive: true,
        ..Config::default()
    });
    s.receive(remote(State::Down));
    let out = s.expire(Timer::Detection);
    assert!(cancelled(&out, Timer::Transmit), "{out:#?}");
    assert_eq!(s.machine.deadline(Timer::Transmit), None);
}

#[test]
fn going_up_polls_the_remote_with_the_configured_rate_until_it_answers_final() {
    let mut s = Session::up(Config::default());
    assert!(s.machine.is_polling());
    assert_eq!(s.machine.transmit_interval(), ms(300));
    let poll = s.next_packet();
    assert!(poll.poll && !poll.final_);
    assert_eq!(poll.state, State::Up);
    assert_eq!(poll.desired_min_tx, Interval(300_000));
    // Unanswered, the poll rides every periodic packet.
    assert!(s.next_packet().poll);
    s.receive(ControlPacket {
        final_: true,
        ..remote(State::Up)
    });
    assert!(!s.machine.is_polling());
    assert!(!s.next_packet().poll);
}

#[test]
fn the_faster_rate_moves_the_packet_already_due_earlier() {
    let mut s = Session::started(Config::default());
    s.next_packet();
    let slow_due = s.machine.deadline(Timer::Transmit).expect("armed");
    assert!(slow_due >= s.now + ms(750));
    s.receive(remote(State::Down));
    let out = s.receive(remote(State::Up));
    let due = armed(&out, Timer::Transmit).expect("re-armed");
    assert!(
        due <= s.now + ms(300) && due >= s.now + ms(225),
        "{:?}",
        due - s.now
    );
}

#[test]
fn a_poll_from_the_remote_is_answered_at_once_with_final() {
    let mut s = Session::up(Config::default());
    let out = s.receive(ControlPacket {
        poll: true,
        desired_min_tx: Interval(100_000),
        ..remote(State::Up)
    });
    let sent = sent(&out);
    assert_eq!(sent.len(), 1, "{out:#?}");
    assert!(
        sent[0].final_ && !sent[0].poll,
        "F without P: {:?}",
        sent[0]
    );
    assert_eq!(sent[0].state, State::Up);
    assert_eq!(sent[0].your_discriminator, THEIR_DISCR);
    // A poll of ours still open is not lost: it goes on the next periodic packet.
    assert!(s.next_packet().poll);
}

#[test]
fn detection_time_is_the_remote_detect_mult_times_the_agreed_interval() {
    let cases = [
        // (remote detect mult, remote desired min tx ms, expected detection ms)
        (3, 300, 900),
        (5, 100, 1500), // our 300 ms receive interval wins
        (5, 500, 2500), // the remote's slower transmit wins
        (1, 300, 300),
    ];
    for (mult, tx, expected) in cases {
        let mut s = Session::started(Config::default());
        let out = s.receive(ControlPacket {
            detect_mult: mult,
            desired_min_tx: Interval(tx * 1000),
            ..remote(State::Down)
        });
        assert_eq!(
            armed(&out, Timer::Detection),
            Some(s.now + ms(expected)),
            "mult {mult}, tx {tx}"
        );
    }
}

#[test]
fn each_packet_heard_pushes_the_detection_deadline_back() {
    let mut s = Session::up(Config::default());
    s.advance(ms(800));
    let out = s.receive(remote(State::Up));
    assert_eq!(armed(&out, Timer::Detection), Some(s.now + ms(900)));
    s.advance(ms(800));
    assert!(
        s.feed(Input::TimerExpired(Timer::Detection)).is_empty(),
        "not yet due"
    );
    assert_eq!(s.state(), State::Up);
}

#[test]
fn silence_for_a_detection_time_takes_an_up_session_down_and_forgets_the_remote() {
    let mut s = Session::up(Config::default());
    let out = s.expire(Timer::Detection);
    let t = transition(&out).expect("a state change");
    assert_eq!((t.from, t.to), (State::Up, State::Down));
    assert_eq!(t.diag, Diagnostic::ControlDetectionTimeExpired);
    assert!(t.is_path_failure());
    let snap = s.machine.snapshot();
    assert_eq!(snap.remote_discriminator, 0);
    assert_eq!(snap.detection_time, None);
    let next = s.next_packet();
    assert_eq!(next.state, State::Down);
    assert_eq!(next.diag, Diagnostic::ControlDetectionTimeExpired);
    assert_eq!(next.your_discriminator, 0);
    assert_eq!(next.desired_min_tx, Interval(1_000_000), "back to slow");
    assert!(!next.poll);
}

#[test]
fn a_remote_admin_down_takes_the_session_down_but_is_no_path_failure() {
    let mut s = Session::up(Config::default());
    let out = s.receive(ControlPacket {
        diag: Diagnostic::AdministrativelyDown,
        ..remote(State::AdminDown)
    });
    let t = transition(&out).expect("a state change");
    assert_eq!(t.to, State::Down);
    assert_eq!(t.diag, Diagnostic::NeighborSignaledDown);
    assert!(!t.is_path_failure());
    assert_eq!(
        s.machine.snapshot().remote_diag,
        Diagnostic::AdministrativelyDown
    );
}

#[test]
fn a_remote_that_restarted_takes_an_up_session_down_as_a_path_failure() {
    let mut s = Session::up(Config::default());
    let out = s.receive(ControlPacket {
        my_discriminator: 99,
        ..remote(State::Down)
    });
    let t = transition(&out).expect("a state change");
    assert_eq!(
        (t.to, t.diag),
        (State::Down, Diagnostic::NeighborSignaledDown)
    );
    assert!(t.is_path_failure());
    assert_eq!(s.machine.snapshot().remote_discriminator, 99);
}

#[test]
fn packets_naming_another_discriminator_are_ignored() {
    let mut s = Session::up(Config::default());
    let out = s.receive(ControlPacket {
        your_discriminator: OUR_DISCR + 1,
        ..remote(State::Down)
    });
    assert!(out.is_empty(), "{out:#?}");
    assert_eq!(s.state(), State::Up);
}

#[test]
fn jitter_keeps_every_interval_within_75_to_100_percent_and_90_with_a_multiplier_of_one() {
    for (mult, highest) in [(3u8, ms(300)), (1, ms(270))] {
        let mut s = Session::up(Config {
            detect_mult: mult,
            ..Config::default()
        });
        s.next_packet();
        let mut gaps = Vec::new();
        for _ in 0..200 {
            let before = s.now;
            s.next_packet();
            gaps.push(s.now - before);
        }
        let (lo, hi) = (
            gaps.iter().min().copied().unwrap_or_default(),
            gaps.iter().max().copied().unwrap_or_default(),
        );
        assert!(
            lo >= ms(225) && hi <= highest,
            "mult {mult}: {lo:?}..{hi:?}"
        );
        assert!(
            hi - lo > ms(30),
            "mult {mult}: hardly any jitter, {lo:?}..{hi:?}"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
    let schedule = |seed: u64| {
        let mut m = Machine::new(Config::default(), discr(OUR_DISCR), seed).expect("valid");
        let mut now = Instant::now();
        let start = now;
        m.handle(Input::Start, now);
        let mut at = Vec::new();
        for _ in 0..20 {
            let (_, deadline) = m.next_deadline().expect("armed");
            now = deadline;
            m.handle(Input::TimerExpired(Timer::Transmit), now);
            at.push(now - start);
        }
        at
    };
    assert_eq!(schedule(42), schedule(42));
    assert_ne!(schedule(42), schedule(43));
}

#[test]
fn a_required_min_rx_of_zero_from_the_remote_stops_our_packets_until_it_changes() {
    let mut s = Session::up(Config::default());
    let out = s.receive(ControlPacket {
        required_min_rx: Interval::ZERO,
        ..remote(State::Up)
    });
    assert!(cancelled(&out, Timer::Transmit), "{out:#?}");
    // A Poll is still answered.
    let out = s.receive(ControlPacket {
        required_min_rx: Interval::ZERO,
        poll: true,
        ..remote(State::Up)
    });
    assert_eq!(sent(&out).len(), 1);
    assert_eq!(s.machine.deadline(Timer::Transmit), None);
    let out = s.receive(remote(State::Up));
    assert_eq!(armed(&out, Timer::Transmit), Some(s.now));
}

#[test]
fn the_remote_asking_for_slower_packets_slows_ours() {
    let mut s = Session::up(Config::default());
    s.receive(ControlPacket {
        required_min_rx: Interval(2_000_000),
        ..remote(State::Up)
    });
    assert_eq!(s.machine.transmit_interval(), ms(2000));
    s.next_packet();
    let before = s.now;
    s.next_packet();
    assert!(s.now - before >= ms(1500));
}

#[test]
fn a_remote_in_demand_mode_gets_no_periodic_packets_once_both_are_up() {
    let mut s = Session::up(Config::default());
    // Our poll is open: it still goes out, periodically.
    s.receive(ControlPacket {
        demand: true,
        ..remote(State::Up)
    });
    assert!(s.next_packet().poll);
    let out = s.receive(ControlPacket {
        demand: true,
        final_: true,
        ..remote(State::Up)
    });
    assert!(cancelled(&out, Timer::Transmit), "{out:#?}");
    // Demand off again: periodic packets resume, an interval after the last one.
    let out = s.receive(remote(State::Up));
    let due = armed(&out, Timer::Transmit).expect("re-armed") - s.now;
    assert!(due >= ms(225) && due <= ms(300), "{due:?}");
}

#[test]
fn admin_down_tells_the_remote_at_once_and_for_a_detection_time_then_falls_silent() {
    let mut s = Session::up(Config::default());
    s.receive(ControlPacket {
        final_: true,
        ..remote(State::Up)
    });
    let started = s.now;
    let out = s.feed(Input::AdminDown);
    let t = transition(&out).expect("a state change");
    assert_eq!((t.from, t.to), (State::Up, State::AdminDown));
    assert_eq!(t.diag, Diagnostic::AdministrativelyDown);
    assert!(!t.is_path_failure());
    let first = sent(&out);
    assert_eq!(first.len(), 1, "at once: {out:#?}");
    assert_eq!(first[0].state, State::AdminDown);
    assert_eq!(first[0].diag, Diagnostic::AdministrativelyDown);
    let mut told = vec![s.now - started];
    while !s.machine.is_silent() {
        let out = s.expire(Timer::Transmit);
        for p in sent(&out) {
            assert_eq!(p.state, State::AdminDown);
            told.push(s.now - started);
        }
    }
    // The remote was keeping 3 × 300 ms; AdminDown is not Up, so the rate is the slow one.
    assert!(told.iter().all(|t| *t < ms(900)), "told at {told:?}");
    assert!(
        s.now - started >= ms(900),
        "silent already at {:?}",
        s.now - started
    );
    assert_eq!(
        s.machine.next_deadline().map(|(t, _)| t),
        Some(Timer::Detection)
    );
}

#[test]
fn admin_down_ignores_what_it_hears_and_answers_no_poll() {
    let mut s = Session::up(Config::default());
    s.feed(Input::AdminDown);
    let out = s.receive(ControlPacket {
        poll: true,
        ..remote(State::Up)
    });
    assert!(sent(&out).is_empty(), "{out:#?}");
    assert!(transition(&out).is_none());
    assert!(armed(&out, Timer::Detection).is_none());
    assert_eq!(s.state(), State::AdminDown);
}

#[test]
fn admin_down_before_the_remote_is_known_sends_nothing() {
    let mut s = Session::started(Config::default());
    let out = s.feed(Input::AdminDown);
    assert!(sent(&out).is_empty(), "{out:#?}");
    assert!(s.machine.is_silent());
}

#[test]
fn start_after_admin_down_brings_the_session_back_to_down_and_talking() {
    let mut s = Session::started(Config::default());
    s.feed(Input::AdminDown);
    let out = s.feed(Input::Start);
    let t = transition(&out).expect("a state change");
    assert_eq!((t.from, t.to), (State::AdminDown, State::Down));
    assert_eq!(armed(&out, Timer::Transmit), Some(s.now));
    assert_eq!(s.next_packet().state, State::Down);
}

#[test]
fn timer_expiries_before_their_deadline_or_unarmed_are_ignored() {
    let mut s = Session::started(Config::default());
    s.next_packet();
    assert!(s.feed(Input::TimerExpired(Timer::Transmit)).is_empty());
    assert!(s.feed(Input::TimerExpired(Timer::Detection)).is_empty());
}

#[test]
fn configs_that_cannot_run_are_refused() {
    let cases = [
        (
            Config {
                detect_mult: 0,
                ..Config::default()
            },
            ConfigError::ZeroDetectMult,
        ),
        (
            Config {
                desired_min_tx: Duration::ZERO,
                ..Config::default()
            },
            ConfigError::ZeroTransmitInterval,
        ),
        (
            Config {
                required_min_rx: Duration::from_secs(5000),
                ..Config::default()
            },
            ConfigError::IntervalTooLong {
                field: "receive",
                interval: Duration::from_secs(5000),
            },
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(
            Machine::new(config, discr(1), 0).map(|_| ()),
            Err(expected),
            "{config:?}"
        );
    }
}
