//! `(bytes, value)` pairs both ways, one test per way a packet is refused, and properties:
//! every packet we can build round-trips, and no input makes the decoder panic.

use proptest::prelude::*;

use super::*;

fn both_ways(bytes: &[u8], packet: &ControlPacket) {
    assert_eq!(
        ControlPacket::decode(bytes),
        Ok(*packet),
        "decoding {bytes:02x?}"
    );
    assert_eq!(packet.encode().as_slice(), bytes, "encoding {packet:?}");
}

/// A Down packet as a session sends it before it knows the remote: slow 1 s transmit.
fn down_hello() -> ControlPacket {
    ControlPacket {
        diag: Diagnostic::None,
        state: State::Down,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 0x0102_0304,
        your_discriminator: 0,
        desired_min_tx: Interval(1_000_000),
        required_min_rx: Interval(300_000),
        required_min_echo_rx: Interval::ZERO,
    }
}

#[rustfmt::skip]
const DOWN_HELLO: [u8; 24] = [
    0x20,                   // version 1, diag 0
    0x40,                   // state Down, no flags
    3,                      // detect mult
    24,                     // length
    0x01, 0x02, 0x03, 0x04, // my discriminator
    0, 0, 0, 0,             // your discriminator: not known yet
    0x00, 0x0f, 0x42, 0x40, // desired min tx 1 000 000 µs
    0x00, 0x04, 0x93, 0xe0, // required min rx 300 000 µs
    0, 0, 0, 0,             // required min echo rx: no echo
];

#[test]
fn a_down_hello_round_trips() {
    both_ways(&DOWN_HELLO, &down_hello());
}

#[test]
fn an_up_poll_with_every_flag_we_may_see_round_trips() {
    let packet = ControlPacket {
        diag: Diagnostic::ControlDetectionTimeExpired,
        state: State::Up,
        poll: true,
        control_plane_independent: true,
        demand: true,
        your_discriminator: 0xdead_beef,
        desired_min_tx: Interval(300_000),
        required_min_echo_rx: Interval(50_000),
        ..down_hello()
    };
    #[rustfmt::skip]
    let bytes = [
        0x21,                   // version 1, diag 1
        0xea,                   // Up (11), P, C, D: 11 1 0 1 0 1 0
        3, 24,
        0x01, 0x02, 0x03, 0x04,
        0xde, 0xad, 0xbe, 0xef,
        0x00, 0x04, 0x93, 0xe0, // 300 000 µs
        0x00, 0x04, 0x93, 0xe0,
        0x00, 0x00, 0xc3, 0x50, // 50 000 µs
    ];
    both_ways(&bytes, &packet);
}

#[test]
fn a_final_from_init_with_the_neighbor_down_diagnostic_round_trips() {
    let packet = ControlPacket {
        diag: Diagnostic::NeighborSignaledDown,
        state: State::Init,
        final_: true,
        your_discriminator: 7,
        ..down_hello()
    };
    let mut bytes = DOWN_HELLO;
    bytes[0] = 0x23; // diag 3
    bytes[1] = 0x90; // Init (10), F: 10 0 1 0 0 0 0
    bytes[8..12].copy_from_slice(&[0, 0, 0, 7]);
    both_ways(&bytes, &packet);
}

#[test]
fn admin_down_may_leave_your_discriminator_zero() {
    let packet = ControlPacket {
        diag: Diagnostic::AdministrativelyDown,
        state: State::AdminDown,
        ..down_hello()
    };
    let mut bytes = DOWN_HELLO;
    bytes[0] = 0x27;
    bytes[1] = 0x00;
    both_ways(&bytes, &packet);
}

/// Captured from FRR 8.4's bfdd and BIRD 2.0.12, received by ferrolb in the interop tests.
mod captured {
    use super::*;

    fn from_router(
        state: State,
        detect_mult: u8,
        (mine, yours): (u32, u32),
        (tx, rx, echo): (u32, u32, u32),
    ) -> ControlPacket {
        ControlPacket {
            diag: Diagnostic::None,
            state,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult,
            my_discriminator: mine,
            your_discriminator: yours,
            desired_min_tx: Interval(tx),
            required_min_rx: Interval(rx),
            required_min_echo_rx: Interval(echo),
        }
    }

    #[test]
    fn frr_says_hello_slowly_and_offers_echo() {
        #[rustfmt::skip]
        let bytes = [
            32, 64, 3, 24, 214, 114, 45, 94, 0, 0, 0, 0,
            0, 15, 66, 64, 0, 15, 66, 64, 0, 0, 195, 80,
        ];
        let packet = from_router(
            State::Down,
            3,
            (0xd672_2d5e, 0),
            (1_000_000, 1_000_000, 50_000),
        );
        both_ways(&bytes, &packet);
    }

    #[test]
    fn frr_polls_once_up() {
        #[rustfmt::skip]
        let bytes = [
            32, 224, 3, 24, 214, 114, 45, 94, 84, 217, 204, 239,
            0, 4, 147, 224, 0, 4, 147, 224, 0, 0, 195, 80,
        ];
        let packet = ControlPacket {
            poll: true,
            ..from_router(
                State::Up,
                3,
                (0xd672_2d5e, 0x54d9_ccef),
                (300_000, 300_000, 50_000),
            )
        };
        both_ways(&bytes, &packet);
    }

    #[test]
    fn bird_answers_init_with_its_idle_rate_and_a_10_ms_receive_interval() {
        #[rustfmt::skip]
        let bytes = [
            32, 128, 5, 24, 147, 97, 120, 90, 173, 174, 128, 6,
            0, 15, 66, 64, 0, 0, 39, 16, 0, 0, 0, 0,
        ];
        let packet = from_router(
            State::Init,
            5,
            (0x9361_785a, 0xadae_8006),
            (1_000_000, 10_000, 0),
        );
        both_ways(&bytes, &packet);
    }

    #[test]
    fn bird_answers_our_poll_with_final() {
        #[rustfmt::skip]
        let bytes = [
            32, 208, 5, 24, 147, 97, 120, 90, 173, 174, 128, 6,
            0, 1, 134, 160, 0, 0, 39, 16, 0, 0, 0, 0,
        ];
        let packet = ControlPacket {
            final_: true,
            ..from_router(
                State::Up,
                5,
                (0x9361_785a, 0xadae_8006),
                (100_000, 10_000, 0),
            )
        };
        both_ways(&bytes, &packet);
    }
}

#[test]
fn reserved_diagnostics_are_kept_as_received() {
    let mut bytes = DOWN_HELLO;
    bytes[0] = 0x20 | 31;
    let packet = ControlPacket::decode(&bytes).expect("decodes");
    assert_eq!(packet.diag, Diagnostic::Reserved(31));
    assert_eq!(packet.encode(), bytes);
}

#[test]
fn octets_after_the_length_are_ignored() {
    let mut padded = DOWN_HELLO.to_vec();
    padded.extend_from_slice(&[0xff; 8]);
    assert_eq!(ControlPacket::decode(&padded), Ok(down_hello()));
}

#[test]
fn malformed_packets_are_refused_each_with_its_reason() {
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = DOWN_HELLO.to_vec();
        edit(&mut bytes);
        ControlPacket::decode(&bytes)
    };
    let cases: Vec<(&str, Result<ControlPacket, DecodeError>, DecodeError)> = vec![
        (
            "empty",
            ControlPacket::decode(&[]),
            DecodeError::TooShort { len: 0 },
        ),
        (
            "23 octets",
            with(&|b| {
                b.pop();
            }),
            DecodeError::TooShort { len: 23 },
        ),
        (
            "version 0",
            with(&|b| b[0] = 0x00),
            DecodeError::UnsupportedVersion { version: 0 },
        ),
        (
            "version 2",
            with(&|b| b[0] = 0x40),
            DecodeError::UnsupportedVersion { version: 2 },
        ),
        (
            "length 23",
            with(&|b| b[3] = 23),
            DecodeError::LengthTooSmall {
                length: 23,
                minimum: 24,
            },
        ),
        (
            "length 25 with the A bit",
            with(&|b| {
                b[1] |= FLAG_AUTHENTICATION;
                b[3] = 25;
                b.push(0);
            }),
            DecodeError::LengthTooSmall {
                length: 25,
                minimum: 26,
            },
        ),
        (
            "length 28 in a 24-octet datagram",
            with(&|b| b[3] = 28),
            DecodeError::LengthExceedsPayload {
                length: 28,
                payload: 24,
            },
        ),
        (
            "detect mult 0",
            with(&|b| b[2] = 0),
            DecodeError::ZeroDetectMult,
        ),
        (
            "M bit",
            with(&|b| b[1] |= FLAG_MULTIPOINT),
            DecodeError::Multipoint,
        ),
        (
            "my discriminator 0",
            with(&|b| b[4..8].fill(0)),
            DecodeError::ZeroMyDiscriminator,
        ),
        (
            "your discriminator 0 in Init",
            with(&|b| b[1] = 0x80),
            DecodeError::ZeroYourDiscriminator { state: State::Init },
        ),
        (
            "your discriminator 0 in Up",
            with(&|b| b[1] = 0xc0),
            DecodeError::ZeroYourDiscriminator { state: State::Up },
        ),
        (
            "A bit with an authentication section",
            with(&|b| {
                b[1] |= FLAG_AUTHENTICATION;
                b[3] = 33;
                b.extend_from_slice(&[1, 9, 0, 0x73, 0x33, 0x63, 0x72, 0x33, 0x74]);
            }),
            DecodeError::AuthenticationNotSupported,
        ),
        (
            "P and F",
            with(&|b| b[1] |= FLAG_POLL | FLAG_FINAL),
            DecodeError::PollAndFinal,
        ),
    ];
    for (what, got, expected) in cases {
        assert_eq!(got, Err(expected), "{what}");
    }
}

#[test]
fn intervals_convert_to_durations_and_saturate() {
    assert_eq!(Interval(300_000).as_duration(), Duration::from_millis(300));
    assert_eq!(
        Interval::from_duration(Duration::from_millis(300)),
        Interval(300_000)
    );
    assert_eq!(
        Interval::from_duration(Duration::from_secs(5000)),
        Interval(u32::MAX)
    );
}

fn state() -> impl Strategy<Value = State> {
    prop_oneof![
        Just(State::AdminDown),
        Just(State::Down),
        Just(State::Init),
        Just(State::Up),
    ]
}

/// Packets a conforming sender may send.
fn valid_packet() -> impl Strategy<Value = ControlPacket> {
    (
        (0u8..32, state(), 0u8..3, any::<bool>(), any::<bool>()),
        (1u8..=255, 1u32.., any::<u32>()),
        (any::<u32>(), any::<u32>(), any::<u32>()),
    )
        .prop_map(
            |((diag, state, pf, c, d), (detect_mult, mine, yours), (tx, rx, echo))| {
                let yours = match state {
                    State::Init | State::Up => yours.max(1),
                    State::Down | State::AdminDown => yours,
                };
                ControlPacket {
                    diag: Diagnostic::from_bits(diag),
                    state,
                    poll: pf == 1,
                    final_: pf == 2,
                    control_plane_independent: c,
                    demand: d,
                    detect_mult,
                    my_discriminator: mine,
                    your_discriminator: yours,
                    desired_min_tx: Interval(tx),
                    required_min_rx: Interval(rx),
                    required_min_echo_rx: Interval(echo),
                }
            },
        )
}

proptest! {
    #[test]
    fn every_valid_packet_round_trips(packet in valid_packet()) {
        prop_assert_eq!(ControlPacket::decode(&packet.encode()), Ok(packet));
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = ControlPacket::decode(&bytes);
    }

    #[test]
    fn a_corrupted_valid_packet_never_panics_and_decodes_to_what_it_encodes(
        packet in valid_packet(),
        at in 0usize..24,
        value in any::<u8>(),
    ) {
        let mut bytes = packet.encode();
        bytes[at] = value;
        if let Ok(decoded) = ControlPacket::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }
}
