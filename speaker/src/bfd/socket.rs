//! BFD's UDP sockets (RFC 5881), created in the network namespace of the calling thread.
//!
//! - [`ReceiveSocket`]: port 3784 on every address of one family, reporting each datagram's
//!   TTL (`IP_RECVTTL`) or hop limit (`IPV6_RECVHOPLIMIT`), so the receiver can drop those
//!   that crossed a router (GTSM, RFC 5881 §5). The IPv6 one is `IPV6_V6ONLY`: IPv4 peers are
//!   the IPv4 socket's.
//! - [`SendSocket`]: one per session, from a source port in 49152–65535 kept for the
//!   session's life (§4), with TTL / hop limit 255 and precedence "internetwork control",
//!   optionally bound to the BGP session's local address and to an interface.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Where BFD Control packets go (RFC 5881 §4).
pub const CONTROL_PORT: u16 = 3784;

/// The destination port of multihop BFD control packets (RFC 5883 §5).
pub const MULTIHOP_CONTROL_PORT: u16 = 4784;

/// Single-hop (RFC 5881) or multihop (RFC 5883) BFD: the port, and the least TTL a packet may
/// arrive with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hops {
    /// Directly connected: port 3784, TTL exactly 255.
    Single,
    /// Across routers: port 4784, TTL at least `min_ttl` (BFDProfile `minimumTtl`).
    Multi {
        /// The least TTL accepted.
        min_ttl: u8,
    },
}

impl Hops {
    /// The destination (and receive) port.
    pub fn port(self) -> u16 {
        match self {
            Hops::Single => CONTROL_PORT,
            Hops::Multi { .. } => MULTIHOP_CONTROL_PORT,
        }
    }

    /// The least TTL a packet may arrive with.
    pub fn min_ttl(self) -> u8 {
        match self {
            Hops::Single => TTL,
            Hops::Multi { min_ttl } => min_ttl,
        }
    }
}

/// The source ports a session may use (RFC 5881 §4).
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

/// The TTL / hop limit single-hop BFD sends, and the only one it accepts (RFC 5881 §5).
pub const TTL: u8 = 255;

/// IP precedence 6, "internetwork control" (as routers send their BFD).
const TOS_NETWORK_CONTROL: u32 = 0xc0;

/// IP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn domain(self) -> Domain {
        match self {
            Family::V4 => Domain::IPV4,
            Family::V6 => Domain::IPV6,
        }
    }

    fn unspecified(self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

/// One datagram received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// Octets written to the buffer.
    pub len: usize,
    /// The sender.
    pub from: SocketAddr,
    /// Its TTL or hop limit when it arrived, if the kernel said.
    pub ttl: Option<u8>,
}

/// Port 3784 for one address family.
#[derive(Debug)]
pub struct ReceiveSocket {
    socket: UdpSocket,
}

fn udp(family: Family) -> io::Result<Socket> {
    let socket = Socket::new(
        family.domain(),
        Type::DGRAM.nonblocking().cloexec(),
        Some(Protocol::UDP),
    )?;
    if family == Family::V6 {
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}

impl ReceiveSocket {
    /// Binds `port` (3784 or 4784) on every address of `family`. Fails if something else in
    /// this network namespace (another BFD daemon) holds it.
    pub fn bind(family: Family, port: u16) -> io::Result<Self> {
        let socket = udp(family)?;
        match family {
            Family::V4 => setsockopt(&socket, sockopt::Ipv4RecvTtl, &true)?,
            Family::V6 => socket.set_recv_hoplimit_v6(true)?,
        }
        socket.bind(&SocketAddr::new(family.unspecified(), port).into())?;
        let socket = UdpSocket::from_std(socket.into())?;
        Ok(Self { socket })
    }

    /// Waits for the next datagram and copies it into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Datagram> {
        self.socket
            .async_io(Interest::READABLE, || receive(self.socket.as_raw_fd(), buf))
            .await
    }
}

fn receive(fd: std::os::fd::RawFd, buf: &mut [u8]) -> io::Result<Datagram> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut control = nix::cmsg_space!(libc::c_int);
    let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut control), MsgFlags::empty())?;
    let from = msg
        .address
        .as_ref()
        .and_then(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(SocketAddr::new(IpAddr::V4(v4.ip()), v4.port()))
            } else {
                let v6 = a.as_sockaddr_in6()?;
                Some(SocketAddr::new(IpAddr::V6(v6.ip()), v6.port()))
            }
        })
        .ok_or_else(|| io::Error::other("datagram without a source address"))?;
    let mut ttl = None;
    // A truncated control buffer (ENOBUFS here) leaves the TTL unknown: the packet is dropped.
    if let Ok(cmsgs) = msg.cmsgs() {
        for cmsg in cmsgs {
            match cmsg {
                ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => {
                    ttl = u8::try_from(t).ok();
                }
                _ => {}
            }
        }
    }
    Ok(Datagram {
        len: msg.bytes,
        from,
        ttl,
    })
}

/// One session's sending socket.
#[derive(Debug)]
pub struct SendSocket {
    socket: UdpSocket,
    peer: SocketAddr,
}

impl SendSocket {
    /// A socket sending to `peer`'s `port` (3784, or 4784 for multihop) from `local` (or the
    /// address the kernel picks) and a free port in 49152–65535, starting the search at
    /// `first_try`. Both kinds send with TTL 255.
    pub fn bind(
        peer: SocketAddr,
        local: Option<IpAddr>,
        interface: Option<&str>,
        first_try: u16,
    ) -> io::Result<Self> {
        let (peer, dest_port) = (peer.ip(), peer.port());
        let family = Family::of(peer);
        let local = local.unwrap_or(family.unspecified());
        if Family::of(local) != family {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("local address {local} is not of the family of peer {peer}"),
            ));
        }
        let socket = udp(family)?;
        match family {
            Family::V4 => {
                socket.set_ttl_v4(u32::from(TTL))?;
                socket.set_tos_v4(TOS_NETWORK_CONTROL)?;
            }
            Family::V6 => {
                socket.set_unicast_hops_v6(u32::from(TTL))?;
                socket.set_tclass_v6(TOS_NETWORK_CONTROL)?;
            }
        }
        if let Some(interface) = interface {
            socket.bind_device(Some(interface.as_bytes()))?;
        }
        let (lowest, count) = (*SOURCE_PORTS.start(), SOURCE_PORTS.len() as u32);
        let offset = u32::from(first_try.saturating_sub(lowest)) % count;
        let mut last = io::Error::from(io::ErrorKind::AddrInUse);
        for i in 0..count {
            let port = lowest + ((offset + i) % count) as u16;
            match socket.bind(&SocketAddr::new(local, port).into()) {
                Ok(()) => {
                    let socket = UdpSocket::from_std(socket.into())?;
                    return Ok(Self {
                        socket,
                        peer: SocketAddr::new(peer, dest_port),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// The address and port packets leave from.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends one packet to the peer.
    pub async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        self.socket.send_to(bytes, self.peer).await.map(drop)
    }
}
