//! Connection collision detection (RFC 4271 §6.8, RFC 6286 §2.3): when both speakers connect
//! to each other at once, the connection initiated by the speaker with the higher BGP
//! identifier is kept; with equal identifiers (possible between different ASes), the one
//! initiated by the speaker with the higher ASN. The loser gets Cease/Connection Collision
//! Resolution ([`super::Input::CollisionDump`]).

use std::net::Ipv4Addr;

/// One end of the session, as its OPEN describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Speaker {
    /// BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// ASN.
    pub asn: u32,
}

/// The connection to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The one we opened.
    LocallyInitiated,
    /// The one the peer opened.
    RemotelyInitiated,
}

/// Decides which of two connections between `local` and `remote` survives.
pub fn resolve_collision(local: Speaker, remote: Speaker) -> Keep {
    let key = |s: Speaker| (u32::from(s.bgp_id), s.asn);
    if key(local) >= key(remote) {
        Keep::LocallyInitiated
    } else {
        Keep::RemotelyInitiated
    }
}
