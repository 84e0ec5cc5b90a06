//! Layer-2 announcement: the ARP and NDP codecs, pure; the responders and the
//! announcer on raw sockets are still to come.

pub mod arp;
pub mod ndp;
