//! The echo function (RFC 5880 §6.4, §6.8.9): when Echo packets go, what their silence does,
//! and how the Control packets slow down around them.

use proptest::prelude::*;

use super::pair::{End, Pair};
use super::*;

/// Echo every 50 ms at most, and 50 ms offered to the remote.
fn echo() -> Config {
    Config {
        echo_transmit: Some(ms(50)),
        required_min_echo_rx: ms(50),
        ..Config::default()
    }
}

/// A packet from the remote offering to loop our Echo packets every `echo_rx` ms.
fn offering(state: State, echo_rx: u64) -> ControlPacket {
    ControlPacket {
        required_min_echo_rx: Interval::from_duration(ms(echo_rx)),
        ..remote(state)
    }
}

fn echoes(out: &[Output]) -> Vec<EchoPacket> {
    out.iter()
        .filter_map(|o| match o {
            Output::SendEcho(p) => Some(*p),
            _ => None,
        })
        .collect()
}

/// Up, with the remote offering `echo_rx` ms: the echo function just started.
fn echoing(echo_rx: u64) -> (Session, Vec<Output>) {
    let mut s = Session::up(echo());
    let out = s.receive(offering(State::Up, echo_rx));
    (s, out)
}

#[test]
fn nothing_is_echoed_while_the_remote_offers_no_echo_interval() {
    let mut s = Session::up(echo());
    let mut out = s.receive(remote(State::Up));
    for _ in 0..5 {
        out.extend(s.expire(Timer::Transmit));
    }
    assert!(echoes(&out).is_empty(), "{out:#?}");
    assert_eq!(s.machine.deadline(Timer::EchoTransmit), None);
    assert_eq!(s.machine.deadline(Timer::EchoDetection), None);
    let snapshot = s.machine.snapshot();
    assert_eq!(snapshot.echo_interval, None);
    assert_eq!(snapshot.required_min_rx, ms(300), "control rate unchanged");
}

#[test]
fn nothing_is_echoed_before_the_session_is_up() {
    let mut s = Session::started(echo());
    let out = s.receive(offering(State::Down, 50));
    assert_eq!(s.state(), State::Init);
    assert!(echoes(&out).is_empty(), "{out:#?}");
    assert_eq!(s.machine.deadline(Timer::EchoTransmit), None);
}

#[test]
fn a_session_without_echo_mode_never_echoes_but_says_what_it_loops() {
    let config = Config {
        required_min_echo_rx: ms(70),
        ..Config::default()
    };
    let mut s = Session::up(config);
    let out = s.receive(offering(State::Up, 50));
    assert!(echoes(&out).is_empty());
    assert_eq!(s.next_packet().required_min_echo_rx, Interval(70_000));
    let plain = Session::up(Config::default()).machine.snapshot();
    assert_eq!(plain.remote_min_echo_rx, Duration::ZERO);
}

#[test]
fn echo_starts_once_up_at_the_slower_of_our_interval_and_the_remotes() {
    for (offered, interval) in [(20, 50), (50, 50), (80, 80)] {
        let (s, out) = echoing(offered);
        let sent = echoes(&out);
        assert_eq!(sent.len(), 1, "the first Echo goes at once: {out:#?}");
        assert_eq!(sent[0].discriminator, OUR_DISCR);
        let snapshot = s.machine.snapshot();
        assert_eq!(
            snapshot.echo_interval,
            Some(ms(interval)),
            "{offered} offered"
        );
        assert_eq!(snapshot.echo_detection_time, Some(ms(3 * interval)));
        let next = armed(&out, Timer::EchoTransmit).expect("the next Echo is timed") - s.now;
        assert!(
            next >= ms(interval) * 3 / 4 && next <= ms(interval),
            "{next:?} for {interval} ms"
        );
        assert_eq!(
            armed(&out, Timer::EchoDetection),
            Some(s.now + ms(3 * interval))
        );
    }
}

#[test]
fn echo_packets_count_up_and_keep_their_interval_less_jitter() {
    let (mut s, out) = echoing(50);
    let mut last = echoes(&out)[0];
    for _ in 0..20 {
        let before = s.now;
        let out = s.expire(Timer::EchoTransmit);
        let sent = echoes(&out);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].sequence, last.sequence.wrapping_add(1));
        let gap = s.now - before;
        assert!(gap >= ms(37) && gap <= ms(50), "{gap:?}");
        last = sent[0];
    }
}

#[test]
fn an_echo_that_comes_back_rearms_the_echo_detection_time() {
    let (mut s, out) = echoing(50);
    let first = echoes(&out)[0];
    s.advance(ms(100));
    let out = s.feed(Input::EchoReturned(first));
    assert_eq!(armed(&out, Timer::EchoDetection), Some(s.now + ms(150)));
}

#[test]
fn echoes_not_ours_or_too_old_do_not_keep_the_session_up() {
    let (mut s, out) = echoing(50);
    let first = echoes(&out)[0];
    let foreign = EchoPacket {
        discriminator: THEIR_DISCR,
        ..first
    };
    let future = EchoPacket {
        sequence: first.sequence.wrapping_add(1),
        ..first
    };
    for stray in [foreign, future] {
        assert_eq!(
            armed(&s.feed(Input::EchoReturned(stray)), Timer::EchoDetection),
            None
        );
    }
    // Six more sent (2 × Detect Mult): the first is now too old to count.
    for _ in 0..6 {
        s.expire(Timer::EchoTransmit);
    }
    assert_eq!(
        armed(&s.feed(Input::EchoReturned(first)), Timer::EchoDetection),
        None
    );
}

#[test]
fn echoes_that_stop_coming_back_take_the_session_down_with_echo_function_failed() {
    let (mut s, _) = echoing(50);
    let start = s.now;
    let out = s.expire(Timer::EchoDetection);
    assert_eq!(s.now - start, ms(150), "3 × 50 ms without an Echo back");
    let t = transition(&out).expect("a state change");
    assert_eq!((t.from, t.to), (State::Up, State::Down));
    assert_eq!(t.diag, Diagnostic::EchoFunctionFailed);
    assert!(t.is_path_failure(), "BGP is taken down for it");
    assert!(cancelled(&out, Timer::EchoTransmit));
    assert_eq!(s.machine.snapshot().echo_interval, None);
    // The remote hears why, and Control packets go on.
    let told = s.next_packet();
    assert_eq!(
        (told.state, told.diag),
        (State::Down, Diagnostic::EchoFunctionFailed)
    );
    assert_eq!(
        told.desired_min_tx,
        Interval(1_000_000),
        "slow again while not Up"
    );
}

#[test]
fn while_echo_runs_the_remote_is_asked_to_slow_its_control_packets_to_a_second() {
    let (mut s, _) = echoing(50);
    assert!(s.machine.is_polling());
    let poll = s.next_packet();
    assert!(poll.poll);
    assert_eq!(poll.required_min_rx, Interval(1_000_000));
    assert_eq!(poll.desired_min_tx, Interval(300_000), "our own rate stays");
    // A longer wait counts at once: the remote may slow down as soon as it hears.
    assert_eq!(s.machine.detection_time(), Some(ms(3000)));
    s.receive(ControlPacket {
        final_: true,
        ..offering(State::Up, 50)
    });
    assert!(!s.machine.is_polling());
    assert_eq!(s.next_packet().required_min_rx, Interval(1_000_000));
    assert_eq!(s.machine.transmit_interval(), ms(300));
}

#[test]
fn a_slower_configured_receive_interval_is_kept_while_echo_runs() {
    let mut s = Session::up(Config {
        required_min_rx: ms(2000),
        ..echo()
    });
    s.receive(offering(State::Up, 50));
    assert_eq!(s.machine.snapshot().required_min_rx, ms(2000));
}

#[test]
fn when_the_remote_withdraws_its_offer_echo_stops_and_the_receive_interval_returns_by_poll() {
    let (mut s, _) = echoing(50);
    s.next_packet();
    s.receive(ControlPacket {
        final_: true,
        ..offering(State::Up, 50)
    });
    let out = s.receive(remote(State::Up));
    assert!(cancelled(&out, Timer::EchoTransmit) && cancelled(&out, Timer::EchoDetection));
    assert!(echoes(&out).is_empty());
    let poll = s.next_packet();
    assert!(poll.poll);
    assert_eq!(poll.required_min_rx, Interval(300_000));
    // The shorter wait only once the remote has answered (§6.8.3).
    assert_eq!(s.machine.detection_time(), Some(ms(3000)));
    s.receive(ControlPacket {
        final_: true,
        ..remote(State::Up)
    });
    assert_eq!(s.machine.detection_time(), Some(ms(900)));
}

#[test]
fn intervals_changed_after_the_poll_went_out_are_polled_again() {
    let (mut s, _) = echoing(50);
    assert!(s.next_packet().poll, "raised to a second");
    // The offer is withdrawn before the answer: that Final does not cover the lowering.
    s.receive(remote(State::Up));
    s.receive(ControlPacket {
        final_: true,
        ..remote(State::Up)
    });
    assert!(s.machine.is_polling());
    assert_eq!(s.machine.detection_time(), Some(ms(3000)));
    let again = s.next_packet();
    assert!(again.poll);
    assert_eq!(again.required_min_rx, Interval(300_000));
    s.receive(ControlPacket {
        final_: true,
        ..remote(State::Up)
    });
    assert!(!s.machine.is_polling());
    assert_eq!(s.machine.detection_time(), Some(ms(900)));
}

#[test]
fn a_new_offer_retimes_the_running_echo() {
    let (mut s, _) = echoing(50);
    let out = s.receive(offering(State::Up, 200));
    assert_eq!(s.machine.snapshot().echo_interval, Some(ms(200)));
    assert_eq!(armed(&out, Timer::EchoDetection), Some(s.now + ms(600)));
    let next = armed(&out, Timer::EchoTransmit).expect("retimed") - s.now;
    assert!(next >= ms(150) && next <= ms(200), "{next:?}");
}

#[test]
fn admin_down_stops_echo() {
    let (mut s, _) = echoing(50);
    let out = s.feed(Input::AdminDown);
    assert!(cancelled(&out, Timer::EchoTransmit) && cancelled(&out, Timer::EchoDetection));
    assert!(echoes(&out).is_empty());
}

#[test]
fn an_echo_interval_that_cannot_run_is_refused() {
    let config = Config {
        echo_transmit: Some(Duration::ZERO),
        ..Config::default()
    };
    assert_eq!(
        Machine::new(config, discr(1), 0).map(|_| ()),
        Err(ConfigError::ZeroEchoInterval)
    );
    let mut m = Machine::new(echo(), discr(1), 0).expect("valid");
    assert_eq!(
        m.set_echo(None, Duration::from_secs(5000)),
        Err(ConfigError::IntervalTooLong {
            field: "echo receive",
            interval: Duration::from_secs(5000)
        })
    );
    assert_eq!(m.set_echo(None, Duration::ZERO), Ok(()));
    assert_eq!(m.config().echo_transmit, None);
}

#[test]
fn two_ends_echo_through_each_others_forwarding_and_a_lost_echo_path_fails_only_echo() {
    let mut pair = Pair::new(echo(), echo());
    pair.run_until(ms(5000));
    for end in [End::A, End::B] {
        let m = pair.machine(end).snapshot();
        assert_eq!(m.state, State::Up, "{end:?}");
        assert_eq!(m.echo_interval, Some(ms(50)), "{end:?}");
        // Both run echo: each asked the other for a second between Control packets.
        assert_eq!(m.transmit_interval, ms(1000), "{end:?}");
    }
    assert!(pair.echoes[0] > 40, "{:?}", pair.echoes);
    // A's Echo packets are no longer looped; Control packets still pass both ways.
    pair.echo_cut = [true, false];
    let cut_at = pair.elapsed();
    // A's next Control packet, at most a second later, tells B.
    pair.run_until(ms(7000));
    let (at, _, t) = *pair
        .transitions
        .iter()
        .find(|(at, e, t)| *at > cut_at && *e == End::A && t.to == State::Down)
        .expect("A went down");
    assert_eq!(t.diag, Diagnostic::EchoFunctionFailed);
    assert!(at - cut_at <= ms(152), "3 × 50 ms: took {:?}", at - cut_at);
    let b = pair
        .transitions
        .iter()
        .find(|(at, e, t)| *at > cut_at && *e == End::B && t.to == State::Down)
        .expect("B follows A down");
    assert_eq!(b.2.diag, Diagnostic::NeighborSignaledDown);
}

#[derive(Debug, Clone)]
enum Step {
    Receive {
        state: State,
        echo_rx: u32,
        final_: bool,
    },
    Fire(Timer),
    EchoBack,
    AdminDown,
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    let state = prop_oneof![Just(State::Down), Just(State::Init), Just(State::Up)];
    let echo_rx = prop_oneof![Just(0u32), Just(20_000), Just(50_000), Just(300_000)];
    prop_oneof![
        4 => (state, echo_rx, any::<bool>())
            .prop_map(|(state, echo_rx, final_)| Step::Receive { state, echo_rx, final_ }),
        4 => prop_oneof![
            Just(Timer::Transmit),
            Just(Timer::Detection),
            Just(Timer::EchoTransmit),
            Just(Timer::EchoDetection),
        ].prop_map(Step::Fire),
        3 => Just(Step::EchoBack),
        1 => Just(Step::AdminDown),
        2 => (0u64..400).prop_map(Step::Wait),
    ]
}

proptest! {
    #[test]
    fn echo_packets_go_only_while_up_and_offered_and_only_echo_silence_says_echo_failed(
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let mut s = Session::started(echo());
        let mut last_echo: Option<EchoPacket> = None;
        for step in steps {
            let fired = matches!(step, Step::Fire(Timer::EchoDetection));
            let out = match step {
                Step::Receive { state, echo_rx, final_ } => s.receive(ControlPacket {
                    final_,
                    required_min_echo_rx: Interval(echo_rx),
                    ..remote(state)
                }),
                Step::Fire(timer) => {
                    if s.machine.deadline(timer).is_none() {
                        continue;
                    }
                    s.expire(timer)
                }
                Step::EchoBack => match last_echo {
                    Some(p) => s.feed(Input::EchoReturned(p)),
                    None => continue,
                },
                Step::AdminDown => s.feed(Input::AdminDown),
                Step::Wait(n) => {
                    s.advance(ms(n));
                    continue;
                }
            };
            let snapshot = s.machine.snapshot();
            let sent = echoes(&out);
            if !sent.is_empty() {
                prop_assert_eq!(snapshot.state, State::Up);
                prop_assert!(!snapshot.remote_min_echo_rx.is_zero());
                last_echo = sent.last().copied();
            }
            prop_assert_eq!(
                snapshot.echo_interval.is_some(),
                s.machine.deadline(Timer::EchoTransmit).is_some()
            );
            if let Some(interval) = snapshot.echo_interval {
                prop_assert!(interval >= ms(50) && interval >= snapshot.remote_min_echo_rx);
                prop_assert!(snapshot.required_min_rx >= ms(1000));
            }
            let echo_failed = transition(&out)
                .is_some_and(|t| t.from == State::Up && t.diag == Diagnostic::EchoFunctionFailed);
            prop_assert_eq!(echo_failed, fired);
        }
    }
}
