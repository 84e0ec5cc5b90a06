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
    /// The global IPv6 next hop.
    pub(super) ipv6_next_hop: Option<Ipv6Addr>,
    /// Our link-local address, when the session runs over link-local addresses (unnumbered):
    /// sent beside the global next hop (RFC 2545 §3), or alone when there is none.
    pub(super) link_local: Option<Ipv6Addr>,
}

impl Established {
    /// The next hop of routes in MP_REACH_NLRI with an IPv6 next hop.
    fn mp_next_hop(&self) -> Option<MpNextHop> {
        match (self.ipv6_next_hop, self.link_local) {
            (Some(global), link_local) => Some(MpNextHop {
                global: IpAddr::V6(global),
                link_local,
            }),
            // No global address on an unnumbered link: the link-local one is all there is, in
            // both fields as FRR sends it, so that routers reading either find it.
            (None, Some(ll)) => Some(MpNextHop {
                global: IpAddr::V6(ll),
                link_local: Some(ll),
            }),
            (None, None) => None,
        }
    }

    /// IPv4 routes go with an IPv6 next hop (RFC 8950): negotiated, and no IPv4 next hop.
    fn ipv4_over_ipv6(&self) -> Option<MpNextHop> {
        if self.ipv4_next_hop.is_some() || !self.negotiated.extended_next_hop {
            return None;
        }
        self.mp_next_hop()
    }
}

/// Whether the session can carry `prefix`: its family negotiated and a next hop for it.
pub(super) fn sendable(est: &Established, prefix: &IpNet) -> bool {
    let family = Family::of(prefix);
    est.negotiated.families.contains(family)
        && match family {
            Family::Ipv4Unicast => est.ipv4_next_hop.is_some() || est.ipv4_over_ipv6().is_some(),
            Family::Ipv6Unicast => est.mp_next_hop().is_some(),
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
        if let Some(next_hop) = est.mp_next_hop() {
            builder = builder.ipv6_next_hop(next_hop);
        }
        if let Some(next_hop) = est.ipv4_over_ipv6() {
            builder = builder.ipv4_next_hop_ipv6(next_hop);
        }
        match builder.announce(prefixes) {
            Ok(updates) => out.extend(updates),
            Err(e) => warn!(error = %e, "cannot build UPDATEs"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bgp::packet::Families;

    const LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0xa);

    fn established(extended_next_hop: bool, link_local: Option<Ipv6Addr>) -> Established {
        Established {
            negotiated: Negotiated {
                peer_asn: 64512,
                peer_router_id: Ipv4Addr::new(192, 0, 2, 1),
                internal: false,
                hold_time: Duration::from_secs(90),
                keepalive: Some(Duration::from_secs(30)),
                tcp_keepalive: None,
                four_octet_as: true,
                families: Families::BOTH,
                route_refresh: true,
                graceful_restart: None,
                extended_next_hop,
            },
            ipv4_next_hop: None,
            ipv6_next_hop: None,
            link_local,
        }
    }

    fn routes() -> RouteSet {
        ["198.51.100.70/32", "2001:db8:70::1/128"]
            .into_iter()
            .map(|p| (p.parse().expect("a prefix"), RouteAttrs::default()))
            .collect()
    }

    #[test]
    fn on_an_unnumbered_link_both_families_go_with_our_link_local_address() {
        let est = established(true, Some(LL));
        let updates = announcements(&est, 4_200_000_001, &routes());
        let reach: Vec<&crate::bgp::packet::MpReach> = updates
            .iter()
            .map(|u| u.attributes.mp_reach.as_ref().expect("MP_REACH_NLRI"))
            .collect();
        assert_eq!(reach.len(), 2, "{updates:?}");
        for r in reach {
            // Link-local in both halves, as FRR sends it; FRR, BIRD and GoBGP take it.
            assert_eq!(
                r.next_hop,
                MpNextHop {
                    global: IpAddr::V6(LL),
                    link_local: Some(LL)
                }
            );
        }
        assert!(
            updates
                .iter()
                .all(|u| u.nlri.is_empty() && u.attributes.next_hop.is_none())
        );
        assert!(routes().keys().all(|p| sendable(&est, p)));
    }

    #[test]
    fn without_extended_next_hop_ipv4_cannot_cross_an_unnumbered_link() {
        let est = established(false, Some(LL));
        let v4: IpNet = "198.51.100.70/32".parse().expect("a prefix");
        let v6: IpNet = "2001:db8:70::1/128".parse().expect("a prefix");
        assert!(!sendable(&est, &v4), "no IPv4 next hop and no RFC 8950");
        assert!(sendable(&est, &v6));
    }

    #[test]
    fn a_global_ipv6_address_goes_first_with_the_link_local_beside_it() {
        let mut est = established(true, Some(LL));
        let global = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11);
        est.ipv6_next_hop = Some(global);
        assert_eq!(
            est.ipv4_over_ipv6(),
            Some(MpNextHop {
                global: IpAddr::V6(global),
                link_local: Some(LL)
            })
        );
        // A numbered IPv4 next hop keeps IPv4 in the classic encoding.
        est.ipv4_next_hop = Some(Ipv4Addr::new(192, 0, 2, 11));
        assert_eq!(est.ipv4_over_ipv6(), None);
    }
}
