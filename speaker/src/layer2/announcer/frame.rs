//! Whole Ethernet frames around the NDP messages of [`crate::layer2::ndp`], as an `AF_PACKET`
//! socket reads and writes them. Pure. Decoding checks what RFC 4861 §7.1 requires of a
//! neighbor message (hop limit 255, a valid ICMPv6 checksum) and cuts Ethernet padding by the
//! IPv6 payload length; frames that are not an NS or NA without extension headers are not NDP
//! (`Ok(None)`), NDP frames that are wrong are typed errors (counted and dropped).
//!
//! ```text
//! | Ethernet dst (6) | src (6) | 0x86dd | IPv6: ver 6, payload length, next header 58,
//! | hop limit 255, source (16), destination (16) | ICMPv6 NS (135) or NA (136) ... |
//! ```

use std::net::Ipv6Addr;

use crate::layer2::arp::Mac;
use crate::layer2::ndp::{Advertisement, NdpError, Solicitation, multicast_mac};

/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// The all-nodes group: unsolicited advertisements and answers to duplicate address detection.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Hop limit of every neighbor discovery message.
pub const NDP_HOP_LIMIT: u8 = 255;

const ETHERNET_HEADER: usize = 14;
const IPV6_HEADER: usize = 40;
const ICMPV6: u8 = 58;
const NS: u8 = 135;
const NA: u8 = 136;

/// A neighbor discovery message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NdpMessage {
    /// Neighbor Solicitation.
    Solicitation(Solicitation),
    /// Neighbor Advertisement.
    Advertisement(Advertisement),
}

/// A neighbor discovery message in its Ethernet frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdpFrame {
    /// Ethernet destination.
    pub eth_destination: Mac,
    /// Ethernet source.
    pub eth_source: Mac,
    /// IPv6 source (unspecified for duplicate address detection).
    pub source: Ipv6Addr,
    /// IPv6 destination.
    pub destination: Ipv6Addr,
    /// The message.
    pub message: NdpMessage,
}

/// Why an NDP frame is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than its headers, or than its IPv6 payload length says.
    #[error("frame of {0} bytes is truncated")]
    Truncated(usize),
    /// Hop limit other than 255: it was routed, so it is not from this link.
    #[error("neighbor message with hop limit {0}")]
    HopLimit(u8),
    /// The ICMPv6 checksum does not match.
    #[error("bad ICMPv6 checksum")]
    Checksum,
    /// The message itself is malformed.
    #[error(transparent)]
    Ndp(#[from] NdpError),
}

impl NdpFrame {
    /// Parses a received frame: `Ok(None)` if it is not an NS or NA.
    pub fn decode(frame: &[u8]) -> Result<Option<Self>, FrameError> {
        let Some(headers) = frame.get(..ETHERNET_HEADER + IPV6_HEADER) else {
            return not_ndp_or_truncated(frame);
        };
        let (eth, ip) = headers.split_at(ETHERNET_HEADER);
        if u16::from_be_bytes([eth[12], eth[13]]) != ETHERTYPE_IPV6
            || ip[0] >> 4 != 6
            || ip[6] != ICMPV6
        {
            return Ok(None);
        }
        let payload_len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
        let icmp = frame
            .get(ETHERNET_HEADER + IPV6_HEADER..ETHERNET_HEADER + IPV6_HEADER + payload_len)
            .ok_or(FrameError::Truncated(frame.len()))?;
        if !matches!(icmp.first(), Some(&NS | &NA)) {
            return Ok(None);
        }
        if ip[7] != NDP_HOP_LIMIT {
            return Err(FrameError::HopLimit(ip[7]));
        }
        let source = address(&ip[8..24]);
        let destination = address(&ip[24..40]);
        if checksum(source, destination, icmp) != 0 {
            return Err(FrameError::Checksum);
        }
        let message = if icmp[0] == NS {
            NdpMessage::Solicitation(Solicitation::decode(icmp)?)
        } else {
            NdpMessage::Advertisement(Advertisement::decode(icmp)?)
        };
        Ok(Some(Self {
            eth_destination: mac(&eth[0..6]),
            eth_source: mac(&eth[6..12]),
            source,
            destination,
            message,
        }))
    }

    /// The frame's bytes, hop limit 255 and checksum included.
    pub fn encode(&self) -> Vec<u8> {
        let icmp = match &self.message {
            NdpMessage::Solicitation(ns) => ns.encode(self.source, self.destination),
            NdpMessage::Advertisement(na) => na.encode(self.source, self.destination),
        };
        ipv6_frame(
            self.eth_destination,
            self.eth_source,
            self.source,
            self.destination,
            NDP_HOP_LIMIT,
            &icmp,
        )
    }

    /// An unsolicited advertisement of `ip` at `mac` (Override=1) from `ip` to all nodes.
    pub fn unsolicited(ip: Ipv6Addr, mac: Mac) -> Self {
        Self {
            eth_destination: multicast_mac(ALL_NODES),
            eth_source: mac,
            source: ip,
            destination: ALL_NODES,
            message: NdpMessage::Advertisement(Advertisement::unsolicited(ip, mac)),
        }
    }
}

fn not_ndp_or_truncated(frame: &[u8]) -> Result<Option<NdpFrame>, FrameError> {
    // A short IPv6 frame that says it carries ICMPv6 is a truncated candidate; anything else is
    // simply not ours.
    let ipv6 = frame.get(12..14) == Some(&[0x86, 0xdd][..]);
    let icmpv6 = frame.get(ETHERNET_HEADER + 6) == Some(&ICMPV6);
    if ipv6 && icmpv6 {
        Err(FrameError::Truncated(frame.len()))
    } else {
        Ok(None)
    }
}

fn address(bytes: &[u8]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(bytes);
    Ipv6Addr::from(octets)
}

fn mac(bytes: &[u8]) -> Mac {
    let mut octets = [0u8; 6];
    octets.copy_from_slice(bytes);
    Mac(octets)
}

/// An Ethernet + IPv6 frame carrying ICMPv6 bytes `icmp` (whose checksum the caller set).
pub fn ipv6_frame(
    eth_destination: Mac,
    eth_source: Mac,
    source: Ipv6Addr,
    destination: Ipv6Addr,
    hop_limit: u8,
    icmp: &[u8],
) -> Vec<u8> {
    let payload_len = u16::try_from(icmp.len()).unwrap_or(u16::MAX);
    let mut frame = Vec::with_capacity(ETHERNET_HEADER + IPV6_HEADER + icmp.len());
    frame.extend_from_slice(&eth_destination.0);
    frame.extend_from_slice(&eth_source.0);
    frame.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&payload_len.to_be_bytes());
    frame.extend_from_slice(&[ICMPV6, hop_limit]);
    frame.extend_from_slice(&source.octets());
    frame.extend_from_slice(&destination.octets());
    frame.extend_from_slice(icmp);
    frame
}

/// The ICMPv6 checksum over the pseudo-header and `icmp` as it is: zero when `icmp` carries a
/// correct checksum; with its checksum field zeroed, the value to put there.
pub fn checksum(source: Ipv6Addr, destination: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u64::from);
            sum += hi | lo;
        }
    };
    add(&source.octets());
    add(&destination.octets());
    add(&u32::try_from(icmp.len()).unwrap_or(u32::MAX).to_be_bytes());
    add(&[0, 0, 0, ICMPV6]);
    add(icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
    const SPEAKER: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().expect("ip")
    }

    fn solicitation() -> NdpFrame {
        let target = ip("2001:db8:0:1::200");
        let group = crate::layer2::ndp::solicited_node(target);
        NdpFrame {
            eth_destination: multicast_mac(group),
            eth_source: CLIENT,
            source: ip("2001:db8:0:1::10"),
            destination: group,
            message: NdpMessage::Solicitation(Solicitation {
                target,
                source_mac: Some(CLIENT),
            }),
        }
    }

    #[test]
    fn a_solicitation_frame_round_trips_with_hop_limit_255_and_a_valid_checksum() {
        let ns = solicitation();
        let bytes = ns.encode();
        assert_eq!(bytes.len(), 14 + 40 + 32);
        assert_eq!(&bytes[12..14], &[0x86, 0xdd]);
        assert_eq!(bytes[14 + 7], 255);
        assert_eq!(checksum(ns.source, ns.destination, &bytes[54..]), 0);
        assert_eq!(NdpFrame::decode(&bytes), Ok(Some(ns)));
    }

    #[test]
    fn ethernet_padding_is_cut_by_the_payload_length() {
        let na = NdpFrame::unsolicited(ip("2001:db8:0:1::200"), SPEAKER);
        let mut bytes = na.encode();
        bytes.extend_from_slice(&[0xee; 8]);
        assert_eq!(NdpFrame::decode(&bytes), Ok(Some(na)));
        assert_eq!(na.eth_destination, Mac([0x33, 0x33, 0, 0, 0, 1]));
        assert_eq!(na.source, ip("2001:db8:0:1::200"), "source is the target");
    }

    #[test]
    fn the_checksum_matches_the_ndp_codec() {
        let na = NdpFrame::unsolicited(ip("2001:db8:0:1::201"), SPEAKER);
        let bytes = na.encode();
        let mut icmp = bytes[54..].to_vec();
        let want = u16::from_be_bytes([icmp[2], icmp[3]]);
        icmp[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(checksum(na.source, na.destination, &icmp), want);
    }

    #[test]
    fn other_traffic_is_not_ndp() {
        let mut udp = solicitation().encode();
        udp[14 + 6] = 17;
        let mut echo = solicitation().encode();
        echo[54] = 128;
        let mut arp = solicitation().encode();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        for bytes in [&udp[..], &echo[..], &arp[..], &[][..], &[0u8; 20][..]] {
            assert_eq!(NdpFrame::decode(bytes), Ok(None));
        }
    }

    #[test]
    fn bad_neighbor_messages_are_typed_errors() {
        let good = solicitation().encode();
        let mut routed = good.clone();
        routed[14 + 7] = 64;
        let mut corrupt = good.clone();
        corrupt[60] ^= 0x01;
        let mut long = good.clone();
        long[14 + 5] += 8;
        let mut bad_option = good.clone();
        bad_option[54 + 25] = 0;
        let cases: [(&[u8], FrameError); 5] = [
            (&routed, FrameError::HopLimit(64)),
            (&corrupt, FrameError::Checksum),
            (&long, FrameError::Truncated(good.len())),
            (&good[..40], FrameError::Truncated(40)),
            (&bad_option, FrameError::Checksum),
        ];
        for (bytes, want) in cases {
            assert_eq!(NdpFrame::decode(bytes), Err(want));
        }
        // The same bad option with its checksum fixed reaches the NDP codec.
        let mut icmp = bad_option[54..].to_vec();
        icmp[2..4].copy_from_slice(&[0, 0]);
        let sum = checksum(ip("2001:db8:0:1::10"), solicitation().destination, &icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let frame = ipv6_frame(
            Mac::BROADCAST,
            CLIENT,
            ip("2001:db8:0:1::10"),
            solicitation().destination,
            255,
            &icmp,
        );
        assert_eq!(
            NdpFrame::decode(&frame),
            Err(FrameError::Ndp(NdpError::BadOption(24)))
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..120)) {
            let _ = NdpFrame::decode(&bytes);
        }

        #[test]
        fn any_ipv6_icmp_frame_decodes_without_panicking(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..64), ty in 135u8..137) {
            let mut icmp = vec![ty, 0, 0, 0];
            icmp.extend_from_slice(&tail);
            let (s, d) = (ip("fe80::1"), ip("ff02::1"));
            let sum = checksum(s, d, &icmp);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            let _ = NdpFrame::decode(&ipv6_frame(Mac::BROADCAST, CLIENT, s, d, 255, &icmp));
        }
    }
}
