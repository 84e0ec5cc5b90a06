//! Decoding the path attribute list of an UPDATE with RFC 7606 error handling: errors the
//! session survives are collected, the others end decoding with a [`DecodeError`]. What
//! happens to each attribute is described in `error`'s module documentation.

use std::net::{IpAddr, Ipv4Addr};

use super::as_path::AsPath;
use super::attributes::{
    Aggregator, Community, LargeCommunity, MpNextHop, MpReach, MpUnreach, Origin, PathAttributes,
    UnknownAttribute, expected_flags, flag, type_code,
};
use super::wire::{Reader, decode_prefixes};
use super::{AfiSafi, AttributeError, DecodeError, ErrorAction, Family, SessionContext};

/// Which attribute type codes appeared, well formed or not.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen([u64; 4]);

impl Seen {
    pub(crate) fn contains(&self, code: u8) -> bool {
        self.0[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }

    fn insert(&mut self, code: u8) {
        self.0[usize::from(code / 64)] |= 1 << (code % 64);
    }
}

/// The decoded attributes, the errors RFC 7606 lets the session survive, and the types seen.
#[derive(Debug, Default)]
pub(crate) struct DecodedAttributes {
    pub(crate) attributes: PathAttributes,
    pub(crate) errors: Vec<AttributeError>,
    pub(crate) seen: Seen,
}

impl DecodedAttributes {
    /// Records a survivable error, or ends decoding with one that resets the session.
    fn fail(&mut self, error: AttributeError) -> Result<(), DecodeError> {
        if error.action() == ErrorAction::SessionReset {
            return Err(DecodeError::Attribute(error));
        }
        self.errors.push(error);
        Ok(())
    }
}

/// Decodes the Path Attributes field.
pub(crate) fn decode(buf: &[u8], ctx: &SessionContext) -> Result<DecodedAttributes, DecodeError> {
    let mut out = DecodedAttributes::default();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let start = buf.len() - r.remaining();
        // RFC 7606 §4: too little left for an attribute header, or a value that overruns the
        // list, means the list is malformed; the NLRI is still found from the total length.
        let header = if r.remaining() < 3 {
            None
        } else {
            let flags = r.u8().unwrap_or_default();
            let code = r.u8().unwrap_or_default();
            let len = if flags & flag::EXTENDED_LENGTH != 0 {
                r.u16()
            } else {
                r.u8().map(u16::from)
            };
            len.and_then(|len| r.take(usize::from(len)))
                .map(|value| (flags, code, value))
        };
        let Some((flags, code, value)) = header else {
            let rest = &buf[start..];
            if rest.get(1).is_some_and(|c| is_mp(*c)) {
                out.fail(AttributeError::Optional {
                    attribute: rest.to_vec(),
                })?;
            }
            out.fail(AttributeError::MalformedList)?;
            break;
        };
        let attribute = &buf[start..buf.len() - r.remaining()];
        if out.seen.contains(code) {
            out.fail(AttributeError::Duplicate { type_code: code })?;
            continue;
        }
        out.seen.insert(code);
        let optional = flags & flag::OPTIONAL != 0;
        let transitive = flags & flag::TRANSITIVE != 0;
        let partial = flags & flag::PARTIAL != 0;
        let Some(expected) = expected_flags(code) else {
            if !optional {
                out.fail(AttributeError::UnrecognizedWellKnown {
                    attribute: attribute.to_vec(),
                })?;
            } else if transitive {
                out.attributes.unknown.push(UnknownAttribute {
                    type_code: code,
                    value: value.to_vec(),
                });
            }
            continue;
        };
        // The Partial bit is only allowed on optional transitive attributes.
        if (optional, transitive) != expected || (partial && expected != (true, true)) {
            out.fail(AttributeError::Flags {
                attribute: attribute.to_vec(),
            })?;
            continue;
        }
        if let Err(error) = decode_value(&mut out.attributes, code, value, attribute, ctx) {
            out.fail(error)?;
        }
    }
    // Kept in type code order, as they are sent: a peer's order must not survive a
    // decode–encode–decode round as a different value (each code appears once at most).
    out.attributes.unknown.sort_by_key(|u| u.type_code);
    Ok(out)
}

fn is_mp(code: u8) -> bool {
    code == type_code::MP_REACH_NLRI || code == type_code::MP_UNREACH_NLRI
}

/// Decodes one known attribute's value into `attrs`.
fn decode_value(
    attrs: &mut PathAttributes,
    code: u8,
    value: &[u8],
    attribute: &[u8],
    ctx: &SessionContext,
) -> Result<(), AttributeError> {
    use type_code::*;
    let length = || AttributeError::Length {
        attribute: attribute.to_vec(),
    };
    let optional = || AttributeError::Optional {
        attribute: attribute.to_vec(),
    };
    let fixed = |n: usize| {
        if value.len() == n {
            Ok(())
        } else {
            Err(length())
        }
    };
    let mut r = Reader::new(value);
    match code {
        ORIGIN => {
            fixed(1)?;
            let origin = r.u8().and_then(Origin::from_u8);
            attrs.origin = Some(origin.ok_or(AttributeError::InvalidOrigin {
                attribute: attribute.to_vec(),
            })?);
        }
        AS_PATH => {
            let path = AsPath::decode(value, ctx.four_octet_as);
            attrs.as_path = Some(path.map_err(|_| AttributeError::MalformedAsPath {
                attribute: attribute.to_vec(),
            })?);
        }
        NEXT_HOP => {
            fixed(4)?;
            let nh = r.ipv4().unwrap_or(Ipv4Addr::UNSPECIFIED);
            if !is_unicast_host(nh) {
                return Err(AttributeError::InvalidNextHop {
                    attribute: attribute.to_vec(),
                });
            }
            attrs.next_hop = Some(nh);
        }
        MULTI_EXIT_DISC => {
            fixed(4)?;
            attrs.med = r.u32();
        }
        LOCAL_PREF => {
            fixed(4)?;
            attrs.local_pref = r.u32();
        }
        ATOMIC_AGGREGATE => {
            fixed(0)?;
            attrs.atomic_aggregate = true;
        }
        AGGREGATOR => {
            let asn = if ctx.four_octet_as {
                fixed(8)?;
                r.u32()
            } else {
                fixed(6)?;
                r.u16().map(u32::from)
            };
            attrs.aggregator = asn
                .zip(r.ipv4())
                .map(|(asn, address)| Aggregator { asn, address });
        }
        COMMUNITIES => {
            if value.is_empty() || !value.len().is_multiple_of(4) {
                return Err(length());
            }
            attrs.communities = std::iter::from_fn(|| r.u32()).map(Community).collect();
        }
        LARGE_COMMUNITY => {
            if value.is_empty() || !value.len().is_multiple_of(12) {
                return Err(length());
            }
            attrs.large_communities = std::iter::from_fn(|| {
                Some(LargeCommunity {
                    global_admin: r.u32()?,
                    local_data1: r.u32()?,
                    local_data2: r.u32()?,
                })
            })
            .collect();
        }
        MP_REACH_NLRI => attrs.mp_reach = decode_mp_reach(value, ctx).ok_or_else(optional)?,
        MP_UNREACH_NLRI => {
            attrs.mp_unreach = decode_mp_unreach(value, ctx).ok_or_else(optional)?;
        }
        // RFC 6793 §4.1: between two 4-octet speakers these are ignored.
        AS4_PATH if !ctx.four_octet_as => {
            let path = AsPath::decode(value, true).map_err(|_| optional())?;
            if path.segments.iter().any(|s| s.kind.is_confed()) {
                return Err(optional());
            }
            attrs.as4_path = Some(path);
        }
        AS4_AGGREGATOR if !ctx.four_octet_as => {
            fixed(8)?;
            attrs.as4_aggregator = r
                .u32()
                .zip(r.ipv4())
                .map(|(asn, address)| Aggregator { asn, address });
        }
        _ => {}
    }
    Ok(())
}

/// A NEXT_HOP must be a unicast host address: not 0/8, loopback, multicast or 240/4.
fn is_unicast_host(ip: Ipv4Addr) -> bool {
    let first = ip.octets()[0];
    !(first == 0 || ip.is_loopback() || ip.is_multicast() || first >= 240)
}

/// `Ok(None)` for a family the session does not decode; `None` in the outer option when the
/// value is malformed.
fn decode_mp_reach(value: &[u8], ctx: &SessionContext) -> Option<Option<MpReach>> {
    let mut r = Reader::new(value);
    let afi_safi = AfiSafi {
        afi: r.u16()?,
        safi: r.u8()?,
    };
    let nh_len = r.u8()?;
    let nh = r.take(usize::from(nh_len))?;
    let _reserved = r.u8()?;
    let Some(family) = Family::from_afi_safi(afi_safi).filter(|f| ctx.families.contains(*f)) else {
        return Some(None);
    };
    let mut hop = Reader::new(nh);
    let next_hop = match (family, nh.len()) {
        (Family::Ipv4Unicast, 4) => MpNextHop {
            global: IpAddr::V4(hop.ipv4()?),
            link_local: None,
        },
        (_, 16) => MpNextHop {
            global: IpAddr::V6(hop.ipv6()?),
            link_local: None,
        },
        (_, 32) => MpNextHop {
            global: IpAddr::V6(hop.ipv6()?),
            link_local: Some(hop.ipv6()?),
        },
        _ => return None,
    };
    let nlri = decode_prefixes(r.rest(), family).ok()?;
    Some(Some(MpReach {
        family,
        next_hop,
        nlri,
    }))
}

fn decode_mp_unreach(value: &[u8], ctx: &SessionContext) -> Option<Option<MpUnreach>> {
    let mut r = Reader::new(value);
    let afi_safi = AfiSafi {
        afi: r.u16()?,
        safi: r.u8()?,
    };
    let Some(family) = Family::from_afi_safi(afi_safi).filter(|f| ctx.families.contains(*f)) else {
        return Some(None);
    };
    let withdrawn = decode_prefixes(r.rest(), family).ok()?;
    Some(Some(MpUnreach { family, withdrawn }))
}
