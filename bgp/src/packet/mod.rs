//! The BGP-4 wire codec (RFC 4271 §4) and the extensions a LoadBalancer speaker meets. Pure:
//! [`Message::decode`] takes the bytes of one message and [`Message::encode`] gives them back;
//! neither reads a socket. Written in-house rather than wrapped around `netgauze-bgp-pkt` so
//! that every malformed input maps to exactly the NOTIFICATION (and RFC 7606 recovery) we
//! choose; netgauze serves as a test oracle for the encodings.
//!
//! Every message starts with the same header:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                                                               +
//! |                                                               |
//! +                                                               +
//! |                           Marker (all ones)                   |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length (19..=4096)   |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Type 1 OPEN, 2 UPDATE, 3 NOTIFICATION, 4 KEEPALIVE (header only), 5 ROUTE-REFRESH.
//!
//! Decoding an UPDATE depends on what the session negotiated (2- or 4-octet AS numbers, the
//! address families), so [`Message::decode`] and [`Message::encode`] take a [`SessionContext`].

mod as_path;
mod attributes;
mod builder;
mod decode_attributes;
mod error;
mod notification;
mod open;
mod update;
mod wire;

#[cfg(test)]
mod tests;

use std::fmt;

pub use as_path::{AS_TRANS, AsPath, AsSegment, SegmentKind};
pub use attributes::{
    Aggregator, Community, LargeCommunity, MpNextHop, MpReach, MpUnreach, Origin, PathAttributes,
    UnknownAttribute, type_code,
};
pub use builder::UpdateBuilder;
pub use error::{AttributeError, DecodeError, EncodeError, ErrorAction};
pub use notification::{
    MAX_NOTIFICATION_DATA, MAX_SHUTDOWN_MESSAGE, Notification, cease_subcode, error_code,
    fsm_subcode, header_subcode, open_subcode, route_refresh_subcode, update_subcode,
};
pub use open::{Capability, ExtendedNextHop, GracefulRestart, GracefulRestartFamily, Open};
pub use update::Update;

use wire::Reader;

/// Octets in the message header.
pub const HEADER_LEN: usize = 19;
/// The largest message without the Extended Message capability (RFC 8654), which we never
/// advertise.
pub const MAX_MESSAGE_LEN: usize = 4096;
const MARKER: [u8; 16] = [0xff; 16];

/// An AFI/SAFI pair as it appears on the wire (capabilities, MP attributes, ROUTE-REFRESH),
/// including families this codec does not otherwise understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AfiSafi {
    /// Address Family Identifier (1 IPv4, 2 IPv6).
    pub afi: u16,
    /// Subsequent Address Family Identifier (1 unicast).
    pub safi: u8,
}

impl AfiSafi {
    /// IPv4 unicast (1/1).
    pub const IPV4_UNICAST: Self = Self { afi: 1, safi: 1 };
    /// IPv6 unicast (2/1).
    pub const IPV6_UNICAST: Self = Self { afi: 2, safi: 1 };
}

impl fmt::Display for AfiSafi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Family::from_afi_safi(*self) {
            Some(family) => family.fmt(f),
            None => write!(f, "afi {} safi {}", self.afi, self.safi),
        }
    }
}

/// An address family whose routes this codec decodes into prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4 unicast.
    Ipv4Unicast,
    /// IPv6 unicast.
    Ipv6Unicast,
}

impl Family {
    /// Both families, IPv4 first.
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    /// The wire AFI/SAFI.
    pub fn afi_safi(self) -> AfiSafi {
        match self {
            Family::Ipv4Unicast => AfiSafi::IPV4_UNICAST,
            Family::Ipv6Unicast => AfiSafi::IPV6_UNICAST,
        }
    }

    /// The family of a wire AFI/SAFI, if it is one we decode.
    pub fn from_afi_safi(afi_safi: AfiSafi) -> Option<Self> {
        match afi_safi {
            AfiSafi::IPV4_UNICAST => Some(Family::Ipv4Unicast),
            AfiSafi::IPV6_UNICAST => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }

    /// The family a prefix belongs to.
    pub fn of(prefix: &ipnet::IpNet) -> Self {
        match prefix {
            ipnet::IpNet::V4(_) => Family::Ipv4Unicast,
            ipnet::IpNet::V6(_) => Family::Ipv6Unicast,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4Unicast => "ipv4-unicast",
            Family::Ipv6Unicast => "ipv6-unicast",
        })
    }
}

/// A set of [`Family`] values.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Families(u8);

impl Families {
    /// No family.
    pub const NONE: Self = Self(0);
    /// IPv4 unicast only: what a peer without MP-BGP capabilities supports (RFC 4760 §8).
    pub const IPV4: Self = Self(1);
    /// IPv6 unicast only.
    pub const IPV6: Self = Self(2);
    /// IPv4 and IPv6 unicast.
    pub const BOTH: Self = Self(3);

    fn bit(family: Family) -> u8 {
        match family {
            Family::Ipv4Unicast => 1,
            Family::Ipv6Unicast => 2,
        }
    }

    /// Whether `family` is in the set.
    pub fn contains(self, family: Family) -> bool {
        self.0 & Self::bit(family) != 0
    }

    /// The set with `family` added.
    #[must_use]
    pub fn with(self, family: Family) -> Self {
        Self(self.0 | Self::bit(family))
    }

    /// The families in both sets.
    #[must_use]
    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The families in the set, IPv4 first.
    pub fn iter(self) -> impl Iterator<Item = Family> {
        Family::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

impl FromIterator<Family> for Families {
    fn from_iter<I: IntoIterator<Item = Family>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

impl fmt::Debug for Families {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// What a session negotiated that changes how UPDATEs are encoded and decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionContext {
    /// Both sides sent the 4-octet AS capability (RFC 6793): AS_PATH and AGGREGATOR carry
    /// 4-octet ASNs and AS4_PATH/AS4_AGGREGATOR are neither sent nor kept.
    pub four_octet_as: bool,
    /// The families whose MP_REACH_NLRI/MP_UNREACH_NLRI attributes are decoded; MP attributes
    /// of any other family are dropped unread. Classic IPv4 NLRI is always decoded.
    pub families: Families,
}

impl Default for SessionContext {
    /// The RFC 4271 baseline: 2-octet ASNs, IPv4 unicast only.
    fn default() -> Self {
        Self {
            four_octet_as: false,
            families: Families::IPV4,
        }
    }
}

/// The type octet of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1
    Open,
    /// 2
    Update,
    /// 3
    Notification,
    /// 4
    Keepalive,
    /// 5 (RFC 2918)
    RouteRefresh,
}

impl MessageType {
    fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::Open,
            2 => Self::Update,
            3 => Self::Notification,
            4 => Self::Keepalive,
            5 => Self::RouteRefresh,
            _ => return None,
        })
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Open => 1,
            Self::Update => 2,
            Self::Notification => 3,
            Self::Keepalive => 4,
            Self::RouteRefresh => 5,
        }
    }

    /// A bounded metric label: `open`, `update`, `notification`, `keepalive`, `route_refresh`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Update => "update",
            Self::Notification => "notification",
            Self::Keepalive => "keepalive",
            Self::RouteRefresh => "route_refresh",
        }
    }
}

/// One BGP message.
// An UPDATE is the large variant; messages live for one read or write, so boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE: the header alone.
    Keepalive,
    /// ROUTE-REFRESH (RFC 2918).
    RouteRefresh(RouteRefresh),
}

/// ROUTE-REFRESH (RFC 2918 §3; the reserved octet is RFC 7313's message subtype).
///
/// ```text
///  0       7      15      23      31
///  +-------+-------+-------+-------+
///  |      AFI      | Res.  | SAFI  |
///  +-------+-------+-------+-------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    /// The family whose routes the peer asks us to send again.
    pub afi_safi: AfiSafi,
    /// 0 for a plain request (RFC 2918); 1 and 2 mark the start and end of an enhanced
    /// refresh (RFC 7313).
    pub subtype: u8,
}

impl Message {
    /// The message's type.
    pub fn kind(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Decodes exactly one message: `bytes` must hold the whole message and nothing else (use
    /// [`frame_length`] to cut a stream into messages). Errors are the RFC 4271 §6 checks;
    /// [`DecodeError::notification`] gives the NOTIFICATION to send. UPDATE attribute errors
    /// that RFC 7606 lets a session survive are not errors: they are listed in
    /// [`Update::errors`].
    pub fn decode(bytes: &[u8], ctx: &SessionContext) -> Result<Message, DecodeError> {
        let length = frame_length(bytes)?.ok_or(DecodeError::BadMessageLength {
            length: u16::try_from(bytes.len()).unwrap_or(u16::MAX),
        })?;
        let length16 = u16::try_from(length).unwrap_or(u16::MAX);
        if length != bytes.len() {
            return Err(DecodeError::BadMessageLength { length: length16 });
        }
        let kind = MessageType::from_u8(bytes[18])
            .ok_or(DecodeError::BadMessageType { kind: bytes[18] })?;
        let min = match kind {
            MessageType::Open => 29,
            MessageType::Update => 23,
            MessageType::Notification => 21,
            MessageType::Keepalive => 19,
            MessageType::RouteRefresh => 23,
        };
        if length < min || (kind == MessageType::Keepalive && length != 19) {
            return Err(DecodeError::BadMessageLength { length: length16 });
        }
        let body = &bytes[HEADER_LEN..];
        Ok(match kind {
            MessageType::Open => Message::Open(Open::decode_body(body)?),
            MessageType::Update => Message::Update(Update::decode_body(body, ctx)?),
            MessageType::Notification => Message::Notification(Notification::decode_body(body)),
            MessageType::Keepalive => Message::Keepalive,
            MessageType::RouteRefresh => {
                if body.len() != 4 {
                    return Err(DecodeError::RouteRefreshLength {
                        message: bytes.to_vec(),
                    });
                }
                let mut r = Reader::new(body);
                let afi = r.u16().unwrap_or_default();
                let subtype = r.u8().unwrap_or_default();
                let safi = r.u8().unwrap_or_default();
                Message::RouteRefresh(RouteRefresh {
                    afi_safi: AfiSafi { afi, safi },
                    subtype,
                })
            }
        })
    }

    /// Encodes the message, header included.
    pub fn encode(&self, ctx: &SessionContext) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&MARKER);
        out.extend_from_slice(&[0, 0, self.kind().to_u8()]);
        match self {
            Message::Open(open) => open.encode_body(&mut out)?,
            Message::Update(update) => update.encode_body(&mut out, ctx)?,
            Message::Notification(n) => n.encode_body(&mut out),
            Message::Keepalive => {}
            Message::RouteRefresh(rr) => {
                out.extend_from_slice(&rr.afi_safi.afi.to_be_bytes());
                out.push(rr.subtype);
                out.push(rr.afi_safi.safi);
            }
        }
        if out.len() > MAX_MESSAGE_LEN {
            return Err(EncodeError::MessageTooLong { length: out.len() });
        }
        let length = u16::try_from(out.len()).unwrap_or(u16::MAX);
        wire::fill_u16(&mut out, 16, length);
        Ok(out)
    }
}

/// Reads the header at the start of a stream buffer: `Ok(None)` until 19 octets are there,
/// then the length of the first message once the marker and length are valid. The session
/// layer waits for that many octets and hands them to [`Message::decode`].
pub fn frame_length(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[..16] != MARKER {
        return Err(DecodeError::ConnectionNotSynchronized);
    }
    let length = u16::from_be_bytes([buf[16], buf[17]]);
    if usize::from(length) < HEADER_LEN || usize::from(length) > MAX_MESSAGE_LEN {
        return Err(DecodeError::BadMessageLength { length });
    }
    Ok(Some(usize::from(length)))
}
