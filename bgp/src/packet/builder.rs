//! Packing many prefixes that share their attributes into as few UPDATEs as fit in 4096 octets.
//!
//! IPv4 prefixes go in the NLRI field with the NEXT_HOP attribute; IPv6 prefixes go in
//! MP_REACH_NLRI, without NEXT_HOP (RFC 4760 §3). On a session that negotiated extended next
//! hop encoding (RFC 8950), IPv4 prefixes can go in MP_REACH_NLRI too, with an IPv6 next hop.
//! Withdrawals are packed the same way, in the Withdrawn Routes field and MP_UNREACH_NLRI.
//! Sizes are computed, not guessed: every UPDATE built here encodes to at most
//! [`MAX_MESSAGE_LEN`] octets.

use ipnet::IpNet;

use super::wire::prefix_wire_len;
use super::{
    EncodeError, Family, HEADER_LEN, MAX_MESSAGE_LEN, MpNextHop, MpReach, MpUnreach,
    PathAttributes, SessionContext, Update,
};

/// Octets of an UPDATE before its attributes and NLRI: header and the two length fields.
const UPDATE_OVERHEAD: usize = HEADER_LEN + 4;
/// The longest prefix on the wire: an IPv6 /128.
const LONGEST_PREFIX: usize = 17;

/// Builds the UPDATEs that announce or withdraw a set of prefixes sharing one set of
/// attributes.
#[derive(Debug, Clone, Default)]
pub struct UpdateBuilder {
    four_octet_as: bool,
    attributes: PathAttributes,
    ipv6_next_hop: Option<MpNextHop>,
    /// Set: IPv4 prefixes go in MP_REACH_NLRI with this next hop (RFC 8950).
    ipv4_next_hop_ipv6: Option<MpNextHop>,
}

impl UpdateBuilder {
    /// A builder for a session with this context.
    pub fn new(ctx: &SessionContext) -> Self {
        Self {
            four_octet_as: ctx.four_octet_as,
            ..Self::default()
        }
    }

    /// The attributes every announced prefix carries. `next_hop` is the IPv4 routes' next
    /// hop (unused with [`Self::ipv4_next_hop_ipv6`]); `mp_reach` and `mp_unreach` are
    /// ignored.
    #[must_use]
    pub fn attributes(mut self, attributes: PathAttributes) -> Self {
        self.attributes = attributes;
        self.attributes.mp_reach = None;
        self.attributes.mp_unreach = None;
        self
    }

    /// The next hop of IPv6 routes.
    #[must_use]
    pub fn ipv6_next_hop(mut self, next_hop: MpNextHop) -> Self {
        self.ipv6_next_hop = Some(next_hop);
        self
    }

    /// Announce IPv4 prefixes in MP_REACH_NLRI (AFI 1, SAFI 1) with this next hop instead of
    /// in the NLRI field with NEXT_HOP: extended next hop encoding (RFC 8950), for sessions
    /// that negotiated it ([`crate::fsm::Negotiated::extended_next_hop`]). `next_hop` is an
    /// IPv6 global address, optionally with a link-local one (16 or 32 octets on the wire, as
    /// for IPv6 routes); NEXT_HOP in [`Self::attributes`] is then neither needed nor sent.
    #[must_use]
    pub fn ipv4_next_hop_ipv6(mut self, next_hop: MpNextHop) -> Self {
        self.ipv4_next_hop_ipv6 = Some(next_hop);
        self
    }

    /// UPDATEs announcing `prefixes`, IPv4 ones first, in the order given.
    pub fn announce(
        &self,
        prefixes: impl IntoIterator<Item = IpNet>,
    ) -> Result<Vec<Update>, EncodeError> {
        let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = prefixes
            .into_iter()
            .partition(|p| Family::of(p) == Family::Ipv4Unicast);
        let mut out = Vec::new();
        if !v4.is_empty() {
            match self.ipv4_next_hop_ipv6 {
                Some(next_hop) => {
                    out.extend(self.announce_mp(Family::Ipv4Unicast, next_hop, &v4)?);
                }
                None => out.extend(self.announce_ipv4_nlri(&v4)?),
            }
        }
        if !v6.is_empty() {
            let next_hop = self.ipv6_next_hop.ok_or(EncodeError::MissingNextHop {
                family: Family::Ipv6Unicast,
            })?;
            out.extend(self.announce_mp(Family::Ipv6Unicast, next_hop, &v6)?);
        }
        Ok(out)
    }

    /// IPv4 prefixes in the NLRI field, with NEXT_HOP (RFC 4271).
    fn announce_ipv4_nlri(&self, prefixes: &[IpNet]) -> Result<Vec<Update>, EncodeError> {
        if self.attributes.next_hop.is_none() {
            return Err(EncodeError::MissingNextHop {
                family: Family::Ipv4Unicast,
            });
        }
        let attrs_len = self.encoded_len(&self.attributes)?;
        let budget = self.budget(UPDATE_OVERHEAD + attrs_len)?;
        Ok(pack(prefixes, budget)
            .into_iter()
            .map(|nlri| Update {
                attributes: self.attributes.clone(),
                nlri,
                ..Update::default()
            })
            .collect())
    }

    /// Prefixes of `family` in MP_REACH_NLRI with `next_hop`, without NEXT_HOP (RFC 4760 §3)
    /// and with nothing in the NLRI field.
    fn announce_mp(
        &self,
        family: Family,
        next_hop: MpNextHop,
        prefixes: &[IpNet],
    ) -> Result<Vec<Update>, EncodeError> {
        let mut base = self.attributes.clone();
        base.next_hop = None;
        let base_len = self.encoded_len(&base)?;
        // MP_REACH_NLRI with no prefix: its fixed part, header included, validated.
        base.mp_reach = Some(MpReach {
            family,
            next_hop,
            nlri: Vec::new(),
        });
        let empty_reach_len = self.encoded_len(&base)? - base_len;
        // The fixed part is small, so the 3-octet header becomes 4 once prefixes push the
        // value past 255 octets; count 4 throughout.
        let budget = self.budget(UPDATE_OVERHEAD + base_len + empty_reach_len + 1)?;
        Ok(pack(prefixes, budget)
            .into_iter()
            .map(|nlri| {
                let mut attributes = base.clone();
                attributes.mp_reach = Some(MpReach {
                    family,
                    next_hop,
                    nlri,
                });
                Update {
                    attributes,
                    ..Update::default()
                }
            })
            .collect())
    }

    /// UPDATEs withdrawing `prefixes`, IPv4 ones first, in the order given.
    ///
    /// IPv4 prefixes always go in the Withdrawn Routes field, even when they were announced in
    /// MP_REACH_NLRI with [`Self::ipv4_next_hop_ipv6`]: that field withdraws IPv4 unicast
    /// routes however they were announced, MP_UNREACH_NLRI being an alternative for them
    /// rather than a requirement (RFC 4760 §4), and RFC 8950 changes only how the next hop of
    /// an announcement is encoded.
    pub fn withdraw(&self, prefixes: impl IntoIterator<Item = IpNet>) -> Vec<Update> {
        let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = prefixes
            .into_iter()
            .partition(|p| Family::of(p) == Family::Ipv4Unicast);
        let mut out = Vec::new();
        for withdrawn in pack(&v4, MAX_MESSAGE_LEN - UPDATE_OVERHEAD) {
            out.push(Update {
                withdrawn,
                ..Update::default()
            });
        }
        // MP_UNREACH_NLRI: a 4-octet attribute header (extended length), AFI and SAFI.
        for withdrawn in pack(&v6, MAX_MESSAGE_LEN - UPDATE_OVERHEAD - 4 - 3) {
            let mut update = Update::default();
            update.attributes.mp_unreach = Some(MpUnreach {
                family: Family::Ipv6Unicast,
                withdrawn,
            });
            out.push(update);
        }
        out
    }

    fn encoded_len(&self, attributes: &PathAttributes) -> Result<usize, EncodeError> {
        let mut buf = Vec::new();
        attributes.encode(self.four_octet_as, &mut buf)?;
        Ok(buf.len())
    }

    /// The octets left for prefixes once `used` are spent, if at least one prefix fits.
    fn budget(&self, used: usize) -> Result<usize, EncodeError> {
        match MAX_MESSAGE_LEN.checked_sub(used) {
            Some(left) if left >= LONGEST_PREFIX => Ok(left),
            _ => Err(EncodeError::MessageTooLong {
                length: used + LONGEST_PREFIX,
            }),
        }
    }
}

/// Splits `prefixes` into runs whose wire length is at most `budget`, keeping their order.
fn pack(prefixes: &[IpNet], budget: usize) -> Vec<Vec<IpNet>> {
    let mut out = Vec::new();
    let mut run = Vec::new();
    let mut used = 0;
    for p in prefixes {
        let len = prefix_wire_len(p);
        if used + len > budget && !run.is_empty() {
            out.push(std::mem::take(&mut run));
            used = 0;
        }
        run.push(*p);
        used += len;
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}
