//! The BFD Control packet (RFC 5880 §4.1), pure: [`ControlPacket::decode`] takes the UDP
//! payload and either returns the packet or says why RFC 5880 §6.8.6 has it discarded;
//! [`ControlPacket::encode`] writes the 24 octets.
//!
//! The checks here are the ones a packet fails on its own (version, length, detect multiplier,
//! Multipoint, discriminators, authentication). Those that need the session (does Your
//! Discriminator name one of ours, is the TTL 255) belong to the receiver and the
//! [`machine`](super::machine).
//!
//! Authentication (the A bit and the section behind the 24 octets) is not implemented: a
//! packet with the A bit set is refused, as §6.8.6 requires of a session without
//! authentication. Octets after the Length field's end (a padded datagram) are ignored.

use std::fmt;
use std::time::Duration;

/// The protocol version this codec speaks.
pub const VERSION: u8 = 1;

/// The length of a Control packet without authentication.
pub const LENGTH: usize = 24;

/// The A bit's minimum length: the mandatory part plus the authentication type and length.
const LENGTH_WITH_AUTH: u8 = 26;

const FLAG_POLL: u8 = 0x20;
const FLAG_FINAL: u8 = 0x10;
const FLAG_CONTROL_PLANE_INDEPENDENT: u8 = 0x08;
const FLAG_AUTHENTICATION: u8 = 0x04;
const FLAG_DEMAND: u8 = 0x02;
const FLAG_MULTIPOINT: u8 = 0x01;

/// A session state (RFC 5880 §4.1 "Sta").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Held down on purpose: no session is wanted.
    AdminDown,
    /// Down, or just created.
    Down,
    /// The remote is heard and the three-way handshake is under way.
    Init,
    /// Both ends hear each other.
    Up,
}

impl State {
    fn from_bits(bits: u8) -> Self {
        match bits & 0x3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// A bounded metric label: `admin_down`, `down`, `init`, `up`.
    pub fn label(self) -> &'static str {
        match self {
            State::AdminDown => "admin_down",
            State::Down => "down",
            State::Init => "init",
            State::Up => "up",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        })
    }
}

/// Why a session last changed state (RFC 5880 §4.1 "Diag").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    /// 0.
    None,
    /// 1: nothing arrived from the remote for a Detection Time.
    ControlDetectionTimeExpired,
    /// 2.
    EchoFunctionFailed,
    /// 3: the remote said it is Down (or AdminDown).
    NeighborSignaledDown,
    /// 4.
    ForwardingPlaneReset,
    /// 5.
    PathDown,
    /// 6.
    ConcatenatedPathDown,
    /// 7: taken down on purpose.
    AdministrativelyDown,
    /// 8.
    ReverseConcatenatedPathDown,
    /// 9–31, reserved: kept as received.
    Reserved(u8),
}

impl Diagnostic {
    fn from_bits(bits: u8) -> Self {
        match bits & 0x1f {
            0 => Diagnostic::None,
            1 => Diagnostic::ControlDetectionTimeExpired,
            2 => Diagnostic::EchoFunctionFailed,
            3 => Diagnostic::NeighborSignaledDown,
            4 => Diagnostic::ForwardingPlaneReset,
            5 => Diagnostic::PathDown,
            6 => Diagnostic::ConcatenatedPathDown,
            7 => Diagnostic::AdministrativelyDown,
            8 => Diagnostic::ReverseConcatenatedPathDown,
            other => Diagnostic::Reserved(other),
        }
    }

    /// The 5-bit code.
    pub fn code(self) -> u8 {
        match self {
            Diagnostic::None => 0,
            Diagnostic::ControlDetectionTimeExpired => 1,
            Diagnostic::EchoFunctionFailed => 2,
            Diagnostic::NeighborSignaledDown => 3,
            Diagnostic::ForwardingPlaneReset => 4,
            Diagnostic::PathDown => 5,
            Diagnostic::ConcatenatedPathDown => 6,
            Diagnostic::AdministrativelyDown => 7,
            Diagnostic::ReverseConcatenatedPathDown => 8,
            Diagnostic::Reserved(code) => code & 0x1f,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnostic::None => f.write_str("no diagnostic"),
            Diagnostic::ControlDetectionTimeExpired => {
                f.write_str("control detection time expired")
            }
            Diagnostic::EchoFunctionFailed => f.write_str("echo function failed"),
            Diagnostic::NeighborSignaledDown => f.write_str("neighbor signaled session down"),
            Diagnostic::ForwardingPlaneReset => f.write_str("forwarding plane reset"),
            Diagnostic::PathDown => f.write_str("path down"),
            Diagnostic::ConcatenatedPathDown => f.write_str("concatenated path down"),
            Diagnostic::AdministrativelyDown => f.write_str("administratively down"),
            Diagnostic::ReverseConcatenatedPathDown => {
                f.write_str("reverse concatenated path down")
            }
            Diagnostic::Reserved(code) => write!(f, "reserved diagnostic {code}"),
        }
    }
}

/// An interval field: microseconds on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Interval(pub u32);

impl Interval {
    /// Zero (for Required Min RX: "send me nothing"; for Echo: "I do not loop echoes").
    pub const ZERO: Interval = Interval(0);

    /// `d` in microseconds, saturating at `u32::MAX` (about 71 minutes).
    pub fn from_duration(d: Duration) -> Self {
        Interval(u32::try_from(d.as_micros()).unwrap_or(u32::MAX))
    }

    /// The interval as a duration.
    pub fn as_duration(self) -> Duration {
        Duration::from_micros(u64::from(self.0))
    }
}

/// The mandatory section of a BFD Control packet (RFC 5880 §4.1). The A and M bits are not
/// fields: a packet with either set does not decode, and ours never set them.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       My Discriminator                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      Your Discriminator                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Desired Min TX Interval                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                   Required Min RX Interval                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                 Required Min Echo RX Interval                 |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlPacket {
    /// Why the sender's session last changed state.
    pub diag: Diagnostic,
    /// The sender's session state.
    pub state: State,
    /// P: the sender asks for a packet with F set (a Poll Sequence).
    pub poll: bool,
    /// F: the answer to a Poll.
    pub final_: bool,
    /// C: the sender's BFD does not share fate with its control plane.
    pub control_plane_independent: bool,
    /// D: the sender wants no periodic packets once both ends are Up (Demand mode).
    pub demand: bool,
    /// Detect Mult: the sender's detection time is this many of its receive intervals.
    pub detect_mult: u8,
    /// The sender's discriminator for this session (never 0).
    pub my_discriminator: u32,
    /// The receiver's discriminator as the sender knows it; 0 while unknown.
    pub your_discriminator: u32,
    /// The fastest the sender wants to transmit.
    pub desired_min_tx: Interval,
    /// The fastest the sender can receive; 0: send nothing.
    pub required_min_rx: Interval,
    /// The fastest the sender can loop Echo packets; 0: no Echo.
    pub required_min_echo_rx: Interval,
}

/// A packet RFC 5880 §6.8.6 has discarded on its own merits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer octets than the mandatory section.
    #[error("{len} octets is shorter than a BFD Control packet ({LENGTH})")]
    TooShort {
        /// The datagram's length.
        len: usize,
    },
    /// A version other than 1.
    #[error("unsupported BFD version {version}")]
    UnsupportedVersion {
        /// The version received.
        version: u8,
    },
    /// A Length field below 24 (26 with the A bit).
    #[error("length field {length} is below the minimum {minimum}")]
    LengthTooSmall {
        /// The Length field.
        length: u8,
        /// The minimum for the flags received.
        minimum: u8,
    },
    /// A Length field beyond the datagram.
    #[error("length field {length} exceeds the {payload} octets received")]
    LengthExceedsPayload {
        /// The Length field.
        length: u8,
        /// The datagram's length.
        payload: usize,
    },
    /// Detect Mult 0.
    #[error("detect multiplier 0")]
    ZeroDetectMult,
    /// The M bit (reserved for multipoint BFD).
    #[error("multipoint bit set")]
    Multipoint,
    /// My Discriminator 0.
    #[error("my discriminator 0")]
    ZeroMyDiscriminator,
    /// Your Discriminator 0 from a session that should know ours.
    #[error("your discriminator 0 in state {state}")]
    ZeroYourDiscriminator {
        /// The state the sender claims.
        state: State,
    },
    /// The A bit: the sender authenticates, and ferrolb does not.
    #[error("authentication present, and not supported")]
    AuthenticationNotSupported,
    /// Both P and F: RFC 5880 §6.8.7 forbids it.
    #[error("poll and final bits both set")]
    PollAndFinal,
}

impl ControlPacket {
    /// Decodes the UDP payload, applying the checks of RFC 5880 §6.8.6 that need no session.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let Some(fixed) = bytes.first_chunk::<LENGTH>() else {
            return Err(DecodeError::TooShort { len: bytes.len() });
        };
        let version = fixed[0] >> 5;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion { version });
        }
        let flags = fixed[1];
        let length = fixed[3];
        let minimum = if flags & FLAG_AUTHENTICATION != 0 {
            LENGTH_WITH_AUTH
        } else {
            LENGTH as u8
        };
        if length < minimum {
            return Err(DecodeError::LengthTooSmall { length, minimum });
        }
        if usize::from(length) > bytes.len() {
            return Err(DecodeError::LengthExceedsPayload {
                length,
                payload: bytes.len(),
            });
        }
        let detect_mult = fixed[2];
        if detect_mult == 0 {
            return Err(DecodeError::ZeroDetectMult);
        }
        if flags & FLAG_MULTIPOINT != 0 {
            return Err(DecodeError::Multipoint);
        }
        let word =
            |i: usize| u32::from_be_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
        let my_discriminator = word(4);
        if my_discriminator == 0 {
            return Err(DecodeError::ZeroMyDiscriminator);
        }
        let state = State::from_bits(flags >> 6);
        let your_discriminator = word(8);
        if your_discriminator == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(DecodeError::ZeroYourDiscriminator { state });
        }
        if flags & FLAG_AUTHENTICATION != 0 {
            return Err(DecodeError::AuthenticationNotSupported);
        }
        let poll = flags & FLAG_POLL != 0;
        let final_ = flags & FLAG_FINAL != 0;
        if poll && final_ {
            return Err(DecodeError::PollAndFinal);
        }
        Ok(ControlPacket {
            diag: Diagnostic::from_bits(fixed[0]),
            state,
            poll,
            final_,
            control_plane_independent: flags & FLAG_CONTROL_PLANE_INDEPENDENT != 0,
            demand: flags & FLAG_DEMAND != 0,
            detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx: Interval(word(12)),
            required_min_rx: Interval(word(16)),
            required_min_echo_rx: Interval(word(20)),
        })
    }

    /// The 24 octets on the wire. Writes the fields as they are: the state machine never
    /// builds a packet that [`ControlPacket::decode`] would refuse.
    pub fn encode(&self) -> [u8; LENGTH] {
        let mut out = [0u8; LENGTH];
        out[0] = (VERSION << 5) | self.diag.code();
        out[1] = (self.state.bits() << 6)
            | if self.poll { FLAG_POLL } else { 0 }
            | if self.final_ { FLAG_FINAL } else { 0 }
            | if self.control_plane_independent {
                FLAG_CONTROL_PLANE_INDEPENDENT
            } else {
                0
            }
            | if self.demand { FLAG_DEMAND } else { 0 };
        out[2] = self.detect_mult;
        out[3] = LENGTH as u8;
        let words = [
            self.my_discriminator,
            self.your_discriminator,
            self.desired_min_tx.0,
            self.required_min_rx.0,
            self.required_min_echo_rx.0,
        ];
        for (i, word) in words.into_iter().enumerate() {
            out[4 + 4 * i..8 + 4 * i].copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests;
