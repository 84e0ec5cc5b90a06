//! The BGP Monitoring Protocol (RFC 7854), as a monitored router sends it, with Adj-RIB-Out
//! monitoring (RFC 8671): the messages a speaker sends a collector about its sessions and
//! the routes it advertises on them. Encoding is what the speaker uses; decoding is here so
//! the tests and the fuzz target can check that every message reads back as it was written.
//!
//! Every message starts with the common header (version 3, length, type); all but Initiation
//! and Termination then carry the per-peer header of the session they are about. BGP PDUs
//! (the OPENs in Peer Up, UPDATEs in Route Monitoring, the NOTIFICATION in Peer Down) are
//! carried whole, as sent or received on the session.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// The BMP version of RFC 7854.
pub const VERSION: u8 = 3;
/// The common header: version, message length, message type.
pub const COMMON_HEADER_LEN: usize = 6;
/// The per-peer header (RFC 7854 §4.2).
pub const PEER_HEADER_LEN: usize = 42;
/// Bounds what the decoder accepts, so a bogus length cannot make it wait for gigabytes.
pub const MAX_MESSAGE_LEN: usize = 1 << 20;

/// Message types (RFC 7854 §4.1).
pub mod kind {
    pub const ROUTE_MONITORING: u8 = 0;
    pub const STATISTICS_REPORT: u8 = 1;
    pub const PEER_DOWN: u8 = 2;
    pub const PEER_UP: u8 = 3;
    pub const INITIATION: u8 = 4;
    pub const TERMINATION: u8 = 5;
}

/// Information TLV types of Initiation and Peer Up (RFC 7854 §4.4).
pub mod info {
    pub const STRING: u16 = 0;
    pub const SYS_DESCR: u16 = 1;
    pub const SYS_NAME: u16 = 2;
}

/// Termination TLV types and the reasons it carries (RFC 7854 §4.5).
pub mod termination {
    pub const STRING: u16 = 0;
    pub const REASON: u16 = 1;
    pub const ADMINISTRATIVELY_CLOSED: u16 = 0;
}

/// Statistics types used here (RFC 8671 §6: gauges of the Adj-RIB-Out).
pub mod stat {
    /// Routes in the post-policy Adj-RIB-Out (64-bit gauge).
    pub const ADJ_RIB_OUT_POST_POLICY: u16 = 15;
}

/// Peer types (RFC 7854 §4.2).
pub mod peer_type {
    /// A peer of the default routing instance.
    pub const GLOBAL: u8 = 0;
    /// A peer of another local instance (a VRF without a route distinguisher).
    pub const LOCAL: u8 = 2;
}

/// Per-peer header flags besides V, which follows from the address.
pub mod flag {
    /// V: the peer address is IPv6.
    pub const IPV6: u8 = 0x80;
    /// L: the routes are post-policy.
    pub const POST_POLICY: u8 = 0x40;
    /// A: the AS_PATH in the UPDATEs is the legacy 2-octet format.
    pub const LEGACY_AS_PATH: u8 = 0x20;
    /// O: the routes are the Adj-RIB-Out (RFC 8671).
    pub const ADJ_RIB_OUT: u8 = 0x10;
}

/// The per-peer header: which session a message is about, and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHeader {
    pub peer_type: u8,
    /// L, A and O ([`flag`]); V is set from `address`.
    pub flags: u8,
    pub distinguisher: u64,
    pub address: IpAddr,
    pub asn: u32,
    pub bgp_id: Ipv4Addr,
    pub seconds: u32,
    pub microseconds: u32,
}

/// A Peer Down's reason (RFC 7854 §4.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerDownReason {
    /// 1: we closed the session with this NOTIFICATION (the whole PDU).
    LocalNotification(Vec<u8>),
    /// 2: we closed it without a NOTIFICATION, on this FSM event (RFC 4271 §8.1).
    LocalNoNotification(u16),
    /// 3: the peer closed it with this NOTIFICATION.
    RemoteNotification(Vec<u8>),
    /// 4: the peer closed the connection without one.
    RemoteNoData,
    /// 5: the session is no longer configured.
    Deconfigured,
}

/// A type-length-value of Initiation, Peer Up and Termination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    pub kind: u16,
    pub value: Vec<u8>,
}

impl Tlv {
    pub fn text(kind: u16, text: &str) -> Self {
        Self {
            kind,
            value: text.as_bytes().to_vec(),
        }
    }
}

/// A statistic of a Statistics Report: counters are 32 bits, gauges 64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stat {
    Counter(u16, u32),
    Gauge(u16, u64),
}

/// The messages a monitored speaker sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Initiation(Vec<Tlv>),
    PeerUp {
        peer: PeerHeader,
        local_address: IpAddr,
        local_port: u16,
        remote_port: u16,
        /// The OPEN we sent, whole.
        sent_open: Vec<u8>,
        /// The OPEN the peer sent, whole.
        received_open: Vec<u8>,
        info: Vec<Tlv>,
    },
    /// One UPDATE as sent to the peer (with the O flag, RFC 8671) or received from it.
    RouteMonitoring {
        peer: PeerHeader,
        update: Vec<u8>,
    },
    StatisticsReport {
        peer: PeerHeader,
        stats: Vec<Stat>,
    },
    PeerDown {
        peer: PeerHeader,
        reason: PeerDownReason,
    },
    Termination(Vec<Tlv>),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BmpError {
    #[error("BMP version {0}, not 3")]
    Version(u8),
    #[error("BMP message length {0} out of bounds")]
    Length(usize),
    #[error("BMP message truncated")]
    Truncated,
    #[error("unknown BMP message type {0}")]
    Kind(u8),
    #[error("unknown Peer Down reason {0}")]
    DownReason(u8),
    #[error("a BGP PDU in a BMP message is malformed")]
    Pdu,
    #[error("statistic {0} has length {1}")]
    Stat(u16, usize),
    #[error("a field does not fit its length")]
    TooLong,
}

impl Message {
    fn kind(&self) -> u8 {
        match self {
            Message::RouteMonitoring { .. } => kind::ROUTE_MONITORING,
            Message::StatisticsReport { .. } => kind::STATISTICS_REPORT,
            Message::PeerDown { .. } => kind::PEER_DOWN,
            Message::PeerUp { .. } => kind::PEER_UP,
            Message::Initiation(_) => kind::INITIATION,
            Message::Termination(_) => kind::TERMINATION,
        }
    }

    /// The message on the wire.
    pub fn encode(&self) -> Result<Vec<u8>, BmpError> {
        let mut out = vec![VERSION, 0, 0, 0, 0, self.kind()];
        match self {
            Message::Initiation(tlvs) | Message::Termination(tlvs) => put_tlvs(&mut out, tlvs)?,
            Message::PeerUp {
                peer,
                local_address,
                local_port,
                remote_port,
                sent_open,
                received_open,
                info,
            } => {
                put_peer(&mut out, peer);
                put_address(&mut out, *local_address);
                out.extend_from_slice(&local_port.to_be_bytes());
                out.extend_from_slice(&remote_port.to_be_bytes());
                out.extend_from_slice(sent_open);
                out.extend_from_slice(received_open);
                put_tlvs(&mut out, info)?;
            }
            Message::RouteMonitoring { peer, update } => {
                put_peer(&mut out, peer);
                out.extend_from_slice(update);
            }
            Message::StatisticsReport { peer, stats } => {
                put_peer(&mut out, peer);
                let count = u32::try_from(stats.len()).map_err(|_| BmpError::TooLong)?;
                out.extend_from_slice(&count.to_be_bytes());
                for stat in stats {
                    match stat {
                        Stat::Counter(kind, value) => {
                            out.extend_from_slice(&kind.to_be_bytes());
                            out.extend_from_slice(&4u16.to_be_bytes());
                            out.extend_from_slice(&value.to_be_bytes());
                        }
                        Stat::Gauge(kind, value) => {
                            out.extend_from_slice(&kind.to_be_bytes());
                            out.extend_from_slice(&8u16.to_be_bytes());
                            out.extend_from_slice(&value.to_be_bytes());
                        }
                    }
                }
            }
            Message::PeerDown { peer, reason } => {
                put_peer(&mut out, peer);
                match reason {
                    PeerDownReason::LocalNotification(pdu) => {
                        out.push(1);
                        out.extend_from_slice(pdu);
                    }
                    PeerDownReason::LocalNoNotification(event) => {
                        out.push(2);
                        out.extend_from_slice(&event.to_be_bytes());
                    }
                    PeerDownReason::RemoteNotification(pdu) => {
                        out.push(3);
                        out.extend_from_slice(pdu);
                    }
                    PeerDownReason::RemoteNoData => out.push(4),
                    PeerDownReason::Deconfigured => out.push(5),
                }
            }
        }
        let len = u32::try_from(out.len()).map_err(|_| BmpError::TooLong)?;
        out[1..5].copy_from_slice(&len.to_be_bytes());
        Ok(out)
    }

    /// Reads one whole message (as cut by [`frame_length`]).
    pub fn decode(bytes: &[u8]) -> Result<Message, BmpError> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(BmpError::Version(version));
        }
        let len = r.u32()? as usize;
        if len != bytes.len() {
            return Err(BmpError::Length(len));
        }
        let kind = r.u8()?;
        Ok(match kind {
            kind::INITIATION => Message::Initiation(tlvs(&mut r)?),
            kind::TERMINATION => Message::Termination(tlvs(&mut r)?),
            kind::PEER_UP => {
                let peer = peer(&mut r)?;
                let local_address = address(&mut r, peer.address.is_ipv6())?;
                let local_port = r.u16()?;
                let remote_port = r.u16()?;
                let sent_open = r.pdu()?;
                let received_open = r.pdu()?;
                Message::PeerUp {
                    peer,
                    local_address,
                    local_port,
                    remote_port,
                    sent_open,
                    received_open,
                    info: tlvs(&mut r)?,
                }
            }
            kind::ROUTE_MONITORING => {
                let peer = peer(&mut r)?;
                let update = r.pdu()?;
                if !r.0.is_empty() {
                    return Err(BmpError::Pdu);
                }
                Message::RouteMonitoring { peer, update }
            }
            kind::STATISTICS_REPORT => {
                let peer = peer(&mut r)?;
                let count = r.u32()?;
                let mut stats = Vec::new();
                for _ in 0..count {
                    let kind = r.u16()?;
                    let len = r.u16()? as usize;
                    stats.push(match len {
                        4 => Stat::Counter(kind, r.u32()?),
                        8 => Stat::Gauge(kind, u64::from_be_bytes(r.array()?)),
                        _ => return Err(BmpError::Stat(kind, len)),
                    });
                }
                if !r.0.is_empty() {
                    return Err(BmpError::TooLong);
                }
                Message::StatisticsReport { peer, stats }
            }
            kind::PEER_DOWN => {
                let peer = peer(&mut r)?;
                let reason = match r.u8()? {
                    1 => PeerDownReason::LocalNotification(r.pdu()?),
                    2 => PeerDownReason::LocalNoNotification(r.u16()?),
                    3 => PeerDownReason::RemoteNotification(r.pdu()?),
                    4 => PeerDownReason::RemoteNoData,
                    5 => PeerDownReason::Deconfigured,
                    other => return Err(BmpError::DownReason(other)),
                };
                if !r.0.is_empty() {
                    return Err(BmpError::TooLong);
                }
                Message::PeerDown { peer, reason }
            }
            other => return Err(BmpError::Kind(other)),
        })
    }
}

/// The length of the message at the start of `buf` once its header is in (`None` before).
pub fn frame_length(buf: &[u8]) -> Result<Option<usize>, BmpError> {
    if buf.len() < COMMON_HEADER_LEN {
        return Ok(None);
    }
    if buf[0] != VERSION {
        return Err(BmpError::Version(buf[0]));
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if !(COMMON_HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) {
        return Err(BmpError::Length(len));
    }
    Ok(Some(len))
}

fn put_peer(out: &mut Vec<u8>, peer: &PeerHeader) {
    out.push(peer.peer_type);
    let v = if peer.address.is_ipv6() {
        flag::IPV6
    } else {
        0
    };
    out.push((peer.flags & !flag::IPV6) | v);
    out.extend_from_slice(&peer.distinguisher.to_be_bytes());
    put_address(out, peer.address);
    out.extend_from_slice(&peer.asn.to_be_bytes());
    out.extend_from_slice(&peer.bgp_id.octets());
    out.extend_from_slice(&peer.seconds.to_be_bytes());
    out.extend_from_slice(&peer.microseconds.to_be_bytes());
}

/// 16 octets; an IPv4 address in the last 4, the rest zero (RFC 7854 §4.2).
fn put_address(out: &mut Vec<u8>, address: IpAddr) {
    match address {
        IpAddr::V4(a) => {
            out.extend_from_slice(&[0; 12]);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

fn put_tlvs(out: &mut Vec<u8>, tlvs: &[Tlv]) -> Result<(), BmpError> {
    for tlv in tlvs {
        let len = u16::try_from(tlv.value.len()).map_err(|_| BmpError::TooLong)?;
        out.extend_from_slice(&tlv.kind.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&tlv.value);
    }
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], BmpError> {
        if self.0.len() < n {
            return Err(BmpError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BmpError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, BmpError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, BmpError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, BmpError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A whole BGP PDU: marker, then its own length.
    fn pdu(&mut self) -> Result<Vec<u8>, BmpError> {
        if self.0.len() < 19 || self.0[..16] != [0xff; 16] {
            return Err(BmpError::Pdu);
        }
        let len = u16::from_be_bytes([self.0[16], self.0[17]]) as usize;
        if len < 19 {
            return Err(BmpError::Pdu);
        }
        Ok(self.take(len).map_err(|_| BmpError::Pdu)?.to_vec())
    }
}

fn peer(r: &mut Reader<'_>) -> Result<PeerHeader, BmpError> {
    let peer_type = r.u8()?;
    let flags = r.u8()?;
    let distinguisher = u64::from_be_bytes(r.array()?);
    let address = address(r, flags & flag::IPV6 != 0)?;
    Ok(PeerHeader {
        peer_type,
        flags: flags & !flag::IPV6,
        distinguisher,
        address,
        asn: r.u32()?,
        bgp_id: Ipv4Addr::from(r.array::<4>()?),
        seconds: r.u32()?,
        microseconds: r.u32()?,
    })
}

fn address(r: &mut Reader<'_>, ipv6: bool) -> Result<IpAddr, BmpError> {
    let octets: [u8; 16] = r.array()?;
    Ok(if ipv6 {
        IpAddr::V6(Ipv6Addr::from(octets))
    } else {
        IpAddr::V4(Ipv4Addr::new(
            octets[12], octets[13], octets[14], octets[15],
        ))
    })
}

fn tlvs(r: &mut Reader<'_>) -> Result<Vec<Tlv>, BmpError> {
    let mut out = Vec::new();
    while !r.0.is_empty() {
        let kind = r.u16()?;
        let len = r.u16()? as usize;
        out.push(Tlv {
            kind,
            value: r.take(len)?.to_vec(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
