//! Our OPEN, and the checks on the peer's (RFC 4271 §6.2, RFC 6286, RFC 5492) that the codec
//! cannot make alone because they depend on our configuration.

use std::time::Duration;

use super::{Config, Negotiated, PeerAsn, TcpKeepalive};
use crate::packet::{
    Capability, ExtendedNextHop, Family, GracefulRestart, GracefulRestartFamily, Notification,
    Open, error_code, open_subcode,
};

/// A peer OPEN we refuse: the NOTIFICATION to send and why, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) notification: Notification,
    pub(super) detail: String,
}

fn multiprotocol(config: &Config) -> Vec<Capability> {
    config
        .families
        .iter()
        .map(|f| Capability::Multiprotocol(f.afi_safi()))
        .collect()
}

/// Whether our OPEN offers IPv4 unicast routes with IPv6 next hops (RFC 8950): configured,
/// and IPv4 unicast is one of our families.
fn offers_extended_next_hop(config: &Config) -> bool {
    config.extended_next_hop && config.families.contains(Family::Ipv4Unicast)
}

/// The OPEN we send: our ASN (AS_TRANS when it needs four octets), hold time and router ID;
/// MP-BGP for each family, route refresh, extended next hop and graceful restart if
/// configured, 4-octet AS.
pub(super) fn our_open(config: &Config) -> Open {
    let mut caps = multiprotocol(config);
    caps.push(Capability::RouteRefresh);
    if offers_extended_next_hop(config) {
        caps.push(Capability::ExtendedNextHop(vec![
            ExtendedNextHop::IPV4_UNICAST_OVER_IPV6,
        ]));
    }
    caps.push(Capability::FourOctetAs(config.local_asn));
    if let Some(gr) = config.graceful_restart {
        caps.push(Capability::GracefulRestart(GracefulRestart {
            restart_state: gr.restarting,
            notification: false,
            restart_time: gr.restart_time.min(4095),
            families: config
                .families
                .iter()
                .map(|f| GracefulRestartFamily {
                    afi_safi: f.afi_safi(),
                    // The dataplane (the node's own addresses) survives a speaker restart.
                    forwarding_preserved: true,
                })
                .collect(),
        }));
    }
    Open::new(config.local_asn, config.hold_time, config.router_id, caps)
}

fn open_error(subcode: u8, data: Vec<u8>, detail: String) -> Refusal {
    Refusal {
        notification: Notification::new(error_code::OPEN_MESSAGE, subcode, data),
        detail,
    }
}

/// The capabilities as NOTIFICATION data for Unsupported Capability (RFC 5492 §5).
fn capability_bytes(caps: &[Capability]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for c in caps {
        // These capabilities have values of a few octets: encoding cannot fail.
        let _ = c.encode(&mut bytes);
    }
    bytes
}

/// Checks the peer's OPEN against our configuration and agrees on the session's parameters.
pub(super) fn negotiate(config: &Config, open: &Open) -> Result<Negotiated, Refusal> {
    let peer_asn = open.asn();
    let (ok, expected) = match config.peer_asn {
        PeerAsn::Exact(asn) => (peer_asn == asn, asn.to_string()),
        PeerAsn::Internal => (
            peer_asn == config.local_asn,
            format!("{} (internal)", config.local_asn),
        ),
        PeerAsn::External => (
            peer_asn != config.local_asn,
            format!("any but {} (external)", config.local_asn),
        ),
    };
    if !ok {
        return Err(open_error(
            open_subcode::BAD_PEER_AS,
            vec![],
            format!("peer AS {peer_asn}, expected {expected}"),
        ));
    }
    let internal = peer_asn == config.local_asn;
    if internal && open.bgp_id == config.router_id {
        return Err(open_error(
            open_subcode::BAD_BGP_IDENTIFIER,
            vec![],
            format!("internal peer has our own BGP identifier {}", open.bgp_id),
        ));
    }
    let four_octet_as = open.four_octet_as().is_some();
    if !four_octet_as && config.local_asn > u32::from(u16::MAX) {
        return Err(open_error(
            open_subcode::UNSUPPORTED_CAPABILITY,
            capability_bytes(&[Capability::FourOctetAs(config.local_asn)]),
            format!(
                "peer lacks 4-octet AS support, needed for our AS {}",
                config.local_asn
            ),
        ));
    }
    let families = config.families.intersection(open.families());
    if families.is_empty() {
        return Err(open_error(
            open_subcode::UNSUPPORTED_CAPABILITY,
            capability_bytes(&multiprotocol(config)),
            format!(
                "no address family in common: we offer {:?}, the peer {:?}",
                config.families,
                open.families()
            ),
        ));
    }
    let hold = config.hold_time.min(open.hold_time);
    let hold_time = Duration::from_secs(u64::from(hold));
    let keepalive = (hold > 0).then(|| {
        let third = hold_time / 3;
        config
            .keepalive_time
            .filter(|k| !k.is_zero())
            .map_or(third, |k| k.min(third))
    });
    let tcp_keepalive =
        (hold == 0).then(|| TcpKeepalive::for_keepalive_time(config.keepalive_time));
    Ok(Negotiated {
        peer_asn,
        peer_router_id: open.bgp_id,
        internal,
        hold_time,
        keepalive,
        tcp_keepalive,
        four_octet_as,
        families,
        route_refresh: open.route_refresh(),
        graceful_restart: config
            .graceful_restart
            .and(open.graceful_restart().cloned()),
        extended_next_hop: offers_extended_next_hop(config)
            && open.extended_next_hop()
            && families.contains(Family::Ipv4Unicast),
    })
}
