//! The Adj-RIB-Out side of a session, pure: which prefixes an established session can carry
//! and the UPDATEs that announce them, grouped by identical attributes.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use tracing::warn;

use super::{DEFAULT_LOCAL_PREF, RouteAttrs, RouteSet};
use crate::bgp::fsm::Negotiated;
use crate::bgp::packet::{
    AsPath, Family, MpNextHop, Origin, PathAttributes, SessionContext, Update, UpdateBuilder,
};

/// What an Established session needs to build UPDATEs.
#[derive(Debug, Clone)]
pub(super) struct Established {
    pub(super) negotiated: Negotiated,
    pub(super) ipv4_next_hop: Option<Ipv4Addr>,
    pub(super) ipv6_next_hop: Option<Ipv6Addr>,
}

/// Whether the session can carry `prefix`: its family negotiated and a next hop for it.
pub(super) fn sendable(est: &Established, prefix: &IpNet) -> bool {
    let family = Family::of(prefix);
    est.negotiated.families.contains(family)
        && match family {
            Family::Ipv4Unicast => est.ipv4_next_hop.is_some(),
            Family::Ipv6Unicast => est.ipv6_next_hop.is_some(),
        }
}

/// UPDATEs announcing `routes`, one group of UPDATEs per distinct set of attributes.
pub(super) fn announcements(est: &Established, local_asn: u32, routes: &RouteSet) -> Vec<Update> {
    let ctx: SessionContext = est.negotiated.context();
    let mut groups: BTreeMap<&RouteAttrs, Vec<IpNet>> = BTreeMap::new();
    for (prefix, attrs) in routes {
        groups.entry(attrs).or_default().push(*prefix);
    }
    let mut out = Vec::new();
    for (attrs, prefixes) in groups {
        let mut builder = UpdateBuilder::new(&ctx).attributes(PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(if est.negotiated.internal {
                AsPath::default()
            } else {
                AsPath::sequence(std::iter::repeat_n(
                    local_asn,
                    1 + usize::from(attrs.as_path_prepend),
                ))
            }),
            next_hop: est.ipv4_next_hop,
            local_pref: est
                .negotiated
                .internal
                .then(|| attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)),
            communities: attrs.communities.iter().copied().collect(),
            large_communities: attrs.large_communities.iter().copied().collect(),
            ..PathAttributes::default()
        });
        if let Some(global) = est.ipv6_next_hop {
            builder = builder.ipv6_next_hop(MpNextHop {
                global: IpAddr::V6(global),
                link_local: None,
            });
        }
        match builder.announce(prefixes) {
            Ok(updates) => out.extend(updates),
            Err(e) => warn!(error = %e, "cannot build UPDATEs"),
        }
    }
    out
}
