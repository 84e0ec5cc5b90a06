//! The membership datagram: encoding, decoding and its seal. Pure: values in, bytes out, and
//! back. Anything that is not an authentic datagram of this version is a typed error, never a
//! panic; the tag is checked before any field past the key id is read.
//!
//! ```text
//!  0               1               2               3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  version = 1  |  key id (4): names the shared key that sealed  |
//! +---------------+                                                +
//! |  this datagram|  sender incarnation (8, big-endian)            |
//! +---------------+                                                +
//! |                                                                |
//! +               +------------------------------------------------+
//! |               |  sequence (8): strictly increasing for the     |
//! +---------------+  sender's incarnation, for replay checks       +
//! |                                                                |
//! +               +---------------+--------------------------------+
//! |               | name length   |  sender name (UTF-8) ...       |
//! +---------------+---------------+--------------------------------+
//! | message type  |  message body (see `Message`) ...              |
//! +---------------+------------------------------------------------+
//! | entry count   |  entries (piggybacked gossip) ...              |
//! +---------------+------------------------------------------------+
//! |  HMAC-SHA256 over every byte above (32)                        |
//! +----------------------------------------------------------------+
//!
//! entry:   state (1: 0 alive, 1 suspect, 2 dead, 3 left) | incarnation (8) | address | name
//! address: family (1: 4 or 6) | IP (4 or 16) | port (2)
//! name:    length (1, 1..=253) | UTF-8 bytes
//! ```
//!
//! Message bodies: `Ping` = probe (4) + target name; `Ack` = probe (4); `PingReq` = probe (4) +
//! target name + target address; `IndirectAck` = probe (4) + target name; `Gossip` and `Leave`
//! are empty.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::time::Instant;

use super::auth::{KEY_ID_LEN, Key, Keyring, TAG_LEN};

/// The protocol version this code speaks.
pub const VERSION: u8 = 1;
/// Longest node name (a Kubernetes Node name is a DNS subdomain).
pub const MAX_NAME_LEN: usize = 253;
/// Most entries one datagram carries.
pub const MAX_ENTRIES: usize = u8::MAX as usize;
/// Bytes before the sender name: version, key id, incarnation, sequence.
const FIXED_HEADER_LEN: usize = 1 + KEY_ID_LEN + 8 + 8;

/// What a member is, as far as the gossip goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Answering.
    Alive,
    /// Did not answer a probe; declared dead unless it refutes in time.
    Suspect,
    /// Did not refute a suspicion.
    Dead,
    /// Left on its own.
    Left,
}

impl State {
    fn code(self) -> u8 {
        match self {
            State::Alive => 0,
            State::Suspect => 1,
            State::Dead => 2,
            State::Left => 3,
        }
    }

    fn from_code(code: u8) -> Result<Self, DecodeError> {
        Ok(match code {
            0 => State::Alive,
            1 => State::Suspect,
            2 => State::Dead,
            3 => State::Left,
            _ => return Err(DecodeError::Malformed("member state")),
        })
    }

    /// Alive or suspect: still a member.
    pub fn is_live(self) -> bool {
        matches!(self, State::Alive | State::Suspect)
    }
}

/// One piece of gossip: what the sender believes about a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The member's node name.
    pub name: String,
    /// Where the member listens.
    pub addr: SocketAddr,
    /// The member's incarnation the belief is about.
    pub incarnation: u64,
    /// The belief.
    pub state: State,
}

/// What a datagram asks or tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// "Are you `target`, and alive?" Answered by `Ack` with the same probe number.
    Ping {
        /// Matches the answer to the question.
        probe: u32,
        /// Whom the sender means to reach (an address may have changed hands).
        target: String,
    },
    /// "Alive." The answer to a `Ping`.
    Ack {
        /// The probe number of the `Ping`.
        probe: u32,
    },
    /// "Please ping `target` for me": the indirect probe, after a direct one went unanswered.
    PingReq {
        /// The asker's probe number, echoed in the `IndirectAck`.
        probe: u32,
        /// The member to ping.
        target: String,
        /// Where it is, as the asker knows it.
        target_addr: SocketAddr,
    },
    /// "`target` answered my ping on your behalf."
    IndirectAck {
        /// The asker's probe number.
        probe: u32,
        /// The member that answered.
        target: String,
    },
    /// Only gossip: urgent news sent directly, or a correction.
    Gossip,
    /// "I am leaving": the sender is gone as of its incarnation.
    Leave,
}

/// What kind of message a datagram carries, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// `Ping`
    Ping,
    /// `Ack`
    Ack,
    /// `PingReq`
    PingReq,
    /// `IndirectAck`
    IndirectAck,
    /// `Gossip`
    Gossip,
    /// `Leave`
    Leave,
}

impl MessageKind {
    /// A bounded metric label.
    pub fn label(self) -> &'static str {
        match self {
            MessageKind::Ping => "ping",
            MessageKind::Ack => "ack",
            MessageKind::PingReq => "ping_req",
            MessageKind::IndirectAck => "indirect_ack",
            MessageKind::Gossip => "gossip",
            MessageKind::Leave => "leave",
        }
    }
}

impl Message {
    /// Its kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Ping { .. } => MessageKind::Ping,
            Message::Ack { .. } => MessageKind::Ack,
            Message::PingReq { .. } => MessageKind::PingReq,
            Message::IndirectAck { .. } => MessageKind::IndirectAck,
            Message::Gossip => MessageKind::Gossip,
            Message::Leave => MessageKind::Leave,
        }
    }

    fn code(&self) -> u8 {
        match self {
            Message::Ping { .. } => 1,
            Message::Ack { .. } => 2,
            Message::PingReq { .. } => 3,
            Message::IndirectAck { .. } => 4,
            Message::Gossip => 5,
            Message::Leave => 6,
        }
    }
}

/// One datagram, unsealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The sender's node name.
    pub sender: String,
    /// The sender's current incarnation.
    pub incarnation: u64,
    /// The sender's sequence number (per incarnation, strictly increasing).
    pub seq: u64,
    /// What it asks or tells.
    pub message: Message,
    /// Piggybacked gossip.
    pub gossip: Vec<Entry>,
}

/// Why a datagram was dropped. Such datagrams are counted, never answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Too short to hold a header and a tag.
    #[error("datagram of {0} bytes is too short")]
    Truncated(usize),
    /// Another protocol version.
    #[error("protocol version {0} is not {VERSION}")]
    Version(u8),
    /// Sealed with a key this node does not hold (or no longer accepts).
    #[error("sealed with an unknown key")]
    UnknownKey,
    /// The tag does not match: forged, corrupted, or sealed with another key of the same id.
    #[error("bad authentication tag")]
    BadTag,
    /// Authentic but not well formed (what was wrong).
    #[error("malformed {0}")]
    Malformed(&'static str),
}

impl DecodeError {
    /// A bounded metric label.
    pub fn label(self) -> &'static str {
        match self {
            DecodeError::Truncated(_) | DecodeError::Malformed(_) => "malformed",
            DecodeError::Version(_) => "version",
            DecodeError::UnknownKey => "unknown_key",
            DecodeError::BadTag => "bad_tag",
        }
    }
}

impl Packet {
    /// Encodes and seals the packet with `key`.
    pub fn seal(&self, key: &Key) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.sealed_len());
        out.push(VERSION);
        out.extend_from_slice(&key.id());
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        put_name(&mut out, &self.sender);
        out.push(self.message.code());
        match &self.message {
            Message::Ping { probe, target } | Message::IndirectAck { probe, target } => {
                out.extend_from_slice(&probe.to_be_bytes());
                put_name(&mut out, target);
            }
            Message::Ack { probe } => out.extend_from_slice(&probe.to_be_bytes()),
            Message::PingReq {
                probe,
                target,
                target_addr,
            } => {
                out.extend_from_slice(&probe.to_be_bytes());
                put_name(&mut out, target);
                put_addr(&mut out, *target_addr);
            }
            Message::Gossip | Message::Leave => {}
        }
        let count = self.gossip.len().min(MAX_ENTRIES);
        out.push(count as u8);
        for entry in self.gossip.iter().take(count) {
            put_entry(&mut out, entry);
        }
        let tag = key.tag(&out);
        out.extend_from_slice(&tag);
        out
    }

    /// The length of the sealed datagram.
    pub fn sealed_len(&self) -> usize {
        let body = match &self.message {
            Message::Ping { target, .. } | Message::IndirectAck { target, .. } => {
                4 + name_len(target)
            }
            Message::Ack { .. } => 4,
            Message::PingReq {
                target,
                target_addr,
                ..
            } => 4 + name_len(target) + addr_len(*target_addr),
            Message::Gossip | Message::Leave => 0,
        };
        FIXED_HEADER_LEN
            + name_len(&self.sender)
            + 1
            + body
            + 1
            + self.gossip.iter().map(entry_len).sum::<usize>()
            + TAG_LEN
    }

    /// Checks the seal of `bytes` against the keys usable at `now`, then decodes.
    pub fn open(bytes: &[u8], keys: &Keyring, now: Instant) -> Result<Self, DecodeError> {
        if bytes.len() < FIXED_HEADER_LEN + TAG_LEN {
            return Err(DecodeError::Truncated(bytes.len()));
        }
        let (data, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        let mut r = Reader(data);
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(r.take(KEY_ID_LEN)?);
        let key = keys.opening(id, now).ok_or(DecodeError::UnknownKey)?;
        if !key.verify(data, tag) {
            return Err(DecodeError::BadTag);
        }
        Self::decode_authentic(r)
    }

    /// Decodes what follows the key id of a datagram whose tag was verified.
    fn decode_authentic(mut r: Reader<'_>) -> Result<Self, DecodeError> {
        let incarnation = r.u64()?;
        let seq = r.u64()?;
        let sender = r.name()?;
        let message = match r.u8()? {
            1 => Message::Ping {
                probe: r.u32()?,
                target: r.name()?,
            },
            2 => Message::Ack { probe: r.u32()? },
            3 => Message::PingReq {
                probe: r.u32()?,
                target: r.name()?,
                target_addr: r.addr()?,
            },
            4 => Message::IndirectAck {
                probe: r.u32()?,
                target: r.name()?,
            },
            5 => Message::Gossip,
            6 => Message::Leave,
            _ => return Err(DecodeError::Malformed("message type")),
        };
        let count = r.u8()?;
        let mut gossip = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let state = State::from_code(r.u8()?)?;
            let incarnation = r.u64()?;
            let addr = r.addr()?;
            let name = r.name()?;
            gossip.push(Entry {
                name,
                addr,
                incarnation,
                state,
            });
        }
        if !r.0.is_empty() {
            return Err(DecodeError::Malformed("trailing bytes"));
        }
        Ok(Self {
            sender,
            incarnation,
            seq,
            message,
            gossip,
        })
    }
}

/// The encoded length of `entry`.
pub fn entry_len(entry: &Entry) -> usize {
    1 + 8 + addr_len(entry.addr) + name_len(&entry.name)
}

fn name_len(name: &str) -> usize {
    1 + name.len().min(MAX_NAME_LEN)
}

fn addr_len(addr: SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 1 + 4 + 2,
        SocketAddr::V6(_) => 1 + 16 + 2,
    }
}

/// Names longer than [`MAX_NAME_LEN`] are cut (on a character boundary); Kubernetes never makes
/// them.
fn put_name(out: &mut Vec<u8>, name: &str) {
    let mut end = name.len().min(MAX_NAME_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    out.push(end as u8);
    out.extend_from_slice(&name.as_bytes()[..end]);
}

fn put_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

fn put_entry(out: &mut Vec<u8>, entry: &Entry) {
    out.push(entry.state.code());
    out.extend_from_slice(&entry.incarnation.to_be_bytes());
    put_addr(out, entry.addr);
    put_name(out, &entry.name);
}

/// Reads fields off the front of a byte slice; running out is `Malformed`.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, rest) = self
            .0
            .split_at_checked(n)
            .ok_or(DecodeError::Malformed("truncated field"))?;
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn name(&mut self) -> Result<String, DecodeError> {
        let len = usize::from(self.u8()?);
        if len == 0 {
            return Err(DecodeError::Malformed("empty name"));
        }
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Malformed("name is not UTF-8"))
    }

    fn addr(&mut self) -> Result<SocketAddr, DecodeError> {
        let ip = match self.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(self.array::<4>()?)),
            6 => IpAddr::V6(Ipv6Addr::from(self.array::<16>()?)),
            _ => return Err(DecodeError::Malformed("address family")),
        };
        let port = u16::from_be_bytes(self.array()?);
        Ok(SocketAddr::new(ip, port))
    }
}
