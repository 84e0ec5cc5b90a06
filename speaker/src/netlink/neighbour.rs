//! The way to a directly connected neighbour, from rtnetlink: the interface the kernel routes
//! it through, that interface's MAC, and the neighbour's MAC from the kernel's neighbour table —
//! what a frame written by hand to the neighbour needs (BFD Echo packets, `crate::bfd::echo`).
//! Each call opens a netlink socket of its own in the calling thread's network namespace.

use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::{LinkAttribute, LinkLayerType, LinkMessage};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::Handle;

use crate::layer2::arp::Mac;

/// The interface a neighbour is reached through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its index.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// Its MAC.
    pub mac: Mac,
    /// The address the kernel would send from, when the route says.
    pub source: Option<IpAddr>,
}

/// Why the way to a neighbour could not be found.
#[derive(Debug, thiserror::Error)]
pub enum NeighbourError {
    /// Opening the netlink socket failed.
    #[error("opening an rtnetlink socket: {0}")]
    Socket(#[from] std::io::Error),
    /// A request failed (no route answers with an error too).
    #[error("rtnetlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
    /// The kernel had no answer.
    #[error("no route to {0}")]
    NoRoute(IpAddr),
    /// The neighbour is behind a router, not on the link.
    #[error("{peer} is reached through the router {gateway}, not directly")]
    Gateway {
        /// The neighbour.
        peer: IpAddr,
        /// The router.
        gateway: IpAddr,
    },
    /// The interface is not Ethernet-like.
    #[error("interface {0} has no Ethernet address")]
    NoMac(String),
}

fn connect() -> Result<Handle, NeighbourError> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(connection);
    Ok(handle)
}

/// The interface through which the kernel reaches `peer`, which must be on the link: the route
/// lookup's (`ip route get`), or `interface`, named, for a link-local peer.
pub async fn link_to(peer: IpAddr, interface: Option<&str>) -> Result<Link, NeighbourError> {
    let handle = connect()?;
    let (index, source) = match interface {
        Some(name) => {
            let link = handle
                .link()
                .get()
                .match_name(name)
                .execute()
                .try_next()
                .await?;
            (link.map(|l| l.header.index), None)
        }
        None => route_to(&handle, peer).await?,
    };
    let index = index.ok_or(NeighbourError::NoRoute(peer))?;
    let link = handle
        .link()
        .get()
        .match_index(index)
        .execute()
        .try_next()
        .await?
        .ok_or(NeighbourError::NoRoute(peer))?;
    let (name, mac) = name_and_mac(&link);
    let mac = mac.ok_or_else(|| NeighbourError::NoMac(name.clone()))?;
    Ok(Link {
        index,
        name,
        mac,
        source,
    })
}

/// The output interface and preferred source of the kernel's route to `peer`.
async fn route_to(
    handle: &Handle,
    peer: IpAddr,
) -> Result<(Option<u32>, Option<IpAddr>), NeighbourError> {
    let mut query = RouteMessage::default();
    (
        query.header.address_family,
        query.header.destination_prefix_length,
    ) = match peer {
        IpAddr::V4(_) => (AddressFamily::Inet, 32),
        IpAddr::V6(_) => (AddressFamily::Inet6, 128),
    };
    query
        .attributes
        .push(RouteAttribute::Destination(RouteAddress::from(peer)));
    let route = handle
        .route()
        .get(query)
        .execute()
        .try_next()
        .await?
        .ok_or(NeighbourError::NoRoute(peer))?;
    let (mut oif, mut source) = (None, None);
    for attribute in &route.attributes {
        match attribute {
            RouteAttribute::Oif(index) => oif = Some(*index),
            RouteAttribute::PrefSource(address) => source = ip(address),
            RouteAttribute::Gateway(address) => {
                if let Some(gateway) = ip(address).filter(|g| *g != peer) {
                    return Err(NeighbourError::Gateway { peer, gateway });
                }
            }
            _ => {}
        }
    }
    Ok((oif, source))
}

fn ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn name_and_mac(link: &LinkMessage) -> (String, Option<Mac>) {
    let ethernet = link.header.link_layer_type == LinkLayerType::Ether;
    let (mut name, mut mac) = (String::new(), None);
    for attribute in &link.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name.clone_from(n),
            LinkAttribute::Address(bytes) if ethernet => {
                mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(Mac);
            }
            _ => {}
        }
    }
    (name, mac)
}

/// `peer`'s MAC on interface `index`, from the kernel's neighbour table; `None` while the
/// kernel has not resolved it (or failed to).
pub async fn neighbour_mac(index: u32, peer: IpAddr) -> Result<Option<Mac>, NeighbourError> {
    let handle = connect()?;
    let family = match peer {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let mut entries = handle
        .neighbours()
        .get()
        .set_address_family(family)
        .execute();
    while let Some(entry) = entries.try_next().await? {
        let usable = !matches!(
            entry.header.state,
            NeighbourState::Incomplete | NeighbourState::Failed | NeighbourState::None
        );
        if entry.header.ifindex != index || !usable {
            continue;
        }
        let (mut destination, mut mac) = (None, None);
        for attribute in &entry.attributes {
            match attribute {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                    destination = Some(IpAddr::V4(*v4));
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                    destination = Some(IpAddr::V6(*v6));
                }
                NeighbourAttribute::LinkLayerAddress(bytes) => {
                    mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(Mac);
                }
                _ => {}
            }
        }
        if destination == Some(peer) && mac.is_some() {
            return Ok(mac);
        }
    }
    Ok(None)
}
