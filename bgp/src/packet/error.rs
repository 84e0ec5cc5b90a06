//! Decode and encode errors. Each decode error names the NOTIFICATION RFC 4271 §6 gives it
//! ([`DecodeError::notification`], [`AttributeError::notification`]); attribute errors also say
//! how RFC 7606 handles them ([`AttributeError::action`]).
//!
//! RFC 7606 choices made here:
//! - treat-as-withdraw: ORIGIN, AS_PATH, NEXT_HOP, MULTI_EXIT_DISC, LOCAL_PREF, COMMUNITIES and
//!   LARGE_COMMUNITY errors (flags, length or value), a missing well-known attribute, and an
//!   attribute list whose lengths overrun (§4);
//! - attribute discard: ATOMIC_AGGREGATE, AGGREGATOR, AS4_PATH and AS4_AGGREGATOR errors, and a
//!   repeated attribute other than MP_REACH/MP_UNREACH (§3 g: later copies are dropped);
//! - session reset: any MP_REACH_NLRI/MP_UNREACH_NLRI error or repetition (§7.11 allows
//!   "AFI/SAFI disable" instead; we reset), an unrecognized well-known attribute, withdrawn or
//!   NLRI fields that do not parse (§5.3), and lengths that overrun the message.
//!
//! When the attribute list breaks (§4), the attributes after the break are not read: routes in
//! an MP_REACH_NLRI behind it cannot be withdrawn, which is why RFC 7606 §5.1 has senders put
//! MP_REACH_NLRI first. LOCAL_PREF from an external peer is kept (RFC 7606 §7.5 would discard
//! it): the codec does not know the peer's AS, and ferrolb does not use inbound routes.

use std::net::Ipv4Addr;

use ipnet::IpNet;

use super::attributes::{name, type_code};
use super::notification::{
    MAX_NOTIFICATION_DATA, Notification, error_code, header_subcode, open_subcode,
    route_refresh_subcode, update_subcode,
};
use super::{Family, MpNextHop};

/// How an UPDATE error is handled (RFC 7606 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorAction {
    /// Send the NOTIFICATION and close the session.
    SessionReset,
    /// Keep the session; the UPDATE's routes are taken as withdrawn.
    TreatAsWithdraw,
    /// Keep the session and the routes; the attribute is ignored.
    AttributeDiscard,
}

/// A message that cannot be accepted: the session must send [`DecodeError::notification`] and
/// close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The marker is not sixteen 0xff octets.
    #[error("message header marker is not all ones")]
    ConnectionNotSynchronized,
    /// Length outside 19..=4096, below the minimum of its type, or not the frame's length.
    #[error("bad message length {length}")]
    BadMessageLength {
        /// The header's length field.
        length: u16,
    },
    /// Type not 1..=5.
    #[error("bad message type {kind}")]
    BadMessageType {
        /// The header's type octet.
        kind: u8,
    },
    /// OPEN version other than 4.
    #[error("unsupported BGP version {version}")]
    UnsupportedVersion {
        /// The version received.
        version: u8,
    },
    /// OPEN hold time of 1 or 2 seconds.
    #[error("unacceptable hold time {hold_time}s")]
    UnacceptableHoldTime {
        /// The hold time received.
        hold_time: u16,
    },
    /// OPEN BGP identifier 0.0.0.0 (RFC 6286).
    #[error("bad BGP identifier {bgp_id}")]
    BadBgpIdentifier {
        /// The identifier received.
        bgp_id: Ipv4Addr,
    },
    /// An OPEN optional parameter other than Capabilities.
    #[error("unsupported optional parameter {kind}")]
    UnsupportedOptionalParameter {
        /// The parameter type.
        kind: u8,
    },
    /// OPEN optional parameter lengths that do not add up.
    #[error("malformed optional parameters")]
    MalformedOptionalParameters,
    /// A capability we know whose value has the wrong length.
    #[error("malformed capability {}", capability.first().copied().unwrap_or_default())]
    MalformedCapability {
        /// The capability as received (code, length, value).
        capability: Vec<u8>,
    },
    /// UPDATE withdrawn routes or attribute lengths that overrun the message.
    #[error("UPDATE lengths overrun the message")]
    MalformedUpdateLengths,
    /// Withdrawn routes or NLRI that are not a valid list of prefixes (RFC 7606 §5.3).
    #[error("invalid network field")]
    InvalidNetworkField,
    /// An attribute error that RFC 7606 does not let the session survive.
    #[error(transparent)]
    Attribute(AttributeError),
    /// A ROUTE-REFRESH longer than four octets of body (RFC 7313 §5).
    #[error("ROUTE-REFRESH of {} octets", message.len())]
    RouteRefreshLength {
        /// The whole message.
        message: Vec<u8>,
    },
}

impl DecodeError {
    /// The NOTIFICATION to send (RFC 4271 §6.1–6.3, RFC 7313 §5). Its data is cut to
    /// [`MAX_NOTIFICATION_DATA`] octets so that it can always be sent: RFC 7313 asks for the
    /// whole offending ROUTE-REFRESH, which may itself be 4096 octets long.
    pub fn notification(&self) -> Notification {
        let mut n = self.full_notification();
        n.data.truncate(MAX_NOTIFICATION_DATA);
        n
    }

    fn full_notification(&self) -> Notification {
        use DecodeError::*;
        let n = Notification::new;
        match self {
            ConnectionNotSynchronized => n(
                error_code::MESSAGE_HEADER,
                header_subcode::CONNECTION_NOT_SYNCHRONIZED,
                vec![],
            ),
            BadMessageLength { length } => n(
                error_code::MESSAGE_HEADER,
                header_subcode::BAD_MESSAGE_LENGTH,
                length.to_be_bytes().to_vec(),
            ),
            BadMessageType { kind } => n(
                error_code::MESSAGE_HEADER,
                header_subcode::BAD_MESSAGE_TYPE,
                vec![*kind],
            ),
            // Data: the largest version we support, as two octets.
            UnsupportedVersion { .. } => n(
                error_code::OPEN_MESSAGE,
                open_subcode::UNSUPPORTED_VERSION_NUMBER,
                vec![0, 4],
            ),
            UnacceptableHoldTime { .. } => n(
                error_code::OPEN_MESSAGE,
                open_subcode::UNACCEPTABLE_HOLD_TIME,
                vec![],
            ),
            BadBgpIdentifier { .. } => n(
                error_code::OPEN_MESSAGE,
                open_subcode::BAD_BGP_IDENTIFIER,
                vec![],
            ),
            UnsupportedOptionalParameter { .. } => n(
                error_code::OPEN_MESSAGE,
                open_subcode::UNSUPPORTED_OPTIONAL_PARAMETER,
                vec![],
            ),
            MalformedOptionalParameters => {
                n(error_code::OPEN_MESSAGE, open_subcode::UNSPECIFIC, vec![])
            }
            MalformedCapability { capability } => n(
                error_code::OPEN_MESSAGE,
                open_subcode::UNSPECIFIC,
                capability.clone(),
            ),
            MalformedUpdateLengths => n(
                error_code::UPDATE_MESSAGE,
                update_subcode::MALFORMED_ATTRIBUTE_LIST,
                vec![],
            ),
            InvalidNetworkField => n(
                error_code::UPDATE_MESSAGE,
                update_subcode::INVALID_NETWORK_FIELD,
                vec![],
            ),
            Attribute(e) => e.notification(),
            RouteRefreshLength { message } => n(
                error_code::ROUTE_REFRESH,
                route_refresh_subcode::INVALID_MESSAGE_LENGTH,
                message.clone(),
            ),
        }
    }
}

/// Something wrong with the path attributes of an UPDATE. `attribute` fields hold the
/// attribute as received (flags, type, length, value): the data of its NOTIFICATION.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    /// The attribute lengths do not add up to the Total Path Attribute Length (RFC 7606 §4).
    #[error("path attribute lengths overrun the attribute list")]
    MalformedList,
    /// An attribute appears twice.
    #[error("{} (type {type_code}) appears more than once", name(*type_code))]
    Duplicate {
        /// The repeated type code.
        type_code: u8,
    },
    /// A well-known (non-optional) attribute we do not know.
    #[error("unrecognized well-known attribute {}", type_of(attribute))]
    UnrecognizedWellKnown {
        /// The attribute.
        attribute: Vec<u8>,
    },
    /// ORIGIN, AS_PATH or (with IPv4 NLRI) NEXT_HOP missing from an UPDATE that announces.
    #[error("missing well-known attribute {}", name(*type_code))]
    MissingWellKnown {
        /// The missing type code.
        type_code: u8,
    },
    /// Optional, transitive or partial bits wrong for a known attribute.
    #[error("{} has wrong attribute flags", name(type_of(attribute)))]
    Flags {
        /// The attribute.
        attribute: Vec<u8>,
    },
    /// A known attribute with a length its type does not allow.
    #[error("{} has a bad length", name(type_of(attribute)))]
    Length {
        /// The attribute.
        attribute: Vec<u8>,
    },
    /// ORIGIN other than 0, 1, 2.
    #[error("invalid ORIGIN")]
    InvalidOrigin {
        /// The attribute.
        attribute: Vec<u8>,
    },
    /// NEXT_HOP that is not a unicast host address.
    #[error("invalid NEXT_HOP")]
    InvalidNextHop {
        /// The attribute.
        attribute: Vec<u8>,
    },
    /// An optional attribute whose value does not parse (MP_REACH_NLRI, MP_UNREACH_NLRI,
    /// AS4_PATH).
    #[error("malformed optional attribute {}", name(type_of(attribute)))]
    Optional {
        /// The attribute.
        attribute: Vec<u8>,
    },
    /// AS_PATH that does not parse.
    #[error("malformed AS_PATH")]
    MalformedAsPath {
        /// The attribute.
        attribute: Vec<u8>,
    },
}

fn type_of(attribute: &[u8]) -> u8 {
    attribute.get(1).copied().unwrap_or_default()
}

impl AttributeError {
    /// The attribute type involved, when there is one.
    pub fn type_code(&self) -> Option<u8> {
        use AttributeError::*;
        match self {
            MalformedList => None,
            Duplicate { type_code } | MissingWellKnown { type_code } => Some(*type_code),
            UnrecognizedWellKnown { attribute }
            | Flags { attribute }
            | Length { attribute }
            | InvalidOrigin { attribute }
            | InvalidNextHop { attribute }
            | Optional { attribute }
            | MalformedAsPath { attribute } => Some(type_of(attribute)),
        }
    }

    /// How RFC 7606 handles the error (see the module documentation).
    pub fn action(&self) -> ErrorAction {
        use AttributeError::*;
        use type_code::*;
        let mp = matches!(self.type_code(), Some(MP_REACH_NLRI | MP_UNREACH_NLRI));
        match self {
            UnrecognizedWellKnown { .. } => ErrorAction::SessionReset,
            _ if mp => ErrorAction::SessionReset,
            Duplicate { .. } => ErrorAction::AttributeDiscard,
            MalformedList | MissingWellKnown { .. } => ErrorAction::TreatAsWithdraw,
            _ => match self.type_code() {
                Some(ATOMIC_AGGREGATE | AGGREGATOR | AS4_PATH | AS4_AGGREGATOR) => {
                    ErrorAction::AttributeDiscard
                }
                _ => ErrorAction::TreatAsWithdraw,
            },
        }
    }

    /// The NOTIFICATION RFC 4271 §6.3 gives this error, whether or not RFC 7606 sends it.
    pub fn notification(&self) -> Notification {
        use AttributeError::*;
        let (subcode, data) = match self {
            MalformedList | Duplicate { .. } => (update_subcode::MALFORMED_ATTRIBUTE_LIST, vec![]),
            UnrecognizedWellKnown { attribute } => (
                update_subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                attribute.clone(),
            ),
            MissingWellKnown { type_code } => (
                update_subcode::MISSING_WELL_KNOWN_ATTRIBUTE,
                vec![*type_code],
            ),
            Flags { attribute } => (update_subcode::ATTRIBUTE_FLAGS_ERROR, attribute.clone()),
            Length { attribute } => (update_subcode::ATTRIBUTE_LENGTH_ERROR, attribute.clone()),
            InvalidOrigin { attribute } => {
                (update_subcode::INVALID_ORIGIN_ATTRIBUTE, attribute.clone())
            }
            InvalidNextHop { attribute } => (
                update_subcode::INVALID_NEXT_HOP_ATTRIBUTE,
                attribute.clone(),
            ),
            Optional { attribute } => (update_subcode::OPTIONAL_ATTRIBUTE_ERROR, attribute.clone()),
            MalformedAsPath { .. } => (update_subcode::MALFORMED_AS_PATH, vec![]),
        };
        Notification::new(error_code::UPDATE_MESSAGE, subcode, data)
    }
}

/// A value that cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message would exceed 4096 octets (or a field its length octets).
    #[error("message of {length} octets exceeds the 4096-octet limit")]
    MessageTooLong {
        /// The length it would have.
        length: usize,
    },
    /// A prefix of the wrong family for its field (IPv6 in the IPv4 NLRI, or not matching
    /// the MP attribute's family).
    #[error("prefix {prefix} does not belong in a {family} field")]
    PrefixFamily {
        /// The prefix.
        prefix: IpNet,
        /// The field's family.
        family: Family,
    },
    /// An MP next hop that does not fit the family (IPv4 for IPv6 routes, or an IPv4 global
    /// with a link-local address).
    #[error("next hop {next_hop:?} does not fit {family}")]
    NextHopFamily {
        /// The next hop.
        next_hop: MpNextHop,
        /// The family.
        family: Family,
    },
    /// A capability value over 255 octets.
    #[error("capability {code} of {length} octets is too long")]
    CapabilityTooLong {
        /// Capability code.
        code: u8,
        /// Its length.
        length: usize,
    },
    /// A capability that must list at least one entry, with none (an empty
    /// [`super::Capability::ExtendedNextHop`]): the peer would call it malformed.
    #[error("capability {code} must list at least one entry")]
    EmptyCapability {
        /// Capability code.
        code: u8,
    },
    /// An [`super::UnknownAttribute`] with the type code of an attribute we model.
    #[error("attribute type {type_code} must not be sent as an unknown attribute")]
    KnownTypeAsUnknown {
        /// The type code.
        type_code: u8,
    },
    /// IPv4 announcements without a NEXT_HOP, or IPv6 ones without an MP next hop.
    #[error("no next hop for {family} announcements")]
    MissingNextHop {
        /// The family.
        family: Family,
    },
}
