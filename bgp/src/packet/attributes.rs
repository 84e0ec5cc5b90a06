//! Path attributes (RFC 4271 §4.3 and §5) and their encoding; decoding, with its RFC 7606
//! error handling, is in `decode_attributes`.
//!
//! ```text
//!  0                   1                   2
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |O|T|P|E|0 0 0 0|  Type Code    | Length (1, or 2 if E) | Value ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! O optional, T transitive, P partial, E extended length
//! ```
//!
//! Encoded order: MP_REACH_NLRI and MP_UNREACH_NLRI first (RFC 7606 §5.1), then ascending type
//! code (RFC 4271 §5). Values longer than 255 octets get the extended length bit.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::as_path::AsPath;
use super::wire::put_prefix;
use super::{AS_TRANS, EncodeError, Family};

/// Attribute type codes.
pub mod type_code {
    /// ORIGIN, well-known mandatory.
    pub const ORIGIN: u8 = 1;
    /// AS_PATH, well-known mandatory.
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP, well-known mandatory with IPv4 NLRI.
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC, optional non-transitive.
    pub const MULTI_EXIT_DISC: u8 = 4;
    /// LOCAL_PREF, well-known (iBGP only).
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE, well-known discretionary.
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR, optional transitive.
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997), optional transitive.
    pub const COMMUNITIES: u8 = 8;
    /// MP_REACH_NLRI (RFC 4760), optional non-transitive.
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760), optional non-transitive.
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// AS4_PATH (RFC 6793), optional transitive.
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793), optional transitive.
    pub const AS4_AGGREGATOR: u8 = 18;
    /// LARGE_COMMUNITY (RFC 8092), optional transitive.
    pub const LARGE_COMMUNITY: u8 = 32;
}

pub(crate) mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// The (optional, transitive) bits a known attribute must carry.
pub(crate) fn expected_flags(code: u8) -> Option<(bool, bool)> {
    use type_code::*;
    Some(match code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => (false, true),
        MULTI_EXIT_DISC | MP_REACH_NLRI | MP_UNREACH_NLRI => (true, false),
        AGGREGATOR | COMMUNITIES | AS4_PATH | AS4_AGGREGATOR | LARGE_COMMUNITY => (true, true),
        _ => return None,
    })
}

/// A readable name for an attribute type code, for errors and logs.
pub(crate) fn name(code: u8) -> &'static str {
    use type_code::*;
    match code {
        ORIGIN => "ORIGIN",
        AS_PATH => "AS_PATH",
        NEXT_HOP => "NEXT_HOP",
        MULTI_EXIT_DISC => "MULTI_EXIT_DISC",
        LOCAL_PREF => "LOCAL_PREF",
        ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        AGGREGATOR => "AGGREGATOR",
        COMMUNITIES => "COMMUNITIES",
        MP_REACH_NLRI => "MP_REACH_NLRI",
        MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        AS4_PATH => "AS4_PATH",
        AS4_AGGREGATOR => "AS4_AGGREGATOR",
        LARGE_COMMUNITY => "LARGE_COMMUNITY",
        _ => "unknown",
    }
}

/// ORIGIN (type 1): `0 IGP | 1 EGP | 2 INCOMPLETE`, one octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Learned from an interior protocol (what a LoadBalancer speaker originates).
    Igp,
    /// Learned via EGP.
    Egp,
    /// Learned some other way.
    Incomplete,
}

impl Origin {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Igp,
            1 => Self::Egp,
            2 => Self::Incomplete,
            _ => return None,
        })
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Igp => 0,
            Self::Egp => 1,
            Self::Incomplete => 2,
        }
    }
}

/// AGGREGATOR (type 7) and AS4_AGGREGATOR (type 18): `ASN (2 or 4) | IPv4 address (4)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    /// The ASN of the speaker that aggregated.
    pub asn: u32,
    /// Its BGP identifier.
    pub address: Ipv4Addr,
}

/// A community (RFC 1997): four octets, usually written `asn:value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u32);

impl Community {
    /// NO_EXPORT (0xFFFFFF01).
    pub const NO_EXPORT: Self = Self(0xFFFF_FF01);
    /// NO_ADVERTISE (0xFFFFFF02).
    pub const NO_ADVERTISE: Self = Self(0xFFFF_FF02);
    /// NO_EXPORT_SUBCONFED (0xFFFFFF03).
    pub const NO_EXPORT_SUBCONFED: Self = Self(0xFFFF_FF03);
    /// GRACEFUL_SHUTDOWN, 65535:0 (RFC 8326): the path is about to go away.
    pub const GRACEFUL_SHUTDOWN: Self = Self(0xFFFF_0000);

    /// `asn:value`.
    pub fn new(asn: u16, value: u16) -> Self {
        Self(u32::from(asn) << 16 | u32::from(value))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

/// A large community (RFC 8092): `Global Administrator (4) | Local Data 1 (4) | Local Data 2 (4)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    /// Global administrator, usually the ASN.
    pub global_admin: u32,
    /// First local data part.
    pub local_data1: u32,
    /// Second local data part.
    pub local_data2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.global_admin, self.local_data1, self.local_data2
        )
    }
}

/// The next hop of MP_REACH_NLRI: for IPv6, a global address and optionally a link-local one
/// (RFC 2545: 16 or 32 octets); for IPv4, an IPv4 address (4 octets) or, as RFC 8950 allows,
/// an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MpNextHop {
    /// The global next hop.
    pub global: IpAddr,
    /// The link-local next hop, IPv6 only.
    pub link_local: Option<Ipv6Addr>,
}

/// MP_REACH_NLRI (type 14, RFC 4760 §3), for a family we decode.
///
/// ```text
/// +---------------------------------------------------------+
/// | Address Family Identifier (2 octets)                    |
/// | Subsequent Address Family Identifier (1 octet)          |
/// | Length of Next Hop Network Address (1 octet)            |
/// | Network Address of Next Hop (variable)                  |
/// | Reserved (1 octet)                                      |
/// | Network Layer Reachability Information (variable)       |
/// +---------------------------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    /// The family of `next_hop` and `nlri`.
    pub family: Family,
    /// The next hop.
    pub next_hop: MpNextHop,
    /// The prefixes announced, all of `family`.
    pub nlri: Vec<IpNet>,
}

/// MP_UNREACH_NLRI (type 15, RFC 4760 §4): `AFI (2) | SAFI (1) | Withdrawn Routes (variable)`.
/// With no prefix it is the End-of-RIB marker of its family (RFC 4724 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpUnreach {
    /// The family of `withdrawn`.
    pub family: Family,
    /// The prefixes withdrawn, all of `family`.
    pub withdrawn: Vec<IpNet>,
}

/// An optional transitive attribute we do not know, kept so it could be passed on. It is
/// always sent with the Partial bit set (RFC 4271 §5); optional non-transitive attributes we do
/// not know are dropped when decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAttribute {
    /// Type code.
    pub type_code: u8,
    /// Value.
    pub value: Vec<u8>,
}

/// The path attributes of one UPDATE. Empty lists mean the attribute is absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathAttributes {
    /// ORIGIN (1).
    pub origin: Option<Origin>,
    /// AS_PATH (2).
    pub as_path: Option<AsPath>,
    /// NEXT_HOP (3), for IPv4 NLRI outside MP_REACH_NLRI.
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC (4).
    pub med: Option<u32>,
    /// LOCAL_PREF (5).
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE (6).
    pub atomic_aggregate: bool,
    /// AGGREGATOR (7).
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES (8).
    pub communities: Vec<Community>,
    /// MP_REACH_NLRI (14).
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI (15).
    pub mp_unreach: Option<MpUnreach>,
    /// AS4_PATH (17): only on sessions without 4-octet AS. Left empty, the encoder fills it
    /// from `as_path` when that holds an ASN above 65535 (RFC 6793 §4.2.2).
    pub as4_path: Option<AsPath>,
    /// AS4_AGGREGATOR (18): as `as4_path`, for `aggregator`.
    pub as4_aggregator: Option<Aggregator>,
    /// LARGE_COMMUNITY (32).
    pub large_communities: Vec<LargeCommunity>,
    /// Unknown optional transitive attributes, in type code order.
    pub unknown: Vec<UnknownAttribute>,
}

impl PathAttributes {
    /// Appends the encoded attributes.
    pub(crate) fn encode(&self, four_octet: bool, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        use flag::{OPTIONAL, PARTIAL, TRANSITIVE};
        use type_code::*;
        if let Some(reach) = &self.mp_reach {
            put_attribute(out, OPTIONAL, MP_REACH_NLRI, &encode_mp_reach(reach)?)?;
        }
        if let Some(unreach) = &self.mp_unreach {
            let mut v = afi_safi_bytes(unreach.family).to_vec();
            put_prefixes(&mut v, unreach.family, &unreach.withdrawn)?;
            put_attribute(out, OPTIONAL, MP_UNREACH_NLRI, &v)?;
        }
        let mut rest: Vec<(u8, u8, Vec<u8>)> = Vec::new();
        if let Some(origin) = self.origin {
            rest.push((TRANSITIVE, ORIGIN, vec![origin.to_u8()]));
        }
        if let Some(path) = &self.as_path {
            let mut v = Vec::new();
            path.encode(four_octet, &mut v);
            rest.push((TRANSITIVE, AS_PATH, v));
        }
        if let Some(nh) = self.next_hop {
            rest.push((TRANSITIVE, NEXT_HOP, nh.octets().to_vec()));
        }
        if let Some(med) = self.med {
            rest.push((OPTIONAL, MULTI_EXIT_DISC, med.to_be_bytes().to_vec()));
        }
        if let Some(lp) = self.local_pref {
            rest.push((TRANSITIVE, LOCAL_PREF, lp.to_be_bytes().to_vec()));
        }
        if self.atomic_aggregate {
            rest.push((TRANSITIVE, ATOMIC_AGGREGATE, Vec::new()));
        }
        if let Some(agg) = self.aggregator {
            let mut v = if four_octet {
                agg.asn.to_be_bytes().to_vec()
            } else {
                u16::try_from(agg.asn)
                    .unwrap_or(AS_TRANS)
                    .to_be_bytes()
                    .to_vec()
            };
            v.extend_from_slice(&agg.address.octets());
            rest.push((OPTIONAL | TRANSITIVE, AGGREGATOR, v));
        }
        if !self.communities.is_empty() {
            let v = self
                .communities
                .iter()
                .flat_map(|c| c.0.to_be_bytes())
                .collect();
            rest.push((OPTIONAL | TRANSITIVE, COMMUNITIES, v));
        }
        if !four_octet {
            let as4_path = self.as4_path.clone().or_else(|| {
                let path = self.as_path.as_ref()?;
                path.needs_four_octets().then(|| path.without_confed())
            });
            if let Some(path) = as4_path {
                let mut v = Vec::new();
                path.encode(true, &mut v);
                rest.push((OPTIONAL | TRANSITIVE, AS4_PATH, v));
            }
            let as4_agg = self
                .as4_aggregator
                .or(self.aggregator.filter(|a| a.asn > u32::from(u16::MAX)));
            if let Some(agg) = as4_agg {
                let mut v = agg.asn.to_be_bytes().to_vec();
                v.extend_from_slice(&agg.address.octets());
                rest.push((OPTIONAL | TRANSITIVE, AS4_AGGREGATOR, v));
            }
        }
        if !self.large_communities.is_empty() {
            let v = self
                .large_communities
                .iter()
                .flat_map(|c| {
                    let mut b = [0u8; 12];
                    b[..4].copy_from_slice(&c.global_admin.to_be_bytes());
                    b[4..8].copy_from_slice(&c.local_data1.to_be_bytes());
                    b[8..].copy_from_slice(&c.local_data2.to_be_bytes());
                    b
                })
                .collect();
            rest.push((OPTIONAL | TRANSITIVE, LARGE_COMMUNITY, v));
        }
        for u in &self.unknown {
            if expected_flags(u.type_code).is_some() {
                return Err(EncodeError::KnownTypeAsUnknown {
                    type_code: u.type_code,
                });
            }
            rest.push((
                OPTIONAL | TRANSITIVE | PARTIAL,
                u.type_code,
                u.value.clone(),
            ));
        }
        rest.sort_by_key(|(_, code, _)| *code);
        for (flags, code, value) in rest {
            put_attribute(out, flags, code, &value)?;
        }
        Ok(())
    }

    /// Whether `asn` appears in AS_PATH or AS4_PATH: a route that looped back to us.
    pub fn contains_as(&self, asn: u32) -> bool {
        let has = |p: &Option<AsPath>| p.as_ref().is_some_and(|p| p.contains(asn));
        has(&self.as_path) || has(&self.as4_path)
    }
}

fn afi_safi_bytes(family: Family) -> [u8; 3] {
    let a = family.afi_safi();
    let [x, y] = a.afi.to_be_bytes();
    [x, y, a.safi]
}

fn put_prefixes(out: &mut Vec<u8>, family: Family, prefixes: &[IpNet]) -> Result<(), EncodeError> {
    for p in prefixes {
        if Family::of(p) != family {
            return Err(EncodeError::PrefixFamily { prefix: *p, family });
        }
        put_prefix(out, p);
    }
    Ok(())
}

fn encode_mp_reach(reach: &MpReach) -> Result<Vec<u8>, EncodeError> {
    let mut v = afi_safi_bytes(reach.family).to_vec();
    let nh = reach.next_hop;
    let mut hop = match (reach.family, nh.global) {
        (Family::Ipv4Unicast, IpAddr::V4(a)) if nh.link_local.is_none() => a.octets().to_vec(),
        (_, IpAddr::V6(a)) => a.octets().to_vec(),
        _ => {
            return Err(EncodeError::NextHopFamily {
                next_hop: nh,
                family: reach.family,
            });
        }
    };
    if let Some(ll) = nh.link_local {
        hop.extend_from_slice(&ll.octets());
    }
    v.push(u8::try_from(hop.len()).unwrap_or(u8::MAX));
    v.extend_from_slice(&hop);
    v.push(0);
    put_prefixes(&mut v, reach.family, &reach.nlri)?;
    Ok(v)
}

fn put_attribute(out: &mut Vec<u8>, flags: u8, code: u8, value: &[u8]) -> Result<(), EncodeError> {
    if let Ok(len) = u8::try_from(value.len()) {
        out.extend_from_slice(&[flags, code, len]);
    } else {
        let len = u16::try_from(value.len()).map_err(|_| EncodeError::MessageTooLong {
            length: value.len(),
        })?;
        out.extend_from_slice(&[flags | flag::EXTENDED_LENGTH, code]);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(value);
    Ok(())
}
