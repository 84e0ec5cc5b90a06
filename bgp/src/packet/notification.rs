//! NOTIFICATION (RFC 4271 §4.5) and the error codes of RFC 4271 §6, RFC 4486 (Cease), RFC 6608
//! (FSM), RFC 7313 (ROUTE-REFRESH) and RFC 9384 (BFD Down). Administrative Shutdown and Reset
//! carry an RFC 9003 message: one length octet, then up to 255 octets of UTF-8.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code    | Error subcode |   Data (variable)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! RFC 9003 data:  | Length (1) | Shutdown Communication (Length octets, UTF-8) |
//! ```

use std::fmt;

/// Error codes.
pub mod error_code {
    /// Message Header Error.
    pub const MESSAGE_HEADER: u8 = 1;
    /// OPEN Message Error.
    pub const OPEN_MESSAGE: u8 = 2;
    /// UPDATE Message Error.
    pub const UPDATE_MESSAGE: u8 = 3;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// Cease.
    pub const CEASE: u8 = 6;
    /// ROUTE-REFRESH Message Error (RFC 7313).
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Message Header Error subcodes.
pub mod header_subcode {
    /// Connection Not Synchronized.
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    /// Bad Message Length.
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    /// Bad Message Type.
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes.
pub mod open_subcode {
    /// Unspecific (a recognized optional parameter that is malformed).
    pub const UNSPECIFIC: u8 = 0;
    /// Unsupported Version Number.
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    /// Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// Unsupported Optional Parameter.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// Unsupported Capability (RFC 5492).
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// UPDATE Message Error subcodes.
pub mod update_subcode {
    /// Malformed Attribute List.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    /// Unrecognized Well-known Attribute.
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    /// Missing Well-known Attribute.
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    /// Attribute Flags Error.
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    /// Attribute Length Error.
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    /// Invalid ORIGIN Attribute.
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    /// Invalid NEXT_HOP Attribute.
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    /// Optional Attribute Error.
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    /// Invalid Network Field.
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    /// Malformed AS_PATH.
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608).
pub mod fsm_subcode {
    /// Unspecified Error.
    pub const UNSPECIFIED: u8 = 0;
    /// Receive Unexpected Message in OpenSent State.
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    /// Receive Unexpected Message in OpenConfirm State.
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    /// Receive Unexpected Message in Established State.
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486, RFC 8538, RFC 9384).
pub mod cease_subcode {
    /// Maximum Number of Prefixes Reached.
    pub const MAX_PREFIXES: u8 = 1;
    /// Administrative Shutdown.
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Administrative Reset.
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    /// Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// Other Configuration Change.
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    /// Connection Collision Resolution.
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    /// Out of Resources.
    pub const OUT_OF_RESOURCES: u8 = 8;
    /// Hard Reset (RFC 8538).
    pub const HARD_RESET: u8 = 9;
    /// BFD Down (RFC 9384).
    pub const BFD_DOWN: u8 = 10;
}

/// ROUTE-REFRESH Message Error subcodes (RFC 7313).
pub mod route_refresh_subcode {
    /// Invalid Message Length.
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// A NOTIFICATION message. Codes are kept as numbers so that any a peer sends can be decoded;
/// the modules beside this type name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Error code.
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data; its meaning depends on the code and subcode.
    pub data: Vec<u8>,
}

/// The longest RFC 9003 shutdown communication.
pub const MAX_SHUTDOWN_MESSAGE: usize = 255;

/// The most data a NOTIFICATION can carry: 4096 octets less the header, code and subcode.
pub const MAX_NOTIFICATION_DATA: usize = super::MAX_MESSAGE_LEN - super::HEADER_LEN - 2;

impl Notification {
    /// A NOTIFICATION with the given code, subcode and data.
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Self {
            code,
            subcode,
            data,
        }
    }

    /// Hold Timer Expired.
    pub fn hold_timer_expired() -> Self {
        Self::new(error_code::HOLD_TIMER_EXPIRED, 0, vec![])
    }

    /// A Cease with the given subcode and no data.
    pub fn cease(subcode: u8) -> Self {
        Self::new(error_code::CEASE, subcode, vec![])
    }

    /// Cease / Administrative Shutdown with an RFC 9003 message (cut to 255 octets on a
    /// character boundary; an empty message sends a zero length octet).
    pub fn administrative_shutdown(message: &str) -> Self {
        Self::new(
            error_code::CEASE,
            cease_subcode::ADMINISTRATIVE_SHUTDOWN,
            shutdown_data(message),
        )
    }

    /// The RFC 9003 message of an Administrative Shutdown or Reset, if the data is one (the
    /// length octet must match and the text must be UTF-8).
    pub fn shutdown_message(&self) -> Option<&str> {
        let carries = self.code == error_code::CEASE
            && (self.subcode == cease_subcode::ADMINISTRATIVE_SHUTDOWN
                || self.subcode == cease_subcode::ADMINISTRATIVE_RESET);
        let (len, text) = self.data.split_first()?;
        if !carries || usize::from(*len) != text.len() {
            return None;
        }
        std::str::from_utf8(text).ok()
    }

    /// The error code's name as a bounded metric label, e.g. `cease`, `open_message_error`.
    pub fn code_label(&self) -> &'static str {
        match self.code {
            error_code::MESSAGE_HEADER => "message_header_error",
            error_code::OPEN_MESSAGE => "open_message_error",
            error_code::UPDATE_MESSAGE => "update_message_error",
            error_code::HOLD_TIMER_EXPIRED => "hold_timer_expired",
            error_code::FSM => "fsm_error",
            error_code::CEASE => "cease",
            error_code::ROUTE_REFRESH => "route_refresh_message_error",
            _ => "unknown",
        }
    }

    fn names(&self) -> (&'static str, Option<&'static str>) {
        let code = match self.code {
            error_code::MESSAGE_HEADER => "Message Header Error",
            error_code::OPEN_MESSAGE => "OPEN Message Error",
            error_code::UPDATE_MESSAGE => "UPDATE Message Error",
            error_code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            error_code::FSM => "Finite State Machine Error",
            error_code::CEASE => "Cease",
            error_code::ROUTE_REFRESH => "ROUTE-REFRESH Message Error",
            _ => "Unknown Error",
        };
        let sub = match (self.code, self.subcode) {
            (1, 1) => "Connection Not Synchronized",
            (1, 2) => "Bad Message Length",
            (1, 3) => "Bad Message Type",
            (2, 0) => "Unspecific",
            (2, 1) => "Unsupported Version Number",
            (2, 2) => "Bad Peer AS",
            (2, 3) => "Bad BGP Identifier",
            (2, 4) => "Unsupported Optional Parameter",
            (2, 6) => "Unacceptable Hold Time",
            (2, 7) => "Unsupported Capability",
            (3, 1) => "Malformed Attribute List",
            (3, 2) => "Unrecognized Well-known Attribute",
            (3, 3) => "Missing Well-known Attribute",
            (3, 4) => "Attribute Flags Error",
            (3, 5) => "Attribute Length Error",
            (3, 6) => "Invalid ORIGIN Attribute",
            (3, 8) => "Invalid NEXT_HOP Attribute",
            (3, 9) => "Optional Attribute Error",
            (3, 10) => "Invalid Network Field",
            (3, 11) => "Malformed AS_PATH",
            (5, 1) => "Receive Unexpected Message in OpenSent State",
            (5, 2) => "Receive Unexpected Message in OpenConfirm State",
            (5, 3) => "Receive Unexpected Message in Established State",
            (6, 1) => "Maximum Number of Prefixes Reached",
            (6, 2) => "Administrative Shutdown",
            (6, 3) => "Peer De-configured",
            (6, 4) => "Administrative Reset",
            (6, 5) => "Connection Rejected",
            (6, 6) => "Other Configuration Change",
            (6, 7) => "Connection Collision Resolution",
            (6, 8) => "Out of Resources",
            (6, 9) => "Hard Reset",
            (6, 10) => "BFD Down",
            (7, 1) => "Invalid Message Length",
            _ => return (code, None),
        };
        (code, Some(sub))
    }

    pub(super) fn decode_body(body: &[u8]) -> Self {
        // The header check guarantees the code and subcode octets.
        let code = body.first().copied().unwrap_or_default();
        let subcode = body.get(1).copied().unwrap_or_default();
        Self::new(code, subcode, body.get(2..).unwrap_or_default().to_vec())
    }

    pub(super) fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(self.code);
        out.push(self.subcode);
        out.extend_from_slice(&self.data);
    }
}

fn shutdown_data(message: &str) -> Vec<u8> {
    let mut end = message.len().min(MAX_SHUTDOWN_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut data = Vec::with_capacity(end + 1);
    data.push(u8::try_from(end).unwrap_or(u8::MAX));
    data.extend_from_slice(&message.as_bytes()[..end]);
    data
}

impl fmt::Display for Notification {
    /// `Cease/Administrative Shutdown "maintenance"`, or the numbers and data in hex when the
    /// code is one we do not name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code, sub) = self.names();
        match sub {
            Some(sub) => write!(f, "{code}/{sub}")?,
            None => write!(f, "{code} ({}/{})", self.code, self.subcode)?,
        }
        if let Some(msg) = self.shutdown_message() {
            if !msg.is_empty() {
                write!(f, " {msg:?}")?;
            }
        } else if !self.data.is_empty() {
            f.write_str(" data ")?;
            for b in self.data.iter().take(32) {
                write!(f, "{b:02x}")?;
            }
            if self.data.len() > 32 {
                f.write_str("…")?;
            }
        }
        Ok(())
    }
}
