//! OPEN (RFC 4271 §4.2) and its capabilities (RFC 5492).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+
//! |    Version    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     My Autonomous System      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Hold Time           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         BGP Identifier                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Opt Parm Len  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Optional Parameters (variable)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! optional parameter:  Parm. Type (1) | Parm. Length (1) | Parameter Value
//! RFC 9072 extended:   Opt Parm Len = 255, then Non-Ext OP Type = 255,
//!                      Extended Opt. Parm. Length (2), and each parameter
//!                      Parm. Type (1) | Parm. Length (2) | Parameter Value
//! capability (type 2): Capability Code (1) | Capability Length (1) | Value
//! ```
//!
//! Only parameter type 2 (Capabilities) is supported; anything else is "Unsupported Optional
//! Parameter". Capabilities may come in one parameter or spread over several; we send one.

use std::net::Ipv4Addr;

use super::wire::Reader;
use super::{AS_TRANS, AfiSafi, DecodeError, EncodeError, Families, Family};

const PARAM_CAPABILITIES: u8 = 2;
const PARAM_EXTENDED: u8 = 255;

mod cap_code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    /// The pre-standard Cisco code for route refresh, still sent by some peers.
    pub const ROUTE_REFRESH_CISCO: u8 = 128;
}

/// An OPEN message. The version is always 4: any other is a decode error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The 2-octet "My Autonomous System" field: the sender's ASN, or [`AS_TRANS`] when the
    /// ASN needs four octets (then carried by [`Capability::FourOctetAs`]).
    pub my_as: u16,
    /// Proposed hold time in seconds: 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    /// The sender's BGP Identifier (router ID), never 0.0.0.0.
    pub bgp_id: Ipv4Addr,
    /// Capabilities, in the order received.
    pub capabilities: Vec<Capability>,
}

/// One capability (RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Multiprotocol extensions (code 1, RFC 4760): `AFI (2) | Res. (1) | SAFI (1)`.
    Multiprotocol(AfiSafi),
    /// Route refresh (code 2, RFC 2918), empty.
    RouteRefresh,
    /// Extended next hop encoding (code 5, RFC 8950 §4): the NLRI families the sender takes
    /// with a next hop of another address family. Never empty on the wire.
    ExtendedNextHop(Vec<ExtendedNextHop>),
    /// Graceful restart (code 64, RFC 4724).
    GracefulRestart(GracefulRestart),
    /// Support for 4-octet AS numbers (code 65, RFC 6793), with the sender's ASN.
    FourOctetAs(u32),
    /// Any other capability, kept as received.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

/// The graceful restart capability (RFC 4724 §3).
///
/// ```text
/// +--------------------------------------------------+
/// | Restart Flags (4 bits: R, N, 0, 0)               |
/// +--------------------------------------------------+
/// | Restart Time in seconds (12 bits)                |
/// +--------------------------------------------------+
/// | Address Family Identifier (16 bits)              |  repeated
/// | Subsequent Address Family Identifier (8 bits)    |  per family
/// | Flags for Address Family (8 bits: F, 0 ...)      |
/// +--------------------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GracefulRestart {
    /// R: the sender has restarted (its routes may come back as stale).
    pub restart_state: bool,
    /// N: the sender supports graceful restart on NOTIFICATION (RFC 8538).
    pub notification: bool,
    /// Seconds the peer should keep our routes while we restart, at most 4095.
    pub restart_time: u16,
    /// Families preserved across a restart.
    pub families: Vec<GracefulRestartFamily>,
}

/// One family of a [`GracefulRestart`] capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartFamily {
    /// The family.
    pub afi_safi: AfiSafi,
    /// F: forwarding state was preserved across the restart.
    pub forwarding_preserved: bool,
}

/// One entry of the extended next hop capability (RFC 8950 §4): NLRI of this AFI/SAFI may
/// carry a next hop of `next_hop_afi`. The value of the capability is a list of them.
///
/// ```text
/// +-----------------------------------------------------+
/// | NLRI AFI - 1 (2 octets)                             |
/// +-----------------------------------------------------+
/// | NLRI SAFI - 1 (2 octets)                            |
/// +-----------------------------------------------------+
/// | Nexthop AFI - 1 (2 octets)                          |
/// +-----------------------------------------------------+
/// | .....                                               |
/// +-----------------------------------------------------+
/// | NLRI AFI - N (2 octets)                             |
/// | NLRI SAFI - N (2 octets)                            |
/// | Nexthop AFI - N (2 octets)                          |
/// +-----------------------------------------------------+
/// ```
///
/// The SAFI takes two octets here, unlike in [`AfiSafi`], hence the plain numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtendedNextHop {
    /// The NLRI's Address Family Identifier (1 IPv4).
    pub nlri_afi: u16,
    /// The NLRI's Subsequent Address Family Identifier (1 unicast).
    pub nlri_safi: u16,
    /// The next hop's Address Family Identifier (2 IPv6).
    pub next_hop_afi: u16,
}

impl ExtendedNextHop {
    /// IPv4 unicast routes with IPv6 next hops: `<1, 1, 2>`.
    pub const IPV4_UNICAST_OVER_IPV6: Self = Self {
        nlri_afi: 1,
        nlri_safi: 1,
        next_hop_afi: 2,
    };

    /// Octets of one entry on the wire.
    const LEN: usize = 6;
}

impl Open {
    /// An OPEN for `asn`: `my_as` is the ASN, or AS_TRANS when it needs four octets. The
    /// capabilities are sent as given (include [`Capability::FourOctetAs`] yourself).
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Self {
        Self {
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_id,
            capabilities,
        }
    }

    /// The ASN from the 4-octet AS capability, if the sender included it.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// The sender's ASN: the 4-octet capability's if present, else `my_as`.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// The families we decode that the sender announced with MP capabilities; IPv4 unicast
    /// alone when it sent none (RFC 4760 §8).
    pub fn families(&self) -> Families {
        let mut any_mp = false;
        let mut families = Families::NONE;
        for c in &self.capabilities {
            if let Capability::Multiprotocol(afi_safi) = c {
                any_mp = true;
                if let Some(f) = Family::from_afi_safi(*afi_safi) {
                    families = families.with(f);
                }
            }
        }
        if any_mp { families } else { Families::IPV4 }
    }

    /// Whether the sender can take ROUTE-REFRESH (code 2, or Cisco's pre-standard 128).
    pub fn route_refresh(&self) -> bool {
        self.capabilities.iter().any(|c| match c {
            Capability::RouteRefresh => true,
            Capability::Unknown { code, .. } => *code == cap_code::ROUTE_REFRESH_CISCO,
            _ => false,
        })
    }

    /// Whether the sender takes IPv4 unicast routes with IPv6 next hops (RFC 8950): one of its
    /// extended next hop capabilities lists [`ExtendedNextHop::IPV4_UNICAST_OVER_IPV6`].
    pub fn extended_next_hop(&self) -> bool {
        self.capabilities.iter().any(|c| match c {
            Capability::ExtendedNextHop(entries) => {
                entries.contains(&ExtendedNextHop::IPV4_UNICAST_OVER_IPV6)
            }
            _ => false,
        })
    }

    /// The sender's graceful restart capability.
    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
    }

    pub(super) fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        // The header check guarantees the 10 fixed octets.
        let version = r.u8().unwrap_or_default();
        let my_as = r.u16().unwrap_or_default();
        let hold_time = r.u16().unwrap_or_default();
        let bgp_id = r.ipv4().unwrap_or(Ipv4Addr::UNSPECIFIED);
        let opt_len = r.u8().unwrap_or_default();
        if version != 4 {
            return Err(DecodeError::UnsupportedVersion { version });
        }
        if hold_time == 1 || hold_time == 2 {
            return Err(DecodeError::UnacceptableHoldTime { hold_time });
        }
        if bgp_id.is_unspecified() {
            return Err(DecodeError::BadBgpIdentifier { bgp_id });
        }
        let rest = r.rest();
        let extended = opt_len == PARAM_EXTENDED && rest.first() == Some(&PARAM_EXTENDED);
        let params = if extended {
            let mut r = Reader::new(&rest[1..]);
            let len = r.u16().ok_or(DecodeError::MalformedOptionalParameters)?;
            if r.remaining() != usize::from(len) {
                return Err(DecodeError::MalformedOptionalParameters);
            }
            r.rest()
        } else {
            if rest.len() != usize::from(opt_len) {
                return Err(DecodeError::MalformedOptionalParameters);
            }
            rest
        };
        let mut capabilities = Vec::new();
        let mut r = Reader::new(params);
        while !r.is_empty() {
            let kind = r.u8().ok_or(DecodeError::MalformedOptionalParameters)?;
            let len = if extended {
                r.u16()
            } else {
                r.u8().map(u16::from)
            }
            .ok_or(DecodeError::MalformedOptionalParameters)?;
            let value = r
                .take(usize::from(len))
                .ok_or(DecodeError::MalformedOptionalParameters)?;
            if kind != PARAM_CAPABILITIES {
                return Err(DecodeError::UnsupportedOptionalParameter { kind });
            }
            decode_capabilities(value, &mut capabilities)?;
        }
        Ok(Self {
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
    }

    pub(super) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(4);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());
        let mut caps = Vec::new();
        for c in &self.capabilities {
            c.encode(&mut caps)?;
        }
        if caps.is_empty() {
            out.push(0);
        } else if caps.len() <= 253 {
            // One Capabilities parameter: type, length, capabilities.
            out.push(u8::try_from(caps.len() + 2).unwrap_or(u8::MAX));
            out.push(PARAM_CAPABILITIES);
            out.push(u8::try_from(caps.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(&caps);
        } else {
            // RFC 9072: too long for 1-octet lengths.
            let len = u16::try_from(caps.len())
                .map_err(|_| EncodeError::MessageTooLong { length: caps.len() })?;
            out.extend_from_slice(&[PARAM_EXTENDED, PARAM_EXTENDED]);
            out.extend_from_slice(&len.saturating_add(3).to_be_bytes());
            out.push(PARAM_CAPABILITIES);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&caps);
        }
        Ok(())
    }
}

fn decode_capabilities(buf: &[u8], out: &mut Vec<Capability>) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let start = buf.len() - r.remaining();
        let code = r.u8().ok_or(DecodeError::MalformedOptionalParameters)?;
        let len = r.u8().ok_or(DecodeError::MalformedOptionalParameters)?;
        let value = r
            .take(usize::from(len))
            .ok_or(DecodeError::MalformedOptionalParameters)?;
        let malformed = || DecodeError::MalformedCapability {
            capability: buf[start..start + 2 + value.len()].to_vec(),
        };
        let mut v = Reader::new(value);
        let cap = match code {
            cap_code::MULTIPROTOCOL => {
                if value.len() != 4 {
                    return Err(malformed());
                }
                let afi = v.u16().unwrap_or_default();
                let _reserved = v.u8();
                let safi = v.u8().unwrap_or_default();
                Capability::Multiprotocol(AfiSafi { afi, safi })
            }
            cap_code::ROUTE_REFRESH => {
                if !value.is_empty() {
                    return Err(malformed());
                }
                Capability::RouteRefresh
            }
            cap_code::EXTENDED_NEXT_HOP => {
                if value.is_empty() || !value.len().is_multiple_of(ExtendedNextHop::LEN) {
                    return Err(malformed());
                }
                let entries = std::iter::from_fn(|| {
                    Some(ExtendedNextHop {
                        nlri_afi: v.u16()?,
                        nlri_safi: v.u16()?,
                        next_hop_afi: v.u16()?,
                    })
                });
                Capability::ExtendedNextHop(entries.collect())
            }
            cap_code::FOUR_OCTET_AS => {
                if value.len() != 4 {
                    return Err(malformed());
                }
                Capability::FourOctetAs(v.u32().unwrap_or_default())
            }
            cap_code::GRACEFUL_RESTART => {
                if value.len() < 2 || !(value.len() - 2).is_multiple_of(4) {
                    return Err(malformed());
                }
                let head = v.u16().unwrap_or_default();
                let mut families = Vec::new();
                while let (Some(afi), Some(safi), Some(flags)) = (v.u16(), v.u8(), v.u8()) {
                    families.push(GracefulRestartFamily {
                        afi_safi: AfiSafi { afi, safi },
                        forwarding_preserved: flags & 0x80 != 0,
                    });
                }
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: head & 0x8000 != 0,
                    notification: head & 0x4000 != 0,
                    restart_time: head & 0x0fff,
                    families,
                })
            }
            _ => Capability::Unknown {
                code,
                value: value.to_vec(),
            },
        };
        out.push(cap);
    }
    Ok(())
}

impl Capability {
    /// Appends the capability TLV (code, length, value).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let (code, value) = match self {
            Capability::Multiprotocol(a) => {
                let [x, y] = a.afi.to_be_bytes();
                (cap_code::MULTIPROTOCOL, vec![x, y, 0, a.safi])
            }
            Capability::RouteRefresh => (cap_code::ROUTE_REFRESH, Vec::new()),
            Capability::ExtendedNextHop(entries) => {
                // An empty list is malformed (see the decoder): refuse rather than send it.
                if entries.is_empty() {
                    return Err(EncodeError::EmptyCapability {
                        code: cap_code::EXTENDED_NEXT_HOP,
                    });
                }
                let value = entries
                    .iter()
                    .flat_map(|e| {
                        let mut b = [0u8; ExtendedNextHop::LEN];
                        b[..2].copy_from_slice(&e.nlri_afi.to_be_bytes());
                        b[2..4].copy_from_slice(&e.nlri_safi.to_be_bytes());
                        b[4..].copy_from_slice(&e.next_hop_afi.to_be_bytes());
                        b
                    })
                    .collect();
                (cap_code::EXTENDED_NEXT_HOP, value)
            }
            Capability::FourOctetAs(asn) => (cap_code::FOUR_OCTET_AS, asn.to_be_bytes().to_vec()),
            Capability::GracefulRestart(gr) => {
                let mut head = gr.restart_time.min(0x0fff);
                if gr.restart_state {
                    head |= 0x8000;
                }
                if gr.notification {
                    head |= 0x4000;
                }
                let mut v = head.to_be_bytes().to_vec();
                for f in &gr.families {
                    v.extend_from_slice(&f.afi_safi.afi.to_be_bytes());
                    v.push(f.afi_safi.safi);
                    v.push(if f.forwarding_preserved { 0x80 } else { 0 });
                }
                (cap_code::GRACEFUL_RESTART, v)
            }
            Capability::Unknown { code, value } => (*code, value.clone()),
        };
        let len = u8::try_from(value.len()).map_err(|_| EncodeError::CapabilityTooLong {
            code,
            length: value.len(),
        })?;
        out.push(code);
        out.push(len);
        out.extend_from_slice(&value);
        Ok(())
    }
}
