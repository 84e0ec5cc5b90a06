//! Echo payloads and frames as `(bytes, value)` pairs, and the frames a looped Echo must not be
//! confused with.

use super::*;

const OURS: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);
const PEERS: Mac = Mac([0x02, 0, 0, 0, 0, 0x02]);
const PACKET: EchoPacket = EchoPacket {
    discriminator: 0x0a0a_0001,
    sequence: 7,
};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

fn frame(address: &str) -> EchoFrame {
    EchoFrame {
        eth_destination: PEERS,
        eth_source: OURS,
        address: ip(address),
        packet: PACKET,
    }
}

/// What 192.0.2.10 sends: to the router's MAC, from and to itself, TTL 255.
const SENT_V4: [u8; 54] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0xc0,
    0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0xff, 0x11, 0xf6, 0xef, 0xc0, 0x00, 0x02, 0x0a, 0xc0, 0x00,
    0x02, 0x0a, 0x0e, 0xc9, 0x0e, 0xc9, 0x00, 0x14, 0x53, 0x01, 0x01, 0x0c, 0x00, 0x00, 0x0a, 0x0a,
    0x00, 0x01, 0x00, 0x00, 0x00, 0x07,
];

/// The same frame as it came back from a Linux router (a network namespace with
/// `net.ipv4.ip_forward=1`): MACs swapped, TTL 254, header checksum updated. Captured with an
/// `AF_PACKET` socket on the sender, kernel 6.18.
const LOOPED_V4: &str = "020000000001020000000002080045c0002800004000fe11f7efc000020ac000020a0ec90ec9\
                         00145301010c00000a0a000100000007";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// `frame` after one router: TTL (hop limit) one less, and the IPv4 header checksum redone.
fn forwarded(mut frame: Vec<u8>) -> Vec<u8> {
    if frame[12..14] == [0x08, 0x00] {
        frame[14 + 8] -= 1;
        frame[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
        let sum = internet_checksum(&[&frame[14..34]]);
        frame[14 + 10..14 + 12].copy_from_slice(&sum.to_be_bytes());
    } else {
        frame[14 + 7] -= 1;
    }
    frame
}

#[test]
fn the_payload_names_the_session_and_counts() {
    let bytes = PACKET.encode();
    assert_eq!(
        bytes,
        [0x01, 0x0c, 0, 0, 0x0a, 0x0a, 0x00, 0x01, 0, 0, 0, 0x07]
    );
    assert_eq!(EchoPacket::decode(&bytes), Some(PACKET));
}

#[test]
fn payloads_we_did_not_write_are_refused() {
    let good = PACKET.encode();
    let mut version = good;
    version[0] = 2;
    let mut length = good;
    length[1] = 24;
    // FRR's own Echo payload (version 1, length 24, its discriminator, a timestamp).
    let frr = [
        1u8, 24, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2,
    ];
    for bytes in [&version[..], &length[..], &good[..11], &frr[..]] {
        assert_eq!(EchoPacket::decode(bytes), None, "{bytes:02x?}");
    }
}

#[test]
fn an_ipv4_echo_leaves_for_the_peers_mac_from_and_to_our_own_address() {
    let bytes = frame("192.0.2.10").encode();
    assert_eq!(bytes, SENT_V4);
    // Our own frame as it leaves (TTL 255) is not a looped one.
    assert_eq!(
        EchoFrame::decode_looped(&bytes, ip("192.0.2.10")),
        Err(EchoFrameError::Ttl(255))
    );
}

#[test]
fn an_ipv4_echo_forwarded_back_by_linux_is_ours() {
    let looped = hex(LOOPED_V4);
    let mut routed = forwarded(SENT_V4.to_vec());
    routed[..6].copy_from_slice(&OURS.0);
    routed[6..12].copy_from_slice(&PEERS.0);
    assert_eq!(looped, routed, "Linux did what any router does");
    assert_eq!(
        EchoFrame::decode_looped(&looped, ip("192.0.2.10")),
        Ok(PACKET)
    );
}

#[test]
fn ethernet_padding_after_the_ip_packet_is_ignored() {
    let mut padded = hex(LOOPED_V4);
    padded.resize(60, 0);
    assert_eq!(
        EchoFrame::decode_looped(&padded, ip("192.0.2.10")),
        Ok(PACKET)
    );
}

#[test]
fn frames_that_are_not_our_echo_are_told_apart() {
    let looped = hex(LOOPED_V4);
    let ours = ip("192.0.2.10");
    // Another address: the peer's own Echo, which we only forward.
    assert_eq!(
        EchoFrame::decode_looped(&looped, ip("192.0.2.1")),
        Err(EchoFrameError::NotEcho)
    );
    let mut other_port = looped.clone();
    other_port[36..38].copy_from_slice(&3784u16.to_be_bytes());
    assert_eq!(
        EchoFrame::decode_looped(&other_port, ours),
        Err(EchoFrameError::NotEcho)
    );
    let mut fragment = looped.clone();
    fragment[20] |= 0x20; // More Fragments
    assert_eq!(
        EchoFrame::decode_looped(&fragment, ours),
        Err(EchoFrameError::NotEcho)
    );
    let mut corrupt = looped.clone();
    corrupt[53] ^= 0xff;
    assert_eq!(
        EchoFrame::decode_looped(&corrupt, ours),
        Err(EchoFrameError::Checksum)
    );
    let mut bad_header = looped.clone();
    bad_header[15] = 0;
    assert_eq!(
        EchoFrame::decode_looped(&bad_header, ours),
        Err(EchoFrameError::Checksum)
    );
    assert_eq!(
        EchoFrame::decode_looped(&looped[..50], ours),
        Err(EchoFrameError::Truncated(50))
    );
    assert_eq!(
        EchoFrame::decode_looped(&looped[..10], ours),
        Err(EchoFrameError::Truncated(10))
    );
    let mut twice = hex(LOOPED_V4);
    twice = forwarded(twice);
    assert_eq!(
        EchoFrame::decode_looped(&twice, ours),
        Err(EchoFrameError::Ttl(253)),
        "two routers"
    );
}

#[test]
fn an_ipv4_echo_without_a_udp_checksum_is_taken() {
    let mut looped = hex(LOOPED_V4);
    looped[40..42].copy_from_slice(&[0, 0]);
    assert_eq!(
        EchoFrame::decode_looped(&looped, ip("192.0.2.10")),
        Ok(PACKET)
    );
}

#[test]
fn an_ipv6_echo_round_trips_through_one_router() {
    let address = ip("2001:db8:0:1::10");
    let bytes = frame("2001:db8:0:1::10").encode();
    assert_eq!(bytes.len(), 14 + 40 + 8 + 12);
    assert_eq!(&bytes[12..14], &[0x86, 0xdd]);
    assert_eq!(&bytes[14..16], &[0x6c, 0x00], "traffic class 0xc0");
    assert_eq!(bytes[14 + 7], 255);
    assert_eq!(&bytes[22..38], &bytes[38..54], "source is destination");
    assert_eq!(udp_checksum(address, &bytes[54..]), 0);
    assert_eq!(
        EchoFrame::decode_looped(&bytes, address),
        Err(EchoFrameError::Ttl(255))
    );
    assert_eq!(
        EchoFrame::decode_looped(&forwarded(bytes.clone()), address),
        Ok(PACKET)
    );
    let mut no_checksum = forwarded(bytes);
    no_checksum[60..62].copy_from_slice(&[0, 0]);
    assert_eq!(
        EchoFrame::decode_looped(&no_checksum, address),
        Err(EchoFrameError::Checksum),
        "IPv6 requires the UDP checksum"
    );
}

#[test]
fn a_frame_of_the_other_family_is_not_ours() {
    let looped = hex(LOOPED_V4);
    assert_eq!(
        EchoFrame::decode_looped(&looped, ip("2001:db8:0:1::10")),
        Err(EchoFrameError::NotEcho)
    );
}
