//! Layer-2 announcement: the ARP and NDP codecs (pure) and the [`announcer`] that answers and
//! announces this node's IPs on raw sockets ([`crate::sys`]) over the interface table
//! ([`crate::netlink`]).

pub mod announcer;
pub mod arp;
pub mod ndp;
