//! The interop tests' usual bed: one LAN, our speaker and one router peering with it.

use std::net::IpAddr;

use super::{Neighbor, Router, RouterConfig, RouterKind};

/// The interop tests' bed: a LAN with a "speaker" host, a "router" host (then `more` hosts),
/// and `kind` running on the router as `router_as`, its one neighbour the speaker as
/// `speaker_as`, set up by `neighbor` beyond [`Neighbor::passive`].
#[derive(Debug)]
pub struct PeeringLan {
    /// The router, first: it is stopped before the LAN's namespaces go.
    pub rtr: Router,
    pub speaker: crate::netns::Host,
    pub router: crate::netns::Host,
    pub lan: crate::netns::Lan,
}

impl PeeringLan {
    pub fn start(
        kind: RouterKind,
        (router_as, speaker_as): (u32, u32),
        more: &[&str],
        neighbor: impl FnOnce(&mut Neighbor),
    ) -> Self {
        let mut builder = crate::netns::Lan::builder().host("speaker").host("router");
        for host in more {
            builder = builder.host(host);
        }
        let lan = builder.build().expect("LAN");
        let (speaker, router) = (lan.host("speaker").clone(), lan.host("router").clone());
        let mut router_side = Neighbor::passive(IpAddr::V4(speaker.ipv4), speaker_as);
        neighbor(&mut router_side);
        let rtr = Router::start(
            kind,
            &router.ns,
            &RouterConfig {
                asn: router_as,
                router_id: router.ipv4,
                neighbors: vec![router_side],
                multipath: false,
            },
        )
        .unwrap_or_else(|e| panic!("{kind} starts: {e:#}"));
        Self {
            rtr,
            speaker,
            router,
            lan,
        }
    }
}
