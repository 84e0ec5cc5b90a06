//! BFD Echo packets (RFC 5880 §6.4, RFC 5881 §4), pure: the payload, and the whole Ethernet
//! frame around it as an `AF_PACKET` socket writes and reads it.
//!
//! An Echo packet is addressed so that the peer's forwarding plane, not its BFD, sends it back:
//! IP source and destination are both our own address, UDP port 3785 both ways, and the frame
//! goes to the peer's MAC. The peer routes it like any transit packet, back to us, one TTL
//! (hop limit) less: it leaves with 255 and [`EchoFrame::decode_looped`] takes it back only with
//! 254, one forwarding hop, as FRR's bfdd does. The kernel would not hand such a packet to a
//! UDP socket (a packet from outside with our own source address is a martian), which is why
//! both directions are whole frames.
//!
//! RFC 5880 leaves the payload to the sender, the only system that reads it. Ours names the
//! session and counts, so a looped packet is matched to its session and a stale one is known:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Version (1)  |  Length (12)  |        Reserved (zero)        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       My Discriminator                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Sequence Number                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The frame (IPv4; IPv6 alike with its 40-octet header, hop limit in place of TTL):
//!
//! ```text
//! | Ethernet dst: peer's MAC | src: ours | 0x0800 | IPv4: TOS 0xc0, DF, TTL 255, UDP,
//! | source = destination = our address | UDP 3785 → 3785, checksum | payload (12) |
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::layer2::arp::Mac;

/// The UDP port of BFD Echo packets, source and destination (RFC 5881 §4).
pub const ECHO_PORT: u16 = 3785;

/// The payload version this codec writes.
pub const VERSION: u8 = 1;

/// The payload's length.
pub const LENGTH: usize = 12;

/// TTL (hop limit) an Echo packet leaves with.
pub const TTL: u8 = 255;

/// TTL (hop limit) it must come back with: one forwarding hop, the peer's.
pub const LOOPED_TTL: u8 = TTL - 1;

/// IP precedence 6, "internetwork control", as the Control packets.
const TOS: u8 = 0xc0;

const ETHERNET_HEADER: usize = 14;
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const UDP: u8 = 17;

/// The payload of one of our Echo packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EchoPacket {
    /// The sending session's local discriminator.
    pub discriminator: u32,
    /// Counts the session's Echo packets, from a random start.
    pub sequence: u32,
}

impl EchoPacket {
    /// The 12 octets of the payload.
    pub fn encode(&self) -> [u8; LENGTH] {
        let mut out = [0u8; LENGTH];
        out[0] = VERSION;
        out[1] = LENGTH as u8;
        out[4..8].copy_from_slice(&self.discriminator.to_be_bytes());
        out[8..12].copy_from_slice(&self.sequence.to_be_bytes());
        out
    }

    /// Reads a payload we wrote; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let fixed = bytes.first_chunk::<LENGTH>()?;
        if fixed[0] != VERSION || usize::from(fixed[1]) != LENGTH || bytes.len() != LENGTH {
            return None;
        }
        let word =
            |i: usize| u32::from_be_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
        Some(Self {
            discriminator: word(4),
            sequence: word(8),
        })
    }
}

/// Why a received frame is not one of our Echo packets back from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EchoFrameError {
    /// Shorter than its headers say.
    #[error("frame of {0} octets is truncated")]
    Truncated(usize),
    /// Not UDP to port 3785 from and to our address, unfragmented.
    #[error("not a BFD Echo packet of ours")]
    NotEcho,
    /// Ours, but it did not cross exactly one router.
    #[error("Echo packet came back with TTL {0}, not 254")]
    Ttl(u8),
    /// An IP header or UDP checksum that does not add up.
    #[error("bad checksum")]
    Checksum,
    /// A payload we did not write.
    #[error("unknown Echo payload")]
    Payload,
}

/// One Echo packet in its Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoFrame {
    /// Ethernet destination: the peer's MAC.
    pub eth_destination: Mac,
    /// Ethernet source: our interface's MAC.
    pub eth_source: Mac,
    /// IP source and destination alike: our address.
    pub address: IpAddr,
    /// The payload.
    pub packet: EchoPacket,
}

impl EchoFrame {
    /// The frame's bytes, leaving with TTL (hop limit) 255, checksums set.
    pub fn encode(&self) -> Vec<u8> {
        let mut udp = Vec::with_capacity(UDP_HEADER + LENGTH);
        udp.extend_from_slice(&ECHO_PORT.to_be_bytes());
        udp.extend_from_slice(&ECHO_PORT.to_be_bytes());
        udp.extend_from_slice(&((UDP_HEADER + LENGTH) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&self.packet.encode());
        let sum = match udp_checksum(self.address, &udp) {
            // RFC 768: a computed zero is sent as all ones.
            0 => 0xffff,
            sum => sum,
        };
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        let mut frame = Vec::with_capacity(ETHERNET_HEADER + IPV6_HEADER + udp.len());
        frame.extend_from_slice(&self.eth_destination.0);
        frame.extend_from_slice(&self.eth_source.0);
        match self.address {
            IpAddr::V4(ip) => {
                frame.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                frame.extend_from_slice(&ipv4_header(ip, udp.len()));
            }
            IpAddr::V6(ip) => {
                frame.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
                frame.extend_from_slice(&[0x60 | (TOS >> 4), (TOS & 0x0f) << 4, 0, 0]);
                frame.extend_from_slice(&(udp.len() as u16).to_be_bytes());
                frame.extend_from_slice(&[UDP, TTL]);
                frame.extend_from_slice(&ip.octets());
                frame.extend_from_slice(&ip.octets());
            }
        }
        frame.extend_from_slice(&udp);
        frame
    }

    /// Reads a received frame as one of our Echo packets addressed to and from `address`,
    /// back from one forwarding hop. Ethernet padding after the IP packet is ignored.
    pub fn decode_looped(frame: &[u8], address: IpAddr) -> Result<EchoPacket, EchoFrameError> {
        let ethertype = frame
            .get(12..14)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(EchoFrameError::Truncated(frame.len()))?;
        let ip = &frame[ETHERNET_HEADER..];
        let (ttl, udp) = match (address, ethertype) {
            (IpAddr::V4(ours), ETHERTYPE_IPV4) => ipv4_udp(ip, ours)?,
            (IpAddr::V6(ours), ETHERTYPE_IPV6) => ipv6_udp(ip, ours)?,
            _ => return Err(EchoFrameError::NotEcho),
        };
        let port = |i: usize| u16::from_be_bytes([udp[i], udp[i + 1]]);
        if udp.len() < UDP_HEADER || port(2) != ECHO_PORT {
            return Err(EchoFrameError::NotEcho);
        }
        if usize::from(port(4)) != udp.len() {
            return Err(EchoFrameError::Truncated(frame.len()));
        }
        // IPv4 may leave the checksum out (zero); IPv6 may not (RFC 8200 §8.1).
        if (address.is_ipv6() || port(6) != 0) && udp_checksum(address, udp) != 0 {
            return Err(EchoFrameError::Checksum);
        }
        if ttl != LOOPED_TTL {
            return Err(EchoFrameError::Ttl(ttl));
        }
        EchoPacket::decode(&udp[UDP_HEADER..]).ok_or(EchoFrameError::Payload)
    }
}

/// The IPv4 header of an Echo packet from `ip` to `ip` carrying `udp_len` octets of UDP.
fn ipv4_header(ip: Ipv4Addr, udp_len: usize) -> [u8; IPV4_HEADER] {
    let mut h = [0u8; IPV4_HEADER];
    h[0] = 0x45;
    h[1] = TOS;
    h[2..4].copy_from_slice(&((IPV4_HEADER + udp_len) as u16).to_be_bytes());
    // Identification 0 with Don't Fragment: an atomic datagram (RFC 6864).
    h[6] = 0x40;
    h[8] = TTL;
    h[9] = UDP;
    h[12..16].copy_from_slice(&ip.octets());
    h[16..20].copy_from_slice(&ip.octets());
    let sum = internet_checksum(&[&h]);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

/// The TTL and UDP datagram of an unfragmented IPv4 packet from and to `ours`.
fn ipv4_udp(ip: &[u8], ours: Ipv4Addr) -> Result<(u8, &[u8]), EchoFrameError> {
    let truncated = || EchoFrameError::Truncated(ETHERNET_HEADER + ip.len());
    let fixed = ip.get(..IPV4_HEADER).ok_or_else(truncated)?;
    let header_len = usize::from(fixed[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
    let fragment = u16::from_be_bytes([fixed[6], fixed[7]]) & 0x3fff != 0;
    let address = |i: usize| Ipv4Addr::new(fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]);
    if fixed[0] >> 4 != 4
        || header_len < IPV4_HEADER
        || fixed[9] != UDP
        || fragment
        || address(12) != ours
        || address(16) != ours
    {
        return Err(EchoFrameError::NotEcho);
    }
    let packet = ip.get(..total).ok_or_else(truncated)?;
    let header = packet.get(..header_len).ok_or_else(truncated)?;
    if internet_checksum(&[header]) != 0 {
        return Err(EchoFrameError::Checksum);
    }
    Ok((fixed[8], &packet[header_len..]))
}

/// The hop limit and UDP datagram of an IPv6 packet from and to `ours` (no extension headers).
fn ipv6_udp(ip: &[u8], ours: Ipv6Addr) -> Result<(u8, &[u8]), EchoFrameError> {
    let truncated = || EchoFrameError::Truncated(ETHERNET_HEADER + ip.len());
    let fixed = ip.get(..IPV6_HEADER).ok_or_else(truncated)?;
    let address = |i: usize| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&fixed[i..i + 16]);
        Ipv6Addr::from(octets)
    };
    if fixed[0] >> 4 != 6 || fixed[6] != UDP || address(8) != ours || address(24) != ours {
        return Err(EchoFrameError::NotEcho);
    }
    let payload = usize::from(u16::from_be_bytes([fixed[4], fixed[5]]));
    let udp = ip
        .get(IPV6_HEADER..IPV6_HEADER + payload)
        .ok_or_else(truncated)?;
    Ok((fixed[7], udp))
}

/// The UDP checksum of `udp` from `address` to itself: with the checksum field zeroed, the
/// value to put there; over a datagram carrying a correct one, zero.
fn udp_checksum(address: IpAddr, udp: &[u8]) -> u16 {
    let len = udp.len() as u32;
    match address {
        IpAddr::V4(ip) => {
            let ip = ip.octets();
            let len = (len as u16).to_be_bytes();
            internet_checksum(&[&ip, &ip, &[0, UDP], &len, udp])
        }
        IpAddr::V6(ip) => {
            let ip = ip.octets();
            internet_checksum(&[&ip, &ip, &len.to_be_bytes(), &[0, 0, 0, UDP], udp])
        }
    }
}

/// The ones' complement of the ones' complement sum of `parts` taken as one run of 16-bit
/// words (RFC 1071); every part but the last must have an even length.
fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u64::from);
            sum += hi | lo;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests;
