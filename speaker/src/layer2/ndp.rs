//! IPv6 Neighbor Discovery (RFC 4861) for the addresses we announce: parsing Neighbor
//! Solicitations and building Neighbor Advertisements, as ICMPv6 messages (what a raw ICMPv6
//! socket reads and writes; the kernel adds the IPv6 header). Pure; the checksum over the
//! pseudo-header is computed here (with `pnet_packet`) so the same bytes also serve a full
//! frame. Solicitations with or without a Source Link-Layer Address option are accepted
//! (MetalLB ignores the latter, #2920).
//!
//! ```text
//!  Neighbor Solicitation (type 135)        Neighbor Advertisement (type 136)
//! +--------+--------+----------------+   +--------+--------+----------------+
//! | 135    | code 0 | checksum       |   | 136    | code 0 | checksum       |
//! +--------+--------+----------------+   +-+-+-+--+--------+----------------+
//! | reserved (32)                    |   |R|S|O| reserved (29)             |
//! +----------------------------------+   +----------------------------------+
//! | target address (128)             |   | target address (128)             |
//! +----------------------------------+   +----------------------------------+
//! | options: [type 1, len 1, MAC]    |   | options: [type 2, len 1, MAC]    |
//! ```

use std::net::Ipv6Addr;

use pnet_packet::icmpv6::Icmpv6Packet;

use super::arp::Mac;

const NS: u8 = 135;
const NA: u8 = 136;
const SOURCE_LLA: u8 = 1;
const TARGET_LLA: u8 = 2;
/// Length of an NS or NA without options.
const BASE_LEN: usize = 24;

/// A Neighbor Solicitation we received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Solicitation {
    /// The address asked about.
    pub target: Ipv6Addr,
    /// The asker's MAC, if it sent a Source Link-Layer Address option.
    pub source_mac: Option<Mac>,
}

/// A Neighbor Advertisement to send (or received).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advertisement {
    /// The address advertised.
    pub target: Ipv6Addr,
    /// Where it is.
    pub mac: Mac,
    /// An answer to a solicitation (S flag).
    pub solicited: bool,
    /// Replace cached entries (O flag).
    pub override_flag: bool,
}

/// Why a message is not one we handle; such messages are counted and dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NdpError {
    /// Shorter than the fixed part.
    #[error("ICMPv6 message of {0} bytes is shorter than a neighbor message ({BASE_LEN})")]
    Truncated(usize),
    /// Another ICMPv6 type, or a non-zero code.
    #[error("ICMPv6 type {0} code {1} is not the expected neighbor message")]
    NotExpected(u8, u8),
    /// An option with length zero or running past the end (RFC 4861 §7.1.1: drop).
    #[error("malformed NDP option at offset {0}")]
    BadOption(usize),
    /// The target is a multicast address (RFC 4861 §7.1.1: drop).
    #[error("target {0} is multicast")]
    MulticastTarget(Ipv6Addr),
}

/// Walks the options; returns the MAC of the first option of `kind` (8-byte option, Ethernet).
fn link_layer_option(options: &[u8], kind: u8) -> Result<Option<Mac>, NdpError> {
    let mut at = 0;
    let mut found = None;
    while at < options.len() {
        let header = options
            .get(at..at + 2)
            .ok_or(NdpError::BadOption(BASE_LEN + at))?;
        let len = usize::from(header[1]) * 8;
        let body = options
            .get(at..at + len)
            .filter(|_| len > 0)
            .ok_or(NdpError::BadOption(BASE_LEN + at))?;
        if header[0] == kind && found.is_none() && len == 8 {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&body[2..8]);
            found = Some(Mac(mac));
        }
        at += len;
    }
    Ok(found)
}

fn fixed(bytes: &[u8], kind: u8) -> Result<Ipv6Addr, NdpError> {
    if bytes.len() < BASE_LEN {
        return Err(NdpError::Truncated(bytes.len()));
    }
    if bytes[0] != kind || bytes[1] != 0 {
        return Err(NdpError::NotExpected(bytes[0], bytes[1]));
    }
    let mut target = [0u8; 16];
    target.copy_from_slice(&bytes[8..24]);
    let target = Ipv6Addr::from(target);
    if target.is_multicast() {
        return Err(NdpError::MulticastTarget(target));
    }
    Ok(target)
}

impl Solicitation {
    /// Parses an ICMPv6 Neighbor Solicitation (checksum already verified by the kernel).
    pub fn decode(bytes: &[u8]) -> Result<Self, NdpError> {
        let target = fixed(bytes, NS)?;
        let source_mac = link_layer_option(&bytes[BASE_LEN..], SOURCE_LLA)?;
        Ok(Self { target, source_mac })
    }

    /// The ICMPv6 bytes of this solicitation from `src` to `dst`, checksum included.
    pub fn encode(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut b = vec![NS, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&self.target.octets());
        if let Some(mac) = self.source_mac {
            b.extend_from_slice(&[SOURCE_LLA, 1]);
            b.extend_from_slice(&mac.0);
        }
        with_checksum(b, src, dst)
    }
}

impl Advertisement {
    /// The answer `mac` owes a solicitation for one of our addresses (S=1, O=1: we are the
    /// owner; RFC 4861 lets a proxy clear O, but the announcing node is the address's home).
    pub fn answering(solicitation: &Solicitation, mac: Mac) -> Self {
        Self {
            target: solicitation.target,
            mac,
            solicited: true,
            override_flag: true,
        }
    }

    /// An unsolicited advertisement (S=0, O=1) for a takeover, sent to all nodes (ff02::1).
    pub fn unsolicited(target: Ipv6Addr, mac: Mac) -> Self {
        Self {
            target,
            mac,
            solicited: false,
            override_flag: true,
        }
    }

    /// The ICMPv6 bytes from `src` to `dst`, with a Target Link-Layer Address option and the
    /// checksum. Strict hosts accept an advertisement only if `src` is the target itself.
    pub fn encode(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let flags = (u8::from(self.solicited) << 6) | (u8::from(self.override_flag) << 5);
        let mut b = vec![NA, 0, 0, 0, flags, 0, 0, 0];
        b.extend_from_slice(&self.target.octets());
        b.extend_from_slice(&[TARGET_LLA, 1]);
        b.extend_from_slice(&self.mac.0);
        with_checksum(b, src, dst)
    }

    /// Parses a Neighbor Advertisement (to watch for another node answering for our IPs).
    /// One without a Target Link-Layer Address option is a `BadOption` at its end.
    pub fn decode(bytes: &[u8]) -> Result<Self, NdpError> {
        let target = fixed(bytes, NA)?;
        let mac = link_layer_option(&bytes[BASE_LEN..], TARGET_LLA)?
            .ok_or(NdpError::BadOption(bytes.len()))?;
        Ok(Self {
            target,
            mac,
            solicited: bytes[4] & 0x40 != 0,
            override_flag: bytes[4] & 0x20 != 0,
        })
    }
}

fn with_checksum(mut bytes: Vec<u8>, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let sum = Icmpv6Packet::new(&bytes).map(|p| pnet_packet::icmpv6::checksum(&p, &src, &dst));
    if let Some(sum) = sum {
        bytes[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    bytes
}

/// The solicited-node multicast group of `ip` (ff02::1:ffXX:XXXX), which a node must join to
/// hear solicitations for `ip`.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet multicast address of an IPv6 multicast group (33:33 + its last 32 bits).
pub fn multicast_mac(group: Ipv6Addr) -> Mac {
    let o = group.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
    const SPEAKER: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().expect("ip")
    }

    /// NS from 2001:db8:0:1::10 (02:..:0a) for 2001:db8:0:1::200 to ff02::1:ff00:200; checksum
    /// computed independently with Python.
    const NS_BYTES: [u8; 32] = [
        0x87, 0x00, 0x18, 0x11, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x0a,
    ];
    /// The NA answering it, from the target itself to the asker (S=1, O=1).
    const NA_BYTES: [u8; 32] = [
        0x88, 0x00, 0x86, 0x64, 0x60, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x01,
    ];

    #[test]
    fn a_solicitation_decodes_and_encodes_with_the_right_checksum() {
        let ns = Solicitation::decode(&NS_BYTES).expect("valid");
        assert_eq!(
            ns,
            Solicitation {
                target: ip("2001:db8:0:1::200"),
                source_mac: Some(CLIENT)
            }
        );
        let group = solicited_node(ns.target);
        assert_eq!(group, ip("ff02::1:ff00:200"));
        assert_eq!(ns.encode(ip("2001:db8:0:1::10"), group), NS_BYTES);
        assert_eq!(
            multicast_mac(group),
            Mac([0x33, 0x33, 0xff, 0x00, 0x02, 0x00])
        );
    }

    #[test]
    fn the_answer_carries_our_mac_and_the_right_checksum() {
        let ns = Solicitation::decode(&NS_BYTES).expect("valid");
        let na = Advertisement::answering(&ns, SPEAKER);
        let bytes = na.encode(ns.target, ip("2001:db8:0:1::10"));
        assert_eq!(bytes, NA_BYTES);
        assert_eq!(Advertisement::decode(&bytes), Ok(na));
    }

    #[test]
    fn a_solicitation_without_source_link_layer_option_is_still_answered() {
        let mut short = NS_BYTES[..24].to_vec();
        short[2] = 0;
        let ns = Solicitation::decode(&short).expect("valid without options");
        assert_eq!(ns.source_mac, None);
        let unsolicited = Advertisement::unsolicited(ns.target, SPEAKER);
        let bytes = unsolicited.encode(ns.target, ip("ff02::1"));
        assert_eq!(bytes[4], 0x20, "S=0, O=1");
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        let mut zero_len_option = NS_BYTES;
        zero_len_option[25] = 0;
        let mut long_option = NS_BYTES;
        long_option[25] = 2;
        let mut multicast = NS_BYTES;
        multicast[8] = 0xff;
        let mut wrong_code = NS_BYTES;
        wrong_code[1] = 1;
        let cases: [(&[u8], NdpError); 6] = [
            (&NS_BYTES[..23], NdpError::Truncated(23)),
            (&NA_BYTES, NdpError::NotExpected(136, 0)),
            (&wrong_code, NdpError::NotExpected(135, 1)),
            (&zero_len_option, NdpError::BadOption(24)),
            (&long_option, NdpError::BadOption(24)),
            (
                &multicast,
                NdpError::MulticastTarget(ip("ff01:db8:0:1::200")),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(Solicitation::decode(bytes), Err(want));
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = Solicitation::decode(&bytes);
            let _ = Advertisement::decode(&bytes);
        }
    }
}
