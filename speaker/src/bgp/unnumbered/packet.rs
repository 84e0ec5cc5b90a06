//! The ICMPv6 messages of unnumbered peering, built and read (RFC 4443, RFC 4861). The
//! checksum is left zero: the kernel computes it for raw ICMPv6 sockets (RFC 3542 §3.1).

use std::net::Ipv6Addr;

/// ff02::1.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// ff02::2.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

const ECHO_REQUEST: u8 = 128;
const ECHO_REPLY: u8 = 129;
const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;
/// Option type 1 (RFC 4861 §4.6.1).
const SOURCE_LINK_LAYER: u8 = 1;

/// The types the socket is handed.
pub const TYPES_HEARD: [u8; 3] = [ECHO_REPLY, ROUTER_SOLICITATION, ROUTER_ADVERTISEMENT];

/// A message we act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6 {
    /// Type 129, with its identifier.
    EchoReply {
        /// The identifier of the request it answers.
        id: u16,
    },
    /// Type 133.
    RouterSolicitation,
    /// Type 134.
    RouterAdvertisement,
}

/// What `message` is, if it is one we act on and well formed (RFC 4861 §6.1: code 0 and at
/// least the fixed part; options are not needed).
pub fn parse(message: &[u8]) -> Option<Icmpv6> {
    let (&kind, &code) = (message.first()?, message.get(1)?);
    match (kind, code, message.len()) {
        (ECHO_REPLY, 0, 8..) => Some(Icmpv6::EchoReply {
            id: u16::from_be_bytes([message[4], message[5]]),
        }),
        (ROUTER_SOLICITATION, 0, 8..) => Some(Icmpv6::RouterSolicitation),
        (ROUTER_ADVERTISEMENT, 0, 16..) => Some(Icmpv6::RouterAdvertisement),
        _ => None,
    }
}

/// A Router Advertisement (RFC 4861 §4.2) with router lifetime 0 — we route for no host — no
/// prefix, and `mac` as the source link-layer address.
///
/// ```text
/// | Type 134 | Code 0 | Checksum (2) |
/// | Cur Hop Limit 0 | M O 0 | Router Lifetime 0 (2) |
/// | Reachable Time 0 (4) | Retrans Timer 0 (4) |
/// | Option 1 | Length 1 | MAC (6) |
/// ```
pub fn router_advertisement(mac: [u8; 6]) -> Vec<u8> {
    let mut m = vec![ROUTER_ADVERTISEMENT, 0, 0, 0];
    m.extend_from_slice(&[0; 12]);
    push_source_link_layer(&mut m, mac);
    m
}

/// A Router Solicitation (RFC 4861 §4.1), so routers on the link advertise at once.
pub fn router_solicitation(mac: [u8; 6]) -> Vec<u8> {
    let mut m = vec![ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
    push_source_link_layer(&mut m, mac);
    m
}

/// An Echo Request (RFC 4443 §4.1) with no data.
pub fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let mut m = vec![ECHO_REQUEST, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m
}

fn push_source_link_layer(m: &mut Vec<u8>, mac: [u8; 6]) {
    // Length in units of 8 octets: type, length and a 6-octet MAC.
    m.extend_from_slice(&[SOURCE_LINK_LAYER, 1]);
    m.extend_from_slice(&mac);
}
