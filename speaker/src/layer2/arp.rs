//! ARP over Ethernet (RFC 826), for IPv4 only: parsing requests, building replies and
//! gratuitous announcements. Pure: bytes in, values out, and back. Frames are built and parsed
//! with `pnet_packet`; anything that is not an Ethernet/IPv4 ARP request or reply is a typed
//! error, never a panic.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Ethernet destination (6) ... source (6) ... type 0x0806 (2)  |
//! +-------------------------------+-------------------------------+
//! |  hardware type = 1 (Ethernet) |  protocol type = 0x0800       |
//! +---------------+---------------+-------------------------------+
//! |  hlen = 6     |  plen = 4     |  operation (1 request, 2 reply)
//! +---------------+---------------+-------------------------------+
//! |  sender hardware address (6)  |  sender protocol address (4)  |
//! |  target hardware address (6)  |  target protocol address (4)  |
//! +---------------------------------------------------------------+
//! ```

use std::fmt;
use std::net::Ipv4Addr;

use pnet_base::MacAddr;
use pnet_packet::Packet;
use pnet_packet::arp::{
    ArpHardwareTypes, ArpOperation, ArpOperations, ArpPacket, MutableArpPacket,
};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};

/// Length of an Ethernet/IPv4 ARP frame without padding.
pub const FRAME_LEN: usize = 42;

/// An Ethernet MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: Self = Self([0xff; 6]);
    /// 00:00:00:00:00:00
    pub const ZERO: Self = Self([0; 6]);
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl From<MacAddr> for Mac {
    fn from(m: MacAddr) -> Self {
        Self([m.0, m.1, m.2, m.3, m.4, m.5])
    }
}

impl From<Mac> for MacAddr {
    fn from(m: Mac) -> Self {
        let [a, b, c, d, e, f] = m.0;
        MacAddr(a, b, c, d, e, f)
    }
}

/// Request or reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// "Who has target_ip?"
    Request,
    /// "target_ip is at sender_mac."
    Reply,
}

/// One ARP frame with its Ethernet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpFrame {
    /// Ethernet destination.
    pub eth_destination: Mac,
    /// Ethernet source.
    pub eth_source: Mac,
    /// Request or reply.
    pub operation: Operation,
    /// Sender hardware address.
    pub sender_mac: Mac,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: Mac,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

/// Why a frame is not one we handle. Such frames are counted and dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArpError {
    /// Shorter than an Ethernet/IPv4 ARP frame.
    #[error("frame of {0} bytes is shorter than an ARP frame ({FRAME_LEN})")]
    Truncated(usize),
    /// Not ARP at all.
    #[error("ethertype {0:#06x} is not ARP")]
    NotArp(u16),
    /// ARP, but not Ethernet/IPv4 (or with odd address lengths).
    #[error("unsupported ARP: hardware type {htype}, protocol {ptype:#06x}, lengths {hlen}/{plen}")]
    Unsupported {
        /// hardware type
        htype: u16,
        /// protocol type
        ptype: u16,
        /// hardware address length
        hlen: u8,
        /// protocol address length
        plen: u8,
    },
    /// Neither request nor reply (RARP, InARP, ...).
    #[error("ARP operation {0} is neither request nor reply")]
    Operation(u16),
}

impl ArpFrame {
    /// Parses a received frame (trailing padding is ignored).
    pub fn decode(bytes: &[u8]) -> Result<Self, ArpError> {
        if bytes.len() < FRAME_LEN {
            return Err(ArpError::Truncated(bytes.len()));
        }
        let eth = EthernetPacket::new(bytes).ok_or(ArpError::Truncated(bytes.len()))?;
        if eth.get_ethertype() != EtherTypes::Arp {
            return Err(ArpError::NotArp(eth.get_ethertype().0));
        }
        let arp = ArpPacket::new(eth.payload()).ok_or(ArpError::Truncated(bytes.len()))?;
        let (htype, ptype) = (arp.get_hardware_type(), arp.get_protocol_type());
        let (hlen, plen) = (arp.get_hw_addr_len(), arp.get_proto_addr_len());
        if htype != ArpHardwareTypes::Ethernet
            || ptype != EtherTypes::Ipv4
            || hlen != 6
            || plen != 4
        {
            return Err(ArpError::Unsupported {
                htype: htype.0,
                ptype: ptype.0,
                hlen,
                plen,
            });
        }
        let operation = match arp.get_operation() {
            ArpOperations::Request => Operation::Request,
            ArpOperations::Reply => Operation::Reply,
            ArpOperation(other) => return Err(ArpError::Operation(other)),
        };
        Ok(Self {
            eth_destination: eth.get_destination().into(),
            eth_source: eth.get_source().into(),
            operation,
            sender_mac: arp.get_sender_hw_addr().into(),
            sender_ip: arp.get_sender_proto_addr(),
            target_mac: arp.get_target_hw_addr().into(),
            target_ip: arp.get_target_proto_addr(),
        })
    }

    /// The frame's bytes (42, unpadded: the kernel pads short frames).
    pub fn encode(&self) -> [u8; FRAME_LEN] {
        let mut buf = [0u8; FRAME_LEN];
        if let Some(mut eth) = MutableEthernetPacket::new(&mut buf) {
            eth.set_destination(self.eth_destination.into());
            eth.set_source(self.eth_source.into());
            eth.set_ethertype(EtherTypes::Arp);
        }
        if let Some(mut arp) = MutableArpPacket::new(&mut buf[14..]) {
            arp.set_hardware_type(ArpHardwareTypes::Ethernet);
            arp.set_protocol_type(EtherTypes::Ipv4);
            arp.set_hw_addr_len(6);
            arp.set_proto_addr_len(4);
            arp.set_operation(match self.operation {
                Operation::Request => ArpOperations::Request,
                Operation::Reply => ArpOperations::Reply,
            });
            arp.set_sender_hw_addr(self.sender_mac.into());
            arp.set_sender_proto_addr(self.sender_ip);
            arp.set_target_hw_addr(self.target_mac.into());
            arp.set_target_proto_addr(self.target_ip);
        }
        buf
    }

    /// The reply `mac` owes this frame if it is a request for an address we announce: sent to
    /// the requester, saying the target IP is at `mac`. `None` for replies.
    pub fn reply_from(&self, mac: Mac) -> Option<Self> {
        (self.operation == Operation::Request).then_some(Self {
            eth_destination: self.sender_mac,
            eth_source: mac,
            operation: Operation::Reply,
            sender_mac: mac,
            sender_ip: self.target_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        })
    }

    /// Gratuitous ARP for `ip` at `mac`, as a request and as a reply (hosts differ in which
    /// they heed), both broadcast with sender = target = `ip`.
    pub fn gratuitous(ip: Ipv4Addr, mac: Mac) -> [Self; 2] {
        let request = Self {
            eth_destination: Mac::BROADCAST,
            eth_source: mac,
            operation: Operation::Request,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: Mac::ZERO,
            target_ip: ip,
        };
        let reply = Self {
            operation: Operation::Reply,
            target_mac: Mac::BROADCAST,
            ..request
        };
        [request, reply]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Who has 192.0.2.200? Tell 192.0.2.10", from 02:00:00:00:00:0a, as on the wire (RFC 826
    /// layout), padded to the 60-byte Ethernet minimum.
    const REQUEST: [u8; 60] = {
        let mut b = [0u8; 60];
        let head: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // eth destination: broadcast
            0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // eth source
            0x08, 0x06, // ethertype ARP
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, // Ethernet, IPv4, 6, 4
            0x00, 0x01, // request
            0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 192, 0, 2, 10, // sender
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 0, 2, 200, // target
        ];
        let mut i = 0;
        while i < 42 {
            b[i] = head[i];
            i += 1;
        }
        b
    };

    const SPEAKER: Mac = Mac([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
    const CLIENT: Mac = Mac([0x02, 0x00, 0x00, 0x00, 0x00, 0x0a]);

    #[test]
    fn a_padded_request_decodes_and_reencodes_to_the_same_bytes() {
        let frame = ArpFrame::decode(&REQUEST).expect("valid request");
        assert_eq!(frame.operation, Operation::Request);
        assert_eq!(
            (frame.sender_mac, frame.sender_ip),
            (CLIENT, Ipv4Addr::new(192, 0, 2, 10))
        );
        assert_eq!(frame.target_ip, Ipv4Addr::new(192, 0, 2, 200));
        assert_eq!(frame.eth_destination, Mac::BROADCAST);
        assert_eq!(frame.encode(), REQUEST[..FRAME_LEN]);
    }

    #[test]
    fn the_reply_goes_to_the_requester_with_our_mac() {
        let reply = ArpFrame::decode(&REQUEST)
            .expect("valid")
            .reply_from(SPEAKER)
            .expect("a request");
        let bytes = reply.encode();
        let want: [u8; 42] = [
            0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // to the client
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // from us
            0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // reply
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 192, 0, 2, 200, // 192.0.2.200 is at us
            0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 192, 0, 2, 10, // to the asker
        ];
        assert_eq!(bytes, want);
        assert_eq!(ArpFrame::decode(&bytes), Ok(reply));
        assert_eq!(reply.reply_from(SPEAKER), None, "replies are not answered");
    }

    #[test]
    fn gratuitous_arp_is_a_broadcast_request_and_reply_for_the_ip_itself() {
        let ip = Ipv4Addr::new(192, 0, 2, 201);
        let [request, reply] = ArpFrame::gratuitous(ip, SPEAKER);
        for f in [request, reply] {
            assert_eq!((f.sender_ip, f.target_ip, f.sender_mac), (ip, ip, SPEAKER));
            assert_eq!(f.eth_destination, Mac::BROADCAST);
            assert_eq!(ArpFrame::decode(&f.encode()), Ok(f));
        }
        assert_eq!(
            (request.operation, reply.operation),
            (Operation::Request, Operation::Reply)
        );
    }

    #[test]
    fn malformed_frames_are_typed_errors_not_panics() {
        let mut not_arp = REQUEST;
        not_arp[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut rarp = REQUEST;
        rarp[20..22].copy_from_slice(&[0x00, 0x03]);
        let mut ipv6_plen = REQUEST;
        ipv6_plen[19] = 16;
        let cases: [(&[u8], ArpError); 5] = [
            (&REQUEST[..41], ArpError::Truncated(41)),
            (&[], ArpError::Truncated(0)),
            (&not_arp, ArpError::NotArp(0x0800)),
            (&rarp, ArpError::Operation(3)),
            (
                &ipv6_plen,
                ArpError::Unsupported {
                    htype: 1,
                    ptype: 0x0800,
                    hlen: 6,
                    plen: 16,
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(ArpFrame::decode(bytes), Err(want));
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            let _ = ArpFrame::decode(&bytes);
        }

        #[test]
        fn every_frame_round_trips(op in proptest::bool::ANY, a in proptest::array::uniform6(0u8..), b in proptest::array::uniform6(0u8..), x in 0u32.., y in 0u32..) {
            let f = ArpFrame {
                eth_destination: Mac(b), eth_source: Mac(a),
                operation: if op { Operation::Request } else { Operation::Reply },
                sender_mac: Mac(a), sender_ip: Ipv4Addr::from(x), target_mac: Mac(b), target_ip: Ipv4Addr::from(y),
            };
            proptest::prop_assert_eq!(ArpFrame::decode(&f.encode()), Ok(f));
        }
    }
}
