//! UPDATE (RFC 4271 §4.3), with End-of-RIB markers (RFC 4724 §2) and RFC 7606 error
//! handling.
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! +-----------------------------------------------------+
//! |   Withdrawn Routes (variable)                       |
//! +-----------------------------------------------------+
//! |   Total Path Attribute Length (2 octets)            |
//! +-----------------------------------------------------+
//! |   Path Attributes (variable)                        |
//! +-----------------------------------------------------+
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```
//!
//! Withdrawn Routes and NLRI are IPv4 unicast `(length, prefix)` lists; other families travel
//! in MP_REACH_NLRI/MP_UNREACH_NLRI. End-of-RIB is an UPDATE with nothing in it for IPv4, and
//! one holding only an empty MP_UNREACH_NLRI for other families.

use ipnet::IpNet;

use super::attributes::type_code;
use super::decode_attributes;
use super::wire::{self, Reader, decode_prefixes, put_prefix};
use super::{
    AttributeError, DecodeError, EncodeError, ErrorAction, Family, MpUnreach, PathAttributes,
    SessionContext,
};

/// An UPDATE message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// IPv4 unicast prefixes withdrawn in the Withdrawn Routes field.
    pub withdrawn: Vec<IpNet>,
    /// Path attributes, including MP_REACH_NLRI/MP_UNREACH_NLRI for other families.
    pub attributes: PathAttributes,
    /// IPv4 unicast prefixes announced in the NLRI field.
    pub nlri: Vec<IpNet>,
    /// Attribute errors that RFC 7606 lets the session survive, found while decoding; empty
    /// for a well-formed UPDATE and ignored when encoding. When any of them is
    /// [`ErrorAction::TreatAsWithdraw`], the decoder has already moved every announced prefix
    /// to the withdrawals and cleared the other attributes.
    pub errors: Vec<AttributeError>,
}

impl Update {
    /// The End-of-RIB marker of `family`.
    pub fn end_of_rib(family: Family) -> Self {
        let mut update = Self::default();
        if family != Family::Ipv4Unicast {
            update.attributes.mp_unreach = Some(MpUnreach {
                family,
                withdrawn: Vec::new(),
            });
        }
        update
    }

    /// The family this UPDATE marks the End-of-RIB of, if it is such a marker.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        let mut bare = self.attributes.clone();
        let unreach = bare.mp_unreach.take();
        if bare != PathAttributes::default() {
            return None;
        }
        match unreach {
            None => Some(Family::Ipv4Unicast),
            Some(u) if u.withdrawn.is_empty() => Some(u.family),
            Some(_) => None,
        }
    }

    /// Every prefix announced, from the NLRI field and MP_REACH_NLRI.
    pub fn announced(&self) -> impl Iterator<Item = &IpNet> {
        let mp = self.attributes.mp_reach.iter().flat_map(|r| r.nlri.iter());
        self.nlri.iter().chain(mp)
    }

    /// Every prefix withdrawn, from the Withdrawn Routes field and MP_UNREACH_NLRI.
    pub fn withdrawals(&self) -> impl Iterator<Item = &IpNet> {
        let mp = self
            .attributes
            .mp_unreach
            .iter()
            .flat_map(|u| u.withdrawn.iter());
        self.withdrawn.iter().chain(mp)
    }

    /// Whether RFC 7606 turned this UPDATE's announcements into withdrawals.
    pub fn treated_as_withdraw(&self) -> bool {
        self.errors
            .iter()
            .any(|e| e.action() == ErrorAction::TreatAsWithdraw)
    }

    pub(super) fn decode_body(body: &[u8], ctx: &SessionContext) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let withdrawn_len = r.u16().ok_or(DecodeError::MalformedUpdateLengths)?;
        let withdrawn = r
            .take(usize::from(withdrawn_len))
            .ok_or(DecodeError::MalformedUpdateLengths)?;
        let attrs_len = r.u16().ok_or(DecodeError::MalformedUpdateLengths)?;
        let attrs = r
            .take(usize::from(attrs_len))
            .ok_or(DecodeError::MalformedUpdateLengths)?;
        let nlri = r.rest();
        let withdrawn = decode_prefixes(withdrawn, Family::Ipv4Unicast)
            .map_err(|_| DecodeError::InvalidNetworkField)?;
        let nlri = decode_prefixes(nlri, Family::Ipv4Unicast)
            .map_err(|_| DecodeError::InvalidNetworkField)?;
        let decoded = decode_attributes::decode(attrs, ctx)?;
        let mut update = Self {
            withdrawn,
            attributes: decoded.attributes,
            nlri,
            errors: decoded.errors,
        };
        if update.nlri.is_empty() {
            // RFC 4760 §3: NEXT_HOP without IPv4 NLRI is ignored, errors and all.
            update.attributes.next_hop = None;
            update
                .errors
                .retain(|e| e.type_code() != Some(type_code::NEXT_HOP));
        }
        let reach = update
            .attributes
            .mp_reach
            .as_ref()
            .is_some_and(|r| !r.nlri.is_empty());
        if !update.nlri.is_empty() || reach {
            let mut mandatory = vec![type_code::ORIGIN, type_code::AS_PATH];
            if !update.nlri.is_empty() {
                mandatory.push(type_code::NEXT_HOP);
            }
            for code in mandatory {
                if !decoded.seen.contains(code) {
                    update
                        .errors
                        .push(AttributeError::MissingWellKnown { type_code: code });
                }
            }
        }
        if update.treated_as_withdraw() {
            update.withdraw_everything();
        }
        Ok(update)
    }

    /// RFC 7606 treat-as-withdraw: every announced prefix becomes a withdrawal and only the
    /// withdrawals are kept. IPv4 goes to the Withdrawn Routes field, IPv6 to MP_UNREACH_NLRI.
    fn withdraw_everything(&mut self) {
        let mut v4: Vec<IpNet> = std::mem::take(&mut self.withdrawn);
        v4.append(&mut self.nlri);
        let mut v6 = Vec::new();
        let attrs = std::mem::take(&mut self.attributes);
        let reach = attrs.mp_reach.into_iter().flat_map(|r| r.nlri);
        let unreach = attrs.mp_unreach.into_iter().flat_map(|u| u.withdrawn);
        for prefix in unreach.chain(reach) {
            match Family::of(&prefix) {
                Family::Ipv4Unicast => v4.push(prefix),
                Family::Ipv6Unicast => v6.push(prefix),
            }
        }
        self.withdrawn = v4;
        if !v6.is_empty() {
            self.attributes.mp_unreach = Some(MpUnreach {
                family: Family::Ipv6Unicast,
                withdrawn: v6,
            });
        }
    }

    pub(super) fn encode_body(
        &self,
        out: &mut Vec<u8>,
        ctx: &SessionContext,
    ) -> Result<(), EncodeError> {
        let at = wire::reserve_u16(out);
        put_ipv4_prefixes(out, &self.withdrawn)?;
        let len = out.len() - at - 2;
        wire::fill_u16(out, at, u16::try_from(len).unwrap_or(u16::MAX));
        let at = wire::reserve_u16(out);
        self.attributes.encode(ctx.four_octet_as, out)?;
        let len = out.len() - at - 2;
        let len = u16::try_from(len).map_err(|_| EncodeError::MessageTooLong { length: len })?;
        wire::fill_u16(out, at, len);
        put_ipv4_prefixes(out, &self.nlri)
    }
}

fn put_ipv4_prefixes(out: &mut Vec<u8>, prefixes: &[IpNet]) -> Result<(), EncodeError> {
    for p in prefixes {
        if Family::of(p) != Family::Ipv4Unicast {
            return Err(EncodeError::PrefixFamily {
                prefix: *p,
                family: Family::Ipv4Unicast,
            });
        }
        put_prefix(out, p);
    }
    Ok(())
}
