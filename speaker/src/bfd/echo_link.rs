//! One session's Echo packets on the wire: the `AF_PACKET` socket on the interface toward the
//! peer ([`PacketSocket::self_addressed_udp`]), and the two MACs the frames need — the
//! interface's, and the peer's from the kernel's neighbour table, looked up when the first
//! Echo packet goes out and again after the session went down (the peer may have been
//! replaced, as FRR's bfdd forgets it then too).
//!
//! The runner opens it when a session whose profile asks for echo starts, and learns from it
//! what the machine may do: send Echo packets (a link with a MAC, an address to send from), and
//! offer to loop the peer's — which is the kernel's forwarding, so only if the interface
//! forwards (`net.ipv4.conf.<interface>.forwarding`; Kubernetes nodes do).

use std::io;
use std::net::IpAddr;

use super::echo::{ECHO_PORT, EchoFrame, EchoFrameError, EchoPacket};
use crate::layer2::arp::Mac;
use crate::netlink::neighbour::{self, Link, NeighbourError};
use crate::sys::{PacketKind, PacketSocket};

/// Why Echo packets cannot be sent.
#[derive(Debug, thiserror::Error)]
pub(super) enum EchoError {
    /// The way to the peer is not known.
    #[error(transparent)]
    Path(#[from] NeighbourError),
    /// No local address to send from and to.
    #[error("no local address to send Echo packets from")]
    NoAddress,
    /// The socket failed.
    #[error("Echo packet socket: {0}")]
    Socket(#[from] io::Error),
    /// The kernel has not resolved the peer's MAC.
    #[error("the peer {0} is not in the neighbour table")]
    NoPeerMac(IpAddr),
}

/// The interface, MACs and socket of one session's Echo packets.
#[derive(Debug)]
pub(super) struct EchoLink {
    socket: PacketSocket,
    link: Link,
    address: IpAddr,
    peer: IpAddr,
    peer_mac: Option<Mac>,
}

impl EchoLink {
    /// The link toward `peer` (through `interface` if named), sending from and to `local` (or the
    /// address the kernel's route to the peer prefers).
    pub async fn open(
        peer: IpAddr,
        local: Option<IpAddr>,
        interface: Option<&str>,
    ) -> Result<Self, EchoError> {
        let link = neighbour::link_to(peer, interface).await?;
        let address = local.or(link.source).ok_or(EchoError::NoAddress)?;
        let socket = PacketSocket::self_addressed_udp(link.index, address, ECHO_PORT)?;
        Ok(Self {
            socket,
            link,
            address,
            peer,
            peer_mac: None,
        })
    }

    /// The interface's name.
    pub fn interface(&self) -> &str {
        &self.link.name
    }

    /// Whether our address is IPv6 link-local: RFC 5881 §4 would have Echo packets not sent
    /// from one, and a router does not forward to one.
    pub fn link_local(&self) -> bool {
        matches!(self.address, IpAddr::V6(v6) if v6.is_unicast_link_local())
    }

    /// Whether the kernel forwards what arrives on the interface for others: what sends the
    /// peer's Echo packets back to it.
    pub fn forwards(&self) -> io::Result<bool> {
        let family = match self.address {
            IpAddr::V4(_) => "ipv4",
            IpAddr::V6(_) => "ipv6",
        };
        let path = format!("/proc/sys/net/{family}/conf/{}/forwarding", self.link.name);
        Ok(std::fs::read_to_string(path)?.trim() != "0")
    }

    /// Sends `packet` to the peer's MAC, from and to our address.
    pub async fn send(&mut self, packet: EchoPacket) -> Result<(), EchoError> {
        let peer_mac = match self.peer_mac {
            Some(mac) => mac,
            None => {
                let mac = neighbour::neighbour_mac(self.link.index, self.peer)
                    .await?
                    .ok_or(EchoError::NoPeerMac(self.peer))?;
                *self.peer_mac.insert(mac)
            }
        };
        let frame = EchoFrame {
            eth_destination: peer_mac,
            eth_source: self.link.mac,
            address: self.address,
            packet,
        };
        self.socket.send(&frame.encode()).await?;
        Ok(())
    }

    /// Looks the peer's MAC up again before the next Echo packet.
    pub fn forget_peer_mac(&mut self) {
        self.peer_mac = None;
    }

    /// Waits for the next frame that came in for us and reads it as one of our Echo packets
    /// back from the peer. Copies of frames sent from this host are skipped.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Result<EchoPacket, EchoFrameError>> {
        loop {
            let received = self.socket.recv(buf).await?;
            if received.kind == PacketKind::Host {
                return Ok(EchoFrame::decode_looped(&buf[..received.len], self.address));
            }
        }
    }

    /// The next frame that already came in for us, without waiting, read as in [`Self::recv`].
    pub fn try_recv(
        &self,
        buf: &mut [u8],
    ) -> io::Result<Option<Result<EchoPacket, EchoFrameError>>> {
        while let Some(received) = self.socket.try_recv(buf)? {
            if received.kind == PacketKind::Host {
                return Ok(Some(EchoFrame::decode_looped(
                    &buf[..received.len],
                    self.address,
                )));
            }
        }
        Ok(None)
    }
}

/// Waits for an Echo packet on `link`, or forever without one.
pub(super) async fn recv(
    link: Option<&EchoLink>,
    buf: &mut [u8],
) -> io::Result<Result<EchoPacket, EchoFrameError>> {
    match link {
        Some(link) => link.recv(buf).await,
        None => std::future::pending().await,
    }
}
