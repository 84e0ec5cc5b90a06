//! The raw sockets of the layer-2 announcer, small and safe to use from tokio. The only module of
//! the speaker allowed `unsafe` (each block says why it is sound).
//!
//! - [`PacketSocket::arp`]: `AF_PACKET`/`SOCK_RAW` bound to one interface with protocol
//!   `ETH_P_ARP`: the kernel hands it only ARP frames, whole (Ethernet header included).
//! - [`PacketSocket::ndp`]: `AF_PACKET`/`SOCK_RAW` bound with `ETH_P_IPV6` and a classic BPF
//!   program that passes only ICMPv6 Neighbor Solicitations (135) and Advertisements (136) with no
//!   extension header. NDP is read and written as whole frames rather than through a raw ICMPv6
//!   socket because the kernel delivers to raw ICMPv6 sockets only what it routes locally: a
//!   *unicast* solicitation (a client's NUD probe) for a VIP that is not configured on the node
//!   never reaches one (checked in network namespaces). Writing whole frames also puts the VIP as
//!   the IPv6 source (strict hosts such as `ndisc6` require source == target) and the asker's MAC
//!   as the destination without the node's own neighbour table.
//! - [`PacketSocket::self_addressed_udp`]: `AF_PACKET`/`SOCK_RAW` bound with `ETH_P_IP` (or
//!   `ETH_P_IPV6`) and a classic BPF program that passes only unfragmented UDP to one port whose
//!   IP source and destination are both one given address: BFD Echo packets of ours that the
//!   peer's forwarding plane sent back. They have to be read as frames: the kernel drops a packet
//!   from outside that claims one of our own addresses as its source before any UDP socket sees
//!   it (checked in network namespaces). They are written as frames too, to leave for the
//!   peer's MAC although addressed to ourselves.
//! - [`GroupMembership`]: an IPv6 datagram socket that never receives, used only to join
//!   solicited-node multicast groups on one interface (`IPV6_JOIN_GROUP`: the NIC accepts
//!   `33:33:ff:xx:xx:xx` and the kernel sends MLD reports, so snooping switches forward the
//!   solicitations to us).
//!
//! Needs `CAP_NET_RAW`.

#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{LinkAddr, MsgFlags};
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, SockFilter, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// How the kernel classified a received frame (`sll_pkttype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketKind {
    /// Addressed to this interface's MAC.
    Host,
    /// Ethernet broadcast.
    Broadcast,
    /// Ethernet multicast.
    Multicast,
    /// Addressed to another host (seen because a switch or bridge flooded it).
    OtherHost,
    /// Sent from this host (by another socket or the kernel), not received.
    Outgoing,
    /// Anything else the kernel reports.
    Other(u8),
}

impl PacketKind {
    fn from_raw(kind: u8) -> Self {
        match kind {
            libc::PACKET_HOST => Self::Host,
            libc::PACKET_BROADCAST => Self::Broadcast,
            libc::PACKET_MULTICAST => Self::Multicast,
            libc::PACKET_OTHERHOST => Self::OtherHost,
            libc::PACKET_OUTGOING => Self::Outgoing,
            _ => Self::Other(kind),
        }
    }
}

/// One frame read from a [`PacketSocket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes written to the buffer (a frame longer than the buffer is cut).
    pub len: usize,
    /// How the kernel classified it.
    pub kind: PacketKind,
}

/// An `AF_PACKET` raw socket bound to one interface and one ethertype: reads and writes whole
/// Ethernet frames.
#[derive(Debug)]
pub struct PacketSocket {
    fd: AsyncFd<Socket>,
    ifindex: u32,
}

const ETH_P_ARP: u16 = libc::ETH_P_ARP as u16;
const ETH_P_IP: u16 = libc::ETH_P_IP as u16;
const ETH_P_IPV6: u16 = libc::ETH_P_IPV6 as u16;

/// Classic BPF over an Ethernet frame: accept IPv6 whose next header is ICMPv6 (58) and whose
/// ICMPv6 type is 135 or 136; drop the rest (loads past the end also drop).
const NDP_FILTER: [SockFilter; 7] = {
    const LDB_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    [
        SockFilter::new(LDB_ABS, 0, 0, 14 + 6),    // IPv6 next header
        SockFilter::new(JEQ_K, 0, 3, 58),          // ICMPv6, else drop
        SockFilter::new(LDB_ABS, 0, 0, 14 + 40),   // ICMPv6 type
        SockFilter::new(JEQ_K, 2, 0, 135),         // NS: accept
        SockFilter::new(JEQ_K, 1, 0, 136),         // NA: accept, else drop
        SockFilter::new(RET_K, 0, 0, 0),           // drop
        SockFilter::new(RET_K, 0, 0, 0x0004_0000), // accept the whole frame
    ]
};

impl PacketSocket {
    /// A socket receiving and sending the ARP frames of interface `ifindex`.
    pub fn arp(ifindex: u32) -> io::Result<Self> {
        Self::open(ifindex, ETH_P_ARP, None)
    }

    /// A socket receiving the frames of interface `ifindex` that carry an ICMPv6 Neighbor
    /// Solicitation or Advertisement, and sending IPv6 frames.
    pub fn ndp(ifindex: u32) -> io::Result<Self> {
        Self::open(ifindex, ETH_P_IPV6, Some(&NDP_FILTER))
    }

    /// A socket receiving the frames of interface `ifindex` that carry an unfragmented UDP
    /// datagram to `port` whose IP source and destination are both `address` (IPv6: with no
    /// extension header), and sending frames of `address`'s family.
    pub fn self_addressed_udp(ifindex: u32, address: IpAddr, port: u16) -> io::Result<Self> {
        match address {
            IpAddr::V4(ip) => Self::open(ifindex, ETH_P_IP, Some(&self_addressed_udp_v4(ip, port))),
            IpAddr::V6(ip) => {
                Self::open(ifindex, ETH_P_IPV6, Some(&self_addressed_udp_v6(ip, port)))
            }
        }
    }

    fn open(ifindex: u32, protocol: u16, filter: Option<&[SockFilter]>) -> io::Result<Self> {
        // Protocol 0 until bound: an unbound packet socket with a protocol would already
        // receive (unfiltered) frames from every interface.
        let socket = Socket::new(
            Domain::PACKET,
            Type::RAW.nonblocking().cloexec(),
            Some(Protocol::from(0)),
        )?;
        if let Some(filter) = filter {
            socket.attach_filter(filter)?;
        }
        socket.bind(&link_address(ifindex, protocol)?)?;
        // SAFETY: `Socket` owns its descriptor and closes it only when dropped, which happens
        // when the `AsyncFd` (and with it the registration) is dropped.
        let fd = unsafe { AsyncFd::register(socket) }?;
        Ok(Self { fd, ifindex })
    }

    /// The interface this socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Waits for the next frame and copies it into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            let mut guard = self.fd.readable().await?;
            let fd = guard.get_inner().as_raw_fd();
            match guard.try_io(|_| {
                nix::sys::socket::recvfrom::<LinkAddr>(fd, buf).map_err(io::Error::from)
            }) {
                Ok(Ok((len, from))) => {
                    let kind = from.map_or(PacketKind::Other(u8::MAX), |a| {
                        PacketKind::from_raw(a.pkttype())
                    });
                    return Ok(Received { len, kind });
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// The next frame already received, copied into `buf`, without waiting: `None` if there
    /// is none.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let fd = self.fd.get_ref().as_raw_fd();
        match nix::sys::socket::recvfrom::<LinkAddr>(fd, buf) {
            Ok((len, from)) => {
                let kind = from.map_or(PacketKind::Other(u8::MAX), |a| {
                    PacketKind::from_raw(a.pkttype())
                });
                Ok(Some(Received { len, kind }))
            }
            Err(nix::errno::Errno::EAGAIN) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends one whole frame (Ethernet header included) out of the interface.
    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        let sent = self
            .fd
            .async_io(Interest::WRITABLE, |socket| {
                nix::sys::socket::send(socket.as_raw_fd(), frame, MsgFlags::empty())
                    .map_err(io::Error::from)
            })
            .await?;
        if sent == frame.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {} bytes", frame.len()),
            ))
        }
    }
}

/// A classic BPF program over an Ethernet frame that accepts it whole if every check passes
/// and drops it otherwise (loads past the end drop too).
#[derive(Default)]
struct Checks(Vec<(u16, u32, Check)>);

#[derive(Clone, Copy)]
enum Check {
    /// A load.
    None,
    /// Drop unless the accumulator equals the constant.
    Equal,
    /// Drop if the accumulator has any bit of the constant.
    NoneOf,
}

impl Checks {
    const LDB: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const LDH: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const LDW: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    /// X = 4 × (the low nibble of the octet at k): an IPv4 header's length.
    const LDX_IHL: u16 = (libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16;
    /// A = the 16 bits at X + k.
    const LDH_X: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

    fn load(mut self, code: u16, offset: u32) -> Self {
        self.0.push((code, offset, Check::None));
        self
    }

    fn equal(mut self, value: u32) -> Self {
        self.0.push((Self::JEQ, value, Check::Equal));
        self
    }

    fn none_of(mut self, mask: u32) -> Self {
        self.0.push((Self::JSET, mask, Check::NoneOf));
        self
    }

    /// The program: the checks, then "accept the whole frame", then "drop".
    fn program(self) -> Vec<SockFilter> {
        let drop = self.0.len() + 1;
        let mut program: Vec<SockFilter> = self
            .0
            .into_iter()
            .enumerate()
            .map(|(i, (code, k, check))| {
                // Programs here are a few dozen instructions: every jump fits in eight bits.
                let to_drop = u8::try_from(drop - i - 1).unwrap_or(u8::MAX);
                match check {
                    Check::None => SockFilter::new(code, 0, 0, k),
                    Check::Equal => SockFilter::new(code, 0, to_drop, k),
                    Check::NoneOf => SockFilter::new(code, to_drop, 0, k),
                }
            })
            .collect();
        program.push(SockFilter::new(Self::RET, 0, 0, 0x0004_0000));
        program.push(SockFilter::new(Self::RET, 0, 0, 0));
        program
    }
}

const ETH: u32 = 14;
const UDP: u32 = 17;

/// IPv4 (the socket's protocol): UDP, neither a fragment nor the first of several, from and to
/// `ip`, to `port`.
fn self_addressed_udp_v4(ip: Ipv4Addr, port: u16) -> Vec<SockFilter> {
    let ip = u32::from(ip);
    Checks::default()
        .load(Checks::LDB, ETH + 9)
        .equal(UDP)
        .load(Checks::LDH, ETH + 6)
        .none_of(0x3fff)
        .load(Checks::LDW, ETH + 12)
        .equal(ip)
        .load(Checks::LDW, ETH + 16)
        .equal(ip)
        .load(Checks::LDX_IHL, ETH)
        .load(Checks::LDH_X, ETH + 2)
        .equal(u32::from(port))
        .program()
}

/// IPv6 (the socket's protocol): next header UDP, from and to `ip`, to `port`.
fn self_addressed_udp_v6(ip: Ipv6Addr, port: u16) -> Vec<SockFilter> {
    let mut checks = Checks::default().load(Checks::LDB, ETH + 6).equal(UDP);
    let words = ip
        .octets()
        .chunks_exact(4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        .collect::<Vec<_>>();
    // Source, then destination.
    for start in [ETH + 8, ETH + 24] {
        for (i, word) in (0u32..).zip(&words) {
            checks = checks.load(Checks::LDW, start + 4 * i).equal(*word);
        }
    }
    checks
        .load(Checks::LDH, ETH + 40 + 2)
        .equal(u32::from(port))
        .program()
}

/// A `sockaddr_ll` for binding to `ifindex` with `protocol` (host order).
fn link_address(ifindex: u32, protocol: u16) -> io::Result<SockAddr> {
    let ifindex = i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index too large"))?;
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `sockaddr_storage` is larger than and aligned for `sockaddr_ll`, and every bit
    // pattern (here: zeroes) is a valid `sockaddr_ll`.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = protocol.to_be();
    ll.sll_ifindex = ifindex;
    let len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `storage` holds an initialised `sockaddr_ll` of family AF_PACKET and `len` is its
    // size.
    Ok(unsafe { SockAddr::new(storage, len) })
}

/// Solicited-node (or any IPv6 multicast) group memberships on one interface. Joining makes the
/// interface accept the group's frames and announces the membership with MLD; the socket itself
/// never receives anything (it is not bound to a port). Memberships end with it.
#[derive(Debug)]
pub struct GroupMembership {
    socket: Socket,
    ifindex: u32,
}

impl GroupMembership {
    /// Memberships on interface `ifindex`.
    pub fn new(ifindex: u32) -> io::Result<Self> {
        let socket = Socket::new(Domain::IPV6, Type::DGRAM.cloexec(), None)?;
        Ok(Self { socket, ifindex })
    }

    /// Joins `group` on the interface.
    pub fn join(&self, group: Ipv6Addr) -> io::Result<()> {
        self.socket.join_multicast_v6(&group, self.ifindex)
    }

    /// Leaves `group` on the interface.
    pub fn leave(&self, group: Ipv6Addr) -> io::Result<()> {
        self.socket.leave_multicast_v6(&group, self.ifindex)
    }
}

/// The index of the interface named `name` in the calling thread's network namespace.
pub fn ifindex(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(io::Error::from)
}

/// The Linux `struct tcp_md5sig` (`include/uapi/linux/tcp.h`), which libc does not define.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; libc::TCP_MD5SIG_MAXKEYLEN],
}

/// Signs every segment to and from `peer` on `socket` with TCP MD5 (RFC 2385) using `key`.
/// Set it on a connecting socket before `connect`, or on a listening socket once per peer; an
/// empty key removes the peer's entry. Keys longer than 80 octets are refused.
pub fn set_tcp_md5sig(socket: &impl AsRawFd, peer: std::net::IpAddr, key: &[u8]) -> io::Result<()> {
    let keylen = u16::try_from(key.len())
        .ok()
        .filter(|len| usize::from(*len) <= libc::TCP_MD5SIG_MAXKEYLEN)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "TCP MD5 keys are at most 80 octets",
            )
        })?;
    let peer = SockAddr::from(std::net::SocketAddr::new(peer, 0));
    // SAFETY: `TcpMd5Sig` is plain old data (integers and byte arrays); all zeroes is valid.
    let mut sig: TcpMd5Sig = unsafe { mem::zeroed() };
    let addr_len = usize::try_from(peer.len()).unwrap_or(usize::MAX);
    if addr_len > mem::size_of::<libc::sockaddr_storage>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "address too long",
        ));
    }
    // SAFETY: `peer.as_ptr()` points at `addr_len` initialised octets of a socket address,
    // `sig.addr` has room for them (checked above), and the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            peer.as_ptr().cast::<u8>(),
            (&raw mut sig.addr).cast::<u8>(),
            addr_len,
        );
    }
    sig.keylen = keylen;
    sig.key[..key.len()].copy_from_slice(key);
    let len = mem::size_of::<TcpMd5Sig>() as libc::socklen_t;
    // SAFETY: the descriptor is open for the borrow of `socket`; `sig` is a valid, initialised
    // `tcp_md5sig` of `len` octets that outlives the call, which only reads it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&raw const sig).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `IP_MINTTL` and `IPV6_MINHOPCOUNT` (Linux's `in.h` and `in6.h`).
const IP_MINTTL: libc::c_int = 21;
const IPV6_MINHOPCOUNT: libc::c_int = 73;

/// GTSM (RFC 5082) on a TCP socket: the kernel drops every packet for it that arrives with a
/// TTL (hop limit) below `min` — including the handshake's, so a connection from or to a peer
/// farther away never forms. `ipv6`: the socket is an IPv6 one.
pub fn set_min_ttl(socket: &impl AsRawFd, ipv6: bool, min: u8) -> io::Result<()> {
    let (level, name) = if ipv6 {
        (libc::IPPROTO_IPV6, IPV6_MINHOPCOUNT)
    } else {
        (libc::IPPROTO_IP, IP_MINTTL)
    };
    let value = libc::c_int::from(min);
    // SAFETY: the descriptor is open for the borrow of `socket`; `value` is an initialised
    // `int` that outlives the call, which only reads `size_of::<c_int>()` octets of it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast::<libc::c_void>(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `ICMP6_FILTER` (`netinet/icmp6.h`): which ICMPv6 types a raw socket is handed.
const ICMP6_FILTER: libc::c_int = 1;

/// A raw ICMPv6 socket on one interface, handed only the ICMPv6 types it asks for: how an
/// unnumbered BGP peer is found (router advertisements, answers to an all-nodes echo). Sends
/// with hop limit 255 (RFC 4861 §6.1.2 drops router discovery arriving with less); the kernel
/// fills in the checksum.
#[derive(Debug)]
pub struct Icmpv6Socket {
    fd: AsyncFd<Socket>,
    ifindex: u32,
}

/// One ICMPv6 message read from an [`Icmpv6Socket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmpv6Received {
    /// Octets written to the buffer (the ICMPv6 message, without the IPv6 header).
    pub len: usize,
    /// The sender.
    pub from: Ipv6Addr,
    /// The hop limit it arrived with, if the kernel said.
    pub hop_limit: Option<u8>,
}

impl Icmpv6Socket {
    /// A socket bound to interface `name` (index `ifindex`), receiving the ICMPv6 messages of
    /// `types` that arrive on it, and in the all-routers group (to hear solicitations).
    pub fn bind(name: &str, ifindex: u32, types: &[u8]) -> io::Result<Self> {
        let socket = Socket::new(
            Domain::IPV6,
            Type::RAW.nonblocking().cloexec(),
            Some(Protocol::ICMPV6),
        )?;
        set_icmp6_filter(&socket, types)?;
        socket.bind_device(Some(name.as_bytes()))?;
        socket.set_multicast_if_v6(ifindex)?;
        socket.set_multicast_hops_v6(255)?;
        socket.set_unicast_hops_v6(255)?;
        // Our own multicasts are not news.
        socket.set_multicast_loop_v6(false)?;
        socket.set_recv_hoplimit_v6(true)?;
        socket.join_multicast_v6(&Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2), ifindex)?;
        // SAFETY: as in `PacketSocket::open`: the `Socket` owns its descriptor until dropped
        // with the `AsyncFd`.
        let fd = unsafe { AsyncFd::register(socket) }?;
        Ok(Self { fd, ifindex })
    }

    /// Waits for the next message and copies it into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Icmpv6Received> {
        use nix::sys::socket::{ControlMessageOwned, SockaddrIn6, recvmsg};
        loop {
            let mut guard = self.fd.readable().await?;
            let fd = guard.get_inner().as_raw_fd();
            let got = guard.try_io(|_| {
                let mut iov = [io::IoSliceMut::new(buf)];
                let mut control = nix::cmsg_space!(libc::c_int);
                let msg =
                    recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut control), MsgFlags::empty())?;
                let from = msg
                    .address
                    .map(|a| a.ip())
                    .ok_or_else(|| io::Error::other("ICMPv6 message without a source"))?;
                let hop_limit = msg.cmsgs().ok().and_then(|mut cmsgs| {
                    cmsgs.find_map(|c| match c {
                        ControlMessageOwned::Ipv6HopLimit(h) => u8::try_from(h).ok(),
                        _ => None,
                    })
                });
                Ok(Icmpv6Received {
                    len: msg.bytes,
                    from,
                    hop_limit,
                })
            });
            match got {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one ICMPv6 message (checksum left zero) to `to` on the interface.
    pub async fn send_to(&self, message: &[u8], to: Ipv6Addr) -> io::Result<()> {
        let scope = if to.is_multicast() || to.is_unicast_link_local() {
            self.ifindex
        } else {
            0
        };
        let addr = SockAddr::from(std::net::SocketAddrV6::new(to, 0, 0, scope));
        self.fd
            .async_io(Interest::WRITABLE, |socket| socket.send_to(message, &addr))
            .await
            .map(drop)
    }
}

/// Lets only `types` through to `socket` (RFC 3542 §3.2: a set bit blocks its type).
fn set_icmp6_filter(socket: &Socket, types: &[u8]) -> io::Result<()> {
    let mut filter = [u32::MAX; 8];
    for &t in types {
        filter[usize::from(t >> 5)] &= !(1 << (t & 31));
    }
    // SAFETY: the descriptor is open for the borrow of `socket`; `filter` is the kernel's
    // `struct icmp6_filter` (eight 32-bit words), initialised and outliving the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            filter.as_ptr().cast::<libc::c_void>(),
            mem::size_of_val(&filter) as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
