//! What a session is told: how to reach its peer and what to offer it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ferrolb_config::BfdProfile;

use super::BGP_PORT;
use crate::bgp::fsm;

/// How to reach one peer and what to offer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The FSM's configuration (ASNs, router ID, hold time, families, backoff).
    pub fsm: fsm::Config,
    /// The peer's address and port (usually [`BGP_PORT`]).
    pub peer: SocketAddr,
    /// Bind the connection to this local address (`sourceAddress`).
    pub source_address: Option<IpAddr>,
    /// TCP MD5 password (RFC 2385).
    pub password: Option<String>,
    /// The peer is more than one hop away (`ebgpMultiHop`): keep the default TTL on eBGP.
    pub ebgp_multihop: bool,
    /// GTSM (RFC 5082, `ttlSecurity`): the peer is at most this many hops away; sent with TTL
    /// 255, its packets accepted only with a TTL of at least 256 − hops. `None`: off.
    pub ttl_security: Option<u8>,
    /// The next hop of IPv6 routes on an IPv4 session (and of IPv6 routes on an IPv6 session,
    /// overriding the local address). `None`: found from the local interface.
    pub ipv6_next_hop: Option<Ipv6Addr>,
    /// The next hop of IPv4 routes, overriding the local address (needed on an IPv6 session
    /// whose interface has no IPv4 address). `None`: the local address, or on an IPv6 session
    /// the interface's IPv4 address.
    pub ipv4_next_hop: Option<Ipv4Addr>,
    /// Watch the path to the peer with BFD, with these timers.
    pub bfd: Option<BfdProfile>,
    /// The VRF device the connection is bound to (`SO_BINDTODEVICE`); `None`: the default VRF.
    pub vrf: Option<String>,
    /// The link of an unnumbered peer (`peer` is a link-local address on it): IPv4 routes go
    /// with IPv6 next hops, and BFD is sent out of it.
    pub interface: Option<String>,
}

impl SessionConfig {
    /// A session to `peer` on port 179 with no password, no source address, single hop.
    pub fn new(fsm: fsm::Config, peer: IpAddr) -> Self {
        Self {
            fsm,
            peer: SocketAddr::new(peer, BGP_PORT),
            source_address: None,
            password: None,
            ebgp_multihop: false,
            ttl_security: None,
            ipv6_next_hop: None,
            ipv4_next_hop: None,
            bfd: None,
            vrf: None,
            interface: None,
        }
    }

    pub(super) fn is_ebgp(&self) -> bool {
        match self.fsm.peer_asn {
            fsm::PeerAsn::Exact(asn) => asn != self.fsm.local_asn,
            fsm::PeerAsn::Internal => false,
            fsm::PeerAsn::External => true,
        }
    }

    /// The peer may be more than one hop away (`ebgpMultiHop`, or GTSM allowing more than
    /// one), so BFD runs multihop (RFC 5883) as FRR's bgpd decides it.
    pub fn bfd_multihop(&self) -> bool {
        self.ebgp_multihop || self.ttl_security.is_some_and(|hops| hops > 1)
    }
}
