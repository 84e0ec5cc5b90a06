//! Property: whatever the remote sends and whenever the timers fire, every packet the
//! machine sends is one the codec accepts (so a peer does too), never carries P and F
//! together, and follows the last periodic one after at least 75 % of the shortest interval
//! agreed in between.

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Step {
    Receive(ControlPacket),
    Transmit,
    Detect,
    AdminDown,
    Start,
    Wait(u64),
}

fn state() -> impl Strategy<Value = State> {
    prop_oneof![
        Just(State::AdminDown),
        Just(State::Down),
        Just(State::Init),
        Just(State::Up),
    ]
}

fn from_remote() -> impl Strategy<Value = ControlPacket> {
    (
        state(),
        0u8..3,
        any::<bool>(),
        1u8..6,
        prop_oneof![Just(0u32), Just(OUR_DISCR), Just(OUR_DISCR + 1)],
        prop_oneof![Just(0u32), Just(50_000u32), Just(300_000), Just(2_000_000)],
        prop_oneof![Just(50_000u32), Just(300_000), Just(1_000_000)],
    )
        .prop_filter_map(
            "the codec refuses it",
            |(state, pf, demand, detect_mult, yours, rx, tx)| {
                let packet = ControlPacket {
                    poll: pf == 1,
                    final_: pf == 2,
                    demand,
                    detect_mult,
                    your_discriminator: yours,
                    required_min_rx: Interval(rx),
                    desired_min_tx: Interval(tx),
                    ..remote(state)
                };
                ControlPacket::decode(&packet.encode()).ok()
            },
        )
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => from_remote().prop_map(Step::Receive),
        4 => Just(Step::Transmit),
        1 => Just(Step::Detect),
        1 => Just(Step::AdminDown),
        1 => Just(Step::Start),
        2 => (0u64..1500).prop_map(Step::Wait),
    ]
}

proptest! {
    #[test]
    fn every_packet_sent_decodes_and_periodic_ones_keep_their_spacing(
        passive in any::<bool>(),
        steps in proptest::collection::vec(step(), 1..80),
    ) {
        let mut s = Session::started(Config { passive, ..Config::default() });
        // When the last periodic packet went out, and the shortest interval since.
        let mut last_periodic: Option<(Instant, Duration)> = None;
        for step in steps {
            let out = match step {
                Step::Receive(p) => s.receive(p),
                Step::Transmit | Step::Detect => {
                    let timer = if matches!(step, Step::Transmit) {
                        Timer::Transmit
                    } else {
                        Timer::Detection
                    };
                    if s.machine.deadline(timer).is_none() {
                        continue;
                    }
                    let out = s.expire(timer);
                    if timer == Timer::Transmit && !sent(&out).is_empty() {
                        if let Some((at, shortest)) = last_periodic {
                            let floor = shortest * 3 / 4;
                            prop_assert!(
                                s.now - at >= floor,
                                "{:?} after the last, below {floor:?}", s.now - at
                            );
                        }
                        last_periodic = Some((s.now, s.machine.transmit_interval()));
                    }
                    out
                }
                Step::AdminDown => s.feed(Input::AdminDown),
                Step::Start => s.feed(Input::Start),
                Step::Wait(n) => {
                    s.advance(ms(n));
                    continue;
                }
            };
            if let Some((_, shortest)) = &mut last_periodic {
                *shortest = (*shortest).min(s.machine.transmit_interval());
            }
            for packet in sent(&out) {
                prop_assert_eq!(ControlPacket::decode(&packet.encode()), Ok(packet));
                prop_assert!(!(packet.poll && packet.final_));
                prop_assert_eq!(packet.my_discriminator, OUR_DISCR);
            }
        }
    }
}
