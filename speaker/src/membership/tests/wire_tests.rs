//! The datagram codec, its seal, the key rotation and the replay window; garbage never panics.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use tokio::time::Instant;

use super::sim::{KEY, addr, name};
use crate::membership::auth::{Key, Keyring, TAG_LEN};
use crate::membership::members::{Replay, ReplayWindow};
use crate::membership::wire::{DecodeError, Entry, Message, Packet, State, VERSION};
use crate::membership::{MembershipSettings, Swim};

#[test]
fn an_ack_is_laid_out_as_documented() {
    let key = Key::new(KEY);
    let packet = Packet {
        sender: "n1".into(),
        incarnation: 0x0102_0304_0506_0708,
        seq: 9,
        message: Message::Ack { probe: 0x0a0b_0c0d },
        gossip: vec![Entry {
            name: "n2".into(),
            addr: "10.0.0.2:7946".parse().expect("addr"),
            incarnation: 5,
            state: State::Suspect,
        }],
    };
    let bytes = packet.seal(&key);
    let mut expected = vec![VERSION];
    expected.extend_from_slice(&key.id());
    expected.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // incarnation
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9]); // sequence
    expected.extend_from_slice(&[2, b'n', b'1']); // sender
    expected.extend_from_slice(&[2, 0x0a, 0x0b, 0x0c, 0x0d]); // Ack, probe
    expected.push(1); // one entry
    expected.push(1); // suspect
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 5]);
    expected.extend_from_slice(&[4, 10, 0, 0, 2, 0x1f, 0x0a]); // 10.0.0.2:7946
    expected.extend_from_slice(&[2, b'n', b'2']);
    assert_eq!(&bytes[..bytes.len() - TAG_LEN], expected.as_slice());
    assert_eq!(bytes.len(), packet.sealed_len());
    assert_eq!(
        &bytes[bytes.len() - TAG_LEN..],
        key.tag(&expected).as_slice()
    );
    let keys = Keyring::new(KEY);
    assert_eq!(Packet::open(&bytes, &keys, Instant::now()), Ok(packet));
}

#[test]
fn datagrams_that_are_not_ours_are_typed_errors() {
    let keys = Keyring::new(KEY);
    let now = Instant::now();
    let packet = Packet {
        sender: "n1".into(),
        incarnation: 1,
        seq: 1,
        message: Message::Gossip,
        gossip: Vec::new(),
    };
    let good = packet.seal(&Key::new(KEY));
    assert_eq!(
        Packet::open(&good[..10], &keys, now),
        Err(DecodeError::Truncated(10))
    );
    let mut other_version = good.clone();
    other_version[0] = 2;
    assert_eq!(
        Packet::open(&other_version, &keys, now),
        Err(DecodeError::Version(2))
    );
    let foreign = packet.seal(&Key::new(b"foreign"));
    assert_eq!(
        Packet::open(&foreign, &keys, now),
        Err(DecodeError::UnknownKey)
    );
    let mut forged = good;
    let last = forged.len() - 1;
    forged[last] ^= 0x80;
    assert_eq!(Packet::open(&forged, &keys, now), Err(DecodeError::BadTag));
}

#[test]
fn a_rotated_out_key_seals_for_one_window_and_opens_for_two() {
    let now = Instant::now();
    let window = Duration::from_secs(60);
    let (old, new) = (Key::new(b"old"), Key::new(b"new"));
    let mut keys = Keyring::new(b"old");
    keys.rotate(b"new", now, window);
    assert_eq!(keys.sealing(now).id(), old.id());
    assert!(keys.opening(old.id(), now).is_some());
    assert!(keys.opening(new.id(), now).is_some());
    let one = now + window;
    assert_eq!(keys.sealing(one).id(), new.id());
    assert!(
        keys.opening(old.id(), one).is_some(),
        "peers that rotated later still seal with it"
    );
    let two = now + window * 2;
    assert!(keys.opening(old.id(), two).is_none());
    assert!(keys.opening(new.id(), two).is_some());
    // Setting the current key again starts no rotation.
    keys.rotate(b"new", two, window);
    assert_eq!(keys.sealing(two).id(), new.id());
}

#[test]
fn the_replay_window_accepts_each_datagram_once_in_any_order_within_64() {
    let mut w = ReplayWindow::default();
    assert_eq!(w.check(7, 100), Replay::Fresh);
    assert_eq!(w.check(7, 100), Replay::Seen);
    assert_eq!(w.check(7, 103), Replay::Fresh);
    assert_eq!(w.check(7, 101), Replay::Fresh, "reordered");
    assert_eq!(w.check(7, 101), Replay::Seen);
    assert_eq!(w.check(7, 102), Replay::Fresh);
    assert_eq!(w.check(7, 100), Replay::Seen);
    assert_eq!(w.check(7, 103 + 64), Replay::Fresh);
    assert_eq!(w.check(7, 104), Replay::Fresh, "63 behind, still tracked");
    assert_eq!(
        w.check(7, 103),
        Replay::Seen,
        "the old top, 64 behind, still tracked"
    );
    assert_eq!(w.check(7, 102), Replay::Seen, "older than the window");
    assert_eq!(w.check(6, 1_000), Replay::Stale, "an older incarnation");
    assert_eq!(
        w.check(8, 0),
        Replay::Fresh,
        "a newer incarnation restarts the count"
    );
    assert_eq!(w.check(7, 10_000), Replay::Stale);
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9.-]{0,40}"
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
    .prop_flat_map(|ip| any::<u16>().prop_map(move |port| SocketAddr::new(ip, port)))
}

fn arb_state() -> impl Strategy<Value = State> {
    prop_oneof![
        Just(State::Alive),
        Just(State::Suspect),
        Just(State::Dead),
        Just(State::Left)
    ]
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    (arb_name(), arb_addr(), any::<u64>(), arb_state()).prop_map(
        |(name, addr, incarnation, state)| Entry {
            name,
            addr,
            incarnation,
            state,
        },
    )
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u32>(), arb_name()).prop_map(|(probe, target)| Message::Ping { probe, target }),
        any::<u32>().prop_map(|probe| Message::Ack { probe }),
        (any::<u32>(), arb_name(), arb_addr()).prop_map(|(probe, target, target_addr)| {
            Message::PingReq {
                probe,
                target,
                target_addr,
            }
        }),
        (any::<u32>(), arb_name())
            .prop_map(|(probe, target)| Message::IndirectAck { probe, target }),
        Just(Message::Gossip),
        Just(Message::Leave),
    ]
}

fn arb_packet() -> impl Strategy<Value = Packet> {
    (
        arb_name(),
        any::<u64>(),
        any::<u64>(),
        arb_message(),
        vec(arb_entry(), 0..8),
    )
        .prop_map(|(sender, incarnation, seq, message, gossip)| Packet {
            sender,
            incarnation,
            seq,
            message,
            gossip,
        })
}

/// Names and addresses that collide with a small cluster's, so merges are exercised.
fn arb_cluster_packet() -> impl Strategy<Value = Packet> {
    let member = (0usize..4, any::<bool>()).prop_map(|(i, same)| {
        let a = if same { addr(i) } else { addr(i + 10) };
        (name(i), a)
    });
    let entry =
        (member.clone(), 0u64..5, arb_state()).prop_map(|((name, addr), inc, state)| Entry {
            name,
            addr,
            incarnation: super::sim::FIRST_INCARNATION + inc,
            state,
        });
    (
        member,
        0u64..5,
        any::<u64>(),
        arb_message(),
        vec(entry, 0..6),
    )
        .prop_map(|((sender, _), inc, seq, message, gossip)| Packet {
            sender,
            incarnation: super::sim::FIRST_INCARNATION + inc,
            seq,
            message,
            gossip,
        })
}

/// A node of a 4-node cluster (node 0) that has joined.
fn joined_node(now: Instant) -> Swim {
    let mut swim = Swim::new(
        MembershipSettings::new(name(0)),
        addr(0),
        KEY,
        super::sim::FIRST_INCARNATION,
        1,
        now,
    );
    let seeds: BTreeMap<String, SocketAddr> = (1..4).map(|i| (name(i), addr(i))).collect();
    let _ = swim.join(seeds, now);
    swim
}

/// Seals `body` (everything after the key id) with the shared key.
fn authentic(body: &[u8]) -> Vec<u8> {
    let key = Key::new(KEY);
    let mut bytes = vec![VERSION];
    bytes.extend_from_slice(&key.id());
    bytes.extend_from_slice(body);
    let tag = key.tag(&bytes);
    bytes.extend_from_slice(&tag);
    bytes
}

proptest! {
    #[test]
    fn packets_survive_sealing_and_opening(packet in arb_packet()) {
        let bytes = packet.seal(&Key::new(KEY));
        prop_assert_eq!(bytes.len(), packet.sealed_len());
        prop_assert_eq!(Packet::open(&bytes, &Keyring::new(KEY), Instant::now()), Ok(packet));
    }

    #[test]
    fn any_flipped_bit_is_caught(packet in arb_packet(), bit in any::<usize>()) {
        let mut bytes = packet.seal(&Key::new(KEY));
        let bit = bit % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(Packet::open(&bytes, &Keyring::new(KEY), Instant::now()).is_err());
    }

    #[test]
    fn random_bytes_never_panic_the_decoder_or_the_protocol(bytes in vec(any::<u8>(), 0..2048)) {
        let now = Instant::now();
        let _ = Packet::open(&bytes, &Keyring::new(KEY), now);
        let mut swim = joined_node(now);
        let _ = swim.handle_packet(addr(1), &bytes, now);
        let _ = swim.handle_tick(now + Duration::from_secs(1));
    }

    #[test]
    fn authentic_garbage_never_panics_the_decoder_or_the_protocol(body in vec(any::<u8>(), 0..512)) {
        let now = Instant::now();
        let bytes = authentic(&body);
        let _ = Packet::open(&bytes, &Keyring::new(KEY), now);
        let mut swim = joined_node(now);
        let _ = swim.handle_packet(addr(1), &bytes, now);
        let _ = swim.handle_tick(now + Duration::from_secs(1));
    }

    #[test]
    fn authentic_datagrams_of_any_content_never_panic_the_protocol(
        packets in vec((arb_cluster_packet(), 0usize..20, 0u64..300), 1..30),
    ) {
        let start = Instant::now();
        let mut swim = joined_node(start);
        let key = Key::new(KEY);
        let mut now = start;
        for (packet, from, advance) in packets {
            now += Duration::from_millis(advance);
            let _ = swim.handle_packet(addr(from), &packet.seal(&key), now);
            let _ = swim.handle_tick(now);
            prop_assert!(swim.live().contains(&name(0)), "a node never drops itself");
        }
    }
}
