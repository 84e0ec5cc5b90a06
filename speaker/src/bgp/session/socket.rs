//! The session's sockets: connecting out with source address, TTL and TCP MD5, and finding the
//! addresses of the local interface for next hops.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

use super::SessionConfig;
use crate::bgp::fsm::TcpKeepalive;
use crate::sys;

/// The first IPv4 and the lowest global IPv6 address of the interface that holds `local`; the
/// IPv6 one stable if the interface has one (not temporary, deprecated, tentative or
/// duplicated: a next hop routers keep using must stay).
pub(super) fn interface_addresses(local: IpAddr) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return (None, None);
    };
    let addrs: Vec<(String, IpAddr)> = addrs
        .filter_map(|ifa| {
            let addr = ifa.address?;
            let ip = if let Some(v4) = addr.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else {
                IpAddr::V6(addr.as_sockaddr_in6()?.ip())
            };
            Some((ifa.interface_name, ip))
        })
        .collect();
    let Some((name, _)) = addrs.iter().find(|(_, ip)| *ip == local) else {
        return (None, None);
    };
    let on_interface = addrs.iter().filter(|(n, _)| n == name).map(|(_, ip)| *ip);
    let v4 = on_interface.clone().find_map(|ip| match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    });
    let v6: Vec<Ipv6Addr> = on_interface
        .filter_map(|ip| match ip {
            IpAddr::V6(a) if !a.is_unicast_link_local() && !a.is_loopback() => Some(a),
            _ => None,
        })
        .collect();
    let unfit = std::fs::read_to_string("/proc/net/if_inet6")
        .map(|text| unfit_ipv6_addresses(&text))
        .unwrap_or_default();
    let stable = v6.iter().filter(|a| !unfit.contains(a)).min();
    (v4, stable.or(v6.iter().min()).copied())
}

/// The addresses `/proc/net/if_inet6` (address, ifindex, prefix length, scope, flags, name)
/// flags as temporary (privacy), duplicated, deprecated or tentative.
fn unfit_ipv6_addresses(if_inet6: &str) -> std::collections::BTreeSet<Ipv6Addr> {
    const TEMPORARY: u32 = 0x01;
    const DADFAILED: u32 = 0x08;
    const DEPRECATED: u32 = 0x20;
    const TENTATIVE: u32 = 0x40;
    if_inet6
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let address = u128::from_str_radix(fields.first()?, 16).ok()?;
            let flags = u32::from_str_radix(fields.get(4)?, 16).ok()?;
            (flags & (TEMPORARY | DADFAILED | DEPRECATED | TENTATIVE) != 0)
                .then(|| Ipv6Addr::from(address))
        })
        .collect()
}

/// Turns on TCP keepalive with `settings`: the liveness check of a session whose hold time is
/// zero (no BGP KEEPALIVEs). Keepalive probes only an idle connection; one with data in flight
/// (an UPDATE sent as the peer died) would retransmit for about 15 minutes, so
/// TCP_USER_TIMEOUT bounds how long sent data may stay unacknowledged by the same time the
/// probes take (and, with keepalive on, when unanswered probes end the connection).
pub(super) fn set_tcp_keepalive(stream: &TcpStream, settings: TcpKeepalive) -> io::Result<()> {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(settings.idle)
        .with_interval(settings.interval)
        .with_retries(settings.probes);
    let socket = socket2::SockRef::from(stream);
    socket.set_tcp_keepalive(&keepalive)?;
    socket.set_tcp_user_timeout(Some(settings.detection()))
}

/// The least TTL a GTSM peer `hops` away can arrive with (RFC 5082 §3: 255 less one per
/// router in between).
pub(super) fn gtsm_min_ttl(hops: u8) -> u8 {
    255 - hops.clamp(1, 255) + 1
}

/// Opens the connection: VRF, source address, TTL (GTSM's or eBGP's), TCP MD5, then `connect`.
pub(super) async fn connect(config: SessionConfig) -> io::Result<TcpStream> {
    let peer = config.peer;
    let socket = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    let sock = socket2::SockRef::from(&socket);
    if let Some(vrf) = &config.vrf {
        // Routed by the VRF's table; the source address must be in the VRF too.
        sock.bind_device(Some(vrf.as_bytes()))?;
    }
    if let Some(source) = config.source_address {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    if let Some(hops) = config.ttl_security {
        // GTSM: sent with the greatest TTL, accepted only from within `hops`.
        let min = gtsm_min_ttl(hops);
        match peer {
            SocketAddr::V4(_) => sock.set_ttl_v4(255)?,
            SocketAddr::V6(_) => sock.set_unicast_hops_v6(255)?,
        }
        sys::set_min_ttl(&socket, peer.is_ipv6(), min)?;
    } else if config.is_ebgp() && !config.ebgp_multihop {
        match peer {
            SocketAddr::V4(_) => sock.set_ttl_v4(1)?,
            SocketAddr::V6(_) => sock.set_unicast_hops_v6(1)?,
        }
    }
    if let Some(password) = &config.password {
        sys::set_tcp_md5sig(&socket, peer.ip(), password.as_bytes())?;
    }
    socket.connect(peer).await
}

/// Sets up a connection the peer opened as [`connect`] sets up ours: GTSM's TTL and minimum
/// (the handshake itself was sent with the listener's TTL 255 and not yet filtered), or TTL 1
/// for single-hop eBGP. TCP MD5 was checked by the listener's key for the peer.
pub(super) fn accepted(stream: &TcpStream, config: &SessionConfig) -> io::Result<()> {
    let ipv6 = stream.peer_addr()?.is_ipv6();
    let sock = socket2::SockRef::from(stream);
    let ttl = if let Some(hops) = config.ttl_security {
        sys::set_min_ttl(stream, ipv6, gtsm_min_ttl(hops))?;
        255
    } else if config.is_ebgp() && !config.ebgp_multihop {
        1
    } else {
        // -1 (as the kernel reads it): back to the system's default TTL.
        u32::MAX
    };
    if ipv6 {
        sock.set_unicast_hops_v6(ttl)
    } else {
        sock.set_ttl_v4(ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtsm_accepts_exactly_the_ttls_a_peer_within_its_hops_arrives_with() {
        // Sent with 255, a directly connected peer's packets arrive with 255; each router in
        // between takes one off.
        assert_eq!(gtsm_min_ttl(1), 255);
        assert_eq!(gtsm_min_ttl(2), 254);
        assert_eq!(gtsm_min_ttl(254), 2);
        assert_eq!(gtsm_min_ttl(255), 1);
    }

    #[test]
    fn temporary_deprecated_tentative_and_duplicated_addresses_are_unfit_next_hops() {
        let text = "\
20010db8000000010000000000000001 02 40 00 80     eth0
20010db8000000000000000000000099 02 40 00 a0     eth0
20010db8000000010000000000000abc 02 40 00 01     eth0
20010db8000000010000000000000def 02 40 00 40     eth0
20010db8000000010000000000000bad 02 40 00 08     eth0
fe8000000000000000fc00fffe000001 02 40 20 80     eth0
garbage
";
        let unfit = unfit_ipv6_addresses(text);
        let addr = |s: &str| s.parse::<Ipv6Addr>().expect("an address");
        assert_eq!(
            unfit,
            [
                addr("2001:db8::99"),
                addr("2001:db8:0:1::abc"),
                addr("2001:db8:0:1::def"),
                addr("2001:db8:0:1::bad"),
            ]
            .into_iter()
            .collect()
        );
    }

    #[tokio::test]
    async fn a_session_without_hold_time_gets_the_kernel_to_probe_the_peer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listens on loopback");
        let addr = listener.local_addr().expect("bound");
        let (client, _server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let client = client.expect("connected");
        let settings = TcpKeepalive::for_keepalive_time(None);
        set_tcp_keepalive(&client, settings).expect("set");
        let sock = socket2::SockRef::from(&client);
        assert!(sock.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(
            sock.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
            settings.idle
        );
        assert_eq!(
            sock.tcp_keepalive_interval().expect("TCP_KEEPINTVL"),
            settings.interval
        );
        assert_eq!(
            sock.tcp_keepalive_retries().expect("TCP_KEEPCNT"),
            settings.probes
        );
        assert_eq!(
            sock.tcp_user_timeout().expect("TCP_USER_TIMEOUT"),
            Some(settings.detection())
        );
    }
}
